//! `mailroom customers`: the customer book.

use std::path::PathBuf;

use clap::Subcommand;

use super::Ctx;
use crate::error::{AppError, Result};

#[derive(Debug, Subcommand)]
pub enum CustomersCmd {
    Add {
        #[arg(long)]
        name: String,
        #[arg(long)]
        company: Option<String>,
        #[arg(long)]
        email: Vec<String>,
        #[arg(long)]
        domain: Vec<String>,
        #[arg(long)]
        notes: Option<String>,
    },
    List,
    /// One customer with the communication timeline.
    Show {
        id: i64,
    },
    Edit {
        id: i64,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        company: Option<String>,
        /// Add an address.
        #[arg(long)]
        email: Vec<String>,
        #[arg(long)]
        remove_email: Vec<String>,
        #[arg(long)]
        domain: Vec<String>,
        #[arg(long)]
        remove_domain: Vec<String>,
        #[arg(long)]
        notes: Option<String>,
    },
    Remove {
        id: i64,
    },
    /// Import a CSV (name, company, emails, domains, notes; several values separated by ';').
    Import {
        file: PathBuf,
    },
    /// Export as CSV to FILE or stdout.
    Export {
        file: Option<PathBuf>,
    },
}

pub fn run(_ctx: &Ctx, _cmd: CustomersCmd) -> Result<i32> {
    Err(AppError::needs_user(
        "`customers` is not available yet",
        "issue 5 adds it",
        "use a later build",
    ))
}
