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

/// Declares [`Code`]: one variant per stable code, its text, and [`Code::ALL`].
macro_rules! codes {
    ($($(#[doc = $doc:literal])* $variant:ident => $text:literal,)*) => {
        /// A failure's stable name, for scripts, monitoring and docs/troubleshooting.md (which
        /// has an entry per code; a test keeps the two in step). Never renamed once released.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Code {
            $($(#[doc = $doc])* $variant,)*
        }

        impl Code {
            /// Every code, in the order docs/troubleshooting.md lists them.
            pub const ALL: &'static [Code] = &[$(Code::$variant,)*];

            /// The code as scripts see it (`auth.rejected`).
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Code::$variant => $text,)*
                }
            }
        }
    };
}

codes! {
    /// Bad input: a flag, an argument, a value (exit 64).
    Usage => "usage",
    /// Something failed that needs the user; no more precise code applies.
    Failed => "failed",
    /// A passing failure; retrying later may succeed; no more precise code applies.
    Temporary => "temporary",
    /// A local problem; no more precise code applies.
    Local => "local",
    /// A bug in mailroom.
    Internal => "internal",
    /// The named thing does not exist (or is not visible to this operator).
    NotFound => "not_found",
    /// The operator may see it but not change its settings.
    AccessDenied => "access.denied",
    /// It already exists or already belongs to someone else.
    Conflict => "conflict",
    /// The change was already made; nothing left to do.
    NothingToDo => "nothing_to_do",
    /// The named customer fits several customers.
    CustomerAmbiguous => "customer.ambiguous",
    /// The home directory does not exist.
    HomeMissing => "home.missing",
    /// The home directory cannot be created.
    HomeUnwritable => "home.unwritable",
    /// No account is configured (or none is enabled).
    AccountsNone => "accounts.none",
    /// config.toml cannot be read, or a setting in it is not valid.
    ConfigInvalid => "config.invalid",
    /// On PostgreSQL: this host's config.toml holds shared settings that differ from the
    /// installation's in the database.
    ConfigSplit => "config.split",
    /// The server rejected the user name or password.
    AuthRejected => "auth.rejected",
    /// The server offers no authentication mailroom can use.
    AuthUnsupported => "auth.unsupported",
    /// The SMTP server offers AUTH only after STARTTLS, and the account's security is none.
    AuthAfterStarttls => "auth.after_starttls",
    /// An OAuth2 account must sign in (again): no tokens yet, or the provider refused the
    /// refresh (consent revoked or expired), or a server refused even a fresh token.
    AuthLoginNeeded => "auth.login_needed",
    /// The SMTP server refused a valid OAuth2 token: SMTP AUTH is switched off for the mailbox
    /// or tenant (Microsoft 365).
    AuthSmtpDisabled => "auth.smtp_disabled",
    /// The OAuth2 authorization server cannot be reached or is unwell; mailroom asks again later.
    OauthUnavailable => "oauth.unavailable",
    /// The provider refused the app registration (client id or secret).
    OauthClient => "oauth.client",
    /// The person declined the access, or the sign-in code expired before approval.
    OauthDenied => "oauth.denied",
    /// The provider refused the sign-in for another reason (scopes, a mismatched answer).
    OauthRefused => "oauth.refused",
    /// No password is stored for the account.
    SecretMissing => "secret.missing",
    /// The stored password cannot be decrypted.
    SecretDamaged => "secret.damaged",
    /// The sealing key (key file or MAILROOM_KEY) is unusable.
    SecretKey => "secret.key",
    /// This host's sealing key is not the installation's (PostgreSQL: many hosts, one key).
    KeyMismatch => "key.mismatch",
    /// The password command failed.
    SecretCommand => "secret.command",
    /// The server's certificate is signed by an authority this machine does not trust.
    TlsUntrusted => "tls.untrusted",
    /// The server's certificate has expired.
    TlsExpired => "tls.expired",
    /// The server's certificate is not valid yet.
    TlsNotYetValid => "tls.not_yet_valid",
    /// The server's certificate is issued for another name.
    TlsNameMismatch => "tls.name_mismatch",
    /// The server's certificate has been revoked.
    TlsRevoked => "tls.revoked",
    /// The CA file cannot be read or holds no usable certificate.
    TlsCaFile => "tls.ca_file",
    /// The port does not speak TLS (the security setting does not match it).
    TlsNotTls => "tls.not_tls",
    /// The TLS handshake failed without a certificate reason.
    TlsHandshake => "tls.handshake",
    /// The server does not offer STARTTLS, or refused it.
    TlsNoStarttls => "tls.no_starttls",
    /// Nothing listens at that host and port.
    NetRefused => "net.refused",
    /// The host name does not resolve.
    NetUnresolved => "net.unresolved",
    /// The host cannot be reached.
    NetUnreachable => "net.unreachable",
    /// No answer in time while connecting.
    NetTimeout => "net.timeout",
    /// The server stopped answering in the middle.
    NetStalled => "net.stalled",
    /// The server answers slower than the floor.
    NetTooSlow => "net.too_slow",
    /// The connection broke in the middle.
    NetDropped => "net.dropped",
    /// The server is temporarily unable to serve us.
    ServerUnavailable => "server.unavailable",
    /// The server sent no greeting: the port serves another protocol.
    ServerNoGreeting => "server.no_greeting",
    /// The server refused a command (an IMAP NO).
    ServerRefused => "server.refused",
    /// The server's answer cannot be used (an IMAP BAD, an unreadable answer).
    ServerProtocol => "server.protocol",
    /// The SMTP server refused the message for good.
    SmtpRefused => "smtp.refused",
    /// The SMTP server asked to try again later.
    SmtpDeferred => "smtp.deferred",
    /// The message is larger than the SMTP server accepts.
    SmtpTooLarge => "smtp.too_large",
    /// A send may or may not have been delivered.
    OutboxUncertain => "outbox.uncertain",
    /// A folder a setting or an action needs does not exist.
    FolderMissing => "folder.missing",
    /// A folder cannot hold messages (\\Noselect).
    FolderNoselect => "folder.noselect",
    /// Another process holds the account's lease (exit 75).
    LeaseHeld => "lease.held",
    /// The database is busy with another process's long write.
    DbBusy => "db.busy",
    /// The database is damaged.
    DbDamaged => "db.damaged",
    /// The database was written by a newer mailroom.
    DbNewer => "db.newer",
    /// The database cannot be opened or created.
    DbUnreadable => "db.unreadable",
    /// Another database failure.
    DbFailed => "db.failed",
    /// The disk is full.
    DiskFull => "disk.full",
    /// A file cannot be read or written.
    IoFailed => "io.failed",
    /// An alert command exited with a failure, or could not be started.
    AlertCommandFailed => "alert.command_failed",
    /// An alert command or webhook did not finish within its time limit.
    AlertTimeout => "alert.timeout",
    /// A webhook answered with an HTTP status other than 2xx.
    AlertHttpStatus => "alert.http_status",
    /// A webhook with plain http to an address that is not loopback.
    AlertPlainHttp => "alert.plain_http",
    /// A mail alert has no way out: no system SMTP profile, or only the failing account.
    AlertNoRoute => "alert.no_route",
    /// On PostgreSQL `--operator` names another role than the one the connection logs in as.
    OperatorMismatch => "operator.mismatch",
}

