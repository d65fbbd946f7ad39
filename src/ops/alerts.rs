//! Alerts: `alerts set|list|remove|test`, and the alerts worker every process that syncs runs
//! (daemon, console, `sync NAME`; see `crate::alerts`).
//!
//! Channels live in config.toml (`[[alerts.channels]]`, edited in place, comments kept); a
//! webhook URL with a path or query is sealed in the database like a password, and config.toml
//! shows only its origin. A channel for one account needs the right to configure that
//! account; a channel for every account hears every account's events, so it needs the right
//! to configure every account ([`access::alerts_global`]). Everyone sees the channels for every
//! account and those of the accounts they see.

use std::sync::Arc;
use std::time::Duration;

use secrecy::SecretString;
use serde::Serialize;
use serde_json::json;

use super::Ctx;
use super::access::{self, Need, Standing};
use crate::account::credential_context;
use crate::alerts::deliver::{self, WEBHOOK_OWNER, webhook_kind};
use crate::alerts::http::Url;
use crate::alerts::{Payload, host};
use crate::config::{self, AlertChannel, ChannelKind, Config, EventKind};
use crate::error::{AppError, Code, Kind, Result};
use crate::store::{LastDelivery, Level, Store};

/// What `alerts set` asks for. Exactly one of `command`, `mail_to`, `webhook`.
#[derive(Debug, Clone, Default)]
pub struct ChannelSpec {
    /// Only this account's events; none: every account's.
    pub account: Option<String>,
    pub command: Option<String>,
    pub mail_to: Option<String>,
    /// Send the mail through this account (else the system SMTP profile).
    pub via: Option<String>,
    pub from: Option<String>,
    pub webhook: Option<String>,
    /// `error,disconnected`, `all`; none keeps what a channel has (a new one: the default).
    pub on: Option<String>,
    pub timeout_secs: Option<u64>,
}

