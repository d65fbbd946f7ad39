//! The console: one event loop over terminal input and answers from the I/O layer. Each turn
//! drains everything queued, updates state, and draws once — never on a timer. Another process's
//! writes are noticed through `PRAGMA data_version` (polled by the I/O thread) and only then
//! re-read and redrawn.
//!
//! Shape: key → Action (keymap) → `App::update` → Commands → `io` → Data → `App::apply`;
//! `view::draw` only reads `App`.

pub mod action;
pub mod app;
pub mod io;
pub mod keymap;
pub mod panes;
mod panic;
mod terminal;
pub mod theme;
pub mod view;

#[cfg(test)]
mod tests;

use std::io::IsTerminal;

use crossterm::event::{Event, EventStream, KeyEventKind};
use futures::StreamExt;

use crate::config::Config;
use crate::error::{AppError, Result};
use crate::ops::sync::{self as ops_sync, Background};
use crate::ops::{self, Ctx};
use app::App;
use keymap::Keymap;
use theme::Theme;

/// Resolves the theme: `--theme`, else `[ui] theme`, else dark. A name is a built-in, a file
/// `<home>/themes/NAME.toml`, or a path. NO_COLOR (set and non-empty) removes every colour.
pub fn load_theme(
    home: &crate::config::Home,
    chosen: Option<&str>,
    config: &Config,
) -> Result<Theme> {
    let name = chosen
        .map(str::to_string)
        .or_else(|| config.ui.theme.clone())
        .unwrap_or_else(|| "dark".into());
    let theme = if theme::BUILTIN.iter().any(|(n, _)| *n == name) {
        Theme::builtin(&name)?
    } else {
        let in_home = home.root.join("themes").join(format!("{name}.toml"));
        let path = if in_home.exists() {
            in_home
        } else {
            std::path::PathBuf::from(&name)
        };
        let text = std::fs::read_to_string(&path).map_err(|e| {
            AppError::usage(
                format!("cannot read theme {name:?} ({}: {e})", path.display()),
                format!(
                    "use one of {} or a path to a .toml theme file",
                    theme::BUILTIN
                        .iter()
                        .map(|(n, _)| *n)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )
        })?;
        Theme::parse(&name, &text, Some(&path.display().to_string()))?
    };
    let no_colour = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    Ok(if no_colour {
        theme.without_colour()
    } else {
        theme
    })
}

/// Puts the terminal back however the console ends (return, error, or unwinding panic).
struct TerminalGuard;

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        terminal::give_back();
    }
}

/// Opens the console on a runtime of its own (its jobs run there) and runs it until the
/// operator quits: the entry point `mailroom` without a command calls.
pub fn open(ctx: &Ctx, theme: Option<&str>) -> Result<i32> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| {
            AppError::local(
                "cannot start the async runtime",
                e.to_string(),
                "check system limits (threads, file descriptors)",
            )
        })?
        .block_on(run(ctx, theme))
}

