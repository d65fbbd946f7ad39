//! The outbox: send and reply (one typed request, the same from the CLI's flags and the
//! console's compose pane), the queue's items, the user's decisions on them (retry, resend,
//! drop, cancel), flush, and the background worker the daemon and the console run.
//!
//! The outbox engine does its store work between network waits, so everything here that drives
//! it runs on a thread of its own ([`Ctx::on_own_thread`]), never on a shared runtime's worker.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use super::Ctx;
use super::access::{self, Need, Standing, Target};
use crate::account::Account;
use crate::config::Config;
use crate::error::{AppError, Result};
use crate::mail::compose::{self, CopyPlan, Draft};
use crate::outbox::{DriveOptions, Outbox, WorkerSettings, check_sender};
use crate::store::{OutboxRow, ReplyBase, Store};

pub use crate::outbox::{CopyConnections, DriveReport, ErrorSummary, Observer, Progress};
pub use forward::{forward_subject, forwarded_text};

mod forward;
pub use crate::store::{CopyState, OutboxState};

/// A message to send, as the operator composed it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SendRequest {
    /// The account to send from (None: the one holding the answered message, or the only one).
    pub account: Option<String>,
    /// An alias of the account to send from (None: its own address).
    pub from: Option<String>,
    pub to: Vec<String>,
    pub cc: Vec<String>,
    pub bcc: Vec<String>,
    /// The Reply-To header.
    pub reply_to: Option<String>,
    /// Required for a new message; a reply defaults to "Re: " and the original's.
    pub subject: Option<String>,
    pub text: String,
    pub html: Option<String>,
    /// Files to attach.
    pub attachments: Vec<PathBuf>,
    pub answers: Answers,
    /// Queue only: the daemon, the console or `outbox flush` sends it.
    pub queue_only: bool,
}

/// What a message answers.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum Answers {
    #[default]
    Nothing,
    /// `send --in-reply-to`: a Message-ID, or the local id of a cached message (threading only).
    MessageId(String),
    /// `reply ID [--all]`: addressed, quoted and threaded from a cached message (To given in
    /// the request replaces the computed one).
    Message { id: i64, all: bool },
    /// `forward ID`: a cached message's text quoted and its attachments attached again, to
    /// the request's recipients.
    Forward { id: i64 },
}

/// One outbox item as both faces show it (the contract's `outbox --json` item).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Item {
    pub id: i64,
    /// The account's name.
    pub account: String,
    pub state: OutboxState,
    pub copy_state: Option<CopyState>,
    pub from: String,
    pub to: Vec<String>,
    pub subject: Option<String>,
    pub message_id: String,
    pub attempts: i64,
    pub copy_attempts: i64,
    pub last_error: Option<LastError>,
    pub next_attempt_at: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    pub sent_at: Option<String>,
    pub verified_at: Option<String>,
    pub copy_folder: Option<String>,
    pub copy_uid: Option<i64>,
    pub copy_note: Option<String>,
    pub size: Option<i64>,
    pub in_reply_to: Option<String>,
    pub thread_message_id: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LastError {
    pub at: Option<String>,
    pub what: String,
    pub fix: Option<String>,
}

impl Item {
    fn of(config: &Config, r: OutboxRow) -> Item {
        Item {
            id: r.id,
            account: config
                .account_by_id(&r.account_id)
                .map(|(n, _)| n.clone())
                .unwrap_or_else(|| r.account_id.clone()),
            state: r.state,
            copy_state: r.copy_state,
            from: r.from_addr,
            to: r.rcpts,
            subject: r.subject,
            message_id: r.message_id,
            attempts: r.attempts,
            copy_attempts: r.copy_attempts,
            last_error: r.last_error_what.map(|what| LastError {
                at: r.last_error_at,
                what,
                fix: r.last_error_fix,
            }),
            next_attempt_at: r.next_attempt_at,
            created_at: r.created_at,
            updated_at: r.updated_at,
            sent_at: r.sent_at,
            verified_at: r.verified_at,
            copy_folder: r.copy_folder,
            copy_uid: r.copy_uid,
            copy_note: r.copy_note,
            size: r.size,
            in_reply_to: r.in_reply_to,
            thread_message_id: r.thread_message_id,
        }
    }
}

