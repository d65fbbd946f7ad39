//! A small HTTP/1.1 client for an authorization server's endpoints: one POST of a form per
//! connection (`Connection: close`), HTTPS through the same rustls + ring stack as IMAP and SMTP,
//! plain http only to a loopback address. It never logs a request or response body: bodies
//! carry tokens. A whole request is bounded by one timeout; an answer larger than
//! [`MAX_BODY`] is refused.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::config::{Security, Server};
use crate::error::{AppError, Code, Result};

/// The largest answer read (token answers are a few KiB).
pub const MAX_BODY: usize = 1 << 20;

/// An endpoint's answer: its status and body (JSON, for the endpoints we call).
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
}

impl Response {
    /// The body as JSON (an empty object when it is not JSON).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|_| serde_json::json!({}))
    }
}

/// Whether `url` may be used: https anywhere, http only to a loopback address (RFC 8252 §8.3
/// applies the same rule to redirects). `what` names the setting for the error.
pub fn check_url(url: &str, what: &str) -> Result<url::Url> {
    let parsed = url::Url::parse(url).map_err(|e| {
        AppError::usage(
            format!("{what} {url:?} is not a URL ({e})"),
            "give the full address, e.g. https://login.example.com/oauth2/token",
        )
    })?;
    match parsed.scheme() {
        "https" => Ok(parsed),
        "http" if is_loopback(&parsed) => Ok(parsed),
        "http" => Err(AppError::usage(
            format!("{what} {url:?} uses plain http"),
            "use https (plain http is accepted only for a loopback address such as 127.0.0.1, for tests)",
        )),
        other => Err(AppError::usage(
            format!("{what} {url:?} is not an http(s) address (scheme {other})"),
            "give an https:// address",
        )),
    }
}

/// Whether the URL's host is this machine: 127.0.0.0/8, ::1 or `localhost`.
pub fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(a)) => a.is_loopback(),
        Some(url::Host::Ipv6(a)) => a.is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

/// `application/x-www-form-urlencoded` of `pairs`.
pub fn form(pairs: &[(&str, &str)]) -> String {
    let mut s = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        s.append_pair(k, v);
    }
    s.finish()
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// POSTs `body` (a form, see [`form`]) to `url` and reads the answer, all within `timeout`.
/// Network failures are temporary (`oauth.unavailable`); what an answer means is the caller's.
pub async fn post_form(url: &url::Url, body: &SecretString, timeout: Duration) -> Result<Response> {
    let host = url.host_str().unwrap_or("").to_string();
    let at = format!("{host}:{}", url.port_or_known_default().unwrap_or(443));
    let exchange = async {
        let mut io = open(url, timeout).await?;
        io.write_all(request(url, body.expose_secret()).as_bytes())
            .await
            .map_err(|e| unreachable_err(&at, &e.to_string()))?;
        io.flush()
            .await
            .map_err(|e| unreachable_err(&at, &e.to_string()))?;
        read_response(&mut io, &at).await
    };
    let res = tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| {
            AppError::transient(
                format!("the authorization server {at} did not answer in time"),
                format!("no complete answer within {} s", timeout.as_secs()),
                "check the network; mailroom asks again later",
            )
            .with_code(Code::OauthUnavailable)
        })??;
    tracing::debug!(
        "oauth2: POST {}://{}{} → {}",
        url.scheme(),
        at,
        url.path(),
        res.status
    );
    Ok(res)
}

fn request(url: &url::Url, body: &str) -> String {
    let mut target = url.path().to_string();
    if let Some(q) = url.query() {
        target.push('?');
        target.push_str(q);
    }
    let host = match url.port() {
        Some(p) => format!("{}:{p}", url.host_str().unwrap_or("")),
        None => url.host_str().unwrap_or("").to_string(),
    };
    format!(
        "POST {target} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: mailroom/{}\r\nAccept: application/json\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        env!("CARGO_PKG_VERSION"),
        body.len()
    )
}

