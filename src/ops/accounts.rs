//! Accounts: add, list, show, edit, set-password, enable, disable, remove, test.
//!
//! Settings are the owner's (`Need::Configure`): an operator an account is shared with sees it
//! in lists but is told it may not change it; anyone else is told it does not exist. Account
//! names are installation-wide: adding a name another operator uses is refused as a duplicate.

use std::collections::BTreeMap;
use std::path::PathBuf;

use secrecy::SecretString;
use serde::Serialize;
use serde_json::json;

use super::Ctx;
use super::access::{self, Need};
use crate::account::credential_context;
use crate::config::{
    self, AccountConfig, AuthKind, Config, CopyContent, CopyOnFailure, HistoryScope, ProcessScope,
    Security, Server, SmtpAuth, SystemSmtp, default_imap_port, default_smtp_port,
};
use crate::error::{AppError, Result};
use crate::model::new_id;
use crate::secret::Credential;
use crate::store::{AccountState, Level, Store};

pub use super::signin::{LoginDone, LoginEvent, OAuthSpec, Revoked, login, revoke};
pub use crate::account::Account;
pub use crate::check::{Report, STEP_IDS, Step, StepStatus};
pub use crate::secret::{prompt_password, read_password_stdin};

/// An account's servers and options as the user gives them: `account add`/`edit`'s flags, the
/// console's setup form. Text is parsed here, so both faces accept exactly the same.
#[derive(Debug, Clone, Default)]
pub struct ServerSpec {
    pub email: Option<String>,
    /// `HOST[:PORT]`.
    pub imap: Option<String>,
    pub imap_security: Option<String>,
    pub smtp: Option<String>,
    pub smtp_security: Option<String>,
    pub user: Option<String>,
    pub insecure_skip_verify: bool,
    pub ca_file: Option<PathBuf>,
    pub preset: Option<String>,
    pub aliases: Vec<String>,
    pub share_with: Option<Vec<String>>,
    /// `plain|login|xoauth2|oauthbearer|none`, or `default` (follow the auth kind).
    pub smtp_auth: Option<String>,
    /// Send through the system SMTP profile instead of the account's own SMTP server.
    pub use_system_smtp: Option<bool>,
    /// `password` (the default) or `oauth2`.
    pub auth: Option<String>,
    /// Where an OAuth2 account signs in (`--oauth-*`).
    pub oauth: super::signin::OAuthSpec,
}

/// Where an account's password comes from.
pub enum Password {
    /// Sealed into the store.
    Secret(SecretString),
    /// Run whenever needed; nothing is stored.
    Command(String),
}

