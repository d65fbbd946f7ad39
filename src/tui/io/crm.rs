//! The console's customer, triage, dashboard and log pages and actions (issue 11: through ops).

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
        Command::LoadDashboard => {
            let config = ctx.config();
            let accounts = config
                .as_ref()
                .map(|c| accounts_of(ctx, c))
                .unwrap_or_default();
            let status =
                config.and_then(|c| crate::cli::status::collect(&c, Some(store), |a| ctx.sees(a)));
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
            let total = counts.get("triage".into(), || store.view_triage_count(&f))?;
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
        Command::LoadCustomers {
            generation,
            query,
            offset,
            limit,
        } => Data::Customers(page(generation, offset, || {
            Ok((
                counts.get(format!("customers:{query}"), || {
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
                                Some(crate::tui::app::Suggestion {
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
        Command::LoadEvents {
            generation,
            filter,
            offset,
            limit,
        } => Data::Events(page(generation, offset, || {
            Ok((
                counts.get(format!("events:{filter:?}"), || {
                    store.view_events_count(&filter)
                })?,
                store.view_events_page(&filter, offset, limit)?,
            ))
        })),
        _ => return None,
    })
}
