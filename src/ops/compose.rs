//! What the console's compose pane needs besides sending (`ops::outbox::send`): drafts saved as
//! the operator types (in the store, so a quit or a crash loses nothing) and uploaded to the
//! account's Drafts folder; address completion from the customer book and known senders; path
//! completion for attachments.
//!
//! A draft belongs to the operator who wrote it; one written from an account they may no longer
//! act on is still theirs to read and discard, but not to upload or send.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::Ctx;
use super::access::{self, Need, Standing};
use crate::account::Account;
use crate::config::Config;
use crate::error::{AppError, Result};
use crate::mail::compose;
use crate::model::Role;
use crate::store::{DraftRow, NewDraft, Store};

/// What a draft answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DraftKind {
    #[default]
    New,
    Reply,
    ReplyAll,
    Forward,
}

impl DraftKind {
    fn as_str(self) -> &'static str {
        match self {
            DraftKind::New => "new",
            DraftKind::Reply => "reply",
            DraftKind::ReplyAll => "reply_all",
            DraftKind::Forward => "forward",
        }
    }
    fn parse(s: &str) -> DraftKind {
        match s {
            "reply" => DraftKind::Reply,
            "reply_all" => DraftKind::ReplyAll,
            "forward" => DraftKind::Forward,
            _ => DraftKind::New,
        }
    }
}

/// A draft's content as the compose form holds it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DraftContent {
    /// The account's name (None: not chosen).
    pub account: Option<String>,
    /// An alias of the account (None: its own address).
    pub from: Option<String>,
    pub to: String,
    pub cc: String,
    pub bcc: String,
    pub reply_to: String,
    pub subject: String,
    pub body: String,
    pub attachments: Vec<String>,
    pub kind: DraftKind,
    /// The message answered or forwarded.
    pub source_id: Option<i64>,
}

/// A saved draft.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Draft {
    pub id: i64,
    pub content: DraftContent,
    pub updated_at: String,
    /// The folder holding its uploaded copy, and when it was uploaded.
    pub uploaded: Option<(String, String)>,
}

fn account_name(config: &Config, id: Option<&str>) -> Option<String> {
    id.and_then(|id| config.account_by_id(id).map(|(n, _)| n.clone()))
}

fn draft_of(config: &Config, r: DraftRow) -> Draft {
    let c = r.content;
    Draft {
        id: r.id,
        uploaded: match (r.server, r.uploaded_at) {
            (Some((f, _, _)), Some(at)) => Some((f, at)),
            _ => None,
        },
        updated_at: r.updated_at,
        content: DraftContent {
            account: account_name(config, c.account_id.as_deref()),
            from: c.from_addr,
            to: c.to,
            cc: c.cc,
            bcc: c.bcc,
            reply_to: c.reply_to,
            subject: c.subject,
            body: c.body,
            attachments: c.attachments,
            kind: DraftKind::parse(&c.kind),
            source_id: c.source_id,
        },
    }
}

/// Saves what the operator typed: a new draft (`id` None) or over their draft `id`. Returns
/// its id. The account named must be one they may see (a draft names nothing else).
pub fn save(cx: &Ctx, id: Option<i64>, content: &DraftContent) -> Result<i64> {
    let config = cx.config()?;
    let store = cx.store()?;
    let account_id = match &content.account {
        Some(n) => Some(
            access::account(cx, &config, &store, n, Need::Read)?
                .1
                .id
                .clone(),
        ),
        None => None,
    };
    let row = NewDraft {
        account_id,
        from_addr: content.from.clone(),
        to: content.to.clone(),
        cc: content.cc.clone(),
        bcc: content.bcc.clone(),
        reply_to: content.reply_to.clone(),
        subject: content.subject.clone(),
        body: content.body.clone(),
        attachments: content.attachments.clone(),
        kind: content.kind.as_str().into(),
        source_id: content.source_id,
    };
    store.save_draft(&cx.operator, id, &row)
}

/// The operator's drafts, most recently changed first.
pub fn list(cx: &Ctx) -> Result<Vec<Draft>> {
    let config = cx.config()?;
    let store = cx.store()?;
    Ok(store
        .drafts(&cx.operator)?
        .into_iter()
        .map(|r| draft_of(&config, r))
        .collect())
}

