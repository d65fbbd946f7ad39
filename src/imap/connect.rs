//! Connecting to an IMAP server: TCP, TLS (implicit or STARTTLS) with certificate verification,
//! the greeting, login. Each step is separate so `account test` can report them one by one, and
//! each failure is classified into a message that names the fix. Every wait is bounded: the
//! connect by at most [`DEFAULT_TIMEOUT`], everything after it by the account's
//! `sync.timeout_secs` (the stream's watchdog, see `stream.rs`), LOGOUT by 5 s.

use std::time::Duration;

use async_imap::{Client, Session};
use secrecy::{ExposeSecret, SecretString};
use tokio::net::TcpStream;

use crate::config::{Security, Server};
use crate::error::{AppError, Code, Result};
use crate::secret::Credential;

pub use super::stream::{Limits, MailStream, Stall};
pub use super::tls::{TlsOptions, classify_tls_error, client_config, load_pem_certs, tls_wrap};

pub type ImapSession = Session<MailStream>;

/// Everything needed to open an authenticated session.
#[derive(Debug, Clone)]
pub struct ImapTarget {
    pub server: Server,
    pub tls: TlsOptions,
    pub user: String,
    /// Bounds every wait on the server (`sync.timeout_secs`); connecting waits at most
    /// [`DEFAULT_TIMEOUT`] of it.
    pub timeout: Duration,
    /// The slowest transfer that still counts as progress (`sync.min_bytes_per_sec`).
    pub min_bytes_per_sec: u64,
    /// The account whose protocol trace this connection feeds (None: untraced).
    pub trace_as: Option<String>,
}

impl ImapTarget {
    pub fn limits(&self) -> Limits {
        Limits {
            timeout: self.timeout.max(Duration::from_secs(1)),
            min_bytes_per_sec: self.min_bytes_per_sec,
        }
    }

    /// `host:port`, as errors name the server.
    pub fn address(&self) -> String {
        address(&self.server)
    }
}

pub fn address(server: &Server) -> String {
    format!("{}:{}", server.host, server.port)
}

/// The longest a TCP connect waits (a shorter `sync.timeout_secs` wins).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(20);

/// LOGOUT waits at most this long (or the account's timeout, when shorter), then the socket is
/// dropped: a goodbye is a courtesy, never a reason to hang.
pub const LOGOUT_WAIT: Duration = Duration::from_secs(5);

/// Opens the TCP connection (with a timeout), naming the fix for the usual failures. Keepalive
/// is on, so a peer that vanished without a word is noticed even while nothing is sent.
pub async fn tcp_connect(server: &Server, timeout: Duration) -> Result<TcpStream> {
    let addr = address(server);
    let what = format!("cannot connect to {addr}");
    let timeout = timeout.clamp(Duration::from_secs(1), DEFAULT_TIMEOUT);
    match tokio::time::timeout(timeout, TcpStream::connect(&addr)).await {
        Err(_) => Err(AppError::transient(
            what,
            format!("no answer within {}s", timeout.as_secs()),
            "check the host and port, and that a firewall lets the connection through",
        )
        .with_code(Code::NetTimeout)),
        Ok(Err(e)) => {
            use std::io::ErrorKind::*;
            let (code, fix) = match e.kind() {
                ConnectionRefused => (
                    Code::NetRefused,
                    "nothing listens there: check the port (IMAPS 993, IMAP 143; SMTP 587, 465) and that the server runs",
                ),
                NotFound | AddrNotAvailable => (
                    Code::NetUnresolved,
                    "the host name does not resolve: check its spelling",
                ),
                _ if e.to_string().contains("failed to lookup")
                    || e.to_string().contains("Name or service") =>
                {
                    (
                        Code::NetUnresolved,
                        "the host name does not resolve: check its spelling and your DNS",
                    )
                }
                _ => (
                    Code::NetUnreachable,
                    "check the host, the port and your network",
                ),
            };
            Err(AppError::transient(what, e.to_string(), fix).with_code(code))
        }
        Ok(Ok(s)) => {
            let _ = s.set_nodelay(true);
            super::stream::keepalive(&s, timeout);
            Ok(s)
        }
    }
}

fn imap_err(what: &str, e: async_imap::error::Error) -> AppError {
    imap_error(None, what, e)
}

