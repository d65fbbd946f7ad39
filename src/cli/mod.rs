//! The headless interface: one file per command group, each printing human text or (with
//! `--json`) exactly one JSON object. Names, flags and shapes follow docs/contract (binding).

pub mod account;
pub mod alerts;
pub mod customers;
pub mod folders;
pub mod logs;
pub mod messages;
pub mod operator;
pub mod outbox;
pub mod output;
pub mod search;
pub mod settings;
pub mod status;
pub mod store;
pub mod sync;
pub mod system_smtp;
pub mod trace;
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
    /// Where the state lives: sqlite://PATH (default: the home's mailroom.db) or
    /// postgres://USER@HOST:PORT/DATABASE (password from PGPASSFILE or ~/.pgpass).
    #[arg(long, global = true, env = "MAILROOM_STORE", value_name = "URL")]
    pub store: Option<String>,
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
    /// Keep every enabled account in sync until interrupted, sharing them with the daemons of
    /// other hosts by lease.
    Daemon(sync::DaemonArgs),
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
    /// Who is told when sync or sending goes wrong: commands, mails, webhooks.
    #[command(subcommand)]
    Alerts(alerts::AlertsCmd),
    /// The system SMTP profile accounts can send through instead of their own SMTP server.
    #[command(subcommand)]
    SystemSmtp(system_smtp::SystemSmtpCmd),
    /// Search mail: words, "phrases" and filters (from: to: subject: since: before: is: folder: account:).
    Search(messages::SearchArgs),
    /// The event and error log.
    Log(logs::LogArgs),
    /// The audit log: who did what, when.
    Audit(logs::AuditArgs),
    /// The installation's shared settings as TOML: export, import (on PostgreSQL they live in
    /// the database; on SQLite in config.toml).
    #[command(subcommand)]
    Config(settings::ConfigCmd),
    /// Move an installation between stores (SQLite ↔ PostgreSQL).
    #[command(subcommand)]
    Store(store::StoreCmd),
    /// An account's live protocol trace (IMAP and SMTP lines, credentials redacted).
    #[command(subcommand)]
    Trace(trace::TraceCmd),
    /// Operators: on PostgreSQL database roles that see only their accounts' mail.
    #[command(subcommand)]
    Operator(operator::OperatorCmd),
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
        Err(e) => return usage_failed(&e, json_wanted(std::env::args_os())),
    };
    let json = cli.json;
    if let Some(url) = &cli.store {
        // Every part of this process (and the jobs it starts) finds the store the same way, so
        // the flag becomes the variable the rest reads.
        // SAFETY: still single-threaded: nothing has started a thread or a runtime yet.
        unsafe { std::env::set_var("MAILROOM_STORE", url) };
    }
    let home = match Home::resolve(cli.home.clone()) {
        Ok(h) => h,
        Err(e) => return output::fail(json, &e),
    };
    // Lease and claim holders name this home's host id (made on first use).
    crate::config::host::use_home(&home);
    let command = cli.command.unwrap_or(Command::Console);
    // A mistyped --home is an error, never a fresh empty installation (status says so itself,
    // with its own exit code).
    if !command.creates_home()
        && !matches!(command, Command::Status | Command::Store(_))
        && let Err(e) = home.require()
    {
        return output::fail(json, &e);
    }
    // The debug log lives in the home, but only once the home exists (status never creates it).
    let is_console = matches!(command, Command::Console);
    crate::logging::init(
        cli.verbose,
        home.root.exists().then(|| home.log_dir()).as_deref(),
        !is_console && std::io::IsTerminal::is_terminal(&std::io::stderr()),
    );
    let mut ctx = Ctx {
        ops: crate::ops::Ctx::new(home, cli.operator.clone().unwrap_or_else(default_operator)),
        json,
        theme: cli.theme.clone(),
        verbose: cli.verbose,
    };
    // On PostgreSQL the operator is the connection's role (the admin's may still label).
    if !matches!(command, Command::Status | Command::Store(_))
        && ctx.ops.home.store_url().is_ok_and(|u| u.is_postgres())
    {
        match crate::ops::operators::resolve(
            &ctx.ops,
            cli.operator.as_deref(),
            ctx.ops.operator.clone(),
        ) {
            Ok(op) => ctx.ops.operator = op,
            Err(e) => return output::fail(json, &e),
        }
    }
    // The protocol trace's sink: the store (touched only once a connection asks).
    let _trace = crate::ops::trace::install(&ctx.ops);
    match run(&ctx, command, console) {
        Ok(code) => code,
        Err(e) => output::fail(json, &e),
    }
}

impl Command {
    /// The commands that may create the home: the console, `account add` and `customers
    /// add|import` — and the daemon, which a service may start before the first account exists
    /// (it says so and waits). Every other one needs an existing home and creates nothing.
    fn creates_home(&self) -> bool {
        use customers::CustomersCmd;
        matches!(
            self,
            Command::Console
                | Command::Daemon(_)
                | Command::Account(account::AccountCmd::Add(_))
                | Command::Customers(CustomersCmd::Add { .. } | CustomersCmd::Import { .. })
        )
    }
}

