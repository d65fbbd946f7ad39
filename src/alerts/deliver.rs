//! The three channels: a command (the event JSON on stdin, `MAILROOM_EVENT`, `MAILROOM_ACCOUNT`,
//! `MAILROOM_STATE` in its environment, a time limit, its exit status and output recorded), a
//! mail (through the system SMTP profile or a named account, never through the failing
//! account alone), and a webhook (POST of the JSON). [`prepare`] reads what a delivery needs
//! from the settings and the store (passwords, the sealed URL); [`deliver`] only waits on the
//! outside world, so it runs as a task of its own and a hanging channel holds up nothing else.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::Payload;
use super::http::Url;
use crate::account::{Account, credential_context, system_password, system_target};
use crate::config::{AlertChannel, ChannelKind, Config};
use crate::error::{AppError, Code, Result};
use crate::mail::sanitize::clean;
use crate::secret::{Credential, Vault};
use crate::smtp::SmtpTarget;
use crate::store::Store;

/// The credential "account" sealed webhook URLs are stored under (kind `webhook:ID`).
pub const WEBHOOK_OWNER: &str = "alerts";

pub fn webhook_kind(channel: u32) -> String {
    format!("webhook:{channel}")
}

/// How much of a command's output is kept (the rest is cut).
const OUTPUT_KEEP: usize = 2000;

/// A delivery ready to go: nothing left to read from the store.
pub enum Route {
    Command { cmd: String, timeout: Duration },
    Mail(MailRoute),
    Webhook { url: Url, timeout: Duration },
}

pub struct MailRoute {
    pub to: String,
    pub from: String,
    /// Tried in order until one takes the mail.
    pub ways: Vec<Way>,
}

/// One SMTP server a mail alert can leave through.
pub struct Way {
    /// `the system SMTP profile` or `account work`.
    pub label: String,
    pub target: SmtpTarget,
    /// What it signs in with (None: the server takes mail without a login).
    pub credential: Option<Credential>,
}

/// How one delivery attempt ended.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub ok: bool,
    /// `exit 0`, `HTTP 204 No Content`, the SMTP server's reply.
    pub result: String,
    /// What the command printed (cleaned, cut).
    pub output: Option<String>,
    /// Why it failed, with the fix.
    pub error: Option<AppError>,
}

impl Outcome {
    fn ok(result: String, output: Option<String>) -> Outcome {
        Outcome {
            ok: true,
            result,
            output,
            error: None,
        }
    }
    pub fn failed(result: impl Into<String>, output: Option<String>, e: AppError) -> Outcome {
        Outcome {
            ok: false,
            result: result.into(),
            output,
            error: Some(e),
        }
    }
}

/// The channel in words (never a webhook's path or token).
pub fn describe(ch: &AlertChannel) -> String {
    match ch.kind() {
        Ok(ChannelKind::Command(c)) => format!("command {}", clean(c)),
        Ok(ChannelKind::Mail { to, via, .. }) => match via {
            Some(v) => format!("mail to {to} via {v}"),
            None => format!("mail to {to} via the system SMTP profile"),
        },
        Ok(ChannelKind::Webhook(u)) => match Url::parse(u) {
            Ok(url) => format!("webhook {}", url.redacted()),
            Err(_) => "webhook (URL not valid)".into(),
        },
        Err(e) => e.detail,
    }
}

