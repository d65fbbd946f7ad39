//! Full-text search over the cache (issue 5), on either engine, with the same query language
//! and the same results.
//!
//! SQLite: `messages_fts` is a contentless FTS5 table (rowid = messages.id, columns subject,
//! addresses, body, tokenizer `unicode61 remove_diacritics 2`), queried with the escaped FTS5
//! expression `crm::search` builds.
//!
//! PostgreSQL: `messages_fts (message_id, doc tsvector)` with a GIN index. Its own text parsers
//! cut words differently from FTS5 (an address is one token there, `foo-bar` three, accents
//! stay), so mailroom cuts and folds the words itself, exactly as FTS5's tokenizer does
//! ([`fts_words`]), and hands PostgreSQL finished lexemes with their positions (a `tsvector`
//! literal) and finished queries (a `tsquery` literal) — no dictionary in between. The columns
//! follow each other with a gap of one position, so a phrase never spans two of them, as in
//! FTS5.

use std::collections::BTreeMap;

use super::Store;
use super::crm::CHUNK;
use super::mailbox::{MailRow, Window, mail_row};
use super::sql::{Conn, Engine, Owned, in_list, owned_args};
use crate::args;
use crate::error::Result;

/// What the search index holds of one message: its subject, the names and addresses of From,
/// To and Cc, and its readable text (empty until the body is fetched).
#[derive(Debug, Clone, Copy)]
pub(super) struct FtsDoc<'a> {
    pub subject: &'a str,
    pub addresses: &'a str,
    pub body: &'a str,
}

