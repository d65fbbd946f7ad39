//! Where an account's OAuth2 sign-in happens: the provider's endpoints and scopes, from a
//! preset (Google, Microsoft) or given one by one for another provider.

use crate::config::{OAuth2Settings, OAuthFlow};
use crate::error::{AppError, Result};

/// The endpoints and scopes of one sign-in, resolved from the account's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provider {
    /// For messages: `Google`, `Microsoft`, or the token endpoint's host.
    pub label: String,
    pub auth_url: Option<url::Url>,
    pub token_url: url::Url,
    pub device_url: Option<url::Url>,
    pub revoke_url: Option<url::Url>,
    pub scopes: Vec<String>,
    /// Extra parameters of the authorization request (Google's `access_type=offline`).
    pub auth_params: Vec<(&'static str, &'static str)>,
    /// Why the device flow is refused, when the provider refuses it for mail.
    pub no_device: Option<&'static str>,
}

/// The OAuth2 providers the presets know (`oauth2.provider` in config.toml).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Known {
    Google,
    Microsoft,
}

impl Known {
    pub fn parse(s: &str) -> Option<Known> {
        match s {
            "google" => Some(Known::Google),
            "microsoft" => Some(Known::Microsoft),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Known::Google => "google",
            Known::Microsoft => "microsoft",
        }
    }
    /// The flow that works for mail: Google refuses mail scopes in the device flow.
    pub fn default_flow(self) -> OAuthFlow {
        match self {
            Known::Google => OAuthFlow::Browser,
            Known::Microsoft => OAuthFlow::Device,
        }
    }
}

/// Google refuses `https://mail.google.com/` in the device flow (its "limited input device"
/// clients get only a few scopes).
const GOOGLE_NO_DEVICE: &str = "Google does not allow mail access through the device flow; use --oauth-flow browser (it works over SSH too: open the printed address anywhere and paste back the address the browser ends on)";

fn url(s: &str) -> Result<url::Url> {
    url::Url::parse(s).map_err(|e| {
        AppError::local(
            format!("the built-in endpoint {s} is not a URL ({e})"),
            "",
            "report this as a bug",
        )
    })
}

fn known(k: Known, tenant: Option<&str>) -> Result<Provider> {
    Ok(match k {
        Known::Google => Provider {
            label: "Google".into(),
            auth_url: Some(url("https://accounts.google.com/o/oauth2/v2/auth")?),
            token_url: url("https://oauth2.googleapis.com/token")?,
            device_url: None,
            revoke_url: Some(url("https://oauth2.googleapis.com/revoke")?),
            scopes: vec!["https://mail.google.com/".into()],
            auth_params: vec![("access_type", "offline"), ("prompt", "consent")],
            no_device: Some(GOOGLE_NO_DEVICE),
        },
        Known::Microsoft => {
            let t = tenant.unwrap_or("common");
            if t.is_empty()
                || !t
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-.".contains(c))
            {
                return Err(AppError::usage(
                    format!("--oauth-tenant {t:?} is not a tenant name or id"),
                    "give the directory (tenant) id or its domain, e.g. contoso.onmicrosoft.com; `common` or `organizations` for any work account, `consumers` for Outlook.com",
                ));
            }
            let base = format!("https://login.microsoftonline.com/{t}/oauth2/v2.0");
            Provider {
                label: "Microsoft".into(),
                auth_url: Some(url(&format!("{base}/authorize"))?),
                token_url: url(&format!("{base}/token"))?,
                device_url: Some(url(&format!("{base}/devicecode"))?),
                // Microsoft's identity platform has no token revocation endpoint.
                revoke_url: None,
                scopes: vec![
                    "https://outlook.office.com/IMAP.AccessAsUser.All".into(),
                    "https://outlook.office.com/SMTP.Send".into(),
                    "offline_access".into(),
                ],
                auth_params: vec![],
                no_device: None,
            }
        }
    })
}