/// One of the operator's drafts.
pub fn get(cx: &Ctx, id: i64) -> Result<Draft> {
    let config = cx.config()?;
    let store = cx.store()?;
    store
        .draft(&cx.operator, id)?
        .map(|r| draft_of(&config, r))
        .ok_or_else(|| no_draft(cx, id))
}

fn no_draft(cx: &Ctx, id: i64) -> AppError {
    AppError::needs_user(
        format!("no draft {id} of operator {}", cx.operator),
        "it was sent or discarded",
        "open another draft, or write a new message",
    )
}

/// What became of a draft that left: its local copy is gone; its Drafts-folder copy too
/// (`server_removed`), unless the server could not be reached (it stays there then).
#[derive(Debug, Clone, Serialize)]
pub struct Forgotten {
    pub id: i64,
    pub server_removed: bool,
    #[serde(skip)]
    pub server_error: Option<AppError>,
}

/// Removes a draft (discarded, or sent): locally at once, then its copy in the Drafts folder.
pub async fn forget(cx: &Ctx, id: i64) -> Result<Forgotten> {
    let row = cx.blocking(move |cx| take_draft(cx, id)).await?;
    let (Some(server), Some(account_id)) = (row.server, row.content.account_id) else {
        return Ok(Forgotten {
            id,
            server_removed: false,
            server_error: None,
        });
    };
    let removed = cx
        .on_own_thread("mailroom-drafts", move |cx, rt| {
            remove_here(cx, rt, &account_id, &server)
        })
        .await;
    Ok(Forgotten {
        id,
        server_removed: removed.is_ok(),
        server_error: removed.err(),
    })
}

/// The operator's draft, deleted from the store.
fn take_draft(cx: &Ctx, id: i64) -> Result<DraftRow> {
    let store = cx.store()?;
    let row = store
        .draft(&cx.operator, id)?
        .ok_or_else(|| no_draft(cx, id))?;
    store.delete_draft(&cx.operator, id)?;
    Ok(row)
}

/// Removes an uploaded copy, on a thread of its own.
fn remove_here(
    cx: &Ctx,
    rt: &tokio::runtime::Runtime,
    account_id: &str,
    server: &(String, u32, u32),
) -> Result<()> {
    let account = actable(cx, account_id)?;
    let pw = account.credential(&*cx.store()?, &cx.vault()?)?;
    rt.block_on(remove_copy(&account, &pw, server))
}

/// The account with this id, if the operator may act on it.
fn actable(cx: &Ctx, account_id: &str) -> Result<Account> {
    let config = cx.config()?;
    let store = cx.store()?;
    let (name, acct) = config
        .account_by_id(account_id)
        .ok_or_else(|| access::no_such(cx, &access::Target::Account(account_id)))?;
    access::check(
        cx,
        &config,
        &store,
        &access::Target::Account(name),
        std::slice::from_ref(&acct.id),
        Need::Act,
    )?;
    Account::from_config(&config, name)
}

/// Where a draft's copy went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Uploaded {
    pub id: i64,
    pub folder: String,
    pub uid: Option<u32>,
}

/// Stores the draft in its account's Drafts folder (flagged \Draft), replacing the copy it
/// uploaded before. Needs an account chosen that the operator may act on, with a Drafts folder.
pub async fn upload(cx: &Ctx, id: i64) -> Result<Uploaded> {
    cx.on_own_thread("mailroom-drafts", move |cx, rt| upload_here(cx, rt, id))
        .await
}

