//! The console's only door to the outside. A thread answers the UI's Commands with Data: pages
//! come from the service layer at once, work that talks to a server runs as a job on the
//! console's runtime (`jobs`) and answers when done. The UI thread never waits on the store or
//! the network; it sends a Command and draws whatever it has. Another process's commits are
//! noticed through a watcher connection of its own (`PRAGMA data_version`).

use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::Duration;

use tokio::sync::mpsc::UnboundedSender;

use crate::error::{AppError, Result};
use crate::ops::{Ctx, Watcher};
use crate::tui::action::Command;
use crate::tui::app::{Data, Page};

mod account;
mod accounts;
mod crm;
mod jobs;
mod mail;
mod terminal;

use account::*;
pub use jobs::Jobs;
pub use terminal::{CONSOLE_LOG, StderrToFile, edit_text, restore_stderr, stderr_redirected};

/// How often the I/O thread asks the database whether anything committed (`PRAGMA
/// data_version` is a cheap read; the UI redraws only when it moved).
pub const DB_POLL: Duration = Duration::from_millis(500);

pub struct Io {
    tx: mpsc::Sender<Command>,
}

impl Io {
    pub fn send(&self, cmds: Vec<Command>) {
        for c in cmds {
            // The thread only stops when the console quits; a closed channel then is harmless.
            let _ = self.tx.send(c);
        }
    }
}

/// What the console's work runs with: the service layer's context, the list counts, the way
/// back to the UI and the jobs on the console's runtime.
pub(super) struct Env {
    pub cx: Ctx,
    pub counts: Counts,
    pub out: UnboundedSender<Data>,
    pub jobs: Jobs,
    /// Matching new mail in the background after the database changed.
    pub matching: crm::Matching,
    /// The message whose body is wanted now (a fetch retries while it is).
    pub body_wanted: mail::BodyWanted,
}

/// Starts the I/O thread. `watcher` is a connection of its own that never writes, so every
/// commit — another process's or one of our jobs' — moves its `data_version`.
pub fn spawn(cx: &Ctx, watcher: Watcher, jobs: Jobs, out: UnboundedSender<Data>) -> Io {
    let (tx, rx) = mpsc::channel::<Command>();
    let env = Env {
        cx: cx.clone(),
        counts: Counts::default(),
        out,
        jobs,
        matching: Default::default(),
        body_wanted: Default::default(),
    };
    std::thread::Builder::new()
        .name("mailroom-console-io".into())
        .spawn(move || io_loop(env, watcher, rx))
        .ok();
    Io { tx }
}

/// The I/O thread's answers on the caller's thread, for benchmarks and tests that drive the
/// console without a terminal.
pub struct Direct(Env);

impl Direct {
    pub fn new(cx: &Ctx, jobs: Jobs, out: UnboundedSender<Data>) -> Direct {
        Direct(Env {
            cx: cx.clone(),
            counts: Counts::default(),
            out,
            jobs,
            matching: Default::default(),
            body_wanted: Default::default(),
        })
    }
    pub fn execute(&mut self, cmd: Command) -> Option<Data> {
        execute(&mut self.0, cmd)
    }
}

/// Row counts of the big lists, valid while the database has not changed. Counting 100k rows
/// through the triage rule costs more than a page, and scrolling never changes the count.
#[derive(Default)]
pub struct Counts {
    version: i64,
    map: std::collections::HashMap<String, i64>,
    /// The mail pane's tree with its counts (unchanged until a commit).
    tree: Option<Vec<crate::ops::mailbox::TreeAccount>>,
}

impl Counts {
    fn get(&mut self, key: String, count: impl FnOnce() -> Result<i64>) -> Result<i64> {
        if let Some(c) = self.map.get(&key) {
            return Ok(*c);
        }
        let c = count()?;
        self.map.insert(key, c);
        Ok(c)
    }
    /// The tree, read once per database version.
    fn tree(
        &mut self,
        read: impl FnOnce() -> Result<Vec<crate::ops::mailbox::TreeAccount>>,
    ) -> Result<Vec<crate::ops::mailbox::TreeAccount>> {
        if let Some(t) = &self.tree {
            return Ok(t.clone());
        }
        let t = read()?;
        self.tree = Some(t.clone());
        Ok(t)
    }
    /// The watcher saw a commit: every count may have changed.
    fn moved_to(&mut self, version: i64) {
        if version != self.version {
            self.clear();
            self.version = version;
        }
    }
    pub fn clear(&mut self) {
        self.map.clear();
        self.tree = None;
    }
}

