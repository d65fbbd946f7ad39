//! One sync pass over one account. Per folder, keyed by (folder, UIDVALIDITY, UID):
//! - new mail: one streamed `UID FETCH last+1:*` of header fields, committed in batches with a
//!   checkpoint, so an interrupted first sync resumes where it stopped; a first sync with a
//!   scope (`sync.since`, unread-only) fetches only what `UID SEARCH` finds, and under
//!   `since = "new"` nothing old (the folder starts at UIDNEXT);
//! - known mail: QRESYNC (VANISHED + changed flags at SELECT), else CONDSTORE CHANGEDSINCE plus a
//!   UID SEARCH diff when the counts say something vanished, else a full FLAGS fetch diff;
//! - UIDVALIDITY change: the folder is fetched again; messages keep their local ids.
//!
//! Safety: the pass only reads from the server, except for queued local changes (pushed first)
//! and "mark as read" on mail that arrived after the option was switched on. An empty or
//! rebuilt cache therefore never deletes or re-flags anything on the server.

use std::io::IsTerminal;
use std::time::Instant;

use serde::Serialize;

use super::events::{EventSender, SyncEvent, emit};
use crate::account::Account;
use crate::config::{Config, HistoryScope, ProcessScope};
use crate::error::Result;
use crate::imap::discovery;
use crate::imap::fetch;
use crate::imap::{ImapSession, ImapTarget};
use crate::mail::parse;
use crate::secret::Credential;
use crate::store::{FolderRow, Store};

pub use super::plan::{FirstFetch, MAX_UID_SET_CHARS, first_fetch};

/// What the server can do, from CAPABILITY after login.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Caps {
    pub condstore: bool,
    pub qresync: bool,
    pub idle: bool,
    pub uidplus: bool,
    pub mv: bool,
}

pub struct SyncSession {
    pub session: ImapSession,
    pub caps: Caps,
    /// The server's CAPABILITY list, space separated (stored for diagnostics).
    pub caps_text: String,
    /// What it takes to open the same session again (after a response that cannot be read).
    target: ImapTarget,
    credential: Credential,
    /// Messages whose body the server answered unreadably: not prefetched again while this
    /// session (and the ones that replace it) lives.
    pub(crate) unreadable_bodies: std::collections::HashSet<i64>,
}

/// Connects, signs in, reads capabilities and enables QRESYNC when offered. (Takes the
/// credential rather than the store: a `&Store` cannot cross an await in a spawned task.)
pub async fn open_session(account: &Account, credential: &Credential) -> Result<SyncSession> {
    open_target(account.imap_target(), credential.clone()).await
}

async fn open_target(target: ImapTarget, credential: Credential) -> Result<SyncSession> {
    use crate::imap::connect::{call_limit, called};
    let mut session = crate::imap::connect(&target, &credential).await?;
    let r = tokio::time::timeout(call_limit(&session), session.capabilities()).await;
    let caps_list = called(&mut session, "CAPABILITY", r)?;
    let has = |c: &str| caps_list.has_str(c);
    let mut caps = Caps {
        condstore: has("CONDSTORE") || has("QRESYNC"),
        qresync: false,
        idle: has("IDLE"),
        uidplus: has("UIDPLUS"),
        mv: has("MOVE"),
    };
    let mut all: Vec<String> = caps_list.iter().map(|c| format!("{c:?}")).collect();
    all.sort();
    if has("QRESYNC") && std::env::var_os("MAILROOM_NO_QRESYNC").is_none() {
        fetch::simple(&mut session, "ENABLE QRESYNC", "ENABLE QRESYNC").await?;
        caps.qresync = true;
    }
    Ok(SyncSession {
        session,
        caps,
        caps_text: all.join(" "),
        target,
        credential,
        unreadable_bodies: Default::default(),
    })
}

impl SyncSession {
    /// Drops this connection (without LOGOUT: it is broken) and opens the same session again.
    pub async fn reconnect(&mut self) -> Result<()> {
        let mut fresh = open_target(self.target.clone(), self.credential.clone()).await?;
        fresh.unreadable_bodies = std::mem::take(&mut self.unreadable_bodies);
        *self = fresh;
        Ok(())
    }

    /// `host:port` of the server, as errors name it.
    pub fn server(&self) -> String {
        self.target.address()
    }

