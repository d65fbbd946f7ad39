//! One SMTP session driven command by command (lettre's connection API), so the outbox can commit
//! `sending` right before DATA and tell the three outcomes apart: certainly not delivered
//! (retry later, or refused for good) versus truly unknown (the connection died after the
//! message's final dot went out). lettre's transport hides that boundary, hence this module.

use lettre::Address;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::AsyncSmtpConnection;
use lettre::transport::smtp::commands::{Data, Ehlo, Mail, Rcpt};
use lettre::transport::smtp::extension::{ClientId, Extension, MailBodyParameter, MailParameter};
use secrecy::{ExposeSecret, SecretString};

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;

use super::{AuthMode, Sasl, SmtpTarget, classify, tls_params};
use crate::config::Security;
use crate::error::{AppError, Result};
use crate::imap::connect::{MailStream, tcp_connect, tls_wrap};
use crate::mail::trace::{Dir, Tracer};
use crate::secret::{AccessToken, Credential, TokenSource};

impl StepError {
    fn app(&self, target: &SmtpTarget) -> AppError {
        match self {
            StepError::Smtp(e) => classify(target, e),
            StepError::Timeout(a) => a.clone(),
        }
    }
}

impl lettre::transport::smtp::client::AsyncTokioStream for MailStream {
    fn peer_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        self.tcp().peer_addr()
    }
}

/// One SMTP step within the account's timeout (the stream's watchdog bounds each wait; this
/// bounds the step). A step that runs out reads as a lettre timeout would.
async fn step<T>(
    target: &SmtpTarget,
    what: &str,
    fut: impl std::future::Future<Output = std::result::Result<T, lettre::transport::smtp::Error>>,
) -> std::result::Result<T, StepError> {
    match tokio::time::timeout(target.timeout.max(std::time::Duration::from_secs(1)), fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(StepError::Smtp(e)),
        Err(_) => Err(StepError::Timeout(AppError::transient(
            format!(
                "the SMTP server {}:{} stalled: no answer to {what} within {} s",
                target.server.host,
                target.server.port,
                target.timeout.as_secs()
            ),
            "",
            "check the network and the server; `sync.timeout_secs` in config.toml sets how long mailroom waits",
        )
        .with_code(crate::error::Code::NetStalled))),
    }
}

enum StepError {
    Smtp(lettre::transport::smtp::Error),
    Timeout(AppError),
}

/// How one message's SMTP transaction ended when it did not succeed.
#[derive(Debug, Clone)]
pub enum SendError {
    /// Not delivered; trying again later may work (network, 4xx, login problems).
    NotSent(AppError),
    /// Not delivered and the server will not take it as it is (5xx, too big).
    Refused(AppError),
    /// The message may or may not have been delivered.
    Uncertain(AppError),
}

impl SendError {
    pub fn error(&self) -> &AppError {
        match self {
            SendError::NotSent(e) | SendError::Refused(e) | SendError::Uncertain(e) => e,
        }
    }
}

pub struct Session {
    conn: AsyncSmtpConnection,
    target: SmtpTarget,
    /// The server's SIZE limit in bytes, when it announces one.
    pub size_limit: Option<u64>,
    /// The AUTH mechanisms the server offers (upper case), as its EHLO lists them.
    pub offered: Vec<String>,
    /// A STARTTLS upgrade failed: lettre holds no stream any more, so nothing may be written.
    tls_lost: bool,
    /// The account's protocol trace: the session writes each command as it sends it (never
    /// AUTH's credentials) and the answers it reads.
    trace: Option<Tracer>,
    /// Keeps what is sent out of the trace while a secret goes out (the stream's flag).
    secret: Arc<AtomicBool>,
}

/// EHLO, read for the size limit and the AUTH mechanisms (the answer goes to the trace).
async fn ehlo(
    target: &SmtpTarget,
    conn: &mut AsyncSmtpConnection,
    trace: Option<&Tracer>,
) -> std::result::Result<(Option<u64>, Vec<String>), StepError> {
    note(trace, Dir::Client, "EHLO");
    let r = step(target, "EHLO", conn.command(Ehlo::new(ClientId::default()))).await?;
    for l in r.message() {
        note(trace, Dir::Server, &format!("{} {l}", r.code()));
    }
    Ok((parse_size(r.message()), parse_auth(r.message())))
}

/// What the server answered a step, for the trace.
fn answer_words(
    r: &std::result::Result<lettre::transport::smtp::response::Response, StepError>,
    target: &SmtpTarget,
) -> String {
    match r {
        Ok(resp) => format!(
            "{} {}",
            resp.code(),
            resp.message().collect::<Vec<_>>().join(" ")
        ),
        Err(e) => format!("AUTH failed: {}", e.app(target).summary),
    }
}

fn note(trace: Option<&Tracer>, dir: Dir, text: &str) {
    if let Some(t) = trace {
        t.note(dir, text);
    }
}

/// Reads the mechanisms of `AUTH m1 m2` (and the old `AUTH=m1 m2`) lines of an EHLO response,
/// upper case, each once.
pub fn parse_auth<'a>(lines: impl Iterator<Item = &'a str>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for line in lines {
        let line = line.trim();
        let rest = match line.get(..5) {
            Some(k) if k.eq_ignore_ascii_case("AUTH ") || k.eq_ignore_ascii_case("AUTH=") => {
                &line[5..]
            }
            _ => continue,
        };
        for m in rest.split_whitespace() {
            let m = m.to_ascii_uppercase();
            if !out.contains(&m) {
                out.push(m);
            }
        }
    }
    out
}

