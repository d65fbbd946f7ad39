//! `mailroom messages`, `message …`, `search`: the headless twin of the message list and view.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::{AccountSel, Ctx};
use crate::error::{AppError, Result};

#[derive(Debug, Args)]
pub struct MessagesArgs {
    /// The account (or --account).
    pub name: Option<String>,
    #[command(flatten)]
    pub sel: AccountSel,
    #[arg(long)]
    pub folder: Option<String>,
    #[arg(long, default_value_t = 50)]
    pub limit: i64,
    #[arg(long, default_value_t = 0)]
    pub offset: i64,
}

#[derive(Debug, Subcommand)]
pub enum MessageCmd {
    /// Headers, readable text and attachments of one message (fetches the body if needed).
    Show {
        id: i64,
        /// Print the raw RFC 5322 bytes.
        #[arg(long)]
        raw: bool,
    },
    /// Save attachment INDEX (from `message show`) to PATH.
    SaveAttachment {
        id: i64,
        index: usize,
        path: PathBuf,
    },
    /// Change flags locally and on the server.
    Flag {
        id: i64,
        #[arg(long)]
        seen: bool,
        #[arg(long)]
        unseen: bool,
        #[arg(long)]
        flagged: bool,
        #[arg(long)]
        unflagged: bool,
    },
    /// Move to another folder (locally at once, on the server through the queue).
    Move { id: i64, folder: String },
    /// Move to Trash.
    Delete { id: i64 },
}

#[derive(Debug, Args)]
pub struct SearchArgs {
    /// Plain words; "quoted phrases" allowed.
    pub query: Vec<String>,
    #[command(flatten)]
    pub sel: AccountSel,
    #[arg(long, default_value_t = 50)]
    pub limit: i64,
}

pub fn list(_ctx: &Ctx, _args: MessagesArgs) -> Result<i32> {
    Err(AppError::needs_user(
        "`messages` is not available yet",
        "issue 3 (sync engine) adds it",
        "use a later build",
    ))
}

pub async fn run(_ctx: &Ctx, _cmd: MessageCmd) -> Result<i32> {
    Err(AppError::needs_user(
        "`message` is not available yet",
        "issue 3 (sync engine) adds it",
        "use a later build",
    ))
}

pub fn search(ctx: &Ctx, args: SearchArgs) -> Result<i32> {
    super::search::run(ctx, args)
}
