//! The webhook's HTTP: one `POST` of the event JSON over HTTP/1.1, on the same TCP and rustls
//! code the mail protocols use (one TLS stack). Plain http is allowed to loopback addresses
//! only: anything else would carry the event, and whatever the URL holds, in clear text.

use std::net::IpAddr;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::config::{Security, Server};
use crate::error::{AppError, Code, Result};

/// A webhook URL, taken apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    pub https: bool,
    pub host: String,
    pub port: u16,
    /// Path and query, at least `/`.
    pub path: String,
}

impl Url {
    pub fn parse(text: &str) -> Result<Url> {
        let t = text.trim();
        let bad = |why: &str| {
            AppError::usage(
                format!("the webhook URL {:?} is not valid: {why}", redact_text(t)),
                "give it as https://HOST[:PORT]/PATH (plain http only to 127.0.0.1, ::1 or localhost)",
            )
        };
        let (https, rest) = if let Some(r) = strip_prefix_ci(t, "https://") {
            (true, r)
        } else if let Some(r) = strip_prefix_ci(t, "http://") {
            (false, r)
        } else {
            return Err(bad("it must start with https:// or http://"));
        };
        let (authority, path) = match rest.find(['/', '?', '#']) {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if authority.contains('@') {
            return Err(bad("a user name or password in the URL is not supported"));
        }
        let path = path.split('#').next().unwrap_or("/");
        let path = if path.starts_with('?') {
            format!("/{path}")
        } else if path.is_empty() {
            "/".into()
        } else {
            path.to_string()
        };
        if path.chars().any(|c| c.is_control() || c == ' ') {
            return Err(bad("spaces and control characters must be percent-encoded"));
        }
        let default = if https { 443 } else { 80 };
        let (host, port) = split_host_port(authority, default)
            .ok_or_else(|| bad("the host or port cannot be read"))?;
        Ok(Url {
            https,
            host,
            port,
            path,
        })
    }

    /// `scheme://host[:port]`, and `/…` when there is more (paths and queries often hold a
    /// token): how the URL is shown, logged and written to config.toml.
    pub fn redacted(&self) -> String {
        let more = if self.path == "/" { "/" } else { "/…" };
        format!("{}{more}", self.origin())
    }

    pub fn origin(&self) -> String {
        let scheme = if self.https { "https" } else { "http" };
        let default = if self.https { 443 } else { 80 };
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        if self.port == default {
            format!("{scheme}://{host}")
        } else {
            format!("{scheme}://{host}:{}", self.port)
        }
    }

    /// Whether the URL holds more than its origin (then it is sealed, not written out).
    pub fn has_secret_part(&self) -> bool {
        self.path != "/"
    }

    /// Plain http only to this machine.
    pub fn check_transport(&self) -> Result<()> {
        if self.https || is_loopback(&self.host) {
            return Ok(());
        }
        Err(AppError::needs_user(
            format!(
                "the webhook {} uses plain http to another machine",
                self.redacted()
            ),
            "the event (and the URL's token, if any) would cross the network in clear text",
            "use https://, or plain http only to 127.0.0.1, ::1 or localhost (e.g. a local relay)",
        )
        .with_code(Code::AlertPlainHttp))
    }

    fn host_header(&self) -> String {
        let default = if self.https { 443 } else { 80 };
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        if self.port == default {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    (s.len() >= prefix.len() && s[..prefix.len()].eq_ignore_ascii_case(prefix))
        .then(|| &s[prefix.len()..])
}

fn split_host_port(authority: &str, default: u16) -> Option<(String, u16)> {
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let (h, after) = rest.split_once(']')?;
        (h.to_string(), after.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), Some(p)),
            None => (authority.to_string(), None),
        }
    };
    if host.is_empty() {
        return None;
    }
    let port = match port {
        Some(p) => p.parse::<u16>().ok().filter(|p| *p > 0)?,
        None => default,
    };
    Some((host.to_ascii_lowercase(), port))
}

