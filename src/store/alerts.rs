//! Alerts: the events raised (`alert_events`), their deliveries per channel with retries and a
//! claim (`alert_deliveries`), the failure state last raised and the quiet window per account
//! (`alert_accounts`), and which channels were told an account fails (`alert_told`). What to
//! raise, route and deliver is decided in `alerts/`; this file only reads and writes.

use serde::Serialize;

use super::sql::{Conn, Engine, Owned, Row, owned_args};
use super::{Store, now};
use crate::args;
use crate::error::Result;

/// An event as stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AlertEventRow {
    pub id: i64,
    pub account_id: Option<String>,
    pub event: String,
    pub state: Option<String>,
    pub at: String,
    pub what: String,
    pub fix: String,
    pub code: Option<String>,
    pub status: String,
    pub digest_id: Option<i64>,
}

/// An event to store.
#[derive(Debug, Clone)]
pub struct NewAlertEvent<'a> {
    pub account_id: Option<&'a str>,
    pub event: &'a str,
    pub state: Option<&'a str>,
    pub what: String,
    pub fix: &'a str,
    pub code: Option<&'a str>,
}

/// A delivery due (or claimed).
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryRow {
    pub id: i64,
    pub event_id: i64,
    pub account_id: Option<String>,
    pub channel: u32,
    pub payload: String,
    pub attempts: i64,
    pub created_at: String,
}

/// How a delivery attempt ended.
#[derive(Debug, Clone)]
pub enum Finish {
    Delivered {
        result: String,
        output: Option<String>,
    },
    /// Failed; tried again at `next_at`.
    Retry { next_at: String, failure: Failure },
    /// Failed for the last time.
    GaveUp { failure: Failure },
    /// Its channel is gone: nothing to deliver to.
    Cancelled { why: String },
}

#[derive(Debug, Clone)]
pub struct Failure {
    pub result: String,
    pub output: Option<String>,
    pub what: String,
    pub fix: String,
    pub code: String,
}

/// The last attempt of a channel's deliveries.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct LastDelivery {
    pub at: String,
    /// delivered | retrying | failed
    pub state: String,
    pub result: Option<String>,
    pub error: Option<String>,
    pub fix: Option<String>,
    pub code: Option<String>,
}

/// A failed delivery, for the dashboard and `status`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct AlertFailure {
    pub at: String,
    pub channel: u32,
    pub what: String,
    pub fix: String,
    pub code: String,
}

/// Alerts that did not get out: retrying, or given up since their channel last delivered.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct AlertSummary {
    pub undelivered: i64,
    pub last_error: Option<AlertFailure>,
}

const EVENT_COLS: &str = "id, account_id, event, state, at, what, fix, code, status, digest_id";

fn event_row(r: &Row<'_>) -> Result<AlertEventRow> {
    Ok(AlertEventRow {
        id: r.get(0)?,
        account_id: r.get(1)?,
        event: r.get(2)?,
        state: r.get(3)?,
        at: r.get(4)?,
        what: r.get(5)?,
        fix: r.get(6)?,
        code: r.get(7)?,
        status: r.get(8)?,
        digest_id: r.get(9)?,
    })
}

fn insert_event(conn: &Conn, e: &NewAlertEvent<'_>, status: &str) -> Result<i64> {
    conn.one(
        "INSERT INTO alert_events (account_id, event, state, at, what, fix, code, status)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) RETURNING id",
        args![
            e.account_id,
            e.event,
            e.state,
            now(),
            e.what,
            e.fix,
            e.code,
            status
        ],
        |r| r.get(0),
    )
}

/// `?` marks for a list, and its values.
fn list(ids: &[String]) -> (String, Vec<Owned>) {
    if ids.is_empty() {
        return ("NULL".into(), Vec::new());
    }
    (
        vec!["?"; ids.len()].join(","),
        ids.iter().map(|a| Owned::Text(a.clone())).collect(),
    )
}

impl Store {
    /// Queues an event (outbox and quarantine events: each is its own transition).
    pub fn alert_raise(&self, e: &NewAlertEvent<'_>) -> Result<i64> {
        insert_event(&self.conn, e, "new")
    }

