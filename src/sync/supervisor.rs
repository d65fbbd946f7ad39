//! Background sync: one task per enabled account. Each task owns its database connection and
//! one IMAP connection for passes, holds the account's lease, runs a pass, then waits for the
//! IDLE watcher (INBOX, on a second connection) or the poll interval, and reconnects with backoff and jitter after failures. After
//! `give_up_secs` of continuous failure (or at once for failures only the user can fix, like a
//! rejected password) the account goes to `error` and the task waits until the user acts.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

use super::engine::{self, PassOptions, SyncSession};
use super::events::{self, EventSender, SyncEvent, emit};
use crate::account::Account;
use crate::config::{AccountConfig, Config, Home};
use crate::error::{AppError, Kind, Result};
use crate::imap::fetch;
use crate::model::Role;
use crate::store::{AccountState, Level, Store};

/// How often a waiting account task refreshes its lease heartbeat and checks the queue of
/// local changes written by other processes (e.g. `message flag`).
const HEARTBEAT: Duration = Duration::from_secs(5);
/// A lease whose heartbeat is older than this belongs to a dead process.
pub const LEASE_STALE_SECS: i64 = 90;

/// A running account task.
pub struct AccountHandle {
    pub account_id: String,
    /// The account's name and settings the task was started with (a reload compares them).
    name: String,
    settings: AccountConfig,
    kick: Arc<Notify>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl AccountHandle {
    /// Run a pass now (e.g. after a local change was queued).
    pub fn kick(&self) {
        self.kick.notify_one();
    }

    /// Stops the task (a running pass is interrupted, which is safe) and waits for it.
    async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// Keeps every enabled account in sync until shut down; usable in-process by the console.
pub struct Supervisor {
    pub handles: Vec<AccountHandle>,
    events: EventSender,
    home: Home,
    /// The configuration the tasks run with.
    config: Config,
}

impl Supervisor {
    /// Spawns a task per enabled account (on the current tokio runtime).
    pub fn start(home: &Home, config: &Config) -> Supervisor {
        let (events, _) = events::channel();
        let mut sup = Supervisor {
            handles: Vec::new(),
            events,
            home: home.clone(),
            config: config.clone(),
        };
        for (name, a) in &config.accounts {
            if a.enabled {
                sup.spawn(name);
            }
        }
        sup
    }

    fn spawn(&mut self, name: &str) {
        let Some(settings) = self.config.accounts.get(name).cloned() else {
            return;
        };
        let (stop, rx) = watch::channel(false);
        let kick = Arc::new(Notify::new());
        let task = spawn_account(
            self.home.clone(),
            self.config.clone(),
            name.to_string(),
            self.events.clone(),
            rx,
            kick.clone(),
        );
        self.handles.push(AccountHandle {
            account_id: settings.id.clone(),
            name: name.to_string(),
            settings,
            kick,
            stop,
            task,
        });
    }

    /// Moves the tasks to a changed configuration (the daemon re-reads config.toml): an
    /// account added or enabled starts, one removed or disabled stops, one whose settings
    /// changed restarts with them. A change every account depends on (`[general]`, or the
    /// addresses that count as our own for customer matching) restarts them all. Returns what
    /// changed, in words.
    pub async fn apply(&mut self, config: &Config) -> Vec<String> {
        if *config == self.config {
            return Vec::new();
        }
        let everyone = config.general != self.config.general
            || crate::crm::matching::own_addresses(config)
                != crate::crm::matching::own_addresses(&self.config);
        self.config = config.clone();
        let mut changes = Vec::new();
        for h in std::mem::take(&mut self.handles) {
            let now = config
                .accounts
                .iter()
                .find(|(_, a)| a.id == h.account_id && a.enabled);
            match now {
                Some((name, a)) if !everyone && *name == h.name && *a == h.settings => {
                    self.handles.push(h)
                }
                Some(_) => {
                    changes.push(format!("{}: restarted with the new settings", h.name));
                    h.stop().await;
                }
                None => {
                    changes.push(format!("{}: stopped (removed or disabled)", h.name));
                    h.stop().await;
                }
            }
        }
        let names: Vec<String> = config
            .accounts
            .iter()
            .filter(|(_, a)| a.enabled)
            .filter(|(_, a)| !self.handles.iter().any(|h| h.account_id == a.id))
            .map(|(n, _)| n.clone())
            .collect();
        for name in names {
            if !changes.iter().any(|c| c.starts_with(&format!("{name}:"))) {
                changes.push(format!("{name}: started"));
            }
            self.spawn(&name);
        }
        changes
    }

    pub fn subscribe(&self) -> events::EventReceiver {
        self.events.subscribe()
    }

    pub fn kick(&self, account_id: &str) {
        for h in self.handles.iter().filter(|h| h.account_id == account_id) {
            h.kick();
        }
    }

    /// Stops every task (between commands; a running pass is interrupted, which is safe).
    pub async fn shutdown(self) {
        for h in &self.handles {
            let _ = h.stop.send(true);
        }
        for h in self.handles {
            let _ = h.task.await;
        }
    }
}

/// Spawns the background task of one account.
fn spawn_account(
    home: Home,
    config: Config,
    name: String,
    events: EventSender,
    shutdown: watch::Receiver<bool>,
    kick: Arc<Notify>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        if let Err(e) = account_loop(home, config, name, events, shutdown, kick).await {
            tracing::error!("sync task stopped: {e}");
        }
    })
}

