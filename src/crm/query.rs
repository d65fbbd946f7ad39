//! The search language shared by `mailroom search` and the console's `/` (contract: `search`
//! filters): plain words and "quoted phrases", plus the filters `from:` `to:` `subject:`
//! `since:DATE` `before:DATE` `is:unread|read|flagged|unflagged` `folder:` `account:`.
//!
//! A filter is a known key, a colon and a value with no space between (`from:ann`,
//! `subject:"March report"`); anything else is a word, so text that only looks like a filter
//! (`re: hello`, `http://x`, `note:` followed by a space) is searched as written. A known key
//! with a value it cannot take (`since:yesterdayish`, `is:maybe`) is an error that says what it
//! takes. The parsed query never becomes SQL text: the store binds every value
//! ([`crate::store::SearchFilter`]), and words reach FTS5 only as quoted strings.

use chrono::{Datelike, Months, NaiveDate};

use crate::error::{AppError, Result};
use crate::store::SearchFilter;

/// A word or a "quoted phrase" of the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Term {
    pub text: String,
    pub phrase: bool,
}

/// A parsed search.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query {
    /// Words and phrases: each must occur (subject, addresses or text).
    pub words: Vec<Term>,
    /// `from:` values: each must occur in the sender's name or address.
    pub from: Vec<String>,
    /// `to:` values: each must occur among the To or Cc names and addresses.
    pub to: Vec<String>,
    /// `subject:` values: each must occur in the subject.
    pub subject: Vec<String>,
    /// `since:` — on or after this day (UTC).
    pub since: Option<NaiveDate>,
    /// `before:` — before this day (UTC).
    pub before: Option<NaiveDate>,
    /// `is:read` (true) / `is:unread` (false).
    pub read: Option<bool>,
    /// `is:flagged` (true) / `is:unflagged` (false).
    pub flagged: Option<bool>,
    /// `folder:` names (any of them; case-insensitive).
    pub folders: Vec<String>,
    /// `account:` names (any of them).
    pub accounts: Vec<String>,
}

/// The keys the language knows, as written (lower case).
pub const KEYS: [&str; 8] = [
    "from", "to", "subject", "since", "before", "is", "folder", "account",
];

const DATE_FIX: &str = "write a day as YYYY-MM-DD (since:2026-03-01), a month as YYYY-MM, \
    today or yesterday, or an age like 7d, 4w, 6m, 1y (since:7d: the last seven days)";

/// One piece of the input: a word, a phrase, or `key:value`.
#[derive(Debug, PartialEq)]
enum Piece {
    Word(Term),
    Filter { key: String, value: String },
}

/// Splits the input into words, phrases and filters, in order.
fn pieces(input: &str) -> Vec<Piece> {
    let mut out = Vec::new();
    let mut rest = input;
    while let Some(start) = rest.find(|c: char| !c.is_whitespace()) {
        rest = &rest[start..];
        if let Some(after) = rest.strip_prefix('"') {
            let (phrase, tail) = quoted(after);
            if !phrase.is_empty() {
                out.push(Piece::Word(Term {
                    text: phrase.to_string(),
                    phrase: true,
                }));
            }
            rest = tail;
            continue;
        }
        if let Some((key, tail)) = filter_key(rest) {
            if let Some(after) = tail.strip_prefix('"') {
                let (value, tail) = quoted(after);
                out.push(Piece::Filter {
                    key,
                    value: value.to_string(),
                });
                rest = tail;
                continue;
            }
            let end = tail.find(char::is_whitespace).unwrap_or(tail.len());
            out.push(Piece::Filter {
                key,
                value: tail[..end].to_string(),
            });
            rest = &tail[end..];
            continue;
        }
        let end = rest
            .find(|c: char| c.is_whitespace() || c == '"')
            .unwrap_or(rest.len());
        out.push(Piece::Word(Term {
            text: rest[..end].to_string(),
            phrase: false,
        }));
        rest = &rest[end..];
    }
    out
}

/// The text up to the closing quote (or the end), and what follows it.
fn quoted(after: &str) -> (&str, &str) {
    let end = after.find('"').unwrap_or(after.len());
    (after[..end].trim(), after.get(end + 1..).unwrap_or(""))
}

