//! Full-text search over the cache (issue 5): `messages_fts` is contentless (rowid =
//! messages.id), so it is (re)filled from the messages rows and queried with an already-escaped
//! FTS5 expression built by `crm::search`.

use rusqlite::{params, params_from_iter};
use serde::Serialize;

use super::Store;
use super::crm::{CHUNK, placeholders};
use crate::error::Result;

#[derive(Debug, Clone, Serialize)]
pub struct SearchRow {
    pub id: i64,
    pub account_id: String,
    pub date: Option<String>,
    pub from_addr: Option<String>,
    pub from_name: Option<String>,
    pub subject: Option<String>,
    pub direction: String,
    pub customer_id: Option<i64>,
}

/// The text of the `addresses` column: names and addresses of From, To and Cc.
pub(super) fn addresses_text(
    from_addr: &Option<String>,
    from_name: &Option<String>,
    to: &str,
    cc: &str,
) -> String {
    let mut out = String::new();
    for s in [from_name, from_addr].into_iter().flatten() {
        out.push_str(s);
        out.push(' ');
    }
    for list in [to, cc] {
        if let Ok(serde_json::Value::Array(items)) = serde_json::from_str::<serde_json::Value>(list)
        {
            for it in items {
                for k in ["name", "address"] {
                    if let Some(s) = it.get(k).and_then(|v| v.as_str()) {
                        out.push_str(s);
                        out.push(' ');
                    }
                }
            }
        }
    }
    out
}

impl Store {
    /// (Re)indexes the given messages: idempotent, so sync may call it again when a body arrives.
    pub fn fts_reindex(&self, ids: &[i64]) -> Result<()> {
        for chunk in ids.chunks(CHUNK) {
            let mut st = self.conn.prepare_cached(&format!(
                "SELECT m.id, m.subject, m.from_addr, m.from_name, m.to_json, m.cc_json,
                        COALESCE(b.text, m.text_body, CASE WHEN b.raw IS NOT NULL THEN '' END), b.raw
                 FROM messages m LEFT JOIN bodies b ON b.message_id = m.id WHERE m.id IN ({})",
                placeholders(chunk.len())
            ))?;
            let rows = st
                .query_map(params_from_iter(chunk), |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, Option<String>>(1)?,
                        r.get::<_, Option<String>>(2)?,
                        r.get::<_, Option<String>>(3)?,
                        r.get::<_, String>(4)?,
                        r.get::<_, String>(5)?,
                        r.get::<_, Option<String>>(6)?,
                        r.get::<_, Option<Vec<u8>>>(7)?,
                    ))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let mut del = self
                .conn
                .prepare_cached("DELETE FROM messages_fts WHERE rowid = ?1")?;
            let mut ins = self.conn.prepare_cached(
                "INSERT INTO messages_fts (rowid, subject, addresses, body) VALUES (?1, ?2, ?3, ?4)",
            )?;
            for (id, subject, from_addr, from_name, to, cc, mut body, raw) in rows {
                // A body downloaded in bulk has no text yet: take it out of the raw bytes.
                if body.as_deref() == Some("")
                    && let Some(raw) = raw.as_deref()
                {
                    body = crate::mail::parse::parse_body(raw).map(|b| b.text);
                }
                del.execute([id])?;
                let addrs = addresses_text(&from_addr, &from_name, &to, &cc);
                ins.execute(params![
                    id,
                    subject.unwrap_or_default(),
                    addrs,
                    body.unwrap_or_default()
                ])?;
            }
        }
        Ok(())
    }

    /// Every message id (for a full reindex).
    pub fn all_message_ids(&self) -> Result<Vec<i64>> {
        let mut st = self.conn.prepare("SELECT id FROM messages ORDER BY id")?;
        let v = st
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<Vec<i64>>>()?;
        Ok(v)
    }

    /// Rows in the index versus messages: a cheap check that the index is complete.
    pub fn fts_counts(&self) -> Result<(i64, i64)> {
        let indexed: i64 = self
            .conn
            .query_row("SELECT COUNT(*) FROM messages_fts", [], |r| r.get(0))?;
        let total: i64 = self
            .conn
            .query_row("SELECT COUNT(*) FROM messages", [], |r| r.get(0))?;
        Ok((indexed, total))
    }

    /// Messages matching `fts_expr` (already escaped) in one of `accounts`, newest first.
    pub fn search(
        &self,
        fts_expr: &str,
        accounts: &[String],
        limit: i64,
        offset: i64,
    ) -> Result<(i64, Vec<SearchRow>)> {
        if accounts.is_empty() {
            return Ok((0, Vec::new()));
        }
        let acc = placeholders(accounts.len());
        let visible = format!(
            "m.denied = 0 AND EXISTS (SELECT 1 FROM locations l WHERE l.message_id = m.id AND l.account_id IN ({acc}))"
        );
        let mut p: Vec<rusqlite::types::Value> = vec![fts_expr.to_string().into()];
        p.extend(accounts.iter().map(|a| a.clone().into()));
        let total: i64 = self.conn.query_row(
            &format!(
                "SELECT COUNT(*) FROM messages_fts f JOIN messages m ON m.id = f.rowid
                 WHERE messages_fts MATCH ? AND {visible}"
            ),
            params_from_iter(p.clone()),
            |r| r.get(0),
        )?;
        let mut q: Vec<rusqlite::types::Value> =
            accounts.iter().map(|a| a.clone().into()).collect();
        q.extend(p);
        q.push(limit.into());
        q.push(offset.into());
        let mut st = self.conn.prepare(&format!(
            "SELECT m.id, (SELECT l.account_id FROM locations l WHERE l.message_id = m.id AND l.account_id IN ({acc}) LIMIT 1),
                    m.date, m.from_addr, m.from_name, m.subject, m.direction, m.customer_id
             FROM messages_fts f JOIN messages m ON m.id = f.rowid
             WHERE messages_fts MATCH ? AND {visible}
             ORDER BY m.date DESC, m.id DESC LIMIT ? OFFSET ?"
        ))?;
        let rows = st
            .query_map(params_from_iter(q), |r| {
                Ok(SearchRow {
                    id: r.get(0)?,
                    account_id: r.get::<_, Option<String>>(1)?.unwrap_or_default(),
                    date: r.get(2)?,
                    from_addr: r.get(3)?,
                    from_name: r.get(4)?,
                    subject: r.get(5)?,
                    direction: r.get(6)?,
                    customer_id: r.get(7)?,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok((total, rows))
    }
}