impl Code {
    /// The code of an error whose raiser named none.
    pub fn default_for(kind: Kind) -> Code {
        match kind {
            Kind::Usage => Code::Usage,
            Kind::NeedsUser => Code::Failed,
            Kind::Transient => Code::Temporary,
            Kind::Busy => Code::LeaseHeld,
            Kind::Local => Code::Local,
        }
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for Code {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

#[derive(Debug, Clone)]
pub struct AppError {
    pub kind: Kind,
    /// The stable name of this failure (`auth.rejected`); see [`Code`].
    pub code: Code,
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
        let fix = fix.into();
        // "report this as a bug" is what only a bug says.
        let code = if fix.contains("report this as a bug") {
            Code::Internal
        } else {
            Code::default_for(kind)
        };
        Self {
            kind,
            code,
            summary: summary.into(),
            detail: detail.into(),
            fix,
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
        .with_code(Code::NotFound)
    }

    /// The same error under a more precise code.
    pub fn with_code(mut self, code: Code) -> Self {
        self.code = code;
        self
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
    /// terminal, and a long one is cut to about 300 characters (the whole of it goes to the
    /// debug log). A stderr that is gone (a daemon that outlived its terminal) is not worth a
    /// panic.
    pub fn eprint(&self) {
        use std::io::Write;
        let clean = crate::mail::sanitize::clean;
        let mut err = std::io::stderr().lock();
        let _ = writeln!(err, "error: {}", clean(&short_detail(&self.summary)));
        if !self.detail.is_empty() {
            let _ = writeln!(err, "  detail: {}", clean(&short_detail(&self.detail)));
        }
        if !self.fix.is_empty() {
            let _ = writeln!(err, "  fix: {}", clean(&self.fix));
        }
        // The code is for scripts and the troubleshooting page; a usage error's text says all.
        if self.kind != Kind::Usage {
            let _ = writeln!(
                err,
                "  code: {} (docs/troubleshooting.md)",
                self.code.as_str()
            );
        }
    }

    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({"error": {
            "code": self.code.as_str(),
            "summary": self.summary,
            "detail": self.detail,
            "fix": self.fix,
        }})
    }
}

/// About this many characters of an error's detail reach a person; the rest goes to the debug
/// log (`-vv`, logs/mailroom.log).
pub const DETAIL_MAX: usize = 300;

/// `text` cut to about [`DETAIL_MAX`] characters at a word boundary, saying where the rest is;
/// the whole text goes to the debug log.
pub fn short_detail(text: &str) -> String {
    if text.chars().count() <= DETAIL_MAX {
        return text.to_string();
    }
    tracing::debug!("full error detail: {text}");
    let mut cut: String = text.chars().take(DETAIL_MAX - 60).collect();
    if let Some(at) = cut.rfind(' ').filter(|at| *at > DETAIL_MAX / 2) {
        cut.truncate(at);
    }
    format!("{cut} … (cut; the whole text is in the debug log: run with -vv)")
}

/// Response codes (RFC 5530) of a server that cannot serve us right now but may soon; a login
/// refused with one of them is not a wrong password. Dovecot answers `[UNAVAILABLE] Temporary
/// authentication failure` when its own authentication backend is down.
const TEMPORARY_CODES: [&str; 4] = ["UNAVAILABLE", "INUSE", "LIMIT", "SERVERBUG"];

/// The temporary response code a server's text starts with (`[UNAVAILABLE] …`), if any.
pub fn temporary_code(server_text: &str) -> Option<&'static str> {
    let t = server_text.trim_start();
    let code = t.strip_prefix('[')?.split(']').next()?.trim();
    let word = code.split_whitespace().next()?;
    TEMPORARY_CODES
        .into_iter()
        .find(|c| c.eq_ignore_ascii_case(word))
}

/// A server that answered but cannot serve us right now (a temporary response code, a BYE with
/// a reason): retried, never "check your password", never state `error`.
pub fn temporarily_unavailable(server: &str, what: &str, words: &str) -> AppError {
    AppError::transient(
        format!("the server {server} is temporarily unavailable ({what})"),
        short_detail(words),
        "nothing to change on this side: wait for the server; if it lasts, see its status page or administrator",
    )
    .with_code(Code::ServerUnavailable)
}

/// A connection that broke in the middle (closed, reset, unreadable).
pub fn connection_lost(server: &str, what: &str, detail: &str) -> AppError {
    AppError::transient(
        format!("{what}: the connection to {server} was lost"),
        short_detail(detail),
        "check the network and that the server runs; sync resumes where it stopped",
    )
    .with_code(Code::NetDropped)
}

/// A server that stopped answering or answers too slowly (`sync.timeout_secs`,
/// `sync.min_bytes_per_sec`); `words` says which (`stalled: …`, `too slow: …`).
pub fn stalled(server: &str, what: &str, words: &str) -> AppError {
    AppError::transient(
        format!("the server {server} {words}, {what}"),
        "",
        "check the network and the server; `sync.timeout_secs` and `sync.min_bytes_per_sec` in config.toml set how long and how slow mailroom accepts",
    )
    .with_code(if words.starts_with("too slow") {
        Code::NetTooSlow
    } else {
        Code::NetStalled
    })
}

/// Whether a failure means the server could not be reached or stopped answering (state
/// `disconnected`), rather than a server that answered with a problem (`degraded`).
pub fn is_unreachable(e: &AppError) -> bool {
    let s = &e.summary;
    s.contains("cannot connect")
        || s.contains("connection")
        || s.contains("stalled")
        || s.contains("TLS handshake")
        || s.contains("sent no IMAP greeting")
}

/// The fix of a transient failure as a caller says it: a daemon (or console) retries by
/// itself; a one-shot command does not, and says how to run it again.
pub fn with_retry_words(mut e: AppError, retries: bool, again: &str) -> AppError {
    if !e.recoverable() {
        return e;
    }
    let base = e.fix.trim_end_matches('.').to_string();
    e.fix = match (retries, base.is_empty()) {
        (true, true) => "mailroom retries by itself with backoff".into(),
        (true, false) => format!("mailroom retries by itself with backoff; {base}"),
        (false, true) => format!("run `{again}` again"),
        (false, false) => format!("{base}; then run `{again}` again"),
    };
    e
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
            )
            .with_code(Code::DiskFull);
        }
        AppError::local(
            "I/O error",
            e.to_string(),
            "check the path and its permissions",
        )
        .with_code(Code::IoFailed)
    }
}