/// `key:` at the start of `s` when key is one of [`KEYS`] and a value follows at once.
fn filter_key(s: &str) -> Option<(String, &str)> {
    let colon = s.find(':')?;
    let key = &s[..colon];
    if !KEYS.iter().any(|k| k.eq_ignore_ascii_case(key)) {
        return None;
    }
    let tail = &s[colon + 1..];
    // `from: ann` (a space after the colon) is two words, as typed.
    match tail.chars().next() {
        Some(c) if !c.is_whitespace() => Some((key.to_ascii_lowercase(), tail)),
        _ => None,
    }
}

/// Parses a search. `today` (UTC) anchors `today`, `yesterday` and ages such as `7d`.
pub fn parse(input: &str, today: NaiveDate) -> Result<Query> {
    let mut q = Query::default();
    for piece in pieces(input) {
        match piece {
            Piece::Word(t) => q.words.push(t),
            Piece::Filter { key, value } => q.set(&key, value, today)?,
        }
    }
    if let (Some(s), Some(b)) = (q.since, q.before)
        && s >= b
    {
        return Err(AppError::usage(
            format!("since:{s} is not before before:{b}, so nothing can match"),
            "put the earlier day in since: and the later one in before:",
        ));
    }
    Ok(q)
}

impl Query {
    fn set(&mut self, key: &str, value: String, today: NaiveDate) -> Result<()> {
        if value.trim().is_empty() {
            return Err(AppError::usage(
                format!("{key}: has no value"),
                format!("write {key}:VALUE without a space, or quote it: {key}:\"two words\""),
            ));
        }
        match key {
            "from" => self.from.push(value),
            "to" => self.to.push(value),
            "subject" => self.subject.push(value),
            "folder" => self.folders.push(value),
            "account" => self.accounts.push(value),
            "since" => self.since = Some(date(key, &value, today)?),
            "before" => self.before = Some(date(key, &value, today)?),
            _ => self.set_is(&value)?,
        }
        Ok(())
    }

    fn set_is(&mut self, value: &str) -> Result<()> {
        match value.to_ascii_lowercase().as_str() {
            "unread" | "unseen" | "new" => self.read = Some(false),
            "read" | "seen" => self.read = Some(true),
            "flagged" | "starred" => self.flagged = Some(true),
            "unflagged" => self.flagged = Some(false),
            _ => {
                return Err(AppError::usage(
                    format!("is:{value} is not something a message can be"),
                    "use is:unread, is:read, is:flagged or is:unflagged",
                ));
            }
        }
        Ok(())
    }

    /// No word and no filter: nothing to search for.
    pub fn is_empty(&self) -> bool {
        *self == Query::default()
    }

    /// The FTS5 expression that narrows the search before the exact checks: every word and
    /// phrase (any column), and each `from:`/`to:` value among the addresses, each `subject:`
    /// value in the subject. Every piece is a quoted FTS string, so nothing typed is FTS syntax.
    /// None: no piece has a letter or digit (the exact checks alone decide).
    pub fn fts(&self) -> Option<String> {
        let mut parts: Vec<String> = self
            .words
            .iter()
            .filter(|t| has_token(&t.text))
            .map(|t| {
                let q = fts_string(&t.text);
                if t.phrase { q } else { format!("{q}*") }
            })
            .collect();
        let columns = [
            ("addresses", &self.from),
            ("addresses", &self.to),
            ("subject", &self.subject),
        ];
        for (column, values) in columns {
            for v in values.iter().filter(|v| has_token(v)) {
                parts.push(format!("{column} : {}*", fts_string(v)));
            }
        }
        (!parts.is_empty()).then(|| parts.join(" "))
    }

    /// The store's filter: `accounts` are the ids of the accounts to search (the visible ones,
    /// narrowed by `account:` by the caller).
    pub fn filter(&self, accounts: Vec<String>) -> SearchFilter {
        let day = |d: NaiveDate| d.format("%Y-%m-%d").to_string();
        SearchFilter {
            fts: self.fts(),
            from: self.from.clone(),
            to: self.to.clone(),
            subject: self.subject.clone(),
            since: self.since.map(day),
            before: self.before.map(day),
            read: self.read,
            flagged: self.flagged,
            folders: self.folders.clone(),
            accounts,
        }
    }

