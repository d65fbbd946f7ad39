//! Folders of an account: the discovered list, roles, the sync choice and per-folder sync state
//! (UIDVALIDITY, UIDNEXT, HIGHESTMODSEQ, first-sync checkpoint).

use rusqlite::{OptionalExtension, params};
use serde::Serialize;

use super::{Store, now};
use crate::error::{AppError, Result};
use crate::model::{FolderInfo, Role};

/// One folder of an account: what the server listed, the user's choices and the sync state.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FolderRow {
    pub id: i64,
    pub account_id: String,
    pub name: String,
    pub wire_name: String,
    pub delimiter: Option<String>,
    pub attributes: String,
    /// Stored as its word (`sent`, `trash`…); a word this version does not know reads as none.
    pub role: Option<Role>,
    pub role_source: Option<String>,
    pub sync_enabled: bool,
    pub selectable: bool,
    pub uidvalidity: Option<u32>,
    pub uidnext: Option<u32>,
    pub highestmodseq: Option<u64>,
    pub exists_count: Option<u32>,
    pub first_sync_done: bool,
    pub checkpoint_uid: Option<u32>,
    pub mark_read_from_uid: Option<u32>,
    pub last_synced_at: Option<String>,
    pub present: bool,
    /// The folder's size on the server, when known.
    pub total_bytes: Option<i64>,
}

/// A folder as the lists show it (`folders NAME`, the console's Folders pane): its row and how
/// many messages the cache holds in it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FolderEntry {
    #[serde(flatten)]
    pub folder: FolderRow,
    pub cached: i64,
}

const COLS: &str = "id, account_id, name, wire_name, delimiter, attributes, role, role_source, sync_enabled, selectable, uidvalidity, uidnext, highestmodseq, exists_count, first_sync_done, checkpoint_uid, mark_read_from_uid, last_synced_at, present, total_bytes";

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<FolderRow> {
    Ok(FolderRow {
        id: r.get(0)?,
        account_id: r.get(1)?,
        name: r.get(2)?,
        wire_name: r.get(3)?,
        delimiter: r.get(4)?,
        attributes: r.get(5)?,
        role: r
            .get::<_, Option<String>>(6)?
            .as_deref()
            .and_then(Role::parse),
        role_source: r.get(7)?,
        sync_enabled: r.get(8)?,
        selectable: r.get(9)?,
        uidvalidity: r.get::<_, Option<i64>>(10)?.map(|v| v as u32),
        uidnext: r.get::<_, Option<i64>>(11)?.map(|v| v as u32),
        highestmodseq: r.get::<_, Option<i64>>(12)?.map(|v| v as u64),
        exists_count: r.get::<_, Option<i64>>(13)?.map(|v| v as u32),
        first_sync_done: r.get(14)?,
        checkpoint_uid: r.get::<_, Option<i64>>(15)?.map(|v| v as u32),
        mark_read_from_uid: r.get::<_, Option<i64>>(16)?.map(|v| v as u32),
        last_synced_at: r.get(17)?,
        present: r.get(18)?,
        total_bytes: r.get(19)?,
    })
}

/// Server state seen at SELECT, stored after a folder pass.
#[derive(Debug, Clone, Copy, Default)]
pub struct FolderSyncState {
    pub uidvalidity: u32,
    pub uidnext: Option<u32>,
    pub highestmodseq: Option<u64>,
    pub exists: u32,
}

