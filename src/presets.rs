//! Provider presets: servers, ports and security, and what each provider needs from the user.

use crate::config::Security;
use crate::error::{AppError, Result};

#[derive(Debug, Clone, Copy)]
pub struct Preset {
    pub id: &'static str,
    pub label: &'static str,
    pub imap_host: &'static str,
    pub imap_port: u16,
    pub imap_security: Security,
    pub smtp_host: &'static str,
    pub smtp_port: u16,
    pub smtp_security: Security,
    /// Shown when the preset is chosen: app passwords, OAuth-only providers, bridges.
    pub hint: Option<&'static str>,
    /// The OAuth2 provider (`google`, `microsoft`) whose endpoints and scopes `--auth oauth2`
    /// uses; None where the provider offers no OAuth2 for mail to others' apps.
    pub oauth: Option<&'static str>,
    /// Shown instead of `hint` when the account signs in with OAuth2.
    pub oauth_hint: Option<&'static str>,
}

const fn p(
    id: &'static str,
    label: &'static str,
    imap_host: &'static str,
    smtp_host: &'static str,
    hint: Option<&'static str>,
) -> Preset {
    Preset {
        id,
        label,
        imap_host,
        imap_port: 993,
        imap_security: Security::Tls,
        smtp_host,
        smtp_port: 587,
        smtp_security: Security::Starttls,
        hint,
        oauth: None,
        oauth_hint: None,
    }
}

/// A preset whose provider also signs in with OAuth2.
const fn with_oauth(p: Preset, provider: &'static str, hint: &'static str) -> Preset {
    Preset {
        oauth: Some(provider),
        oauth_hint: Some(hint),
        ..p
    }
}

const GOOGLE_OAUTH: &str = "OAuth2 with Google: your own client id (and secret) from a Google Cloud project, \"Desktop app\" type, with the Gmail scope (docs/oauth2.md); the browser flow: open the printed address anywhere, paste back the address it ends on.";
const MICROSOFT_OAUTH: &str = "OAuth2 with Microsoft: your own app registration (public client, device flow allowed, IMAP.AccessAsUser.All and SMTP.Send; docs/oauth2.md). Microsoft 365 tenants often switch SMTP AUTH off: an Exchange admin must enable Authenticated SMTP for the mailbox, or send through the system SMTP profile.";

pub const PRESETS: &[Preset] = &[
    with_oauth(
        p(
            "gmail",
            "Gmail",
            "imap.gmail.com",
            "smtp.gmail.com",
            Some(
                "Gmail needs 2-step verification and an app password (myaccount.google.com → Security → App passwords); your normal password is refused.",
            ),
        ),
        "google",
        GOOGLE_OAUTH,
    ),
    with_oauth(
        p(
            "google-workspace",
            "Google Workspace",
            "imap.gmail.com",
            "smtp.gmail.com",
            Some(
                "Your admin must allow IMAP; use an app password. Accounts that enforce OAuth only cannot log in with a password.",
            ),
        ),
        "google",
        GOOGLE_OAUTH,
    ),
    with_oauth(
        p(
            "outlook",
            "Outlook.com",
            "outlook.office365.com",
            "smtp-mail.outlook.com",
            Some(
                "Microsoft refuses password logins (basic auth) for IMAP/SMTP: add the account with --auth oauth2 (device flow).",
            ),
        ),
        "microsoft",
        MICROSOFT_OAUTH,
    ),
    with_oauth(
        p(
            "microsoft365",
            "Microsoft 365",
            "outlook.office365.com",
            "smtp.office365.com",
            Some(
                "Microsoft 365 refuses password logins (basic auth) for IMAP/SMTP: add the account with --auth oauth2 (device flow; --oauth-tenant for your directory).",
            ),
        ),
        "microsoft",
        MICROSOFT_OAUTH,
    ),
    p(
        "yahoo",
        "Yahoo Mail",
        "imap.mail.yahoo.com",
        "smtp.mail.yahoo.com",
        Some("Yahoo needs an app password (Account security → Generate app password)."),
    ),
    p(
        "icloud",
        "iCloud Mail",
        "imap.mail.me.com",
        "smtp.mail.me.com",
        Some(
            "iCloud needs an app-specific password (appleid.apple.com); the login is your full iCloud address.",
        ),
    ),
    p(
        "fastmail",
        "Fastmail",
        "imap.fastmail.com",
        "smtp.fastmail.com",
        Some("Fastmail needs an app password (Settings → Privacy & Security → App passwords)."),
    ),
    p(
        "zoho",
        "Zoho Mail",
        "imap.zoho.com",
        "smtp.zoho.com",
        Some(
            "Enable IMAP access in Zoho's settings; with 2FA use an application-specific password.",
        ),
    ),
    with_oauth(
        p(
            "godaddy",
            "GoDaddy (Microsoft 365)",
            "outlook.office365.com",
            "smtp.office365.com",
            Some("GoDaddy mail is Microsoft 365: add the account with --auth oauth2."),
        ),
        "microsoft",
        MICROSOFT_OAUTH,
    ),
    p(
        "123reg",
        "123 Reg",
        "imap.123-reg.co.uk",
        "smtp.123-reg.co.uk",
        None,
    ),
    p(
        "bluehost",
        "Bluehost-style (mail.yourdomain)",
        "mail.yourdomain.com",
        "mail.yourdomain.com",
        Some("Replace yourdomain.com with your own domain; the login is the full address."),
    ),
    Preset {
        id: "proton-bridge",
        label: "Proton Mail Bridge",
        imap_host: "127.0.0.1",
        imap_port: 1143,
        imap_security: Security::Starttls,
        smtp_host: "127.0.0.1",
        smtp_port: 1025,
        smtp_security: Security::Starttls,
        hint: Some(
            "Proton Bridge must run on this machine; use the password the Bridge shows (not your Proton password) and its certificate (--ca-file, or --insecure-skip-verify for the local bridge).",
        ),
        oauth: None,
        oauth_hint: None,
    },
];

pub fn find(id: &str) -> Result<&'static Preset> {
    PRESETS
        .iter()
        .find(|p| p.id.eq_ignore_ascii_case(id))
        .ok_or_else(|| {
            let ids: Vec<&str> = PRESETS.iter().map(|p| p.id).collect();
            AppError::usage(
                format!("unknown preset {id:?}"),
                format!("choose one of: {}", ids.join(", ")),
            )
        })
}
