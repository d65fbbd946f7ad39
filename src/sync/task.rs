//! One account's background task: it owns its database connection and one IMAP connection for
//! passes, holds the account's lease, runs a pass, then waits for the watcher (INBOX on a
//! second connection: changes, and a dead server noticed within about 1.5 × the timeout), a
//! kick, local changes queued by another process, or the poll interval. Failures are retried
//! with backoff and jitter; after `give_up_secs` of continuous failure (or at once for failures
//! only the user can fix, like a rejected password) the account goes to `error` and the task
//! waits until the user acts.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, mpsc, watch};
use tokio::task::JoinHandle;

use super::engine::{self, PassOptions, PassSummary, SyncSession};
use super::events::{EventSender, SyncEvent, emit};
use super::fleet::{Fleet, WAITING_FOR_SLOT};
use super::supervisor::{backoff, record_failure, set_state, token};
use super::watcher::{self, Watch};
use crate::account::Account;
use crate::config::{Config, Home};
use crate::error::{AppError, Result};
use crate::imap::fetch;
use crate::model::Role;
use crate::store::{AccountState, Level, Store};

/// How often a waiting account task refreshes its lease heartbeat and checks the queue of
/// local changes written by other processes (e.g. `message flag`).
const HEARTBEAT: Duration = Duration::from_secs(5);

/// How long a background pass downloads bodies (full offline mode) before it lets the next
/// pass look for new mail and go on.
const BODIES_PER_PASS: Duration = Duration::from_secs(20);

/// How long a task waits before it looks at the store again after the store failed.
const STORE_RETRY: Duration = Duration::from_secs(2);

/// Whether the loop goes on.
#[derive(PartialEq, Eq)]
enum Next {
    Go,
    Stop,
}

/// What ended a wait between passes.
enum Wake {
    Due,
    Stop,
    /// The watcher's connection failed: the server is gone (or going).
    Lost(AppError),
}

struct Task {
    config: Config,
    account: Account,
    id: String,
    store: Store,
    vault: crate::secret::Vault,
    opts: PassOptions,
    lease: String,
    session: Option<SyncSession>,
    credential: Option<crate::secret::Credential>,
    watcher: Option<JoinHandle<()>>,
    /// The folders the watcher watches.
    watched: Vec<String>,
    changed: Arc<Notify>,
    lost_tx: mpsc::UnboundedSender<AppError>,
    lost_rx: mpsc::UnboundedReceiver<AppError>,
    failures: u32,
    /// When the server last closed the watcher's connection and a pass simply reconnected.
    quiet_reconnect: Option<tokio::time::Instant>,
    lease_note: bool,
    /// Said (in the store) that the account waits for a sync slot.
    slot_note: bool,
    /// Said (in the log) that the store cannot be read between passes.
    store_trouble: bool,
    events: EventSender,
    shutdown: watch::Receiver<bool>,
    kick: Arc<Notify>,
    fleet: Arc<Fleet>,
}

/// What a task runs with besides its settings: where it reports, what stops or wakes it, and
/// the slots and lease group of its supervisor.
pub struct Run {
    pub events: EventSender,
    pub shutdown: watch::Receiver<bool>,
    pub kick: Arc<Notify>,
    pub fleet: Arc<Fleet>,
}

pub async fn account_loop(home: Home, config: Config, name: String, run: Run) -> Result<()> {
    let mut t = Task::new(&home, config, &name, run)?;
    t.fleet.clone().first_beat().await;
    loop {
        if *t.shutdown.borrow() {
            break;
        }
        let ready = match t.ready().await {
            Ok(r) => {
                t.store_trouble = false;
                r
            }
            // The store failed between passes (its server restarting, say): the task waits
            // and looks again; the connection opens anew by itself.
            Err(e) => {
                if !t.store_trouble {
                    tracing::warn!(account = %t.account.name, "cannot read the account's state; trying again: {e}");
                    t.store_trouble = true;
                }
                Some(t.pause(STORE_RETRY).await)
            }
        };
        let next = match ready {
            Some(Next::Stop) => break,
            Some(Next::Go) => continue,
            None => match t.pass().await {
                None => break,
                Some(Ok(sum)) => t.succeeded(sum).await,
                Some(Err(e)) => t.failed(e).await,
            },
        };
        if next == Next::Stop {
            break;
        }
    }
    t.close();
    Ok(())
}

