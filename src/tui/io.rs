//! The console's only door to the outside: a thread that owns a store connection and answers
//! Commands with Data, and short-lived job threads for network checks. The UI thread never
//! waits on SQLite or the network; it sends a Command and draws whatever it has.

use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::Duration;

use tokio::sync::mpsc::UnboundedSender;

use super::action::{AccountForm, Command};
use super::app::{AccountInfo, Data, Page};
use crate::account::Account;
use crate::cli::Ctx;
use crate::cli::account::{PasswordArgs, ServerArgs};
use crate::config::Config;
use crate::error::{AppError, Result};
use crate::store::Store;

/// How often the I/O thread asks SQLite whether another process committed (`PRAGMA
/// data_version` is a cheap read; the UI redraws only when it moved).
pub const DB_POLL: Duration = Duration::from_millis(500);

pub struct Io {
    tx: mpsc::Sender<Command>,
}

impl Io {
    pub fn send(&self, cmds: Vec<Command>) {
        for c in cmds {
            // The thread only stops when the console quits; a closed channel then is harmless.
            let _ = self.tx.send(c);
        }
    }
}

fn own_ctx(ctx: &Ctx) -> Ctx {
    Ctx {
        home: ctx.home.clone(),
        json: false,
        operator: ctx.operator.clone(),
        theme: ctx.theme.clone(),
        verbose: ctx.verbose,
    }
}

/// Starts the I/O thread on an already opened store.
pub fn spawn(ctx: &Ctx, store: Store, out: UnboundedSender<Data>) -> Io {
    let (tx, rx) = mpsc::channel::<Command>();
    let ctx = own_ctx(ctx);
    std::thread::Builder::new()
        .name("mailroom-console-io".into())
        .spawn(move || io_loop(ctx, store, rx, out))
        .ok();
    Io { tx }
}

/// Row counts of the big lists, valid while the database has not changed. Counting 100k rows
/// through the triage rule costs more than a page, and scrolling never changes the count.
#[derive(Default)]
pub struct Counts {
    version: i64,
    map: std::collections::HashMap<String, i64>,
}

impl Counts {
    fn get(
        &mut self,
        store: &Store,
        key: String,
        count: impl FnOnce() -> Result<i64>,
    ) -> Result<i64> {
        let v = store.data_version()?;
        if v != self.version {
            self.map.clear();
            self.version = v;
        }
        if let Some(c) = self.map.get(&key) {
            return Ok(*c);
        }
        let c = count()?;
        self.map.insert(key, c);
        Ok(c)
    }
    /// Our own connection's writes do not move data_version for us.
    pub fn clear(&mut self) {
        self.map.clear();
    }
}

fn io_loop(ctx: Ctx, mut store: Store, rx: mpsc::Receiver<Command>, out: UnboundedSender<Data>) {
    let mut version = store.data_version().unwrap_or(-1);
    let mut counts = Counts::default();
    loop {
        let first = match rx.recv_timeout(DB_POLL) {
            Ok(c) => c,
            Err(RecvTimeoutError::Timeout) => {
                if let Ok(v) = store.data_version()
                    && v != version
                {
                    version = v;
                    if out.send(Data::DbChanged).is_err() {
                        return;
                    }
                }
                continue;
            }
            Err(RecvTimeoutError::Disconnected) => return,
        };
        // Drain what queued up and answer only the newest load of each kind: fast scrolling
        // asks for many pages, and only the last one matters.
        let mut batch = vec![first];
        batch.extend(rx.try_iter());
        let mut latest: Vec<Command> = Vec::new();
        for c in batch {
            let kind = std::mem::discriminant(&c);
            let is_load = matches!(
                c,
                Command::LoadDashboard
                    | Command::LoadTriage { .. }
                    | Command::LoadFolders { .. }
                    | Command::LoadMessage { .. }
                    | Command::LoadCustomers { .. }
                    | Command::LoadTimeline { .. }
                    | Command::LoadOutbox { .. }
                    | Command::LoadEvents { .. }
                    | Command::LoadQuarantine { .. }
                    | Command::LoadCompletions { .. }
                    | Command::LoadPicker { .. }
            );
            if is_load {
                latest.retain(|o| std::mem::discriminant(o) != kind);
            }
            latest.push(c);
        }
        for c in latest {
            let data = execute(&ctx, &mut store, &mut counts, c, &out);
            if let Some(d) = data
                && out.send(d).is_err()
            {
                return;
            }
        }
    }
}

