//! `mailroom triage`, `undo`, `deny`.

use clap::Subcommand;
use serde_json::json;

use super::Ctx;
use super::output::{emit, note, table};
use crate::error::Result;
use crate::mail::sanitize::{clean, clean_line};
use crate::ops::deny::{self, Which};
use crate::ops::triage::{self, ActionOutcome, MessageView, TriagePage};

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
        /// The customer: an id, an email address or the exact name.
        #[arg(long, value_name = "ID|EMAIL|NAME")]
        customer: String,
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
    match cmd {
        TriageCmd::List {
            account,
            limit,
            offset,
        } => {
            let page = triage::list(ctx, account.as_deref(), limit, offset)?;
            emit(ctx.json, &page, || list_text(&page));
        }
        TriageCmd::Show { id } => {
            let v = triage::show(ctx, id)?;
            emit(ctx.json, &json!({"message": v}), || show_text(&v));
        }
        TriageCmd::Pair { id, customer } => done(ctx, &triage::pair_named(ctx, id, &customer)?),
        TriageCmd::AddCustomer { id, name } => {
            done(ctx, &triage::add_customer(ctx, id, name.as_deref())?)
        }
        TriageCmd::Block {
            id,
            domain,
            dry_run: true,
        } => {
            let plan = triage::block_plan(ctx, id, domain)?;
            emit(ctx.json, &json!({"plan": plan}), || {
                format!(
                    "blocking {} {} for account {} would hide {} cached message(s)",
                    plan.kind, plan.pattern, plan.account, plan.affected
                )
            });
        }
        TriageCmd::Block { id, domain, .. } => {
            let b = triage::block(ctx, id, domain)?;
            note(format!(
                "blocking {} {} for account {}: {} cached message(s) affected",
                b.plan.kind, b.plan.pattern, b.plan.account, b.plan.affected
            ));
            emit(ctx.json, &b, || {
                format!("action {}: {}", b.outcome.action_id, b.outcome.detail)
            });
        }
        TriageCmd::Delete { id } => done(ctx, &triage::delete(ctx, id)?),
    }
    Ok(0)
}

/// A triage action's answer: its id and what it did.
fn done(ctx: &Ctx, o: &ActionOutcome) {
    emit(ctx.json, o, || {
        format!("action {}: {}", o.action_id, clean_line(&o.detail))
    });
}

fn list_text(page: &TriagePage) -> String {
    if page.messages.is_empty() {
        return "triage is empty: every visible inbound message matches a customer".into();
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
}

fn show_text(v: &MessageView) -> String {
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
        None => s.push_str("(the body is not fetched yet: `mailroom message show ID` fetches it)"),
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
}

pub async fn undo(ctx: &Ctx, id: Option<i64>) -> Result<i32> {
    let u = triage::undo(ctx, id).await?;
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

/// `--account A | --global`, or (neither) the only account.
fn which(account: &Option<String>, global: bool) -> Which<'_> {
    if global {
        Which::Global
    } else {
        Which::Account(account.as_deref())
    }
}

pub fn deny(ctx: &Ctx, cmd: DenyCmd) -> Result<i32> {
    match cmd {
        DenyCmd::Add {
            pattern,
            account,
            global,
        } => {
            let a = deny::add(ctx, which(&account, global), &pattern)?;
            emit(ctx.json, &a, || {
                if a.changed {
                    format!(
                        "{} denied ({}); mail from it is skipped and hidden",
                        a.pattern, a.scope
                    )
                } else {
                    format!("{} was already denied ({})", a.pattern, a.scope)
                }
            });
        }
        DenyCmd::Remove {
            pattern,
            account,
            global,
        } => {
            let r = deny::remove(ctx, which(&account, global), &pattern)?;
            emit(ctx.json, &r, || {
                format!("{} removed from the {} deny list", r.pattern, r.scope)
            });
        }
        DenyCmd::List { account, global } => {
            let entries = deny::list(ctx, global, account.as_deref())?;
            emit(ctx.json, &json!({"deny": entries}), || {
                if entries.is_empty() {
                    "the deny list is empty".into()
                } else {
                    table(
                        &["SCOPE", "PATTERN"],
                        &entries
                            .iter()
                            .map(|e| vec![e.scope.clone(), e.pattern.clone()])
                            .collect::<Vec<_>>(),
                    )
                }
            });
        }
    }
    Ok(0)
}
