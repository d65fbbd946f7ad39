//! `mailroom folders`: the server's folders, roles and sync choice.

use clap::Args;
use serde_json::json;

use super::output::{emit, table};
use super::{AccountSel, Ctx};
use crate::account::Account;
use crate::error::{AppError, Result};
use crate::imap::discovery::{self, Role};
use crate::mail::sanitize::clean_line;
use crate::store::Store;

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

/// Resolves the account from a positional name or `--account`.
pub fn pick(ctx: &Ctx, name: Option<&str>, sel: &AccountSel) -> Result<Account> {
    let config = ctx.config()?;
    let (n, _) = config.pick_account(name.or(sel.account.as_deref()))?;
    Account::from_config(&config, n)
}

/// LISTs the server's folders into the store.
pub async fn refresh(ctx: &Ctx, store: &mut Store, account: &Account) -> Result<()> {
    let pw = account.password(store, &ctx.vault()?)?;
    let mut session = crate::imap::connect(&account.imap_target(), &pw).await?;
    let list = discovery::list_folders(&mut session).await?;
    let _ = session.logout().await;
    store.upsert_folders(account.id(), &list)
}

pub async fn run(ctx: &Ctx, args: FoldersArgs) -> Result<i32> {
    let account = pick(ctx, args.name.as_deref(), &args.sel)?;
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
    let mut store = ctx.store()?;
    store.insert_account(account.id(), &account.name, account.cfg.enabled)?;
    if args.refresh || store.folders(account.id())?.is_empty() {
        refresh(ctx, &mut store, &account).await?;
    }
    let changed = args.sync.is_some() || !roles.is_empty();
    if let Some(names) = &args.sync {
        let names: Vec<String> = names
            .iter()
            .map(|n| n.trim().to_string())
            .filter(|n| !n.is_empty())
            .collect();
        store.set_sync_folders(account.id(), &names)?;
    }
    for (role, folder) in &roles {
        store.set_folder_role(account.id(), *role, folder)?;
    }
    if changed {
        store.audit(
            &ctx.operator,
            "folders_change",
            Some(account.id()),
            Some(&account.name),
            &json!({"sync": args.sync, "roles": args.roles, "sent": args.sent}),
        )?;
    }
    let folders = store.folders(account.id())?;
    let items: Vec<serde_json::Value> = folders
        .iter()
        .filter(|f| f.present)
        .map(|f| {
            json!({
                "name": f.name,
                "role": f.role,
                "sync": f.sync_enabled,
                "selectable": f.selectable,
                "messages": store.location_count(f.id).unwrap_or(0),
                "last_synced_at": f.last_synced_at,
            })
        })
        .collect();
    emit(
        ctx.json,
        &json!({"account": account.name, "folders": items}),
        || {
            let rows: Vec<Vec<String>> = folders
                .iter()
                .filter(|f| f.present)
                .map(|f| {
                    vec![
                        clean_line(&f.name),
                        f.role.clone().unwrap_or_default(),
                        if f.sync_enabled { "on" } else { "off" }.to_string(),
                        store.location_count(f.id).unwrap_or(0).to_string(),
                    ]
                })
                .collect();
            table(&["FOLDER", "ROLE", "SYNC", "CACHED"], &rows)
        },
    );
    Ok(0)
}