fn page<T>(generation: u64, offset: i64, f: impl FnOnce() -> Result<(i64, Vec<T>)>) -> Page<T> {
    Page {
        generation,
        offset: offset.max(0) as usize,
        result: f().map(|(t, rows)| (t.max(0) as usize, rows)),
    }
}

/// Runs one command. Loads answer at once; network jobs start a thread and answer later.
pub fn execute(
    ctx: &Ctx,
    store: &mut Store,
    counts: &mut Counts,
    cmd: Command,
    out: &UnboundedSender<Data>,
) -> Option<Data> {
    Some(match cmd {
        Command::LoadDashboard => {
            let config = ctx.config();
            let accounts = config
                .as_ref()
                .map(|c| accounts_of(ctx, c))
                .unwrap_or_default();
            let status = config
                .and_then(|c| crate::cli::status::collect(&c, Some(store), |a| ctx.visible(a)));
            Data::Dashboard(status, accounts)
        }
        Command::LoadTriage {
            generation,
            offset,
            limit,
        } => Data::Triage(page(generation, offset, || {
            let total = counts.get(store, "triage".into(), || store.view_triage_count(None))?;
            // Past the middle, read from the far end: the scan stays short either way.
            let rows = if offset > total / 2 {
                let from_end = (total - offset - limit).max(0);
                let take = (total - offset).min(limit).max(0);
                store.view_triage_page_from_end(None, from_end, take)?
            } else {
                store.view_triage_page(None, offset, limit)?
            };
            Ok((total, rows))
        })),
        Command::LoadFolders {
            generation,
            account,
        } => Data::Folders(generation, store.view_folders(&account)),
        Command::LoadMessage { generation, id } => {
            let r = store.view_message(id).and_then(|d| match d {
                Some(mut d) if d.body_fetched => {
                    d.attachments = attachments_of(store, id)?;
                    Ok(Some(d))
                }
                other => Ok(other),
            });
            Data::Message(generation, Box::new(r))
        }
        Command::LoadCustomers {
            generation,
            query,
            offset,
            limit,
        } => Data::Customers(page(generation, offset, || {
            Ok((
                counts.get(store, format!("customers:{query}"), || {
                    store.view_customers_count(&query)
                })?,
                store.view_customers_page(&query, offset, limit)?,
            ))
        })),
        Command::LoadTimeline {
            generation,
            customer_id,
            offset,
            limit,
        } => Data::Timeline(page(generation, offset, || {
            let rows = store.view_timeline_page(customer_id, offset, limit)?;
            Ok((offset + rows.len() as i64, rows))
        })),
        Command::LoadOutbox {
            generation,
            offset,
            limit,
        } => Data::Outbox(page(generation, offset, || {
            Ok((
                store.view_outbox_total()?,
                store.view_outbox_page(offset, limit)?,
            ))
        })),
        Command::LoadEvents {
            generation,
            filter,
            offset,
            limit,
        } => Data::Events(page(generation, offset, || {
            Ok((
                counts.get(store, format!("events:{filter:?}"), || {
                    store.view_events_count(&filter)
                })?,
                store.view_events_page(&filter, offset, limit)?,
            ))
        })),
        Command::LoadQuarantine {
            generation,
            offset,
            limit,
        } => Data::Quarantine(page(generation, offset, || {
            Ok((
                store.view_quarantine_total()?,
                store.view_quarantine_page(offset, limit)?,
            ))
        })),
        Command::TestNew { job, form } => {
            let prepared = ctx
                .config()
                .and_then(|config| prepare(&config, &form).map(|acct| (config, acct)));
            match prepared {
                Ok((config, acct)) => {
                    let pw = form.password.clone();
                    spawn_check(
                        out.clone(),
                        job,
                        move || Ok((config, acct, pw.clone(), pw)),
                        |_| {},
                    );
                    return None;
                }
                Err(e) => Data::CheckDone(job, Err(e)),
            }
        }
        Command::TestStored { job, name } => {
            let ctx = own_ctx(ctx);
            let log_ctx = own_ctx(&ctx);
            let log_name = name.clone();
            spawn_check(
                out.clone(),
                job,
                move || {
                    let config = ctx.config()?;
                    let acct = Account::from_config(&config, &name)?;
                    let store = ctx.store()?;
                    let vault = ctx.vault()?;
                    let ip = acct.password(&store, &vault)?;
                    let sp = acct.smtp_password(&config, &store, &vault)?;
                    Ok((config, acct, ip, sp))
                },
                move |report| log_failed_test(&log_ctx, &log_name, report),
            );
            return None;
        }
        Command::LoadCompletions { generation, prefix } => {
            Data::Completions(generation, store.view_address_completions(&prefix, 5))
        }
        Command::LoadPicker { generation, query } => {
            Data::Picker(generation, store.view_customers_page(&query, 0, 20))
        }
        Command::TriagePair { id, customer_id } => {
            cli_job(
                ctx,
                out,
                vec![
                    "triage".into(),
                    "pair".into(),
                    id.to_string(),
                    "--customer".into(),
                    customer_id.to_string(),
                ],
                Data::TriageDone,
            );
            return None;
        }
        Command::TriageAddCustomer { id } => {
            cli_job(
                ctx,
                out,
                vec!["triage".into(), "add-customer".into(), id.to_string()],
                Data::TriageDone,
            );
            return None;
        }
        Command::TriageBlock { id, domain } => {
            let mut args = vec!["triage".into(), "block".into(), id.to_string()];
            if domain {
                args.push("--domain".into());
            }
            cli_job(ctx, out, args, Data::TriageDone);
            return None;
        }
        Command::TriageDelete { id } => {
            cli_job(
                ctx,
                out,
                vec!["triage".into(), "delete".into(), id.to_string()],
                Data::TriageDone,
            );
            return None;
        }
        Command::TriageUndo => {
            cli_job(ctx, out, vec!["undo".into()], Data::TriageDone);
            return None;
        }
        Command::TriageBlockPlan { id, domain } => {
            let mut args = vec![
                "triage".into(),
                "block".into(),
                id.to_string(),
                "--dry-run".into(),
            ];
            if domain {
                args.push("--domain".into());
            }
            let ctx = own_ctx(ctx);
            spawn_job(out.clone(), move || {
                let r = run_cli(&ctx, &args).map(|v| {
                    let p = &v["plan"];
                    format!(
                        "Block {} {} for account {}? It hides {} cached message(s); undo brings them back.",
                        p["kind"].as_str().unwrap_or("sender"),
                        crate::mail::sanitize::clean_line(p["pattern"].as_str().unwrap_or("?")),
                        crate::mail::sanitize::clean_line(p["account"].as_str().unwrap_or("?")),
                        p["affected"].as_u64().unwrap_or(0)
                    )
                });
                Ok(Data::BlockPlan(id, domain, r))
            });
            return None;
        }
        Command::LoadSuggestions { id } => {
            let ctx = own_ctx(ctx);
            spawn_job(out.clone(), move || {
                let v = run_cli(&ctx, &["triage".into(), "show".into(), id.to_string()])?;
                let list = v["message"]["suggestions"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|s| {
                                Some(super::app::Suggestion {
                                    customer_id: s["customer_id"].as_i64()?,
                                    name: s["name"].as_str()?.to_string(),
                                    reason: s["reason"].as_str().unwrap_or("").to_string(),
                                })
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                Ok(Data::Suggestions(vec![(id, list)]))
            });
            return None;
        }
        Command::OutboxRetry { id } => {
            cli_job(
                ctx,
                out,
                vec!["outbox".into(), "retry".into(), id.to_string()],
                Data::Notice,
            );
            return None;
        }
        Command::OutboxCancel { id } => {
            cli_job(
                ctx,
                out,
                vec!["outbox".into(), "cancel".into(), id.to_string()],
                Data::Notice,
            );
            return None;
        }
        Command::OutboxResend { id } => {
            cli_job(
                ctx,
                out,
                vec!["outbox".into(), "resend".into(), id.to_string()],
                Data::Notice,
            );
            return None;
        }
        Command::OutboxDrop { id } => {
            cli_job(
                ctx,
                out,
                vec!["outbox".into(), "drop".into(), id.to_string()],
                Data::Notice,
            );
            return None;
        }
        Command::Send { draft } => {
            let ctx = own_ctx(ctx);
            spawn_job(out.clone(), move || {
                Ok(Data::Sent(send_draft(&ctx, &draft)))
            });
            return None;
        }
        Command::RemoveAccount { name } => {
            counts.clear();
            Data::AccountRemoved(
                crate::cli::account::remove_account(ctx, &name, false)
                    .map(|_| format!("removed account {name}")),
            )
        }
        Command::FetchBody { id } => {
            let ctx = own_ctx(ctx);
            spawn_job(out.clone(), move || {
                let r = block_on(async {
                    let mut store = ctx.store()?;
                    crate::cli::messages::ensure_body(&ctx, &mut store, id).await
                });
                Ok(Data::BodyFetched(id, r.map(|_| ())))
            });
            return None;
        }
        Command::SaveAttachment { id, index, path } => {
            let ctx = own_ctx(ctx);
            spawn_job(out.clone(), move || {
                // What `message save-attachment ID INDEX PATH` does.
                let r = block_on(async {
                    let mut store = ctx.store()?;
                    let body = crate::cli::messages::ensure_body(&ctx, &mut store, id).await?;
                    let (_, bytes) = crate::mail::parse::attachment_bytes(&body, index)
                        .ok_or_else(|| {
                            AppError::usage(
                                format!("message {id} has no attachment {index}"),
                                "pick one of the listed attachments",
                            )
                        })?;
                    write_new(&path, &bytes)?;
                    Ok(format!("saved {} bytes to {path}", bytes.len()))
                });
                Ok(Data::Notice(r))
            });
            return None;
        }
        Command::QuarantineSkip { id } => {
            let r = quarantine_row(ctx, store, id).and_then(|_| {
                store.quarantine_set_state(id, "skipped")?;
                store.audit(
                    &ctx.operator,
                    "quarantine_skip",
                    None,
                    Some(&id.to_string()),
                    &serde_json::json!({}),
                )?;
                Ok(format!("quarantined message {id} skipped"))
            });
            Data::QuarantineDone(r)
        }
        Command::QuarantineSave { id, path } => {
            let r = quarantine_row(ctx, store, id).and_then(|(_, raw)| {
                write_new(&path, &raw)?;
                Ok(format!("saved {} bytes to {path}", raw.len()))
            });
            Data::QuarantineDone(r)
        }
        Command::QuarantineRetry { id } => {
            let ctx = own_ctx(ctx);
            spawn_job(out.clone(), move || {
                // What `quarantine retry ID` does.
                let r = block_on(async {
                    let config = ctx.config()?;
                    let mut store = ctx.store()?;
                    let (row, _) = quarantine_row(&ctx, &store, id)?;
                    let (name, _) = config
                        .account_by_id(&row.account_id)
                        .ok_or_else(|| AppError::usage("its account is gone", "skip it instead"))?;
                    let account = Account::from_config(&config, name)?;
                    let ok = crate::cli::sync::retry_one(&ctx, &mut store, &account, &row).await?;
                    store.quarantine_set_state(id, if ok { "retried" } else { "open" })?;
                    if ok {
                        Ok(format!("message {id} fetched and stored"))
                    } else {
                        Err(AppError::needs_user(
                            format!("message {id} still fails; it stays in quarantine"),
                            row.error.clone(),
                            "save it as .eml to look at it, or skip it",
                        ))
                    }
                });
                Ok(Data::QuarantineDone(r))
            });
            return None;
        }
        Command::Plan {
            job,
            account,
            since,
            unread_only,
        } => {
            let ctx = own_ctx(ctx);
            spawn_job(out.clone(), move || {
                let args = crate::cli::sync::SyncArgs {
                    name: Some(account),
                    sel: Default::default(),
                    once: false,
                    plan: true,
                    since: since.filter(|s| !s.trim().is_empty()),
                    unread_only,
                    folders: None,
                };
                let r = block_on(crate::cli::sync::plan_accounts(&ctx, &args)).and_then(|v| {
                    v.into_iter().next().ok_or_else(|| {
                        AppError::local("the plan came back empty", "", "report this as a bug")
                    })
                });
                Ok(Data::Plan(job, r))
            });
            return None;
        }
        Command::RefreshFolders { job: _, account } => {
            let ctx = own_ctx(ctx);
            let out = out.clone();
            spawn_job(out, move || {
                let id = ctx.config()?.account(&account)?.id.clone();
                let r = block_on(async {
                    let config = ctx.config()?;
                    let acct = Account::from_config(&config, &account)?;
                    let mut store = ctx.store()?;
                    crate::cli::folders::refresh(&ctx, &mut store, &acct).await
                })
                .map(|_| format!("folders of {account} read from the server"));
                Ok(Data::FoldersChanged(id, r))
            });
            return None;
        }
        Command::SetFolderSync {
            account_id,
            account,
            names,
        } => {
            // What `folders NAME --sync A,B` does: the choice, then the audit record.
            let r = store
                .set_sync_folders(&account_id, &names)
                .and_then(|_| {
                    store.audit(
                        &ctx.operator,
                        "folders_change",
                        Some(&account_id),
                        Some(&account),
                        &serde_json::json!({"sync": names, "roles": [], "sent": null}),
                    )
                })
                .map(|_| format!("{account} syncs: {}", names.join(", ")));
            counts.clear();
            Data::FoldersChanged(account_id, r)
        }
        Command::SetSent {
            account_id,
            account,
            folder,
        } => {
            let r = store
                .set_folder_role(&account_id, crate::imap::discovery::Role::Sent, &folder)
                .and_then(|_| {
                    store.audit(
                        &ctx.operator,
                        "folders_change",
                        Some(&account_id),
                        Some(&account),
                        &serde_json::json!({"sync": null, "roles": [], "sent": folder}),
                    )
                })
                .map(|_| format!("{folder} is the Sent folder of {account}"));
            Data::FoldersChanged(account_id, r)
        }
        // The event loop runs these itself (it owns the terminal and the sync tasks).
        Command::EditBody { .. } | Command::KickSync { .. } | Command::RestartSync => return None,
        Command::SaveNew { job, form } => {
            counts.clear();
            Data::Saved(job, save(ctx, store, &form))
        }
    })
}

fn accounts_of(ctx: &Ctx, c: &Config) -> Vec<AccountInfo> {
    c.accounts
        .iter()
        .filter(|(_, a)| ctx.visible(a))
        .map(|(n, a)| AccountInfo {
            name: n.clone(),
            id: a.id.clone(),
            email: a.email.clone(),
            aliases: a.aliases.clone(),
        })
        .collect()
}

fn server_args(form: &AccountForm) -> ServerArgs {
    let list = |s: &str| -> Vec<String> {
        s.split([',', ' '])
            .map(str::trim)
            .filter(|x| !x.is_empty())
            .map(String::from)
            .collect()
    };
    let opt = |s: &str| (!s.trim().is_empty()).then(|| s.trim().to_string());
    ServerArgs {
        email: opt(&form.email),
        imap: opt(&form.imap),
        imap_security: opt(&form.imap_security),
        smtp: opt(&form.smtp),
        smtp_security: opt(&form.smtp_security),
        user: opt(&form.user),
        insecure_skip_verify: form.insecure,
        ca_file: opt(&form.ca_file).map(std::path::PathBuf::from),
        preset: form.preset.clone(),
        aliases: list(&form.aliases),
        share_with: {
            let l = list(&form.share_with);
            (!l.is_empty()).then_some(l)
        },
    }
}

/// The CLI's own validation (`account add`), so the form accepts exactly what the CLI does.
fn prepare(config: &Config, form: &AccountForm) -> Result<Account> {
    use secrecy::ExposeSecret;
    if form.password.expose_secret().is_empty() {
        return Err(AppError::usage(
            "no password given",
            "type the account's password (or app password) in the Password field",
        ));
    }
    let cfg = crate::cli::account::validate_new(
        config,
        &form.name,
        &server_args(form),
        &PasswordArgs::default(),
    )?;
    Ok(Account {
        name: form.name.clone(),
        cfg,
    })
}

fn save(ctx: &Ctx, store: &Store, form: &AccountForm) -> Result<String> {
    let config = ctx.config()?;
    let mut acct = prepare(&config, form)?;
    // As `account add`: the operator who adds an account owns it.
    acct.cfg.owner = Some(ctx.operator.clone());
    crate::cli::account::store_new(ctx, store, &acct.name, &acct.cfg, Some(&form.password))?;
    Ok(acct.name)
}

/// As `account test`: a failed step lands in the error log with its fix.
fn log_failed_test(ctx: &Ctx, name: &str, report: &crate::check::Report) {
    let Some(failed) = report
        .steps
        .iter()
        .find(|s| s.status == crate::check::StepStatus::Failed)
    else {
        return;
    };
    let logged = ctx.config().and_then(|config| {
        let acct = Account::from_config(&config, name)?;
        ctx.store()?.log_event(
            Some(acct.id()),
            crate::store::Level::Error,
            &format!("account test failed at {}", failed.id),
            Some(&failed.detail),
            failed.fix.as_deref(),
        )
    });
    if let Err(e) = logged {
        tracing::debug!("cannot log the failed test: {}", e.summary);
    }
}

/// Runs a headless command of this same binary (`mailroom --json ARGS`) and returns its one
/// JSON object. The console acts through exactly the code the CLI runs — nothing of its own —
/// and the command's output never touches the screen.
pub fn run_cli(ctx: &Ctx, args: &[String]) -> Result<serde_json::Value> {
    let exe = std::env::current_exe().map_err(|e| {
        AppError::local(
            "cannot find the mailroom binary",
            e.to_string(),
            "reinstall mailroom",
        )
    })?;
    let out = std::process::Command::new(exe)
        .arg("--home")
        .arg(&ctx.home.root)
        .arg("--operator")
        .arg(&ctx.operator)
        .arg("--json")
        .args(args)
        .env_remove("MAILROOM_HOME")
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| {
            AppError::local("cannot run mailroom", e.to_string(), "check system limits")
        })?;
    let what = args.iter().take(2).cloned().collect::<Vec<_>>().join(" ");
    let v: Option<serde_json::Value> = serde_json::from_slice(&out.stdout).ok();
    if out.status.success() {
        return v.ok_or_else(|| {
            AppError::local(
                format!("`mailroom {what}` printed no JSON"),
                String::from_utf8_lossy(&out.stderr).to_string(),
                "report this as a bug",
            )
        });
    }
    let e = v.as_ref().map(|v| &v["error"]);
    let text = |k: &str| {
        e.and_then(|e| e[k].as_str())
            .map(crate::mail::sanitize::clean_line)
            .unwrap_or_default()
    };
    let summary = text("summary");
    Err(AppError::needs_user(
        if summary.is_empty() {
            format!("`mailroom {what}` failed")
        } else {
            summary
        },
        {
            let d = text("detail");
            if d.is_empty() && e.is_none() {
                crate::mail::sanitize::clean_line(String::from_utf8_lossy(&out.stderr).trim())
            } else {
                d
            }
        },
        text("fix"),
    ))
}

/// A CLI command on a job thread; its result (the action's own words) comes back as Data.
fn cli_job(
    ctx: &Ctx,
    out: &UnboundedSender<Data>,
    args: Vec<String>,
    wrap: fn(Result<String, AppError>) -> Data,
) {
    let ctx = own_ctx(ctx);
    spawn_job(out.clone(), move || {
        Ok(wrap(run_cli(&ctx, &args).map(|v| outcome_text(&v))))
    });
}

/// The human sentence of an action's JSON answer.
fn outcome_text(v: &serde_json::Value) -> String {
    let pick = |v: &serde_json::Value| {
        v["detail"].as_str().map(|d| match v["action_id"].as_i64() {
            Some(id) => format!("action {id}: {d}"),
            None => d.to_string(),
        })
    };
    let text = pick(v)
        .or_else(|| pick(&v["undone"]).map(|t| format!("undone: {t}")))
        .or_else(|| v["state"].as_str().map(|s| format!("now {s}")))
        .unwrap_or_else(|| "done".into());
    crate::mail::sanitize::clean_line(&text)
}

/// `mailroom send …` / `mailroom reply ID …` for a draft from the compose pane; the body goes
/// through a private temporary file, as `--body-file`.
fn send_draft(ctx: &Ctx, d: &super::action::Draft) -> Result<String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let path =
        std::env::temp_dir().join(format!("mailroom-send-{}-{nanos}.txt", std::process::id()));
    {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| {
                AppError::local(
                    "cannot write the draft",
                    e.to_string(),
                    "set TMPDIR to a writable directory",
                )
            })?;
        f.write_all(d.body.as_bytes()).map_err(|e| {
            AppError::local(
                "cannot write the draft",
                e.to_string(),
                "set TMPDIR to a writable directory",
            )
        })?;
    }
    let mut args: Vec<String> = match d.reply_to {
        Some(id) if d.all => vec!["reply".into(), id.to_string(), "--all".into()],
        Some(id) => vec!["reply".into(), id.to_string()],
        None => vec!["send".into()],
    };
    args.extend(["--account".into(), d.account.clone()]);
    if let Some(f) = &d.from {
        args.extend(["--from".into(), f.clone()]);
    }
    for t in &d.to {
        args.extend(["--to".into(), t.clone()]);
    }
    for c in &d.cc {
        args.extend(["--cc".into(), c.clone()]);
    }
    args.extend(["--subject".into(), d.subject.clone()]);
    args.extend(["--body-file".into(), path.display().to_string()]);
    for a in &d.attachments {
        args.extend(["--attach".into(), a.clone()]);
    }
    let r = run_cli(ctx, &args);
    let _ = std::fs::remove_file(&path);
    r.map(|v| {
        let id = v["id"].as_i64().or_else(|| v["outbox"]["id"].as_i64());
        let state = v["state"]
            .as_str()
            .or_else(|| v["outbox"]["state"].as_str());
        match (id, state) {
            (Some(i), Some(s)) => format!("message #{i}: {s}"),
            _ => "message handed to the outbox".into(),
        }
    })
}

