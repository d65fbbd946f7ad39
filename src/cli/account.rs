//! `mailroom account …`: add, list, show, edit, set-password, enable, disable, remove, test.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use secrecy::SecretString;
use serde_json::json;

use super::Ctx;
use super::output::{emit, note, table};
use crate::error::{AppError, Result};
use crate::mail::sanitize::clean_line;
use crate::ops::accounts::{
    self, AccountView, Edit, Password, ServerSpec, Step, StepStatus, prompt_password,
    read_password_stdin,
};

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

impl ServerArgs {
    fn spec(&self) -> ServerSpec {
        ServerSpec {
            email: self.email.clone(),
            imap: self.imap.clone(),
            imap_security: self.imap_security.clone(),
            smtp: self.smtp.clone(),
            smtp_security: self.smtp_security.clone(),
            user: self.user.clone(),
            insecure_skip_verify: self.insecure_skip_verify,
            ca_file: self.ca_file.clone(),
            preset: self.preset.clone(),
            aliases: self.aliases.clone(),
            share_with: self.share_with.clone(),
        }
    }
}

/// Reads the password per the flags: stdin, a command (nothing stored), or a prompt on a TTY.
fn obtain_password(pw: &PasswordArgs, name: &str) -> Result<Option<SecretString>> {
    if pw.password_command.is_some() {
        return Ok(None);
    }
    if pw.password_stdin {
        return read_password_stdin().map(Some);
    }
    prompt_password(&format!("password for {name}: ")).map(Some)
}

async fn add(ctx: &Ctx, a: AddArgs) -> Result<i32> {
    let new = accounts::prepare(
        ctx,
        &a.name,
        &a.server.spec(),
        a.pw.password_command.clone(),
    )?;
    if let Some(hint) = new.hint() {
        note(format!("note: {hint}"));
    }
    let password = obtain_password(&a.pw, &a.name)?;
    if a.test {
        let report =
            accounts::test_new(ctx, &new, password.clone(), &mut |s| progress_line(ctx, s)).await?;
        if !report.ok {
            // One JSON object: the error, with the failed step's code and words.
            return Err(accounts::test_failed(&report));
        }
    }
    let view = accounts::add(ctx, &new, password.as_ref())?;
    emit(ctx.json, &json!({"account": view}), || {
        let mut s = format!("added account {} ({})", view.name, view.email);
        if view.insecure {
            s.push_str("\nwarning: certificate checks are OFF for this account (insecure)");
        }
        s.push_str(&format!(
            "\nnext: `mailroom account test {}`, then `mailroom sync {} --plan`",
            view.name, view.name
        ));
        s
    });
    Ok(0)
}

fn progress_line(ctx: &Ctx, s: &Step) {
    if ctx.json {
        return;
    }
    let mark = match s.status {
        StepStatus::Ok => "ok     ",
        StepStatus::Failed => "FAILED ",
        StepStatus::Skipped => "skipped",
    };
    note(format!("{mark} {:<13} {}", s.id, clean_line(&s.detail)));
    if let Some(fix) = &s.fix {
        note(format!("        {:<13} fix: {}", "", clean_line(fix)));
    }
}

fn list(ctx: &Ctx) -> Result<i32> {
    let visible = accounts::list(ctx)?;
    emit(ctx.json, &json!({"accounts": visible}), || {
        if visible.is_empty() {
            return "no accounts; add one with `mailroom account add NAME --email … --imap … --smtp …`".into();
        }
        let rows: Vec<Vec<String>> = visible
            .iter()
            .map(|a| {
                vec![
                    a.name.clone(),
                    a.email.clone(),
                    a.imap.display(),
                    a.smtp.display(),
                    if a.enabled { "yes".into() } else { "no".into() },
                    if a.insecure {
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
    let v = accounts::show(ctx, name)?;
    emit(ctx.json, &json!({"account": v}), || {
        serde_json::to_string_pretty(&v).unwrap_or_default()
    });
    Ok(0)
}

fn edit(ctx: &Ctx, a: EditArgs) -> Result<i32> {
    let change = Edit {
        server: a.server.spec(),
        verify_certificates: a.verify_certificates,
        since: a.since.clone(),
        process: a.process.clone(),
        mark_read: a.mark_read,
        password_command: a.pw.password_command.clone(),
    };
    let stdin = a.pw.password_stdin;
    let view: AccountView = accounts::edit(ctx, &a.name, &change, || {
        stdin.then(read_password_stdin).transpose()
    })?;
    emit(ctx.json, &json!({"account": view}), || {
        format!("updated account {}", a.name)
    });
    Ok(0)
}

fn set_password(ctx: &Ctx, name: &str, pw: PasswordArgs) -> Result<i32> {
    accounts::set_password(ctx, name, || match &pw.password_command {
        Some(cmd) => Ok(Password::Command(cmd.clone())),
        None => obtain_password(&pw, name)?
            .map(Password::Secret)
            .ok_or_else(|| AppError::usage("no password given", "use --password-stdin")),
    })?;
    emit(ctx.json, &json!({"ok": true}), || {
        format!("password updated for {name}; sync will retry")
    });
    Ok(0)
}

fn set_enabled(ctx: &Ctx, name: &str, enabled: bool, remove_history: bool) -> Result<i32> {
    accounts::set_enabled(ctx, name, enabled, remove_history)?;
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
    accounts::remove(ctx, name, purge)?;
    emit(ctx.json, &json!({"ok": true}), || {
        format!("removed account {name}")
    });
    Ok(0)
}

async fn test(ctx: &Ctx, name: &str) -> Result<i32> {
    let report = accounts::test(ctx, name, &mut |s| progress_line(ctx, s)).await?;
    emit(ctx.json, &report, || {
        if report.ok {
            format!("all checks passed for {name}")
        } else {
            format!("checks failed for {name}")
        }
    });
    Ok(if report.ok { 0 } else { 1 })
}
