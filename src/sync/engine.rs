//! One sync pass over one account. Per folder, keyed by (folder, UIDVALIDITY, UID):
//! - new mail: one streamed `UID FETCH last+1:*` of header fields, committed in batches with a
//!   checkpoint, so an interrupted first sync resumes where it stopped; a first sync with a
//!   scope (`sync.since`, unread-only) fetches only what `UID SEARCH` finds, and under
//!   `since = "new"` nothing old (the folder starts at UIDNEXT);
//! - known mail: QRESYNC (VANISHED + changed flags at SELECT), else CONDSTORE CHANGEDSINCE plus a
//!   UID SEARCH diff when the counts say something vanished, else a full FLAGS fetch diff;
//! - UIDVALIDITY change: the folder is fetched again; messages keep their local ids.
//!
//! Safety: the pass only reads from the server, except for queued local changes (pushed first)
//! and "mark as read" on mail that arrived after the option was switched on. An empty or
//! rebuilt cache therefore never deletes or re-flags anything on the server.

use std::collections::HashSet;
use std::io::IsTerminal;
use std::io::Write as _;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::events::{EventSender, SyncEvent, emit};
use crate::account::{Account, PROBE_ID_PREFIX};
use crate::config::{Config, HistoryScope, ProcessScope};
use crate::error::{AppError, Result};
use crate::imap::ImapSession;
use crate::imap::discovery::{self, Role};
use crate::imap::fetch::{self, HeaderItem};
use crate::mail::parse;
use crate::store::{
    BulkInsert, Checkpointer, FlagRow, FolderRow, FolderSyncState, Level, NewMessage, Store,
};

/// What the server can do, from CAPABILITY after login.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Caps {
    pub condstore: bool,
    pub qresync: bool,
    pub idle: bool,
    pub uidplus: bool,
    pub mv: bool,
}

pub struct SyncSession {
    pub session: ImapSession,
    pub caps: Caps,
    /// The server's CAPABILITY list, space separated (stored for diagnostics).
    pub caps_text: String,
}

