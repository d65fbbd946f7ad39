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
    weighed.sort_by_key(|w| std::cmp::Reverse(w.0));
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
) -> Result<Vec<(FolderSummary, Option<i64>)>> {
    let mut out = Vec::new();
    for f in folders {
        let st = status.get(&f.wire_name);
        let done = super::folder::sync_folder(store, account, opts, ss, f, st, events, bytes)
            .await
            .map_err(|e| in_folder(e, &f.name))?;
        let fs = done.summary;
        if fs.new + fs.updated + fs.vanished > 0 {
            emit(
                events,
                SyncEvent::FolderChanged {
                    account_id: account.id().to_string(),
                    folder: f.name.clone(),
                },
            );
        }
        out.push((fs, done.check_again.then_some(f.id)));
    }
    Ok(out)
}

/// What a helper thread brings back: its folders' summaries (with the ids to compare again)
/// and the bytes it fetched.
type GroupOut = (Vec<(FolderSummary, Option<i64>)>, u64);

/// One group on a connection and a database connection of its own, on a thread of its own (so
/// its TLS, parsing and store work never holds up the pass's own stream).
fn spawn_helper(
    group: Vec<FolderRow>,
    db: Store,
    another: super::engine::Another,
    account: Account,
    opts: PassOptions,
    status: HashMap<String, FolderStatus>,
    events: Option<EventSender>,
) -> tokio::sync::oneshot::Receiver<Result<GroupOut>> {
    super::supervisor::on_own_thread("sync helper".into(), move || {
        Box::pin(async move {
            let mut db = db;
            let mut bytes = 0u64;
            let mut hs = another.open().await?;
            let ev = events.as_ref();
            let r = run_group(
                &mut db, &account, &opts, &mut hs, &group, &status, ev, &mut bytes,
            )
            .await;
            if r.as_ref()
                .err()
                .is_none_or(|e| !crate::error::is_unreachable(e))
            {
                hs.logout().await;
            }
            r.map(|fs| (fs, bytes))
        })
    })
}

/// Runs the groups: the first on the pass's connection, the others on connections opened for
/// them meanwhile, each on a thread and a database connection of its own (closed again at the
/// end). Returns the folders whose counters the pass must compare again at its end.
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
) -> Result<Vec<i64>> {
    let mut groups = groups.into_iter();
    let first = groups.next().unwrap_or_default();
    let mut helpers = Vec::new();
    for g in groups {
        let db = store.reopen_plain()?;
        let (a, o, st, ev) = (
            account.clone(),
            opts.clone(),
            status.clone(),
            events.cloned(),
        );
        helpers.push(spawn_helper(g, db, ss.another(), a, o, st, ev));
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
    )
    .await;
    let mut check = Vec::new();
    let mut take = |done: Vec<(FolderSummary, Option<i64>)>| {
        for (fs, again) in done {
            summary.folders.push(fs);
            check.extend(again);
        }
    };
    let mut failed = main.as_ref().err().cloned();
    if let Ok(done) = main {
        take(done);
    }
    summary.bytes += first_bytes;
    for h in helpers {
        let r = h.await.unwrap_or_else(|_| {
            Err(crate::error::AppError::local(
                "a sync helper thread stopped unexpectedly",
                "",
                "run sync again; report this as a bug if it repeats",
            ))
        });
        match r {
            Ok((done, bytes)) => {
                take(done);
                summary.bytes += bytes;
            }
            Err(e) => failed = failed.or(Some(e)),
        }
    }
    match failed {
        Some(e) => Err(e),
        None => Ok(check),
    }
}
