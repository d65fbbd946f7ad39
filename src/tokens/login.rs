//! Signing an account in: the device flow (a code to enter on any device, polled until
//! approved) or the browser flow (an address to open; the loopback redirect catches the answer,
//! or the person pastes the address the browser ended on — a headless box over SSH). What the
//! person must see goes to `on_event`, as it happens; the tokens come back to be stored.

use std::time::Duration;

use tokio::sync::mpsc;

use crate::config::{OAuth2Settings, OAuthFlow};
use crate::error::{AppError, Code, Result};
use crate::oauth::flow::{self, Refusal, TokenError};
use crate::oauth::loopback::{self, Loopback};
use crate::oauth::{Client, Provider, TokenSet};

/// What the person must do or know, as the sign-in goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginEvent {
    /// Device flow: open `uri` (anywhere) and enter `user_code`.
    Device {
        uri: String,
        /// The address with the code filled in, where the provider offers one.
        complete: Option<String>,
        user_code: String,
        expires_in: u64,
    },
    /// Browser flow: open `url`; the browser ends on an address starting with `redirect`.
    Browser { url: String, redirect: String },
    /// A remark while waiting (a pasted address that did not fit, a slow-down).
    Note(String),
}

/// How long the browser flow waits for the person.
const BROWSER_WAIT: Duration = Duration::from_secs(15 * 60);

/// Runs the account's flow and returns the tokens. `pasted` brings addresses the person
/// pastes (browser flow; None where nobody can paste). `timeout` bounds each call.
pub async fn login(
    settings: &OAuth2Settings,
    client: &Client,
    login_hint: &str,
    timeout: Duration,
    on_event: &mut (dyn FnMut(LoginEvent) + Send),
    pasted: Option<mpsc::UnboundedReceiver<String>>,
) -> Result<TokenSet> {
    if client.id.trim().is_empty() {
        return Err(AppError::usage(
            "an OAuth2 account needs the client id of an app registration",
            "register one (docs/oauth2.md) and give it with --oauth-client-id ID",
        ));
    }
    let provider = crate::oauth::provider::resolve(settings)?;
    match provider.flow(settings)? {
        OAuthFlow::Device => device(&provider, client, timeout, on_event).await,
        OAuthFlow::Browser => {
            browser(&provider, client, login_hint, timeout, on_event, pasted).await
        }
    }
}

const AGAIN: &str = "run `mailroom account login NAME` again";

async fn device(
    p: &Provider,
    client: &Client,
    timeout: Duration,
    on_event: &mut (dyn FnMut(LoginEvent) + Send),
) -> Result<TokenSet> {
    let start = flow::device_start(p, client, timeout)
        .await
        .map_err(|e| e.into_app("starting the device sign-in", &client_fix(p)))?;
    on_event(LoginEvent::Device {
        uri: start.verification_uri.clone(),
        complete: start.verification_uri_complete.clone(),
        user_code: start.user_code.clone(),
        expires_in: start.expires_in,
    });
    let deadline = tokio::time::Instant::now() + Duration::from_secs(start.expires_in.max(1));
    let mut interval = start.interval;
    let mut down = 0;
    loop {
        tokio::time::sleep(Duration::from_secs(interval)).await;
        if tokio::time::Instant::now() > deadline {
            return Err(expired());
        }
        match flow::device_poll(p, client, &start.device_code, timeout).await {
            Ok(set) => return Ok(set),
            Err(TokenError::Refused {
                refusal: Refusal::Pending,
                ..
            }) => down = 0,
            Err(TokenError::Refused {
                refusal: Refusal::SlowDown,
                ..
            }) => {
                // RFC 8628 §3.5: five seconds more from now on.
                interval += 5;
                on_event(LoginEvent::Note(format!(
                    "the provider asked to poll slower: every {interval} s"
                )));
            }
            Err(TokenError::Refused {
                refusal: Refusal::Expired,
                ..
            }) => return Err(expired()),
            Err(TokenError::Refused {
                refusal: Refusal::Denied,
                words,
            }) => {
                return Err(
                    AppError::needs_user("the sign-in was declined", words, AGAIN)
                        .with_code(Code::OauthDenied),
                );
            }
            Err(e @ TokenError::Refused { .. }) => {
                return Err(e.into_app("the device sign-in", &client_fix(p)));
            }
            // The provider is unwell for a moment: keep polling a few times.
            Err(TokenError::Unavailable(e)) => {
                down += 1;
                if down >= 3 {
                    return Err(e);
                }
            }
        }
    }
}

fn expired() -> AppError {
    AppError::needs_user(
        "the sign-in code expired before it was approved",
        "",
        format!("{AGAIN}, and enter the code within the time shown"),
    )
    .with_code(Code::OauthDenied)
}

fn client_fix(p: &Provider) -> String {
    format!(
        "check the app registration with {} (client id, secret, allowed flows and scopes; docs/oauth2.md), then {AGAIN}",
        p.label
    )
}

async fn browser(
    p: &Provider,
    client: &Client,
    login_hint: &str,
    timeout: Duration,
    on_event: &mut (dyn FnMut(LoginEvent) + Send),
    mut pasted: Option<mpsc::UnboundedReceiver<String>>,
) -> Result<TokenSet> {
    let lb = Loopback::bind().await?;
    let (pkce, state) = flow::pkce()?;
    let url = flow::authorize_url(
        p,
        client,
        &lb.redirect_uri,
        &state,
        &pkce.challenge,
        login_hint,
    )?;
    on_event(LoginEvent::Browser {
        url,
        redirect: lb.redirect_uri.clone(),
    });
    let give_up = tokio::time::sleep(BROWSER_WAIT);
    tokio::pin!(give_up);
    let code = loop {
        let paste = async {
            match pasted.as_mut() {
                Some(rx) => rx.recv().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            r = lb.wait(&state) => break r?,
            text = paste => match text {
                None => pasted = None,
                Some(t) if t.trim().is_empty() => {}
                Some(t) => match loopback::parse_redirect(&t, &state) {
                    Ok(code) => break code,
                    Err(e) if e.kind == crate::error::Kind::Usage => {
                        on_event(LoginEvent::Note(format!("{}: {}", e.summary, e.fix)));
                    }
                    Err(e) => return Err(e),
                },
            },
            _ = &mut give_up => {
                return Err(AppError::needs_user(
                    "nobody finished the sign-in in the browser",
                    format!("waited {} minutes", BROWSER_WAIT.as_secs() / 60),
                    AGAIN,
                )
                .with_code(Code::OauthDenied));
            }
        }
    };
    flow::exchange_code(p, client, &code, &lb.redirect_uri, &pkce.verifier, timeout)
        .await
        .map_err(|e| e.into_app("exchanging the sign-in code", &client_fix(p)))
}
