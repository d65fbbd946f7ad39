//! `mailroom account …`: add, list, show, edit, set-password, enable, disable, remove, test.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use secrecy::SecretString;
use serde_json::json;

use super::Ctx;
use super::output::{emit, note, table};
use crate::config::{AuthKind, SmtpAuth};
use crate::error::{AppError, Result};
use crate::mail::sanitize::clean_line;
use crate::ops::accounts::{
    self, AccountView, Edit, Password, PasswordSource, ServerSpec, Step, StepStatus,
    prompt_password, read_password_stdin,
};

#[derive(Debug, Subcommand)]
pub enum AccountCmd {
    /// Store a new account (no network I/O unless --test).
    Add(Box<AddArgs>),
    List,
    Show {
        name: String,
    },
    /// Change settings; takes add's flags.
    Edit(Box<EditArgs>),
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
    /// Sign an OAuth2 account in (again): the device flow prints a code to enter on any
    /// device; the browser flow prints an address to open and takes the address the browser
    /// ends on, pasted here (over SSH too).
    Login {
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
    /// SMTP login: plain, login, none (no AUTH: a relay that takes mail without a login), or
    /// xoauth2/oauthbearer (need OAuth2 sign-in). Default: PLAIN if the server offers it, else
    /// LOGIN (`default` on edit goes back to it).
    #[arg(long, value_name = "M")]
    pub smtp_auth: Option<String>,
    /// Send through the system SMTP profile (`mailroom system-smtp set`) instead of --smtp.
    #[arg(long, value_name = "BOOL")]
    pub use_system_smtp: Option<bool>,
    /// How the account signs in: password (default) or oauth2 (tokens from `account login`;
    /// with --preset gmail|google-workspace|outlook|microsoft365, or the --oauth-*-url flags).
    #[arg(long, value_name = "password|oauth2")]
    pub auth: Option<String>,
    #[command(flatten)]
    pub oauth: OAuthArgs,
}

/// Where an OAuth2 account signs in (docs/oauth2.md).
#[derive(Debug, Args, Clone, Default)]
pub struct OAuthArgs {
    /// The client id of your app registration with the provider.
    #[arg(long, value_name = "ID")]
    pub oauth_client_id: Option<String>,
    /// Read the app registration's client secret from stdin (Google wants one); sealed.
    #[arg(long, conflicts_with = "password_stdin")]
    pub oauth_client_secret_stdin: bool,
    /// Microsoft: the directory (tenant) id or domain (default: common).
    #[arg(long, value_name = "T")]
    pub oauth_tenant: Option<String>,
    /// device (a code to enter on any device) or browser (an address to open; default for
    /// Google).
    #[arg(long, value_name = "device|browser")]
    pub oauth_flow: Option<String>,
    /// Another provider: its authorization endpoint (browser flow).
    #[arg(long, value_name = "URL")]
    pub oauth_auth_url: Option<String>,
    /// Another provider: its token endpoint.
    #[arg(long, value_name = "URL")]
    pub oauth_token_url: Option<String>,
    /// Another provider: its device authorization endpoint (device flow).
    #[arg(long, value_name = "URL")]
    pub oauth_device_url: Option<String>,
    /// Another provider: its revocation endpoint (used by `account remove`).
    #[arg(long, value_name = "URL")]
    pub oauth_revoke_url: Option<String>,
    /// The scopes to ask for (space or comma separated; presets know theirs).
    #[arg(long, value_name = "S")]
    pub oauth_scopes: Option<String>,
}

impl OAuthArgs {
    fn spec(&self) -> accounts::OAuthSpec {
        accounts::OAuthSpec {
            client_id: self.oauth_client_id.clone(),
            tenant: self.oauth_tenant.clone(),
            flow: self.oauth_flow.clone(),
            auth_url: self.oauth_auth_url.clone(),
            token_url: self.oauth_token_url.clone(),
            device_url: self.oauth_device_url.clone(),
            revoke_url: self.oauth_revoke_url.clone(),
            scopes: self.oauth_scopes.clone(),
        }
    }
}

#[derive(Debug, Args)]
pub struct AddArgs {
    pub name: String,
    #[command(flatten)]
    pub server: ServerArgs,
    #[command(flatten)]
    pub pw: PasswordArgs,
    /// Run `account test` first and store nothing if a step fails (an OAuth2 account:
    /// after it signed in; a failed check removes it again).
    #[arg(long)]
    pub test: bool,
    /// OAuth2: store the account without signing in (`mailroom account login NAME` later).
    #[arg(long)]
    pub no_login: bool,
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
    /// Seconds between polls for changes where IDLE does not tell (sync.poll_secs, ≥ 1).
    #[arg(long, value_name = "N")]
    pub poll_secs: Option<u64>,
    /// Fetch bodies up to N bytes in the background, bigger ones when opened
    /// (sync.body_prefetch_max_bytes; 0: every body when opened).
    #[arg(long, value_name = "N")]
    pub prefetch_max_bytes: Option<u64>,
    /// Keep a copy of sent mail in the Sent folder (sent_copy.enabled).
    #[arg(long, value_name = "BOOL")]
    pub sent_copy: Option<bool>,
    /// Remove every alias (then --alias adds the new ones).
    #[arg(long)]
    pub clear_aliases: bool,
    /// The name shown in From (`--display-name ''` removes it).
    #[arg(long, value_name = "TEXT")]
    pub display_name: Option<String>,
    /// Sync and send (true) or not (false; the cached mail is kept).
    #[arg(long, value_name = "BOOL")]
    pub enabled: Option<bool>,
    /// Forget the CA file: trust the system's roots again.
    #[arg(long, conflicts_with = "ca_file")]
    pub no_ca_file: bool,
    /// Rename the account (its id, state, cached mail and pairings stay).
    #[arg(long, value_name = "NEW_NAME")]
    pub rename: Option<String>,
}

pub async fn run(ctx: &Ctx, cmd: AccountCmd) -> Result<i32> {
    match cmd {
        AccountCmd::Add(a) => add(ctx, *a).await,
        AccountCmd::List => list(ctx),
        AccountCmd::Show { name } => show(ctx, &name),
        AccountCmd::Edit(a) => edit(ctx, *a),
        AccountCmd::SetPassword { name, pw } => set_password(ctx, &name, pw),
        AccountCmd::Enable { name } => set_enabled(ctx, &name, true, false),
        AccountCmd::Disable {
            name,
            remove_history,
            ..
        } => set_enabled(ctx, &name, false, remove_history),
        AccountCmd::Remove { name, purge } => remove(ctx, &name, purge).await,
        AccountCmd::Test { name } => test(ctx, &name).await,
        AccountCmd::Login { name } => login(ctx, &name).await,
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
            smtp_auth: self.smtp_auth.clone(),
            use_system_smtp: self.use_system_smtp,
            auth: self.auth.clone(),
            oauth: self.oauth.spec(),
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
    let mut new = accounts::prepare(
        ctx,
        &a.name,
        &a.server.spec(),
        a.pw.password_command.clone(),
    )?;
    if let Some(hint) = new.hint() {
        note(format!("note: {hint}"));
    }
    if new.signs_in() {
        if a.pw.password_stdin {
            return Err(AppError::usage(
                "an OAuth2 account has no password",
                "leave out --password-stdin (--oauth-client-secret-stdin reads a client secret)",
            ));
        }
        if a.server.oauth.oauth_client_secret_stdin {
            new.client_secret = Some(read_secret_stdin()?);
        }
        return add_oauth(ctx, &new, &a).await;
    }
    if a.server.oauth.oauth_client_secret_stdin {
        return Err(AppError::usage(
            "--oauth-client-secret-stdin applies to an OAuth2 account",
            "add --auth oauth2, or leave it out",
        ));
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

/// Reads a client secret from stdin (one line).
fn read_secret_stdin() -> Result<SecretString> {
    read_password_stdin().map_err(|mut e| {
        e.summary = "no client secret on stdin".into();
        e.fix = "pipe it in: `printf %s \"$SECRET\" | mailroom account add … --oauth-client-secret-stdin`".into();
        e
    })
}

/// `account add --auth oauth2`: store, sign in unless --no-login, check with --test (a failed
/// check removes the account again, revoking its tokens).
async fn add_oauth(ctx: &Ctx, new: &accounts::NewAccount, a: &AddArgs) -> Result<i32> {
    let view = accounts::add(ctx, new, None)?;
    let name = view.name.clone();
    let login = match a.no_login {
        true => None,
        false => Some(sign_in(ctx, &name).await.map_err(|mut e| {
            e.fix = format!(
                "{}; the account is stored: sign in again with `mailroom account login {name}`",
                e.fix
            );
            e
        })?),
    };
    if a.test && login.is_some() {
        let report = accounts::test(ctx, &name, &mut |s| progress_line(ctx, s)).await?;
        if !report.ok {
            let _ = accounts::revoke(ctx, &name).await;
            accounts::remove(ctx, &name, true)?;
            return Err(accounts::test_failed(&report));
        }
    }
    let view = accounts::show(ctx, &name).unwrap_or(view);
    emit(ctx.json, &json!({"account": view, "login": login}), || {
        let mut s = format!("added account {} ({})", view.name, view.email);
        match &login {
            Some(_) => s.push_str(&format!(
                "\nsigned in with OAuth2 as {}\nnext: `mailroom account test {}`, then `mailroom sync {} --plan`",
                view.user, view.name, view.name
            )),
            None => s.push_str(&format!(
                "\nnot signed in yet: `mailroom account login {}`",
                view.name
            )),
        }
        s
    });
    Ok(0)
}

/// Runs the account's sign-in, telling the person on stderr what to do; addresses pasted on
/// stdin reach the browser flow.
async fn sign_in(ctx: &Ctx, name: &str) -> Result<accounts::LoginDone> {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    // A thread of its own: stdin blocks. It ends with stdin (or the process).
    let _ = std::thread::Builder::new()
        .name("login stdin".into())
        .spawn(move || {
            let mut line = String::new();
            while std::io::stdin().read_line(&mut line).is_ok_and(|n| n > 0) {
                if tx.send(std::mem::take(&mut line)).is_err() {
                    break;
                }
            }
        });
    accounts::login(ctx, name, &mut login_event, Some(rx)).await
}

/// What the person must do, on stderr (with --json too: stdout holds the one JSON object).
fn login_event(e: accounts::LoginEvent) {
    match e {
        accounts::LoginEvent::Device {
            uri,
            complete,
            user_code,
            expires_in,
        } => {
            note(format!(
                "To sign in, open {uri} on any device and enter the code {user_code} (within {} min).",
                expires_in.div_ceil(60)
            ));
            if let Some(c) = complete {
                note(format!("  (or open {c}, with the code filled in)"));
            }
            note(format!("code: {user_code}"));
            note("waiting for the approval…");
        }
        accounts::LoginEvent::Browser { url, redirect } => {
            note("To sign in, open this address in a browser (on any machine):");
            note(format!("  {url}"));
            note(format!(
                "mailroom listens on {redirect} for the answer. If the browser runs on another machine, it ends on an address starting with {redirect} that does not load: copy that whole address, paste it here and press Enter."
            ));
            note("waiting for the sign-in…");
        }
        accounts::LoginEvent::Note(text) => note(format!("note: {text}")),
    }
}

async fn login(ctx: &Ctx, name: &str) -> Result<i32> {
    let done = sign_in(ctx, name).await?;
    emit(ctx.json, &json!({"login": done}), || {
        format!(
            "signed in {} as {} ({} flow); sync will retry",
            done.account,
            done.user,
            done.flow.as_str()
        )
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
    emit(ctx.json, &json!({"account": v}), || show_text(&v));
    Ok(0)
}

/// `account show` for people: every setting, grouped, in words (never a secret).
fn show_text(v: &AccountView) -> String {
    let mut out = format!(
        "account {} <{}>\n",
        clean_line(&v.name),
        clean_line(&v.email)
    );
    for (title, rows) in [
        ("", general_rows(v)),
        ("servers", server_rows(v)),
        ("OAuth2", oauth_rows(v)),
        ("folders", folder_rows(v)),
        ("sync", sync_rows(v)),
        ("sent copy", sent_copy_rows(v)),
    ] {
        if rows.is_empty() {
            continue;
        }
        if !title.is_empty() {
            out.push_str(&format!("{title}\n"));
        }
        for (label, value) in rows {
            out.push_str(&format!("  {label:<17} {}\n", clean_line(&value)));
        }
    }
    out.trim_end().to_string()
}

type Rows = Vec<(&'static str, String)>;

fn yes_no(b: bool) -> String {
    if b { "yes" } else { "no" }.into()
}

fn list_or(items: &[String], none: &str) -> String {
    match items.is_empty() {
        true => none.into(),
        false => items.join(", "),
    }
}

fn general_rows(v: &AccountView) -> Rows {
    let mut rows: Rows = vec![("id", v.id.clone()), ("enabled", yes_no(v.enabled))];
    if let Some(d) = &v.display_name {
        rows.push(("display name", d.clone()));
    }
    rows.push((
        "owner",
        v.owner
            .clone()
            .unwrap_or_else(|| "none (every operator)".into()),
    ));
    rows.push(("shared with", list_or(&v.shared_with, "nobody")));
    rows.push(("aliases", list_or(&v.aliases, "none")));
    rows.push(("deny", list_or(&v.deny, "none")));
    if let Some(p) = &v.preset {
        rows.push(("preset", p.clone()));
    }
    rows
}

fn password_words(p: PasswordSource) -> &'static str {
    match p {
        PasswordSource::Command => "from a password command (nothing stored)",
        PasswordSource::Stored => "stored, sealed in the database",
        PasswordSource::Missing => "none stored yet",
        PasswordSource::NotNeeded => "not needed (no login)",
        PasswordSource::OAuth2 => "none: OAuth2 tokens (see below)",
    }
}

fn server_rows(v: &AccountView) -> Rows {
    let mut rows: Rows = vec![
        ("sign-in", format!("{} as {}", v.auth.as_str(), v.user)),
        ("password", password_words(v.password_source).into()),
        ("IMAP", v.imap.display()),
        ("SMTP", v.smtp.display()),
        ("SMTP login", SmtpAuth::describe(v.smtp_auth, v.auth)),
    ];
    match (&v.system_smtp, v.use_system_smtp) {
        (Some(s), _) => {
            rows.push((
                "system SMTP",
                format!("yes: sends through {}", s.server.display()),
            ));
            rows.push((
                "  login",
                format!(
                    "{} as {}",
                    SmtpAuth::describe(s.smtp_auth, AuthKind::Password),
                    s.user
                ),
            ));
            rows.push(("  password", password_words(s.password_source).into()));
            rows.push((
                "  certificates",
                cert_words(s.insecure, s.ca_file.as_deref()),
            ));
        }
        (None, true) => rows.push((
            "system SMTP",
            "yes, but no profile is set (`mailroom system-smtp set`)".into(),
        )),
        (None, false) => rows.push(("system SMTP", "no (the SMTP server above)".into())),
    }
    rows.push(("certificates", cert_words(v.insecure, v.ca_file.as_deref())));
    rows
}

/// An OAuth2 account's provider and sign-in, in words (never a token or the secret).
fn oauth_rows(v: &AccountView) -> Rows {
    let Some(o) = &v.oauth2 else {
        return Vec::new();
    };
    let mut rows: Rows = vec![
        (
            "provider",
            o.provider
                .clone()
                .unwrap_or_else(|| "endpoints given".into()),
        ),
        ("client id", o.client_id.clone()),
        (
            "client secret",
            match o.client_secret_stored {
                true => "stored, sealed in the database".into(),
                false => "none (a public client)".into(),
            },
        ),
    ];
    if let Some(t) = &o.tenant {
        rows.push(("tenant", t.clone()));
    }
    rows.push((
        "flow",
        o.flow
            .map(|f| f.as_str().to_string())
            .unwrap_or_else(|| "none possible: check the endpoints".into()),
    ));
    if let Some(u) = &o.token_url {
        rows.push(("token endpoint", u.clone()));
    }
    rows.push(("scopes", list_or(&o.scopes, "none")));
    rows.push((
        "signed in",
        match (&o.login_needed, o.signed_in) {
            (Some(why), _) => format!("NO: {why} — `mailroom account login {}`", v.name),
            (None, true) => format!(
                "yes; access token until {}, {} refresh(es) so far",
                o.access_expires_at.as_deref().unwrap_or("?"),
                o.refreshes
            ),
            (None, false) => format!("no — `mailroom account login {}`", v.name),
        },
    ));
    rows
}

fn cert_words(insecure: bool, ca: Option<&std::path::Path>) -> String {
    match (insecure, ca) {
        (true, _) => "NOT verified (insecure)".into(),
        (false, Some(ca)) => format!("verified, trusting the CA in {}", ca.display()),
        (false, None) => "verified (system roots)".into(),
    }
}

fn folder_rows(v: &AccountView) -> Rows {
    let sync = match &v.sync.folders {
        Some(f) => list_or(f, "none"),
        None => format!(
            "INBOX and Sent (the folder list is read at the first sync or `mailroom folders {}`)",
            v.name
        ),
    };
    let roles: Vec<String> = v.roles.iter().map(|(r, f)| format!("{r}: {f}")).collect();
    vec![("sync", sync), ("roles", list_or(&roles, "not known yet"))]
}

fn sync_rows(v: &AccountView) -> Rows {
    let y = &v.sync;
    let history = match y.since.as_deref() {
        None => "all history".to_string(),
        Some("new") => "new mail only (from the first sync on)".to_string(),
        Some(d) => format!("since {d}"),
    };
    let process = match y.process {
        crate::config::ProcessScope::All => "all messages",
        crate::config::ProcessScope::UnreadOnly => "unread messages only",
    };
    let bodies = match y.body_prefetch_max_bytes {
        0 => "every body when opened (no prefetch)".to_string(),
        n => format!("prefetched up to {n} bytes; bigger ones when opened"),
    };
    vec![
        ("first sync takes", history),
        ("process", process.into()),
        ("mark read", yes_no(y.mark_read)),
        (
            "IDLE",
            match y.idle {
                true => format!("yes, renewed every {} s", y.idle_renew_secs),
                false => "no (polling only)".into(),
            },
        ),
        ("poll every", format!("{} s", y.poll_secs)),
        ("bodies", bodies),
        (
            "batch",
            format!("{} messages per transaction", y.batch_size),
        ),
        (
            "timeout",
            format!(
                "{} s per wait; stalled below {} bytes/s",
                y.timeout_secs, y.min_bytes_per_sec
            ),
        ),
        (
            "retry",
            format!(
                "backoff {}–{} s; gives up after {} s",
                y.backoff_min_secs, y.backoff_max_secs, y.give_up_secs
            ),
        ),
    ]
}

fn sent_copy_rows(v: &AccountView) -> Rows {
    let c = &v.sent_copy;
    if !c.enabled {
        return vec![("enabled", "no (sent mail is not copied)".into())];
    }
    let folder = c.folder.clone().unwrap_or_else(|| "the Sent folder".into());
    let mut rows: Rows = vec![("enabled", "yes".into()), ("folder", folder)];
    if let Some(n) = &c.folders.new {
        rows.push(("  new mail", n.clone()));
    }
    if let Some(r) = &c.folders.reply {
        rows.push(("  replies", r.clone()));
    }
    rows.extend([
        ("filed by server", yes_no(c.filed_by_server)),
        (
            "batch",
            match c.batch_secs {
                0 => "each copy at once".into(),
                n => format!("copies every {n} s on one connection"),
            },
        ),
        ("content", enum_word(&c.content)),
        (
            "drop attachments",
            match c.drop_attachments_over_bytes {
                0 => "never".into(),
                n => format!("over {n} bytes"),
            },
        ),
        (
            "on failure",
            format!(
                "{} (first retry after {} s)",
                enum_word(&c.on_failure),
                c.retry_secs
            ),
        ),
    ]);
    rows
}

/// A settings enum as config.toml spells it.
fn enum_word<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|j| j.as_str().map(str::to_string))
        .unwrap_or_default()
}

fn edit(ctx: &Ctx, a: EditArgs) -> Result<i32> {
    let change = Edit {
        server: a.server.spec(),
        verify_certificates: a.verify_certificates,
        since: a.since.clone(),
        process: a.process.clone(),
        mark_read: a.mark_read,
        poll_secs: a.poll_secs,
        prefetch_max_bytes: a.prefetch_max_bytes,
        password_command: a.pw.password_command.clone(),
        sent_copy: a.sent_copy,
        clear_aliases: a.clear_aliases,
        display_name: a.display_name.clone(),
        enabled: a.enabled,
        clear_ca_file: a.no_ca_file,
        rename: a.rename.clone(),
        client_secret: match a.server.oauth.oauth_client_secret_stdin {
            true => Some(read_secret_stdin()?),
            false => None,
        },
    };
    let stdin = a.pw.password_stdin;
    let view: AccountView = accounts::edit(ctx, &a.name, &change, || {
        stdin.then(read_password_stdin).transpose()
    })?;
    emit(ctx.json, &json!({"account": view}), || {
        match view.name == a.name {
            true => format!("updated account {}", a.name),
            false => format!("updated account {} (now named {})", a.name, view.name),
        }
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

async fn remove(ctx: &Ctx, name: &str, purge: bool) -> Result<i32> {
    // An OAuth2 account's grant is revoked where the provider offers it, before it goes.
    let revoked = accounts::revoke(ctx, name).await?;
    accounts::remove(ctx, name, purge)?;
    emit(ctx.json, &json!({"ok": true, "revoked": revoked}), || {
        let mut s = format!("removed account {name}");
        match &revoked {
            Some(accounts::Revoked::Revoked) => {
                s.push_str("\nits OAuth2 tokens were revoked at the provider")
            }
            Some(accounts::Revoked::NotOffered { provider }) => s.push_str(&format!(
                "\n{provider} offers no revocation: the tokens were deleted here and run out by themselves; remove the app's access in your account's security settings if you like"
            )),
            Some(accounts::Revoked::Failed { detail }) => s.push_str(&format!(
                "\nwarning: the provider could not revoke the tokens ({}); they were deleted here — remove the app's access in your account's security settings",
                clean_line(detail)
            )),
            Some(accounts::Revoked::NoTokens) | None => {}
        }
        s
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