impl Task {
    fn new(home: &Home, config: Config, name: &str, run: Run) -> Result<Task> {
        let account = Account::from_config(&config, name)?;
        let mut opts = PassOptions::from_config(&config, &account)?;
        // The watcher holds one of the account's connections.
        opts.reserved_connections = 1;
        // In the background a pass downloads bodies for a while; the next one goes on.
        opts.bodies.budget = Some(BODIES_PER_PASS);
        let (lost_tx, lost_rx) = mpsc::unbounded_channel();
        Ok(Task {
            id: account.id().to_string(),
            store: Store::open_url(&home.store_url()?)?,
            vault: crate::secret::Vault::open(home)?,
            config,
            account,
            opts,
            lease: token(),
            session: None,
            credential: None,
            watcher: None,
            watched: Vec::new(),
            changed: Arc::new(Notify::new()),
            lost_tx,
            lost_rx,
            failures: 0,
            quiet_reconnect: None,
            lease_note: false,
            slot_note: false,
            store_trouble: false,
            events: run.events,
            shutdown: run.shutdown,
            kick: run.kick,
            fleet: run.fleet,
        })
    }

    /// Before a pass: an account in `error` waits for the user, and the lease must be ours.
    /// None: go ahead with a pass.
    async fn ready(&mut self) -> Result<Option<Next>> {
        let in_error = self
            .store
            .account(&self.id)?
            .is_some_and(|r| r.state == AccountState::Error);
        if in_error {
            return Ok(Some(self.pause(Duration::from_secs(2)).await));
        }
        if !self.fleet.take_slot(&self.id) {
            self.note_waiting();
            let retry = self.fleet.retry_every();
            return Ok(Some(self.pause(retry).await));
        }
        match self.take_lease()? {
            Ok(()) => {
                self.lease_note = false;
                self.slot_note = false;
                Ok(None)
            }
            Err(holder) => {
                self.fleet.free_slot(&self.id);
                self.slot_note = false;
                if !self.lease_note {
                    let _ = self.store.log_event(
                        Some(&self.id),
                        Level::Info,
                        &format!(
                            "account {} is synced by {}",
                            self.account.name,
                            holder.who()
                        ),
                        None,
                        Some("nothing to do; this process waits for the lease"),
                    );
                    self.lease_note = true;
                }
                let retry = self.fleet.retry_every();
                Ok(Some(self.pause(retry).await))
            }
        }
    }

    /// Takes (or renews) the account's lease in the supervisor's group.
    fn take_lease(&mut self) -> Result<std::result::Result<(), crate::store::LeaseHolder>> {
        let secs = self.fleet.lease_secs();
        self.store
            .acquire_lease_in(&self.id, &self.lease, secs, Some(&self.fleet.group))
    }

    /// No slot here: when nobody else syncs the account either, it is `pending`, waiting for
    /// a sync slot (said once; taking the lease clears it, whoever takes it).
    fn note_waiting(&mut self) {
        if self.slot_note || !self.store.sync_holder_gone(&self.id).unwrap_or(false) {
            return;
        }
        let _ = self.store.set_waiting(&self.id, Some(WAITING_FOR_SLOT));
        set_state(&self.store, &self.events, &self.id, AccountState::Pending);
        self.slot_note = true;
    }

    /// Lets the account go between passes (this daemon holds more than its share): another
    /// daemon takes it over from the checkpoint.
    fn let_go(&mut self) {
        if let Some(w) = self.watcher.take() {
            w.abort();
        }
        self.session = None;
        let _ = self.store.release_lease(&self.id, &self.lease);
        tracing::info!(account = %self.account.name, "let go of the account (over this daemon's share, or the lease was lost)");
    }

    /// Sleeps up to `d`; a kick ends the wait early.
    async fn pause(&mut self, d: Duration) -> Next {
        tokio::select! {
            _ = tokio::time::sleep(d) => Next::Go,
            _ = self.kick.notified() => Next::Go,
            r = self.shutdown.changed() => {
                if r.is_err() || *self.shutdown.borrow() { Next::Stop } else { Next::Go }
            }
        }
    }

    /// One pass, interrupted by shutdown (None). While failing, the account keeps its failing
    /// state until the retry reaches the server again, rather than flipping to `syncing`.
    async fn pass(&mut self) -> Option<Result<PassSummary>> {
        if self.failures == 0 {
            set_state(&self.store, &self.events, &self.id, AccountState::Syncing);
        }
        while self.lost_rx.try_recv().is_ok() {}
        let mut shutdown = self.shutdown.clone();
        let reused = self.session.is_some();
        let r = tokio::select! {
            r = self.run_pass() => r,
            _ = shutdown.changed() => return None,
        };
        match r {
            // The server closed the connection kept from the last pass while this pass used
            // it (a kick racing the NOOP probe, a restart): reconnect once before it counts.
            Err(e) if reused && lost_connection(&e) => {
                tracing::debug!(account = %self.account.name, "the kept connection was closed during the pass ({e}); reconnecting");
                self.session = None;
                tokio::select! {
                    r = self.run_pass() => Some(r),
                    _ = shutdown.changed() => None,
                }
            }
            r => Some(r),
        }
    }