fn upload_here(cx: &Ctx, rt: &tokio::runtime::Runtime, id: i64) -> Result<Uploaded> {
    let (row, account, folder, bytes, message_id) = {
        let store = cx.store()?;
        let row = store
            .draft(&cx.operator, id)?
            .ok_or_else(|| no_draft(cx, id))?;
        let account_id = row.content.account_id.clone().ok_or_else(|| {
            AppError::usage(
                "the draft has no account to store it in",
                "choose the sender (From) first",
            )
        })?;
        let account = actable(cx, &account_id)?;
        let folder = drafts_folder(&store, &account)?;
        let (bytes, message_id) = draft_bytes(&account, &row.content)?;
        (row, account, folder, bytes, message_id)
    };
    let pw = account.credential(&*cx.store()?, &cx.vault()?)?;
    let old = row.server.clone();
    let got = rt.block_on(async {
        let mut ss = crate::sync::open_session(&account, &pw).await?;
        let got =
            crate::imap::append::append(&mut ss.session, &folder.1, "\\Draft \\Seen", None, &bytes)
                .await;
        let _ = ss.session.logout().await;
        got
    })?;
    if let Some((uidvalidity, uid)) = got {
        cx.store()?
            .set_draft_uploaded(id, &folder.0, uidvalidity, uid, &message_id)?;
    }
    // The copy uploaded before goes (the new one is in place first).
    if let Some(old) = old
        && got.is_some_and(|(_, u)| old.2 != u || old.0 != folder.0)
    {
        let _ = rt.block_on(remove_copy(&account, &pw, &old));
    }
    Ok(Uploaded {
        id,
        folder: folder.0,
        uid: got.map(|(_, u)| u),
    })
}

/// The account's Drafts folder: (name, wire name).
fn drafts_folder(store: &Store, account: &Account) -> Result<(String, String)> {
    store
        .folder_by_role(account.id(), Role::Drafts)?
        .map(|f| (f.name, f.wire_name))
        .ok_or_else(|| {
            AppError::needs_user(
                format!("account {} has no Drafts folder", account.name),
                "the draft stays saved here",
                format!(
                    "choose one with `mailroom folders {} --role drafts=FOLDER`",
                    account.name
                ),
            )
        })
}

/// The draft as a message (its recipients as far as they are valid addresses yet).
fn draft_bytes(account: &Account, c: &NewDraft) -> Result<(Vec<u8>, String)> {
    let from = match &c.from_addr {
        Some(f) => f.clone(),
        None => match &account.cfg.display_name {
            Some(n) if !n.is_empty() => format!("{n} <{}>", account.cfg.email),
            _ => account.cfg.email.clone(),
        },
    };
    let valid = |s: &str| -> Vec<String> {
        split_addresses(s)
            .into_iter()
            .filter(|a| compose::parse_mailbox("address", a).is_ok())
            .collect()
    };
    let mut attachments = Vec::new();
    for p in &c.attachments {
        attachments.push(compose::read_attachment(Path::new(p))?);
    }
    let message_id = compose::new_message_id(&compose::bare_address(&from)?);
    let reply_to = Some(c.reply_to.trim().to_string())
        .filter(|r| !r.is_empty() && compose::parse_mailbox("reply-to", r).is_ok());
    let draft = compose::Draft {
        from,
        to: valid(&c.to),
        cc: valid(&c.cc),
        bcc: valid(&c.bcc),
        reply_to,
        subject: c.subject.clone(),
        text: c.body.clone(),
        html: None,
        attachments,
        in_reply_to: None,
        references: vec![],
        message_id: message_id.clone(),
        date: std::time::SystemTime::now(),
    };
    Ok((compose::build_draft(&draft)?, message_id))
}

/// Removes one uploaded copy (UID EXPUNGE only, never a plain EXPUNGE that would take other
/// \Deleted mail; without UIDPLUS it is only marked \Deleted).
async fn remove_copy(
    account: &Account,
    pw: &crate::secret::Credential,
    (folder, uidvalidity, uid): &(String, u32, u32),
) -> Result<()> {
    use futures::TryStreamExt;
    let perr = |what: &'static str| move |e| crate::imap::connect::protocol_error(what, e);
    let mut ss = crate::sync::open_session(account, pw).await?;
    let wire = crate::imap::discovery::encode_utf7(folder);
    let s = &mut ss.session;
    let mailbox = s.select(&wire).await.map_err(perr("SELECT"))?;
    // A folder recreated since (another UIDVALIDITY) no longer holds our copy.
    if mailbox.uid_validity == Some(*uidvalidity) {
        let set = uid.to_string();
        let st = s
            .uid_store(&set, "+FLAGS.SILENT (\\Deleted)")
            .await
            .map_err(perr("UID STORE"))?;
        let _: Vec<_> = st.try_collect().await.map_err(perr("UID STORE"))?;
        if ss.caps.uidplus {
            let st = s.uid_expunge(&set).await.map_err(perr("UID EXPUNGE"))?;
            let _: Vec<_> = st.try_collect().await.map_err(perr("UID EXPUNGE"))?;
        }
    }
    let _ = ss.session.logout().await;
    Ok(())
}

