//! `mailroom search`: plain words and "quoted phrases" over subjects, addresses and text bodies
//! of the messages this operator may see (issue 5).

use serde_json::json;

use super::Ctx;
use super::messages::SearchArgs;
use super::output::{emit, table};
use crate::crm::{search, visible_accounts};
use crate::error::{AppError, Result};
use crate::mail::sanitize::clean_line;

/// Rebuilds the query from shell arguments: an argument with spaces was quoted on the command
/// line, so it is a phrase (`mailroom search "March 2025" acme`).
pub fn query_from_args(args: &[String]) -> String {
    args.iter()
        .map(|a| {
            if a.contains(char::is_whitespace) && !a.contains('"') {
                format!("\"{a}\"")
            } else {
                a.clone()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

pub fn run(ctx: &Ctx, args: SearchArgs) -> Result<i32> {
    let config = ctx.config()?;
    let store = ctx.store()?;
    crate::crm::match_pending(&store, &config)?;
    let mut accounts = visible_accounts(&config, &ctx.operator);
    if let Some(name) = &args.sel.account {
        let a = config.account(name)?;
        if !ctx.sees(a) {
            return Err(AppError::not_found(
                "account",
                name,
                "see `mailroom account list`",
            ));
        }
        accounts.retain(|id| *id == a.id);
    }
    let q = query_from_args(&args.query);
    let (total, rows) = search::search(&store, &q, &accounts, args.limit, 0)?;
    let name = |id: &str| {
        config
            .account_by_id(id)
            .map(|(n, _)| n.clone())
            .unwrap_or_else(|| id.to_string())
    };
    let messages: Vec<_> = rows
        .iter()
        .map(|r| {
            json!({"id": r.id, "account": name(&r.account_id), "date": r.date, "from": r.from_addr,
                   "from_name": r.from_name, "subject": r.subject, "direction": r.direction,
                   "customer_id": r.customer_id})
        })
        .collect();
    emit(
        ctx.json,
        &json!({"query": q, "total": total, "messages": messages}),
        || {
            if rows.is_empty() {
                return format!("nothing found for {q}");
            }
            let t: Vec<Vec<String>> = rows
                .iter()
                .map(|r| {
                    vec![
                        r.id.to_string(),
                        r.date.as_deref().unwrap_or("-").chars().take(16).collect(),
                        clean_line(&name(&r.account_id)),
                        clean_line(r.from_addr.as_deref().unwrap_or("")),
                        clean_line(r.subject.as_deref().unwrap_or("")),
                    ]
                })
                .collect();
            let mut s = table(&["ID", "DATE", "ACCOUNT", "FROM", "SUBJECT"], &t);
            if total > rows.len() as i64 {
                s.push_str(&format!(
                    "({} of {total}; --limit N for more)\n",
                    rows.len()
                ));
            }
            s
        },
    );
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_arguments_with_spaces_are_phrases() {
        let q = query_from_args(&["March 2025".into(), "acme".into()]);
        assert_eq!(q, "\"March 2025\" acme");
        assert_eq!(
            crate::crm::search::fts_expression(&q).as_deref(),
            Some("\"March 2025\" \"acme\"*")
        );
        let q = query_from_args(&["\"already quoted\"".into()]);
        assert_eq!(q, "\"already quoted\"");
    }
}
