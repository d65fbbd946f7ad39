//! The only module that touches rusqlite. SQLite is the single source of truth for state: sync
//! tasks write it, the console and the headless commands read it. WAL and a busy timeout let a
//! daemon and several consoles share one file.

mod accounts;
mod alerts;
mod bodies;
mod checkpointer;
pub mod console;
mod copy;
mod counts;
mod crm;
mod db;
mod drafts;
mod fixture;
mod folders;
mod leases;
mod log;
mod mailbox;
mod messages;
pub mod oauth;
mod ops;
pub mod outbox;
mod quarantine;
pub mod roles;
mod schema;
mod schema_pg;
mod search;
mod settings;
pub mod sql;
mod status;
mod trace;
mod triage;

pub use accounts::{AccountRow, AccountState, ErrorInfo};
pub use alerts::{
    AlertEventRow, AlertFailure, AlertSummary, AlertTx, DeliveryRow, Failure, Finish, LastDelivery,
    NewAlertEvent,
};
pub use bodies::BodyTodo;
pub use checkpointer::Checkpointer;
pub use copy::TableCount;
pub use counts::AccountCounts;
pub use crm::{
    BookRows, CustomerRow, HoldersWanted, MatchInput, MatchRow, MatchUpdate, TimelineKey,
    TimelineRow, TimelineWindow,
};
pub use db::{Conn, Db};
pub use drafts::{DraftRow, NewDraft};
pub use fixture::FixtureMessage;
pub use folders::{FolderEntry, FolderRow, FolderSyncState};
pub use leases::{DaemonRow, LeaseHolder, after as secs_from_now, hostname, process_alive};
pub use log::{AuditReader, AuditRow, EventFilter, EventRow, Level, Visible};
pub use mailbox::{ChangeRow, Key, MailRow, OpenChanges, Window};
pub use messages::{
    BatchOutcome, BulkInsert, FlagRow, LocationRow, LocationView, MessageFull, MessageSummary,
    NewMessage, PrefetchItem, WholeBody,
};
pub use oauth::OAuthRow;
pub use ops::{OpKind, OpTarget, PendingOp};
pub use outbox::{Change, CopyState, NewOutbox, OutboxRow, OutboxState, ReplyBase, SentFiling};
pub use quarantine::{QuarantineRow, QuarantineState};
pub use search::SearchFilter;
pub use settings::SharedDoc;
pub use status::{OutboxCounts, StatusRows};
pub use trace::{NewTraceLine, TRACE_RING, TraceFilter, TraceRow, TraceSetting};
pub use triage::{
    ActionKind, ActionRow, FolderRef, MessageDetail, MessagePlace, PendingOpRow, TriageFilter,
    TriageRow, TriageState, TriageWindow,
};

use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use crate::error::{AppError, Code, DAMAGED, Result, damaged_fix};

pub struct Store {
    conn: sql::Conn,
}

/// Current time as RFC 3339 UTC with second precision, the format of every time column.
pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

impl Store {
    /// Opens (creating and migrating) the store at `url`: the SQLite file, or the PostgreSQL
    /// database.
    pub fn open_url(url: &crate::config::StoreUrl) -> Result<Store> {
        match url {
            crate::config::StoreUrl::Sqlite(path) => Store::open(path),
            crate::config::StoreUrl::Postgres(u) => Store::open_postgres(u, true),
        }
    }

    /// Opens the store at `url` to read: never creates or migrates it (`status`).
    pub fn open_url_read_only(url: &crate::config::StoreUrl) -> Result<Store> {
        match url {
            crate::config::StoreUrl::Sqlite(path) => Store::open_read_only(path),
            crate::config::StoreUrl::Postgres(u) => Store::open_postgres(u, false),
        }
    }

    /// Connects to a PostgreSQL store; with `migrate`, brings its schema up to date first.
    fn open_postgres(url: &str, migrate: bool) -> Result<Store> {
        let mut pg = sql::PgConn::connect(sql::pg_config(url)?)?;
        pg.url = Some(url.to_string());
        let conn = sql::Conn::Pg(pg);
        let store = Store { conn };
        if migrate {
            store.migrate_postgres()?;
        } else {
            let v = store.schema_version()?;
            if v as usize > schema::MIGRATIONS.len() {
                return Err(newer_schema(v));
            }
        }
        Ok(store)
    }

