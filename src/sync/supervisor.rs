//! Background sync: one task per enabled account, each on a thread of its own with a
//! current-thread runtime, so the store calls it makes between network waits never block a
//! tokio worker thread (see `task.rs` for what the task does). The supervisor starts, moves and
//! stops the tasks; `run_once` is the foreground pass of `sync --once`, on a thread of its own
//! as well.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, oneshot, watch};

use super::engine::{self, PassOptions};
use super::events::{self, EventSender, SyncEvent, emit};
use super::fleet::{Fleet, Keeper, LeaseOptions};
use crate::account::Account;
use crate::config::{AccountConfig, Config, Home};
use crate::error::{AppError, Kind, Result};
use crate::store::{AccountState, Store};

/// How long the lease of a one-off holder (`sync --once`, a push of queued changes) lasts;
/// their own keeper renews it while they run.
pub const LEASE_SECS: i64 = super::fleet::DEFAULT_LEASE_SECS as i64;

/// A running account task.
pub struct AccountHandle {
    pub account_id: String,
    /// The account's name and settings the task was started with (a reload compares them).
    name: String,
    settings: AccountConfig,
    kick: Arc<Notify>,
    stop: watch::Sender<bool>,
    /// Fires when the task's thread is done (its lease released).
    done: oneshot::Receiver<()>,
}

impl AccountHandle {
    /// Run a pass now (e.g. after a local change was queued).
    pub fn kick(&self) {
        self.kick.notify_one();
    }

    /// Stops the task (a running pass is interrupted, which is safe) and waits for it.
    async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.done.await;
    }
}

/// Keeps every enabled account in sync until shut down; usable in-process by the console.
pub struct Supervisor {
    pub handles: Vec<AccountHandle>,
    events: EventSender,
    home: Home,
    /// The configuration the tasks run with.
    config: Config,
    /// The slots and lease group the tasks share; its keeper renews their leases.
    fleet: Arc<Fleet>,
    keeper: Option<Keeper>,
}

impl Supervisor {
    /// Starts a task per enabled account, each on a thread of its own.
    pub fn start(home: &Home, config: &Config) -> Supervisor {
        Supervisor::start_with(home, config, LeaseOptions::default())
    }

    /// As `start`, with these lease terms (a daemon: registered, with a capacity).
    pub fn start_with(home: &Home, config: &Config, lease: LeaseOptions) -> Supervisor {
        let (events, _) = events::channel();
        let fleet = Fleet::new(lease);
        fleet.set_accounts(config.accounts.values().filter(|a| a.enabled).count());
        let keeper = home
            .store_url()
            .map(|url| Keeper::start(url, fleet.clone()))
            .map_err(|e| tracing::error!("no lease keeper: {e}"))
            .ok();
        let mut sup = Supervisor {
            handles: Vec::new(),
            events,
            home: home.clone(),
            config: config.clone(),
            fleet,
            keeper,
        };
        for (name, a) in &config.accounts {
            if a.enabled {
                sup.spawn(name);
            }
        }
        sup
    }

    /// The accounts whose slot this process holds (a daemon drives their outbox).
    pub fn fleet(&self) -> Arc<Fleet> {
        self.fleet.clone()
    }

    fn spawn(&mut self, name: &str) {
        let Some(settings) = self.config.accounts.get(name).cloned() else {
            return;
        };
        let (stop, rx) = watch::channel(false);
        let kick = Arc::new(Notify::new());
        let done = spawn_account(
            self.home.clone(),
            self.config.clone(),
            name.to_string(),
            self.events.clone(),
            rx,
            kick.clone(),
            self.fleet.clone(),
        );
        self.handles.push(AccountHandle {
            account_id: settings.id.clone(),
            name: name.to_string(),
            settings,
            kick,
            stop,
            done,
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
        self.fleet
            .set_accounts(config.accounts.values().filter(|a| a.enabled).count());
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
            let _ = h.done.await;
        }
        // Every lease still held goes at once (a clean exit never makes others wait).
        if let Some(k) = self.keeper {
            k.stop().await;
        }
    }
}

/// Runs `f` on a thread of its own with a current-thread runtime; the receiver hears its
/// result (or is closed when the thread could not start or panicked).
pub(crate) fn on_own_thread<T: Send + 'static>(
    name: String,
    f: impl FnOnce() -> std::pin::Pin<Box<dyn std::future::Future<Output = T>>> + Send + 'static,
) -> oneshot::Receiver<T> {
    let (tx, rx) = oneshot::channel();
    let spawned = std::thread::Builder::new().name(name).spawn(move || {
        match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => {
                let _ = tx.send(rt.block_on(f()));
            }
            Err(e) => tracing::error!("cannot start a runtime for a sync task: {e}"),
        }
    });
    if let Err(e) = spawned {
        tracing::error!("cannot start a sync thread: {e}");
    }
    rx
}

