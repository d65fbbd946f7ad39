//! `mailroom config export [FILE]` and `mailroom config import FILE [--dry-run]`: the
//! installation's shared settings as TOML (on PostgreSQL the document every host reads; on
//! SQLite config.toml's shared sections).

use std::path::PathBuf;

use clap::Subcommand;

use super::Ctx;
use super::output::{emit, note};
use crate::error::{AppError, Result};
use crate::ops::settings::{self, ImportReport};

#[derive(Debug, Subcommand)]
pub enum ConfigCmd {
    /// Print the shared settings as TOML (accounts, aliases, sharing, deny lists, system SMTP,
    /// alerts, sync and sent-copy options; never secrets), or write them to FILE.
    Export {
        /// Write here instead of stdout.
        file: Option<PathBuf>,
    },
    /// Make FILE the shared settings: checked by config.toml's rules, account ids kept; reports
    /// the accounts added, changed and removed.
    Import {
        file: PathBuf,
        /// Report what would change; change nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

pub fn run(ctx: &Ctx, cmd: ConfigCmd) -> Result<i32> {
    match cmd {
        ConfigCmd::Export { file } => {
            let export = settings::export(ctx)?;
            match file {
                Some(path) => {
                    crate::config::write_atomic(&path, export.toml.as_bytes(), 0o600)?;
                    emit(ctx.json, &export, || {
                        format!("wrote the shared settings to {}", path.display())
                    });
                }
                None if ctx.json => emit(true, &export, String::new),
                None => print!("{}", export.toml),
            }
            Ok(0)
        }
        ConfigCmd::Import { file, dry_run } => {
            let text = std::fs::read_to_string(&file).map_err(|e| {
                AppError::usage(
                    format!("cannot read {}: {e}", file.display()),
                    "name a TOML file, e.g. one written by `mailroom config export FILE`",
                )
            })?;
            let report = settings::import(ctx, &file.display().to_string(), &text, dry_run)?;
            emit(ctx.json, &report, || human(&report));
            if !ctx.json {
                for name in &report.need_password {
                    note(format!(
                        "{name} has no password yet: `mailroom account set-password {name}`"
                    ));
                }
            }
            Ok(0)
        }
    }
}

fn human(r: &ImportReport) -> String {
    if r.is_empty() {
        return "no change: the file equals the shared settings".into();
    }
    let mut out = if r.dry_run {
        "dry run, nothing changed; the import would make these changes:\n".to_string()
    } else {
        String::new()
    };
    let list = |out: &mut String, what: &str, names: &[String]| {
        if !names.is_empty() {
            out.push_str(&format!("{what}: {}\n", names.join(", ")));
        }
    };
    list(&mut out, "accounts added", &r.added);
    list(&mut out, "accounts changed", &r.changed);
    list(&mut out, "accounts removed", &r.removed);
    let renamed: Vec<String> = r
        .renamed
        .iter()
        .map(|x| format!("{} → {}", x.from, x.to))
        .collect();
    list(&mut out, "accounts renamed", &renamed);
    list(&mut out, "sections changed", &r.sections);
    out
}
