//! The calls to an authorization server, one function each: the device authorization grant
//! (RFC 8628), authorization code with PKCE (RFC 7636) and a loopback redirect (RFC 8252),
//! refresh, revocation (RFC 7009). They return typed outcomes; deciding what an outcome means
//! for an account (sign in again, or try later) is the caller's. Tokens stay in
//! `SecretString`s and never reach a log or an error message.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use secrecy::{ExposeSecret, SecretString};
use sha2::Digest;

use super::http::{self, Response};
use super::provider::Provider;
use crate::error::{AppError, Code, Result};
use crate::mail::sanitize::clean_line;

/// The app registration: its client id and, where the provider wants one, its secret.
#[derive(Clone)]
pub struct Client {
    pub id: String,
    pub secret: Option<SecretString>,
}

/// What a token endpoint handed out.
#[derive(Clone)]
pub struct TokenSet {
    pub access: SecretString,
    /// A new refresh token (rotation), or none: keep the old one.
    pub refresh: Option<SecretString>,
    /// Seconds the access token lives, as the server says (None: it did not say).
    pub expires_in: Option<u64>,
}

impl std::fmt::Debug for TokenSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TokenSet([REDACTED], expires_in {:?})", self.expires_in)
    }
}

/// How a token endpoint refused, by what it means for the account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Device flow: not approved yet / poll slower.
    Pending,
    SlowDown,
    /// The person declined.
    Denied,
    /// The device code or authorization code expired.
    Expired,
    /// The grant is gone (refresh token revoked or expired, code already used): sign in again.
    InvalidGrant,
    /// The client id or secret is not accepted.
    Client,
    /// The scopes are refused.
    Scope,
    /// Anything else the server said no to.
    Other,
}

/// A token endpoint's answer that is not tokens.
#[derive(Debug, Clone)]
pub enum TokenError {
    /// The server answered with an OAuth2 error (`{"error": …}`, a 4xx).
    Refused {
        refusal: Refusal,
        /// The server's error code and description, cleaned for a terminal.
        words: String,
    },
    /// The server could not be reached or is unwell (network, 5xx, 429, unreadable): later.
    Unavailable(AppError),
}

impl TokenError {
    /// The error for a person, with `what` as what was being done.
    pub fn into_app(self, what: &str, fix: &str) -> AppError {
        match self {
            TokenError::Unavailable(e) => e,
            TokenError::Refused { refusal, words } => {
                let code = match refusal {
                    Refusal::Client => Code::OauthClient,
                    Refusal::InvalidGrant | Refusal::Expired => Code::AuthLoginNeeded,
                    _ => Code::OauthRefused,
                };
                AppError::needs_user(format!("{what}: the provider refused"), words, fix)
                    .with_code(code)
            }
        }
    }
}

/// What `POST device_url` answered: what to show the person, and what to poll with.
pub struct DeviceStart {
    pub device_code: SecretString,
    pub user_code: String,
    pub verification_uri: String,
    pub verification_uri_complete: Option<String>,
    pub expires_in: u64,
    pub interval: u64,
}

fn form_with_client(client: &Client, pairs: &[(&str, &str)]) -> SecretString {
    let mut all: Vec<(&str, &str)> = pairs.to_vec();
    all.push(("client_id", &client.id));
    if let Some(s) = &client.secret {
        all.push(("client_secret", s.expose_secret()));
    }
    SecretString::from(http::form(&all))
}

