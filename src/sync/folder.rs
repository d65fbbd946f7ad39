//! One folder of a pass, keyed by (folder, UIDVALIDITY, UID), in steps where the data changes
//! hands: open (SELECT, a UIDVALIDITY change, "mark as read" bookkeeping) → known mail (what
//! changed or vanished since the last pass) → new mail (`newmail.rs`) → mark as read → settle
//! (what the server announced meanwhile: arrivals, expunges, flag changes) → the folder's
//! state as of this pass.

use std::collections::HashSet;

use super::classify::split_deleted;
use super::engine::{FolderSummary, PassOptions, SyncSession};
use super::events::EventSender;
use super::newmail::{self, Target};
use super::plan::{self, NewMail, Span};
use crate::account::Account;
use crate::error::{AppError, Result};
use crate::imap::discovery::FolderStatus;
use crate::imap::exec::Tag;
use crate::imap::fetch::{self, Selected};
use crate::imap::unsolicited::{self, Announced};
use crate::store::{FlagRow, FolderRow, FolderSyncState, Level, Store};

/// Rounds of settling what the server announced before the pass moves on: each round applies
/// what arrived during the previous one.
const SETTLE_ROUNDS: usize = 4;

/// The selected folder as this pass sees it.
struct Opened {
    folder: FolderRow,
    sel: Selected,
    uv: u32,
    known_max: u32,
    qresync_used: bool,
    /// The new-mail fetch sent in one flight with the SELECT.
    flight: Option<Flight>,
}

/// The fetch sent right behind the SELECT, its answer still to be read. (No NOOP goes with
/// it: the server answers a NOOP as soon as it has sent the fetch, long before the fetch has
/// crossed a slow link, so changes made meanwhile would go unheard. The pass instead compares
/// every folder's counters once more at its end: see `engine::run_pass`.)
struct Flight {
    fetch: Tag,
    /// The connection it was sent on (a reconnect loses its answer).
    generation: u64,
}

/// What the pass knows of a folder before selecting it: its counters from LIST-STATUS.
/// `Some(known_max)` when its new mail can be asked for in the same flight as the SELECT:
/// the same UIDVALIDITY as stored (or a first sync), a plain `known_max+1:*` fetch
/// (not a first sync with a date or unread-only scope), and mail above the checkpoint.
fn predict_fetch(
    folder: &FolderRow,
    status: Option<&FolderStatus>,
    opts: &PassOptions,
) -> Option<u32> {
    let st = status?;
    let uv = st.uidvalidity?;
    let first = folder.uidvalidity.is_none();
    if !first && folder.uidvalidity != Some(uv) {
        return None;
    }
    let everything = folder.first_sync_done
        || plan::first_fetch(opts.scope, opts.unread_only) == plan::FirstFetch::Everything;
    if !everything || (first && folder.first_sync_done) {
        return None;
    }
    let known_max = if first {
        0
    } else {
        folder.checkpoint_uid.unwrap_or(0)
    };
    let more = st.messages.unwrap_or(0) > 0 && st.uidnext.is_some_and(|n| n > known_max + 1);
    more.then_some(known_max)
}

/// Whether the counters prove that nothing changed in the folder since the last pass: same
/// UIDVALIDITY, UIDNEXT, message count and HIGHESTMODSEQ (every flag change and expunge moves
/// it), and its last pass completed. Without CONDSTORE flags may have changed unseen.
pub fn unchanged(folder: &FolderRow, status: Option<&FolderStatus>, condstore: bool) -> bool {
    let Some(st) = status else { return false };
    condstore
        && folder.first_sync_done
        && st.uidvalidity.is_some()
        && st.uidvalidity == folder.uidvalidity
        && st.uidnext.is_some()
        && st.uidnext == folder.uidnext
        && st.messages.is_some()
        && st.messages == folder.exists_count
        && st.highestmodseq.is_some()
        && st.highestmodseq == folder.highestmodseq
        && folder
            .checkpoint_uid
            .zip(st.uidnext)
            .is_none_or(|(cp, next)| cp + 1 >= next)
}

/// What one folder's sync did, and whether it relies on the pass comparing the folder's
/// counters again at its end (its new mail came in the SELECT's flight, without a NOOP after).
pub struct Synced {
    pub summary: FolderSummary,
    pub check_again: bool,
}