/// Why no mechanism could be chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NoMechanism {
    /// The server offers no AUTH at all.
    NoAuth,
    /// It offers AUTH, but not what this mode may use (named, for the message).
    Unsupported(&'static str),
}

/// The mechanism to sign in with: None for no login; an error when the server offers nothing
/// the mode may use. The mode comes from `--smtp-auth` and the account's auth kind.
fn choose(mode: AuthMode, offered: &[String]) -> std::result::Result<Option<Sasl>, NoMechanism> {
    if mode == AuthMode::None {
        return Ok(None);
    }
    if let Some(m) = mode
        .mechanisms()
        .iter()
        .find(|m| offered.iter().any(|o| o == m.name()))
    {
        return Ok(Some(*m));
    }
    if offered.is_empty() {
        return Err(NoMechanism::NoAuth);
    }
    Err(NoMechanism::Unsupported(match mode {
        AuthMode::Plain => "PLAIN",
        AuthMode::Login => "LOGIN",
        AuthMode::Xoauth2 => "XOAUTH2",
        AuthMode::Oauthbearer => "OAUTHBEARER",
        AuthMode::OAuth2 => "XOAUTH2 or OAUTHBEARER",
        _ => "PLAIN or LOGIN",
    }))
}

/// The server offers AUTH, but not the mechanism wanted: name what it offers and the choice
/// that works (a mechanism of the same kind it has, or what its kind of login needs).
fn no_such_mechanism(t: &SmtpTarget, want: &str, offered: &[String]) -> AppError {
    let at = format!("{}:{}", t.server.host, t.server.port);
    let has = |m: &str| offered.iter().any(|o| o == m);
    let fix = if t.auth.is_oauth() {
        if has("XOAUTH2") {
            format!("use `{} --smtp-auth xoauth2`", t.edit)
        } else if has("OAUTHBEARER") {
            format!("use `{} --smtp-auth oauthbearer`", t.edit)
        } else {
            "this server takes no OAuth2 token (only passwords): send through a server that does, e.g. the system SMTP profile (`mailroom system-smtp set`, then `--use-system-smtp true`)".to_string()
        }
    } else if has("PLAIN") {
        format!("use `{} --smtp-auth plain`", t.edit)
    } else if has("LOGIN") {
        format!("use `{} --smtp-auth login`", t.edit)
    } else if has("XOAUTH2") || has("OAUTHBEARER") {
        "this server takes only OAuth2 sign-in (XOAUTH2/OAUTHBEARER): add the account with `--auth oauth2` (`mailroom account add NAME --auth oauth2 …`), or use another SMTP server, e.g. the system profile (`mailroom system-smtp set`)".to_string()
    } else {
        "check the SMTP port (submission: 587 starttls, 465 tls) or ask the provider which login it takes".to_string()
    };
    AppError::needs_user(
        format!("the SMTP server {at} does not offer AUTH {want}"),
        format!("it offers AUTH {}", offered.join(" ")),
        fix,
    )
    .with_code(crate::error::Code::AuthUnsupported)
}

/// Reads `SIZE n` from an EHLO response's lines (0 or absent = no announced limit).
pub fn parse_size<'a>(lines: impl Iterator<Item = &'a str>) -> Option<u64> {
    lines
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            match w.next() {
                Some(k) if k.eq_ignore_ascii_case("SIZE") => w.next().and_then(|n| n.parse().ok()),
                _ => None,
            }
        })
        .find(|n| *n > 0)
}

/// A command line that holds a secret: sent as it is, never shown.
struct SecretLine(SecretString);

impl std::fmt::Display for SecretLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}\r\n", self.0.expose_secret())
    }
}

/// Microsoft 365 refuses every token while SMTP AUTH is off for the mailbox or tenant
/// (`535 5.7.139 … SmtpClientAuthentication is disabled for the Tenant`): no new token helps.
fn smtp_auth_disabled(t: &SmtpTarget, words: &str) -> Option<AppError> {
    let off = words.contains("SmtpClientAuthentication") || words.contains("5.7.139");
    off.then(|| {
        AppError::needs_user(
            format!(
                "the SMTP server {}:{} has SMTP AUTH switched off for this mailbox or tenant",
                t.server.host, t.server.port
            ),
            crate::error::short_detail(words),
            format!(
                "an Exchange admin enables Authenticated SMTP for the mailbox (Set-CASMailbox -Identity {} -SmtpClientAuthenticationDisabled $false); or send through another server: `{} --use-system-smtp true`",
                t.user, t.edit
            ),
        )
        .with_code(crate::error::Code::AuthSmtpDisabled)
    })
}

impl Session {
    /// Connects (TLS as configured), learns the size limit and signs in as the target says
    /// (a credential is needed unless the target's auth is `none`).
    pub async fn open(target: &SmtpTarget, credential: Option<&Credential>) -> Result<Session> {
        let mut session = Session::connect(target).await?;
        if let Err(e) = session.authenticate(credential).await {
            session.abort().await;
            return Err(e);
        }
        Ok(session)
    }

