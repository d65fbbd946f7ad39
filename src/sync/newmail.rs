//! Fetching a folder's new mail into the store: one streamed `UID FETCH` per span of the plan,
//! parsed and classified here, stored by the writer thread (`writer.rs`) in batches with the
//! folder's checkpoint.
//!
//! A response that cannot be read breaks the stream (the library keeps the unparsed bytes in
//! its buffer). It is isolated: the connection is opened again, the message it belongs to is
//! fetched alone — stored if it reads fine that way, else quarantined with a short reason and
//! its bytes (at most 1 MB) — and the fetch goes on after it. So one bad message never stops a
//! folder, and the next pass does not stop there either.

use super::classify::classify;
use super::engine::{PassOptions, SyncSession};
use super::events::EventSender;
use super::plan::{NewMail, Span};
use super::writer::{
    Progress, Verdict, WRITER_CHUNK, WRITER_CHUNK_BYTES, WRITER_QUEUE, Writer, WriterMsg,
    WriterOut, send_blocking,
};
use crate::error::{AppError, Result};
use crate::imap::exec::{UNREADABLE_MAX, Unreadable};
use crate::imap::fetch::{self, HeaderItem, Whole};
use crate::imap::unsolicited;
use crate::store::{Checkpointer, FolderRow, Store, WholeBody};

/// A server that garbles more than this many messages of one fetch is not worth isolating
/// each: the fetch fails (and is retried later).
const MAX_UNREADABLE: usize = 50;

/// The folder being fetched.
pub struct Target<'a> {
    pub account_id: &'a str,
    pub opts: &'a PassOptions,
    pub folder: &'a FolderRow,
    pub uidvalidity: u32,
    pub events: Option<&'a EventSender>,
}

impl Target<'_> {
    fn direction(&self) -> &'static str {
        if self.folder.role == Some(crate::model::Role::Sent) {
            "out"
        } else {
            "in"
        }
    }
}

/// What a fetch of new mail brought.
#[derive(Debug, Default)]
pub struct Fetched {
    pub new: u64,
    pub quarantined: u64,
    pub bytes: u64,
    /// Bodies stored (messages fetched whole).
    pub bodies: u64,
}

/// Fetches the plan's spans into the store. Whatever arrived completely is stored even when the
/// fetch breaks off; the checkpoint moves to the plan's only when it completed.
pub async fn fetch_new(
    store: &mut Store,
    ss: &mut SyncSession,
    t: &Target<'_>,
    known_max: u32,
    plan: NewMail,
) -> Result<Fetched> {
    fetch_new_sent(store, ss, t, known_max, plan, None).await
}

/// As [`fetch_new`], when the first span's fetch was already sent (in one flight with the
/// SELECT): `sent` is its tag, and its answer is read first.
pub async fn fetch_new_sent(
    store: &mut Store,
    ss: &mut SyncSession,
    t: &Target<'_>,
    known_max: u32,
    plan: NewMail,
    sent: Option<crate::imap::exec::Tag>,
) -> Result<Fetched> {
    let progress = Progress {
        account_id: t.account_id.to_string(),
        folder: t.folder.name.clone(),
        total: plan.total,
        done: 0,
        tty: t.opts.tty_progress,
        events: t.events.cloned(),
    };
    progress.report(store);
    let writer = Writer {
        store: store.reopen()?,
        checkpointer: Checkpointer::start(store)?,
        account_id: t.account_id.to_string(),
        folder_id: t.folder.id,
        folder_name: t.folder.name.clone(),
        uidvalidity: t.uidvalidity,
        known_max,
        opts: t.opts.clone(),
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
    let mut feed = Feed::new(tx, known_max, t.opts, t.direction());
    feed.whole = t.opts.whole();
    let fetched = stream(ss, t, &plan.spans, &mut feed, sent).await;
    // The fetch completed: every UID up to the plan's checkpoint has been seen or was out of
    // scope (even if skipped or expunged meanwhile), so the checkpoint can move past them.
    feed.finish(if fetched.is_ok() { plan.checkpoint } else { 0 });
    let out = join(handle)?;
    fetched?;
    keep_nil_bytes(store, ss, t, &feed.nil_uids).await?;
    finish_progress(store, out, t.opts, feed.bytes)
}

fn join(handle: std::thread::JoinHandle<Result<WriterOut>>) -> Result<WriterOut> {
    handle.join().map_err(|_| {
        AppError::local(
            "the sync writer thread crashed",
            "",
            "run sync again; report this as a bug if it repeats",
        )
    })?
}

fn finish_progress(
    store: &Store,
    out: WriterOut,
    opts: &PassOptions,
    bytes: u64,
) -> Result<Fetched> {
    let mut progress = out.progress;
    progress.total = progress.total.max(progress.done);
    progress.done = progress.total;
    progress.report(store);
    if opts.tty_progress {
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr());
    }
    Ok(Fetched {
        new: out.new,
        quarantined: out.quarantined,
        bytes,
        bodies: out.bodies,
    })
}

