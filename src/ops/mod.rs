//! The service layer: one typed operation per thing a user can do. The two faces — the CLI
//! (`cli/`) and the console (`tui/`) — parse input, call an operation and present its typed
//! result; neither holds domain logic of its own, and neither reaches the store, the protocol
//! code or the other face directly (scripts/check-layers keeps it so).
//!
//! Every operation takes one [`Ctx`] (home, store, operator, clock) and returns a typed value or
//! an `AppError`. Every operation that names an account's mail, folders, outbox items, quarantine
//! items or log entries passes [`access`] first: invisible looks exactly like nonexistent.
//!
//! Threads: synchronous operations use the store directly ([`Ctx::store`]); async operations
//! (those that talk to a server) do their store work through [`Ctx::blocking`], so a store call
//! never blocks a tokio worker thread.

pub mod access;
pub mod accounts;
pub mod alerts;
pub mod compose;
pub mod customers;
pub mod deny;
pub mod folders;
pub mod logs;
pub mod mailbox;
pub mod messages;
pub mod operators;
pub mod outbox;
pub mod quarantine;
pub mod search;
pub mod settings;
pub mod signin;
pub mod status;
pub mod store;
pub mod sync;
pub mod system_smtp;
mod thread;
pub mod trace;
pub mod triage;

use std::sync::{Arc, Mutex, OnceLock};

use crate::config::{Config, Home};
use crate::error::{AppError, Result};
use crate::store::{Conn, Db};

/// Where the time comes from: the system clock, or a fixed instant in tests.
#[derive(Clone, Copy, Debug, Default)]
pub enum Clock {
    #[default]
    System,
    Fixed(chrono::DateTime<chrono::Utc>),
}

impl Clock {
    pub fn now(self) -> chrono::DateTime<chrono::Utc> {
        match self {
            Clock::System => chrono::Utc::now(),
            Clock::Fixed(t) => t,
        }
    }
}

/// Everything an operation needs. Cheap to clone (the store and the settings are shared), and
/// `Send + Sync`, so a job on the console's runtime can own one.
#[derive(Clone)]
pub struct Ctx {
    pub home: Home,
    /// Who acts: labels the audit log and decides what is visible ([`access`]).
    pub operator: String,
    pub clock: Clock,
    db: Arc<OnceLock<Db>>,
    config: Arc<Mutex<Option<CachedConfig>>>,
}

/// The settings as last read: parsed again only when config.toml's bytes or (on PostgreSQL)
/// the shared settings' version change.
struct CachedConfig {
    bytes: Option<Vec<u8>>,
    /// Whether this home's store is PostgreSQL (decided by the file's bytes and the process
    /// environment, so known again while the bytes stay).
    postgres: bool,
    version: i64,
    config: Arc<Config>,
}

impl Ctx {
    pub fn new(home: Home, operator: impl Into<String>) -> Ctx {
        Ctx {
            home,
            operator: operator.into(),
            clock: Clock::System,
            db: Arc::new(OnceLock::new()),
            config: Arc::new(Mutex::new(None)),
        }
    }

    /// The same installation acting as another operator (a fresh view of who sees what).
    pub fn as_operator(&self, operator: impl Into<String>) -> Ctx {
        Ctx {
            operator: operator.into(),
            ..self.clone()
        }
    }

    /// The installation's settings. The file is read on every call (it is small) but parsed
    /// only when it changed, so a page load costs no TOML parse.
    pub fn config(&self) -> Result<Arc<Config>> {
        let path = self.home.config_path();
        let bytes = match std::fs::read(&path) {
            Ok(b) => Some(b),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => {
                return Err(AppError::local(
                    format!("cannot read {}", path.display()),
                    e.to_string(),
                    "check the file's permissions",
                )
                .with_code(crate::error::Code::ConfigInvalid));
            }
        };
        let mut cache = self.config.lock().map_err(|_| poisoned())?;
        let postgres = match cache.as_ref() {
            Some(c) if c.bytes == bytes => c.postgres,
            _ => self.home.store_url()?.is_postgres(),
        };
        // On PostgreSQL one cheap query: the shared settings' version.
        let store = if postgres { Some(self.store()?) } else { None };
        let version = match &store {
            Some(s) => s.shared_settings_version()?,
            None => 0,
        };
        if let Some(c) = cache.as_ref()
            && c.bytes == bytes
            && c.version == version
        {
            return Ok(c.config.clone());
        }
        let config = Arc::new(match &store {
            Some(s) => Config::load_with(&self.home, s)?,
            None => Config::load(&self.home)?,
        });
        // A first load on PostgreSQL may move config.toml's shared sections into the
        // database: cache what the file and the version are now.
        let (bytes, version) = match &store {
            Some(s) => (std::fs::read(&path).ok(), s.shared_settings_version()?),
            None => (bytes, version),
        };
        *cache = Some(CachedConfig {
            bytes,
            postgres,
            version,
            config: config.clone(),
        });
        drop(cache);
        // On PostgreSQL row-level security reads who sees each account from the database.
        if store_is_postgres(&config)
            && let Err(e) = self.store().and_then(|s| s.refresh_account_access(&config))
        {
            tracing::warn!(error = %e, "cannot bring account access in line with the settings");
        }
        Ok(config)
    }

