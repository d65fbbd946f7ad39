//! Taking the terminal (raw mode, alternate screen) and giving it back. Giving back happens once
//! however many paths try (quit, the drop guard, the editor hand-off, the panic hook): a second
//! "leave the alternate screen" is not harmless — xterm and tmux then move the cursor back to
//! where it stood when the console started, and the shell overwrites whatever was printed since
//! (the panic report).

use std::sync::atomic::{AtomicBool, Ordering};

use crossterm::cursor::Show;
use crossterm::execute;
use crossterm::terminal::{
    EnterAlternateScreen, LeaveAlternateScreen, disable_raw_mode, enable_raw_mode,
};
use ratatui::DefaultTerminal;
use ratatui::backend::CrosstermBackend;

static TAKEN: AtomicBool = AtomicBool::new(false);

/// Raw mode and the alternate screen, and a terminal drawing there. Unlike `ratatui::try_init`
/// it installs no panic hook (the console has its own, `tui::panic`), and a failure half-way
/// leaves the terminal as it found it.
pub fn take() -> std::io::Result<DefaultTerminal> {
    enable_raw_mode()?;
    TAKEN.store(true, Ordering::SeqCst);
    let terminal = execute!(std::io::stdout(), EnterAlternateScreen)
        .and_then(|()| ratatui::Terminal::new(CrosstermBackend::new(std::io::stdout())));
    if terminal.is_err() {
        give_back();
    }
    terminal
}

/// Raw mode off, the normal screen back, the cursor shown (ratatui hides it while drawing, and
/// a panic may skip the terminal's own drop). Does nothing if the terminal is not taken.
pub fn give_back() {
    if !TAKEN.swap(false, Ordering::SeqCst) {
        return;
    }
    // Raw mode first: it matters more than the screen if the second step fails.
    let raw = disable_raw_mode();
    let screen = execute!(std::io::stdout(), LeaveAlternateScreen, Show);
    if let Err(e) = raw.and(screen) {
        eprintln!("mailroom: cannot restore the terminal ({e}); run `reset` to fix it");
    }
}