    /// Connects, greets, starts TLS as configured and reads the server's EHLO (its size limit
    /// and AUTH mechanisms); nothing is signed in yet.
    pub async fn connect(target: &SmtpTarget) -> Result<Session> {
        let hello = ClientId::default();
        let err = |e: lettre::transport::smtp::Error| classify(target, &e);
        let trace = target
            .trace_as
            .as_deref()
            .and_then(|id| Tracer::new(id, "smtp"));
        // Our own TCP connect: TCP_NODELAY (lettre leaves Nagle on, which stalls every command
        // after the first message on a reused connection by ~40 ms) and the same clear
        // connect errors as IMAP.
        let tcp = tcp_connect(&target.server, target.timeout).await?;
        let addr = crate::imap::connect::address(&target.server);
        let limits = crate::imap::connect::Limits {
            timeout: target.timeout.max(std::time::Duration::from_secs(1)),
            ..Default::default()
        };
        let stream = match target.server.security {
            Security::Tls => MailStream::tls(
                tls_wrap(tcp, &target.server, &target.tls, target.timeout).await?,
                addr,
                limits,
            ),
            _ => MailStream::plain(tcp, addr, limits),
        };
        let secret = stream.link().secret_flag();
        let mut conn = tokio::time::timeout(
            target.timeout,
            AsyncSmtpConnection::connect_with_transport(Box::new(stream), &hello),
        )
        .await
        .map_err(|_| {
            AppError::transient(
                format!("the SMTP server {} sent no greeting", target.server.host),
                "",
                "check that this port serves SMTP and the security setting (starttls for 587, tls for 465)",
            )
            .with_code(crate::error::Code::ServerNoGreeting)
        })?
        .map_err(err)?;
        note(
            trace.as_ref(),
            Dir::Client,
            &format!(
                "connected to {}:{} ({})",
                target.server.host,
                target.server.port,
                target.server.security.as_str()
            ),
        );
        if target.server.security == Security::Starttls {
            if !conn.can_starttls() {
                conn.abort().await;
                return Err(AppError::needs_user(
                    format!(
                        "the SMTP server {} does not offer STARTTLS",
                        target.server.host
                    ),
                    "",
                    "use --smtp-security tls (port 465), or none only on a trusted network",
                )
                .with_code(crate::error::Code::TlsNoStarttls));
            }
            let params = tls_params(target)?;
            note(trace.as_ref(), Dir::Client, "STARTTLS");
            // A failed upgrade leaves lettre without a stream: drop it, never write to it.
            step(target, "STARTTLS", conn.starttls(params, &hello))
                .await
                .map_err(|e| e.app(target))?;
        }
        // lettre's ServerInfo drops SIZE and the mechanisms it does not know; ask again.
        let (size_limit, offered) = match ehlo(target, &mut conn, trace.as_ref()).await {
            Ok(v) => v,
            Err(e) => {
                conn.abort().await;
                return Err(e.app(target));
            }
        };
        Ok(Session {
            conn,
            target: target.clone(),
            size_limit,
            offered,
            tls_lost: false,
            trace,
            secret,
        })
    }

    /// Signs in as the target's auth mode says; returns what it did, in words. With `none`
    /// nothing is sent (a relay takes mail without a login). A password signs in through
    /// lettre; an OAuth2 token with a command of our own (lettre has no OAUTHBEARER and reads
    /// an XOAUTH2 error challenge as its own failure).
    pub async fn authenticate(&mut self, credential: Option<&Credential>) -> Result<String> {
        let target = &self.target;
        let mechanism = match choose(target.auth, &self.offered) {
            Ok(None) => return Ok("no login (smtp_auth = none)".into()),
            Ok(Some(m)) => m,
            Err(nothing) => return Err(self.no_mechanism(nothing).await),
        };
        let missing = || {
            AppError::needs_user(
                format!("no password for the SMTP login of {}", target.user),
                "",
                format!("set one (`{} --password-stdin`)", target.edit),
            )
            .with_code(crate::error::Code::SecretMissing)
        };
        let password = match (mechanism, credential) {
            (Sasl::Xoauth2 | Sasl::Oauthbearer, Some(Credential::OAuth2(source))) => {
                let source = source.clone();
                return self.authenticate_token(mechanism, source.as_ref()).await;
            }
            (Sasl::Plain | Sasl::Login, Some(Credential::Password(pw))) => pw,
            (Sasl::Plain | Sasl::Login, _) => return Err(missing()),
            (_, _) => {
                return Err(AppError::needs_user(
                    format!(
                        "AUTH {} needs an OAuth2 token, but {} signs in with a password",
                        mechanism.name(),
                        target.user
                    ),
                    "",
                    format!("use `{} --smtp-auth plain` or `login`", target.edit),
                )
                .with_code(crate::error::Code::AuthUnsupported));
            }
        };
        let creds = Credentials::new(target.user.clone(), password.expose_secret().to_string());
        let lettre_mech = match mechanism {
            Sasl::Login => Mechanism::Login,
            _ => Mechanism::Plain,
        };
        // The mechanism is traced, its credentials never are.
        let trace = self.trace.as_ref();
        note(
            trace,
            Dir::Client,
            &format!("AUTH {lettre_mech} <redacted>"),
        );
        let secret = self.secret.clone();
        secret.store(true, Ordering::SeqCst);
        let r = step(target, "AUTH", self.conn.auth(&[lettre_mech], &creds)).await;
        secret.store(false, Ordering::SeqCst);
        note(trace, Dir::Server, &answer_words(&r, target));
        r.map_err(|e| e.app(target))?;
        Ok(format!("authenticated as {} ({lettre_mech})", target.user))
    }