/// Sorts an answer of a token or device endpoint into tokens, a refusal, or "later".
fn sort(res: Result<Response>, at: &str) -> std::result::Result<serde_json::Value, TokenError> {
    let r = res.map_err(TokenError::Unavailable)?;
    let j = r.json();
    if r.status == 200 {
        return Ok(j);
    }
    let err = j["error"].as_str().unwrap_or("").to_string();
    if r.status >= 500 || r.status == 429 || err == "temporarily_unavailable" || err.is_empty() {
        return Err(TokenError::Unavailable(
            AppError::transient(
                format!(
                    "the authorization server {at} is unavailable (HTTP {})",
                    r.status
                ),
                clean_line(&err),
                "nothing to change on this side: mailroom asks again later",
            )
            .with_code(Code::OauthUnavailable),
        ));
    }
    let refusal = match err.as_str() {
        "authorization_pending" => Refusal::Pending,
        "slow_down" => Refusal::SlowDown,
        "access_denied" => Refusal::Denied,
        "expired_token" => Refusal::Expired,
        "invalid_grant" => Refusal::InvalidGrant,
        "invalid_client" | "unauthorized_client" => Refusal::Client,
        "invalid_scope" => Refusal::Scope,
        _ => Refusal::Other,
    };
    let desc = j["error_description"].as_str().unwrap_or("");
    let words = match desc.is_empty() {
        true => clean_line(&err),
        false => crate::error::short_detail(&clean_line(&format!("{err}: {desc}"))),
    };
    Err(TokenError::Refused { refusal, words })
}

fn host(u: &url::Url) -> String {
    match u.port() {
        Some(p) => format!("{}:{p}", u.host_str().unwrap_or("")),
        None => u.host_str().unwrap_or("").to_string(),
    }
}

fn tokens(j: &serde_json::Value, at: &str) -> std::result::Result<TokenSet, TokenError> {
    let access = j["access_token"].as_str().filter(|s| !s.is_empty());
    let Some(access) = access else {
        return Err(TokenError::Unavailable(
            AppError::transient(
                format!("the authorization server {at} answered without an access token"),
                "",
                "mailroom asks again later; if it lasts, check the token endpoint URL",
            )
            .with_code(Code::OauthUnavailable),
        ));
    };
    Ok(TokenSet {
        access: SecretString::from(access.to_string()),
        refresh: j["refresh_token"]
            .as_str()
            .filter(|s| !s.is_empty())
            .map(|s| SecretString::from(s.to_string())),
        expires_in: j["expires_in"]
            .as_u64()
            .or_else(|| j["expires_in"].as_str().and_then(|s| s.parse().ok())),
    })
}

async fn token_call(
    p: &Provider,
    client: &Client,
    pairs: &[(&str, &str)],
    timeout: Duration,
) -> std::result::Result<TokenSet, TokenError> {
    let at = host(&p.token_url);
    let res = http::post_form(&p.token_url, &form_with_client(client, pairs), timeout).await;
    let j = sort(res, &at)?;
    tokens(&j, &at)
}

/// Starts the device authorization grant.
pub async fn device_start(
    p: &Provider,
    client: &Client,
    timeout: Duration,
) -> std::result::Result<DeviceStart, TokenError> {
    let Some(url) = &p.device_url else {
        return Err(TokenError::Refused {
            refusal: Refusal::Other,
            words: "no device authorization endpoint".into(),
        });
    };
    let at = host(url);
    let scope = p.scope();
    let body = form_with_client(client, &[("scope", &scope)]);
    let j = sort(http::post_form(url, &body, timeout).await, &at)?;
    let text = |k: &str| j[k].as_str().map(str::to_string);
    let (Some(device_code), Some(user_code), Some(uri)) = (
        text("device_code"),
        text("user_code"),
        text("verification_uri").or_else(|| text("verification_url")),
    ) else {
        return Err(TokenError::Unavailable(
            AppError::transient(
                format!("the device authorization answer of {at} is incomplete"),
                "it lacks device_code, user_code or verification_uri",
                "check --oauth-device-url",
            )
            .with_code(Code::OauthUnavailable),
        ));
    };
    Ok(DeviceStart {
        device_code: SecretString::from(device_code),
        user_code: clean_line(&user_code),
        verification_uri: clean_line(&uri),
        verification_uri_complete: text("verification_uri_complete").map(|s| clean_line(&s)),
        expires_in: j["expires_in"].as_u64().unwrap_or(600),
        interval: j["interval"].as_u64().unwrap_or(5).max(1),
    })
}

