//! The folders of a pass over several connections (`sync.max_connections`): the folders that
//! need work are split into groups of about equal work, the biggest first; the pass's own
//! connection takes one group while the others open connections of their own (each with its
//! own database connection) and take the rest, all at once on the task's thread. On a distant
//! server this overlaps the round trips of many small folders with the transfer of a big one.

use std::collections::HashMap;

use super::engine::{FolderSummary, PassOptions, PassSummary, SyncSession, in_folder};
use super::events::{EventSender, SyncEvent, emit};
use crate::account::Account;
use crate::error::Result;
use crate::imap::discovery::FolderStatus;
use crate::store::{FolderRow, Store};

/// A folder worth a connection of its own: about this many messages to fetch (a few round
/// trips' worth on a distant server; opening a connection costs about four).
const WORTH_A_CONNECTION: u64 = 2;

/// Messages a folder's pass is expected to fetch (from its counters), at least 1 for the round
/// trips every folder costs.
fn weight(f: &FolderRow, st: Option<&FolderStatus>) -> u64 {
    let known = f.checkpoint_uid.unwrap_or(0) as u64;
    let fetch = match st.and_then(|s| s.uidnext) {
        Some(next) => (next as u64).saturating_sub(known + 1),
        None => 0,
    };
    fetch.max(1)
}

/// Splits the folders into at most `max` groups of about equal weight (largest first, each to
/// the lightest group); never more groups than the work is worth.
pub fn groups(
    work: Vec<FolderRow>,
    status: &HashMap<String, FolderStatus>,
    max: usize,
) -> Vec<Vec<FolderRow>> {
    let mut weighed: Vec<(u64, FolderRow)> = work
        .into_iter()
        .map(|f| (weight(&f, status.get(&f.wire_name)), f))
        .collect();
    let total: u64 = weighed.iter().map(|(w, _)| *w).sum();
    let worth = (weighed.len() as u64)
        .min(total / WORTH_A_CONNECTION)
        .max(1);
    let n = max.max(1).min(worth as usize).min(weighed.len().max(1));
    weighed.sort_by(|a, b| b.0.cmp(&a.0));
    let mut out: Vec<(u64, Vec<FolderRow>)> = (0..n).map(|_| (0, Vec::new())).collect();
    for (w, f) in weighed {
        if let Some(g) = out.iter_mut().min_by_key(|g| g.0) {
            g.0 += w;
            g.1.push(f);
        }
    }
    out.into_iter()
        .map(|g| g.1)
        .filter(|g| !g.is_empty())
        .collect()
}

/// One group on one connection: its folders one after the other.
#[allow(clippy::too_many_arguments)]
async fn run_group(
    store: &mut Store,
    account: &Account,
    opts: &PassOptions,
    ss: &mut SyncSession,
    folders: &[FolderRow],
    status: &HashMap<String, FolderStatus>,
    events: Option<&EventSender>,
    bytes: &mut u64,
) -> Result<Vec<FolderSummary>> {
    let mut out = Vec::new();
    for f in folders {
        let st = status.get(&f.wire_name);
        let fs = super::folder::sync_folder(store, account, opts, ss, f, st, events, bytes)
            .await
            .map_err(|e| in_folder(e, &f.name))?;
        if fs.new + fs.updated + fs.vanished > 0 {
            emit(
                events,
                SyncEvent::FolderChanged {
                    account_id: account.id().to_string(),
                    folder: f.name.clone(),
                },
            );
        }
        out.push(fs);
    }
    Ok(out)
}

/// Runs the groups: the first on the pass's connection, the others on connections opened for
/// them meanwhile, each with a database connection of its own (closed again at the end).
#[allow(clippy::too_many_arguments)]
pub async fn run(
    store: &mut Store,
    account: &Account,
    opts: &PassOptions,
    ss: &mut SyncSession,
    groups: Vec<Vec<FolderRow>>,
    status: &HashMap<String, FolderStatus>,
    events: Option<&EventSender>,
    summary: &mut PassSummary,
) -> Result<()> {
    let mut groups = groups.into_iter();
    let first = groups.next().unwrap_or_default();
    let mut helpers = Vec::new();
    for g in groups {
        helpers.push((g, store.reopen_plain()?, ss.another()));
    }
    let mut first_bytes = 0u64;
    let main = run_group(
        store,
        account,
        opts,
        ss,
        &first,
        status,
        events,
        &mut first_bytes,
    );
    let others =
        futures::future::join_all(helpers.into_iter().map(|(g, mut db, another)| async move {
            let mut bytes = 0u64;
            let mut hs = another.open().await?;
            let r = run_group(
                &mut db, account, opts, &mut hs, &g, status, events, &mut bytes,
            )
            .await;
            if r.as_ref()
                .err()
                .is_none_or(|e| !crate::error::is_unreachable(e))
            {
                hs.logout().await;
            }
            r.map(|fs| (fs, bytes))
        }));
    let (main, others) = futures::future::join(main, others).await;
    summary.folders.extend(main?);
    summary.bytes += first_bytes;
    for r in others {
        let (fs, bytes) = r?;
        summary.folders.extend(fs);
        summary.bytes += bytes;
    }
    Ok(())
}