    /// AUTH with an OAuth2 token; a refused token is asked for once more (refreshed) and tried
    /// again on this connection. A second refusal is the user's to fix.
    async fn authenticate_token(
        &mut self,
        mechanism: Sasl,
        source: &dyn TokenSource,
    ) -> Result<String> {
        let token = source.current().await?;
        let words = match self.send_token(mechanism, &token).await? {
            None => return Ok(self.signed_in_words(mechanism)),
            Some(words) => words,
        };
        if let Some(e) = smtp_auth_disabled(&self.target, &words) {
            return Err(e);
        }
        tracing::debug!(
            "SMTP {}:{} refused the token ({words}); asking for a fresh one",
            self.target.server.host,
            self.target.server.port
        );
        let fresh = source.after_rejection(&token).await?;
        let words = match self.send_token(mechanism, &fresh).await? {
            None => return Ok(self.signed_in_words(mechanism)),
            Some(words) => words,
        };
        if let Some(e) = smtp_auth_disabled(&self.target, &words) {
            return Err(e);
        }
        let at = format!("{}:{}", self.target.server.host, self.target.server.port);
        Err(source.refused(&at, &words).await)
    }

    fn signed_in_words(&self, mechanism: Sasl) -> String {
        format!(
            "authenticated as {} ({}, OAuth2 token)",
            self.target.user,
            mechanism.name()
        )
    }

    /// One AUTH exchange with `token`: Ok(None) signed in, Ok(Some(words)) refused (the
    /// server's reply, and the error challenge's status when it sent one).
    async fn send_token(&mut self, mechanism: Sasl, token: &AccessToken) -> Result<Option<String>> {
        let target = self.target.clone();
        let mech = match mechanism {
            Sasl::Xoauth2 => crate::oauth::sasl::Mechanism::Xoauth2,
            _ => crate::oauth::sasl::Mechanism::Oauthbearer,
        };
        let payload = mech.payload(
            &target.user,
            &token.token,
            &target.server.host,
            target.server.port,
        );
        let line = SecretLine(SecretString::from(format!(
            "AUTH {} {}",
            mech.as_str(),
            B64.encode(payload.expose_secret().as_bytes())
        )));
        note(
            self.trace.as_ref(),
            Dir::Client,
            &format!("AUTH {} <redacted>", mech.as_str()),
        );
        let secret = self.secret.clone();
        secret.store(true, Ordering::SeqCst);
        let first = step(&target, "AUTH", self.conn.command(line)).await;
        let mut challenge = None;
        let answer = match first {
            Ok(r) if r.has_code(334) => {
                challenge = r.message().next().and_then(|c| B64.decode(c.trim()).ok());
                let end = SecretLine(SecretString::from(B64.encode(mech.abort())));
                step(&target, "AUTH", self.conn.command(end)).await
            }
            other => other,
        };
        secret.store(false, Ordering::SeqCst);
        let words = match &answer {
            Ok(r) => format!("{} {}", r.code(), r.message().collect::<Vec<_>>().join(" ")),
            Err(e) => format!("AUTH failed: {}", e.app(&target).summary),
        };
        note(self.trace.as_ref(), Dir::Server, &words);
        match answer {
            Ok(r) if r.has_code(235) => Ok(None),
            Ok(r) => Ok(Some(format!(
                "{} {}",
                r.code(),
                r.message().collect::<Vec<_>>().join(" ")
            ))),
            Err(StepError::Smtp(e))
                if e.status().is_some_and(|c| c.to_string().starts_with('5')) =>
            {
                let status = challenge
                    .as_deref()
                    .and_then(crate::oauth::sasl::challenge_status);
                let said = crate::mail::sanitize::clean_line(&e.to_string());
                Ok(Some(match status {
                    Some(s) => format!("{said} (token status: {s})"),
                    None => said,
                }))
            }
            Err(e) => Err(e.app(&target)),
        }
    }

    /// The server offers no mechanism the chosen auth can use: say which, and what to change.
    /// A server that offers AUTH only after STARTTLS while security is `none` is told apart by
    /// asking it (STARTTLS on this connection, which is dropped afterwards; nothing is sent).
    async fn no_mechanism(&mut self, nothing: NoMechanism) -> AppError {
        if let NoMechanism::Unsupported(want) = nothing {
            return no_such_mechanism(&self.target, want, &self.offered);
        }
        let at = format!("{}:{}", self.target.server.host, self.target.server.port);
        let edit = self.target.edit.clone();
        if self.target.server.security == Security::None && self.conn.can_starttls() {
            let why = "with security none mailroom does not start TLS, so it cannot log in";
            let (summary, detail) = match self.auth_after_starttls().await {
                Some(m) if !m.is_empty() => (
                    format!(
                        "the SMTP server {at} offers authentication only after STARTTLS, but this account's SMTP security is none"
                    ),
                    format!(
                        "its EHLO offers STARTTLS and no AUTH; after STARTTLS it offers AUTH {}; {why}",
                        m.join(" ")
                    ),
                ),
                _ => (
                    format!(
                        "the SMTP server {at} offers no authentication without TLS (it offers STARTTLS), and this account's SMTP security is none"
                    ),
                    format!("its EHLO offers STARTTLS and no AUTH; {why}"),
                ),
            };
            return AppError::needs_user(
                summary,
                detail,
                format!(
                    "use `{edit} --smtp-security starttls`; or, if it is a relay that takes mail from this host without a login, `{edit} --smtp-auth none`"
                ),
            )
            .with_code(crate::error::Code::AuthAfterStarttls);
        }
        AppError::needs_user(
            format!("the SMTP server {at} offers no authentication"),
            "its EHLO lists no AUTH",
            format!(
                "if it is a relay that takes mail from this host without a login: `{edit} --smtp-auth none`; otherwise check the SMTP port and security (submission: 587 starttls, 465 tls)"
            ),
        )
        .with_code(crate::error::Code::AuthUnsupported)
    }