/// One poll of the device flow's token endpoint.
pub async fn device_poll(
    p: &Provider,
    client: &Client,
    device_code: &SecretString,
    timeout: Duration,
) -> std::result::Result<TokenSet, TokenError> {
    token_call(
        p,
        client,
        &[
            ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
            ("device_code", device_code.expose_secret()),
        ],
        timeout,
    )
    .await
}

/// A PKCE pair: the verifier (kept) and its S256 challenge (sent).
pub struct Pkce {
    pub verifier: SecretString,
    pub challenge: String,
}

/// A fresh random PKCE verifier and its challenge, and a random `state`.
pub fn pkce() -> Result<(Pkce, String)> {
    let mut bytes = [0u8; 48];
    getrandom::fill(&mut bytes).map_err(|e| {
        AppError::local(
            "no randomness available",
            e.to_string(),
            "check /dev/urandom",
        )
    })?;
    let verifier = B64URL.encode(&bytes[..32]);
    let state = B64URL.encode(&bytes[32..]);
    let challenge = B64URL.encode(sha2::Sha256::digest(verifier.as_bytes()));
    Ok((
        Pkce {
            verifier: SecretString::from(verifier),
            challenge,
        },
        state,
    ))
}

/// The address a person opens to sign in (authorization code flow with PKCE).
pub fn authorize_url(
    p: &Provider,
    client: &Client,
    redirect: &str,
    state: &str,
    challenge: &str,
    login_hint: &str,
) -> Result<String> {
    let mut u = p.auth_url.clone().ok_or_else(|| {
        AppError::usage(
            "no authorization endpoint",
            "give it with --oauth-auth-url, or use --oauth-flow device",
        )
    })?;
    {
        let mut q = u.query_pairs_mut();
        q.append_pair("response_type", "code")
            .append_pair("client_id", &client.id)
            .append_pair("redirect_uri", redirect)
            .append_pair("scope", &p.scope())
            .append_pair("state", state)
            .append_pair("code_challenge", challenge)
            .append_pair("code_challenge_method", "S256");
        if !login_hint.is_empty() {
            q.append_pair("login_hint", login_hint);
        }
        for (k, v) in &p.auth_params {
            q.append_pair(k, v);
        }
    }
    Ok(u.to_string())
}

/// Exchanges an authorization code for tokens.
pub async fn exchange_code(
    p: &Provider,
    client: &Client,
    code: &SecretString,
    redirect: &str,
    verifier: &SecretString,
    timeout: Duration,
) -> std::result::Result<TokenSet, TokenError> {
    token_call(
        p,
        client,
        &[
            ("grant_type", "authorization_code"),
            ("code", code.expose_secret()),
            ("redirect_uri", redirect),
            ("code_verifier", verifier.expose_secret()),
        ],
        timeout,
    )
    .await
}

/// Refreshes: a new access token (and, with rotation, a new refresh token).
pub async fn refresh(
    p: &Provider,
    client: &Client,
    refresh_token: &SecretString,
    timeout: Duration,
) -> std::result::Result<TokenSet, TokenError> {
    token_call(
        p,
        client,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token.expose_secret()),
        ],
        timeout,
    )
    .await
}

