//! The durable queue of local changes (flags, moves, deletes) waiting to be pushed to the
//! server. A local action changes the cache and enqueues its op in one transaction, so the
//! console shows it at once and a crash never loses it.

use serde::{Deserialize, Serialize};

use super::messages::{flags_text, flags_vec};
use super::{Store, now};
use crate::args;
use crate::error::{AppError, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OpKind {
    AddFlags,
    RemoveFlags,
    /// Move to another folder (delete = move to Trash).
    Move,
}

impl OpKind {
    fn as_str(self) -> &'static str {
        match self {
            OpKind::AddFlags => "add_flags",
            OpKind::RemoveFlags => "remove_flags",
            OpKind::Move => "move",
        }
    }
    fn parse(s: &str) -> Option<OpKind> {
        match s {
            "add_flags" => Some(OpKind::AddFlags),
            "remove_flags" => Some(OpKind::RemoveFlags),
            "move" | "delete" => Some(OpKind::Move),
            _ => None,
        }
    }
}

/// Where the op acts on the server, captured when it was queued (a move removes the local
/// location at once, so the op must remember it).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OpTarget {
    pub folder_id: i64,
    pub wire_name: String,
    pub uidvalidity: u32,
    pub uid: u32,
    /// Flags for add/remove; the target folder's wire name for a move.
    pub arg: String,
}

#[derive(Debug, Clone)]
pub struct PendingOp {
    pub id: i64,
    pub account_id: String,
    pub message_id: Option<i64>,
    pub kind: OpKind,
    pub target: OpTarget,
    pub attempts: i64,
}

impl Store {
    /// Applies a flag change to the copies (`locations`, by location id) of a message locally
    /// and queues it for each copy's server; every other copy keeps its own flags. Returns the
    /// op ids.
    pub fn local_set_flags(
        &mut self,
        message_id: i64,
        locations: &[i64],
        add: &[String],
        remove: &[String],
    ) -> Result<Vec<i64>> {
        let mut locs = self.locations_of(message_id)?;
        locs.retain(|l| locations.contains(&l.id));
        if locs.is_empty() {
            return Err(no_location(message_id));
        }
        let c = &self.conn;
        c.tx(|| {
            let mut ids = Vec::new();
            for l in &locs {
                let mut flags: Vec<String> = l.flags.clone();
                flags.retain(|f| !remove.iter().any(|r| r.eq_ignore_ascii_case(f)));
                for a in add {
                    if !flags.iter().any(|f| f.eq_ignore_ascii_case(a)) {
                        flags.push(a.clone());
                    }
                }
                flags.sort();
                let seen = flags.iter().any(|f| f.eq_ignore_ascii_case("\\Seen"));
                c.exec(
                    "UPDATE locations SET flags = ?2, seen = ?3 WHERE id = ?1",
                    args![l.id, flags_text(&flags), seen],
                )?;
                for (kind, list) in [(OpKind::AddFlags, add), (OpKind::RemoveFlags, remove)] {
                    if list.is_empty() {
                        continue;
                    }
                    let target = OpTarget {
                        folder_id: l.folder_id,
                        wire_name: l.wire_name.clone(),
                        uidvalidity: l.uidvalidity,
                        uid: l.uid,
                        arg: list.join(" "),
                    };
                    ids.push(c.one(
                        "INSERT INTO pending_ops (account_id, location_id, message_id, op, arg, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6) RETURNING id",
                        args![l.account_id, l.id, message_id, kind.as_str(), serde_json::to_string(&target).unwrap_or_default(), now()],
                        |r| r.get(0),
                    )?);
                }
            }
            Ok(ids)
        })
    }

    /// Moves a message to `target_folder` of `account_id`: its location there disappears from
    /// the cache at once (the target folder's next sync brings the new location) and the move
    /// is queued. Returns the op id.
    pub fn local_move(
        &mut self,
        message_id: i64,
        account_id: &str,
        target_folder: &str,
    ) -> Result<i64> {
        let target = self
            .folder_by_name(account_id, target_folder)?
            .ok_or_else(|| {
                AppError::usage(
                    format!("no folder named {target_folder:?}"),
                    "see `mailroom folders NAME`",
                )
                .with_code(crate::error::Code::NotFound)
            })?;
        let locs = self.locations_of(message_id)?;
        let loc = locs
            .iter()
            .find(|l| l.account_id == account_id && l.folder_id != target.id)
            .ok_or_else(|| no_location(message_id))?
            .clone();
        let c = &self.conn;
        c.tx(|| {
            let t = OpTarget {
                folder_id: loc.folder_id,
                wire_name: loc.wire_name.clone(),
                uidvalidity: loc.uidvalidity,
                uid: loc.uid,
                arg: target.wire_name.clone(),
            };
            let id = c.one(
                "INSERT INTO pending_ops (account_id, location_id, message_id, op, arg, created_at) VALUES (?1, NULL, ?2, 'move', ?3, ?4) RETURNING id",
                args![account_id, message_id, serde_json::to_string(&t).unwrap_or_default(), now()],
                |r| r.get(0),
            )?;
            c.exec("DELETE FROM locations WHERE id = ?1", args![loc.id])?;
            Ok(id)
        })
    }