    /// LOGOUT, waiting at most a few seconds; then the connection is dropped either way.
    pub async fn logout(self) {
        crate::imap::connect::logout(self.session).await;
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct FolderSummary {
    pub folder: String,
    pub new: u64,
    pub updated: u64,
    pub vanished: u64,
    pub quarantined: u64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct PassSummary {
    pub folders: Vec<FolderSummary>,
    pub ops_pushed: u64,
    pub bodies: u64,
    pub duration_ms: u64,
    pub bytes: u64,
}

impl PassSummary {
    pub fn new_total(&self) -> u64 {
        self.folders.iter().map(|f| f.new).sum()
    }
}

/// Per-account knobs resolved from the config.
#[derive(Debug, Clone)]
pub struct PassOptions {
    pub deny: Vec<String>,
    /// How much history a folder's first sync fetches (`sync.since`).
    pub scope: HistoryScope,
    pub unread_only: bool,
    pub mark_read: bool,
    pub batch_size: usize,
    pub body_prefetch_max_bytes: u64,
    /// Draw a progress line on stderr (only when it is a terminal).
    pub tty_progress: bool,
}

impl PassOptions {
    pub fn from_config(config: &Config, account: &Account) -> Result<PassOptions> {
        let o = &account.cfg.sync;
        let mut deny = account.cfg.deny.clone();
        deny.extend(config.general.deny.iter().cloned());
        Ok(PassOptions {
            deny,
            scope: o.since,
            unread_only: o.process == ProcessScope::UnreadOnly,
            mark_read: o.mark_read,
            batch_size: o.batch_size.clamp(1, 50_000),
            body_prefetch_max_bytes: o.body_prefetch_max_bytes,
            tty_progress: false,
        })
    }
}

/// One pass: push queued changes, refresh folders, sync every chosen folder, prefetch bodies.
pub async fn run_pass(
    store: &mut Store,
    account: &Account,
    opts: &PassOptions,
    ss: &mut SyncSession,
    events: Option<&EventSender>,
) -> Result<PassSummary> {
    let started = Instant::now();
    let mut summary = PassSummary::default();
    let list = discovery::list_folders(&mut ss.session).await?;
    store.upsert_folders(account.id(), &list)?;
    summary.ops_pushed = super::ops::push_ops(store, account, ss).await?;
    let folders: Vec<FolderRow> = store
        .folders(account.id())?
        .into_iter()
        .filter(|f| f.sync_enabled && f.selectable && f.present)
        .collect();
    for f in folders {
        let fs =
            super::folder::sync_folder(store, account, opts, ss, &f, events, &mut summary.bytes)
                .await
                .map_err(|e| in_folder(e, &f.name))?;
        if fs.new + fs.updated + fs.vanished > 0 {
            emit(
                events,
                SyncEvent::FolderChanged {
                    account_id: account.id().to_string(),
                    folder: f.name.clone(),
                },
            );
        }
        summary.folders.push(fs);
    }
    summary.bodies =
        super::prefetch::prefetch(store, account, opts, ss, &mut summary.bytes).await?;
    summary.duration_ms = started.elapsed().as_millis() as u64;
    Ok(summary)
}

/// Parses and stores a fetched body; an unparseable body is kept raw with empty text.
pub fn store_body(store: &mut Store, id: i64, raw: &[u8]) -> Result<()> {
    match parse::parse_body(raw) {
        Some(b) => store.set_body(id, raw, &b.text, !b.attachments.is_empty()),
        None => store.set_body(id, raw, "", false),
    }
}

/// Fetches one message's body on demand (when opened) and stores it.
pub async fn fetch_body_now(
    store: &mut Store,
    account: &Account,
    ss: &mut SyncSession,
    id: i64,
) -> Result<bool> {
    let locs = store.locations_of(id)?;
    for l in locs.iter().filter(|l| l.account_id == account.id()) {
        let sel = fetch::select(&mut ss.session, &l.wire_name, false, None, true).await?;
        if sel.uidvalidity != l.uidvalidity {
            continue;
        }
        let mut got = None;
        fetch::fetch_bodies(&mut ss.session, &l.uid.to_string(), |uid, raw| {
            if uid == l.uid {
                got = Some(raw);
            }
            Ok(())
        })
        .await?;
        if let Some(raw) = got {
            store_body(store, id, &raw)?;
            return Ok(true);
        }
    }
    Ok(false)
}

/// Whether stderr is a terminal (for progress lines).
pub fn stderr_is_tty() -> bool {
    std::io::stderr().is_terminal()
}

/// A server's failure in a folder (a stall, a lost connection) names the folder.
fn in_folder(mut e: crate::error::AppError, folder: &str) -> crate::error::AppError {
    if e.kind == crate::error::Kind::Transient && !e.summary.contains(folder) {
        e.summary = format!(
            "{} (folder {})",
            e.summary,
            crate::mail::sanitize::clean_line(folder)
        );
    }
    e
}
