//! Connecting to an IMAP server: TCP, TLS (implicit or STARTTLS) with certificate verification,
//! the greeting, login. Each step is separate so `account test` can report them one by one, and
//! each failure is classified into a message that names the fix.

use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use async_imap::{Client, Session};
use secrecy::{ExposeSecret, SecretString};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore, pki_types::ServerName};

use crate::config::{Security, Server};
use crate::error::{AppError, Result};

/// Plain TCP (before STARTTLS, or security `none`) or TLS.
#[derive(Debug)]
pub enum MailStream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for MailStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let res = match self.get_mut() {
            MailStream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            MailStream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        };
        if let Poll::Ready(Ok(())) = &res {
            trace_wire("S:", &buf.filled()[before..]);
        }
        res
    }
}

impl AsyncWrite for MailStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let res = match self.get_mut() {
            MailStream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            MailStream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        };
        if let Poll::Ready(Ok(n)) = &res {
            trace_wire("C:", &buf[..*n]);
        }
        res
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            MailStream::Plain(s) => Pin::new(s).poll_flush(cx),
            MailStream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            MailStream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            MailStream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

pub type ImapSession = Session<MailStream>;

/// The redacted protocol trace (`-vvv` or `MAILROOM_LOG=mailroom::imap::wire=trace`).
fn trace_wire(dir: &str, bytes: &[u8]) {
    if !tracing::enabled!(target: "mailroom::imap::wire", tracing::Level::TRACE) || bytes.is_empty()
    {
        return;
    }
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(2048)]);
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        tracing::trace!(target: "mailroom::imap::wire", "{dir} {}", crate::mail::sanitize::clean_line(&crate::logging::redact_protocol_line(line)));
    }
}

/// How certificates are checked for one account.
#[derive(Debug, Clone, Default)]
pub struct TlsOptions {
    pub ca_file: Option<std::path::PathBuf>,
    pub insecure_skip_verify: bool,
}

/// Everything needed to open an authenticated session.
#[derive(Debug, Clone)]
pub struct ImapTarget {
    pub server: Server,
    pub tls: TlsOptions,
    pub user: String,
    pub timeout: Duration,
}

pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(20);

/// Builds the rustls configuration: the public web PKI roots plus `ca_file`, or no checks at
/// all when the user turned them off for this account.
pub fn client_config(opts: &TlsOptions) -> Result<Arc<ClientConfig>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| AppError::local("TLS setup failed", e.to_string(), "report this as a bug"))?;
    let config = if opts.insecure_skip_verify {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerify(provider)))
            .with_no_client_auth()
    } else {
        let mut roots = RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        if let Some(path) = &opts.ca_file {
            for cert in load_pem_certs(path)? {
                roots.add(cert).map_err(|e| {
                    AppError::needs_user(
                        format!(
                            "the CA file {} holds an unusable certificate",
                            path.display()
                        ),
                        e.to_string(),
                        "pass a PEM file with the CA certificate",
                    )
                })?;
            }
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    };
    Ok(Arc::new(config))
}

pub fn load_pem_certs(path: &Path) -> Result<Vec<rustls::pki_types::CertificateDer<'static>>> {
    use rustls::pki_types::pem::PemObject;
    let certs: Vec<_> = rustls::pki_types::CertificateDer::pem_file_iter(path)
        .map_err(|e| {
            AppError::needs_user(
                format!("cannot read the CA file {}", path.display()),
                e.to_string(),
                "check the --ca-file path",
            )
        })?
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| {
            AppError::needs_user(
                format!("the CA file {} is not valid PEM", path.display()),
                e.to_string(),
                "pass a PEM file with the CA certificate",
            )
        })?;
    if certs.is_empty() {
        return Err(AppError::needs_user(
            format!("the CA file {} holds no certificate", path.display()),
            "",
            "pass a PEM file with the CA certificate",
        ));
    }
    Ok(certs)
}

