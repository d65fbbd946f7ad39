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
pub mod theme;
pub mod view;

#[cfg(test)]
mod tests;

use std::io::IsTerminal;

use crossterm::event::{Event, EventStream, KeyEventKind};
use futures::StreamExt;

use crate::cli::Ctx;
use crate::config::Config;
use crate::error::{AppError, Result};
use crate::store::Store;
use app::App;
use keymap::Keymap;
use theme::Theme;

/// Resolves the theme: `--theme`, else `[ui] theme`, else dark. A name is a built-in, a file
/// `<home>/themes/NAME.toml`, or a path. NO_COLOR (set and non-empty) removes every colour.
pub fn load_theme(ctx: &Ctx, config: &Config) -> Result<Theme> {
    let name = ctx
        .theme
        .clone()
        .or_else(|| config.ui.theme.clone())
        .unwrap_or_else(|| "dark".into());
    let theme = if theme::BUILTIN.iter().any(|(n, _)| *n == name) {
        Theme::builtin(&name)?
    } else {
        let in_home = ctx.home.root.join("themes").join(format!("{name}.toml"));
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
        ratatui::restore();
    }
}

pub async fn run(ctx: &Ctx) -> Result<i32> {
    if !std::io::stdout().is_terminal() {
        return Err(AppError::usage(
            "the console needs a terminal",
            "run a headless command instead, e.g. `mailroom status`",
        ));
    }
    // Everything that can be wrong in the settings is reported before the screen changes.
    let config = ctx.config()?;
    let theme = load_theme(ctx, &config)?;
    let keymap = Keymap::new(&config.ui.keys)?;
    ctx.home.ensure()?;
    let store = Store::open(&ctx.home.db_path())?;

    let (data_tx, mut data_rx) = tokio::sync::mpsc::unbounded_channel();
    let io = io::spawn(ctx, store, data_tx);

    // try_init installs a panic hook that restores the terminal before the panic prints.
    let mut terminal = ratatui::try_init().map_err(|e| {
        AppError::local(
            "cannot set up the terminal",
            e.to_string(),
            "run the console in a real terminal (or over ssh -t)",
        )
    })?;
    let _guard = TerminalGuard;
    let size = terminal
        .size()
        .map(|s| (s.width, s.height))
        .unwrap_or((80, 24));
    let mut app = App::new(theme, keymap, size);
    io.send(app.reload());

    let mut events = EventStream::new();
    let mut pending_edit: Option<String> = None;
    let draw_err =
        |e: std::io::Error| AppError::local("cannot draw", e.to_string(), "check the terminal");
    terminal.draw(|f| view::draw(f, &app)).map_err(draw_err)?;
    loop {
        // Wait for the next thing to happen…
        let mut dirty = tokio::select! {
            ev = events.next() => match ev {
                Some(Ok(ev)) => handle_event(&mut app, &io, ev, &mut pending_edit),
                Some(Err(e)) => return Err(AppError::local("terminal input failed", e.to_string(), "check the terminal")),
                None => return Ok(0),
            },
            Some(d) = data_rx.recv() => { io.send(app.apply(d)); true }
            _ = tokio::signal::ctrl_c() => { app.quit = true; false }
        };
        // …then take everything else already queued before drawing once.
        while let Ok(d) = data_rx.try_recv() {
            io.send(app.apply(d));
            dirty = true;
        }
        if app.quit {
            return Ok(0);
        }
        if let Some(text) = pending_edit.take() {
            // Hand the terminal to the editor, then take it back and redraw everything.
            drop(events);
            ratatui::restore();
            let edited = io::edit_text(&text);
            terminal = ratatui::try_init().map_err(|e| {
                AppError::local(
                    "cannot set up the terminal again",
                    e.to_string(),
                    "restart the console",
                )
            })?;
            // Not `terminal.clear()`: it asks the terminal for the cursor position, which races
            // with the new input reader; clearing the region needs no answer.
            ratatui::backend::Backend::clear_region(
                terminal.backend_mut(),
                ratatui::backend::ClearType::All,
            )
            .map_err(draw_err)?;
            events = EventStream::new();
            io.send(app.apply(app::Data::Edited(edited)));
            dirty = true;
        }
        if dirty {
            terminal.draw(|f| view::draw(f, &app)).map_err(draw_err)?;
        }
    }
}

fn handle_event(app: &mut App, io: &io::Io, ev: Event, edit: &mut Option<String>) -> bool {
    match ev {
        Event::Key(k) if k.kind != KeyEventKind::Release => match app.action_for_key(&k) {
            Some(a) => {
                let mut cmds = app.update(a);
                cmds.retain(|c| match c {
                    action::Command::EditBody { text } => {
                        *edit = Some(text.clone());
                        false
                    }
                    _ => true,
                });
                io.send(cmds);
                true
            }
            None => false,
        },
        Event::Resize(w, h) => {
            io.send(app.update(action::Action::Resize(w, h)));
            true
        }
        _ => false,
    }
}
