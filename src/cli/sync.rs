//! `mailroom sync`, `daemon`, `quarantine`.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::{AccountSel, Ctx};
use crate::error::{AppError, Result};

#[derive(Debug, Args)]
pub struct SyncArgs {
    /// The account (or --account); all enabled accounts when omitted.
    pub name: Option<String>,
    #[command(flatten)]
    pub sel: AccountSel,
    /// One pass, then exit.
    #[arg(long)]
    pub once: bool,
    /// Show per-folder counts, sizes and an estimate; change nothing.
    #[arg(long)]
    pub plan: bool,
    /// With --plan: only count messages since DATE (YYYY-MM-DD).
    #[arg(long, requires = "plan")]
    pub since: Option<String>,
    /// With --plan: only unread messages.
    #[arg(long, requires = "plan")]
    pub unread_only: bool,
    /// With --plan: only these folders.
    #[arg(long, value_delimiter = ',', requires = "plan")]
    pub folders: Option<Vec<String>>,
}

#[derive(Debug, Subcommand)]
pub enum QuarantineCmd {
    List,
    Retry { id: i64 },
    Skip { id: i64 },
    Save { id: i64, path: PathBuf },
}

pub async fn run(_ctx: &Ctx, _args: SyncArgs) -> Result<i32> {
    Err(AppError::needs_user(
        "`sync` is not available yet",
        "issue 3 (sync engine) adds it",
        "use a later build",
    ))
}

pub async fn daemon(_ctx: &Ctx) -> Result<i32> {
    Err(AppError::needs_user(
        "`daemon` is not available yet",
        "issue 3 (sync engine) adds it",
        "use a later build",
    ))
}

pub async fn quarantine(_ctx: &Ctx, _cmd: QuarantineCmd) -> Result<i32> {
    Err(AppError::needs_user(
        "`quarantine` is not available yet",
        "issue 3 (sync engine) adds it",
        "use a later build",
    ))
}
