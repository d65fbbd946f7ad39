//! `mailroom trace on|off|show|export`: an account's live protocol trace (the console's log
//! pane shows the same lines). Credentials are redacted where they are sent.

use clap::Subcommand;
use serde_json::json;

use super::Ctx;
use super::output::emit;
use crate::error::Result;
use crate::ops::trace::{self, Query};

#[derive(Debug, Subcommand)]
pub enum TraceCmd {
    /// Start tracing the account's IMAP and SMTP lines (any process that syncs it, the daemon
    /// included, starts within a second).
    On {
        account: String,
        /// Keep message literals in full (else they are elided to their size).
        #[arg(long)]
        literals: bool,
    },
    /// Stop tracing the account (its lines stay until the ring overwrites them).
    Off { account: String },
    /// The newest lines, oldest first (every visible account without ACCOUNT).
    Show {
        account: Option<String>,
        /// info (commands and answers) or debug (also untagged data and literals).
        #[arg(long)]
        level: Option<String>,
        #[arg(long, default_value_t = 200)]
        limit: i64,
    },
    /// Write the account's whole trace to FILE, to share with a provider's support.
    Export {
        account: String,
        file: std::path::PathBuf,
    },
}

pub fn run(ctx: &Ctx, cmd: TraceCmd) -> Result<i32> {
    let cx = &ctx.ops;
    match cmd {
        TraceCmd::On { account, literals } => {
            let s = trace::set(cx, &account, true, literals)?;
            if literals {
                super::output::note(format!("warning: {}", trace::LITERALS_WARNING));
            }
            emit(ctx.json, &json!({ "trace": s }), || {
                format!(
                    "tracing {account} (shown in the console's Debug log, `mailroom trace show {account}`)"
                )
            });
        }
        TraceCmd::Off { account } => {
            let s = trace::set(cx, &account, false, false)?;
            emit(ctx.json, &json!({ "trace": s }), || {
                format!("stopped tracing {account}")
            });
        }
        TraceCmd::Show {
            account,
            level,
            limit,
        } => {
            let lines = trace::show(cx, &Query { account, level }, limit)?;
            emit(ctx.json, &json!({ "lines": lines }), || {
                lines
                    .iter()
                    .map(trace::format_line)
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
        TraceCmd::Export { account, file } => {
            let n = trace::export(cx, &account, &file)?;
            emit(
                ctx.json,
                &json!({ "exported": n, "path": file.display().to_string() }),
                || format!("wrote {n} trace lines of {account} to {}", file.display()),
            );
        }
    }
    Ok(0)
}