/// Connects, logs in, reads capabilities and enables QRESYNC when offered. (Takes the
/// password rather than the store: a `&Store` cannot cross an await in a spawned task.)
pub async fn open_session(account: &Account, pw: &secrecy::SecretString) -> Result<SyncSession> {
    let mut session = crate::imap::connect(&account.imap_target(), pw).await?;
    let caps_list = session
        .capabilities()
        .await
        .map_err(|e| crate::imap::connect::protocol_error("CAPABILITY", e))?;
    let has = |c: &str| caps_list.has_str(c);
    let mut caps = Caps {
        condstore: has("CONDSTORE") || has("QRESYNC"),
        qresync: false,
        idle: has("IDLE"),
        uidplus: has("UIDPLUS"),
        mv: has("MOVE"),
    };
    let mut all: Vec<String> = caps_list.iter().map(|c| format!("{c:?}")).collect();
    all.sort();
    while session.unsolicited_responses.try_recv().is_ok() {}
    if has("QRESYNC") && std::env::var_os("MAILROOM_NO_QRESYNC").is_none() {
        fetch::simple(&mut session, "ENABLE QRESYNC", "ENABLE QRESYNC").await?;
        caps.qresync = true;
    }
    Ok(SyncSession {
        session,
        caps,
        caps_text: all.join(" "),
    })
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct FolderSummary {
    pub folder: String,
    pub new: u64,
    pub updated: u64,
    pub vanished: u64,
    pub quarantined: u64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct PassSummary {
    pub folders: Vec<FolderSummary>,
    pub ops_pushed: u64,
    pub bodies: u64,
    pub duration_ms: u64,
    pub bytes: u64,
}

impl PassSummary {
    pub fn new_total(&self) -> u64 {
        self.folders.iter().map(|f| f.new).sum()
    }
}

/// Per-account knobs resolved from the config.
#[derive(Debug, Clone)]
pub struct PassOptions {
    pub deny: Vec<String>,
    /// How much history a folder's first sync fetches (`sync.since`).
    pub scope: HistoryScope,
    pub unread_only: bool,
    pub mark_read: bool,
    pub batch_size: usize,
    pub body_prefetch_max_bytes: u64,
    /// Draw a progress line on stderr (only when it is a terminal).
    pub tty_progress: bool,
}

impl PassOptions {
    pub fn from_config(config: &Config, account: &Account) -> Result<PassOptions> {
        let o = &account.cfg.sync;
        let mut deny = account.cfg.deny.clone();
        deny.extend(config.general.deny.iter().cloned());
        Ok(PassOptions {
            deny,
            scope: o.since,
            unread_only: o.process == ProcessScope::UnreadOnly,
            mark_read: o.mark_read,
            batch_size: o.batch_size.clamp(1, 50_000),
            body_prefetch_max_bytes: o.body_prefetch_max_bytes,
            tty_progress: false,
        })
    }
}

/// One pass: push queued changes, refresh folders, sync every chosen folder, prefetch bodies.
pub async fn run_pass(
    store: &mut Store,
    account: &Account,
    opts: &PassOptions,
    ss: &mut SyncSession,
    events: Option<&EventSender>,
) -> Result<PassSummary> {
    let started = Instant::now();
    let mut summary = PassSummary::default();
    let list = discovery::list_folders(&mut ss.session).await?;
    while ss.session.unsolicited_responses.try_recv().is_ok() {}
    store.upsert_folders(account.id(), &list)?;
    summary.ops_pushed = super::ops::push_ops(store, account, ss).await?;
    let folders: Vec<FolderRow> = store
        .folders(account.id())?
        .into_iter()
        .filter(|f| f.sync_enabled && f.selectable && f.present)
        .collect();
    for f in folders {
        let fs = sync_folder(store, account, opts, ss, &f, events, &mut summary.bytes).await?;
        if fs.new + fs.updated + fs.vanished > 0 {
            emit(
                events,
                SyncEvent::FolderChanged {
                    account_id: account.id().to_string(),
                    folder: f.name.clone(),
                },
            );
        }
        summary.folders.push(fs);
    }
    summary.bodies = prefetch_bodies(store, account, opts, ss, &mut summary.bytes).await?;
    summary.duration_ms = started.elapsed().as_millis() as u64;
    Ok(summary)
}

#[derive(Clone)]
struct Progress {
    account_id: String,
    folder: String,
    total: u64,
    done: u64,
    tty: bool,
    events: Option<EventSender>,
}

impl Progress {
    fn report(&self, store: &Store) {
        let _ = store.set_progress(
            &self.account_id,
            &self.folder,
            self.done as i64,
            self.total as i64,
        );
        emit(
            self.events.as_ref(),
            SyncEvent::Progress {
                account_id: self.account_id.clone(),
                folder: self.folder.clone(),
                done: self.done,
                total: self.total,
            },
        );
        if self.tty {
            let pct = (self.done * 100).checked_div(self.total).unwrap_or(100);
            // A folder name is the server's text: no escape sequence of it reaches the terminal.
            // A write error (the terminal went away) is no reason to stop syncing.
            let mut err = std::io::stderr().lock();
            let _ = write!(
                err,
                "\r{}: {}/{} ({pct}%)   ",
                crate::mail::sanitize::clean_line(&self.folder),
                self.done,
                self.total
            )
            .and_then(|_| err.flush());
        }
    }
}

enum WriterMsg {
    /// Fetched messages in UID order, already parsed and classified on the network side. In
    /// chunks of `WRITER_CHUNK`: one channel operation (and writer wake-up) per message cost
    /// both threads futex calls and context switches.
    Items(Vec<(HeaderItem, Verdict)>),
    /// The fetch ended; a non-zero value is a checkpoint proven by a completed fetch.
    Finish(u32),
}

/// Sends into the bounded writer channel, waiting when it is full (backpressure).
fn send_blocking(tx: &std::sync::mpsc::SyncSender<WriterMsg>, msg: WriterMsg) -> Result<()> {
    use std::sync::mpsc::TrySendError;
    let gone = || {
        AppError::local(
            "the sync writer stopped",
            "",
            "see the error reported with it; run sync again",
        )
    };
    match tx.try_send(msg) {
        Ok(()) => Ok(()),
        Err(TrySendError::Disconnected(_)) => Err(gone()),
        Err(TrySendError::Full(msg)) => {
            let multi = tokio::runtime::Handle::try_current()
                .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
            let r = if multi {
                tokio::task::block_in_place(|| tx.send(msg))
            } else {
                tx.send(msg)
            };
            r.map_err(|_| gone())
        }
    }
}

/// Stores fetched headers on its own thread and database connection, as they arrive, into an
/// open transaction that is committed together with the folder's checkpoint every
/// `sync.batch_size` messages — or sooner when it has been open for half a second or the fetch
/// pauses, so the write lock is never held long and a slow server still makes progress.
/// Nothing is collected in memory but the channel's few thousand items.
struct Writer {
    store: Store,
    account_id: String,
    folder_id: i64,
    folder_name: String,
    uidvalidity: u32,
    known_max: u32,
    opts: PassOptions,
    progress: Progress,
    checkpointer: Checkpointer,
}

struct WriterOut {
    new: u64,
    quarantined: u64,
    bad_uids: Vec<u32>,
    progress: Progress,
}

/// Messages between two progress reports.
const PROGRESS_EVERY: u64 = 2000;
/// Messages per channel message to the writer.
const WRITER_CHUNK: usize = 256;
/// Chunks in flight between the network and the writer (backpressure beyond): 4096 messages.
const WRITER_QUEUE: usize = 16;
/// A transaction open longer than this is committed: a console action (pair, flag, delete)
/// waits for the write lock at most about this long during a first sync.
const WRITER_MAX_TX: Duration = Duration::from_millis(500);
/// A fetch quiet for this long gets what it delivered so far committed.
const WRITER_IDLE_COMMIT: Duration = Duration::from_millis(200);

/// Whether a commit asks the Checkpointer to copy the WAL back.
#[derive(PartialEq, Eq, Clone, Copy)]
enum Wal {
    Checkpoint,
    Leave,
}

/// The writer's open transaction.
struct OpenTx {
    bulk: BulkInsert,
    started: Instant,
    messages: usize,
}

impl Writer {
    fn run(mut self, rx: std::sync::mpsc::Receiver<WriterMsg>) -> Result<WriterOut> {
        let mut open: Option<OpenTx> = None;
        let result = self.stream(&rx, &mut open);
        if result.is_err() {
            // What was not committed is fetched again next time: the checkpoint did not move.
            self.store.bulk_rollback();
        }
        result
    }

    fn stream(
        &mut self,
        rx: &std::sync::mpsc::Receiver<WriterMsg>,
        open: &mut Option<OpenTx>,
    ) -> Result<WriterOut> {
        use std::sync::mpsc::RecvTimeoutError;
        let mut max_uid = self.known_max;
        let mut out_new = 0u64;
        let mut quarantined = 0u64;
        let mut bad_uids = Vec::new();
        let mut finish = 0u32;
        loop {
            let msg = match open {
                Some(o) => {
                    let wait = WRITER_MAX_TX
                        .saturating_sub(o.started.elapsed())
                        .min(WRITER_IDLE_COMMIT);
                    match rx.recv_timeout(wait) {
                        Ok(msg) => msg,
                        Err(RecvTimeoutError::Timeout) => {
                            out_new += self.commit(open, max_uid, Wal::Checkpoint)?;
                            continue;
                        }
                        Err(RecvTimeoutError::Disconnected) => break,
                    }
                }
                None => match rx.recv() {
                    Ok(msg) => msg,
                    Err(_) => break,
                },
            };
            let items = match msg {
                WriterMsg::Items(items) => items,
                WriterMsg::Finish(cp) => {
                    finish = cp;
                    break;
                }
            };
            for (it, verdict) in items {
                max_uid = max_uid.max(it.uid);
                self.progress.done += 1;
                if self.progress.done.is_multiple_of(PROGRESS_EVERY) {
                    // Events and the terminal line now; the DB row becomes visible with the commit.
                    self.progress.report(&self.store);
                }
                match verdict {
                    Verdict::Store(m) => {
                        let o = self.ensure_open(open)?;
                        self.store.bulk_insert(
                            &mut o.bulk,
                            &self.account_id,
                            self.folder_id,
                            self.uidvalidity,
                            &m,
                        )?;
                        o.messages += 1;
                    }
                    Verdict::Skip => {}
                    Verdict::Quarantine(err) => {
                        self.quarantine(&it, &err)?;
                        quarantined += 1;
                        bad_uids.push(it.uid);
                    }
                }
                if open.as_ref().is_some_and(|o| {
                    o.messages >= self.opts.batch_size || o.started.elapsed() >= WRITER_MAX_TX
                }) {
                    out_new += self.commit(open, max_uid, Wal::Checkpoint)?;
                }
            }
        }
        // Whatever arrived completely is stored, even when the fetch broke off.
        let checkpoint = max_uid.max(finish);
        if open.is_some() || checkpoint > self.known_max {
            self.ensure_open(open)?;
            // No checkpoint for the last one: the pass would wait for it when the writer ends;
            // the next commit of any connection copies these frames back.
            out_new += self.commit(open, checkpoint, Wal::Leave)?;
        }
        Ok(WriterOut {
            new: out_new,
            quarantined,
            bad_uids,
            progress: self.progress.clone(),
        })
    }

    /// The open transaction, begun now if there is none.
    fn ensure_open<'a>(&self, open: &'a mut Option<OpenTx>) -> Result<&'a mut OpenTx> {
        let o = match open.take() {
            Some(o) => o,
            None => OpenTx {
                bulk: self.store.bulk_begin()?,
                started: Instant::now(),
                messages: 0,
            },
        };
        Ok(open.insert(o))
    }

    /// Commits the open transaction with `checkpoint`; returns how many locations it added.
    fn commit(&mut self, open: &mut Option<OpenTx>, checkpoint: u32, wal: Wal) -> Result<u64> {
        let Some(o) = open.take() else {
            return Ok(0);
        };
        if let Err(e) = self.store.bulk_commit(self.folder_id, Some(checkpoint)) {
            self.store.bulk_rollback();
            return Err(e);
        }
        if wal == Wal::Checkpoint {
            self.checkpointer.poke();
        }
        let _ = self.store.touch_lease(&self.account_id);
        self.progress.report(&self.store);
        crate::failpoint::hit("after_fetch_batch");
        Ok(o.bulk.out.added)
    }

    fn quarantine(&self, it: &HeaderItem, err: &str) -> Result<()> {
        self.store.quarantine_add(
            &self.account_id,
            self.folder_id,
            &self.folder_name,
            self.uidvalidity,
            it.uid,
            it.header.as_deref().unwrap_or(b""),
            err,
        )?;
        self.store.log_event(
            Some(&self.account_id),
            Level::Warn,
            &format!("message UID {} in {} quarantined", it.uid, self.folder_name),
            Some(err),
            Some("see `mailroom quarantine list`; retry, skip or save it"),
        )?;
        Ok(())
    }
}

