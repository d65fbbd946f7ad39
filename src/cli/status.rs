//! `mailroom status`: health of every account from the database alone, fast enough for a
//! monitoring check over SSH (it opens the DB read-only and never waits on the network). Every
//! operator sees every account's health (contract: Operators).

use super::Ctx;
use super::output::{emit, table};
use crate::error::Result;
use crate::mail::sanitize::clean_line;
use crate::ops::status::{self, Status, StatusError};

pub fn run(ctx: &Ctx) -> Result<i32> {
    let status = match status::read(ctx) {
        Ok(s) => s,
        Err(StatusError::Failed(e)) => return Err(e),
        Err(StatusError::CannotRead(e)) => {
            super::output::fail(ctx.json, &e);
            return Ok(3);
        }
    };
    emit(ctx.json, &status, || human(&status));
    Ok(status.overall.exit_code())
}

fn human(s: &Status) -> String {
    if s.accounts.is_empty() {
        return "no accounts; add one with `mailroom account add NAME --email … --imap … --smtp …`"
            .into();
    }
    let rows: Vec<Vec<String>> = s
        .accounts
        .iter()
        .map(|a| {
            let mut state = a.state.as_str().to_string();
            if let Some(p) = &a.progress {
                state = format!("{state} {} {}/{}", p.folder, p.done, p.total);
            }
            if a.insecure {
                state.push_str(" [insecure]");
            }
            if let Some(w) = &a.waiting {
                state = format!("{state} ({})", clean_line(w));
            }
            let by = a
                .synced_by
                .as_ref()
                .map(|b| format!("{} pid {}", clean_line(&b.host), b.pid))
                .unwrap_or_else(|| "-".into());
            vec![
                a.name.clone(),
                state,
                by,
                a.last_success_at.clone().unwrap_or_else(|| "never".into()),
                format!("{} ({} unread)", a.counts.messages, a.counts.unread),
                a.unmatched.to_string(),
                format!(
                    "{}q {}u {}c",
                    a.outbox.queued, a.outbox.uncertain, a.outbox.copy_pending
                ),
            ]
        })
        .collect();
    let mut out = format!("overall: {}\n", s.overall);
    out.push_str(&table(
        &[
            "ACCOUNT",
            "STATE",
            "SYNCED BY",
            "LAST SYNC",
            "MESSAGES",
            "UNMATCHED",
            "OUTBOX",
        ],
        &rows,
    ));
    if s.alerts.undelivered > 0 {
        out.push_str(&format!("alerts: {} not delivered", s.alerts.undelivered));
        if let Some(e) = &s.alerts.last_error {
            out.push_str(&format!(
                " (channel {}: {})\n  fix: {}",
                e.channel,
                clean_line(&e.what),
                clean_line(&e.fix)
            ));
        }
        out.push_str("\n  see `mailroom alerts list`\n");
    }
    for a in s.accounts.iter().filter(|a| a.bodies.count > 0) {
        out.push_str(&format!(
            "{}: {} bodies stored offline, {:.1} MB\n",
            a.name,
            a.bodies.count,
            a.bodies.bytes as f64 / 1e6
        ));
    }
    for a in &s.accounts {
        if let Some(e) = &a.last_error {
            out.push_str(&format!(
                "{}: last error at {}: {}\n  fix: {}\n",
                a.name,
                e.at,
                clean_line(&e.what),
                clean_line(&e.fix)
            ));
        }
    }
    out
}
