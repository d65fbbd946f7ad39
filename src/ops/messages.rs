//! Cached messages: an account's list, one message (its body fetched from the server on
//! demand), its raw bytes and attachments, and the local changes — flag, move, delete — that go
//! to the server at once when no other process syncs the account, else with the next sync.
//!
//! A message is visible through the accounts that hold it and that the operator may see
//! ([`access::message`]); what it shows of its locations is limited to those, and a change
//! touches only its copies in accounts the operator may act on.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::Ctx;
use super::access::{self, Need, Target};
use crate::account::Account;
use crate::config::Config;
use crate::error::{AppError, Result};
use crate::mail::parse;
use crate::mail::sanitize::clean_line;
use crate::model::Role;
use crate::store::Store;

pub use crate::mail::parse::{Addr, Attachment};
pub use crate::store::{LocationView, MessageSummary};

/// One message as `message show` and the console's message view present it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MessageView {
    pub message: MessageSummary,
    /// The readable text (empty in JSON until the body is fetched).
    #[serde(serialize_with = "text_or_empty")]
    pub text: Option<String>,
    /// Listed once the body is fetched.
    pub attachments: Vec<Attachment>,
    pub in_reply_to: Option<String>,
    pub references: Option<String>,
    #[serde(skip)]
    pub body_fetched: bool,
    /// Known from the headers before the body is fetched.
    #[serde(skip)]
    pub has_attachments: bool,
    /// The name of the customer it is paired with.
    #[serde(skip)]
    pub customer: Option<String>,
}

fn text_or_empty<S: serde::Serializer>(t: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(t.as_deref().unwrap_or(""))
}

/// One page of an account's messages, newest first (`messages [NAME] [--folder F]`).
pub fn list(
    cx: &Ctx,
    account: Option<&str>,
    folder: Option<&str>,
    limit: i64,
    offset: i64,
) -> Result<Vec<MessageSummary>> {
    let config = cx.config()?;
    let store = cx.store()?;
    let (_, acct) = access::pick_account(cx, &config, &store, account, Need::Read)?;
    if limit < 0 || offset < 0 {
        return Err(AppError::usage(
            "--limit and --offset cannot be negative",
            "pass 0 or more",
        ));
    }
    let visible = access::visible_account_ids(cx, &config);
    let page = store.messages_page(&acct.id, folder, limit, offset)?;
    // Each copy keeps its own flags; the message's are the union of the copies it lists.
    Ok(page
        .into_iter()
        .map(|m| only_through(m, &visible))
        .collect())
}

/// One message as cached, without going to the server (the console's message view).
pub fn view(cx: &Ctx, id: i64) -> Result<MessageView> {
    let config = cx.config()?;
    let store = cx.store()?;
    let readable = access::message(cx, &config, &store, id, Need::Read)?;
    let m = store
        .message(id)?
        .ok_or_else(|| access::no_such(cx, &Target::Message(id)))?;
    let attachments = m
        .body
        .as_deref()
        .and_then(parse::parse_body)
        .map(|b| b.attachments)
        .unwrap_or_default();
    Ok(MessageView {
        message: only_through(m.summary, &readable),
        text: m.text_body,
        attachments,
        in_reply_to: m.in_reply_to,
        references: m.refs,
        body_fetched: m.body.is_some(),
        has_attachments: m.has_attachments,
        customer: m.customer,
    })
}

/// The message as seen through `accounts`: only their locations, and its flags the union of
/// theirs.
fn only_through(mut m: MessageSummary, accounts: &[String]) -> MessageSummary {
    m.locations.retain(|l| accounts.contains(&l.account_id));
    let mut flags: Vec<String> = Vec::new();
    for f in m.locations.iter().flat_map(|l| &l.flags) {
        if !flags.contains(f) {
            flags.push(f.clone());
        }
    }
    flags.sort();
    m.flags = flags;
    m
}

/// One message with its body, fetched from the server first when needed (`message show`).
pub async fn show(cx: &Ctx, id: i64) -> Result<MessageView> {
    body(cx, id).await?;
    cx.blocking(move |cx| view(cx, id)).await
}

