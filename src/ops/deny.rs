//! Deny lists (`deny add|remove|list`): addresses and domains whose mail sync stores as denied
//! and hides. The global list is everyone's; an account's list is one of its settings, so only
//! its owner changes or reads it (an operator it is shared with is told so; anyone else finds no
//! such account).

use serde::Serialize;
use serde_json::json;

use super::Ctx;
use super::access::{self, Need};
use crate::config::Config;
use crate::crm::address::Pattern;
use crate::crm::deny::{self, Scope};
use crate::error::{AppError, Result};
use crate::store::Store;

/// Which list a command names: `--global`, `--account NAME`, or (neither) the only account.
#[derive(Debug, Clone, Copy)]
pub enum Which<'a> {
    Global,
    Account(Option<&'a str>),
}

/// `deny add`'s answer.
#[derive(Debug, Clone, Serialize)]
pub struct Added {
    pub scope: String,
    pub pattern: String,
    /// False when it was on the list already.
    pub changed: bool,
    /// Cached messages hidden by the deny lists now.
    pub hidden: usize,
}

/// `deny remove`'s answer.
#[derive(Debug, Clone, Serialize)]
pub struct Removed {
    pub scope: String,
    pub pattern: String,
    pub changed: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    /// `global` or the account's name.
    pub scope: String,
    pub pattern: String,
}

/// The list `which` names, as its scope in config.toml and the account's id.
fn scope(
    cx: &Ctx,
    config: &Config,
    store: &Store,
    which: Which<'_>,
) -> Result<(Scope, Option<String>)> {
    let name = match which {
        Which::Global => return Ok((Scope::Global, None)),
        Which::Account(name) => name,
    };
    if name.is_none() && access::visible_account_ids(cx, config).len() > 1 {
        return Err(AppError::usage(
            "several accounts are configured",
            "name one with --account NAME, or use --global",
        ));
    }
    let (name, acct) = access::pick_account(cx, config, store, name, Need::Configure)?;
    Ok((Scope::Account(name.clone()), Some(acct.id.clone())))
}

fn pattern(raw: &str) -> Result<Pattern> {
    Pattern::parse(raw).ok_or_else(|| {
        AppError::usage(
            format!("{raw:?} is neither an address nor a domain"),
            "write name@example.com or example.com (a domain includes its subdomains)",
        )
    })
}

/// Puts a pattern on a list and hides the cached mail it denies.
pub fn add(cx: &Ctx, which: Which<'_>, raw: &str) -> Result<Added> {
    let config = cx.config()?;
    let store = cx.store()?;
    let (sc, account_id) = scope(cx, &config, &store, which)?;
    let p = pattern(raw)?;
    let changed = deny::add(&cx.home, &sc, &p)?;
    let summary = rederive(cx, &store)?;
    store.audit(
        &cx.operator,
        "deny.add",
        account_id.as_deref(),
        Some(p.as_str()),
        &json!({"scope": sc.label(), "changed": changed}),
    )?;
    Ok(Added {
        scope: sc.label(),
        pattern: p.as_str().to_string(),
        changed,
        hidden: summary.denied,
    })
}

/// Takes a pattern off a list; its cached mail shows again. Not on the list: an error.
pub fn remove(cx: &Ctx, which: Which<'_>, raw: &str) -> Result<Removed> {
    let config = cx.config()?;
    let store = cx.store()?;
    let (sc, account_id) = scope(cx, &config, &store, which)?;
    let p = pattern(raw)?;
    let changed = deny::remove(&cx.home, &sc, &p)?;
    rederive(cx, &store)?;
    store.audit(
        &cx.operator,
        "deny.remove",
        account_id.as_deref(),
        Some(p.as_str()),
        &json!({"scope": sc.label(), "changed": changed}),
    )?;
    if !changed {
        return Err(AppError::needs_user(
            format!("{} is not on the {} deny list", p.as_str(), sc.label()),
            "",
            "see `mailroom deny list`",
        )
        .with_code(crate::error::Code::NotFound));
    }
    Ok(Removed {
        scope: sc.label(),
        pattern: p.as_str().to_string(),
        changed,
    })
}

/// The entries of the named list; with neither `--global` nor an account named, the global
/// list and those of every account this operator configures.
pub fn list(cx: &Ctx, global: bool, account: Option<&str>) -> Result<Vec<Entry>> {
    let config = cx.config()?;
    let mut entries = Vec::new();
    if global || account.is_none() {
        entries.extend(config.general.deny.iter().map(|p| Entry {
            scope: "global".into(),
            pattern: p.clone(),
        }));
    }
    let ids = match account {
        Some(name) => {
            let store = cx.store()?;
            vec![
                access::account(cx, &config, &store, name, Need::Configure)?
                    .1
                    .id
                    .clone(),
            ]
        }
        None if global => Vec::new(),
        None => access::account_ids(cx, &config, Need::Configure),
    };
    for (name, a) in config.accounts.iter().filter(|(_, a)| ids.contains(&a.id)) {
        entries.extend(a.deny.iter().map(|p| Entry {
            scope: name.clone(),
            pattern: p.clone(),
        }));
    }
    Ok(entries)
}

/// Re-derives the denied flag of cached mail from the edited config.
fn rederive(cx: &Ctx, store: &Store) -> Result<crate::crm::MatchSummary> {
    let config = cx.config()?;
    crate::crm::rematch_all(store, &config)
}
