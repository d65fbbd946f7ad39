//! Signing in with an OAuth2 token: AUTHENTICATE XOAUTH2 or OAUTHBEARER, whichever the server
//! offers (XOAUTH2 first), with the initial response on the command line when it offers SASL-IR
//! (async-imap sends none itself: the mechanism string carries it). A refused token is asked
//! for once more from the token source — which refreshes it, or hands out the one another
//! process refreshed meanwhile — and tried on a fresh connection; a second refusal is the
//! user's to fix. The trace shows `AUTHENTICATE [REDACTED]`: while the exchange runs, the
//! stream writes nothing of what it sends to the trace.

use async_imap::Client;
use async_imap::imap_proto::{Capability, Response, Status};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use secrecy::ExposeSecret;
use tokio::io::AsyncWriteExt;

use super::connect::{ImapSession, ImapTarget, MailStream, io_error, open_client, server_text};
use crate::error::{AppError, Code, Result};
use crate::oauth::sasl::{self, Mechanism};
use crate::secret::{AccessToken, TokenSource};

/// What the server offers before login.
#[derive(Debug, Default)]
pub struct PreAuth {
    /// `AUTH=` mechanisms, upper case.
    pub mechanisms: Vec<String>,
    pub sasl_ir: bool,
}

/// CAPABILITY before login (after STARTTLS the greeting's list is stale anyway).
pub async fn pre_auth(client: &mut Client<MailStream>, server: &str) -> Result<PreAuth> {
    const TAG: &str = "mrcap";
    let sent = async {
        let s = client.get_mut();
        s.write_all(format!("{TAG} CAPABILITY\r\n").as_bytes())
            .await?;
        s.flush().await
    };
    sent.await
        .map_err(|e| io_error(server, "asking for the capabilities", &e))?;
    let mut out = PreAuth::default();
    loop {
        let r = client
            .read_response()
            .await
            .map_err(|e| io_error(server, "reading the capabilities", &e))?
            .ok_or_else(|| {
                crate::error::connection_lost(server, "reading the capabilities", "closed")
            })?;
        match r.parsed() {
            Response::Capabilities(caps) => {
                for c in caps {
                    match c {
                        Capability::Auth(m) => out.mechanisms.push(m.to_ascii_uppercase()),
                        Capability::Atom(a) if a.eq_ignore_ascii_case("SASL-IR") => {
                            out.sasl_ir = true
                        }
                        _ => {}
                    }
                }
            }
            Response::Done { tag, status, .. } if tag.0 == TAG => {
                return match status {
                    Status::Ok => Ok(out),
                    _ => Err(AppError::needs_user(
                        format!("the server {server} refused CAPABILITY"),
                        "",
                        "check that this port serves IMAP",
                    )
                    .with_code(Code::ServerProtocol)),
                };
            }
            _ => {}
        }
    }
}

/// Answers the server's challenges: the initial response when it asks for one (no SASL-IR), and
/// the mechanism's "end" to an error challenge, which it keeps for the message.
struct Exchange {
    first: Option<Vec<u8>>,
    abort: &'static [u8],
    challenge: Option<Vec<u8>>,
}

impl async_imap::Authenticator for &mut Exchange {
    type Response = Vec<u8>;
    fn process(&mut self, challenge: &[u8]) -> Vec<u8> {
        if let Some(first) = self.first.take() {
            return first;
        }
        self.challenge = Some(challenge.to_vec());
        self.abort.to_vec()
    }
}

/// How one AUTHENTICATE ended when it did not sign in.
enum Failed {
    /// The server refused the token (`[AUTHENTICATIONFAILED]`, an error challenge); its words.
    Rejected(String),
    /// Anything else: temporary refusals (`[UNAVAILABLE]`), the network, a stall.
    Other(AppError),
}

