//! An OAuth2 account's tokens, kept fresh for every process that shares the store.
//!
//! The token set (access token, refresh token, expiry) is sealed like a password (`secret.rs`,
//! credential kind `oauth2`); `oauth_state` holds what the processes coordinate on. A token is
//! handed out while it has a while left to live (a quarter of its lifetime, at most two
//! minutes); after that, or when a server refused it, the process that needs one claims the
//! refresh by compare-and-set on the token generation. Whoever loses the race waits for the
//! winner's tokens instead of refreshing too — providers that rotate refresh tokens (Microsoft)
//! would refuse the second refresh. A refusal by the provider (`invalid_grant`: consent revoked
//! or expired) is recorded once and stops every process from asking again until `account login`;
//! an authorization server that is down is temporary, and retries are spaced out so many
//! processes cannot turn it into a storm.

pub mod login;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use crate::account::{Account, credential_context};
use crate::error::{AppError, Code, Result};
use crate::oauth::flow::{self, Refusal, TokenError};
use crate::oauth::{Client, Provider, TokenSet};
use crate::secret::{AccessToken, TokenSource, Vault};
use crate::store::oauth::{CLIENT_SECRET, TOKENS};
use crate::store::{Db, OAuthRow, Store};

/// Assumed when a provider does not say how long its access tokens live.
const DEFAULT_LIFETIME: u64 = 3600;

/// The token set as sealed in the store.
#[derive(Serialize, Deserialize)]
struct Sealed {
    access_token: String,
    refresh_token: Option<String>,
    expires_at: DateTime<Utc>,
    /// Seconds the access token was issued for (decides how early it is refreshed).
    lifetime: u64,
}

impl Sealed {
    fn from_set(set: &TokenSet, keep_refresh: Option<&SecretString>) -> Sealed {
        let lifetime = set.expires_in.unwrap_or(DEFAULT_LIFETIME).max(1);
        Sealed {
            access_token: set.access.expose_secret().to_string(),
            refresh_token: set
                .refresh
                .as_ref()
                .or(keep_refresh)
                .map(|r| r.expose_secret().to_string()),
            expires_at: Utc::now() + chrono::Duration::seconds(lifetime as i64),
            lifetime,
        }
    }

    /// Whether the access token has a while left: more than a quarter of its lifetime, and at
    /// most two minutes of margin for long-lived ones.
    fn fresh(&self, now: DateTime<Utc>) -> bool {
        let margin = (self.lifetime / 4).clamp(1, 120) as i64;
        self.expires_at - chrono::Duration::seconds(margin) > now
    }
}

fn seal(vault: &Vault, id: &str, s: &Sealed) -> Result<String> {
    let json = serde_json::to_string(s).map_err(|e| {
        AppError::local(
            "cannot encode the tokens",
            e.to_string(),
            "report this as a bug",
        )
    })?;
    vault.seal(&credential_context(id, TOKENS), &SecretString::from(json))
}

fn unseal(vault: &Vault, id: &str, sealed: &str) -> Result<Sealed> {
    let plain = vault.open_sealed(&credential_context(id, TOKENS), sealed)?;
    serde_json::from_str(plain.expose_secret()).map_err(|_| {
        AppError::needs_user(
            "the stored OAuth2 tokens are damaged",
            "",
            "sign in again with `mailroom account login NAME`",
        )
        .with_code(Code::SecretDamaged)
    })
}

/// Stores the tokens of a sign-in (a new generation; a refusal recorded before is cleared).
pub fn store_signed_in(store: &Store, vault: &Vault, id: &str, set: &TokenSet) -> Result<()> {
    let s = Sealed::from_set(set, None);
    let sealed = seal(vault, id, &s)?;
    store.oauth_signed_in(id, &sealed, &s.expires_at.to_rfc3339())?;
    Ok(())
}

/// The stored refresh token of an account, if any (to revoke it).
pub fn refresh_token(store: &Store, vault: &Vault, id: &str) -> Result<Option<SecretString>> {
    let (_, sealed) = store.oauth_tokens(id)?;
    let Some(sealed) = sealed else {
        return Ok(None);
    };
    Ok(unseal(vault, id, &sealed)?
        .refresh_token
        .map(SecretString::from))
}