/// Reads what delivering through `ch` needs. `about`: the id of the account the event is about.
pub fn prepare(
    config: &Config,
    store: &Store,
    vault: Option<&Vault>,
    ch: &AlertChannel,
    about: Option<&str>,
) -> Result<Route> {
    // A command needs no sealed secret; a mail or a webhook may.
    let vault = || {
        vault.ok_or_else(|| {
            AppError::local(
                "the key for sealed settings cannot be read",
                "",
                "check the key file in the home (or MAILROOM_KEY)",
            )
            .with_code(Code::SecretKey)
        })
    };
    Ok(match ch.kind()? {
        ChannelKind::Command(cmd) => Route::Command {
            cmd: cmd.to_string(),
            timeout: ch.timeout(),
        },
        ChannelKind::Webhook(text) => {
            let sealed = store.credential(WEBHOOK_OWNER, &webhook_kind(ch.id))?;
            let full = match sealed {
                Some(s) => {
                    let ctx = credential_context(WEBHOOK_OWNER, &webhook_kind(ch.id));
                    secrecy::ExposeSecret::expose_secret(&vault()?.open_sealed(&ctx, &s)?)
                        .to_string()
                }
                None => text.to_string(),
            };
            let url = Url::parse(&full)?;
            url.check_transport()?;
            Route::Webhook {
                url,
                timeout: ch.timeout(),
            }
        }
        ChannelKind::Mail { to, via, from } => Route::Mail(mail_route(
            config,
            store,
            vault()?,
            ch,
            to,
            via,
            from,
            about,
        )?),
    })
}

#[allow(clippy::too_many_arguments)]
fn mail_route(
    config: &Config,
    store: &Store,
    vault: &Vault,
    ch: &AlertChannel,
    to: &str,
    via: Option<&str>,
    from: Option<&str>,
    about: Option<&str>,
) -> Result<MailRoute> {
    let mut ways = Vec::new();
    let mut via_email = None;
    let mut via_fails = false;
    if let Some(name) = via {
        let account = Account::from_config(config, name).map_err(|_| {
            AppError::needs_user(
                format!("mail alert channel {} goes via account {name}, which is not configured", ch.id),
                "",
                format!("`mailroom alerts set --mail-to {to} --via ACCOUNT` with an existing account, or without --via for the system SMTP profile"),
            )
            .with_code(Code::AlertNoRoute)
        })?;
        let mut target = account.smtp_target(config)?;
        target.timeout = ch.timeout();
        let credential = account.smtp_credential(config, store, vault, None)?;
        via_email = Some(account.cfg.email.clone());
        via_fails = about == Some(account.id());
        ways.push(Way {
            label: format!("account {name}"),
            target,
            credential,
        });
    }
    if let Some(target) = system_target(config, ch.timeout())?
        && !ways.iter().any(|w| same_server(&w.target, &target))
    {
        let credential = match target.auth {
            crate::smtp::AuthMode::None => None,
            _ => config
                .system_smtp
                .as_ref()
                .map(|s| system_password(s, store, vault).map(Credential::Password))
                .transpose()?,
        };
        ways.push(Way {
            label: "the system SMTP profile".into(),
            target,
            credential,
        });
    }
    if ways.is_empty() {
        return Err(no_route(ch.id, to));
    }
    // An alert about the account it would go through tries the system profile first: never
    // through the failing account alone, and not first either.
    if via_fails {
        ways.reverse();
    }
    let from = from
        .map(str::to_string)
        .or(via_email)
        .or_else(|| {
            config
                .system_smtp
                .as_ref()
                .map(|s| s.user.clone())
                .filter(|u| u.contains('@'))
        })
        .unwrap_or_else(|| format!("mailroom@{}", super::host()));
    Ok(MailRoute {
        to: to.to_string(),
        from,
        ways,
    })
}

fn same_server(a: &SmtpTarget, b: &SmtpTarget) -> bool {
    a.server == b.server && a.user == b.user
}

pub fn no_route(channel: u32, to: &str) -> AppError {
    AppError::needs_user(
        format!("mail alert channel {channel} has no way out"),
        "there is no system SMTP profile, and the channel names no account to send through",
        format!("set a system SMTP profile (`mailroom system-smtp set --smtp HOST[:PORT] …`), or `mailroom alerts set --mail-to {to} --via ACCOUNT`"),
    )
    .with_code(Code::AlertNoRoute)
}

/// One attempt.
pub async fn deliver(route: &Route, p: &Payload) -> Outcome {
    match route {
        Route::Command { cmd, timeout } => run_command(cmd, p, *timeout).await,
        Route::Webhook { url, timeout } => webhook(url, p, *timeout).await,
        Route::Mail(m) => mail(m, p).await,
    }
}