/// Attachments of a fetched body, parsed the way `message show` does.
fn attachments_of(store: &Store, id: i64) -> Result<Vec<crate::store::console::AttachmentInfo>> {
    let body = store.message(id)?.and_then(|m| m.body);
    Ok(body
        .as_deref()
        .and_then(crate::mail::parse::parse_body)
        .map(|b| {
            b.attachments
                .into_iter()
                .map(|a| crate::store::console::AttachmentInfo {
                    index: a.index,
                    name: a.name,
                    content_type: a.content_type,
                    size: a.size,
                })
                .collect()
        })
        .unwrap_or_default())
}

/// A quarantined message of an account this operator may see (as `quarantine …` checks).
fn quarantine_row(
    ctx: &Ctx,
    store: &Store,
    id: i64,
) -> Result<(crate::store::QuarantineRow, Vec<u8>)> {
    let config = ctx.config()?;
    let visible: Vec<String> = config
        .accounts
        .values()
        .filter(|a| ctx.visible(a))
        .map(|a| a.id.clone())
        .collect();
    store
        .quarantine_get(id)?
        .filter(|(r, _)| visible.contains(&r.account_id))
        .ok_or_else(|| {
            AppError::usage(
                format!("no quarantined message {id}"),
                "it may have been removed; the list is re-read",
            )
        })
}

