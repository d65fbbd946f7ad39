//! A panic while the console runs. Rust's default hook would print on the alternate screen (lost
//! the moment the screen is left) or into console.log, with the panic's text raw — and a panic
//! message can quote mail data. For as long as the console runs, this hook instead:
//! 1. logs the panic through tracing (thread, location, cleaned text, backtrace) while stderr
//!    still goes to `logs/console.log`;
//! 2. on the console's own thread: puts stderr back, gives the terminal back, and prints a short
//!    report on the normal screen; the panic then unwinds out of `main` (exit 101);
//! 3. on any other thread (the I/O thread, a job, a sync task): leaves the terminal alone —
//!    giving it back under a console that keeps drawing would scribble over the shell in cooked
//!    mode — and wakes the console, which ends through its normal error path with the report.
//!
//! Outside the console the previous hook (Rust's default) runs unchanged.

use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard, Once, PoisonError};
use std::thread::ThreadId;

use crate::config::Home;
use crate::error::AppError;
use crate::mail::sanitize::clean_line;

struct Watched {
    console: ThreadId,
    log_dir: PathBuf,
}

static WATCHED: Mutex<Option<Watched>> = Mutex::new(None);
static BACKGROUND: Mutex<Option<AppError>> = Mutex::new(None);
static WOKEN: tokio::sync::Notify = tokio::sync::Notify::const_new();
static INSTALL: Once = Once::new();

/// On screen the panic's text is cut here; the log keeps all of it.
const SCREEN_TEXT_MAX: usize = 300;

/// Watches for panics until dropped. Take it on the console's own thread, before anything the
/// console starts can panic.
pub struct Watch(());

pub fn watch(home: &Home) -> Watch {
    INSTALL.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !on_panic(info) {
                previous(info);
            }
        }));
    });
    *lock(&WATCHED) = Some(Watched {
        console: std::thread::current().id(),
        log_dir: home.log_dir(),
    });
    Watch(())
}

impl Drop for Watch {
    fn drop(&mut self) {
        *lock(&WATCHED) = None;
    }
}

/// Resolves with the report once another thread has panicked (the first one, if several did).
pub async fn background() -> AppError {
    loop {
        // Checked before waiting: a panic before the first wait left a permit and a report.
        if let Some(e) = lock(&BACKGROUND).take() {
            return e;
        }
        WOKEN.notified().await;
    }
}

/// The hook proper; false when the console is not running (the previous hook then runs).
fn on_panic(info: &std::panic::PanicHookInfo<'_>) -> bool {
    let Some((console, log_dir)) = lock(&WATCHED)
        .as_ref()
        .map(|w| (w.console, w.log_dir.clone()))
    else {
        return false;
    };
    let here = std::thread::current();
    let thread = here.name().unwrap_or("unnamed").to_string();
    let location = info.location().map_or_else(
        || "an unknown place".to_string(),
        |l| format!("{}:{}:{}", l.file(), l.line(), l.column()),
    );
    let text = panic_text(info.payload_as_str());
    // The backtrace is for the bug report; the log is where it can be long.
    let backtrace = std::backtrace::Backtrace::force_capture();
    tracing::error!(
        target: "mailroom::panic",
        "panic in thread {thread} at {location}: {text}\nbacktrace:\n{backtrace}"
    );
    let logs = logs_with_the_record(&log_dir);
    let report = report(&thread, &location, &text, &logs);
    if here.id() == console {
        super::io::restore_stderr();
        super::terminal::give_back();
        report.eprint();
    } else {
        lock(&BACKGROUND).get_or_insert(report);
        WOKEN.notify_one();
    }
    true
}

/// The panic's message, safe to print: it may quote mail or server data, escapes included.
fn panic_text(payload: Option<&str>) -> String {
    payload.map_or_else(|| "(no message)".to_string(), clean_line)
}

/// Where the tracing record just went: console.log while stderr is pointed there, and the
/// debug log when one is kept.
fn logs_with_the_record(log_dir: &std::path::Path) -> Vec<PathBuf> {
    let mut logs = Vec::new();
    if super::io::stderr_redirected() {
        logs.push(log_dir.join(super::io::CONSOLE_LOG));
    }
    if let Some(debug_log) = crate::logging::file_path() {
        logs.push(debug_log.to_path_buf());
    }
    logs
}

/// What the operator reads: it is a bug, what happened, and what to send with a report.
fn report(thread: &str, location: &str, text: &str, logs: &[PathBuf]) -> AppError {
    let short: String = if text.chars().count() > SCREEN_TEXT_MAX {
        let cut: String = text.chars().take(SCREEN_TEXT_MAX).collect();
        format!("{cut}… (the log has all of it)")
    } else {
        text.to_string()
    };
    let attach = if logs.is_empty() {
        "(no log was kept: run with MAILROOM_LOG=debug to keep <home>/logs/mailroom.log)"
            .to_string()
    } else {
        let names: Vec<String> = logs.iter().map(|p| p.display().to_string()).collect();
        format!("with {} (it has the backtrace)", names.join(" and "))
    };
    AppError::local(
        format!(
            "the console stopped on an internal error (a bug in mailroom {})",
            env!("CARGO_PKG_VERSION")
        ),
        format!("thread {thread} panicked at {location}: {short}"),
        format!(
            "restart the console (what was saved or queued is kept in the database); \
             please report the bug {attach} and what you did last"
        ),
    )
}

/// A poisoned lock only means another panic passed here; the data is still good.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_names_the_bug_the_place_and_the_logs_to_attach() {
        let logs = [PathBuf::from("/h/logs/console.log")];
        let r = report("main", "src/tui/mod.rs:3:5", "index out of bounds", &logs);
        assert!(r.summary.contains("internal error"), "{r}");
        assert!(r.summary.contains(env!("CARGO_PKG_VERSION")));
        assert_eq!(
            r.detail,
            "thread main panicked at src/tui/mod.rs:3:5: index out of bounds"
        );
        assert!(r.fix.contains("report"), "{r}");
        assert!(r.fix.contains("/h/logs/console.log"), "{r}");
        assert_eq!(r.exit_code(), 1);

        let none = report("main", "x:1:1", "boom", &[]);
        assert!(none.fix.contains("MAILROOM_LOG"), "{none}");
    }

    #[test]
    fn the_panic_text_loses_its_escapes_and_line_breaks() {
        assert_eq!(
            panic_text(Some(crate::failpoint::PANIC_PAYLOAD)),
            "simulated bug over hostile data red end"
        );
        assert_eq!(panic_text(Some("a\nb\u{1b}[2Jc")), "a bc");
        assert_eq!(panic_text(None), "(no message)");
    }

    #[test]
    fn a_long_text_is_cut_on_screen_at_a_character_boundary() {
        let text = "é".repeat(SCREEN_TEXT_MAX + 50);
        let r = report("main", "x:1:1", &text, &[]);
        assert!(r.detail.contains("the log has all of it"), "{r}");
        assert_eq!(
            r.detail.matches('é').count(),
            SCREEN_TEXT_MAX,
            "cut by characters, not bytes"
        );
    }
}