/// Addresses typed into a field: separated by commas (or semicolons), trimmed.
pub fn split_addresses(s: &str) -> Vec<String> {
    s.split([',', ';'])
        .map(str::trim)
        .filter(|x| !x.is_empty())
        .map(String::from)
        .collect()
}

/// An address to complete to, and where it is known from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Completion {
    pub name: Option<String>,
    pub address: String,
    /// "customer" or "sender"
    pub source: &'static str,
}

/// Addresses starting with `prefix` (or customers whose name does): customers first, then
/// senders of mail the operator may see.
pub fn completions(cx: &Ctx, prefix: &str, limit: i64) -> Result<Vec<Completion>> {
    let config = cx.config()?;
    let store = cx.store()?;
    let mut out: Vec<Completion> = store
        .view_address_completions(prefix, limit)?
        .into_iter()
        .map(|(name, address)| Completion {
            name: Some(name),
            address,
            source: "customer",
        })
        .collect();
    let visible = access::visible_account_ids(cx, &config);
    for (name, address) in store.known_senders(prefix, &visible, limit)? {
        if out.len() as i64 >= limit {
            break;
        }
        if !out.iter().any(|c| c.address.eq_ignore_ascii_case(&address)) {
            out.push(Completion {
                name,
                address,
                source: "sender",
            });
        }
    }
    Ok(out)
}

/// Paths that complete `typed` (a file or directory path; `~/` is the home directory): the
/// entries of its directory whose names start with its last part, directories with a `/`.
pub fn complete_path(typed: &str, limit: usize) -> Vec<String> {
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let expanded = match (typed.strip_prefix("~/"), &home) {
        (Some(rest), Some(h)) => h.join(rest).to_string_lossy().to_string(),
        _ => typed.to_string(),
    };
    let (dir, stem) = match expanded.rfind('/') {
        Some(i) => (&expanded[..=i], &expanded[i + 1..]),
        None => ("", expanded.as_str()),
    };
    let read = if dir.is_empty() { "." } else { dir };
    let Ok(entries) = std::fs::read_dir(read) else {
        return Vec::new();
    };
    let shown_dir = &typed[..typed.len() - stem.len().min(typed.len())];
    let mut out: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().to_string();
            if !name.starts_with(stem) || (name.starts_with('.') && !stem.starts_with('.')) {
                return None;
            }
            let is_dir = e.file_type().map(|t| t.is_dir()).unwrap_or(false);
            Some(format!(
                "{shown_dir}{name}{}",
                if is_dir { "/" } else { "" }
            ))
        })
        .collect();
    out.sort();
    out.truncate(limit);
    out
}

/// The accounts (names) the operator may send from.
pub fn senders(cx: &Ctx) -> Result<Vec<String>> {
    let config = cx.config()?;
    Ok(config
        .accounts
        .iter()
        .filter(|(_, a)| Standing::of(a, &cx.operator).allows(Need::Act))
        .map(|(n, _)| n.clone())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_complete_from_their_directory() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("report.pdf"), b"x").unwrap();
        std::fs::write(dir.path().join("readme.txt"), b"x").unwrap();
        std::fs::write(dir.path().join(".hidden"), b"x").unwrap();
        std::fs::create_dir(dir.path().join("receipts")).unwrap();
        let base = format!("{}/", dir.path().display());
        let got = complete_path(&format!("{base}re"), 10);
        assert_eq!(
            got,
            vec![
                format!("{base}readme.txt"),
                format!("{base}receipts/"),
                format!("{base}report.pdf")
            ]
        );
        assert_eq!(complete_path(&format!("{base}rep"), 10).len(), 1);
        assert!(
            complete_path(&base, 10)
                .iter()
                .all(|p| !p.contains(".hidden"))
        );
        assert!(complete_path("/no/such/dir/x", 10).is_empty());
    }

    #[test]
    fn addresses_split_on_commas_and_semicolons() {
        assert_eq!(
            split_addresses(" a@x, b@y ;c@z,, "),
            vec!["a@x".to_string(), "b@y".into(), "c@z".into()]
        );
    }
}