/// The raw RFC 5322 bytes, fetched first when needed (`message show --raw`).
pub async fn raw(cx: &Ctx, id: i64) -> Result<Vec<u8>> {
    body(cx, id).await
}

/// Makes sure the body is cached (the console asks when a message is opened).
pub async fn fetch_body(cx: &Ctx, id: i64) -> Result<()> {
    body(cx, id).await.map(|_| ())
}

/// The cached body, or the one fetched now from an account holding the message that the
/// operator may see.
async fn body(cx: &Ctx, id: i64) -> Result<Vec<u8>> {
    let (readable, cached) = cx.blocking(move |cx| cached_body(cx, id)).await?;
    if let Some(b) = cached {
        return Ok(b);
    }
    cx.on_own_thread("mailroom-fetch", move |cx, rt| {
        fetch_here(cx, rt, id, &readable)
    })
    .await
}

/// The accounts through which the operator may read the message, and its cached body.
fn cached_body(cx: &Ctx, id: i64) -> Result<(Vec<String>, Option<Vec<u8>>)> {
    let config = cx.config()?;
    let store = cx.store()?;
    let readable = access::message(cx, &config, &store, id, Need::Read)?;
    Ok((readable, store.message(id)?.and_then(|m| m.body)))
}

/// Fetches the body over a session of its own (the sync engine's on-demand fetch).
fn fetch_here(
    cx: &Ctx,
    rt: &tokio::runtime::Runtime,
    id: i64,
    readable: &[String],
) -> Result<Vec<u8>> {
    let config = cx.config()?;
    let mut store = cx.store()?;
    let account = holder(&config, &store, id, readable)?;
    let pw = account.credential(&store, &cx.vault()?)?;
    let got = rt.block_on(async {
        let mut ss = crate::sync::open_session(&account, &pw).await?;
        let got = crate::sync::engine::fetch_body_now(&mut store, &account, &mut ss, id).await?;
        ss.logout().await;
        Ok::<bool, AppError>(got)
    })?;
    if !got {
        return Err(AppError::needs_user(
            format!("message {id} is no longer on the server"),
            "",
            "run `mailroom sync` to refresh the cache",
        )
        .with_code(crate::error::Code::NotFound));
    }
    store
        .message(id)?
        .and_then(|m| m.body)
        .ok_or_else(|| access::no_such(cx, &Target::Message(id)))
}

/// The first configured account among `accounts` that holds the message (in the order its
/// copies were stored).
fn holder(config: &Config, store: &Store, id: i64, accounts: &[String]) -> Result<Account> {
    for l in store.locations_of(id)? {
        if accounts.contains(&l.account_id)
            && let Some((name, _)) = config.account_by_id(&l.account_id)
        {
            return Account::from_config(config, name);
        }
    }
    Err(AppError::usage(
        format!("message {id} is not in any synced folder of a configured account"),
        "pick an id from `mailroom messages`",
    )
    .with_code(crate::error::Code::NotFound))
}

/// Where an attachment went.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Saved {
    pub saved: PathBuf,
    pub bytes: usize,
}

/// Saves attachment `index` (as `message show` numbers them) to a new file at `path` (0600;
/// an existing file is never overwritten).
pub async fn save_attachment(cx: &Ctx, id: i64, index: usize, path: &Path) -> Result<Saved> {
    let body = body(cx, id).await?;
    let path = path.to_path_buf();
    cx.blocking(move |_| write_attachment(&body, id, index, path))
        .await
}

fn write_attachment(body: &[u8], id: i64, index: usize, path: PathBuf) -> Result<Saved> {
    let (_, bytes) = parse::attachment_bytes(body, index).ok_or_else(|| {
        AppError::usage(
            format!("message {id} has no attachment {index}"),
            "see the attachment numbers in `mailroom message show ID`",
        )
        .with_code(crate::error::Code::NotFound)
    })?;
    if path.exists() {
        return Err(AppError::usage(
            format!("{} already exists", path.display()),
            "choose another path (nothing is overwritten)",
        )
        .with_code(crate::error::Code::Conflict));
    }
    crate::config::write_atomic(&path, &bytes, 0o600)?;
    Ok(Saved {
        saved: path,
        bytes: bytes.len(),
    })
}