/// Spawns the background task of one account on its own thread.
fn spawn_account(
    home: Home,
    config: Config,
    name: String,
    events: EventSender,
    shutdown: watch::Receiver<bool>,
    kick: Arc<Notify>,
    fleet: Arc<Fleet>,
) -> oneshot::Receiver<()> {
    on_own_thread(format!("sync {name}"), move || {
        Box::pin(async move {
            let run = super::task::Run {
                events,
                shutdown,
                kick,
                fleet,
            };
            if let Err(e) = super::task::account_loop(home, config, name, run).await {
                tracing::error!("sync task stopped: {e}");
            }
        })
    })
}

pub(crate) fn set_state(store: &Store, events: &EventSender, id: &str, state: AccountState) {
    let _ = store.set_state(id, state);
    emit(
        Some(events),
        SyncEvent::StateChanged {
            account_id: id.to_string(),
            state,
        },
    );
}

pub(crate) fn token() -> String {
    crate::model::new_id()
}

/// Records a failed pass; returns true when the account went to `error`. An account in
/// `error` waits for the user, so its fix names this account and the command that lets sync
/// try again.
pub(crate) fn record_failure(
    store: &Store,
    events: &EventSender,
    account: &Account,
    e: &AppError,
    give_up_secs: u64,
) -> bool {
    let id = account.id();
    let state = match e.kind {
        Kind::NeedsUser | Kind::Usage => AccountState::Error,
        _ if crate::error::is_unreachable(e) => AccountState::Disconnected,
        _ => AccountState::Degraded,
    };
    let failing_for = (state != AccountState::Error)
        .then(|| failing_for(store, id))
        .filter(|secs| *secs >= give_up_secs as i64);
    let final_state = if failing_for.is_some() {
        AccountState::Error
    } else {
        state
    };
    let mut shown = e.clone();
    if final_state == AccountState::Error {
        shown.fix = error_state_fix(e, &account.name, failing_for.is_some());
    }
    tracing::debug!(code = %e.code, account = %account.name, "sync failed: {e}");
    let _ = store.record_failure(id, final_state, &shown);
    let _ = store.log_event(
        Some(id),
        crate::store::Level::Error,
        &e.summary,
        Some(&e.detail),
        Some(&shown.fix),
    );
    if let Some(secs) = failing_for {
        let _ = store.log_event(
            Some(id),
            crate::store::Level::Error,
            &format!("gave up syncing {} after {secs}s of failures", account.name),
            Some(&e.to_string()),
            Some(&shown.fix),
        );
    }
    emit(
        Some(events),
        SyncEvent::Failed {
            account_id: id.to_string(),
            what: e.summary.clone(),
            fix: shown.fix.clone(),
        },
    );
    set_state(store, events, id, final_state);
    // One alert per transition: a retry that fails the same way raises nothing.
    crate::alerts::state_changed(store, id, final_state, Some(&shown));
    final_state == AccountState::Error
}

/// Seconds the account has been failing without a success between (0 when it just started).
fn failing_for(store: &Store, id: &str) -> i64 {
    store
        .account(id)
        .ok()
        .flatten()
        .and_then(|r| r.failing_since)
        .and_then(|s| chrono::DateTime::parse_from_rfc3339(&s).ok())
        .map(|s| (chrono::Utc::now() - s.with_timezone(&chrono::Utc)).num_seconds())
        .unwrap_or(0)
}

