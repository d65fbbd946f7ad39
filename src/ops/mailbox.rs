//! The mail pane's operations (issue 14): the folder tree with unread counts, a folder's index
//! (flat or by thread, newest first, in keyset windows) or a search's hits, a thread's
//! messages, the state of each message's queued changes, and archiving. Flag, move and delete
//! are `ops::messages`' own operations.
//!
//! Everything is limited to the accounts this operator may see; a folder of another account is
//! no such folder ([`access::check`]).

use std::collections::HashMap;

use serde::Serialize;

use super::Ctx;
use super::access::{self, Need, Target};
use super::messages::{self, Destination, Moved};
use crate::config::Config;
use crate::error::{AppError, Result};
use crate::mail::parse::Addr;
use crate::model::Role;
use crate::store::{ChangeRow, MailRow, OpenChanges, Store};

pub use crate::store::{Key, Window};

/// One account of the folder tree.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TreeAccount {
    pub name: String,
    pub id: String,
    pub folders: Vec<TreeFolder>,
}

/// One folder of the tree with its counts (mail the cache holds).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TreeFolder {
    pub id: i64,
    pub name: String,
    pub delimiter: Option<String>,
    pub role: Option<Role>,
    pub sync_enabled: bool,
    pub selectable: bool,
    pub total: i64,
    pub unread: i64,
}

/// What a message's queued changes are doing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum ChangeState {
    /// Waiting for the next sync pass.
    Queued { changes: i64 },
    /// Tried and refused or cut off; tried again with the next pass.
    Failing {
        changes: i64,
        attempts: i64,
        reason: String,
    },
}

impl From<OpenChanges> for ChangeState {
    fn from(c: OpenChanges) -> ChangeState {
        match c.last_error {
            Some(reason) if c.failed_attempts > 0 => ChangeState::Failing {
                changes: c.queued,
                attempts: c.failed_attempts,
                reason,
            },
            _ => ChangeState::Queued { changes: c.queued },
        }
    }
}

/// One row of the mail index (a folder's, or a search's).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IndexRow {
    pub id: i64,
    pub thread_id: i64,
    /// The account of this copy (name and id).
    pub account: String,
    pub account_id: String,
    /// A search: the folder of the copy.
    pub folder: Option<String>,
    pub date: Option<String>,
    pub from: Option<Addr>,
    pub to: Vec<Addr>,
    pub subject: Option<String>,
    pub size: Option<i64>,
    pub has_attachments: bool,
    /// Found in Sent or sent by us.
    pub outgoing: bool,
    pub seen: bool,
    pub flagged: bool,
    pub answered: bool,
    /// Messages of its thread in the folder (one row per thread); 1 otherwise.
    pub thread_count: i64,
    /// Changes of this message that have not reached the server yet.
    pub change: Option<ChangeState>,
    #[serde(skip)]
    pub key: Key,
}

/// What the index shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A folder, every message or one row per thread.
    Folder { id: i64, threads: bool },
    /// A search's hits (the search language, as typed).
    Search { query: String },
}

/// The account tree: each account the operator may see, with its present folders and their
/// total and unread counts (INBOX and its children first).
pub fn tree(cx: &Ctx) -> Result<Vec<TreeAccount>> {
    let config = cx.config()?;
    let store = cx.store()?;
    let visible = access::visible_account_ids(cx, &config);
    let mut out = Vec::new();
    for (name, acct) in &config.accounts {
        if !visible.contains(&acct.id) {
            continue;
        }
        let mut rows = store.folders(&acct.id)?;
        rows.retain(|f| f.present);
        let counts = store.folder_counts(&rows.iter().map(|f| f.id).collect::<Vec<_>>())?;
        let mut folders: Vec<TreeFolder> = rows
            .into_iter()
            .map(|f| {
                let (total, unread) = counts.get(&f.id).copied().unwrap_or((0, 0));
                TreeFolder {
                    id: f.id,
                    name: f.name,
                    delimiter: f.delimiter,
                    role: f.role,
                    sync_enabled: f.sync_enabled,
                    selectable: f.selectable,
                    total,
                    unread: unread.max(0),
                }
            })
            .collect();
        folders.sort_by_key(|f| (!is_inbox(&f.name, f.delimiter.as_deref()), f.name.clone()));
        out.push(TreeAccount {
            name: name.clone(),
            id: acct.id.clone(),
            folders,
        });
    }
    Ok(out)
}

/// INBOX or a folder under it.
fn is_inbox(name: &str, delimiter: Option<&str>) -> bool {
    let top = match delimiter.filter(|d| !d.is_empty()) {
        Some(d) => name.split(d).next().unwrap_or(name),
        None => name,
    };
    top.eq_ignore_ascii_case("INBOX")
}

