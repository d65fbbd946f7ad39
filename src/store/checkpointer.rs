//! Copies a bulk writer's WAL back into the database file on a thread and connection of its
//! own. Left to SQLite's auto-checkpoint, the sync writer itself stopped every few batches to
//! read its WAL frames back, write them into the database and fsync — a fifth of a 100k first
//! sync, all on the one thread every other step waits for. A PASSIVE checkpoint never blocks
//! the writer (it copies what was committed when it started), and when it has caught up the
//! writer's next transaction starts the WAL from the beginning again, so the file stays small.
//!
//! SQLite only: PostgreSQL checkpoints on its own, so there a Checkpointer is a no-op (no thread,
//! no connection).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError, sync_channel};
use std::thread::JoinHandle;

use super::Store;
use super::sql::Engine;
use crate::error::{AppError, Result};

pub struct Checkpointer {
    wake: Option<SyncSender<()>>,
    handle: Option<JoinHandle<()>>,
    /// Checkpoints run so far (successful or not).
    runs: Arc<AtomicU64>,
}

impl Checkpointer {
    /// Starts the thread with its own connection to `store`'s database file (on PostgreSQL:
    /// nothing to start).
    pub fn start(store: &Store) -> Result<Checkpointer> {
        let runs = Arc::new(AtomicU64::new(0));
        if store.engine() == Engine::Postgres {
            return Ok(Checkpointer {
                wake: None,
                handle: None,
                runs,
            });
        }
        let own = store.reopen_plain()?;
        // One pending wake-up is enough: a checkpoint copies everything committed so far.
        let (wake, rx) = sync_channel::<()>(1);
        let counted = runs.clone();
        let handle = std::thread::Builder::new()
            .name("sync-checkpoint".into())
            .spawn(move || {
                for () in rx {
                    // Failing here costs nothing but WAL size: the next checkpoint (ours, or
                    // any connection's automatic one) copies the same frames.
                    if let Err(e) = own.checkpoint_passive() {
                        tracing::debug!("passive checkpoint failed: {e}");
                    }
                    counted.fetch_add(1, Ordering::Release);
                }
            })
            .map_err(|e| {
                AppError::local(
                    "cannot start the checkpoint thread",
                    e.to_string(),
                    "check system limits (threads)",
                )
            })?;
        Ok(Checkpointer {
            wake: Some(wake),
            handle: Some(handle),
            runs,
        })
    }

    /// How many checkpoints the thread has run.
    pub fn runs(&self) -> u64 {
        self.runs.load(Ordering::Acquire)
    }

    /// Asks for a checkpoint of what has been committed (after each batch).
    pub fn poke(&self) {
        if let Some(w) = &self.wake {
            match w.try_send(()) {
                Ok(()) | Err(TrySendError::Full(())) | Err(TrySendError::Disconnected(())) => {}
            }
        }
    }
}