async fn webhook(url: &Url, p: &Payload, limit: Duration) -> Outcome {
    match super::http::post(url, p.json().as_bytes(), limit).await {
        Ok(a) if (200..300).contains(&a.status) => Outcome::ok(
            format!("HTTP {} {}", a.status, a.reason).trim().to_string(),
            None,
        ),
        Ok(a) => {
            let result = format!("HTTP {} {}", a.status, a.reason).trim().to_string();
            let e = AppError::transient(
                format!("the webhook {} answered {result}", url.redacted()),
                a.body.clone(),
                "check the receiving service and the URL; mailroom retries with backoff",
            )
            .with_code(Code::AlertHttpStatus);
            Outcome::failed(result, (!a.body.is_empty()).then_some(a.body), e)
        }
        Err(e) => Outcome::failed("no answer", None, e),
    }
}

/// Runs `sh -c CMD` in a process group of its own, the event JSON on stdin; past the time
/// limit the whole group is killed. The sealing key never reaches it.
async fn run_command(cmd: &str, p: &Payload, limit: Duration) -> Outcome {
    let mut c = tokio::process::Command::new("/bin/sh");
    c.arg("-c")
        .arg(cmd)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env("MAILROOM_EVENT", &p.event)
        .env("MAILROOM_ACCOUNT", p.account.as_deref().unwrap_or(""))
        .env("MAILROOM_STATE", p.state.as_deref().unwrap_or(""))
        .env_remove("MAILROOM_KEY")
        .process_group(0)
        .kill_on_drop(true);
    let mut child = match c.spawn() {
        Ok(ch) => ch,
        Err(e) => {
            let err = AppError::needs_user(
                "the alert command could not be started",
                e.to_string(),
                "check that /bin/sh exists and the command is right (`mailroom alerts list`)",
            )
            .with_code(Code::AlertCommandFailed);
            return Outcome::failed("not started", None, err);
        }
    };
    // Should this delivery be dropped half-way (the process shutting down), the whole group
    // goes with it rather than living on.
    let mut group = Group(child.id());
    if let Some(mut stdin) = child.stdin.take() {
        // One line: `read line` in a shell script gets all of it.
        let json = p.json() + "\n";
        tokio::spawn(async move {
            // A command that does not read its input is fine: nothing waits on this.
            let _ = stdin.write_all(json.as_bytes()).await;
        });
    }
    let out = child.stdout.take().map(|s| tokio::spawn(read_capped(s)));
    let err = child.stderr.take().map(|s| tokio::spawn(read_capped(s)));
    let waited = tokio::time::timeout(limit, child.wait()).await;
    let timed_out = waited.is_err();
    let status = match waited {
        Ok(s) => s,
        Err(_) => {
            group.kill();
            child.wait().await
        }
    };
    // It ended by itself: what it started in the background is its own business.
    group.0 = None;
    let output = collect_output(out, err).await;
    if timed_out {
        let e = AppError::transient(
            format!(
                "the alert command did not finish within {} s and was stopped",
                limit.as_secs()
            ),
            "",
            "make it finish sooner (or raise `timeout_secs` of the channel); mailroom retries with backoff",
        )
        .with_code(Code::AlertTimeout);
        return Outcome::failed("timed out", output, e);
    }
    match status {
        Ok(s) if s.success() => Outcome::ok("exit 0".into(), output),
        Ok(s) => {
            let result = match s.code() {
                Some(code) => format!("exit {code}"),
                None => "killed by a signal".into(),
            };
            let e = AppError::transient(
                format!("the alert command failed ({result})"),
                output.clone().unwrap_or_default(),
                "run it by hand with an event on stdin (`mailroom alerts test` sends one); mailroom retries with backoff",
            )
            .with_code(Code::AlertCommandFailed);
            Outcome::failed(result, output, e)
        }
        Err(e) => Outcome::failed(
            "lost",
            output,
            AppError::local(
                "cannot wait for the alert command",
                e.to_string(),
                "see the debug log",
            )
            .with_code(Code::AlertCommandFailed),
        ),
    }
}