/// The error of an account that must sign in (again).
pub fn login_needed(name: &str, why: &str) -> AppError {
    AppError::needs_user(
        format!("account {name} must sign in again (OAuth2)"),
        why.to_string(),
        format!("`mailroom account login {name}`"),
    )
    .with_code(Code::AuthLoginNeeded)
}

/// The app registration of an account: its client id and the sealed secret, if any.
pub fn client(acct: &Account, store: &Store, vault: &Vault) -> Result<Client> {
    let settings = settings(acct)?;
    let secret = store
        .credential(acct.id(), CLIENT_SECRET)?
        .map(|s| vault.open_sealed(&credential_context(acct.id(), CLIENT_SECRET), &s))
        .transpose()?;
    Ok(Client {
        id: settings.client_id.clone(),
        secret,
    })
}

/// The account's OAuth2 settings (an `oauth2` account without them is a config error).
pub fn settings(acct: &Account) -> Result<&crate::config::OAuth2Settings> {
    acct.cfg.oauth2.as_ref().ok_or_else(|| {
        AppError::local(
            format!(
                "account {} signs in with OAuth2 but has no [accounts.{}.oauth2] settings",
                acct.name, acct.name
            ),
            "",
            format!(
                "add them with `mailroom account edit {} --preset …` or --oauth-token-url …",
                acct.name
            ),
        )
        .with_code(Code::ConfigInvalid)
    })
}

/// Hands out one account's tokens (see the module's words). Cheap to share: IMAP and SMTP
/// connections of the same process ask the same source.
pub struct AccountTokens {
    id: String,
    name: String,
    user: String,
    provider: Provider,
    client: Client,
    db: Db,
    vault: Vault,
    /// What this process claims a refresh as: host, pid and a random part.
    holder: String,
    timeout: Duration,
    cache: Mutex<Option<(i64, Arc<Sealed>)>>,
}

/// The token source of an OAuth2 account. Fails at once when the account never signed in or
/// must sign in again, so a command says so before it connects anywhere.
pub fn source(acct: &Account, store: &Store, vault: &Vault) -> Result<AccountTokens> {
    let provider = crate::oauth::provider::resolve(settings(acct)?)?;
    let client = client(acct, store, vault)?;
    let (row, sealed) = store.oauth_tokens(acct.id())?;
    let cache = match (row, sealed) {
        (Some(r), _) if r.login_needed.is_some() => {
            return Err(login_needed(
                &acct.name,
                r.login_needed.as_deref().unwrap_or(""),
            ));
        }
        (Some(r), Some(s)) => Some((r.generation, Arc::new(unseal(vault, acct.id(), &s)?))),
        _ => {
            return Err(login_needed(&acct.name, "it has not signed in yet"));
        }
    };
    let url = store.url().ok_or_else(|| {
        AppError::local(
            "OAuth2 needs a store on disk or on a server",
            "",
            "report this as a bug",
        )
    })?;
    Ok(AccountTokens {
        id: acct.id().to_string(),
        name: acct.name.clone(),
        user: acct.cfg.user.clone(),
        provider,
        client,
        db: Db::open_url(&url)?,
        vault: vault.clone(),
        holder: format!(
            "{}:{}:{}",
            crate::config::host::id(),
            std::process::id(),
            crate::model::new_id()
        ),
        timeout: Duration::from_secs(acct.cfg.sync.timeout_secs.clamp(1, 60)),
        cache: Mutex::new(cache),
    })
}

/// How long after `failures` passing failures in a row nobody asks the provider again.
fn spacing(failures: i64) -> i64 {
    1i64 << failures.clamp(1, 7).saturating_sub(1).min(6)
}

impl AccountTokens {
    fn cached(&self) -> Option<(i64, Arc<Sealed>)> {
        self.cache.lock().ok().and_then(|c| c.clone())
    }

