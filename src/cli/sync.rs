//! `mailroom sync`, `daemon`, `quarantine`.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use serde_json::json;

use super::output::{emit, note, note_inline, table};
use super::{AccountSel, Ctx};
use crate::account::Account;
use crate::config::HistoryScope;
use crate::error::{AppError, Result};
use crate::imap::discovery::{self, Role};
use crate::imap::fetch;
use crate::mail::sanitize::clean_line;
use crate::sync::engine::{self, FirstFetch, PassSummary};
use crate::sync::supervisor;

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

#[derive(Debug, Subcommand)]
pub enum QuarantineCmd {
    List,
    Retry { id: i64 },
    Skip { id: i64 },
    Save { id: i64, path: PathBuf },
}

/// The accounts a sync command acts on: the named one, else every enabled one.
fn targets(ctx: &Ctx, args: &SyncArgs) -> Result<Vec<String>> {
    let config = ctx.config()?;
    match args.name.as_deref().or(args.sel.account.as_deref()) {
        Some(n) => {
            config.account(n)?;
            Ok(vec![n.to_string()])
        }
        None => {
            let v: Vec<String> = config
                .accounts
                .iter()
                .filter(|(_, a)| a.enabled && ctx.sees(a))
                .map(|(n, _)| n.clone())
                .collect();
            if v.is_empty() {
                return Err(AppError::usage(
                    "no enabled account to sync",
                    "add one with `mailroom account add`, or `mailroom account enable NAME`",
                ));
            }
            Ok(v)
        }
    }
}

fn summary_json(name: &str, s: &PassSummary) -> serde_json::Value {
    json!({
        "name": name,
        "ok": true,
        "folders": s.folders,
        "ops_pushed": s.ops_pushed,
        "bodies": s.bodies,
        "duration_ms": s.duration_ms,
        "bytes": s.bytes,
        "error": null,
    })
}

pub async fn run(ctx: &Ctx, args: SyncArgs) -> Result<i32> {
    if args.plan {
        return plan(ctx, &args).await;
    }
    let names = targets(ctx, &args)?;
    let config = ctx.config()?;
    ctx.home.ensure()?;
    if !args.once {
        let mut sub = (*config).clone();
        sub.accounts.retain(|n, _| names.contains(n));
        for a in sub.accounts.values_mut() {
            a.enabled = true;
        }
        return run_until_interrupted(ctx, &sub, false).await;
    }
    let tty = !ctx.json && engine::stderr_is_tty();
    let mut results = Vec::new();
    let mut last_err = None;
    let (mut duration, mut bytes) = (0u64, 0u64);
    for name in &names {
        match supervisor::run_once(&ctx.home, &config, name, tty).await {
            Ok(s) => {
                duration += s.duration_ms;
                bytes += s.bytes;
                results.push((name.clone(), Ok(s)));
            }
            Err(e) => {
                if names.len() == 1 {
                    return Err(e);
                }
                last_err = Some(e.clone());
                results.push((name.clone(), Err(e)));
            }
        }
    }
    let accounts: Vec<serde_json::Value> = results
        .iter()
        .map(|(n, r)| match r {
            Ok(s) => summary_json(n, s),
            Err(e) => {
                json!({"name": n, "ok": false, "folders": [], "duration_ms": null, "bytes": null,
                             "error": {"summary": e.summary, "detail": e.detail, "fix": e.fix}})
            }
        })
        .collect();
    emit(
        ctx.json,
        &json!({"accounts": accounts, "duration_ms": duration, "bytes": bytes}),
        || {
            let mut out = String::new();
            for (n, r) in &results {
                match r {
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
                    Err(e) => {
                        out.push_str(&format!("{n}: FAILED {} — fix: {}\n", e.summary, e.fix))
                    }
                }
            }
            out
        },
    );
    Ok(if last_err.is_some() { 1 } else { 0 })
}

