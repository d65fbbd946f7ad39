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
    }
}

pub const PRESETS: &[Preset] = &[
    p(
        "gmail",
        "Gmail",
        "imap.gmail.com",
        "smtp.gmail.com",
        Some(
            "Gmail needs 2-step verification and an app password (myaccount.google.com → Security → App passwords); your normal password is refused.",
        ),
    ),
    p(
        "google-workspace",
        "Google Workspace",
        "imap.gmail.com",
        "smtp.gmail.com",
        Some(
            "Your admin must allow IMAP; use an app password. Accounts that enforce OAuth only cannot log in with a password.",
        ),
    ),
    p(
        "outlook",
        "Outlook.com / Microsoft 365",
        "outlook.office365.com",
        "smtp.office365.com",
        Some(
            "Microsoft refuses password logins (basic auth) for IMAP/SMTP on most tenants and needs OAuth2, which mailroom does not support yet; an admin may allow app passwords.",
        ),
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
    p(
        "godaddy",
        "GoDaddy (Microsoft 365)",
        "outlook.office365.com",
        "smtp.office365.com",
        Some("GoDaddy mail is Microsoft 365: see the Outlook note about OAuth2."),
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