async fn open(url: &url::Url, timeout: Duration) -> Result<Box<dyn Io>> {
    let server = Server {
        host: url
            .host_str()
            .unwrap_or("")
            .trim_matches(['[', ']'])
            .to_string(),
        port: url.port_or_known_default().unwrap_or(443),
        security: Security::Tls,
    };
    let tcp = crate::imap::connect::tcp_connect(&server, timeout)
        .await
        .map_err(|e| as_unavailable(e, &server))?;
    if url.scheme() == "http" {
        return Ok(Box::new(tcp));
    }
    let tls = crate::imap::tls::tls_wrap(tcp, &server, &Default::default(), timeout)
        .await
        .map_err(|e| match e.kind {
            crate::error::Kind::Transient => as_unavailable(e, &server),
            _ => e,
        })?;
    Ok(Box::new(tls))
}

/// A connect failure, under the code of an authorization server that cannot be reached.
fn as_unavailable(mut e: AppError, server: &Server) -> AppError {
    e.summary = format!(
        "the authorization server {}:{} cannot be reached: {}",
        server.host, server.port, e.summary
    );
    e.with_code(Code::OauthUnavailable)
}

fn unreachable_err(at: &str, detail: &str) -> AppError {
    AppError::transient(
        format!("the connection to the authorization server {at} broke"),
        crate::error::network_detail(detail, None),
        "check the network; mailroom asks again later",
    )
    .with_code(Code::OauthUnavailable)
}

/// Reads a whole HTTP/1.1 response: Content-Length, chunked, or up to the end of the stream.
async fn read_response(io: &mut Box<dyn Io>, at: &str) -> Result<Response> {
    let mut buf = Vec::new();
    let head_end = loop {
        if let Some(i) = find(&buf, b"\r\n\r\n") {
            break i + 4;
        }
        if !fill(io, &mut buf, at).await? {
            return Err(bad_answer(
                at,
                "the connection closed before the answer's headers",
            ));
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let status = parse_status(&head).ok_or_else(|| bad_answer(at, "no HTTP status line"))?;
    let mut body = buf.split_off(head_end);
    let chunked = header(&head, "transfer-encoding")
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    if chunked {
        body = read_chunked(io, body, at).await?;
    } else if let Some(len) = header(&head, "content-length").and_then(|v| v.parse::<usize>().ok())
    {
        if len > MAX_BODY {
            return Err(bad_answer(at, "the answer is too large"));
        }
        while body.len() < len {
            if !fill(io, &mut body, at).await? {
                return Err(bad_answer(at, "the answer ended early"));
            }
        }
        body.truncate(len);
    } else {
        while fill(io, &mut body, at).await? {}
    }
    Ok(Response { status, body })
}

/// Reads more bytes into `buf`; false at the end of the stream.
async fn fill(io: &mut Box<dyn Io>, buf: &mut Vec<u8>, at: &str) -> Result<bool> {
    let mut chunk = [0u8; 8192];
    let n = match io.read(&mut chunk).await {
        Ok(n) => n,
        // A TLS peer that closes without close_notify after a complete answer is common.
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => 0,
        Err(e) => return Err(unreachable_err(at, &e.to_string())),
    };
    if buf.len() + n > MAX_BODY + 65536 {
        return Err(bad_answer(at, "the answer is too large"));
    }
    buf.extend_from_slice(&chunk[..n]);
    Ok(n > 0)
}

async fn read_chunked(io: &mut Box<dyn Io>, mut raw: Vec<u8>, at: &str) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = loop {
            if let Some(i) = find(&raw, b"\r\n") {
                break i;
            }
            if !fill(io, &mut raw, at).await? {
                return Err(bad_answer(at, "a chunk size is missing"));
            }
        };
        let size_text = String::from_utf8_lossy(&raw[..line_end]).to_string();
        let size_hex = size_text.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_hex, 16)
            .map_err(|_| bad_answer(at, "a chunk size is not a number"))?;
        raw.drain(..line_end + 2);
        if size == 0 {
            return Ok(out);
        }
        if out.len() + size > MAX_BODY {
            return Err(bad_answer(at, "the answer is too large"));
        }
        while raw.len() < size + 2 {
            if !fill(io, &mut raw, at).await? {
                return Err(bad_answer(at, "the answer ended inside a chunk"));
            }
        }
        out.extend_from_slice(&raw[..size]);
        raw.drain(..size + 2);
    }
}