/// Revokes a token where the provider offers revocation (RFC 7009); Ok(false) when it does not.
pub async fn revoke(
    p: &Provider,
    client: &Client,
    token: &SecretString,
    hint: &str,
    timeout: Duration,
) -> Result<bool> {
    let Some(url) = &p.revoke_url else {
        return Ok(false);
    };
    let body = form_with_client(
        client,
        &[("token", token.expose_secret()), ("token_type_hint", hint)],
    );
    let r = http::post_form(url, &body, timeout).await?;
    if r.status == 200 {
        return Ok(true);
    }
    Err(AppError::transient(
        format!(
            "the provider did not confirm the revocation (HTTP {})",
            r.status
        ),
        clean_line(r.json()["error"].as_str().unwrap_or("")),
        "revoke the app's access in the provider's account settings",
    )
    .with_code(Code::OauthUnavailable))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, body: &str) -> Result<Response> {
        Ok(Response {
            status,
            body: body.as_bytes().to_vec(),
        })
    }

    #[test]
    fn answers_sort_into_tokens_refusals_and_later() {
        let ok = sort(
            answer(200, r#"{"access_token":"mra_x","expires_in":"20"}"#),
            "h",
        )
        .unwrap();
        let t = tokens(&ok, "h").unwrap();
        assert_eq!(t.expires_in, Some(20));
        assert!(t.refresh.is_none());
        assert!(!format!("{t:?}").contains("mra_"), "Debug hides the token");
        let r = |s, b| match sort(answer(s, b), "h") {
            Err(TokenError::Refused { refusal, words }) => (refusal, words),
            other => panic!("{:?}", other.map(|_| ())),
        };
        assert_eq!(
            r(
                400,
                r#"{"error":"invalid_grant","error_description":"revoked \u001b[2Jx"}"#
            ),
            (Refusal::InvalidGrant, "invalid_grant: revoked x".into())
        );
        assert_eq!(
            r(400, r#"{"error":"authorization_pending"}"#).0,
            Refusal::Pending
        );
        assert_eq!(r(401, r#"{"error":"invalid_client"}"#).0, Refusal::Client);
        for (s, b) in [
            (503, r#"{"error":"temporarily_unavailable"}"#),
            (500, "oops"),
            (429, "{}"),
            (400, "<html>"),
        ] {
            assert!(
                matches!(sort(answer(s, b), "h"), Err(TokenError::Unavailable(e)) if e.code == Code::OauthUnavailable),
                "{s} {b}"
            );
        }
        let e = TokenError::Refused {
            refusal: Refusal::InvalidGrant,
            words: "invalid_grant".into(),
        }
        .into_app("refreshing", "sign in again");
        assert_eq!(e.code, Code::AuthLoginNeeded);
    }

    #[test]
    fn pkce_challenge_is_s256_of_the_verifier_and_the_url_carries_it() {
        let (p, state) = pkce().unwrap();
        let want = B64URL.encode(sha2::Sha256::digest(p.verifier.expose_secret().as_bytes()));
        assert_eq!(p.challenge, want);
        assert!(p.verifier.expose_secret().len() >= 43, "RFC 7636: 43..128");
        let prov = Provider {
            label: "t".into(),
            auth_url: Some(url::Url::parse("http://127.0.0.1:1/authorize?x=1").unwrap()),
            token_url: url::Url::parse("http://127.0.0.1:1/token").unwrap(),
            device_url: None,
            revoke_url: None,
            scopes: vec!["imap".into(), "smtp".into()],
            auth_params: vec![("access_type", "offline")],
            no_device: None,
        };
        let c = Client {
            id: "cid".into(),
            secret: Some(SecretString::from("s3cret".to_string())),
        };
        let u = authorize_url(
            &prov,
            &c,
            "http://127.0.0.1:5/",
            &state,
            &p.challenge,
            "a@b",
        )
        .unwrap();
        let parsed = url::Url::parse(&u).unwrap();
        let q: std::collections::HashMap<_, _> = parsed.query_pairs().into_owned().collect();
        assert_eq!(q["x"], "1");
        assert_eq!(q["code_challenge"], p.challenge);
        assert_eq!(q["code_challenge_method"], "S256");
        assert_eq!(q["scope"], "imap smtp");
        assert_eq!(q["login_hint"], "a@b");
        assert_eq!(q["access_type"], "offline");
        assert!(
            !u.contains("s3cret"),
            "the secret never goes into the address"
        );
    }
}