// ---- local changes ----

/// Which flags to change (None: leave it).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FlagChange {
    pub seen: Option<bool>,
    pub flagged: Option<bool>,
}

/// Which copies of a message a flag change touches. Nothing chosen: every copy in the
/// accounts the operator may act on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CopyChoice {
    /// Only copies in this account (its name).
    pub account: Option<String>,
    /// Only copies in this folder.
    pub folder: Option<String>,
}

/// A flag change made locally and queued for the server.
#[derive(Debug, Clone, Serialize)]
pub struct Flagged {
    pub id: i64,
    /// The message's flags now (the union of its visible copies').
    pub flags: Vec<String>,
    /// The copies changed, each with its own flags now.
    pub changed: Vec<LocationView>,
    /// The message's other visible copies, left as they are (their own flags).
    pub unchanged: Vec<LocationView>,
    /// The queued operations.
    pub ops: Vec<i64>,
    /// Whether they reached the server already.
    pub pushed: bool,
    /// Why not, when pushing was tried and failed (they stay queued for the next sync).
    #[serde(skip)]
    pub not_pushed: Option<AppError>,
}

/// One copy: (account id, folder, UIDVALIDITY, UID).
type CopyKey = (String, String, u32, u32);

/// What a flag change did locally: the accounts it touched, the copies, the queued ops.
struct FlaggedLocally {
    accounts: Vec<String>,
    copies: Vec<CopyKey>,
    ops: Vec<i64>,
}

/// Sets or clears \Seen and \Flagged on the chosen copies of the message (default: every copy
/// in the accounts the operator may act on) — each copy keeps its other flags, and the copies
/// not chosen keep theirs — then pushes the change unless another process syncs them.
pub async fn flag(cx: &Ctx, id: i64, change: FlagChange, which: CopyChoice) -> Result<Flagged> {
    if change == FlagChange::default() {
        return Err(AppError::usage(
            "choose what to change",
            "pass --seen or --unseen and/or --flagged or --unflagged",
        ));
    }
    let done = cx
        .blocking(move |cx| flag_locally(cx, id, change, &which))
        .await?;
    let (pushed, not_pushed) = push(cx, done.accounts).await;
    let copies = done.copies;
    let (flags, changed, unchanged) = cx.blocking(move |cx| copies_now(cx, id, &copies)).await?;
    Ok(Flagged {
        id,
        flags,
        changed,
        unchanged,
        ops: done.ops,
        pushed,
        not_pushed,
    })
}

/// The message as the operator sees it now: its flags (the union of its visible copies'), the
/// copies in `changed` and the other visible ones.
fn copies_now(
    cx: &Ctx,
    id: i64,
    changed: &[CopyKey],
) -> Result<(Vec<String>, Vec<LocationView>, Vec<LocationView>)> {
    let config = cx.config()?;
    let visible = access::visible_account_ids(cx, &config);
    let Some(m) = cx.store()?.message_summary(id, None)? else {
        return Ok(Default::default());
    };
    let m = only_through(m, &visible);
    let (mine, rest): (Vec<_>, Vec<_>) = m.locations.into_iter().partition(|l| {
        changed.iter().any(|(a, f, v, u)| {
            *a == l.account_id && *f == l.folder && *v == l.uidvalidity && *u == l.uid
        })
    });
    Ok((m.flags, mine, rest))
}