    fn remember(&self, generation: i64, s: Arc<Sealed>) -> AccessToken {
        let token = AccessToken {
            token: SecretString::from(s.access_token.clone()),
            generation,
        };
        if let Ok(mut c) = self.cache.lock() {
            *c = Some((generation, s));
        }
        token
    }

    async fn read(&self) -> Result<(OAuthRow, Arc<Sealed>)> {
        let id = self.id.clone();
        let (row, sealed) = self.db.run(move |s| s.oauth_tokens(&id)).await?;
        match (row, sealed) {
            (Some(r), _) if r.login_needed.is_some() => Err(login_needed(
                &self.name,
                r.login_needed.as_deref().unwrap_or(""),
            )),
            (Some(r), Some(s)) => {
                let set = Arc::new(unseal(&self.vault, &self.id, &s)?);
                Ok((r, set))
            }
            _ => Err(login_needed(&self.name, "it has not signed in yet")),
        }
    }

    /// A token newer than `refused` (a generation a server refused), or a fresh one when
    /// `refused` is None: the stored one if it will do, else refreshed here, or by the
    /// process that holds the claim (waited for).
    async fn fresh_token(&self, refused: Option<i64>) -> Result<AccessToken> {
        let deadline = tokio::time::Instant::now() + self.timeout * 2 + Duration::from_secs(10);
        loop {
            let (row, set) = self.read().await?;
            let good = match refused {
                Some(g) => row.generation != g && set.fresh(Utc::now()),
                None => set.fresh(Utc::now()),
            };
            if good {
                return Ok(self.remember(row.generation, set));
            }
            if let Some(e) = self.spaced_out(&row) {
                return Err(e);
            }
            let until = (Utc::now()
                + chrono::Duration::from_std(self.timeout * 2).unwrap_or_default()
                + chrono::Duration::seconds(5))
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
            let (id, holder, g) = (self.id.clone(), self.holder.clone(), row.generation);
            let claimed = self
                .db
                .run(move |s| s.oauth_claim_refresh(&id, g, &holder, &until))
                .await?;
            if claimed {
                return self.refresh(row.generation, &set).await;
            }
            if tokio::time::Instant::now() > deadline {
                return Err(AppError::transient(
                    format!(
                        "another process is refreshing the tokens of {} and has not finished",
                        self.name
                    ),
                    row.refresh_holder.unwrap_or_default(),
                    "mailroom asks again later",
                )
                .with_code(Code::OauthUnavailable));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// While the authorization server keeps failing, nobody asks it again for a while: the
    /// last failure, as an error, until then.
    fn spaced_out(&self, row: &OAuthRow) -> Option<AppError> {
        if row.failures == 0 {
            return None;
        }
        let at = row
            .failed_at
            .as_deref()
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())?;
        let wait = spacing(row.failures);
        let left = wait - (Utc::now() - at.with_timezone(&Utc)).num_seconds();
        (left > 0).then(|| {
            AppError::transient(
                format!(
                    "the authorization server of {} failed {} time(s) in a row; asking again in {left} s",
                    self.name, row.failures
                ),
                row.last_error.clone().unwrap_or_default(),
                "nothing to change on this side: mailroom asks again later",
            )
            .with_code(Code::OauthUnavailable)
        })
    }

    /// Refreshes generation `seen` (this process holds the claim) and stores the result.
    async fn refresh(&self, seen: i64, old: &Sealed) -> Result<AccessToken> {
        let Some(refresh) = old
            .refresh_token
            .as_ref()
            .map(|r| SecretString::from(r.clone()))
        else {
            return self.give_up("the provider issued no refresh token").await;
        };
        tracing::info!(account = %self.name, "refreshing the OAuth2 access token");
        let got = flow::refresh(&self.provider, &self.client, &refresh, self.timeout).await;
        match got {
            Ok(set) => {
                let sealed = Sealed::from_set(&set, Some(&refresh));
                let text = seal(&self.vault, &self.id, &sealed)?;
                let (id, holder, at) = (
                    self.id.clone(),
                    self.holder.clone(),
                    sealed.expires_at.to_rfc3339(),
                );
                let stored = self
                    .db
                    .run(move |s| s.oauth_refreshed(&id, &holder, seen, &text, &at))
                    .await?;
                match stored {
                    Some(g) => Ok(self.remember(g, Arc::new(sealed))),
                    // A sign-in replaced the tokens meanwhile: those are newer.
                    None => {
                        let (row, set) = self.read().await?;
                        Ok(self.remember(row.generation, set))
                    }
                }
            }
            Err(TokenError::Refused { refusal, words }) if final_refusal(&refusal) => {
                self.give_up(&format!(
                    "the provider refused to refresh the tokens: {words}"
                ))
                .await
            }
            Err(TokenError::Refused { words, .. }) => {
                let e = AppError::transient(
                    format!("the provider did not refresh the tokens of {}", self.name),
                    words,
                    "mailroom asks again later",
                )
                .with_code(Code::OauthUnavailable);
                self.failed_for_now(e).await
            }
            Err(TokenError::Unavailable(e)) => self.failed_for_now(e).await,
        }
    }

    async fn failed_for_now(&self, e: AppError) -> Result<AccessToken> {
        let (id, holder, words) = (self.id.clone(), self.holder.clone(), e.to_string());
        self.db
            .run(move |s| s.oauth_refresh_failed(&id, &holder, &words, false))
            .await?;
        Err(e)
    }

    /// Records that the account must sign in again (every process stops asking) and says so.
    async fn give_up(&self, why: &str) -> Result<AccessToken> {
        tracing::warn!(account = %self.name, "OAuth2 sign-in needed: {why}");
        let (id, holder, words) = (self.id.clone(), self.holder.clone(), why.to_string());
        self.db
            .run(move |s| s.oauth_refresh_failed(&id, &holder, &words, true))
            .await?;
        if let Ok(mut c) = self.cache.lock() {
            *c = None;
        }
        Err(login_needed(&self.name, why))
    }
}

/// Refusals after which no retry can help: the grant or the client is gone.
fn final_refusal(r: &Refusal) -> bool {
    matches!(
        r,
        Refusal::InvalidGrant
            | Refusal::Client
            | Refusal::Denied
            | Refusal::Expired
            | Refusal::Scope
    )
}

impl TokenSource for AccountTokens {
    fn current(&self) -> BoxFuture<'_, Result<AccessToken>> {
        Box::pin(async move {
            if let Some((g, set)) = self.cached()
                && set.fresh(Utc::now())
            {
                return Ok(AccessToken {
                    token: SecretString::from(set.access_token.clone()),
                    generation: g,
                });
            }
            self.fresh_token(None).await
        })
    }

    fn after_rejection<'a>(&'a self, used: &'a AccessToken) -> BoxFuture<'a, Result<AccessToken>> {
        Box::pin(self.fresh_token(Some(used.generation)))
    }

    fn refused<'a>(&'a self, server: &'a str, words: &'a str) -> BoxFuture<'a, AppError> {
        Box::pin(async move {
            let why = format!(
                "{server} refused even a freshly refreshed token for {}: {words}",
                self.user
            );
            match self.give_up(&why).await {
                Err(e) => e,
                Ok(_) => login_needed(&self.name, &why),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_fresh_until_a_quarter_of_its_life_is_left() {
        let now = Utc::now();
        let s = |lifetime: u64, left: i64| Sealed {
            access_token: String::new(),
            refresh_token: None,
            expires_at: now + chrono::Duration::seconds(left),
            lifetime,
        };
        assert!(s(20, 10).fresh(now));
        assert!(!s(20, 4).fresh(now), "20 s tokens: 5 s of margin");
        assert!(s(3600, 200).fresh(now));
        assert!(!s(3600, 100).fresh(now), "long tokens: 2 minutes of margin");
        assert!(!s(20, -1).fresh(now));
        assert_eq!(
            (spacing(1), spacing(2), spacing(3), spacing(40)),
            (1, 2, 4, 64)
        );
    }
}
