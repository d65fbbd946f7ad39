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

use std::io::IsTerminal;
use std::time::Instant;

use serde::Serialize;

use super::events::EventSender;
use crate::account::Account;
use crate::config::{Config, HistoryScope, ProcessScope};
use crate::error::Result;
use crate::imap::discovery;
use crate::imap::fetch;
use crate::imap::{ImapSession, ImapTarget};
use crate::mail::parse;
use crate::secret::Credential;
use crate::store::{FolderRow, Store};

pub use super::plan::{FirstFetch, MAX_UID_SET_CHARS, first_fetch};

/// What the server can do, from CAPABILITY after login.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Caps {
    pub condstore: bool,
    pub qresync: bool,
    pub idle: bool,
    pub uidplus: bool,
    pub mv: bool,
    /// LIST-STATUS (RFC 5819): every folder's counters with LIST.
    pub list_status: bool,
    pub special_use: bool,
    /// NOTIFY (RFC 5465): changes in every folder on one connection.
    pub notify: bool,
    pub compress: bool,
    /// QRESYNC is offered (enabled or not).
    #[serde(skip)]
    pub qresync_word: bool,
}

impl Caps {
    /// From the capability words (wire spelling); `qresync` is only true once enabled.
    pub fn from_words(words: &[String]) -> Caps {
        let has = |c: &str| words.iter().any(|w| w.eq_ignore_ascii_case(c));
        Caps {
            condstore: has("CONDSTORE") || has("QRESYNC"),
            qresync: false,
            idle: has("IDLE"),
            uidplus: has("UIDPLUS"),
            mv: has("MOVE"),
            list_status: has("LIST-STATUS"),
            special_use: has("SPECIAL-USE"),
            notify: has("NOTIFY"),
            compress: has("COMPRESS=DEFLATE"),
            qresync_word: has("QRESYNC"),
        }
    }

    pub fn list(&self) -> discovery::ListCaps {
        discovery::ListCaps {
            list_status: self.list_status,
            special_use: self.special_use,
            condstore: self.condstore,
        }
    }
}

/// How a session is opened (kept for reopening it).
#[derive(Clone)]
struct Opening {
    target: ImapTarget,
    credential: Credential,
    compress: crate::config::Compress,
    /// The capabilities the server had last time (`accounts.capabilities`): what may be sent
    /// right behind LOGIN before this session's own list arrives.
    remembered: Vec<String>,
}

pub struct SyncSession {
    pub session: ImapSession,
    pub caps: Caps,
    /// The server's CAPABILITY list, space separated (stored for diagnostics).
    pub caps_text: String,
    /// What it takes to open the same session again (after a response that cannot be read).
    opening: Opening,
    /// Messages whose body the server answered unreadably: not prefetched again while this
    /// session (and the ones that replace it) lives.
    pub(crate) unreadable_bodies: std::collections::HashSet<i64>,
    /// The listing sent along with LOGIN (taken by the pass that asked for it).
    pub(crate) early_list: Option<discovery::Listing>,
    /// Counts reconnects: commands sent before one have no answer to wait for.
    pub(crate) generation: u64,
}

/// A session yet to be opened like an existing one (see [`SyncSession::another`]).
pub struct Another(Opening);

impl Another {
    pub async fn open(self) -> Result<SyncSession> {
        open_target(self.0, false).await
    }
}

/// Connects, signs in, reads capabilities and enables QRESYNC when offered. (Takes the
/// credential rather than the store: a `&Store` cannot cross an await in a spawned task.)
pub async fn open_session(account: &Account, credential: &Credential) -> Result<SyncSession> {
    open_session_for_pass(account, credential, None, false).await
}

/// As [`open_session`], for a pass: with the capabilities the server had last time
/// (`remembered`, from `accounts.capabilities`), QRESYNC is enabled and (`list`) the folders
/// listed with their counters in the same flight as LOGIN; COMPRESS=DEFLATE where wanted
/// (`sync.compress`) and offered.
pub async fn open_session_for_pass(
    account: &Account,
    credential: &Credential,
    remembered: Option<&str>,
    list: bool,
) -> Result<SyncSession> {
    let opening = Opening {
        target: account.imap_target(),
        credential: credential.clone(),
        compress: account.cfg.sync.compress,
        remembered: remembered
            .map(|r| r.split_whitespace().map(str::to_string).collect())
            .unwrap_or_default(),
    };
    open_target(opening, list).await
}

fn qresync_allowed() -> bool {
    std::env::var_os("MAILROOM_NO_QRESYNC").is_none()
}

