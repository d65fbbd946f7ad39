//! The durable queue of local changes (flags, moves, deletes) waiting to be pushed to the
//! server. A local action changes the cache and enqueues its op in one transaction, so the
//! console shows it at once and a crash never loses it.

use rusqlite::{OptionalExtension, params};
use serde::{Deserialize, Serialize};

use super::messages::{flags_text, flags_vec};
use super::{Store, now};
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
        self.transaction(|tx| {
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
                tx.execute(
                    "UPDATE locations SET flags = ?2, seen = ?3 WHERE id = ?1",
                    params![l.id, flags_text(&flags), seen],
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
                    tx.execute(
                        "INSERT INTO pending_ops (account_id, location_id, message_id, op, arg, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                        params![l.account_id, l.id, message_id, kind.as_str(), serde_json::to_string(&target).unwrap_or_default(), now()],
                    )?;
                    ids.push(tx.last_insert_rowid());
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
        self.transaction(|tx| {
            let t = OpTarget {
                folder_id: loc.folder_id,
                wire_name: loc.wire_name.clone(),
                uidvalidity: loc.uidvalidity,
                uid: loc.uid,
                arg: target.wire_name.clone(),
            };
            tx.execute(
                "INSERT INTO pending_ops (account_id, location_id, message_id, op, arg, created_at) VALUES (?1, NULL, ?2, 'move', ?3, ?4)",
                params![account_id, message_id, serde_json::to_string(&t).unwrap_or_default(), now()],
            )?;
            let id = tx.last_insert_rowid();
            tx.execute("DELETE FROM locations WHERE id = ?1", [loc.id])?;
            Ok(id)
        })
    }

    /// Ops not yet pushed, oldest first.
    pub fn open_ops(&self, account_id: &str) -> Result<Vec<PendingOp>> {
        let mut st = self.conn.prepare(
            "SELECT id, account_id, message_id, op, arg, attempts FROM pending_ops WHERE account_id = ?1 AND done_at IS NULL ORDER BY id",
        )?;
        let rows = st
            .query_map([account_id], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, Option<i64>>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, Option<String>>(4)?,
                    r.get::<_, i64>(5)?,
                ))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
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
        Ok(self.conn.query_row(
            "SELECT COUNT(*) FROM pending_ops WHERE account_id = ?1 AND done_at IS NULL",
            [account_id],
            |r| r.get(0),
        )?)
    }

    /// The op reached the server (or can never apply: `note` says why).
    pub fn op_done(&self, id: i64, note: Option<&str>) -> Result<()> {
        self.conn.execute(
            "UPDATE pending_ops SET done_at = ?2, last_error = ?3 WHERE id = ?1",
            params![id, now(), note],
        )?;
        Ok(())
    }

    pub fn op_failed(&self, id: i64, error: &str) -> Result<()> {
        self.conn.execute(
            "UPDATE pending_ops SET attempts = attempts + 1, last_error = ?2 WHERE id = ?1",
            params![id, error],
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
            .query_row(
                "SELECT flags FROM locations WHERE folder_id = ?1 AND uidvalidity = ?2 AND uid = ?3",
                params![folder_id, uidvalidity as i64, uid as i64],
                |r| r.get::<_, String>(0),
            )
            .optional()?
            .map(|f| flags_vec(&f)))
    }
}

impl Store {
    /// Refreshes this process's lease heartbeat during a long pass, so no other process takes
    /// the account over as if we had died. False if the lease is no longer ours.
    pub fn touch_lease(&self, account_id: &str) -> Result<bool> {
        Ok(self.conn.execute(
            "UPDATE leases SET heartbeat_at = ?2 WHERE account_id = ?1 AND holder_pid = ?3",
            params![account_id, now(), std::process::id() as i64],
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
