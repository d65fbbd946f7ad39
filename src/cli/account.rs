//! `mailroom account …`: add, list, show, edit, set-password, enable, disable, remove, test.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use secrecy::SecretString;
use serde_json::json;

use super::Ctx;
use super::output::{emit, note, table};
use crate::account::{Account, credential_context};
use crate::check::{self, StepStatus};
use crate::config::{
    self, AccountConfig, Config, HistoryScope, Security, Server, default_imap_port,
    default_smtp_port,
};
use crate::error::{AppError, Result};
use crate::model::new_id;
use crate::secret;
use crate::store::Store;

#[derive(Debug, Subcommand)]
pub enum AccountCmd {
    /// Store a new account (no network I/O unless --test).
    Add(AddArgs),
    List,
    Show {
        name: String,
    },
    /// Change settings; takes add's flags.
    Edit(EditArgs),
    /// Replace the stored password (and retry an account in error).
    SetPassword {
        name: String,
        #[command(flatten)]
        pw: PasswordArgs,
    },
    Enable {
        name: String,
    },
    Disable {
        name: String,
        /// Keep the cached mail (default).
        #[arg(long, conflicts_with = "remove_history")]
        keep_history: bool,
        /// Drop the cached mail (pairings, outbox and audit log stay).
        #[arg(long)]
        remove_history: bool,
    },
    Remove {
        name: String,
        /// Also remove the password, outbox and account state (pairings and audit log stay).
        #[arg(long)]
        purge: bool,
    },
    /// Check every step against the servers: connect, TLS, login, folders, Sent, SMTP.
    Test {
        name: String,
    },
}

#[derive(Debug, Args, Clone, Default)]
pub struct PasswordArgs {
    /// Read the password from stdin (one line).
    #[arg(long, conflicts_with = "password_command")]
    pub password_stdin: bool,
    /// Run this command to get the password whenever needed (nothing is stored).
    #[arg(long, value_name = "CMD")]
    pub password_command: Option<String>,
}

#[derive(Debug, Args, Clone, Default)]
pub struct ServerArgs {
    #[arg(long)]
    pub email: Option<String>,
    /// IMAP server HOST[:PORT].
    #[arg(long, value_name = "HOST[:PORT]")]
    pub imap: Option<String>,
    /// tls (default, 993), starttls (143) or none.
    #[arg(long, value_name = "S")]
    pub imap_security: Option<String>,
    /// SMTP server HOST[:PORT].
    #[arg(long, value_name = "HOST[:PORT]")]
    pub smtp: Option<String>,
    /// starttls (default, 587), tls (465) or none.
    #[arg(long, value_name = "S")]
    pub smtp_security: Option<String>,
    /// Login name (default: the email).
    #[arg(long)]
    pub user: Option<String>,
    /// Do not verify TLS certificates for this account (shown as insecure).
    #[arg(long)]
    pub insecure_skip_verify: bool,
    /// Trust this CA (PEM) for this account's servers.
    #[arg(long, value_name = "PEM")]
    pub ca_file: Option<PathBuf>,
    /// Fill servers from a provider preset (gmail, outlook, fastmail, …).
    #[arg(long)]
    pub preset: Option<String>,
    /// A sender alias of this account (repeatable).
    #[arg(long = "alias", value_name = "ADDR")]
    pub aliases: Vec<String>,
    /// Share with these operators (comma separated).
    #[arg(long, value_delimiter = ',')]
    pub share_with: Option<Vec<String>>,
}

#[derive(Debug, Args)]
pub struct AddArgs {
    pub name: String,
    #[command(flatten)]
    pub server: ServerArgs,
    #[command(flatten)]
    pub pw: PasswordArgs,
    /// Run `account test` first and store nothing if a step fails.
    #[arg(long)]
    pub test: bool,
}