#[allow(clippy::too_many_arguments)]
pub async fn sync_folder(
    store: &mut Store,
    account: &Account,
    opts: &PassOptions,
    ss: &mut SyncSession,
    folder: &FolderRow,
    status: Option<&FolderStatus>,
    events: Option<&EventSender>,
    bytes: &mut u64,
) -> Result<Synced> {
    let mut fs = FolderSummary {
        folder: folder.name.clone(),
        ..Default::default()
    };
    let predicted = predict_fetch(folder, status, opts);
    let mut o = open(store, account, opts, ss, folder, predicted).await?;
    let t = Target {
        account_id: account.id(),
        opts,
        folder: &o.folder,
        uidvalidity: o.uv,
        events,
    };
    let in_flight = o.flight.is_some();
    let fetched_any = match o.flight.take() {
        Some(flight) => {
            fetch_in_flight(store, ss, &t, &o, flight, status, bytes, &mut fs).await?;
            known_mail(store, ss, &o, &mut fs).await?;
            false
        }
        None => {
            known_mail(store, ss, &o, &mut fs).await?;
            new_mail(store, ss, &t, &o, opts, bytes, &mut fs).await?
        }
    };
    if !o.folder.first_sync_done {
        store.set_first_sync_done(o.folder.id)?;
        store.drop_stale_locations(o.folder.id, o.uv)?;
    }
    mark_read(store, ss, &o, opts).await?;
    settle(store, ss, &t, &o, fetched_any, &mut fs, bytes).await?;
    store.set_folder_synced(
        o.folder.id,
        &FolderSyncState {
            uidvalidity: o.uv,
            uidnext: o.sel.uidnext,
            highestmodseq: o.sel.highestmodseq,
            exists: o.sel.exists,
        },
    )?;
    Ok(Synced {
        summary: fs,
        check_again: in_flight,
    })
}

/// New mail asked for after the SELECT's answer (the plan may need to search first). Returns
/// whether anything was fetched.
async fn new_mail(
    store: &mut Store,
    ss: &mut SyncSession,
    t: &Target<'_>,
    o: &Opened,
    opts: &PassOptions,
    bytes: &mut u64,
    fs: &mut FolderSummary,
) -> Result<bool> {
    let has_new = o.sel.exists > 0 && o.sel.uidnext.is_none_or(|n| n > o.known_max + 1);
    let plan = match has_new {
        true => plan::plan_new_mail(store, ss, &o.folder, &o.sel, opts, o.known_max).await?,
        false => None,
    };
    let Some(plan) = plan else { return Ok(false) };
    let got = newmail::fetch_new(store, ss, t, o.known_max, plan).await?;
    *bytes += got.bytes;
    fs.new += got.new;
    fs.quarantined += got.quarantined;
    fs.bodies += got.bodies;
    Ok(true)
}

/// The fetch sent with the SELECT: its answer streams into the store.
#[allow(clippy::too_many_arguments)]
async fn fetch_in_flight(
    store: &mut Store,
    ss: &mut SyncSession,
    t: &Target<'_>,
    o: &Opened,
    flight: Flight,
    status: Option<&FolderStatus>,
    bytes: &mut u64,
    fs: &mut FolderSummary,
) -> Result<()> {
    let total = match (o.sel.uidnext, status.and_then(|s| s.messages)) {
        (Some(n), _) if o.known_max > 0 => {
            (n.saturating_sub(o.known_max + 1) as u64).min(o.sel.exists as u64)
        }
        (_, Some(m)) => m.max(o.sel.exists) as u64,
        _ => o.sel.exists as u64,
    };
    let plan = NewMail {
        spans: vec![Span::From(o.known_max + 1)],
        total,
        checkpoint: o.sel.uidnext.map_or(0, |n| n.saturating_sub(1)),
    };
    let got = newmail::fetch_new_sent(store, ss, t, o.known_max, plan, Some(flight.fetch)).await?;
    *bytes += got.bytes;
    fs.new += got.new;
    fs.quarantined += got.quarantined;
    fs.bodies += got.bodies;
    Ok(())
}

