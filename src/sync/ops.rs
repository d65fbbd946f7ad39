//! Pushing queued local changes to the server. Runs at the start of every pass, before the
//! server's state is pulled, so a local change is never overwritten by the older server value.
//!
//! Conflicts (see docs/sync.md): the queued local change wins for the flags it names; a change
//! whose message vanished or whose folder was reset (UIDVALIDITY) is dropped with a note.

use super::engine::SyncSession;
use crate::account::Account;
use crate::error::{Kind, Result};
use crate::imap::append::quote;
use crate::imap::fetch;
use crate::store::{Level, OpKind, Store};

/// After this many refusals by the server an op is given up (and logged) instead of retried.
const MAX_ATTEMPTS: i64 = 5;

pub async fn push_ops(store: &mut Store, account: &Account, ss: &mut SyncSession) -> Result<u64> {
    let ops = store.open_ops(account.id())?;
    let mut pushed = 0;
    let mut selected: Option<String> = None;
    for op in ops {
        let t = &op.target;
        let folder = store.folder(t.folder_id)?;
        let valid = folder
            .as_ref()
            .is_some_and(|f| f.uidvalidity == Some(t.uidvalidity));
        if !valid {
            store.op_done(
                op.id,
                Some("the folder was reset on the server (UIDVALIDITY); change not applied"),
            )?;
            store.log_event(
                Some(account.id()),
                Level::Warn,
                &format!(
                    "a queued change to message {} was dropped",
                    op.message_id.unwrap_or(0)
                ),
                Some("its folder was recreated on the server"),
                Some("apply the change again if still wanted"),
            )?;
            continue;
        }
        if selected.as_deref() != Some(t.wire_name.as_str()) {
            fetch::select(&mut ss.session, &t.wire_name, false, None, false).await?;
            selected = Some(t.wire_name.clone());
        }
        let res = match op.kind {
            OpKind::AddFlags => {
                fetch::simple(
                    &mut ss.session,
                    "pushing a flag change",
                    &format!("UID STORE {} +FLAGS.SILENT ({})", t.uid, t.arg),
                )
                .await
            }
            OpKind::RemoveFlags => {
                fetch::simple(
                    &mut ss.session,
                    "pushing a flag change",
                    &format!("UID STORE {} -FLAGS.SILENT ({})", t.uid, t.arg),
                )
                .await
            }
            OpKind::Move => move_one(ss, t.uid, &t.arg).await,
        };
        match res {
            Ok(()) => {
                store.op_done(op.id, None)?;
                pushed += 1;
            }
            // The connection is gone (or the server is busy): the op waits for the next pass.
            Err(e)
                if e.kind == Kind::Transient
                    && (crate::error::is_unreachable(&e) || e.summary.contains("temporarily")) =>
            {
                store.op_failed(op.id, &e.to_string())?;
                return Err(e);
            }
            Err(e) => {
                store.op_failed(op.id, &e.to_string())?;
                if op.attempts + 1 >= MAX_ATTEMPTS {
                    store.op_done(op.id, Some(&format!("given up: {e}")))?;
                    store.log_event(
                        Some(account.id()),
                        Level::Error,
                        &format!(
                            "the server refused a queued change to message {}",
                            op.message_id.unwrap_or(0)
                        ),
                        Some(&e.to_string()),
                        Some(
                            "check the folder exists and is writable, then apply the change again",
                        ),
                    )?;
                }
            }
        }
    }
    Ok(pushed)
}

/// UID MOVE when the server has it; else COPY, flag \Deleted and (with UIDPLUS) UID EXPUNGE of
/// exactly that UID — never a plain EXPUNGE, which would remove other \Deleted mail.
async fn move_one(ss: &mut SyncSession, uid: u32, target_wire: &str) -> Result<()> {
    if ss.caps.mv {
        return fetch::simple(
            &mut ss.session,
            "moving a message",
            &format!("UID MOVE {uid} {}", quote(target_wire)),
        )
        .await;
    }
    fetch::simple(
        &mut ss.session,
        "copying a message",
        &format!("UID COPY {uid} {}", quote(target_wire)),
    )
    .await?;
    fetch::simple(
        &mut ss.session,
        "deleting the moved original",
        &format!("UID STORE {uid} +FLAGS.SILENT (\\Deleted)"),
    )
    .await?;
    if ss.caps.uidplus {
        fetch::simple(
            &mut ss.session,
            "expunging the moved original",
            &format!("UID EXPUNGE {uid}"),
        )
        .await?;
    }
    Ok(())
}
