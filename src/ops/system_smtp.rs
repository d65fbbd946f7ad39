//! The system SMTP profile (`[system_smtp]`): one SMTP server for the whole installation that an
//! account sends through instead of its own (`account edit NAME --use-system-smtp true`), e.g. a
//! company relay. `system-smtp show|set|remove`.
//!
//! Anyone may read it (it holds no secret: its password is sealed in the database, or comes
//! from a command). Changing or removing it changes how every account that uses it sends, so
//! it needs the right to configure each of them ([`access::system_smtp`]).

use std::path::PathBuf;

use secrecy::SecretString;
use serde::Serialize;
use serde_json::json;

use super::Ctx;
use super::access;
use super::accounts::SystemSmtpView;
use crate::account::{SYSTEM_SMTP_ID, credential_context};
use crate::config::{self, Config, Security, Server, SmtpAuth, SystemSmtp, default_smtp_port};
use crate::error::{AppError, Result};

/// `system-smtp show`: the profile (none when unset) and the accounts this operator sees that
/// send through it.
#[derive(Debug, Clone, Serialize)]
pub struct Profile {
    pub system_smtp: Option<SystemSmtpView>,
    pub used_by: Vec<String>,
}

/// What `system-smtp set` changes; `None`/`false` leaves a setting as it is. Creating the
/// profile needs `server`.
#[derive(Debug, Clone, Default)]
pub struct ProfileEdit {
    /// `HOST[:PORT]`; the port defaults from the security (starttls 587, tls 465, none 25).
    pub server: Option<String>,
    /// `tls`, `starttls` (default) or `none`.
    pub security: Option<String>,
    pub user: Option<String>,
    /// `plain|login|none`, or `default` (PLAIN if offered, else LOGIN).
    pub smtp_auth: Option<String>,
    pub ca_file: Option<PathBuf>,
    pub insecure_skip_verify: bool,
    pub verify_certificates: bool,
    /// Run this for the password whenever needed (nothing stored).
    pub password_command: Option<String>,
}

/// The profile and who uses it.
pub fn show(cx: &Ctx) -> Result<Profile> {
    let config = cx.config()?;
    let store = cx.store()?;
    let stored = store.credential(SYSTEM_SMTP_ID, "smtp")?.is_some();
    Ok(Profile {
        system_smtp: config
            .system_smtp
            .as_ref()
            .map(|s| SystemSmtpView::of(s, stored)),
        used_by: used_by(cx, &config),
    })
}

/// The accounts this operator sees that send through the profile.
fn used_by(cx: &Ctx, config: &Config) -> Vec<String> {
    config
        .accounts
        .iter()
        .filter(|(_, a)| a.use_system_smtp && cx.sees(a))
        .map(|(n, _)| n.clone())
        .collect()
}

/// Creates or changes the profile. `read_password` is asked only once the change is allowed
/// and valid (a password to seal, or none).
pub fn set(
    cx: &Ctx,
    change: &ProfileEdit,
    read_password: impl FnOnce() -> Result<Option<SecretString>>,
) -> Result<Profile> {
    let config = cx.config()?;
    let store = cx.store()?;
    access::system_smtp(cx, &config, &store)?;
    let old = config.system_smtp.as_ref();
    let mut new = edited(old, change)?;
    if let Some(pw) = read_password()? {
        let sealed = cx
            .vault()?
            .seal(&credential_context(SYSTEM_SMTP_ID, "smtp"), &pw)?;
        store.set_credential(SYSTEM_SMTP_ID, "smtp", &sealed)?;
        new.password_command = None;
    } else if change.password_command.is_some() {
        // The command supplies it from now on: no stale sealed copy stays behind.
        store.delete_credential(SYSTEM_SMTP_ID, "smtp")?;
    }
    config::edit(&cx.home, |doc| config::update_system_smtp(doc, old, &new))?;
    // Accounts that gave up on a send through the old profile may try again.
    for a in config.accounts.values().filter(|a| a.use_system_smtp) {
        store.reset_failures(&a.id, a.enabled)?;
    }
    store.audit(
        &cx.operator,
        if old.is_some() {
            "system_smtp_edit"
        } else {
            "system_smtp_add"
        },
        None,
        Some("system SMTP profile"),
        &json!({"server": new.server.display(), "insecure": new.insecure_skip_verify}),
    )?;
    drop(store);
    show(cx)
}

