//! `mailroom operator add|list|remove` and who the operator of a connection is (contract:
//! Operators; issue 18).
//!
//! On PostgreSQL an operator is a login role of its own: the admin (a role that may create
//! roles, normally the owner of the tables) adds it, and row-level security limits it to the
//! accounts it owns, those shared with it and those without an owner — also through plain SQL.
//! There the operator *is* the connection's role: a different `--operator` is refused. The admin
//! keeps full access and may still label its actions with `--operator`. On SQLite an operator is
//! a name (a label) and the file is no security boundary.

use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;

use super::Ctx;
use crate::error::{AppError, Code, Result};
use crate::store::roles::OperatorRow;

/// Where a new operator's password comes from.
#[derive(Debug, Clone)]
pub enum PasswordSource {
    /// One line on stdin.
    Stdin,
    /// The first line a command prints.
    Command(String),
    /// Made up here, written to a password file (0600) for the admin to hand over.
    Generate,
}

/// What `operator add` did and how the operator connects.
#[derive(Debug, Clone, Serialize)]
pub struct Added {
    pub name: String,
    /// `sqlite` or `postgres`.
    pub engine: &'static str,
    /// The operator's store URL (its own user; no password), on PostgreSQL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub store_url: Option<String>,
    /// The password file written for the operator (a generated password), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pgpass: Option<String>,
    /// The line the operator's PGPASSFILE needs, the password left out.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pgpass_line: Option<String>,
    pub note: String,
}

/// Adds an operator: on PostgreSQL its login role with the grants operators need (an admin's
/// connection); on SQLite its name.
pub fn add(cx: &Ctx, name: &str, password: &PasswordSource) -> Result<Added> {
    crate::store::roles::check_role_name(name)?;
    let store = cx.store()?;
    let Some(role) = store.pg_role()? else {
        store.add_operator(name, None, &cx.operator)?;
        audit(cx, &store, "operator_add", name)?;
        return Ok(Added {
            name: name.into(),
            engine: "sqlite",
            store_url: None,
            pgpass: None,
            pgpass_line: None,
            note: "recorded as a name only: on SQLite anyone who can read the database file reads everything (not a security boundary); use a PostgreSQL store for that".into(),
        });
    };
    if !role.admin {
        return Err(not_admin(&role.name, "add operators"));
    }
    let url = cx.db()?.url().display();
    let target = Target::parse(&url, name)?;
    let (secret, file) = match password {
        PasswordSource::Stdin => (crate::secret::read_password_stdin()?, None),
        PasswordSource::Command(c) => (crate::secret::run_password_command(c)?, None),
        PasswordSource::Generate => {
            let pw = generate();
            let path = cx
                .home
                .root
                .join("operators")
                .join(format!("{name}.pgpass"));
            (pw, Some(path))
        }
    };
    store.add_operator(name, Some(secret.expose_secret()), &cx.operator)?;
    if let Some(path) = &file {
        write_pgpass(path, &target.pgpass_line(Some(secret.expose_secret())))?;
    }
    audit(cx, &store, "operator_add", name)?;
    Ok(Added {
        name: name.into(),
        engine: "postgres",
        store_url: Some(target.url.clone()),
        pgpass: file.map(|p| p.display().to_string()),
        pgpass_line: Some(target.pgpass_line(None)),
        note: format!(
            "{name} connects with --store {} (or [store] url) and the password in its PGPASSFILE; row-level security shows it only the accounts it owns, those shared with it and those without an owner",
            target.url
        ),
    })
}

/// The operators added, by name.
pub fn list(cx: &Ctx) -> Result<Vec<OperatorRow>> {
    cx.store()?.operators()
}

/// Removes an operator (its role too, on PostgreSQL: an admin's connection).
pub fn remove(cx: &Ctx, name: &str) -> Result<()> {
    let store = cx.store()?;
    if let Some(role) = store.pg_role()?
        && !role.admin
    {
        return Err(not_admin(&role.name, "remove operators"));
    }
    store.remove_operator(name)?;
    let file = cx
        .home
        .root
        .join("operators")
        .join(format!("{name}.pgpass"));
    let _ = std::fs::remove_file(file);
    audit(cx, &store, "operator_remove", name)
}

/// Who acts, given `--operator` (None: not given) and the default label. On PostgreSQL with a
/// role that is no admin, the role: a different `--operator` is refused. Otherwise the label.
pub fn resolve(cx: &Ctx, explicit: Option<&str>, default: String) -> Result<String> {
    let role = cx.store()?.pg_role()?;
    match role {
        Some(r) if !r.admin => match explicit {
            Some(op) if op != r.name => Err(mismatch(op, &r.name)),
            _ => Ok(r.name),
        },
        _ => Ok(explicit.map(str::to_string).unwrap_or(default)),
    }
}

/// The refusal of `--operator X` on a connection as role Y.
pub fn mismatch(asked: &str, role: &str) -> AppError {
    AppError::needs_user(
        format!("--operator {asked} does not match this connection's database role {role}"),
        "on PostgreSQL the operator is the role the store URL connects as",
        format!(
            "leave out --operator (and MAILROOM_OPERATOR) to act as {role}, or connect as {asked}: a store URL with user {asked} and its password in PGPASSFILE"
        ),
    )
    .with_code(Code::OperatorMismatch)
}