/// Accepts any certificate (signatures are still checked so the handshake is well-formed).
#[derive(Debug)]
struct NoVerify(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> std::result::Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> std::result::Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> std::result::Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Opens the TCP connection (with a timeout), naming the fix for the usual failures.
pub async fn tcp_connect(server: &Server, timeout: Duration) -> Result<TcpStream> {
    let addr = format!("{}:{}", server.host, server.port);
    let what = format!("cannot connect to {addr}");
    match tokio::time::timeout(timeout, TcpStream::connect(&addr)).await {
        Err(_) => Err(AppError::transient(
            what,
            format!("no answer within {}s", timeout.as_secs()),
            "check the host and port, and that a firewall lets the connection through",
        )),
        Ok(Err(e)) => {
            use std::io::ErrorKind::*;
            let fix = match e.kind() {
                ConnectionRefused => {
                    "nothing listens there: check the port (IMAPS 993, IMAP 143; SMTP 587, 465) and that the server runs"
                }
                NotFound | AddrNotAvailable => "the host name does not resolve: check its spelling",
                _ if e.to_string().contains("failed to lookup")
                    || e.to_string().contains("Name or service") =>
                {
                    "the host name does not resolve: check its spelling and your DNS"
                }
                _ => "check the host, the port and your network",
            };
            Err(AppError::transient(what, e.to_string(), fix))
        }
        Ok(Ok(s)) => {
            let _ = s.set_nodelay(true);
            Ok(s)
        }
    }
}

/// Wraps a TCP stream in TLS, turning certificate failures into errors that say so.
pub async fn tls_wrap(
    tcp: TcpStream,
    host: &str,
    opts: &TlsOptions,
    timeout: Duration,
) -> Result<TlsStream<TcpStream>> {
    let config = client_config(opts)?;
    let name = ServerName::try_from(host.to_string()).map_err(|_| {
        AppError::usage(
            format!("{host:?} is not a valid server name"),
            "check the host",
        )
    })?;
    let connector = TlsConnector::from(config);
    match tokio::time::timeout(timeout, connector.connect(name, tcp)).await {
        Err(_) => Err(AppError::transient(
            format!("TLS handshake with {host} timed out"),
            "",
            "check that the port speaks TLS (implicit TLS: 993/465; STARTTLS: 143/587)",
        )),
        Ok(Err(e)) => Err(classify_tls_error(host, opts, &e)),
        Ok(Ok(s)) => Ok(s),
    }
}

pub fn classify_tls_error(host: &str, opts: &TlsOptions, e: &std::io::Error) -> AppError {
    let inner = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>());
    match inner {
        Some(rustls::Error::InvalidCertificate(cert_err)) => {
            let why = match cert_err {
                rustls::CertificateError::UnknownIssuer => "it is signed by an authority this machine does not trust (self-signed or private CA)".to_string(),
                rustls::CertificateError::NotValidForName | rustls::CertificateError::NotValidForNameContext { .. } => format!("it is not issued for {host}"),
                rustls::CertificateError::Expired | rustls::CertificateError::ExpiredContext { .. } => "it has expired".to_string(),
                other => format!("{other:?}"),
            };
            let fix = if opts.ca_file.is_some() {
                "the --ca-file given does not vouch for this certificate: pass the right CA file, or --insecure-skip-verify if you trust this network"
            } else {
                "pass the server's CA with --ca-file PEM, or turn certificate checks off for this account with --insecure-skip-verify (shown as insecure)"
            };
            AppError::needs_user(
                format!("the server's TLS certificate is not trusted: {why}"),
                e.to_string(),
                fix,
            )
        }
        Some(rustls::Error::InvalidMessage(rustls::InvalidMessage::InvalidContentType)) => {
            AppError::needs_user(
                format!("the server at {host} did not answer with TLS"),
                "its first bytes were not a TLS record: this port speaks plain IMAP (STARTTLS) or another protocol",
                "use --imap-security starttls for port 143, tls for 993 (`mailroom account edit NAME --imap-security …`)",
            )
        }
        Some(other) => AppError::transient(
            format!("TLS handshake with {host} failed"),
            other.to_string(),
            "check that the port speaks TLS and the security setting (tls for 993/465, starttls for 143/587)",
        ),
        None => AppError::transient(
            format!("TLS handshake with {host} failed"),
            e.to_string(),
            "check that the port speaks TLS: use --imap-security starttls for port 143, tls for 993",
        ),
    }
}