    /// Records the failure state of an account for alerts (None: healthy). When it differs
    /// from the one recorded last, the event `make(previous)` gives is queued in the same
    /// transaction: one alert per transition, never one per retry. Returns the event's id.
    pub fn alert_transition<'a>(
        &self,
        account_id: &str,
        failing: Option<&str>,
        make: impl FnOnce(Option<&str>) -> Option<NewAlertEvent<'a>>,
    ) -> Result<Option<i64>> {
        // IMMEDIATE: read and write under one write lock (a deferred read that upgrades can
        // be refused outright under a concurrent writer, and the alert would be lost). On
        // PostgreSQL the row lock (FOR UPDATE on an existing row; the insert's conflict on a
        // new one) keeps two processes from both seeing the old state.
        let lock = match self.engine() {
            Engine::Sqlite => "",
            Engine::Postgres => " FOR UPDATE",
        };
        self.conn.tx(|| {
            let prev: Option<String> = self
                .conn
                .first(
                    &format!("SELECT failing FROM alert_accounts WHERE account_id = ?1{lock}"),
                    args![account_id],
                    |r| r.get(0),
                )?
                .flatten();
            if prev.as_deref() == failing {
                return Ok(None);
            }
            self.conn.exec(
                "INSERT INTO alert_accounts (account_id, failing) VALUES (?1, ?2)
                 ON CONFLICT(account_id) DO UPDATE SET failing = excluded.failing",
                args![account_id, failing],
            )?;
            match make(prev.as_deref()) {
                Some(e) => Ok(Some(insert_event(&self.conn, &e, "new")?)),
                None => Ok(None),
            }
        })
    }

    /// Runs routing decisions for one account in one IMMEDIATE transaction, so two processes
    /// never route the same event.
    pub fn alert_route<T>(&mut self, f: impl FnOnce(&AlertTx<'_>) -> Result<T>) -> Result<T> {
        self.conn.tx(|| f(&AlertTx { conn: &self.conn }))
    }

    /// The accounts whose sync lease this process holds: whose alerts it routes and delivers.
    pub fn alert_leased_accounts(&self) -> Result<Vec<String>> {
        self.conn.rows(
            "SELECT account_id FROM leases WHERE holder_pid = ?1 AND holder_host_id = ?2 ORDER BY account_id",
            args![std::process::id(), crate::config::host::id()],
            |r| r.get(0),
        )
    }

    /// Of `accounts`, those with events not routed yet or held back.
    pub fn alert_accounts_open(&self, accounts: &[String]) -> Result<Vec<String>> {
        let (marks, args) = list(accounts);
        self.conn.rows(
            &format!(
                "SELECT DISTINCT account_id FROM alert_events
                 WHERE status IN ('new', 'held') AND account_id IN ({marks}) ORDER BY account_id"
            ),
            &owned_args(&args),
            |r| r.get(0),
        )
    }

    /// Deliveries of `accounts` that are due now and claimed by nobody alive, oldest first.
    pub fn alert_due(&self, accounts: &[String], limit: i64) -> Result<Vec<DeliveryRow>> {
        let (marks, mut args) = list(accounts);
        args.push(Owned::Text(now()));
        args.push(Owned::Int(limit));
        let (t, l) = (args.len() - 1, args.len());
        // The list's marks are numbered too: one statement never mixes `?` and `?N`.
        let marks = if accounts.is_empty() {
            marks
        } else {
            (1..=accounts.len())
                .map(|i| format!("?{i}"))
                .collect::<Vec<_>>()
                .join(",")
        };
        self.conn.rows(
            &format!(
            "SELECT id, event_id, account_id, channel, payload, attempts, created_at FROM alert_deliveries
             WHERE state = 'pending' AND account_id IN ({marks}) AND next_at <= ?{t}
               AND (claim IS NULL OR claim_until < ?{t})
             ORDER BY id LIMIT ?{l}"
            ),
            &owned_args(&args),
            |r| {
                Ok(DeliveryRow {
                    id: r.get(0)?,
                    event_id: r.get(1)?,
                    account_id: r.get(2)?,
                    channel: r.get(3)?,
                    payload: r.get(4)?,
                    attempts: r.get(5)?,
                    created_at: r.get(6)?,
                })
            },
        )
    }

    /// Claims a due delivery for this process until `until`; false when another took it.
    pub fn alert_claim(&self, id: i64, claim: &str, until: &str) -> Result<bool> {
        let n = self.conn.exec(
            "UPDATE alert_deliveries SET claim = ?2, claim_until = ?3
             WHERE id = ?1 AND state = 'pending' AND (claim IS NULL OR claim_until < ?4)",
            args![id, claim, until, now()],
        )?;
        Ok(n == 1)
    }

    /// Records how an attempt ended and lets go of the claim.
    pub fn alert_finish(&self, id: i64, finish: &Finish) -> Result<()> {
        let t = now();
        match finish {
            Finish::Delivered { result, output } => self.conn.exec(
                "UPDATE alert_deliveries SET state = 'delivered', attempts = attempts + 1, result = ?2,
                   output = ?3, last_error = NULL, last_fix = NULL, last_code = NULL, done_at = ?4,
                   claim = NULL, claim_until = NULL WHERE id = ?1",
                args![id, result, output, t],
            )?,
            Finish::Retry { next_at, failure } => self.conn.exec(
                "UPDATE alert_deliveries SET attempts = attempts + 1, next_at = ?2, result = ?3, output = ?4,
                   last_error = ?5, last_fix = ?6, last_code = ?7, done_at = ?8, claim = NULL, claim_until = NULL
                 WHERE id = ?1",
                args![
                    id,
                    next_at,
                    failure.result,
                    failure.output,
                    failure.what,
                    failure.fix,
                    failure.code,
                    t
                ],
            )?,
            Finish::GaveUp { failure } => self.conn.exec(
                "UPDATE alert_deliveries SET state = 'failed', attempts = attempts + 1, result = ?2, output = ?3,
                   last_error = ?4, last_fix = ?5, last_code = ?6, done_at = ?7, claim = NULL, claim_until = NULL
                 WHERE id = ?1",
                args![
                    id,
                    failure.result,
                    failure.output,
                    failure.what,
                    failure.fix,
                    failure.code,
                    t
                ],
            )?,
            Finish::Cancelled { why } => self.conn.exec(
                "UPDATE alert_deliveries SET state = 'cancelled', last_error = ?2, done_at = ?3,
                   claim = NULL, claim_until = NULL WHERE id = ?1",
                args![id, why, t],
            )?,
        };
        Ok(())
    }

    /// A channel was removed: its deliveries still waiting are cancelled.
    pub fn alert_cancel_channel(&self, channel: u32) -> Result<usize> {
        Ok(self.conn.exec(
            "UPDATE alert_deliveries SET state = 'cancelled', last_error = 'the channel was removed', done_at = ?2
             WHERE channel = ?1 AND state = 'pending'",
            args![channel, now()],
        )? as usize)
    }

    /// The deliveries of an event (tests and tools).
    pub fn alert_deliveries_of(&self, event_id: i64) -> Result<Vec<(u32, String, String)>> {
        self.conn.rows(
            "SELECT channel, state, payload FROM alert_deliveries WHERE event_id = ?1 ORDER BY channel",
            args![event_id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
    }

    /// Every event, oldest first (tests and tools).
    pub fn alert_events(&self) -> Result<Vec<AlertEventRow>> {
        self.conn.rows(
            &format!("SELECT {EVENT_COLS} FROM alert_events ORDER BY id"),
            &[],
            event_row,
        )
    }

    /// A channel's last attempt and how many of its alerts did not get out.
    pub fn alert_channel_stats(&self, channel: u32) -> Result<(Option<LastDelivery>, i64)> {
        if !self.has_alert_tables()? {
            return Ok((None, 0));
        }
        let last = self.conn.first(
            "SELECT done_at, state, result, last_error, last_fix, last_code FROM alert_deliveries
                 WHERE channel = ?1 AND done_at IS NOT NULL AND state != 'cancelled'
                 ORDER BY done_at DESC, id DESC LIMIT 1",
            args![channel],
            |r| {
                let state: String = r.get(1)?;
                Ok(LastDelivery {
                    at: r.get(0)?,
                    state: if state == "pending" {
                        "retrying".into()
                    } else {
                        state
                    },
                    result: r.get(2)?,
                    error: r.get(3)?,
                    fix: r.get(4)?,
                    code: r.get(5)?,
                })
            },
        )?;
        let n = self.conn.one(
            &format!(
                "SELECT COUNT(*) FROM alert_deliveries d WHERE d.channel = ?1 AND {UNDELIVERED}"
            ),
            args![channel],
            |r| r.get(0),
        )?;
        Ok((last, n))
    }

    /// What did not get out, for `status` and the dashboard (nothing on a database from
    /// before alerts: `status` reads without migrating).
    pub fn alert_summary(&self) -> Result<AlertSummary> {
        if !self.has_alert_tables()? {
            return Ok(AlertSummary::default());
        }
        let undelivered = self.conn.one(
            &format!("SELECT COUNT(*) FROM alert_deliveries d WHERE {UNDELIVERED}"),
            &[],
            |r| r.get(0),
        )?;
        let last_error = self.conn.first(
                &format!(
                    "SELECT done_at, channel, last_error, COALESCE(last_fix, ''), COALESCE(last_code, '')
                     FROM alert_deliveries d WHERE {UNDELIVERED} ORDER BY done_at DESC, id DESC LIMIT 1"
                ),
                &[],
                |r| {
                    Ok(AlertFailure {
                        at: r.get(0)?,
                        channel: r.get(1)?,
                        what: r.get::<Option<String>>(2)?.unwrap_or_default(),
                        fix: r.get(3)?,
                        code: r.get(4)?,
                    })
                },
            )?;
        Ok(AlertSummary {
            undelivered,
            last_error,
        })
    }

    fn has_alert_tables(&self) -> Result<bool> {
        let sql = match self.engine() {
            Engine::Sqlite => {
                "SELECT COUNT(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = 'alert_deliveries'"
            }
            Engine::Postgres => "SELECT to_regclass('alert_deliveries') IS NOT NULL",
        };
        self.conn.one(sql, &[], |r| r.get(0))
    }
}

/// A delivery that did not get out: failing and retrying, or given up and its channel has
/// delivered nothing since.
const UNDELIVERED: &str =
    "((d.state = 'pending' AND d.attempts > 0) OR (d.state = 'failed' AND NOT EXISTS (
    SELECT 1 FROM alert_deliveries l WHERE l.channel = d.channel AND l.state = 'delivered'
      AND (l.done_at > d.done_at OR (l.done_at = d.done_at AND l.id > d.id)))))";