    /// The PostgreSQL twin of `migrate`: one migrator at a time across every host (an advisory
    /// lock held by the transaction), each step and its version number committed together.
    fn migrate_postgres(&self) -> Result<()> {
        // Up to date: nothing to lock or create (an operator's role may create nothing).
        if self.schema_version()? == schema_pg::MIGRATIONS.len() as i64 {
            return Ok(());
        }
        self.conn.tx(|| {
            self.conn
                .exec("SELECT pg_advisory_xact_lock(7420017)", &[])?;
            self.conn.batch(
                "CREATE TABLE IF NOT EXISTS mailroom_schema (version BIGINT NOT NULL);
                 INSERT INTO mailroom_schema (version)
                     SELECT 0 WHERE NOT EXISTS (SELECT 1 FROM mailroom_schema)",
            )?;
            let version = self.schema_version()? as usize;
            if version > schema_pg::MIGRATIONS.len() {
                return Err(newer_schema(version as i64));
            }
            for (i, step) in schema_pg::MIGRATIONS.iter().enumerate().skip(version) {
                self.conn.batch(step).map_err(|e| {
                    AppError::local(
                        format!("database migration {} failed", i + 1),
                        e.detail,
                        "restore a backup of the database or report this as a bug",
                    )
                    .with_code(Code::DbFailed)
                })?;
                self.conn.exec(
                    "UPDATE mailroom_schema SET version = ?1",
                    crate::args![(i + 1) as i64],
                )?;
            }
            // Tables a step added are the operators' to read too (their policies came with it).
            if version >= 13 {
                self.regrant_operators()?;
            }
            Ok(())
        })
    }

    /// Which engine this store runs on.
    pub fn engine(&self) -> sql::Engine {
        self.conn.engine()
    }

