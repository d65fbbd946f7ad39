//! OAuth2 sign-in of an account: its settings from the `--oauth-*` flags (and a preset),
//! `account login` (the device or the browser flow, then the tokens sealed in the store), the
//! revocation when the account goes, and what `account show` tells about it. The protocol is
//! `oauth/`, keeping the tokens fresh `tokens/`; this file is the user's side of both.

use secrecy::SecretString;
use serde::Serialize;
use serde_json::json;

use super::Ctx;
use super::access::{self, Need};
use crate::account::{Account, credential_context};
use crate::config::{AccountConfig, AuthKind, OAuth2Settings, OAuthFlow};
use crate::error::{AppError, Result};
use crate::store::Store;
use crate::store::oauth::CLIENT_SECRET;

pub use crate::tokens::login::LoginEvent;

/// The `--oauth-*` flags as given (`account add`/`edit`, the console's setup form).
#[derive(Debug, Clone, Default)]
pub struct OAuthSpec {
    pub client_id: Option<String>,
    pub tenant: Option<String>,
    /// `device` or `browser`.
    pub flow: Option<String>,
    pub auth_url: Option<String>,
    pub token_url: Option<String>,
    pub device_url: Option<String>,
    pub revoke_url: Option<String>,
    /// Space or comma separated.
    pub scopes: Option<String>,
}

impl OAuthSpec {
    fn any(&self) -> bool {
        [
            &self.client_id,
            &self.tenant,
            &self.flow,
            &self.auth_url,
            &self.token_url,
            &self.device_url,
            &self.revoke_url,
            &self.scopes,
        ]
        .iter()
        .any(|v| v.is_some())
    }
}

/// `spec` applied to `base` (the account's settings, or none for a new one); a preset names the
/// provider when nothing else does.
fn apply(
    spec: &OAuthSpec,
    preset: Option<&crate::presets::Preset>,
    base: Option<&OAuth2Settings>,
) -> Result<OAuth2Settings> {
    let mut o = base.cloned().unwrap_or_default();
    if o.provider.is_none() && o.token_url.is_none() && spec.token_url.is_none() {
        o.provider = preset.and_then(|p| p.oauth).map(str::to_string);
    }
    let text = |v: &Option<String>| {
        v.as_deref()
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_string)
    };
    if let Some(id) = text(&spec.client_id) {
        o.client_id = id;
    }
    for (slot, v) in [
        (&mut o.tenant, &spec.tenant),
        (&mut o.auth_url, &spec.auth_url),
        (&mut o.token_url, &spec.token_url),
        (&mut o.device_url, &spec.device_url),
        (&mut o.revoke_url, &spec.revoke_url),
    ] {
        if let Some(t) = text(v) {
            *slot = Some(t);
        }
    }
    if let Some(f) = &spec.flow {
        o.flow = Some(OAuthFlow::parse(f)?);
    }
    if let Some(s) = &spec.scopes {
        let list: Vec<String> = s
            .split([' ', ','])
            .filter(|w| !w.is_empty())
            .map(str::to_string)
            .collect();
        o.scopes = (!list.is_empty()).then_some(list);
    }
    Ok(o)
}

fn oauth_flags_need_oauth2() -> AppError {
    AppError::usage(
        "the --oauth-* flags apply to an OAuth2 account",
        "add --auth oauth2, or leave them out for a password",
    )
}

/// A new account's OAuth2 settings (None for a password account).
pub fn new_settings(
    auth: AuthKind,
    spec: &OAuthSpec,
    preset: Option<&crate::presets::Preset>,
) -> Result<Option<OAuth2Settings>> {
    match auth {
        AuthKind::Password if spec.any() => Err(oauth_flags_need_oauth2()),
        AuthKind::Password => Ok(None),
        AuthKind::OAuth2 => apply(spec, preset, None).map(Some),
    }
}

/// `account edit`'s `--auth` and `--oauth-*` applied to `new`.
pub fn edited(new: &mut AccountConfig, s: &super::accounts::ServerSpec) -> Result<()> {
    if let Some(a) = &s.auth {
        new.auth = AuthKind::parse(a)?;
    }
    match new.auth {
        AuthKind::Password if s.oauth.any() => return Err(oauth_flags_need_oauth2()),
        AuthKind::Password => new.oauth2 = None,
        AuthKind::OAuth2 if s.oauth.any() || new.oauth2.is_none() => {
            let preset = new
                .preset
                .as_deref()
                .and_then(|p| crate::presets::find(p).ok());
            new.oauth2 = Some(apply(&s.oauth, preset, new.oauth2.as_ref())?);
            new.password_command = None;
        }
        AuthKind::OAuth2 => {}
    }
    Ok(())
}

