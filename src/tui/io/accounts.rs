//! The console's accounts: setup and test, folders and the first-sync plan, the quarantine —
//! the same operations as `account`, `folders`, `sync --plan` and `quarantine`. Network work
//! runs as a job of the pane that asked.

use super::*;
use crate::ops::accounts::{self, Step};
use crate::ops::sync::PlanScope;
use crate::ops::{folders, quarantine, trace};
use crate::tui::action::{AccountForm, PaneId};
use crate::tui::app::EditRequest;

pub(super) fn execute(env: &mut Env, cmd: Command) -> Option<Data> {
    let cx = &env.cx;
    Some(match cmd {
        Command::LoadFolders {
            generation,
            account,
        } => Data::Folders(generation, folder_tree(cx, &account)),
        Command::TestNew { job, form } => return test_new(env, job, &form),
        Command::TestStored { job, name } => {
            test_stored(env, job, name);
            return None;
        }
        Command::Login { job, name } => {
            login(env, job, name);
            return None;
        }
        Command::SaveNew { job, form } => {
            env.counts.clear();
            Data::Saved(job, save(cx, &form))
        }
        Command::LoadEdit { job, name } => {
            Data::EditLoaded(job, Box::new(accounts::show_for_edit(cx, &name)))
        }
        Command::TestEdit { job, req } => {
            test_edit(env, job, *req);
            return None;
        }
        Command::SaveEdit { job, req } => {
            env.counts.clear();
            Data::Saved(job, save_edit(cx, &req))
        }
        Command::RemoveAccount { name } => {
            env.counts.clear();
            Data::AccountRemoved(
                accounts::remove(cx, &name, false).map(|_| format!("removed account {name}")),
            )
        }
        Command::Plan {
            job,
            account,
            since,
            unread_only,
        } => {
            let scope = PlanScope {
                since: since.filter(|s| !s.trim().is_empty()),
                unread_only,
                folders: None,
            };
            plan(env, job, account, scope);
            return None;
        }
        Command::ApplyScope {
            account,
            since,
            unread_only,
        } => Data::ScopeApplied(
            crate::ops::sync::apply_scope(cx, &account, since.as_deref(), unread_only)
                .map(|_| format!("sync scope of {account} applied")),
        ),
        Command::RefreshFolders { job: _, account } => {
            refresh(env, account);
            return None;
        }
        Command::SetFolderSync {
            account_id,
            account,
            names,
        } => {
            let r = folders::choose(cx, &account, &names)
                .map(|_| format!("{account} syncs: {}", names.join(", ")));
            env.counts.clear();
            Data::FoldersChanged(account_id, r)
        }
        Command::SetSent {
            account_id,
            account,
            folder,
        } => Data::FoldersChanged(
            account_id,
            folders::set_role(cx, &account, folders::Role::Sent, &folder)
                .map(|_| format!("{folder} is the Sent folder of {account}")),
        ),
        Command::LoadTrace {
            generation,
            query,
            offset,
            limit,
        } => Data::Trace(
            page(generation, offset, || {
                trace::page(cx, &query, offset, limit).map(|(n, r)| (n as i64, r))
            }),
            trace::states(cx).unwrap_or_default(),
        ),
        Command::SetTrace {
            account,
            on,
            literals,
        } => Data::Notice(trace::set(cx, &account, on, literals).map(|s| {
            format!(
                "trace of {account} {}",
                match (s.enabled, s.literals) {
                    (true, true) => "on, literals in full",
                    (true, false) => "on",
                    _ => "off",
                }
            )
        })),
        Command::ExportTrace { account, path } => Data::Notice(
            trace::export(cx, &account, std::path::Path::new(&path))
                .map(|n| format!("wrote {n} trace lines of {account} to {path}")),
        ),
        c => return execute_quarantine(env, c),
    })
}

/// The account's folders in name order, so each folder follows its parent (the pane draws a
/// tree).
fn folder_tree(cx: &Ctx, account: &str) -> Result<Vec<folders::FolderEntry>> {
    let mut rows = folders::list(cx, account)?;
    rows.sort_by(|a, b| a.folder.name.cmp(&b.folder.name));
    Ok(rows)
}

/// The setup form's account test (nothing stored yet), each step shown as it ends.
fn test_new(env: &Env, job: u64, form: &AccountForm) -> Option<Data> {
    let new = match prepare(&env.cx, form) {
        Ok(n) => n,
        Err(e) => return Some(Data::CheckDone(job, Err(e))),
    };
    let (cx, out, pw) = (env.cx.clone(), env.out.clone(), form.password.clone());
    env.jobs.spawn(PaneId::Setup, async move {
        let mut on_step = move |s: &Step| {
            let _ = out.send(Data::CheckStep(job, s.clone()));
        };
        Data::CheckDone(
            job,
            accounts::test_new(&cx, &new, Some(pw), &mut on_step).await,
        )
    });
    None
}

/// The edit form's test: the stored account with the form's changes, nothing stored.
fn test_edit(env: &Env, job: u64, req: EditRequest) {
    let (cx, out) = (env.cx.clone(), env.out.clone());
    env.jobs.spawn(PaneId::Setup, async move {
        let mut on_step = move |s: &Step| {
            let _ = out.send(Data::CheckStep(job, s.clone()));
        };
        let r = accounts::test_edit(&cx, &req.name, &req.edit, req.password, &mut on_step);
        Data::CheckDone(job, r.await)
    });
}