async fn sync_folder(
    store: &mut Store,
    account: &Account,
    opts: &PassOptions,
    ss: &mut SyncSession,
    folder: &FolderRow,
    events: Option<&EventSender>,
    bytes: &mut u64,
) -> Result<FolderSummary> {
    let account_id = account.id();
    let mut fs = FolderSummary {
        folder: folder.name.clone(),
        ..Default::default()
    };
    let caps = ss.caps;
    let qresync_params = match (caps.qresync, folder.uidvalidity, folder.highestmodseq) {
        (true, Some(uv), Some(ms)) if folder.first_sync_done => Some((uv, ms)),
        _ => None,
    };
    let sel = fetch::select(
        &mut ss.session,
        &folder.wire_name,
        caps.condstore,
        qresync_params,
        false,
    )
    .await?;
    let uv = sel.uidvalidity;
    let mut folder = folder.clone();
    let validity_changed = folder.uidvalidity.is_some_and(|old| old != uv);
    if validity_changed {
        store.log_event(
            Some(account_id),
            Level::Warn,
            &format!(
                "UIDVALIDITY of {} changed: fetching the folder again",
                folder.name
            ),
            Some(&format!("{:?} -> {uv}", folder.uidvalidity)),
            Some("nothing to do: local ids, pairings and flags queued locally are kept"),
        )?;
        store.reset_folder_for_rebuild(folder.id, uv)?;
        folder = store.folder(folder.id)?.ok_or_else(|| {
            AppError::local("folder vanished from the database", "", "run sync again")
        })?;
    } else if folder.uidvalidity.is_none() {
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
    let qresync_used = qresync_params.is_some() && !validity_changed;

    // 1. Known mail: what changed or vanished since the last pass.
    if qresync_used {
        let gone: Vec<u32> = sel
            .vanished
            .iter()
            .copied()
            .filter(|u| *u <= known_max)
            .collect();
        fs.vanished += store.remove_locations(folder.id, uv, &gone)?;
        let (deleted, updates) = split_deleted(
            sel.changed
                .iter()
                .map(|u| (u.uid, u.flags.clone(), u.modseq)),
        );
        fs.vanished += store.remove_locations(folder.id, uv, &deleted)?;
        fs.updated += store.apply_flags(folder.id, uv, &updates)?;
    } else if known_max > 0 {
        let range = format!("1:{known_max}");
        let condstore_ok =
            caps.condstore && folder.highestmodseq.is_some() && sel.highestmodseq.is_some();
        if condstore_ok {
            if sel.highestmodseq != folder.highestmodseq {
                let mut batch = Vec::new();
                let mut deleted = Vec::new();
                fetch::fetch_flags(&mut ss.session, &range, folder.highestmodseq, false, |u| {
                    batch.push((u.uid, u.flags, u.modseq));
                    Ok(())
                })
                .await?;
                let (d, updates) = split_deleted(batch.drain(..));
                deleted.extend(d);
                fs.updated += store.apply_flags(folder.id, uv, &updates)?;
                fs.vanished += store.remove_locations(folder.id, uv, &deleted)?;
            }
            let unchanged_counts = sel.uidnext.is_some()
                && sel.uidnext == folder.uidnext
                && Some(sel.exists) == folder.exists_count;
            if !unchanged_counts {
                let server: HashSet<u32> =
                    fetch::uid_search(&mut ss.session, &format!("UID {range}"))
                        .await?
                        .into_iter()
                        .collect();
                let gone: Vec<u32> = store
                    .folder_uids(folder.id, uv)?
                    .into_iter()
                    .filter(|u| *u <= known_max && !server.contains(u))
                    .collect();
                fs.vanished += store.remove_locations(folder.id, uv, &gone)?;
            }
        } else {
            // No CONDSTORE: every flag, and the UID list that reveals expunges.
            let mut server: Vec<u32> = Vec::new();
            let mut batch: Vec<FlagRow> = Vec::new();
            let mut deleted = Vec::new();
            let mut updated = 0u64;
            let fid = folder.id;
            fetch::fetch_flags(&mut ss.session, &range, None, false, |u| {
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
            })
            .await?;
            updated += store.apply_flags(fid, uv, &batch)?;
            fs.updated += updated;
            server.sort_unstable();
            let gone: Vec<u32> = store
                .folder_uids(fid, uv)?
                .into_iter()
                .filter(|u| *u <= known_max && server.binary_search(u).is_err())
                .collect();
            fs.vanished += store.remove_locations(fid, uv, &gone)?;
        }
    }

    // 2. New mail (or the folder's history in scope on a first sync): streamed, batched,
    //    checkpointed.
    let has_new = sel.exists > 0 && sel.uidnext.is_none_or(|n| n > known_max + 1);
    let new_mail = if has_new {
        plan_new_mail(store, ss, &folder, &sel, opts, known_max).await?
    } else {
        None
    };
    if let Some(new_mail) = new_mail {
        let progress = Progress {
            account_id: account_id.to_string(),
            folder: folder.name.clone(),
            total: new_mail.total,
            done: 0,
            tty: opts.tty_progress,
            events: events.cloned(),
        };
        progress.report(store);
        let direction = if folder.role.as_deref() == Some(Role::Sent.as_str()) {
            "out"
        } else {
            "in"
        };
        // Parsing and SQLite run on their own thread and connection, overlapping the network:
        // the fetch streams into a bounded channel (backpressure, never the whole folder).
        let writer = Writer {
            store: store.reopen()?,
            checkpointer: Checkpointer::start(store)?,
            account_id: account_id.to_string(),
            folder_id: folder.id,
            folder_name: folder.name.clone(),
            uidvalidity: uv,
            known_max,
            opts: opts.clone(),
            progress,
        };
        let (tx, rx) = std::sync::mpsc::sync_channel::<WriterMsg>(WRITER_QUEUE);
        let handle = std::thread::Builder::new()
            .name("sync-writer".into())
            .spawn(move || writer.run(rx))
            .map_err(|e| {
                AppError::local(
                    "cannot start the sync writer thread",
                    e.to_string(),
                    "check system limits (threads)",
                )
            })?;
        let mut fetched_bytes = 0u64;
        let mut chunk: Vec<(HeaderItem, Verdict)> = Vec::with_capacity(WRITER_CHUNK);
        let mut on_item = |it: HeaderItem| {
            if it.uid <= known_max {
                // `n:*` always returns the last message even when it is older than n.
                return Ok(());
            }
            fetched_bytes += it.header.as_ref().map_or(0, |h| h.len() as u64);
            // Parsing here and storing on the writer splits the CPU work in two.
            let verdict = classify(&it, opts, direction);
            let it = match verdict {
                // The stored message carries its header; keep only the UID here.
                Verdict::Store(_) | Verdict::Skip => HeaderItem {
                    header: None,
                    flags: Vec::new(),
                    ..it
                },
                Verdict::Quarantine(_) => it,
            };
            chunk.push((it, verdict));
            if chunk.len() >= WRITER_CHUNK {
                let full = std::mem::replace(&mut chunk, Vec::with_capacity(WRITER_CHUNK));
                send_blocking(&tx, WriterMsg::Items(full))?;
            }
            Ok(())
        };
        // In UID order, so the writer's checkpoints stay valid between the sets.
        let mut fetched = Ok(());
        for range in &new_mail.ranges {
            fetched =
                fetch::fetch_headers(&mut ss.session, range, caps.condstore, &mut on_item).await;
            if fetched.is_err() {
                break;
            }
        }
        // The fetch completed: every UID up to UIDNEXT-1 has been seen or was out of scope
        // (even if skipped or expunged meanwhile), so the checkpoint can move past them.
        let checkpoint = match &fetched {
            Ok(()) => new_mail.checkpoint,
            Err(_) => 0,
        };
        // What arrived completely is stored even when the fetch broke off.
        if !chunk.is_empty() {
            let _ = send_blocking(&tx, WriterMsg::Items(std::mem::take(&mut chunk)));
        }
        let _ = send_blocking(&tx, WriterMsg::Finish(checkpoint));
        drop(tx);
        let out = handle.join().map_err(|_| {
            AppError::local(
                "the sync writer thread crashed",
                "",
                "run sync again; report this as a bug if it repeats",
            )
        })??;
        fetched?;
        // Keep the whole raw message of quarantined mail, not just its unreadable header.
        if !out.bad_uids.is_empty() {
            let set = fetch::uid_set(&out.bad_uids);
            // `move` of two &mut: a closure holding `&&mut Store` would not be Send.
            let (st, fb) = (&mut *store, &mut fetched_bytes);
            fetch::fetch_bodies(&mut ss.session, &set, move |uid, raw| {
                *fb += raw.len() as u64;
                st.quarantine_set_raw(folder.id, uv, uid, &raw)
            })
            .await?;
        }
        let mut progress = out.progress;
        progress.done = progress.total.max(progress.done);
        progress.report(store);
        if opts.tty_progress {
            let _ = writeln!(std::io::stderr());
        }
        *bytes += fetched_bytes;
        fs.new += out.new;
        fs.quarantined += out.quarantined;
    }
    if !folder.first_sync_done {
        store.set_first_sync_done(folder.id)?;
        store.drop_stale_locations(folder.id, uv)?;
    }

    // 3. Mark as read on the server: only new mail, only if the user asked for it.
    if let Some(from) = folder.mark_read_from_uid.filter(|_| opts.mark_read) {
        let uids = store.unseen_uids_from(folder.id, uv, from)?;
        if !uids.is_empty() {
            fetch::simple(
                &mut ss.session,
                "marking new mail read",
                &format!("UID STORE {} +FLAGS.SILENT (\\Seen)", fetch::uid_set(&uids)),
            )
            .await?;
            store.mark_seen_local(folder.id, uv, &uids)?;
        }
    }
    store.set_folder_synced(
        folder.id,
        &FolderSyncState {
            uidvalidity: uv,
            uidnext: sel.uidnext,
            highestmodseq: sel.highestmodseq,
            exists: sel.exists,
        },
    )?;
    while ss.session.unsolicited_responses.try_recv().is_ok() {}
    Ok(fs)
}

/// What a folder's first sync asks the server for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FirstFetch {
    /// Every message (`UID FETCH 1:*`).
    Everything,
    /// Only the UIDs that `UID SEARCH` with these criteria finds (IMAP4rev1 SINCE / UNSEEN).
    Search(String),
    /// No old mail at all: the folder starts at UIDNEXT (`since = "new"`).
    Nothing,
}