impl Store {
    /// Stores a fresh LIST. Keeps the user's sync choice and user-set roles; folders that
    /// vanished are marked not present (their messages stay until the user removes them).
    /// The first time an account lists folders, INBOX and Sent are chosen for sync.
    pub fn upsert_folders(&mut self, account_id: &str, list: &[FolderInfo]) -> Result<()> {
        self.transaction(|tx| {
            let first: bool = tx.query_row(
                "SELECT COUNT(*) = 0 FROM folders WHERE account_id = ?1",
                [account_id],
                |r| r.get(0),
            )?;
            let user_roles: Vec<String> = {
                let mut st = tx.prepare(
                    "SELECT role FROM folders WHERE account_id = ?1 AND role_source = 'user' AND role IS NOT NULL",
                )?;
                st.query_map([account_id], |r| r.get(0))?
                    .collect::<rusqlite::Result<_>>()?
            };
            tx.execute(
                "UPDATE folders SET present = 0 WHERE account_id = ?1",
                [account_id],
            )?;
            for f in list {
                let role = f.role.map(|r| r.as_str().to_string());
                let role_taken = role.as_ref().is_some_and(|r| user_roles.contains(r));
                let sync = first
                    && f.selectable
                    && matches!(f.role, Some(Role::Inbox) | Some(Role::Sent));
                tx.execute(
                    "INSERT INTO folders (account_id, name, wire_name, delimiter, attributes, role, role_source, sync_enabled, selectable, present)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 1)
                     ON CONFLICT(account_id, name) DO UPDATE SET wire_name = excluded.wire_name, delimiter = excluded.delimiter,
                       attributes = excluded.attributes, selectable = excluded.selectable, present = 1,
                       role = CASE WHEN folders.role_source = 'user' THEN folders.role ELSE excluded.role END,
                       role_source = CASE WHEN folders.role_source = 'user' THEN folders.role_source ELSE excluded.role_source END",
                    params![
                        account_id,
                        f.name,
                        f.wire_name,
                        f.delimiter,
                        f.attributes.join(" "),
                        if role_taken { None } else { role },
                        if role_taken { None } else { f.role_source },
                        sync,
                        f.selectable
                    ],
                )?;
            }
            Ok(())
        })
    }