// ---- the queue as lists ----

/// The items of the accounts this operator may see, newest first (`outbox`).
pub fn list(cx: &Ctx) -> Result<Vec<Item>> {
    Ok(page(cx, 0, 1000)?.1)
}

/// One page of them and their number (the console's Outbox pane).
pub fn page(cx: &Ctx, offset: i64, limit: i64) -> Result<(i64, Vec<Item>)> {
    let config = cx.config()?;
    let visible = access::visible_account_ids(cx, &config);
    let store = cx.store()?;
    let total = store.outbox_count(&visible)?;
    let rows = store.outbox_page(&visible, offset, limit)?;
    Ok((
        total,
        rows.into_iter().map(|r| Item::of(&config, r)).collect(),
    ))
}

/// Customer addresses for To/Cc completion, (name, address) by prefix (the book is shared).
pub fn completions(cx: &Ctx, prefix: &str, limit: i64) -> Result<Vec<(String, String)>> {
    cx.store()?.view_address_completions(prefix, limit)
}

// ---- sending ----

/// Builds the message, queues it and (unless queue-only) sends it now. Ok once the SMTP server
/// accepted it (its Sent copy may still be pending) or, queue-only, once it is queued; an Err
/// says what happened to the item and how to go on.
pub async fn send(cx: &Ctx, req: SendRequest, observer: Option<Observer>) -> Result<Item> {
    if let Answers::Forward { id } = req.answers {
        // Its attachments go along: the body must be cached first.
        super::messages::fetch_body(cx, id).await?;
    }
    cx.on_own_thread("mailroom-send", move |cx, rt| {
        send_here(cx, rt, req, observer)
    })
    .await
}

/// `send` on its own thread: compose and queue (store), then drive (network).
fn send_here(
    cx: &Ctx,
    rt: &tokio::runtime::Runtime,
    req: SendRequest,
    observer: Option<Observer>,
) -> Result<Item> {
    let ob = engine(cx, observer)?;
    let queue_only = req.queue_only;
    let id = {
        let store = cx.store()?;
        let letter = match req.answers {
            Answers::Message { id, all } => reply_letter(cx, &ob.config, &store, id, all, req)?,
            Answers::Forward { id } => forward::letter(cx, &ob.config, &store, id, req)?,
            _ => new_letter(cx, &ob.config, &store, req)?,
        };
        letter.enqueue(&ob)?
    };
    if !queue_only {
        // Not forced: a batched copy keeps its batch time.
        rt.block_on(ob.drive(&only(id)))?;
    }
    finish(&ob, id, queue_only)
}

/// A composed message on its way into the queue.
struct Letter {
    account: Account,
    draft: Draft,
    attachments: Vec<PathBuf>,
    thread_message_id: Option<i64>,
}

impl Letter {
    /// Reads the attachments, builds the bytes (and the Sent copy's) and queues them.
    fn enqueue(mut self, ob: &Outbox) -> Result<i64> {
        for p in &self.attachments {
            self.draft.attachments.push(compose::read_attachment(p)?);
        }
        let sc = &self.account.cfg.sent_copy;
        let plan = CopyPlan {
            content: sc.content,
            drop_attachments_over_bytes: sc.drop_attachments_over_bytes,
        };
        let built = compose::build(&self.draft, &plan)?;
        ob.enqueue(
            &self.account,
            &built,
            &self.draft.subject,
            self.draft.in_reply_to.clone(),
            self.thread_message_id,
        )
    }
}