/// The first-sync fetch for a scope: shared by sync and `sync --plan`, so the plan asks the
/// server exactly what the sync asks.
///
/// SINCE compares dates "disregarding time and timezone" (RFC 3501): the day of a message's
/// INTERNALDATE in its own or the server's zone, not in UTC. A message at 22:00 -0500 on the
/// 4th is on the 5th in UTC (in scope for `since = 5th`), but the server files it under the 4th
/// and `SINCE 5-…` would miss it. So the server is asked from the day before, and the exact
/// cut at midnight UTC is made here (`classify`, and the plan's INTERNALDATE count): one extra
/// day of headers on the wire, no mail missed.
pub fn first_fetch(scope: HistoryScope, unread_only: bool) -> FirstFetch {
    let mut keys = Vec::new();
    match scope {
        HistoryScope::NewOnly => return FirstFetch::Nothing,
        HistoryScope::Since(d) => {
            let day_before = d.pred_opt().unwrap_or(d);
            keys.push(format!("SINCE {}", day_before.format("%-d-%b-%Y")));
        }
        HistoryScope::All => {}
    }
    if unread_only {
        keys.push("UNSEEN".to_string());
    }
    if keys.is_empty() {
        FirstFetch::Everything
    } else {
        FirstFetch::Search(keys.join(" "))
    }
}