fn set_state(store: &Store, events: &EventSender, id: &str, state: AccountState) {
    let _ = store.set_state(id, state);
    emit(
        Some(events),
        SyncEvent::StateChanged {
            account_id: id.to_string(),
            state,
        },
    );
}

fn token() -> String {
    crate::model::new_id()
}

async fn account_loop(
    home: Home,
    config: Config,
    name: String,
    events: EventSender,
    mut shutdown: watch::Receiver<bool>,
    kick: Arc<Notify>,
) -> Result<()> {
    let account = Account::from_config(&config, &name)?;
    let id = account.id().to_string();
    let mut store = Store::open(&home.db_path())?;
    let vault = crate::secret::Vault::open(&home)?;
    let o = account.cfg.sync.clone();
    let opts = PassOptions::from_config(&config, &account)?;
    let lease = token();
    let mut session: Option<SyncSession> = None;
    // IDLE on INBOX runs on its own connection and wakes this loop through `changed`.
    let changed = Arc::new(Notify::new());
    let mut watcher: Option<JoinHandle<()>> = None;
    let watcher_shutdown = shutdown.clone();
    let mut failures: u32 = 0;
    let mut lease_note = false;
    loop {
        if *shutdown.borrow() {
            break;
        }
        // In `error`: wait for the user (set-password / enable resets the state).
        if store
            .account(&id)?
            .is_some_and(|r| r.state == AccountState::Error)
        {
            if wait(&mut shutdown, &kick, Duration::from_secs(2)).await {
                break;
            }
            continue;
        }
        match store.acquire_lease(&id, &lease, LEASE_STALE_SECS)? {
            Ok(()) => lease_note = false,
            Err(holder) => {
                if !lease_note {
                    let _ = store.log_event(
                        Some(&id),
                        Level::Info,
                        &format!(
                            "account {name} is synced by pid {} on {} since {}",
                            holder.pid, holder.host, holder.since
                        ),
                        None,
                        Some("nothing to do; this process waits for the lease"),
                    );
                    lease_note = true;
                }
                if wait(
                    &mut shutdown,
                    &kick,
                    Duration::from_secs(o.poll_secs.clamp(1, 30)),
                )
                .await
                {
                    break;
                }
                continue;
            }
        }
        set_state(&store, &events, &id, AccountState::Syncing);
        let pass = async {
            // A connection left open between passes may have been closed by the server
            // (autologout): that is not a failure, just reconnect.
            if let Some(ss) = session.as_mut()
                && fetch::simple(&mut ss.session, "NOOP", "NOOP")
                    .await
                    .is_err()
            {
                session = None;
            }
            if session.is_none() {
                let pw = account.password(&store, &vault)?;
                let ss = engine::open_session(&account, &pw).await?;
                let _ = store.set_capabilities(&id, &ss.caps_text);
                let inbox = store
                    .folder_by_role(&id, Role::Inbox)
                    .ok()
                    .flatten()
                    .filter(|f| f.sync_enabled)
                    .map(|f| f.wire_name)
                    .unwrap_or_else(|| "INBOX".into());
                if o.idle && ss.caps.idle && watcher.as_ref().is_none_or(|w| w.is_finished()) {
                    watcher = Some(tokio::spawn(idle_watcher(
                        account.clone(),
                        pw,
                        inbox,
                        changed.clone(),
                        watcher_shutdown.clone(),
                    )));
                }
                session = Some(ss);
            }
            let ss = session
                .as_mut()
                .ok_or_else(|| AppError::local("no session", "", "report this as a bug"))?;
            engine::run_pass(&mut store, &account, &opts, ss, Some(&events)).await
        };
        let result = tokio::select! {
            r = pass => Some(r),
            _ = shutdown.changed() => None,
        };
        let Some(result) = result else { break };
        match result {
            Ok(sum) => {
                failures = 0;
                crate::crm::after_sync(&store, &config, &id);
                let _ = store.record_success(
                    &id,
                    sum.duration_ms as i64,
                    sum.bytes as i64,
                    sum.new_total() as i64,
                );
                // record_success made the account idle in the DB; say so first.
                set_state(&store, &events, &id, AccountState::Idle);
                emit(
                    Some(&events),
                    SyncEvent::PassDone {
                        account_id: id.clone(),
                        new: sum.new_total(),
                        updated: sum.folders.iter().map(|f| f.updated).sum(),
                        vanished: sum.folders.iter().map(|f| f.vanished).sum(),
                        duration_ms: sum.duration_ms,
                    },
                );
                // Wait for news: IDLE on INBOX when possible, else the poll interval.
                let stop =
                    wait_for_change(&mut store, &account, &mut shutdown, &kick, &changed, &lease)
                        .await;
                if stop {
                    break;
                }
            }
            Err(e) => {
                session = None;
                failures += 1;
                let gave_up = record_failure(&store, &events, &account, &e, o.give_up_secs);
                if gave_up {
                    continue;
                }
                let delay = backoff(failures, o.backoff_min_secs, o.backoff_max_secs);
                if wait(&mut shutdown, &kick, delay).await {
                    break;
                }
            }
        }
    }
    if let Some(w) = watcher {
        w.abort();
    }
    let _ = store.release_lease(&id, &lease);
    Ok(())
}

