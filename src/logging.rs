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
pub fn init(verbose: u8, log_dir: Option<&Path>) {
    let level = match verbose {
        0 => "warn",
        1 => "mailroom=info",
        2 => "mailroom=debug",
        _ => "mailroom=trace",
    };
    let env = std::env::var("MAILROOM_LOG").ok();
    // async-imap logs every command verbatim (LOGIN with its password) through `log`; that
    // target is always off, whatever the user asks for.
    let filter = || {
        let wanted = env.as_deref().unwrap_or(level);
        EnvFilter::try_new(format!("{wanted},async_imap=off"))
            .unwrap_or_else(|_| EnvFilter::new(format!("{level},async_imap=off")))
    };
    let stderr_layer = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
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