    /// Opens (creating 0600 if missing) and migrates the database.
    pub fn open(path: &Path) -> Result<Store> {
        if !path.exists() {
            // Create the file ourselves so its mode is 0600; SQLite gives -wal/-shm the same mode.
            std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o600)
                .open(path)
                .map_err(|e| {
                    AppError::local(
                        format!("cannot create the database {}", path.display()),
                        e.to_string(),
                        "choose a writable --home",
                    )
                    .with_code(Code::DbUnreadable)
                })?;
        }
        let conn = Connection::open(path).map_err(|e| {
            AppError::local(
                format!("cannot open the database {}", path.display()),
                e.to_string(),
                "check the file's permissions",
            )
            .with_code(Code::DbUnreadable)
        })?;
        let opened = Store::configure(conn).and_then(|store| {
            store.migrate()?;
            store.install_fill_trigger()?;
            Ok(store)
        });
        opened.map_err(|e| explain_open_error(e, path))
    }

    /// Opens read-only and refuses to create or migrate: what `status` uses, so it never waits
    /// on a writer and never changes anything.
    pub fn open_read_only(path: &Path) -> Result<Store> {
        if !path.exists() {
            return Err(AppError::local(
                format!("no database at {}", path.display()),
                "",
                "add an account first, or pass the right --home",
            )
            .with_code(Code::DbUnreadable));
        }
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| {
            AppError::local(
                format!("cannot open the database {}", path.display()),
                e.to_string(),
                "check the file's permissions",
            )
            .with_code(Code::DbUnreadable)
        })?;
        conn.busy_timeout(Duration::from_secs(5))?;
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(|e| explain_open_error(e.into(), path))?;
        if version as usize > schema::MIGRATIONS.len() {
            return Err(newer_schema(version));
        }
        Ok(Store {
            conn: sql::Conn::Lite(conn),
        })
    }

    /// An in-memory store for unit tests.
    pub fn open_in_memory() -> Result<Store> {
        let store = Store::configure(Connection::open_in_memory()?)?;
        store.migrate()?;
        store.install_fill_trigger()?;
        Ok(store)
    }

    fn configure(conn: Connection) -> Result<Store> {
        conn.busy_timeout(Duration::from_secs(10))?;
        // Only takes effect when the file is created (an existing WAL database keeps its page
        // size). 8 KiB pages cut a 100k first sync's CPU by ~8 % against 4 KiB (fewer page
        // splits and WAL frames) at no cost for reads (scripts/bench).
        conn.pragma_update(None, "page_size", 8192)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        Ok(Store {
            conn: sql::Conn::Lite(conn),
        })
    }

    /// SQLite's migrations (PostgreSQL's run when it opens).
    fn migrate(&self) -> Result<()> {
        let Some(conn) = self.conn.lite() else {
            return Ok(());
        };
        let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        let version = version as usize;
        if version > schema::MIGRATIONS.len() {
            return Err(newer_schema(version as i64));
        }
        for (i, sql) in schema::MIGRATIONS.iter().enumerate().skip(version) {
            // BEGIN IMMEDIATE: two processes starting together must not both apply a step.
            conn.execute_batch("BEGIN IMMEDIATE")?;
            let current: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
            if current as usize > i {
                conn.execute_batch("COMMIT")?;
                continue;
            }
            let step = conn
                .execute_batch(sql)
                .and_then(|_| conn.pragma_update(None, "user_version", (i + 1) as i64));
            match step {
                Ok(()) => conn.execute_batch("COMMIT")?,
                Err(e) => {
                    let _ = conn.execute_batch("ROLLBACK");
                    return Err(AppError::local(
                        format!("database migration {} failed", i + 1),
                        e.to_string(),
                        "restore a backup of mailroom.db or report this as a bug",
                    )
                    .with_code(Code::DbFailed));
                }
            }
        }
        Ok(())
    }

    /// Where this store is, to open it again elsewhere (a pool of its own): the SQLite file
    /// or the PostgreSQL URL; None for an in-memory store.
    pub fn url(&self) -> Option<crate::config::StoreUrl> {
        match &self.conn {
            sql::Conn::Lite(_) => self.path().map(crate::config::StoreUrl::Sqlite),
            sql::Conn::Pg(p) => p.url().map(|u| crate::config::StoreUrl::Postgres(u.into())),
        }
    }

    /// The database file this connection has open (None for an in-memory store).
    pub fn path(&self) -> Option<std::path::PathBuf> {
        self.conn
            .lite()
            .and_then(|c| c.path())
            .filter(|p| !p.is_empty())
            .map(std::path::PathBuf::from)
    }

    pub fn schema_version(&self) -> Result<i64> {
        match &self.conn {
            sql::Conn::Lite(c) => Ok(c.query_row("PRAGMA user_version", [], |r| r.get(0))?),
            sql::Conn::Pg(_) => {
                let exists: bool = self.conn.one(
                    "SELECT to_regclass('mailroom_schema') IS NOT NULL",
                    &[],
                    |r| r.get(0),
                )?;
                if !exists {
                    return Ok(0);
                }
                Ok(self
                    .conn
                    .first("SELECT version FROM mailroom_schema", &[], |r| r.get(0))?
                    .unwrap_or(0))
            }
        }
    }

    /// Cheap change detector: moves whenever another connection commits (console refresh).
    /// SQLite counts other connections' commits (`PRAGMA data_version`); on PostgreSQL this
    /// connection LISTENs to the tables' change notifications (the first call subscribes).
    pub fn data_version(&self) -> Result<i64> {
        match &self.conn {
            sql::Conn::Lite(c) => Ok(c.query_row("PRAGMA data_version", [], |r| r.get(0))?),
            sql::Conn::Pg(p) => Ok(p.notifications()? as i64),
        }
    }
}

/// SQLite's failures in the words of the rest of mailroom: what failed and how to fix it.
impl From<rusqlite::Error> for AppError {
    fn from(e: rusqlite::Error) -> Self {
        let busy = matches!(&e, rusqlite::Error::SqliteFailure(f, _) if matches!(f.code, rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked));
        let full = matches!(&e, rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::DiskFull);
        if full {
            return AppError::local(
                "the disk is full",
                e.to_string(),
                "free some disk space; nothing was lost, the last change was rolled back",
            )
            .with_code(Code::DiskFull);
        }
        let damaged = matches!(&e, rusqlite::Error::SqliteFailure(f, _) if matches!(f.code, rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase));
        if damaged {
            return AppError::local(DAMAGED, e.to_string(), damaged_fix("mailroom.db"))
                .with_code(Code::DbDamaged);
        }
        if busy {
            return AppError::transient(
                "the database is busy",
                e.to_string(),
                "another mailroom process holds a long write; try again",
            )
            .with_code(Code::DbBusy);
        }
        AppError::local(
            "database error",
            e.to_string(),
            "run `mailroom status`; if it persists, see docs/troubleshooting.md",
        )
        .with_code(Code::DbFailed)
    }
}