/// 127.0.0.0/8, ::1 and `localhost`.
pub fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// A URL as words safe to show when it could not even be parsed: up to the first path.
fn redact_text(t: &str) -> String {
    let after_scheme = t.find("://").map_or(0, |i| i + 3);
    match t[after_scheme..].find(['/', '?']) {
        Some(i) => format!("{}/…", &t[..after_scheme + i]),
        None => t.to_string(),
    }
}

/// The status line of the answer, and the first of its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    pub reason: String,
    pub body: String,
}

/// POSTs `body` (JSON) to `url`, all of it within `limit`.
pub async fn post(url: &Url, body: &[u8], limit: Duration) -> Result<Answer> {
    url.check_transport()?;
    let server = Server {
        host: url.host.clone(),
        port: url.port,
        security: if url.https {
            Security::Tls
        } else {
            Security::None
        },
    };
    let head = format!(
        "POST {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: mailroom/{}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        url.path,
        url.host_header(),
        env!("CARGO_PKG_VERSION"),
        body.len()
    );
    let timed_out = || {
        AppError::transient(
            format!("the webhook {} did not answer within {} s", url.redacted(), limit.as_secs()),
            "",
            "check that the service is up; mailroom retries with backoff (`timeout_secs` of the channel sets the limit)",
        )
        .with_code(Code::AlertTimeout)
    };
    let run = async {
        let tcp = crate::imap::connect::tcp_connect(&server, limit).await?;
        if url.https {
            let tls = crate::imap::tls::tls_wrap(tcp, &server, &Default::default(), limit).await?;
            exchange(tls, &head, body, url).await
        } else {
            exchange(tcp, &head, body, url).await
        }
    };
    tokio::time::timeout(limit, run)
        .await
        .map_err(|_| timed_out())?
}

