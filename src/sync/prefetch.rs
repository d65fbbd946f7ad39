//! Bodies of small messages fetched in the background (`sync.body_prefetch_max_bytes`, at most
//! 500 per pass). A body the server answers unreadably does not fail the pass: the headers are
//! all stored and the body is fetched again when opened. It is logged once, the connection (which
//! the unparsed bytes broke) is opened again, and the rest are prefetched without it.

use std::collections::HashMap;

use super::engine::{PassOptions, SyncSession, store_body};
use crate::account::Account;
use crate::error::Result;
use crate::imap::fetch;
use crate::store::{Level, Store};

/// Unreadable bodies skipped in one pass before prefetch gives up for the pass.
const MAX_SKIPS: usize = 5;

/// Prefetches what the store asks for; returns how many bodies were stored.
pub async fn prefetch(
    store: &mut Store,
    account: &Account,
    opts: &PassOptions,
    ss: &mut SyncSession,
    bytes: &mut u64,
) -> Result<u64> {
    if opts.body_prefetch_max_bytes == 0 {
        return Ok(0);
    }
    let mut done = 0u64;
    for _ in 0..=MAX_SKIPS {
        let mut failed_on = None;
        let r = prefetch_round(store, account, opts, ss, bytes, &mut done, &mut failed_on).await;
        let Err(e) = r else { return Ok(done) };
        let Some(bad) = ss.session.get_mut().link_mut().unreadable.take() else {
            return Err(e);
        };
        let id = bad.uid.and_then(|u| {
            failed_on
                .as_ref()
                .and_then(|m: &HashMap<u32, i64>| m.get(&u))
        });
        let Some(&id) = id else {
            return Err(e);
        };
        ss.unreadable_bodies.insert(id);
        store.log_event(
            Some(account.id()),
            Level::Warn,
            &format!("the body of message {id} could not be prefetched"),
            Some(&bad.reason),
            Some("nothing to do: it is fetched again when the message is opened"),
        )?;
        ss.reconnect().await?;
    }
    Ok(done)
}

/// One round over what is left; on a failure, `failed_on` holds the UID → message map of the
/// batch that failed.
async fn prefetch_round(
    store: &mut Store,
    account: &Account,
    opts: &PassOptions,
    ss: &mut SyncSession,
    bytes: &mut u64,
    done: &mut u64,
    failed_on: &mut Option<HashMap<u32, i64>>,
) -> Result<()> {
    let todo: Vec<_> = store
        .bodies_to_prefetch(account.id(), opts.body_prefetch_max_bytes, 500)?
        .into_iter()
        .filter(|t| !ss.unreadable_bodies.contains(&t.0))
        .collect();
    let mut i = 0;
    while i < todo.len() {
        let (folder_id, wire, uv) = (todo[i].1, todo[i].2.clone(), todo[i].3);
        let mut j = i;
        let mut by_uid = HashMap::new();
        while j < todo.len() && todo[j].1 == folder_id && todo[j].3 == uv {
            by_uid.insert(todo[j].4, todo[j].0);
            j += 1;
        }
        i = j;
        let sel = fetch::select(&mut ss.session, &wire, false, None, true).await?;
        if sel.uidvalidity != uv {
            continue;
        }
        let mut uids: Vec<u32> = by_uid.keys().copied().collect();
        uids.sort_unstable();
        let r = fetch::fetch_bodies(&mut ss.session, &fetch::uid_set(&uids), |uid, raw| {
            if let Some(&id) = by_uid.get(&uid) {
                *bytes += raw.len() as u64;
                store_body(store, id, &raw)?;
                *done += 1;
            }
            Ok(())
        })
        .await;
        if r.is_err() {
            *failed_on = Some(by_uid);
        }
        r?;
    }
    Ok(())
}
