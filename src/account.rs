//! One configured account resolved for use: its IMAP/SMTP targets and its password.

use secrecy::SecretString;

use crate::config::{AccountConfig, AuthKind, Config, SmtpAuth, SystemSmtp};
use crate::error::{AppError, Result};
use crate::imap::{ImapTarget, TlsOptions};
use crate::secret::{Credential, Vault, run_password_command};
use crate::smtp::{AuthMode, SmtpTarget};
use crate::store::Store;

/// Message-IDs of `account test` probes start with this; sync ignores such messages.
pub const PROBE_ID_PREFIX: &str = "mailroom-probe.";

#[derive(Debug, Clone)]
pub struct Account {
    pub name: String,
    pub cfg: AccountConfig,
}

impl Account {
    pub fn from_config(config: &Config, name: &str) -> Result<Account> {
        Ok(Account {
            name: name.to_string(),
            cfg: config.account(name)?.clone(),
        })
    }

    pub fn id(&self) -> &str {
        &self.cfg.id
    }

    fn tls(&self) -> TlsOptions {
        TlsOptions {
            ca_file: self.cfg.ca_file.clone(),
            insecure_skip_verify: self.cfg.insecure_skip_verify,
        }
    }

    /// Every wait on the account's servers is bounded by `sync.timeout_secs`.
    fn timeout(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.cfg.sync.timeout_secs.max(1))
    }

    pub fn imap_target(&self) -> ImapTarget {
        ImapTarget {
            server: self.cfg.imap.clone(),
            tls: self.tls(),
            user: self.cfg.user.clone(),
            timeout: self.timeout(),
            min_bytes_per_sec: self.cfg.sync.min_bytes_per_sec,
            trace_as: Some(self.id().to_string()),
        }
    }

    /// The account's own SMTP server, or the system profile when the account uses it.
    pub fn smtp_target(&self, config: &Config) -> Result<SmtpTarget> {
        if self.cfg.use_system_smtp {
            let sys = system_profile(config, &self.name)?;
            let edit = "mailroom system-smtp set".to_string();
            return Ok(SmtpTarget {
                server: sys.server.clone(),
                tls: TlsOptions {
                    ca_file: sys.ca_file.clone(),
                    insecure_skip_verify: sys.insecure_skip_verify,
                },
                user: sys.user.clone(),
                timeout: self.timeout(),
                auth: auth_mode(sys.smtp_auth, AuthKind::Password, &edit)?,
                edit,
                trace_as: Some(self.id().to_string()),
            });
        }
        let edit = format!("mailroom account edit {}", self.name);
        Ok(SmtpTarget {
            server: self.cfg.smtp.clone(),
            tls: self.tls(),
            user: self.cfg.user.clone(),
            timeout: self.timeout(),
            auth: auth_mode(self.cfg.smtp_auth, self.cfg.auth, &edit)?,
            edit,
            trace_as: Some(self.id().to_string()),
        })
    }

    /// What the account signs in with: its password, or (OAuth2) a source of fresh tokens
    /// shared by every connection the caller opens with it.
    pub fn credential(&self, store: &Store, vault: &Vault) -> Result<Credential> {
        match self.cfg.auth {
            AuthKind::Password => self.password(store, vault).map(Credential::Password),
            AuthKind::OAuth2 => crate::tokens::source(self, store, vault)
                .map(|s| Credential::OAuth2(std::sync::Arc::new(s))),
        }
    }

    /// The password: from the password command, else the sealed copy in the store.
    pub fn password(&self, store: &Store, vault: &Vault) -> Result<SecretString> {
        if let Some(cmd) = &self.cfg.password_command {
            return run_password_command(cmd);
        }
        let sealed = store.credential(self.id(), "imap")?.ok_or_else(|| {
            AppError::needs_user(
                format!("no password is stored for account {}", self.name),
                "",
                format!("set one with `mailroom account set-password {}`", self.name),
            )
            .with_code(crate::error::Code::SecretMissing)
        })?;
        vault.open_sealed(&credential_context(self.id(), "imap"), &sealed)
    }

    /// What SMTP signs in with: the system profile's password (its own command, or sealed
    /// under the id "system") or the account's own credential (`imap`, when the caller has it
    /// already); None when the SMTP server is used without a login.
    pub fn smtp_credential(
        &self,
        config: &Config,
        store: &Store,
        vault: &Vault,
        imap: Option<&Credential>,
    ) -> Result<Option<Credential>> {
        if self.smtp_target(config)?.auth == AuthMode::None {
            return Ok(None);
        }
        if self.cfg.use_system_smtp {
            return system_password(system_profile(config, &self.name)?, store, vault)
                .map(|p| Some(Credential::Password(p)));
        }
        match imap {
            Some(c) => Ok(Some(c.clone())),
            None => self.credential(store, vault).map(Some),
        }
    }
}

