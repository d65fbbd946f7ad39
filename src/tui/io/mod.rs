//! The console's only door to the outside: a thread that owns a store connection and answers
//! Commands with Data, and short-lived job threads for network checks. The UI thread never
//! waits on SQLite or the network; it sends a Command and draws whatever it has.

use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::Duration;

use tokio::sync::mpsc::UnboundedSender;

use crate::account::Account;
use crate::cli::Ctx;
use crate::error::{AppError, Result};
use crate::store::Store;
use crate::tui::action::Command;
use crate::tui::app::{Data, Page};

/// How often the I/O thread asks SQLite whether another process committed (`PRAGMA
/// data_version` is a cheap read; the UI redraws only when it moved).
mod account;
mod cli;
mod files;
mod jobs;
mod terminal;

use account::*;
pub use cli::run_cli;
use cli::*;
use files::*;
use jobs::*;
pub use terminal::{CONSOLE_LOG, StderrToFile, edit_text, restore_stderr, stderr_redirected};
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
        // Lets a test make this thread panic for real (tests/e2e/tui.rs); inert otherwise.
        crate::failpoint::panic_point("console_io_panic");
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
            after,
        } => Data::Triage(page(generation, offset, || {
            let config = ctx.config()?;
            // Issue 5's queue: the accounts this operator may see, minus our own addresses.
            let f = crate::store::TriageFilter {
                accounts: crate::crm::visible_accounts(&config, &ctx.operator),
                own: crate::crm::matching::own_addresses(&config)
                    .into_iter()
                    .collect(),
            };
            if after.is_none() {
                // As every crm reader: mail stored without matching is matched first.
                crate::crm::match_pending(store, &config)?;
            }
            let total = counts.get(store, "triage".into(), || store.view_triage_count(&f))?;
            let want = (total - offset).min(limit).max(0);
            // Scrolling on: continue after the last row we have (keyset), no rows skipped.
            if let Some((date, id)) = &after {
                let rows = store.view_triage_page_after(&f, date, *id, limit)?;
                if rows.len() as i64 >= want {
                    return Ok((total, rows));
                }
            }
            // Past the middle, read from the far end: the scan stays short either way.
            let rows = if offset > total / 2 {
                let from_end = (total - offset - limit).max(0);
                store.view_triage_page_from_end(&f, from_end, want)?
            } else {
                store.view_triage_page(&f, offset, limit)?
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
            // Issue 5's timeline (both directions, only what this operator may see), newest
            // first. One customer's mail, not the whole cache: read whole, shown a page at a time.
            let config = ctx.config()?;
            crate::crm::match_pending(store, &config)?;
            let rows = store.timeline(
                customer_id,
                &crate::crm::visible_accounts(&config, &ctx.operator),
            )?;
            let total = rows.len() as i64;
            let page = rows
                .into_iter()
                .rev()
                .skip(offset.max(0) as usize)
                .take(limit.max(0) as usize)
                .map(|r| crate::store::console::MessageSummary {
                    id: r.id,
                    from_name: r.from_name,
                    from_addr: r.from_addr,
                    subject: r.subject,
                    date: r.date,
                    seen: true,
                    has_attachments: false,
                    direction: r.direction,
                    size: None,
                })
                .collect();
            Ok((total, page))
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
            // The same rows as `quarantine list`: only accounts this operator may see.
            let accounts = crate::crm::visible_accounts(&ctx.config()?, &ctx.operator);
            Ok((
                store.quarantine_total(&accounts)?,
                store.quarantine_recent(&accounts, offset, limit)?,
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
                        // Not stored yet: no folder choice can exist.
                        move || Ok((config, acct, pw.clone(), pw, None)),
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
                    let chosen_sent = store.chosen_sent_folder(acct.id())?;
                    Ok((config, acct, ip, sp, chosen_sent))
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
        Command::TriageAddCustomer { id, name } => {
            let mut args = vec!["triage".into(), "add-customer".into(), id.to_string()];
            if !name.trim().is_empty() {
                args.extend(["--name".into(), name.trim().to_string()]);
            }
            cli_job(ctx, out, args, Data::TriageDone);
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
            outbox_job(ctx, out, "retry", id);
            return None;
        }
        Command::OutboxCancel { id } => {
            outbox_job(ctx, out, "cancel", id);
            return None;
        }
        Command::OutboxResend { id } => {
            outbox_job(ctx, out, "resend", id);
            return None;
        }
        Command::OutboxDrop { id } => {
            outbox_job(ctx, out, "drop", id);
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
        Command::ApplyScope {
            account,
            since,
            unread_only,
        } => {
            let args = vec![
                "account".into(),
                "edit".into(),
                account.clone(),
                "--since".into(),
                since.unwrap_or_else(|| "all".into()),
                "--process".into(),
                if unread_only { "unread-only" } else { "all" }.into(),
            ];
            let ctx = own_ctx(ctx);
            spawn_job(out.clone(), move || {
                let r = run_cli(&ctx, &args).map(|_| format!("sync scope of {account} applied"));
                Ok(Data::ScopeApplied(r))
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
