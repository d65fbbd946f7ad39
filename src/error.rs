//! Errors as values: every failure a user can see carries a summary, the detail that explains it,
//! and the fix. The exit code and whether a retry can help travel with it, so the CLI, the console
//! and the sync supervisor all decide the same way.

use std::fmt;

/// What kind of failure this is; decides the exit code and whether retrying can help.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Bad input from the user (exit 64).
    Usage,
    /// Something failed that the user must fix (wrong password, bad certificate…); not retried.
    NeedsUser,
    /// A transient failure (network, server busy); retrying with backoff may help.
    Transient,
    /// Another process holds the lease (exit 75).
    Busy,
    /// A local problem (disk, database, config).
    Local,
}

#[derive(Debug, Clone)]
pub struct AppError {
    pub kind: Kind,
    pub summary: String,
    pub detail: String,
    pub fix: String,
}

pub type Result<T, E = AppError> = std::result::Result<T, E>;

impl AppError {
    pub fn new(
        kind: Kind,
        summary: impl Into<String>,
        detail: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Self {
            kind,
            summary: summary.into(),
            detail: detail.into(),
            fix: fix.into(),
        }
    }
    pub fn usage(summary: impl Into<String>, fix: impl Into<String>) -> Self {
        Self::new(Kind::Usage, summary, "", fix)
    }
    pub fn needs_user(
        summary: impl Into<String>,
        detail: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Self::new(Kind::NeedsUser, summary, detail, fix)
    }
    pub fn transient(
        summary: impl Into<String>,
        detail: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Self::new(Kind::Transient, summary, detail, fix)
    }
    pub fn local(
        summary: impl Into<String>,
        detail: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Self::new(Kind::Local, summary, detail, fix)
    }
    pub fn not_found(what: &str, name: &str, fix: impl Into<String>) -> Self {
        Self::new(
            Kind::NeedsUser,
            format!("no {what} named {name:?}"),
            "",
            fix,
        )
    }

    /// Retrying later may succeed without the user doing anything.
    pub fn recoverable(&self) -> bool {
        matches!(self.kind, Kind::Transient | Kind::Busy)
    }

    pub fn exit_code(&self) -> i32 {
        match self.kind {
            Kind::Usage => 64,
            Kind::Busy => 75,
            _ => 1,
        }
    }

    /// Adds context in front of the detail, keeping summary and fix.
    pub fn context(mut self, what: impl fmt::Display) -> Self {
        self.detail = if self.detail.is_empty() {
            what.to_string()
        } else {
            format!("{what}: {}", self.detail)
        };
        self
    }

    /// Prints the error for a person on stderr: summary, detail and fix, each on its line. Details
    /// quote servers (an IMAP NO text, an SMTP reply): no escape sequence of theirs reaches the
    /// terminal. A stderr that is gone (a daemon that outlived its terminal) is not worth a panic.
    pub fn eprint(&self) {
        use std::io::Write;
        let clean = crate::mail::sanitize::clean;
        let mut err = std::io::stderr().lock();
        let _ = writeln!(err, "error: {}", clean(&self.summary));
        if !self.detail.is_empty() {
            let _ = writeln!(err, "  detail: {}", clean(&self.detail));
        }
        if !self.fix.is_empty() {
            let _ = writeln!(err, "  fix: {}", clean(&self.fix));
        }
    }

    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({"error": {"summary": self.summary, "detail": self.detail, "fix": self.fix}})
    }
}

/// A network error's text as a person should read it: lettre repeats its source's text after
/// its own, and rustls's "unexpected EOF" ends in a link to its manual.
pub fn network_detail(text: &str, source: Option<&str>) -> String {
    let joined = match source.filter(|s| !s.is_empty() && !text.contains(*s)) {
        Some(s) => format!("{text}: {s}"),
        None => text.to_string(),
    };
    // "Connection error: Connection error: …": a wrapper that prints its source's words again.
    let mut parts: Vec<&str> = Vec::new();
    for p in joined.split(": ") {
        if parts.last() != Some(&p) {
            parts.push(p);
        }
    }
    let joined = parts.join(": ");
    // The OS's and rustls's words for a connection the other side dropped.
    const DROPPED: [(&str, &str); 3] = [
        (
            "peer closed connection without sending TLS close_notify",
            "the server closed the connection in the middle (no TLS close_notify)",
        ),
        (
            "Broken pipe (os error 32)",
            "the server closed the connection (broken pipe)",
        ),
        (
            "Connection reset by peer (os error 104)",
            "the server reset the connection",
        ),
    ];
    for (raw, plain) in DROPPED {
        if let Some(at) = joined.find(raw) {
            return format!("{}{plain}", &joined[..at]);
        }
    }
    joined
}

impl fmt::Display for AppError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.summary)?;
        if !self.detail.is_empty() {
            write!(f, " ({})", self.detail)?;
        }
        if !self.fix.is_empty() {
            write!(f, " — fix: {}", self.fix)?;
        }
        Ok(())
    }
}

impl std::error::Error for AppError {}

/// The summary of a database SQLite finds corrupt or not a database at all.
pub const DAMAGED: &str = "the database is damaged";

/// How to get out of a damaged database: the cache can always be fetched again; what only the
/// database holds (queued sends, triage decisions, pairings, customers) is kept in the copy.
pub fn damaged_fix(db: &str) -> String {
    format!(
        "stop every mailroom process, move {db} aside (keep it) and run `mailroom sync` to rebuild the cache from the server; see docs/troubleshooting.md, \"Damaged database\", for what only the old file holds"
    )
}

impl From<std::io::Error> for AppError {
    fn from(e: std::io::Error) -> Self {
        if e.kind() == std::io::ErrorKind::StorageFull {
            return AppError::local(
                "the disk is full",
                e.to_string(),
                "free some disk space and try again",
            );
        }
        AppError::local(
            "I/O error",
            e.to_string(),
            "check the path and its permissions",
        )
    }
}

#[cfg(test)]
mod network_detail_tests {
    use super::network_detail;

    #[test]
    fn reads_like_a_sentence_without_links_or_repeats() {
        let eof = "peer closed connection without sending TLS close_notify: https://docs.rs/rustls/latest/rustls/manual/_03_howto/index.html#unexpected-eof";
        assert_eq!(
            network_detail(&format!("network error: {eof}"), Some(eof)),
            "network error: the server closed the connection in the middle (no TLS close_notify)"
        );
        assert_eq!(
            network_detail(
                "connection error",
                Some("Connection refused (os error 111)")
            ),
            "connection error: Connection refused (os error 111)"
        );
        assert_eq!(network_detail("timed out", Some("")), "timed out");
        assert_eq!(
            network_detail("Connection error: Connection error: refused", None),
            "Connection error: refused"
        );
        assert_eq!(
            network_detail("network error: Broken pipe (os error 32)", None),
            "network error: the server closed the connection (broken pipe)"
        );
    }
}