    pub fn folders(&self, account_id: &str) -> Result<Vec<FolderRow>> {
        let mut st = self.conn.prepare(&format!(
            "SELECT {COLS} FROM folders WHERE account_id = ?1 ORDER BY (name <> 'INBOX'), name"
        ))?;
        let rows = st
            .query_map([account_id], row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    /// The folders the server lists now, with their cached message counts, ordered as
    /// `folders()` (INBOX first, then by name).
    pub fn folder_entries(&self, account_id: &str) -> Result<Vec<FolderEntry>> {
        let mut st = self.conn.prepare_cached(&format!(
            "SELECT {COLS}, (SELECT COUNT(*) FROM locations l WHERE l.folder_id = folders.id)
             FROM folders WHERE account_id = ?1 AND present = 1 ORDER BY (name <> 'INBOX'), name"
        ))?;
        let rows = st
            .query_map([account_id], |r| {
                Ok(FolderEntry {
                    folder: row(r)?,
                    cached: r.get(20)?,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    pub fn folder(&self, folder_id: i64) -> Result<Option<FolderRow>> {
        Ok(self
            .conn
            .query_row(
                &format!("SELECT {COLS} FROM folders WHERE id = ?1"),
                [folder_id],
                row,
            )
            .optional()?)
    }

    pub fn folder_by_name(&self, account_id: &str, name: &str) -> Result<Option<FolderRow>> {
        Ok(self
            .conn
            .query_row(
                &format!("SELECT {COLS} FROM folders WHERE account_id = ?1 AND name = ?2"),
                params![account_id, name],
                row,
            )
            .optional()?)
    }

    /// The folder holding a role (e.g. Sent for the send pipeline), if any.
    pub fn folder_by_role(&self, account_id: &str, role: Role) -> Result<Option<FolderRow>> {
        Ok(self
            .conn
            .query_row(
                &format!("SELECT {COLS} FROM folders WHERE account_id = ?1 AND role = ?2 AND present = 1 ORDER BY role_source = 'user' DESC LIMIT 1"),
                params![account_id, role.as_str()],
                row,
            )
            .optional()?)
    }

    /// The Sent folder the user chose (`folders NAME --sent FOLDER`), if any: Sent copies go
    /// there unless a `sent_copy` setting names a folder.
    /// A chosen folder the server no longer lists stays the choice (the copy then waits with
    /// the fix) rather than copies silently going elsewhere.
    pub fn chosen_sent_folder(&self, account_id: &str) -> Result<Option<String>> {
        Ok(self
            .conn
            .query_row(
                "SELECT name FROM folders WHERE account_id = ?1 AND role = ?2 AND role_source = 'user' LIMIT 1",
                params![account_id, Role::Sent.as_str()],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// Exactly these folders sync; unknown names are an error naming the known ones.
    pub fn set_sync_folders(&mut self, account_id: &str, names: &[String]) -> Result<()> {
        let known = self.folders(account_id)?;
        for n in names {
            if !known.iter().any(|f| &f.name == n) {
                return Err(unknown_folder(n, &known));
            }
        }
        self.transaction(|tx| {
            for f in &known {
                tx.execute(
                    "UPDATE folders SET sync_enabled = ?2 WHERE id = ?1",
                    params![f.id, names.contains(&f.name)],
                )?;
            }
            Ok(())
        })
    }

    /// Gives `role` to `name` (chosen by the user), taking it from any other folder.
    pub fn set_folder_role(&mut self, account_id: &str, role: Role, name: &str) -> Result<()> {
        let known = self.folders(account_id)?;
        match known.iter().find(|f| f.name == name) {
            None => return Err(unknown_folder(name, &known)),
            Some(f) if !f.selectable => {
                return Err(AppError::usage(
                    format!("{name:?} cannot hold messages (the server lists it as \\Noselect)"),
                    format!(
                        "give the {} role to a folder that holds mail, e.g. one below {name:?}",
                        role.as_str()
                    ),
                )
                .with_code(crate::error::Code::FolderNoselect));
            }
            Some(_) => {}
        }
        self.transaction(|tx| {
            tx.execute(
                "UPDATE folders SET role = NULL, role_source = NULL WHERE account_id = ?1 AND role = ?2",
                params![account_id, role.as_str()],
            )?;
            tx.execute(
                "UPDATE folders SET role = ?3, role_source = 'user' WHERE account_id = ?1 AND name = ?2",
                params![account_id, name, role.as_str()],
            )?;
            Ok(())
        })
    }

    /// Records the server state after a folder pass.
    pub fn set_folder_synced(&self, folder_id: i64, st: &FolderSyncState) -> Result<()> {
        self.conn.execute(
            "UPDATE folders SET uidvalidity = ?2, uidnext = ?3, highestmodseq = ?4, exists_count = ?5, last_synced_at = ?6 WHERE id = ?1",
            params![
                folder_id,
                st.uidvalidity as i64,
                st.uidnext.map(|v| v as i64),
                st.highestmodseq.map(|v| v as i64),
                st.exists as i64,
                now()
            ],
        )?;
        Ok(())
    }

    /// Folders a pass found unchanged (by their counters): only the time moves.
    pub fn touch_folders_synced(&self, folder_ids: &[i64]) -> Result<()> {
        if folder_ids.is_empty() {
            return Ok(());
        }
        let ids: Vec<String> = folder_ids.iter().map(i64::to_string).collect();
        self.conn.execute(
            &format!(
                "UPDATE folders SET last_synced_at = ?1 WHERE id IN ({})",
                ids.join(",")
            ),
            [now()],
        )?;
        Ok(())
    }

    /// UIDVALIDITY changed: the folder is fetched again from scratch. Locations under the old
    /// UIDVALIDITY stay until the rebuild finishes (they let messages keep their local ids).
    pub fn reset_folder_for_rebuild(&self, folder_id: i64, uidvalidity: u32) -> Result<()> {
        self.conn.execute(
            "UPDATE folders SET uidvalidity = ?2, uidnext = NULL, highestmodseq = NULL, exists_count = NULL,
               first_sync_done = 0, checkpoint_uid = NULL, mark_read_from_uid = NULL WHERE id = ?1",
            params![folder_id, uidvalidity as i64],
        )?;
        Ok(())
    }

    pub fn set_first_sync_done(&self, folder_id: i64) -> Result<()> {
        self.conn.execute(
            "UPDATE folders SET first_sync_done = 1 WHERE id = ?1",
            [folder_id],
        )?;
        Ok(())
    }

    /// Moves the folder's checkpoint up to `uid` without fetching: a first sync that found
    /// nothing in scope below it (`since = "new"`, or a search that came back empty).
    pub fn set_checkpoint(&self, folder_id: i64, uid: u32) -> Result<()> {
        self.conn.execute(
            "UPDATE folders SET checkpoint_uid = MAX(COALESCE(checkpoint_uid, 0), ?2) WHERE id = ?1",
            params![folder_id, uid as i64],
        )?;
        Ok(())
    }

    /// During a rebuild: how many locations the folder still holds under an old UIDVALIDITY,
    /// and the oldest INTERNALDATE among them (RFC 3339 UTC).
    pub fn stale_locations_span(
        &self,
        folder_id: i64,
        uidvalidity: u32,
    ) -> Result<(u64, Option<String>)> {
        Ok(self.conn.query_row(
            "SELECT COUNT(*), MIN(internal_date) FROM locations WHERE folder_id = ?1 AND uidvalidity <> ?2",
            params![folder_id, uidvalidity as i64],
            |r| Ok((r.get::<_, i64>(0)? as u64, r.get(1)?)),
        )?)
    }

    /// "Mark as read" switched on: remember UIDNEXT so only mail arriving later is touched.
    pub fn set_mark_read_from(&self, folder_id: i64, uid: Option<u32>) -> Result<()> {
        self.conn.execute(
            "UPDATE folders SET mark_read_from_uid = ?2 WHERE id = ?1",
            params![folder_id, uid.map(|u| u as i64)],
        )?;
        Ok(())
    }
}

fn unknown_folder(name: &str, known: &[FolderRow]) -> AppError {
    let names: Vec<&str> = known.iter().map(|f| f.name.as_str()).collect();
    AppError::usage(
        format!("no folder named {name:?}"),
        format!(
            "use one of: {} (or `mailroom folders NAME --refresh`)",
            names.join(", ")
        ),
    )
    .with_code(crate::error::Code::NotFound)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fi(name: &str, role: Option<Role>) -> FolderInfo {
        FolderInfo {
            name: name.into(),
            wire_name: name.into(),
            delimiter: Some("/".into()),
            attributes: vec![],
            selectable: true,
            role,
            role_source: role.map(|_| "special_use"),
        }
    }

    #[test]
    fn first_listing_syncs_inbox_and_sent_and_keeps_choices() {
        let mut s = Store::open_in_memory().unwrap();
        s.insert_account("a", "a", true).unwrap();
        let list = vec![
            fi("INBOX", Some(Role::Inbox)),
            fi("Sent", Some(Role::Sent)),
            fi("Trash", Some(Role::Trash)),
        ];
        s.upsert_folders("a", &list).unwrap();
        let f = s.folders("a").unwrap();
        let on: Vec<&str> = f
            .iter()
            .filter(|f| f.sync_enabled)
            .map(|f| f.name.as_str())
            .collect();
        assert_eq!(on, vec!["INBOX", "Sent"]);
        s.set_sync_folders("a", &["Trash".into()]).unwrap();
        s.set_folder_role("a", Role::Sent, "Trash").unwrap();
        s.upsert_folders("a", &list).unwrap();
        assert_eq!(
            s.folder_by_role("a", Role::Sent).unwrap().unwrap().name,
            "Trash"
        );
        let on: Vec<String> = s
            .folders("a")
            .unwrap()
            .into_iter()
            .filter(|f| f.sync_enabled)
            .map(|f| f.name)
            .collect();
        assert_eq!(on, vec!["Trash".to_string()]);
        assert!(s.set_sync_folders("a", &["Nope".into()]).is_err());
    }

    #[test]
    fn entries_list_present_folders_with_roles_and_cached_counts() {
        let mut s = Store::open_in_memory().unwrap();
        s.insert_account("a", "a", true).unwrap();
        s.upsert_folders(
            "a",
            &[
                fi("Archive", Some(Role::Archive)),
                fi("INBOX", Some(Role::Inbox)),
                fi("Old", None),
            ],
        )
        .unwrap();
        // A folder the server no longer lists is not shown.
        s.upsert_folders(
            "a",
            &[
                fi("Archive", Some(Role::Archive)),
                fi("INBOX", Some(Role::Inbox)),
            ],
        )
        .unwrap();
        let inbox = s.folder_by_name("a", "INBOX").unwrap().unwrap();
        s.fixture_message(
            "a",
            inbox.id,
            1,
            &crate::store::FixtureMessage {
                from_addr: "x@example.org".into(),
                subject: "s".into(),
                date: "2026-01-01T00:00:00Z".into(),
                direction: "in",
                ..Default::default()
            },
        )
        .unwrap();
        let e = s.folder_entries("a").unwrap();
        let names: Vec<(&str, Option<Role>, i64)> = e
            .iter()
            .map(|e| (e.folder.name.as_str(), e.folder.role, e.cached))
            .collect();
        assert_eq!(
            names,
            vec![
                ("INBOX", Some(Role::Inbox), 1),
                ("Archive", Some(Role::Archive), 0)
            ]
        );
        // A role word this version does not know reads as none.
        s.conn
            .execute(
                "UPDATE folders SET role = 'outbox' WHERE name = 'Archive'",
                [],
            )
            .unwrap();
        assert_eq!(
            s.folder_by_name("a", "Archive").unwrap().unwrap().role,
            None
        );
    }
}