/// Runs the supervisor for `config`'s accounts until Ctrl-C / SIGTERM.
async fn run_until_interrupted(
    ctx: &Ctx,
    config: &crate::config::Config,
    with_outbox: bool,
) -> Result<i32> {
    // A second process for the same account must say who holds it, not wait silently.
    {
        let store = ctx.store()?;
        for a in config.accounts.values().filter(|a| a.enabled) {
            if let Some(h) = store.lease_holder(&a.id)? {
                let fresh = chrono::DateTime::parse_from_rfc3339(&h.since).is_ok()
                    && h.pid != std::process::id() as i64
                    && crate::store::process_alive(h.pid);
                if fresh {
                    return Err(AppError::new(
                        crate::error::Kind::Busy,
                        format!(
                            "account is being synced by pid {} on {} since {}",
                            h.pid, h.host, h.since
                        ),
                        "",
                        "stop that process first, or let it do the work",
                    ));
                }
            }
        }
    }
    let mut sup = crate::sync::Supervisor::start(&ctx.home, config);
    let mut rx = sup.subscribe();
    let json = ctx.json;
    // On a terminal the current folder's progress is one line rewritten in place; each finished
    // pass leaves a summary line. Logs and --json stay clean.
    let tty = !json && engine::stderr_is_tty();
    let printer = tokio::spawn(async move {
        let mut bar_open = false;
        while let Ok(ev) = rx.recv().await {
            match &ev {
                crate::sync::SyncEvent::Progress {
                    folder,
                    done,
                    total,
                    ..
                } if tty => {
                    let pct = (done * 100).checked_div(*total).unwrap_or(100);
                    note_inline(format!(
                        "\r{}: {done}/{total} ({pct}%)   ",
                        crate::mail::sanitize::clean_line(folder)
                    ));
                    bar_open = true;
                }
                crate::sync::SyncEvent::Failed { what, fix, .. } => {
                    if std::mem::take(&mut bar_open) {
                        note("");
                    }
                    note(format!("sync failed: {what} — fix: {fix}"));
                }
                crate::sync::SyncEvent::PassDone {
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
    });
    // The daemon also drives the outbox: mail queued with --queue-only or by a console, copies
    // waiting for IMAP, retries after backoff. Claims keep it from doubling a console's work.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let outbox = with_outbox.then(|| {
        tokio::spawn(crate::outbox::run_worker(
            ctx.home.clone(),
            ctx.operator.clone(),
            stop_rx,
            std::sync::Arc::new(tokio::sync::Notify::new()),
            None,
            std::time::Duration::from_secs(config.general.outbox_poll_secs.max(1)),
        ))
    });
    if with_outbox {
        follow_config(ctx, &mut sup).await;
    } else {
        wait_for_signal().await;
    }
    let _ = stop_tx.send(true);
    sup.shutdown().await;
    if let Some(task) = outbox {
        let _ = tokio::time::timeout(std::time::Duration::from_secs(10), task).await;
    }
    printer.abort();
    emit(json, &json!({"stopped": true}), String::new);
    Ok(0)
}

/// How often the daemon looks at config.toml for changes.
const CONFIG_CHECK: std::time::Duration = std::time::Duration::from_secs(2);

/// The daemon until a stop signal: config.toml is re-read when it changes (checked every two
/// seconds, or at once on SIGHUP), so `account add/edit/enable/disable/remove` reach a running
/// daemon without a restart. A file that no longer reads keeps the running settings, says why
/// and is tried again when it changes.
async fn follow_config(ctx: &Ctx, sup: &mut crate::sync::Supervisor) {
    let path = ctx.home.config_path();
    let mut seen = std::fs::read(&path).ok();
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
        let now = std::fs::read(&path).ok();
        if !forced && now == seen {
            continue;
        }
        seen = now;
        reload(ctx, sup).await;
    }
}