/// An account as `account list|show` print it (the contract's JSON): every setting, never a
/// secret.
#[derive(Debug, Clone, Serialize)]
pub struct AccountView {
    pub name: String,
    pub id: String,
    pub email: String,
    pub display_name: Option<String>,
    pub user: String,
    pub enabled: bool,
    pub insecure: bool,
    pub imap: Server,
    pub smtp: Server,
    pub ca_file: Option<PathBuf>,
    /// How the account signs in (`password` or `oauth2`).
    pub auth: AuthKind,
    /// Where an OAuth2 account signs in, and whether it is signed in; null for a password.
    pub oauth2: Option<super::signin::OAuthView>,
    /// The SMTP AUTH mechanism; null: the default of `auth` (password: PLAIN, else LOGIN).
    pub smtp_auth: Option<SmtpAuth>,
    pub password_source: PasswordSource,
    pub use_system_smtp: bool,
    /// The system SMTP profile, when this account sends through it.
    pub system_smtp: Option<SystemSmtpView>,
    pub preset: Option<String>,
    pub aliases: Vec<String>,
    pub owner: Option<String>,
    pub shared_with: Vec<String>,
    /// Addresses and domains whose mail this account skips.
    pub deny: Vec<String>,
    /// The folder of each role (`folders NAME --sent/--role`, else as the server marks them).
    pub roles: BTreeMap<String, String>,
    pub sync: ScopeView,
    pub sent_copy: SentCopyView,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PasswordSource {
    Command,
    Stored,
    /// Nothing stored and no command (the system SMTP profile before `--password-stdin`).
    Missing,
    /// No login is made (`smtp_auth = "none"`), so no password is used.
    NotNeeded,
    /// OAuth2 tokens (sealed in the database; see `oauth2`) instead of a password.
    #[serde(rename = "oauth2")]
    OAuth2,
}

/// The sync options (`[accounts.NAME.sync]`), effective values.
#[derive(Debug, Clone, Serialize)]
pub struct ScopeView {
    /// The folders that sync (`folders NAME --sync`); null before the folder list was read
    /// (then INBOX and the Sent folder sync).
    pub folders: Option<Vec<String>>,
    /// What a folder's first sync takes: a date, `new`, or null for the whole history.
    pub since: Option<String>,
    pub process: ProcessScope,
    pub mark_read: bool,
    pub idle: bool,
    pub idle_renew_secs: u64,
    pub poll_secs: u64,
    pub backoff_min_secs: u64,
    pub backoff_max_secs: u64,
    pub give_up_secs: u64,
    pub body_prefetch_max_bytes: u64,
    pub batch_size: usize,
    pub timeout_secs: u64,
    pub min_bytes_per_sec: u64,
}

/// The Sent-copy options (`[accounts.NAME.sent_copy]`), effective values.
#[derive(Debug, Clone, Serialize)]
pub struct SentCopyView {
    pub enabled: bool,
    pub folder: Option<String>,
    pub folders: FoldersView,
    pub filed_by_server: bool,
    pub batch_secs: u64,
    pub content: CopyContent,
    pub drop_attachments_over_bytes: u64,
    pub on_failure: CopyOnFailure,
    pub retry_secs: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct FoldersView {
    pub new: Option<String>,
    pub reply: Option<String>,
}

/// The system SMTP profile (`[system_smtp]`), never its password.
#[derive(Debug, Clone, Serialize)]
pub struct SystemSmtpView {
    pub server: Server,
    pub user: String,
    pub smtp_auth: Option<SmtpAuth>,
    pub insecure: bool,
    pub ca_file: Option<PathBuf>,
    pub password_source: PasswordSource,
}

impl SystemSmtpView {
    /// `stored`: whether a sealed password exists (asked of the store by the caller).
    pub fn of(s: &SystemSmtp, stored: bool) -> SystemSmtpView {
        SystemSmtpView {
            server: s.server.clone(),
            user: s.user.clone(),
            smtp_auth: s.smtp_auth,
            insecure: s.insecure_skip_verify,
            ca_file: s.ca_file.clone(),
            password_source: match (&s.password_command, stored) {
                _ if s.smtp_auth == Some(SmtpAuth::None) => PasswordSource::NotNeeded,
                (Some(_), _) => PasswordSource::Command,
                (None, true) => PasswordSource::Stored,
                (None, false) => PasswordSource::Missing,
            },
        }
    }
}

impl AccountView {
    /// `system`: the system SMTP profile's view, shown when the account uses it.
    pub fn of(name: &str, a: &AccountConfig, system: Option<SystemSmtpView>) -> AccountView {
        let (y, c) = (&a.sync, &a.sent_copy);
        AccountView {
            name: name.to_string(),
            id: a.id.clone(),
            email: a.email.clone(),
            display_name: a.display_name.clone(),
            user: a.user.clone(),
            enabled: a.enabled,
            insecure: a.insecure_skip_verify,
            imap: a.imap.clone(),
            smtp: a.smtp.clone(),
            ca_file: a.ca_file.clone(),
            auth: a.auth,
            oauth2: super::signin::OAuthView::of(a),
            smtp_auth: a.smtp_auth,
            password_source: match (a.auth, &a.password_command) {
                (AuthKind::OAuth2, _) => PasswordSource::OAuth2,
                (_, Some(_)) => PasswordSource::Command,
                (_, None) => PasswordSource::Stored,
            },
            use_system_smtp: a.use_system_smtp,
            system_smtp: system.filter(|_| a.use_system_smtp),
            preset: a.preset.clone(),
            aliases: a.aliases.clone(),
            owner: a.owner.clone(),
            shared_with: a.shared_with.clone(),
            deny: a.deny.clone(),
            roles: BTreeMap::new(),
            sync: ScopeView {
                folders: None,
                since: y.since.value(),
                process: y.process,
                mark_read: y.mark_read,
                idle: y.idle,
                idle_renew_secs: y.idle_renew_secs,
                poll_secs: y.poll_secs,
                backoff_min_secs: y.backoff_min_secs,
                backoff_max_secs: y.backoff_max_secs,
                give_up_secs: y.give_up_secs,
                body_prefetch_max_bytes: y.body_prefetch_max_bytes,
                batch_size: y.batch_size,
                timeout_secs: y.timeout_secs,
                min_bytes_per_sec: y.min_bytes_per_sec,
            },
            sent_copy: SentCopyView {
                enabled: c.enabled,
                folder: c.folder.clone(),
                folders: FoldersView {
                    new: c.folders.new.clone(),
                    reply: c.folders.reply.clone(),
                },
                filed_by_server: c.filed_by_server,
                batch_secs: c.batch_secs,
                content: c.content,
                drop_attachments_over_bytes: c.drop_attachments_over_bytes,
                on_failure: c.on_failure,
                retry_secs: c.retry_secs,
            },
        }
    }
}

impl AccountView {
    /// The folder choices kept in the store: which folders sync, and the roles; and whether an
    /// OAuth2 account is signed in.
    fn with_folders(mut self, store: &Store) -> Result<AccountView> {
        if let Some(o) = self.oauth2.as_mut() {
            o.fill(store, &self.id)?;
        }
        let rows = store.folders(&self.id)?;
        let present = || rows.iter().filter(|f| f.present);
        if !rows.is_empty() {
            let synced = present().filter(|f| f.sync_enabled);
            self.sync.folders = Some(synced.map(|f| f.name.clone()).collect());
        }
        for f in present() {
            if let Some(role) = f.role {
                self.roles
                    .entry(role.as_str().to_string())
                    .or_insert_with(|| f.name.clone());
            }
        }
        Ok(self)
    }
}

/// The system SMTP profile as an account that uses it shows it.
fn system_view(config: &Config, store: &Store) -> Result<Option<SystemSmtpView>> {
    config
        .system_smtp
        .as_ref()
        .map(|s| {
            let stored = store
                .credential(crate::account::SYSTEM_SMTP_ID, "smtp")?
                .is_some();
            Ok(SystemSmtpView::of(s, stored))
        })
        .transpose()
}

/// A validated new account, not stored yet (`account add` before its password and test).
#[derive(Debug, Clone)]
pub struct NewAccount {
    pub name: String,
    pub cfg: AccountConfig,
    /// An OAuth2 app registration's client secret, sealed when the account is stored.
    pub client_secret: Option<SecretString>,
}

impl NewAccount {
    /// The preset's advice (an app password for Gmail, the OAuth2 registration…), when one
    /// was chosen.
    pub fn hint(&self) -> Option<&'static str> {
        let p = crate::presets::find(self.cfg.preset.as_deref()?).ok()?;
        match self.cfg.auth {
            AuthKind::OAuth2 => p.oauth_hint.or(p.hint),
            AuthKind::Password => p.hint,
        }
    }

