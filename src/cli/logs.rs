//! `mailroom log` (events and errors, optionally followed) and `mailroom audit`.

use clap::Args;
use serde_json::json;

use super::Ctx;
use super::output::{emit, table};
use crate::error::Result;
use crate::mail::sanitize::clean_line;
use crate::ops::logs::{self, EventRow};

#[derive(Debug, Args)]
pub struct LogArgs {
    /// Keep printing new events until interrupted.
    #[arg(long, short)]
    pub follow: bool,
    /// Lowest level shown: error, warn, info, debug.
    #[arg(long, default_value = "info")]
    pub level: String,
    #[arg(long, default_value_t = 100)]
    pub limit: i64,
}

#[derive(Debug, Args)]
pub struct AuditArgs {
    #[arg(long, default_value_t = 100)]
    pub limit: i64,
}

fn event_line(e: &EventRow, names: &std::collections::HashMap<String, String>) -> String {
    let acct = e
        .account_id
        .as_ref()
        .and_then(|id| names.get(id))
        .map(String::as_str)
        .unwrap_or("-");
    let mut s = format!(
        "{} {:<5} {:<10} {}",
        e.at,
        e.level,
        acct,
        clean_line(&e.what)
    );
    if let Some(d) = &e.detail {
        s.push_str(&format!(" — {}", clean_line(d)));
    }
    if let Some(f) = &e.fix {
        s.push_str(&format!(" [fix: {}]", clean_line(f)));
    }
    s
}

pub async fn log(ctx: &Ctx, args: LogArgs) -> Result<i32> {
    let level = logs::level(&args.level)?;
    let names = logs::account_names(ctx)?;
    let events = logs::recent(ctx, level, args.limit)?;
    if !args.follow || ctx.json {
        emit(ctx.json, &json!({ "events": events }), || {
            events
                .iter()
                .map(|e| event_line(e, &names))
                .collect::<Vec<_>>()
                .join("\n")
        });
        return Ok(0);
    }
    for e in &events {
        if !super::output::line(&event_line(e, &names)) {
            return Ok(0);
        }
    }
    let last = events.last().map(|e| e.id).unwrap_or(0);
    let print = |e: &EventRow| super::output::line(&event_line(e, &names));
    tokio::select! {
        _ = tokio::signal::ctrl_c() => Ok(0),
        r = logs::follow(ctx, level, last, print) => r.map(|()| 0),
    }
}

pub fn audit(ctx: &Ctx, args: AuditArgs) -> Result<i32> {
    let rows = logs::audit(ctx, args.limit)?;
    emit(ctx.json, &json!({ "audit": rows }), || {
        let cells: Vec<Vec<String>> = rows
            .iter()
            .map(|r| {
                vec![
                    r.id.to_string(),
                    r.at.clone(),
                    r.operator.clone(),
                    r.action.clone(),
                    r.target.clone().unwrap_or_default(),
                ]
            })
            .collect();
        table(&["ID", "AT", "OPERATOR", "ACTION", "TARGET"], &cells)
    });
    Ok(0)
}
