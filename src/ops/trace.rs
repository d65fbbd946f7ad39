//! The protocol trace of an account (`mailroom trace on|off|show|export`, the console's log
//! pane): the switch is a setting in the store, so any process that talks to the account's
//! servers — the daemon included — starts tracing within a second of it being turned on; the
//! lines go to a bounded ring in the store. Redaction happens in the protocol code
//! (`mail::trace`); only visible accounts can be traced or read.

use std::collections::HashMap;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::Ctx;
use super::access::{self, Need};
use crate::error::{AppError, Result};
use crate::mail::trace::{TraceLine, TraceOpts, TraceSink};
use crate::store::{NewTraceLine, TraceFilter, TraceRow};

pub use crate::store::TRACE_RING;

/// An account's trace switch, by name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TraceState {
    pub account: String,
    pub enabled: bool,
    pub literals: bool,
}

/// A stored line, with its account's name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TraceEntry {
    pub id: i64,
    pub account: String,
    pub at: String,
    pub proto: String,
    pub dir: String,
    pub level: String,
    pub line: String,
}

/// What keeping literals means, said by both faces before it is switched on.
pub const LITERALS_WARNING: &str = "message literals are kept in full: the trace then holds mail content (bodies and attachments, your customers' words) that every operator who can see the account can read and export";

/// `trace on|off ACCOUNT [--literals]`. Keeping literals is the owner's to decide (the trace
/// then holds mail content); switching the trace is anyone's who may act on the account.
pub fn set(cx: &Ctx, account: &str, enabled: bool, literals: bool) -> Result<TraceState> {
    let config = cx.config()?;
    let store = cx.store()?;
    let need = match literals && enabled {
        true => Need::Configure,
        false => Need::Act,
    };
    let (name, a) = access::account(cx, &config, &store, account, need)?;
    store.set_trace(&a.id, enabled, literals && enabled, &cx.operator)?;
    store.audit(
        &cx.operator,
        if enabled { "trace_on" } else { "trace_off" },
        Some(&a.id),
        Some(name),
        &serde_json::json!({ "literals": literals && enabled }),
    )?;
    Ok(TraceState {
        account: name.clone(),
        enabled,
        literals: literals && enabled,
    })
}

/// The switches of the accounts this operator sees (off where never switched).
pub fn states(cx: &Ctx) -> Result<Vec<TraceState>> {
    let config = cx.config()?;
    let set: HashMap<String, (bool, bool)> = cx
        .store()?
        .trace_settings()?
        .into_iter()
        .map(|s| (s.account_id, (s.enabled, s.literals)))
        .collect();
    Ok(config
        .accounts
        .iter()
        .filter(|(_, a)| cx.sees(a))
        .map(|(n, a)| {
            let (enabled, literals) = set.get(&a.id).copied().unwrap_or_default();
            TraceState {
                account: n.clone(),
                enabled,
                literals,
            }
        })
        .collect())
}

/// Which lines: one account (by name) or every visible one; the lowest level shown.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Query {
    pub account: Option<String>,
    /// `info` (commands and answers) or `debug` (also untagged data and literals); None: all.
    pub level: Option<String>,
}

fn filter(cx: &Ctx, q: &Query) -> Result<(TraceFilter, HashMap<String, String>)> {
    let config = cx.config()?;
    let ids = match &q.account {
        Some(name) => {
            let store = cx.store()?;
            let (_, a) = access::account(cx, &config, &store, name, Need::Read)?;
            vec![a.id.clone()]
        }
        None => access::visible_account_ids(cx, &config),
    };
    let names = config
        .accounts
        .iter()
        .map(|(n, a)| (a.id.clone(), n.clone()))
        .collect();
    let levels = match q.level.as_deref().map(str::to_ascii_lowercase).as_deref() {
        None | Some("debug") | Some("all") => vec![],
        Some("info") => vec!["info"],
        Some(other) => {
            return Err(AppError::usage(
                format!("unknown trace level {other:?}"),
                "use info (commands and answers) or debug (everything)",
            ));
        }
    };
    Ok((
        TraceFilter {
            accounts: ids,
            levels,
        },
        names,
    ))
}

fn entry(names: &HashMap<String, String>, r: TraceRow) -> TraceEntry {
    TraceEntry {
        id: r.id,
        account: names.get(&r.account_id).cloned().unwrap_or(r.account_id),
        at: r.at,
        proto: r.proto,
        dir: r.dir,
        level: r.level,
        line: r.line,
    }
}