/// SELECT (with QRESYNC when the folder was synced before) — with the new-mail fetch and a NOOP
/// in the same flight when it can be predicted; a changed UIDVALIDITY starts the folder over
/// (messages keep their local ids); "mark as read" remembers where it started.
async fn open(
    store: &mut Store,
    account: &Account,
    opts: &PassOptions,
    ss: &mut SyncSession,
    folder: &FolderRow,
    predicted: Option<u32>,
) -> Result<Opened> {
    let caps = ss.caps;
    let mut qresync_params = match (caps.qresync, folder.uidvalidity, folder.highestmodseq) {
        (true, Some(uv), Some(ms)) if folder.first_sync_done => Some((uv, ms)),
        _ => None,
    };
    let wire = &folder.wire_name;
    let selected = match predicted {
        Some(known_max) => {
            select_in_flight(ss, wire, qresync_params, known_max, opts.whole()).await
        }
        None => fetch::select(&mut ss.session, wire, caps.condstore, qresync_params, false)
            .await
            .map(|s| (s, None)),
    };
    let (sel, mut flight) = match selected {
        // A resync answer that cannot be read: select plainly and compare flags instead.
        Err(_) if qresync_params.is_some() && unreadable(ss).is_some() => {
            ss.reconnect().await?;
            qresync_params = None;
            let sel = fetch::select(&mut ss.session, wire, caps.condstore, None, false).await?;
            (sel, None)
        }
        r => r?,
    };
    let uv = sel.uidvalidity;
    let validity_changed = folder.uidvalidity.is_some_and(|old| old != uv);
    if validity_changed && let Some(f) = flight.take() {
        // What was fetched in flight belongs to the folder's new incarnation: start over.
        drain(ss, f).await?;
    }
    let mut folder = folder.clone();
    if validity_changed {
        store.log_event(
            Some(account.id()),
            Level::Warn,
            &format!(
                "UIDVALIDITY of {} changed: fetching the folder again",
                folder.name
            ),
            Some(&format!("{:?} -> {uv}", folder.uidvalidity)),
            Some("nothing to do: local ids, pairings and flags queued locally are kept"),
        )?;
    }
    if validity_changed || folder.uidvalidity.is_none() {
        store.reset_folder_for_rebuild(folder.id, uv)?;
        folder = store.folder(folder.id)?.ok_or_else(|| {
            AppError::local("folder vanished from the database", "", "run sync again")
        })?;
    }
    // "Mark as read" only ever touches mail that arrives after it was switched on.
    if opts.mark_read && folder.mark_read_from_uid.is_none() {
        let from = sel
            .uidnext
            .unwrap_or(folder.checkpoint_uid.unwrap_or(0) + 1);
        store.set_mark_read_from(folder.id, Some(from))?;
        folder.mark_read_from_uid = Some(from);
    } else if !opts.mark_read && folder.mark_read_from_uid.is_some() {
        store.set_mark_read_from(folder.id, None)?;
        folder.mark_read_from_uid = None;
    }
    let known_max = folder.checkpoint_uid.unwrap_or(0);
    Ok(Opened {
        folder,
        sel,
        uv,
        known_max,
        qresync_used: qresync_params.is_some() && !validity_changed,
        flight,
    })
}

/// SELECT and `UID FETCH known_max+1:*` of the headers in one flight; reads the SELECT's
/// answer.
async fn select_in_flight(
    ss: &mut SyncSession,
    wire: &str,
    qresync: Option<(u32, u64)>,
    known_max: u32,
    whole: fetch::Whole,
) -> Result<(Selected, Option<Flight>)> {
    use crate::imap::exec::{answers, send};
    let condstore = ss.caps.condstore;
    let what = format!("SELECT {wire}");
    let select = fetch::select_command(wire, condstore, qresync, false);
    let s = &mut ss.session;
    let tag = send(s, &what, &select).await?;
    let range = format!("{}:*", known_max + 1);
    let fetch = send(
        s,
        "fetching headers",
        &fetch::headers_command(&range, condstore, whole),
    )
    .await?;
    let mut answer = fetch::SelectAnswer::default();
    unsolicited::reset(s, 0);
    s.get_mut().link_mut().selected = None;
    let out = answers(s, &what, &[tag], |_, r| Ok(answer.take(r))).await?;
    let flight = Flight {
        fetch,
        generation: ss.generation,
    };
    match out.into_iter().next().transpose() {
        Ok(_) => Ok((answer.finish(&mut ss.session, wire)?, Some(flight))),
        Err(e) => {
            // The fetch went to whatever was selected before (or nothing): its answer is read
            // and dropped.
            drain(ss, flight).await?;
            Err(e)
        }
    }
}