    /// Ops not yet pushed, oldest first.
    pub fn open_ops(&self, account_id: &str) -> Result<Vec<PendingOp>> {
        let rows = self.conn.rows(
            "SELECT id, account_id, message_id, op, arg, attempts FROM pending_ops WHERE account_id = ?1 AND done_at IS NULL ORDER BY id",
            args![account_id],
            |r| {
                Ok((
                    r.get::<i64>(0)?,
                    r.get::<String>(1)?,
                    r.get::<Option<i64>>(2)?,
                    r.get::<String>(3)?,
                    r.get::<Option<String>>(4)?,
                    r.get::<i64>(5)?,
                ))
            },
        )?;
        Ok(rows
            .into_iter()
            .filter_map(|(id, account_id, message_id, op, arg, attempts)| {
                Some(PendingOp {
                    id,
                    account_id,
                    message_id,
                    kind: OpKind::parse(&op)?,
                    target: serde_json::from_str(arg.as_deref()?).ok()?,
                    attempts,
                })
            })
            .collect())
    }

    pub fn open_ops_count(&self, account_id: &str) -> Result<i64> {
        self.conn.one(
            "SELECT COUNT(*) FROM pending_ops WHERE account_id = ?1 AND done_at IS NULL",
            args![account_id],
            |r| r.get(0),
        )
    }

    /// The op reached the server (or can never apply: `note` says why).
    pub fn op_done(&self, id: i64, note: Option<&str>) -> Result<()> {
        self.conn.exec(
            "UPDATE pending_ops SET done_at = ?2, last_error = ?3 WHERE id = ?1",
            args![id, now(), note],
        )?;
        Ok(())
    }

    pub fn op_failed(&self, id: i64, error: &str) -> Result<()> {
        self.conn.exec(
            "UPDATE pending_ops SET attempts = attempts + 1, last_error = ?2 WHERE id = ?1",
            args![id, error],
        )?;
        Ok(())
    }

    /// Current local flags of a location (None if it is gone).
    pub fn location_flags(
        &self,
        folder_id: i64,
        uidvalidity: u32,
        uid: u32,
    ) -> Result<Option<Vec<String>>> {
        Ok(self
            .conn
            .first(
                "SELECT flags FROM locations WHERE folder_id = ?1 AND uidvalidity = ?2 AND uid = ?3",
                args![folder_id, uidvalidity, uid],
                |r| r.get::<String>(0),
            )?
            .map(|f| flags_vec(&f)))
    }
}

impl Store {
    /// Refreshes this process's lease heartbeat during a long pass, so no other process takes
    /// the account over as if we had died. False if the lease is no longer ours.
    pub fn touch_lease(&self, account_id: &str) -> Result<bool> {
        Ok(self.conn.exec(
            "UPDATE leases SET heartbeat_at = ?2 WHERE account_id = ?1 AND holder_pid = ?3",
            args![account_id, now(), std::process::id()],
        )? > 0)
    }
}

