//! Tracing setup: logs go to stderr (never stdout, which belongs to --json output). Secrets never
//! reach a log: passwords live in `SecretString` (Debug prints [REDACTED]) and protocol traces
//! pass through `redact_protocol_line`.

use std::path::{Path, PathBuf};

use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Logs to stderr at the chosen verbosity and, when verbose or `MAILROOM_LOG` is set, to
/// `logs/mailroom.log` in the home (the debug log, 0600). The protocol trace (`-vvv`) goes
/// through `redact_protocol_line`, so LOGIN/AUTHENTICATE arguments never reach it.
/// `colour` is for a stderr that is a terminal for the whole run; the console points stderr
/// at `logs/console.log` while it draws, and escape codes in a log file only get in the way of
/// the admin reading it with less or grep.
pub fn init(verbose: u8, log_dir: Option<&Path>, colour: bool) {
    let level = match verbose {
        0 => "warn",
        1 => "mailroom=info",
        2 => "mailroom=debug",
        _ => "mailroom=trace",
    };
    let env = std::env::var("MAILROOM_LOG").ok();
    let filter = || filter(env.as_deref(), level);
    let stderr_layer = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(colour)
        .with_target(false)
        .with_filter(filter());
    let file = if verbose > 0 || env.is_some() {
        log_dir.and_then(open_log_file)
    } else {
        None
    };
    let file_layer = file.map(|f| {
        tracing_subscriber::fmt::layer()
            .with_writer(std::sync::Mutex::new(f))
            .with_ansi(false)
            .with_filter(filter())
    });
    let _ = tracing_subscriber::registry()
        .with(stderr_layer)
        .with(file_layer)
        .try_init();
}

/// The filter for `MAILROOM_LOG` (or the verbosity's level when unset or unreadable).
/// async-imap logs every command verbatim (LOGIN with its password) through `log`: that target
/// is always off. A panic's record is always on: the panic report tells the user to attach the
/// log, and a filter naming other targets (`MAILROOM_LOG=rustls=debug`) would otherwise drop it.
fn filter(wanted: Option<&str>, level: &str) -> EnvFilter {
    const ALWAYS: &str = "async_imap=off,mailroom::panic=error";
    EnvFilter::try_new(format!("{},{ALWAYS}", wanted.unwrap_or(level)))
        .unwrap_or_else(|_| EnvFilter::new(format!("{level},{ALWAYS}")))
}

static FILE_PATH: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();

/// The debug log this process writes to, if it keeps one (a panic report names it).
pub fn file_path() -> Option<&'static Path> {
    FILE_PATH.get().map(PathBuf::as_path)
}

fn open_log_file(dir: &Path) -> Option<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::create_dir_all(dir).ok()?;
    let path = dir.join("mailroom.log");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(&path)
        .ok()?;
    let _ = FILE_PATH.set(path);
    Some(file)
}

/// Hides credentials in an IMAP/SMTP protocol line before it is logged.
pub fn redact_protocol_line(line: &str) -> String {
    let trimmed = line.trim_start();
    let mut words = trimmed.split_whitespace();
    let first = words.next().unwrap_or("");
    let second = words.next().unwrap_or("");
    for (i, w) in [first, second].iter().enumerate() {
        let upper = w.to_ascii_uppercase();
        if upper == "LOGIN" || upper == "AUTHENTICATE" || upper == "AUTH" {
            let keep: Vec<&str> = trimmed.split_whitespace().take(i + 1).collect();
            return format!("{} [REDACTED]", keep.join(" "));
        }
    }
    line.to_string()
}

#[cfg(test)]
mod tests {
    use tracing_subscriber::Layer;
    use tracing_subscriber::layer::SubscriberExt;

    /// What a subscriber with `filter(wanted, "warn")` writes for these events.
    fn logged(wanted: Option<&str>) -> String {
        let out = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = out.clone();
        let layer = tracing_subscriber::fmt::layer()
            .with_ansi(false)
            .with_writer(move || SinkWriter(sink.clone()))
            .with_filter(super::filter(wanted, "warn"));
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, || {
            tracing::error!(target: "mailroom::panic", "PANIC-RECORD");
            tracing::error!(target: "mailroom::sync", "SYNC-ERROR");
            tracing::info!(target: "mailroom::sync", "SYNC-INFO");
            tracing::debug!(target: "async_imap::client", "a1 LOGIN alice secret");
        });
        let bytes = out.lock().map(|b| b.clone()).unwrap_or_default();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    struct SinkWriter(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
    impl std::io::Write for SinkWriter {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            if let Ok(mut b) = self.0.lock() {
                b.extend_from_slice(buf);
            }
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_panic_is_logged_whatever_the_filter_and_async_imap_never_is() {
        // The default level: errors (the panic's included), no info.
        let default = logged(None);
        assert!(
            default.contains("PANIC-RECORD") && default.contains("SYNC-ERROR"),
            "{default}"
        );
        assert!(!default.contains("SYNC-INFO"), "{default}");
        // A filter about something else entirely still keeps the panic's record.
        let other = logged(Some("rustls=debug"));
        assert!(other.contains("PANIC-RECORD"), "{other}");
        assert!(!other.contains("SYNC-ERROR"), "{other}");
        // Even switching mailroom off, or asking for everything, leaves async-imap's verbatim
        // command log out and the panic in.
        let off = logged(Some("mailroom=off"));
        assert!(
            off.contains("PANIC-RECORD") && !off.contains("SYNC-ERROR"),
            "{off}"
        );
        let all = logged(Some("trace"));
        assert!(all.contains("SYNC-INFO") && !all.contains("LOGIN"), "{all}");
        // An unreadable filter falls back to the verbosity's level.
        let bad = logged(Some("=[=="));
        assert!(
            bad.contains("SYNC-ERROR") && !bad.contains("SYNC-INFO"),
            "{bad}"
        );
    }

    #[test]
    fn redacts_login_and_authenticate() {
        assert_eq!(
            super::redact_protocol_line("a1 LOGIN alice secret"),
            "a1 LOGIN [REDACTED]"
        );
        assert_eq!(
            super::redact_protocol_line("AUTH PLAIN AGFsaWNlAHNlY3JldA=="),
            "AUTH [REDACTED]"
        );
        assert_eq!(
            super::redact_protocol_line("a2 SELECT INBOX"),
            "a2 SELECT INBOX"
        );
    }
}
