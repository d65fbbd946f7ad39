//! Typed, paged reads for the console (issue 6). Every list here takes LIMIT/OFFSET so a pane
//! only ever holds the rows it can show, whatever the size of the cache.

use rusqlite::{OptionalExtension, params};

use super::Store;
use crate::error::Result;

/// One row of a message list (triage inbox, a customer's timeline).
#[derive(Debug, Clone, PartialEq)]
pub struct MessageSummary {
    pub id: i64,
    pub from_name: Option<String>,
    pub from_addr: Option<String>,
    pub subject: Option<String>,
    pub date: Option<String>,
    pub seen: bool,
    pub has_attachments: bool,
    pub direction: String,
    pub size: Option<i64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct MessageDetail {
    pub summary: MessageSummary,
    pub message_id: Option<String>,
    pub to_json: String,
    pub cc_json: String,
    pub text_body: Option<String>,
    pub body_fetched: bool,
    pub customer: Option<String>,
    /// "account/folder" of every place the message is stored.
    pub locations: Vec<String>,
    /// Filled by the caller from the parsed body (the store does not parse MIME).
    pub attachments: Vec<AttachmentInfo>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AttachmentInfo {
    pub index: usize,
    pub name: Option<String>,
    pub content_type: String,
    pub size: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct OutboxRow {
    pub id: i64,
    pub account_id: String,
    pub from_addr: String,
    pub rcpt_json: String,
    pub subject: Option<String>,
    pub state: String,
    pub copy_state: Option<String>,
    pub attempts: i64,
    pub last_error_what: Option<String>,
    pub last_error_fix: Option<String>,
    pub next_attempt_at: Option<String>,
    pub updated_at: String,
}

const SUMMARY_COLS: &str = "m.id, m.from_name, m.from_addr, m.subject, m.date,
    EXISTS (SELECT 1 FROM locations l WHERE l.message_id = m.id AND l.seen = 1),
    m.has_attachments, m.direction, m.size";

fn summary(r: &rusqlite::Row<'_>) -> rusqlite::Result<MessageSummary> {
    Ok(MessageSummary {
        id: r.get(0)?,
        from_name: r.get(1)?,
        from_addr: r.get(2)?,
        subject: r.get(3)?,
        date: r.get(4)?,
        seen: r.get(5)?,
        has_attachments: r.get(6)?,
        direction: r.get(7)?,
        size: r.get(8)?,
    })
}

pub(super) fn like_escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

/// `abc` → `%a%b%c%`: a subsequence ("fuzzy") match that SQLite can run over the whole book.
pub fn fuzzy_pattern(q: &str) -> String {
    let mut p = String::from("%");
    for c in q.chars().filter(|c| !c.is_whitespace()) {
        p.push_str(&like_escape(&c.to_string()));
        p.push('%');
    }
    p
}

impl Store {
    pub fn view_message(&self, id: i64) -> Result<Option<MessageDetail>> {
        let row = self
            .conn
            .query_row(
                &format!(
                    "SELECT {SUMMARY_COLS}, m.message_id, m.to_json, m.cc_json, m.text_body,
                            m.body IS NOT NULL, c.name
                     FROM messages m LEFT JOIN customers c ON c.id = m.customer_id WHERE m.id = ?1"
                ),
                [id],
                |r| {
                    Ok(MessageDetail {
                        summary: summary(r)?,
                        message_id: r.get(9)?,
                        to_json: r.get(10)?,
                        cc_json: r.get(11)?,
                        text_body: r.get(12)?,
                        body_fetched: r.get(13)?,
                        customer: r.get(14)?,
                        locations: Vec::new(),
                        attachments: Vec::new(),
                    })
                },
            )
            .optional()?;
        let Some(mut d) = row else { return Ok(None) };
        let mut st = self.conn.prepare_cached(
            "SELECT COALESCE(a.name, l.account_id), f.name FROM locations l
             JOIN folders f ON f.id = l.folder_id LEFT JOIN accounts a ON a.id = l.account_id
             WHERE l.message_id = ?1 ORDER BY 1, 2",
        )?;
        d.locations = st
            .query_map([id], |r| {
                Ok(format!(
                    "{}/{}",
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?
                ))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(Some(d))
    }

    /// Outbox items, newest first.
    pub fn view_outbox_page(&self, offset: i64, limit: i64) -> Result<Vec<OutboxRow>> {
        let mut st = self.conn.prepare_cached(
            "SELECT id, account_id, from_addr, rcpt_json, subject, state, copy_state, attempts,
                    last_error_what, last_error_fix, next_attempt_at, updated_at
             FROM outbox ORDER BY id DESC LIMIT ?1 OFFSET ?2",
        )?;
        let rows = st
            .query_map(params![limit, offset], |r| {
                Ok(OutboxRow {
                    id: r.get(0)?,
                    account_id: r.get(1)?,
                    from_addr: r.get(2)?,
                    rcpt_json: r.get(3)?,
                    subject: r.get(4)?,
                    state: r.get(5)?,
                    copy_state: r.get(6)?,
                    attempts: r.get(7)?,
                    last_error_what: r.get(8)?,
                    last_error_fix: r.get(9)?,
                    next_attempt_at: r.get(10)?,
                    updated_at: r.get(11)?,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    pub fn view_outbox_total(&self) -> Result<i64> {
        Ok(self
            .conn
            .query_row("SELECT COUNT(*) FROM outbox", [], |r| r.get(0))?)
    }

    /// Customer addresses for completion: the address or the customer's name starts with
    /// `prefix` (case-insensitive). Returns (name, address).
    pub fn view_address_completions(
        &self,
        prefix: &str,
        limit: i64,
    ) -> Result<Vec<(String, String)>> {
        let p = format!("{}%", like_escape(&prefix.to_lowercase()));
        let mut st = self.conn.prepare_cached(
            "SELECT c.name, e.email FROM customer_emails e JOIN customers c ON c.id = e.customer_id
             WHERE e.email LIKE ?1 ESCAPE '\\' OR lower(c.name) LIKE ?1 ESCAPE '\\'
             ORDER BY c.name COLLATE NOCASE, e.email LIMIT ?2",
        )?;
        let rows = st
            .query_map(params![p, limit], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fuzzy_pattern_is_a_subsequence_and_escapes_like() {
        assert_eq!(fuzzy_pattern("acm"), "%a%c%m%");
        assert_eq!(fuzzy_pattern("5%_"), "%5%\\%%\\_%");
        assert_eq!(fuzzy_pattern(""), "%");
    }

    #[test]
    fn completions_match_address_or_name_prefix() {
        let s = Store::open_in_memory().unwrap();
        s.conn
            .execute_batch(
                "INSERT INTO customers (id, name, created_at, updated_at) VALUES (1, 'Sam Client', 't', 't'), (2, 'Zed', 't', 't');
                 INSERT INTO customer_emails (email, customer_id) VALUES ('sam@client.example', 1), ('zed@z.example', 2), ('s_x@z.example', 2);",
            )
            .unwrap();
        let by_addr = s.view_address_completions("SA", 5).unwrap();
        assert_eq!(
            by_addr,
            vec![("Sam Client".to_string(), "sam@client.example".to_string())]
        );
        let by_name = s.view_address_completions("zed", 5).unwrap();
        assert_eq!(by_name.len(), 2);
        // LIKE wildcards in what the operator types are literal.
        assert_eq!(s.view_address_completions("s_", 5).unwrap().len(), 1);
        assert!(s.view_address_completions("%", 5).unwrap().is_empty());
    }
}