/// A failed async-imap call in words; `link` (the session's stream) names the server and keeps
/// the last bytes it sent, where a BYE's reason hides when the library only says "connection
/// lost".
fn imap_error(
    link: Option<&super::stream::Link>,
    what: &str,
    e: async_imap::error::Error,
) -> AppError {
    let server = link.map_or_else(|| "the server".to_string(), |l| l.server.clone());
    match e {
        async_imap::error::Error::Io(io) => io_error(&server, what, &io),
        async_imap::error::Error::ConnectionLost => {
            match link.and_then(|l| bye_reason(&l.tail())) {
                Some(reason) => crate::error::temporarily_unavailable(&server, what, &reason),
                None => crate::error::connection_lost(&server, what, "closed by the server"),
            }
        }
        async_imap::error::Error::No(m) => refusal(&server, what, "NO", &server_text(&m)),
        async_imap::error::Error::Bad(m) => AppError::needs_user(
            format!("{what}: the server said BAD"),
            crate::error::short_detail(&server_text(&m)),
            "this server may not support the command; report it",
        )
        .with_code(Code::ServerProtocol),
        other => AppError::transient(
            format!("{what}: protocol error"),
            crate::error::short_detail(&other.to_string()),
            "if it persists, report it with `mailroom log --level debug`",
        )
        .with_code(Code::ServerProtocol),
    }
}

/// A NO: temporary when the server says so with its response code, else for the user.
fn refusal(server: &str, what: &str, status: &str, text: &str) -> AppError {
    if crate::error::temporary_code(text).is_some() {
        return crate::error::temporarily_unavailable(server, what, text);
    }
    AppError::needs_user(
        format!("{what}: the server said {status}"),
        crate::error::short_detail(text),
        "see the server's message",
    )
    .with_code(Code::ServerRefused)
}

/// An I/O failure on the connection: the watchdog's stall, or a connection that broke.
pub fn io_error(server: &str, what: &str, io: &std::io::Error) -> AppError {
    if let Some(stall) = io.get_ref().and_then(|e| e.downcast_ref::<Stall>()) {
        return crate::error::stalled(server, what, &stall.words());
    }
    crate::error::connection_lost(
        server,
        what,
        &crate::error::network_detail(&io.to_string(), None),
    )
}