/// A new message (`send`), threaded under `--in-reply-to` when given.
fn new_letter(cx: &Ctx, config: &Config, store: &Store, req: SendRequest) -> Result<Letter> {
    let threading = match &req.answers {
        Answers::MessageId(irt) => threading_for(cx, config, store, irt)?,
        _ => Threading::default(),
    };
    let (name, _) = access::pick_account(cx, config, store, req.account.as_deref(), Need::Act)?;
    let account = Account::from_config(config, name)?;
    let subject = req
        .subject
        .clone()
        .ok_or_else(|| AppError::usage("the message has no subject", "add --subject TEXT"))?;
    let head = Head {
        from: sender(&account, req.from.as_deref())?,
        to: req.to.clone(),
        cc: req.cc.clone(),
        subject,
        text: req.text.clone(),
    };
    Letter::new(account, head, req, threading)
}

/// A reply (`reply ID`): to its sender (or Reply-To; with `all` also its other recipients),
/// quoted and threaded, from the account holding it unless one is named.
fn reply_letter(
    cx: &Ctx,
    config: &Config,
    store: &Store,
    id: i64,
    all: bool,
    req: SendRequest,
) -> Result<Letter> {
    let holders = access::message(cx, config, store, id, Need::Act)?;
    let base = store
        .reply_base(id)?
        .ok_or_else(|| access::no_such(cx, &Target::Message(id)))?;
    let name = match &req.account {
        Some(n) => access::account(cx, config, store, n, Need::Act)?.0.clone(),
        None => match holders
            .iter()
            .find_map(|h| config.account_by_id(h).map(|(n, _)| n.clone()))
        {
            Some(n) => n,
            None => access::pick_account(cx, config, store, None, Need::Act)?
                .0
                .clone(),
        },
    };
    let account = Account::from_config(config, &name)?;
    let (to, cc) = reply_recipients(&base, &account, &req, all)?;
    let text = quoted(&base, &req.text);
    let head = Head {
        from: sender(&account, req.from.as_deref())?,
        to,
        cc,
        subject: req
            .subject
            .clone()
            .unwrap_or_else(|| compose::reply_subject(base.subject.as_deref().unwrap_or(""))),
        text,
    };
    Letter::new(account, head, req, Threading::from_base(&base))
}

/// The parts of a draft its kind decides (a new message takes them as given, a reply
/// computes them from the original).
struct Head {
    from: String,
    to: Vec<String>,
    cc: Vec<String>,
    subject: String,
    text: String,
}

impl Letter {
    fn new(account: Account, head: Head, req: SendRequest, threading: Threading) -> Result<Letter> {
        let draft = Draft {
            message_id: compose::new_message_id(&compose::bare_address(&head.from)?),
            from: head.from,
            to: head.to,
            cc: head.cc,
            bcc: req.bcc,
            reply_to: req.reply_to,
            subject: head.subject,
            text: head.text,
            html: req.html,
            attachments: vec![],
            in_reply_to: threading.in_reply_to,
            references: threading.references,
            date: std::time::SystemTime::now(),
        };
        Ok(Letter {
            account,
            draft,
            attachments: req.attachments,
            thread_message_id: threading.thread_message_id,
        })
    }
}

/// The From header: the account's address (with its display name) or a permitted alias.
fn sender(account: &Account, from: Option<&str>) -> Result<String> {
    match from {
        None => Ok(match &account.cfg.display_name {
            Some(n) if !n.is_empty() => format!("{n} <{}>", account.cfg.email),
            _ => account.cfg.email.clone(),
        }),
        Some(f) => {
            let addr = compose::bare_address(f)?;
            check_sender(&account.cfg, &addr)?;
            Ok(f.to_string())
        }
    }
}

/// Where a message hooks into its conversation.
#[derive(Default)]
struct Threading {
    in_reply_to: Option<String>,
    references: Vec<String>,
    thread_message_id: Option<i64>,
}

impl Threading {
    fn from_base(base: &ReplyBase) -> Threading {
        let mut refs: Vec<String> = base
            .refs
            .as_deref()
            .unwrap_or("")
            .split_whitespace()
            .map(|r| r.trim_matches(['<', '>']).to_string())
            .filter(|r| !r.is_empty())
            .collect();
        if let Some(m) = &base.message_id
            && !refs.contains(m)
        {
            refs.push(m.clone());
        }
        Threading {
            in_reply_to: base.message_id.clone(),
            references: refs,
            thread_message_id: Some(base.id),
        }
    }
}

