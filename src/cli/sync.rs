//! `mailroom sync`, `daemon`, `quarantine`.

use std::path::PathBuf;

use std::io::IsTerminal;

use clap::{Args, Subcommand};
use serde_json::json;

use super::output::{emit, note, note_inline, table};
use super::{AccountSel, Ctx};
use crate::error::Result;
use crate::mail::sanitize::clean_line;
use crate::ops::quarantine;
use crate::ops::sync::{
    self as ops_sync, AccountPlan, Background, Daemon, EventReceiver, PassSummary, PlanScope,
    SyncEvent, Synced,
};

#[derive(Debug, Args)]
pub struct SyncArgs {
    /// The account (or --account); all enabled accounts when omitted.
    pub name: Option<String>,
    #[command(flatten)]
    pub sel: AccountSel,
    /// One pass, then exit.
    #[arg(long)]
    pub once: bool,
    /// Show per-folder counts, sizes and an estimate; change nothing.
    #[arg(long)]
    pub plan: bool,
    /// With --plan: preview this first-sync scope instead of the account's: messages since DATE
    /// (YYYY-MM-DD), `new` (no old mail), or `all`.
    #[arg(long, requires = "plan", value_name = "DATE|new|all")]
    pub since: Option<String>,
    /// With --plan: only unread messages.
    #[arg(long, requires = "plan")]
    pub unread_only: bool,
    /// With --plan: only these folders.
    #[arg(long, value_delimiter = ',', requires = "plan")]
    pub folders: Option<Vec<String>>,
}

#[derive(Debug, Args)]
pub struct DaemonArgs {
    /// Hold at most N accounts (the others are left to other daemons, or wait as `pending`).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_accounts: Option<u32>,
    /// How long a lease lasts unless renewed (every third of it): a daemon that dies loses
    /// its accounts to the others after this long.
    #[arg(long, value_name = "S", default_value_t = ops_sync::DEFAULT_LEASE_SECS,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub lease_secs: u64,
}

#[derive(Debug, Subcommand)]
pub enum QuarantineCmd {
    List,
    Retry { id: i64 },
    Skip { id: i64 },
    Save { id: i64, path: PathBuf },
}

fn summary_json(name: &str, s: &PassSummary) -> serde_json::Value {
    json!({
        "name": name,
        "ok": true,
        "folders": s.folders,
        "ops_pushed": s.ops_pushed,
        "bodies": s.bodies,
        "bodies_ms": s.bodies_ms,
        "index_ms": s.index_ms,
        "match_ms": s.match_ms,
        "duration_ms": s.duration_ms,
        "bytes": s.bytes,
        "error": null,
    })
}

pub async fn run(ctx: &Ctx, args: SyncArgs) -> Result<i32> {
    let name = args.name.as_deref().or(args.sel.account.as_deref());
    if args.plan {
        return plan(ctx, name, &args).await;
    }
    if !args.once {
        let config = ops_sync::foreground(ctx, name)?;
        return run_until_interrupted(ctx, &config).await;
    }
    let tty = !ctx.json && std::io::stderr().is_terminal();
    let results = ops_sync::once(ctx, name, tty).await?;
    let (mut duration, mut bytes) = (0u64, 0u64);
    for s in results.iter().filter_map(|r| r.result.as_ref().ok()) {
        duration += s.duration_ms;
        bytes += s.bytes;
    }
    let accounts: Vec<serde_json::Value> = results
        .iter()
        .map(|r| match &r.result {
            Ok(s) => summary_json(&r.name, s),
            Err(e) => {
                json!({"name": r.name, "ok": false, "folders": [], "duration_ms": null, "bytes": null,
                             "error": {"summary": e.summary, "detail": e.detail, "fix": e.fix}})
            }
        })
        .collect();
    emit(
        ctx.json,
        &json!({"accounts": accounts, "duration_ms": duration, "bytes": bytes}),
        || summary_text(&results),
    );
    Ok(if results.iter().any(|r| r.result.is_err()) {
        1
    } else {
        0
    })
}

