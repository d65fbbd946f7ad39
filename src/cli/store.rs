//! `mailroom store copy --from URL --to URL`: moves an installation between stores and prints
//! every table's counts on both sides.

use clap::Subcommand;

use super::Ctx;
use super::output::{emit, table};
use crate::error::Result;
use crate::ops::store::{self, CopyReport};

#[derive(Debug, Subcommand)]
pub enum StoreCmd {
    /// Copy every table into an empty store (SQLite ↔ PostgreSQL) and verify the counts.
    Copy {
        /// The store to copy: sqlite:///path/mailroom.db or postgres://USER@HOST:PORT/DB.
        #[arg(long, value_name = "URL")]
        from: String,
        /// The empty store to copy into (a new SQLite file, or a new PostgreSQL database).
        #[arg(long, value_name = "URL")]
        to: String,
    },
}

pub fn run(ctx: &Ctx, cmd: StoreCmd) -> Result<i32> {
    match cmd {
        StoreCmd::Copy { from, to } => {
            let report = store::copy(&from, &to)?;
            emit(ctx.json, &report, || human(&report));
            Ok(0)
        }
    }
}

fn human(r: &CopyReport) -> String {
    let rows: Vec<Vec<String>> = r
        .tables
        .iter()
        .map(|t| vec![t.table.clone(), t.source.to_string(), t.target.to_string()])
        .collect();
    format!(
        "copied {} → {}\n{}counts verified: every table has as many rows as the source\n",
        r.from,
        r.to,
        table(&["TABLE", "SOURCE", "TARGET"], &rows)
    )
}