/// The folder (and its account's id) if this operator may see it.
fn visible_folder(cx: &Ctx, config: &Config, store: &Store, id: i64) -> Result<String> {
    let folder = store.folder(id)?;
    let (holders, account, name) = match &folder {
        Some(f) => (
            vec![f.account_id.clone()],
            config
                .account_by_id(&f.account_id)
                .map(|(n, _)| n.clone())
                .unwrap_or_default(),
            f.name.clone(),
        ),
        None => (vec![], String::new(), id.to_string()),
    };
    let target = Target::Folder {
        account: &account,
        folder: &name,
    };
    access::check(cx, config, store, &target, &holders, Need::Read)?;
    Ok(folder.map(|f| f.account_id).unwrap_or_default())
}

/// How many rows the index of `source` has.
pub fn count(cx: &Ctx, source: &Source) -> Result<i64> {
    match source {
        Source::Folder { id, threads } => {
            let config = cx.config()?;
            let store = cx.store()?;
            visible_folder(cx, &config, &store, *id)?;
            store.folder_index_count(*id, *threads)
        }
        Source::Search { query } => super::search::count(cx, query),
    }
}

/// One window of the index of `source`, newest first.
pub fn window(cx: &Ctx, source: &Source, window: &Window, limit: i64) -> Result<Vec<IndexRow>> {
    let rows = match source {
        Source::Folder { id, threads } => {
            let config = cx.config()?;
            let store = cx.store()?;
            visible_folder(cx, &config, &store, *id)?;
            store.folder_index(*id, *threads, window, limit)?
        }
        Source::Search { query } => super::search::window(cx, query, window, limit)?,
    };
    index_rows(cx, rows)
}

/// The messages of a thread in a folder, newest first.
pub fn thread(cx: &Ctx, folder_id: i64, thread_id: i64) -> Result<Vec<IndexRow>> {
    let rows = {
        let config = cx.config()?;
        let store = cx.store()?;
        visible_folder(cx, &config, &store, folder_id)?;
        store.thread_rows(folder_id, thread_id)?
    };
    index_rows(cx, rows)
}

/// Store rows as the index shows them: account names, parsed addresses, flags, change states.
fn index_rows(cx: &Ctx, rows: Vec<MailRow>) -> Result<Vec<IndexRow>> {
    let config = cx.config()?;
    let store = cx.store()?;
    let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
    let mut changes = store.open_changes(&ids)?;
    let names: HashMap<&str, &str> = config
        .accounts
        .iter()
        .map(|(n, a)| (a.id.as_str(), n.as_str()))
        .collect();
    Ok(rows
        .into_iter()
        .map(|r| {
            let has = |f: &str| r.flags.iter().any(|x| x.eq_ignore_ascii_case(f));
            IndexRow {
                id: r.id,
                thread_id: r.thread_id,
                account: names
                    .get(r.account_id.as_str())
                    .map(|n| n.to_string())
                    .unwrap_or_else(|| r.account_id.clone()),
                account_id: r.account_id.clone(),
                folder: r.folder.clone(),
                date: r.date.clone(),
                from: r.from_addr.clone().map(|address| Addr {
                    name: r.from_name.clone(),
                    address,
                }),
                to: serde_json::from_str(&r.to_json).unwrap_or_default(),
                subject: r.subject.clone(),
                size: r.size,
                has_attachments: r.has_attachments,
                outgoing: r.direction == "out",
                seen: r.seen,
                flagged: has("\\Flagged"),
                answered: has("\\Answered"),
                thread_count: r.thread_count,
                change: changes.remove(&r.id).map(ChangeState::from),
                key: r.key,
            }
        })
        .collect())
}

/// One queued change of a message, as the message view lists them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    pub id: i64,
    /// What it does, in words ("flag \Flagged", "move to Archive").
    pub what: String,
    pub queued_at: String,
    /// queued | failing | pushed
    pub state: &'static str,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub pushed_at: Option<String>,
}

/// The latest queued changes of a message (those of accounts the operator may see), newest
/// first.
pub fn changes(cx: &Ctx, id: i64) -> Result<Vec<Change>> {
    let config = cx.config()?;
    let store = cx.store()?;
    let visible = access::message(cx, &config, &store, id, Need::Read)?;
    let rows = store.message_changes(id, 8)?;
    Ok(rows
        .into_iter()
        .filter(|c| visible.contains(&c.account_id))
        .map(change)
        .collect())
}

fn change(c: ChangeRow) -> Change {
    let what = match c.op.as_str() {
        "add_flags" => format!("set {}", c.arg),
        "remove_flags" => format!("clear {}", c.arg),
        _ => format!("move to {}", crate::imap::discovery::decode_utf7(&c.arg)),
    };
    let state = match (&c.done_at, &c.last_error) {
        (Some(_), _) => "pushed",
        (None, Some(_)) if c.attempts > 0 => "failing",
        _ => "queued",
    };
    Change {
        id: c.id,
        what,
        queued_at: c.created_at,
        state,
        attempts: c.attempts,
        last_error: c.last_error,
        pushed_at: c.done_at,
    }
}

