//! `mailroom folders`: the server's folders, roles and sync choice.

use clap::Args;

use super::{AccountSel, Ctx};
use crate::error::{AppError, Result};

#[derive(Debug, Args)]
pub struct FoldersArgs {
    /// The account (or --account).
    pub name: Option<String>,
    #[command(flatten)]
    pub sel: AccountSel,
    /// Re-read the folder list from the server.
    #[arg(long)]
    pub refresh: bool,
    /// Exactly these folders sync (comma separated).
    #[arg(long, value_delimiter = ',', value_name = "A,B")]
    pub sync: Option<Vec<String>>,
    /// Use this folder as Sent.
    #[arg(long, value_name = "FOLDER")]
    pub sent: Option<String>,
    /// Set a role: inbox, sent, drafts, trash, junk, archive.
    #[arg(long = "role", value_name = "ROLE=FOLDER")]
    pub roles: Vec<String>,
}

pub async fn run(_ctx: &Ctx, _args: FoldersArgs) -> Result<i32> {
    Err(AppError::needs_user(
        "`folders` is not available yet",
        "issue 3 (sync engine) adds it",
        "use a later build",
    ))
}