/// The flag change on the chosen copies in the cache and the queue, audited.
fn flag_locally(
    cx: &Ctx,
    id: i64,
    change: FlagChange,
    which: &CopyChoice,
) -> Result<FlaggedLocally> {
    let config = cx.config()?;
    let mut store = cx.store()?;
    let accounts = access::message(cx, &config, &store, id, Need::Act)?;
    let chosen = chosen_copies(&config, &store, id, &accounts, which)?;
    let (mut add, mut remove) = (Vec::new(), Vec::new());
    for (set, flag) in [(change.seen, "\\Seen"), (change.flagged, "\\Flagged")] {
        match set {
            Some(true) => add.push(flag.to_string()),
            Some(false) => remove.push(flag.to_string()),
            None => {}
        }
    }
    let ids: Vec<i64> = chosen.iter().map(|l| l.id).collect();
    let ops = store.local_set_flags(id, &ids, &add, &remove)?;
    let mut touched: Vec<String> = chosen.iter().map(|l| l.account_id.clone()).collect();
    touched.sort();
    touched.dedup();
    let copies: Vec<serde_json::Value> = chosen
        .iter()
        .map(|l| serde_json::json!({"account_id": l.account_id, "folder": l.folder, "uidvalidity": l.uidvalidity, "uid": l.uid}))
        .collect();
    store.audit(
        &cx.operator,
        "message_flag",
        touched.first().map(String::as_str),
        Some(&id.to_string()),
        &serde_json::json!({"add": add, "remove": remove, "copies": copies}),
    )?;
    Ok(FlaggedLocally {
        accounts: touched,
        copies: chosen
            .into_iter()
            .map(|l| (l.account_id, l.folder, l.uidvalidity, l.uid))
            .collect(),
        ops,
    })
}

/// The copies of the message in `accounts` (those the operator may act on) that `which`
/// chooses; none chosen is an error that lists the copies there are.
fn chosen_copies(
    config: &Config,
    store: &Store,
    id: i64,
    accounts: &[String],
    which: &CopyChoice,
) -> Result<Vec<crate::store::LocationRow>> {
    let mut all = store.locations_of(id)?;
    all.retain(|l| accounts.contains(&l.account_id));
    let account_id = which
        .account
        .as_ref()
        .map(|name| config.accounts.get(name).map(|a| a.id.clone()));
    let chosen: Vec<_> = all
        .iter()
        .filter(|l| {
            account_id
                .as_ref()
                .is_none_or(|a| a.as_deref() == Some(l.account_id.as_str()))
                && which
                    .folder
                    .as_deref()
                    .is_none_or(|f| same_folder(f, &l.folder))
        })
        .cloned()
        .collect();
    if !chosen.is_empty() {
        return Ok(chosen);
    }
    let name = |aid: &str| {
        config
            .account_by_id(aid)
            .map(|(n, _)| n.clone())
            .unwrap_or_else(|| aid.to_string())
    };
    let there: Vec<String> = all
        .iter()
        .map(|l| {
            clean_line(&format!(
                "{}/{} (uid {})",
                name(&l.account_id),
                l.folder,
                l.uid
            ))
        })
        .collect();
    let wanted = match (&which.account, &which.folder) {
        (Some(a), Some(f)) => format!("{a}/{f}"),
        (Some(a), None) => format!("account {a}"),
        (None, Some(f)) => format!("folder {f}"),
        (None, None) => "any account you may change".to_string(),
    };
    Err(AppError::usage(
        format!("message {id} has no copy in {}", clean_line(&wanted)),
        format!(
            "its copies you may change: {}; choose one with --folder (and --account)",
            there.join(", ")
        ),
    ))
}

/// Folder names compare exactly, except INBOX (case-insensitive in IMAP).
fn same_folder(a: &str, b: &str) -> bool {
    a == b || (a.eq_ignore_ascii_case("INBOX") && b.eq_ignore_ascii_case("INBOX"))
}

/// Where a message goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    Folder(String),
    /// The account's Trash (`message delete`).
    Trash,
}

/// A move made locally and queued for the server.
#[derive(Debug, Clone, Serialize)]
pub struct Moved {
    pub id: i64,
    pub folder: String,
    pub op: i64,
    pub pushed: bool,
    #[serde(skip)]
    pub not_pushed: Option<AppError>,
}

/// Moves the message (its copy in the first account holding it that the operator may act on)
/// to another folder of that account, or to its Trash; then pushes the move unless another
/// process syncs the account.
pub async fn move_to(cx: &Ctx, id: i64, to: Destination) -> Result<Moved> {
    let (account_id, folder, op) = cx.blocking(move |cx| move_locally(cx, id, to)).await?;
    let (pushed, not_pushed) = push(cx, vec![account_id]).await;
    Ok(Moved {
        id,
        folder,
        op,
        pushed,
        not_pushed,
    })
}

