//! Search over the cache: `messages_fts` is contentless (rowid = messages.id), so it is
//! (re)filled from the messages rows; a search ([`SearchFilter`], built by `crm::query`) narrows
//! by an already-escaped FTS5 expression and checks every filter with bound values.

use rusqlite::types::Value;
use rusqlite::{params, params_from_iter};

use super::Store;
use super::crm::{CHUNK, placeholders};
use super::mailbox::{MailRow, Window, mail_row};
use crate::error::Result;

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
}

/// A parsed search as the store runs it (built by `crm::query`): every value is bound, never
/// pasted into the SQL.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SearchFilter {
    /// An already-escaped FTS5 expression that narrows the candidates (words, and the text
    /// filters as column prefilters).
    pub fts: Option<String>,
    /// Each must occur (case-insensitive) in the sender's name or address.
    pub from: Vec<String>,
    /// Each must occur among the To/Cc names and addresses.
    pub to: Vec<String>,
    /// Each must occur in the subject.
    pub subject: Vec<String>,
    /// `YYYY-MM-DD`: on or after that day.
    pub since: Option<String>,
    /// `YYYY-MM-DD`: before that day.
    pub before: Option<String>,
    /// Some(false): some copy in scope is unread; Some(true): none is.
    pub read: Option<bool>,
    /// Some(true): some copy in scope is flagged; Some(false): none is.
    pub flagged: Option<bool>,
    /// Folder names (any; case-insensitive); empty: every folder.
    pub folders: Vec<String>,
    /// The accounts searched (ids); empty: nothing.
    pub accounts: Vec<String>,
}

/// `%value%` for LIKE with its wildcards escaped.
fn contains(v: &str) -> Value {
    format!("%{}%", super::console::like_escape(v)).into()
}

/// The WHERE clause of a search (after `WHERE`), its parameters pushed to `p`. `m` is the
/// message; the scope is its copies in the searched accounts (and folders).
fn search_where(f: &SearchFilter, p: &mut Vec<Value>) -> String {
    let acc = placeholders(f.accounts.len());
    let mut scope = format!("l.message_id = m.id AND l.account_id IN ({acc})");
    let mut scope_p: Vec<Value> = f.accounts.iter().map(|a| a.clone().into()).collect();
    if !f.folders.is_empty() {
        let names = vec!["lower(?)"; f.folders.len()].join(", ");
        scope.push_str(&format!(
            " AND l.folder_id IN (SELECT id FROM folders WHERE lower(name) IN ({names}))"
        ));
        scope_p.extend(f.folders.iter().map(|n| Value::from(n.clone())));
    }
    let mut w = String::from("m.denied = 0");
    let exists = |w: &mut String, p: &mut Vec<Value>, not: bool, extra: &str| {
        w.push_str(&format!(
            " AND {}EXISTS (SELECT 1 FROM locations l WHERE {scope}{extra})",
            if not { "NOT " } else { "" }
        ));
        p.extend(scope_p.iter().cloned());
    };
    if let Some(fts) = &f.fts {
        w.push_str(" AND m.id IN (SELECT rowid FROM messages_fts WHERE messages_fts MATCH ?)");
        p.push(fts.clone().into());
    }
    exists(&mut w, p, false, "");
    match f.read {
        Some(false) => exists(&mut w, p, false, " AND l.seen = 0"),
        Some(true) => exists(&mut w, p, true, " AND l.seen = 0"),
        None => {}
    }
    let flagged = " AND instr(l.flags, '\\Flagged') > 0";
    match f.flagged {
        Some(true) => exists(&mut w, p, false, flagged),
        Some(false) => exists(&mut w, p, true, flagged),
        None => {}
    }
    for v in &f.from {
        w.push_str(" AND (m.from_addr LIKE ? ESCAPE '\\' OR m.from_name LIKE ? ESCAPE '\\')");
        p.extend([contains(v), contains(v)]);
    }
    for v in &f.to {
        w.push_str(" AND (m.to_json LIKE ? ESCAPE '\\' OR m.cc_json LIKE ? ESCAPE '\\')");
        p.extend([contains(v), contains(v)]);
    }
    for v in &f.subject {
        w.push_str(" AND m.subject LIKE ? ESCAPE '\\'");
        p.push(contains(v));
    }
    if let Some(d) = &f.since {
        w.push_str(" AND m.date >= ?");
        p.push(d.clone().into());
    }
    if let Some(d) = &f.before {
        w.push_str(" AND m.date < ?");
        p.push(d.clone().into());
    }
    w
}

/// At most this many full-text matches are read and sorted; more are found walking the dates.
const FEW_MATCHES: i64 = 2000;

/// One part of a search window: dated mail or mail without a date (which sorts last), in
/// `dir` order, with an extra keyset condition. Splitting the two keeps every keyset
/// condition a range on `messages_by_date` (one seek, rows in index order).
struct Part<'a> {
    dated: bool,
    cond: &'a str,
    params: Vec<Value>,
    dir: &'static str,
}

