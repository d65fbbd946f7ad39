//! `mailroom send`, `reply`, `outbox`.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::Ctx;
use crate::error::{AppError, Result};

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
    Flush,
}

pub async fn send(_ctx: &Ctx, _args: SendArgs) -> Result<i32> {
    Err(AppError::needs_user(
        "`send` is not available yet",
        "issue 4 (send pipeline) adds it",
        "use a later build",
    ))
}

pub async fn reply(_ctx: &Ctx, _args: ReplyArgs) -> Result<i32> {
    Err(AppError::needs_user(
        "`reply` is not available yet",
        "issue 4 (send pipeline) adds it",
        "use a later build",
    ))
}

pub async fn run(_ctx: &Ctx, _args: OutboxArgs) -> Result<i32> {
    Err(AppError::needs_user(
        "`outbox` is not available yet",
        "issue 4 (send pipeline) adds it",
        "use a later build",
    ))
}
