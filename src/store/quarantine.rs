//! Messages that failed to parse or fetch: raw bytes kept, error recorded, so one bad message
//! never stops a folder and nothing is lost.

use serde::Serialize;

use super::sql::{Owned, Row, in_list, owned_args};
use super::{Store, now};
use crate::args;
use crate::error::Result;

/// Where a quarantined message stands: waiting (`open`), set aside by the user (`skipped`), or
/// fetched and stored by a retry (`retried`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum QuarantineState {
    Open,
    Skipped,
    Retried,
}

impl QuarantineState {
    pub fn as_str(self) -> &'static str {
        match self {
            QuarantineState::Open => "open",
            QuarantineState::Skipped => "skipped",
            QuarantineState::Retried => "retried",
        }
    }
    /// The stored word; anything else reads as open (it is still there to look at).
    fn parse(s: &str) -> QuarantineState {
        match s {
            "skipped" => QuarantineState::Skipped,
            "retried" => QuarantineState::Retried,
            _ => QuarantineState::Open,
        }
    }
}

impl std::fmt::Display for QuarantineState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QuarantineRow {
    pub id: i64,
    pub account_id: String,
    pub folder: Option<String>,
    pub folder_id: Option<i64>,
    pub uidvalidity: Option<u32>,
    pub uid: Option<u32>,
    pub error: String,
    pub state: QuarantineState,
    pub created_at: String,
    pub attempts: i64,
    pub size: i64,
}

impl Store {
    #[allow(clippy::too_many_arguments)]
    pub fn quarantine_add(
        &self,
        account_id: &str,
        folder_id: i64,
        folder_name: &str,
        uidvalidity: u32,
        uid: u32,
        raw: &[u8],
        error: &str,
    ) -> Result<i64> {
        // The same message failing again updates its row instead of piling up copies.
        let existing: Option<i64> = self.conn.first(
            "SELECT id FROM quarantine WHERE folder_id = ?1 AND uidvalidity = ?2 AND uid = ?3",
            args![folder_id, uidvalidity, uid],
            |r| r.get(0),
        )?;
        if let Some(id) = existing {
            self.conn.exec(
                "UPDATE quarantine SET raw = ?2, error = ?3, attempts = attempts + 1 WHERE id = ?1",
                args![id, raw, error],
            )?;
            return Ok(id);
        }
        self.conn.one(
            "INSERT INTO quarantine (account_id, folder_id, folder_name, uidvalidity, uid, raw, error, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) RETURNING id",
            args![account_id, folder_id, folder_name, uidvalidity, uid, raw, error, now()],
            |r| r.get(0),
        )
    }

    /// Whether this message is quarantined already (a retry failing again is no news).
    pub fn quarantine_known(&self, folder_id: i64, uidvalidity: u32, uid: u32) -> Result<bool> {
        Ok(self
            .conn
            .first(
                "SELECT 1 FROM quarantine WHERE folder_id = ?1 AND uidvalidity = ?2 AND uid = ?3",
                args![folder_id, uidvalidity, uid],
                |_| Ok(()),
            )?
            .is_some())
    }

    /// Replaces the kept bytes (the full message, fetched after its header failed).
    pub fn quarantine_set_raw(
        &self,
        folder_id: i64,
        uidvalidity: u32,
        uid: u32,
        raw: &[u8],
    ) -> Result<()> {
        self.conn.exec(
            "UPDATE quarantine SET raw = ?4 WHERE folder_id = ?1 AND uidvalidity = ?2 AND uid = ?3",
            args![folder_id, uidvalidity, uid, raw],
        )?;
        Ok(())
    }

    /// Every quarantined message of these accounts, oldest first (`quarantine list`).
    pub fn quarantine_list(&self, account_ids: &[String]) -> Result<Vec<QuarantineRow>> {
        self.quarantine_page(account_ids, i64::MAX, 0, "ASC")
    }

    /// One page of these accounts' quarantine, newest first (the console's list).
    pub fn quarantine_recent(
        &self,
        account_ids: &[String],
        offset: i64,
        limit: i64,
    ) -> Result<Vec<QuarantineRow>> {
        self.quarantine_page(account_ids, limit, offset, "DESC")
    }

    pub fn quarantine_total(&self, account_ids: &[String]) -> Result<i64> {
        let values = texts(account_ids);
        self.conn.one(
            &format!(
                "SELECT COUNT(*) FROM quarantine WHERE account_id IN ({})",
                in_list(1, values.len())
            ),
            &owned_args(&values),
            |r| r.get(0),
        )
    }

    fn quarantine_page(
        &self,
        account_ids: &[String],
        limit: i64,
        offset: i64,
        order: &str,
    ) -> Result<Vec<QuarantineRow>> {
        let mut values = vec![Owned::Int(limit), Owned::Int(offset)];
        values.extend(texts(account_ids));
        self.conn.rows(
            &format!(
                "SELECT {COLS} FROM quarantine WHERE account_id IN ({}) ORDER BY id {order} LIMIT ?1 OFFSET ?2",
                in_list(3, account_ids.len())
            ),
            &owned_args(&values),
            quarantine_row,
        )
    }

    pub fn quarantine_get(&self, id: i64) -> Result<Option<(QuarantineRow, Vec<u8>)>> {
        self.conn.first(
            &format!("SELECT {COLS}, raw FROM quarantine WHERE id = ?1"),
            args![id],
            |r| {
                Ok((
                    quarantine_row(r)?,
                    r.get::<Option<Vec<u8>>>(11)?.unwrap_or_default(),
                ))
            },
        )
    }