/// An OAuth2 account's settings make a sign-in possible (checked without network I/O).
pub fn valid(a: &AccountConfig) -> Result<()> {
    if a.auth != AuthKind::OAuth2 {
        return Ok(());
    }
    let o = a.oauth2.as_ref().ok_or_else(|| {
        AppError::usage(
            "an OAuth2 account needs a provider",
            "use --preset gmail|google-workspace|outlook|microsoft365, or give --oauth-token-url with --oauth-device-url or --oauth-auth-url",
        )
    })?;
    if o.client_id.trim().is_empty() {
        return Err(AppError::usage(
            "an OAuth2 account needs the client id of your app registration",
            "give it with --oauth-client-id ID (docs/oauth2.md shows how to register one with Google and with Microsoft)",
        ));
    }
    let p = crate::oauth::provider::resolve(o)?;
    p.flow(o)?;
    Ok(())
}

pub fn seal_client_secret(
    store: &Store,
    vault: &crate::secret::Vault,
    id: &str,
    secret: &SecretString,
) -> Result<()> {
    store.set_credential(
        id,
        CLIENT_SECRET,
        &vault.seal(&credential_context(id, CLIENT_SECRET), secret)?,
    )
}

/// An OAuth2 account as `account show` tells it: where it signs in (never a token or secret)
/// and whether it is signed in.
#[derive(Debug, Clone, Serialize)]
pub struct OAuthView {
    /// `google`, `microsoft`, or null for endpoints given one by one.
    pub provider: Option<String>,
    pub client_id: String,
    pub client_secret_stored: bool,
    pub tenant: Option<String>,
    /// The flow `account login` runs (null when the settings do not allow one).
    pub flow: Option<OAuthFlow>,
    pub auth_url: Option<String>,
    pub token_url: Option<String>,
    pub device_url: Option<String>,
    pub revoke_url: Option<String>,
    pub scopes: Vec<String>,
    pub signed_in: bool,
    /// Why `account login` is needed, when it is.
    pub login_needed: Option<String>,
    /// When the current access token runs out (it is refreshed before).
    pub access_expires_at: Option<String>,
    pub refreshes: i64,
}

impl OAuthView {
    pub fn of(a: &AccountConfig) -> Option<OAuthView> {
        if a.auth != AuthKind::OAuth2 {
            return None;
        }
        let o = a.oauth2.clone().unwrap_or_default();
        let p = crate::oauth::provider::resolve(&o).ok();
        let url = |u: Option<&url::Url>| u.map(|u| u.to_string());
        Some(OAuthView {
            provider: o.provider.clone(),
            client_id: o.client_id.clone(),
            client_secret_stored: false,
            tenant: o.tenant.clone(),
            flow: p.as_ref().and_then(|p| p.flow(&o).ok()),
            auth_url: url(p.as_ref().and_then(|p| p.auth_url.as_ref())),
            token_url: url(p.as_ref().map(|p| &p.token_url)),
            device_url: url(p.as_ref().and_then(|p| p.device_url.as_ref())),
            revoke_url: url(p.as_ref().and_then(|p| p.revoke_url.as_ref())),
            scopes: p.map(|p| p.scopes).unwrap_or_default(),
            signed_in: false,
            login_needed: None,
            access_expires_at: None,
            refreshes: 0,
        })
    }

    /// What the store knows: tokens, a refusal, the secret.
    pub fn fill(&mut self, store: &Store, id: &str) -> Result<()> {
        self.client_secret_stored = store.credential(id, CLIENT_SECRET)?.is_some();
        let (row, sealed) = store.oauth_tokens(id)?;
        if let Some(r) = row {
            self.signed_in = sealed.is_some() && r.login_needed.is_none();
            self.login_needed = r.login_needed;
            self.access_expires_at = r.expires_at;
            self.refreshes = r.refreshes;
        } else {
            self.login_needed = Some("it has not signed in yet".into());
        }
        Ok(())
    }
}

/// What `account login` ended with.
#[derive(Debug, Clone, Serialize)]
pub struct LoginDone {
    pub account: String,
    pub user: String,
    pub flow: OAuthFlow,
}