/// The fix of an account in `error`: the error's own fix with `NAME` filled in, and the command
/// after which sync tries again (`account set-password NAME` for a credential, `account enable
/// NAME` otherwise; `account edit NAME` retries too). `gave_up`: a passing failure that lasted
/// past the give-up time, whose "mailroom retries by itself" is no longer true.
pub(crate) fn error_state_fix(e: &AppError, name: &str, gave_up: bool) -> String {
    use crate::error::Code;
    let base = e
        .fix
        .trim_start_matches("mailroom retries by itself with backoff")
        .trim_start_matches("; ")
        .trim_end_matches('.');
    let named = fill_name(base, name);
    let password = format!("mailroom account set-password {name}");
    let enable = format!("mailroom account enable {name}");
    let login = format!("mailroom account login {name}");
    if gave_up {
        return match named.is_empty() {
            true => format!("sync gave up after repeated failures: fix the cause, then `{enable}`"),
            false => format!("sync gave up after repeated failures: {named}; then `{enable}`"),
        };
    }
    let (cmd, why) = match e.code {
        // An OAuth2 account signs in again; its error already says how.
        _ if named.contains(&login) => return named,
        Code::AuthLoginNeeded => (login, ""),
        Code::AuthRejected | Code::SecretMissing | Code::SecretDamaged => (password, ""),
        _ => (enable, " to retry"),
    };
    if named.contains(&cmd) {
        named
    } else if named.is_empty() {
        format!("`{cmd}`{why}")
    } else {
        format!("{named}; then `{cmd}`{why}")
    }
}

/// `text` with the placeholder word `NAME` (as in `mailroom account edit NAME`) replaced.
fn fill_name(text: &str, name: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("NAME") {
        let before = rest[..at].chars().next_back();
        let after = rest[at + 4..].chars().next();
        let word = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_');
        out.push_str(&rest[..at]);
        out.push_str(if word(before) || word(after) {
            "NAME"
        } else {
            name
        });
        rest = &rest[at + 4..];
    }
    out.push_str(rest);
    out
}

/// Exponential backoff with ±20% jitter, so many clients never retry in lockstep.
pub fn backoff(failures: u32, min_secs: u64, max_secs: u64) -> Duration {
    let min = min_secs.max(1) as f64;
    let max = (max_secs.max(min_secs).max(1)) as f64;
    let base = (min * 2f64.powi(failures.saturating_sub(1).min(30) as i32)).min(max);
    let jitter: f64 = rand::random_range(0.8..1.2);
    Duration::from_secs_f64((base * jitter).max(1.0).min(max * 1.2))
}

/// One foreground pass for `sync --once`: lease, pass, state and health bookkeeping. Runs on a
/// thread of its own (the store is used between network waits). A one-shot command does not
/// retry, and its errors say how to run it again instead.
pub async fn run_once(
    home: &Home,
    config: &Config,
    name: &str,
    tty_progress: bool,
    operator: &str,
) -> Result<engine::PassSummary> {
    let (home, config, name) = (home.clone(), config.clone(), name.to_string());
    let operator = operator.to_string();
    let rx = on_own_thread("sync --once".into(), move || {
        Box::pin(async move { once(&home, &config, &name, tty_progress, &operator).await })
    });
    rx.await.unwrap_or_else(|_| {
        Err(AppError::local(
            "the sync thread stopped unexpectedly",
            "",
            "run sync again; report this as a bug if it repeats (`mailroom log --level debug`)",
        ))
    })
}

