//! Message bodies, one row per logical message (`bodies`): what the full offline mode
//! (`sync.bodies = "all"`) downloads in bulk, and what on-demand fetches and prefetch store.
//! A bulk body is stored raw; its words join the search index later (`index_bodies`), and its
//! readable text is taken out of the raw bytes when it is read.

use rusqlite::params;

use super::Store;
use crate::error::Result;

/// A message of a folder whose body is still wanted: (message id, UID, size).
pub type BodyTodo = (i64, u32, i64);

/// What the search index holds of a message besides its body: subject, sender's address and
/// name, To and Cc as stored (JSON).
type IndexedFields = (
    Option<String>,
    Option<String>,
    Option<String>,
    String,
    String,
);

impl Store {
    /// The messages of one folder (under this UIDVALIDITY) without a stored body, newest UID
    /// first; with `since` (RFC 3339), only those that arrived (INTERNALDATE, else Date) on or
    /// after it.
    pub fn bodies_wanted(
        &self,
        folder_id: i64,
        uidvalidity: u32,
        since: Option<&str>,
    ) -> Result<Vec<BodyTodo>> {
        let mut st = self.conn.prepare_cached(
            "SELECT l.message_id, l.uid, COALESCE(m.size, 0) FROM locations l
             JOIN messages m ON m.id = l.message_id
             WHERE l.folder_id = ?1 AND l.uidvalidity = ?2
               AND NOT EXISTS (SELECT 1 FROM bodies b WHERE b.message_id = l.message_id)
               AND (?3 IS NULL OR COALESCE(l.internal_date, m.date) >= ?3)
             ORDER BY l.uid DESC",
        )?;
        let v = st
            .query_map(params![folder_id, uidvalidity as i64, since], |r| {
                Ok((r.get(0)?, r.get::<_, i64>(1)? as u32, r.get(2)?))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(v)
    }

    /// Begins a transaction of downloaded bodies (see [`Store::store_body_raw`]).
    pub fn bodies_begin(&self) -> Result<()> {
        self.conn.execute_batch("BEGIN IMMEDIATE")?;
        Ok(())
    }

    /// Stores one downloaded body raw (its words are indexed later); a body already stored is
    /// kept. True when it was added.
    pub fn store_body_raw(&self, message_id: i64, raw: &[u8]) -> Result<bool> {
        let n = self
            .conn
            .prepare_cached(
                "INSERT OR IGNORE INTO bodies (message_id, raw, size, indexed) VALUES (?1, ?2, ?3, 0)",
            )?
            .execute(params![message_id, raw, raw.len() as i64])?;
        Ok(n == 1)
    }

    pub fn bodies_commit(&self) -> Result<()> {
        self.conn.execute_batch("COMMIT")?;
        Ok(())
    }

    pub fn bodies_rollback(&self) {
        if !self.conn.is_autocommit() {
            let _ = self.conn.execute_batch("ROLLBACK");
        }
    }

    /// Counts what the account's bodies take (bodies of messages it holds a copy of) and
    /// records it on the account row, where `status` reads it: (count, bytes).
    pub fn refresh_bodies_total(&self, account_id: &str) -> Result<(i64, i64)> {
        let (n, bytes): (i64, i64) = self.conn.query_row(
            "SELECT COUNT(*), COALESCE(SUM(b.size), 0) FROM bodies b
             WHERE b.message_id IN (SELECT message_id FROM locations WHERE account_id = ?1)",
            [account_id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        self.conn.execute(
            "UPDATE accounts SET bodies_count = ?2, bodies_bytes = ?3 WHERE id = ?1",
            params![account_id, n, bytes],
        )?;
        Ok((n, bytes))
    }

    /// Bulk bodies whose words are not in the search index yet: (message id, raw), at most
    /// `limit` of them and, past the first, at most `max_bytes` together.
    pub fn bodies_to_index(&self, limit: i64, max_bytes: usize) -> Result<Vec<(i64, Vec<u8>)>> {
        let mut st = self.conn.prepare_cached(
            "SELECT message_id, raw FROM bodies WHERE indexed = 0 ORDER BY message_id LIMIT ?1",
        )?;
        let mut rows = st.query([limit])?;
        let mut v = Vec::new();
        let mut bytes = 0;
        while let Some(r) = rows.next()? {
            let raw: Vec<u8> = r.get(1)?;
            bytes += raw.len();
            v.push((r.get(0)?, raw));
            if bytes >= max_bytes {
                break;
            }
        }
        Ok(v)
    }

    /// Puts the bodies' words into the search index (with the subject and addresses it has)
    /// and notes which have attachments, in one transaction: (id, text, has attachments).
    pub fn index_bodies(&mut self, items: &[(i64, String, bool)]) -> Result<()> {
        self.transaction(|tx| {
            for (id, text, attachments) in items {
                let row: Option<IndexedFields> =
                    tx.prepare_cached(
                        "SELECT subject, from_addr, from_name, to_json, cc_json FROM messages WHERE id = ?1",
                    )?
                    .query_row([id], |r| {
                        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
                    })
                    .ok();
                if let Some((subject, from_addr, from_name, to, cc)) = row {
                    let addrs = super::search::addresses_text(&from_addr, &from_name, &to, &cc);
                    tx.prepare_cached("DELETE FROM messages_fts WHERE rowid = ?1")?
                        .execute([id])?;
                    tx.prepare_cached(
                        "INSERT INTO messages_fts (rowid, subject, addresses, body) VALUES (?1, ?2, ?3, ?4)",
                    )?
                    .execute(params![id, subject.unwrap_or_default(), addrs, text])?;
                    if *attachments {
                        tx.prepare_cached("UPDATE messages SET has_attachments = 1 WHERE id = ?1")?
                            .execute([id])?;
                    }
                }
                tx.prepare_cached("UPDATE bodies SET indexed = 1 WHERE message_id = ?1")?
                    .execute([id])?;
            }
            Ok(())
        })
    }
}