/// Writes message `id`'s entry in the search index, on either engine. `replace`: an entry may
/// exist already (a body arrived, a reindex) and is replaced; false for a message just created.
pub(super) fn fts_write(conn: &Conn, id: i64, doc: &FtsDoc<'_>, replace: bool) -> Result<()> {
    match conn.engine() {
        Engine::Sqlite => {
            if replace {
                conn.exec("DELETE FROM messages_fts WHERE rowid = ?1", args![id])?;
            }
            conn.exec(
                "INSERT INTO messages_fts (rowid, subject, addresses, body) VALUES (?1, ?2, ?3, ?4)",
                args![id, doc.subject, doc.addresses, doc.body],
            )?;
        }
        Engine::Postgres => {
            conn.exec(
                "INSERT INTO messages_fts (message_id, doc) VALUES (?1, CAST(?2 AS tsvector))
                 ON CONFLICT (message_id) DO UPDATE SET doc = excluded.doc",
                args![id, pg_tsvector(doc)],
            )?;
        }
    }
    Ok(())
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

/// One message's fields as `fts_reindex` reads them (the last: a body's raw bytes).
type IndexRow = (
    i64,
    Option<String>,
    Option<String>,
    Option<String>,
    String,
    String,
    Option<String>,
    Option<Vec<u8>>,
);

impl Store {
    /// (Re)indexes the given messages: idempotent, so sync may call it again when a body arrives.
    pub fn fts_reindex(&self, ids: &[i64]) -> Result<()> {
        for chunk in ids.chunks(CHUNK) {
            let values: Vec<Owned> = chunk.iter().map(|id| Owned::Int(*id)).collect();
            let rows: Vec<IndexRow> = self.conn.rows(
                &format!(
                    "SELECT m.id, m.subject, m.from_addr, m.from_name, m.to_json, m.cc_json,
                            COALESCE(b.text, m.text_body, CASE WHEN b.raw IS NOT NULL THEN '' END), b.raw
                     FROM messages m LEFT JOIN bodies b ON b.message_id = m.id WHERE m.id IN ({})",
                    in_list(1, chunk.len())
                ),
                &owned_args(&values),
                |r| {
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                        r.get(5)?,
                        r.get(6)?,
                        r.get(7)?,
                    ))
                },
            )?;
            let write = || {
                for (id, subject, from_addr, from_name, to, cc, body, raw) in &rows {
                    // A body downloaded in bulk has no text yet: take it out of the raw bytes.
                    let parsed = match (body.as_deref(), raw.as_deref()) {
                        (Some(""), Some(raw)) => {
                            crate::mail::parse::parse_body(raw).map(|b| b.text)
                        }
                        _ => None,
                    };
                    let addresses = addresses_text(from_addr, from_name, to, cc);
                    let doc = FtsDoc {
                        subject: subject.as_deref().unwrap_or_default(),
                        addresses: &addresses,
                        body: parsed.as_deref().or(body.as_deref()).unwrap_or_default(),
                    };
                    fts_write(&self.conn, *id, &doc, true)?;
                }
                Ok(())
            };
            // One transaction per chunk, or the caller's.
            if self.conn.in_tx() {
                write()?;
            } else {
                self.conn.tx(write)?;
            }
        }
        Ok(())
    }

    /// Every message id (for a full reindex).
    pub fn all_message_ids(&self) -> Result<Vec<i64>> {
        self.conn
            .rows("SELECT id FROM messages ORDER BY id", &[], |r| r.get(0))
    }

    /// Rows in the index versus messages: a cheap check that the index is complete.
    pub fn fts_counts(&self) -> Result<(i64, i64)> {
        let indexed: i64 = self
            .conn
            .one("SELECT COUNT(*) FROM messages_fts", &[], |r| r.get(0))?;
        let total: i64 = self
            .conn
            .one("SELECT COUNT(*) FROM messages", &[], |r| r.get(0))?;
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
fn contains(v: &str) -> Owned {
    Owned::Text(format!("%{}%", super::console::like_escape(v)))
}

/// The full-text side of a search on this engine: the query as the index reads it and the
/// statement that lists the matching message ids (its one parameter is the query). None: the
/// query can match nothing.
fn fts_match(engine: Engine, expr: &str) -> Option<(String, &'static str)> {
    match engine {
        Engine::Sqlite => Some((
            expr.to_string(),
            "SELECT rowid AS id FROM messages_fts WHERE messages_fts MATCH ?",
        )),
        Engine::Postgres => pg_tsquery(expr).map(|q| {
            (
                q,
                // Through the index also under row-level security (schema_pg.rs step 12).
                "SELECT f AS id FROM mailroom_fts(CAST(? AS tsquery)) f",
            )
        }),
    }
}

/// The WHERE clause of a search (after `WHERE`), its parameters pushed to `p`. `m` is the
/// message; the scope is its copies in the searched accounts (and folders). `fts`: the
/// full-text query as [`fts_match`] gives it.
fn search_where(
    engine: Engine,
    f: &SearchFilter,
    fts: Option<&(String, &str)>,
    p: &mut Vec<Owned>,
) -> String {
    let acc = placeholders(f.accounts.len());
    let mut scope = format!("l.message_id = m.id AND l.account_id IN ({acc})");
    let mut scope_p: Vec<Owned> = f.accounts.iter().map(|a| Owned::Text(a.clone())).collect();
    if !f.folders.is_empty() {
        let names = vec!["lower(CAST(? AS TEXT))"; f.folders.len()].join(", ");
        scope.push_str(&format!(
            " AND l.folder_id IN (SELECT id FROM folders WHERE lower(name) IN ({names}))"
        ));
        scope_p.extend(f.folders.iter().map(|n| Owned::Text(n.clone())));
    }
    let mut w = String::from("m.denied = 0");
    let exists = |w: &mut String, p: &mut Vec<Owned>, not: bool, extra: &str| {
        w.push_str(&format!(
            " AND {}EXISTS (SELECT 1 FROM locations l WHERE {scope}{extra})",
            if not { "NOT " } else { "" }
        ));
        p.extend(scope_p.iter().cloned());
    };
    if let Some((query, ids)) = fts {
        w.push_str(&format!(" AND m.id IN ({ids})"));
        p.push(Owned::Text(query.clone()));
    }
    exists(&mut w, p, false, "");
    match f.read {
        Some(false) => exists(&mut w, p, false, " AND l.seen = 0"),
        Some(true) => exists(&mut w, p, true, " AND l.seen = 0"),
        None => {}
    }
    let flagged = match engine {
        Engine::Sqlite => " AND instr(l.flags, '\\Flagged') > 0",
        Engine::Postgres => " AND strpos(l.flags, '\\Flagged') > 0",
    };
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
        p.push(Owned::Text(d.clone()));
    }
    if let Some(d) = &f.before {
        w.push_str(" AND m.date < ?");
        p.push(Owned::Text(d.clone()));
    }
    w
}

