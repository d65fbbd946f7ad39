//! One configured account resolved for use: its IMAP/SMTP targets and its password.

use secrecy::SecretString;

use crate::config::{AccountConfig, Config};
use crate::error::{AppError, Result};
use crate::imap::{ImapTarget, TlsOptions};
use crate::secret::{Vault, run_password_command};
use crate::smtp::SmtpTarget;
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
        }
    }

    /// The account's own SMTP server, or the system profile when the account uses it.
    pub fn smtp_target(&self, config: &Config) -> Result<SmtpTarget> {
        if self.cfg.use_system_smtp {
            let sys = config.system_smtp.as_ref().ok_or_else(|| {
                AppError::usage(
                    format!(
                        "account {} uses the system SMTP profile, but none is configured",
                        self.name
                    ),
                    "add a [system_smtp] section to config.toml",
                )
                .with_code(crate::error::Code::ConfigInvalid)
            })?;
            return Ok(SmtpTarget {
                server: sys.server.clone(),
                tls: TlsOptions {
                    ca_file: sys.ca_file.clone(),
                    insecure_skip_verify: sys.insecure_skip_verify,
                },
                user: sys.user.clone(),
                timeout: self.timeout(),
            });
        }
        Ok(SmtpTarget {
            server: self.cfg.smtp.clone(),
            tls: self.tls(),
            user: self.cfg.user.clone(),
            timeout: self.timeout(),
        })
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

    /// The system SMTP profile's password (its own command, or sealed under the id "system").
    pub fn smtp_password(
        &self,
        config: &Config,
        store: &Store,
        vault: &Vault,
    ) -> Result<SecretString> {
        if self.cfg.use_system_smtp {
            if let Some(cmd) = config
                .system_smtp
                .as_ref()
                .and_then(|s| s.password_command.as_ref())
            {
                return run_password_command(cmd);
            }
            let sealed = store.credential("system", "smtp")?.ok_or_else(|| {
                AppError::needs_user(
                    "no password for the system SMTP profile",
                    "",
                    "set password_command in [system_smtp]",
                )
                .with_code(crate::error::Code::SecretMissing)
            })?;
            return vault.open_sealed(&credential_context("system", "smtp"), &sealed);
        }
        self.password(store, vault)
    }
}

/// Associated data for sealing: binds a ciphertext to one account and kind.
pub fn credential_context(account_id: &str, kind: &str) -> String {
    format!("mailroom/{account_id}/{kind}")
}
