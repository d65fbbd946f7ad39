//! The headless interface: one file per command group, each printing human text or (with
//! `--json`) exactly one JSON object. Names, flags and shapes follow docs/contract (binding).

pub mod account;
pub mod customers;
pub mod folders;
pub mod logs;
pub mod messages;
pub mod outbox;
pub mod output;
pub mod search;
pub mod status;
pub mod sync;
pub mod triage;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::config::Home;
use crate::error::{AppError, Result};

#[derive(Debug, Parser)]
#[command(
    name = "mailroom",
    version,
    about = "Keyboard-driven mail sync console: IMAP/SMTP ↔ local SQLite, customers and triage"
)]
pub struct Cli {
    /// Directory holding config.toml, the database, the key file and logs.
    #[arg(long, global = true, env = "MAILROOM_HOME", value_name = "DIR")]
    pub home: Option<PathBuf>,
    /// Print exactly one JSON object on stdout (human text and logs go to stderr).
    #[arg(long, global = true)]
    pub json: bool,
    /// Who is acting (default: the OS user); labels the audit log and filters shared accounts.
    #[arg(long, global = true, env = "MAILROOM_OPERATOR")]
    pub operator: Option<String>,
    /// Console theme (a file name in themes/ without .toml, or a path).
    #[arg(long, global = true)]
    pub theme: Option<String>,
    /// More log output on stderr (-v info, -vv debug, -vvv trace).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Add, inspect, test and manage mail accounts.
    #[command(subcommand)]
    Account(account::AccountCmd),
    /// Health of every account (exit 0 healthy, 1 degraded, 2 failing, 3 cannot read the database).
    Status,
    /// List the server's folders and choose which sync.
    Folders(folders::FoldersArgs),
    /// List cached messages, newest first.
    Messages(messages::MessagesArgs),
    /// Show, flag, move or delete one cached message.
    #[command(subcommand)]
    Message(messages::MessageCmd),
    /// Reply to a cached message.
    Reply(outbox::ReplyArgs),
    /// Forward a cached message (its text quoted, its attachments attached).
    Forward(outbox::ForwardArgs),
    /// Sync in the foreground (until interrupted, or one pass with --once).
    Sync(sync::SyncArgs),
    /// Keep every enabled account in sync until interrupted.
    Daemon,
    /// Messages that failed to parse or fetch.
    #[command(subcommand)]
    Quarantine(sync::QuarantineCmd),
    /// Queue a message and send it through SMTP, then copy it to Sent.
    Send(outbox::SendArgs),
    /// The durable send queue.
    Outbox(outbox::OutboxArgs),
    /// The customer book.
    #[command(subcommand)]
    Customers(customers::CustomersCmd),
    /// Mail from unknown authors: pair, add a customer, block or delete.
    #[command(subcommand)]
    Triage(triage::TriageCmd),
    /// Undo the operator's last triage action (or the named one).
    Undo { action_id: Option<i64> },
    /// Addresses and domains whose mail sync skips.
    #[command(subcommand)]
    Deny(triage::DenyCmd),
    /// Search mail: words, "phrases" and filters (from: to: subject: since: before: is: folder: account:).
    Search(messages::SearchArgs),
    /// The event and error log.
    Log(logs::LogArgs),
    /// The audit log: who did what, when.
    Audit(logs::AuditArgs),
    /// Open the console (the default without a command).
    Console,
}

/// What the CLI face needs beyond the service layer's context: how to print.
pub struct Ctx {
    pub ops: crate::ops::Ctx,
    pub json: bool,
    pub theme: Option<String>,
    pub verbose: u8,
}

/// Commands reach the home, the store and the operator through the service layer's context.
impl std::ops::Deref for Ctx {
    type Target = crate::ops::Ctx;
    fn deref(&self) -> &crate::ops::Ctx {
        &self.ops
    }
}

/// An `--account NAME` that may also come positionally.
#[derive(Debug, Args, Clone, Default)]
pub struct AccountSel {
    /// The account (may be omitted when there is only one).
    #[arg(short = 'a', long = "account", value_name = "NAME")]
    pub account: Option<String>,
}

/// Who acts when `--operator` is not given: the user this process runs as, from the passwd
/// entry of its user id (`$USER` can be unset or wrong: cron, systemd, `env -i`). Under sudo,
/// the user who ran sudo, so `sudo mailroom account add` does not make root the owner.
pub fn default_operator() -> String {
    // SAFETY: getuid has no preconditions and cannot fail.
    let uid = unsafe { libc::getuid() };
    let sudo_user = std::env::var("SUDO_USER").ok().filter(|u| !u.is_empty());
    operator_for(uid, sudo_user, passwd_name)
}

fn operator_for(
    uid: libc::uid_t,
    sudo_user: Option<String>,
    name_of: impl Fn(libc::uid_t) -> Option<String>,
) -> String {
    if uid == 0
        && let Some(u) = sudo_user
    {
        return u;
    }
    name_of(uid).unwrap_or_else(|| format!("uid{uid}"))
}

