//! `mailroom folders`: the server's folders, roles and sync choice.

use clap::Args;
use serde::Serialize;

use super::output::{emit, table};
use super::{AccountSel, Ctx};
use crate::error::{AppError, Result};
use crate::mail::sanitize::clean_line;
use crate::ops::access::Need;
use crate::ops::folders::{self, FolderChange, FolderEntry, Role};

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

/// Resolves the account from a positional name or `--account`, if this operator may read it.
/// TRANSITIONAL (issue 11): cli/messages.rs still calls this until it moves onto ops.
pub fn pick(
    ctx: &Ctx,
    name: Option<&str>,
    sel: &AccountSel,
) -> Result<crate::ops::accounts::Account> {
    crate::ops::accounts::resolve(ctx, name.or(sel.account.as_deref()), Need::Read)
}

/// `--role ROLE=FOLDER` and `--sent FOLDER` as roles to give.
fn roles(args: &FoldersArgs) -> Result<Vec<(Role, String)>> {
    let mut roles = Vec::new();
    for spec in &args.roles {
        let (r, f) = spec.split_once('=').ok_or_else(|| {
            AppError::usage(
                format!("bad --role {spec:?}"),
                "write ROLE=FOLDER, e.g. --role trash=Deleted",
            )
        })?;
        let role = Role::parse(r.trim()).ok_or_else(|| {
            AppError::usage(
                format!("unknown role {r:?}"),
                "use inbox, sent, drafts, trash, junk or archive",
            )
        })?;
        roles.push((role, f.trim().to_string()));
    }
    if let Some(s) = &args.sent {
        roles.push((Role::Sent, s.clone()));
    }
    Ok(roles)
}

/// One folder in `folders --json`.
#[derive(Serialize)]
struct FolderJson<'a> {
    name: &'a str,
    role: Option<Role>,
    sync: bool,
    selectable: bool,
    messages: i64,
    last_synced_at: Option<&'a str>,
}

impl<'a> FolderJson<'a> {
    fn of(e: &'a FolderEntry) -> FolderJson<'a> {
        let f = &e.folder;
        FolderJson {
            name: &f.name,
            role: f.role,
            sync: f.sync_enabled,
            selectable: f.selectable,
            messages: e.cached,
            last_synced_at: f.last_synced_at.as_deref(),
        }
    }
}

#[derive(Serialize)]
struct FoldersJson<'a> {
    account: &'a str,
    folders: Vec<FolderJson<'a>>,
}

pub async fn run(ctx: &Ctx, args: FoldersArgs) -> Result<i32> {
    let change = FolderChange {
        refresh: args.refresh,
        sync: args.sync.clone(),
        roles: roles(&args)?,
    };
    let name = args.name.as_deref().or(args.sel.account.as_deref());
    let list = folders::folders(ctx, name, change).await?;
    let out = FoldersJson {
        account: &list.account,
        folders: list.folders.iter().map(FolderJson::of).collect(),
    };
    emit(ctx.json, &out, || {
        let rows: Vec<Vec<String>> = list
            .folders
            .iter()
            .map(|e| {
                vec![
                    clean_line(&e.folder.name),
                    e.folder.role.map(|r| r.to_string()).unwrap_or_default(),
                    if e.folder.sync_enabled { "on" } else { "off" }.to_string(),
                    e.cached.to_string(),
                ]
            })
            .collect();
        table(&["FOLDER", "ROLE", "SYNC", "CACHED"], &rows)
    });
    Ok(0)
}
