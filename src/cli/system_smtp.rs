//! `mailroom system-smtp show|set|remove`: the installation's system SMTP profile, which an
//! account sends through with `account edit NAME --use-system-smtp true`.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use serde_json::json;

use super::Ctx;
use super::account::PasswordArgs;
use super::output::emit;
use crate::config::{AuthKind, SmtpAuth};
use crate::error::Result;
use crate::mail::sanitize::clean_line;
use crate::ops::accounts::{PasswordSource, read_password_stdin};
use crate::ops::system_smtp::{self, Profile, ProfileEdit};

#[derive(Debug, Subcommand)]
pub enum SystemSmtpCmd {
    /// The profile (never its password) and the accounts that send through it.
    Show,
    /// Create or change the profile; only the flags given change.
    Set(SetArgs),
    /// Remove the profile and its stored password (refused while an account uses it).
    Remove,
}

#[derive(Debug, Args)]
pub struct SetArgs {
    /// SMTP server HOST[:PORT] (the port defaults from the security: 587, 465 or 25).
    #[arg(long, value_name = "HOST[:PORT]")]
    pub smtp: Option<String>,
    /// starttls (default, 587), tls (465) or none.
    #[arg(long, value_name = "S")]
    pub smtp_security: Option<String>,
    /// The login name.
    #[arg(long)]
    pub user: Option<String>,
    /// plain, login, none (no AUTH: a relay), or default (PLAIN if offered, else LOGIN).
    #[arg(long, value_name = "M")]
    pub smtp_auth: Option<String>,
    #[command(flatten)]
    pub pw: PasswordArgs,
    /// Trust this CA (PEM) for the profile's server.
    #[arg(long, value_name = "PEM")]
    pub ca_file: Option<PathBuf>,
    /// Do not verify the server's TLS certificate (shown as insecure).
    #[arg(long)]
    pub insecure_skip_verify: bool,
    /// Turn certificate verification back on.
    #[arg(long, conflicts_with = "insecure_skip_verify")]
    pub verify_certificates: bool,
}

pub fn run(ctx: &Ctx, cmd: SystemSmtpCmd) -> Result<i32> {
    match cmd {
        SystemSmtpCmd::Show => {
            let p = system_smtp::show(ctx)?;
            emit(ctx.json, &p, || text(&p));
        }
        SystemSmtpCmd::Set(a) => {
            let change = ProfileEdit {
                server: a.smtp.clone(),
                security: a.smtp_security.clone(),
                user: a.user.clone(),
                smtp_auth: a.smtp_auth.clone(),
                ca_file: a.ca_file.clone(),
                insecure_skip_verify: a.insecure_skip_verify,
                verify_certificates: a.verify_certificates,
                password_command: a.pw.password_command.clone(),
            };
            let stdin = a.pw.password_stdin;
            let p = system_smtp::set(ctx, &change, || stdin.then(read_password_stdin).transpose())?;
            emit(ctx.json, &p, || {
                format!("system SMTP profile saved\n{}", text(&p))
            });
        }
        SystemSmtpCmd::Remove => {
            system_smtp::remove(ctx)?;
            emit(ctx.json, &json!({"ok": true}), || {
                "system SMTP profile removed".to_string()
            });
        }
    }
    Ok(0)
}

fn text(p: &Profile) -> String {
    let Some(s) = &p.system_smtp else {
        return "no system SMTP profile; set one with `mailroom system-smtp set --smtp HOST[:PORT] --user LOGIN --password-stdin`".into();
    };
    let password = match s.password_source {
        PasswordSource::Command => "from a password command (nothing stored)",
        PasswordSource::Stored => "stored, sealed in the database",
        PasswordSource::Missing => "NONE yet: `mailroom system-smtp set --password-stdin`",
        PasswordSource::NotNeeded => "not needed (no login)",
        PasswordSource::OAuth2 => "OAuth2 tokens",
    };
    let certs = match (s.insecure, &s.ca_file) {
        (true, _) => "NOT verified (insecure)".to_string(),
        (false, Some(ca)) => format!("verified, trusting the CA in {}", ca.display()),
        (false, None) => "verified (system roots)".to_string(),
    };
    let user = match s.user.is_empty() {
        true => "(none)".to_string(),
        false => s.user.clone(),
    };
    let used = match p.used_by.is_empty() {
        true => "no account (`mailroom account edit NAME --use-system-smtp true`)".to_string(),
        false => p.used_by.join(", "),
    };
    [
        ("server", s.server.display()),
        ("user", user),
        ("login", SmtpAuth::describe(s.smtp_auth, AuthKind::Password)),
        ("password", password.to_string()),
        ("certificates", certs),
        ("used by", used),
    ]
    .iter()
    .map(|(k, v)| format!("  {k:<13} {}", clean_line(v)))
    .collect::<Vec<_>>()
    .join("\n")
}