/// The login name of `uid` from the passwd database (files, LDAP… whatever NSS is set up for).
fn passwd_name(uid: libc::uid_t) -> Option<String> {
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    let mut pw = std::mem::MaybeUninit::<libc::passwd>::zeroed();
    let mut found: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer refers to live, writable memory of the stated size; getpwuid_r
    // writes the entry into `pw` and its strings into `buf`, and sets `found` to `pw` or null.
    let rc = unsafe {
        libc::getpwuid_r(
            uid,
            pw.as_mut_ptr(),
            buf.as_mut_ptr(),
            buf.len(),
            &mut found,
        )
    };
    if rc != 0 || found.is_null() {
        return None;
    }
    // SAFETY: found == pw.as_mut_ptr() and getpwuid_r filled it; pw_name points into `buf`,
    // NUL-terminated, alive until `buf` drops at the end of this function.
    let name = unsafe { std::ffi::CStr::from_ptr((*found).pw_name) };
    name.to_str()
        .ok()
        .filter(|n| !n.is_empty())
        .map(str::to_string)
}

/// How the console is opened: the binary passes the console's entry point in, so the CLI never
/// imports the console (the two faces stand side by side over ops).
pub type Console = fn(&crate::ops::Ctx, Option<&str>) -> Result<i32>;

/// Parses, dispatches, prints; returns the process exit code.
pub fn main(console: Console) -> i32 {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            use clap::error::ErrorKind;
            let code = match e.kind() {
                ErrorKind::DisplayHelp
                | ErrorKind::DisplayVersion
                | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => 0,
                _ => 64,
            };
            let _ = e.print();
            return code;
        }
    };
    let json = cli.json;
    let home = match Home::resolve(cli.home.clone()) {
        Ok(h) => h,
        Err(e) => return output::fail(json, &e),
    };
    // The debug log lives in the home, but only once the home exists (status never creates it).
    let is_console = matches!(cli.command, None | Some(Command::Console));
    crate::logging::init(
        cli.verbose,
        home.root.exists().then(|| home.log_dir()).as_deref(),
        !is_console && std::io::IsTerminal::is_terminal(&std::io::stderr()),
    );
    let ctx = Ctx {
        ops: crate::ops::Ctx::new(home, cli.operator.clone().unwrap_or_else(default_operator)),
        json,
        theme: cli.theme.clone(),
        verbose: cli.verbose,
    };
    match run(&ctx, cli.command.unwrap_or(Command::Console), console) {
        Ok(code) => code,
        Err(e) => output::fail(json, &e),
    }
}

/// Runs one command; Ok carries the exit code (status uses 0–3).
fn run(ctx: &Ctx, cmd: Command, console: Console) -> Result<i32> {
    let rt = || {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| {
                AppError::local(
                    "cannot start the async runtime",
                    e.to_string(),
                    "check system limits (threads, file descriptors)",
                )
            })
    };
    match cmd {
        Command::Console => console(&ctx.ops, ctx.theme.as_deref()),
        Command::Account(c) => rt()?.block_on(account::run(ctx, c)),
        Command::Status => status::run(ctx),
        Command::Folders(a) => rt()?.block_on(folders::run(ctx, a)),
        Command::Messages(a) => messages::list(ctx, a),
        Command::Message(c) => rt()?.block_on(messages::run(ctx, c)),
        Command::Search(a) => messages::search(ctx, a),
        Command::Reply(a) => rt()?.block_on(outbox::reply(ctx, a)),
        Command::Forward(a) => rt()?.block_on(outbox::forward(ctx, a)),
        Command::Sync(a) => rt()?.block_on(sync::run(ctx, a)),
        Command::Daemon => rt()?.block_on(sync::daemon(ctx)),
        Command::Quarantine(c) => rt()?.block_on(sync::quarantine(ctx, c)),
        Command::Send(a) => rt()?.block_on(outbox::send(ctx, a)),
        Command::Outbox(a) => rt()?.block_on(outbox::run(ctx, a)),
        Command::Customers(c) => customers::run(ctx, c),
        Command::Triage(c) => rt()?.block_on(triage::run(ctx, c)),
        Command::Undo { action_id } => rt()?.block_on(triage::undo(ctx, action_id)),
        Command::Deny(c) => triage::deny(ctx, c),
        Command::Log(a) => rt()?.block_on(logs::log(ctx, a)),
        Command::Audit(a) => logs::audit(ctx, a),
    }
}

#[cfg(test)]
mod operator_tests {
    use super::*;

    #[test]
    fn the_passwd_entry_decides_and_sudo_means_the_invoking_user() {
        // root is in every passwd database.
        assert_eq!(passwd_name(0).as_deref(), Some("root"));
        let by_table = |uid| (uid == 1000).then(|| "ada".to_string());
        assert_eq!(operator_for(1000, None, by_table), "ada");
        // SUDO_USER only counts for root (a user's stale variable means nothing).
        assert_eq!(operator_for(1000, Some("eve".into()), by_table), "ada");
        assert_eq!(operator_for(0, Some("ada".into()), by_table), "ada");
        assert_eq!(operator_for(4242, None, by_table), "uid4242");
    }
}