/// The network side of the writer: classifies what arrives and hands it over in chunks.
struct Feed<'a> {
    tx: Option<std::sync::mpsc::SyncSender<WriterMsg>>,
    chunk: Vec<(HeaderItem, Verdict)>,
    /// Bytes of whole messages in `chunk`.
    chunk_bytes: usize,
    known_max: u32,
    /// Whether messages come whole (header and body in one answer).
    whole: Whole,
    opts: &'a PassOptions,
    direction: &'static str,
    bytes: u64,
    /// The highest UID handed over.
    last_uid: u32,
    /// Messages the server answered NIL for: their bytes are asked for once more afterwards.
    nil_uids: Vec<u32>,
}

impl<'a> Feed<'a> {
    fn new(
        tx: std::sync::mpsc::SyncSender<WriterMsg>,
        known_max: u32,
        opts: &'a PassOptions,
        direction: &'static str,
    ) -> Feed<'a> {
        Feed {
            tx: Some(tx),
            chunk: Vec::with_capacity(WRITER_CHUNK),
            chunk_bytes: 0,
            known_max,
            whole: Whole::No,
            opts,
            direction,
            bytes: 0,
            last_uid: 0,
            nil_uids: Vec::new(),
        }
    }

    fn item(&mut self, mut it: HeaderItem) -> Result<()> {
        if it.uid <= self.known_max {
            // `n:*` always returns the last message even when it is older than n.
            return Ok(());
        }
        self.bytes += it.header.as_ref().map_or(0, |h| h.len() as u64);
        // A message fetched whole is classified by the same header fields a header fetch
        // brings; the whole message rides along as its body.
        let whole = match (self.whole, it.header.take()) {
            (Whole::Yes, Some(raw)) => {
                it.header = Some(crate::mail::parse::select_header_fields(&raw));
                Some(raw)
            }
            (_, header) => {
                it.header = header;
                None
            }
        };
        // Parsing here and storing on the writer splits the CPU work in two.
        let mut verdict = classify(&it, self.opts, self.direction);
        if let (Verdict::Store(m), Some(raw)) = (&mut verdict, whole) {
            self.chunk_bytes += raw.len();
            // Its text is read here too: the writer's inserts and the search index are the
            // longer half of the work.
            let (text, attachments) = match crate::mail::parse::parse_body(&raw) {
                Some(b) => (b.text, !b.attachments.is_empty()),
                None => (String::new(), false),
            };
            m.body = Some(WholeBody {
                raw,
                text,
                attachments,
            });
        }
        if matches!(verdict, Verdict::Quarantine(..)) {
            self.nil_uids.push(it.uid);
        }
        // The stored message carries its header; keep only the UID here.
        let it = HeaderItem {
            header: None,
            flags: Vec::new(),
            ..it
        };
        self.push(it, verdict)
    }

    fn quarantine(&mut self, uid: u32, reason: &str, raw: Vec<u8>) -> Result<()> {
        self.bytes += raw.len() as u64;
        let it = HeaderItem {
            uid,
            flags: Vec::new(),
            size: raw.len() as u32,
            internal_date: None,
            modseq: None,
            header: None,
        };
        self.push(it, Verdict::Quarantine(reason.to_string(), raw))
    }

    fn push(&mut self, it: HeaderItem, verdict: Verdict) -> Result<()> {
        self.last_uid = self.last_uid.max(it.uid);
        self.chunk.push((it, verdict));
        if self.chunk.len() >= WRITER_CHUNK || self.chunk_bytes >= WRITER_CHUNK_BYTES {
            self.chunk_bytes = 0;
            let full = std::mem::replace(&mut self.chunk, Vec::with_capacity(WRITER_CHUNK));
            if let Some(tx) = &self.tx {
                send_blocking(tx, WriterMsg::Items(full))?;
            }
        }
        Ok(())
    }

    /// Hands over what is left and the checkpoint (0: none proven), and closes the channel.
    fn finish(&mut self, checkpoint: u32) {
        if let Some(tx) = self.tx.take() {
            if !self.chunk.is_empty() {
                let _ = send_blocking(&tx, WriterMsg::Items(std::mem::take(&mut self.chunk)));
            }
            let _ = send_blocking(&tx, WriterMsg::Finish(checkpoint));
        }
    }
}