/// Writes a new file (0600); an existing path is refused, never overwritten.
fn write_new(path: &str, bytes: &[u8]) -> Result<()> {
    let p = std::path::Path::new(path);
    if p.exists() {
        return Err(AppError::usage(
            format!("{path} already exists"),
            "choose another path (nothing is overwritten)",
        ));
    }
    crate::config::write_atomic(p, bytes, 0o600)
}

/// Runs async work on a job thread's own small runtime.
fn block_on<T>(f: impl std::future::Future<Output = Result<T>>) -> Result<T> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            AppError::local(
                "cannot start a background task",
                e.to_string(),
                "check system limits (threads, file descriptors)",
            )
        })?
        .block_on(f)
}

/// A network job on its own thread; its answer (or its failure) comes back as Data.
fn spawn_job(out: UnboundedSender<Data>, job: impl FnOnce() -> Result<Data> + Send + 'static) {
    let err_out = out.clone();
    let spawned = std::thread::Builder::new()
        .name("mailroom-console-job".into())
        .spawn(move || {
            let d = job().unwrap_or_else(|e| Data::Notice(Err(e)));
            let _ = out.send(d);
        });
    if let Err(e) = spawned {
        let _ = err_out.send(Data::Notice(Err(AppError::local(
            "cannot start a background task",
            e.to_string(),
            "check system limits (threads)",
        ))));
    }
}