/// `account edit NAME` with the form's changes, then the folders to sync if they changed.
fn save_edit(cx: &Ctx, req: &EditRequest) -> Result<String> {
    let pw = req.password.clone();
    // A rename answers with the new name; the folders are chosen under it.
    let view = accounts::edit(cx, &req.name, &req.edit, || Ok(pw))?;
    if let Some(names) = &req.folders {
        folders::choose(cx, &view.name, names)?;
    }
    Ok(view.name)
}

/// `account test NAME` from the dashboard, each step shown as it ends.
fn test_stored(env: &Env, job: u64, name: String) {
    let (cx, out) = (env.cx.clone(), env.out.clone());
    env.jobs.spawn(PaneId::Dashboard, async move {
        let mut on_step = move |s: &Step| {
            let _ = out.send(Data::CheckStep(job, s.clone()));
        };
        Data::CheckDone(job, accounts::test(&cx, &name, &mut on_step).await)
    });
}

/// `account login NAME` from the dashboard: the code (device flow) or the address (browser
/// flow) shows as it comes. Nobody can paste into the console: the browser flow ends through
/// the loopback redirect (a browser on this machine); over SSH, the device flow or `mailroom
/// account login NAME` in a shell.
fn login(env: &Env, job: u64, name: String) {
    let (cx, out) = (env.cx.clone(), env.out.clone());
    env.jobs.spawn(PaneId::Dashboard, async move {
        let mut on_event = move |e: accounts::LoginEvent| {
            for line in login_lines(e) {
                let _ = out.send(Data::LoginStep(job, line));
            }
        };
        let r = accounts::login(&cx, &name, &mut on_event, None)
            .await
            .map(|d| format!("{} signed in as {}", d.account, d.user));
        Data::LoginDone(job, r)
    });
}

/// What the person must do, as the dashboard shows it.
fn login_lines(e: accounts::LoginEvent) -> Vec<String> {
    match e {
        accounts::LoginEvent::Device {
            uri,
            complete,
            user_code,
            expires_in,
        } => {
            let mut v = vec![
                format!("open {uri} on any device"),
                format!(
                    "and enter the code {user_code} (within {} min)",
                    expires_in.div_ceil(60)
                ),
            ];
            if let Some(c) = complete {
                v.push(format!("(or open {c})"));
            }
            v
        }
        accounts::LoginEvent::Browser { url, redirect } => vec![
            "open this address in a browser on this machine:".into(),
            url,
            format!(
                "(it answers to {redirect}; from another machine use `mailroom account login` in a shell, which takes the pasted address)"
            ),
        ],
        accounts::LoginEvent::Note(t) => vec![t],
    }
}

/// `sync NAME --plan` for the scope being previewed.
fn plan(env: &Env, job: u64, account: String, scope: PlanScope) {
    let cx = env.cx.clone();
    env.jobs.spawn(PaneId::Folders, async move {
        let r = crate::ops::sync::plan(&cx, Some(&account), &scope)
            .await
            .and_then(|v| {
                v.into_iter().next().ok_or_else(|| {
                    AppError::local("the plan came back empty", "", "report this as a bug")
                })
            });
        Data::Plan(job, r)
    });
}

/// `folders NAME --refresh`; the pane re-reads the list and the account syncs.
fn refresh(env: &Env, account: String) {
    let cx = env.cx.clone();
    env.jobs.spawn(PaneId::Folders, async move {
        match folders::refresh(&cx, &account).await {
            Ok(id) => {
                Data::FoldersChanged(id, Ok(format!("folders of {account} read from the server")))
            }
            Err(e) => Data::Notice(Err(e)),
        }
    });
}

/// The quarantine list and `quarantine skip|save|retry ID`.
fn execute_quarantine(env: &Env, cmd: Command) -> Option<Data> {
    let cx = &env.cx;
    Some(match cmd {
        Command::LoadQuarantine {
            generation,
            offset,
            limit,
        } => Data::Quarantine(page(generation, offset, || {
            quarantine::page(cx, offset, limit)
        })),
        Command::QuarantineSkip { id } => Data::QuarantineDone(
            quarantine::skip(cx, id).map(|_| format!("quarantined message {id} skipped")),
        ),
        Command::QuarantineSave { id, path } => Data::QuarantineDone(
            quarantine::save(cx, id, std::path::Path::new(&path))
                .map(|n| format!("saved {n} bytes to {path}")),
        ),
        Command::QuarantineRetry { id } => {
            let cx = cx.clone();
            env.jobs.spawn(PaneId::Log, async move {
                Data::QuarantineDone(quarantine::retry(&cx, id).await.and_then(|r| {
                    if r.stored {
                        Ok(format!("message {id} fetched and stored"))
                    } else {
                        Err(AppError::needs_user(
                            format!("message {id} still fails; it stays in quarantine"),
                            r.error,
                            "save it as .eml to look at it, or skip it",
                        ))
                    }
                }))
            });
            return None;
        }
        _ => return None,
    })
}
