//! Sync: one pass now (`sync --once`), the first-sync plan (`sync --plan`), applying a previewed
//! scope, and the background sync the daemon, `sync NAME` and the console run — a small facade
//! over the supervisor, so no face reaches the sync engine itself.
//!
//! Seeing the plan needs `Need::Read`; a pass acts on mail (`Need::Act`: an operator an account
//! is shared with may sync it); the scope is a setting (`Need::Configure`). The daemon is a
//! service, not an operator's view: it syncs every enabled account.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use super::Ctx;
use super::access::{self, Need};
use crate::account::Account;
use crate::config::{Config, HistoryScope, ProcessScope};
use crate::error::{AppError, Kind, Result};
use crate::imap::{discovery, fetch};
use crate::model::{FolderInfo, Role};
use crate::store::Level;
use crate::sync::Supervisor;
use crate::sync::engine::{self, FirstFetch};

pub use crate::sync::{
    DEFAULT_LEASE_SECS, EventReceiver, FolderSummary, LeaseOptions, PassSummary, SyncEvent,
};

/// The accounts a sync command acts on: the named one (if this operator may do `need` on it),
/// else every enabled account this operator sees.
fn targets(cx: &Ctx, name: Option<&str>, need: Need) -> Result<(Arc<Config>, Vec<String>)> {
    let config = cx.config()?;
    key_gate(cx)?;
    let names = match name {
        Some(n) => {
            access::account(cx, &config, &*cx.store()?, n, need)?;
            vec![n.to_string()]
        }
        None => config
            .accounts
            .iter()
            .filter(|(_, a)| a.enabled && cx.sees(a))
            .map(|(n, _)| n.clone())
            .collect(),
    };
    if names.is_empty() {
        return Err(AppError::usage(
            "no enabled account to sync",
            "add one with `mailroom account add`, or `mailroom account enable NAME`",
        )
        .with_code(crate::error::Code::AccountsNone));
    }
    Ok((config, names))
}

/// One account's pass.
#[derive(Debug)]
pub struct Synced {
    pub name: String,
    pub result: Result<PassSummary>,
}

/// `sync [NAME] --once`: one pass of each account, one after the other. With one account its
/// failure is the command's; with several each reports its own. `tty`: draw progress on stderr.
pub async fn once(cx: &Ctx, name: Option<&str>, tty: bool) -> Result<Vec<Synced>> {
    let name = name.map(str::to_string);
    let (config, names) = cx
        .blocking(move |cx| targets(cx, name.as_deref(), Need::Act))
        .await?;
    cx.home.ensure()?;
    let mut out = Vec::new();
    for name in &names {
        let result =
            crate::sync::supervisor::run_once(&cx.home, &config, name, tty, &cx.operator).await;
        if names.len() == 1 {
            result.as_ref().map_err(Clone::clone)?;
        }
        out.push(Synced {
            name: name.clone(),
            result,
        });
    }
    Ok(out)
}

/// The first-sync scope a plan previews instead of the account's own.
#[derive(Debug, Clone, Default)]
pub struct PlanScope {
    /// `YYYY-MM-DD`, `new` or `all`; the account's setting when `None`.
    pub since: Option<String>,
    /// Only unread mail (also when the account is set so).
    pub unread_only: bool,
    /// Only these folders; else the folders chosen for sync (INBOX and Sent before a choice).
    pub folders: Option<Vec<String>>,
}