impl Drop for Checkpointer {
    /// Lets a running checkpoint finish and closes the connection.
    fn drop(&mut self) {
        self.wake.take();
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

impl Store {
    /// `PRAGMA wal_checkpoint(PASSIVE)`: copies committed frames without waiting for anyone
    /// (SQLite; PostgreSQL has nothing to copy back).
    pub fn checkpoint_passive(&self) -> Result<()> {
        match self.conn.engine() {
            Engine::Sqlite => self
                .conn
                .each("PRAGMA wal_checkpoint(PASSIVE)", &[], |_| Ok(())),
            Engine::Postgres => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args;

    /// A writer's page cache grows with the database it writes into: the floor for an empty
    /// store, more for a large one, never past the ceiling.
    #[test]
    fn a_writer_s_page_cache_follows_the_database_s_size() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let main = Store::open(&path).unwrap();
        let cache_kib = |s: &Store| -> i64 {
            -s.conn
                .lite()
                .unwrap()
                .query_row("PRAGMA cache_size", [], |r| r.get::<_, i64>(0))
                .unwrap()
        };
        // A new store is its schema: well under a megabyte.
        let empty = cache_kib(&main.reopen().unwrap());
        assert!((16 * 1024..17 * 1024).contains(&empty), "{empty} KiB");
        let blob = vec![7u8; 1 << 20];
        main.conn
            .tx(|| {
                for _ in 0..16 {
                    main.conn.exec(
                        "INSERT INTO events (at, level, what, detail) VALUES ('t', 'info', 's', ?1)",
                        args![blob],
                    )?;
                }
                Ok(())
            })
            .unwrap();
        // 16 MB of data: 16 MB + 2 MB.
        let grown = cache_kib(&main.reopen().unwrap());
        assert!((18 * 1024..19 * 1024).contains(&grown), "{grown} KiB");
        // A large store (not written here: it would take seconds) stops at the ceiling.
        assert_eq!(crate::store::messages::writer_cache_kib(1 << 30), 32 * 1024);
    }

    #[test]
    fn keeps_the_wal_small_while_a_writer_without_autocheckpoint_commits() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let main = Store::open(&path).unwrap();
        let mut writer = main.reopen().unwrap();
        let wal = dir.path().join("t.db-wal");
        let blob = vec![7u8; 64 * 1024];
        let commit_many = |w: &mut Store, ck: Option<&Checkpointer>| {
            for _ in 0..40 {
                w.conn
                    .tx(|| {
                        for _ in 0..8 {
                            w.conn.exec(
                                "INSERT INTO events (at, level, what, detail) VALUES ('t', 'info', 's', ?1)",
                                args![blob],
                            )?;
                        }
                        Ok(())
                    })
                    .unwrap();
                if let Some(c) = ck {
                    // As the next fetched batch would leave it time to, let it finish.
                    let before = c.runs();
                    c.poke();
                    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
                    while c.runs() == before {
                        assert!(std::time::Instant::now() < deadline, "no checkpoint ran");
                        std::thread::yield_now();
                    }
                }
            }
        };
        // Without a checkpointer the bulk writer's WAL grows with every batch...
        commit_many(&mut writer, None);
        let grown = std::fs::metadata(&wal).unwrap().len();
        assert!(grown > 20 << 20, "WAL {grown} bytes");
        main.checkpoint_passive().unwrap();
        // ...with one, it is copied back and restarted from the beginning.
        let ck = Checkpointer::start(&main).unwrap();
        let before = std::fs::metadata(&wal).unwrap().len();
        commit_many(&mut writer, Some(&ck));
        drop(ck);
        let after = std::fs::metadata(&wal).unwrap().len();
        assert_eq!(after, before, "the WAL was reused instead of growing");
        let n: i64 = main
            .conn
            .one("SELECT COUNT(*) FROM events", &[], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 640);
    }

    #[test]
    fn on_postgresql_a_checkpointer_is_a_no_op_and_a_writer_is_a_second_connection() {
        let Some(pg) = crate::store::sql::engines::PgScratch::new() else {
            return;
        };
        let main = Store::open_url(&crate::config::StoreUrl::Postgres(pg.url.clone())).unwrap();
        let writer = main.reopen().unwrap();
        let ck = Checkpointer::start(&main).unwrap();
        writer
            .conn
            .tx(|| {
                writer
                    .log_event(
                        None,
                        super::super::Level::Info,
                        "from the writer",
                        None,
                        None,
                    )
                    .map(|_| ())
            })
            .unwrap();
        ck.poke();
        main.checkpoint_passive().unwrap();
        drop(ck);
        // The writer's commit is visible on the first connection: the same database.
        let n: i64 = main
            .conn
            .one("SELECT COUNT(*) FROM events", &[], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 1);
        assert_eq!(
            main.reopen_plain().unwrap().schema_version().unwrap(),
            main.schema_version().unwrap()
        );
    }
}