/// How long to wait before fetching a body again while its server cannot be reached: the
/// account's `backoff_min_secs` first, doubling to at most 30 s (a message being read should
/// not wait the whole `backoff_max_secs`).
pub fn body_backoff(cx: &Ctx, id: i64) -> (u64, u64) {
    let fallback = (2, 30);
    let Ok(config) = cx.config() else {
        return fallback;
    };
    let Ok(store) = cx.store() else {
        return fallback;
    };
    let min = store
        .message_account_ids(id)
        .ok()
        .and_then(|ids| {
            ids.iter().find_map(|a| {
                config
                    .account_by_id(a)
                    .map(|(_, c)| c.sync.backoff_min_secs)
            })
        })
        .unwrap_or(fallback.0)
        .max(1);
    (min.min(30), 30)
}

/// Moves the message to its account's Archive folder (the folder with the archive role).
pub async fn archive(cx: &Ctx, id: i64) -> Result<Moved> {
    let folder = cx.blocking(move |cx| archive_folder(cx, id)).await?;
    messages::move_to(cx, id, Destination::Folder(folder)).await
}

/// The Archive folder of the first account holding the message that the operator may act on.
fn archive_folder(cx: &Ctx, id: i64) -> Result<String> {
    let config = cx.config()?;
    let store = cx.store()?;
    let accounts = access::message(cx, &config, &store, id, Need::Act)?;
    let Some(account) = accounts.first() else {
        return Err(access::no_such(cx, &Target::Message(id)));
    };
    let name = config
        .account_by_id(account)
        .map(|(n, _)| n.clone())
        .unwrap_or_default();
    store
        .folder_by_role(account, Role::Archive)?
        .map(|f| f.name)
        .ok_or_else(|| {
            AppError::needs_user(
                format!("account {name} has no Archive folder"),
                "",
                format!("choose one with `mailroom folders {name} --role archive=FOLDER`"),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::FixtureMessage;

    /// alice owns `work` (a1), eve owns `own` (e1); each has an INBOX with one message.
    fn two_owners() -> (tempfile::TempDir, Ctx, i64, i64) {
        let (dir, cx) = crate::ops::testing::alice_and_eve();
        let store = cx.store().unwrap();
        let work = store.fixture_folder("a1", "INBOX", Some("inbox")).unwrap();
        let own = store.fixture_folder("e1", "INBOX", Some("inbox")).unwrap();
        for (acct, folder, subject) in [("a1", work, "alice's"), ("e1", own, "eve's")] {
            let id = store
                .fixture_message(
                    acct,
                    folder,
                    1,
                    &FixtureMessage {
                        message_id: Some(format!("{acct}@x")),
                        from_addr: "x@example.org".into(),
                        subject: subject.into(),
                        date: "2026-01-01T00:00:00Z".into(),
                        direction: "in",
                        ..Default::default()
                    },
                )
                .unwrap();
            store.fts_reindex(&[id]).unwrap();
        }
        drop(store);
        (dir, cx, work, own)
    }

    #[test]
    fn the_tree_the_index_and_search_show_only_the_operators_accounts() {
        let (_dir, eve, work, own) = two_owners();
        let tree = tree(&eve).unwrap();
        assert_eq!(tree.len(), 1);
        assert_eq!(tree[0].name, "own");
        assert_eq!(tree[0].folders[0].total, 1);
        assert_eq!(tree[0].folders[0].unread, 1);
        let mine = Source::Folder {
            id: own,
            threads: true,
        };
        assert_eq!(count(&eve, &mine).unwrap(), 1);
        let rows = window(&eve, &mine, &Window::Top, 10).unwrap();
        assert_eq!(rows[0].subject.as_deref(), Some("eve's"));
        assert_eq!(rows[0].account, "own");
        let theirs = Source::Folder {
            id: work,
            threads: false,
        };
        let e = count(&eve, &theirs).unwrap_err();
        assert!(
            e.summary.contains("no such folder visible to operator eve"),
            "{e:?}"
        );
        let e = window(
            &eve,
            &Source::Folder {
                id: 999,
                threads: false,
            },
            &Window::Top,
            10,
        )
        .unwrap_err();
        assert!(e.summary.contains("no such folder"), "{e:?}");
        // Search: only eve's mail; naming alice's account is refused like a missing one.
        let all = Source::Search {
            query: "x@example.org".into(),
        };
        assert_eq!(count(&eve, &all).unwrap(), 1);
        let e = count(
            &eve,
            &Source::Search {
                query: "account:work x".into(),
            },
        )
        .unwrap_err();
        assert!(e.summary.contains("no such account"), "{e:?}");
        let alice = eve.as_operator("alice");
        assert_eq!(count(&alice, &all).unwrap(), 1);
        let hits = window(&alice, &all, &Window::Top, 10).unwrap();
        assert_eq!(hits[0].subject.as_deref(), Some("alice's"));
        assert_eq!(hits[0].folder.as_deref(), Some("INBOX"));
    }
}