type Prepared = (
    Config,
    Account,
    secrecy::SecretString,
    secrecy::SecretString,
);

/// Runs `check::run` on its own thread and runtime (the check's listener is not Send), streaming
/// each step to the UI as it completes.
fn spawn_check(
    out: UnboundedSender<Data>,
    job: u64,
    prepare: impl FnOnce() -> Result<Prepared> + Send + 'static,
    on_done: impl FnOnce(&crate::check::Report) + Send + 'static,
) {
    let err_out = out.clone();
    let spawned = std::thread::Builder::new()
        .name("mailroom-console-check".into())
        .spawn(move || {
            let result = (|| {
                let (config, acct, ip, sp) = prepare()?;
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| {
                        AppError::local(
                            "cannot start a background task",
                            e.to_string(),
                            "check system limits (threads, file descriptors)",
                        )
                    })?;
                let step_out = out.clone();
                let report = rt.block_on(crate::check::run(&config, &acct, &ip, &sp, &mut |s| {
                    let _ = step_out.send(Data::CheckStep(job, s.clone()));
                }));
                on_done(&report);
                Ok(report)
            })();
            let _ = out.send(Data::CheckDone(job, result));
        });
    if let Err(e) = spawned {
        // Without a thread nothing else will answer this job.
        let _ = err_out.send(Data::CheckDone(
            job,
            Err(AppError::local(
                "cannot start a background task",
                e.to_string(),
                "check system limits (threads)",
            )),
        ));
    }
}