    async fn run_pass(&mut self) -> Result<PassSummary> {
        // A connection left open between passes may have been closed by the server
        // (autologout): that is not a failure, just reconnect.
        if let Some(ss) = self.session.as_mut()
            && fetch::simple(&mut ss.session, "NOOP", "NOOP")
                .await
                .is_err()
        {
            self.session = None;
        }
        if self.session.is_none() {
            // One credential per task: an OAuth2 token source keeps its tokens for every
            // connection (the pass's, the watcher's) and refreshes them when they run out.
            let cred = match self.credential.clone() {
                Some(c) => c,
                None => self.account.credential(&self.store, &self.vault)?,
            };
            let remembered = self.store.account(&self.id)?.and_then(|r| r.capabilities);
            let ss =
                engine::open_session_for_pass(&self.account, &cred, remembered.as_deref(), true)
                    .await?;
            let _ = self.store.set_capabilities(&self.id, &ss.caps_text);
            self.credential = Some(cred);
            self.session = Some(ss);
            // Reached again after failures: from here on it is syncing.
            if self.failures > 0 {
                set_state(&self.store, &self.events, &self.id, AccountState::Syncing);
            }
        }
        let ss = self
            .session
            .as_mut()
            .ok_or_else(|| AppError::local("no session", "", "report this as a bug"))?;
        engine::run_pass(
            &mut self.store,
            &self.account,
            &self.opts,
            ss,
            Some(&self.events),
        )
        .await
    }

    async fn succeeded(&mut self, sum: PassSummary) -> Next {
        self.failures = 0;
        crate::crm::after_sync(&self.store, &self.config, &self.id);
        let _ = self.store.record_success(
            &self.id,
            sum.duration_ms as i64,
            sum.bytes as i64,
            sum.new_total() as i64,
        );
        // record_success made the account idle in the DB; say so first.
        set_state(&self.store, &self.events, &self.id, AccountState::Idle);
        // Healthy again after a failure that raised an alert: `recovered`.
        crate::alerts::state_changed(&self.store, &self.id, AccountState::Idle, None);
        emit(
            Some(&self.events),
            SyncEvent::PassDone {
                account_id: self.id.clone(),
                new: sum.new_total(),
                updated: sum.folders.iter().map(|f| f.updated).sum(),
                vanished: sum.folders.iter().map(|f| f.vanished).sum(),
                duration_ms: sum.duration_ms,
            },
        );
        self.start_watcher();
        if sum.bodies_pending {
            // More bodies to download: the next pass goes on at once.
            return Next::Go;
        }
        match self.wait_for_change().await {
            Wake::Due => Next::Go,
            Wake::Stop => Next::Stop,
            Wake::Lost(e) if self.reconnect_quietly(&e) => {
                tracing::debug!(account = %self.account.name, "the server closed the watcher's connection ({e}); reconnecting");
                Next::Go
            }
            Wake::Lost(e) => self.failed(e).await,
        }
    }

    /// A watcher connection the server ended with a BYE (an admin's kick, a restart, a session
    /// that ran out) is not a failure by itself: the next pass reconnects, and only a pass that
    /// fails counts. A server that keeps saying BYE is treated as failing (backoff) instead of
    /// being reconnected to over and over. A connection that just breaks or stalls is never
    /// quiet: that is how a server that went away shows.
    fn reconnect_quietly(&mut self, e: &AppError) -> bool {
        if e.code != crate::error::Code::ServerUnavailable || !e.detail.contains("BYE") {
            return false;
        }
        let gap = Duration::from_secs(self.account.cfg.sync.backoff_min_secs.max(1) * 2);
        let now = tokio::time::Instant::now();
        if self.quiet_reconnect.is_some_and(|t| now - t < gap) {
            return false;
        }
        self.quiet_reconnect = Some(now);
        true
    }

