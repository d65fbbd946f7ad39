//! Sync leases (one syncing process per account, across processes and hosts) and the
//! registry of running daemons (so each takes its fair share of the accounts).
//!
//! A lease names its holder by host id (see `config::host`), pid and a random token, and
//! carries its own expiry, renewed by the holder's process. A holder is alive while its lease
//! has not run out; on the holder's own host id a pid that no longer exists ends it at once.
//! The pid of another host id is never looked at.

use serde::Serialize;

use super::sql::{Engine, Row};
use super::{Store, now};
use crate::args;
use crate::error::Result;

/// Leases written before they carried an expiry: alive while their heartbeat is this fresh.
const LEGACY_STALE_SECS: i64 = 90;

#[derive(Debug, Clone, Serialize)]
pub struct LeaseHolder {
    pub pid: i64,
    pub host: String,
    pub host_id: String,
    pub since: String,
    pub token: String,
    /// When the lease runs out unless renewed (None: written by an older mailroom).
    pub expires_at: Option<String>,
    heartbeat_at: String,
}

impl LeaseHolder {
    /// Who holds it, for a busy message: pid, host (and its host id), since when.
    pub fn who(&self) -> String {
        let id = match self.host_id.as_str() {
            "" => String::new(),
            id => format!(" ({id})"),
        };
        format!("pid {} on {}{id} since {}", self.pid, self.host, self.since)
    }

    /// Whether the holder still counts as syncing at `at` (RFC 3339, the store's format).
    pub fn alive(&self, at: &str) -> bool {
        let same_host = if self.host_id.is_empty() {
            self.host == hostname()
        } else {
            self.host_id == crate::config::host::id()
        };
        if same_host && !process_alive(self.pid) {
            return false;
        }
        match &self.expires_at {
            Some(until) => until.as_str() > at,
            None => chrono::DateTime::parse_from_rfc3339(&self.heartbeat_at)
                .map(|b| {
                    (chrono::Utc::now() - b.with_timezone(&chrono::Utc)).num_seconds()
                        < LEGACY_STALE_SECS
                })
                .unwrap_or(false),
        }
    }
}

const HOLDER_COLS: &str =
    "holder_pid, holder_host, holder_host_id, since, holder_token, expires_at, heartbeat_at";

fn holder(r: &Row<'_>) -> Result<LeaseHolder> {
    Ok(LeaseHolder {
        pid: r.get(0)?,
        host: r.get(1)?,
        host_id: r.get(2)?,
        since: r.get(3)?,
        token: r.get(4)?,
        expires_at: r.get(5)?,
        heartbeat_at: r.get(6)?,
    })
}

/// A running daemon as it registered.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct DaemonRow {
    pub id: String,
    pub host_id: String,
    pub host: String,
    pub pid: i64,
    /// None: no limit.
    pub max_accounts: Option<i64>,
    pub started_at: String,
}

