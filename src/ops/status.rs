//! `status` and the console's dashboard: every account's health from the database alone, fast
//! enough for a monitoring check over SSH (the CLI opens the database read-only and never waits
//! on the network).
//!
//! The documented exception to visibility (contract: Operators): every operator sees every
//! account's health — name, address, state, counts, errors, never mail — so monitoring works
//! whoever runs it.

use serde::Serialize;

use super::Ctx;
use crate::config::Config;
use crate::error::{AppError, Code, Result};
use crate::store::{StatusRows, Store};

pub use crate::store::{AccountState, AlertSummary, ErrorInfo, OutboxCounts};

#[derive(Debug, Clone, Serialize)]
pub struct Counts {
    pub messages: i64,
    pub unread: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Progress {
    pub folder: String,
    pub done: i64,
    pub total: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Health {
    pub success_rate: Option<f64>,
    pub last_duration_ms: Option<i64>,
    pub bytes: i64,
    pub messages: i64,
}

/// The bodies stored for offline reading (`sync.bodies`), and the space they take.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Bodies {
    pub count: i64,
    pub bytes: i64,
}

/// The process that syncs an account now: the live holder of its lease.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct SyncedBy {
    pub host: String,
    pub host_id: String,
    pub pid: i64,
    pub since: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct AccountStatus {
    pub name: String,
    pub email: String,
    pub enabled: bool,
    pub state: AccountState,
    pub insecure: bool,
    pub last_success_at: Option<String>,
    pub last_error: Option<ErrorInfo>,
    pub counts: Counts,
    pub progress: Option<Progress>,
    pub health: Health,
    pub outbox: OutboxCounts,
    pub unmatched: i64,
    pub bodies: Bodies,
    /// Who syncs it now (null: nobody holds its lease).
    pub synced_by: Option<SyncedBy>,
    /// Why nobody syncs it: "waiting for a sync slot" (every daemon is at its capacity).
    pub waiting: Option<String>,
}

/// The worst state of the enabled accounts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Overall {
    Healthy,
    Degraded,
    Failing,
}

impl Overall {
    pub fn as_str(self) -> &'static str {
        match self {
            Overall::Healthy => "healthy",
            Overall::Degraded => "degraded",
            Overall::Failing => "failing",
        }
    }

    /// `status`'s exit code (contract: 0 healthy, 1 degraded, 2 failing).
    pub fn exit_code(self) -> i32 {
        match self {
            Overall::Healthy => 0,
            Overall::Degraded => 1,
            Overall::Failing => 2,
        }
    }
}

impl std::fmt::Display for Overall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub overall: Overall,
    pub accounts: Vec<AccountStatus>,
    /// Alerts that did not get out (retrying, or given up): `mailroom alerts list`.
    pub alerts: AlertSummary,
}

/// Why `status` could not answer: a failure as any command's (exit 1: its settings, no account
/// configured), or it cannot look at all (exit 3: no home, or a database it cannot read), so
/// monitoring tells "cannot look" apart from "failing".
#[derive(Debug)]
pub enum StatusError {
    Failed(AppError),
    CannotRead(AppError),
}

/// `mailroom status`: the database opened read-only (never created, migrated or waited on),
/// and nothing created when the home is missing.
pub fn read(cx: &Ctx) -> std::result::Result<Status, StatusError> {
    cx.home.require().map_err(StatusError::CannotRead)?;
    let url = cx.home.store_url().map_err(StatusError::Failed)?;
    let unreadable = |e: AppError| {
        StatusError::CannotRead(AppError {
            summary: format!("cannot read the database: {}", e.summary),
            ..e
        })
    };
    // On PostgreSQL the settings come from the database too: one that cannot be reached is
    // "cannot look" (3), a setting that is wrong is a failure (1).
    let config = cx.config().map_err(|e| match e.code {
        Code::ConfigInvalid | Code::ConfigSplit => StatusError::Failed(e),
        _ if url.is_postgres() => unreadable(e),
        _ => StatusError::Failed(e),
    })?;
    if config.accounts.is_empty() {
        return Err(StatusError::Failed(no_accounts(cx)));
    }
    let store = match &url {
        crate::config::StoreUrl::Sqlite(db) if !db.exists() => None,
        url => Some(Store::open_url_read_only(url).map_err(unreadable)?),
    };
    collect(&config, store.as_ref()).map_err(|e| match &url {
        crate::config::StoreUrl::Sqlite(db) => unreadable(crate::store::explain_open_error(e, db)),
        crate::config::StoreUrl::Postgres(_) => unreadable(e),
    })
}

/// A home without accounts: nothing to monitor is not "healthy".
fn no_accounts(cx: &Ctx) -> AppError {
    AppError::needs_user(
        "no accounts configured",
        format!("{} lists no account", cx.home.config_path().display()),
        "add one with `mailroom account add NAME --email … --imap … --smtp …` (or check --home)",
    )
    .with_code(Code::AccountsNone)
}

/// The console's dashboard: the same model through the console's pooled connection.
pub fn dashboard(cx: &Ctx) -> Result<Status> {
    let config = cx.config()?;
    let store = cx.store()?;
    collect(&config, Some(&store))
}

