//! Small read-only summaries for `status` and the dashboard.

use std::collections::HashMap;

use super::counts::{OUTSIDE_QUEUE, QUEUE_MESSAGE};
use super::crm::placeholders;
use super::sql::{Arg, ToArg};
use super::{AccountCounts, AccountRow, Store};
use crate::args;
use crate::error::Result;

/// What `status` shows of every account, read with one query per kind of question instead of
/// one per account: on PostgreSQL every question is a round trip, and six of them for each of 20
/// accounts cost most of a second (scripts/bench-scale).
#[derive(Debug, Default)]
pub struct StatusRows {
    pub accounts: HashMap<String, AccountRow>,
    pub counts: HashMap<String, AccountCounts>,
    pub outbox: HashMap<String, OutboxCounts>,
    /// Per account, its queued mail from our own addresses (the kept queue count leaves the own
    /// addresses out: they are configuration), so queued − own = `triage_count` of one account.
    pub own_queued: HashMap<String, i64>,
    /// Per account, bodies stored and their bytes.
    pub bodies: HashMap<String, (i64, i64)>,
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct OutboxCounts {
    pub queued: i64,
    pub uncertain: i64,
    pub copy_pending: i64,
}

impl Store {
    /// Every account's status rows at once. Fails on a database not migrated yet (`status`
    /// opens read-only and never migrates): the caller then asks account by account, whose
    /// questions each know how to answer without the newer tables.
    pub fn status_rows(&self, own: &[String]) -> Result<StatusRows> {
        let mut out = StatusRows::default();
        for r in self.accounts()? {
            out.accounts.insert(r.id.clone(), r);
        }
        let bodies: Vec<(String, i64, i64)> = self.conn.rows(
            "SELECT id, COALESCE(bodies_count, 0), COALESCE(bodies_bytes, 0) FROM accounts",
            &[],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )?;
        out.bodies = bodies.into_iter().map(|(id, n, b)| (id, (n, b))).collect();
        let counts: Vec<(String, AccountCounts)> = self.conn.rows(
            "SELECT account_id, messages, unread, queued FROM account_counts",
            &[],
            |r| {
                Ok((
                    r.get(0)?,
                    AccountCounts {
                        messages: r.get(1)?,
                        unread: r.get(2)?,
                        queued: r.get(3)?,
                    },
                ))
            },
        )?;
        out.counts = counts.into_iter().collect();
        let outbox: Vec<(String, OutboxCounts)> = self.conn.rows(
            "SELECT account_id,
               COUNT(*) FILTER (WHERE state IN ('queued','sending','failed')),
               COUNT(*) FILTER (WHERE state = 'uncertain'),
               COUNT(*) FILTER (WHERE state IN ('sent','copied') AND COALESCE(copy_state,'pending') IN ('pending','failed','appended'))
             FROM outbox GROUP BY account_id",
            &[],
            |r| {
                Ok((
                    r.get(0)?,
                    OutboxCounts {
                        queued: r.get(1)?,
                        uncertain: r.get(2)?,
                        copy_pending: r.get(3)?,
                    },
                ))
            },
        )?;
        out.outbox = outbox.into_iter().collect();
        // `triage_count`'s own list: '' when there is none.
        let none = [String::new()];
        let own: &[String] = if own.is_empty() { &none } else { own };
        let p: Vec<Arg<'_>> = own.iter().map(ToArg::arg).collect();
        let own_queued: Vec<(String, i64)> = self.conn.rows(
            &format!(
                "SELECT l.account_id, COUNT(DISTINCT m.id) FROM messages m JOIN locations l ON l.message_id = m.id
                 WHERE m.from_addr IN ({}) AND {QUEUE_MESSAGE} AND l.folder_id NOT IN {OUTSIDE_QUEUE}
                 GROUP BY l.account_id",
                placeholders(own.len())
            ),
            &p,
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        out.own_queued = own_queued.into_iter().collect();
        Ok(out)
    }

    pub fn outbox_counts(&self, account_id: &str) -> Result<OutboxCounts> {
        // COUNT … FILTER: both engines read it, and a count is a BIGINT on PostgreSQL (a SUM of
        // comparisons is not: its booleans do not add up).
        self.conn.one(
            "SELECT
               COUNT(*) FILTER (WHERE state IN ('queued','sending','failed')),
               COUNT(*) FILTER (WHERE state = 'uncertain'),
               COUNT(*) FILTER (WHERE state IN ('sent','copied') AND COALESCE(copy_state,'pending') IN ('pending','failed','appended'))
             FROM outbox WHERE account_id = ?1",
            args![account_id],
            |r| {
                Ok(OutboxCounts {
                    queued: r.get(0)?,
                    uncertain: r.get(1)?,
                    copy_pending: r.get(2)?,
                })
            },
        )
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn outbox_counts_on_both_engines() {
        crate::store::testing::each(|s| {
            assert_eq!(s.outbox_counts("a1").unwrap().queued, 0);
            for (i, (state, copy)) in [
                ("queued", None),
                ("failed", None),
                ("uncertain", None),
                ("sent", Some("pending")),
                ("copied", Some("failed")),
                ("verified", Some("appended")),
            ]
            .into_iter()
            .enumerate()
            {
                s.conn
                    .exec(
                        "INSERT INTO outbox (account_id, from_addr, rcpt_json, message_id, raw, state, copy_state, created_at, updated_at)
                         VALUES ('a1', 'a@x', '[]', ?1, ?2, ?3, ?4, 't', 't')",
                        crate::args![format!("m{i}"), vec![1u8], state, copy],
                    )
                    .unwrap();
            }
            let c = s.outbox_counts("a1").unwrap();
            assert_eq!((c.queued, c.uncertain, c.copy_pending), (2, 1, 2));
            // `status` reads every account's outbox at once: the same counts.
            let all = s.status_rows(&[]).unwrap();
            let b = &all.outbox["a1"];
            assert_eq!((b.queued, b.uncertain, b.copy_pending), (2, 1, 2));
            assert!(!all.outbox.contains_key("a2"));
            assert_eq!(s.outbox_counts("a2").unwrap().uncertain, 0);
        });
    }
}
