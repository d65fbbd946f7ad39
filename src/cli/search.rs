//! `mailroom search`: the search language — words, "quoted phrases" and the filters `from:`
//! `to:` `subject:` `since:` `before:` `is:` `folder:` `account:` — over the messages this
//! operator may see (the console's `/` takes the same).

use super::Ctx;
use super::messages::SearchArgs;
use super::output::{emit, table};
use crate::error::Result;
use crate::mail::sanitize::clean_line;
use crate::ops::search;

/// Rebuilds the query from shell arguments: an argument with spaces was quoted on the command
/// line, so it is a phrase (`mailroom search "March 2025" acme`), or a filter's value
/// (`mailroom search from:"Ann Client"` reaches us as `from:Ann Client`).
pub fn query_from_args(args: &[String]) -> String {
    args.iter()
        .map(|a| {
            if !a.contains(char::is_whitespace) || a.contains('"') {
                return a.clone();
            }
            match a.split_once(':') {
                Some((key, value))
                    if crate::ops::search::KEYS
                        .iter()
                        .any(|k| k.eq_ignore_ascii_case(key))
                        && !value.starts_with(char::is_whitespace) =>
                {
                    format!("{key}:\"{value}\"")
                }
                _ => format!("\"{a}\""),
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

pub fn run(ctx: &Ctx, args: SearchArgs) -> Result<i32> {
    let q = query_from_args(&args.query);
    let found = search::search(ctx, &q, args.sel.account.as_deref(), args.limit)?;
    emit(ctx.json, &found, || {
        let rows = &found.messages;
        if rows.is_empty() {
            return format!("nothing found for {q}");
        }
        let t: Vec<Vec<String>> = rows
            .iter()
            .map(|r| {
                vec![
                    r.id.to_string(),
                    r.date.as_deref().unwrap_or("-").chars().take(16).collect(),
                    clean_line(&format!(
                        "{}/{}",
                        r.account,
                        r.folder.as_deref().unwrap_or("?")
                    )),
                    clean_line(r.from.as_deref().unwrap_or("")),
                    clean_line(r.subject.as_deref().unwrap_or("")),
                ]
            })
            .collect();
        let mut s = table(&["ID", "DATE", "WHERE", "FROM", "SUBJECT"], &t);
        if found.total > rows.len() as i64 {
            s.push_str(&format!(
                "({} of {}; --limit N for more)\n",
                rows.len(),
                found.total
            ));
        }
        s
    });
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_arguments_with_spaces_are_phrases() {
        let q = query_from_args(&["March 2025".into(), "acme".into()]);
        assert_eq!(q, "\"March 2025\" acme");
        let q = query_from_args(&["\"already quoted\"".into()]);
        assert_eq!(q, "\"already quoted\"");
        let q = query_from_args(&["from:Ann Client".into(), "re: hello".into()]);
        assert_eq!(q, "from:\"Ann Client\" \"re: hello\"");
    }
}
