//! Full offline mode (`sync.bodies = "all"`): after the headers, every body of the synced
//! folders is downloaded — newest first, one streamed `UID FETCH set (UID BODY.PEEK[])` per
//! folder (as UID sets of at most 8 KiB), stored by a writer thread of its own in committed
//! transactions, each body once per logical message. What is stored stays stored, so a sync
//! killed in the middle (`kill -9`) goes on where the last commit ended. `sync.bodies_since_days`
//! limits it to recent mail and `sync.bodies_max_mb` caps the space. A pass in the background
//! downloads for a while and leaves the rest to the next pass (which the task starts at once),
//! so new mail never waits behind a long download; `sync --once` downloads everything.
//!
//! The words of bulk bodies join the search index afterwards (`index`), off the download's path.
//!
//! Without a date limit or a cap (the default), new mail does not wait for this download: it is
//! fetched whole in the first place (`UID FETCH … BODY.PEEK[]`, see `PassOptions::whole`), its
//! header fields, body and words stored in one transaction, so a first full sync reads each
//! message once. What this download then finds is mail stored as headers before full offline
//! mode was turned on, and the bodies of messages a second folder shares.

use std::collections::{HashMap, HashSet};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, sync_channel};
use std::time::{Duration, Instant};

use super::engine::{PassOptions, SyncSession};
use crate::account::Account;
use crate::error::{AppError, Result};
use crate::imap::fetch;
use crate::store::{Checkpointer, FolderRow, Level, Store};

/// What a download did.
#[derive(Debug, Default, Clone, Copy)]
pub struct Downloaded {
    pub stored: u64,
    pub bytes: u64,
    /// Bodies are left for a later pass (the pass's time was up).
    pub pending: bool,
}

/// The full offline mode's settings for one pass.
#[derive(Debug, Clone, Default)]
pub struct BodyOptions {
    /// Only mail that arrived on or after this time (RFC 3339).
    pub since: Option<String>,
    /// Stop when the account's bodies take this many bytes.
    pub max_bytes: Option<u64>,
    /// How long one pass downloads (None: until done).
    pub budget: Option<Duration>,
}

/// Bodies handed to the writer per channel message, and the bytes that close one early.
const CHUNK_ITEMS: usize = 64;
const CHUNK_BYTES: usize = 1 << 20;
/// Chunks in flight between the network and the writer.
const QUEUE: usize = 8;
/// The writer commits after this many bodies, this many bytes or this long.
const TX_ITEMS: usize = 2000;
const TX_BYTES: usize = 32 << 20;
const TX_TIME: Duration = Duration::from_millis(500);
/// Unreadable bodies skipped in one download before it gives up for the pass.
const MAX_SKIPS: usize = 5;

type Chunk = Vec<(i64, Vec<u8>)>;

/// Downloads the bodies still missing, folder by folder.
pub async fn download(
    store: &mut Store,
    account: &Account,
    opts: &PassOptions,
    ss: &mut SyncSession,
) -> Result<Downloaded> {
    let bo = &opts.bodies;
    let started = Instant::now();
    // What is stored counts only against a cap (and is counted again at the end for status).
    let mut have = match bo.max_bytes {
        Some(_) => store.refresh_bodies_total(account.id())?.1,
        None => 0,
    };
    let folders: Vec<FolderRow> = store
        .folders(account.id())?
        .into_iter()
        .filter(|f| f.sync_enabled && f.selectable && f.present && f.uidvalidity.is_some())
        .collect();
    let (tx, rx) = sync_channel::<Chunk>(QUEUE);
    let writer = spawn_writer(store, account.id().to_string(), rx)?;
    let mut feed = Feed {
        tx: Some(tx),
        chunk: Vec::new(),
        chunk_bytes: 0,
        seen: HashSet::new(),
        bytes: 0,
    };
    let mut out = Downloaded::default();
    let r = async {
        for f in &folders {
            let capped = bo.max_bytes.is_some_and(|m| have as u64 + feed.bytes >= m);
            let late = bo.budget.is_some_and(|b| started.elapsed() >= b);
            if capped || late {
                out.pending = late && !capped;
                break;
            }
            folder(store, ss, f, bo, &mut feed, started, &mut out, have).await?;
        }
        Ok::<(), AppError>(())
    }
    .await;
    feed.finish();
    let stored = writer.join().map_err(|_| {
        AppError::local(
            "the body writer thread crashed",
            "",
            "run sync again; report this as a bug if it repeats",
        )
    })??;
    r?;
    out.stored = stored;
    out.bytes = feed.bytes;
    (_, have) = store.refresh_bodies_total(account.id())?;
    if bo.max_bytes.is_some_and(|m| have as u64 >= m) {
        store.log_event(
            Some(account.id()),
            Level::Info,
            "bodies_max_mb reached: older bodies are fetched when opened",
            Some(&format!("{have} bytes of bodies stored")),
            Some("raise sync.bodies_max_mb to keep more mail offline"),
        )?;
    }
    Ok(out)
}

