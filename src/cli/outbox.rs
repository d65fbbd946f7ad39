//! `mailroom send`, `reply`, `outbox`.

use std::path::PathBuf;
use std::sync::Arc;

use clap::{Args, Subcommand};

use super::Ctx;
use super::output::{emit, note, table};
use crate::error::{AppError, Result};
use crate::mail::sanitize::clean_line;
use crate::ops::outbox::{
    self as ops, Answers, CopyConnections, Decision, DriveReport, Item, Observer, OutboxState,
    Progress, SendRequest,
};

#[derive(Debug, Args, Clone, Default)]
pub struct ComposeArgs {
    #[arg(short = 'a', long)]
    pub account: Option<String>,
    /// Send from this alias of the account.
    #[arg(long)]
    pub from: Option<String>,
    #[arg(long)]
    pub to: Vec<String>,
    #[arg(long)]
    pub cc: Vec<String>,
    #[arg(long)]
    pub bcc: Vec<String>,
    #[arg(long)]
    pub reply_to: Option<String>,
    #[arg(long)]
    pub subject: Option<String>,
    /// Text body from a file (default: stdin).
    #[arg(long)]
    pub body_file: Option<PathBuf>,
    #[arg(long)]
    pub html_file: Option<PathBuf>,
    #[arg(long)]
    pub attach: Vec<PathBuf>,
    /// Queue only; the daemon or `outbox flush` sends it.
    #[arg(long)]
    pub queue_only: bool,
}

#[derive(Debug, Args)]
pub struct SendArgs {
    #[command(flatten)]
    pub compose: ComposeArgs,
    /// Message-ID (or local id) this replies to.
    #[arg(long)]
    pub in_reply_to: Option<String>,
}

#[derive(Debug, Args)]
pub struct ReplyArgs {
    /// Local id of the message to reply to.
    pub id: i64,
    /// Reply to all recipients.
    #[arg(long)]
    pub all: bool,
    #[command(flatten)]
    pub compose: ComposeArgs,
}

#[derive(Debug, Args)]
pub struct ForwardArgs {
    /// Local id of the message to forward (its text is quoted, its attachments go along).
    pub id: i64,
    #[command(flatten)]
    pub compose: ComposeArgs,
}

#[derive(Debug, Args)]
pub struct OutboxArgs {
    #[command(subcommand)]
    pub cmd: Option<OutboxCmd>,
}

#[derive(Debug, Subcommand)]
pub enum OutboxCmd {
    /// Try a failed or waiting item again now.
    Retry { id: i64 },
    /// Cancel an item that SMTP has not accepted yet.
    Cancel { id: i64 },
    /// Send an `uncertain` item again (it may then arrive twice).
    Resend { id: i64 },
    /// Give up on an `uncertain` item (assume it was delivered).
    Drop { id: i64 },
    /// Drive every due item now.
    Flush {
        /// Benchmark knob: one SMTP and IMAP connection per message instead of one per pass.
        #[arg(long, hide = true)]
        per_message_connections: bool,
    },
}

/// Prints each state an item reaches on stderr (never stdout, which is for the result).
fn printer() -> Option<Observer> {
    Some(Arc::new(|p: &Progress| {
        let copy = p
            .copy_state
            .map(|c| format!(" [copy: {c}]"))
            .unwrap_or_default();
        note(format!(
            "#{} {}{copy}: {}",
            p.id,
            p.state,
            clean_line(&p.note)
        ));
    }))
}

fn read_text(path: &std::path::Path, what: &str) -> Result<String> {
    let bytes = std::fs::read(path).map_err(|e| {
        AppError::usage(
            format!("cannot read the {what} {} ({e})", path.display()),
            format!("check the --{what} path"),
        )
    })?;
    String::from_utf8(bytes).map_err(|_| {
        AppError::usage(
            format!("the {what} {} is not UTF-8 text", path.display()),
            "save it as UTF-8",
        )
    })
}

/// The text body: --body-file, else stdin (empty when stdin is a terminal or closed).
fn body_text(c: &ComposeArgs) -> Result<String> {
    if let Some(p) = &c.body_file {
        return read_text(p, "body-file");
    }
    use std::io::{IsTerminal, Read};
    if std::io::stdin().is_terminal() {
        note("type the message, end with Ctrl-D:");
    }
    let mut s = String::new();
    std::io::stdin().read_to_string(&mut s).map_err(|e| {
        AppError::usage(
            format!("cannot read the body from stdin ({e})"),
            "pass --body-file FILE with UTF-8 text",
        )
    })?;
    Ok(s)
}

/// The compose flags as the service layer's request (the body and HTML read from their files).
fn request(c: ComposeArgs, answers: Answers) -> Result<SendRequest> {
    let text = body_text(&c)?;
    let html = c
        .html_file
        .as_deref()
        .map(|h| read_text(h, "html-file"))
        .transpose()?;
    Ok(SendRequest {
        account: c.account,
        from: c.from,
        to: c.to,
        cc: c.cc,
        bcc: c.bcc,
        reply_to: c.reply_to,
        subject: c.subject,
        text,
        html,
        attachments: c.attach,
        answers,
        queue_only: c.queue_only,
    })
}