async fn authenticate(
    client: Client<MailStream>,
    target: &ImapTarget,
    mech: Mechanism,
    sasl_ir: bool,
    token: &AccessToken,
) -> std::result::Result<ImapSession, Failed> {
    let server = target.address();
    let payload = mech.payload(
        &target.user,
        &token.token,
        &target.server.host,
        target.server.port,
    );
    let encoded = B64.encode(payload.expose_secret().as_bytes());
    let mut ex = Exchange {
        first: None,
        abort: mech.abort(),
        challenge: None,
    };
    let command = match sasl_ir {
        true => secrecy::SecretString::from(format!("{} {encoded}", mech.as_str())),
        false => {
            ex.first = Some(payload.expose_secret().as_bytes().to_vec());
            secrecy::SecretString::from(mech.as_str().to_string())
        }
    };
    let secret = client.get_ref().link().secret_flag();
    secret.store(true, std::sync::atomic::Ordering::SeqCst);
    let timeout = target.limits().timeout;
    let r = tokio::time::timeout(
        timeout,
        client.authenticate(command.expose_secret(), &mut ex),
    )
    .await;
    secret.store(false, std::sync::atomic::Ordering::SeqCst);
    match r {
        Err(_) => Err(Failed::Other(crate::error::stalled(
            &server,
            "signing in",
            &format!(
                "stalled: no answer to AUTHENTICATE within {} s",
                timeout.as_secs()
            ),
        ))),
        Ok(Ok(session)) => Ok(session),
        Ok(Err((async_imap::error::Error::No(msg), _))) => {
            let text = server_text(&msg);
            if crate::error::temporary_code(&text).is_some() {
                return Err(Failed::Other(crate::error::temporarily_unavailable(
                    &server, "login", &text,
                )));
            }
            let status = ex.challenge.as_deref().and_then(sasl::challenge_status);
            Err(Failed::Rejected(match status {
                Some(s) => format!("{text} (token status: {s})"),
                None => text,
            }))
        }
        Ok(Err((async_imap::error::Error::Bad(msg), _))) => Err(Failed::Other(
            AppError::needs_user(
                format!(
                    "the server {server} does not take AUTHENTICATE {}",
                    mech.as_str()
                ),
                crate::error::short_detail(&server_text(&msg)),
                "this server may not support OAuth2 sign-in; check the IMAP host and port",
            )
            .with_code(Code::AuthUnsupported),
        )),
        Ok(Err((e, client))) => Err(Failed::Other(super::connect::protocol_error_on(
            &client, "login", e,
        ))),
    }
}

/// Signs in with the token source's token (see the module's words). `client` is greeted and
/// behind TLS as configured; `on_login` hears the mechanism used, for `account test`.
pub async fn sign_in(
    mut client: Client<MailStream>,
    target: &ImapTarget,
    source: &dyn TokenSource,
    on_login: &mut (dyn FnMut(&'static str) + Send),
) -> Result<ImapSession> {
    let server = target.address();
    let offered = pre_auth(&mut client, &server).await?;
    let mech = sasl::choose(&offered.mechanisms).ok_or_else(|| {
        AppError::needs_user(
            format!("the IMAP server {server} offers no OAuth2 sign-in"),
            match offered.mechanisms.is_empty() {
                true => "it offers no AUTH= mechanism before login".to_string(),
                false => format!("it offers AUTH={}", offered.mechanisms.join(" AUTH=")),
            },
            "check the IMAP host and port (the provider's IMAP server takes XOAUTH2 or OAUTHBEARER), or sign in with a password (`--auth password`)",
        )
        .with_code(Code::AuthUnsupported)
    })?;
    on_login(mech.as_str());
    let token = source.current().await?;
    let words = match authenticate(client, target, mech, offered.sasl_ir, &token).await {
        Ok(s) => return Ok(s),
        Err(Failed::Other(e)) => return Err(e),
        Err(Failed::Rejected(words)) => words,
    };
    tracing::debug!("IMAP {server} refused the token ({words}); asking for a fresh one");
    let fresh = source.after_rejection(&token).await?;
    let mut client = open_client(target, |_, _| {}).await?;
    let offered = pre_auth(&mut client, &server).await?;
    match authenticate(client, target, mech, offered.sasl_ir, &fresh).await {
        Ok(s) => Ok(s),
        Err(Failed::Other(e)) => Err(e),
        Err(Failed::Rejected(words)) => Err(source.refused(&server, &words).await),
    }
}