    /// The query as the language writes it (normalised: filters after the words).
    pub fn text(&self) -> String {
        let mut out: Vec<String> = self
            .words
            .iter()
            .map(|t| {
                if t.phrase {
                    format!("\"{}\"", t.text)
                } else {
                    t.text.clone()
                }
            })
            .collect();
        let value = |v: &String| {
            if v.contains(char::is_whitespace) {
                format!("\"{v}\"")
            } else {
                v.clone()
            }
        };
        for (key, values) in [
            ("from", &self.from),
            ("to", &self.to),
            ("subject", &self.subject),
            ("folder", &self.folders),
            ("account", &self.accounts),
        ] {
            out.extend(values.iter().map(|v| format!("{key}:{}", value(v))));
        }
        if let Some(d) = self.since {
            out.push(format!("since:{d}"));
        }
        if let Some(d) = self.before {
            out.push(format!("before:{d}"));
        }
        match self.read {
            Some(true) => out.push("is:read".into()),
            Some(false) => out.push("is:unread".into()),
            None => {}
        }
        match self.flagged {
            Some(true) => out.push("is:flagged".into()),
            Some(false) => out.push("is:unflagged".into()),
            None => {}
        }
        out.join(" ")
    }

    /// The words and phrases to mark in a shown message (lower case).
    pub fn highlights(&self) -> Vec<String> {
        self.words
            .iter()
            .filter(|t| has_token(&t.text))
            .map(|t| t.text.to_lowercase())
            .collect()
    }
}

fn has_token(s: &str) -> bool {
    s.chars().any(char::is_alphanumeric)
}