/// Reads and drops the answer of the fetch sent in flight.
async fn drain(ss: &mut SyncSession, flight: Flight) -> Result<()> {
    if ss.generation != flight.generation {
        return Ok(());
    }
    crate::imap::exec::answers(
        &mut ss.session,
        "reading answers no longer needed",
        &[flight.fetch],
        |_, r| Ok(matches!(r, async_imap::imap_proto::Response::Fetch(..))),
    )
    .await?;
    unsolicited::take(&mut ss.session);
    Ok(())
}

/// Applies flag updates (a message flagged \Deleted counts as gone); returns (updated, vanished).
fn apply_updates(
    store: &mut Store,
    o: &Opened,
    updates: impl Iterator<Item = FlagRow>,
) -> Result<(u64, u64)> {
    let (deleted, updates) = split_deleted(updates);
    let updated = store.apply_flags(o.folder.id, o.uv, &updates)?;
    let vanished = store.remove_locations(o.folder.id, o.uv, &deleted)?;
    Ok((updated, vanished))
}

/// Known mail: what changed or vanished since the last pass. With QRESYNC the SELECT said it;
/// with CONDSTORE a CHANGEDSINCE fetch plus a UID diff when the counts say something vanished;
/// without either every flag, whose UID list also reveals expunges.
async fn known_mail(
    store: &mut Store,
    ss: &mut SyncSession,
    o: &Opened,
    fs: &mut FolderSummary,
) -> Result<()> {
    if o.qresync_used {
        let gone: Vec<u32> = (o.sel.vanished.iter().copied())
            .filter(|u| *u <= o.known_max)
            .collect();
        fs.vanished += store.remove_locations(o.folder.id, o.uv, &gone)?;
        let changed = o.sel.changed.iter();
        let (u, v) = apply_updates(
            store,
            o,
            changed.map(|u| (u.uid, u.flags.clone(), u.modseq)),
        )?;
        fs.updated += u;
        fs.vanished += v;
        return Ok(());
    }
    if o.known_max == 0 {
        return Ok(());
    }
    let condstore_ok =
        ss.caps.condstore && o.folder.highestmodseq.is_some() && o.sel.highestmodseq.is_some();
    if !condstore_ok {
        return full_flags(store, ss, o, fs).await;
    }
    if o.sel.highestmodseq != o.folder.highestmodseq {
        changed_flags(store, ss, o, o.folder.highestmodseq, fs).await?;
    }
    let unchanged_counts = o.sel.uidnext.is_some()
        && o.sel.uidnext == o.folder.uidnext
        && Some(o.sel.exists) == o.folder.exists_count;
    if !unchanged_counts {
        fs.vanished += uid_diff(store, ss, o).await?;
    }
    Ok(())
}

/// The response that broke the connection could not be read: what is known about it.
fn unreadable(ss: &mut SyncSession) -> Option<crate::imap::exec::Unreadable> {
    ss.session.get_mut().link_mut().unreadable.take()
}

/// A flag fetch of `1:top` that goes on past messages whose answers cannot be read: each one
/// breaks the connection, which is opened again, and the fetch is asked again without it. Those
/// messages keep the flags they had (their UIDs are returned); the server that garbles more
/// than a few fails the pass.
async fn flags_without_unreadable(
    ss: &mut SyncSession,
    o: &Opened,
    top: u32,
    since: Option<u64>,
    on: &mut impl FnMut(fetch::FlagUpdate) -> Result<()>,
) -> Result<(Vec<u32>, Vec<u32>)> {
    let mut skip: Vec<u32> = Vec::new();
    loop {
        let range = ranges_without(top.max(1), &skip);
        match fetch::fetch_flags(&mut ss.session, &range, since, false, &mut *on).await {
            Ok(gone) => return Ok((gone, skip)),
            Err(e) => {
                let uid = unreadable(ss).and_then(|b| b.uid);
                match uid.filter(|u| *u <= top && !skip.contains(u)) {
                    Some(u) if skip.len() < 10 => skip.push(u),
                    _ => return Err(e),
                }
                super::newmail::reopen(ss, &o.folder, o.uv, since.is_none()).await?;
            }
        }
    }
}