    /// Whether `account add` signs in once the account is stored.
    pub fn signs_in(&self) -> bool {
        self.cfg.auth == AuthKind::OAuth2
    }
}

/// Checks a new account's name and settings without network I/O or storing anything. The
/// operator who adds an account owns it. A name in use is refused whoever owns it.
pub fn prepare(
    cx: &Ctx,
    name: &str,
    spec: &ServerSpec,
    password_command: Option<String>,
) -> Result<NewAccount> {
    valid_name(name)?;
    free_name(&*cx.config()?, name)?;
    let mut cfg = build(spec, password_command)?;
    valid_settings(&*cx.config()?, &cfg)?;
    cfg.owner = Some(cx.operator.clone());
    Ok(NewAccount {
        name: name.to_string(),
        cfg,
        client_secret: None,
    })
}

/// Runs the account test for an account not stored yet (`account add --test`, the setup
/// form): `password` as given, else the account's password command. Nothing is stored.
pub async fn test_new(
    cx: &Ctx,
    new: &NewAccount,
    password: Option<SecretString>,
    on_step: &mut (dyn FnMut(&Step) + Send),
) -> Result<Report> {
    if new.cfg.auth == AuthKind::OAuth2 {
        return Err(AppError::usage(
            "an OAuth2 account is checked after it signed in",
            format!(
                "store it and sign in first, then `mailroom account test {}`",
                new.name
            ),
        ));
    }
    let acct = Account {
        name: new.name.clone(),
        cfg: new.cfg.clone(),
    };
    let probe = acct.clone();
    let (config, pw, smtp_pw) = cx
        .blocking(move |cx| new_account_passwords(cx, &probe, password))
        .await?;
    let (pw, smtp_pw) = (Credential::Password(pw), smtp_pw.map(Credential::Password));
    // Not stored yet: no folder choice can exist.
    Ok(crate::check::run(&config, &acct, &pw, smtp_pw.as_ref(), None, on_step).await)
}

/// The passwords an account not stored yet is tested with: `password` as given, else its
/// password command. The account's own SMTP signs in with the same password; the system
/// profile with its own; a server used without a login with none.
fn new_account_passwords(
    cx: &Ctx,
    acct: &Account,
    password: Option<SecretString>,
) -> Result<(std::sync::Arc<Config>, SecretString, Option<SecretString>)> {
    let pw = match (password, &acct.cfg.password_command) {
        (Some(p), _) => p,
        (None, Some(cmd)) => crate::secret::run_password_command(cmd)?,
        (None, None) => {
            return Err(AppError::usage(
                "no password given",
                "use --password-stdin or --password-command CMD",
            ));
        }
    };
    let config = cx.config()?;
    let smtp_pw = match acct.smtp_target(&config)?.auth {
        crate::smtp::AuthMode::None => None,
        _ if acct.cfg.use_system_smtp => acct
            .smtp_credential(&config, &*cx.store()?, &cx.vault()?, None)?
            .and_then(|c| match c {
                Credential::Password(p) => Some(p),
                Credential::OAuth2(_) => None,
            }),
        _ => Some(pw.clone()),
    };
    Ok((config, pw, smtp_pw))
}

/// The error for a failed `account add --test`: the first failed step and its fix.
pub fn test_failed(report: &Report) -> AppError {
    let failed = report.steps.iter().find(|s| s.status == StepStatus::Failed);
    AppError::needs_user(
        "the account check failed; nothing was stored",
        failed
            .map(|s| format!("{}: {}", s.id, s.detail))
            .unwrap_or_default(),
        failed.and_then(|s| s.fix.clone()).unwrap_or_default(),
    )
    .with_code(
        failed
            .and_then(|s| s.code)
            .unwrap_or(crate::error::Code::Failed),
    )
}

/// Stores a prepared account: config.toml, the sealed password (unless a command supplies
/// it), its state row and the audit record.
pub fn add(cx: &Ctx, new: &NewAccount, password: Option<&SecretString>) -> Result<AccountView> {
    let store = cx.store()?;
    let (name, acct) = (&new.name, &new.cfg);
    // The name may have been taken since `prepare` (another shell, the console).
    free_name(&*cx.config()?, name)?;
    let vault = cx.vault()?;
    // An OAuth2 account has no password: its tokens come with `account login`.
    let password = password.filter(|_| acct.auth == AuthKind::Password);
    let sealed = password
        .map(|p| vault.seal(&credential_context(&acct.id, "imap"), p))
        .transpose()?;
    store.insert_account(&acct.id, name, acct.enabled)?;
    if let Some(s) = &sealed {
        store.set_credential(&acct.id, "imap", s)?;
    }
    if let Some(secret) = &new.client_secret {
        super::signin::seal_client_secret(&store, &vault, &acct.id, secret)?;
    }
    let item = config::account_table(acct)?;
    config::edit(&cx.home, |doc| {
        if doc.get("accounts").is_none() {
            let mut t = toml_edit::Table::new();
            t.set_implicit(true);
            doc["accounts"] = toml_edit::Item::Table(t);
        }
        doc["accounts"][name.as_str()] = item;
        Ok(())
    })?;
    super::operators::settings_changed(cx)?;
    store.audit(
        &cx.operator,
        "account_add",
        Some(&acct.id),
        Some(name),
        &json!({"email": acct.email, "imap": acct.imap.display(), "smtp": acct.smtp.display(), "insecure": acct.insecure_skip_verify}),
    )?;
    let config = cx.config()?;
    Ok(AccountView::of(name, acct, system_view(&config, &store)?))
}

/// The accounts this operator may see.
pub fn list(cx: &Ctx) -> Result<Vec<AccountView>> {
    let config = cx.config()?;
    let store = cx.store()?;
    let system = match config.accounts.values().any(|a| a.use_system_smtp) {
        true => system_view(&config, &store)?,
        false => None,
    };
    config
        .accounts
        .iter()
        .filter(|(_, a)| cx.sees(a))
        .map(|(n, a)| AccountView::of(n, a, system.clone()).with_folders(&store))
        .collect()
}

/// One account's settings (the owner's to see).
pub fn show(cx: &Ctx, name: &str) -> Result<AccountView> {
    let config = cx.config()?;
    let store = cx.store()?;
    let (n, a) = access::account(cx, &config, &store, name, Need::Configure)?;
    AccountView::of(n, a, system_view(&config, &store)?).with_folders(&store)
}

/// The edit form's account: its settings, and whether this operator may change them (the
/// owner) or only look (an operator it is shared with). Anyone else finds nothing.
pub fn show_for_edit(cx: &Ctx, name: &str) -> Result<(AccountView, bool)> {
    let config = cx.config()?;
    let store = cx.store()?;
    let (n, a) = access::account(cx, &config, &store, name, Need::Read)?;
    let owner = access::Standing::of(a, &cx.operator).allows(Need::Configure);
    let view = AccountView::of(n, a, system_view(&config, &store)?).with_folders(&store)?;
    Ok((view, owner))
}

/// What `account edit` changes; `None`/`false` leaves a setting as it is.
#[derive(Debug, Clone, Default)]
pub struct Edit {
    pub server: ServerSpec,
    /// Turn certificate verification back on.
    pub verify_certificates: bool,
    /// The first-sync scope: `YYYY-MM-DD`, `new` or `all`.
    pub since: Option<String>,
    /// `all` or `unread-only`.
    pub process: Option<String>,
    pub mark_read: Option<bool>,
    /// `sync.poll_secs`: how often sync looks for changes where IDLE does not tell (≥ 1).
    pub poll_secs: Option<u64>,
    /// `sync.body_prefetch_max_bytes`: bodies up to this size are fetched in the background
    /// (0: none, every body when opened).
    pub prefetch_max_bytes: Option<u64>,
    pub password_command: Option<String>,
    /// `sent_copy.enabled`: keep a copy of sent mail in the Sent folder.
    pub sent_copy: Option<bool>,
    /// Remove every alias (`server.aliases` empty means "leave them").
    pub clear_aliases: bool,
    /// A new client secret of the OAuth2 app registration (sealed).
    pub client_secret: Option<SecretString>,
    /// The name shown in From (an empty text removes it).
    pub display_name: Option<String>,
    /// Sync and send on (`account enable`) or off (`account disable`, history kept).
    pub enabled: Option<bool>,
    /// Drop the CA file: trust the system's roots again.
    pub clear_ca_file: bool,
    /// A new name (the id, and with it state, mail and pairings, stays the same).
    pub rename: Option<String>,
}

/// Changes an account's settings. `read_password` is asked only once the change is allowed and
/// valid (a new password to seal, or none).
pub fn edit(
    cx: &Ctx,
    name: &str,
    change: &Edit,
    read_password: impl FnOnce() -> Result<Option<SecretString>>,
) -> Result<AccountView> {
    // The server flags are shared with `add`, but a preset only fills in a new account: edit
    // would silently ignore it.
    if let Some(p) = &change.server.preset {
        return Err(AppError::usage(
            format!("--preset {p} only applies to `account add`"),
            "set the servers with --imap HOST[:PORT] and --smtp HOST[:PORT] (see `mailroom account add --help` for the presets' values)",
        ));
    }
    let config = cx.config()?;
    let mut store = cx.store()?;
    let (_, old) = access::account(cx, &config, &store, name, Need::Configure)?;
    let mut new = edited(old, change)?;
    valid_settings(&config, &new)?;
    if change.client_secret.is_some() && new.auth != AuthKind::OAuth2 {
        return Err(AppError::usage(
            "a client secret belongs to an OAuth2 account",
            "add --auth oauth2, or leave out --oauth-client-secret-stdin",
        ));
    }
    if let Some(secret) = &change.client_secret {
        super::signin::seal_client_secret(&store, &cx.vault()?, &new.id, secret)?;
    }
    if let Some(pw) = read_password()? {
        seal_password(cx, &mut store, &new.id, &pw)?;
        new.password_command = None;
    }
    let renamed = new_name(&config, name, change.rename.as_deref())?;
    config::edit(&cx.home, |doc| {
        config::update_account(doc, name, old, &new)?;
        match &renamed {
            Some(to) => config::rename_account(doc, name, to),
            None => Ok(()),
        }
    })?;
    super::operators::settings_changed(cx)?;
    let name = renamed.as_deref().unwrap_or(name);
    if renamed.is_some() {
        store.rename_account(&new.id, name)?;
    }
    // Changed settings are a user action: retry an account that had given up.
    store.reset_failures(&new.id, new.enabled)?;
    let mut changed = changed_keys(old, &new);
    if renamed.is_some() {
        changed.push("name".into());
    }
    store.audit(
        &cx.operator,
        "account_edit",
        Some(&new.id),
        Some(name),
        &json!({"insecure": new.insecure_skip_verify, "changed": changed}),
    )?;
    AccountView::of(name, &new, system_view(&config, &store)?).with_folders(&store)
}

/// The new name of a rename: valid, and not in use by any account (names are
/// installation-wide). None: no rename (also when the name stays the same).
fn new_name(config: &Config, name: &str, rename: Option<&str>) -> Result<Option<String>> {
    let Some(to) = rename.map(str::trim).filter(|to| *to != name) else {
        return Ok(None);
    };
    valid_name(to)?;
    free_name(config, to)?;
    Ok(Some(to.to_string()))
}

/// The settings that differ (`smtp_auth`, `sync.poll_secs`…), for the audit log.
fn changed_keys(old: &AccountConfig, new: &AccountConfig) -> Vec<String> {
    let (Ok(a), Ok(b)) = (serde_json::to_value(old), serde_json::to_value(new)) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let empty = serde_json::Map::new();
    let (a, b) = (
        a.as_object().unwrap_or(&empty),
        b.as_object().unwrap_or(&empty),
    );
    let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    for k in keys {
        match (a.get(k), b.get(k)) {
            (x, y) if x == y => {}
            (Some(serde_json::Value::Object(x)), Some(serde_json::Value::Object(y)))
                if matches!(k.as_str(), "sync" | "sent_copy") =>
            {
                let sub: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
                out.extend(
                    sub.into_iter()
                        .filter(|s| x.get(*s) != y.get(*s))
                        .map(|s| format!("{k}.{s}")),
                );
            }
            _ => out.push(k.clone()),
        }
    }
    out
}

/// Settings that only make sense together: an SMTP mechanism the auth kind can use, and a
/// system SMTP profile for an account that sends through it.
fn valid_settings(config: &Config, a: &AccountConfig) -> Result<()> {
    SmtpAuth::check(a.smtp_auth, a.auth)?;
    super::signin::valid(a)?;
    if a.use_system_smtp && config.system_smtp.is_none() {
        return Err(AppError::usage(
            "there is no system SMTP profile to send through",
            "set one first with `mailroom system-smtp set --smtp HOST[:PORT] …`",
        ));
    }
    Ok(())
}

/// `--smtp-auth` as given: a mechanism, or `default` (None: follow the auth kind).
fn parse_smtp_auth(s: &str) -> Result<Option<SmtpAuth>> {
    match s.trim().to_ascii_lowercase().as_str() {
        "default" => Ok(None),
        _ => SmtpAuth::parse(s).map(Some).map_err(|mut e| {
            e.fix = format!("use {}, or default", SmtpAuth::VALUES);
            e
        }),
    }
}

/// The account's settings with `change` applied (nothing stored).
fn edited(old: &AccountConfig, change: &Edit) -> Result<AccountConfig> {
    let s = &change.server;
    let mut new = old.clone();
    if let Some(e) = &s.email {
        new.email = e.clone();
    }
    if let Some(u) = &s.user {
        new.user = u.clone();
    }
    new.imap = server_edit(
        &new.imap,
        s.imap.as_deref(),
        s.imap_security.as_deref(),
        default_imap_port,
    )?;
    new.smtp = server_edit(
        &new.smtp,
        s.smtp.as_deref(),
        s.smtp_security.as_deref(),
        default_smtp_port,
    )?;
    if s.insecure_skip_verify {
        new.insecure_skip_verify = true;
    }
    if change.verify_certificates {
        new.insecure_skip_verify = false;
    }
    if change.clear_ca_file {
        new.ca_file = None;
    }
    if let Some(ca) = &s.ca_file {
        new.ca_file = Some(std::fs::canonicalize(ca).map_err(|e| {
            AppError::usage(
                format!("the CA file {} cannot be read: {e}", ca.display()),
                "pass the path to a PEM file",
            )
        })?);
    }
    if change.clear_aliases {
        new.aliases.clear();
    }
    if !s.aliases.is_empty() {
        new.aliases = s.aliases.clone();
    }
    if let Some(sw) = &s.share_with {
        new.shared_with = sw.clone();
    }
    if let Some(cmd) = &change.password_command {
        new.password_command = Some(cmd.clone());
    }
    // The first-sync scope (what `sync --plan --since/--unread-only` previewed).
    if let Some(s) = change.since.as_deref() {
        new.sync.since = HistoryScope::parse(s)?;
    }
    if let Some(p) = change.process.as_deref() {
        new.sync.process = parse_process(p)?;
    }
    if let Some(m) = change.mark_read {
        new.sync.mark_read = m;
    }
    options_edited(&mut new, change)?;
    Ok(new)
}

/// The SMTP choices and sync options of `change` applied to `new`.
fn options_edited(new: &mut AccountConfig, change: &Edit) -> Result<()> {
    let s = &change.server;
    if let Some(a) = &s.smtp_auth {
        new.smtp_auth = parse_smtp_auth(a)?;
    }
    if let Some(u) = s.use_system_smtp {
        new.use_system_smtp = u;
    }
    super::signin::edited(new, s)?;
    if let Some(p) = change.poll_secs {
        if p == 0 {
            return Err(AppError::usage(
                "--poll-secs 0 is too short",
                "give the seconds between polls, at least 1 (default 300)",
            ));
        }
        new.sync.poll_secs = p;
    }
    if let Some(b) = change.prefetch_max_bytes {
        new.sync.body_prefetch_max_bytes = b;
    }
    if let Some(c) = change.sent_copy {
        new.sent_copy.enabled = c;
    }
    if let Some(d) = &change.display_name {
        new.display_name = Some(d.trim().to_string()).filter(|d| !d.is_empty());
    }
    if let Some(e) = change.enabled {
        new.enabled = e;
    }
    Ok(())
}

fn server_edit(
    old: &Server,
    spec: Option<&str>,
    security: Option<&str>,
    default_port: fn(Security) -> u16,
) -> Result<Server> {
    let sec = security
        .map(Security::parse)
        .transpose()?
        .unwrap_or(old.security);
    Ok(match spec {
        Some(spec) => Server::parse(spec, sec, default_port)?,
        None => Server {
            security: sec,
            ..old.clone()
        },
    })
}

fn parse_process(p: &str) -> Result<ProcessScope> {
    match p {
        "all" => Ok(ProcessScope::All),
        "unread-only" | "unread_only" => Ok(ProcessScope::UnreadOnly),
        _ => Err(AppError::usage(
            format!("unknown --process {p:?}"),
            "use all or unread-only",
        )),
    }
}

/// Replaces the account's password (and retries an account in error). `password` is asked
/// only once the change is allowed.
pub fn set_password(
    cx: &Ctx,
    name: &str,
    password: impl FnOnce() -> Result<Password>,
) -> Result<()> {
    let config = cx.config()?;
    let mut store = cx.store()?;
    let (_, a) = access::account(cx, &config, &store, name, Need::Configure)?;
    let command = match password()? {
        Password::Command(cmd) => Some(cmd),
        Password::Secret(secret) => {
            seal_password(cx, &mut store, &a.id, &secret)?;
            None
        }
    };
    if command.is_some() || a.password_command.is_some() {
        let new = AccountConfig {
            password_command: command,
            ..a.clone()
        };
        config::edit(&cx.home, |doc| config::update_account(doc, name, a, &new))?;
    }
    store.insert_account(&a.id, name, a.enabled)?;
    store.reset_failures(&a.id, a.enabled)?;
    store.audit(
        &cx.operator,
        "account_set_password",
        Some(&a.id),
        Some(name),
        &json!({}),
    )?;
    Ok(())
}

fn seal_password(cx: &Ctx, store: &mut Store, id: &str, pw: &SecretString) -> Result<()> {
    store.set_credential(
        id,
        "imap",
        &cx.vault()?.seal(&credential_context(id, "imap"), pw)?,
    )
}

/// `account enable|disable`; disabling may drop the cached mail (pairings, outbox and audit
/// log stay).
pub fn set_enabled(cx: &Ctx, name: &str, enabled: bool, remove_history: bool) -> Result<()> {
    let config = cx.config()?;
    let mut store = cx.store()?;
    let (_, a) = access::account(cx, &config, &store, name, Need::Configure)?;
    let new = AccountConfig {
        enabled,
        ..a.clone()
    };
    config::edit(&cx.home, |doc| config::update_account(doc, name, a, &new))?;
    store.insert_account(&a.id, name, enabled)?;
    store.reset_failures(&a.id, enabled)?;
    if remove_history {
        store.remove_account_data(&a.id, false)?;
    }
    store.audit(
        &cx.operator,
        if enabled {
            "account_enable"
        } else {
            "account_disable"
        },
        Some(&a.id),
        Some(name),
        &json!({"remove_history": remove_history}),
    )?;
    Ok(())
}

/// `account remove`: the settings go; with `purge` also the password, outbox and account
/// state (pairings and the audit log stay).
pub fn remove(cx: &Ctx, name: &str, purge: bool) -> Result<()> {
    let config = cx.config()?;
    let mut store = cx.store()?;
    let (_, a) = access::account(cx, &config, &store, name, Need::Configure)?;
    config::edit(&cx.home, |doc| {
        if let Some(t) = doc["accounts"].as_table_mut() {
            t.remove(name);
        }
        Ok(())
    })?;
    super::operators::settings_changed(cx)?;
    store.remove_account_data(&a.id, purge)?;
    if !purge {
        store.set_state(&a.id, AccountState::Disabled)?;
    }
    store.audit(
        &cx.operator,
        "account_remove",
        Some(&a.id),
        Some(name),
        &json!({"purge": purge}),
    )?;
    Ok(())
}

/// What the account test of a stored account runs with.
struct Stored {
    config: std::sync::Arc<Config>,
    acct: Account,
    imap_pw: Credential,
    /// None: the SMTP server is used without a login.
    smtp_pw: Option<Credential>,
    chosen_sent: Option<String>,
}

/// `account test`: every step against the servers, each reported to `on_step` as it ends. A
/// failed step lands in the error log with its fix.
pub async fn test(cx: &Ctx, name: &str, on_step: &mut (dyn FnMut(&Step) + Send)) -> Result<Report> {
    let n = name.to_string();
    let s = cx.blocking(move |cx| stored_for_test(cx, &n)).await?;
    let report = crate::check::run(
        &s.config,
        &s.acct,
        &s.imap_pw,
        s.smtp_pw.as_ref(),
        s.chosen_sent,
        on_step,
    )
    .await;
    let failed = report
        .steps
        .iter()
        .find(|s| s.status == StepStatus::Failed)
        .cloned();
    if let Some(failed) = failed {
        let id = s.acct.id().to_string();
        cx.blocking(move |cx| log_failed_test(cx, &id, &failed))
            .await?;
    }
    Ok(report)
}

/// The account test with `change` applied to a stored account's settings, nothing stored (the
/// console's edit form tests before it saves): `password` as typed, else the stored one.
pub async fn test_edit(
    cx: &Ctx,
    name: &str,
    change: &Edit,
    password: Option<SecretString>,
    on_step: &mut (dyn FnMut(&Step) + Send),
) -> Result<Report> {
    let (n, ch) = (name.to_string(), change.clone());
    let s = cx
        .blocking(move |cx| edited_for_test(cx, &n, &ch, password))
        .await?;
    Ok(crate::check::run(
        &s.config,
        &s.acct,
        &s.imap_pw,
        s.smtp_pw.as_ref(),
        s.chosen_sent,
        on_step,
    )
    .await)
}

/// The stored account with `change` applied, and the passwords to test it with.
fn edited_for_test(
    cx: &Ctx,
    name: &str,
    change: &Edit,
    password: Option<SecretString>,
) -> Result<Stored> {
    let config = cx.config()?;
    let store = cx.store()?;
    let (_, old) = access::account(cx, &config, &store, name, Need::Configure)?;
    let mut cfg = edited(old, change)?;
    valid_settings(&config, &cfg)?;
    if password.is_some() {
        cfg.password_command = None;
    }
    let acct = Account {
        name: name.to_string(),
        cfg,
    };
    let vault = cx.vault()?;
    let imap_pw = match password {
        Some(p) => Credential::Password(p),
        None => acct.credential(&store, &vault)?,
    };
    stored(config, &store, &vault, acct, imap_pw)
}

/// What a test of `acct` needs besides its IMAP credential: the SMTP one and the Sent folder
/// the user chose.
fn stored(
    config: std::sync::Arc<Config>,
    store: &Store,
    vault: &crate::secret::Vault,
    acct: Account,
    imap_pw: Credential,
) -> Result<Stored> {
    let smtp_pw = acct.smtp_credential(&config, store, vault, Some(&imap_pw))?;
    let chosen_sent = store.chosen_sent_folder(acct.id())?;
    Ok(Stored {
        config,
        acct,
        imap_pw,
        smtp_pw,
        chosen_sent,
    })
}

/// The stored account's settings, passwords and chosen Sent folder, if this operator may test
/// it.
fn stored_for_test(cx: &Ctx, name: &str) -> Result<Stored> {
    let config = cx.config()?;
    let store = cx.store()?;
    access::account(cx, &config, &store, name, Need::Configure)?;
    let acct = Account::from_config(&config, name)?;
    let vault = cx.vault()?;
    let imap_pw = acct.credential(&store, &vault)?;
    stored(config, &store, &vault, acct, imap_pw)
}

/// A failed step goes to the error log with its fix.
fn log_failed_test(cx: &Ctx, account_id: &str, failed: &Step) -> Result<()> {
    cx.store()?.log_event(
        Some(account_id),
        Level::Error,
        &format!("account test failed at {}", failed.id),
        Some(&failed.detail),
        failed.fix.as_deref(),
    )?;
    Ok(())
}

/// An account named by the user that this operator may do `need` on, resolved for use.
pub fn resolve(cx: &Ctx, name: Option<&str>, need: Need) -> Result<Account> {
    let config = cx.config()?;
    let (n, _) = access::pick_account(cx, &config, &*cx.store()?, name, need)?;
    Account::from_config(&config, n)
}

/// Account names are installation-wide: one in use is refused whoever owns the account (and
/// whether or not this operator may see it).
fn free_name(config: &Config, name: &str) -> Result<()> {
    if config.accounts.contains_key(name) {
        return Err(AppError::needs_user(
            format!("an account named {name:?} already exists"),
            "",
            "pick another name, or `mailroom account edit`",
        )
        .with_code(crate::error::Code::Conflict));
    }
    Ok(())
}

fn valid_name(name: &str) -> Result<()> {
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_alphanumeric() || "-_.@".contains(c))
    {
        return Err(AppError::usage(
            format!("invalid account name {name:?}"),
            "use letters, digits, - _ . @",
        ));
    }
    Ok(())
}

