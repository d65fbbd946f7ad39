//! Typed, paged reads for the console (issue 6). Every list here takes LIMIT/OFFSET so a pane
//! only ever holds the rows it can show, whatever the size of the cache.

use super::Store;
use crate::args;
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
    /// The account it is in (the first, when in several).
    pub account_id: Option<String>,
    /// Why it is on a customer's timeline (the matching rule and what matched).
    pub why: Option<String>,
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
    /// Customer addresses for completion: the address or the customer's name starts with
    /// `prefix` (case-insensitive). Returns (name, address).
    pub fn view_address_completions(
        &self,
        prefix: &str,
        limit: i64,
    ) -> Result<Vec<(String, String)>> {
        let p = format!("{}%", like_escape(&prefix.to_lowercase()));
        self.conn.rows(
            "SELECT c.name, e.email FROM customer_emails e JOIN customers c ON c.id = e.customer_id
             WHERE e.email LIKE ?1 ESCAPE '\\' OR lower(c.name) LIKE ?1 ESCAPE '\\'
             ORDER BY c.name COLLATE NOCASE, e.email LIMIT ?2",
            args![p, limit],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
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
        crate::store::testing::each(|s| {
            s.conn
                .batch(
                    "INSERT INTO customers (id, name, created_at, updated_at) VALUES (1, 'Sam Client', 't', 't'), (2, 'Zed', 't', 't'), (3, 'adam', 't', 't');
                     INSERT INTO customer_emails (email, customer_id) VALUES ('sam@client.example', 1), ('zed@z.example', 2), ('s_x@z.example', 2), ('a@d.example', 3);",
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
            // Names sort without regard to case, then by address.
            let all: Vec<String> = s
                .view_address_completions("", 10)
                .unwrap()
                .into_iter()
                .map(|(_, e)| e)
                .collect();
            assert_eq!(
                all,
                [
                    "a@d.example",
                    "sam@client.example",
                    "s_x@z.example",
                    "zed@z.example"
                ]
            );
            assert_eq!(s.view_address_completions("", 1).unwrap().len(), 1);
        });
    }
}
