//! `mailroom triage`, `undo`, `deny`.

use clap::Subcommand;
use serde_json::json;

use super::Ctx;
use super::output::{emit, note, table};
use crate::crm::address::Pattern;
use crate::crm::deny::{self, Scope};
use crate::crm::{Desk, rematch_all};
use crate::error::{AppError, Result};
use crate::mail::sanitize::{clean, clean_line};

#[derive(Debug, Subcommand)]
pub enum TriageCmd {
    /// Unmatched inbound mail, newest first.
    List {
        #[arg(short = 'a', long)]
        account: Option<String>,
        #[arg(long, default_value_t = 100)]
        limit: i64,
        #[arg(long, default_value_t = 0)]
        offset: i64,
    },
    Show {
        id: i64,
    },
    /// Pair the message (and its sender's address) with a customer.
    Pair {
        id: i64,
        #[arg(long)]
        customer: i64,
    },
    /// Create a customer from the sender.
    AddCustomer {
        id: i64,
        #[arg(long)]
        name: Option<String>,
    },
    /// Block the sender's address (or its whole domain).
    Block {
        id: i64,
        #[arg(long)]
        domain: bool,
        /// Only show how many cached messages it would hide.
        #[arg(long)]
        dry_run: bool,
    },
    /// Move the message to Trash on the server.
    Delete {
        id: i64,
    },
}

#[derive(Debug, Subcommand)]
pub enum DenyCmd {
    Add {
        pattern: String,
        #[arg(short = 'a', long, conflicts_with = "global")]
        account: Option<String>,
        #[arg(long)]
        global: bool,
    },
    Remove {
        pattern: String,
        #[arg(short = 'a', long, conflicts_with = "global")]
        account: Option<String>,
        #[arg(long)]
        global: bool,
    },
    List {
        #[arg(short = 'a', long)]
        account: Option<String>,
        #[arg(long)]
        global: bool,
    },
}

fn short(s: &str, n: usize) -> String {
    let s = clean_line(s);
    if s.chars().count() <= n {
        s
    } else {
        format!(
            "{}…",
            s.chars().take(n.saturating_sub(1)).collect::<String>()
        )
    }
}

pub async fn run(ctx: &Ctx, cmd: TriageCmd) -> Result<i32> {
    let config = ctx.config()?;
    let store = ctx.store()?;
    crate::crm::match_pending(&store, &config)?;
    let mut desk = Desk::new(&store, &ctx.home, (*config).clone(), &ctx.operator);
    match cmd {
        TriageCmd::List {
            account,
            limit,
            offset,
        } => {
            let acct_id = match &account {
                Some(name) => {
                    let a = desk.config.account(name)?;
                    if !crate::crm::may_see(a, &ctx.operator) {
                        return Err(AppError::not_found(
                            "account",
                            name,
                            "see `mailroom account list`",
                        ));
                    }
                    Some(a.id.clone())
                }
                None => None,
            };
            let page = desk.list(acct_id.as_deref(), limit, offset)?;
            emit(ctx.json, &page, || {
                if page.messages.is_empty() {
                    return "triage is empty: every visible inbound message matches a customer"
                        .into();
                }
                let rows: Vec<Vec<String>> = page
                    .messages
                    .iter()
                    .map(|m| {
                        vec![
                            m.id.to_string(),
                            m.date.as_deref().unwrap_or("-").chars().take(16).collect(),
                            clean_line(&m.account),
                            short(m.from.as_deref().unwrap_or("?"), 32),
                            short(m.subject.as_deref().unwrap_or(""), 48),
                            m.suggestions
                                .first()
                                .map(|s| format!("{} ({})", short(&s.name, 20), s.customer_id))
                                .unwrap_or_default(),
                        ]
                    })
                    .collect();
                let mut s = table(
                    &["ID", "DATE", "ACCOUNT", "FROM", "SUBJECT", "SUGGEST"],
                    &rows,
                );
                if page.total > page.messages.len() as i64 {
                    s.push_str(&format!(
                        "({} of {}; --offset N for more)\n",
                        page.messages.len(),
                        page.total
                    ));
                }
                s
            });
        }
        TriageCmd::Show { id } => {
            let v = desk.show(id)?;
            emit(ctx.json, &json!({"message": v}), || {
                let mut s = String::new();
                let from = match &v.from_name {
                    Some(n) => format!("{} <{}>", clean_line(n), v.from.as_deref().unwrap_or("")),
                    None => v.from.clone().unwrap_or_default(),
                };
                s.push_str(&format!(
                    "Message: {}  (account {})\n",
                    v.id,
                    clean_line(&v.account)
                ));
                s.push_str(&format!("From:    {}\n", clean_line(&from)));
                s.push_str(&format!("To:      {}\n", clean_line(&v.to.join(", "))));
                if !v.cc.is_empty() {
                    s.push_str(&format!("Cc:      {}\n", clean_line(&v.cc.join(", "))));
                }
                s.push_str(&format!("Date:    {}\n", v.date.as_deref().unwrap_or("-")));
                s.push_str(&format!(
                    "Subject: {}\n\n",
                    clean_line(v.subject.as_deref().unwrap_or(""))
                ));
                match &v.text {
                    Some(t) => s.push_str(&clean(t)),
                    None => s.push_str(
                        "(the body is not fetched yet: `mailroom message show ID` fetches it)",
                    ),
                }
                s.push('\n');
                if !v.attachments.is_empty() {
                    s.push_str("\nAttachments:\n");
                    for a in &v.attachments {
                        s.push_str(&format!(
                            "  [{}] {}  {}  {} bytes\n",
                            a.index,
                            clean_line(a.name.as_deref().unwrap_or("(unnamed)")),
                            clean_line(&a.content_type),
                            a.size
                        ));
                    }
                }
                if !v.suggestions.is_empty() {
                    s.push_str("\nSuggestions (triage pair ID --customer C):\n");
                    for g in &v.suggestions {
                        s.push_str(&format!(
                            "  {}  {}  — {}\n",
                            g.customer_id,
                            clean_line(&g.name),
                            g.reason
                        ));
                    }
                }
                s
            });
        }
        TriageCmd::Pair { id, customer } => {
            let o = desk.pair(id, customer)?;
            emit(ctx.json, &o, || {
                format!("action {}: {}", o.action_id, clean_line(&o.detail))
            });
        }
        TriageCmd::AddCustomer { id, name } => {
            let o = desk.add_customer(id, name.as_deref())?;
            emit(ctx.json, &o, || {
                format!("action {}: {}", o.action_id, clean_line(&o.detail))
            });
        }
        TriageCmd::Block {
            id,
            domain,
            dry_run,
        } => {
            let plan = desk.block_plan(id, domain)?;
            if dry_run {
                emit(ctx.json, &json!({"plan": plan}), || {
                    format!(
                        "blocking {} {} for account {} would hide {} cached message(s)",
                        plan.kind, plan.pattern, plan.account, plan.affected
                    )
                });
                return Ok(0);
            }
            note(format!(
                "blocking {} {} for account {}: {} cached message(s) affected",
                plan.kind, plan.pattern, plan.account, plan.affected
            ));
            let (plan, o) = desk.block(id, domain)?;
            emit(
                ctx.json,
                &json!({"action_id": o.action_id, "kind": o.kind, "message_id": o.message_id,
                                    "customer_id": null, "detail": o.detail, "plan": plan}),
                || format!("action {}: {}", o.action_id, o.detail),
            );
        }
        TriageCmd::Delete { id } => {
            let o = desk.delete(id)?;
            emit(ctx.json, &o, || {
                format!("action {}: {}", o.action_id, o.detail)
            });
        }
    }
    Ok(0)
}