    /// STARTTLS and EHLO again, for the mechanisms the server offers then (None if TLS fails).
    async fn auth_after_starttls(&mut self) -> Option<Vec<String>> {
        let params = tls_params(&self.target).ok()?;
        let hello = ClientId::default();
        if step(&self.target, "STARTTLS", self.conn.starttls(params, &hello))
            .await
            .is_err()
        {
            self.tls_lost = true;
            return None;
        }
        ehlo(&self.target, &mut self.conn, self.trace.as_ref())
            .await
            .ok()
            .map(|(_, offered)| offered)
    }

    fn sort(&self, e: &StepError) -> SendError {
        match e {
            StepError::Smtp(e) if e.is_permanent() => SendError::Refused(classify(&self.target, e)),
            other => SendError::NotSent(other.app(&self.target)),
        }
    }

    /// One message. `before_data` runs after the server accepted sender and recipients and
    /// before DATA: the caller commits `sending` there. Returns the server's final reply.
    pub async fn send(
        &mut self,
        from: &str,
        rcpts: &[String],
        raw: &[u8],
        before_data: impl FnOnce() -> Result<()>,
    ) -> std::result::Result<String, SendError> {
        if let Some(limit) = self.size_limit
            && raw.len() as u64 > limit
        {
            return Err(SendError::Refused(AppError::needs_user(
                    format!(
                        "the message is {:.1} MB but the SMTP server accepts at most {:.1} MB",
                        raw.len() as f64 / 1048576.0,
                        limit as f64 / 1048576.0
                    ),
                    format!("{} bytes > SIZE {limit}", raw.len()),
                    "remove or shrink attachments (or share a link instead), then `mailroom outbox retry ID`, or cancel it",
                )
                .with_code(crate::error::Code::SmtpTooLarge)));
        }
        let parse = |what: &str, a: &str| {
            a.parse::<Address>().map_err(|e| {
                SendError::Refused(AppError::usage(
                    format!("{what} {a:?} is not a valid address ({e})"),
                    "fix the address and queue the message again",
                ))
            })
        };
        let from = parse("sender", from)?;
        let mut params = vec![];
        if self.size_limit.is_some() {
            params.push(MailParameter::Size(raw.len()));
        }
        if !raw.is_ascii() {
            if !self
                .conn
                .server_info()
                .supports_feature(Extension::EightBitMime)
            {
                return Err(SendError::Refused(AppError::needs_user(
                    "the message has 8-bit content but the server lacks 8BITMIME",
                    "",
                    "report this as a bug: mailroom encodes bodies as 7-bit",
                )));
            }
            params.push(MailParameter::Body(MailBodyParameter::EightBitMime));
        }
        note(
            self.trace.as_ref(),
            Dir::Client,
            &format!("MAIL FROM:<{from}>"),
        );
        let mail = Mail::new(Some(from), params);
        if let Err(e) = step(&self.target, "MAIL FROM", self.conn.command(mail)).await {
            let out = self.sort(&e);
            self.abort().await;
            return Err(out);
        }
        for r in rcpts {
            let addr = parse("recipient", r)?;
            note(
                self.trace.as_ref(),
                Dir::Client,
                &format!("RCPT TO:<{addr}>"),
            );
            let rcpt = Rcpt::new(addr, vec![]);
            if let Err(e) = step(&self.target, "RCPT TO", self.conn.command(rcpt)).await {
                let mut out = self.sort(&e);
                if let SendError::Refused(a) | SendError::NotSent(a) = &mut out {
                    a.summary = format!("{} for recipient {r}", a.summary);
                }
                self.abort().await;
                return Err(out);
            }
        }
        if let Err(e) = before_data() {
            self.abort().await;
            return Err(SendError::NotSent(e));
        }
        if let Err(e) = step(&self.target, "DATA", self.conn.command(Data)).await {
            let out = self.sort(&e);
            self.abort().await;
            return Err(out);
        }
        let data = format!("DATA, then the message ({} bytes, elided)", raw.len());
        note(self.trace.as_ref(), Dir::Client, &data);
        match self.conn.message(raw).await {
            Ok(resp) => {
                let text = resp.message().collect::<Vec<_>>().join(" ");
                note(
                    self.trace.as_ref(),
                    Dir::Server,
                    &format!("{} {text}", resp.code()),
                );
                Ok(text)
            }
            Err(e) => {
                let out = if e.status().is_some() {
                    // The server answered the final dot with a refusal: certainly not taken.
                    self.sort(&StepError::Smtp(e))
                } else {
                    let app = classify(&self.target, &e);
                    let detail = match app.detail.is_empty() {
                        true => app.summary,
                        false => app.detail,
                    };
                    SendError::Uncertain(AppError::transient(
                        "the connection broke while the SMTP server was taking the message",
                        detail,
                        "it may have been delivered: check with the recipient, then `mailroom outbox resend ID` or `mailroom outbox drop ID`",
                    )
                    .with_code(crate::error::Code::OutboxUncertain))
                };
                self.abort().await;
                Err(out)
            }
        }
    }

