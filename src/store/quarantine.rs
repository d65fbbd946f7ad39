//! Messages that failed to parse or fetch: raw bytes kept, error recorded, so one bad message
//! never stops a folder and nothing is lost.

use rusqlite::{OptionalExtension, params};
use serde::Serialize;

use super::{Store, now};
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
        let existing: Option<i64> = self
            .conn
            .query_row(
                "SELECT id FROM quarantine WHERE folder_id = ?1 AND uidvalidity = ?2 AND uid = ?3",
                params![folder_id, uidvalidity as i64, uid as i64],
                |r| r.get(0),
            )
            .optional()?;
        if let Some(id) = existing {
            self.conn.execute(
                "UPDATE quarantine SET raw = ?2, error = ?3, attempts = attempts + 1 WHERE id = ?1",
                params![id, raw, error],
            )?;
            return Ok(id);
        }
        self.conn.execute(
            "INSERT INTO quarantine (account_id, folder_id, folder_name, uidvalidity, uid, raw, error, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![account_id, folder_id, folder_name, uidvalidity as i64, uid as i64, raw, error, now()],
        )?;
        Ok(self.conn.last_insert_rowid())
    }

    /// Whether this message is quarantined already (a retry failing again is no news).
    pub fn quarantine_known(&self, folder_id: i64, uidvalidity: u32, uid: u32) -> Result<bool> {
        Ok(self
            .conn
            .query_row(
                "SELECT 1 FROM quarantine WHERE folder_id = ?1 AND uidvalidity = ?2 AND uid = ?3",
                params![folder_id, uidvalidity as i64, uid as i64],
                |_| Ok(()),
            )
            .optional()?
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
        self.conn.execute(
            "UPDATE quarantine SET raw = ?4 WHERE folder_id = ?1 AND uidvalidity = ?2 AND uid = ?3",
            params![folder_id, uidvalidity as i64, uid as i64, raw],
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
        let (acc, args) = accounts_in(account_ids);
        Ok(self.conn.query_row(
            &format!("SELECT COUNT(*) FROM quarantine WHERE account_id IN ({acc})"),
            rusqlite::params_from_iter(args),
            |r| r.get(0),
        )?)
    }

    fn quarantine_page(
        &self,
        account_ids: &[String],
        limit: i64,
        offset: i64,
        order: &str,
    ) -> Result<Vec<QuarantineRow>> {
        let (acc, mut args) = accounts_in(account_ids);
        args.push(limit.into());
        args.push(offset.into());
        let mut st = self.conn.prepare(&format!(
            "SELECT id, account_id, folder_name, folder_id, uidvalidity, uid, error, state, created_at, attempts, COALESCE(LENGTH(raw), 0)
             FROM quarantine WHERE account_id IN ({acc}) ORDER BY id {order} LIMIT ? OFFSET ?"
        ))?;
        let rows = st
            .query_map(rusqlite::params_from_iter(args), quarantine_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    pub fn quarantine_get(&self, id: i64) -> Result<Option<(QuarantineRow, Vec<u8>)>> {
        Ok(self
            .conn
            .query_row(
                "SELECT id, account_id, folder_name, folder_id, uidvalidity, uid, error, state, created_at, attempts, COALESCE(LENGTH(raw), 0), raw FROM quarantine WHERE id = ?1",
                [id],
                |r| Ok((quarantine_row(r)?, r.get::<_, Option<Vec<u8>>>(11)?.unwrap_or_default())),
            )
            .optional()?)
    }

    pub fn quarantine_set_state(&self, id: i64, state: QuarantineState) -> Result<()> {
        self.conn.execute(
            "UPDATE quarantine SET state = ?2 WHERE id = ?1",
            params![id, state.as_str()],
        )?;
        Ok(())
    }

    pub fn quarantine_open_count(&self, account_id: &str) -> Result<i64> {
        Ok(self.conn.query_row(
            "SELECT COUNT(*) FROM quarantine WHERE account_id = ?1 AND state = ?2",
            params![account_id, QuarantineState::Open.as_str()],
            |r| r.get(0),
        )?)
    }
}

fn quarantine_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<QuarantineRow> {
    Ok(QuarantineRow {
        id: r.get(0)?,
        account_id: r.get(1)?,
        folder: r.get(2)?,
        folder_id: r.get(3)?,
        uidvalidity: r.get::<_, Option<i64>>(4)?.map(|v| v as u32),
        uid: r.get::<_, Option<i64>>(5)?.map(|v| v as u32),
        error: r.get(6)?,
        state: QuarantineState::parse(&r.get::<_, String>(7)?),
        created_at: r.get(8)?,
        attempts: r.get(9)?,
        size: r.get(10)?,
    })
}

/// `IN (…)` placeholders and values for a list of account ids (an empty list matches nothing).
fn accounts_in(account_ids: &[String]) -> (String, Vec<rusqlite::types::Value>) {
    if account_ids.is_empty() {
        return ("NULL".into(), Vec::new());
    }
    let marks = vec!["?"; account_ids.len()].join(",");
    (
        marks,
        account_ids.iter().map(|a| a.clone().into()).collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_only_the_given_accounts_in_either_order() {
        let s = Store::open_in_memory().unwrap();
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
    }

    #[test]
    fn states_are_stored_as_their_words() {
        let s = Store::open_in_memory().unwrap();
        let id = s
            .quarantine_add("a1", 1, "INBOX", 7, 1, b"x", "bad")
            .unwrap();
        let state = |s: &Store| s.quarantine_get(id).unwrap().unwrap().0.state;
        assert_eq!(state(&s), QuarantineState::Open);
        assert_eq!(s.quarantine_open_count("a1").unwrap(), 1);
        for st in [QuarantineState::Skipped, QuarantineState::Retried] {
            s.quarantine_set_state(id, st).unwrap();
            assert_eq!(state(&s), st);
            let word: String = s
                .conn
                .query_row("SELECT state FROM quarantine WHERE id = ?1", [id], |r| {
                    r.get(0)
                })
                .unwrap();
            assert_eq!(word, st.as_str());
        }
        assert_eq!(s.quarantine_open_count("a1").unwrap(), 0);
        assert_eq!(
            serde_json::to_value(QuarantineState::Skipped).unwrap(),
            "skipped"
        );
    }
}