/// The process group of a running alert command, killed when dropped while still armed.
struct Group(Option<u32>);

impl Group {
    fn kill(&mut self) {
        if let Some(pid) = self.0.take().and_then(|p| i32::try_from(p).ok()) {
            // SAFETY: kill(2) with a negative pid signals that process group; the group was
            // made for this command (process_group(0)), so nothing else is hit. No memory is
            // involved.
            unsafe {
                libc::kill(-pid, libc::SIGKILL);
            }
        }
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        self.kill();
    }
}

async fn read_capped<R: tokio::io::AsyncRead + Unpin>(mut r: R) -> Vec<u8> {
    let mut keep = Vec::new();
    let mut buf = [0u8; 4096];
    // Read to the end (so the command never blocks on a full pipe) but keep only the start.
    while let Ok(n) = r.read(&mut buf).await {
        if n == 0 {
            break;
        }
        if keep.len() < 64 * 1024 {
            keep.extend_from_slice(&buf[..n]);
        }
    }
    keep
}

type Reader = Option<tokio::task::JoinHandle<Vec<u8>>>;

/// stdout then stderr, cleaned and cut; a child left holding the pipes is not waited for long.
async fn collect_output(out: Reader, err: Reader) -> Option<String> {
    let get = |h: Reader| async move {
        match h {
            Some(h) => tokio::time::timeout(Duration::from_secs(2), h)
                .await
                .ok()
                .and_then(|r| r.ok())
                .unwrap_or_default(),
            None => Vec::new(),
        }
    };
    let (o, e) = tokio::join!(get(out), get(err));
    let mut text = String::from_utf8_lossy(&o).to_string();
    let e = String::from_utf8_lossy(&e);
    if !e.trim().is_empty() {
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
        text.push_str(&e);
    }
    let text = clean(text.trim());
    if text.is_empty() {
        return None;
    }
    Some(match text.char_indices().nth(OUTPUT_KEEP) {
        Some((i, _)) => format!("{} … (cut)", &text[..i]),
        None => text,
    })
}

/// The mail: tried through each way in turn until one takes it.
async fn mail(m: &MailRoute, p: &Payload) -> Outcome {
    let built = match build_mail(m, p) {
        Ok(b) => b,
        Err(e) => return Outcome::failed("not built", None, e),
    };
    let mut errors = Vec::new();
    for way in &m.ways {
        match send_through(way, &built).await {
            Ok(reply) => {
                let note = (!errors.is_empty()).then(|| errors.join("; "));
                return Outcome::ok(format!("through {}: {}", way.label, clean(&reply)), note);
            }
            Err(e) => errors.push(format!("{}: {}", way.label, e.summary)),
        }
    }
    let e = AppError::transient(
        format!("the mail alert to {} could not be sent", m.to),
        errors.join("; "),
        "check the SMTP server it goes through (`mailroom system-smtp show`, or the --via account); mailroom retries with backoff",
    )
    .with_code(Code::AlertNoRoute);
    Outcome::failed("not sent", None, e)
}

async fn send_through(way: &Way, built: &crate::mail::compose::Built) -> Result<String> {
    let mut sess =
        crate::smtp::session::Session::open(&way.target, way.credential.as_ref()).await?;
    let r = sess
        .send(&built.envelope_from, &built.rcpts, &built.raw, || Ok(()))
        .await;
    sess.quit().await;
    r.map_err(|e| e.error().clone())
}

fn build_mail(m: &MailRoute, p: &Payload) -> Result<crate::mail::compose::Built> {
    use crate::mail::compose::{CopyPlan, Draft, build, new_message_id};
    let draft = Draft {
        from: m.from.clone(),
        to: vec![m.to.clone()],
        cc: Vec::new(),
        bcc: Vec::new(),
        reply_to: None,
        subject: format!("[mailroom] {}", p.title()),
        text: mail_text(p),
        html: None,
        attachments: Vec::new(),
        in_reply_to: None,
        references: Vec::new(),
        message_id: new_message_id(&m.from),
        date: std::time::SystemTime::now(),
    };
    build(&draft, &CopyPlan::default())
}