/// `sync --plan`: what a first sync would take, per folder; nothing is changed.
#[derive(Debug, Clone, Serialize)]
pub struct AccountPlan {
    pub name: String,
    pub folders: Vec<FolderPlan>,
    pub total: PlanTotal,
    /// The scope planned (`YYYY-MM-DD`, `new`, or null for all history).
    pub since: Option<String>,
    pub unread_only: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct FolderPlan {
    pub folder: String,
    pub role: Option<Role>,
    pub messages: u32,
    pub unread: u32,
    pub to_sync: u64,
    pub bytes: u64,
    /// Seconds the headers take at least (tenths).
    pub estimate_secs: f64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct PlanTotal {
    pub to_sync: u64,
    pub bytes: u64,
    pub estimate_secs: f64,
}

/// What planning one account needs from the store.
struct PlanInput {
    account: Account,
    scope: HistoryScope,
    unread_only: bool,
    password: crate::secret::Credential,
    /// (name, sync chosen) of the folders the store knows.
    stored: Vec<(String, bool)>,
}

/// `sync [NAME] --plan`: per-folder counts, sizes and an estimate, read-only (EXAMINE, STATUS).
pub async fn plan(cx: &Ctx, name: Option<&str>, scope: &PlanScope) -> Result<Vec<AccountPlan>> {
    let since = scope
        .since
        .as_deref()
        .map(HistoryScope::parse)
        .transpose()?;
    let name = name.map(str::to_string);
    let (config, names) = cx
        .blocking(move |cx| targets(cx, name.as_deref(), Need::Read))
        .await?;
    let mut plans = Vec::new();
    for name in names {
        let (config, unread_only) = (config.clone(), scope.unread_only);
        let input = cx
            .blocking(move |cx| plan_input(cx, &config, &name, since, unread_only))
            .await?;
        plans.push(plan_account(input, scope.folders.as_deref()).await?);
    }
    Ok(plans)
}

fn plan_input(
    cx: &Ctx,
    config: &Config,
    name: &str,
    since: Option<HistoryScope>,
    unread_only: bool,
) -> Result<PlanInput> {
    let account = Account::from_config(config, name)?;
    let store = cx.store()?;
    let password = account.credential(&store, &cx.vault()?)?;
    let stored = store
        .folders(account.id())?
        .into_iter()
        .map(|f| (f.name, f.sync_enabled))
        .collect();
    Ok(PlanInput {
        scope: since.unwrap_or(account.cfg.sync.since),
        unread_only: unread_only || account.cfg.sync.process == ProcessScope::UnreadOnly,
        account,
        password,
        stored,
    })
}

/// Asks the server about each folder the first sync would take.
async fn plan_account(input: PlanInput, only: Option<&[String]>) -> Result<AccountPlan> {
    let mut session = crate::imap::connect(&input.account.imap_target(), &input.password).await?;
    let list = discovery::list_folders(&mut session).await?;
    let chosen: Vec<&FolderInfo> = list
        .iter()
        .filter(|f| f.selectable)
        .filter(|f| match only {
            Some(names) => names.iter().any(|n| n == &f.name),
            None => match input.stored.iter().find(|(n, _)| *n == f.name) {
                Some((_, on)) => *on,
                None => matches!(f.role, Some(Role::Inbox) | Some(Role::Sent)),
            },
        })
        .collect();
    let mut folders = Vec::new();
    let mut total = PlanTotal::default();
    for f in chosen {
        let p = plan_folder(&mut session, f, input.scope, input.unread_only).await?;
        total.to_sync += p.to_sync;
        total.bytes += p.bytes;
        total.estimate_secs += p.estimate_secs;
        folders.push(p);
    }
    crate::imap::connect::logout(session).await;
    total.estimate_secs = (total.estimate_secs * 10.0).round() / 10.0;
    Ok(AccountPlan {
        name: input.account.name,
        folders,
        total,
        since: input.scope.value(),
        unread_only: input.unread_only,
    })
}

async fn plan_folder(
    session: &mut crate::imap::ImapSession,
    f: &FolderInfo,
    scope: HistoryScope,
    unread_only: bool,
) -> Result<FolderPlan> {
    let (messages, unread, _) = fetch::status(session, &f.wire_name).await?;
    // The same question the first sync asks the server (engine::first_fetch).
    let query = match engine::first_fetch(scope, unread_only) {
        FirstFetch::Everything => Some("ALL".to_string()),
        FirstFetch::Search(criteria) => Some(criteria),
        FirstFetch::Nothing => None,
    };
    let uids = match query {
        Some(q) => {
            let sel = fetch::select(session, &f.wire_name, false, None, true).await?;
            if sel.exists == 0 {
                vec![]
            } else {
                fetch::uid_search(session, &q).await?
            }
        }
        // `since = "new"`: no historical message is fetched.
        None => vec![],
    };
    // The server's SINCE day is not the UTC day, so the search reaches a day further back
    // (engine::first_fetch); counting by INTERNALDATE makes the same exact cut sync makes.
    let (mut bytes, mut to_sync) = (0u64, 0u64);
    for range in fetch::uid_set_chunks(&uids, engine::MAX_UID_SET_CHARS) {
        let (b, n) = fetch::total_size(session, &range, scope.cutoff()).await?;
        bytes += b;
        to_sync += n;
    }
    // Header sync runs at roughly 20k messages/s locally; remote servers are slower, so this is
    // a lower bound, and bodies come later in the background.
    let estimate = to_sync as f64 / 20_000.0 + 0.2;
    Ok(FolderPlan {
        folder: f.name.clone(),
        role: f.role,
        messages,
        unread,
        to_sync,
        bytes,
        estimate_secs: (estimate * 10.0).round() / 10.0,
    })
}

/// Makes a previewed scope the account's (`account edit NAME --since … --process …`).
pub fn apply_scope(cx: &Ctx, account: &str, since: Option<&str>, unread_only: bool) -> Result<()> {
    let change = super::accounts::Edit {
        since: Some(since.unwrap_or("all").to_string()),
        process: Some(if unread_only { "unread-only" } else { "all" }.to_string()),
        ..Default::default()
    };
    super::accounts::edit(cx, account, &change, || Ok(None)).map(|_| ())
}

/// The accounts the console syncs for this operator: the enabled ones it sees.
pub fn mine(cx: &Ctx, config: &Config) -> Config {
    let mut mine = config.clone();
    mine.accounts.retain(|_, a| a.enabled && cx.sees(a));
    mine
}

/// The settings `sync [NAME]` (until interrupted) runs with: the named account (this operator
/// acting on its mail), else every enabled one it sees; named accounts sync even when disabled.
pub fn foreground(cx: &Ctx, name: Option<&str>) -> Result<Config> {
    let (config, names) = targets(cx, name, Need::Act)?;
    cx.home.ensure()?;
    let mut sub = (*config).clone();
    sub.accounts.retain(|n, _| names.contains(n));
    for a in sub.accounts.values_mut() {
        a.enabled = true;
    }
    Ok(sub)
}

/// The daemon's settings: the whole file (a reload then compares like with like); the enabled
/// accounts get their state rows now.
pub fn daemon_config(cx: &Ctx) -> Result<Arc<Config>> {
    let config = cx.config()?;
    key_gate(cx)?;
    cx.home.ensure()?;
    let store = cx.store()?;
    for (n, a) in config.accounts.iter().filter(|(_, a)| a.enabled) {
        store.insert_account(&a.id, n, true)?;
    }
    Ok(config)
}

/// Sync reads secrets: on PostgreSQL a host whose sealing key is not the installation's starts
/// nothing and writes nothing (`key.mismatch`), rather than failing account by account (the
/// daemon, `sync`, the console).
pub fn key_gate(cx: &Ctx) -> Result<()> {
    cx.vault().map(|_| ())
}

/// A second process for the same account must say who holds it, not wait silently.
pub fn check_leases(cx: &Ctx, config: &Config) -> Result<()> {
    let store = cx.store()?;
    for a in config.accounts.values().filter(|a| a.enabled) {
        if let Some(h) = store.lease_holder(&a.id)? {
            let mine = h.pid == std::process::id() as i64 && h.host_id == crate::config::host::id();
            if !mine && h.alive(&crate::store::now()) {
                return Err(AppError::new(
                    Kind::Busy,
                    format!("account is being synced by {}", h.who()),
                    "",
                    "stop that process first, or let it do the work",
                ));
            }
        }
    }
    Ok(())
}

/// Background sync: a task per enabled account of the settings it runs with, on the current
/// runtime. Events tell listeners what changed (the store holds the record).
pub struct Background {
    sup: Supervisor,
    /// Delivers the alerts of the accounts whose lease this process holds (a thread of its
    /// own: a hanging alert never holds up sync).
    alerts: Option<super::alerts::Worker>,
}

impl Background {
    pub fn start(cx: &Ctx, config: &Config) -> Background {
        Background::start_with(cx, config, LeaseOptions::default())
    }

    /// As `start`, with these lease terms (a daemon's capacity and lease time).
    pub fn start_with(cx: &Ctx, config: &Config, lease: LeaseOptions) -> Background {
        let alerts = super::alerts::Worker::start(cx)
            .map_err(|e| tracing::warn!("alerts will not be delivered by this process: {e}"))
            .ok();
        Background {
            sup: Supervisor::start_with(&cx.home, config, lease),
            alerts,
        }
    }

    /// What the tasks report from now on.
    pub fn events(&self) -> EventReceiver {
        self.sup.subscribe()
    }

    /// Runs a pass of the account now (after a local change).
    pub fn kick(&self, account_id: &str) {
        self.sup.kick(account_id);
    }

    /// Moves the tasks to changed settings: accounts added or enabled start, removed or
    /// disabled stop, changed ones restart. Returns what changed, in words.
    pub async fn follow(&mut self, config: &Config) -> Vec<String> {
        self.sup.apply(config).await
    }

    /// config.toml changed (the daemon): re-read it and follow it. A file that does not read
    /// keeps the running settings; that and every change go to the event log.
    pub async fn reload(&mut self, cx: &Ctx) -> Result<Vec<String>> {
        let config = cx.blocking(reread).await?;
        let changes = self.follow(&config).await;
        let logged = changes.clone();
        if let Err(e) = cx.blocking(move |cx| log_changes(cx, &logged)).await {
            tracing::debug!("cannot log the config changes: {}", e.summary);
        }
        Ok(changes)
    }

    /// Stops every task (a running pass is interrupted, which is safe: the engine commits in
    /// batches and resumes from checkpoints).
    pub async fn stop(self) {
        let alerts = async {
            if let Some(w) = self.alerts {
                w.stop(Duration::from_secs(10)).await;
            }
        };
        tokio::join!(self.sup.shutdown(), alerts);
    }

    /// As `stop`, but waits at most `limit` (a task stuck on the network must not hold up
    /// quitting).
    pub async fn stop_within(self, limit: Duration) {
        let alerts = async {
            if let Some(w) = self.alerts {
                w.stop(limit).await;
            }
        };
        let _ =
            tokio::time::timeout(limit, async { tokio::join!(self.sup.shutdown(), alerts) }).await;
    }
}

/// The settings after a change of config.toml; the enabled accounts get their state rows.
fn reread(cx: &Ctx) -> Result<Arc<Config>> {
    let store = cx.store();
    match cx.config() {
        Ok(config) => {
            if let Ok(store) = &store {
                for (name, a) in config.accounts.iter().filter(|(_, a)| a.enabled) {
                    let _ = store.insert_account(&a.id, name, true);
                }
            }
            Ok(config)
        }
        Err(e) => {
            if let Ok(store) = &store {
                let _ = store.log_event(
                    None,
                    Level::Warn,
                    "config.toml changed but cannot be used; the daemon keeps the previous settings",
                    Some(&e.to_string()),
                    Some("correct config.toml; the daemon reads it again when it changes"),
                );
            }
            Err(e)
        }
    }
}

fn log_changes(cx: &Ctx, changes: &[String]) -> Result<()> {
    let store = cx.store()?;
    for change in changes {
        store.log_event(
            None,
            Level::Info,
            &format!("config.toml changed: {change}"),
            None,
            None,
        )?;
    }
    Ok(())
}

/// The daemon: background sync of every enabled account plus the outbox worker (mail queued
/// with --queue-only or by a console, copies waiting for IMAP, retries after backoff; claims
/// keep it from doubling a console's work).
pub struct Daemon {
    pub sync: Background,
    outbox: Option<super::outbox::Worker>,
}

impl Daemon {
    /// Starts the sync with `lease` terms, and the outbox worker for the accounts this daemon
    /// holds (so an account's mail goes out through the daemon that syncs it: its IMAP
    /// connections, Sent copies included, stay within its cap).
    pub fn start(cx: &Ctx, config: &Config, lease: LeaseOptions) -> Result<Daemon> {
        let sync = Background::start_with(cx, config, lease);
        // The worker runs on a thread of its own (its store work is synchronous).
        let outbox = Some(super::outbox::Worker::start(
            cx,
            super::outbox::Reach::Held(sync.sup.fleet()),
        )?);
        Ok(Daemon { sync, outbox })
    }

    /// Stops the outbox worker (waiting up to ten seconds for a send in flight) and the sync.
    pub async fn stop(self) {
        let outbox = self.outbox;
        let stop_outbox = async {
            if let Some(w) = outbox {
                w.stop(Duration::from_secs(10)).await;
            }
        };
        tokio::join!(stop_outbox, self.sync.stop());
    }
}