/// `account login NAME`: runs the account's flow, telling `on_event` what the person must do,
/// and stores the tokens; an account in `error` is retried. `pasted` brings addresses pasted
/// back in the browser flow (None where nobody can paste).
pub async fn login(
    cx: &Ctx,
    name: &str,
    on_event: &mut (dyn FnMut(LoginEvent) + Send),
    pasted: Option<tokio::sync::mpsc::UnboundedReceiver<String>>,
) -> Result<LoginDone> {
    let n = name.to_string();
    let (acct, client) = cx.blocking(move |cx| login_input(cx, &n)).await?;
    let settings = crate::tokens::settings(&acct)?.clone();
    let flow = crate::oauth::provider::resolve(&settings)?.flow(&settings)?;
    let timeout = std::time::Duration::from_secs(acct.cfg.sync.timeout_secs.clamp(5, 60));
    let set = crate::tokens::login::login(
        &settings,
        &client,
        &acct.cfg.user,
        timeout,
        on_event,
        pasted,
    )
    .await
    .map_err(|mut e| {
        e.fix = e.fix.replace("NAME", &acct.name);
        e
    })?;
    let a = acct.clone();
    cx.blocking(move |cx| signed_in(cx, &a, &set, flow)).await?;
    Ok(LoginDone {
        account: acct.name.clone(),
        user: acct.cfg.user.clone(),
        flow,
    })
}

/// Stores a sign-in's tokens and lets sync try again.
fn signed_in(cx: &Ctx, a: &Account, set: &crate::oauth::TokenSet, flow: OAuthFlow) -> Result<()> {
    let store = cx.store()?;
    crate::tokens::store_signed_in(&store, &cx.vault()?, a.id(), set)?;
    store.insert_account(a.id(), &a.name, a.cfg.enabled)?;
    store.reset_failures(a.id(), a.cfg.enabled)?;
    store.audit(
        &cx.operator,
        "account_login",
        Some(a.id()),
        Some(&a.name),
        &json!({"flow": flow.as_str()}),
    )?;
    Ok(())
}

/// The account to sign in (the owner's to do) and its app registration.
fn login_input(cx: &Ctx, name: &str) -> Result<(Account, crate::oauth::Client)> {
    let config = cx.config()?;
    let store = cx.store()?;
    access::account(cx, &config, &store, name, Need::Configure)?;
    let acct = Account::from_config(&config, name)?;
    if acct.cfg.auth != AuthKind::OAuth2 {
        return Err(AppError::usage(
            format!("account {name} signs in with a password, not OAuth2"),
            format!(
                "`mailroom account set-password {name}`; or switch it: `mailroom account edit {name} --auth oauth2 --oauth-client-id ID`"
            ),
        ));
    }
    let client = crate::tokens::client(&acct, &store, &cx.vault()?)?;
    Ok((acct, client))
}

/// What became of an account's tokens when it was removed.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "snake_case", tag = "outcome")]
pub enum Revoked {
    /// The provider confirmed the revocation.
    Revoked,
    /// The provider offers no revocation (Microsoft): the tokens run out by themselves; the
    /// app's access can be removed in the account's settings.
    NotOffered { provider: String },
    /// Nothing was stored.
    NoTokens,
    /// The provider could not be asked; the detail says why.
    Failed { detail: String },
}

/// Revokes an OAuth2 account's grant where the provider offers revocation (RFC 7009: revoking
/// the refresh token ends every token of the grant), then forgets the tokens. None for a
/// password account.
pub async fn revoke(cx: &Ctx, name: &str) -> Result<Option<Revoked>> {
    let n = name.to_string();
    let found = cx.blocking(move |cx| revoke_input(cx, &n)).await?;
    let Some((acct, client, provider, refresh)) = found else {
        return Ok(None);
    };
    let outcome = match (refresh, provider.revoke_url.is_some()) {
        (None, _) => Revoked::NoTokens,
        (Some(_), false) => Revoked::NotOffered {
            provider: provider.label.clone(),
        },
        (Some(token), true) => {
            let timeout = std::time::Duration::from_secs(acct.cfg.sync.timeout_secs.clamp(5, 30));
            match crate::oauth::flow::revoke(&provider, &client, &token, "refresh_token", timeout)
                .await
            {
                Ok(_) => Revoked::Revoked,
                Err(e) => Revoked::Failed {
                    detail: e.to_string(),
                },
            }
        }
    };
    let id = acct.id().to_string();
    cx.blocking(move |cx| forget(cx, &id)).await?;
    Ok(Some(outcome))
}