/// Records a failed pass; returns true when the account went to `error` (gave up).
fn record_failure(
    store: &Store,
    events: &EventSender,
    account: &Account,
    e: &AppError,
    give_up_secs: u64,
) -> bool {
    let id = account.id();
    let state = match e.kind {
        Kind::NeedsUser | Kind::Usage => AccountState::Error,
        _ if e.summary.contains("cannot connect")
            || e.summary.contains("connection")
            || e.summary.contains("TLS handshake") =>
        {
            AccountState::Disconnected
        }
        _ => AccountState::Degraded,
    };
    let _ = store.record_failure(id, state, e);
    let _ = store.log_event(
        Some(id),
        Level::Error,
        &e.summary,
        Some(&e.detail),
        Some(&e.fix),
    );
    emit(
        Some(events),
        SyncEvent::Failed {
            account_id: id.to_string(),
            what: e.summary.clone(),
            fix: e.fix.clone(),
        },
    );
    let mut final_state = state;
    if state != AccountState::Error {
        let since = store
            .account(id)
            .ok()
            .flatten()
            .and_then(|r| r.failing_since);
        let failing_for = since
            .and_then(|s| chrono::DateTime::parse_from_rfc3339(&s).ok())
            .map(|s| (chrono::Utc::now() - s.with_timezone(&chrono::Utc)).num_seconds())
            .unwrap_or(0);
        if failing_for >= give_up_secs as i64 {
            final_state = AccountState::Error;
            let _ = store.log_event(
                Some(id),
                Level::Error,
                &format!(
                    "gave up syncing {} after {failing_for}s of failures",
                    account.name
                ),
                Some(&e.to_string()),
                Some(&format!(
                    "fix the cause, then `mailroom account enable {}` to retry",
                    account.name
                )),
            );
        }
    }
    set_state(store, events, id, final_state);
    final_state == AccountState::Error
}

/// Exponential backoff with ±20% jitter, so many clients never retry in lockstep.
pub fn backoff(failures: u32, min_secs: u64, max_secs: u64) -> Duration {
    let min = min_secs.max(1) as f64;
    let max = (max_secs.max(min_secs).max(1)) as f64;
    let base = (min * 2f64.powi(failures.saturating_sub(1).min(30) as i32)).min(max);
    let jitter: f64 = rand::random_range(0.8..1.2);
    Duration::from_secs_f64((base * jitter).max(1.0).min(max * 1.2))
}

/// Sleeps up to `d`; returns true on shutdown. A kick ends the wait early.
async fn wait(shutdown: &mut watch::Receiver<bool>, kick: &Notify, d: Duration) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(d) => false,
        _ = kick.notified() => false,
        r = shutdown.changed() => r.is_err() || *shutdown.borrow(),
    }
}

/// Waits until the next pass is due: a change reported by the IDLE watcher, the poll
/// interval, a kick, local changes queued by another process, or shutdown (returns true).
/// Wakes every few seconds to refresh the lease heartbeat.
async fn wait_for_change(
    store: &mut Store,
    account: &Account,
    shutdown: &mut watch::Receiver<bool>,
    kick: &Notify,
    changed: &Notify,
    lease: &str,
) -> bool {
    let deadline =
        tokio::time::Instant::now() + Duration::from_secs(account.cfg.sync.poll_secs.max(1));
    loop {
        let now = tokio::time::Instant::now();
        if now >= deadline {
            return false;
        }
        let _ = store.acquire_lease(account.id(), lease, LEASE_STALE_SECS);
        // Local changes queued by another process: push them now, not at the next poll.
        // (An op the server keeps refusing is given up after a few passes, so this ends.)
        if store.open_ops_count(account.id()).unwrap_or(0) > 0 {
            return false;
        }
        let chunk = (deadline - now).min(HEARTBEAT);
        tokio::select! {
            _ = tokio::time::sleep(chunk) => {}
            _ = kick.notified() => return false,
            _ = changed.notified() => return false,
            r = shutdown.changed() => return r.is_err() || *shutdown.borrow(),
        }
    }
}