/// `1:top` without the given UIDs, as a UID set.
fn ranges_without(top: u32, skip: &[u32]) -> String {
    let mut skip = skip.to_vec();
    skip.sort_unstable();
    let mut parts = Vec::new();
    let mut from = 1u32;
    for s in skip.into_iter().filter(|s| *s <= top) {
        if s > from {
            parts.push(format!("{from}:{}", s - 1));
        }
        from = s + 1;
    }
    if from <= top {
        parts.push(format!("{from}:{top}"));
    }
    if parts.is_empty() {
        // Nothing left to ask about; a UID no server has keeps the command valid.
        return format!("{}", top.saturating_add(1));
    }
    parts.join(",")
}

/// `UID FETCH 1:n (FLAGS) (CHANGEDSINCE m)`: the flags that changed since `since`.
async fn changed_flags(
    store: &mut Store,
    ss: &mut SyncSession,
    o: &Opened,
    since: Option<u64>,
    fs: &mut FolderSummary,
) -> Result<()> {
    let mut batch = Vec::new();
    let top = top(store, o)?;
    let mut on = |u: fetch::FlagUpdate| {
        batch.push((u.uid, u.flags, u.modseq));
        Ok(())
    };
    let (gone, _) = flags_without_unreadable(ss, o, top, since, &mut on).await?;
    let (u, v) = apply_updates(store, o, batch.into_iter())?;
    fs.updated += u;
    fs.vanished += v + store.remove_locations(o.folder.id, o.uv, &gone)?;
    Ok(())
}

/// The UIDs the server has up to the checkpoint, compared with the cache: what is missing there
/// vanished. Returns how many locations went.
async fn uid_diff(store: &mut Store, ss: &mut SyncSession, o: &Opened) -> Result<u64> {
    let top = top(store, o)?;
    let range = format!("1:{}", top.max(1));
    let server: HashSet<u32> = fetch::uid_search(&mut ss.session, &format!("UID {range}"))
        .await?
        .into_iter()
        .collect();
    let gone: Vec<u32> = store
        .folder_uids(o.folder.id, o.uv)?
        .into_iter()
        .filter(|u| *u <= top && !server.contains(u))
        .collect();
    store.remove_locations(o.folder.id, o.uv, &gone)
}

/// The folder's checkpoint now: every UID up to it has been fetched (or was out of scope).
fn top(store: &Store, o: &Opened) -> Result<u32> {
    let cp = store.folder(o.folder.id)?.and_then(|f| f.checkpoint_uid);
    Ok(cp.unwrap_or(0).max(o.known_max))
}

/// Without CONDSTORE: every flag, and the UID list that reveals expunges.
async fn full_flags(
    store: &mut Store,
    ss: &mut SyncSession,
    o: &Opened,
    fs: &mut FolderSummary,
) -> Result<()> {
    let top = top(store, o)?;
    let mut server: Vec<u32> = Vec::new();
    let mut batch: Vec<FlagRow> = Vec::new();
    let mut deleted = Vec::new();
    let mut updated = 0u64;
    let (fid, uv) = (o.folder.id, o.uv);
    let mut on = |u: fetch::FlagUpdate| {
        if u.flags.iter().any(|f| f.eq_ignore_ascii_case("\\Deleted")) {
            deleted.push(u.uid);
        } else {
            server.push(u.uid);
            batch.push((u.uid, u.flags, u.modseq));
        }
        if batch.len() >= 2000 {
            updated += store.apply_flags(fid, uv, &batch)?;
            batch.clear();
        }
        Ok(())
    };
    // Messages whose answer could not be read are still there: they keep their flags.
    let (_, unknown) = flags_without_unreadable(ss, o, top, None, &mut on).await?;
    server.extend(unknown);
    updated += store.apply_flags(fid, uv, &batch)?;
    fs.updated += updated;
    server.sort_unstable();
    let gone: Vec<u32> = store
        .folder_uids(fid, uv)?
        .into_iter()
        .filter(|u| *u <= top && server.binary_search(u).is_err())
        .collect();
    fs.vanished += store.remove_locations(fid, uv, &gone)?;
    Ok(())
}