/// Each account's pass: a line, then its folders' counts (or what failed and the fix).
fn summary_text(results: &[Synced]) -> String {
    let mut out = String::new();
    for r in results {
        let n = &r.name;
        match &r.result {
            Ok(s) => {
                let rows: Vec<Vec<String>> = s
                    .folders
                    .iter()
                    .map(|f| {
                        vec![
                            clean_line(&f.folder),
                            f.new.to_string(),
                            f.updated.to_string(),
                            f.vanished.to_string(),
                            f.quarantined.to_string(),
                        ]
                    })
                    .collect();
                out.push_str(&format!(
                    "{n}: {} ms, {} bytes, {} queued changes pushed\n",
                    s.duration_ms, s.bytes, s.ops_pushed
                ));
                out.push_str(&table(
                    &["FOLDER", "NEW", "UPDATED", "VANISHED", "QUARANTINED"],
                    &rows,
                ));
            }
            Err(e) => out.push_str(&format!("{n}: FAILED {} — fix: {}\n", e.summary, e.fix)),
        }
    }
    out
}

/// `sync [NAME]` without --once: the accounts' background sync until Ctrl-C / SIGTERM.
async fn run_until_interrupted(ctx: &Ctx, config: &crate::config::Config) -> Result<i32> {
    ops_sync::check_leases(ctx, config)?;
    let sync = Background::start(ctx, config);
    let printer = tokio::spawn(print_events(sync.events(), ctx.json));
    wait_for_signal().await;
    sync.stop().await;
    printer.abort();
    emit(ctx.json, &json!({"stopped": true}), String::new);
    Ok(0)
}

/// What the sync tasks report, on stderr. On a terminal the current folder's progress is one
/// line rewritten in place; each finished pass leaves a summary line. Logs and --json stay
/// clean.
async fn print_events(mut rx: EventReceiver, json: bool) {
    let tty = !json && std::io::stderr().is_terminal();
    let mut bar_open = false;
    while let Ok(ev) = rx.recv().await {
        match &ev {
            SyncEvent::Progress {
                folder,
                done,
                total,
                ..
            } if tty => {
                let pct = (done * 100).checked_div(*total).unwrap_or(100);
                note_inline(format!(
                    "\r{}: {done}/{total} ({pct}%)   ",
                    clean_line(folder)
                ));
                bar_open = true;
            }
            SyncEvent::Failed { what, fix, .. } => {
                if std::mem::take(&mut bar_open) {
                    note("");
                }
                note(format!("sync failed: {what} — fix: {fix}"));
            }
            SyncEvent::PassDone {
                new,
                updated,
                vanished,
                duration_ms,
                ..
            } if !json => {
                if std::mem::take(&mut bar_open) {
                    note("");
                }
                note(format!(
                    "synced: {new} new, {updated} updated, {vanished} vanished in {duration_ms} ms"
                ));
            }
            _ => {}
        }
    }
}

/// How often the daemon looks at config.toml for changes.
const CONFIG_CHECK: std::time::Duration = std::time::Duration::from_secs(2);

/// The daemon until a stop signal: config.toml is re-read when it changes (checked every two
/// seconds, or at once on SIGHUP), so `account add/edit/enable/disable/remove` reach a running
/// daemon without a restart. A file that no longer reads keeps the running settings, says why
/// and is tried again when it changes.
async fn follow_config(ctx: &Ctx, sync: &mut Background) {
    let mut seen = crate::ops::settings::stamp(ctx, None).await;
    let stop = wait_for_signal();
    tokio::pin!(stop);
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    loop {
        let forced = tokio::select! {
            _ = &mut stop => return,
            _ = async {
                match hup.as_mut() {
                    Some(h) => { h.recv().await; }
                    None => std::future::pending::<()>().await,
                }
            } => true,
            _ = tokio::time::sleep(CONFIG_CHECK) => false,
        };
        let now = crate::ops::settings::stamp(ctx, Some(&seen)).await;
        if !forced && now == seen {
            continue;
        }
        seen = now;
        match sync.reload(ctx).await {
            Ok(changes) => {
                for change in changes {
                    note(format!("config.toml changed: {change}"));
                }
            }
            Err(e) => note(format!(
                "config.toml changed but cannot be used; the daemon keeps the previous settings: {e}"
            )),
        }
    }
}

async fn wait_for_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = term => {},
    }
}