/// The mail's text: what happened and the fix first, then the event as JSON for scripts.
pub fn mail_text(p: &Payload) -> String {
    let mut t = format!("mailroom on {} reports: {}\n\n", p.host, p.title());
    t.push_str(&format!("What:  {}\n", p.what));
    if !p.fix.is_empty() {
        t.push_str(&format!("Fix:   {}\n", p.fix));
    }
    if let Some(s) = &p.state {
        t.push_str(&format!("State: {s}\n"));
    }
    t.push_str(&format!("At:    {}\n", p.at));
    if let Some(c) = &p.code {
        t.push_str(&format!("Code:  {c} (docs/troubleshooting.md)\n"));
    }
    if !p.held.is_empty() {
        t.push_str("\nHeld back:\n");
        for h in &p.held {
            t.push_str(&format!("  {}  {}  {}\n", h.at, h.event, h.what));
        }
    }
    t.push_str("\nThe event as JSON:\n");
    t.push_str(&serde_json::to_string_pretty(p).unwrap_or_default());
    t.push('\n');
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload() -> Payload {
        Payload {
            id: Some(3),
            event: "disconnected".into(),
            account: Some("work".into()),
            state: Some("disconnected".into()),
            at: "2026-05-01T03:00:00Z".into(),
            what: "cannot connect to h:1".into(),
            fix: "wait".into(),
            code: Some("net.refused".into()),
            host: "box".into(),
            held: Vec::new(),
        }
    }

    #[tokio::test]
    async fn a_command_gets_the_event_on_stdin_and_in_its_environment() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("got");
        let cmd = format!(
            "cat > '{0}'; echo \"$MAILROOM_EVENT $MAILROOM_ACCOUNT $MAILROOM_STATE\" >> '{0}'; echo done",
            file.display()
        );
        let o = run_command(&cmd, &payload(), Duration::from_secs(10)).await;
        assert!(o.ok, "{o:?}");
        assert_eq!(
            (o.result.as_str(), o.output.as_deref()),
            ("exit 0", Some("done"))
        );
        let got = std::fs::read_to_string(&file).unwrap();
        let (json, env) = got.split_once('\n').unwrap_or((&got, ""));
        let back: Payload =
            serde_json::from_str(json.trim()).unwrap_or_else(|e| panic!("{e}: {got}"));
        assert_eq!(back, payload());
        assert_eq!(env.trim(), "disconnected work disconnected");
    }

    #[tokio::test]
    async fn a_failing_or_hanging_command_is_a_failure_with_its_words() {
        let o = run_command("echo oops >&2; exit 3", &payload(), Duration::from_secs(10)).await;
        assert!(!o.ok);
        assert_eq!(o.result, "exit 3");
        assert_eq!(o.output.as_deref(), Some("oops"));
        assert_eq!(o.error.unwrap().code, Code::AlertCommandFailed);
        let started = std::time::Instant::now();
        // The grandchild (sleep) is in the group and dies with it.
        let o = run_command("sleep 30 & sleep 30", &payload(), Duration::from_secs(1)).await;
        assert!(
            started.elapsed() < Duration::from_secs(6),
            "{:?}",
            started.elapsed()
        );
        assert!(!o.ok);
        assert_eq!(o.result, "timed out");
        assert_eq!(o.error.unwrap().code, Code::AlertTimeout);
    }

    #[test]
    fn the_mail_says_what_and_the_fix_first_and_carries_the_json() {
        let t = mail_text(&payload());
        assert!(
            t.starts_with("mailroom on box reports: work: disconnected\n\nWhat:  cannot connect"),
            "{t}"
        );
        assert!(
            t.contains("Fix:   wait\n") && t.contains("Code:  net.refused"),
            "{t}"
        );
        assert!(t.contains("\"event\": \"disconnected\""), "{t}");
    }
}