/// Edits `text` in $VISUAL / $EDITOR (else `vi`) through a private temporary file. The caller
/// has handed the terminal over (left raw mode and the alternate screen) and takes it back.
pub fn edit_text(text: &str) -> Result<String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let editor = std::env::var("VISUAL")
        .or_else(|_| std::env::var("EDITOR"))
        .ok()
        .filter(|e| !e.trim().is_empty())
        .unwrap_or_else(|| "vi".into());
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let path = std::env::temp_dir().join(format!(
        "mailroom-compose-{}-{nanos}.txt",
        std::process::id()
    ));
    let local = |what: &str, e: std::io::Error| {
        AppError::local(
            what.to_string(),
            e.to_string(),
            "set TMPDIR to a writable directory",
        )
    };
    {
        // 0600 and create_new: a draft may be private, and nobody may pre-plant the file.
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| local("cannot create a file for the editor", e))?;
        f.write_all(text.as_bytes())
            .map_err(|e| local("cannot write the draft for the editor", e))?;
    }
    // Through the shell, so EDITOR may carry arguments ("code --wait", "emacs -nw").
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("{editor} \"$1\""))
        .arg("sh")
        .arg(&path)
        .status();
    let result = match status {
        Ok(s) if s.success() => {
            std::fs::read_to_string(&path).map_err(|e| local("cannot read the draft back", e))
        }
        Ok(s) => Err(AppError::needs_user(
            format!("the editor exited with {s}"),
            editor.clone(),
            "the body was left unchanged; check $EDITOR",
        )),
        Err(e) => Err(AppError::needs_user(
            format!("cannot run the editor {editor:?}"),
            e.to_string(),
            "set $EDITOR to an installed editor",
        )),
    };
    let _ = std::fs::remove_file(&path);
    result
}