/// A page of lines, newest first, and how many there are.
pub fn page(cx: &Ctx, q: &Query, offset: i64, limit: i64) -> Result<(usize, Vec<TraceEntry>)> {
    let (f, names) = filter(cx, q)?;
    let store = cx.store()?;
    let total = store.trace_count(&f)? as usize;
    let rows = store.trace_page(&f, offset, limit)?;
    Ok((total, rows.into_iter().map(|r| entry(&names, r)).collect()))
}

/// The newest `limit` lines, oldest first (`trace show`).
pub fn show(cx: &Ctx, q: &Query, limit: i64) -> Result<Vec<TraceEntry>> {
    let mut rows = page(cx, q, 0, limit)?.1;
    rows.reverse();
    Ok(rows)
}

/// One line as the export writes it.
pub fn format_line(e: &TraceEntry) -> String {
    format!("{} {} {} {} {}", e.at, e.account, e.proto, e.dir, e.line)
}

/// `trace export ACCOUNT FILE`: the account's whole ring, oldest first, as text to share with
/// a provider's support (already redacted). Returns the number of lines.
pub fn export(cx: &Ctx, account: &str, path: &std::path::Path) -> Result<usize> {
    let q = Query {
        account: Some(account.to_string()),
        level: None,
    };
    let rows = show(cx, &q, TRACE_RING)?;
    let mut text = format!(
        "# mailroom protocol trace of {account} ({} lines; credentials redacted, message literals elided unless asked for)\n",
        rows.len()
    );
    for r in &rows {
        text.push_str(&format_line(r));
        text.push('\n');
    }
    std::fs::write(path, text).map_err(|e| {
        AppError::local(
            format!("cannot write {}", path.display()),
            e.to_string(),
            "choose a writable path",
        )
    })?;
    Ok(rows.len())
}

/// How often a process re-reads the switches (a trace switched on elsewhere starts within it).
const REFRESH: Duration = Duration::from_secs(1);
/// Lines are written in batches at most this far apart.
const FLUSH: Duration = Duration::from_millis(250);

enum Msg {
    Line(TraceLine),
    /// Someone asked whether to trace: read the switches now (then answer) and every second.
    Wake(mpsc::Sender<()>),
    /// Write what is queued, then answer.
    Flush(mpsc::Sender<()>),
    /// Write what is queued and end (the process is ending).
    Stop,
}

/// How long the first connection of a process waits for the switches to be read.
const FIRST_READ: Duration = Duration::from_secs(2);

/// The store as the trace's sink: switches cached (read when the first connection asks, then
/// every second), lines written in batches by a thread of its own.
struct StoreSink {
    on: Arc<RwLock<HashMap<String, TraceOpts>>>,
    tx: std::sync::Mutex<mpsc::Sender<Msg>>,
    /// Set once the first read of the switches is done (or given up on).
    woken: std::sync::OnceLock<()>,
}

impl TraceSink for StoreSink {
    fn wants(&self, account_id: &str) -> Option<TraceOpts> {
        // The first connection of a process waits for the switches (its greeting and login
        // are what a trace is for); others asking meanwhile wait for the same read.
        self.woken.get_or_init(|| {
            let (ack, done) = mpsc::channel();
            self.send(Msg::Wake(ack));
            let _ = done.recv_timeout(FIRST_READ);
        });
        self.on.read().ok()?.get(account_id).copied()
    }
    fn line(&self, line: TraceLine) {
        self.send(Msg::Line(line));
    }
}

impl StoreSink {
    fn send(&self, m: Msg) {
        if let Ok(tx) = self.tx.lock() {
            let _ = tx.send(m);
        }
    }
}

/// Ends the trace writer: what is queued is written (waiting at most two seconds), and the
/// writer's hold on the store is let go, so the process closes its database cleanly.
pub struct TraceGuard(Option<(mpsc::Sender<Msg>, std::thread::JoinHandle<()>)>);

impl Drop for TraceGuard {
    fn drop(&mut self) {
        if let Some((tx, writer)) = self.0.take() {
            let (ack, done) = mpsc::channel();
            if tx.send(Msg::Flush(ack)).is_ok() && done.recv_timeout(Duration::from_secs(2)).is_ok()
            {
                let _ = tx.send(Msg::Stop);
                let _ = writer.join();
            }
        }
    }
}