    pub fn is_broken(&self) -> bool {
        self.tls_lost || self.conn.has_broken()
    }

    /// Ends the connection at once (QUIT without waiting), unless it has no stream left.
    async fn abort(&mut self) {
        if !self.tls_lost {
            self.conn.abort().await;
        }
    }

    /// QUIT, waiting at most a few seconds for the goodbye.
    pub async fn quit(mut self) {
        if self.tls_lost {
            return;
        }
        let wait = self.target.timeout.min(crate::imap::connect::LOGOUT_WAIT);
        let _ = tokio::time::timeout(wait, self.conn.quit()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

    #[derive(Clone, Copy)]
    enum AfterData {
        Accept,
        Refuse,
        Hangup,
    }

    /// A scripted SMTP server for the transaction edges real servers rarely show on demand
    /// (hang-up after the final dot); the happy paths are covered end to end against Postfix.
    async fn fake(after: AfterData) -> u16 {
        fake_with(
            after,
            b"250-fake\r\n250-SIZE 1000\r\n250 AUTH PLAIN LOGIN\r\n",
        )
        .await
    }

    /// The fake with its own EHLO answer; AUTH is refused (503) when that answer offers none.
    async fn fake_with(after: AfterData, ehlo: &'static [u8]) -> u16 {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        tokio::spawn(async move {
            let (s, _) = l.accept().await.unwrap();
            let (r, mut w) = s.into_split();
            let mut r = BufReader::new(r);
            w.write_all(b"220 fake ESMTP\r\n").await.unwrap();
            let mut line = String::new();
            loop {
                line.clear();
                if r.read_line(&mut line).await.unwrap_or(0) == 0 {
                    return;
                }
                let up = line.to_ascii_uppercase();
                let reply: &[u8] = if up.starts_with("EHLO") {
                    ehlo
                } else if up.starts_with("AUTH") {
                    if !ehlo.windows(4).any(|w| w == b"AUTH") {
                        b"503 5.5.1 Error: authentication not enabled\r\n"
                    } else {
                        b"235 ok\r\n"
                    }
                } else if up.starts_with("STARTTLS") {
                    // Says yes, then speaks no TLS: the handshake fails.
                    b"220 go ahead\r\n"
                } else if up.starts_with("MAIL") {
                    b"250 ok\r\n"
                } else if up.starts_with("RCPT") {
                    if up.contains("REFUSED@") {
                        b"550 no such user\r\n"
                    } else {
                        b"250 ok\r\n"
                    }
                } else if up.starts_with("DATA") {
                    w.write_all(b"354 go\r\n").await.unwrap();
                    loop {
                        line.clear();
                        if r.read_line(&mut line).await.unwrap_or(0) == 0 || line == ".\r\n" {
                            break;
                        }
                    }
                    match after {
                        AfterData::Accept => b"250 queued\r\n",
                        AfterData::Refuse => b"554 rejected by policy\r\n",
                        AfterData::Hangup => return,
                    }
                } else if up.starts_with("QUIT") {
                    let _ = w.write_all(b"221 bye\r\n").await;
                    return;
                } else {
                    b"250 ok\r\n"
                };
                w.write_all(reply).await.unwrap();
            }
        });
        port
    }

    fn target(port: u16) -> SmtpTarget {
        SmtpTarget {
            server: crate::config::Server {
                host: "127.0.0.1".into(),
                port,
                security: Security::None,
            },
            tls: Default::default(),
            user: "u".into(),
            timeout: std::time::Duration::from_secs(5),
            auth: AuthMode::Password,
            edit: "mailroom account edit t".into(),
            trace_as: None,
        }
    }

    async fn run(
        after: AfterData,
        rcpt: &str,
        size: usize,
    ) -> (std::result::Result<String, SendError>, bool) {
        let port = fake(after).await;
        let pw = SecretString::from("pw".to_string());
        let mut s = Session::open(&target(port), Some(&Credential::Password(pw.clone())))
            .await
            .unwrap();
        assert_eq!(s.size_limit, Some(1000));
        let marked = Arc::new(AtomicBool::new(false));
        let m = marked.clone();
        let raw = vec![b'a'; size];
        let res = s
            .send("a@example.test", &[rcpt.to_string()], &raw, move || {
                m.store(true, Ordering::SeqCst);
                Ok(())
            })
            .await;
        (res, marked.load(Ordering::SeqCst))
    }

    #[tokio::test]
    async fn outcomes_are_told_apart_around_data() {
        let (r, marked) = run(AfterData::Accept, "b@example.test", 100).await;
        assert!(r.is_ok() && marked);
        // Too big for SIZE: refused before anything is marked.
        let (r, marked) = run(AfterData::Accept, "b@example.test", 2000).await;
        assert!(
            matches!(&r, Err(SendError::Refused(e)) if e.summary.contains("at most")),
            "{r:?}"
        );
        assert!(!marked);
        // A refused recipient: certainly not sent, never marked sending.
        let (r, marked) = run(AfterData::Accept, "refused@example.test", 100).await;
        assert!(
            matches!(&r, Err(SendError::Refused(e)) if e.summary.contains("refused@example.test")),
            "{r:?}"
        );
        assert!(!marked);
        // The server answers the final dot with 554: certainly not taken.
        let (r, marked) = run(AfterData::Refuse, "b@example.test", 100).await;
        assert!(matches!(r, Err(SendError::Refused(_))), "{r:?}");
        assert!(marked);
        // The connection dies after the dot: nobody knows — uncertain, never retried blindly.
        let (r, marked) = run(AfterData::Hangup, "b@example.test", 100).await;
        assert!(
            matches!(&r, Err(SendError::Uncertain(e)) if e.fix.contains("resend")),
            "{r:?}"
        );
        assert!(marked);
    }