/// The move in the cache and the queue, audited: (account id, folder, queued operation).
fn move_locally(cx: &Ctx, id: i64, to: Destination) -> Result<(String, String, i64)> {
    let config = cx.config()?;
    let mut store = cx.store()?;
    let accounts = access::message(cx, &config, &store, id, Need::Act)?;
    let account = holder(&config, &store, id, &accounts)?;
    let folder = match to {
        Destination::Folder(f) => f,
        Destination::Trash => store
            .folder_by_role(account.id(), Role::Trash)?
            .map(|f| f.name)
            .ok_or_else(|| {
                AppError::needs_user(
                    format!("account {} has no Trash folder", account.name),
                    "",
                    format!(
                        "choose one with `mailroom folders {} --role trash=FOLDER`",
                        account.name
                    ),
                )
                .with_code(crate::error::Code::FolderMissing)
            })?,
    };
    let op = store.local_move(id, account.id(), &folder)?;
    store.audit(
        &cx.operator,
        "message_move",
        Some(account.id()),
        Some(&id.to_string()),
        &serde_json::json!({"folder": folder}),
    )?;
    Ok((account.id().to_string(), folder, op))
}

/// Pushes the accounts' queued changes now where no other process syncs them; otherwise (or
/// when offline) they stay queued for the next sync. (Whether all reached the server, why
/// not.)
async fn push(cx: &Ctx, accounts: Vec<String>) -> (bool, Option<AppError>) {
    let pushed = cx
        .on_own_thread("mailroom-push", move |cx, rt| {
            let mut all = true;
            let mut why = None;
            for a in &accounts {
                match push_here(cx, rt, a) {
                    Ok(done) => all &= done,
                    Err(e) => {
                        all = false;
                        why = Some(e);
                    }
                }
            }
            Ok((all, why))
        })
        .await;
    match pushed {
        Ok(p) => p,
        Err(e) => (false, Some(e)),
    }
}

