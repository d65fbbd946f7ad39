//! The loopback redirect of the authorization code flow (RFC 8252 §7.3): a listener on
//! 127.0.0.1 with a port of the system's choosing that takes the browser's one request and
//! answers with a short page. On a headless box the browser runs elsewhere and cannot reach
//! it; then the person pastes the address the browser ended on, read by [`parse_redirect`].

use secrecy::SecretString;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::error::{AppError, Code, Result};
use crate::mail::sanitize::clean_line;

/// A bound listener and the redirect URI that points at it.
pub struct Loopback {
    listener: TcpListener,
    pub redirect_uri: String,
}

impl Loopback {
    pub async fn bind() -> Result<Loopback> {
        let listener = TcpListener::bind("127.0.0.1:0").await.map_err(|e| {
            AppError::local(
                "cannot listen on 127.0.0.1 for the sign-in redirect",
                e.to_string(),
                "paste the address the browser ends on instead",
            )
        })?;
        let port = listener.local_addr()?.port();
        Ok(Loopback {
            listener,
            redirect_uri: format!("http://127.0.0.1:{port}/"),
        })
    }

    /// Waits for the browser's request that carries `state`, answers it and returns the code.
    /// Requests without a code or state (a favicon) are answered 404 and waited past.
    pub async fn wait(&self, state: &str) -> Result<SecretString> {
        loop {
            let (mut s, _) = self.listener.accept().await?;
            let mut buf = Vec::new();
            let mut chunk = [0u8; 2048];
            // The request line is all we need; a browser sends it at once.
            while !buf.windows(2).any(|w| w == b"\r\n") && buf.len() < 16384 {
                let n = match tokio::time::timeout(
                    std::time::Duration::from_secs(10),
                    s.read(&mut chunk),
                )
                .await
                {
                    Ok(Ok(n)) if n > 0 => n,
                    _ => break,
                };
                buf.extend_from_slice(&chunk[..n]);
            }
            let line = String::from_utf8_lossy(&buf);
            let target = line
                .lines()
                .next()
                .and_then(|l| l.split_whitespace().nth(1))
                .unwrap_or("");
            let outcome = target.split_once('?').map(|(_, q)| from_query(q, state));
            let (status, page) = match &outcome {
                None => ("404 Not Found", "not here"),
                Some(Ok(_)) => (
                    "200 OK",
                    "mailroom is signed in. You can close this window and return to the terminal.",
                ),
                Some(Err(_)) => (
                    "400 Bad Request",
                    "mailroom could not sign in; see the terminal for why.",
                ),
            };
            let body = format!(
                "<!doctype html><html><head><meta charset=\"utf-8\"><title>mailroom</title></head><body><p>{page}</p></body></html>"
            );
            let reply = format!(
                "HTTP/1.1 {status}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\nCache-Control: no-store\r\n\r\n{body}",
                body.len()
            );
            let _ = s.write_all(reply.as_bytes()).await;
            let _ = s.shutdown().await;
            if let Some(o) = outcome {
                return o;
            }
        }
    }
}

/// The code from the address the browser ended on, pasted by the person: the whole address,
/// or just its `?code=…&state=…` part.
pub fn parse_redirect(pasted: &str, state: &str) -> Result<SecretString> {
    let t = pasted.trim();
    let query = match t.split_once('?') {
        Some((_, q)) => q,
        None if t.contains("code=") || t.contains("error=") => t,
        None => {
            return Err(AppError::usage(
                "that is not the address the browser ended on",
                "copy the whole address from the browser's address bar (it starts with http://127.0.0.1 and holds code=…)",
            ));
        }
    };
    from_query(query.split('#').next().unwrap_or(""), state)
}

fn from_query(query: &str, state: &str) -> Result<SecretString> {
    let mut code = None;
    let mut got_state = None;
    let mut error = None;
    let mut desc = String::new();
    for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
        match k.as_ref() {
            "code" => code = Some(v.into_owned()),
            "state" => got_state = Some(v.into_owned()),
            "error" => error = Some(clean_line(&v)),
            "error_description" => desc = clean_line(&v),
            _ => {}
        }
    }
    if got_state.as_deref() != Some(state) {
        return Err(AppError::needs_user(
            "the sign-in answer does not belong to this sign-in (its state differs)",
            "",
            "start again with `mailroom account login NAME` and use the address it prints",
        )
        .with_code(Code::OauthRefused));
    }
    if let Some(err) = error {
        let code = match err.as_str() {
            "access_denied" => Code::OauthDenied,
            "unauthorized_client" | "invalid_client" => Code::OauthClient,
            _ => Code::OauthRefused,
        };
        return Err(AppError::needs_user(
            "the provider did not grant access",
            match desc.is_empty() {
                true => err,
                false => format!("{err}: {desc}"),
            },
            "approve the access in the browser (signed in as the account's user), or check the client id (docs/oauth2.md)",
        )
        .with_code(code));
    }
    code.filter(|c| !c.is_empty())
        .map(SecretString::from)
        .ok_or_else(|| {
            AppError::usage(
                "the address holds no code",
                "copy the whole address the browser ended on",
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    #[tokio::test]
    async fn the_browser_request_gives_the_code_and_a_page() {
        let lb = Loopback::bind().await.unwrap();
        let uri = lb.redirect_uri.clone();
        let browser = tokio::spawn(async move {
            let addr = uri
                .trim_start_matches("http://")
                .trim_end_matches('/')
                .to_string();
            // A favicon first: waited past.
            for path in ["/favicon.ico", "/?code=mrc_abc&state=st1"] {
                let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
                s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
                    .await
                    .unwrap();
                let mut page = String::new();
                s.read_to_string(&mut page).await.unwrap();
                if path.contains("code") {
                    return page;
                }
            }
            String::new()
        });
        let code = lb.wait("st1").await.unwrap();
        assert_eq!(code.expose_secret(), "mrc_abc");
        assert!(browser.await.unwrap().contains("signed in"));
    }

    #[test]
    fn a_pasted_address_is_read_and_checked() {
        let c = parse_redirect("  http://127.0.0.1:5/?code=mrc_x%2By&state=s \n", "s").unwrap();
        assert_eq!(c.expose_secret(), "mrc_x+y");
        assert!(parse_redirect("code=a&state=s", "s").is_ok());
        let e = parse_redirect("http://127.0.0.1:5/?code=a&state=other", "s").unwrap_err();
        assert!(e.summary.contains("state"), "{e}");
        let e = parse_redirect("http://127.0.0.1:5/?error=access_denied&state=s", "s").unwrap_err();
        assert_eq!(e.code, Code::OauthDenied);
        assert!(parse_redirect("hello", "s").is_err());
    }
}
