//! The sync writer: stores fetched headers on its own thread and database connection, as they
//! arrive, into an open transaction committed together with the folder's checkpoint every
//! `sync.batch_size` messages — or sooner when it has been open for half a second or the fetch
//! pauses, so the write lock is never held long and a slow server still makes progress.
//! Nothing is collected in memory but the channel's few thousand items.

use std::io::Write as _;
use std::time::{Duration, Instant};

use super::engine::PassOptions;
use super::events::{EventSender, SyncEvent, emit};
use crate::error::{AppError, Result};
use crate::imap::fetch::HeaderItem;
use crate::store::{BulkInsert, Checkpointer, Level, NewMessage, Store};

/// What to do with one fetched message.
pub enum Verdict {
    Store(Box<NewMessage>),
    Skip,
    /// The server's answer for it cannot be used: the reason, and the bytes kept.
    Quarantine(String, Vec<u8>),
}

#[derive(Clone)]
pub struct Progress {
    pub account_id: String,
    pub folder: String,
    pub total: u64,
    pub done: u64,
    pub tty: bool,
    pub events: Option<EventSender>,
}

impl Progress {
    pub fn report(&self, store: &Store) {
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

pub enum WriterMsg {
    /// Fetched messages in UID order, already parsed and classified on the network side. In
    /// chunks of `WRITER_CHUNK`: one channel operation (and writer wake-up) per message cost
    /// both threads futex calls and context switches.
    Items(Vec<(HeaderItem, Verdict)>),
    /// The fetch ended; a non-zero value is a checkpoint proven by a completed fetch.
    Finish(u32),
}

/// Sends into the bounded writer channel, waiting when it is full (backpressure).
pub fn send_blocking(tx: &std::sync::mpsc::SyncSender<WriterMsg>, msg: WriterMsg) -> Result<()> {
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
pub struct Writer {
    pub store: Store,
    pub account_id: String,
    pub folder_id: i64,
    pub folder_name: String,
    pub uidvalidity: u32,
    pub known_max: u32,
    pub opts: PassOptions,
    pub progress: Progress,
    pub checkpointer: Checkpointer,
}

pub struct WriterOut {
    pub new: u64,
    pub quarantined: u64,
    /// Bodies stored (messages fetched whole).
    pub bodies: u64,
    pub progress: Progress,
}

/// Messages between two progress reports.
const PROGRESS_EVERY: u64 = 2000;
/// Messages per channel message to the writer.
pub const WRITER_CHUNK: usize = 256;
/// Chunks in flight between the network and the writer (backpressure beyond): 4096 messages.
pub const WRITER_QUEUE: usize = 16;
/// Bytes of whole messages that close a chunk early, so what is in flight stays small when
/// messages come whole (4 MB in the queue).
pub const WRITER_CHUNK_BYTES: usize = 256 << 10;
/// Bytes of whole messages that close a transaction early.
const WRITER_TX_BYTES: usize = 32 << 20;
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
    /// Bytes of bodies in it.
    bytes: usize,
}

impl Writer {
    pub fn run(mut self, rx: std::sync::mpsc::Receiver<WriterMsg>) -> Result<WriterOut> {
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
        let mut bodies = 0u64;
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
                            out_new += self.commit(open, max_uid, Wal::Checkpoint, &mut bodies)?;
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
                        let body_bytes = m.body.as_ref().map_or(0, |b| b.raw.len());
                        let o = self.ensure_open(open)?;
                        self.store.bulk_insert(
                            &mut o.bulk,
                            &self.account_id,
                            self.folder_id,
                            self.uidvalidity,
                            &m,
                        )?;
                        o.messages += 1;
                        o.bytes += body_bytes;
                    }
                    Verdict::Skip => {}
                    Verdict::Quarantine(err, raw) => {
                        self.quarantine(&it, &err, &raw)?;
                        quarantined += 1;
                    }
                }
                if open.as_ref().is_some_and(|o| {
                    o.messages >= self.opts.batch_size
                        || o.bytes >= WRITER_TX_BYTES
                        || o.started.elapsed() >= WRITER_MAX_TX
                }) {
                    out_new += self.commit(open, max_uid, Wal::Checkpoint, &mut bodies)?;
                }
            }
        }
        // Whatever arrived completely is stored, even when the fetch broke off.
        let checkpoint = max_uid.max(finish);
        if open.is_some() || checkpoint > self.known_max {
            self.ensure_open(open)?;
            // No checkpoint for the last one: the pass would wait for it when the writer ends;
            // the next commit of any connection copies these frames back.
            out_new += self.commit(open, checkpoint, Wal::Leave, &mut bodies)?;
        }
        Ok(WriterOut {
            new: out_new,
            quarantined,
            bodies,
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
                bytes: 0,
            },
        };
        Ok(open.insert(o))
    }

    /// Commits the open transaction with `checkpoint`; returns how many locations it added
    /// (and counts the bodies it stored into `bodies`).
    fn commit(
        &mut self,
        open: &mut Option<OpenTx>,
        checkpoint: u32,
        wal: Wal,
        bodies: &mut u64,
    ) -> Result<u64> {
        let Some(mut o) = open.take() else {
            return Ok(0);
        };
        if let Err(e) = self
            .store
            .bulk_commit(&mut o.bulk, self.folder_id, Some(checkpoint))
        {
            self.store.bulk_rollback();
            return Err(e);
        }
        if wal == Wal::Checkpoint {
            self.checkpointer.poke();
        }
        let _ = self.store.touch_lease(&self.account_id);
        self.progress.report(&self.store);
        crate::failpoint::hit("after_fetch_batch");
        *bodies += o.bulk.out.bodies;
        Ok(o.bulk.out.added)
    }

    fn quarantine(&self, it: &HeaderItem, err: &str, raw: &[u8]) -> Result<()> {
        let known = self
            .store
            .quarantine_known(self.folder_id, self.uidvalidity, it.uid)?;
        self.store.quarantine_add(
            &self.account_id,
            self.folder_id,
            &self.folder_name,
            self.uidvalidity,
            it.uid,
            raw,
            err,
        )?;
        self.store.log_event(
            Some(&self.account_id),
            Level::Warn,
            &format!("message UID {} in {} quarantined", it.uid, self.folder_name),
            Some(err),
            Some("see `mailroom quarantine list`; retry, skip or save it"),
        )?;
        if !known {
            crate::alerts::quarantined(
                &self.store,
                &self.account_id,
                &self.folder_name,
                it.uid,
                err,
            );
        }
        Ok(())
    }
}