/// A quoted FTS5 string (a `"` inside doubled).
fn fts_string(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// A day: `YYYY-MM-DD`, `YYYY-MM` (its first day), `today`, `yesterday`, or an age `Nd`, `Nw`,
/// `Nm`, `Ny` counted back from `today`.
fn date(key: &str, value: &str, today: NaiveDate) -> Result<NaiveDate> {
    let v = value.trim().to_ascii_lowercase();
    let bad = || {
        AppError::usage(
            format!("{key}:{value} is not a date mailroom understands"),
            DATE_FIX,
        )
    };
    match v.as_str() {
        "today" => return Ok(today),
        "yesterday" => return today.pred_opt().ok_or_else(bad),
        _ => {}
    }
    if let Ok(d) = NaiveDate::parse_from_str(&v, "%Y-%m-%d") {
        return Ok(d);
    }
    if let Ok(d) = NaiveDate::parse_from_str(&format!("{v}-01"), "%Y-%m-%d") {
        return Ok(d);
    }
    let (num, unit) = v.split_at(v.len().saturating_sub(1));
    let n: u32 = num.parse().map_err(|_| bad())?;
    let back = match unit {
        "d" => today.checked_sub_days(chrono::Days::new(n.into())),
        "w" => today.checked_sub_days(chrono::Days::new(u64::from(n) * 7)),
        "m" => today.checked_sub_months(Months::new(n)),
        "y" => today.checked_sub_months(Months::new(n.saturating_mul(12))),
        _ => None,
    };
    back.filter(|d| d.year() > 0).ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, 25).unwrap()
    }

    fn p(s: &str) -> Query {
        parse(s, today()).unwrap()
    }

    fn word(t: &str) -> Term {
        Term {
            text: t.into(),
            phrase: false,
        }
    }

    #[test]
    fn filters_words_and_phrases_are_told_apart() {
        let q = p("invoice from:ann@client.example \"March 2026\" since:2026-03-01 is:unread");
        assert_eq!(
            q.words,
            vec![
                word("invoice"),
                Term {
                    text: "March 2026".into(),
                    phrase: true
                }
            ]
        );
        assert_eq!(q.from, ["ann@client.example"]);
        assert_eq!(q.since, NaiveDate::from_ymd_opt(2026, 3, 1));
        assert_eq!(q.read, Some(false));
        let q = p("subject:\"quarterly report\" To:Bob FOLDER:Archive account:work is:flagged");
        assert_eq!(q.subject, ["quarterly report"]);
        assert_eq!(q.to, ["Bob"]);
        assert_eq!(q.folders, ["Archive"]);
        assert_eq!(q.accounts, ["work"]);
        assert_eq!(q.flagged, Some(true));
        assert!(q.words.is_empty());
    }

    #[test]
    fn text_that_only_looks_like_a_filter_is_words() {
        let q = p("re: hello");
        assert_eq!(q.words, vec![word("re:"), word("hello")]);
        assert!(q.from.is_empty());
        let q = p("from: ann http://x.example note:this");
        assert_eq!(
            q.words,
            vec![
                word("from:"),
                word("ann"),
                word("http://x.example"),
                word("note:this")
            ]
        );
        assert_eq!(
            q.fts().unwrap(),
            "\"from:\"* \"ann\"* \"http://x.example\"* \"note:this\"*"
        );
    }

    #[test]
    fn bad_values_say_what_the_key_takes() {
        let e = parse("since:2026-13-01", today()).unwrap_err();
        assert_eq!(e.exit_code(), 64);
        assert!(e.summary.contains("since:2026-13-01"), "{e:?}");
        assert!(e.fix.contains("YYYY-MM-DD"), "{e:?}");
        let e = parse("before:soon", today()).unwrap_err();
        assert!(e.summary.contains("before:soon"));
        let e = parse("is:maybe", today()).unwrap_err();
        assert!(e.fix.contains("is:unread"), "{e:?}");
        let e = parse("since:2026-05-01 before:2026-04-01", today()).unwrap_err();
        assert!(e.summary.contains("not before"), "{e:?}");
        let e = parse("from:\"\"", today()).unwrap_err();
        assert!(e.summary.contains("no value"), "{e:?}");
    }

    #[test]
    fn dates_take_days_months_and_ages() {
        let d = |s: &str| p(&format!("since:{s}")).since.unwrap().to_string();
        assert_eq!(d("2026-03-07"), "2026-03-07");
        assert_eq!(d("2026-03"), "2026-03-01");
        assert_eq!(d("today"), "2026-11-25");
        assert_eq!(d("yesterday"), "2026-11-24");
        assert_eq!(d("7d"), "2026-11-18");
        assert_eq!(d("2w"), "2026-11-11");
        assert_eq!(d("6m"), "2026-05-25");
        assert_eq!(d("1y"), "2025-11-25");
    }

    #[test]
    fn nothing_typed_reaches_fts_as_syntax() {
        let q = p("a OR b NEAR(c) -y subject:x\"y from:\"Ann \"\"Q\"");
        let fts = q.fts().unwrap();
        assert_eq!(
            fts,
            "\"a\"* \"OR\"* \"b\"* \"NEAR(c)\"* \"-y\"* \"Q\" addresses : \"Ann\"* subject : \"x\"\"y\"*"
        );
        assert!(p("\"\" * ()").fts().is_none());
        assert!(p("").is_empty());
        assert!(!p("is:unread").is_empty());
        assert!(p("is:unread").fts().is_none());
    }

    #[test]
    fn the_normalised_text_parses_back_to_the_same_query() {
        for s in [
            "invoice \"March 2026\" from:ann subject:\"two words\" since:2026-03-01 before:2026-04-01 is:read is:unflagged folder:INBOX account:work",
            "re: hello",
        ] {
            let q = p(s);
            assert_eq!(p(&q.text()), q, "{s}");
        }
    }

    #[test]
    fn the_filter_binds_values_and_days() {
        let q = p("from:ann since:2026-03-01 before:2026-04 is:unread folder:INBOX");
        let f = q.filter(vec!["a1".into()]);
        assert_eq!(f.since.as_deref(), Some("2026-03-01"));
        assert_eq!(f.before.as_deref(), Some("2026-04-01"));
        assert_eq!(f.from, ["ann"]);
        assert_eq!(f.read, Some(false));
        assert_eq!(f.folders, ["INBOX"]);
        assert_eq!(f.accounts, ["a1"]);
        assert_eq!(f.fts.as_deref(), Some("addresses : \"ann\"*"));
    }
}