/// The `UID SEARCH` text of a first sync; one resumed after an interruption only asks above
/// the last committed UID.
fn first_sync_search(criteria: &str, known_max: u32) -> String {
    if known_max == 0 {
        criteria.to_string()
    } else {
        format!("UID {}:* {criteria}", known_max + 1)
    }
}

/// Longest UID set per `UID FETCH` of search results (Dovecot's default line limit is 64 KiB,
/// other servers' 8 KiB).
pub const MAX_UID_SET_CHARS: usize = 8000;

/// What the new-mail step fetches.
struct NewMail {
    /// UID sets for `UID FETCH`, ascending.
    ranges: Vec<String>,
    /// Messages expected (for progress).
    total: u64,
    /// The checkpoint a completed fetch proves: every UID up to it was fetched or out of scope.
    checkpoint: u32,
}

/// Decides what the new-mail step fetches. Later passes (and a first sync of everything) take
/// `known_max+1:*`. A first sync with a date or unread-only scope takes only what `UID SEARCH`
/// finds. Under `since = "new"` a first sync fetches nothing: the folder starts at UIDNEXT-1.
/// None: nothing to fetch (the checkpoint has been moved where the scope allows).
async fn plan_new_mail(
    store: &mut Store,
    ss: &mut SyncSession,
    folder: &FolderRow,
    sel: &fetch::Selected,
    opts: &PassOptions,
    known_max: u32,
) -> Result<Option<NewMail>> {
    let everything = || NewMail {
        ranges: vec![format!("{}:*", known_max + 1)],
        total: match sel.uidnext {
            Some(_) if !folder.first_sync_done && known_max == 0 => sel.exists as u64,
            Some(n) => (n.saturating_sub(known_max + 1) as u64).min(sel.exists as u64),
            None => sel.exists as u64,
        },
        checkpoint: sel.uidnext.map_or(0, |n| n.saturating_sub(1)),
    };
    if folder.first_sync_done {
        return Ok(Some(everything()));
    }
    let scope = first_sync_scope(store, folder.id, sel.uidvalidity, opts.scope)?;
    match first_fetch(scope, opts.unread_only) {
        FirstFetch::Everything => Ok(Some(everything())),
        // Resuming is only for fetches; an unfinished start (crash) just fetches what is new.
        FirstFetch::Nothing if known_max > 0 => Ok(Some(everything())),
        FirstFetch::Nothing => {
            let start = last_uid(ss, sel).await?;
            store.set_checkpoint(folder.id, start)?;
            store.log_event(
                Some(&folder.account_id),
                Level::Info,
                &format!(
                    "{}: no old mail fetched (sync.since = \"new\"); new mail from UID {} on",
                    folder.name,
                    start + 1
                ),
                None,
                None,
            )?;
            Ok(None)
        }
        FirstFetch::Search(criteria) => {
            let top = last_uid(ss, sel).await?;
            let uids: Vec<u32> =
                fetch::uid_search(&mut ss.session, &first_sync_search(&criteria, known_max))
                    .await?
                    .into_iter()
                    // `n:*` also matches the last UID when it is below n.
                    .filter(|u| *u > known_max)
                    .collect();
            if uids.is_empty() {
                // Everything up to `top` is out of scope.
                store.set_checkpoint(folder.id, top)?;
                return Ok(None);
            }
            Ok(Some(NewMail {
                ranges: fetch::uid_set_chunks(&uids, MAX_UID_SET_CHARS),
                total: uids.len() as u64,
                checkpoint: top,
            }))
        }
    }
}

