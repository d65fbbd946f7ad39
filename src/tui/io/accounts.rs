//! The console's accounts: setup and test, folders and the first-sync plan, the quarantine.

use super::*;

pub(super) fn execute(env: &mut Env, cmd: Command) -> Option<Data> {
    let ctx = &env.cx;
    let counts = &mut env.counts;
    let out = &env.out;
    let mut conn = match ctx.store() {
        Ok(c) => c,
        Err(e) => return Some(Data::Notice(Err(e))),
    };
    let store = &mut *conn;
    Some(match cmd {
        Command::LoadFolders {
            generation,
            account,
        } => Data::Folders(generation, store.view_folders(&account)),
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
                        move || Ok(((*config).clone(), acct, pw.clone(), pw, None)),
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
                    Ok(((*config).clone(), acct, ip, sp, chosen_sent))
                },
                move |report| log_failed_test(&log_ctx, &log_name, report),
            );
            return None;
        }
        Command::SaveNew { job, form } => {
            counts.clear();
            Data::Saved(job, save(ctx, store, &form))
        }
        Command::RemoveAccount { name } => {
            counts.clear();
            Data::AccountRemoved(
                crate::cli::account::remove_account(&legacy(ctx), &name, false)
                    .map(|_| format!("removed account {name}")),
            )
        }
        Command::LoadQuarantine {
            generation,
            offset,
            limit,
        } => Data::Quarantine(page(generation, offset, || {
            // The same rows as `quarantine list`: only accounts this operator may see.
            let accounts = crate::crm::visible_accounts(&*ctx.config()?, &ctx.operator);
            Ok((
                store.quarantine_total(&accounts)?,
                store.quarantine_recent(&accounts, offset, limit)?,
            ))
        })),
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
                    let ok = crate::cli::sync::retry_one(&legacy(&ctx), &mut store, &account, &row)
                        .await?;
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
                let r =
                    block_on(crate::cli::sync::plan_accounts(&legacy(&ctx), &args)).and_then(|v| {
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
                    crate::cli::folders::refresh(&legacy(&ctx), &mut store, &acct).await
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
                .set_folder_role(&account_id, crate::model::Role::Sent, &folder)
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
        _ => return None,
    })
}
