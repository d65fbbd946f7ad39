//! SMTP through lettre over rustls: building the transport for an account (or the system SMTP
//! profile), and the connect/TLS/auth checks of `account test`.

use std::time::Duration;

use lettre::Tokio1Executor;
use lettre::transport::smtp::AsyncSmtpTransport;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};

use crate::config::{Security, Server};
use crate::error::{AppError, Result};
use crate::imap::TlsOptions;

pub mod session;

pub type Transport = AsyncSmtpTransport<Tokio1Executor>;

#[derive(Debug, Clone)]
pub struct SmtpTarget {
    pub server: Server,
    pub tls: TlsOptions,
    pub user: String,
    pub timeout: Duration,
    /// How the session signs in.
    pub auth: AuthMode,
    /// The command that changes these settings, for fixes: `mailroom account edit work`, or
    /// `mailroom system-smtp set` for the system profile.
    pub edit: String,
    /// The account whose protocol trace this session feeds (None: untraced).
    pub trace_as: Option<String>,
}

/// How an SMTP session signs in (resolved from `smtp_auth` and the account's auth kind).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    /// A password, with PLAIN if the server offers it, else LOGIN (the default).
    Password,
    /// A password, with exactly this mechanism.
    Plain,
    Login,
    /// An OAuth2 token, with XOAUTH2 if the server offers it, else OAUTHBEARER (the default of
    /// an OAuth2 account).
    OAuth2,
    /// An OAuth2 token, with exactly this mechanism.
    Xoauth2,
    Oauthbearer,
    /// No AUTH: a relay that takes mail from this host without a login.
    None,
}

/// One SASL mechanism an SMTP session signs in with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sasl {
    Plain,
    Login,
    Xoauth2,
    Oauthbearer,
}

impl Sasl {
    /// The name as EHLO lists it.
    pub fn name(self) -> &'static str {
        match self {
            Sasl::Plain => "PLAIN",
            Sasl::Login => "LOGIN",
            Sasl::Xoauth2 => "XOAUTH2",
            Sasl::Oauthbearer => "OAUTHBEARER",
        }
    }
}

impl AuthMode {
    /// The mechanisms this mode may use, in order of preference (none for `None`).
    pub fn mechanisms(self) -> &'static [Sasl] {
        match self {
            AuthMode::Password => &[Sasl::Plain, Sasl::Login],
            AuthMode::Plain => &[Sasl::Plain],
            AuthMode::Login => &[Sasl::Login],
            AuthMode::OAuth2 => &[Sasl::Xoauth2, Sasl::Oauthbearer],
            AuthMode::Xoauth2 => &[Sasl::Xoauth2],
            AuthMode::Oauthbearer => &[Sasl::Oauthbearer],
            AuthMode::None => &[],
        }
    }

    /// Whether the mode presents an OAuth2 token.
    pub fn is_oauth(self) -> bool {
        matches!(
            self,
            AuthMode::OAuth2 | AuthMode::Xoauth2 | AuthMode::Oauthbearer
        )
    }
}

pub(crate) fn tls_params(target: &SmtpTarget) -> Result<TlsParameters> {
    let mut b = TlsParameters::builder(target.server.host.clone());
    if target.tls.insecure_skip_verify {
        b = b
            .dangerous_accept_invalid_certs(true)
            .dangerous_accept_invalid_hostnames(true);
    }
    if let Some(path) = &target.tls.ca_file {
        let pem = std::fs::read(path).map_err(|e| {
            AppError::needs_user(
                format!("cannot read the CA file {}", path.display()),
                e.to_string(),
                "check the --ca-file path",
            )
            .with_code(crate::error::Code::TlsCaFile)
        })?;
        let cert = Certificate::from_pem(&pem).map_err(|e| {
            AppError::needs_user(
                format!("the CA file {} is not valid PEM", path.display()),
                e.to_string(),
                "pass a PEM CA certificate",
            )
            .with_code(crate::error::Code::TlsCaFile)
        })?;
        b = b.add_root_certificate(cert);
    }
    b.build_rustls().map_err(|e| {
        AppError::local("SMTP TLS setup failed", e.to_string(), "check the CA file")
            .with_code(crate::error::Code::TlsCaFile)
    })
}

/// Builds an unauthenticated transport (for the TLS check; signing in is the session's).
pub fn transport(target: &SmtpTarget) -> Result<Transport> {
    let tls = match target.server.security {
        Security::None => Tls::None,
        Security::Starttls => Tls::Required(tls_params(target)?),
        Security::Tls => Tls::Wrapper(tls_params(target)?),
    };
    let b = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(target.server.host.clone())
        .port(target.server.port)
        .tls(tls)
        .timeout(Some(target.timeout));
    Ok(b.build())
}

