//! `mailroom triage`, `undo`, `deny`.

use clap::Subcommand;

use super::Ctx;
use crate::error::{AppError, Result};

#[derive(Debug, Subcommand)]
pub enum TriageCmd {
    /// Unmatched inbound mail, newest first.
    List {
        #[arg(short = 'a', long)]
        account: Option<String>,
    },
    Show {
        id: i64,
    },
    /// Pair the message (and its sender's address) with a customer.
    Pair {
        id: i64,
        #[arg(long)]
        customer: i64,
    },
    /// Create a customer from the sender.
    AddCustomer {
        id: i64,
        #[arg(long)]
        name: Option<String>,
    },
    /// Block the sender's address (or its whole domain).
    Block {
        id: i64,
        #[arg(long)]
        domain: bool,
    },
    /// Move the message to Trash on the server.
    Delete {
        id: i64,
    },
}

#[derive(Debug, Subcommand)]
pub enum DenyCmd {
    Add {
        pattern: String,
        #[arg(short = 'a', long, conflicts_with = "global")]
        account: Option<String>,
        #[arg(long)]
        global: bool,
    },
    Remove {
        pattern: String,
        #[arg(short = 'a', long, conflicts_with = "global")]
        account: Option<String>,
        #[arg(long)]
        global: bool,
    },
    List {
        #[arg(short = 'a', long)]
        account: Option<String>,
        #[arg(long)]
        global: bool,
    },
}

pub async fn run(_ctx: &Ctx, _cmd: TriageCmd) -> Result<i32> {
    Err(AppError::needs_user(
        "`triage` is not available yet",
        "issue 5 adds it",
        "use a later build",
    ))
}

pub async fn undo(_ctx: &Ctx, _id: Option<i64>) -> Result<i32> {
    Err(AppError::needs_user(
        "`undo` is not available yet",
        "issue 5 adds it",
        "use a later build",
    ))
}

pub fn deny(_ctx: &Ctx, _cmd: DenyCmd) -> Result<i32> {
    Err(AppError::needs_user(
        "`deny` is not available yet",
        "issue 5 adds it",
        "use a later build",
    ))
}