fn imap_err(what: &str, e: async_imap::error::Error) -> AppError {
    match e {
        async_imap::error::Error::Io(io) => AppError::transient(
            format!("{what}: connection failed"),
            crate::error::network_detail(&io.to_string(), None),
            "check the network; mailroom retries by itself",
        ),
        async_imap::error::Error::ConnectionLost => AppError::transient(
            format!("{what}: the server closed the connection"),
            "",
            "mailroom retries by itself; if it persists, check the server's logs or connection limits",
        ),
        async_imap::error::Error::No(m) => AppError::needs_user(
            format!("{what}: the server said NO"),
            server_text(&m),
            "see the server's message",
        ),
        async_imap::error::Error::Bad(m) => AppError::needs_user(
            format!("{what}: the server said BAD"),
            server_text(&m),
            "this server may not support the command; report it",
        ),
        other => AppError::transient(
            format!("{what}: protocol error"),
            other.to_string(),
            "retry; if it persists, report it with `mailroom log --level debug`",
        ),
    }
}

/// The words of a NO/BAD answer as a person reads them. async-imap hands them over as
/// `code: Some(AuthenticationFailed), info: Some("…")` (Rust debug text, escapes spelled out);
/// this gives `[AuthenticationFailed] …`, with control characters and escapes gone.
pub fn server_text(raw: &str) -> String {
    let (code, info) = match raw
        .strip_prefix("code: ")
        .and_then(|r| r.split_once(", info: "))
    {
        Some(parts) => parts,
        None => return crate::mail::sanitize::clean_line(raw),
    };
    let code = code
        .strip_prefix("Some(")
        .and_then(|c| c.strip_suffix(')'))
        .map(|c| format!("[{c}] "))
        .unwrap_or_default();
    let info = info
        .strip_prefix("Some(\"")
        .and_then(|i| i.strip_suffix("\")"))
        .map(unescape_debug)
        .unwrap_or_default();
    crate::mail::sanitize::clean_line(&format!("{code}{info}"))
        .trim()
        .to_string()
}

/// Undoes `{:?}` of a str: `\"`, `\\`, `\n`… and `\u{1b}` back to characters.
fn unescape_debug(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('t') => out.push('\t'),
            Some('0') => out.push('\0'),
            Some('u') => {
                let hex: String = chars
                    .by_ref()
                    .skip_while(|c| *c == '{')
                    .take_while(|c| *c != '}')
                    .collect();
                if let Some(ch) = u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32) {
                    out.push(ch);
                }
            }
            Some(other) => out.push(other),
            None => {}
        }
    }
    out
}

pub fn protocol_error(what: &str, e: async_imap::error::Error) -> AppError {
    imap_err(what, e)
}

/// Reads the server greeting; an IMAP server speaks first.
async fn read_greeting(client: &mut Client<MailStream>, timeout: Duration) -> Result<()> {
    match tokio::time::timeout(timeout, client.read_response()).await {
        Err(_) => Err(AppError::transient(
            "the server sent no IMAP greeting",
            "",
            "check that this port serves IMAP (and the security setting: implicit TLS on 993)",
        )),
        Ok(Err(e)) => Err(AppError::transient(
            "reading the IMAP greeting failed",
            e.to_string(),
            "check the port and the security setting",
        )),
        Ok(Ok(None)) => Err(AppError::transient(
            "the server closed the connection before greeting",
            "",
            "check the port and the server's connection limits",
        )),
        Ok(Ok(Some(_))) => Ok(()),
    }
}

