//! Message bodies, one row per logical message (`bodies`): what the full offline mode
//! (`sync.bodies = "all"`) downloads in bulk, and what on-demand fetches and prefetch store.
//! A bulk body is stored raw; its words join the search index later (`index_bodies`), and its
//! readable text is taken out of the raw bytes when it is read.

use super::Store;
use super::search::{FtsDoc, fts_write};
use super::sql::{Conn, Engine};
use crate::args;
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

/// Stores a body raw, once per logical message (a body stored already is kept); `indexed`:
/// its words are in the search index already. True when it was added.
pub(super) fn insert_raw(conn: &Conn, message_id: i64, raw: &[u8], indexed: bool) -> Result<bool> {
    let n = conn.exec(
        "INSERT INTO bodies (message_id, raw, size, indexed) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (message_id) DO NOTHING",
        args![message_id, raw, raw.len(), indexed],
    )?;
    Ok(n == 1)
}

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
        self.conn.rows(
            "SELECT l.message_id, l.uid, COALESCE(m.size, 0) FROM locations l
             JOIN messages m ON m.id = l.message_id
             WHERE l.folder_id = ?1 AND l.uidvalidity = ?2
               AND NOT EXISTS (SELECT 1 FROM bodies b WHERE b.message_id = l.message_id)
               AND (CAST(?3 AS TEXT) IS NULL OR COALESCE(l.internal_date, m.date) >= ?3)
             ORDER BY l.uid DESC",
            args![folder_id, uidvalidity, since],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
    }

    /// Begins a transaction of downloaded bodies (see [`Store::store_body_raw`]).
    pub fn bodies_begin(&self) -> Result<()> {
        self.conn.batch(match self.engine() {
            Engine::Sqlite => "BEGIN IMMEDIATE",
            Engine::Postgres => "BEGIN",
        })
    }

    /// Stores one downloaded body raw (its words are indexed later); a body already stored is
    /// kept. True when it was added.
    pub fn store_body_raw(&self, message_id: i64, raw: &[u8]) -> Result<bool> {
        insert_raw(&self.conn, message_id, raw, false)
    }

    pub fn bodies_commit(&self) -> Result<()> {
        self.conn.batch("COMMIT")
    }

    pub fn bodies_rollback(&self) {
        if self.conn.in_tx() {
            let _ = self.conn.batch("ROLLBACK");
        }
    }

    /// Counts what the account's bodies take (bodies of messages it holds a copy of) and
    /// records it on the account row, where `status` reads it: (count, bytes).
    pub fn refresh_bodies_total(&self, account_id: &str) -> Result<(i64, i64)> {
        let (n, bytes): (i64, i64) = self.conn.one(
            "SELECT COUNT(*), CAST(COALESCE(SUM(b.size), 0) AS BIGINT) FROM bodies b
             WHERE b.message_id IN (SELECT message_id FROM locations WHERE account_id = ?1)",
            args![account_id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        self.conn.exec(
            "UPDATE accounts SET bodies_count = ?2, bodies_bytes = ?3 WHERE id = ?1",
            args![account_id, n, bytes],
        )?;
        Ok((n, bytes))
    }

    /// Bulk bodies whose words are not in the search index yet: (message id, raw), at most
    /// `limit` of them and, past the first, at most `max_bytes` together.
    pub fn bodies_to_index(&self, limit: i64, max_bytes: usize) -> Result<Vec<(i64, Vec<u8>)>> {
        let mut v = Vec::new();
        let mut bytes = 0;
        self.conn.each(
            "SELECT message_id, raw FROM bodies WHERE indexed = 0 ORDER BY message_id LIMIT ?1",
            args![limit],
            |r| {
                if bytes < max_bytes {
                    let raw: Vec<u8> = r.get(1)?;
                    bytes += raw.len();
                    v.push((r.get(0)?, raw));
                }
                Ok(())
            },
        )?;
        Ok(v)
    }

    /// Puts the bodies' words into the search index (with the subject and addresses it has)
    /// and notes which have attachments, in one transaction: (id, text, has attachments).
    pub fn index_bodies(&mut self, items: &[(i64, String, bool)]) -> Result<()> {
        self.conn.tx(|| {
            for (id, text, attachments) in items {
                let row: Option<IndexedFields> = self.conn.first(
                    "SELECT subject, from_addr, from_name, to_json, cc_json FROM messages WHERE id = ?1",
                    args![id],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
                )?;
                if let Some((subject, from_addr, from_name, to, cc)) = row {
                    let addresses = super::search::addresses_text(&from_addr, &from_name, &to, &cc);
                    let doc = FtsDoc {
                        subject: subject.as_deref().unwrap_or_default(),
                        addresses: &addresses,
                        body: text,
                    };
                    fts_write(&self.conn, *id, &doc, true)?;
                    if *attachments {
                        self.conn
                            .exec("UPDATE messages SET has_attachments = 1 WHERE id = ?1", args![id])?;
                    }
                }
                self.conn
                    .exec("UPDATE bodies SET indexed = 1 WHERE message_id = ?1", args![id])?;
            }
            Ok(())
        })
    }
}