/// The reason of a `* BYE` among the last bytes the server sent.
pub fn bye_reason(tail: &str) -> Option<String> {
    let at = tail.rfind("* BYE")?;
    let line = tail[at + 5..].lines().next().unwrap_or("").trim();
    let line = crate::mail::sanitize::clean_line(line);
    Some(if line.is_empty() {
        "the server said BYE".to_string()
    } else {
        format!("the server said BYE: {line}")
    })
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
pub(crate) fn unescape_debug(s: &str) -> String {
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

/// Like [`protocol_error`], naming the session's server.
pub fn session_error(session: &ImapSession, what: &str, e: async_imap::error::Error) -> AppError {
    imap_error(Some(session.get_ref().link()), what, e)
}

/// The whole-call bound for an async-imap call on this session (see [`called`]).
pub fn call_limit(session: &ImapSession) -> Duration {
    session.get_ref().link().limits().timeout * 4
}

/// The outcome of an async-imap call run under `tokio::time::timeout(call_limit(..), ..)`, in
/// words (see [`session_error`]). The stream's watchdog bounds each wait; the whole-call bound
/// is for a server that keeps talking without ever finishing. What the call left in the
/// library's unsolicited channel moves to the connection's record.
pub fn called<T>(
    session: &mut ImapSession,
    what: &str,
    r: std::result::Result<async_imap::error::Result<T>, tokio::time::error::Elapsed>,
) -> Result<T> {
    super::unsolicited::drain(session);
    match r {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(session_error(session, what, e)),
        Err(_) => Err(crate::error::stalled(
            &session.get_ref().link().server.clone(),
            what,
            &format!("did not finish within {} s", call_limit(session).as_secs()),
        )),
    }
}

/// LOGOUT, waiting at most [`LOGOUT_WAIT`] (or the account's timeout, when shorter) for the
/// server's goodbye; then the connection is dropped either way.
pub async fn logout(mut session: ImapSession) {
    let t = session.get_ref().link().limits().timeout.min(LOGOUT_WAIT);
    let _ = tokio::time::timeout(t, session.logout()).await;
}

/// LOGOUT for a process about to end: the command is sent and the connection closed without
/// waiting for the server's goodbye, which would only cost a round trip (50 ms and more on a
/// distant server) at the end of every `sync --once`.
pub async fn logout_without_waiting(mut session: ImapSession) {
    use tokio::io::AsyncWriteExt;
    let t = session.get_ref().link().limits().timeout.min(LOGOUT_WAIT);
    let _ = tokio::time::timeout(t, async {
        session.run_command("LOGOUT").await.ok()?;
        session.get_mut().flush().await.ok()?;
        session.get_mut().shutdown().await.ok()
    })
    .await;
}

/// Reads the server greeting; an IMAP server speaks first. A BYE greeting (too many
/// connections, maintenance) is the server's temporary refusal, in its words.
async fn read_greeting(
    client: &mut Client<MailStream>,
    server: &str,
    timeout: Duration,
) -> Result<()> {
    use async_imap::imap_proto::{Response, Status};
    match tokio::time::timeout(timeout, client.read_response()).await {
        Err(_) => Err(AppError::transient(
            format!("the server {server} sent no IMAP greeting"),
            format!("nothing within {} s", timeout.as_secs()),
            "check that this port serves IMAP (and the security setting: implicit TLS on 993)",
        )
        .with_code(Code::ServerNoGreeting)),
        Ok(Err(e)) => {
            let mut err = io_error(server, "reading the IMAP greeting", &e);
            if err.fix.starts_with("check the network") {
                err.fix = "check the port and the security setting".into();
            }
            Err(err)
        }
        Ok(Ok(None)) => Err(AppError::transient(
            format!("the server {server} closed the connection before greeting"),
            "",
            "check the port and the server's connection limits",
        )
        .with_code(Code::ServerNoGreeting)),
        Ok(Ok(Some(r))) => match r.parsed() {
            Response::Data {
                status: Status::Bye,
                outcome,
            } => Err(crate::error::temporarily_unavailable(
                server,
                "greeting",
                &format!(
                    "the server said BYE: {}",
                    crate::mail::sanitize::clean_line(outcome.information.as_deref().unwrap_or(""))
                ),
            )),
            _ => Ok(()),
        },
    }
}

/// TCP + TLS (implicit or STARTTLS) + greeting: an unauthenticated client ready for LOGIN.
/// `on_step` hears "connect" and "tls" as they pass, for step-by-step reports.
pub async fn open_client(
    target: &ImapTarget,
    on_step: impl FnMut(&'static str, &Result<()>),
) -> Result<Client<MailStream>> {
    open_client_with(target, true, on_step).await
}

/// As [`open_client`]; with `greet_tls` false an implicit-TLS connection does not wait for
/// the greeting (the next command goes out with the end of the TLS handshake, and the
/// greeting is read with its answer: one round trip less on a distant server).
async fn open_client_with(
    target: &ImapTarget,
    greet_tls: bool,
    mut on_step: impl FnMut(&'static str, &Result<()>),
) -> Result<Client<MailStream>> {
    let server = &target.server;
    let addr = target.address();
    let limits = target.limits();
    let tcp = tcp_connect(server, limits.timeout).await;
    on_step("connect", &tcp.as_ref().map(|_| ()).map_err(Clone::clone));
    let tcp = tcp?;
    let client = match server.security {
        Security::Tls => {
            let tls = tls_wrap(tcp, server, &target.tls, limits.timeout).await;
            on_step("tls", &tls.as_ref().map(|_| ()).map_err(Clone::clone));
            let mut client =
                Client::new(traced(MailStream::tls(tls?, addr.clone(), limits), target));
            if greet_tls {
                read_greeting(&mut client, &addr, limits.timeout).await?;
            }
            client
        }
        Security::Starttls => {
            let mut client =
                Client::new(traced(MailStream::plain(tcp, addr.clone(), limits), target));
            read_greeting(&mut client, &addr, limits.timeout).await?;
            let tls = match starttls(client, target).await {
                Ok(tcp) => tls_wrap(tcp, server, &target.tls, limits.timeout).await,
                Err(e) => Err(e),
            };
            on_step("tls", &tls.as_ref().map(|_| ()).map_err(Clone::clone));
            Client::new(traced(MailStream::tls(tls?, addr, limits), target))
        }
        Security::None => {
            on_step("tls", &Ok(()));
            let mut client =
                Client::new(traced(MailStream::plain(tcp, addr.clone(), limits), target));
            read_greeting(&mut client, &addr, limits.timeout).await?;
            client
        }
    };
    Ok(client)
}

/// STARTTLS on a greeted plain connection; returns the TCP stream to wrap in TLS.
/// The stream with the account's protocol trace attached (when this process traces).
fn traced(mut stream: MailStream, target: &ImapTarget) -> MailStream {
    let tracer = target.trace_as.as_deref().and_then(|id| {
        let t = crate::mail::trace::Tracer::new(id, "imap")?;
        let how = if stream.is_tls() { "TLS" } else { "plain" };
        let text = format!("connected to {} ({how})", target.address());
        t.note(crate::mail::trace::Dir::Client, &text);
        Some(Box::new(t))
    });
    stream.link_mut().trace = tracer;
    stream
}

/// LOGIN's arguments never reach the trace (its tag and command do); `on` false: the LOGIN
/// exchange is over.
fn hide_login<T: std::ops::DerefMut<Target = async_imap::Connection<MailStream>>>(
    client: &mut T,
    on: bool,
) {
    if let Some(t) = client.get_mut().link_mut().trace.as_mut() {
        match on {
            true => t.hide(crate::mail::trace::Hide::Login),
            false => t.reveal(),
        }
    }
}

async fn starttls(mut client: Client<MailStream>, target: &ImapTarget) -> Result<TcpStream> {
    let res = tokio::time::timeout(
        target.limits().timeout,
        client.run_command_and_check_ok("STARTTLS", None),
    )
    .await;
    match res {
        Err(_) => {
            return Err(AppError::transient(
                format!("STARTTLS with {} timed out", target.address()),
                "",
                "check the security setting",
            )
            .with_code(Code::NetTimeout));
        }
        Ok(Err(e)) => {
            return Err(AppError::needs_user(
                "the server refused STARTTLS",
                crate::error::short_detail(&e.to_string()),
                "use --imap-security tls (port 993), or none only on a trusted network",
            )
            .with_code(Code::TlsNoStarttls));
        }
        Ok(Ok(())) => {}
    }
    client.into_inner().into_plain().ok_or_else(|| {
        AppError::local(
            "internal: STARTTLS on a TLS stream",
            "",
            "report this as a bug",
        )
    })
}

/// LOGIN; a rejected password is an error the user must fix (never retried blindly), while a
/// server that is only temporarily unable (`[UNAVAILABLE]`, `[INUSE]`, `[LIMIT]`, a BYE with a
/// reason) is retried and never blamed on the password.
pub async fn login(
    client: Client<MailStream>,
    user: &str,
    password: &SecretString,
    timeout: Duration,
) -> Result<ImapSession> {
    let server = client.get_ref().link().server.clone();
    let mut client = client;
    hide_login(&mut client, true);
    match tokio::time::timeout(timeout, client.login(user, password.expose_secret())).await {
        Err(_) => Err(crate::error::stalled(
            &server,
            "logging in",
            &format!("stalled: no answer to LOGIN within {} s", timeout.as_secs()),
        )),
        Ok(Ok(mut session)) => {
            hide_login(&mut session, false);
            Ok(session)
        }
        Ok(Err((async_imap::error::Error::No(msg), _))) => Err(login_refused(&server, user, &msg)),
        Ok(Err((e, client))) => Err(imap_error(Some(client.get_ref().link()), "login", e)),
    }
}

/// The capabilities in their wire spelling (`IMAP4rev1`, `AUTH=PLAIN`, `QRESYNC`).
pub fn capability_words(caps: &async_imap::types::Capabilities) -> Vec<String> {
    use async_imap::types::Capability;
    let mut words: Vec<String> = caps
        .iter()
        .map(|c| match c {
            Capability::Imap4rev1 => "IMAP4rev1".to_string(),
            Capability::Auth(a) => format!("AUTH={a}"),
            Capability::Atom(a) => a.to_string(),
        })
        .collect();
    words.sort();
    words
}

/// Connect and log in with `early` commands written right behind LOGIN, in the same flight as
/// the end of the TLS handshake (on implicit TLS the greeting is not waited for either). They
/// must be valid once logged in; their answers follow LOGIN's and are read with
/// `exec::answers` and the tags returned. Also returns the capabilities LOGIN's answer
/// carried, if it did.
pub async fn connect_pipelined(
    target: &ImapTarget,
    credential: &Credential,
    early: &[String],
) -> Result<(ImapSession, Option<Vec<String>>, Vec<super::exec::Tag>)> {
    // An OAuth2 exchange (AUTHENTICATE, maybe a refresh) is not pipelined: nothing goes
    // behind it, and the caller sends the early commands once signed in.
    let password = match credential {
        Credential::Password(pw) => pw,
        Credential::OAuth2(_) => return Ok((connect(target, credential).await?, None, Vec::new())),
    };
    let mut client = open_client_with(target, false, |_, _| {}).await?;
    let mut tags = Vec::new();
    let mut bytes = Vec::new();
    for (i, cmd) in early.iter().enumerate() {
        let tag = format!("M{}", i + 1);
        bytes.extend_from_slice(format!("{tag} {cmd}\r\n").as_bytes());
        tags.push(async_imap::imap_proto::RequestId(tag));
    }
    client.get_mut().send_after_next_command(bytes);
    let server = client.get_ref().link().server.clone();
    let user = &target.user;
    let timeout = target.limits().timeout;
    hide_login(&mut client, true);
    let r = tokio::time::timeout(
        timeout,
        client.login_with_capabilities(user, password.expose_secret()),
    )
    .await;
    match r {
        Err(_) => Err(crate::error::stalled(
            &server,
            "logging in",
            &format!("stalled: no answer to LOGIN within {} s", timeout.as_secs()),
        )),
        Ok(Ok((mut session, caps))) => {
            hide_login(&mut session, false);
            Ok((session, caps.as_ref().map(capability_words), tags))
        }
        Ok(Err((async_imap::error::Error::No(msg), _))) => Err(login_refused(&server, user, &msg)),
        Ok(Err((e, client))) => Err(imap_error(Some(client.get_ref().link()), "login", e)),
    }
}

/// A NO to LOGIN: a temporary condition, or a password the user must fix.
fn login_refused(server: &str, user: &str, msg: &str) -> AppError {
    let text = server_text(msg);
    if crate::error::temporary_code(&text).is_some() {
        return crate::error::temporarily_unavailable(server, "login", &text);
    }
    AppError::needs_user(
        format!("the server rejected the login for {user}"),
        crate::error::short_detail(&text),
        "check the user name and password, then `mailroom account set-password NAME`; providers like Gmail/Outlook need an app password",
    )
    .with_code(Code::AuthRejected)
}

/// Connect and sign in, the usual path for sync and sending.
pub async fn connect(target: &ImapTarget, credential: &Credential) -> Result<ImapSession> {
    let client = open_client(target, |_, _| {}).await?;
    sign_in(client, target, credential).await
}

/// Signs in a greeted client: LOGIN with a password, AUTHENTICATE with an OAuth2 token
/// (`auth.rs`). `on_login` hears how (`LOGIN`, `XOAUTH2`, `OAUTHBEARER`), for `account test`.
pub async fn sign_in_reporting(
    client: Client<MailStream>,
    target: &ImapTarget,
    credential: &Credential,
    on_login: &mut (dyn FnMut(&'static str) + Send),
) -> Result<ImapSession> {
    match credential {
        Credential::Password(pw) => {
            on_login("LOGIN");
            login(client, &target.user, pw, target.limits().timeout).await
        }
        Credential::OAuth2(source) => {
            super::auth::sign_in(client, target, source.as_ref(), on_login).await
        }
    }
}

/// [`sign_in_reporting`] without the report.
pub async fn sign_in(
    client: Client<MailStream>,
    target: &ImapTarget,
    credential: &Credential,
) -> Result<ImapSession> {
    sign_in_reporting(client, target, credential, &mut |_| {}).await
}

/// A failed async-imap call on a client not signed in yet, in words.
pub(crate) fn protocol_error_on(
    client: &Client<MailStream>,
    what: &str,
    e: async_imap::error::Error,
) -> AppError {
    imap_error(Some(client.get_ref().link()), what, e)
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
