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

use super::{SmtpTarget, classify, tls_params};
use crate::config::Security;
use crate::error::{AppError, Result};
use crate::imap::connect::{MailStream, tcp_connect, tls_wrap};

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

impl Session {
    /// Connects (TLS as configured), authenticates and learns the size limit.
    pub async fn open(target: &SmtpTarget, password: &SecretString) -> Result<Session> {
        let hello = ClientId::default();
        let err = |e: lettre::transport::smtp::Error| classify(target, &e);
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
            step(target, "STARTTLS", conn.starttls(params, &hello))
                .await
                .map_err(|e| e.app(target))?;
        }
        let creds = Credentials::new(target.user.clone(), password.expose_secret().to_string());
        let authed = step(
            target,
            "AUTH",
            conn.auth(&[Mechanism::Plain, Mechanism::Login], &creds),
        )
        .await;
        if let Err(e) = authed {
            conn.abort().await;
            let e = match e {
                StepError::Smtp(e) => e,
                StepError::Timeout(app) => return Err(app),
            };
            if e.status().is_none() && e.to_string().contains("No compatible authentication") {
                return Err(AppError::needs_user(
                    format!(
                        "the SMTP server {} offers no PLAIN or LOGIN authentication",
                        target.server.host
                    ),
                    e.to_string(),
                    "check the SMTP port and security (submission: 587 starttls or 465 tls)",
                )
                .with_code(crate::error::Code::AuthUnsupported));
            }
            return Err(classify(target, &e));
        }
        // lettre's ServerInfo drops SIZE; ask again to read it.
        let size_limit = match step(target, "EHLO", conn.command(Ehlo::new(hello))).await {
            Ok(r) => parse_size(r.message()),
            Err(e) => {
                conn.abort().await;
                return Err(e.app(target));
            }
        };
        Ok(Session {
            conn,
            target: target.clone(),
            size_limit,
        })
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
        let mail = Mail::new(Some(from), params);
        if let Err(e) = step(&self.target, "MAIL FROM", self.conn.command(mail)).await {
            let out = self.sort(&e);
            self.conn.abort().await;
            return Err(out);
        }
        for r in rcpts {
            let addr = parse("recipient", r)?;
            let rcpt = Rcpt::new(addr, vec![]);
            if let Err(e) = step(&self.target, "RCPT TO", self.conn.command(rcpt)).await {
                let mut out = self.sort(&e);
                if let SendError::Refused(a) | SendError::NotSent(a) = &mut out {
                    a.summary = format!("{} for recipient {r}", a.summary);
                }
                self.conn.abort().await;
                return Err(out);
            }
        }
        if let Err(e) = before_data() {
            self.conn.abort().await;
            return Err(SendError::NotSent(e));
        }
        if let Err(e) = step(&self.target, "DATA", self.conn.command(Data)).await {
            let out = self.sort(&e);
            self.conn.abort().await;
            return Err(out);
        }
        match self.conn.message(raw).await {
            Ok(resp) => Ok(resp.message().collect::<Vec<_>>().join(" ")),
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
                self.conn.abort().await;
                Err(out)
            }
        }
    }

    pub fn is_broken(&self) -> bool {
        self.conn.has_broken()
    }

    /// QUIT, waiting at most a few seconds for the goodbye.
    pub async fn quit(mut self) {
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
                    b"250-fake\r\n250-SIZE 1000\r\n250 AUTH PLAIN LOGIN\r\n"
                } else if up.starts_with("AUTH") {
                    b"235 ok\r\n"
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
        }
    }

    async fn run(
        after: AfterData,
        rcpt: &str,
        size: usize,
    ) -> (std::result::Result<String, SendError>, bool) {
        let port = fake(after).await;
        let pw = SecretString::from("pw".to_string());
        let mut s = Session::open(&target(port), &pw).await.unwrap();
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
