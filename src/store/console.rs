//! Typed, paged reads for the console (issue 6). Every list here takes LIMIT/OFFSET so a pane
//! only ever holds the rows it can show, whatever the size of the cache.

use rusqlite::{params, params_from_iter};

use super::TriageFilter;
use super::triage::{filter_params, triage_where};

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
pub struct FolderRow {
    pub id: i64,
    pub name: String,
    pub delimiter: Option<String>,
    pub role: Option<String>,
    pub sync_enabled: bool,
    pub selectable: bool,
    pub exists_count: Option<i64>,
    pub total_bytes: Option<i64>,
    pub cached: i64,
    pub last_synced_at: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CustomerRow {
    pub id: i64,
    pub name: String,
    pub company: Option<String>,
    pub emails: Option<String>,
    pub domains: Option<String>,
}

/// Which events the log pane shows.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EventFilter {
    /// Levels shown (error, warn, …); empty = all.
    pub levels: Vec<&'static str>,
    /// Substring of what/detail/fix (case-insensitive for ASCII).
    pub search: String,
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

fn like_escape(s: &str) -> String {
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
    /// The triage queue (issue 5's rule, `TriageFilter`: visible accounts, not our own
    /// addresses), newest first. An empty filter (no visible account) is an empty queue.
    pub fn view_triage_page(
        &self,
        f: &TriageFilter,
        offset: i64,
        limit: i64,
    ) -> Result<Vec<MessageSummary>> {
        self.view_triage_query(f, "", &[], offset, limit, "DESC")
    }

    /// The page after the row (`date`, `id`) in the list's order (keyset paging): the index
    /// seeks to `date` instead of stepping over every earlier row. Rows without a date sort
    /// last and are not reached this way; callers fall back to OFFSET when a page comes short.
    pub fn view_triage_page_after(
        &self,
        f: &TriageFilter,
        date: &str,
        id: i64,
        limit: i64,
    ) -> Result<Vec<MessageSummary>> {
        self.view_triage_query(
            f,
            "AND m.date <= ? AND (m.date < ? OR m.id < ?)",
            &[date.to_string().into(), date.to_string().into(), id.into()],
            0,
            limit,
            "DESC",
        )
    }

    /// The same list read from its far end: rows `offset..offset+limit` counted from the
    /// oldest, returned newest first. Jumping to the end of 100k rows then costs a short scan
    /// instead of skipping 100k rows.
    pub fn view_triage_page_from_end(
        &self,
        f: &TriageFilter,
        offset_from_end: i64,
        limit: i64,
    ) -> Result<Vec<MessageSummary>> {
        let mut rows = self.view_triage_query(f, "", &[], offset_from_end, limit, "ASC")?;
        rows.reverse();
        Ok(rows)
    }

    fn view_triage_query(
        &self,
        f: &TriageFilter,
        extra: &str,
        extra_params: &[rusqlite::types::Value],
        offset: i64,
        limit: i64,
        dir: &str,
    ) -> Result<Vec<MessageSummary>> {
        if f.accounts.is_empty() {
            return Ok(Vec::new());
        }
        let mut st = self.conn.prepare_cached(&format!(
            "SELECT {SUMMARY_COLS} FROM messages m WHERE {} {extra}
             ORDER BY m.date {dir}, m.id {dir} LIMIT ? OFFSET ?",
            triage_where(f)
        ))?;
        let mut p = filter_params(f);
        p.extend_from_slice(extra_params);
        p.push(limit.into());
        p.push(offset.into());
        let rows = st
            .query_map(params_from_iter(p), summary)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    pub fn view_triage_count(&self, f: &TriageFilter) -> Result<i64> {
        if f.accounts.is_empty() {
            return Ok(0);
        }
        Ok(self.conn.query_row(
            &format!("SELECT COUNT(*) FROM messages m WHERE {}", triage_where(f)),
            params_from_iter(filter_params(f)),
            |r| r.get(0),
        )?)
    }

    /// Every folder of an account (a mailbox has tens, not thousands), ordered by name.
    pub fn view_folders(&self, account_id: &str) -> Result<Vec<FolderRow>> {
        let mut st = self.conn.prepare_cached(
            "SELECT f.id, f.name, f.delimiter, f.role, f.sync_enabled, f.selectable, f.exists_count,
                    f.total_bytes, (SELECT COUNT(*) FROM locations l WHERE l.folder_id = f.id),
                    f.last_synced_at
             FROM folders f WHERE f.account_id = ?1 AND f.present = 1 ORDER BY f.name",
        )?;
        let rows = st
            .query_map([account_id], |r| {
                Ok(FolderRow {
                    id: r.get(0)?,
                    name: r.get(1)?,
                    delimiter: r.get(2)?,
                    role: r.get(3)?,
                    sync_enabled: r.get(4)?,
                    selectable: r.get(5)?,
                    exists_count: r.get(6)?,
                    total_bytes: r.get(7)?,
                    cached: r.get(8)?,
                    last_synced_at: r.get(9)?,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    /// Customers whose name, company or an address contains `query` as a subsequence.
    pub fn view_customers_page(
        &self,
        query: &str,
        offset: i64,
        limit: i64,
    ) -> Result<Vec<CustomerRow>> {
        let mut st = self.conn.prepare_cached(
            "SELECT c.id, c.name, c.company,
                    (SELECT group_concat(email, ', ') FROM customer_emails e WHERE e.customer_id = c.id),
                    (SELECT group_concat(domain, ', ') FROM customer_domains d WHERE d.customer_id = c.id)
             FROM customers c
             WHERE ?1 = '%' OR c.name LIKE ?1 ESCAPE '\\' OR COALESCE(c.company, '') LIKE ?1 ESCAPE '\\'
                OR EXISTS (SELECT 1 FROM customer_emails e WHERE e.customer_id = c.id AND e.email LIKE ?1 ESCAPE '\\')
             ORDER BY c.name COLLATE NOCASE, c.id LIMIT ?2 OFFSET ?3",
        )?;
        let rows = st
            .query_map(params![fuzzy_pattern(query), limit, offset], |r| {
                Ok(CustomerRow {
                    id: r.get(0)?,
                    name: r.get(1)?,
                    company: r.get(2)?,
                    emails: r.get(3)?,
                    domains: r.get(4)?,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    pub fn view_customers_count(&self, query: &str) -> Result<i64> {
        Ok(self.conn.query_row(
            "SELECT COUNT(*) FROM customers c
             WHERE ?1 = '%' OR c.name LIKE ?1 ESCAPE '\\' OR COALESCE(c.company, '') LIKE ?1 ESCAPE '\\'
                OR EXISTS (SELECT 1 FROM customer_emails e WHERE e.customer_id = c.id AND e.email LIKE ?1 ESCAPE '\\')",
            [fuzzy_pattern(query)],
            |r| r.get(0),
        )?)
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

    /// Events newest first through a level and text filter.
    pub fn view_events_page(
        &self,
        filter: &EventFilter,
        offset: i64,
        limit: i64,
    ) -> Result<Vec<super::EventRow>> {
        let (sql, args) = event_query(filter, "id, at, account_id, level, what, detail, fix");
        let mut st = self.conn.prepare(&format!(
            "{sql} ORDER BY id DESC LIMIT {limit} OFFSET {offset}"
        ))?;
        let rows = st
            .query_map(rusqlite::params_from_iter(args.iter()), |r| {
                Ok(super::EventRow {
                    id: r.get(0)?,
                    at: r.get(1)?,
                    account_id: r.get(2)?,
                    level: r.get(3)?,
                    what: r.get(4)?,
                    detail: r.get(5)?,
                    fix: r.get(6)?,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    pub fn view_events_count(&self, filter: &EventFilter) -> Result<i64> {
        let (sql, args) = event_query(filter, "COUNT(*)");
        Ok(self
            .conn
            .query_row(&sql, rusqlite::params_from_iter(args.iter()), |r| r.get(0))?)
    }
}

fn event_query(filter: &EventFilter, cols: &str) -> (String, Vec<String>) {
    let mut sql = format!("SELECT {cols} FROM events WHERE 1 = 1");
    let mut args = Vec::new();
    if !filter.levels.is_empty() {
        let marks: Vec<String> = filter
            .levels
            .iter()
            .map(|l| {
                args.push(l.to_string());
                format!("?{}", args.len())
            })
            .collect();
        sql.push_str(&format!(" AND level IN ({})", marks.join(",")));
    }
    if !filter.search.is_empty() {
        args.push(format!("%{}%", like_escape(&filter.search)));
        let n = args.len();
        sql.push_str(&format!(
            " AND (what LIKE ?{n} ESCAPE '\\' OR COALESCE(detail, '') LIKE ?{n} ESCAPE '\\' OR COALESCE(fix, '') LIKE ?{n} ESCAPE '\\')"
        ));
    }
    (sql, args)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Level;

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

    #[test]
    fn keyset_far_end_and_offset_pages_agree() {
        let s = Store::open_in_memory().unwrap();
        s.conn
            .execute_batch(
                "INSERT INTO accounts (id, name, created_at, state, state_since) VALUES ('a','a','t','idle','t');
                 INSERT INTO folders (id, account_id, name, wire_name, role) VALUES (1,'a','INBOX','INBOX','inbox');",
            )
            .unwrap();
        for i in 1..=57i64 {
            // Ties on the date (three per minute) and a few without a date.
            let date = (i % 10 != 0).then(|| format!("2026-01-01T00:{:02}:00Z", i / 3));
            s.conn
                .execute(
                    "INSERT INTO messages (id, content_hash, subject, date, created_at) VALUES (?1, ?1, ?1, ?2, 't')",
                    params![i, date],
                )
                .unwrap();
            s.conn
                .execute(
                    "INSERT INTO locations (message_id, account_id, folder_id, uidvalidity, uid) VALUES (?1, 'a', 1, 1, ?1)",
                    [i],
                )
                .unwrap();
        }
        let f = TriageFilter {
            accounts: vec!["a".into()],
            own: vec![],
        };
        let all: Vec<i64> = s
            .view_triage_page(&f, 0, 100)
            .unwrap()
            .iter()
            .map(|m| m.id)
            .collect();
        assert_eq!(all.len(), 57);
        assert_eq!(s.view_triage_count(&f).unwrap(), 57);
        for offset in [1usize, 7, 20, 40] {
            let anchor = s
                .view_triage_page(&f, offset as i64 - 1, 1)
                .unwrap()
                .remove(0);
            let date = anchor.date.clone().unwrap();
            let keyset: Vec<i64> = s
                .view_triage_page_after(&f, &date, anchor.id, 5)
                .unwrap()
                .iter()
                .map(|m| m.id)
                .collect();
            assert_eq!(keyset, all[offset..offset + 5], "after offset {offset}");
        }
        let tail: Vec<i64> = s
            .view_triage_page_from_end(&f, 0, 6)
            .unwrap()
            .iter()
            .map(|m| m.id)
            .collect();
        assert_eq!(tail, all[51..]);
    }

    #[test]
    fn events_filter_by_level_and_text() {
        let s = Store::open_in_memory().unwrap();
        s.log_event(
            None,
            Level::Error,
            "login failed",
            Some("bad pw"),
            Some("set-password"),
        )
        .unwrap();
        s.log_event(None, Level::Info, "synced INBOX", None, None)
            .unwrap();
        let all = EventFilter::default();
        assert_eq!(s.view_events_count(&all).unwrap(), 2);
        let errors = EventFilter {
            levels: vec!["error"],
            search: String::new(),
        };
        let rows = s.view_events_page(&errors, 0, 10).unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].what, "login failed");
        let text = EventFilter {
            levels: vec![],
            search: "INBOX".into(),
        };
        assert_eq!(s.view_events_count(&text).unwrap(), 1);
        let pct = EventFilter {
            levels: vec![],
            search: "%".into(),
        };
        assert_eq!(s.view_events_count(&pct).unwrap(), 0);
    }
}