pub async fn undo(ctx: &Ctx, id: Option<i64>) -> Result<i32> {
    let config = ctx.config()?;
    let store = ctx.store()?;
    crate::crm::match_pending(&store, &config)?;
    let mut desk = Desk::new(&store, &ctx.home, (*config).clone(), &ctx.operator);
    let action = desk.resolve_action(id)?;
    let mut found = Vec::new();
    for l in desk.trash_lookups(&action)? {
        found.extend(find_in_trash(ctx, &store, &desk.config, &l).await?);
    }
    let u = desk.undo(Some(action.id), &found)?;
    emit(ctx.json, &json!({"undone": u}), || {
        format!(
            "undid action {} ({}): {}",
            u.action_id,
            u.kind,
            clean_line(&u.detail)
        )
    });
    Ok(0)
}

/// Finds a deleted message in Trash on the server (read-only: EXAMINE + UID SEARCH; the move
/// back goes through the queue), for when Trash is not synced so the cache lacks its UID there.
async fn find_in_trash(
    ctx: &Ctx,
    store: &crate::store::Store,
    config: &crate::config::Config,
    l: &crate::crm::triage::TrashLookup,
) -> Result<Option<crate::crm::triage::TrashHit>> {
    use crate::imap::fetch;
    let Some(mid) = &l.message_id_header else {
        return Ok(None);
    };
    let Some((name, _)) = config.account_by_id(&l.account_id) else {
        return Ok(None);
    };
    let account = crate::account::Account::from_config(config, name)?;
    let pw = account.password(store, &ctx.vault()?)?;
    let mut ss = crate::sync::engine::open_session(&account, &pw).await?;
    let sel = fetch::select(&mut ss.session, &l.trash_wire_name, false, None, true).await?;
    let query = format!(
        "HEADER Message-ID {}",
        crate::imap::append::quote(&format!("<{mid}>"))
    );
    let uids = fetch::uid_search(&mut ss.session, &query).await?;
    let _ = ss.session.logout().await;
    let Some(uid) = uids.last() else {
        return Ok(None);
    };
    // The queue checks an op's UIDVALIDITY against the folder's; record what this EXAMINE saw
    // for a Trash that was never synced, exactly as a first sync of it would.
    if store
        .folder(l.trash_folder_id)?
        .is_some_and(|f| f.uidvalidity.is_none())
    {
        store.reset_folder_for_rebuild(l.trash_folder_id, sel.uidvalidity)?;
    }
    Ok(Some(crate::crm::triage::TrashHit {
        account_id: l.account_id.clone(),
        folder_id: l.trash_folder_id,
        wire_name: l.trash_wire_name.clone(),
        uidvalidity: sel.uidvalidity as i64,
        uid: *uid as i64,
    }))
}