    /// The database, created and migrated on first use (which also creates the home).
    pub fn db(&self) -> Result<&Db> {
        if let Some(db) = self.db.get() {
            return Ok(db);
        }
        let url = self.home.store_url()?;
        if !url.is_postgres() {
            self.home.ensure()?;
        }
        let db = Db::open_url(&url)?;
        Ok(self.db.get_or_init(|| db))
    }

    /// A connection for synchronous store work on this thread.
    pub fn store(&self) -> Result<Conn> {
        self.db()?.conn()
    }

    /// Whether this operator may see `acct` at all (own, shared with them, or unowned).
    pub fn sees(&self, acct: &crate::config::AccountConfig) -> bool {
        access::Standing::of(acct, &self.operator).allows(access::Need::Read)
    }

    /// A watch on the database for commits by anyone (another process, or our own jobs).
    pub fn watcher(&self) -> Result<Watcher> {
        Ok(Watcher(self.db()?.dedicated()?))
    }

    pub fn vault(&self) -> Result<crate::secret::Vault> {
        crate::secret::Vault::open(&self.home)
    }

    pub fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.clock.now()
    }

    /// Runs synchronous work (store reads and writes) on tokio's blocking pool with a clone of
    /// this context: how async operations touch the store.
    pub async fn blocking<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Ctx) -> Result<T> + Send + 'static,
    {
        let cx = self.clone();
        tokio::task::spawn_blocking(move || f(&cx))
            .await
            .map_err(|e| {
                AppError::local(
                    "a background task stopped",
                    e.to_string(),
                    "see the debug log (logs/mailroom.log); nothing was half-done",
                )
            })?
    }
}

/// Whether the settings put the store on PostgreSQL (`MAILROOM_STORE` wins, as in
/// `Home::store_url`).
fn store_is_postgres(config: &Config) -> bool {
    let url = std::env::var("MAILROOM_STORE")
        .ok()
        .filter(|u| !u.trim().is_empty())
        .or_else(|| config.store.url.clone())
        .unwrap_or_default();
    url.trim().starts_with("postgres")
}

fn poisoned() -> AppError {
    AppError::local(
        "the settings cache is unusable after a crash in another thread",
        "",
        "restart mailroom",
    )
}

/// Notices commits to the database: a connection of its own that never writes, so every
/// commit — another process's, or one of ours through the pool — moves its version.
pub struct Watcher(crate::store::Store);

impl Watcher {
    /// A number that changes whenever anything committed since it was last read.
    pub fn version(&self) -> Result<i64> {
        self.0.data_version()
    }
}

/// Homes for the service layer's unit tests.
#[cfg(test)]
pub(crate) mod testing {
    use super::Ctx;

    /// A home with two accounts — `work` (id a1) owned by alice and `own` (id e1) owned by
    /// eve — and a context for eve.
    pub fn alice_and_eve() -> (tempfile::TempDir, Ctx) {
        let dir = tempfile::tempdir().unwrap();
        let home = crate::config::Home {
            root: dir.path().to_path_buf(),
        };
        let account = |id: &str, owner: &str| {
            format!(
                "id = \"{id}\"\nemail = \"{id}@example.test\"\nuser = \"{id}@example.test\"\nowner = \"{owner}\"\nimap = {{ host = \"h\", port = 993, security = \"tls\" }}\nsmtp = {{ host = \"h\", port = 587, security = \"starttls\" }}\n"
            )
        };
        std::fs::write(
            home.config_path(),
            format!(
                "[accounts.work]\n{}\n[accounts.own]\n{}",
                account("a1", "alice"),
                account("e1", "eve")
            ),
        )
        .unwrap();
        (dir, Ctx::new(home, "eve"))
    }
}