/// Every configured account's status (none of them hidden: see the module's note).
pub fn collect(config: &Config, store: Option<&Store>) -> Result<Status> {
    let own: Vec<String> = crate::crm::matching::own_addresses(config)
        .into_iter()
        .collect();
    let (leases, waiting) = match store {
        // A database not migrated yet (status never migrates) has no such columns: nobody.
        Some(s) => (
            s.live_leases().unwrap_or_default(),
            s.waiting().unwrap_or_default(),
        ),
        None => Default::default(),
    };
    // Every account's rows in a few queries; a database not migrated yet is asked account by
    // account instead (those questions know how to answer without the newer tables).
    let mut bulk = store.and_then(|s| s.status_rows(&own).ok());
    let mut accounts = Vec::new();
    for (name, a) in &config.accounts {
        let mut st = match (store, bulk.as_mut()) {
            (Some(s), Some(all)) => account_status(s, name, a, rows_from(all, &a.id))?,
            (Some(s), None) => account_status(s, name, a, rows_one(s, &a.id, &own)?)?,
            (None, _) => never_synced(name, a),
        };
        st.synced_by = leases.get(&a.id).map(|h| SyncedBy {
            host: h.host.clone(),
            host_id: h.host_id.clone(),
            pid: h.pid,
            since: h.since.clone(),
        });
        if st.synced_by.is_none() && a.enabled {
            st.waiting = waiting.get(&a.id).cloned();
        }
        accounts.push(st);
    }
    let overall = overall(&accounts);
    let alerts = match store {
        Some(s) => s.alert_summary()?,
        None => AlertSummary::default(),
    };
    Ok(Status {
        overall,
        accounts,
        alerts,
    })
}

/// What the database holds of one account, however it was read.
struct Rows {
    row: Option<crate::store::AccountRow>,
    counts: Counts,
    outbox: crate::store::OutboxCounts,
    unmatched: i64,
    bodies: (i64, i64),
}

/// One account's rows from the rows of all (`Store::status_rows`).
fn rows_from(all: &mut StatusRows, id: &str) -> Rows {
    let (messages, unread, queued) = all
        .counts
        .get(id)
        .map(|c| (c.messages, c.unread, c.queued))
        .unwrap_or_default();
    Rows {
        row: all.accounts.remove(id),
        counts: Counts { messages, unread },
        outbox: all.outbox.remove(id).unwrap_or_default(),
        unmatched: queued - all.own_queued.get(id).copied().unwrap_or(0),
        bodies: all.bodies.get(id).copied().unwrap_or_default(),
    }
}

/// One account's rows, asked one by one.
fn rows_one(s: &Store, id: &str, own: &[String]) -> Result<Rows> {
    let (messages, unread) = s.account_counts(id)?;
    Ok(Rows {
        row: s.account(id)?,
        counts: Counts { messages, unread },
        outbox: s.outbox_counts(id)?,
        // The triage queue's own rule (own addresses and aliases, Sent/Drafts/Trash/Junk
        // excluded), so status and `triage list` always agree.
        unmatched: s.triage_count(&crate::store::TriageFilter {
            accounts: vec![id.to_string()],
            own: own.to_vec(),
        })?,
        bodies: s.account_bodies(id)?,
    })
}

/// One account as the database knows it.
fn account_status(
    s: &Store,
    name: &str,
    a: &crate::config::AccountConfig,
    rows: Rows,
) -> Result<AccountStatus> {
    let mut st = never_synced(name, a);
    st.counts = rows.counts;
    st.outbox = rows.outbox;
    st.unmatched = rows.unmatched;
    let Some(r) = rows.row else { return Ok(st) };
    if a.enabled {
        st.state = r.state;
    }
    let (count, bytes) = rows.bodies;
    st.bodies = Bodies { count, bytes };
    st.last_success_at = r.last_success_at.clone();
    st.last_error = r.last_error.clone().filter(|e| is_current(e, &r));
    st.progress = r.progress.clone().map(|(folder, done, total)| Progress {
        folder,
        done,
        total,
    });
    st.health = Health {
        success_rate: (r.runs_total > 0).then(|| r.runs_ok as f64 / r.runs_total as f64),
        last_duration_ms: r.last_duration_ms,
        bytes: r.bytes_total,
        messages: r.messages_total,
    };
    if st.state == AccountState::Syncing && s.sync_holder_gone(&a.id)? {
        // The pass ended without recording how: killed, or the disk was too full to write
        // its outcome. "syncing" would be a lie, and "healthy" with it.
        st.state = AccountState::Degraded;
        st.progress = None;
        st.last_error = Some(ErrorInfo {
            at: r.state_since.clone(),
            what: "the last sync stopped without recording how it ended".into(),
            fix: format!(
                "check free disk space (a full disk refuses that record too), then run `mailroom sync {name}`"
            ),
        });
    }
    Ok(st)
}