/// A new account's settings from the user's text (presets fill what is not given).
fn build(s: &ServerSpec, password_command: Option<String>) -> Result<AccountConfig> {
    let email = s.email.clone().ok_or_else(|| {
        AppError::usage(
            "--email is required",
            "mailroom account add NAME --email ADDR --imap HOST[:PORT] --smtp HOST[:PORT]",
        )
    })?;
    let preset = s.preset.as_deref().map(crate::presets::find).transpose()?;
    let security = |given: &Option<String>, preset: Option<Security>, default: Security| {
        Ok::<_, AppError>(
            given
                .as_deref()
                .map(Security::parse)
                .transpose()?
                .or(preset)
                .unwrap_or(default),
        )
    };
    let imap_sec = security(
        &s.imap_security,
        preset.map(|p| p.imap_security),
        Security::Tls,
    )?;
    let smtp_sec = security(
        &s.smtp_security,
        preset.map(|p| p.smtp_security),
        Security::Starttls,
    )?;
    let imap_spec = s
        .imap
        .clone()
        .or(preset.map(|p| format!("{}:{}", p.imap_host, p.imap_port)))
        .ok_or_else(|| AppError::usage("--imap HOST[:PORT] is required", "or use --preset NAME"))?;
    let smtp_spec = s
        .smtp
        .clone()
        .or(preset.map(|p| format!("{}:{}", p.smtp_host, p.smtp_port)))
        .ok_or_else(|| AppError::usage("--smtp HOST[:PORT] is required", "or use --preset NAME"))?;
    if let Some(ca) = &s.ca_file
        && !ca.exists()
    {
        return Err(AppError::usage(
            format!("the CA file {} does not exist", ca.display()),
            "pass the path to a PEM file",
        ));
    }
    let auth = s
        .auth
        .as_deref()
        .map(AuthKind::parse)
        .transpose()?
        .unwrap_or_default();
    let oauth2 = super::signin::new_settings(auth, &s.oauth, preset)?;
    if auth == AuthKind::OAuth2 && password_command.is_some() {
        return Err(AppError::usage(
            "--password-command does not apply to an OAuth2 account",
            "leave it out: an OAuth2 account signs in with `mailroom account login NAME`",
        ));
    }
    Ok(AccountConfig {
        id: new_id(),
        email: email.clone(),
        display_name: None,
        user: s.user.clone().unwrap_or(email),
        enabled: true,
        imap: Server::parse(&imap_spec, imap_sec, default_imap_port)?,
        smtp: Server::parse(&smtp_spec, smtp_sec, default_smtp_port)?,
        auth,
        oauth2,
        smtp_auth: s
            .smtp_auth
            .as_deref()
            .map(parse_smtp_auth)
            .transpose()?
            .flatten(),
        use_system_smtp: s.use_system_smtp.unwrap_or(false),
        insecure_skip_verify: s.insecure_skip_verify,
        ca_file: s
            .ca_file
            .as_ref()
            .map(|p| std::fs::canonicalize(p).unwrap_or_else(|_| p.clone())),
        password_command,
        aliases: s.aliases.clone(),
        owner: None,
        shared_with: s.share_with.clone().unwrap_or_default(),
        deny: Vec::new(),
        preset: s.preset.clone(),
        sync: Default::default(),
        sent_copy: Default::default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> ServerSpec {
        ServerSpec {
            email: Some("work@example.test".into()),
            imap: Some("127.0.0.1:1993".into()),
            smtp: Some("127.0.0.1:1587".into()),
            share_with: Some(vec!["carol".into()]),
            ..Default::default()
        }
    }

    #[test]
    fn the_owner_configures_a_shared_operator_sees_a_stranger_finds_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let home = crate::config::Home {
            root: dir.path().to_path_buf(),
        };
        let alice = Ctx::new(home, "alice");
        let new = prepare(&alice, "work", &spec(), None).unwrap();
        assert_eq!(new.cfg.owner.as_deref(), Some("alice"));
        add(&alice, &new, Some(&SecretString::from("secret"))).unwrap();

        let (carol, eve) = (alice.as_operator("carol"), alice.as_operator("eve"));
        // Names are installation-wide.
        let dup = prepare(&eve, "work", &spec(), None).unwrap_err();
        assert!(dup.summary.contains("already exists"), "{}", dup.summary);
        assert!(list(&eve).unwrap().is_empty());
        assert_eq!(list(&carol).unwrap()[0].name, "work");

        let hidden = show(&eve, "work").unwrap_err();
        let missing = show(&eve, "nope").unwrap_err();
        assert_eq!(hidden.summary, "no such account visible to operator eve");
        assert_eq!((hidden.summary, hidden.fix), (missing.summary, missing.fix));
        let change = Edit {
            mark_read: Some(true),
            ..Default::default()
        };
        let asked = std::cell::Cell::new(false);
        let refused = edit(&carol, "work", &change, || {
            asked.set(true);
            Ok(None)
        })
        .unwrap_err();
        assert!(refused.summary.contains("may not change the settings"));
        assert!(
            !asked.get(),
            "no password is asked before the change is allowed"
        );
        assert!(set_enabled(&carol, "work", false, false).is_err());
        assert!(remove(&eve, "work", true).is_err());

        let v = edit(&alice, "work", &change, || Ok(None)).unwrap();
        assert!(v.sync.mark_read);
        assert_eq!(
            show(&alice, "work").unwrap().password_source,
            PasswordSource::Stored
        );
        let rows = alice.store().unwrap().audit_rows(20).unwrap();
        let refusals = rows.iter().filter(|r| r.action == "refused").count();
        assert_eq!(
            refusals, 4,
            "carol's edit and disable, eve's show and remove"
        );
    }
    #[test]
    fn settings_from_the_cli_are_checked_written_and_audited_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let home = crate::config::Home {
            root: dir.path().to_path_buf(),
        };
        let alice = Ctx::new(home, "alice");
        let relay = ServerSpec {
            smtp_auth: Some("none".into()),
            smtp_security: Some("none".into()),
            ..spec()
        };
        let new = prepare(&alice, "work", &relay, None).unwrap();
        assert_eq!(new.cfg.smtp_auth, Some(SmtpAuth::None));
        add(&alice, &new, Some(&SecretString::from("secret"))).unwrap();
        let bad = ServerSpec {
            smtp_auth: Some("xoauth2".into()),
            ..spec()
        };
        let e = prepare(&alice, "other", &bad, None).unwrap_err();
        assert_eq!(e.kind, crate::error::Kind::Usage);
        assert!(e.summary.contains("needs OAuth2 sign-in"), "{e}");

        let change = Edit {
            server: ServerSpec {
                smtp_auth: Some("default".into()),
                ..Default::default()
            },
            poll_secs: Some(30),
            prefetch_max_bytes: Some(0),
            ..Default::default()
        };
        let v = edit(&alice, "work", &change, || Ok(None)).unwrap();
        assert_eq!(v.smtp_auth, None);
        assert_eq!((v.sync.poll_secs, v.sync.body_prefetch_max_bytes), (30, 0));
        let rows = alice.store().unwrap().audit_rows(5).unwrap();
        let last = rows.iter().find(|r| r.action == "account_edit").unwrap();
        let changed = &last.detail.as_ref().unwrap()["changed"];
        assert_eq!(
            changed,
            &serde_json::json!([
                "smtp_auth",
                "sync.body_prefetch_max_bytes",
                "sync.poll_secs"
            ])
        );
        for (poll, system) in [(Some(0), None), (None, Some(true))] {
            let change = Edit {
                server: ServerSpec {
                    use_system_smtp: system,
                    ..Default::default()
                },
                poll_secs: poll,
                ..Default::default()
            };
            let e = edit(&alice, "work", &change, || Ok(None)).unwrap_err();
            assert_eq!(e.kind, crate::error::Kind::Usage, "{e}");
        }
        assert_eq!(show(&alice, "work").unwrap().sync.poll_secs, 30);
    }

    #[test]
    fn a_rename_keeps_the_id_and_moves_alerts_display_name_enabled_and_ca_file_edit() {
        let dir = tempfile::tempdir().unwrap();
        let home = crate::config::Home {
            root: dir.path().to_path_buf(),
        };
        let alice = Ctx::new(home.clone(), "alice");
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, "not checked here").unwrap();
        let with_ca = ServerSpec {
            ca_file: Some(ca.clone()),
            ..spec()
        };
        for name in ["work", "home"] {
            let new = prepare(&alice, name, &with_ca, None).unwrap();
            add(&alice, &new, Some(&SecretString::from("secret"))).unwrap();
        }
        let id = show(&alice, "work").unwrap().id;
        let text = std::fs::read_to_string(home.config_path()).unwrap();
        std::fs::write(
            home.config_path(),
            format!(
                "{text}\n[[alerts.channels]]\nid = 1\naccount = \"work\"\nmail_to = \"ops@x.test\"\nvia = \"work\"\n"
            ),
        )
        .unwrap();
        let dup = Edit {
            rename: Some("home".into()),
            ..Default::default()
        };
        let e = edit(&alice, "work", &dup, || Ok(None)).unwrap_err();
        assert!(e.summary.contains("already exists"), "{e}");
        let bad = Edit {
            rename: Some("no spaces".into()),
            ..Default::default()
        };
        assert_eq!(
            edit(&alice, "work", &bad, || Ok(None)).unwrap_err().kind,
            crate::error::Kind::Usage
        );
        let change = Edit {
            rename: Some("office".into()),
            display_name: Some("Office Desk".into()),
            enabled: Some(false),
            clear_ca_file: true,
            ..Default::default()
        };
        let v = edit(&alice, "work", &change, || Ok(None)).unwrap();
        assert_eq!((v.name.as_str(), v.id.as_str()), ("office", id.as_str()));
        assert_eq!(v.display_name.as_deref(), Some("Office Desk"));
        assert!(!v.enabled && v.ca_file.is_none());
        assert!(show(&alice, "work").is_err(), "the old name is gone");
        let config = alice.config().unwrap();
        assert_eq!(config.accounts["office"].id, id);
        let ch = &config.alerts.channels[0];
        assert_eq!(
            (ch.account.as_deref(), ch.via.as_deref()),
            (Some("office"), Some("office"))
        );
        let store = alice.store().unwrap();
        let row = store.account(&id).unwrap().unwrap();
        assert_eq!(row.name, "office");
        assert_eq!(row.state, AccountState::Disabled);
        drop(store);
        let back = Edit {
            display_name: Some(String::new()),
            enabled: Some(true),
            ..Default::default()
        };
        let v = edit(&alice, "office", &back, || Ok(None)).unwrap();
        assert!(v.enabled && v.display_name.is_none());
        assert_eq!(
            show(&alice, "home").unwrap().ca_file,
            Some(ca.canonicalize().unwrap())
        );
    }
}
