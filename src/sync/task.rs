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
use super::supervisor::{LEASE_STALE_SECS, backoff, record_failure, set_state, token};
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
    events: EventSender,
    shutdown: watch::Receiver<bool>,
    kick: Arc<Notify>,
}

pub async fn account_loop(
    home: Home,
    config: Config,
    name: String,
    events: EventSender,
    shutdown: watch::Receiver<bool>,
    kick: Arc<Notify>,
) -> Result<()> {
    let mut t = Task::new(&home, config, &name, events, shutdown, kick)?;
    loop {
        if *t.shutdown.borrow() {
            break;
        }
        let next = match t.ready().await? {
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
    fn new(
        home: &Home,
        config: Config,
        name: &str,
        events: EventSender,
        shutdown: watch::Receiver<bool>,
        kick: Arc<Notify>,
    ) -> Result<Task> {
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
            events,
            shutdown,
            kick,
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
        match self
            .store
            .acquire_lease(&self.id, &self.lease, LEASE_STALE_SECS)?
        {
            Ok(()) => {
                self.lease_note = false;
                Ok(None)
            }
            Err(holder) => {
                if !self.lease_note {
                    let _ = self.store.log_event(
                        Some(&self.id),
                        Level::Info,
                        &format!(
                            "account {} is synced by pid {} on {} since {}",
                            self.account.name, holder.pid, holder.host, holder.since
                        ),
                        None,
                        Some("nothing to do; this process waits for the lease"),
                    );
                    self.lease_note = true;
                }
                let poll = Duration::from_secs(self.account.cfg.sync.poll_secs.clamp(1, 30));
                Ok(Some(self.pause(poll).await))
            }
        }
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
            let _ = self
                .store
                .acquire_lease(&self.id, &self.lease, LEASE_STALE_SECS);
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