/// Installs the store as this process's trace sink. Nothing touches the store until a
/// connection asks whether to trace.
pub fn install(cx: &Ctx) -> TraceGuard {
    let (tx, rx) = mpsc::channel();
    let on = Arc::new(RwLock::new(HashMap::new()));
    let sink = StoreSink {
        on: on.clone(),
        tx: std::sync::Mutex::new(tx.clone()),
        woken: Default::default(),
    };
    if !crate::mail::trace::install(Box::new(sink)) {
        return TraceGuard(None);
    }
    let cx = cx.clone();
    let spawned = std::thread::Builder::new()
        .name("mailroom-trace".into())
        .spawn(move || writer(&cx, &on, &rx));
    TraceGuard(spawned.ok().map(|w| (tx, w)))
}

/// The writer thread: switches re-read every second (once woken), lines written in batches
/// (whatever queued up while the last batch was written).
fn writer(cx: &Ctx, on: &RwLock<HashMap<String, TraceOpts>>, rx: &mpsc::Receiver<Msg>) {
    let mut awake = false;
    let mut batch: Vec<NewTraceLine> = Vec::new();
    let mut last_read = Instant::now() - REFRESH;
    loop {
        let wait = if awake {
            FLUSH
        } else {
            Duration::from_secs(3600)
        };
        let mut acks = Vec::new();
        let mut woke = Vec::new();
        let mut stop = false;
        let mut next = match rx.recv_timeout(wait) {
            Ok(m) => Some(m),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => return,
        };
        while let Some(m) = next.take() {
            match m {
                Msg::Wake(a) => {
                    awake = true;
                    last_read = Instant::now() - REFRESH;
                    woke.push(a);
                }
                Msg::Line(l) => batch.push(NewTraceLine {
                    account_id: l.account_id,
                    proto: l.proto,
                    dir: l.dir.as_str(),
                    level: l.level,
                    line: l.text,
                }),
                Msg::Flush(a) => acks.push(a),
                Msg::Stop => stop = true,
            }
            if batch.len() < 2000 {
                next = rx.try_recv().ok();
            }
        }
        if awake && last_read.elapsed() >= REFRESH {
            last_read = Instant::now();
            refresh(cx, on);
        }
        for a in woke {
            let _ = a.send(());
        }
        if !batch.is_empty() {
            if let Err(e) = cx.store().and_then(|s| s.append_trace(&batch)) {
                tracing::warn!("the protocol trace could not be stored: {e}");
            }
            batch.clear();
        }
        for a in acks {
            let _ = a.send(());
        }
        if stop {
            return;
        }
    }
}

/// Re-reads which accounts are traced.
fn refresh(cx: &Ctx, on: &RwLock<HashMap<String, TraceOpts>>) {
    if let Ok(settings) = cx.store().and_then(|s| s.trace_settings()) {
        let map = settings
            .into_iter()
            .filter(|s| s.enabled)
            .map(|s| {
                let o = TraceOpts {
                    literals: s.literals,
                };
                (s.account_id, o)
            })
            .collect();
        if let Ok(mut w) = on.write() {
            *w = map;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An operator the account is shared with may switch its trace, but only the owner may
    /// have it keep message literals (mail content).
    #[test]
    fn literals_are_the_owners_to_switch_on() {
        let dir = tempfile::tempdir().unwrap();
        let home = crate::config::Home {
            root: dir.path().to_path_buf(),
        };
        std::fs::write(
            home.config_path(),
            "[accounts.work]\nid = \"a1\"\nemail = \"a1@example.test\"\nuser = \"a1@example.test\"\nowner = \"alice\"\nshared_with = [\"bob\"]\nimap = { host = \"h\", port = 993, security = \"tls\" }\nsmtp = { host = \"h\", port = 587, security = \"starttls\" }\n",
        )
        .unwrap();
        let alice = Ctx::new(home, "alice");
        let bob = alice.as_operator("bob");
        assert!(set(&bob, "work", true, false).unwrap().enabled);
        let e = set(&bob, "work", true, true).unwrap_err();
        assert!(e.summary.contains("may not change"), "{e}");
        let s = set(&alice, "work", true, true).unwrap();
        assert!(s.enabled && s.literals);
        assert_eq!(states(&bob).unwrap()[0], s);
        // Switching off needs no more than acting, and drops the literals too.
        let s = set(&bob, "work", false, true).unwrap();
        assert!(!s.enabled && !s.literals);
    }
}
