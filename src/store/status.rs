//! Small read-only summaries for `status` and the dashboard.

use rusqlite::params;

use super::Store;
use crate::error::Result;

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct OutboxCounts {
    pub queued: i64,
    pub uncertain: i64,
    pub copy_pending: i64,
}

impl Store {
    pub fn outbox_counts(&self, account_id: &str) -> Result<OutboxCounts> {
        let (queued, uncertain, copy_pending) = self.conn.query_row(
            "SELECT
               COALESCE(SUM(state IN ('queued','sending','failed')), 0),
               COALESCE(SUM(state = 'uncertain'), 0),
               COALESCE(SUM(state IN ('sent','copied') AND COALESCE(copy_state,'pending') IN ('pending','failed','appended')), 0)
             FROM outbox WHERE account_id = ?1",
            [account_id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )?;
        Ok(OutboxCounts {
            queued,
            uncertain,
            copy_pending,
        })
    }

    /// Inbound messages of this account that match no customer and were not blocked or removed.
    pub fn unmatched_count(&self, account_id: &str) -> Result<i64> {
        Ok(self.conn.query_row(
            "SELECT COUNT(*) FROM messages m
             WHERE m.direction = 'in' AND m.customer_id IS NULL AND m.denied = 0 AND m.triage_state IS NULL
               AND EXISTS (SELECT 1 FROM locations l JOIN folders f ON f.id = l.folder_id
                           WHERE l.message_id = m.id AND l.account_id = ?1 AND f.role IS NOT 'sent' AND f.role IS NOT 'trash' AND f.role IS NOT 'junk')",
            params![account_id],
            |r| r.get(0),
        )?)
    }
}
