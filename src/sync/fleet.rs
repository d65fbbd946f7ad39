//! How one process's sync tasks share the accounts with other processes and hosts.
//!
//! Every supervisor (a daemon, a console, `sync NAME`) is a lease *group*: its tasks take
//! their accounts' leases in the group's name, and one keeper thread renews them all every
//! third of the lease time, whatever the tasks are doing (a first sync of a big folder takes
//! longer than a lease). A process killed with -9 stops renewing; its leases run out after the
//! lease time and the tasks of other processes, which keep asking, take the accounts over and
//! resume from the checkpoints.
//!
//! A daemon also registers in the `daemons` table with its capacity (`--max-accounts`), and
//! holds at most its fair share: the enabled accounts spread over the live daemons by water
//! filling (each daemon, smallest capacity first, takes min(capacity, ⌈left / daemons left⌉)),
//! computed the same way by every daemon from the same table. A daemon over its share (one
//! joined) lets the surplus go between passes; a daemon under it takes what nobody holds.
//! Accounts no daemon has a slot for wait as `pending`, "waiting for a sync slot".

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use crate::config::StoreUrl;
use crate::store::{DaemonRow, Store};

/// The default lease time (`daemon --lease-secs`).
pub const DEFAULT_LEASE_SECS: u64 = 30;

/// What an account no daemon has room for waits for.
pub const WAITING_FOR_SLOT: &str = "waiting for a sync slot";

/// How a supervisor takes leases.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseOptions {
    /// How long a lease lasts unless renewed.
    pub secs: u64,
    /// A daemon: registered, with this capacity (None: no limit). Not a daemon (a console,
    /// `sync NAME`): takes whatever is free, no share.
    pub daemon: Option<Option<usize>>,
}

impl Default for LeaseOptions {
    fn default() -> Self {
        LeaseOptions {
            secs: DEFAULT_LEASE_SECS,
            daemon: None,
        }
    }
}

/// The slots of one supervisor: which accounts it holds, and how many it may.
pub struct Fleet {
    /// The lease group, and the daemon's id in `daemons`.
    pub group: String,
    pub opts: LeaseOptions,
    held: Mutex<HashSet<String>>,
    share: AtomicUsize,
    /// The enabled accounts the share is computed over.
    accounts: AtomicUsize,
    /// The live daemons as the last beat saw them.
    daemons: Mutex<Vec<DaemonRow>>,
    /// True once the keeper's first beat is done (a daemon registered and saw the others).
    beaten: tokio::sync::watch::Sender<bool>,
}

impl Fleet {
    pub fn new(opts: LeaseOptions) -> Arc<Fleet> {
        let share = match opts.daemon {
            // Until the first beat counted the daemons: its capacity, as if alone.
            Some(max) => max.unwrap_or(usize::MAX),
            None => usize::MAX,
        };
        Arc::new(Fleet {
            group: format!("g-{}", crate::model::new_id()),
            opts,
            held: Mutex::new(HashSet::new()),
            share: AtomicUsize::new(share),
            accounts: AtomicUsize::new(0),
            daemons: Mutex::new(Vec::new()),
            beaten: tokio::sync::watch::channel(false).0,
        })
    }

    /// Waits for the keeper's first beat (at most a few seconds), so a daemon's tasks take
    /// slots only once it has registered and counted the daemons already running.
    pub async fn first_beat(&self) {
        let mut rx = self.beaten.subscribe();
        let _ = tokio::time::timeout(Duration::from_secs(5), rx.wait_for(|b| *b)).await;
    }

    pub fn lease_secs(&self) -> i64 {
        self.opts.secs.max(1) as i64
    }

    /// How often a task without its lease asks again: a third of the lease time, so a
    /// takeover follows soon after the lease ran out.
    pub fn retry_every(&self) -> Duration {
        Duration::from_secs((self.opts.secs / 3).clamp(1, 10))
    }

    /// The enabled accounts changed (the daemon re-read its settings): the share follows now.
    pub fn set_accounts(&self, n: usize) {
        self.accounts.store(n, Ordering::Relaxed);
        self.reshare();
    }

    fn reshare(&self) {
        let Some(max) = self.opts.daemon else {
            return;
        };
        let Ok(daemons) = self.daemons.lock() else {
            return;
        };
        let n = self.accounts.load(Ordering::Relaxed);
        let share = fair_share(&self.group, max, &daemons, n);
        self.share.store(share, Ordering::Relaxed);
    }

    /// A slot for the account: it has one, or one is free within the share.
    pub fn take_slot(&self, id: &str) -> bool {
        let Ok(mut held) = self.held.lock() else {
            return false;
        };
        if held.contains(id) {
            return true;
        }
        if held.len() >= self.share.load(Ordering::Relaxed) {
            return false;
        }
        held.insert(id.to_string());
        true
    }

    pub fn free_slot(&self, id: &str) {
        if let Ok(mut held) = self.held.lock() {
            held.remove(id);
        }
    }

    /// Whether the account should be let go now: this daemon holds more than its share (one
    /// joined). Frees its slot when so.
    pub fn give_up(&self, id: &str) -> bool {
        let Ok(mut held) = self.held.lock() else {
            return false;
        };
        if held.len() > self.share.load(Ordering::Relaxed) && held.remove(id) {
            return true;
        }
        false
    }

    /// The accounts this process holds a slot for (its outbox is theirs).
    pub fn held(&self) -> Vec<String> {
        self.held
            .lock()
            .map(|h| h.iter().cloned().collect())
            .unwrap_or_default()
    }