fn no_location(message_id: i64) -> AppError {
    AppError::usage(
        format!("message {message_id} is not in any synced folder"),
        "pick an id from `mailroom messages`",
    )
    .with_code(crate::error::Code::NotFound)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{FolderInfo, Role};
    use crate::store::folders::tests::cached_message;
    use crate::store::testing;

    /// Account `a` with INBOX and Trash; a message in INBOX (UID 5, unread).
    fn setup(s: &mut Store) -> (i64, i64, i64) {
        s.insert_account("a", "a", true).unwrap();
        let f = |name: &str, role| FolderInfo {
            name: name.into(),
            wire_name: format!("w.{name}"),
            delimiter: None,
            attributes: vec![],
            selectable: true,
            role: Some(role),
            role_source: Some("special_use"),
        };
        s.upsert_folders("a", &[f("INBOX", Role::Inbox), f("Trash", Role::Trash)])
            .unwrap();
        let inbox = s.folder_by_name("a", "INBOX").unwrap().unwrap().id;
        let trash = s.folder_by_name("a", "Trash").unwrap().unwrap().id;
        let m = cached_message(s, "a", inbox, 5, "\\Flagged");
        (inbox, trash, m)
    }

    /// Whether `locations_of` (store/messages.rs) runs on this engine yet: until it is ported
    /// it reaches the transitional SQLite on PostgreSQL, which has no tables.
    fn locations_ported(s: &Store, m: i64) -> bool {
        match s.locations_of(m) {
            Ok(_) => true,
            Err(e) if e.detail.contains("no such table") => false,
            Err(e) => panic!("{e:?}"),
        }
    }

    #[test]
    fn queued_ops_are_listed_until_done() {
        testing::each(|s| {
            let (inbox, _, m) = setup(s);
            let target = OpTarget {
                folder_id: inbox,
                wire_name: "w.INBOX".into(),
                uidvalidity: 1,
                uid: 5,
                arg: "\\Seen".into(),
            };
            let arg = serde_json::to_string(&target).unwrap();
            for op in ["add_flags", "delete", "bogus"] {
                s.conn
                    .exec(
                        "INSERT INTO pending_ops (account_id, message_id, op, arg, created_at) VALUES ('a', ?1, ?2, ?3, 't')",
                        args![m, op, arg],
                    )
                    .unwrap();
            }
            let ops = s.open_ops("a").unwrap();
            let kinds: Vec<OpKind> = ops.iter().map(|o| o.kind).collect();
            assert_eq!(
                kinds,
                [OpKind::AddFlags, OpKind::Move],
                "unknown ops are skipped"
            );
            assert_eq!(ops[0].target.uid, 5);
            assert_eq!(ops[0].message_id, Some(m));
            assert_eq!(s.open_ops_count("a").unwrap(), 3);
            s.op_failed(ops[0].id, "server said no").unwrap();
            assert_eq!(s.open_ops("a").unwrap()[0].attempts, 1);
            s.op_done(ops[0].id, None).unwrap();
            s.op_done(ops[1].id, Some("the message is gone")).unwrap();
            assert_eq!(s.open_ops_count("a").unwrap(), 1);
            assert!(s.open_ops("b").unwrap().is_empty());

            assert_eq!(
                s.location_flags(inbox, 1, 5).unwrap(),
                Some(vec!["\\Flagged".to_string()])
            );
            assert_eq!(s.location_flags(inbox, 2, 5).unwrap(), None);

            assert!(!s.touch_lease("a").unwrap(), "no lease held");
            assert!(s.acquire_lease("a", "t", 60).unwrap().is_ok());
            assert!(s.touch_lease("a").unwrap());
        });
    }

    #[test]
    fn local_changes_show_at_once_and_are_queued() {
        testing::each(|s| {
            let (inbox, trash, m) = setup(s);
            if !locations_ported(s, m) {
                return;
            }
            let loc = s.locations_of(m).unwrap()[0].id;
            let ids = s
                .local_set_flags(m, &[loc], &["\\Seen".into()], &["\\flagged".into()])
                .unwrap();
            assert_eq!(ids.len(), 2);
            assert_eq!(
                s.location_flags(inbox, 1, 5).unwrap(),
                Some(vec!["\\Seen".to_string()])
            );
            assert_eq!(s.account_counts("a").unwrap(), (1, 0), "read now");
            let ops = s.open_ops("a").unwrap();
            assert_eq!(
                ops.iter()
                    .map(|o| (o.kind, o.target.arg.as_str()))
                    .collect::<Vec<_>>(),
                [
                    (OpKind::AddFlags, "\\Seen"),
                    (OpKind::RemoveFlags, "\\flagged")
                ]
            );
            assert!(s.local_set_flags(m, &[loc + 99], &[], &[]).is_err());

            let mv = s.local_move(m, "a", "Trash").unwrap();
            assert!(s.locations_of(m).unwrap().is_empty());
            let op = s.open_ops("a").unwrap().pop().unwrap();
            assert_eq!((op.id, op.kind), (mv, OpKind::Move));
            assert_eq!(
                (
                    op.target.folder_id,
                    op.target.wire_name.as_str(),
                    op.target.arg.as_str()
                ),
                (inbox, "w.INBOX", "w.Trash")
            );
            assert_ne!(trash, inbox);
            assert!(s.local_move(m, "a", "Nope").is_err());
        });
    }
}