/// The commands sent behind LOGIN, from what the server had last time: COMPRESS alone (what
/// follows it must wait for its answer), else ENABLE QRESYNC and the listing.
fn early_commands(remembered: &[String], compress: bool, list: bool) -> Vec<String> {
    // Nothing remembered (a first connection, or a list stored by an older version): nothing
    // but LOGIN goes in the first flight.
    if !remembered
        .iter()
        .any(|w| w.to_ascii_uppercase().starts_with("IMAP4REV"))
    {
        return Vec::new();
    }
    let remembered = Caps::from_words(remembered);
    if compress && remembered.compress {
        return vec!["COMPRESS DEFLATE".into()];
    }
    let mut cmds = Vec::new();
    if remembered.qresync_offered() {
        cmds.push("ENABLE QRESYNC".to_string());
    }
    if list {
        cmds.push(discovery::list_command(remembered.list()));
    }
    cmds
}

impl Caps {
    fn qresync_offered(&self) -> bool {
        self.condstore && self.qresync_word && qresync_allowed()
    }
}

async fn open_target(opening: Opening, list: bool) -> Result<SyncSession> {
    let loopback = is_loopback(&opening.target.server.host);
    let want_compress = opening.compress.wanted(loopback);
    let early = early_commands(&opening.remembered, want_compress, list);
    let (mut session, login_caps, tags) =
        crate::imap::connect::connect_pipelined(&opening.target, &opening.credential, &early)
            .await?;
    let mut listing = discovery::Listing::default();
    let outcomes = crate::imap::exec::answers(&mut session, "logging in", &tags, |_, r| {
        Ok(discovery::collect(&mut listing, r))
    })
    .await?;
    let done = |cmd: &str| {
        early
            .iter()
            .zip(&outcomes)
            .any(|(c, r)| c.starts_with(cmd) && r.is_ok())
    };
    let (compressed, enabled, listed) = (done("COMPRESS"), done("ENABLE"), done("LIST"));
    if compressed {
        session.get_mut().start_deflate();
    }
    let words = match login_caps {
        Some(w) => w,
        None => capabilities(&mut session).await?,
    };
    let mut caps = Caps::from_words(&words);
    if !compressed && want_compress && caps.compress {
        crate::imap::fetch::simple(&mut session, "COMPRESS DEFLATE", "COMPRESS DEFLATE").await?;
        session.get_mut().start_deflate();
    }
    caps.qresync = enabled;
    let early_list = match listed {
        true => Some(discovery::finish(listing)),
        false => None,
    };
    let mut ss = SyncSession {
        session,
        caps,
        caps_text: words.join(" "),
        opening,
        unreadable_bodies: Default::default(),
        early_list,
        generation: 0,
    };
    ss.finish_open(list).await?;
    Ok(ss)
}