/// One channel as `alerts list` shows it (never a webhook's path or token).
#[derive(Debug, Clone, Serialize)]
pub struct ChannelView {
    pub id: u32,
    pub account: Option<String>,
    /// command | mail | webhook
    pub kind: &'static str,
    /// The command, the address, or the webhook's origin.
    pub target: String,
    pub via: Option<String>,
    pub from: Option<String>,
    pub on: Vec<EventKind>,
    /// `on` is the default set (none named).
    pub default_events: bool,
    pub timeout_secs: u64,
    /// Its last delivery attempt.
    pub last: Option<LastDelivery>,
    /// Its alerts that did not get out (retrying, or given up since it last delivered).
    pub undelivered: i64,
    /// Something that keeps it from working, in words.
    pub problem: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Listing {
    pub min_interval_secs: u64,
    pub channels: Vec<ChannelView>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Set {
    /// False when a channel to the same place was changed instead.
    pub created: bool,
    pub channel: ChannelView,
}

/// How one channel took the test event.
#[derive(Debug, Clone, Serialize)]
pub struct Tested {
    pub channel: u32,
    pub kind: &'static str,
    pub target: String,
    pub ok: bool,
    pub result: String,
    pub output: Option<String>,
    pub error: Option<serde_json::Value>,
}

/// `alerts list`: the channels this operator sees.
pub fn list(cx: &Ctx) -> Result<Listing> {
    let config = cx.config()?;
    let store = cx.store()?;
    let channels = config
        .alerts
        .channels
        .iter()
        .filter(|c| visible(cx, &config, c))
        .map(|c| view(&config, &store, c))
        .collect::<Result<Vec<_>>>()?;
    Ok(Listing {
        min_interval_secs: config.alerts.min_interval_secs,
        channels,
    })
}

fn visible(cx: &Ctx, config: &Config, c: &AlertChannel) -> bool {
    match c.account.as_deref().map(|n| config.accounts.get(n)) {
        None => true,
        Some(Some(a)) => cx.sees(a),
        Some(None) => access::configures_all(cx, config),
    }
}

fn view(config: &Config, store: &Store, c: &AlertChannel) -> Result<ChannelView> {
    let (last, undelivered) = store.alert_channel_stats(c.id)?;
    let kind = c.kind()?;
    let target = match kind {
        ChannelKind::Command(cmd) => crate::mail::sanitize::clean_line(cmd),
        ChannelKind::Mail { to, .. } => to.to_string(),
        ChannelKind::Webhook(u) => {
            Url::parse(u).map_or_else(|_| "(not a valid URL)".into(), |u| u.redacted())
        }
    };
    Ok(ChannelView {
        id: c.id,
        account: c.account.clone(),
        kind: kind.name(),
        target,
        via: c.via.clone(),
        from: c.from.clone(),
        on: c.events().to_vec(),
        default_events: c.on.is_none(),
        timeout_secs: c.timeout().as_secs(),
        last,
        undelivered,
        problem: problem(config, c),
    })
}

/// What keeps a channel from working, as far as the settings tell.
fn problem(config: &Config, c: &AlertChannel) -> Option<String> {
    if let Some(a) = &c.account
        && !config.accounts.contains_key(a)
    {
        return Some(format!(
            "account {a} is not configured: this channel hears nothing"
        ));
    }
    match c.kind().ok()? {
        ChannelKind::Mail { via: Some(v), .. } if !config.accounts.contains_key(v) => Some(
            format!("it sends through account {v}, which is not configured"),
        ),
        ChannelKind::Mail { via: None, .. } if config.system_smtp.is_none() => Some(
            "there is no system SMTP profile to send through (`mailroom system-smtp set …`)".into(),
        ),
        _ => None,
    }
}

/// `alerts set`: a new channel, or — when one to the same place exists for the same account
/// scope — that channel with the events and options given.
pub fn set(cx: &Ctx, spec: &ChannelSpec) -> Result<Set> {
    let config = cx.config()?;
    let store = cx.store()?;
    scope_allowed(cx, &config, &store, spec.account.as_deref())?;
    let on = spec.on.as_deref().map(EventKind::parse_list).transpose()?;
    if spec.timeout_secs == Some(0) {
        return Err(AppError::usage(
            "--timeout-secs must be at least 1",
            "give the seconds a channel may take, e.g. 30",
        ));
    }
    let target = checked_target(cx, &config, &store, spec)?;
    let existing = config
        .alerts
        .channels
        .iter()
        .find(|c| c.account == spec.account && same_target(cx, &store, c, &target));
    let (channel, created) = match existing {
        Some(c) => {
            let mut c = c.clone();
            if on.is_some() {
                c.on = on;
            }
            if spec.timeout_secs.is_some() {
                c.timeout_secs = spec.timeout_secs;
            }
            if spec.from.is_some() {
                c.from = spec.from.clone();
            }
            (c, false)
        }
        None => {
            let id = config
                .alerts
                .channels
                .iter()
                .map(|c| c.id)
                .max()
                .unwrap_or(0)
                + 1;
            (new_channel(id, spec, &target, on), true)
        }
    };
    if let Target::Webhook(url) = &target
        && url.has_secret_part()
    {
        let ctx = credential_context(WEBHOOK_OWNER, &webhook_kind(channel.id));
        let full = SecretString::from(full_url(url));
        let sealed = cx.vault()?.seal(&ctx, &full)?;
        store.set_credential(WEBHOOK_OWNER, &webhook_kind(channel.id), &sealed)?;
    }
    config::edit(&cx.home, |doc| write_channel(doc, &channel))?;
    let account_id = spec
        .account
        .as_deref()
        .and_then(|n| config.accounts.get(n))
        .map(|a| a.id.as_str());
    store.audit(
        &cx.operator,
        if created { "alerts_add" } else { "alerts_edit" },
        account_id,
        Some(&format!("alert channel {}", channel.id)),
        &json!({"channel": channel.id, "kind": channel.kind()?.name(), "target": deliver::describe(&channel), "on": channel.events()}),
    )?;
    let fresh = cx.config()?;
    let shown = fresh.alerts.channel(channel.id).unwrap_or(&channel);
    Ok(Set {
        created,
        channel: view(&fresh, &store, shown)?,
    })
}

/// Where a new or changed channel goes, checked.
enum Target {
    Command(String),
    Mail { to: String, via: Option<String> },
    Webhook(Url),
}

fn scope_allowed(cx: &Ctx, config: &Config, store: &Store, account: Option<&str>) -> Result<()> {
    match account {
        Some(name) => access::account(cx, config, store, name, Need::Configure).map(|_| ()),
        None => access::alerts_global(cx, config, store),
    }
}

fn checked_target(cx: &Ctx, config: &Config, store: &Store, spec: &ChannelSpec) -> Result<Target> {
    let one = |s: &Option<String>| usize::from(s.is_some());
    if one(&spec.command) + one(&spec.mail_to) + one(&spec.webhook) != 1 {
        return Err(AppError::usage(
            "name exactly one of --command, --mail-to and --webhook",
            "one channel is one of them; set several channels for several",
        ));
    }
    if (spec.via.is_some() || spec.from.is_some()) && spec.mail_to.is_none() {
        return Err(AppError::usage(
            "--via and --from go with --mail-to",
            "`mailroom alerts set --mail-to ADDR [--via ACCOUNT] [--from ADDR]`",
        ));
    }
    if let Some(cmd) = &spec.command {
        if cmd.trim().is_empty() {
            return Err(AppError::usage(
                "--command is empty",
                "give the command to run, e.g. --command '/usr/local/bin/page-me'",
            ));
        }
        return Ok(Target::Command(cmd.clone()));
    }
    if let Some(text) = &spec.webhook {
        let url = Url::parse(text)?;
        url.check_transport().map_err(|e| AppError {
            kind: Kind::Usage,
            ..e
        })?;
        return Ok(Target::Webhook(url));
    }
    let to = spec.mail_to.clone().unwrap_or_default();
    crate::mail::compose::bare_address(&to)?;
    if let Some(from) = &spec.from {
        crate::mail::compose::bare_address(from)?;
    }
    mail_way(cx, config, store, spec, &to)?;
    Ok(Target::Mail {
        to,
        via: spec.via.clone(),
    })
}

/// A mail alert needs a way out that is not only the account it may be about.
fn mail_way(cx: &Ctx, config: &Config, store: &Store, spec: &ChannelSpec, to: &str) -> Result<()> {
    let Some(via) = &spec.via else {
        if config.system_smtp.is_none() {
            return Err(AppError {
                kind: Kind::Usage,
                ..deliver::no_route(0, to)
            }
            .with_code(Code::AlertNoRoute));
        }
        return Ok(());
    };
    // Sending through an account is acting with it.
    access::account(cx, config, store, via, Need::Act)?;
    let about_via = spec.account.as_deref().is_none_or(|a| a == via);
    if about_via && config.system_smtp.is_none() {
        return Err(AppError::usage(
            format!("alerts about {via} would go out through {via} alone, which may be what fails"),
            "set a system SMTP profile as the way around (`mailroom system-smtp set --smtp HOST[:PORT] …`), or send through another account (--via OTHER)",
        )
        .with_code(Code::AlertNoRoute));
    }
    Ok(())
}

fn same_target(cx: &Ctx, store: &Store, c: &AlertChannel, t: &Target) -> bool {
    match (c.kind(), t) {
        (Ok(ChannelKind::Command(a)), Target::Command(b)) => a == b,
        (Ok(ChannelKind::Mail { to, via, .. }), Target::Mail { to: t2, via: v2 }) => {
            to.eq_ignore_ascii_case(t2) && via == v2.as_deref()
        }
        (Ok(ChannelKind::Webhook(_)), Target::Webhook(url)) => {
            stored_url(cx, store, c).is_some_and(|mine| mine == *url)
        }
        _ => false,
    }
}

/// The full URL of a webhook channel (sealed, or as written).
fn stored_url(cx: &Ctx, store: &Store, c: &AlertChannel) -> Option<Url> {
    let kind = webhook_kind(c.id);
    match store.credential(WEBHOOK_OWNER, &kind).ok()? {
        Some(sealed) => {
            let ctx = credential_context(WEBHOOK_OWNER, &kind);
            let url = cx.vault().ok()?.open_sealed(&ctx, &sealed).ok()?;
            Url::parse(secrecy::ExposeSecret::expose_secret(&url)).ok()
        }
        None => Url::parse(c.webhook.as_deref()?).ok(),
    }
}

fn full_url(u: &Url) -> String {
    format!("{}{}", u.origin(), u.path)
}

fn new_channel(
    id: u32,
    spec: &ChannelSpec,
    t: &Target,
    on: Option<Vec<EventKind>>,
) -> AlertChannel {
    let mut c = AlertChannel {
        id,
        account: spec.account.clone(),
        command: None,
        mail_to: None,
        via: None,
        from: spec.from.clone(),
        webhook: None,
        on,
        timeout_secs: spec.timeout_secs,
    };
    match t {
        Target::Command(cmd) => c.command = Some(cmd.clone()),
        Target::Mail { to, via } => {
            c.mail_to = Some(to.clone());
            c.via = via.clone();
        }
        // Written out only up to the origin when the rest is sealed.
        Target::Webhook(u) => {
            c.webhook = Some(if u.has_secret_part() {
                u.redacted()
            } else {
                full_url(u)
            })
        }
    }
    c
}

/// Writes `channel` into `[[alerts.channels]]`: replaces the entry with its id in place (other
/// keys, comments and order kept), or appends a new one.
fn write_channel(doc: &mut toml_edit::DocumentMut, channel: &AlertChannel) -> Result<()> {
    let fresh = toml_edit::ser::to_document(channel)
        .map_err(|e| {
            AppError::local(
                "cannot write the alert channel",
                e.to_string(),
                "report this as a bug",
            )
        })?
        .as_table()
        .clone();
    let channels = channels_mut(doc)?;
    if let Some(t) = channels
        .iter_mut()
        .find(|t| t.get("id").and_then(|v| v.as_integer()) == Some(channel.id as i64))
    {
        let keys: Vec<String> = t.iter().map(|(k, _)| k.to_string()).collect();
        for k in keys {
            if !fresh.contains_key(&k) {
                t.remove(&k);
            }
        }
        for (k, v) in fresh.iter() {
            let same = t
                .get(k)
                .is_some_and(|old| old.to_string().trim() == v.to_string().trim());
            if !same {
                t[k] = v.clone();
            }
        }
        return Ok(());
    }
    channels.push(fresh);
    Ok(())
}

fn channels_mut(doc: &mut toml_edit::DocumentMut) -> Result<&mut toml_edit::ArrayOfTables> {
    if doc.get("alerts").is_none() {
        let mut t = toml_edit::Table::new();
        t.set_implicit(true);
        doc["alerts"] = toml_edit::Item::Table(t);
    }
    let alerts = doc["alerts"].as_table_mut().ok_or_else(not_a_table)?;
    if alerts.get("channels").is_none() {
        alerts["channels"] = toml_edit::Item::ArrayOfTables(toml_edit::ArrayOfTables::new());
    }
    alerts["channels"]
        .as_array_of_tables_mut()
        .ok_or_else(not_a_table)
}

fn not_a_table() -> AppError {
    AppError::local(
        "[alerts] in config.toml is not written as tables",
        "",
        "write the channels as [[alerts.channels]] sections (docs/guide.md, Alerts)",
    )
    .with_code(Code::ConfigInvalid)
}

/// `alerts remove ID`: the channel goes, with its sealed URL; its waiting deliveries are
/// cancelled.
pub fn remove(cx: &Ctx, id: u32) -> Result<ChannelView> {
    let config = cx.config()?;
    let store = cx.store()?;
    let Some(c) = config
        .alerts
        .channel(id)
        .filter(|c| visible(cx, &config, c))
    else {
        return Err(AppError::not_found(
            "alert channel",
            &id.to_string(),
            "see `mailroom alerts list`",
        ));
    };
    scope_allowed(
        cx,
        &config,
        &store,
        c.account
            .as_deref()
            .filter(|a| config.accounts.contains_key(*a)),
    )?;
    let shown = view(&config, &store, c)?;
    config::edit(&cx.home, |doc| {
        let channels = channels_mut(doc)?;
        channels.retain(|t| t.get("id").and_then(|v| v.as_integer()) != Some(id as i64));
        if channels.is_empty()
            && let Some(a) = doc["alerts"].as_table_mut()
        {
            a.remove("channels");
        }
        Ok(())
    })?;
    store.delete_credential(WEBHOOK_OWNER, &webhook_kind(id))?;
    let cancelled = store.alert_cancel_channel(id)?;
    store.audit(
        &cx.operator,
        "alerts_remove",
        None,
        Some(&format!("alert channel {id}")),
        &json!({"channel": id, "target": deliver::describe(c), "cancelled": cancelled}),
    )?;
    Ok(shown)
}

/// `alerts test`: a test event through every channel this operator may change, each result
/// reported (and logged, and audited). Nothing is queued: this is the one attempt.
pub async fn test(cx: &Ctx) -> Result<Vec<Tested>> {
    let prepared = cx.blocking(prepare_tests).await?;
    if prepared.is_empty() {
        return Err(AppError::needs_user(
            "there is no alert channel to test",
            "no channel is set, or none is one this operator may change",
            "set one first: `mailroom alerts set --command CMD` (or --mail-to ADDR, --webhook URL)",
        )
        .with_code(Code::NothingToDo));
    }
    let runs = prepared.into_iter().map(|t| async move {
        let outcome = match &t.route {
            Ok(route) => deliver::deliver(route, &t.payload).await,
            Err(e) => deliver::Outcome::failed("not sent", None, e.clone()),
        };
        (t, outcome)
    });
    let results = futures::future::join_all(runs).await;
    let tested: Vec<Tested> = results
        .iter()
        .map(|(t, o)| Tested {
            channel: t.channel,
            kind: t.kind,
            target: t.target.clone(),
            ok: o.ok,
            result: o.result.clone(),
            output: o.output.clone(),
            error: o.error.as_ref().map(|e| e.to_json()["error"].clone()),
        })
        .collect();
    let record = tested.clone();
    let accounts: Vec<Option<String>> = results.iter().map(|(t, _)| t.account_id.clone()).collect();
    cx.blocking(move |cx| record_tests(cx, &record, &accounts))
        .await?;
    Ok(tested)
}

struct Prepared {
    channel: u32,
    kind: &'static str,
    target: String,
    account_id: Option<String>,
    payload: Payload,
    route: Result<deliver::Route>,
}

fn prepare_tests(cx: &Ctx) -> Result<Vec<Prepared>> {
    let config = cx.config()?;
    let store = cx.store()?;
    let vault = cx.vault().ok();
    let mut out = Vec::new();
    for c in &config.alerts.channels {
        let account = c.account.as_deref().and_then(|n| config.accounts.get(n));
        let allowed = match (&c.account, account) {
            (None, _) => access::configures_all(cx, &config),
            (Some(_), Some(a)) => Standing::of(a, &cx.operator).allows(Need::Configure),
            (Some(_), None) => false,
        };
        if !allowed {
            continue;
        }
        let v = view(&config, &store, c)?;
        let payload = Payload {
            id: None,
            event: "test".into(),
            account: c.account.clone(),
            state: None,
            at: crate::store::now(),
            what: format!(
                "a test alert from mailroom on {} through channel {} — nothing is wrong",
                host(),
                c.id
            ),
            fix: "nothing to do: this is a test (`mailroom alerts test`)".into(),
            code: None,
            host: host(),
            held: Vec::new(),
        };
        out.push(Prepared {
            channel: c.id,
            kind: v.kind,
            target: v.target,
            account_id: account.map(|a| a.id.clone()),
            route: deliver::prepare(
                &config,
                &store,
                vault.as_ref(),
                c,
                account.map(|a| a.id.as_str()),
            ),
            payload,
        });
    }
    Ok(out)
}

fn record_tests(cx: &Ctx, tested: &[Tested], accounts: &[Option<String>]) -> Result<()> {
    let store = cx.store()?;
    for (t, acct) in tested.iter().zip(accounts) {
        let words = if t.ok { "delivered" } else { "not delivered" };
        let level = if t.ok { Level::Info } else { Level::Warn };
        let fix = t
            .error
            .as_ref()
            .and_then(|e| e["fix"].as_str().map(str::to_string));
        store.log_event(
            acct.as_deref(),
            level,
            &format!(
                "alert test through channel {} ({} {}): {words} ({})",
                t.channel, t.kind, t.target, t.result
            ),
            t.output.as_deref(),
            fix.as_deref(),
        )?;
        store.audit(
            &cx.operator,
            "alert_test",
            acct.as_deref(),
            Some(&format!("alert channel {}", t.channel)),
            &json!({"channel": t.channel, "ok": t.ok, "result": t.result, "error": t.error}),
        )?;
    }
    Ok(())
}

/// The alerts worker of a process that syncs: a thread of its own (see `crate::alerts`).
pub struct Worker {
    stop: tokio::sync::watch::Sender<bool>,
    done: tokio::sync::oneshot::Receiver<()>,
}

impl Worker {
    pub fn start(cx: &Ctx) -> Result<Worker> {
        let (stop, stop_rx) = tokio::sync::watch::channel(false);
        let (done_tx, done) = tokio::sync::oneshot::channel();
        let source = cx.clone();
        let settings = crate::alerts::worker::Settings {
            home: cx.home.clone(),
            operator: cx.operator.clone(),
            config: Arc::new(move || source.config()),
        };
        std::thread::Builder::new()
            .name("mailroom-alerts".into())
            .spawn(move || {
                match super::thread::current_thread_runtime() {
                    Ok(rt) => {
                        if let Err(e) = rt.block_on(crate::alerts::worker::run(settings, stop_rx)) {
                            tracing::warn!("the alerts worker stopped: {e}");
                        }
                    }
                    Err(e) => tracing::warn!("the alerts worker cannot start: {e}"),
                }
                let _ = done_tx.send(());
            })
            .map_err(|e| {
                AppError::local(
                    "cannot start the alerts worker",
                    e.to_string(),
                    "check system limits (threads)",
                )
            })?;
        Ok(Worker { stop, done })
    }

    /// Asks the worker to stop and waits at most `within` (it gives deliveries in flight a few
    /// seconds; one cut short is claimed again later).
    pub async fn stop(self, within: Duration) {
        let _ = self.stop.send(true);
        let _ = tokio::time::timeout(within, self.done).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::accounts::{self, ServerSpec};

    fn home() -> (tempfile::TempDir, Ctx) {
        let dir = tempfile::tempdir().unwrap();
        let home = crate::config::Home {
            root: dir.path().to_path_buf(),
        };
        (dir, Ctx::new(home, "alice"))
    }

    fn add(cx: &Ctx, name: &str, share: &[&str]) {
        let spec = ServerSpec {
            email: Some(format!("{name}@example.test")),
            imap: Some("imap.example.test".into()),
            smtp: Some("smtp.example.test".into()),
            share_with: Some(share.iter().map(|s| s.to_string()).collect()),
            ..Default::default()
        };
        let new = accounts::prepare(cx, name, &spec, None).unwrap();
        accounts::add(cx, &new, Some(&SecretString::from("pw"))).unwrap();
    }

    #[test]
    fn channels_are_set_in_place_listed_by_who_sees_them_and_removed() {
        let (_dir, alice) = home();
        add(&alice, "work", &["carol"]);
        let path = alice.home.config_path();
        let spec = |cmd: &str| ChannelSpec {
            command: Some(cmd.into()),
            ..Default::default()
        };
        let s = set(&alice, &spec("/bin/page-me")).unwrap();
        assert!(s.created);
        assert_eq!((s.channel.id, s.channel.kind), (1, "command"));
        assert!(s.channel.default_events);
        // A comment survives; the same target again changes that channel.
        let text = std::fs::read_to_string(&path)
            .unwrap()
            .replace("[[alerts.channels]]", "# pager\n[[alerts.channels]]");
        std::fs::write(&path, text).unwrap();
        let s = set(
            &alice,
            &ChannelSpec {
                on: Some("error,recovered".into()),
                ..spec("/bin/page-me")
            },
        )
        .unwrap();
        assert!(!s.created);
        assert_eq!(s.channel.on, [EventKind::Error, EventKind::Recovered]);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("# pager\n[[alerts.channels]]\nid = 1\ncommand = \"/bin/page-me\"\non = [\"error\", \"recovered\"]\n"), "{text}");

        // A webhook's token is sealed, never written.
        let hook = ChannelSpec {
            account: Some("work".into()),
            webhook: Some("https://hooks.example.test/T/B/t0k3n".into()),
            ..Default::default()
        };
        let s = set(&alice, &hook).unwrap();
        assert_eq!(
            (s.channel.id, s.channel.target.as_str()),
            (2, "https://hooks.example.test/…")
        );
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains("t0k3n"), "{text}");
        assert!(
            !set(&alice, &hook).unwrap().created,
            "the sealed URL is recognised"
        );
        let plain = ChannelSpec {
            webhook: Some("http://hooks.example.test/x".into()),
            ..Default::default()
        };
        let e = set(&alice, &plain).unwrap_err();
        assert_eq!((e.kind, e.code), (Kind::Usage, Code::AlertPlainHttp));

        // Mail needs a way out that is not only the account the alert is about.
        let mail = ChannelSpec {
            mail_to: Some("ops@example.test".into()),
            ..Default::default()
        };
        assert_eq!(set(&alice, &mail).unwrap_err().code, Code::AlertNoRoute);
        let via = ChannelSpec {
            via: Some("work".into()),
            ..mail.clone()
        };
        assert_eq!(set(&alice, &via).unwrap_err().code, Code::AlertNoRoute);

        // carol (shared) sees work's channel but changes nothing; eve sees only the global one.
        let carol = alice.as_operator("carol");
        assert_eq!(list(&carol).unwrap().channels.len(), 2);
        let eve = alice.as_operator("eve");
        let l = list(&eve).unwrap();
        assert_eq!(l.channels.iter().map(|c| c.id).collect::<Vec<_>>(), [1]);
        assert_eq!(l.min_interval_secs, 600);
        assert_eq!(set(&carol, &hook).unwrap_err().code, Code::AccessDenied);
        assert_eq!(
            set(&eve, &spec("x")).unwrap_err().code,
            Code::AccessDenied,
            "work is not eve's"
        );
        assert_eq!(
            remove(&eve, 2).unwrap_err().code,
            Code::NotFound,
            "invisible is nonexistent"
        );
        assert_eq!(remove(&carol, 2).unwrap_err().code, Code::AccessDenied);

        remove(&alice, 2).unwrap();
        let store = alice.store().unwrap();
        assert!(
            store
                .credential(WEBHOOK_OWNER, "webhook:2")
                .unwrap()
                .is_none()
        );
        remove(&alice, 1).unwrap();
        assert!(list(&alice).unwrap().channels.is_empty());
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains("channels"), "{text}");
        crate::config::Config::load(&alice.home).unwrap();
        let audit = store.audit_rows(100).unwrap();
        for action in ["alerts_add", "alerts_edit", "alerts_remove", "refused"] {
            assert!(audit.iter().any(|r| r.action == action), "{action}");
        }
    }
}