/// One account's queue pushed under its lease (Ok(false): another process holds the lease,
/// or something stays queued).
fn push_here(cx: &Ctx, rt: &tokio::runtime::Runtime, account_id: &str) -> Result<bool> {
    let config = cx.config()?;
    let Some((name, _)) = config.account_by_id(account_id) else {
        return Ok(false);
    };
    let account = Account::from_config(&config, name)?;
    let mut store = cx.store()?;
    let token = crate::model::new_id();
    match store.acquire_lease(account.id(), &token, crate::sync::supervisor::LEASE_SECS) {
        Ok(Ok(())) => {}
        _ => return Ok(false),
    }
    let pw = account.credential(&store, &cx.vault()?);
    let res = pw.and_then(|pw| {
        rt.block_on(async {
            let mut ss = crate::sync::open_session(&account, &pw).await?;
            let list = crate::imap::discovery::list_folders(&mut ss.session).await?;
            store.upsert_folders(account.id(), &list)?;
            let n = crate::sync::ops::push_ops(&mut store, &account, &mut ss).await?;
            ss.logout().await;
            Ok::<u64, AppError>(n)
        })
    });
    let _ = store.release_lease(account.id(), &token);
    res?;
    Ok(store.open_ops_count(account.id())? == 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::FixtureMessage;

    /// alice owns `work` (a1), eve owns `own` (e1); one message is stored in both.
    fn two_owners() -> (tempfile::TempDir, Ctx, i64) {
        let (dir, cx) = crate::ops::testing::alice_and_eve();
        let store = cx.store().unwrap();
        let inbox = store.fixture_folder("a1", "INBOX", Some("inbox")).unwrap();
        store.fixture_folder("e1", "INBOX", Some("inbox")).unwrap();
        let id = store
            .fixture_message(
                "a1",
                inbox,
                1,
                &FixtureMessage {
                    from_addr: "x@example.org".into(),
                    subject: "s".into(),
                    date: "2026-01-01T00:00:00Z".into(),
                    direction: "in",
                    ..Default::default()
                },
            )
            .unwrap();
        store.fixture_add_location(id, "e1", "inbox", 7).unwrap();
        drop(store);
        (dir, cx, id)
    }

    #[test]
    fn a_message_shows_and_changes_only_through_the_operators_accounts() {
        let (_dir, eve, id) = two_owners();
        let shown = view(&eve, id).unwrap();
        let places: Vec<&str> = shown
            .message
            .locations
            .iter()
            .map(|l| l.account_id.as_str())
            .collect();
        assert_eq!(places, ["e1"], "eve never learns where else it is");
        let change = FlagChange {
            flagged: Some(true),
            ..Default::default()
        };
        let done = flag_locally(&eve, id, change, &CopyChoice::default()).unwrap();
        assert_eq!(done.accounts, ["e1"]);
        assert_eq!(done.ops.len(), 1, "one queued op, for eve's copy only");
        // Naming alice's account does not reach her copy, and says nothing of it.
        let theirs = CopyChoice {
            account: Some("work".into()),
            folder: None,
        };
        let e = flag_locally(&eve, id, change, &theirs).err().unwrap();
        assert!(
            e.fix.contains("own/INBOX") && !e.fix.contains("work"),
            "{e:?}"
        );
        let alice = eve.as_operator("alice");
        let theirs = view(&alice, id).unwrap().message;
        assert_eq!(theirs.locations.len(), 1);
        assert_eq!(theirs.locations[0].account_id, "a1");
        assert!(theirs.flags.is_empty(), "alice's copy is untouched");
        assert_eq!(view(&eve, id).unwrap().message.flags, ["\\Flagged"]);
    }

    #[test]
    fn a_flag_change_reaches_the_chosen_copies_and_no_other() {
        let (_dir, eve, id) = two_owners();
        let store = eve.store().unwrap();
        store
            .fixture_folder("e1", "Archive", Some("archive"))
            .unwrap();
        store.fixture_add_location(id, "e1", "archive", 9).unwrap();
        drop(store);
        let flagged = FlagChange {
            flagged: Some(true),
            ..Default::default()
        };
        let archive = CopyChoice {
            account: None,
            folder: Some("Archive".into()),
        };
        let done = flag_locally(&eve, id, flagged, &archive).unwrap();
        assert_eq!(done.ops.len(), 1);
        assert_eq!(
            done.copies,
            [("e1".to_string(), "Archive".to_string(), 1, 9)]
        );
        let (union, changed, unchanged) = copies_now(&eve, id, &done.copies).unwrap();
        assert_eq!(union, ["\\Flagged"]);
        assert_eq!((changed.len(), unchanged.len()), (1, 1));
        assert_eq!(changed[0].flags, ["\\Flagged"]);
        assert_eq!(unchanged[0].folder, "INBOX");
        assert!(
            unchanged[0].flags.is_empty(),
            "the INBOX copy keeps its own flags"
        );
        // `inbox` names INBOX in any case; the default is every copy.
        let seen = FlagChange {
            seen: Some(true),
            ..Default::default()
        };
        let inbox = CopyChoice {
            account: None,
            folder: Some("inbox".into()),
        };
        assert_eq!(
            flag_locally(&eve, id, seen, &inbox).unwrap().copies.len(),
            1
        );
        let all = flag_locally(&eve, id, seen, &CopyChoice::default()).unwrap();
        assert_eq!(all.copies.len(), 2);
        let (_, changed, _) = copies_now(&eve, id, &all.copies).unwrap();
        let flags: Vec<Vec<String>> = changed.iter().map(|l| l.flags.clone()).collect();
        assert_eq!(
            flags,
            [
                vec!["\\Seen".to_string()],
                vec!["\\Flagged".into(), "\\Seen".into()]
            ],
            "INBOX, then Archive: each copy its own flags"
        );
        let nowhere = CopyChoice {
            account: None,
            folder: Some("Nope".into()),
        };
        let e = flag_locally(&eve, id, seen, &nowhere).err().unwrap();
        assert!(e.summary.contains("no copy in folder Nope"), "{e:?}");
        assert!(
            e.fix.contains("own/INBOX (uid 7), own/Archive (uid 9)"),
            "{e:?}"
        );
    }
}
