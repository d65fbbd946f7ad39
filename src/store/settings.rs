//! The installation's shared settings (one TOML document with a version) and the check of its
//! one sealing key. Used on PostgreSQL, where many hosts share one installation; the tables
//! exist on SQLite too (the schemas stay step for step alike) and stay empty there.

use super::sql::Engine;
use super::{Store, now};
use crate::args;
use crate::error::Result;

/// The shared settings as stored: the document and the version every write moves on by one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedDoc {
    pub version: i64,
    pub doc: String,
}

impl Store {
    /// The shared settings, or None while nobody has written them (version 0 or no row).
    pub fn shared_settings(&self) -> Result<Option<SharedDoc>> {
        Ok(self
            .conn
            .first(
                "SELECT version, doc FROM shared_settings WHERE id = 1 AND version > 0",
                &[],
                |r| {
                    Ok(SharedDoc {
                        version: r.get(0)?,
                        doc: r.get(1)?,
                    })
                },
            )?
            .filter(|d| d.version > 0))
    }

    /// The version alone (0 while not written): one cheap query per page load.
    pub fn shared_settings_version(&self) -> Result<i64> {
        Ok(self
            .conn
            .first(
                "SELECT version FROM shared_settings WHERE id = 1",
                &[],
                |r| r.get(0),
            )?
            .unwrap_or(0))
    }

    /// Inside a transaction: the shared settings' row, locked until the transaction ends
    /// (`FOR UPDATE` on PostgreSQL; SQLite's BEGIN IMMEDIATE already holds the write lock), so
    /// two hosts' edits run one after the other and neither loses the other's change. Version
    /// 0 and an empty document while nothing was written yet.
    pub fn lock_shared_settings(&self) -> Result<SharedDoc> {
        self.conn.exec(
            "INSERT INTO shared_settings (id, version, doc, updated_at, updated_by)
             VALUES (1, 0, '', ?1, '') ON CONFLICT (id) DO NOTHING",
            args![now()],
        )?;
        let sql = match self.engine() {
            Engine::Sqlite => "SELECT version, doc FROM shared_settings WHERE id = 1",
            Engine::Postgres => "SELECT version, doc FROM shared_settings WHERE id = 1 FOR UPDATE",
        };
        self.conn.one(sql, &[], |r| {
            Ok(SharedDoc {
                version: r.get(0)?,
                doc: r.get(1)?,
            })
        })
    }

    /// Inside the transaction that holds [`Store::lock_shared_settings`]: writes `doc` as
    /// `version` (the locked version + 1).
    pub fn write_shared_settings(&self, version: i64, doc: &str, by: &str) -> Result<()> {
        self.conn.exec(
            "UPDATE shared_settings SET version = ?1, doc = ?2, updated_at = ?3, updated_by = ?4
             WHERE id = 1",
            args![version, doc, now(), by],
        )?;
        Ok(())
    }

    /// Runs `f` in one transaction (what an edit of the shared settings holds its lock in).
    pub fn in_transaction<T>(&self, f: impl FnOnce() -> Result<T>) -> Result<T> {
        self.conn.tx(f)
    }

    /// The installation's key check (a known value sealed with its key), if one is recorded.
    pub fn key_check(&self) -> Result<Option<String>> {
        self.conn
            .first("SELECT sealed FROM key_check WHERE id = 1", &[], |r| {
                r.get(0)
            })
    }

    /// Records `sealed` as the key check unless one exists; returns the one that holds (ours,
    /// or another host's that came first).
    pub fn record_key_check(&self, sealed: &str, host: &str) -> Result<String> {
        self.conn.exec(
            "INSERT INTO key_check (id, sealed, created_at, host) VALUES (1, ?1, ?2, ?3)
             ON CONFLICT (id) DO NOTHING",
            args![sealed, now(), host],
        )?;
        self.conn
            .one("SELECT sealed FROM key_check WHERE id = 1", &[], |r| {
                r.get(0)
            })
    }
}

#[cfg(test)]
mod tests {
    use crate::store::testing;

    #[test]
    fn shared_settings_start_unwritten_and_move_by_version() {
        testing::each(|s| {
            assert_eq!(s.shared_settings().unwrap(), None);
            assert_eq!(s.shared_settings_version().unwrap(), 0);
            s.in_transaction(|| {
                let locked = s.lock_shared_settings()?;
                assert_eq!(locked.version, 0);
                assert_eq!(
                    s.shared_settings()?,
                    None,
                    "a placeholder is not a document"
                );
                s.write_shared_settings(locked.version + 1, "[general]\n", "alice")
            })
            .unwrap();
            let doc = s.shared_settings().unwrap().unwrap();
            assert_eq!((doc.version, doc.doc.as_str()), (1, "[general]\n"));
            assert_eq!(s.shared_settings_version().unwrap(), 1);
            // A failed edit changes nothing.
            let failed: crate::error::Result<()> = s.in_transaction(|| {
                s.lock_shared_settings()?;
                s.write_shared_settings(2, "broken", "bob")?;
                Err(crate::error::AppError::usage("no", "no"))
            });
            assert!(failed.is_err());
            assert_eq!(s.shared_settings().unwrap().unwrap().version, 1);
        });
    }

    #[test]
    fn the_first_key_check_holds() {
        testing::each(|s| {
            assert_eq!(s.key_check().unwrap(), None);
            assert_eq!(s.record_key_check("first", "a").unwrap(), "first");
            assert_eq!(s.record_key_check("second", "b").unwrap(), "first");
            assert_eq!(s.key_check().unwrap().as_deref(), Some("first"));
        });
    }
}
