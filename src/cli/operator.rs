//! `mailroom operator add|list|remove`: operators; on PostgreSQL, database roles.

use clap::Subcommand;
use serde_json::json;

use super::Ctx;
use super::output::{emit, table};
use crate::error::Result;
use crate::ops::operators::{self, PasswordSource};

#[derive(Debug, Subcommand)]
pub enum OperatorCmd {
    /// Add an operator: on PostgreSQL a login role limited by row-level security to the
    /// accounts it may see (an admin's store URL); on SQLite a name.
    Add {
        name: String,
        /// Read the role's password from stdin (else one is generated into
        /// HOME/operators/NAME.pgpass).
        #[arg(long, conflicts_with = "password_command")]
        password_stdin: bool,
        /// Run this command and take the first line it prints as the role's password.
        #[arg(long, value_name = "CMD")]
        password_command: Option<String>,
    },
    /// The operators added.
    List,
    /// Remove an operator (on PostgreSQL: drop its role).
    Remove { name: String },
}

pub fn run(ctx: &Ctx, cmd: OperatorCmd) -> Result<i32> {
    let cx = &ctx.ops;
    match cmd {
        OperatorCmd::Add {
            name,
            password_stdin,
            password_command,
        } => {
            let source = match (password_stdin, password_command) {
                (true, _) => PasswordSource::Stdin,
                (false, Some(c)) => PasswordSource::Command(c),
                (false, None) => PasswordSource::Generate,
            };
            let added = operators::add(cx, &name, &source)?;
            emit(ctx.json, &json!({ "operator": added }), || {
                let mut lines = vec![format!("added operator {}", added.name)];
                if let Some(url) = &added.store_url {
                    lines.push(format!("  store URL: {url}"));
                }
                match (&added.pgpass, &added.pgpass_line) {
                    (Some(file), _) => lines.push(format!(
                        "  password file: {file} (give it to {}; they set PGPASSFILE to it)",
                        added.name
                    )),
                    (None, Some(line)) => lines.push(format!(
                        "  their PGPASSFILE needs the line: {line} (the password you gave)"
                    )),
                    _ => {}
                }
                lines.push(format!("  {}", added.note));
                lines.join("\n")
            });
        }
        OperatorCmd::List => {
            let list = operators::list(cx)?;
            emit(ctx.json, &json!({ "operators": list }), || {
                let rows: Vec<Vec<String>> = list
                    .iter()
                    .map(|o| {
                        vec![
                            o.name.clone(),
                            match o.role {
                                Some(true) => "role".into(),
                                Some(false) => "role missing".into(),
                                None => "name only".into(),
                            },
                            o.created_by.clone(),
                            o.created_at.clone(),
                        ]
                    })
                    .collect();
                table(&["NAME", "KIND", "ADDED BY", "ADDED"], &rows)
            });
        }
        OperatorCmd::Remove { name } => {
            operators::remove(cx, &name)?;
            emit(ctx.json, &json!({ "removed": name }), || {
                format!("removed operator {name}")
            });
        }
    }
    Ok(0)
}