/// Mark as read on the server: only new mail, only if the user asked for it.
async fn mark_read(
    store: &mut Store,
    ss: &mut SyncSession,
    o: &Opened,
    opts: &PassOptions,
) -> Result<()> {
    let Some(from) = o.folder.mark_read_from_uid.filter(|_| opts.mark_read) else {
        return Ok(());
    };
    let uids = store.unseen_uids_from(o.folder.id, o.uv, from)?;
    if uids.is_empty() {
        return Ok(());
    }
    fetch::simple(
        &mut ss.session,
        "marking new mail read",
        &format!("UID STORE {} +FLAGS.SILENT (\\Seen)", fetch::uid_set(&uids)),
    )
    .await?;
    store.mark_seen_local(o.folder.id, o.uv, &uids)
}

/// Applies what the server announced while this folder was synced, so the cache equals the
/// server at the end of the pass: mail that arrived is fetched, UIDs that vanished are removed,
/// flag changes applied; expunges without UIDs (or announcements that may have been dropped)
/// are reconciled by comparing UIDs, flags without UIDs by fetching flags again. A NOOP after
/// a fetch collects what the server held back until the command ended.
async fn settle(
    store: &mut Store,
    ss: &mut SyncSession,
    t: &Target<'_>,
    o: &Opened,
    fetched_any: bool,
    fs: &mut FolderSummary,
    bytes: &mut u64,
) -> Result<()> {
    if fetched_any {
        fetch::simple(&mut ss.session, "checking for changes (NOOP)", "NOOP").await?;
    }
    for _ in 0..SETTLE_ROUNDS {
        let heard = unsolicited::take(&mut ss.session);
        if heard.is_quiet() {
            return Ok(());
        }
        apply_heard(store, ss, o, &heard, fs).await?;
        if heard.grew {
            let got = arrivals(store, ss, t).await?;
            *bytes += got.bytes;
            fs.new += got.new;
            fs.quarantined += got.quarantined;
            fs.bodies += got.bodies;
        }
        fetch::simple(&mut ss.session, "checking for changes (NOOP)", "NOOP").await?;
    }
    Ok(())
}

/// Vanished UIDs, flag changes, and the reconciliations a record calls for.
async fn apply_heard(
    store: &mut Store,
    ss: &mut SyncSession,
    o: &Opened,
    heard: &Announced,
    fs: &mut FolderSummary,
) -> Result<()> {
    fs.vanished += store.remove_locations(o.folder.id, o.uv, &heard.vanished)?;
    let flags = heard
        .flags
        .iter()
        .map(|u| (u.uid, u.flags.clone(), u.modseq));
    let (u, v) = apply_updates(store, o, flags)?;
    fs.updated += u;
    fs.vanished += v;
    let flags_unknown = heard.flags_without_uid > 0 || heard.lost;
    if flags_unknown && ss.caps.condstore && o.sel.highestmodseq.is_some() {
        changed_flags(store, ss, o, o.sel.highestmodseq, fs).await?;
    } else if flags_unknown {
        return full_flags(store, ss, o, fs).await;
    }
    if heard.needs_uid_diff() {
        fs.vanished += uid_diff(store, ss, o).await?;
    }
    Ok(())
}

/// Mail that arrived during the pass: everything above the checkpoint.
async fn arrivals(
    store: &mut Store,
    ss: &mut SyncSession,
    t: &Target<'_>,
) -> Result<newmail::Fetched> {
    let known_max = store
        .folder(t.folder.id)?
        .and_then(|f| f.checkpoint_uid)
        .unwrap_or(0);
    let plan = NewMail {
        spans: vec![Span::From(known_max + 1)],
        total: 0,
        checkpoint: 0,
    };
    newmail::fetch_new(store, ss, t, known_max, plan).await
}

#[cfg(test)]
mod tests {
    use super::ranges_without;

    #[test]
    fn a_range_without_some_uids() {
        assert_eq!(ranges_without(10, &[]), "1:10");
        assert_eq!(ranges_without(10, &[5]), "1:4,6:10");
        assert_eq!(ranges_without(10, &[1, 10]), "2:9");
        assert_eq!(ranges_without(10, &[6, 5]), "1:4,7:10");
        assert_eq!(ranges_without(1, &[1]), "2");
    }
}
