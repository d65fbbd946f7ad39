//! The only module that touches rusqlite. SQLite is the single source of truth for state: sync
//! tasks write it, the console and the headless commands read it. WAL and a busy timeout let a
//! daemon and several consoles share one file.

mod accounts;
mod bodies;
mod checkpointer;
pub mod console;
mod crm;
mod db;
mod fixture;
mod folders;
mod log;
mod messages;
mod ops;
pub mod outbox;
mod quarantine;
mod schema;
mod search;
mod status;
mod triage;

pub use accounts::{AccountRow, AccountState, ErrorInfo, LeaseHolder, process_alive};
pub use bodies::BodyTodo;
pub use checkpointer::Checkpointer;
pub use crm::{BookRows, CustomerRow, MatchInput, MatchRow, MatchUpdate, TimelineRow};
pub use db::{Conn, Db};
pub use fixture::FixtureMessage;
pub use folders::{FolderEntry, FolderRow, FolderSyncState};
pub use log::{AuditReader, AuditRow, EventFilter, EventRow, Level, Visible};
pub use messages::{
    BatchOutcome, BulkInsert, FlagRow, LocationRow, LocationView, MessageFull, MessageSummary,
    NewMessage, PrefetchItem,
};
pub use ops::{OpKind, OpTarget, PendingOp};
pub use outbox::{Change, CopyState, NewOutbox, OutboxRow, OutboxState, ReplyBase};
pub use quarantine::{QuarantineRow, QuarantineState};
pub use search::SearchRow;
pub use status::OutboxCounts;
pub use triage::{
    ActionKind, ActionRow, FolderRef, MessageDetail, MessagePlace, PendingOpRow, TriageFilter,
    TriageRow, TriageState, TriageWindow,
};

use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use crate::error::{AppError, DAMAGED, Result, damaged_fix};

pub struct Store {
    conn: Connection,
}

/// Current time as RFC 3339 UTC with second precision, the format of every time column.
pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

impl Store {
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
                })?;
        }
        let conn = Connection::open(path).map_err(|e| {
            AppError::local(
                format!("cannot open the database {}", path.display()),
                e.to_string(),
                "check the file's permissions",
            )
        })?;
        let opened = Store::configure(conn).and_then(|store| store.migrate().map(|()| store));
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
            ));
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
        })?;
        conn.busy_timeout(Duration::from_secs(5))?;
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(|e| explain_open_error(e.into(), path))?;
        if version as usize > schema::MIGRATIONS.len() {
            return Err(newer_schema(version));
        }
        Ok(Store { conn })
    }

    /// An in-memory store for unit tests.
    pub fn open_in_memory() -> Result<Store> {
        let store = Store::configure(Connection::open_in_memory()?)?;
        store.migrate()?;
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
        Ok(Store { conn })
    }

    fn migrate(&self) -> Result<()> {
        let version: i64 = self
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))?;
        let version = version as usize;
        if version > schema::MIGRATIONS.len() {
            return Err(newer_schema(version as i64));
        }
        for (i, sql) in schema::MIGRATIONS.iter().enumerate().skip(version) {
            // BEGIN IMMEDIATE: two processes starting together must not both apply a step.
            self.conn.execute_batch("BEGIN IMMEDIATE")?;
            let current: i64 = self
                .conn
                .query_row("PRAGMA user_version", [], |r| r.get(0))?;
            if current as usize > i {
                self.conn.execute_batch("COMMIT")?;
                continue;
            }
            let step = self.conn.execute_batch(sql).and_then(|_| {
                self.conn
                    .pragma_update(None, "user_version", (i + 1) as i64)
            });
            match step {
                Ok(()) => self.conn.execute_batch("COMMIT")?,
                Err(e) => {
                    let _ = self.conn.execute_batch("ROLLBACK");
                    return Err(AppError::local(
                        format!("database migration {} failed", i + 1),
                        e.to_string(),
                        "restore a backup of mailroom.db or report this as a bug",
                    ));
                }
            }
        }
        Ok(())
    }

    pub fn schema_version(&self) -> Result<i64> {
        Ok(self
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))?)
    }

    /// Cheap change detector: moves whenever another connection commits (console refresh).
    pub fn data_version(&self) -> Result<i64> {
        Ok(self
            .conn
            .query_row("PRAGMA data_version", [], |r| r.get(0))?)
    }

    /// Runs `f` in one IMMEDIATE transaction: all of it lands, or none of it.
    pub(super) fn transaction<T>(
        &mut self,
        f: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<T>,
    ) -> Result<T> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let out = f(&tx)?;
        tx.commit()?;
        Ok(out)
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
            );
        }
        let damaged = matches!(&e, rusqlite::Error::SqliteFailure(f, _) if matches!(f.code, rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase));
        if damaged {
            return AppError::local(DAMAGED, e.to_string(), damaged_fix("mailroom.db"));
        }
        if busy {
            return AppError::transient(
                "the database is busy",
                e.to_string(),
                "another mailroom process holds a long write; try again",
            );
        }
        AppError::local(
            "database error",
            e.to_string(),
            "run `mailroom status`; if it persists, see docs/troubleshooting.md",
        )
    }
}

fn newer_schema(version: i64) -> AppError {
    AppError::local(
        format!("the database was written by a newer mailroom (schema {version})"),
        "",
        "upgrade mailroom, or use another --home",
    )
}

/// An error opening or first reading the database, told with its path. SQLite reports a full
/// disk while opening (the -shm and -wal files cannot grow) as a plain "disk I/O error": say
/// what it is when the database's file system has no room left.
pub fn explain_open_error(e: AppError, db: &Path) -> AppError {
    if e.summary == crate::error::DAMAGED {
        return AppError::local(
            format!("the database {} is damaged", db.display()),
            e.detail,
            crate::error::damaged_fix(&db.display().to_string()),
        );
    }
    let dir = db.parent().unwrap_or(db);
    match free_bytes(dir) {
        Some(free) if free < DISK_FULL_BELOW && e.summary != "the disk is full" => AppError::local(
            format!("the disk holding {} is full", dir.display()),
            e.detail,
            "free some disk space, then run the command again; nothing was lost",
        ),
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