/// The network side of the writer: what was handed over, in chunks.
struct Feed {
    tx: Option<SyncSender<Chunk>>,
    chunk: Chunk,
    chunk_bytes: usize,
    /// Messages handed over in this download (a message in two folders is fetched once).
    seen: HashSet<i64>,
    bytes: u64,
}

impl Feed {
    fn push(&mut self, id: i64, raw: Vec<u8>) -> Result<()> {
        if !self.seen.insert(id) {
            return Ok(());
        }
        self.bytes += raw.len() as u64;
        self.chunk_bytes += raw.len();
        self.chunk.push((id, raw));
        if self.chunk.len() >= CHUNK_ITEMS || self.chunk_bytes >= CHUNK_BYTES {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        let chunk = std::mem::take(&mut self.chunk);
        self.chunk_bytes = 0;
        if chunk.is_empty() {
            return Ok(());
        }
        let Some(tx) = &self.tx else { return Ok(()) };
        let multi = tokio::runtime::Handle::try_current()
            .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
        let sent = if multi {
            tokio::task::block_in_place(|| tx.send(chunk))
        } else {
            tx.send(chunk)
        };
        sent.map_err(|_| AppError::local("the body writer stopped", "", "run sync again"))
    }

    fn finish(&mut self) {
        let _ = self.flush();
        self.tx = None;
    }
}

/// One folder's missing bodies, newest first, in UID sets of at most 8 KiB.
#[allow(clippy::too_many_arguments)]
async fn folder(
    store: &Store,
    ss: &mut SyncSession,
    f: &FolderRow,
    bo: &BodyOptions,
    feed: &mut Feed,
    started: Instant,
    out: &mut Downloaded,
    have: i64,
) -> Result<()> {
    let Some(uv) = f.uidvalidity else {
        return Ok(());
    };
    let wanted: Vec<(i64, u32, i64)> = store
        .bodies_wanted(f.id, uv, bo.since.as_deref())?
        .into_iter()
        .filter(|(id, _, _)| !feed.seen.contains(id) && !ss.unreadable_bodies.contains(id))
        .collect();
    if wanted.is_empty() {
        return Ok(());
    }
    let sel = fetch::select(&mut ss.session, &f.wire_name, false, None, true).await?;
    if sel.uidvalidity != uv {
        return Ok(());
    }
    let by_uid: HashMap<u32, i64> = wanted.iter().map(|(id, uid, _)| (*uid, *id)).collect();
    let mut uids: Vec<u32> = by_uid.keys().copied().collect();
    uids.sort_unstable();
    let sets = fetch::uid_set_chunks(&uids, super::plan::MAX_UID_SET_CHARS);
    for set in sets.iter().rev() {
        if bo.budget.is_some_and(|b| started.elapsed() >= b) {
            out.pending = true;
            return Ok(());
        }
        if bo.max_bytes.is_some_and(|m| have as u64 + feed.bytes >= m) {
            return Ok(());
        }
        fetch_set(store, ss, f, set, &by_uid, feed).await?;
    }
    Ok(())
}

/// One `UID FETCH set (UID BODY.PEEK[])`, streamed to the writer. A body the server answers
/// unreadably breaks the connection: it is logged and left to be fetched when opened, the
/// connection is opened again and the rest of the set fetched without it.
async fn fetch_set(
    store: &Store,
    ss: &mut SyncSession,
    f: &FolderRow,
    set: &str,
    by_uid: &HashMap<u32, i64>,
    feed: &mut Feed,
) -> Result<()> {
    let mut skip: Vec<u32> = Vec::new();
    for _ in 0..=MAX_SKIPS {
        let mut pushed = Ok(());
        let range = without(set, &skip);
        let r = fetch::fetch_bodies(&mut ss.session, &range, |uid, raw| {
            if let Some(&id) = by_uid.get(&uid)
                && pushed.is_ok()
            {
                pushed = feed.push(id, raw);
            }
            Ok(())
        })
        .await;
        pushed?;
        let Err(e) = r else { return Ok(()) };
        let Some(bad) = ss.session.get_mut().link_mut().unreadable.take() else {
            return Err(e);
        };
        let Some(uid) = bad.uid.filter(|u| by_uid.contains_key(u)) else {
            return Err(e);
        };
        skip.push(uid);
        if let Some(&id) = by_uid.get(&uid) {
            ss.unreadable_bodies.insert(id);
            store.log_event(
                Some(&f.account_id),
                Level::Warn,
                &format!("the body of message {id} could not be downloaded"),
                Some(&bad.reason),
                Some("nothing to do: it is fetched again when the message is opened"),
            )?;
        }
        ss.reconnect().await?;
        fetch::select(&mut ss.session, &f.wire_name, false, None, true).await?;
    }
    Ok(())
}

/// A UID set without some UIDs (those whose answer could not be read).
fn without(set: &str, skip: &[u32]) -> String {
    if skip.is_empty() {
        return set.to_string();
    }
    let mut uids = Vec::new();
    for part in set.split(',') {
        let (a, b) = part.split_once(':').unwrap_or((part, part));
        if let (Ok(a), Ok(b)) = (a.parse::<u32>(), b.parse::<u32>()) {
            uids.extend((a.min(b)..=a.max(b)).filter(|u| !skip.contains(u)));
        }
    }
    if uids.is_empty() {
        // Nothing left; a UID no server has keeps the command valid.
        return "4294967295".to_string();
    }
    fetch::uid_set(&uids)
}

/// The writer: its own database connection on a thread of its own, committing every
/// `TX_ITEMS` bodies, `TX_BYTES` or `TX_TIME`.
fn spawn_writer(
    store: &Store,
    account_id: String,
    rx: Receiver<Chunk>,
) -> Result<std::thread::JoinHandle<Result<u64>>> {
    let db = store.reopen()?;
    let checkpointer = Checkpointer::start(store)?;
    std::thread::Builder::new()
        .name("body-writer".into())
        .spawn(move || {
            let r = write_bodies(&db, &checkpointer, &account_id, &rx);
            if r.is_err() {
                db.bodies_rollback();
            }
            r
        })
        .map_err(|e| {
            AppError::local(
                "cannot start the body writer thread",
                e.to_string(),
                "check system limits (threads)",
            )
        })
}

fn write_bodies(
    db: &Store,
    checkpointer: &Checkpointer,
    account_id: &str,
    rx: &Receiver<Chunk>,
) -> Result<u64> {
    let mut stored = 0u64;
    let mut open: Option<(Instant, usize, usize)> = None;
    let commit = |open: &mut Option<(Instant, usize, usize)>| -> Result<()> {
        if open.take().is_some() {
            db.bodies_commit()?;
            checkpointer.poke();
            let _ = db.touch_lease(account_id);
            crate::failpoint::hit("after_body_batch");
        }
        Ok(())
    };
    loop {
        let chunk = match open {
            Some((since, _, _)) => match rx.recv_timeout(TX_TIME.saturating_sub(since.elapsed())) {
                Ok(c) => c,
                Err(RecvTimeoutError::Timeout) => {
                    commit(&mut open)?;
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => break,
            },
            None => match rx.recv() {
                Ok(c) => c,
                Err(_) => break,
            },
        };
        for (id, raw) in chunk {
            if open.is_none() {
                db.bodies_begin()?;
                open = Some((Instant::now(), 0, 0));
            }
            if db.store_body_raw(id, &raw)? {
                stored += 1;
            }
            if let Some((_, n, b)) = open.as_mut() {
                *n += 1;
                *b += raw.len();
            }
        }
        if open.is_some_and(|(t, n, b)| n >= TX_ITEMS || b >= TX_BYTES || t.elapsed() >= TX_TIME) {
            commit(&mut open)?;
        }
    }
    commit(&mut open)?;
    Ok(stored)
}

/// Bodies indexed per transaction, and the most bytes of them read at once. Few large
/// transactions: each one leaves a segment in the full-text index, and merging segments checks
/// every entry against the tombstones of the header-only rows the bodies replace (500 per
/// transaction spent a third of a 10k full offline sync's CPU in those checks).
const INDEX_CHUNK: i64 = 5000;
const INDEX_BYTES: usize = 32 << 20;

/// Puts the words of bulk bodies into the search index, a chunk per transaction, until none is
/// left or `budget` is spent. Returns how many were indexed.
pub fn index(store: &mut Store, budget: Option<Duration>) -> Result<u64> {
    let started = Instant::now();
    let mut n = 0u64;
    loop {
        let todo = store.bodies_to_index(INDEX_CHUNK, INDEX_BYTES)?;
        if todo.is_empty() {
            return Ok(n);
        }
        let items: Vec<(i64, String, bool)> = todo
            .into_iter()
            .map(|(id, raw)| match crate::mail::parse::parse_body(&raw) {
                Some(b) => (id, b.text, !b.attachments.is_empty()),
                None => (id, String::new(), false),
            })
            .collect();
        n += items.len() as u64;
        store.index_bodies(&items)?;
        if budget.is_some_and(|b| started.elapsed() >= b) {
            return Ok(n);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::without;

    #[test]
    fn a_set_without_some_uids() {
        assert_eq!(without("1:5,9", &[]), "1:5,9");
        assert_eq!(without("1:5,9", &[3]), "1:2,4:5,9");
        assert_eq!(without("9", &[9]), "4294967295");
    }
}