/// The profile with `change` applied (nothing stored).
fn edited(old: Option<&SystemSmtp>, change: &ProfileEdit) -> Result<SystemSmtp> {
    let security = change
        .security
        .as_deref()
        .map(Security::parse)
        .transpose()?;
    let server = match (&change.server, old) {
        (Some(spec), _) => Server::parse(
            spec,
            security.unwrap_or(Security::Starttls),
            default_smtp_port,
        )?,
        (None, Some(o)) => Server {
            security: security.unwrap_or(o.server.security),
            ..o.server.clone()
        },
        (None, None) => {
            return Err(AppError::usage(
                "there is no system SMTP profile yet: --smtp HOST[:PORT] is required",
                "mailroom system-smtp set --smtp HOST[:PORT] [--smtp-security S] [--user LOGIN] [--password-stdin | --smtp-auth none]",
            ));
        }
    };
    let mut new = match old {
        Some(o) => SystemSmtp {
            server,
            ..o.clone()
        },
        None => SystemSmtp {
            server,
            user: String::new(),
            smtp_auth: None,
            password_command: None,
            insecure_skip_verify: false,
            ca_file: None,
        },
    };
    if let Some(u) = &change.user {
        new.user = u.clone();
    }
    if let Some(a) = &change.smtp_auth {
        new.smtp_auth = match a.trim().to_ascii_lowercase().as_str() {
            "default" => None,
            _ => Some(SmtpAuth::parse(a)?),
        };
        SmtpAuth::check(new.smtp_auth, config::AuthKind::Password)?;
    }
    if let Some(cmd) = &change.password_command {
        new.password_command = Some(cmd.clone());
    }
    certificates(&mut new, change)?;
    if new.user.is_empty() && new.smtp_auth != Some(SmtpAuth::None) {
        return Err(AppError::usage(
            "the system SMTP profile needs --user LOGIN to sign in",
            "give the login with --user, or --smtp-auth none for a relay that takes mail without a login",
        ));
    }
    Ok(new)
}

fn certificates(new: &mut SystemSmtp, change: &ProfileEdit) -> Result<()> {
    if change.insecure_skip_verify {
        new.insecure_skip_verify = true;
    }
    if change.verify_certificates {
        new.insecure_skip_verify = false;
    }
    if let Some(ca) = &change.ca_file {
        new.ca_file = Some(std::fs::canonicalize(ca).map_err(|e| {
            AppError::usage(
                format!("the CA file {} cannot be read: {e}", ca.display()),
                "pass the path to a PEM file",
            )
        })?);
    }
    Ok(())
}

