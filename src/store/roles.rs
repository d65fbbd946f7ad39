//! Operators as database roles (issue 18). On PostgreSQL an operator is a login role that does
//! not own the tables, so row-level security (schema_pg.rs step 12) limits it to the rows of
//! the accounts `account_access` grants it; the owner of the tables (the admin, the daemons)
//! is not limited. On SQLite an operator is a name in `operators`, a label only.
//!
//! `account_access` is derived from the settings: [`Store::refresh_account_access`] writes it
//! from a [`Config`] whenever the settings change (account add, edit, share, remove; a settings
//! reload). A role that is no admin writes only the rows of accounts it owns (its policies
//! refuse the rest).

use serde::Serialize;

use super::sql::Engine;
use super::{Store, now};
use crate::args;
use crate::config::Config;
use crate::error::{AppError, Code, Result};

/// Who this connection is on PostgreSQL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Role {
    /// `current_user`.
    pub name: String,
    /// Owns the tables (or is a superuser, or bypasses row-level security): sees everything.
    pub admin: bool,
}

/// One operator as `operator list` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OperatorRow {
    pub name: String,
    pub created_at: String,
    pub created_by: String,
    /// On PostgreSQL: whether its login role exists (a role dropped by hand shows false).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<bool>,
}

/// One row of `account_access`: `operator` sees `account_id` (`*`: everyone).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Access {
    pub account_id: String,
    pub operator: String,
    /// `owner` or `shared`.
    pub standing: &'static str,
}

/// What the settings say about who sees each account (the rules of ops::access, as rows).
pub fn access_rows(config: &Config) -> Vec<Access> {
    let mut rows = Vec::new();
    for acct in config.accounts.values() {
        let owner = acct.owner.clone().unwrap_or_else(|| "*".into());
        for shared in &acct.shared_with {
            if *shared != owner && owner != "*" {
                rows.push(Access {
                    account_id: acct.id.clone(),
                    operator: shared.clone(),
                    standing: "shared",
                });
            }
        }
        rows.push(Access {
            account_id: acct.id.clone(),
            operator: owner,
            standing: "owner",
        });
    }
    rows.sort();
    rows.dedup_by(|a, b| a.account_id == b.account_id && a.operator == b.operator);
    rows
}

/// A role name mailroom creates: a lower-case identifier (so it reads the same quoted or not,
/// and as an OS user name), not one of PostgreSQL's own.
pub fn check_role_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
        && !name.starts_with("pg_")
        && !matches!(name, "public" | "postgres" | "mailroom");
    if ok {
        return Ok(());
    }
    Err(AppError::usage(
        format!("{name:?} cannot be an operator name"),
        "use lower-case letters, digits, _ and - (starting with a letter, at most 63), not public, postgres, mailroom or pg_…",
    ))
}

/// `"name"`: an identifier quoted for a statement that takes no arguments (CREATE ROLE).
fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `'text'`: a string literal for such a statement (standard_conforming_strings is on).
fn literal(text: &str) -> Result<String> {
    if text.contains('\0') {
        return Err(AppError::usage(
            "the password holds a NUL character",
            "choose a password without control characters",
        ));
    }
    Ok(format!("'{}'", text.replace('\'', "''")))
}