/// `daemon`: every enabled account and the outbox, following config.toml, until stopped;
/// several daemons (on one or many hosts) share the accounts by lease.
pub async fn daemon(ctx: &Ctx, args: DaemonArgs) -> Result<i32> {
    let config = ops_sync::daemon_config(ctx)?;
    if !config.accounts.values().any(|a| a.enabled) {
        // A service may well start before the first account exists: wait for config.toml.
        note(
            "no enabled account yet: the daemon waits for one (`mailroom account add …`, or `mailroom account enable NAME`)",
        );
    }
    let lease = ops_sync::LeaseOptions {
        secs: args.lease_secs,
        daemon: Some(args.max_accounts.map(|n| n as usize)),
    };
    let mut daemon = Daemon::start(ctx, &config, lease)?;
    let printer = tokio::spawn(print_events(daemon.sync.events(), ctx.json));
    follow_config(ctx, &mut daemon.sync).await;
    daemon.stop().await;
    printer.abort();
    emit(ctx.json, &json!({"stopped": true}), String::new);
    Ok(0)
}

/// `sync --plan`: per-folder counts, sizes and an estimate; changes nothing.
async fn plan(ctx: &Ctx, name: Option<&str>, args: &SyncArgs) -> Result<i32> {
    let scope = PlanScope {
        since: args.since.clone(),
        unread_only: args.unread_only,
        folders: args.folders.clone(),
    };
    let accounts = ops_sync::plan(ctx, name, &scope).await?;
    emit(ctx.json, &json!({"accounts": accounts}), || {
        plan_text(&accounts)
    });
    Ok(0)
}

fn plan_text(accounts: &[AccountPlan]) -> String {
    let mut out = String::new();
    for a in accounts {
        out.push_str(&format!("{}:\n", a.name));
        let rows: Vec<Vec<String>> = a
            .folders
            .iter()
            .map(|f| {
                vec![
                    clean_line(&f.folder),
                    f.messages.to_string(),
                    f.to_sync.to_string(),
                    format!("{:.1} MB", f.bytes as f64 / 1e6),
                    format!("~{:?}s", f.estimate_secs),
                ]
            })
            .collect();
        out.push_str(&table(
            &["FOLDER", "MESSAGES", "TO SYNC", "SIZE", "HEADERS IN"],
            &rows,
        ));
        if a.since.as_deref() == Some("new") {
            out.push_str(
                "since = new: 0 historical messages per folder are fetched; only mail arriving after the first sync\n",
            );
        }
    }
    out.push_str("nothing was changed; scope with `mailroom folders NAME --sync A,B` and the account's sync options\n");
    out
}

pub async fn quarantine(ctx: &Ctx, cmd: QuarantineCmd) -> Result<i32> {
    match cmd {
        QuarantineCmd::List => {
            let rows = quarantine::list(ctx)?;
            emit(ctx.json, &json!({"quarantine": rows}), || {
                let t: Vec<Vec<String>> = rows
                    .iter()
                    .map(|r| {
                        vec![
                            r.id.to_string(),
                            r.state.to_string(),
                            clean_line(r.folder.as_deref().unwrap_or("")),
                            r.uid.map(|u| u.to_string()).unwrap_or_default(),
                            clean_line(&r.error),
                        ]
                    })
                    .collect();
                table(&["ID", "STATE", "FOLDER", "UID", "ERROR"], &t)
            });
        }
        QuarantineCmd::Skip { id } => {
            quarantine::skip(ctx, id)?;
            emit(ctx.json, &json!({"id": id, "state": "skipped"}), || {
                format!("quarantined message {id} skipped")
            });
        }
        QuarantineCmd::Save { id, path } => {
            let bytes = quarantine::save(ctx, id, &path)?;
            emit(
                ctx.json,
                &json!({"id": id, "saved": path, "bytes": bytes}),
                || format!("saved {bytes} bytes to {}", path.display()),
            );
        }
        QuarantineCmd::Retry { id } => {
            let ok = quarantine::retry(ctx, id).await?.stored;
            emit(ctx.json, &json!({"id": id, "ok": ok}), || {
                if ok {
                    format!("message {id} fetched and stored")
                } else {
                    format!("message {id} still fails; it stays in quarantine")
                }
            });
            return Ok(if ok { 0 } else { 1 });
        }
    }
    Ok(0)
}