/// The routing step's view of the alert tables, inside its transaction.
pub struct AlertTx<'a> {
    conn: &'a Conn,
}

impl AlertTx<'_> {
    /// The account's events in `status` (`new`, `held`), oldest first.
    pub fn events(&self, account_id: &str, status: &str) -> Result<Vec<AlertEventRow>> {
        self.conn.rows(
            &format!(
                "SELECT {EVENT_COLS} FROM alert_events WHERE account_id = ?1 AND status = ?2 ORDER BY id"
            ),
            args![account_id, status],
            event_row,
        )
    }

    pub fn last_alert_at(&self, account_id: &str) -> Result<Option<String>> {
        Ok(self
            .conn
            .first(
                "SELECT last_alert_at FROM alert_accounts WHERE account_id = ?1",
                args![account_id],
                |r| r.get(0),
            )?
            .flatten())
    }

    pub fn set_last_alert(&self, account_id: &str, at: &str) -> Result<()> {
        self.conn.exec(
            "INSERT INTO alert_accounts (account_id, last_alert_at) VALUES (?1, ?2)
             ON CONFLICT(account_id) DO UPDATE SET last_alert_at = excluded.last_alert_at",
            args![account_id, at],
        )?;
        Ok(())
    }

    pub fn set_status(&self, id: i64, status: &str, digest_id: Option<i64>) -> Result<()> {
        self.conn.exec(
            "UPDATE alert_events SET status = ?2, digest_id = COALESCE(?3, digest_id), routed_at = ?4 WHERE id = ?1",
            args![id, status, digest_id, now()],
        )?;
        Ok(())
    }

    /// A new event already routed (a digest).
    pub fn insert_event(&self, e: &NewAlertEvent<'_>, status: &str) -> Result<i64> {
        insert_event(self.conn, e, status)
    }

    pub fn insert_delivery(
        &self,
        event_id: i64,
        account_id: Option<&str>,
        channel: u32,
        payload: &str,
    ) -> Result<i64> {
        let t = now();
        self.conn.one(
            "INSERT INTO alert_deliveries (event_id, account_id, channel, payload, created_at, next_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?5) RETURNING id",
            args![event_id, account_id, channel, payload, t],
            |r| r.get(0),
        )
    }

    /// Whether `channel` was told (last) that the account fails.
    pub fn told(&self, channel: u32, account_id: &str) -> Result<bool> {
        Ok(self
            .conn
            .first(
                "SELECT failing FROM alert_told WHERE channel = ?1 AND account_id = ?2",
                args![channel, account_id],
                |r| r.get::<i64>(0),
            )?
            .is_some_and(|f| f != 0))
    }

    pub fn set_told(&self, channel: u32, account_id: &str, failing: bool) -> Result<()> {
        self.conn.exec(
            "INSERT INTO alert_told (channel, account_id, failing) VALUES (?1, ?2, ?3)
             ON CONFLICT(channel, account_id) DO UPDATE SET failing = excluded.failing",
            args![channel, account_id, failing],
        )?;
        Ok(())
    }

    /// The account's state now (a digest tells it).
    pub fn account_state(&self, account_id: &str) -> Result<Option<String>> {
        self.conn.first(
            "SELECT state FROM accounts WHERE id = ?1",
            args![account_id],
            |r| r.get(0),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev<'a>(event: &'a str) -> NewAlertEvent<'a> {
        NewAlertEvent {
            account_id: Some("a1"),
            event,
            state: Some(event),
            what: "w".into(),
            fix: "f",
            code: Some("net.refused"),
        }
    }

    #[test]
    fn one_event_per_transition_and_none_per_retry() {
        crate::store::testing::each(|s| {
            let t = |f: Option<&str>| {
                s.alert_transition("a1", f, |prev| {
                    Some(ev(if f.is_none() {
                        if prev.is_some() { "recovered" } else { "x" }
                    } else {
                        "disconnected"
                    }))
                })
                .unwrap()
            };
            assert!(t(None).is_none(), "healthy from the start: nothing");
            assert!(t(Some("disconnected")).is_some());
            assert!(t(Some("disconnected")).is_none(), "a retry");
            assert!(t(None).is_some(), "recovered");
            assert!(t(None).is_none());
            let evs = s.alert_events().unwrap();
            assert_eq!(
                evs.iter().map(|e| e.event.as_str()).collect::<Vec<_>>(),
                ["disconnected", "recovered"]
            );
            assert_eq!(evs[0].code.as_deref(), Some("net.refused"));
            assert_eq!(evs[0].status, "new");
        });
    }

    #[test]
    fn a_delivery_is_claimed_once_and_its_outcome_counts() {
        crate::store::testing::each(|s| {
            let id = s.alert_raise(&ev("disconnected")).unwrap();
            let d = s
                .alert_route(|tx| {
                    tx.set_status(id, "sent", None)?;
                    tx.insert_delivery(id, Some("a1"), 7, "{}")
                })
                .unwrap();
            let accounts = ["a1".to_string()];
            assert_eq!(s.alert_due(&accounts, 10).unwrap().len(), 1);
            assert!(s.alert_due(&["b".to_string()], 10).unwrap().is_empty());
            let until = "2999-01-01T00:00:00Z";
            assert!(s.alert_claim(d, "me", until).unwrap());
            assert!(!s.alert_claim(d, "you", until).unwrap(), "claimed once");
            assert!(s.alert_due(&accounts, 10).unwrap().is_empty());
            let failure = Failure {
                result: "exit 1".into(),
                output: Some("oops".into()),
                what: "the alert command failed".into(),
                fix: "run it by hand".into(),
                code: "alert.command_failed".into(),
            };
            s.alert_finish(
                d,
                &Finish::Retry {
                    next_at: "2000-01-01T00:00:00Z".into(),
                    failure: failure.clone(),
                },
            )
            .unwrap();
            let sum = s.alert_summary().unwrap();
            assert_eq!(sum.undelivered, 1);
            assert_eq!(sum.last_error.unwrap().code, "alert.command_failed");
            let (last, n) = s.alert_channel_stats(7).unwrap();
            assert_eq!((last.unwrap().state.as_str(), n), ("retrying", 1));
            assert!(s.alert_claim(d, "you", until).unwrap(), "due again");
            s.alert_finish(d, &Finish::GaveUp { failure }).unwrap();
            assert_eq!(s.alert_summary().unwrap().undelivered, 1, "given up");
            // The channel delivers again later: the old failure no longer counts.
            let id2 = s.alert_raise(&ev("recovered")).unwrap();
            let d2 = s
                .alert_route(|tx| tx.insert_delivery(id2, Some("a1"), 7, "{}"))
                .unwrap();
            assert!(s.alert_claim(d2, "me", until).unwrap());
            s.alert_finish(
                d2,
                &Finish::Delivered {
                    result: "exit 0".into(),
                    output: None,
                },
            )
            .unwrap();
            assert_eq!(s.alert_summary().unwrap(), AlertSummary::default());
            assert_eq!(s.alert_cancel_channel(7).unwrap(), 0);
        });
    }
}