/// Whether an account's last error still tells its state: it is failing, or nothing succeeded
/// after the error. A success clears the error (store::record_success); this also hides one
/// that an older mailroom left behind. The log keeps every error.
fn is_current(e: &ErrorInfo, r: &crate::store::AccountRow) -> bool {
    matches!(
        r.state,
        AccountState::Degraded | AccountState::Disconnected | AccountState::Error
    ) || r
        .last_success_at
        .as_deref()
        .is_none_or(|ok| e.at.as_str() > ok)
}

/// An account the database knows nothing of yet.
fn never_synced(name: &str, a: &crate::config::AccountConfig) -> AccountStatus {
    AccountStatus {
        name: name.to_string(),
        email: a.email.clone(),
        enabled: a.enabled,
        state: if a.enabled {
            AccountState::Pending
        } else {
            AccountState::Disabled
        },
        insecure: a.insecure_skip_verify,
        last_success_at: None,
        last_error: None,
        counts: Counts {
            messages: 0,
            unread: 0,
        },
        progress: None,
        health: Health {
            success_rate: None,
            last_duration_ms: None,
            bytes: 0,
            messages: 0,
        },
        outbox: OutboxCounts::default(),
        unmatched: 0,
        bodies: Bodies::default(),
        synced_by: None,
        waiting: None,
    }
}

/// healthy / degraded / failing: the worst of the enabled accounts.
fn overall(accounts: &[AccountStatus]) -> Overall {
    accounts
        .iter()
        .filter(|a| a.enabled)
        .map(|a| match a.state {
            AccountState::Error => Overall::Failing,
            AccountState::Degraded | AccountState::Disconnected => Overall::Degraded,
            _ if a.outbox.uncertain > 0 => Overall::Degraded,
            _ => Overall::Healthy,
        })
        .max()
        .unwrap_or(Overall::Healthy)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = r#"[accounts.w]
id = "a1"
email = "w@example.test"
user = "w@example.test"
owner = "alice"
imap = { host = "127.0.0.1", port = 1993, security = "tls" }
smtp = { host = "127.0.0.1", port = 1587, security = "starttls" }
"#;

    fn config() -> Config {
        toml::from_str(CONFIG).unwrap()
    }

    #[test]
    fn syncing_without_a_live_holder_is_reported_degraded_with_a_fix() {
        let mut store = Store::open_in_memory().unwrap();
        store.insert_account("a1", "w", true).unwrap();
        store.set_state("a1", AccountState::Syncing).unwrap();
        store.set_progress("a1", "INBOX", 2000, 3000).unwrap();
        // While this (live) process holds the lease, the state is what the row says.
        assert!(store.acquire_lease("a1", "t", 60).unwrap().is_ok());
        let st = collect(&config(), Some(&store)).unwrap();
        assert_eq!(st.accounts[0].state, AccountState::Syncing);
        assert!(st.accounts[0].progress.is_some());
        // The holder is gone without recording the end of its pass (full disk, kill -9).
        store.release_lease("a1", "t").unwrap();
        let st = collect(&config(), Some(&store)).unwrap();
        let a = &st.accounts[0];
        assert_eq!(a.state, AccountState::Degraded);
        assert_eq!(st.overall, Overall::Degraded);
        assert!(a.progress.is_none());
        let e = a.last_error.as_ref().unwrap();
        assert!(
            e.fix.contains("disk space") && e.fix.contains("mailroom sync w"),
            "{e:?}"
        );
    }

    #[test]
    fn status_says_who_syncs_each_account_and_what_waits_for_a_slot() {
        let mut store = Store::open_in_memory().unwrap();
        store.insert_account("a1", "w", true).unwrap();
        let st = collect(&config(), Some(&store)).unwrap();
        assert_eq!(st.accounts[0].synced_by, None);
        store
            .set_waiting("a1", Some(crate::sync::WAITING_FOR_SLOT))
            .unwrap();
        let st = collect(&config(), Some(&store)).unwrap();
        let v = serde_json::to_value(&st.accounts[0]).unwrap();
        assert_eq!(v["waiting"], "waiting for a sync slot");
        assert!(v["synced_by"].is_null());
        assert!(store.acquire_lease("a1", "t", 60).unwrap().is_ok());
        let st = collect(&config(), Some(&store)).unwrap();
        let by = st.accounts[0].synced_by.clone().unwrap();
        assert_eq!(by.host_id, crate::config::host::id());
        assert_eq!(by.pid, std::process::id() as i64);
        assert_eq!(st.accounts[0].waiting, None, "taken: it waits no more");
    }

    #[test]
    fn every_operator_sees_every_accounts_health() {
        let dir = tempfile::tempdir().unwrap();
        let home = crate::config::Home {
            root: dir.path().to_path_buf(),
        };
        std::fs::write(home.config_path(), CONFIG).unwrap();
        let eve = Ctx::new(home, "eve");
        let st = dashboard(&eve).unwrap();
        assert_eq!(st.accounts.len(), 1, "alice's account, seen by eve");
        assert_eq!(st.accounts[0].name, "w");
        assert_eq!(st.accounts[0].state, AccountState::Pending);
        assert_eq!(
            serde_json::to_value(&st).unwrap()["overall"],
            serde_json::json!("healthy")
        );
    }
}