    fn beat(&self, store: &Store) -> crate::error::Result<()> {
        let secs = self.lease_secs();
        store.renew_leases(&self.group, secs)?;
        let Some(max) = self.opts.daemon else {
            return Ok(());
        };
        store.daemon_beat(&self.group, max.map(|m| m as i64), secs)?;
        store.renew_claims(&crate::store::secs_from_now(secs))?;
        let daemons = store.live_daemons()?;
        if let Ok(mut d) = self.daemons.lock() {
            *d = daemons;
        }
        self.reshare();
        Ok(())
    }
}

/// This daemon's share of `accounts` among the live `daemons` (water filling, smallest
/// capacity first, ties by id: every daemon computes the same split).
pub fn fair_share(me: &str, max: Option<usize>, daemons: &[DaemonRow], accounts: usize) -> usize {
    let cap = |m: Option<i64>| m.map(|m| m.max(0) as usize).unwrap_or(usize::MAX);
    let mut ds: Vec<(usize, &str)> = daemons
        .iter()
        .map(|d| (cap(d.max_accounts), d.id.as_str()))
        .collect();
    ds.sort();
    let mut left = accounts;
    let n = ds.len();
    for (i, (cap, id)) in ds.iter().enumerate() {
        let give = (*cap).min(left.div_ceil(n - i));
        if *id == me {
            return give;
        }
        left -= give;
    }
    max.unwrap_or(usize::MAX).min(accounts)
}

/// Renews the group's leases (and a daemon's registration and outbox claims) on a thread of
/// its own until stopped; on stop, lets every lease of the group go at once.
pub struct Keeper {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Keeper {
    pub fn start(url: StoreUrl, fleet: Arc<Fleet>) -> Keeper {
        let (tx, rx) = mpsc::channel::<()>();
        if fleet.opts.daemon.is_some() {
            crate::store::outbox::renew_claims_every_lease(fleet.opts.secs);
        }
        let every = Duration::from_millis((fleet.opts.secs.max(1) * 1000 / 3).max(500));
        let thread = std::thread::Builder::new()
            .name("lease keeper".into())
            .spawn(move || keep(url, fleet, rx, every))
            .map_err(|e| tracing::error!("cannot start the lease keeper: {e}"))
            .ok();
        Keeper {
            stop: Some(tx),
            thread,
        }
    }

    /// Stops renewing and releases the group's leases (waits for the thread).
    pub async fn stop(mut self) {
        self.stop.take();
        if let Some(t) = self.thread.take() {
            let _ = tokio::task::spawn_blocking(move || t.join()).await;
        }
    }
}

impl Drop for Keeper {
    fn drop(&mut self) {
        self.stop.take();
    }
}

fn keep(url: StoreUrl, fleet: Arc<Fleet>, stop: mpsc::Receiver<()>, every: Duration) {
    let mut store: Option<Store> = None;
    loop {
        if store.is_none() {
            store = Store::open_url(&url)
                .map_err(|e| tracing::warn!("the lease keeper cannot open the store: {e}"))
                .ok();
        }
        if let Some(s) = &store
            && let Err(e) = fleet.beat(s)
        {
            tracing::warn!("cannot renew the sync leases: {e}");
            store = None;
        }
        fleet.beaten.send_replace(true);
        match stop.recv_timeout(every) {
            Err(mpsc::RecvTimeoutError::Timeout) => continue,
            _ => break,
        }
    }
    if let Some(s) = store.or_else(|| Store::open_url(&url).ok()) {
        let _ = s.release_leases(&fleet.group);
        if fleet.opts.daemon.is_some() {
            let _ = s.daemon_gone(&fleet.group);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(id: &str, max: Option<i64>) -> DaemonRow {
        DaemonRow {
            id: id.into(),
            host_id: "h".into(),
            host: "h".into(),
            pid: 1,
            max_accounts: max,
            started_at: "2026-01-01T00:00:00Z".into(),
        }
    }

    #[test]
    fn shares_spread_the_accounts_and_respect_capacity() {
        let three = [d("a", None), d("b", None), d("c", None)];
        let shares: Vec<usize> = ["a", "b", "c"]
            .iter()
            .map(|me| fair_share(me, None, &three, 20))
            .collect();
        assert_eq!(shares.iter().sum::<usize>(), 20);
        assert!(shares.iter().all(|s| (6..=7).contains(s)), "{shares:?}");
        // A small daemon takes its capacity, the others the rest.
        let mixed = [d("a", Some(2)), d("b", None)];
        assert_eq!(fair_share("a", Some(2), &mixed, 4), 2);
        assert_eq!(fair_share("b", None, &mixed, 4), 2);
        assert_eq!(
            fair_share("a", Some(2), &mixed[..1], 4),
            2,
            "alone: capacity"
        );
        assert_eq!(fair_share("x", Some(3), &[], 10), 3, "not registered yet");
    }

    #[test]
    fn slots_stay_within_the_share_and_the_surplus_is_given_up() {
        let f = Fleet::new(LeaseOptions {
            secs: 5,
            daemon: Some(Some(2)),
        });
        assert!(f.take_slot("a") && f.take_slot("b"));
        assert!(!f.take_slot("c"), "full");
        assert!(f.take_slot("a"), "its own slot");
        assert!(!f.give_up("a"), "within the share");
        f.share.store(1, Ordering::Relaxed);
        assert!(f.give_up("a"));
        assert!(!f.give_up("b"), "down to the share");
        f.free_slot("b");
        assert!(f.held().is_empty());
    }
}