    fn target_with(port: u16, auth: AuthMode) -> SmtpTarget {
        SmtpTarget {
            auth,
            ..target(port)
        }
    }

    #[tokio::test]
    async fn a_relay_without_auth_takes_mail_with_smtp_auth_none_and_a_login_says_what_to_do() {
        const RELAY: &[u8] = b"250-fake\r\n250 SIZE 1000\r\n";
        let port = fake_with(AfterData::Accept, RELAY).await;
        let mut s = Session::open(&target_with(port, AuthMode::None), None)
            .await
            .unwrap();
        let sent = s
            .send("a@example.test", &["b@example.test".into()], b"hi", || {
                Ok(())
            })
            .await;
        assert!(sent.is_ok(), "{sent:?}");
        // A password login against it: the words say no AUTH is offered and name `none`.
        let port = fake_with(AfterData::Accept, RELAY).await;
        let pw = SecretString::from("pw".to_string());
        let e = Session::open(
            &target_with(port, AuthMode::Password),
            Some(&Credential::Password(pw.clone())),
        )
        .await
        .err()
        .unwrap();
        assert!(e.summary.contains("offers no authentication"), "{e}");
        assert!(
            e.fix.contains("`mailroom account edit t --smtp-auth none`"),
            "{e}"
        );
        assert!(!e.to_string().contains("internal client error"), "{e}");
    }

    #[tokio::test]
    async fn auth_only_after_starttls_with_security_none_names_starttls() {
        // STARTTLS offered, no AUTH before it; its TLS never comes up here, so the answer
        // after STARTTLS stays unknown and the words say "without TLS".
        let ehlo: &[u8] = b"250-fake\r\n250-STARTTLS\r\n250 SIZE 1000\r\n";
        let port = fake_with(AfterData::Accept, ehlo).await;
        let pw = SecretString::from("pw".to_string());
        let e = Session::open(
            &target_with(port, AuthMode::Password),
            Some(&Credential::Password(pw.clone())),
        )
        .await
        .err()
        .unwrap();
        assert!(
            e.summary.contains("no authentication without TLS")
                && e.summary.contains("security is none"),
            "{e}"
        );
        assert!(
            e.fix
                .starts_with("use `mailroom account edit t --smtp-security starttls`"),
            "{e}"
        );
        assert_eq!(e.kind, crate::error::Kind::NeedsUser);
    }

    #[tokio::test]
    async fn a_mechanism_the_server_lacks_names_the_one_it_has() {
        let ehlo: &[u8] = b"250-fake\r\n250 AUTH LOGIN\r\n";
        let port = fake_with(AfterData::Accept, ehlo).await;
        let pw = SecretString::from("pw".to_string());
        let e = Session::open(
            &target_with(port, AuthMode::Plain),
            Some(&Credential::Password(pw.clone())),
        )
        .await
        .err()
        .unwrap();
        assert!(e.summary.contains("does not offer AUTH PLAIN"), "{e}");
        assert_eq!(e.detail, "it offers AUTH LOGIN");
        assert!(e.fix.contains("--smtp-auth login"), "{e}");
        // The default takes LOGIN when PLAIN is missing.
        let port = fake_with(AfterData::Accept, ehlo).await;
        let mut s = Session::connect(&target(port)).await.unwrap();
        let done = s
            .authenticate(Some(&Credential::Password(pw.clone())))
            .await
            .unwrap();
        assert_eq!(done, "authenticated as u (LOGIN)");
    }

    /// A token source that hands out `tok-1`, then `tok-2`, …, counting what it was asked.
    struct Tokens {
        handed: std::sync::atomic::AtomicI64,
        refused: AtomicBool,
    }