/// The `[system_smtp]` profile as a target of its own (alerts mail through it), each wait
/// bounded by `timeout`; None when there is no profile.
pub fn system_target(config: &Config, timeout: std::time::Duration) -> Result<Option<SmtpTarget>> {
    let Some(sys) = &config.system_smtp else {
        return Ok(None);
    };
    let edit = "mailroom system-smtp set".to_string();
    Ok(Some(SmtpTarget {
        server: sys.server.clone(),
        tls: TlsOptions {
            ca_file: sys.ca_file.clone(),
            insecure_skip_verify: sys.insecure_skip_verify,
        },
        user: sys.user.clone(),
        timeout,
        auth: auth_mode(sys.smtp_auth, AuthKind::Password, &edit)?,
        edit,
        trace_as: None,
    }))
}

/// The `[system_smtp]` profile an account uses.
fn system_profile<'c>(config: &'c Config, account: &str) -> Result<&'c SystemSmtp> {
    config.system_smtp.as_ref().ok_or_else(|| {
        AppError::needs_user(
            format!("account {account} uses the system SMTP profile, but none is configured"),
            "",
            format!(
                "set one with `mailroom system-smtp set --smtp HOST[:PORT] …`, or `mailroom account edit {account} --use-system-smtp false`"
            ),
        )
        .with_code(crate::error::Code::ConfigInvalid)
    })
}

/// The system SMTP profile's password: its command, else the sealed copy.
pub fn system_password(sys: &SystemSmtp, store: &Store, vault: &Vault) -> Result<SecretString> {
    if let Some(cmd) = &sys.password_command {
        return run_password_command(cmd);
    }
    let sealed = store.credential(SYSTEM_SMTP_ID, "smtp")?.ok_or_else(|| {
        AppError::needs_user(
            "no password for the system SMTP profile",
            "",
            "set one with `mailroom system-smtp set --password-stdin` (or --password-command CMD)",
        )
        .with_code(crate::error::Code::SecretMissing)
    })?;
    vault.open_sealed(&credential_context(SYSTEM_SMTP_ID, "smtp"), &sealed)
}

/// The credential id the system SMTP profile's sealed password is stored under.
pub const SYSTEM_SMTP_ID: &str = "system";

/// How an SMTP session signs in: the chosen mechanism, else the default of the auth kind. A
/// mechanism of the other kind (a hand-edited config) is refused with the fix.
fn auth_mode(chosen: Option<SmtpAuth>, kind: AuthKind, edit: &str) -> Result<AuthMode> {
    if let Err(e) = SmtpAuth::check(chosen, kind) {
        return Err(AppError::needs_user(
            e.summary.replace("--smtp-auth ", "smtp_auth = "),
            "",
            format!(
                "use `{edit} --smtp-auth default` (or another mechanism: {})",
                e.fix
            ),
        )
        .with_code(crate::error::Code::ConfigInvalid));
    }
    Ok(match (chosen, kind) {
        (None, AuthKind::Password) => AuthMode::Password,
        (None, AuthKind::OAuth2) => AuthMode::OAuth2,
        (Some(SmtpAuth::Plain), _) => AuthMode::Plain,
        (Some(SmtpAuth::Login), _) => AuthMode::Login,
        (Some(SmtpAuth::Xoauth2), _) => AuthMode::Xoauth2,
        (Some(SmtpAuth::Oauthbearer), _) => AuthMode::Oauthbearer,
        (Some(SmtpAuth::None), _) => AuthMode::None,
    })
}

/// Associated data for sealing: binds a ciphertext to one account and kind.
pub fn credential_context(account_id: &str, kind: &str) -> String {
    format!("mailroom/{account_id}/{kind}")
}