fn newer_schema(version: i64) -> AppError {
    AppError::local(
        format!("the database was written by a newer mailroom (schema {version})"),
        "",
        "upgrade mailroom, or use another --home",
    )
    .with_code(Code::DbNewer)
}

/// An error opening or first reading the database, told with its path. SQLite reports a full
/// disk while opening (the -shm and -wal files cannot grow) as a plain "disk I/O error": say
/// what it is when the database's file system has no room left.
pub fn explain_open_error(e: AppError, db: &Path) -> AppError {
    if e.code == Code::DbDamaged {
        return AppError::local(
            format!("the database {} is damaged", db.display()),
            e.detail,
            crate::error::damaged_fix(&db.display().to_string()),
        )
        .with_code(Code::DbDamaged);
    }
    let dir = db.parent().unwrap_or(db);
    match free_bytes(dir) {
        Some(free) if free < DISK_FULL_BELOW && e.code != Code::DiskFull => AppError::local(
            format!("the disk holding {} is full", dir.display()),
            e.detail,
            "free some disk space, then run the command again; nothing was lost",
        )
        .with_code(Code::DiskFull),
        _ => e,
    }
}

/// Below this, SQLite cannot even map its shared-memory index.
const DISK_FULL_BELOW: u64 = 64 * 1024;

/// Bytes an unprivileged process may still write on the file system holding `dir`.
fn free_bytes(dir: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::zeroed();
    // SAFETY: `c` is a NUL-terminated path and `st` a writable statvfs that the call fills.
    let rc = unsafe { libc::statvfs(c.as_ptr(), st.as_mut_ptr()) };
    if rc != 0 {
        return None;
    }
    // SAFETY: statvfs returned 0, so it filled the struct.
    let st = unsafe { st.assume_init() };
    Some(st.f_bavail.saturating_mul(st.f_frsize))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrates_to_latest_and_reopens() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let s = Store::open(&path).unwrap();
        assert_eq!(
            s.schema_version().unwrap() as usize,
            schema::MIGRATIONS.len()
        );
        drop(s);
        let s = Store::open(&path).unwrap();
        assert_eq!(
            s.schema_version().unwrap() as usize,
            schema::MIGRATIONS.len()
        );
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(&path).unwrap().permissions(),
        );
        assert_eq!(mode & 0o777, 0o600);
        let ro = Store::open_read_only(&path).unwrap();
        assert!(ro.data_version().is_ok());
    }
}

#[cfg(test)]
mod watch_tests {
    use super::*;

    /// The console's change watcher: another connection's commit moves the version, on
    /// SQLite (`data_version`) and PostgreSQL (LISTEN/NOTIFY) alike.
    #[test]
    fn another_connections_commit_moves_the_data_version() {
        let dir = tempfile::tempdir().unwrap();
        let lite = Store::open(&dir.path().join("w.db")).unwrap();
        let pg = sql::engines::PgScratch::new();
        let pg_store = pg
            .as_ref()
            .map(|p| Store::open_url(&crate::config::StoreUrl::Postgres(p.url.clone())).unwrap());
        for watcher in std::iter::once(&lite).chain(pg_store.as_ref()) {
            let writer = watcher.reopen_plain().unwrap();
            let before = watcher.data_version().unwrap();
            assert_eq!(watcher.data_version().unwrap(), before, "nothing committed");
            writer.customer_insert("Probe", None, None).unwrap();
            let deadline = std::time::Instant::now() + Duration::from_secs(2);
            while watcher.data_version().unwrap() == before {
                assert!(
                    std::time::Instant::now() < deadline,
                    "{:?}: no change seen",
                    watcher.engine()
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

/// Test support: store tests that run on each engine (the conformance suite). SQLite always;
/// PostgreSQL when `MAILROOM_TEST_PG_URL` names a server (scripts/test sets it, and requires
/// it), each run on a database of its own.
#[cfg(test)]
pub mod testing {
    use super::*;

    pub fn each(body: impl Fn(&mut Store)) {
        let mut lite = Store::open_in_memory().unwrap();
        body(&mut lite);
        if let Some(pg) = sql::engines::PgScratch::new() {
            let mut store = Store::open_postgres(&pg.url, true).unwrap();
            body(&mut store);
        }
    }
}