async fn reload(ctx: &Ctx, sup: &mut crate::sync::Supervisor) {
    let store = ctx.store();
    let config = match ctx.config() {
        Ok(c) => c,
        Err(e) => {
            note(format!(
                "config.toml changed but cannot be used; the daemon keeps the previous settings: {e}"
            ));
            if let Ok(store) = &store {
                let _ = store.log_event(
                    None,
                    crate::store::Level::Warn,
                    "config.toml changed but cannot be used; the daemon keeps the previous settings",
                    Some(&e.to_string()),
                    Some("correct config.toml; the daemon reads it again when it changes"),
                );
            }
            return;
        }
    };
    if let Ok(store) = &store {
        for (name, a) in config.accounts.iter().filter(|(_, a)| a.enabled) {
            let _ = store.insert_account(&a.id, name, true);
        }
    }
    for change in sup.apply(&config).await {
        note(format!("config.toml changed: {change}"));
        if let Ok(store) = &store {
            let _ = store.log_event(
                None,
                crate::store::Level::Info,
                &format!("config.toml changed: {change}"),
                None,
                None,
            );
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

pub async fn daemon(ctx: &Ctx) -> Result<i32> {
    let config = ctx.config()?;
    let mut enabled = (*config).clone();
    enabled.accounts.retain(|_, a| a.enabled);
    if enabled.accounts.is_empty() {
        // A service may well start before the first account exists: wait for config.toml.
        note(
            "no enabled account yet: the daemon waits for one (`mailroom account add …`, or `mailroom account enable NAME`)",
        );
    }
    ctx.home.ensure()?;
    {
        let store = ctx.store()?;
        for (n, a) in &enabled.accounts {
            store.insert_account(&a.id, n, true)?;
        }
    }
    // The supervisor gets the whole file: it starts the enabled accounts, and a reload
    // compares like with like.
    run_until_interrupted(ctx, &config, true).await
}

/// `sync --plan`: per-folder counts, sizes and an estimate, read-only (EXAMINE, STATUS).
async fn plan(ctx: &Ctx, args: &SyncArgs) -> Result<i32> {
    let accounts = plan_accounts(ctx, args).await?;
    emit(ctx.json, &json!({"accounts": accounts}), || {
        let mut out = String::new();
        for a in &accounts {
            out.push_str(&format!("{}:\n", a["name"].as_str().unwrap_or("")));
            let rows: Vec<Vec<String>> = a["folders"]
                .as_array()
                .map(|v| {
                    v.iter()
                        .map(|f| {
                            vec![
                                clean_line(f["folder"].as_str().unwrap_or("")),
                                f["messages"].to_string(),
                                f["to_sync"].to_string(),
                                format!("{:.1} MB", f["bytes"].as_f64().unwrap_or(0.0) / 1e6),
                                format!("~{}s", f["estimate_secs"]),
                            ]
                        })
                        .collect()
                })
                .unwrap_or_default();
            out.push_str(&table(
                &["FOLDER", "MESSAGES", "TO SYNC", "SIZE", "HEADERS IN"],
                &rows,
            ));
            if a["since"] == "new" {
                out.push_str(
                    "since = new: 0 historical messages per folder are fetched; only mail arriving after the first sync\n",
                );
            }
        }
        out.push_str("nothing was changed; scope with `mailroom folders NAME --sync A,B` and the account's sync options\n");
        out
    });
    Ok(0)
}

/// The plan's numbers without printing: shared with the console's folder picker (issue 6).
pub async fn plan_accounts(ctx: &Ctx, args: &SyncArgs) -> Result<Vec<serde_json::Value>> {
    let names = targets(ctx, args)?;
    let config = ctx.config()?;
    let store = ctx.store()?;
    let vault = ctx.vault()?;
    let scope_arg = args.since.as_deref().map(HistoryScope::parse).transpose()?;
    let mut accounts = Vec::new();
    for name in &names {
        let account = Account::from_config(&config, name)?;
        let scope = scope_arg.unwrap_or(account.cfg.sync.since);
        let unread_only =
            args.unread_only || account.cfg.sync.process == crate::config::ProcessScope::UnreadOnly;
        let pw = account.password(&store, &vault)?;
        let mut session = crate::imap::connect(&account.imap_target(), &pw).await?;
        let list = discovery::list_folders(&mut session).await?;
        let stored = store.folders(account.id())?;
        let chosen: Vec<&discovery::FolderInfo> = list
            .iter()
            .filter(|f| f.selectable)
            .filter(|f| match &args.folders {
                Some(names) => names.iter().any(|n| n == &f.name),
                None => match stored.iter().find(|s| s.name == f.name) {
                    Some(s) => s.sync_enabled,
                    None => matches!(f.role, Some(Role::Inbox) | Some(Role::Sent)),
                },
            })
            .collect();
        let mut rows = Vec::new();
        let (mut tm, mut tb, mut te) = (0u64, 0u64, 0f64);
        for f in chosen {
            let (messages, unseen, _) = fetch::status(&mut session, &f.wire_name).await?;
            // The same question the first sync asks the server (engine::first_fetch).
            let query = match engine::first_fetch(scope, unread_only) {
                FirstFetch::Everything => Some("ALL".to_string()),
                FirstFetch::Search(criteria) => Some(criteria),
                FirstFetch::Nothing => None,
            };
            let uids = match query {
                Some(q) => {
                    let sel = fetch::select(&mut session, &f.wire_name, false, None, true).await?;
                    if sel.exists == 0 {
                        vec![]
                    } else {
                        fetch::uid_search(&mut session, &q).await?
                    }
                }
                // `since = "new"`: no historical message is fetched.
                None => vec![],
            };
            // The server's SINCE day is not the UTC day, so the search reaches a day further
            // back (engine::first_fetch); counting by INTERNALDATE makes the same exact cut
            // sync makes.
            let (mut bytes, mut to_sync) = (0u64, 0u64);
            for range in fetch::uid_set_chunks(&uids, engine::MAX_UID_SET_CHARS) {
                let (b, n) = fetch::total_size(&mut session, &range, scope.cutoff()).await?;
                bytes += b;
                to_sync += n;
            }
            // Header sync runs at roughly 20k messages/s locally; remote servers are slower,
            // so this is a lower bound, and bodies come later in the background.
            let estimate = to_sync as f64 / 20_000.0 + 0.2;
            tm += to_sync;
            tb += bytes;
            te += estimate;
            rows.push(json!({"folder": f.name, "role": f.role.map(|r| r.as_str()), "messages": messages, "unread": unseen,
                             "to_sync": to_sync, "bytes": bytes, "estimate_secs": (estimate * 10.0).round() / 10.0}));
        }
        let _ = session.logout().await;
        accounts.push(json!({"name": name, "folders": rows, "total": {"to_sync": tm, "bytes": tb, "estimate_secs": (te * 10.0).round() / 10.0},
                             "since": scope.value(), "unread_only": unread_only}));
    }
    Ok(accounts)
}

pub async fn quarantine(ctx: &Ctx, cmd: QuarantineCmd) -> Result<i32> {
    let config = ctx.config()?;
    let mut store = ctx.store()?;
    let ids: Vec<String> = config
        .accounts
        .values()
        .filter(|a| ctx.sees(a))
        .map(|a| a.id.clone())
        .collect();
    let get = |store: &crate::store::Store, id: i64| {
        store
            .quarantine_get(id)?
            .filter(|(r, _)| ids.contains(&r.account_id))
            .ok_or_else(|| {
                AppError::usage(
                    format!("no quarantined message {id}"),
                    "see `mailroom quarantine list`",
                )
            })
    };
    match cmd {
        QuarantineCmd::List => {
            let rows = store.quarantine_list(&ids)?;
            emit(ctx.json, &json!({"quarantine": rows}), || {
                let t: Vec<Vec<String>> = rows
                    .iter()
                    .map(|r| {
                        vec![
                            r.id.to_string(),
                            r.state.clone(),
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
            get(&store, id)?;
            store.quarantine_set_state(id, "skipped")?;
            store.audit(
                &ctx.operator,
                "quarantine_skip",
                None,
                Some(&id.to_string()),
                &json!({}),
            )?;
            emit(ctx.json, &json!({"id": id, "state": "skipped"}), || {
                format!("quarantined message {id} skipped")
            });
        }
        QuarantineCmd::Save { id, path } => {
            let (_, raw) = get(&store, id)?;
            if path.exists() {
                return Err(AppError::usage(
                    format!("{} already exists", path.display()),
                    "choose another path (nothing is overwritten)",
                ));
            }
            crate::config::write_atomic(&path, &raw, 0o600)?;
            emit(
                ctx.json,
                &json!({"id": id, "saved": path, "bytes": raw.len()}),
                || format!("saved {} bytes to {}", raw.len(), path.display()),
            );
        }
        QuarantineCmd::Retry { id } => {
            let (row, _) = get(&store, id)?;
            let (name, _) = config
                .account_by_id(&row.account_id)
                .ok_or_else(|| AppError::usage("its account is gone", "skip it instead"))?;
            let account = Account::from_config(&config, name)?;
            let ok = retry_one(ctx, &mut store, &account, &row).await?;
            store.quarantine_set_state(id, if ok { "retried" } else { "open" })?;
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

/// Fetches a quarantined message's header again and stores it if it parses now.
/// Shared with the console's quarantine view (issue 6).
pub async fn retry_one(
    ctx: &Ctx,
    store: &mut crate::store::Store,
    account: &Account,
    row: &crate::store::QuarantineRow,
) -> Result<bool> {
    let (Some(fid), Some(uv), Some(uid)) = (row.folder_id, row.uidvalidity, row.uid) else {
        return Ok(false);
    };
    let folder = store
        .folder(fid)?
        .ok_or_else(|| AppError::usage("its folder is gone", "skip it instead"))?;
    let pw = account.password(store, &ctx.vault()?)?;
    let mut ss = crate::sync::open_session(account, &pw).await?;
    let sel = fetch::select(&mut ss.session, &folder.wire_name, false, None, true).await?;
    if sel.uidvalidity != uv {
        return Ok(false);
    }
    let mut item = None;
    fetch::fetch_headers(&mut ss.session, &uid.to_string(), false, |it| {
        if it.uid == uid {
            item = Some(it);
        }
        Ok(())
    })
    .await?;
    let _ = ss.session.logout().await;
    let Some(it) = item else { return Ok(false) };
    let Some(env) = it
        .header
        .as_deref()
        .and_then(crate::mail::parse::parse_headers)
    else {
        return Ok(false);
    };
    let m = crate::store::NewMessage {
        uid,
        flags: it.flags,
        size: it.size,
        internal_date: it.internal_date,
        modseq: it.modseq,
        env,
        headers: it.header.unwrap_or_default(),
        denied: false,
        direction: if folder.role.as_deref() == Some("sent") {
            "out"
        } else {
            "in"
        },
    };
    store.store_batch(&account.cfg.id, fid, uv, &[m], None)?;
    Ok(true)
}
