//! Tracing setup: logs go to stderr (never stdout, which belongs to --json output). Secrets never
//! reach a log: passwords live in `SecretString` (Debug prints [REDACTED]) and protocol traces
//! pass through `redact_protocol_line`.

use tracing_subscriber::EnvFilter;

pub fn init(verbose: u8, _json: bool) {
    let default = match verbose {
        0 => "warn",
        1 => "mailroom=info",
        2 => "mailroom=debug",
        _ => "mailroom=trace",
    };
    let filter =
        EnvFilter::try_from_env("MAILROOM_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
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