impl Store {
    /// Who this connection is; None on SQLite (no roles there).
    pub fn pg_role(&self) -> Result<Option<Role>> {
        if self.engine() != Engine::Postgres {
            return Ok(None);
        }
        let (name, admin): (String, i64) = self.conn.one(
            "SELECT CAST(current_user AS TEXT),
                    CAST(CASE WHEN r.rolsuper OR r.rolbypassrls
                              OR pg_has_role(current_user, c.relowner, 'MEMBER') THEN 1 ELSE 0 END AS BIGINT)
             FROM pg_roles r, pg_class c
             WHERE r.rolname = current_user AND c.oid = to_regclass('accounts')",
            &[],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        Ok(Some(Role {
            name,
            admin: admin == 1,
        }))
    }

    /// Records an operator; on PostgreSQL also creates its login role (no superuser, no
    /// row-level-security bypass, no role or database creation) with the grants operators
    /// need: read every table, write the rows policies allow. Needs a connection that may
    /// create roles (the admin).
    pub fn add_operator(&self, name: &str, password: Option<&str>, by: &str) -> Result<()> {
        check_role_name(name)?;
        self.conn.tx(|| {
            let added = self.conn.exec(
                "INSERT INTO operators (name, created_at, created_by) VALUES (?1, ?2, ?3)
                 ON CONFLICT (name) DO NOTHING",
                args![name, now(), by],
            )?;
            if added == 0 {
                return Err(AppError::needs_user(
                    format!("operator {name} already exists"),
                    "",
                    format!("see `mailroom operator list`; `mailroom operator remove {name}` first to start over"),
                )
                .with_code(Code::Conflict));
            }
            if self.engine() == Engine::Postgres {
                self.create_role(name, password)?;
            }
            Ok(())
        })
    }

    fn create_role(&self, name: &str, password: Option<&str>) -> Result<()> {
        // 0: no such role; 1: a plain one (another database's operator); 2: one with powers
        // an operator must not lose by accident (or this connection's own).
        let exists: i64 = self.conn.one(
            "SELECT COALESCE(MAX(CASE WHEN rolsuper OR rolcreaterole OR rolbypassrls
                                        OR rolname = current_user THEN 2 ELSE 1 END), 0)
             FROM pg_roles WHERE rolname = ?1",
            args![name],
            |r| r.get(0),
        )?;
        if exists == 2 {
            return Err(AppError::needs_user(
                format!("a database role {name} exists and is an administrator"),
                "it may create roles, bypass row-level security or is a superuser (or it is this connection's role)",
                "choose another operator name",
            )
            .with_code(Code::Conflict));
        }
        let role = ident(name);
        let pw = match password {
            Some(p) => format!(" PASSWORD {}", literal(p)?),
            None => String::new(),
        };
        let attrs = "LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE NOINHERIT";
        let create = match exists {
            0 => format!("CREATE ROLE {role} {attrs}{pw}"),
            _ => format!("ALTER ROLE {role} {attrs}{pw}"),
        };
        self.conn.batch(&create).map_err(role_error)?;
        self.grant(name)
    }

    /// The grants of an operator's role: read every table, write the rows policies allow
    /// (not the schema version, not the operators, not the shared settings or the key check:
    /// a settings document is one row, so a role that could write it could point another
    /// owner's account at a server of its choosing — settings change through the admin).
    fn grant(&self, name: &str) -> Result<()> {
        let role = ident(name);
        let (db, schema): (String, String) = self.conn.one(
            "SELECT quote_ident(current_database()), quote_ident(current_schema())",
            &[],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        self.conn
            .batch(&format!(
                "GRANT CONNECT ON DATABASE {db} TO {role};
                 GRANT USAGE ON SCHEMA {schema} TO {role};
                 GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {schema} TO {role};
                 REVOKE INSERT, UPDATE, DELETE ON mailroom_schema, operators, shared_settings, key_check, account_counts FROM {role};
                 GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {schema} TO {role};"
            ))
            .map_err(role_error)
    }

    /// After a migration: the operators' roles get the grants on tables it added.
    pub(super) fn regrant_operators(&self) -> Result<()> {
        let names: Vec<String> = self.conn.rows(
            "SELECT o.name FROM operators o JOIN pg_roles r ON r.rolname = o.name ORDER BY o.name",
            &[],
            |r| r.get(0),
        )?;
        for n in names {
            self.grant(&n)?;
        }
        Ok(())
    }

    /// Removes an operator; on PostgreSQL revokes its grants here and drops its role (kept, with
    /// a note, when it still holds rights in another database).
    pub fn remove_operator(&self, name: &str) -> Result<bool> {
        check_role_name(name)?;
        let removed = self
            .conn
            .exec("DELETE FROM operators WHERE name = ?1", args![name])?;
        if removed == 0 {
            return Err(AppError::needs_user(
                format!("no such operator {name}"),
                "",
                "see `mailroom operator list`",
            )
            .with_code(Code::NotFound));
        }
        if self.engine() != Engine::Postgres {
            return Ok(true);
        }
        let role = ident(name);
        let exists: i64 = self.conn.one(
            "SELECT COUNT(*) FROM pg_roles WHERE rolname = ?1",
            args![name],
            |r| r.get(0),
        )?;
        if exists == 0 {
            return Ok(true);
        }
        self.conn
            .batch(&format!("DROP OWNED BY {role}"))
            .map_err(role_error)?;
        Ok(self.conn.batch(&format!("DROP ROLE {role}")).is_ok())
    }

    /// The operators added, by name.
    pub fn operators(&self) -> Result<Vec<OperatorRow>> {
        let pg = self.engine() == Engine::Postgres;
        let sql = if pg {
            "SELECT o.name, o.created_at, o.created_by,
                    CAST(CASE WHEN EXISTS (SELECT 1 FROM pg_roles r WHERE r.rolname = o.name AND r.rolcanlogin)
                         THEN 1 ELSE 0 END AS BIGINT)
             FROM operators o ORDER BY o.name"
        } else {
            "SELECT name, created_at, created_by, 0 FROM operators ORDER BY name"
        };
        self.conn.rows(sql, &[], |r| {
            let role: i64 = r.get(3)?;
            Ok(OperatorRow {
                name: r.get(0)?,
                created_at: r.get(1)?,
                created_by: r.get(2)?,
                role: pg.then_some(role == 1),
            })
        })
    }

    /// Brings `account_access` in line with the settings: who sees each account (owner,
    /// `shared_with`, `*` for an account without an owner). An admin rewrites every row; any
    /// other role only the rows of accounts it owns (policies refuse the rest). Writes only what
    /// differs; returns how many rows changed. SQLite keeps the rows too (for a copy). Accounts
    /// without an owner (`*`) are the admin's to write.
    pub fn refresh_account_access(&self, config: &Config) -> Result<usize> {
        self.conn.tx(|| self.refresh_account_access_in_tx(config))
    }

    /// [`Store::refresh_account_access`] inside a transaction the caller holds: the shared
    /// settings' write (config::shared::publish) refreshes the access rows with the same commit,
    /// so row-level security never reads sharing older than the settings.
    pub fn refresh_account_access_in_tx(&self, config: &Config) -> Result<usize> {
        let role = self.pg_role()?;
        let mut want = access_rows(config);
        if let Some(r) = role.as_ref().filter(|r| !r.admin) {
            let mine: std::collections::HashSet<String> = want
                .iter()
                .filter(|a| a.standing == "owner" && a.operator == r.name)
                .map(|a| a.account_id.clone())
                .collect();
            want.retain(|a| mine.contains(&a.account_id));
        }
        self.write_access(&want, role.as_ref())
    }

    fn write_access(&self, want: &[Access], role: Option<&Role>) -> Result<usize> {
        // Owner rows last when removing, first when adding: a role that is no admin may
        // change an account's rows only while it owns the account (or nobody does).
        let have: Vec<(String, String, String)> = self.conn.rows(
            "SELECT account_id, operator, standing FROM account_access
             ORDER BY account_id, CASE standing WHEN 'owner' THEN 1 ELSE 0 END, operator",
            &[],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )?;
        let mut want = want.to_vec();
        want.sort_by(|a, b| {
            (&a.account_id, a.standing != "owner", &a.operator).cmp(&(
                &b.account_id,
                b.standing != "owner",
                &b.operator,
            ))
        });
        let limited = role.filter(|r| !r.admin).map(|r| r.name.as_str());
        let mut mine: std::collections::HashSet<&str> =
            want.iter().map(|a| a.account_id.as_str()).collect();
        if let Some(me) = limited {
            mine.extend(
                have.iter()
                    .filter(|(_, op, s)| s == "owner" && op == me)
                    .map(|(acct, _, _)| acct.as_str()),
            );
        }
        let mut changed = 0;
        for (acct, op, standing) in &have {
            let keep = want
                .iter()
                .any(|a| &a.account_id == acct && &a.operator == op && a.standing == standing);
            // A role that is no admin leaves accounts it does not own alone.
            if keep || (limited.is_some() && !mine.contains(acct.as_str())) {
                continue;
            }
            changed += self.conn.exec(
                "DELETE FROM account_access WHERE account_id = ?1 AND operator = ?2",
                args![acct, op],
            )? as usize;
        }
        for a in &want {
            let present = have
                .iter()
                .any(|(acct, op, s)| *acct == a.account_id && *op == a.operator && s == a.standing);
            if present {
                continue;
            }
            changed += self.conn.exec(
                "INSERT INTO account_access (account_id, operator, standing) VALUES (?1, ?2, ?3)
                 ON CONFLICT (account_id, operator) DO UPDATE SET standing = excluded.standing",
                args![a.account_id, a.operator, a.standing],
            )? as usize;
        }
        Ok(changed)
    }
}

fn role_error(e: AppError) -> AppError {
    AppError::needs_user(
        "the database refused to manage operator roles",
        e.detail,
        "run this as the installation's admin: a store URL whose user may create roles (CREATEROLE or superuser)",
    )
    .with_code(Code::AccessDenied)
}

#[cfg(test)]
mod tests;