/// `--in-reply-to`: a local id names a cached message the operator may see; a Message-ID of a
/// cached message they may see threads like it; any other Message-ID threads by itself.
fn threading_for(cx: &Ctx, config: &Config, store: &Store, irt: &str) -> Result<Threading> {
    let irt = irt.trim().trim_matches(['<', '>']).to_string();
    if let Ok(local) = irt.parse::<i64>() {
        access::message(cx, config, store, local, Need::Read)?;
        let base = store
            .reply_base(local)?
            .ok_or_else(|| access::no_such(cx, &Target::Message(local)))?;
        return Ok(Threading::from_base(&base));
    }
    let visible = access::visible_account_ids(cx, config);
    let cached = match store.message_by_message_id(&irt)? {
        Some(n)
            if store
                .message_account_ids(n)?
                .iter()
                .any(|a| visible.contains(a)) =>
        {
            store.reply_base(n)?
        }
        _ => None,
    };
    Ok(match cached {
        Some(b) => Threading::from_base(&b),
        None => Threading {
            in_reply_to: Some(irt.clone()),
            references: vec![irt],
            thread_message_id: None,
        },
    })
}

/// To and Cc of a reply: the request's To if given, else the Reply-To or the author — or, for
/// our own message, its recipients; with `all`, everyone else it went to in Cc.
fn reply_recipients(
    base: &ReplyBase,
    account: &Account,
    req: &SendRequest,
    all: bool,
) -> Result<(Vec<String>, Vec<String>)> {
    let parsed = base
        .headers
        .as_deref()
        .or(base.body.as_deref())
        .and_then(|h| mail_parser::MessageParser::default().parse_headers(h));
    let reply_to: Option<(Option<String>, String)> = parsed.as_ref().and_then(|m| {
        let a = m.reply_to()?.first()?;
        Some((a.name().map(str::to_string), a.address()?.to_string()))
    });
    let author = base.from_addr.clone().map(|a| (base.from_name.clone(), a));
    let primary = reply_to.or(author).ok_or_else(|| {
        AppError::usage(
            "the message has no sender to reply to",
            "use `mailroom send --to ADDRESS --in-reply-to ID` instead",
        )
    })?;
    let mut own: Vec<String> = vec![account.cfg.email.to_ascii_lowercase()];
    own.extend(account.cfg.aliases.iter().map(|a| a.to_ascii_lowercase()));
    let mut to: Vec<String> = if req.to.is_empty() {
        vec![mailbox_text(primary.0.as_deref(), &primary.1)]
    } else {
        req.to.clone()
    };
    let mut cc = req.cc.clone();
    if all {
        let mut seen: Vec<String> = own.clone();
        seen.push(primary.1.to_ascii_lowercase());
        for (n, a) in addresses(&base.to_json)
            .into_iter()
            .chain(addresses(&base.cc_json))
        {
            let l = a.to_ascii_lowercase();
            if !seen.contains(&l) {
                seen.push(l);
                cc.push(mailbox_text(n.as_deref(), &a));
            }
        }
    }
    // Replying to our own message: answer its recipients instead of ourselves.
    if own.contains(&primary.1.to_ascii_lowercase()) && req.to.is_empty() {
        let recipients: Vec<String> = addresses(&base.to_json)
            .into_iter()
            .filter(|(_, a)| !own.contains(&a.to_ascii_lowercase()))
            .map(|(n, a)| mailbox_text(n.as_deref(), &a))
            .collect();
        if !recipients.is_empty() {
            to = recipients;
        }
    }
    Ok((to, cc))
}

/// The reply's text with the original quoted under it (when the original has text).
fn quoted(base: &ReplyBase, own_text: &str) -> String {
    let original = base.text_body.clone().or_else(|| {
        let body = base.body.as_deref()?;
        let m = mail_parser::MessageParser::default().parse(body)?;
        m.body_text(0).map(|t| t.to_string())
    });
    let who = mailbox_text(
        base.from_name.as_deref(),
        base.from_addr.as_deref().unwrap_or("unknown"),
    );
    match original {
        Some(o) => compose::quote_body(own_text, base.date.as_deref(), &who, &o),
        None => own_text.to_string(),
    }
}