/// Whether the host is this machine (`sync.compress = "auto"` does not deflate there).
fn is_loopback(host: &str) -> bool {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    h.eq_ignore_ascii_case("localhost")
        || h.parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// CAPABILITY, in wire words.
async fn capabilities(session: &mut ImapSession) -> Result<Vec<String>> {
    use crate::imap::connect::{call_limit, called};
    let r = tokio::time::timeout(call_limit(session), session.capabilities()).await;
    let caps = called(session, "CAPABILITY", r)?;
    Ok(crate::imap::connect::capability_words(&caps))
}

impl SyncSession {
    /// What could not go behind LOGIN: ENABLE QRESYNC and (`list`) the listing, in one flight.
    async fn finish_open(&mut self, list: bool) -> Result<()> {
        let enable = !self.caps.qresync && self.caps.qresync_offered();
        let list = list && self.early_list.is_none();
        let mut tags = Vec::new();
        if enable {
            let t = crate::imap::exec::send(&mut self.session, "ENABLE QRESYNC", "ENABLE QRESYNC");
            tags.push(t.await?);
        }
        if list {
            let cmd = discovery::list_command(self.caps.list());
            tags.push(crate::imap::exec::send(&mut self.session, "listing folders", &cmd).await?);
        }
        if tags.is_empty() {
            return Ok(());
        }
        let mut listing = discovery::Listing::default();
        let outcomes =
            crate::imap::exec::answers(&mut self.session, "opening the session", &tags, |_, r| {
                Ok(discovery::collect(&mut listing, r))
            })
            .await?;
        let mut outcomes = outcomes.into_iter();
        if enable {
            outcomes.next().transpose()?;
            self.caps.qresync = true;
        }
        if list {
            outcomes.next().transpose()?;
            self.early_list = Some(discovery::finish(listing));
        }
        Ok(())
    }

    /// Drops this connection (without LOGOUT: it is broken) and opens the same session again.
    pub async fn reconnect(&mut self) -> Result<()> {
        let mut opening = self.opening.clone();
        opening.remembered = self
            .caps_text
            .split_whitespace()
            .map(str::to_string)
            .collect();
        let mut fresh = open_target(opening, false).await?;
        fresh.unreadable_bodies = std::mem::take(&mut self.unreadable_bodies);
        fresh.generation = self.generation + 1;
        *self = fresh;
        Ok(())
    }

    /// What opens a second session like this one (for folders fetched in parallel, or the
    /// bodies), without borrowing this one.
    pub fn another(&self) -> Another {
        let mut opening = self.opening.clone();
        opening.remembered = self
            .caps_text
            .split_whitespace()
            .map(str::to_string)
            .collect();
        Another(opening)
    }

    /// `host:port` of the server, as errors name it.
    pub fn server(&self) -> String {
        self.opening.target.address()
    }

    /// LOGOUT, waiting at most a few seconds; then the connection is dropped either way.
    pub async fn logout(self) {
        crate::imap::connect::logout(self.session).await;
    }

    /// LOGOUT without waiting for the answer (a process about to end).
    pub async fn logout_without_waiting(self) {
        crate::imap::connect::logout_without_waiting(self.session).await;
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct FolderSummary {
    pub folder: String,
    pub new: u64,
    pub updated: u64,
    pub vanished: u64,
    pub quarantined: u64,
    /// Bodies stored with the new mail (fetched whole); the pass reports the sum.
    #[serde(skip)]
    pub bodies: u64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct PassSummary {
    pub folders: Vec<FolderSummary>,
    pub ops_pushed: u64,
    pub bodies: u64,
    pub duration_ms: u64,
    pub bytes: u64,
    /// Full offline mode: time spent downloading bodies, and putting their words into the
    /// search index; bodies left for a later pass.
    pub bodies_ms: u64,
    pub index_ms: u64,
    pub bodies_pending: bool,
    /// Matching the new mail to customers after the pass (`sync --once`).
    pub match_ms: u64,
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
    /// The most connections to the server at once (`sync.max_connections`).
    pub max_connections: u32,
    /// Of those, what the account holds apart from the pass (the watcher, the bodies).
    pub reserved_connections: u32,
    /// Full offline mode (`sync.bodies = "all"`): every body after the headers.
    pub bodies_all: bool,
    pub bodies: super::bodies::BodyOptions,
}

impl PassOptions {
    /// Whether new mail is fetched whole, header and body in one stream: full offline mode
    /// without a date limit or a cap on the space (with either, which bodies to keep is decided
    /// after the headers, by the download that follows them).
    pub fn whole(&self) -> crate::imap::fetch::Whole {
        use crate::imap::fetch::Whole;
        match self.bodies_all && self.bodies.since.is_none() && self.bodies.max_bytes.is_none() {
            true => Whole::Yes,
            false => Whole::No,
        }
    }

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
            max_connections: o.max_connections.max(1),
            reserved_connections: 0,
            bodies_all: o.bodies == crate::config::BodiesMode::All,
            bodies: super::bodies::BodyOptions {
                since: o.bodies_since_days.map(|d| {
                    (chrono::Utc::now() - chrono::Duration::days(d as i64))
                        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                }),
                max_bytes: o.bodies_max_mb.map(|mb| mb.saturating_mul(1_000_000)),
                budget: None,
            },
        })
    }
}

/// One pass: push queued changes, refresh folders, sync every chosen folder whose counters
/// say something changed, prefetch bodies.
pub async fn run_pass(
    store: &mut Store,
    account: &Account,
    opts: &PassOptions,
    ss: &mut SyncSession,
    events: Option<&EventSender>,
) -> Result<PassSummary> {
    let started = Instant::now();
    let mut summary = PassSummary::default();
    let listing = match ss.early_list.take() {
        Some(l) => l,
        None => {
            // Counters can only prove a folder unchanged on a CONDSTORE server.
            let wanted: Vec<String> = store
                .folders(account.id())?
                .into_iter()
                .filter(|f| ss.caps.condstore && f.sync_enabled && f.first_sync_done)
                .map(|f| f.wire_name)
                .collect();
            discovery::list_with_status(&mut ss.session, ss.caps.list(), &wanted).await?
        }
    };
    store.upsert_folders(account.id(), &listing.folders)?;
    summary.ops_pushed = super::ops::push_ops(store, account, ss).await?;
    let folders: Vec<FolderRow> = store
        .folders(account.id())?
        .into_iter()
        .filter(|f| f.sync_enabled && f.selectable && f.present)
        .collect();
    let condstore = ss.caps.condstore;
    let (quiet, work): (Vec<FolderRow>, Vec<FolderRow>) = folders
        .into_iter()
        .partition(|f| super::folder::unchanged(f, listing.status.get(&f.wire_name), condstore));
    store.touch_folders_synced(&quiet.iter().map(|f| f.id).collect::<Vec<_>>())?;
    for f in &quiet {
        summary.folders.push(FolderSummary {
            folder: f.name.clone(),
            ..Default::default()
        });
    }
    let spare = opts
        .max_connections
        .saturating_sub(1 + opts.reserved_connections) as usize;
    let groups = super::parallel::groups(work, &listing.status, spare + 1);
    let mut check = super::parallel::run(
        store,
        account,
        opts,
        ss,
        groups,
        &listing.status,
        events,
        &mut summary,
    )
    .await?;
    // Folders whose new mail came in the SELECT's flight: what changed while it crossed the
    // link shows in their counters now (one LIST-STATUS for all), and those get another round.
    for _ in 0..CHECK_ROUNDS {
        if check.is_empty() {
            break;
        }
        check = check_again(store, account, opts, ss, &check, events, &mut summary).await?;
    }
    if opts.bodies_all {
        all_bodies(store, account, opts, ss, &mut summary).await?;
    } else {
        summary.bodies =
            super::prefetch::prefetch(store, account, opts, ss, &mut summary.bytes).await?;
    }
    summary.duration_ms = started.elapsed().as_millis() as u64;
    Ok(summary)
}

/// Full offline mode's part of a pass: the bodies still missing, then their words into the
/// search index (both within the pass's budget in the background).
async fn all_bodies(
    store: &mut Store,
    account: &Account,
    opts: &PassOptions,
    ss: &mut SyncSession,
    summary: &mut PassSummary,
) -> Result<()> {
    let t = Instant::now();
    let d = super::bodies::download(store, account, opts, ss).await?;
    summary.bodies = d.stored + summary.folders.iter().map(|f| f.bodies).sum::<u64>();
    summary.bytes += d.bytes;
    summary.bodies_pending = d.pending;
    summary.bodies_ms = t.elapsed().as_millis() as u64;
    if !d.pending {
        let t = Instant::now();
        super::bodies::index(store, opts.bodies.budget)?;
        summary.bodies_pending = store.bodies_to_index(1, 1)?.len() == 1;
        summary.index_ms = t.elapsed().as_millis() as u64;
    }
    Ok(())
}

/// Rounds of comparing counters again at the end of a pass.
const CHECK_ROUNDS: usize = 3;

/// Lists the folders' counters again and syncs those that changed since they were selected;
/// returns the folders to compare again (whose new mail came in flight once more).
async fn check_again(
    store: &mut Store,
    account: &Account,
    opts: &PassOptions,
    ss: &mut SyncSession,
    ids: &[i64],
    events: Option<&EventSender>,
    summary: &mut PassSummary,
) -> Result<Vec<i64>> {
    let rows: Vec<FolderRow> = store
        .folders(account.id())?
        .into_iter()
        .filter(|f| ids.contains(&f.id))
        .collect();
    let wanted: Vec<String> = rows.iter().map(|f| f.wire_name.clone()).collect();
    let listing = discovery::list_with_status(&mut ss.session, ss.caps.list(), &wanted).await?;
    let condstore = ss.caps.condstore;
    let mut again = Vec::new();
    for f in rows {
        let st = listing.status.get(&f.wire_name);
        let listed = listing.folders.iter().any(|l| l.wire_name == f.wire_name);
        if !listed || super::folder::unchanged(&f, st, condstore) {
            continue;
        }
        let done = super::folder::sync_folder(
            store,
            account,
            opts,
            ss,
            &f,
            st,
            events,
            &mut summary.bytes,
        )
        .await
        .map_err(|e| in_folder(e, &f.name))?;
        if let Some(s) = summary.folders.iter_mut().find(|s| s.folder == f.name) {
            s.new += done.summary.new;
            s.updated += done.summary.updated;
            s.vanished += done.summary.vanished;
            s.quarantined += done.summary.quarantined;
            s.bodies += done.summary.bodies;
        }
        if done.check_again {
            again.push(f.id);
        }
    }
    Ok(again)
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

/// A server's failure in a folder (a stall, a lost connection) names the folder.
pub(crate) fn in_folder(mut e: crate::error::AppError, folder: &str) -> crate::error::AppError {
    if e.kind == crate::error::Kind::Transient && !e.summary.contains(folder) {
        e.summary = format!(
            "{} (folder {})",
            e.summary,
            crate::mail::sanitize::clean_line(folder)
        );
    }
    e
}