fn io_loop(mut env: Env, watcher: Watcher, rx: mpsc::Receiver<Command>) {
    let mut version = watcher.version().unwrap_or(-1);
    env.counts.moved_to(version);
    // Mail stored without matching before the console started.
    crm::catch_up(&env);
    loop {
        let first = match rx.recv_timeout(DB_POLL) {
            Ok(c) => c,
            Err(RecvTimeoutError::Timeout) => {
                if let Ok(v) = watcher.version()
                    && v != version
                {
                    version = v;
                    env.counts.moved_to(v);
                    if env.out.send(Data::DbChanged).is_err() {
                        return;
                    }
                    crm::catch_up(&env);
                }
                continue;
            }
            Err(RecvTimeoutError::Disconnected) => return,
        };
        // Lets a test make this thread panic for real (tests/e2e/tui.rs); inert otherwise.
        crate::failpoint::panic_point("console_io_panic");
        // Drain what queued up and answer only the newest load of each kind: fast scrolling
        // asks for many pages, and only the last one matters.
        let mut batch = vec![first];
        batch.extend(rx.try_iter());
        let mut latest: Vec<Command> = Vec::new();
        for c in batch {
            let kind = std::mem::discriminant(&c);
            let is_load = matches!(
                c,
                Command::LoadDashboard
                    | Command::LoadTriage { .. }
                    | Command::LoadFolders { .. }
                    | Command::LoadMessage { .. }
                    | Command::LoadCustomers { .. }
                    | Command::LoadTimeline { .. }
                    | Command::LoadOutbox { .. }
                    | Command::LoadEvents { .. }
                    | Command::LoadQuarantine { .. }
                    | Command::LoadCompletions { .. }
                    | Command::LoadPicker { .. }
                    | Command::LoadMailTree { .. }
                    | Command::LoadMailIndex { .. }
                    | Command::LoadThread { .. }
                    | Command::LoadChanges { .. }
                    | Command::CompletePath { .. }
                    | Command::LoadDrafts
            );
            if is_load {
                latest.retain(|o| std::mem::discriminant(o) != kind);
            }
            latest.push(c);
        }
        // Answers reflect the newest commit: a count from before it must not be reused.
        if let Ok(v) = watcher.version() {
            env.counts.moved_to(v);
        }
        for c in latest {
            let data = execute(&mut env, c);
            if let Some(d) = data
                && env.out.send(d).is_err()
            {
                return;
            }
        }
    }
}

fn page<T>(generation: u64, offset: i64, f: impl FnOnce() -> Result<(i64, Vec<T>)>) -> Page<T> {
    Page {
        generation,
        offset: offset.max(0) as usize,
        result: f().map(|(t, rows)| (t.max(0) as usize, rows)),
    }
}

/// Runs one command: each group of the console's work answers its own. Loads answer at once;
/// network work runs as a job and answers later.
fn execute(env: &mut Env, cmd: Command) -> Option<Data> {
    match cmd {
        // The event loop runs these itself (it owns the terminal and the sync tasks).
        Command::EditBody { .. } | Command::KickSync { .. } | Command::RestartSync => None,
        c @ (Command::LoadDashboard
        | Command::LoadTriage { .. }
        | Command::LoadCustomers { .. }
        | Command::LoadTimeline { .. }
        | Command::LoadPicker { .. }
        | Command::TriagePair { .. }
        | Command::TriageAddCustomer { .. }
        | Command::TriageBlock { .. }
        | Command::TriageDelete { .. }
        | Command::TriageUndo
        | Command::TriageBlockPlan { .. }
        | Command::LoadSuggestions { .. }
        | Command::LoadEvents { .. }) => crm::execute(env, c),
        c @ (Command::LoadMessage { .. }
        | Command::LoadChanges { .. }
        | Command::LoadOutbox { .. }
        | Command::LoadCompletions { .. }
        | Command::CompletePath { .. }
        | Command::OutboxRetry { .. }
        | Command::OutboxCancel { .. }
        | Command::OutboxResend { .. }
        | Command::OutboxDrop { .. }
        | Command::Send { .. }
        | Command::FetchBody { .. }
        | Command::StopBodyFetch
        | Command::SaveAttachment { .. }
        | Command::LoadMailTree { .. }
        | Command::LoadMailIndex { .. }
        | Command::LoadThread { .. }
        | Command::MailFlag { .. }
        | Command::MailMove { .. }
        | Command::SaveDraft { .. }
        | Command::UploadDraft { .. }
        | Command::ForgetDraft { .. }
        | Command::LoadDrafts) => mail::execute(env, c),
        c => accounts::execute(env, c),
    }
}
