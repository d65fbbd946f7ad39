//! An account's folders: the list (with cached counts), a fresh LIST from the server, which
//! folders sync, and roles (Sent and the others).
//!
//! Seeing the list needs `Need::Read`; reading it from the server again, choosing and roles are
//! settings (`Need::Configure`, the owner's).

use serde_json::json;

use super::Ctx;
use super::access::{self, Need};
use crate::account::Account;
use crate::error::Result;

pub use crate::model::Role;
pub use crate::store::{FolderEntry, FolderRow};

/// `folders NAME`: the account's folders as the server lists them now.
#[derive(Debug, Clone)]
pub struct FolderList {
    pub account: String,
    pub folders: Vec<FolderEntry>,
}

/// What `folders NAME` changes besides listing.
#[derive(Debug, Clone, Default)]
pub struct FolderChange {
    /// Read the list from the server again.
    pub refresh: bool,
    /// Exactly these folders sync.
    pub sync: Option<Vec<String>>,
    /// Roles to give (the user's choice wins over what the server says).
    pub roles: Vec<(Role, String)>,
}

impl FolderChange {
    fn changes_settings(&self) -> bool {
        self.refresh || self.sync.is_some() || !self.roles.is_empty()
    }
}

/// `folders [NAME] [--refresh] [--sync A,B] [--sent S] [--role ROLE=FOLDER]`: applies the
/// change and lists the folders. An account whose folders were never listed is read from the
/// server first.
pub async fn folders(cx: &Ctx, account: Option<&str>, change: FolderChange) -> Result<FolderList> {
    let need = if change.changes_settings() {
        Need::Configure
    } else {
        Need::Read
    };
    let name = account.map(str::to_string);
    let (acct, known) = cx
        .blocking(move |cx| open(cx, name.as_deref(), need))
        .await?;
    if change.refresh || !known {
        read_from_server(cx, &acct).await?;
    }
    cx.blocking(move |cx| {
        apply(cx, &acct, &change)?;
        Ok(FolderList {
            folders: entries(cx, acct.id())?,
            account: acct.name,
        })
    })
    .await
}

/// The account's folders (the console's Folders pane).
pub fn list(cx: &Ctx, account: &str) -> Result<Vec<FolderEntry>> {
    let config = cx.config()?;
    let store = cx.store()?;
    let (_, a) = access::account(cx, &config, &store, account, Need::Read)?;
    store.folder_entries(&a.id)
}

/// Reads the account's folders from the server again; returns the account's id.
pub async fn refresh(cx: &Ctx, account: &str) -> Result<String> {
    let name = account.to_string();
    let (acct, _) = cx
        .blocking(move |cx| open(cx, Some(&name), Need::Configure))
        .await?;
    read_from_server(cx, &acct).await?;
    Ok(acct.cfg.id)
}

/// Exactly these folders of the account sync (`folders NAME --sync A,B`).
pub fn choose(cx: &Ctx, account: &str, names: &[String]) -> Result<()> {
    let acct = settable(cx, account)?;
    apply(
        cx,
        &acct,
        &FolderChange {
            sync: Some(names.to_vec()),
            ..Default::default()
        },
    )
}

/// Gives `role` to `folder` (`folders NAME --sent S`, `--role ROLE=FOLDER`).
pub fn set_role(cx: &Ctx, account: &str, role: Role, folder: &str) -> Result<()> {
    let acct = settable(cx, account)?;
    apply(
        cx,
        &acct,
        &FolderChange {
            roles: vec![(role, folder.to_string())],
            ..Default::default()
        },
    )
}

/// The account, if this operator may change its settings.
fn settable(cx: &Ctx, account: &str) -> Result<Account> {
    let config = cx.config()?;
    let (n, _) = access::account(cx, &config, &*cx.store()?, account, Need::Configure)?;
    Account::from_config(&config, n)
}

/// The account (checked for `need`), and whether its folders were ever listed.
fn open(cx: &Ctx, name: Option<&str>, need: Need) -> Result<(Account, bool)> {
    let config = cx.config()?;
    let store = cx.store()?;
    let (n, a) = access::pick_account(cx, &config, &store, name, need)?;
    store.insert_account(&a.id, n, a.enabled)?;
    let known = !store.folders(&a.id)?.is_empty();
    Ok((Account::from_config(&config, n)?, known))
}

fn entries(cx: &Ctx, account_id: &str) -> Result<Vec<FolderEntry>> {
    cx.store()?.folder_entries(account_id)
}

/// The sync choice and roles, then one audit record of both.
fn apply(cx: &Ctx, acct: &Account, change: &FolderChange) -> Result<()> {
    let mut store = cx.store()?;
    let sync = change.sync.as_ref().map(|names| {
        names
            .iter()
            .map(|n| n.trim().to_string())
            .filter(|n| !n.is_empty())
            .collect::<Vec<_>>()
    });
    if let Some(names) = &sync {
        store.set_sync_folders(acct.id(), names)?;
    }
    for (role, folder) in &change.roles {
        store.set_folder_role(acct.id(), *role, folder)?;
    }
    if sync.is_none() && change.roles.is_empty() {
        return Ok(());
    }
    let sent = change
        .roles
        .iter()
        .find(|(r, _)| *r == Role::Sent)
        .map(|(_, f)| f);
    let roles: Vec<String> = change
        .roles
        .iter()
        .filter(|(r, _)| *r != Role::Sent)
        .map(|(r, f)| format!("{r}={f}"))
        .collect();
    store.audit(
        &cx.operator,
        "folders_change",
        Some(acct.id()),
        Some(&acct.name),
        &json!({"sync": sync, "roles": roles, "sent": sent}),
    )?;
    Ok(())
}

/// LISTs the server's folders into the store.
async fn read_from_server(cx: &Ctx, acct: &Account) -> Result<()> {
    let a = acct.clone();
    let pw = cx.blocking(move |cx| password(cx, &a)).await?;
    let mut session = crate::imap::connect(&acct.imap_target(), &pw).await?;
    let list = crate::imap::discovery::list_folders(&mut session).await?;
    crate::imap::connect::logout(session).await;
    let id = acct.id().to_string();
    cx.blocking(move |cx| store_list(cx, &id, &list)).await
}

/// What the account signs in to IMAP with (its password, or its OAuth2 tokens).
pub(super) fn password(cx: &Ctx, acct: &Account) -> Result<crate::secret::Credential> {
    let store = cx.store()?;
    acct.credential(&store, &cx.vault()?)
}

fn store_list(cx: &Ctx, account_id: &str, list: &[crate::model::FolderInfo]) -> Result<()> {
    cx.store()?.upsert_folders(account_id, list)
}