/// TCP + TLS (implicit or STARTTLS) + greeting: an unauthenticated client ready for LOGIN.
/// `on_step` hears "connect" and "tls" as they pass, for step-by-step reports.
pub async fn open_client(
    target: &ImapTarget,
    mut on_step: impl FnMut(&'static str, &Result<()>),
) -> Result<Client<MailStream>> {
    let server = &target.server;
    let tcp = tcp_connect(server, target.timeout).await;
    on_step("connect", &tcp.as_ref().map(|_| ()).map_err(Clone::clone));
    let tcp = tcp?;
    let client = match server.security {
        Security::Tls => {
            let tls = tls_wrap(tcp, &server.host, &target.tls, target.timeout).await;
            on_step("tls", &tls.as_ref().map(|_| ()).map_err(Clone::clone));
            let mut client = Client::new(MailStream::Tls(Box::new(tls?)));
            read_greeting(&mut client, target.timeout).await?;
            client
        }
        Security::Starttls => {
            let mut client = Client::new(MailStream::Plain(tcp));
            read_greeting(&mut client, target.timeout).await?;
            let res = tokio::time::timeout(
                target.timeout,
                client.run_command_and_check_ok("STARTTLS", None),
            )
            .await;
            let started = match res {
                Err(_) => Err(AppError::transient(
                    "STARTTLS timed out",
                    "",
                    "check the security setting",
                )),
                Ok(Err(e)) => Err(AppError::needs_user(
                    "the server refused STARTTLS",
                    e.to_string(),
                    "use --imap-security tls (port 993), or none only on a trusted network",
                )),
                Ok(Ok(())) => Ok(()),
            };
            if let Err(e) = started {
                on_step("tls", &Err(e.clone()));
                return Err(e);
            }
            let tcp = match client.into_inner() {
                MailStream::Plain(t) => t,
                MailStream::Tls(_) => {
                    return Err(AppError::local(
                        "internal: STARTTLS on a TLS stream",
                        "",
                        "report this as a bug",
                    ));
                }
            };
            let tls = tls_wrap(tcp, &server.host, &target.tls, target.timeout).await;
            on_step("tls", &tls.as_ref().map(|_| ()).map_err(Clone::clone));
            Client::new(MailStream::Tls(Box::new(tls?)))
        }
        Security::None => {
            on_step("tls", &Ok(()));
            let mut client = Client::new(MailStream::Plain(tcp));
            read_greeting(&mut client, target.timeout).await?;
            client
        }
    };
    Ok(client)
}

/// LOGIN; a rejected password is an error the user must fix (never retried blindly).
pub async fn login(
    client: Client<MailStream>,
    user: &str,
    password: &SecretString,
    timeout: Duration,
) -> Result<ImapSession> {
    match tokio::time::timeout(timeout, client.login(user, password.expose_secret())).await {
        Err(_) => Err(AppError::transient(
            "login timed out",
            "",
            "retry; check the server",
        )),
        Ok(Ok(session)) => Ok(session),
        Ok(Err((async_imap::error::Error::No(msg), _))) => Err(AppError::needs_user(
            format!("the server rejected the login for {user}"),
            server_text(&msg),
            "check the user name and password, then `mailroom account set-password NAME`; providers like Gmail/Outlook need an app password",
        )),
        Ok(Err((e, _))) => Err(imap_err("login", e)),
    }
}

/// Connect and log in, the usual path for sync and sending.
pub async fn connect(target: &ImapTarget, password: &SecretString) -> Result<ImapSession> {
    let client = open_client(target, |_, _| {}).await?;
    login(client, &target.user, password, target.timeout).await
}

#[cfg(test)]
mod server_text_tests {
    use super::server_text;

    #[test]
    fn a_refusal_reads_as_the_servers_words_without_escapes() {
        let raw = format!(
            "code: None, info: Some({:?})",
            "\u{1b}]0;pwned\u{7}login refused \u{1b}[2J\u{1b}[31mred\u{1b}[0m \"quoted\""
        );
        assert_eq!(server_text(&raw), "login refused red \"quoted\"");
        let raw = format!(
            "code: Some(AuthenticationFailed), info: Some({:?})",
            "Authentication failed."
        );
        assert_eq!(
            server_text(&raw),
            "[AuthenticationFailed] Authentication failed."
        );
        assert_eq!(server_text("plain \u{1b}[31mtext"), "plain text");
    }
}