#[derive(Debug, Args)]
pub struct EditArgs {
    pub name: String,
    #[command(flatten)]
    pub server: ServerArgs,
    #[command(flatten)]
    pub pw: PasswordArgs,
    /// Turn certificate verification back on.
    #[arg(long, conflicts_with = "insecure_skip_verify")]
    pub verify_certificates: bool,
    /// What a folder's first sync fetches: messages since DATE (YYYY-MM-DD), `new` (no old
    /// mail, only what arrives from then on), or `all` for the whole history.
    #[arg(long, value_name = "DATE|new|all")]
    pub since: Option<String>,
    /// Which messages sync processes: all, or unread-only.
    #[arg(long, value_name = "all|unread-only")]
    pub process: Option<String>,
    /// Mark new mail read on the server after processing (only mail arriving from now on).
    #[arg(long, value_name = "BOOL")]
    pub mark_read: Option<bool>,
}

pub async fn run(ctx: &Ctx, cmd: AccountCmd) -> Result<i32> {
    match cmd {
        AccountCmd::Add(a) => add(ctx, a).await,
        AccountCmd::List => list(ctx),
        AccountCmd::Show { name } => show(ctx, &name),
        AccountCmd::Edit(a) => edit(ctx, a),
        AccountCmd::SetPassword { name, pw } => set_password(ctx, &name, pw),
        AccountCmd::Enable { name } => set_enabled(ctx, &name, true, false),
        AccountCmd::Disable {
            name,
            remove_history,
            ..
        } => set_enabled(ctx, &name, false, remove_history),
        AccountCmd::Remove { name, purge } => remove(ctx, &name, purge),
        AccountCmd::Test { name } => test(ctx, &name).await,
    }
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

/// Reads the password per the flags: stdin, a command (nothing stored), or a prompt on a TTY.
fn obtain_password(pw: &PasswordArgs, name: &str) -> Result<Option<SecretString>> {
    if pw.password_command.is_some() {
        return Ok(None);
    }
    if pw.password_stdin {
        return secret::read_password_stdin().map(Some);
    }
    prompt_password(&format!("password for {name}: ")).map(Some)
}

fn build_account(s: &ServerArgs, pw: &PasswordArgs) -> Result<AccountConfig> {
    let email = s.email.clone().ok_or_else(|| {
        AppError::usage(
            "--email is required",
            "mailroom account add NAME --email ADDR --imap HOST[:PORT] --smtp HOST[:PORT]",
        )
    })?;
    let preset = s.preset.as_deref().map(crate::presets::find).transpose()?;
    let imap_sec = s
        .imap_security
        .as_deref()
        .map(Security::parse)
        .transpose()?
        .or(preset.map(|p| p.imap_security))
        .unwrap_or(Security::Tls);
    let smtp_sec = s
        .smtp_security
        .as_deref()
        .map(Security::parse)
        .transpose()?
        .or(preset.map(|p| p.smtp_security))
        .unwrap_or(Security::Starttls);
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
    Ok(AccountConfig {
        id: new_id(),
        email: email.clone(),
        display_name: None,
        user: s.user.clone().unwrap_or(email),
        enabled: true,
        imap: Server::parse(&imap_spec, imap_sec, default_imap_port)?,
        smtp: Server::parse(&smtp_spec, smtp_sec, default_smtp_port)?,
        use_system_smtp: false,
        insecure_skip_verify: s.insecure_skip_verify,
        ca_file: s
            .ca_file
            .as_ref()
            .map(|p| std::fs::canonicalize(p).unwrap_or_else(|_| p.clone())),
        password_command: pw.password_command.clone(),
        aliases: s.aliases.clone(),
        owner: None,
        shared_with: s.share_with.clone().unwrap_or_default(),
        deny: Vec::new(),
        preset: s.preset.clone(),
        sync: Default::default(),
        sent_copy: Default::default(),
    })
}

async fn add(ctx: &Ctx, a: AddArgs) -> Result<i32> {
    valid_name(&a.name)?;
    let config = ctx.config()?;
    if config.accounts.contains_key(&a.name) {
        return Err(AppError::needs_user(
            format!("an account named {:?} already exists", a.name),
            "",
            "pick another name, or `mailroom account edit`",
        ));
    }
    let mut acct_cfg = build_account(&a.server, &a.pw)?;
    acct_cfg.owner = Some(ctx.operator.clone());
    if let Some(p) = a
        .server
        .preset
        .as_deref()
        .map(crate::presets::find)
        .transpose()?
        && let Some(hint) = p.hint
    {
        note(format!("note: {hint}"));
    }
    let password = obtain_password(&a.pw, &a.name)?;
    let acct = Account {
        name: a.name.clone(),
        cfg: acct_cfg.clone(),
    };
    if a.test {
        let pw = match &password {
            Some(p) => p.clone(),
            None => secret::run_password_command(
                acct_cfg.password_command.as_deref().unwrap_or_default(),
            )?,
        };
        // Not stored yet: no folder choice can exist.
        let report = check::run(&config, &acct, &pw, &pw, None, &mut |s| {
            progress_line(ctx, s)
        })
        .await;
        if !report.ok {
            emit(ctx.json, &report, String::new);
            let failed = report.steps.iter().find(|s| s.status == StepStatus::Failed);
            return Err(AppError::needs_user(
                "the account check failed; nothing was stored",
                failed
                    .map(|s| format!("{}: {}", s.id, s.detail))
                    .unwrap_or_default(),
                failed.and_then(|s| s.fix.clone()).unwrap_or_default(),
            ));
        }
    }
    let store = ctx.store()?;
    store_new(ctx, &store, &a.name, &acct_cfg, password.as_ref())?;
    emit(
        ctx.json,
        &json!({"account": account_json(&a.name, &acct_cfg)}),
        || {
            let mut s = format!("added account {} ({})", a.name, acct_cfg.email);
            if acct_cfg.insecure_skip_verify {
                s.push_str("\nwarning: certificate checks are OFF for this account (insecure)");
            }
            s.push_str(&format!(
                "\nnext: `mailroom account test {}`, then `mailroom sync {} --plan`",
                a.name, a.name
            ));
            s
        },
    );
    Ok(0)
}

fn progress_line(ctx: &Ctx, s: &check::Step) {
    if ctx.json {
        return;
    }
    let mark = match s.status {
        StepStatus::Ok => "ok     ",
        StepStatus::Failed => "FAILED ",
        StepStatus::Skipped => "skipped",
    };
    super::output::note(format!(
        "{mark} {:<13} {}",
        s.id,
        crate::mail::sanitize::clean_line(&s.detail)
    ));
    if let Some(fix) = &s.fix {
        super::output::note(format!(
            "        {:<13} fix: {}",
            "",
            crate::mail::sanitize::clean_line(fix)
        ));
    }
}

pub fn account_json(name: &str, a: &AccountConfig) -> serde_json::Value {
    json!({
        "name": name,
        "id": a.id,
        "email": a.email,
        "user": a.user,
        "enabled": a.enabled,
        "insecure": a.insecure_skip_verify,
        "imap": {"host": a.imap.host, "port": a.imap.port, "security": a.imap.security.as_str()},
        "smtp": {"host": a.smtp.host, "port": a.smtp.port, "security": a.smtp.security.as_str()},
        "ca_file": a.ca_file,
        "password_source": if a.password_command.is_some() { "command" } else { "stored" },
        "aliases": a.aliases,
        "owner": a.owner,
        "shared_with": a.shared_with,
        "sync": {
            "since": a.sync.since.value(),
            "process": a.sync.process,
            "mark_read": a.sync.mark_read,
        },
    })
}

fn list(ctx: &Ctx) -> Result<i32> {
    let config = ctx.config()?;
    let visible: Vec<(&String, &AccountConfig)> = config
        .accounts
        .iter()
        .filter(|(_, a)| ctx.sees(a))
        .collect();
    let items: Vec<_> = visible.iter().map(|(n, a)| account_json(n, a)).collect();
    emit(ctx.json, &json!({"accounts": items}), || {
        if visible.is_empty() {
            return "no accounts; add one with `mailroom account add NAME --email … --imap … --smtp …`".into();
        }
        let rows: Vec<Vec<String>> = visible
            .iter()
            .map(|(n, a)| {
                vec![
                    n.to_string(),
                    a.email.clone(),
                    a.imap.display(),
                    a.smtp.display(),
                    if a.enabled { "yes".into() } else { "no".into() },
                    if a.insecure_skip_verify {
                        "INSECURE".into()
                    } else {
                        String::new()
                    },
                ]
            })
            .collect();
        table(&["NAME", "EMAIL", "IMAP", "SMTP", "ENABLED", ""], &rows)
    });
    Ok(0)
}

fn show(ctx: &Ctx, name: &str) -> Result<i32> {
    let config = ctx.config()?;
    let a = config.account(name)?;
    if !ctx.sees(a) {
        return Err(AppError::not_found(
            "account",
            name,
            "see `mailroom account list`",
        ));
    }
    let v = account_json(name, a);
    emit(ctx.json, &json!({"account": v}), || {
        serde_json::to_string_pretty(&v).unwrap_or_default()
    });
    Ok(0)
}

fn edit(ctx: &Ctx, a: EditArgs) -> Result<i32> {
    let s = &a.server;
    // The server flags are shared with `add`, but a preset only fills in a new account: edit
    // would silently ignore it.
    if let Some(p) = &s.preset {
        return Err(AppError::usage(
            format!("--preset {p} only applies to `account add`"),
            "set the servers with --imap HOST[:PORT] and --smtp HOST[:PORT] (see `mailroom account add --help` for the presets' values)",
        ));
    }
    let config = ctx.config()?;
    let old = config.account(&a.name)?.clone();
    let mut new = old.clone();
    if let Some(e) = &s.email {
        new.email = e.clone();
    }
    if let Some(u) = &s.user {
        new.user = u.clone();
    }
    let imap_sec = s
        .imap_security
        .as_deref()
        .map(Security::parse)
        .transpose()?
        .unwrap_or(new.imap.security);
    new.imap = match &s.imap {
        Some(spec) => Server::parse(spec, imap_sec, default_imap_port)?,
        None => Server {
            security: imap_sec,
            ..new.imap
        },
    };
    let smtp_sec = s
        .smtp_security
        .as_deref()
        .map(Security::parse)
        .transpose()?
        .unwrap_or(new.smtp.security);
    new.smtp = match &s.smtp {
        Some(spec) => Server::parse(spec, smtp_sec, default_smtp_port)?,
        None => Server {
            security: smtp_sec,
            ..new.smtp
        },
    };
    if s.insecure_skip_verify {
        new.insecure_skip_verify = true;
    }
    if a.verify_certificates {
        new.insecure_skip_verify = false;
    }
    if let Some(ca) = &s.ca_file {
        new.ca_file = Some(std::fs::canonicalize(ca).map_err(|e| {
            AppError::usage(
                format!("the CA file {} cannot be read: {e}", ca.display()),
                "pass the path to a PEM file",
            )
        })?);
    }
    if !s.aliases.is_empty() {
        new.aliases = s.aliases.clone();
    }
    if let Some(sw) = &s.share_with {
        new.shared_with = sw.clone();
    }
    if let Some(cmd) = &a.pw.password_command {
        new.password_command = Some(cmd.clone());
    }
    // The first-sync scope (what `sync --plan --since/--unread-only` previewed).
    if let Some(s) = a.since.as_deref() {
        new.sync.since = HistoryScope::parse(s)?;
    }
    if let Some(p) = a.process.as_deref() {
        new.sync.process = match p {
            "all" => crate::config::ProcessScope::All,
            "unread-only" | "unread_only" => crate::config::ProcessScope::UnreadOnly,
            _ => {
                return Err(AppError::usage(
                    format!("unknown --process {p:?}"),
                    "use all or unread-only",
                ));
            }
        };
    }
    if let Some(m) = a.mark_read {
        new.sync.mark_read = m;
    }
    let store = ctx.store()?;
    if a.pw.password_stdin {
        let pw = secret::read_password_stdin()?;
        store.set_credential(
            &new.id,
            "imap",
            &ctx.vault()?
                .seal(&credential_context(&new.id, "imap"), &pw)?,
        )?;
        new.password_command = None;
    }
    config::edit(&ctx.home, |doc| {
        config::update_account(doc, &a.name, &old, &new)
    })?;
    // Changed settings are a user action: retry an account that had given up.
    store.reset_failures(&new.id, new.enabled)?;
    store.audit(
        &ctx.operator,
        "account_edit",
        Some(&new.id),
        Some(&a.name),
        &json!({"insecure": new.insecure_skip_verify}),
    )?;
    emit(
        ctx.json,
        &json!({"account": account_json(&a.name, &new)}),
        || format!("updated account {}", a.name),
    );
    Ok(0)
}

fn set_password(ctx: &Ctx, name: &str, pw: PasswordArgs) -> Result<i32> {
    let config = ctx.config()?;
    let a = config.account(name)?.clone();
    let store = ctx.store()?;
    if let Some(cmd) = &pw.password_command {
        let new = AccountConfig {
            password_command: Some(cmd.clone()),
            ..a.clone()
        };
        config::edit(&ctx.home, |doc| config::update_account(doc, name, &a, &new))?;
    } else {
        let secret = obtain_password(&pw, name)?
            .ok_or_else(|| AppError::usage("no password given", "use --password-stdin"))?;
        store.set_credential(
            &a.id,
            "imap",
            &ctx.vault()?
                .seal(&credential_context(&a.id, "imap"), &secret)?,
        )?;
        if a.password_command.is_some() {
            let new = AccountConfig {
                password_command: None,
                ..a.clone()
            };
            config::edit(&ctx.home, |doc| config::update_account(doc, name, &a, &new))?;
        }
    }
    store.insert_account(&a.id, name, a.enabled)?;
    store.reset_failures(&a.id, a.enabled)?;
    store.audit(
        &ctx.operator,
        "account_set_password",
        Some(&a.id),
        Some(name),
        &json!({}),
    )?;
    emit(ctx.json, &json!({"ok": true}), || {
        format!("password updated for {name}; sync will retry")
    });
    Ok(0)
}

fn set_enabled(ctx: &Ctx, name: &str, enabled: bool, remove_history: bool) -> Result<i32> {
    let config = ctx.config()?;
    let a = config.account(name)?.clone();
    let new = AccountConfig {
        enabled,
        ..a.clone()
    };
    config::edit(&ctx.home, |doc| config::update_account(doc, name, &a, &new))?;
    let mut store = ctx.store()?;
    store.insert_account(&a.id, name, enabled)?;
    store.reset_failures(&a.id, enabled)?;
    if remove_history {
        store.remove_account_data(&a.id, false)?;
    }
    store.audit(
        &ctx.operator,
        if enabled {
            "account_enable"
        } else {
            "account_disable"
        },
        Some(&a.id),
        Some(name),
        &json!({"remove_history": remove_history}),
    )?;
    emit(ctx.json, &json!({"ok": true, "enabled": enabled}), || {
        if enabled {
            format!("enabled {name}")
        } else if remove_history {
            format!("disabled {name} and removed its cached mail")
        } else {
            format!("disabled {name} (cached mail kept)")
        }
    });
    Ok(0)
}

fn remove(ctx: &Ctx, name: &str, purge: bool) -> Result<i32> {
    remove_account(ctx, name, purge)?;
    emit(ctx.json, &json!({"ok": true}), || {
        format!("removed account {name}")
    });
    Ok(0)
}

/// `account remove` without printing: shared with the console (issue 6).
pub fn remove_account(ctx: &Ctx, name: &str, purge: bool) -> Result<()> {
    let config = ctx.config()?;
    let a = config.account(name)?.clone();
    config::edit(&ctx.home, |doc| {
        if let Some(t) = doc["accounts"].as_table_mut() {
            t.remove(name);
        }
        Ok(())
    })?;
    let mut store = ctx.store()?;
    store.remove_account_data(&a.id, purge)?;
    if !purge {
        store.set_state(&a.id, crate::store::AccountState::Disabled)?;
    }
    store.audit(
        &ctx.operator,
        "account_remove",
        Some(&a.id),
        Some(name),
        &json!({"purge": purge}),
    )?;
    Ok(())
}

async fn test(ctx: &Ctx, name: &str) -> Result<i32> {
    let config = ctx.config()?;
    let acct = Account::from_config(&config, name)?;
    let store = ctx.store()?;
    let vault = ctx.vault()?;
    let report = match (
        acct.password(&store, &vault),
        acct.smtp_password(&config, &store, &vault),
    ) {
        (Ok(ip), Ok(sp)) => {
            let chosen_sent = store.chosen_sent_folder(acct.id())?;
            check::run(&config, &acct, &ip, &sp, chosen_sent, &mut |s| {
                progress_line(ctx, s)
            })
            .await
        }
        (Err(e), _) | (_, Err(e)) => return Err(e),
    };
    if let Some(failed) = report.steps.iter().find(|s| s.status == StepStatus::Failed) {
        store.log_event(
            Some(acct.id()),
            crate::store::Level::Error,
            &format!("account test failed at {}", failed.id),
            Some(&failed.detail),
            failed.fix.as_deref(),
        )?;
    }
    emit(ctx.json, &report, || {
        if report.ok {
            format!("all checks passed for {name}")
        } else {
            format!("checks failed for {name}")
        }
    });
    Ok(if report.ok { 0 } else { 1 })
}

/// Used by the console's setup form: the same validation as `account add`.
pub fn validate_new(
    config: &Config,
    name: &str,
    s: &ServerArgs,
    pw: &PasswordArgs,
) -> Result<AccountConfig> {
    valid_name(name)?;
    if config.accounts.contains_key(name) {
        return Err(AppError::needs_user(
            format!("an account named {name:?} already exists"),
            "",
            "pick another name",
        ));
    }
    build_account(s, pw)
}

/// Stores a validated account (config + sealed password + state row): shared with the console.
pub fn store_new(
    ctx: &Ctx,
    store: &Store,
    name: &str,
    acct: &AccountConfig,
    password: Option<&SecretString>,
) -> Result<()> {
    let vault = ctx.vault()?;
    let sealed = password
        .map(|p| vault.seal(&credential_context(&acct.id, "imap"), p))
        .transpose()?;
    store.insert_account(&acct.id, name, acct.enabled)?;
    if let Some(s) = &sealed {
        store.set_credential(&acct.id, "imap", s)?;
    }
    let item = config::account_table(acct)?;
    config::edit(&ctx.home, |doc| {
        if doc.get("accounts").is_none() {
            let mut t = toml_edit::Table::new();
            t.set_implicit(true);
            doc["accounts"] = toml_edit::Item::Table(t);
        }
        doc["accounts"][name] = item;
        Ok(())
    })?;
    store.audit(&ctx.operator, "account_add", Some(&acct.id), Some(name), &json!({"email": acct.email, "imap": acct.imap.display(), "smtp": acct.smtp.display(), "insecure": acct.insecure_skip_verify}))?;
    Ok(())
}

/// Prompts on the terminal without echo.
fn prompt_password(prompt: &str) -> Result<SecretString> {
    use std::io::IsTerminal;
    use std::io::Write;
    if !std::io::stdin().is_terminal() {
        return Err(AppError::usage(
            "no terminal to ask for the password",
            "use --password-stdin or --password-command CMD",
        ));
    }
    eprint!("{prompt}");
    std::io::stderr().flush()?;
    crossterm::terminal::enable_raw_mode()?;
    let mut pw = String::new();
    let res = (|| -> Result<()> {
        use crossterm::event::{Event, KeyCode, KeyEventKind, KeyModifiers, read};
        loop {
            if let Event::Key(k) = read()? {
                if k.kind != KeyEventKind::Press {
                    continue;
                }
                match k.code {
                    KeyCode::Enter => return Ok(()),
                    KeyCode::Backspace => {
                        pw.pop();
                    }
                    KeyCode::Char('c') if k.modifiers.contains(KeyModifiers::CONTROL) => {
                        return Err(AppError::usage("cancelled", ""));
                    }
                    KeyCode::Char(c) => pw.push(c),
                    _ => {}
                }
            }
        }
    })();
    crossterm::terminal::disable_raw_mode()?;
    eprintln!();
    res?;
    Ok(SecretString::from(pw))
}