/// Removes the profile and its sealed password. Refused while an account sends through it.
pub fn remove(cx: &Ctx) -> Result<()> {
    let config = cx.config()?;
    let store = cx.store()?;
    access::system_smtp(cx, &config, &store)?;
    if config.system_smtp.is_none() {
        return Err(AppError::needs_user(
            "there is no system SMTP profile",
            "",
            "nothing to remove; `mailroom system-smtp show` shows it",
        )
        .with_code(crate::error::Code::NothingToDo));
    }
    let users: Vec<&String> = config
        .accounts
        .iter()
        .filter(|(_, a)| a.use_system_smtp)
        .map(|(n, _)| n)
        .collect();
    if let Some(first) = users.first() {
        return Err(AppError::needs_user(
            "accounts still send through the system SMTP profile",
            format!(
                "used by {}",
                users
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            format!(
                "switch each back to its own SMTP server first: `mailroom account edit {first} --use-system-smtp false`"
            ),
        )
        .with_code(crate::error::Code::Conflict));
    }
    config::edit(&cx.home, |doc| {
        doc.remove("system_smtp");
        Ok(())
    })?;
    store.delete_credential(SYSTEM_SMTP_ID, "smtp")?;
    store.audit(
        &cx.operator,
        "system_smtp_remove",
        None,
        Some("system SMTP profile"),
        &json!({}),
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::accounts::{self, PasswordSource, ServerSpec};

    fn home() -> (tempfile::TempDir, Ctx) {
        let dir = tempfile::tempdir().unwrap();
        let home = crate::config::Home {
            root: dir.path().to_path_buf(),
        };
        (dir, Ctx::new(home, "alice"))
    }

    fn relay() -> ProfileEdit {
        ProfileEdit {
            server: Some("relay.example.test".into()),
            security: Some("none".into()),
            smtp_auth: Some("none".into()),
            ..Default::default()
        }
    }

    #[test]
    fn the_profile_is_set_in_place_and_guarded_by_the_accounts_that_use_it() {
        let (_dir, alice) = home();
        // Creating needs a server; a login needs a user.
        let e = set(&alice, &ProfileEdit::default(), || Ok(None)).unwrap_err();
        assert!(e.summary.contains("--smtp HOST[:PORT] is required"), "{e}");
        let e = set(
            &alice,
            &ProfileEdit {
                server: Some("smtp.example.test".into()),
                ..Default::default()
            },
            || Ok(None),
        )
        .unwrap_err();
        assert!(e.summary.contains("needs --user"), "{e}");
        let p = set(&alice, &relay(), || Ok(None)).unwrap();
        let v = p.system_smtp.unwrap();
        assert_eq!(v.server.port, 25, "none defaults to port 25");
        assert_eq!(v.password_source, PasswordSource::NotNeeded);

        // A comment the user writes survives a change; only the changed key moves.
        let path = alice.home.config_path();
        let text = std::fs::read_to_string(&path).unwrap();
        let text = text.replace("[system_smtp]", "# the office relay\n[system_smtp]");
        std::fs::write(&path, text).unwrap();
        let pw = SecretString::from("relay-pw");
        let change = ProfileEdit {
            user: Some("office".into()),
            smtp_auth: Some("default".into()),
            ..Default::default()
        };
        let p = set(&alice, &change, || Ok(Some(pw.clone()))).unwrap();
        let v = p.system_smtp.unwrap();
        assert_eq!((v.user.as_str(), v.smtp_auth), ("office", None));
        assert_eq!(v.password_source, PasswordSource::Stored);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.contains("# the office relay\n[system_smtp]\nserver = { host = \"relay.example.test\", port = 25, security = \"none\" }\n"),
            "{text}"
        );
        assert!(!text.contains("relay-pw"), "no secret in config.toml");
        let e = set(
            &alice,
            &ProfileEdit {
                smtp_auth: Some("xoauth2".into()),
                ..Default::default()
            },
            || Ok(None),
        )
        .unwrap_err();
        assert_eq!(e.kind, crate::error::Kind::Usage);

        // alice's account sends through it, shared with carol.
        let spec = ServerSpec {
            email: Some("work@example.test".into()),
            imap: Some("imap.example.test".into()),
            smtp: Some("smtp.example.test".into()),
            use_system_smtp: Some(true),
            share_with: Some(vec!["carol".into()]),
            ..Default::default()
        };
        let new = accounts::prepare(&alice, "work", &spec, None).unwrap();
        accounts::add(&alice, &new, Some(&SecretString::from("pw"))).unwrap();
        assert_eq!(show(&alice).unwrap().used_by, ["work"]);
        let eve = alice.as_operator("eve");
        assert!(
            show(&eve).unwrap().used_by.is_empty(),
            "eve sees no account"
        );
        for who in ["eve", "carol"] {
            let e = set(&alice.as_operator(who), &relay(), || Ok(None)).unwrap_err();
            assert!(
                e.summary.contains("may not change the system SMTP profile"),
                "{e}"
            );
            let e = remove(&alice.as_operator(who)).unwrap_err();
            assert!(e.summary.contains("may not change"), "{e}");
        }
        let carol_saw = set(&alice.as_operator("carol"), &relay(), || Ok(None)).unwrap_err();
        assert!(carol_saw.detail.contains("work"), "{carol_saw}");
        let eve_saw = set(&eve, &relay(), || Ok(None)).unwrap_err();
        assert!(!eve_saw.detail.contains("work"), "{eve_saw}");
        let refused = alice.store().unwrap().audit_rows(50).unwrap();
        assert!(refused.iter().filter(|r| r.action == "refused").count() >= 4);

        // Removing waits for the accounts to switch back; then the password goes too.
        let e = remove(&alice).unwrap_err();
        assert!(e.fix.contains("--use-system-smtp false"), "{e}");
        let back = accounts::Edit {
            server: ServerSpec {
                use_system_smtp: Some(false),
                ..Default::default()
            },
            ..Default::default()
        };
        accounts::edit(&alice, "work", &back, || Ok(None)).unwrap();
        remove(&alice).unwrap();
        assert!(show(&alice).unwrap().system_smtp.is_none());
        let store = alice.store().unwrap();
        assert!(store.credential(SYSTEM_SMTP_ID, "smtp").unwrap().is_none());
    }
}