/// The provider of an account's OAuth2 settings: a known provider with its endpoints, any of
/// which the settings may override, or a generic one whose token URL (at least) is given.
pub fn resolve(s: &OAuth2Settings) -> Result<Provider> {
    let base = match s.provider.as_deref() {
        Some(name) => Some(known(
            Known::parse(name).ok_or_else(|| {
                AppError::usage(
                    format!("unknown OAuth2 provider {name:?}"),
                    "use google or microsoft, or give the endpoints (--oauth-auth-url, --oauth-token-url, --oauth-device-url)",
                )
            })?,
            s.tenant.as_deref(),
        )?),
        None => None,
    };
    let given = |v: &Option<String>, what: &str| {
        v.as_deref()
            .map(|u| super::http::check_url(u, what))
            .transpose()
    };
    let token_url = match (given(&s.token_url, "--oauth-token-url")?, &base) {
        (Some(u), _) => u,
        (None, Some(b)) => b.token_url.clone(),
        (None, None) => {
            return Err(AppError::usage(
                "an OAuth2 account needs a provider",
                "use --preset gmail|google-workspace|outlook|microsoft365, or give --oauth-token-url (and --oauth-device-url or --oauth-auth-url)",
            ));
        }
    };
    let label = match &base {
        Some(b) => b.label.clone(),
        None => token_url.host_str().unwrap_or("the provider").to_string(),
    };
    let pick = |v: Option<url::Url>, b: Option<url::Url>| v.or(b);
    Ok(Provider {
        label,
        auth_url: pick(
            given(&s.auth_url, "--oauth-auth-url")?,
            base.as_ref().and_then(|b| b.auth_url.clone()),
        ),
        token_url,
        device_url: pick(
            given(&s.device_url, "--oauth-device-url")?,
            base.as_ref().and_then(|b| b.device_url.clone()),
        ),
        revoke_url: pick(
            given(&s.revoke_url, "--oauth-revoke-url")?,
            base.as_ref().and_then(|b| b.revoke_url.clone()),
        ),
        scopes: match (&s.scopes, &base) {
            (Some(sc), _) => sc.clone(),
            (None, Some(b)) => b.scopes.clone(),
            (None, None) => Vec::new(),
        },
        auth_params: base
            .as_ref()
            .map(|b| b.auth_params.clone())
            .unwrap_or_default(),
        no_device: base.as_ref().and_then(|b| b.no_device),
    })
}

impl Provider {
    /// The flow to use: the one chosen, else the provider's, else the device flow when the
    /// provider has one.
    pub fn flow(&self, s: &OAuth2Settings) -> Result<OAuthFlow> {
        let flow = s.flow.unwrap_or_else(|| {
            match (
                s.provider.as_deref().and_then(Known::parse),
                &self.device_url,
            ) {
                (Some(k), _) => k.default_flow(),
                (None, Some(_)) => OAuthFlow::Device,
                (None, None) => OAuthFlow::Browser,
            }
        });
        match flow {
            OAuthFlow::Device if self.device_url.is_none() => Err(AppError::usage(
                "the device flow is not available for this account",
                self.no_device.unwrap_or(
                    "give the provider's device authorization endpoint with --oauth-device-url, or use --oauth-flow browser",
                ),
            )),
            OAuthFlow::Browser if self.auth_url.is_none() => Err(AppError::usage(
                "the browser flow needs the provider's authorization endpoint",
                "give it with --oauth-auth-url, or use --oauth-flow device",
            )),
            f => Ok(f),
        }
    }

    /// The scopes as the endpoints take them (space separated).
    pub fn scope(&self) -> String {
        self.scopes.join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_fill_endpoints_and_a_generic_provider_needs_its_own() {
        let ms = OAuth2Settings {
            provider: Some("microsoft".into()),
            tenant: Some("contoso.onmicrosoft.com".into()),
            ..Default::default()
        };
        let p = resolve(&ms).unwrap();
        assert_eq!(
            p.token_url.as_str(),
            "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token"
        );
        assert!(p.revoke_url.is_none(), "Microsoft revokes nothing");
        assert_eq!(p.flow(&ms).unwrap(), OAuthFlow::Device);
        assert!(p.scope().contains("offline_access"));
        let g = OAuth2Settings {
            provider: Some("google".into()),
            ..Default::default()
        };
        let p = resolve(&g).unwrap();
        assert_eq!(p.flow(&g).unwrap(), OAuthFlow::Browser);
        let e = p
            .flow(&OAuth2Settings {
                flow: Some(OAuthFlow::Device),
                ..g.clone()
            })
            .unwrap_err();
        assert!(e.fix.contains("--oauth-flow browser"), "{e}");
        let bad = OAuth2Settings {
            provider: Some("microsoft".into()),
            tenant: Some("a/b".into()),
            ..Default::default()
        };
        assert!(resolve(&bad).is_err());
        assert!(resolve(&OAuth2Settings::default()).is_err());
        let generic = OAuth2Settings {
            token_url: Some("http://127.0.0.1:6980/token".into()),
            device_url: Some("http://127.0.0.1:6980/device".into()),
            scopes: Some(vec!["imap".into(), "smtp".into()]),
            ..Default::default()
        };
        let p = resolve(&generic).unwrap();
        assert_eq!(p.label, "127.0.0.1");
        assert_eq!(p.flow(&generic).unwrap(), OAuthFlow::Device);
        assert_eq!(p.scope(), "imap smtp");
        let http = OAuth2Settings {
            token_url: Some("http://auth.example.com/token".into()),
            ..Default::default()
        };
        assert!(resolve(&http).unwrap_err().fix.contains("loopback"));
    }
}
