//! Small read-only summaries for `status` and the dashboard.

use super::Store;
use crate::args;
use crate::error::Result;

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct OutboxCounts {
    pub queued: i64,
    pub uncertain: i64,
    pub copy_pending: i64,
}

impl Store {
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
            assert_eq!(s.outbox_counts("a2").unwrap().uncertain, 0);
        });
    }
}