/// `--account A | --global`, or the only account.
fn scope(
    ctx: &Ctx,
    config: &crate::config::Config,
    account: Option<String>,
    global: bool,
) -> Result<Scope> {
    if global {
        return Ok(Scope::Global);
    }
    let (name, acct) = config.pick_account(account.as_deref()).map_err(|e| {
        if account.is_none() && config.accounts.len() > 1 {
            AppError::usage(
                "several accounts are configured",
                "name one with --account NAME, or use --global",
            )
        } else {
            e
        }
    })?;
    if !ctx.sees(acct) {
        return Err(AppError::not_found(
            "account",
            name,
            "see `mailroom account list`",
        ));
    }
    Ok(Scope::Account(name.clone()))
}

fn pattern(raw: &str) -> Result<Pattern> {
    Pattern::parse(raw).ok_or_else(|| {
        AppError::usage(
            format!("{raw:?} is neither an address nor a domain"),
            "write name@example.com or example.com (a domain includes its subdomains)",
        )
    })
}

pub fn deny(ctx: &Ctx, cmd: DenyCmd) -> Result<i32> {
    let config = ctx.config()?;
    match cmd {
        DenyCmd::Add {
            pattern: raw,
            account,
            global,
        } => {
            let sc = scope(ctx, &config, account, global)?;
            let p = pattern(&raw)?;
            let added = deny::add(&ctx.home, &sc, &p)?;
            let summary = apply(ctx)?;
            ctx.store()?.audit(
                &ctx.operator,
                "deny.add",
                None,
                Some(p.as_str()),
                &json!({"scope": sc.label(), "changed": added}),
            )?;
            emit(
                ctx.json,
                &json!({"scope": sc.label(), "pattern": p.as_str(), "changed": added, "hidden": summary.denied}),
                || {
                    if added {
                        format!(
                            "{} denied ({}); mail from it is skipped and hidden",
                            p.as_str(),
                            sc.label()
                        )
                    } else {
                        format!("{} was already denied ({})", p.as_str(), sc.label())
                    }
                },
            );
        }
        DenyCmd::Remove {
            pattern: raw,
            account,
            global,
        } => {
            let sc = scope(ctx, &config, account, global)?;
            let p = pattern(&raw)?;
            let removed = deny::remove(&ctx.home, &sc, &p)?;
            apply(ctx)?;
            ctx.store()?.audit(
                &ctx.operator,
                "deny.remove",
                None,
                Some(p.as_str()),
                &json!({"scope": sc.label(), "changed": removed}),
            )?;
            if !removed {
                return Err(AppError::needs_user(
                    format!("{} is not on the {} deny list", p.as_str(), sc.label()),
                    "",
                    "see `mailroom deny list`",
                ));
            }
            emit(
                ctx.json,
                &json!({"scope": sc.label(), "pattern": p.as_str(), "changed": true}),
                || format!("{} removed from the {} deny list", p.as_str(), sc.label()),
            );
        }
        DenyCmd::List { account, global } => {
            let mut entries: Vec<(String, String)> = Vec::new();
            let all = account.is_none() && !global;
            if global || all {
                entries.extend(
                    config
                        .general
                        .deny
                        .iter()
                        .map(|p| ("global".to_string(), p.clone())),
                );
            }
            for (name, a) in &config.accounts {
                if (all || account.as_deref() == Some(name.as_str())) && ctx.sees(a) {
                    entries.extend(a.deny.iter().map(|p| (name.clone(), p.clone())));
                }
            }
            if let Some(n) = &account {
                let a = config.account(n)?;
                if !ctx.sees(a) {
                    return Err(AppError::not_found(
                        "account",
                        n,
                        "see `mailroom account list`",
                    ));
                }
            }
            let list: Vec<_> = entries
                .iter()
                .map(|(s, p)| json!({"scope": s, "pattern": p}))
                .collect();
            emit(ctx.json, &json!({"deny": list}), || {
                if entries.is_empty() {
                    "the deny list is empty".into()
                } else {
                    table(
                        &["SCOPE", "PATTERN"],
                        &entries
                            .iter()
                            .map(|(s, p)| vec![s.clone(), p.clone()])
                            .collect::<Vec<_>>(),
                    )
                }
            });
        }
    }
    Ok(0)
}

/// Re-derives the denied flag of cached mail from the edited config.
fn apply(ctx: &Ctx) -> Result<crate::crm::MatchSummary> {
    let config = ctx.config()?;
    let store = ctx.store()?;
    rematch_all(&store, &config)
}
