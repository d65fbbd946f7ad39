//! Small read-only summaries for `status` and the dashboard.

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
}
