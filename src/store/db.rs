//! A shareable handle on one database: a small pool of connections that any thread may borrow.
//!
//! The service layer and the console hold a `Db`, never a connection: a synchronous caller
//! borrows one with [`Db::conn`]; async code hands its store work to a blocking thread with
//! [`Db::run`], so a store call never blocks a tokio worker thread (SQLite today; a second
//! engine behind the same type later). Connections go back to the pool when dropped.

use std::ops::Deref;
use std::path::Path;

use crate::config::StoreUrl;
use std::sync::{Arc, Mutex};

use super::Store;
use crate::error::{AppError, Result};

/// Connections kept open between uses; more may be open at once, the rest are closed on return.
const IDLE_KEEP: usize = 4;

#[derive(Clone)]
pub struct Db {
    inner: Arc<Inner>,
}

struct Inner {
    url: StoreUrl,
    read_only: bool,
    idle: Mutex<Vec<Store>>,
}

impl Db {
    /// Opens (creating and migrating) the database at `path`. The first connection is opened
    /// here, so a bad path or a damaged file fails now, not at first use.
    pub fn open(path: &Path) -> Result<Db> {
        Db::open_url(&StoreUrl::Sqlite(path.to_path_buf()))
    }

    /// Opens (creating and migrating) the store at `url`, either engine.
    pub fn open_url(url: &StoreUrl) -> Result<Db> {
        let first = Store::open_url(url)?;
        Ok(Db::with_first(url, false, first))
    }

    /// Opens read-only: never creates, migrates or waits on a writer (`status`).
    pub fn open_read_only(url: &StoreUrl) -> Result<Db> {
        let first = Store::open_url_read_only(url)?;
        Ok(Db::with_first(url, true, first))
    }

    fn with_first(url: &StoreUrl, read_only: bool, first: Store) -> Db {
        Db {
            inner: Arc::new(Inner {
                url: url.clone(),
                read_only,
                idle: Mutex::new(vec![first]),
            }),
        }
    }

    pub fn url(&self) -> &StoreUrl {
        &self.inner.url
    }

    /// Borrows a connection for synchronous work on this thread. Not for async code: there use
    /// [`Db::run`].
    pub fn conn(&self) -> Result<Conn> {
        let pooled = self.inner.idle.lock().ok().and_then(|mut v| v.pop());
        let store = match pooled {
            Some(s) => s,
            None if self.inner.read_only => Store::open_url_read_only(&self.inner.url)?,
            None => Store::open_url(&self.inner.url)?,
        };
        Ok(Conn {
            store: Some(store),
            db: self.clone(),
        })
    }

    /// A connection of its own, outside the pool: for a long-lived reader such as the
    /// console's change watcher (`PRAGMA data_version` counts other connections' commits, so
    /// the watcher must never be one of the writers).
    pub fn dedicated(&self) -> Result<Store> {
        if self.inner.read_only {
            Store::open_url_read_only(&self.inner.url)
        } else {
            Store::open_url(&self.inner.url)
        }
    }

    /// Runs store work on tokio's blocking pool and waits for it without blocking the runtime.
    pub async fn run<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Store) -> Result<T> + Send + 'static,
    {
        let db = self.clone();
        tokio::task::spawn_blocking(move || {
            let conn = db.conn()?;
            f(&conn)
        })
        .await
        .map_err(|e| {
            AppError::local(
                "a database task stopped",
                e.to_string(),
                "see the debug log (logs/mailroom.log); the change was rolled back",
            )
        })?
    }
}

/// A borrowed connection; derefs to [`Store`] and returns to the pool when dropped.
pub struct Conn {
    store: Option<Store>,
    db: Db,
}

impl Deref for Conn {
    type Target = Store;
    fn deref(&self) -> &Store {
        // Only `drop` takes the store out.
        match &self.store {
            Some(s) => s,
            None => unreachable!("a Conn is used after drop"),
        }
    }
}

impl std::ops::DerefMut for Conn {
    fn deref_mut(&mut self) -> &mut Store {
        match &mut self.store {
            Some(s) => s,
            None => unreachable!("a Conn is used after drop"),
        }
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        if let Some(s) = self.store.take()
            && let Ok(mut idle) = self.db.inner.idle.lock()
            && idle.len() < IDLE_KEEP
        {
            idle.push(s);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_are_reused_and_shared_across_threads() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("t.db")).unwrap();
        {
            let a = db.conn().unwrap();
            let b = db.conn().unwrap();
            a.log_event(None, super::super::Level::Info, "one", None, None)
                .unwrap();
            assert_eq!(b.schema_version().unwrap(), a.schema_version().unwrap());
        }
        assert_eq!(db.inner.idle.lock().unwrap().len(), 2);
        let db2 = db.clone();
        std::thread::spawn(move || db2.conn().unwrap().schema_version().unwrap())
            .join()
            .unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let n = rt
            .block_on(db.run(|s| s.events_count(&Default::default(), super::super::Visible(&[]))))
            .unwrap();
        assert_eq!(n, 1);
    }

    #[test]
    fn read_only_never_creates() {
        let dir = tempfile::tempdir().unwrap();
        assert!(Db::open_read_only(&StoreUrl::Sqlite(dir.path().join("missing.db"))).is_err());
        assert!(!dir.path().join("missing.db").exists());
    }
}