impl Store {
    /// One window of a search's hits, newest first (the console's results, `search`).
    pub fn search_window(
        &self,
        f: &SearchFilter,
        window: &Window,
        limit: i64,
    ) -> Result<Vec<MailRow>> {
        if f.accounts.is_empty() {
            return Ok(Vec::new());
        }
        let dated = |cond, params, dir| Part {
            dated: true,
            cond,
            params,
            dir,
        };
        let undated = |cond, params, dir| Part {
            dated: false,
            cond,
            params,
            dir,
        };
        // (the parts, closest first; whether they run oldest-first and come back reversed)
        let (parts, reverse): (Vec<Part<'_>>, bool) = match window {
            Window::Top => (
                vec![dated("", vec![], "DESC"), undated("", vec![], "DESC")],
                false,
            ),
            Window::After(k) | Window::From(k) => {
                let op = if matches!(window, Window::From(_)) {
                    "<="
                } else {
                    "<"
                };
                let cond = match op {
                    "<=" => "AND m.date <= ? AND (m.date < ? OR m.id <= ?)",
                    _ => "AND m.date <= ? AND (m.date < ? OR m.id < ?)",
                };
                let ncond = match op {
                    "<=" => "AND m.id <= ?",
                    _ => "AND m.id < ?",
                };
                match &k.date {
                    Some(d) => (
                        vec![
                            dated(
                                cond,
                                vec![d.clone().into(), d.clone().into(), k.id.into()],
                                "DESC",
                            ),
                            undated("", vec![], "DESC"),
                        ],
                        false,
                    ),
                    None => (vec![undated(ncond, vec![k.id.into()], "DESC")], false),
                }
            }
            Window::Before(k) => match &k.date {
                Some(d) => (
                    vec![dated(
                        "AND m.date >= ? AND (m.date > ? OR m.id > ?)",
                        vec![d.clone().into(), d.clone().into(), k.id.into()],
                        "ASC",
                    )],
                    true,
                ),
                None => (
                    vec![
                        undated("AND m.id > ?", vec![k.id.into()], "ASC"),
                        dated("", vec![], "ASC"),
                    ],
                    true,
                ),
            },
            Window::Bottom => (
                vec![undated("", vec![], "ASC"), dated("", vec![], "ASC")],
                true,
            ),
        };
        // Few full-text matches: read them and sort them, rather than walk every date.
        let few = match &f.fts {
            Some(expr) => {
                let n: i64 = self.conn.query_row(
                    "SELECT COUNT(*) FROM messages_fts WHERE messages_fts MATCH ?1",
                    [expr],
                    |r| r.get(0),
                )?;
                n <= FEW_MATCHES
            }
            None => false,
        };
        let mut rows = Vec::new();
        for part in parts {
            let left = limit - rows.len() as i64;
            if left <= 0 {
                break;
            }
            rows.extend(self.search_part(f, &part, left, few)?);
        }
        if reverse {
            rows.reverse();
        }
        for r in &mut rows {
            r.flags.sort();
            r.flags.dedup();
        }
        Ok(rows)
    }

    fn search_part(
        &self,
        f: &SearchFilter,
        part: &Part<'_>,
        limit: i64,
        few: bool,
    ) -> Result<Vec<MailRow>> {
        let acc = placeholders(f.accounts.len());
        // The columns of a hit: its first visible copy's account and folder, the union of the
        // visible copies' flags, read when none of them is unread.
        let copy = format!("l.message_id = m.id AND l.account_id IN ({acc})");
        let mut p: Vec<Value> = Vec::new();
        for _ in 0..4 {
            p.extend(f.accounts.iter().map(|a| Value::from(a.clone())));
        }
        // Driven by the date index (hits in order), or by the few full-text matches.
        let from = match (&f.fts, few) {
            (Some(expr), true) => {
                p.push(expr.clone().into());
                "(SELECT rowid AS id FROM messages_fts WHERE messages_fts MATCH ?) hit
                 CROSS JOIN messages m ON m.id = hit.id"
            }
            _ => "messages m INDEXED BY messages_by_date",
        };
        let w = if few {
            let without = SearchFilter {
                fts: None,
                ..f.clone()
            };
            search_where(&without, &mut p)
        } else {
            search_where(f, &mut p)
        };
        p.extend(part.params.iter().cloned());
        p.push(limit.into());
        let (null, dir) = (
            if part.dated {
                "m.date IS NOT NULL"
            } else {
                "m.date IS NULL"
            },
            part.dir,
        );
        let sql = format!(
            "SELECT m.id, COALESCE(m.thread_id, m.id),
                    (SELECT l.account_id FROM locations l WHERE {copy} ORDER BY l.id LIMIT 1),
                    (SELECT f.name FROM locations l JOIN folders f ON f.id = l.folder_id WHERE {copy} ORDER BY l.id LIMIT 1),
                    m.date, m.from_addr, m.from_name, m.to_json, m.subject, m.size, m.has_attachments, m.direction,
                    (SELECT group_concat(l.flags, ' ') FROM locations l WHERE {copy}),
                    NOT EXISTS (SELECT 1 FROM locations l WHERE {copy} AND l.seen = 0),
                    m.date, m.customer_id
             FROM {from}
             WHERE {null} AND {w} {cond}
             ORDER BY m.date {dir}, m.id {dir} LIMIT ?",
            cond = part.cond
        );
        let mut st = self.conn.prepare(&sql)?;
        let rows = st
            .query_map(params_from_iter(p), |r| mail_row(r, None))?
            .collect::<rusqlite::Result<Vec<MailRow>>>()?;
        Ok(rows)
    }

    /// How many hits a search has.
    pub fn search_count(&self, f: &SearchFilter) -> Result<i64> {
        if f.accounts.is_empty() {
            return Ok(0);
        }
        let mut p: Vec<Value> = Vec::new();
        let w = search_where(f, &mut p);
        Ok(self.conn.query_row(
            &format!("SELECT COUNT(*) FROM messages m WHERE {w}"),
            params_from_iter(p),
            |r| r.get(0),
        )?)
    }
}