/// `secs` from now, in the store's time format.
pub fn after(secs: i64) -> String {
    (chrono::Utc::now() + chrono::Duration::seconds(secs.clamp(0, 10 * 365 * 86400)))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

impl Store {
    /// Takes the sync lease for an account for `secs`, or reports who holds it (a holder whose
    /// lease ran out, or whose process on this host is gone, is taken over). Taking it again
    /// with the same token renews it.
    pub fn acquire_lease(
        &mut self,
        account_id: &str,
        token: &str,
        secs: i64,
    ) -> Result<std::result::Result<(), LeaseHolder>> {
        self.acquire_lease_in(account_id, token, secs, None)
    }

    /// As `acquire_lease`, the lease renewed with every lease of `group` (`renew_leases`).
    pub fn acquire_lease_in(
        &mut self,
        account_id: &str,
        token: &str,
        secs: i64,
        group: Option<&str>,
    ) -> Result<std::result::Result<(), LeaseHolder>> {
        let pid = std::process::id() as i64;
        let (host, host_id) = (hostname(), crate::config::host::id());
        let c = &self.conn;
        c.tx(|| {
            if c.engine() == Engine::Postgres {
                // SQLite's BEGIN IMMEDIATE lets one taker at a time read and write the lease;
                // PostgreSQL's row locks cannot cover a lease row that does not exist yet, so
                // takers of one account queue on a lock of the transaction instead.
                c.exec(
                    "SELECT pg_advisory_xact_lock(7420018, hashtext(?1))",
                    args![account_id],
                )?;
            }
            let t = now();
            let cur = c.first(
                &format!("SELECT {HOLDER_COLS} FROM leases WHERE account_id = ?1"),
                args![account_id],
                holder,
            )?;
            if let Some(h) = cur
                && h.token != token
                && h.alive(&t)
            {
                return Ok(Err(h));
            }
            c.exec(
                "INSERT INTO leases (account_id, holder_pid, holder_host, holder_host_id, holder_token, holder_group, since, heartbeat_at, expires_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7, ?8)
                 ON CONFLICT(account_id) DO UPDATE SET holder_pid = excluded.holder_pid, holder_host = excluded.holder_host,
                   holder_host_id = excluded.holder_host_id, holder_group = excluded.holder_group,
                   holder_token = excluded.holder_token, since = CASE WHEN leases.holder_token = excluded.holder_token THEN leases.since ELSE excluded.since END,
                   heartbeat_at = excluded.heartbeat_at, expires_at = excluded.expires_at",
                args![account_id, pid, host, host_id, token, group, t, after(secs)],
            )?;
            // Whoever syncs it, the account waits for nothing any more.
            c.exec(
                "UPDATE accounts SET waiting = NULL WHERE id = ?1 AND waiting IS NOT NULL",
                args![account_id],
            )?;
            Ok(Ok(()))
        })
    }

    /// Renews every lease of `group` for `secs` from now; returns how many it holds.
    pub fn renew_leases(&self, group: &str, secs: i64) -> Result<u64> {
        self.conn.exec(
            "UPDATE leases SET heartbeat_at = ?2, expires_at = ?3 WHERE holder_group = ?1",
            args![group, now(), after(secs)],
        )
    }

    pub fn release_lease(&self, account_id: &str, token: &str) -> Result<()> {
        self.conn.exec(
            "DELETE FROM leases WHERE account_id = ?1 AND holder_token = ?2",
            args![account_id, token],
        )?;
        Ok(())
    }

    /// Releases every lease of `group` (a daemon's clean exit).
    pub fn release_leases(&self, group: &str) -> Result<u64> {
        self.conn
            .exec("DELETE FROM leases WHERE holder_group = ?1", args![group])
    }

    pub fn lease_holder(&self, account_id: &str) -> Result<Option<LeaseHolder>> {
        self.conn.first(
            &format!("SELECT {HOLDER_COLS} FROM leases WHERE account_id = ?1"),
            args![account_id],
            holder,
        )
    }

    /// Every account's live holder, by account id (one query: `status` over many accounts).
    pub fn live_leases(&self) -> Result<std::collections::HashMap<String, LeaseHolder>> {
        let t = now();
        let rows = self.conn.rows(
            &format!("SELECT account_id, {HOLDER_COLS} FROM leases"),
            &[],
            |r| {
                let id: String = r.get(0)?;
                let h = LeaseHolder {
                    pid: r.get(1)?,
                    host: r.get(2)?,
                    host_id: r.get(3)?,
                    since: r.get(4)?,
                    token: r.get(5)?,
                    expires_at: r.get(6)?,
                    heartbeat_at: r.get(7)?,
                };
                Ok((id, h))
            },
        )?;
        Ok(rows.into_iter().filter(|(_, h)| h.alive(&t)).collect())
    }

    /// Whether nobody is syncing the account any more: no lease, or one that ran out, or a
    /// holder on this host whose process is gone. A `syncing` state left behind then is
    /// stale: the process died, or it could not record how the pass ended (a full disk
    /// refuses that write too).
    pub fn sync_holder_gone(&self, account_id: &str) -> Result<bool> {
        Ok(match self.lease_holder(account_id)? {
            None => true,
            Some(h) => !h.alive(&now()),
        })
    }

    /// Records why an account nobody syncs waits (None: it does not).
    pub fn set_waiting(&self, account_id: &str, why: Option<&str>) -> Result<()> {
        self.conn.exec(
            "UPDATE accounts SET waiting = ?2 WHERE id = ?1",
            args![account_id, why],
        )?;
        Ok(())
    }

    /// Why each waiting account waits, by account id.
    pub fn waiting(&self) -> Result<std::collections::HashMap<String, String>> {
        Ok(self
            .conn
            .rows(
                "SELECT id, waiting FROM accounts WHERE waiting IS NOT NULL",
                &[],
                |r| Ok((r.get::<String>(0)?, r.get::<String>(1)?)),
            )?
            .into_iter()
            .collect())
    }

    /// Registers (or renews) a running daemon for `secs`; daemons whose registration ran out
    /// are removed on the way.
    pub fn daemon_beat(&self, id: &str, max_accounts: Option<i64>, secs: i64) -> Result<()> {
        let t = now();
        let (pid, host, host_id) = (
            std::process::id() as i64,
            hostname(),
            crate::config::host::id(),
        );
        self.conn.exec(
            "INSERT INTO daemons (id, host_id, host, pid, max_accounts, started_at, expires_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
             ON CONFLICT(id) DO UPDATE SET expires_at = excluded.expires_at, max_accounts = excluded.max_accounts",
            args![id, host_id, host, pid, max_accounts, t, after(secs)],
        )?;
        self.conn
            .exec("DELETE FROM daemons WHERE expires_at <= ?1", args![t])?;
        Ok(())
    }

    pub fn daemon_gone(&self, id: &str) -> Result<()> {
        self.conn
            .exec("DELETE FROM daemons WHERE id = ?1", args![id])?;
        Ok(())
    }

    /// The daemons whose registration has not run out (on this host id, those whose process
    /// still exists), oldest first.
    pub fn live_daemons(&self) -> Result<Vec<DaemonRow>> {
        let t = now();
        let rows = self.conn.rows(
            "SELECT id, host_id, host, pid, max_accounts, started_at FROM daemons WHERE expires_at > ?1 ORDER BY started_at, id",
            args![t],
            |r| {
                Ok(DaemonRow {
                    id: r.get(0)?,
                    host_id: r.get(1)?,
                    host: r.get(2)?,
                    pid: r.get(3)?,
                    max_accounts: r.get(4)?,
                    started_at: r.get(5)?,
                })
            },
        )?;
        let me = crate::config::host::id();
        Ok(rows
            .into_iter()
            .filter(|d| d.host_id != me || process_alive(d.pid))
            .collect())
    }
}

pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "localhost".into())
}