/// Whether `--json` is on the command line, wherever it stands (before `--`): what decides
/// how a command line that does not parse is reported.
fn json_wanted<I: IntoIterator<Item = std::ffi::OsString>>(args: I) -> bool {
    args.into_iter()
        .skip(1)
        .take_while(|a| a != "--")
        .any(|a| a == "--json")
}

/// Reports a command line that does not parse (or asks for help): clap's text on its stream,
/// or with `--json` the error object on stdout. Help and version are answers (exit 0), the
/// rest usage errors (exit 64).
fn usage_failed(e: &clap::Error, json: bool) -> i32 {
    use clap::error::ErrorKind;
    match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            let _ = e.print();
            0
        }
        ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand if !json => {
            let _ = e.print();
            0
        }
        _ if json => output::fail(true, &usage_error(e, &command_path(std::env::args_os()))),
        _ => {
            let _ = e.print();
            64
        }
    }
}

/// clap's report as an error value: its first line the summary, the usage the detail, and the
/// fix names the help of `command`, the (sub)command that was meant.
fn usage_error(e: &clap::Error, command: &str) -> AppError {
    let text = e.render().to_string();
    let mut lines = text.lines().map(str::trim_end).filter(|l| !l.is_empty());
    let first = lines.next().unwrap_or("the command line is not valid");
    let missing = e.kind() == clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand;
    // With a missing subcommand clap prints the whole help: its first line is no summary.
    let summary = if missing {
        "a subcommand is missing".to_string()
    } else {
        first.trim_start_matches("error: ").to_string()
    };
    let rest: Vec<&str> = lines
        .filter(|l| {
            if missing {
                l.starts_with("Usage: ")
            } else {
                !l.starts_with("For more information")
            }
        })
        .collect();
    AppError::usage(summary, format!("see `{command} --help`")).context(rest.join("; "))
}

/// The (sub)commands named on the command line, as far as they are known: `mailroom triage
/// pair` for `mailroom --json triage pair 300 --customer`.
fn command_path<I: IntoIterator<Item = std::ffi::OsString>>(args: I) -> String {
    use clap::CommandFactory;
    let mut cmd = Cli::command();
    let mut path = vec!["mailroom".to_string()];
    for arg in args.into_iter().skip(1) {
        let Some(a) = arg.to_str() else { continue };
        if a == "--" {
            break;
        }
        if a.starts_with('-') {
            continue;
        }
        let Some(sub) = cmd.find_subcommand(a).cloned() else {
            continue;
        };
        path.push(sub.get_name().to_string());
        cmd = sub;
    }
    path.join(" ")
}

#[cfg(test)]
mod usage_tests {
    use super::*;

    fn args(line: &str) -> Vec<std::ffi::OsString> {
        line.split_whitespace().map(Into::into).collect()
    }

    #[test]
    fn json_is_seen_anywhere_and_the_meant_command_is_named() {
        assert!(json_wanted(args(
            "mailroom triage pair 1 --customer --json"
        )));
        assert!(json_wanted(args("mailroom --json --bogus")));
        assert!(!json_wanted(args("mailroom send --subject x -- --json")));
        assert!(!json_wanted(args("mailroom status")));
        assert_eq!(
            command_path(args("mailroom --json triage pair 300 --customer")),
            "mailroom triage pair"
        );
        assert_eq!(command_path(args("mailroom --bogus")), "mailroom");
        let e =
            Cli::try_parse_from(args("mailroom --json triage pair 300 --customer")).unwrap_err();
        let u = usage_error(&e, "mailroom triage pair");
        assert_eq!(u.code, crate::error::Code::Usage);
        assert_eq!(u.exit_code(), 64);
        assert!(u.summary.contains("--customer"), "{u:?}");
        assert_eq!(u.fix, "see `mailroom triage pair --help`");
        let e = Cli::try_parse_from(args("mailroom account")).unwrap_err();
        assert_eq!(
            usage_error(&e, "mailroom account").summary,
            "a subcommand is missing"
        );
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
        Command::Daemon(args) => rt()?.block_on(sync::daemon(ctx, args)),
        Command::Quarantine(c) => rt()?.block_on(sync::quarantine(ctx, c)),
        Command::Send(a) => rt()?.block_on(outbox::send(ctx, a)),
        Command::Outbox(a) => rt()?.block_on(outbox::run(ctx, a)),
        Command::Customers(c) => customers::run(ctx, c),
        Command::Triage(c) => rt()?.block_on(triage::run(ctx, c)),
        Command::Undo { action_id } => rt()?.block_on(triage::undo(ctx, action_id)),
        Command::Deny(c) => triage::deny(ctx, c),
        Command::SystemSmtp(c) => system_smtp::run(ctx, c),
        Command::Alerts(c) => rt()?.block_on(alerts::run(ctx, c)),
        Command::Log(a) => rt()?.block_on(logs::log(ctx, a)),
        Command::Audit(a) => logs::audit(ctx, a),
        Command::Store(c) => store::run(ctx, c),
        Command::Config(c) => settings::run(ctx, c),
        Command::Trace(c) => trace::run(ctx, c),
        Command::Operator(c) => operator::run(ctx, c),
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