fn bad_answer(at: &str, why: &str) -> AppError {
    AppError::transient(
        format!("the authorization server {at} sent an answer that cannot be read"),
        why.to_string(),
        "mailroom asks again later; if it lasts, check the endpoint URLs (`mailroom account show NAME`)",
    )
    .with_code(Code::OauthUnavailable)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn parse_status(head: &str) -> Option<u16> {
    let line = head.lines().next()?;
    let mut w = line.split_whitespace();
    let proto = w.next()?;
    if !proto.starts_with("HTTP/") {
        return None;
    }
    w.next()?.parse().ok()
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().skip(1).find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    /// A one-shot HTTP server answering `answer` (in pieces, to exercise the reader).
    async fn serve(answer: &'static [u8]) -> url::Url {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut req = vec![0u8; 4096];
            let _ = s.read(&mut req).await;
            for piece in answer.chunks(7) {
                s.write_all(piece).await.unwrap();
                s.flush().await.unwrap();
            }
        });
        url::Url::parse(&format!("http://127.0.0.1:{port}/token")).unwrap()
    }

    fn body() -> SecretString {
        SecretString::from(form(&[("grant_type", "refresh_token"), ("a b", "c&d")]))
    }

    #[tokio::test]
    async fn reads_content_length_chunked_and_close_delimited_answers() {
        let t = Duration::from_secs(5);
        let u = serve(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{\"a\":\"b\"}  extra").await;
        let r = post_form(&u, &body(), t).await.unwrap();
        assert_eq!((r.status, r.json()["a"].as_str()), (200, Some("b")));
        let u = serve(b"HTTP/1.1 400 Bad Request\r\nTransfer-Encoding: chunked\r\n\r\n5;x=y\r\n{\"err\r\n10\r\nor\":\"invalid_gra\r\n3\r\nnt\"\r\n1\r\n}\r\n0\r\n\r\n").await;
        let r = post_form(&u, &body(), t).await.unwrap();
        assert_eq!(r.status, 400);
        assert_eq!(r.json()["error"], "invalid_grant");
        let u = serve(
            b"HTTP/1.0 503 Service Unavailable\r\n\r\n{\"error\":\"temporarily_unavailable\"}",
        )
        .await;
        let r = post_form(&u, &body(), t).await.unwrap();
        assert_eq!(
            (r.status, r.json()["error"].as_str()),
            (503, Some("temporarily_unavailable"))
        );
        let u = serve(b"garbage\r\n\r\n").await;
        let e = post_form(&u, &body(), t).await.unwrap_err();
        assert_eq!(e.code, Code::OauthUnavailable);
    }

    #[tokio::test]
    async fn nothing_listening_is_temporary() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        drop(l);
        let u = url::Url::parse(&format!("http://127.0.0.1:{port}/t")).unwrap();
        let e = post_form(&u, &body(), Duration::from_secs(2))
            .await
            .unwrap_err();
        assert_eq!(e.code, Code::OauthUnavailable);
        assert!(e.recoverable(), "{e}");
    }

    #[test]
    fn plain_http_only_for_loopback() {
        assert!(check_url("https://login.example.com/t", "--oauth-token-url").is_ok());
        assert!(check_url("http://127.0.0.1:6980/token", "x").is_ok());
        assert!(check_url("http://[::1]:6980/token", "x").is_ok());
        assert!(check_url("http://localhost/token", "x").is_ok());
        let e = check_url("http://login.example.com/t", "--oauth-token-url").unwrap_err();
        assert!(e.fix.contains("loopback"), "{e}");
        assert!(check_url("ftp://x/y", "x").is_err());
        assert!(check_url("not a url", "x").is_err());
        assert_eq!(
            form(&[("a b", "c&d=é")]),
            "a+b=c%26d%3D%C3%A9",
            "form encoding"
        );
        assert_eq!(
            header("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n", "content-length"),
            Some("3")
        );
    }
}