/// `?, ?, ?` for `n` values.
fn placeholders(n: usize) -> String {
    if n == 0 {
        return "NULL".into();
    }
    vec!["?"; n].join(", ")
}

/// At most this many full-text matches are read and sorted; more are found walking the dates.
const FEW_MATCHES: i64 = 2000;

/// One part of a search window: dated mail or mail without a date (which sorts last), in
/// `dir` order, with an extra keyset condition. Splitting the two keeps every keyset
/// condition a range on `messages_by_date` (one seek, rows in index order).
struct Part<'a> {
    dated: bool,
    cond: &'a str,
    params: Vec<Owned>,
    dir: &'static str,
}

/// The parts of a window, closest first, and whether they run oldest-first (and come back
/// reversed).
fn window_parts(window: &Window) -> (Vec<Part<'static>>, bool) {
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
    let text = |d: &String| Owned::Text(d.clone());
    match window {
        Window::Top => (
            vec![dated("", vec![], "DESC"), undated("", vec![], "DESC")],
            false,
        ),
        Window::After(k) | Window::From(k) => {
            let from = matches!(window, Window::From(_));
            let cond = if from {
                "AND m.date <= ? AND (m.date < ? OR m.id <= ?)"
            } else {
                "AND m.date <= ? AND (m.date < ? OR m.id < ?)"
            };
            let ncond = if from {
                "AND m.id <= ?"
            } else {
                "AND m.id < ?"
            };
            match &k.date {
                Some(d) => (
                    vec![
                        dated(cond, vec![text(d), text(d), Owned::Int(k.id)], "DESC"),
                        undated("", vec![], "DESC"),
                    ],
                    false,
                ),
                None => (vec![undated(ncond, vec![Owned::Int(k.id)], "DESC")], false),
            }
        }
        Window::Before(k) => match &k.date {
            Some(d) => (
                vec![dated(
                    "AND m.date >= ? AND (m.date > ? OR m.id > ?)",
                    vec![text(d), text(d), Owned::Int(k.id)],
                    "ASC",
                )],
                true,
            ),
            None => (
                vec![
                    undated("AND m.id > ?", vec![Owned::Int(k.id)], "ASC"),
                    dated("", vec![], "ASC"),
                ],
                true,
            ),
        },
        Window::Bottom => (
            vec![undated("", vec![], "ASC"), dated("", vec![], "ASC")],
            true,
        ),
    }
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
        let fts = match &f.fts {
            Some(expr) => match fts_match(self.engine(), expr) {
                Some(m) => Some(m),
                None => return Ok(Vec::new()),
            },
            None => None,
        };
        let (parts, reverse) = window_parts(window);
        // Few full-text matches: read them and sort them, rather than walk every date.
        let few = match &fts {
            Some((query, ids)) => {
                let n: i64 = self.conn.one(
                    &format!("SELECT COUNT(*) FROM ({ids}) hit"),
                    args![query.as_str()],
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
            rows.extend(self.search_part(f, fts.as_ref(), &part, left, few)?);
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
        fts: Option<&(String, &str)>,
        part: &Part<'_>,
        limit: i64,
        few: bool,
    ) -> Result<Vec<MailRow>> {
        let acc = placeholders(f.accounts.len());
        // The columns of a hit: its first visible copy's account and folder, the union of the
        // visible copies' flags, read when none of them is unread.
        let copy = format!("l.message_id = m.id AND l.account_id IN ({acc})");
        let mut p: Vec<Owned> = Vec::new();
        for _ in 0..4 {
            p.extend(f.accounts.iter().map(|a| Owned::Text(a.clone())));
        }
        // Driven by the date index (hits in order), or by the few full-text matches.
        let from = match (fts, few) {
            (Some((query, ids)), true) => {
                p.push(Owned::Text(query.clone()));
                format!("({ids}) hit CROSS JOIN messages m ON m.id = hit.id")
            }
            _ => "messages m INDEXED BY messages_by_date".to_string(),
        };
        let w = search_where(self.engine(), f, if few { None } else { fts }, &mut p);
        p.extend(part.params.iter().cloned());
        p.push(Owned::Int(limit));
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
                    (SELECT string_agg(l.flags, ' ') FROM locations l WHERE {copy}),
                    NOT EXISTS (SELECT 1 FROM locations l WHERE {copy} AND l.seen = 0),
                    m.date, m.customer_id
             FROM {from}
             WHERE {null} AND {w} {cond}
             ORDER BY m.date {dir}, m.id {dir} LIMIT ?",
            cond = part.cond
        );
        self.conn.rows(&sql, &owned_args(&p), |r| mail_row(r, None))
    }

    /// How many hits a search has.
    pub fn search_count(&self, f: &SearchFilter) -> Result<i64> {
        if f.accounts.is_empty() {
            return Ok(0);
        }
        let fts = match &f.fts {
            Some(expr) => match fts_match(self.engine(), expr) {
                Some(m) => Some(m),
                None => return Ok(0),
            },
            None => None,
        };
        let mut p: Vec<Owned> = Vec::new();
        let w = search_where(self.engine(), f, fts.as_ref(), &mut p);
        self.conn.one(
            &format!("SELECT COUNT(*) FROM messages m WHERE {w}"),
            &owned_args(&p),
            |r| r.get(0),
        )
    }
}

// ------------------------------------------------------------------ PostgreSQL's lexemes

/// The longest lexeme PostgreSQL stores (bytes); a longer word is left out of its index.
const PG_MAX_LEXEME: usize = 2046;
/// The room for distinct lexemes in one tsvector (PostgreSQL refuses more than 1 MiB).
const PG_MAX_LEXEMES_BYTES: usize = 1_000_000;
/// Positions PostgreSQL keeps: at most 256 per lexeme, none past 16383.
const PG_MAX_POSITIONS: usize = 256;
const PG_MAX_POSITION: u32 = 16383;

/// Calls `f` with each word of `text` as SQLite's FTS5 tokenizer `unicode61 remove_diacritics
/// 2` cuts and folds it: runs of letters, digits and private-use characters (combining marks
/// other than the accents U+0300–U+036F separate words), lower-cased, with the accents taken
/// off Latin letters (`Élan` → `elan`; `ø`, `ß`, Greek and Cyrillic keep theirs).
pub(super) fn fts_words(text: &str, mut f: impl FnMut(&str)) {
    let mut word = String::new();
    for c in text.chars() {
        if is_fts_accent(c) {
            continue;
        }
        if is_fts_word_char(c) {
            fold_into(c, &mut word);
        } else if !word.is_empty() {
            f(&word);
            word.clear();
        }
    }
    if !word.is_empty() {
        f(&word);
    }
}

/// The combining accents FTS5 counts as part of a word and then drops.
fn is_fts_accent(c: char) -> bool {
    ('\u{300}'..='\u{36f}').contains(&c)
}

fn is_fts_word_char(c: char) -> bool {
    let private = matches!(c as u32, 0xE000..=0xF8FF | 0xF0000..=0xFFFFD | 0x100000..=0x10FFFD);
    (c.is_alphanumeric() && !unicode_normalization::char::is_combining_mark(c)) || private
}

/// Appends `c` lower-cased, without the accent of a Latin letter.
fn fold_into(c: char, word: &mut String) {
    for l in c.to_lowercase() {
        if is_fts_accent(l) {
            continue; // İ lower-cases to i and a combining dot
        }
        let l = if l == 'ſ' { 's' } else { l };
        if matches!(l as u32, 0xC0..=0x24F | 0x1E00..=0x1EFF) {
            let mut base = None;
            unicode_normalization::char::decompose_canonical(l, |d| {
                base.get_or_insert(d);
            });
            word.push(base.unwrap_or(l));
        } else {
            word.push(l);
        }
    }
}

/// A lexeme quoted for a tsvector or tsquery literal.
fn pg_quote(w: &str) -> String {
    format!("'{}'", w.replace('\\', "\\\\").replace('\'', "''"))
}

/// The weight that marks a column's words in the tsvector (FTS5's column filters become weight
/// filters in the tsquery): subject A, addresses B, body C.
const PG_WEIGHTS: [(&str, char); 3] = [("subject", 'A'), ("addresses", 'B'), ("body", 'C')];

/// The tsvector literal of a message's index entry: each word once, with its positions, each
/// position weighted by its column.
pub(super) fn pg_tsvector(doc: &FtsDoc<'_>) -> String {
    let mut lexemes: BTreeMap<String, Vec<(u32, char)>> = BTreeMap::new();
    let mut room = PG_MAX_LEXEMES_BYTES;
    let mut pos: u32 = 0;
    let mut add = |w: &str, p: u32, weight: char| {
        if let Some(ps) = lexemes.get_mut(w) {
            if ps.len() < PG_MAX_POSITIONS && ps.last().map(|l| l.0) != Some(p) {
                ps.push((p, weight));
            }
        } else if w.len() <= PG_MAX_LEXEME && w.len() <= room {
            room -= w.len();
            lexemes.insert(w.to_string(), vec![(p, weight)]);
        }
    };
    let columns = [doc.subject, doc.addresses, doc.body];
    for (text, (_, weight)) in columns.into_iter().zip(PG_WEIGHTS) {
        fts_words(text, |w| {
            pos += 1;
            add(w, pos.min(PG_MAX_POSITION), weight);
        });
        // A gap: the next column's first word is never next to this one's last.
        pos = pos.saturating_add(1);
    }
    let mut out = String::new();
    for (w, ps) in &lexemes {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(&pg_quote(w));
        let ps: Vec<String> = ps
            .iter()
            .map(|(p, weight)| format!("{p}{weight}"))
            .collect();
        out.push(':');
        out.push_str(&ps.join(","));
    }
    out
}

/// One term of an FTS5 expression: its text, whether it is a prefix, and the column it is
/// limited to.
struct Term {
    text: String,
    prefix: bool,
    column: Option<String>,
}

/// The terms of an FTS5 expression as `crm::search`/`crm::query` build them: `"…"` phrases
/// (`""` inside for a quote), a `*` after one for a prefix, `column : ` before one to limit it
/// to a column; a bare word counts as a phrase of its own.
fn fts_terms(expr: &str) -> Vec<Term> {
    let mut out = Vec::new();
    let mut chars = expr.chars().peekable();
    let mut column: Option<String> = None;
    while let Some(c) = chars.next() {
        if c.is_whitespace() {
            continue;
        }
        let mut text = String::new();
        let quoted = c == '"';
        if quoted {
            while let Some(c) = chars.next() {
                match c {
                    '"' if chars.peek() == Some(&'"') => {
                        chars.next();
                        text.push('"');
                    }
                    '"' => break,
                    c => text.push(c),
                }
            }
        } else {
            text.push(c);
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() || c == '"' || c == '*' || c == ':' {
                    break;
                }
                text.push(c);
                chars.next();
            }
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if !quoted && chars.peek() == Some(&':') {
            // `column :` — the next term is limited to it.
            chars.next();
            column = Some(text);
            continue;
        }
        let prefix = chars.peek() == Some(&'*');
        if prefix {
            chars.next();
        }
        out.push(Term {
            text,
            prefix,
            column: column.take(),
        });
    }
    out
}

/// The tsquery literal that finds what `fts_expr` finds in FTS5: every phrase required, its
/// words next to each other, a prefix on the last word of a starred one, a column filter as
/// the column's weight. None: it can find nothing (no phrase has a word, or a word is too long
/// for PostgreSQL's index).
fn pg_tsquery(fts_expr: &str) -> Option<String> {
    let mut parts = Vec::new();
    for term in fts_terms(fts_expr) {
        let mut words = Vec::new();
        fts_words(&term.text, |w| words.push(w.to_string()));
        if words.iter().any(|w| w.len() > PG_MAX_LEXEME) {
            return None;
        }
        let weight = match &term.column {
            Some(c) => match PG_WEIGHTS.iter().find(|(name, _)| name == c) {
                Some((_, w)) => w.to_string(),
                None => return None,
            },
            None => String::new(),
        };
        let n = words.len();
        let phrase: Vec<String> = words
            .iter()
            .enumerate()
            .map(|(i, w)| {
                let star = if term.prefix && i + 1 == n { "*" } else { "" };
                let label = format!("{star}{weight}");
                if label.is_empty() {
                    pg_quote(w)
                } else {
                    format!("{}:{label}", pg_quote(w))
                }
            })
            .collect();
        // A phrase without a word is left out, as FTS5 leaves it out.
        if !phrase.is_empty() {
            parts.push(format!("({})", phrase.join(" <-> ")));
        }
    }
    (!parts.is_empty()).then(|| parts.join(" & "))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Migration 14: SQLite's index is never merged for its tombstones alone.
    #[test]
    fn the_search_index_does_not_merge_for_tombstones() {
        let s = Store::open_in_memory().unwrap();
        let v: i64 = s
            .conn
            .one(
                "SELECT v FROM messages_fts_config WHERE k = 'deletemerge'",
                &[],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(v, 0);
    }

    #[test]
    fn fts_expressions_become_tsqueries_with_columns_prefixes_and_phrases() {
        assert_eq!(
            pg_tsquery("\"Élan\"* \"two words\" addresses : \"ann\"* subject : \"x\"\"y\"*")
                .as_deref(),
            Some("('elan':*) & ('two' <-> 'words') & ('ann':*B) & ('x':A <-> 'y':*A)")
        );
        assert_eq!(pg_tsquery("\"\" \"--\""), None);
        let v = pg_tsvector(&FtsDoc {
            subject: "Hello hello",
            addresses: "Ann ann@x.example",
            body: "",
        });
        assert_eq!(v, "'ann':4B,5B 'example':7B 'hello':1A,2A 'x':6B");
    }

    /// The same queries find the same messages on both engines (words, phrases, prefixes,
    /// accents, column filters).
    #[test]
    fn both_engines_find_the_same_mail() {
        crate::store::testing::each(|s| {
            let f = s.fixture_folder("a1", "INBOX", None).unwrap();
            let docs = [
                (
                    "Résumé of the café meeting",
                    "ann@client.example",
                    "see the attached file",
                ),
                ("Invoice #42", "bob@example.test", "please pay the invoice"),
                (
                    "Meeting notes",
                    "Ann Other ann@other.example",
                    "café au lait",
                ),
            ];
            let mut ids = Vec::new();
            for (i, (subject, from, body)) in docs.iter().enumerate() {
                let m = crate::store::FixtureMessage {
                    message_id: Some(format!("s{i}@x")),
                    from_addr: from.to_string(),
                    subject: subject.to_string(),
                    date: format!("2026-02-0{}T10:00:00Z", i + 1),
                    direction: "in",
                    ..Default::default()
                };
                let id = s.fixture_message("a1", f, i as i64 + 1, &m).unwrap();
                s.set_body(id, b"raw", body, false).unwrap();
                ids.push(id);
            }
            let find = |fts: &str| {
                let f = crate::store::SearchFilter {
                    fts: Some(fts.into()),
                    accounts: vec!["a1".into()],
                    ..Default::default()
                };
                let mut hits: Vec<i64> = s
                    .search_window(&f, &crate::store::Window::Top, 10)
                    .unwrap()
                    .iter()
                    .map(|r| ids.iter().position(|i| *i == r.id).unwrap() as i64)
                    .collect();
                hits.sort();
                assert_eq!(s.search_count(&f).unwrap(), hits.len() as i64, "{fts}");
                hits
            };
            assert_eq!(find("\"cafe\""), [0, 2], "accents fold");
            assert_eq!(find("\"meet\"*"), [0, 2], "prefix");
            assert_eq!(find("\"the attached\""), [0], "phrase");
            assert_eq!(find("\"attached the\""), Vec::<i64>::new(), "phrase order");
            assert_eq!(find("subject : \"meeting\"*"), [0, 2], "column");
            assert_eq!(find("addresses : \"ann\"*"), [0, 2], "address column");
            assert_eq!(find("subject : \"invoice\"*"), [1]);
            assert_eq!(find("addresses : \"invoice\"*"), Vec::<i64>::new());
            assert_eq!(find("\"invoice\" \"pay\""), [1], "every term");
            assert_eq!(
                find("\"client\" \"example\""),
                [0],
                "address parts are words"
            );
        });
    }
}

#[cfg(test)]
mod tokenizer_check {
    use super::*;

    /// Compares [`fts_words`] with FTS5's own tokenizer for every code point below U+30000
    /// (slow: `cargo test --lib tokenizer_check -- --ignored --nocapture`).
    #[test]
    #[ignore]
    fn fts_words_cut_as_fts5_does() {
        let c = rusqlite::Connection::open_in_memory().unwrap();
        c.execute_batch("CREATE VIRTUAL TABLE t USING fts5(a, tokenize='unicode61 remove_diacritics 2'); CREATE VIRTUAL TABLE v USING fts5vocab(t, 'instance');").unwrap();
        let mut bad = 0;
        let mut docs = Vec::new();
        for cp in 0x20u32..0x30000 {
            let Some(ch) = char::from_u32(cp) else {
                continue;
            };
            let text = format!("q{ch}z {ch} Z{ch}");
            docs.push((cp, text));
        }
        for (i, (_, text)) in docs.iter().enumerate() {
            c.execute(
                "INSERT INTO t (rowid, a) VALUES (?1, ?2)",
                rusqlite::params![i as i64 + 1, text],
            )
            .unwrap();
        }
        let mut st = c
            .prepare("SELECT doc, term FROM v ORDER BY doc, offset")
            .unwrap();
        let mut fts: std::collections::HashMap<i64, Vec<String>> = Default::default();
        for r in st
            .query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))
            .unwrap()
        {
            let (d, t) = r.unwrap();
            fts.entry(d).or_default().push(t);
        }
        for (i, (cp, text)) in docs.iter().enumerate() {
            let mut mine = Vec::new();
            fts_words(text, |w| mine.push(w.to_string()));
            let theirs = fts.remove(&(i as i64 + 1)).unwrap_or_default();
            if mine != theirs {
                bad += 1;
                println!("MM {cp} U+{cp:04X} mine {mine:?} fts {theirs:?}");
            }
        }
        println!("mismatches: {bad} of {}", docs.len());
        assert_eq!(bad, 0);
    }
}