/// Runs the console until the operator quits; `theme` is `--theme`, when given.
pub async fn run(ctx: &Ctx, theme: Option<&str>) -> Result<i32> {
    if !std::io::stdout().is_terminal() {
        return Err(AppError::usage(
            "the console needs a terminal",
            "run a headless command instead, e.g. `mailroom status`",
        ));
    }
    // Everything that can be wrong in the settings is reported before the screen changes.
    let config = ctx.config()?;
    let theme = load_theme(&ctx.home, theme, &config)?;
    let keymap = Keymap::new(&config.ui.keys)?;
    ctx.home.ensure()?;
    // From here a panic on any thread is logged and reported (and the terminal given back);
    // dropped last, after the terminal is back.
    let _panics = panic::watch(&ctx.home);
    // The console syncs: a host whose sealing key is not the installation's opens nothing.
    ops_sync::key_gate(ctx)?;
    let watcher = ctx.watcher()?;

    let (data_tx, mut data_rx) = tokio::sync::mpsc::unbounded_channel();
    let jobs = io::Jobs::new(tokio::runtime::Handle::current(), data_tx.clone());
    let io = io::spawn(ctx, watcher, jobs, data_tx);

    let mut terminal = terminal::take().map_err(|e| {
        AppError::local(
            "cannot set up the terminal",
            e.to_string(),
            "run the console in a real terminal (or over ssh -t)",
        )
    })?;
    let _guard = TerminalGuard;
    // Dropped before `_guard` (reverse order): stderr comes back, then the terminal.
    let mut stderr_redirect = io::StderrToFile::start(&ctx.home);
    let size = terminal
        .size()
        .map(|s| (s.width, s.height))
        .unwrap_or((80, 24));
    let mut app = App::new(theme, keymap, size);
    // Sync runs here for every visible, enabled account; where a daemon holds an account's
    // lease the task only waits, and the console just watches the database.
    let mut sync = Background::start(ctx, &ops_sync::mine(ctx, &config));
    // The outbox worker too, for the accounts this operator acts on (items claim themselves, so
    // a daemon's worker never doubles a send): retries, pending Sent copies and verification go
    // on while the console is open.
    let outbox = ops::outbox::Worker::start(ctx, ops::outbox::Reach::Operator)
        .map_err(|e| tracing::warn!("no outbox worker in the console: {e}"))
        .ok();
    let mut local = Vec::new();
    dispatch(app.startup(), &io, &mut local);
    let mut config_watch = ConfigWatch::new(ctx);

    let mut events = EventStream::new();
    let draw_err =
        |e: std::io::Error| AppError::local("cannot draw", e.to_string(), "check the terminal");
    terminal.draw(|f| view::draw(f, &app)).map_err(draw_err)?;
    let result = loop {
        // Wait for the next thing to happen…
        let mut dirty = tokio::select! {
            ev = events.next() => match ev {
                Some(Ok(ev)) => handle_event(&mut app, ev, &io, &mut local),
                Some(Err(e)) => break Err(AppError::local("terminal input failed", e.to_string(), "check the terminal")),
                None => break Ok(0),
            },
            Some(d) = data_rx.recv() => { dispatch(app.apply(d), &io, &mut local); true }
            _ = tokio::signal::ctrl_c() => { app.quit = true; false }
            changed = config_watch.changed() => {
                if changed {
                    local.push(action::Command::RestartSync);
                }
                false
            }
            // Another thread panicked: its work is gone, so stop rather than show stale state.
            report = panic::background() => break Err(report),
        };
        // …then take everything else already queued before drawing once.
        while let Ok(d) = data_rx.try_recv() {
            dispatch(app.apply(d), &io, &mut local);
            dirty = true;
        }
        if app.quit {
            break Ok(0);
        }
        for cmd in std::mem::take(&mut local) {
            match cmd {
                action::Command::EditBody { text } => {
                    // The input reader lets go of the terminal while the editor has it.
                    drop(events);
                    let edited = edit_body(ctx, &text, &mut terminal, &mut stderr_redirect)?;
                    events = EventStream::new();
                    dispatch(app.apply(app::Data::Edited(edited)), &io, &mut local);
                }
                action::Command::KickSync { account_id } => sync.kick(&account_id),
                action::Command::RestartSync => {
                    restart_sync(ctx, &mut sync, &mut app, &io, &mut local).await
                }
                other => io.send(vec![other]),
            }
            dirty = true;
        }
        if dirty {
            terminal.draw(|f| view::draw(f, &app)).map_err(draw_err)?;
        }
    };
    if let Some(w) = outbox {
        w.stop(std::time::Duration::from_secs(3)).await;
    }
    // Interrupting a pass is safe; a bounded wait keeps quitting prompt even if a task is
    // stuck on the network.
    sync.stop_within(std::time::Duration::from_secs(3)).await;
    result
}