/// The stored `[{"name","address"}]` list as (name, address) pairs (entries without an
/// address are left out).
fn addresses(json: &str) -> Vec<(Option<String>, String)> {
    let v: serde_json::Value = serde_json::from_str(json).unwrap_or_default();
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| {
                    let addr = x["address"].as_str()?.to_string();
                    Some((x["name"].as_str().map(str::to_string), addr))
                })
                .collect()
        })
        .unwrap_or_default()
}

fn mailbox_text(name: Option<&str>, addr: &str) -> String {
    match name {
        Some(n) if !n.is_empty() => format!("\"{}\" <{addr}>", n.replace(['"', '\\'], "")),
        _ => addr.to_string(),
    }
}

// ---- the user's decisions on an item ----

/// What the operator decided about an item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Make a waiting or failed item (or its pending, failed or skipped copy) due now.
    Retry,
    /// Send an uncertain item again (it may arrive twice).
    Resend,
    /// Give up on an uncertain item, assuming it was delivered (it still gets its Sent copy).
    Drop,
}

/// Applies the decision and drives the item at once; answers like `send`.
pub async fn decide(cx: &Ctx, id: i64, d: Decision, observer: Option<Observer>) -> Result<Item> {
    cx.on_own_thread("mailroom-outbox", move |cx, rt| {
        let ob = engine(cx, observer)?;
        gate(cx, &ob, id)?;
        match d {
            Decision::Retry => ob.retry(id)?,
            Decision::Resend => ob.resend(id)?,
            Decision::Drop => ob.drop_uncertain(id)?,
        }
        // The item is due now; batching still applies to its copy.
        rt.block_on(ob.drive(&only(id)))?;
        finish(&ob, id, false)
    })
    .await
}

/// Cancels an item the SMTP server has not accepted (queued or failed).
pub fn cancel(cx: &Ctx, id: i64, observer: Option<Observer>) -> Result<Item> {
    let ob = engine(cx, observer)?;
    gate(cx, &ob, id)?;
    ob.cancel(id)?;
    let row = ob.store().outbox_get(id)?.ok_or_else(vanished)?;
    Ok(Item::of(&ob.config, row))
}

/// Drives every due item of the accounts this operator may act on (`outbox flush`).
pub async fn flush(
    cx: &Ctx,
    connections: CopyConnections,
    observer: Option<Observer>,
) -> Result<DriveReport> {
    cx.on_own_thread("mailroom-outbox", move |cx, rt| {
        let ob = engine(cx, observer)?;
        let opts = DriveOptions {
            connections,
            accounts: Some(actable(&ob.config, &cx.operator)),
            ..Default::default()
        };
        rt.block_on(ob.drive(&opts))
    })
    .await
}

/// The engine over this context's settings and store, telling `observer` of each state.
fn engine(cx: &Ctx, observer: Option<Observer>) -> Result<Outbox> {
    let ob = Outbox::new(cx.config()?, cx.store()?, cx.vault()?, &cx.operator);
    Ok(match observer {
        Some(o) => ob.with_observer(o),
        None => ob,
    })
}

/// The visibility gate for an item named by id.
fn gate(cx: &Ctx, ob: &Outbox, id: i64) -> Result<()> {
    let store = cx.store()?;
    access::outbox_item(cx, &ob.config, &store, id, Need::Act)
}

fn only(id: i64) -> DriveOptions {
    DriveOptions {
        only: Some(id),
        ..Default::default()
    }
}

/// The ids of the accounts `operator` may act on.
fn actable(config: &Config, operator: &str) -> Vec<String> {
    config
        .accounts
        .values()
        .filter(|a| Standing::of(a, operator).allows(Need::Act))
        .map(|a| a.id.clone())
        .collect()
}

fn vanished() -> AppError {
    AppError::local("the queued item vanished", "", "report this as a bug")
}