#[cfg(test)]
mod code_tests {
    use super::*;

    /// The codes docs/troubleshooting.md explains (its `### \`code\`` headings).
    fn documented() -> Vec<String> {
        include_str!("../docs/troubleshooting.md")
            .lines()
            .filter_map(|l| l.strip_prefix("### `")?.strip_suffix('`'))
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn every_code_has_an_entry_in_troubleshooting_and_no_entry_is_stale() {
        let docs = documented();
        for c in Code::ALL {
            assert!(
                docs.iter().any(|d| d == c.as_str()),
                "docs/troubleshooting.md has no entry \"### `{c}`\" (meaning and fix)"
            );
        }
        for d in &docs {
            assert!(
                Code::ALL.iter().any(|c| c.as_str() == d),
                "docs/troubleshooting.md explains {d}, which no error has"
            );
        }
        let mut seen = std::collections::HashSet::new();
        for c in Code::ALL {
            assert!(seen.insert(c.as_str()), "{c} twice");
            let ok = c
                .as_str()
                .chars()
                .all(|ch| ch.is_ascii_lowercase() || ch == '.' || ch == '_');
            assert!(ok, "{c}: lower case, dots and underscores only");
        }
    }

    #[test]
    fn each_kind_has_a_default_and_the_code_reaches_the_json() {
        let e = AppError::needs_user("x", "", "y");
        assert_eq!(e.code, Code::Failed);
        assert_eq!(AppError::usage("x", "y").code, Code::Usage);
        assert_eq!(AppError::transient("x", "", "y").code, Code::Temporary);
        assert_eq!(
            AppError::new(Kind::Busy, "x", "", "y").code,
            Code::LeaseHeld
        );
        assert_eq!(AppError::local("x", "", "y").code, Code::Local);
        assert_eq!(
            AppError::local("x", "", "report this as a bug").code,
            Code::Internal
        );
        let e = e.with_code(Code::AuthRejected);
        let j = e.to_json();
        assert_eq!(j["error"]["code"], "auth.rejected");
        for key in ["summary", "detail", "fix"] {
            assert!(j["error"].get(key).is_some(), "{key}");
        }
        assert_eq!(
            serde_json::to_value(Code::TlsUntrusted).unwrap(),
            "tls.untrusted"
        );
        assert_eq!(
            AppError::not_found("customer", "7", "see").code,
            Code::NotFound
        );
        assert_eq!(
            stalled("h:1", "x", "stalled: no data for 5 s").code,
            Code::NetStalled
        );
        assert_eq!(
            stalled("h:1", "x", "too slow: 5 bytes in 5 s").code,
            Code::NetTooSlow
        );
        assert_eq!(connection_lost("h:1", "x", "").code, Code::NetDropped);
        assert_eq!(
            temporarily_unavailable("h:1", "x", "[INUSE]").code,
            Code::ServerUnavailable
        );
    }
}

#[cfg(test)]
mod classification_tests {
    use super::*;

    #[test]
    fn temporary_codes_and_short_details() {
        assert_eq!(
            temporary_code("[UNAVAILABLE] Temporary authentication failure"),
            Some("UNAVAILABLE")
        );
        assert_eq!(temporary_code(" [inuse] mailbox locked"), Some("INUSE"));
        assert_eq!(temporary_code("[AUTHENTICATIONFAILED] nope"), None);
        assert_eq!(temporary_code("no code"), None);
        let long = "word ".repeat(2000);
        let short = short_detail(&long);
        assert!(short.chars().count() <= DETAIL_MAX, "{}", short.len());
        assert!(short.contains("debug log"));
        assert_eq!(short_detail("fine"), "fine");
        let e = AppError::transient("x: the connection to h:1 was lost", "", "check the network");
        assert!(is_unreachable(&e));
        let once = with_retry_words(e.clone(), false, "mailroom sync a --once");
        assert!(!once.fix.contains("retries") && once.fix.contains("--once` again"));
        assert!(
            with_retry_words(e, true, "")
                .fix
                .starts_with("mailroom retries by itself")
        );
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