/// The scope of a folder's first sync. Under `since = "new"`, a rebuild (the cache still holds
/// the folder's mail under an old UIDVALIDITY) fetches again from the day of the oldest message
/// it held, so none of it is lost; a first sync proper fetches nothing old.
fn first_sync_scope(
    store: &Store,
    folder_id: i64,
    uidvalidity: u32,
    scope: HistoryScope,
) -> Result<HistoryScope> {
    if scope != HistoryScope::NewOnly {
        return Ok(scope);
    }
    let (stale, oldest) = store.stale_locations_span(folder_id, uidvalidity)?;
    if stale == 0 {
        return Ok(HistoryScope::NewOnly);
    }
    let day = oldest
        .as_deref()
        .and_then(|d| chrono::DateTime::parse_from_rfc3339(d).ok())
        .map(|d| d.with_timezone(&chrono::Utc).date_naive());
    // Without a date to start from, fetching everything is the way to lose nothing.
    Ok(day.map_or(HistoryScope::All, HistoryScope::Since))
}

/// UIDNEXT-1 from SELECT, or, from a server that gives no UIDNEXT, the highest UID there is.
async fn last_uid(ss: &mut SyncSession, sel: &fetch::Selected) -> Result<u32> {
    match sel.uidnext {
        Some(n) => Ok(n.saturating_sub(1)),
        None if sel.exists == 0 => Ok(0),
        None => fetch::max_uid(&mut ss.session).await,
    }
}