/// The item's final word: Ok once SMTP accepted it (the copy may still be pending) or, when
/// only queued was asked for, once it is queued.
fn finish(ob: &Outbox, id: i64, queue_only: bool) -> Result<Item> {
    let row = ob.store().outbox_get(id)?.ok_or_else(vanished)?;
    if row.state.accepted() || (queue_only && row.state == OutboxState::Queued) {
        return Ok(Item::of(&ob.config, row));
    }
    let what = row
        .last_error_what
        .clone()
        .unwrap_or_else(|| format!("outbox #{id} is {}", row.state));
    let fix = row.last_error_fix.clone().unwrap_or_default();
    let detail = match row.state {
        OutboxState::Queued => format!(
            "outbox #{id} stays queued (attempt {}); next attempt at {}",
            row.attempts,
            row.next_attempt_at.as_deref().unwrap_or("the next flush")
        ),
        OutboxState::Failed => {
            format!("outbox #{id} failed; fix it, then `mailroom outbox retry {id}` or cancel it")
        }
        OutboxState::Uncertain => format!("outbox #{id} is uncertain"),
        s => format!("outbox #{id} is {s}"),
    };
    let code = match row.state {
        OutboxState::Uncertain => crate::error::Code::OutboxUncertain,
        _ => crate::error::Code::Failed,
    };
    Err(AppError::needs_user(what, detail, fix).with_code(code))
}

// ---- the background worker ----

/// Whose items a background worker drives.
#[derive(Clone)]
pub enum Reach {
    /// Every account's (the daemon: a service, not an operator's view).
    Everyone,
    /// Those of the accounts the operator may act on (the console).
    Operator,
    /// Those whose sync slot this process holds (a daemon: the outbox of an account goes
    /// with its lease).
    Held(Arc<crate::sync::fleet::Fleet>),
}

/// The outbox worker on a thread of its own: retries, pending Sent copies and verification go
/// on in the background. Items claim themselves, so two workers never double a send.
pub struct Worker {
    stop: tokio::sync::watch::Sender<bool>,
    done: tokio::sync::oneshot::Receiver<()>,
}

impl Worker {
    pub fn start(cx: &Ctx, reach: Reach) -> Result<Worker> {
        let idle = Duration::from_secs(cx.config()?.general.outbox_poll_secs.max(1));
        let scope: Option<crate::outbox::Scope> = match reach {
            Reach::Everyone => None,
            Reach::Held(fleet) => Some(Arc::new(move |_: &Config| Some(fleet.held()))),
            Reach::Operator => {
                let operator = cx.operator.clone();
                Some(Arc::new(move |config: &Config| {
                    Some(actable(config, &operator))
                }))
            }
        };
        let settings = WorkerSettings {
            idle,
            observer: None,
            scope,
        };
        let (stop, stop_rx) = tokio::sync::watch::channel(false);
        let (done_tx, done) = tokio::sync::oneshot::channel();
        let (home, operator) = (cx.home.clone(), cx.operator.clone());
        std::thread::Builder::new()
            .name("mailroom-outbox".into())
            .spawn(move || {
                match super::thread::current_thread_runtime() {
                    Ok(rt) => {
                        let wake = Arc::new(tokio::sync::Notify::new());
                        let run = crate::outbox::work(home, operator, stop_rx, wake, settings);
                        if let Err(e) = rt.block_on(run) {
                            tracing::warn!("the outbox worker stopped: {e}");
                        }
                    }
                    Err(e) => tracing::warn!("the outbox worker cannot start: {e}"),
                }
                let _ = done_tx.send(());
            })
            .map_err(|e| {
                AppError::local(
                    "cannot start the outbox worker",
                    e.to_string(),
                    "check system limits (threads)",
                )
            })?;
        Ok(Worker { stop, done })
    }

    /// Asks the worker to stop and waits for it at most `within` (a pass stuck on the network
    /// is left to end by itself: every committed step stays done).
    pub async fn stop(self, within: Duration) {
        let _ = self.stop.send(true);
        let _ = tokio::time::timeout(within, self.done).await;
    }
}
