//! The setup form through the CLI's own `account add` validation and storage, and the error
//! log entry `account test` leaves behind.

use crate::account::Account;
use crate::cli::account::{PasswordArgs, ServerArgs};
use crate::config::Config;
use crate::error::{AppError, Result};
use crate::ops::Ctx;
use crate::store::Store;
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

pub(super) fn server_args(form: &AccountForm) -> ServerArgs {
    let list = |s: &str| -> Vec<String> {
        s.split([',', ' '])
            .map(str::trim)
            .filter(|x| !x.is_empty())
            .map(String::from)
            .collect()
    };
    let opt = |s: &str| (!s.trim().is_empty()).then(|| s.trim().to_string());
    ServerArgs {
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
    }
}

/// The CLI's own validation (`account add`), so the form accepts exactly what the CLI does.
pub(super) fn prepare(config: &Config, form: &AccountForm) -> Result<Account> {
    use secrecy::ExposeSecret;
    if form.password.expose_secret().is_empty() {
        return Err(AppError::usage(
            "no password given",
            "type the account's password (or app password) in the Password field",
        ));
    }
    let cfg = crate::cli::account::validate_new(
        config,
        &form.name,
        &server_args(form),
        &PasswordArgs::default(),
    )?;
    Ok(Account {
        name: form.name.clone(),
        cfg,
    })
}

pub(super) fn save(ctx: &Ctx, store: &Store, form: &AccountForm) -> Result<String> {
    let config = ctx.config()?;
    let mut acct = prepare(&config, form)?;
    // As `account add`: the operator who adds an account owns it.
    acct.cfg.owner = Some(ctx.operator.clone());
    crate::cli::account::store_new(
        &super::legacy(ctx),
        store,
        &acct.name,
        &acct.cfg,
        Some(&form.password),
    )?;
    Ok(acct.name)
}

/// As `account test`: a failed step lands in the error log with its fix.
pub(super) fn log_failed_test(ctx: &Ctx, name: &str, report: &crate::check::Report) {
    let Some(failed) = report
        .steps
        .iter()
        .find(|s| s.status == crate::check::StepStatus::Failed)
    else {
        return;
    };
    let logged = ctx.config().and_then(|config| {
        let acct = Account::from_config(&config, name)?;
        ctx.store()?.log_event(
            Some(acct.id()),
            crate::store::Level::Error,
            &format!("account test failed at {}", failed.id),
            Some(&failed.detail),
            failed.fix.as_deref(),
        )
    });
    if let Err(e) = logged {
        tracing::debug!("cannot log the failed test: {}", e.summary);
    }
}