/// Turns a lettre error into one that says what failed and how to fix it.
pub fn classify(target: &SmtpTarget, e: &lettre::transport::smtp::Error) -> AppError {
    let host = &target.server.host;
    let source = std::error::Error::source(e).map(|s| s.to_string());
    let detail = crate::error::network_detail(&e.to_string(), source.as_deref());
    if detail.contains("InvalidContentType") {
        return AppError::needs_user(
            format!(
                "the SMTP server at {host}:{} did not answer with TLS",
                target.server.port
            ),
            "its first bytes were not a TLS record: this port speaks plain SMTP (STARTTLS) or another protocol",
            format!(
                "use --smtp-security starttls for port 587, tls for 465 (`{} --smtp-security …`)",
                target.edit
            ),
        );
    }
    if let Some(stall) = find_source::<crate::imap::connect::Stall>(e) {
        return crate::error::stalled(
            &format!("{host}:{}", target.server.port),
            "talking SMTP",
            &stall.words(),
        );
    }
    if let Some(tokio_rustls::rustls::Error::InvalidCertificate(c)) =
        find_source::<tokio_rustls::rustls::Error>(e)
    {
        let (why, fix) = crate::imap::tls::certificate_words(host, c, target.tls.ca_file.is_some());
        tracing::debug!("certificate of {host} refused: {detail}");
        return AppError::needs_user(
            format!("the SMTP server's TLS certificate is not trusted ({host}): {why}"),
            format!("the certificate {host} presented failed the check"),
            fix,
        )
        .with_code(crate::imap::tls::certificate_code(c));
    }
    if e.is_tls() || detail.contains("certificate") || detail.contains("UnknownIssuer") {
        if detail.contains("UnknownIssuer") || detail.contains("certificate") {
            return AppError::needs_user(
                format!("the SMTP server's TLS certificate is not trusted ({host})"),
                crate::error::short_detail(&detail),
                "pass the server's CA with --ca-file PEM, or --insecure-skip-verify for this account (shown as insecure)",
            )
            .with_code(crate::error::Code::TlsUntrusted);
        }
        return AppError::transient(
            format!("SMTP TLS with {host} failed"),
            detail,
            "check the SMTP security setting: starttls for 587, tls for 465",
        )
        .with_code(crate::error::Code::TlsHandshake);
    }
    if let Some(code) = e.status() {
        let c = code.to_string();
        if c == "535" || c == "534" || c == "530" {
            return AppError::needs_user(
                format!("the SMTP server rejected the login for {}", target.user),
                detail,
                "check the user name and password (`mailroom account set-password NAME`); some providers need an app password",
            )
            .with_code(crate::error::Code::AuthRejected);
        }
        if e.is_permanent() {
            return AppError::needs_user(
                format!("the SMTP server refused ({c})"),
                detail,
                "read the server's message; the recipient or the message may be refused",
            )
            .with_code(crate::error::Code::SmtpRefused);
        }
        return AppError::transient(
            format!("the SMTP server deferred ({c})"),
            detail,
            "the server asked to try again later; a queued message stays in `mailroom outbox` and goes out on a later attempt",
        )
        .with_code(crate::error::Code::SmtpDeferred);
    }
    if e.is_timeout() {
        return AppError::transient(
            format!("SMTP server {host} did not answer in time"),
            detail,
            "check the host and port, and that the server is up",
        )
        .with_code(crate::error::Code::NetTimeout);
    }
    if detail.contains("Connection refused") {
        return AppError::transient(
            format!("cannot connect to SMTP {}:{}", host, target.server.port),
            detail,
            "nothing listens there: check the port (587 STARTTLS, 465 TLS) and that the server runs",
        )
        .with_code(crate::error::Code::NetRefused);
    }
    AppError::transient(
        format!("SMTP with {host} failed"),
        crate::error::short_detail(&detail),
        "check the SMTP host, port and security setting",
    )
}

/// The first error of type `E` in an error's chain (through I/O errors' inner errors too).
fn find_source<'a, E: std::error::Error + 'static>(
    e: &'a (dyn std::error::Error + 'static),
) -> Option<&'a E> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(found) = err.downcast_ref::<E>() {
            return Some(found);
        }
        if let Some(inner) = err
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            if let Some(found) = inner.downcast_ref::<E>() {
                return Some(found);
            }
            cur = inner.source();
            continue;
        }
        cur = err.source();
    }
    None
}

/// Opens a connection (TLS included) and says NOOP. The whole check is bounded by a few times
/// the account's timeout (lettre bounds each read). Signing in is checked with a
/// [`session::Session`], the way sending signs in.
pub async fn test(target: &SmtpTarget) -> Result<()> {
    let t = transport(target)?;
    let limit = target.timeout.max(Duration::from_secs(1)) * 4;
    let Ok(res) = tokio::time::timeout(limit, t.test_connection()).await else {
        return Err(AppError::transient(
            format!(
                "the SMTP server {}:{} stalled: the check did not finish within {} s",
                target.server.host,
                target.server.port,
                limit.as_secs()
            ),
            "",
            "check the network and the server; `sync.timeout_secs` in config.toml sets how long mailroom waits",
        )
        .with_code(crate::error::Code::NetStalled));
    };
    match res {
        Ok(true) => Ok(()),
        Ok(false) => Err(AppError::transient(
            "the SMTP server did not accept NOOP",
            "",
            "check that this port serves SMTP",
        )
        .with_code(crate::error::Code::ServerProtocol)),
        Err(e) => Err(classify(target, &e)),
    }
}
