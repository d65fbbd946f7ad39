//! The setup form as `account add` takes it: the same validation and storage (ops::accounts),
//! and the accounts the console shows.

use secrecy::ExposeSecret;

use crate::config::Config;
use crate::error::{AppError, Result};
use crate::ops::Ctx;
use crate::ops::accounts::{self, NewAccount, ServerSpec};
use crate::tui::action::AccountForm;
use crate::tui::app::AccountInfo;

pub(super) fn accounts_of(ctx: &Ctx, c: &Config) -> Vec<AccountInfo> {
    c.accounts
        .iter()
        .filter(|(_, a)| ctx.sees(a))
        .map(|(n, a)| AccountInfo {
            name: n.clone(),
            id: a.id.clone(),
            email: a.email.clone(),
            aliases: a.aliases.clone(),
            since: a.sync.since.value(),
            unread_only: a.sync.process == crate::config::ProcessScope::UnreadOnly,
        })
        .collect()
}

/// The form's fields as `account add`'s flags.
fn server_spec(form: &AccountForm) -> ServerSpec {
    let list = |s: &str| -> Vec<String> {
        s.split([',', ' '])
            .map(str::trim)
            .filter(|x| !x.is_empty())
            .map(String::from)
            .collect()
    };
    let opt = |s: &str| (!s.trim().is_empty()).then(|| s.trim().to_string());
    ServerSpec {
        email: opt(&form.email),
        imap: opt(&form.imap),
        imap_security: opt(&form.imap_security),
        smtp: opt(&form.smtp),
        smtp_security: opt(&form.smtp_security),
        user: opt(&form.user),
        insecure_skip_verify: form.insecure,
        ca_file: opt(&form.ca_file).map(std::path::PathBuf::from),
        preset: form.preset.clone(),
        aliases: list(&form.aliases),
        share_with: {
            let l = list(&form.share_with);
            (!l.is_empty()).then_some(l)
        },
        auth: form.oauth.then(|| "oauth2".to_string()),
        oauth: accounts::OAuthSpec {
            client_id: opt(&form.client_id),
            ..Default::default()
        },
        ..Default::default()
    }
}

/// `account add`'s own validation, so the form accepts exactly what the CLI does; the form
/// carries a password unless the account signs in with OAuth2.
pub(super) fn prepare(ctx: &Ctx, form: &AccountForm) -> Result<NewAccount> {
    if !form.oauth && form.password.expose_secret().is_empty() {
        return Err(AppError::usage(
            "no password given",
            "type the account's password (or app password) in the Password field",
        ));
    }
    accounts::prepare(ctx, &form.name, &server_spec(form), None)
}

/// Stores the form's account (the operator who adds it owns it, as with `account add`).
pub(super) fn save(ctx: &Ctx, form: &AccountForm) -> Result<String> {
    let new = prepare(ctx, form)?;
    accounts::add(ctx, &new, Some(&form.password)).map(|v| v.name)
}