/// Streams every span, in UID order so the writer's checkpoints stay valid between them,
/// isolating responses that cannot be read.
async fn stream(
    ss: &mut SyncSession,
    t: &Target<'_>,
    spans: &[Span],
    feed: &mut Feed<'_>,
    mut sent: Option<crate::imap::exec::Tag>,
) -> Result<()> {
    let mut isolated = 0usize;
    for span in spans {
        let mut after = 0u32;
        while let Some(set) = span.rest(after) {
            let condstore = ss.caps.condstore;
            let r = match sent.take() {
                Some(tag) => fetch::read_headers(&mut ss.session, tag, |it| feed.item(it)).await,
                None => {
                    let whole = feed.whole;
                    fetch::fetch_headers(&mut ss.session, &set, condstore, whole, |it| {
                        feed.item(it)
                    })
                    .await
                }
            };
            after = after.max(feed.last_uid);
            let Err(e) = r else { break };
            let Some(bad) = ss.session.get_mut().link_mut().unreadable.take() else {
                return Err(e);
            };
            isolated += 1;
            if isolated > MAX_UNREADABLE {
                return Err(e);
            }
            reopen(ss, t.folder, t.uidvalidity, false).await?;
            let uid = match bad.uid.filter(|u| *u > after) {
                Some(u) => Some(u),
                None => next_uid(ss, span, after).await?,
            };
            let Some(uid) = uid else { break };
            isolate(ss, t, feed, uid, bad).await?;
            after = after.max(uid);
        }
    }
    Ok(())
}

/// The first UID of the span above `after` on the server.
async fn next_uid(ss: &mut SyncSession, span: &Span, after: u32) -> Result<Option<u32>> {
    if let Some(u) = span.next_known(after) {
        return Ok(Some(u));
    }
    let found = fetch::uid_search(&mut ss.session, &format!("UID {}:*", after + 1)).await?;
    Ok(found.into_iter().find(|u| *u > after))
}

/// Fetches one message alone after its response could not be read in the stream: stored if it
/// reads fine now, else quarantined with the reason and what bytes can be had of it.
async fn isolate(
    ss: &mut SyncSession,
    t: &Target<'_>,
    feed: &mut Feed<'_>,
    uid: u32,
    bad: Unreadable,
) -> Result<()> {
    let mut one = None;
    let condstore = ss.caps.condstore;
    // Asked for as the stream asked (whole or header fields): `feed.item` reads it so.
    let whole = feed.whole;
    let r = fetch::fetch_headers(&mut ss.session, &uid.to_string(), condstore, whole, |it| {
        if it.uid == uid {
            one = Some(it);
        }
        Ok(())
    })
    .await;
    match r {
        Ok(()) => {
            return match one {
                Some(it) => feed.item(it),
                None => Ok(()), // gone meanwhile
            };
        }
        Err(e) => {
            if ss.session.get_mut().link_mut().unreadable.take().is_none() {
                return Err(e);
            }
            reopen(ss, t.folder, t.uidvalidity, false).await?;
        }
    }
    let raw = match fetch::fetch_prefix(&mut ss.session, uid, UNREADABLE_MAX).await {
        Ok(Some(raw)) if !raw.is_empty() => raw,
        Ok(_) => bad.raw,
        Err(e) => {
            if ss.session.get_mut().link_mut().unreadable.take().is_none() {
                return Err(e);
            }
            reopen(ss, t.folder, t.uidvalidity, false).await?;
            bad.raw
        }
    };
    tracing::warn!(
        "{}: UID {uid} in {} quarantined: {}",
        ss.server(),
        t.folder.name,
        bad.reason
    );
    feed.quarantine(uid, &bad.reason, raw)
}

/// Opens the connection again and selects the folder, carrying over what the old connection
/// heard. Changes between the two connections went unheard, so mail that arrived is looked for
/// and, unless the caller is about to compare every flag and UID anyway (`whole`), the folder
/// is reconciled in full before the pass ends.
pub async fn reopen(
    ss: &mut SyncSession,
    folder: &FolderRow,
    uidvalidity: u32,
    whole: bool,
) -> Result<()> {
    let mut heard = unsolicited::take(&mut ss.session);
    ss.reconnect().await?;
    let sel = fetch::select(
        &mut ss.session,
        &folder.wire_name,
        ss.caps.condstore,
        None,
        false,
    )
    .await?;
    if sel.uidvalidity != uidvalidity {
        return Err(AppError::transient(
            format!(
                "the folder {} was recreated on the server during the pass (UIDVALIDITY)",
                folder.name
            ),
            "",
            "nothing to do: the next pass fetches it again",
        ));
    }
    heard.lost |= !whole;
    heard.grew = true;
    let rec = &mut ss.session.get_mut().link_mut().announced;
    rec.merge(heard);
    Ok(())
}

/// Keeps what bytes the server gives of messages it answered NIL for.
async fn keep_nil_bytes(
    store: &mut Store,
    ss: &mut SyncSession,
    t: &Target<'_>,
    uids: &[u32],
) -> Result<()> {
    for &uid in uids {
        if let Ok(Some(raw)) = fetch::fetch_prefix(&mut ss.session, uid, UNREADABLE_MAX).await
            && !raw.is_empty()
        {
            store.quarantine_set_raw(t.folder.id, t.uidvalidity, uid, &raw)?;
        }
    }
    Ok(())
}