/// While the console owns the screen, anything written to stderr (a library's warning, a log
/// line) would land in the middle of the drawing. This points fd 2 at `<home>/logs/console.log`
/// (0600) and puts it back when dropped — and before a panic message is printed.
pub struct StderrToFile {
    saved: i32,
}

static SAVED_STDERR: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(-1);

impl StderrToFile {
    pub fn start(home: &crate::config::Home) -> Option<StderrToFile> {
        use std::os::fd::AsRawFd;
        use std::os::unix::fs::OpenOptionsExt;
        let dir = home.log_dir();
        std::fs::create_dir_all(&dir).ok()?;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(dir.join("console.log"))
            .ok()?;
        // SAFETY: plain descriptor calls on descriptors we own; failures are checked.
        let saved = unsafe { libc::dup(2) };
        if saved < 0 {
            return None;
        }
        if unsafe { libc::dup2(file.as_raw_fd(), 2) } < 0 {
            unsafe { libc::close(saved) };
            return None;
        }
        SAVED_STDERR.store(saved, std::sync::atomic::Ordering::SeqCst);
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            restore_stderr();
            previous(info);
        }));
        Some(StderrToFile { saved })
    }
}

fn restore_stderr() {
    let saved = SAVED_STDERR.swap(-1, std::sync::atomic::Ordering::SeqCst);
    if saved >= 0 {
        // SAFETY: `saved` is the duplicate taken in `start`, restored exactly once.
        unsafe {
            libc::dup2(saved, 2);
            libc::close(saved);
        }
    }
}

impl Drop for StderrToFile {
    fn drop(&mut self) {
        let _ = self.saved;
        restore_stderr();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stderr_goes_to_the_console_log_and_comes_back() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let home = crate::config::Home {
            root: dir.path().to_path_buf(),
        };
        let guard = StderrToFile::start(&home).expect("redirected");
        std::io::stderr().write_all(b"a library warning\n").unwrap();
        drop(guard);
        let log = std::fs::read_to_string(home.log_dir().join("console.log")).unwrap();
        assert_eq!(log, "a library warning\n");
        // fd 2 is the original again: nothing more lands in the file.
        std::io::stderr().write_all(b"").unwrap();
        let again = std::fs::read_to_string(home.log_dir().join("console.log")).unwrap();
        assert_eq!(again, log);
    }
}