    impl TokenSource for Tokens {
        fn current(&self) -> futures::future::BoxFuture<'_, Result<AccessToken>> {
            Box::pin(async move {
                let g = self.handed.fetch_add(1, Ordering::SeqCst) + 1;
                Ok(AccessToken {
                    token: SecretString::from(format!("tok-{g}")),
                    generation: g,
                })
            })
        }
        fn after_rejection<'a>(
            &'a self,
            _used: &'a AccessToken,
        ) -> futures::future::BoxFuture<'a, Result<AccessToken>> {
            self.current()
        }
        fn refused<'a>(
            &'a self,
            server: &'a str,
            words: &'a str,
        ) -> futures::future::BoxFuture<'a, AppError> {
            self.refused.store(true, Ordering::SeqCst);
            Box::pin(async move {
                AppError::needs_user(format!("{server} refused"), words.to_string(), "login")
            })
        }
    }

    /// An SMTP server that offers the OAuth2 mechanisms and answers each AUTH line with the
    /// next of `answers` (a 334 challenge is answered by the client's next line).
    async fn fake_oauth(answers: Vec<&'static [u8]>) -> u16 {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        tokio::spawn(async move {
            let (s, _) = l.accept().await.unwrap();
            let (r, mut w) = s.into_split();
            let mut r = BufReader::new(r);
            w.write_all(b"220 fake ESMTP\r\n").await.unwrap();
            let mut answers = answers.into_iter();
            let mut line = String::new();
            loop {
                line.clear();
                if r.read_line(&mut line).await.unwrap_or(0) == 0 {
                    return;
                }
                let reply: &[u8] = if line.to_ascii_uppercase().starts_with("EHLO") {
                    b"250-fake\r\n250 AUTH XOAUTH2 OAUTHBEARER\r\n"
                } else if line.starts_with("QUIT") {
                    return;
                } else {
                    answers.next().unwrap_or(b"503 no more\r\n")
                };
                w.write_all(reply).await.unwrap();
            }
        });
        port
    }

    fn oauth_source() -> (Arc<Tokens>, Credential) {
        let t = Arc::new(Tokens {
            handed: Default::default(),
            refused: AtomicBool::new(false),
        });
        (t.clone(), Credential::OAuth2(t))
    }

    #[tokio::test]
    async fn a_refused_token_is_refreshed_once_and_microsoft_s_smtp_auth_off_is_named() {
        // The first token gets the error challenge and 535; the fresh one is taken.
        let port = fake_oauth(vec![
            b"334 eyJzdGF0dXMiOiJpbnZhbGlkX3Rva2VuIn0=\r\n",
            b"535 5.7.8 Authentication failed\r\n",
            b"235 2.7.0 ok\r\n",
        ])
        .await;
        let (t, cred) = oauth_source();
        let mut s = Session::connect(&target_with(port, AuthMode::OAuth2))
            .await
            .unwrap();
        let done = s.authenticate(Some(&cred)).await.unwrap();
        assert_eq!(done, "authenticated as u (XOAUTH2, OAuth2 token)");
        assert_eq!(t.handed.load(Ordering::SeqCst), 2, "one refresh");
        // Refused again: the user must act, once.
        let port = fake_oauth(vec![b"535 5.7.3 nope\r\n", b"535 5.7.3 nope\r\n"]).await;
        let (t, cred) = oauth_source();
        let mut s = Session::connect(&target_with(port, AuthMode::Oauthbearer))
            .await
            .unwrap();
        let e = s.authenticate(Some(&cred)).await.unwrap_err();
        assert!(
            e.detail.contains("5.7.3") && t.refused.load(Ordering::SeqCst),
            "{e}"
        );
        // SMTP AUTH off for the tenant: no new token helps, and the fix says what does.
        let port = fake_oauth(vec![b"535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Tenant.\r\n"]).await;
        let (t, cred) = oauth_source();
        let mut s = Session::connect(&target_with(port, AuthMode::OAuth2))
            .await
            .unwrap();
        let e = s.authenticate(Some(&cred)).await.unwrap_err();
        assert_eq!(e.code, crate::error::Code::AuthSmtpDisabled, "{e}");
        assert!(e.fix.contains("SmtpClientAuthenticationDisabled"), "{e}");
        assert_eq!(t.handed.load(Ordering::SeqCst), 1, "no refresh for it");
        // A password account's mechanisms refuse a token server with the way out.
        let e = no_such_mechanism(
            &target_with(1, AuthMode::OAuth2),
            "XOAUTH2 or OAUTHBEARER",
            &["PLAIN".to_string()],
        );
        assert!(e.fix.contains("system SMTP profile"), "{e}");
    }

    #[test]
    fn mechanisms_are_read_and_chosen_plain_first() {
        let lines = ["fake", "AUTH=LOGIN", "AUTH plain LOGIN xoauth2", "SIZE 10"];
        let offered = parse_auth(lines.into_iter());
        assert_eq!(offered, ["LOGIN", "PLAIN", "XOAUTH2"]);
        assert_eq!(choose(AuthMode::Password, &offered), Ok(Some(Sasl::Plain)));
        assert_eq!(choose(AuthMode::Login, &offered), Ok(Some(Sasl::Login)));
        assert_eq!(choose(AuthMode::None, &offered), Ok(None));
        assert_eq!(choose(AuthMode::None, &[]), Ok(None));
        assert_eq!(choose(AuthMode::Password, &[]), Err(NoMechanism::NoAuth));
        let oauth_only = vec!["XOAUTH2".to_string(), "OAUTHBEARER".to_string()];
        assert_eq!(
            choose(AuthMode::Password, &oauth_only),
            Err(NoMechanism::Unsupported("PLAIN or LOGIN"))
        );
        let e = no_such_mechanism(&target(1), "PLAIN or LOGIN", &oauth_only);
        assert!(e.fix.contains("only OAuth2 sign-in"), "{e}");
    }

    #[test]
    fn size_is_read_from_ehlo_lines() {
        let lines = [
            "mail.example.test",
            "PIPELINING",
            "SIZE 62914560",
            "8BITMIME",
        ];
        assert_eq!(parse_size(lines.into_iter()), Some(62914560));
        assert_eq!(parse_size(["SIZE"].into_iter()), None);
        assert_eq!(parse_size(["SIZE 0"].into_iter()), None, "0 means no limit");
        assert_eq!(parse_size(["AUTH PLAIN"].into_iter()), None);
    }
}