/// Watches INBOX with IDLE on a dedicated connection, re-issued before `idle_renew_secs`,
/// and wakes the account loop on any change. Reconnects with backoff; without IDLE support
/// it ends and the loop polls.
async fn idle_watcher(
    account: Account,
    pw: secrecy::SecretString,
    wire: String,
    changed: Arc<Notify>,
    mut shutdown: watch::Receiver<bool>,
) {
    let o = account.cfg.sync.clone();
    let renew = Duration::from_secs(o.idle_renew_secs.clamp(1, 29 * 60));
    let mut failures = 0u32;
    loop {
        let run = async {
            let mut session = crate::imap::connect(&account.imap_target(), &pw).await?;
            let caps = session
                .capabilities()
                .await
                .map_err(|e| crate::imap::connect::protocol_error("CAPABILITY", e))?;
            if !caps.has_str("IDLE") {
                return Ok::<bool, AppError>(false);
            }
            while session.unsolicited_responses.try_recv().is_ok() {}
            fetch::select(&mut session, &wire, false, None, true).await?;
            // Whatever arrived before this EXAMINE is covered by one more pass.
            changed.notify_one();
            failures = 0;
            loop {
                if fetch::idle(&mut session, renew).await? {
                    changed.notify_one();
                }
            }
        };
        let r = tokio::select! {
            r = run => r,
            _ = shutdown.changed() => return,
        };
        match r {
            Ok(_) => return,
            Err(e) => {
                tracing::debug!("IDLE connection for {} failed: {e}", account.name);
                failures += 1;
                let delay = backoff(failures, o.backoff_min_secs, o.backoff_max_secs);
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = shutdown.changed() => return,
                }
            }
        }
    }
}

/// One foreground pass for `sync --once`: lease, pass, state and health bookkeeping.
pub async fn run_once(
    home: &Home,
    config: &Config,
    name: &str,
    tty_progress: bool,
) -> Result<engine::PassSummary> {
    let account = Account::from_config(config, name)?;
    let id = account.id().to_string();
    let mut store = Store::open(&home.db_path())?;
    store.insert_account(&id, name, account.cfg.enabled)?;
    let vault = crate::secret::Vault::open(home)?;
    let lease = token();
    if let Err(holder) = store.acquire_lease(&id, &lease, LEASE_STALE_SECS)? {
        return Err(AppError::new(
            Kind::Busy,
            format!(
                "account {name} is being synced by pid {} on {} since {}",
                holder.pid, holder.host, holder.since
            ),
            "",
            "wait for that process to finish, or stop it (`mailroom daemon` holds the lease while it runs)",
        ));
    }
    let mut opts = PassOptions::from_config(config, &account)?;
    opts.tty_progress = tty_progress;
    let (events, _) = events::channel();
    set_state(&store, &events, &id, AccountState::Syncing);
    let result = async {
        let pw = account.password(&store, &vault)?;
        let mut ss = engine::open_session(&account, &pw).await?;
        let _ = store.set_capabilities(&id, &ss.caps_text);
        let r = engine::run_pass(&mut store, &account, &opts, &mut ss, None).await;
        let _ = ss.session.logout().await;
        r
    }
    .await;
    match &result {
        Ok(sum) => {
            crate::crm::after_sync(&store, config, &id);
            store.record_success(
                &id,
                sum.duration_ms as i64,
                sum.bytes as i64,
                sum.new_total() as i64,
            )?;
        }
        Err(e) => {
            record_failure(&store, &events, &account, e, account.cfg.sync.give_up_secs);
        }
    }
    let _ = store.release_lease(&id, &lease);
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_caps_and_jitters() {
        for _ in 0..50 {
            let d1 = backoff(1, 5, 900).as_secs_f64();
            assert!((4.0..=6.0).contains(&d1), "{d1}");
            let d3 = backoff(3, 5, 900).as_secs_f64();
            assert!((16.0..=24.0).contains(&d3), "{d3}");
            let big = backoff(40, 5, 900).as_secs_f64();
            assert!((720.0..=1080.0).contains(&big), "{big}");
            assert!(backoff(1, 1, 1).as_secs_f64() >= 1.0);
        }
    }
}