/// Hands the terminal to the editor for the body, then takes it back and clears it for a full
/// redraw. The editor gets the real stderr (its messages are for the operator).
fn edit_body(
    ctx: &Ctx,
    text: &str,
    terminal: &mut ratatui::DefaultTerminal,
    stderr_redirect: &mut Option<io::StderrToFile>,
) -> Result<Result<String>> {
    terminal::give_back();
    drop(stderr_redirect.take());
    let edited = io::edit_text(text);
    *stderr_redirect = io::StderrToFile::start(&ctx.home);
    *terminal = terminal::take().map_err(|e| {
        AppError::local(
            "cannot set up the terminal again",
            e.to_string(),
            "restart the console",
        )
    })?;
    // Not `terminal.clear()`: it asks the terminal for the cursor position, which races with
    // the new input reader; clearing a region needs no answer.
    ratatui::backend::Backend::clear_region(
        terminal.backend_mut(),
        ratatui::backend::ClearType::All,
    )
    .map_err(|e| AppError::local("cannot draw", e.to_string(), "check the terminal"))?;
    Ok(edited)
}

/// A new or changed account: the sync tasks concerned restart with the current config (the
/// others go on), and the screens show it.
async fn restart_sync(
    ctx: &Ctx,
    sync: &mut Background,
    app: &mut App,
    io: &io::Io,
    local: &mut Vec<action::Command>,
) {
    match ctx.config() {
        Ok(c) => {
            sync.follow(&ops_sync::mine(ctx, &c)).await;
            dispatch(app.reload(), io, local);
        }
        Err(e) => dispatch(app.apply(app::Data::Notice(Err(e))), io, local),
    }
}

/// How often the console looks at the settings for changes made elsewhere.
const CONFIG_CHECK: std::time::Duration = std::time::Duration::from_secs(2);

/// The settings as last seen (config.toml, and on PostgreSQL the shared settings' version):
/// account changes made elsewhere (`mailroom account …` in another shell or on another host,
/// an edit by hand) reach the sync tasks and the screens like the console's own do.
struct ConfigWatch {
    ctx: Ctx,
    seen: Option<ops::settings::Stamp>,
    tick: tokio::time::Interval,
    /// The look under way. A task of its own: the loop's `select!` drops `changed()` whenever
    /// a key or a sync event comes first, and during a busy sync that is nearly always.
    look: Option<tokio::task::JoinHandle<ops::settings::Stamp>>,
}

impl ConfigWatch {
    fn new(ctx: &Ctx) -> ConfigWatch {
        let mut tick = tokio::time::interval(CONFIG_CHECK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ConfigWatch {
            ctx: ctx.clone(),
            seen: None,
            tick,
            look: None,
        }
    }

    /// Waits for the next look; true when the settings changed since the last one (the first
    /// look only remembers them: the console has just read them). Cancel-safe: the tick and
    /// the look's task are awaited by reference, so nothing is lost when another branch wins.
    async fn changed(&mut self) -> bool {
        if self.look.is_none() {
            self.tick.tick().await;
            let (ctx, last) = (self.ctx.clone(), self.seen.clone());
            self.look = Some(tokio::spawn(async move {
                ops::settings::stamp(&ctx, last.as_ref()).await
            }));
        }
        let Some(look) = self.look.as_mut() else {
            return false;
        };
        let looked = look.await;
        self.look = None;
        let Ok(now) = looked else {
            return false;
        };
        match self.seen.replace(now.clone()) {
            Some(before) => before != now,
            None => false,
        }
    }
}

/// Commands for the I/O thread go there; the few the loop must run itself (the terminal, the
/// sync tasks) are kept for after this turn.
fn dispatch(cmds: Vec<action::Command>, io: &io::Io, local: &mut Vec<action::Command>) {
    for c in cmds {
        match c {
            action::Command::EditBody { .. }
            | action::Command::KickSync { .. }
            | action::Command::RestartSync => local.push(c),
            other => io.send(vec![other]),
        }
    }
}

fn handle_event(app: &mut App, ev: Event, io: &io::Io, local: &mut Vec<action::Command>) -> bool {
    match ev {
        Event::Key(k) if k.kind != KeyEventKind::Release => {
            // Lets a test make the console panic for real (tests/e2e/tui.rs); inert otherwise.
            crate::failpoint::panic_point("console_panic");
            match app.action_for_key(&k) {
                Some(a) => {
                    dispatch(app.update(a), io, local);
                    true
                }
                None => false,
            }
        }
        Event::Resize(w, h) => {
            dispatch(app.update(action::Action::Resize(w, h)), io, local);
            true
        }
        _ => false,
    }
}
