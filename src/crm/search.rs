//! `search`: plain words and "quoted phrases" turned into a safe FTS5 expression. Users never
//! write FTS syntax: every token is quoted (a `"` inside doubled), so `AND`, `NEAR`, `*`, `-`,
//! `:` and column filters in the input are just words.

use crate::error::{AppError, Result};
use crate::store::{SearchRow, Store};

/// Words and phrases of the input, in order.
pub fn tokens(input: &str) -> Vec<(String, bool)> {
    let mut out = Vec::new();
    let mut rest = input;
    while let Some(start) = rest.find(|c: char| !c.is_whitespace()) {
        rest = &rest[start..];
        if let Some(after) = rest.strip_prefix('"') {
            let end = after.find('"').unwrap_or(after.len());
            let phrase = after[..end].trim();
            if !phrase.is_empty() {
                out.push((phrase.to_string(), true));
            }
            rest = after.get(end + 1..).unwrap_or("");
        } else {
            let end = rest
                .find(|c: char| c.is_whitespace() || c == '"')
                .unwrap_or(rest.len());
            out.push((rest[..end].to_string(), false));
            rest = &rest[end..];
        }
    }
    out
}

/// The FTS5 expression: every token must occur; plain words also match as a prefix
/// (`invoi` finds "invoice"), phrases match exactly.
pub fn fts_expression(input: &str) -> Option<String> {
    let parts: Vec<String> = tokens(input)
        .into_iter()
        .filter(|(t, _)| t.chars().any(char::is_alphanumeric))
        .map(|(t, phrase)| {
            let q = format!("\"{}\"", t.replace('"', "\"\""));
            if phrase { q } else { format!("{q}*") }
        })
        .collect();
    (!parts.is_empty()).then(|| parts.join(" "))
}

pub fn search(
    store: &Store,
    query: &str,
    accounts: &[String],
    limit: i64,
    offset: i64,
) -> Result<(i64, Vec<SearchRow>)> {
    let expr = fts_expression(query).ok_or_else(|| {
        AppError::usage(
            "the search has no words",
            "search for words or \"a quoted phrase\", e.g. mailroom search invoice \"March 2025\"",
        )
    })?;
    store.search(&expr, accounts, limit, offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_input_never_reaches_fts_as_syntax() {
        assert_eq!(fts_expression("invoice"), Some("\"invoice\"*".into()));
        assert_eq!(
            fts_expression("  \"March 2025\" acme "),
            Some("\"March 2025\" \"acme\"*".into())
        );
        assert_eq!(
            fts_expression("a OR b NEAR(c) subject:x -y"),
            Some("\"a\"* \"OR\"* \"b\"* \"NEAR(c)\"* \"subject:x\"* \"-y\"*".into())
        );
        assert_eq!(fts_expression("say \"hi"), Some("\"say\"* \"hi\"".into()));
        assert_eq!(fts_expression("\"\" * ()"), None);
    }

    #[test]
    fn hostile_queries_run_without_fts_errors() {
        let s = Store::open_in_memory().unwrap();
        let acc = vec!["a1".to_string()];
        for q in [
            "\"",
            "a\"b",
            "NEAR(",
            "x:y",
            "^a",
            "a*b",
            "'; DROP TABLE messages; --",
            "(a OR",
        ] {
            if let Some(e) = fts_expression(q) {
                s.search(&e, &acc, 10, 0).unwrap();
            }
        }
    }
}