async fn once(
    home: &Home,
    config: &Config,
    name: &str,
    tty_progress: bool,
    operator: &str,
) -> Result<engine::PassSummary> {
    let account = Account::from_config(config, name)?;
    let id = account.id().to_string();
    let mut store = Store::open_url(&home.store_url()?)?;
    store.insert_account(&id, name, account.cfg.enabled)?;
    let vault = crate::secret::Vault::open(home)?;
    let lease = token();
    // Its own keeper renews the lease while the pass runs (a first sync outlasts a lease).
    let fleet = Fleet::new(LeaseOptions::default());
    if let Err(holder) = store.acquire_lease_in(&id, &lease, LEASE_SECS, Some(&fleet.group))? {
        return Err(AppError::new(
            Kind::Busy,
            format!("account {name} is being synced by {}", holder.who()),
            "",
            "wait for that process to finish, or stop it (`mailroom daemon` holds the lease while it runs)",
        ));
    }
    let keeper = Keeper::start(home.store_url()?, fleet);
    let mut opts = PassOptions::from_config(config, &account)?;
    opts.tty_progress = tty_progress;
    let (events, _) = events::channel();
    set_state(&store, &events, &id, AccountState::Syncing);
    let mut result = async {
        let cred = account.credential(&store, &vault)?;
        let remembered = store.account(&id)?.and_then(|r| r.capabilities);
        let mut ss =
            engine::open_session_for_pass(&account, &cred, remembered.as_deref(), true).await?;
        let _ = store.set_capabilities(&id, &ss.caps_text);
        let r = engine::run_pass(&mut store, &account, &opts, &mut ss, None).await;
        // A broken connection gets no goodbye; a healthy one a LOGOUT, not waited for (the
        // process ends: the server's answer would only cost a round trip).
        if r.as_ref()
            .err()
            .is_none_or(|e| !crate::error::is_unreachable(e))
        {
            ss.logout_without_waiting().await;
        }
        r
    }
    .await
    .map_err(|e| crate::error::with_retry_words(e, false, &format!("mailroom sync {name} --once")));
    match &mut result {
        Ok(sum) => {
            let matching = std::time::Instant::now();
            crate::crm::after_sync(&store, config, &id);
            sum.match_ms = matching.elapsed().as_millis() as u64;
            store.record_success(
                &id,
                sum.duration_ms as i64,
                sum.bytes as i64,
                sum.new_total() as i64,
            )?;
            crate::alerts::state_changed(&store, &id, AccountState::Idle, None);
        }
        Err(e) => {
            record_failure(&store, &events, &account, e, account.cfg.sync.give_up_secs);
        }
    }
    // While the lease is still ours, the alerts the pass raised go out (what a cron job
    // running `sync --once` relies on; a failed delivery waits for the next run).
    if let Err(e) = crate::alerts::worker::drain(home, operator, config, &id).await {
        tracing::warn!("alerts of {name} were not delivered now: {e}");
    }
    let _ = store.release_lease(&id, &lease);
    keeper.stop().await;
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_account_in_error_names_its_own_way_out() {
        use crate::error::Code;
        let rejected = AppError::needs_user(
            "the server rejected the login for w@example.test",
            "[AUTHENTICATIONFAILED]",
            "check the user name and password, then `mailroom account set-password NAME`; providers like Gmail/Outlook need an app password",
        )
        .with_code(Code::AuthRejected);
        let fix = error_state_fix(&rejected, "work", false);
        assert!(
            fix.contains("`mailroom account set-password work`"),
            "{fix}"
        );
        assert!(!fix.contains("NAME"), "{fix}");
        assert!(!fix.contains("account enable"), "{fix}");
        let cert = AppError::needs_user(
            "the server's TLS certificate is not trusted: it has expired",
            "",
            "the server's administrator must renew it",
        )
        .with_code(Code::TlsExpired);
        let fix = error_state_fix(&cert, "work", false);
        assert!(
            fix.starts_with(
                "the server's administrator must renew it; then `mailroom account enable work`"
            ),
            "{fix}"
        );
        let down = crate::error::with_retry_words(
            AppError::transient("cannot connect to h:1", "", "check the port"),
            true,
            "",
        );
        let fix = error_state_fix(&down, "work", true);
        assert!(!fix.contains("retries by itself"), "{fix}");
        assert!(
            fix.contains("gave up") && fix.contains("check the port"),
            "{fix}"
        );
        assert!(fix.ends_with("`mailroom account enable work`"), "{fix}");
        assert_eq!(
            fill_name("`mailroom account edit NAME --ca-file …` (NAMES stay)", "w"),
            "`mailroom account edit w --ca-file …` (NAMES stay)"
        );
    }

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