/// Splits flag updates into messages marked \Deleted (treated as gone) and the rest.
fn split_deleted(it: impl Iterator<Item = FlagRow>) -> (Vec<u32>, Vec<FlagRow>) {
    let mut deleted = Vec::new();
    let mut rest = Vec::new();
    for (uid, flags, ms) in it {
        if flags.iter().any(|f| f.eq_ignore_ascii_case("\\Deleted")) {
            deleted.push(uid);
        } else {
            rest.push((uid, flags, ms));
        }
    }
    (deleted, rest)
}

enum Verdict {
    Store(Box<NewMessage>),
    Skip,
    Quarantine(String),
}

/// Decides what to do with one fetched header: store, skip (filters, probes) or quarantine.
fn classify(it: &HeaderItem, opts: &PassOptions, direction: &'static str) -> Verdict {
    if it.flags.iter().any(|f| f.eq_ignore_ascii_case("\\Deleted")) {
        return Verdict::Skip;
    }
    let Some(header) = &it.header else {
        return Verdict::Quarantine("the server sent no header for this message".into());
    };
    let Some(env) = parse::parse_headers(header) else {
        return Verdict::Quarantine("the header cannot be parsed".into());
    };
    if env
        .message_id
        .as_deref()
        .is_some_and(|m| m.starts_with(PROBE_ID_PREFIX))
    {
        return Verdict::Skip;
    }
    if let Some(since) = opts.scope.cutoff() {
        let when = it
            .internal_date
            .as_deref()
            .or(env.date.as_deref())
            .and_then(|d| chrono::DateTime::parse_from_rfc3339(d).ok());
        if when.is_some_and(|w| w < since) {
            return Verdict::Skip;
        }
    }
    if opts.unread_only && it.flags.iter().any(|f| f.eq_ignore_ascii_case("\\Seen")) {
        return Verdict::Skip;
    }
    let denied = env
        .from
        .as_ref()
        .is_some_and(|a| parse::denied(&a.address, &opts.deny));
    Verdict::Store(Box::new(NewMessage {
        uid: it.uid,
        flags: it.flags.clone(),
        size: it.size,
        internal_date: it.internal_date.clone(),
        modseq: it.modseq,
        env,
        headers: header.clone(),
        denied,
        direction,
    }))
}

/// Fetches bodies of small messages in the background (bounded per pass).
async fn prefetch_bodies(
    store: &mut Store,
    account: &Account,
    opts: &PassOptions,
    ss: &mut SyncSession,
    bytes: &mut u64,
) -> Result<u64> {
    if opts.body_prefetch_max_bytes == 0 {
        return Ok(0);
    }
    let todo = store.bodies_to_prefetch(account.id(), opts.body_prefetch_max_bytes, 500)?;
    let mut done = 0u64;
    let mut i = 0;
    while i < todo.len() {
        let folder_id = todo[i].1;
        let wire = todo[i].2.clone();
        let uv = todo[i].3;
        let mut j = i;
        let mut by_uid = std::collections::HashMap::new();
        while j < todo.len() && todo[j].1 == folder_id && todo[j].3 == uv {
            by_uid.insert(todo[j].4, todo[j].0);
            j += 1;
        }
        let sel = fetch::select(&mut ss.session, &wire, false, None, true).await?;
        if sel.uidvalidity == uv {
            let mut uids: Vec<u32> = by_uid.keys().copied().collect();
            uids.sort_unstable();
            fetch::fetch_bodies(&mut ss.session, &fetch::uid_set(&uids), |uid, raw| {
                if let Some(&id) = by_uid.get(&uid) {
                    *bytes += raw.len() as u64;
                    store_body(store, id, &raw)?;
                    done += 1;
                }
                Ok(())
            })
            .await?;
        }
        i = j;
    }
    Ok(done)
}

/// Parses and stores a fetched body; an unparseable body is kept raw with empty text.
pub fn store_body(store: &mut Store, id: i64, raw: &[u8]) -> Result<()> {
    match parse::parse_body(raw) {
        Some(b) => store.set_body(id, raw, &b.text, !b.attachments.is_empty()),
        None => store.set_body(id, raw, "", false),
    }
}

/// Fetches one message's body on demand (when opened) and stores it.
pub async fn fetch_body_now(
    store: &mut Store,
    account: &Account,
    ss: &mut SyncSession,
    id: i64,
) -> Result<bool> {
    let locs = store.locations_of(id)?;
    for l in locs.iter().filter(|l| l.account_id == account.id()) {
        let sel = fetch::select(&mut ss.session, &l.wire_name, false, None, true).await?;
        if sel.uidvalidity != l.uidvalidity {
            continue;
        }
        let mut got = None;
        fetch::fetch_bodies(&mut ss.session, &l.uid.to_string(), |uid, raw| {
            if uid == l.uid {
                got = Some(raw);
            }
            Ok(())
        })
        .await?;
        if let Some(raw) = got {
            store_body(store, id, &raw)?;
            return Ok(true);
        }
    }
    Ok(false)
}

