//! `search` and the console's `/`: a parsed [`Query`] run over the cache. Users never write
//! FTS or SQL: the words reach FTS5 as quoted strings and every filter value is bound by the
//! store, so `AND`, `NEAR`, `*`, `-`, `'; DROP TABLE` and unknown `key:` prefixes in the input
//! are just words.

use super::query::Query;
use crate::error::{AppError, Result};
use crate::store::{MailRow, Store, Window};

/// The error for a search with neither words nor filters.
pub fn nothing_to_search() -> AppError {
    AppError::usage(
        "the search has no words or filters",
        "search for words, \"a quoted phrase\" or filters, e.g. mailroom search invoice from:ann since:2026-03-01",
    )
}

/// How many messages of `accounts` (ids) match, and the first `limit` of them, newest first.
pub fn search(
    store: &Store,
    query: &Query,
    accounts: &[String],
    limit: i64,
) -> Result<(i64, Vec<MailRow>)> {
    if query.is_empty() {
        return Err(nothing_to_search());
    }
    let f = query.filter(accounts.to_vec());
    let total = store.search_count(&f)?;
    let rows = store.search_window(&f, &Window::Top, limit)?;
    Ok((total, rows))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crm::query::parse;
    use crate::store::FixtureMessage;

    fn today() -> chrono::NaiveDate {
        chrono::NaiveDate::from_ymd_opt(2026, 11, 25).unwrap()
    }

    fn store() -> (Store, Vec<i64>) {
        let s = Store::open_in_memory().unwrap();
        let inbox = s.fixture_folder("a1", "INBOX", Some("inbox")).unwrap();
        let arch = s.fixture_folder("a1", "Archive", Some("archive")).unwrap();
        let other = s.fixture_folder("b1", "INBOX", Some("inbox")).unwrap();
        let mk = |from: &str, name: &str, to: &str, subject: &str, date: &str, body: &str| {
            FixtureMessage {
                message_id: Some(format!("{subject}@x")),
                from_addr: from.into(),
                from_name: Some(name.into()),
                to: vec![to.into()],
                subject: subject.into(),
                date: date.into(),
                direction: "in",
                text_body: Some(body.into()),
                ..Default::default()
            }
        };
        let mut ids = vec![
            s.fixture_message(
                "a1",
                inbox,
                1,
                &mk(
                    "ann@client.example",
                    "Ann Client",
                    "me@x",
                    "March invoice",
                    "2026-03-02T09:00:00Z",
                    "the invoice is attached",
                ),
            )
            .unwrap(),
            s.fixture_message(
                "a1",
                inbox,
                2,
                &mk(
                    "bob@other.example",
                    "Bob",
                    "me@x",
                    "re: hello",
                    "2026-02-10T09:00:00Z",
                    "hello there",
                ),
            )
            .unwrap(),
            s.fixture_message(
                "a1",
                arch,
                3,
                &mk(
                    "ann@client.example",
                    "Ann Client",
                    "team@x",
                    "Old invoice",
                    "2025-12-01T09:00:00Z",
                    "from last year",
                ),
            )
            .unwrap(),
            s.fixture_message(
                "b1",
                other,
                4,
                &mk(
                    "ann@client.example",
                    "Ann Client",
                    "you@y",
                    "Invoice elsewhere",
                    "2026-03-05T09:00:00Z",
                    "invoice",
                ),
            )
            .unwrap(),
        ];
        // Index what the fixtures stored (sync indexes as it stores).
        s.fts_reindex(&ids).unwrap();
        ids.sort();
        (s, ids)
    }

    fn hits(s: &Store, q: &str) -> Vec<String> {
        let q = parse(q, today()).unwrap();
        search(s, &q, &["a1".to_string()], 50)
            .unwrap()
            .1
            .into_iter()
            .map(|r| r.subject.unwrap_or_default())
            .collect()
    }

    #[test]
    fn filters_and_words_narrow_together_newest_first() {
        let (s, _) = store();
        assert_eq!(hits(&s, "invoice"), ["March invoice", "Old invoice"]);
        assert_eq!(hits(&s, "from:ann since:2026-01-01"), ["March invoice"]);
        assert_eq!(
            hits(&s, "from:\"Ann Client\""),
            ["March invoice", "Old invoice"]
        );
        assert_eq!(hits(&s, "to:team"), ["Old invoice"]);
        assert_eq!(hits(&s, "subject:march"), ["March invoice"]);
        assert_eq!(hits(&s, "before:2026-01-01"), ["Old invoice"]);
        assert_eq!(hits(&s, "folder:archive"), ["Old invoice"]);
        assert_eq!(hits(&s, "folder:inbox invoice"), ["March invoice"]);
        assert_eq!(hits(&s, "is:unread from:bob"), ["re: hello"]);
        assert!(hits(&s, "is:read").is_empty());
        assert!(hits(&s, "is:flagged").is_empty());
        assert_eq!(hits(&s, "is:unflagged").len(), 3);
        // Looks like a filter, is words: "re:" and "hello".
        assert_eq!(hits(&s, "re: hello"), ["re: hello"]);
        // The other account's mail is not searched.
        assert!(!hits(&s, "elsewhere").contains(&"Invoice elsewhere".to_string()));
    }

    #[test]
    fn hostile_queries_run_without_fts_or_sql_errors() {
        let (s, _) = store();
        for q in [
            "\"",
            "a\"b",
            "NEAR(",
            "x:y",
            "^a",
            "a*b",
            "'; DROP TABLE messages; --",
            "(a OR",
            "from:%",
            "subject:_",
            "from:\\",
            "folder:'x'",
        ] {
            let parsed = parse(q, today()).unwrap();
            if !parsed.is_empty() {
                search(&s, &parsed, &["a1".into()], 10).unwrap();
            }
        }
        // LIKE wildcards typed in a filter are literal.
        assert!(hits(&s, "from:%").is_empty());
        assert!(hits(&s, "subject:_").is_empty());
        let e = search(&s, &parse("", today()).unwrap(), &["a1".into()], 10).unwrap_err();
        assert!(e.summary.contains("no words"), "{e:?}");
    }
}
