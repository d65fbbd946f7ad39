//! Accounts' state rows, sealed credentials and sync leases.

use serde::Serialize;

use super::sql::Row;
use super::{Store, now};
use crate::args;
use crate::error::{AppError, Result};

/// One model for status, the console and the DB (see the contract).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AccountState {
    Disabled,
    Pending,
    Idle,
    Syncing,
    Degraded,
    Disconnected,
    Error,
}

impl AccountState {
    pub fn as_str(self) -> &'static str {
        match self {
            AccountState::Disabled => "disabled",
            AccountState::Pending => "pending",
            AccountState::Idle => "idle",
            AccountState::Syncing => "syncing",
            AccountState::Degraded => "degraded",
            AccountState::Disconnected => "disconnected",
            AccountState::Error => "error",
        }
    }
    pub fn parse(s: &str) -> AccountState {
        match s {
            "disabled" => AccountState::Disabled,
            "idle" => AccountState::Idle,
            "syncing" => AccountState::Syncing,
            "degraded" => AccountState::Degraded,
            "disconnected" => AccountState::Disconnected,
            "error" => AccountState::Error,
            _ => AccountState::Pending,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ErrorInfo {
    pub at: String,
    pub what: String,
    pub fix: String,
}

#[derive(Debug, Clone)]
pub struct AccountRow {
    pub id: String,
    pub name: String,
    pub state: AccountState,
    pub state_since: String,
    pub last_success_at: Option<String>,
    pub failing_since: Option<String>,
    pub last_error: Option<ErrorInfo>,
    pub progress: Option<(String, i64, i64)>,
    pub runs_total: i64,
    pub runs_ok: i64,
    pub last_duration_ms: Option<i64>,
    pub bytes_total: i64,
    pub messages_total: i64,
    pub capabilities: Option<String>,
}

const ACCOUNT_COLS: &str = "id, name, state, state_since, last_success_at, failing_since, last_error_at, last_error_what, last_error_fix, progress_folder, progress_done, progress_total, runs_total, runs_ok, last_duration_ms, bytes_total, messages_total, capabilities";

fn account_row(r: &Row<'_>) -> Result<AccountRow> {
    let err_at: Option<String> = r.get(6)?;
    let last_error = match err_at {
        Some(at) => Some(ErrorInfo {
            at,
            what: r.get::<Option<String>>(7)?.unwrap_or_default(),
            fix: r.get::<Option<String>>(8)?.unwrap_or_default(),
        }),
        None => None,
    };
    let pf: Option<String> = r.get(9)?;
    Ok(AccountRow {
        id: r.get(0)?,
        name: r.get(1)?,
        state: AccountState::parse(&r.get::<String>(2)?),
        state_since: r.get(3)?,
        last_success_at: r.get(4)?,
        failing_since: r.get(5)?,
        last_error,
        progress: pf.map(|f| {
            (
                f,
                r.get::<Option<i64>>(10).ok().flatten().unwrap_or(0),
                r.get::<Option<i64>>(11).ok().flatten().unwrap_or(0),
            )
        }),
        runs_total: r.get(12)?,
        runs_ok: r.get(13)?,
        last_duration_ms: r.get(14)?,
        bytes_total: r.get(15)?,
        messages_total: r.get(16)?,
        capabilities: r.get(17)?,
    })
}

impl Store {
    pub fn insert_account(&self, id: &str, name: &str, enabled: bool) -> Result<()> {
        let t = now();
        let state = if enabled {
            AccountState::Pending
        } else {
            AccountState::Disabled
        };
        self.conn.exec(
            "INSERT INTO accounts (id, name, created_at, state, state_since) VALUES (?1, ?2, ?3, ?4, ?3)
             ON CONFLICT(id) DO UPDATE SET name = excluded.name",
            args![id, name, t, state.as_str()],
        )?;
        Ok(())
    }

    pub fn rename_account(&self, id: &str, name: &str) -> Result<()> {
        self.conn.exec(
            "UPDATE accounts SET name = ?2 WHERE id = ?1",
            args![id, name],
        )?;
        Ok(())
    }

    pub fn account(&self, id: &str) -> Result<Option<AccountRow>> {
        self.conn.first(
            &format!("SELECT {ACCOUNT_COLS} FROM accounts WHERE id = ?1"),
            args![id],
            account_row,
        )
    }

    pub fn accounts(&self) -> Result<Vec<AccountRow>> {
        self.conn.rows(
            &format!("SELECT {ACCOUNT_COLS} FROM accounts ORDER BY name"),
            &[],
            account_row,
        )
    }

    /// Removes the account's server-derived data. `purge` also removes its credentials, outbox,
    /// and the account row; pairings (matches with rule manual), actions and the audit log stay.
    pub fn remove_account_data(&mut self, id: &str, purge: bool) -> Result<()> {
        let c = &self.conn;
        c.tx(|| {
            // Logical messages that only this account references go; shared ones keep other locations.
            c.exec("DELETE FROM locations WHERE account_id = ?1", args![id])?;
            c.exec("DELETE FROM folders WHERE account_id = ?1", args![id])?;
            c.exec(
                "DELETE FROM messages WHERE id NOT IN (SELECT message_id FROM locations)
                   AND id NOT IN (SELECT message_id FROM matches WHERE rule = 'manual')
                   AND id NOT IN (SELECT message_id FROM actions WHERE message_id IS NOT NULL)",
                &[],
            )?;
            c.exec("DELETE FROM pending_ops WHERE account_id = ?1", args![id])?;
            c.exec("DELETE FROM quarantine WHERE account_id = ?1", args![id])?;
            c.exec("DELETE FROM leases WHERE account_id = ?1", args![id])?;
            if purge {
                c.exec("DELETE FROM credentials WHERE account_id = ?1", args![id])?;
                c.exec("DELETE FROM oauth_state WHERE account_id = ?1", args![id])?;
                c.exec("DELETE FROM accounts WHERE id = ?1", args![id])?;
            }
            Ok(())
        })
    }

    pub fn set_state(&self, id: &str, state: AccountState) -> Result<()> {
        self.conn.exec(
            "UPDATE accounts SET state = ?2, state_since = CASE WHEN state = ?2 THEN state_since ELSE ?3 END WHERE id = ?1",
            args![id, state.as_str(), now()],
        )?;
        Ok(())
    }

    /// A sync pass finished well: clear the failure clock and the last error (no longer
    /// current; it stays in the events log).
    pub fn record_success(
        &self,
        id: &str,
        duration_ms: i64,
        bytes: i64,
        messages: i64,
    ) -> Result<()> {
        self.conn.exec(
            "UPDATE accounts SET state = 'idle', state_since = CASE WHEN state = 'idle' THEN state_since ELSE ?2 END,
               last_success_at = ?2, failing_since = NULL,
               last_error_at = NULL, last_error_what = NULL, last_error_fix = NULL, runs_total = runs_total + 1, runs_ok = runs_ok + 1,
               last_duration_ms = ?3, bytes_total = bytes_total + ?4, messages_total = messages_total + ?5,
               progress_folder = NULL, progress_done = NULL, progress_total = NULL
             WHERE id = ?1",
            args![id, now(), duration_ms, bytes, messages],
        )?;
        Ok(())
    }

    /// A pass failed: set the state, start the give-up clock if not running, remember the error.
    pub fn record_failure(&self, id: &str, state: AccountState, err: &AppError) -> Result<()> {
        let t = now();
        self.conn.exec(
            "UPDATE accounts SET state = ?2, state_since = CASE WHEN state = ?2 THEN state_since ELSE ?3 END,
               failing_since = COALESCE(failing_since, ?3), runs_total = runs_total + 1,
               last_error_at = ?3, last_error_what = ?4, last_error_fix = ?5,
               progress_folder = NULL, progress_done = NULL, progress_total = NULL
             WHERE id = ?1",
            args![id, state.as_str(), t, format_what(err), err.fix],
        )?;
        Ok(())
    }

    /// The user acted (new password, enable): forget the give-up clock so retries start again.
    pub fn reset_failures(&self, id: &str, enabled: bool) -> Result<()> {
        let state = if enabled { "pending" } else { "disabled" };
        self.conn.exec(
            "UPDATE accounts SET failing_since = NULL, state = ?2, state_since = ?3 WHERE id = ?1",
            args![id, state, now()],
        )?;
        Ok(())
    }

    pub fn set_progress(&self, id: &str, folder: &str, done: i64, total: i64) -> Result<()> {
        self.conn.exec(
            "UPDATE accounts SET progress_folder = ?2, progress_done = ?3, progress_total = ?4 WHERE id = ?1",
            args![id, folder, done, total],
        )?;
        Ok(())
    }

    pub fn set_capabilities(&self, id: &str, caps: &str) -> Result<()> {
        self.conn.exec(
            "UPDATE accounts SET capabilities = ?2 WHERE id = ?1",
            args![id, caps],
        )?;
        Ok(())
    }

    /// (messages, unread) as visible in this account's locations.
    /// The bodies stored for the account's mail (count, bytes), as last counted; (0, 0) on a
    /// database from before the bodies table (`status` reads a database without migrating it).
    pub fn account_bodies(&self, id: &str) -> Result<(i64, i64)> {
        let r = self.conn.first(
            "SELECT COALESCE(bodies_count, 0), COALESCE(bodies_bytes, 0) FROM accounts WHERE id = ?1",
            args![id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        );
        match r {
            Ok(v) => Ok(v.unwrap_or((0, 0))),
            // SQLite: "no such column"; PostgreSQL: "column … does not exist".
            Err(e)
                if e.to_string().contains("no such column")
                    || e.detail.contains("does not exist") =>
            {
                Ok((0, 0))
            }
            Err(e) => Err(e),
        }
    }

    /// Messages and unread messages of the account (kept per account: `account_counts`).
    pub fn account_counts(&self, id: &str) -> Result<(i64, i64)> {
        let c = self.maintained_counts(id)?;
        Ok((c.messages, c.unread))
    }

    pub fn set_credential(&self, account_id: &str, kind: &str, sealed: &str) -> Result<()> {
        self.conn.exec(
            "INSERT INTO credentials (account_id, kind, sealed, updated_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT(account_id, kind) DO UPDATE SET sealed = excluded.sealed, updated_at = excluded.updated_at",
            args![account_id, kind, sealed, now()],
        )?;
        Ok(())
    }

    pub fn delete_credential(&self, account_id: &str, kind: &str) -> Result<()> {
        self.conn.exec(
            "DELETE FROM credentials WHERE account_id = ?1 AND kind = ?2",
            args![account_id, kind],
        )?;
        Ok(())
    }

    pub fn credential(&self, account_id: &str, kind: &str) -> Result<Option<String>> {
        self.conn.first(
            "SELECT sealed FROM credentials WHERE account_id = ?1 AND kind = ?2",
            args![account_id, kind],
            |r| r.get(0),
        )
    }
}

fn format_what(err: &AppError) -> String {
    if err.detail.is_empty() {
        err.summary.clone()
    } else {
        format!("{}: {}", err.summary, err.detail)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing;

    #[test]
    fn failure_then_success_resets_clock() {
        testing::each(|s| {
            s.insert_account("a1", "work", true).unwrap();
            s.set_progress("a1", "INBOX", 3, 10).unwrap();
            assert_eq!(
                s.account("a1").unwrap().unwrap().progress,
                Some(("INBOX".into(), 3, 10))
            );
            s.record_failure(
                "a1",
                AccountState::Degraded,
                &AppError::transient("connect failed", "refused", "start the server"),
            )
            .unwrap();
            let row = s.account("a1").unwrap().unwrap();
            assert_eq!(row.state, AccountState::Degraded);
            assert!(row.failing_since.is_some());
            assert_eq!(row.last_error.as_ref().unwrap().fix, "start the server");
            assert_eq!(
                row.last_error.as_ref().unwrap().what,
                "connect failed: refused"
            );
            assert_eq!(row.progress, None);
            s.record_success("a1", 10, 100, 5).unwrap();
            let row = s.account("a1").unwrap().unwrap();
            assert_eq!(row.state, AccountState::Idle);
            assert!(row.failing_since.is_none());
            assert!(row.last_error.is_none(), "no longer current");
            assert_eq!((row.runs_total, row.runs_ok), (2, 1));
            assert_eq!((row.bytes_total, row.messages_total), (100, 5));
            assert_eq!(row.last_duration_ms, Some(10));
        });
    }

    #[test]
    fn accounts_credentials_and_removal() {
        testing::each(|s| {
            s.insert_account("b", "zeta", true).unwrap();
            s.insert_account("a", "alpha", false).unwrap();
            // Adding again keeps the state and takes the new name.
            s.insert_account("a", "alpha2", true).unwrap();
            let names: Vec<(String, AccountState)> = s
                .accounts()
                .unwrap()
                .into_iter()
                .map(|a| (a.name, a.state))
                .collect();
            assert_eq!(
                names,
                [
                    ("alpha2".to_string(), AccountState::Disabled),
                    ("zeta".to_string(), AccountState::Pending)
                ]
            );
            s.rename_account("b", "beta").unwrap();
            s.set_capabilities("b", "IMAP4rev1 IDLE").unwrap();
            let b = s.account("b").unwrap().unwrap();
            assert_eq!(b.name, "beta");
            assert_eq!(b.capabilities.as_deref(), Some("IMAP4rev1 IDLE"));
            s.set_state("b", AccountState::Syncing).unwrap();
            s.reset_failures("b", false).unwrap();
            assert_eq!(
                s.account("b").unwrap().unwrap().state,
                AccountState::Disabled
            );
            assert!(s.account("nope").unwrap().is_none());

            s.set_credential("b", "imap", "sealed1").unwrap();
            s.set_credential("b", "imap", "sealed2").unwrap();
            assert_eq!(
                s.credential("b", "imap").unwrap().as_deref(),
                Some("sealed2")
            );
            assert_eq!(s.credential("b", "smtp").unwrap(), None);
            s.delete_credential("b", "imap").unwrap();
            assert_eq!(s.credential("b", "imap").unwrap(), None);

            assert_eq!(s.account_counts("b").unwrap(), (0, 0));
            s.set_credential("b", "smtp", "sealed").unwrap();
            assert!(s.acquire_lease("b", "t", 60).unwrap().is_ok());
            s.remove_account_data("b", false).unwrap();
            assert!(s.account("b").unwrap().is_some(), "history only");
            assert!(s.lease_holder("b").unwrap().is_none());
            assert_eq!(
                s.credential("b", "smtp").unwrap().as_deref(),
                Some("sealed")
            );
            s.remove_account_data("b", true).unwrap();
            assert!(s.account("b").unwrap().is_none());
            assert_eq!(s.credential("b", "smtp").unwrap(), None);
        });
    }
}