fn forget(cx: &Ctx, id: &str) -> Result<()> {
    cx.store()?.oauth_forget(id)
}

type RevokeInput = (
    Account,
    crate::oauth::Client,
    crate::oauth::Provider,
    Option<SecretString>,
);

fn revoke_input(cx: &Ctx, name: &str) -> Result<Option<RevokeInput>> {
    let config = cx.config()?;
    let store = cx.store()?;
    access::account(cx, &config, &store, name, Need::Configure)?;
    let acct = Account::from_config(&config, name)?;
    if acct.cfg.auth != AuthKind::OAuth2 {
        return Ok(None);
    }
    let vault = cx.vault()?;
    let client = crate::tokens::client(&acct, &store, &vault)?;
    let provider = crate::oauth::provider::resolve(crate::tokens::settings(&acct)?)?;
    let refresh = crate::tokens::refresh_token(&store, &vault, acct.id())?;
    Ok(Some((acct, client, provider, refresh)))
}

#[cfg(test)]
mod tests {
    use super::super::accounts::{self, ServerSpec};
    use super::*;
    use crate::error::Code;

    fn spec(preset: &str, client: Option<&str>) -> ServerSpec {
        ServerSpec {
            email: Some("w@example.test".into()),
            preset: Some(preset.into()),
            auth: Some("oauth2".into()),
            oauth: OAuthSpec {
                client_id: client.map(str::to_string),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[test]
    fn settings_come_from_the_preset_or_the_flags_and_are_checked_offline() {
        let dir = tempfile::tempdir().unwrap();
        let home = crate::config::Home {
            root: dir.path().to_path_buf(),
        };
        let cx = Ctx::new(home, "alice");
        let e = accounts::prepare(&cx, "w", &spec("microsoft365", None), None).unwrap_err();
        assert!(e.fix.contains("--oauth-client-id"), "{e}");
        let new = accounts::prepare(&cx, "w", &spec("microsoft365", Some("cid")), None).unwrap();
        let o = new.cfg.oauth2.clone().unwrap();
        assert_eq!(
            (o.provider.as_deref(), o.client_id.as_str()),
            (Some("microsoft"), "cid")
        );
        assert!(new.signs_in() && new.hint().unwrap().contains("SMTP AUTH"));
        // Google refuses mail scopes in the device flow.
        let mut g = spec("gmail", Some("cid"));
        g.oauth.flow = Some("device".into());
        let e = accounts::prepare(&cx, "g", &g, None).unwrap_err();
        assert!(e.fix.contains("--oauth-flow browser"), "{e}");
        // --oauth-* flags without --auth oauth2, plain http away from loopback.
        let mut p = spec("fastmail", Some("cid"));
        p.auth = None;
        assert_eq!(
            accounts::prepare(&cx, "p", &p, None).unwrap_err().kind,
            crate::error::Kind::Usage
        );
        let mut h = spec("fastmail", Some("cid"));
        h.preset = None;
        h.imap = Some("127.0.0.1:6993".into());
        h.smtp = Some("127.0.0.1:6587".into());
        h.oauth.token_url = Some("http://auth.example.com/token".into());
        let e = accounts::prepare(&cx, "h", &h, None).unwrap_err();
        assert!(e.fix.contains("loopback"), "{e}");
        // Stored without a password; not signed in until `account login`.
        accounts::add(&cx, &new, None).unwrap();
        let v = accounts::show(&cx, "w").unwrap();
        assert_eq!(v.password_source, accounts::PasswordSource::OAuth2);
        let o = v.oauth2.unwrap();
        assert_eq!((o.signed_in, o.flow), (false, Some(OAuthFlow::Device)));
        assert!(o.login_needed.unwrap().contains("not signed in"));
        let acct = Account::from_config(&cx.config().unwrap(), "w").unwrap();
        let e = acct
            .credential(&cx.store().unwrap(), &cx.vault().unwrap())
            .unwrap_err();
        assert_eq!(e.code, Code::AuthLoginNeeded);
        assert!(e.fix.contains("mailroom account login w"), "{e}");
        // Back to a password: the OAuth2 settings go.
        let change = accounts::Edit {
            server: ServerSpec {
                auth: Some("password".into()),
                ..Default::default()
            },
            ..Default::default()
        };
        let v = accounts::edit(&cx, "w", &change, || Ok(None)).unwrap();
        assert!(v.oauth2.is_none() && v.auth == AuthKind::Password);
    }
}