fn not_admin(role: &str, what: &str) -> AppError {
    AppError::needs_user(
        format!("operator {role} may not {what}"),
        "only the installation's admin (the role that owns the tables) manages operators",
        "run this with the admin's store URL",
    )
    .with_code(Code::AccessDenied)
}

fn audit(cx: &Ctx, store: &crate::store::Store, action: &str, name: &str) -> Result<()> {
    store
        .audit(
            &cx.operator,
            action,
            None,
            Some(&format!("operator {name}")),
            &serde_json::json!({}),
        )
        .map(|_| ())
}

/// A password of 32 letters and digits.
fn generate() -> SecretString {
    use rand::Rng;
    const CHARS: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    let mut rng = rand::rng();
    let pw: String = (0..32)
        .map(|_| CHARS[rng.random_range(0..CHARS.len())] as char)
        .collect();
    SecretString::from(pw)
}

fn write_pgpass(path: &std::path::Path, line: &str) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| io_error(dir, e))?;
    }
    crate::config::write_atomic(path, format!("{line}\n").as_bytes(), 0o600)
}

fn io_error(path: &std::path::Path, e: std::io::Error) -> AppError {
    AppError::local(
        format!("cannot write {}", path.display()),
        e.to_string(),
        "check the home's permissions",
    )
    .with_code(Code::IoFailed)
}

/// The admin's store URL taken apart, for the operator's.
struct Target {
    url: String,
    host: String,
    port: String,
    db: String,
    user: String,
}

impl Target {
    /// `postgres://ADMIN@HOST:PORT/DB?x` → `postgres://NAME@HOST:PORT/DB?x`.
    fn parse(url: &str, name: &str) -> Result<Target> {
        let bad = || {
            AppError::usage(
                format!("{url:?} is not a PostgreSQL URL"),
                "write it as postgres://USER@HOST:PORT/DATABASE",
            )
        };
        let (scheme, rest) = url.split_once("://").ok_or_else(bad)?;
        let rest = rest.rsplit_once('@').map_or(rest, |(_, r)| r);
        let (hostport, tail) = rest.split_once('/').unwrap_or((rest, ""));
        let db = tail.split('?').next().unwrap_or("").to_string();
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), p.to_string()),
            None => (hostport.to_string(), "5432".to_string()),
        };
        Ok(Target {
            url: format!("{scheme}://{name}@{rest}"),
            host: if host.is_empty() {
                "localhost".into()
            } else {
                host
            },
            port,
            db: if db.is_empty() { name.to_string() } else { db },
            user: name.to_string(),
        })
    }

    /// `HOST:PORT:DB:USER:PASSWORD` (`PASSWORD` spelled out when `None`).
    fn pgpass_line(&self, password: Option<&str>) -> String {
        let esc = |s: &str| s.replace('\\', "\\\\").replace(':', "\\:");
        format!(
            "{}:{}:{}:{}:{}",
            esc(&self.host),
            esc(&self.port),
            esc(&self.db),
            esc(&self.user),
            password.map(esc).unwrap_or_else(|| "PASSWORD".into())
        )
    }
}

/// After the settings changed: on PostgreSQL, who sees each account follows them
/// (`account_access`, what row-level security reads). Nothing on SQLite.
pub fn settings_changed(cx: &Ctx) -> Result<()> {
    let config = cx.config()?;
    let store = cx.store()?;
    if store.engine() == crate::store::sql::Engine::Postgres {
        store.refresh_account_access(&config)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operator_url_and_pgpass_line() {
        let t = Target::parse(
            "postgres://admin@db.example:6543/team?sslmode=require",
            "ann",
        )
        .unwrap();
        assert_eq!(t.url, "postgres://ann@db.example:6543/team?sslmode=require");
        assert_eq!(t.pgpass_line(None), "db.example:6543:team:ann:PASSWORD");
        assert_eq!(
            t.pgpass_line(Some("a:b\\c")),
            "db.example:6543:team:ann:a\\:b\\\\c"
        );
        let t = Target::parse("postgresql://h/d", "bo").unwrap();
        assert_eq!(
            (t.url.as_str(), t.port.as_str()),
            ("postgresql://bo@h/d", "5432")
        );
    }

    #[test]
    fn generated_passwords_differ() {
        assert_ne!(
            generate().expose_secret().to_string(),
            generate().expose_secret().to_string()
        );
        assert_eq!(generate().expose_secret().len(), 32);
    }

    #[test]
    fn on_sqlite_the_label_stands() {
        let (_dir, cx) = crate::ops::testing::alice_and_eve();
        assert_eq!(resolve(&cx, Some("bob"), "x".into()).unwrap(), "bob");
        assert_eq!(resolve(&cx, None, "x".into()).unwrap(), "x");
        let added = add(&cx, "bob", &PasswordSource::Generate).unwrap();
        assert_eq!(added.engine, "sqlite");
        assert!(added.note.contains("not a security boundary"));
        assert_eq!(list(&cx).unwrap().len(), 1);
        remove(&cx, "bob").unwrap();
        assert!(list(&cx).unwrap().is_empty());
    }
}