    /// Records the failure (the fix says that mailroom retries), then waits the backoff.
    async fn failed(&mut self, e: AppError) -> Next {
        self.session = None;
        if let Some(w) = self.watcher.take() {
            w.abort();
        }
        self.failures += 1;
        let e = crate::error::with_retry_words(e, true, "");
        let o = &self.account.cfg.sync;
        let gave_up = record_failure(&self.store, &self.events, &self.account, &e, o.give_up_secs);
        if gave_up {
            return Next::Go;
        }
        let delay = backoff(self.failures, o.backoff_min_secs, o.backoff_max_secs);
        self.pause(delay).await
    }

    /// Starts the watcher of INBOX when it is not running.
    /// The wire names of the folders that sync.
    fn synced_folders(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .store
            .folders(&self.id)
            .unwrap_or_default()
            .into_iter()
            .filter(|f| f.sync_enabled && f.selectable && f.present)
            .map(|f| f.wire_name)
            .collect();
        v.sort();
        v
    }

    /// Starts the watcher when it is not running, or again when the folders that sync changed.
    fn start_watcher(&mut self) {
        let running = self.watcher.as_ref().is_some_and(|w| !w.is_finished());
        if running && self.synced_folders() == self.watched {
            return;
        }
        if let Some(w) = self.watcher.take() {
            w.abort();
        }
        let Some(credential) = self.credential.clone() else {
            return;
        };
        let inbox = self
            .store
            .folder_by_role(&self.id, Role::Inbox)
            .ok()
            .flatten()
            .filter(|f| f.sync_enabled)
            .map(|f| f.wire_name)
            .unwrap_or_else(|| "INBOX".into());
        let folders = self.synced_folders();
        self.watched = folders.clone();
        self.watcher = Some(tokio::spawn(watcher::run(Watch {
            account: self.account.clone(),
            credential,
            inbox,
            folders,
            changed: self.changed.clone(),
            lost: self.lost_tx.clone(),
            shutdown: self.shutdown.clone(),
        })));
    }

    /// Waits until the next pass is due: a change reported by the watcher, the poll interval, a
    /// kick, local changes queued by another process, shutdown, or the watcher's connection
    /// lost. Wakes every few seconds to refresh the lease heartbeat.
    async fn wait_for_change(&mut self) -> Wake {
        let poll = Duration::from_secs(self.account.cfg.sync.poll_secs.max(1));
        let deadline = tokio::time::Instant::now() + poll;
        loop {
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Wake::Due;
            }
            // The lease lost (this process was stopped longer than the lease time and another
            // took over): no more passes here; ready() says who has it.
            if let Ok(Err(_)) = self.take_lease() {
                self.let_go();
                return Wake::Due;
            }
            if self.fleet.give_up(&self.id) {
                self.let_go();
                return Wake::Due;
            }
            // Local changes queued by another process: push them now, not at the next poll.
            // (An op the server keeps refusing is given up after a few passes, so this ends.)
            if self.store.open_ops_count(&self.id).unwrap_or(0) > 0 {
                return Wake::Due;
            }
            let chunk = (deadline - now).min(HEARTBEAT);
            tokio::select! {
                _ = tokio::time::sleep(chunk) => {}
                _ = self.kick.notified() => return Wake::Due,
                _ = self.changed.notified() => return Wake::Due,
                Some(e) = self.lost_rx.recv() => return Wake::Lost(e),
                r = self.shutdown.changed() => {
                    if r.is_err() || *self.shutdown.borrow() {
                        return Wake::Stop;
                    }
                }
            }
        }
    }

    fn close(mut self) {
        if let Some(w) = self.watcher.take() {
            w.abort();
        }
        let _ = self.store.release_lease(&self.id, &self.lease);
        self.fleet.free_slot(&self.id);
    }
}

/// The server closed the connection (it broke, or ended with a BYE), as opposed to a stall or
/// a refusal: for a connection kept from an earlier pass, a reason to reconnect once.
fn lost_connection(e: &AppError) -> bool {
    use crate::error::Code;
    e.code == Code::NetDropped || (e.code == Code::ServerUnavailable && e.detail.contains("BYE"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{connection_lost, stalled, temporarily_unavailable};

    #[test]
    fn only_a_closed_connection_is_retried_at_once() {
        assert!(lost_connection(&connection_lost(
            "h:1",
            "SELECT INBOX",
            "broken pipe"
        )));
        assert!(lost_connection(&temporarily_unavailable(
            "h:1",
            "NOOP",
            "the server said BYE: Disconnected by admin"
        )));
        assert!(!lost_connection(&temporarily_unavailable(
            "h:1",
            "LOGIN",
            "[UNAVAILABLE] Temporary authentication failure"
        )));
        assert!(!lost_connection(&stalled(
            "h:1",
            "FETCH",
            "stalled: no answer in 10 s"
        )));
    }
}