/// Writes the request and reads the answer's head (and the start of its body).
async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    mut s: S,
    head: &str,
    body: &[u8],
    url: &Url,
) -> Result<Answer> {
    let lost = |e: std::io::Error| {
        crate::error::connection_lost(&url.redacted(), "posting to the webhook", &e.to_string())
    };
    s.write_all(head.as_bytes()).await.map_err(lost)?;
    s.write_all(body).await.map_err(lost)?;
    s.flush().await.map_err(lost)?;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while got.len() < 16 * 1024 {
        let n = s.read(&mut buf).await.map_err(lost)?;
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
        // The head is what counts; the start of a body comes along when it is there already.
        if find(&got, b"\r\n\r\n").is_some() {
            break;
        }
    }
    parse_answer(&got).ok_or_else(|| {
        AppError::transient(
            format!("the webhook {} did not answer with HTTP", url.redacted()),
            crate::mail::sanitize::clean_line(&String::from_utf8_lossy(&got[..got.len().min(120)])),
            "check the URL (scheme and port); mailroom retries with backoff",
        )
        .with_code(Code::ServerProtocol)
    })
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// `HTTP/1.1 204 No Content` and the first 200 characters of the body.
pub fn parse_answer(raw: &[u8]) -> Option<Answer> {
    let text = String::from_utf8_lossy(raw);
    let first = text.lines().next()?;
    let mut parts = first.splitn(3, ' ');
    let version = parts.next()?;
    if !version.starts_with("HTTP/") {
        return None;
    }
    let status = parts.next()?.trim().parse::<u16>().ok()?;
    let reason = parts.next().unwrap_or("").trim().to_string();
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.chars().take(200).collect::<String>())
        .unwrap_or_default();
    Some(Answer {
        status,
        reason: crate::mail::sanitize::clean_line(&reason),
        body: crate::mail::sanitize::clean_line(&body),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_redact_and_plain_http_is_for_loopback_only() {
        let u = Url::parse("https://Hooks.Example.com/services/T0/B0/secret?x=1#frag").unwrap();
        assert_eq!(
            (u.https, u.host.as_str(), u.port, u.path.as_str()),
            (true, "hooks.example.com", 443, "/services/T0/B0/secret?x=1")
        );
        assert_eq!(u.redacted(), "https://hooks.example.com/…");
        assert!(u.has_secret_part());
        assert!(u.check_transport().is_ok());
        let l = Url::parse("http://127.0.0.1:8080").unwrap();
        assert_eq!((l.port, l.path.as_str()), (8080, "/"));
        assert_eq!(l.redacted(), "http://127.0.0.1:8080/");
        assert!(!l.has_secret_part());
        assert!(l.check_transport().is_ok());
        assert!(
            Url::parse("http://[::1]:9/h")
                .unwrap()
                .check_transport()
                .is_ok()
        );
        assert!(
            Url::parse("http://localhost/h")
                .unwrap()
                .check_transport()
                .is_ok()
        );
        let far = Url::parse("http://hooks.example.com/x").unwrap();
        assert_eq!(
            far.check_transport().unwrap_err().code,
            Code::AlertPlainHttp
        );
        assert_eq!(Url::parse("http://h?q=1").unwrap().path, "/?q=1");
        for bad in [
            "ftp://h/x",
            "hooks.example.com/x",
            "https://u:p@h/x",
            "https://h:99999/",
            "https:///x",
            "https://h/a b",
        ] {
            let e = Url::parse(bad).unwrap_err();
            assert_eq!(e.kind, crate::error::Kind::Usage, "{bad}");
            assert!(!e.summary.contains("/x") || e.summary.contains("/…"), "{e}");
        }
    }

    #[test]
    fn answers_are_read_from_the_status_line() {
        let a = parse_answer(b"HTTP/1.1 204 No Content\r\nServer: x\r\n\r\n").unwrap();
        assert_eq!(
            (a.status, a.reason.as_str(), a.body.as_str()),
            (204, "No Content", "")
        );
        let a = parse_answer(b"HTTP/1.0 500 Oops\r\n\r\n\x1b[31mboom").unwrap();
        assert_eq!((a.status, a.body.as_str()), (500, "boom"));
        assert!(parse_answer(b"SSH-2.0-OpenSSH\r\n").is_none());
        assert!(parse_answer(b"").is_none());
    }

    #[tokio::test]
    async fn a_post_reaches_a_local_listener_and_a_silent_one_times_out() {
        use tokio::net::TcpListener;
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        let server = tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut got = Vec::new();
            let mut buf = [0u8; 1024];
            loop {
                let n = s.read(&mut buf).await.unwrap();
                got.extend_from_slice(&buf[..n]);
                if find(&got, b"\r\n\r\n").is_some_and(|i| got.len() >= i + 4 + 11) {
                    break;
                }
            }
            s.write_all(b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n")
                .await
                .unwrap();
            String::from_utf8(got).unwrap()
        });
        let url = Url::parse(&format!("http://127.0.0.1:{port}/hook/t0k3n")).unwrap();
        let a = post(&url, br#"{"event":"x"}"#, Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(a.status, 202);
        let req = server.await.unwrap();
        assert!(req.starts_with("POST /hook/t0k3n HTTP/1.1\r\n"), "{req}");
        assert!(
            req.contains(&format!("Host: 127.0.0.1:{port}\r\n")),
            "{req}"
        );
        assert!(req.contains("Content-Type: application/json\r\n"), "{req}");
        assert!(req.ends_with("\r\n\r\n{\"event\":\"x\"}"), "{req}");

        let silent = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = silent.local_addr().unwrap().port();
        let url = Url::parse(&format!("http://127.0.0.1:{port}/")).unwrap();
        let e = post(&url, b"{}", Duration::from_secs(1)).await.unwrap_err();
        assert_eq!(e.code, Code::AlertTimeout, "{e}");
        drop(silent);
    }
}