/// Whether stderr is a terminal (for progress lines).
pub fn stderr_is_tty() -> bool {
    std::io::stderr().is_terminal()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> PassOptions {
        PassOptions {
            deny: vec!["spam.test".into()],
            scope: HistoryScope::parse("2026-01-01").unwrap(),
            unread_only: false,
            mark_read: false,
            batch_size: 10,
            body_prefetch_max_bytes: 0,
            tty_progress: false,
        }
    }

    fn item(uid: u32, header: &str, flags: &[&str], date: &str) -> HeaderItem {
        HeaderItem {
            uid,
            flags: flags.iter().map(|s| s.to_string()).collect(),
            size: 10,
            internal_date: Some(date.into()),
            modseq: None,
            header: Some(header.as_bytes().to_vec()),
        }
    }

    #[test]
    fn classify_applies_filters_probes_deny_and_quarantine() {
        let o = opts();
        let ok = "Message-ID: <a@x>\r\nFrom: a@x.test\r\nSubject: hi\r\n\r\n";
        assert!(matches!(
            classify(&item(1, ok, &[], "2026-05-01T00:00:00Z"), &o, "in"),
            Verdict::Store(_)
        ));
        // Older than `since`.
        assert!(matches!(
            classify(&item(2, ok, &[], "2025-05-01T00:00:00Z"), &o, "in"),
            Verdict::Skip
        ));
        // `account test` probes are never synced.
        let probe = format!(
            "Message-ID: <{}1@x>\r\nFrom: a@x.test\r\n\r\n",
            crate::account::PROBE_ID_PREFIX
        );
        assert!(matches!(
            classify(&item(3, &probe, &[], "2026-05-01T00:00:00Z"), &o, "in"),
            Verdict::Skip
        ));
        // \Deleted counts as gone.
        assert!(matches!(
            classify(
                &item(4, ok, &["\\Deleted"], "2026-05-01T00:00:00Z"),
                &o,
                "in"
            ),
            Verdict::Skip
        ));
        // Unread only skips \Seen mail.
        let mut uo = opts();
        uo.unread_only = true;
        assert!(matches!(
            classify(&item(5, ok, &["\\Seen"], "2026-05-01T00:00:00Z"), &uo, "in"),
            Verdict::Skip
        ));
        // A denied sender (subdomain of a denied domain) is stored hidden.
        let denied = "Message-ID: <d@x>\r\nFrom: bad@mail.spam.test\r\n\r\n";
        match classify(&item(6, denied, &[], "2026-05-01T00:00:00Z"), &o, "in") {
            Verdict::Store(m) => assert!(m.denied),
            _ => panic!("denied mail is stored, hidden"),
        }
        // No header section, or nothing parseable: quarantine.
        let mut none = item(7, ok, &[], "2026-05-01T00:00:00Z");
        none.header = None;
        assert!(matches!(classify(&none, &o, "in"), Verdict::Quarantine(_)));
        assert!(matches!(
            classify(&item(8, "\r\n", &[], "2026-05-01T00:00:00Z"), &o, "in"),
            Verdict::Quarantine(_)
        ));
    }

    #[test]
    fn classify_cuts_at_midnight_utc_of_the_since_date_and_new_only_filters_nothing() {
        let o = opts();
        let ok = "Message-ID: <a@x>\r\nFrom: a@x.test\r\n\r\n";
        // SINCE on the server is day-granular in its own time zone; the exact cut is here.
        assert!(matches!(
            classify(&item(1, ok, &[], "2026-01-01T00:00:00Z"), &o, "in"),
            Verdict::Store(_)
        ));
        assert!(matches!(
            classify(&item(2, ok, &[], "2025-12-31T23:59:59Z"), &o, "in"),
            Verdict::Skip
        ));
        // Under `new`, whatever a later pass fetches arrived after the start: all of it counts,
        // whatever its INTERNALDATE (e.g. an old message moved in from another folder).
        let mut n = opts();
        n.scope = HistoryScope::NewOnly;
        assert!(matches!(
            classify(&item(3, ok, &[], "2001-01-01T00:00:00Z"), &n, "in"),
            Verdict::Store(_)
        ));
    }

    #[test]
    fn first_sync_search_criteria() {
        let d = |s: &str| HistoryScope::parse(s).unwrap();
        assert_eq!(
            first_fetch(HistoryScope::All, false),
            FirstFetch::Everything
        );
        assert_eq!(
            first_fetch(HistoryScope::All, true),
            FirstFetch::Search("UNSEEN".into())
        );
        // IMAP4rev1 date: day without padding, English month, four-digit year.
        // Asked from the day before: the server's SINCE day is not the UTC day (see
        // first_fetch); the exact cut is classify's.
        assert_eq!(
            first_fetch(d("2026-01-05"), false),
            FirstFetch::Search("SINCE 4-Jan-2026".into())
        );
        assert_eq!(
            first_fetch(d("2026-01-01"), true),
            FirstFetch::Search("SINCE 31-Dec-2025 UNSEEN".into())
        );
        assert_eq!(
            first_fetch(HistoryScope::NewOnly, true),
            FirstFetch::Nothing
        );
        assert_eq!(
            first_fetch(HistoryScope::NewOnly, false),
            FirstFetch::Nothing
        );
        // A first sync resumed after a break only asks above what was committed.
        assert_eq!(first_sync_search("SINCE 5-Jan-2026", 0), "SINCE 5-Jan-2026");
        assert_eq!(
            first_sync_search("SINCE 5-Jan-2026 UNSEEN", 400),
            "UID 401:* SINCE 5-Jan-2026 UNSEEN"
        );
    }
}
