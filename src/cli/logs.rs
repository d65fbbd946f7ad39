//! `mailroom log` (events and errors, optionally followed) and `mailroom audit`.

use std::time::Duration;

use clap::Args;
use serde_json::json;

use super::Ctx;
use super::output::{emit, table};
use crate::error::{AppError, Result};
use crate::mail::sanitize::clean_line;
use crate::store::{EventRow, Level};

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
    let level = Level::parse(&args.level).ok_or_else(|| {
        AppError::usage(
            format!("unknown level {:?}", args.level),
            "use error, warn, info or debug",
        )
    })?;
    let store = ctx.store()?;
    let names: std::collections::HashMap<String, String> = store
        .accounts()?
        .into_iter()
        .map(|a| (a.id, a.name))
        .collect();
    let events = store.recent_events(level, args.limit)?;
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
    let mut last = events.last().map(|e| e.id).unwrap_or(0);
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => return Ok(0),
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
        for e in store.events_after(last, level, 1000)? {
            last = e.id;
            if !super::output::line(&event_line(&e, &names)) {
                return Ok(0);
            }
        }
    }
}

pub fn audit(ctx: &Ctx, args: AuditArgs) -> Result<i32> {
    let store = ctx.store()?;
    let rows = store.audit_rows(args.limit)?;
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