/// The item as the result: its JSON, or a line with its state (and a note short of verified).
fn print_item(ctx: &Ctx, item: &Item) {
    emit(ctx.json, item, || {
        let mut s = format!("#{} {}", item.id, item.state);
        if let Some(c) = &item.copy_state {
            s.push_str(&format!(" (copy: {c})"));
        }
        if let (Some(e), false) = (&item.last_error, item.state == OutboxState::Verified) {
            s.push_str(&format!("\n  note: {}", clean_line(&e.what)));
        }
        s
    });
}

pub async fn send(ctx: &Ctx, args: SendArgs) -> Result<i32> {
    // Asked before the body is read from stdin.
    if args.compose.subject.is_none() {
        return Err(AppError::usage(
            "the message has no subject",
            "add --subject TEXT",
        ));
    }
    let answers = match args.in_reply_to {
        Some(irt) => Answers::MessageId(irt),
        None => Answers::Nothing,
    };
    let item = ops::send(ctx, request(args.compose, answers)?, printer()).await?;
    print_item(ctx, &item);
    Ok(0)
}

pub async fn reply(ctx: &Ctx, args: ReplyArgs) -> Result<i32> {
    let answers = Answers::Message {
        id: args.id,
        all: args.all,
    };
    let item = ops::send(ctx, request(args.compose, answers)?, printer()).await?;
    print_item(ctx, &item);
    Ok(0)
}

pub async fn forward(ctx: &Ctx, args: ForwardArgs) -> Result<i32> {
    let answers = Answers::Forward { id: args.id };
    let item = ops::send(ctx, request(args.compose, answers)?, printer()).await?;
    print_item(ctx, &item);
    Ok(0)
}

fn report_text(r: &DriveReport) -> String {
    let mut s = format!(
        "sent {}, verified {}, copy pending {}, uncertain {}, failed {}, retry later {}",
        r.sent, r.verified, r.copy_pending, r.uncertain, r.failed, r.retry_later
    );
    for e in &r.errors {
        s.push_str(&format!(
            "\n  #{}: {} — fix: {}",
            e.id.map(|i| i.to_string()).unwrap_or_else(|| "-".into()),
            clean_line(&e.what),
            clean_line(&e.fix)
        ));
    }
    s
}

fn list_text(items: &[Item]) -> String {
    if items.is_empty() {
        return "the outbox is empty".into();
    }
    let body: Vec<Vec<String>> = items
        .iter()
        .map(|i| {
            vec![
                i.id.to_string(),
                i.state.to_string(),
                i.copy_state
                    .map(|c| c.to_string())
                    .unwrap_or_else(|| "-".into()),
                i.attempts.to_string(),
                i.account.clone(),
                clean_line(&i.to.join(", ")),
                clean_line(i.subject.as_deref().unwrap_or("")),
                i.last_error
                    .as_ref()
                    .map(|e| {
                        format!(
                            "{} — {}",
                            clean_line(&e.what),
                            clean_line(e.fix.as_deref().unwrap_or(""))
                        )
                    })
                    .unwrap_or_default(),
            ]
        })
        .collect();
    table(
        &[
            "ID",
            "STATE",
            "COPY",
            "TRIES",
            "ACCOUNT",
            "TO",
            "SUBJECT",
            "LAST ERROR",
        ],
        &body,
    )
}

pub async fn run(ctx: &Ctx, args: OutboxArgs) -> Result<i32> {
    let item = match args.cmd {
        None => {
            let items = ctx.blocking(ops::list).await?;
            emit(ctx.json, &serde_json::json!({ "items": items }), || {
                list_text(&items)
            });
            return Ok(0);
        }
        Some(OutboxCmd::Flush {
            per_message_connections,
        }) => {
            let connections = if per_message_connections {
                CopyConnections::PerMessage
            } else {
                CopyConnections::Shared
            };
            let report = ops::flush(ctx, connections, printer()).await?;
            emit(ctx.json, &report, || report_text(&report));
            return Ok(if report.failed > 0 { 1 } else { 0 });
        }
        Some(OutboxCmd::Retry { id }) => ops::decide(ctx, id, Decision::Retry, printer()).await?,
        Some(OutboxCmd::Resend { id }) => ops::decide(ctx, id, Decision::Resend, printer()).await?,
        Some(OutboxCmd::Drop { id }) => ops::decide(ctx, id, Decision::Drop, printer()).await?,
        Some(OutboxCmd::Cancel { id }) => {
            let item = ctx
                .blocking(move |cx| ops::cancel(cx, id, printer()))
                .await?;
            emit(ctx.json, &item, || format!("#{id} cancelled"));
            return Ok(0);
        }
    };
    print_item(ctx, &item);
    Ok(0)
}