/// Whether a process with this pid exists on this host.
pub fn process_alive(pid: i64) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

#[cfg(test)]
mod tests {
    use crate::store::testing;

    #[test]
    fn lease_is_exclusive_until_released_or_run_out() {
        testing::each(|s| {
            s.insert_account("a1", "work", true).unwrap();
            assert!(s.acquire_lease("a1", "tok1", 60).unwrap().is_ok());
            // Same process, other token: our pid is alive, so the lease is held.
            let held = s.acquire_lease("a1", "tok2", 60).unwrap().unwrap_err();
            assert_eq!(held.pid, std::process::id() as i64);
            assert_eq!(held.token, "tok1");
            assert_eq!(held.host_id, crate::config::host::id());
            s.release_lease("a1", "tok1").unwrap();
            assert!(s.acquire_lease("a1", "tok2", 60).unwrap().is_ok());
            // A lease that ran out is taken over, and the waiting note goes with it.
            s.set_waiting("a1", Some("waiting for a sync slot"))
                .unwrap();
            assert_eq!(s.waiting().unwrap().len(), 1);
            s.conn
                .exec("UPDATE leases SET expires_at = '2000-01-01T00:00:00Z'", &[])
                .unwrap();
            assert!(s.live_leases().unwrap().is_empty());
            assert!(s.acquire_lease("a1", "tok3", 60).unwrap().is_ok());
            assert_eq!(s.lease_holder("a1").unwrap().unwrap().token, "tok3");
            assert!(s.waiting().unwrap().is_empty());
            assert_eq!(s.live_leases().unwrap()["a1"].token, "tok3");
        });
    }

    #[test]
    fn a_pid_decides_only_on_the_same_host_id() {
        testing::each(|s| {
            s.insert_account("a1", "work", true).unwrap();
            assert!(s.sync_holder_gone("a1").unwrap(), "no lease");
            assert!(s.acquire_lease("a1", "tok1", 60).unwrap().is_ok());
            assert!(!s.sync_holder_gone("a1").unwrap(), "held by this process");
            // A pid above the kernel's maximum (4194304) never exists.
            s.conn
                .exec("UPDATE leases SET holder_pid = 99999999", &[])
                .unwrap();
            assert!(s.sync_holder_gone("a1").unwrap(), "holder died");
            // Another host id (the same hostname, say two containers): its pid means nothing
            // here, only the expiry counts.
            s.conn
                .exec("UPDATE leases SET holder_host_id = 'h-elsewhere'", &[])
                .unwrap();
            assert!(!s.sync_holder_gone("a1").unwrap(), "runs until it runs out");
            assert!(s.acquire_lease("a1", "tok2", 60).unwrap().is_err());
        });
    }

    #[test]
    fn groups_renew_and_release_together_and_daemons_run_out() {
        testing::each(|s| {
            for id in ["a", "b"] {
                s.insert_account(id, id, true).unwrap();
                assert!(
                    s.acquire_lease_in(id, &format!("t{id}"), 1, Some("g1"))
                        .unwrap()
                        .is_ok()
                );
            }
            assert_eq!(s.renew_leases("g1", 60).unwrap(), 2);
            assert_eq!(s.renew_leases("g2", 60).unwrap(), 0);
            assert_eq!(s.live_leases().unwrap().len(), 2);
            assert_eq!(s.release_leases("g1").unwrap(), 2);
            assert!(s.lease_holder("a").unwrap().is_none());

            s.daemon_beat("d1", Some(2), 60).unwrap();
            s.daemon_beat("d2", None, 60).unwrap();
            let live = s.live_daemons().unwrap();
            assert_eq!(live.len(), 2);
            assert_eq!(
                live.iter().find(|d| d.id == "d1").unwrap().max_accounts,
                Some(2)
            );
            s.conn
                .exec(
                    "UPDATE daemons SET expires_at = '2000-01-01T00:00:00Z' WHERE id = 'd2'",
                    &[],
                )
                .unwrap();
            assert_eq!(s.live_daemons().unwrap().len(), 1);
            s.daemon_beat("d1", Some(2), 60).unwrap();
            s.daemon_gone("d1").unwrap();
            assert!(s.live_daemons().unwrap().is_empty());
        });
    }
}