    pub fn quarantine_set_state(&self, id: i64, state: QuarantineState) -> Result<()> {
        self.conn.exec(
            "UPDATE quarantine SET state = ?2 WHERE id = ?1",
            args![id, state.as_str()],
        )?;
        Ok(())
    }

    pub fn quarantine_open_count(&self, account_id: &str) -> Result<i64> {
        self.conn.one(
            "SELECT COUNT(*) FROM quarantine WHERE account_id = ?1 AND state = ?2",
            args![account_id, QuarantineState::Open.as_str()],
            |r| r.get(0),
        )
    }
}

/// The columns `quarantine_row` reads; the size is that of the kept bytes.
const COLS: &str = "id, account_id, folder_name, folder_id, uidvalidity, uid, error, state, created_at, attempts, COALESCE(LENGTH(raw), 0)";

fn quarantine_row(r: &Row<'_>) -> Result<QuarantineRow> {
    Ok(QuarantineRow {
        id: r.get(0)?,
        account_id: r.get(1)?,
        folder: r.get(2)?,
        folder_id: r.get(3)?,
        uidvalidity: r.get::<Option<i64>>(4)?.map(|v| v as u32),
        uid: r.get::<Option<i64>>(5)?.map(|v| v as u32),
        error: r.get(6)?,
        state: QuarantineState::parse(&r.get::<String>(7)?),
        created_at: r.get(8)?,
        attempts: r.get(9)?,
        size: r.get(10)?,
    })
}

/// Account ids as the values of an `IN (…)` list (an empty list matches nothing).
fn texts(account_ids: &[String]) -> Vec<Owned> {
    account_ids.iter().map(|a| Owned::Text(a.clone())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing;

    #[test]
    fn lists_only_the_given_accounts_in_either_order() {
        testing::each(|s| {
            let a = s
                .quarantine_add("a1", 1, "INBOX", 7, 1, b"x", "bad")
                .unwrap();
            s.quarantine_add("a2", 2, "INBOX", 7, 1, b"y", "bad")
                .unwrap();
            let b = s
                .quarantine_add("a1", 1, "INBOX", 7, 2, b"zz", "bad")
                .unwrap();
            let mine = vec!["a1".to_string()];
            let ids = |rows: Vec<QuarantineRow>| rows.iter().map(|r| r.id).collect::<Vec<_>>();
            assert_eq!(ids(s.quarantine_list(&mine).unwrap()), vec![a, b]);
            assert_eq!(ids(s.quarantine_recent(&mine, 0, 10).unwrap()), vec![b, a]);
            assert_eq!(ids(s.quarantine_recent(&mine, 1, 10).unwrap()), vec![a]);
            assert_eq!(s.quarantine_total(&mine).unwrap(), 2);
            assert_eq!(s.quarantine_total(&[]).unwrap(), 0);
            assert!(s.quarantine_list(&[]).unwrap().is_empty());
            let both = vec!["a1".to_string(), "a2".to_string()];
            assert_eq!(s.quarantine_total(&both).unwrap(), 3);
        });
    }

    #[test]
    fn a_message_failing_again_keeps_one_row_with_its_latest_bytes() {
        testing::each(|s| {
            let id = s
                .quarantine_add("a1", 1, "INBOX", 7, 1, b"head", "bad header")
                .unwrap();
            let again = s
                .quarantine_add("a1", 1, "INBOX", 7, 1, b"head2", "still bad")
                .unwrap();
            assert_eq!(again, id);
            s.quarantine_set_raw(1, 7, 1, b"the whole message").unwrap();
            let (row, raw) = s.quarantine_get(id).unwrap().unwrap();
            assert_eq!(raw, b"the whole message");
            assert_eq!(row.size, 17);
            assert_eq!((row.attempts, row.error.as_str()), (2, "still bad"));
            assert_eq!(
                (
                    row.folder.as_deref(),
                    row.folder_id,
                    row.uidvalidity,
                    row.uid
                ),
                (Some("INBOX"), Some(1), Some(7), Some(1))
            );
            assert!(s.quarantine_get(id + 100).unwrap().is_none());
        });
    }

    #[test]
    fn states_are_stored_as_their_words() {
        testing::each(|s| {
            let id = s
                .quarantine_add("a1", 1, "INBOX", 7, 1, b"x", "bad")
                .unwrap();
            let state = |s: &Store| s.quarantine_get(id).unwrap().unwrap().0.state;
            assert_eq!(state(s), QuarantineState::Open);
            assert_eq!(s.quarantine_open_count("a1").unwrap(), 1);
            for st in [QuarantineState::Skipped, QuarantineState::Retried] {
                s.quarantine_set_state(id, st).unwrap();
                assert_eq!(state(s), st);
                let word: String = s
                    .conn
                    .one(
                        "SELECT state FROM quarantine WHERE id = ?1",
                        crate::args![id],
                        |r| r.get(0),
                    )
                    .unwrap();
                assert_eq!(word, st.as_str());
            }
            assert_eq!(s.quarantine_open_count("a1").unwrap(), 0);
            assert_eq!(
                serde_json::to_value(QuarantineState::Skipped).unwrap(),
                "skipped"
            );
        });
    }
}
