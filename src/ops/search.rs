//! `search` and the console's `/`: the search language (`crm::query`: words, "phrases" and the
//! filters `from:` `to:` `subject:` `since:` `before:` `is:` `folder:` `account:`) over the
//! messages this operator may see. One parser and one store query serve both faces.

use serde::Serialize;

use super::Ctx;
use super::access::{self, Need};
use crate::config::Config;
pub use crate::crm::query::{KEYS, Query};

use crate::crm::query;
use crate::error::Result;
use crate::store::{MailRow, SearchFilter, Store, Window};

/// One message found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Hit {
    pub id: i64,
    /// The name of the account holding it (its first copy the operator may see).
    pub account: String,
    /// The folder of that copy.
    pub folder: Option<String>,
    pub date: Option<String>,
    pub from: Option<String>,
    pub from_name: Option<String>,
    pub subject: Option<String>,
    pub direction: String,
    pub customer_id: Option<i64>,
    /// The union of its visible copies' flags.
    pub flags: Vec<String>,
}

/// What a search found: the first `limit` hits, newest first, and how many there are.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Found {
    pub query: String,
    pub total: i64,
    pub messages: Vec<Hit>,
}

/// Parses a search typed by the operator (`today` is the context's clock, UTC).
pub fn parse(cx: &Ctx, text: &str) -> Result<Query> {
    query::parse(text, cx.now().date_naive())
}

/// The words and phrases of a search, to mark where a message shows them (nothing for a
/// search that does not parse).
pub fn highlights(text: &str) -> Vec<String> {
    query::parse(text, chrono::Utc::now().date_naive())
        .map(|q| q.highlights())
        .unwrap_or_default()
}

/// The store's filter for `q`: the accounts this operator may see, narrowed to `account:` (and
/// `--account`) names — each of which must be one they may see.
pub fn filter(
    cx: &Ctx,
    config: &Config,
    store: &Store,
    q: &Query,
    account: Option<&str>,
) -> Result<SearchFilter> {
    let mut accounts = access::visible_account_ids(cx, config);
    if let Some(only) = account {
        let (_, a) = access::account(cx, config, store, only, Need::Read)?;
        accounts.retain(|id| *id == a.id);
    }
    if !q.accounts.is_empty() {
        let mut named: Vec<String> = Vec::new();
        for name in &q.accounts {
            named.push(
                access::account(cx, config, store, name, Need::Read)?
                    .1
                    .id
                    .clone(),
            );
        }
        accounts.retain(|id| named.contains(id));
    }
    Ok(q.filter(accounts))
}

/// Searches the visible mail (`account`: only that account's). Customers are matched first,
/// so hits carry their pairing.
pub fn search(cx: &Ctx, text: &str, account: Option<&str>, limit: i64) -> Result<Found> {
    let q = parse(cx, text)?;
    let config = cx.config()?;
    let store = cx.store()?;
    let f = filter(cx, &config, &store, &q, account)?;
    crate::crm::match_pending(&store, &config)?;
    let (total, rows) = crate::crm::search::search(&store, &q, &f.accounts, limit)?;
    let messages = rows.into_iter().map(|r| hit(&config, r)).collect();
    Ok(Found {
        query: text.to_string(),
        total,
        messages,
    })
}

fn hit(config: &Config, r: MailRow) -> Hit {
    Hit {
        id: r.id,
        account: config
            .account_by_id(&r.account_id)
            .map(|(n, _)| n.clone())
            .unwrap_or_else(|| r.account_id.clone()),
        folder: r.folder,
        date: r.date,
        from: r.from_addr,
        from_name: r.from_name,
        subject: r.subject,
        direction: r.direction,
        customer_id: r.customer_id,
        flags: r.flags,
    }
}

/// How many messages a search finds (the console's results; a read: no matching).
pub fn count(cx: &Ctx, text: &str) -> Result<i64> {
    let q = parse(cx, text)?;
    if q.is_empty() {
        return Err(crate::crm::search::nothing_to_search());
    }
    let config = cx.config()?;
    let store = cx.store()?;
    let f = filter(cx, &config, &store, &q, None)?;
    store.search_count(&f)
}

/// One window of a search's hits, newest first (the console's results).
pub fn window(cx: &Ctx, text: &str, window: &Window, limit: i64) -> Result<Vec<MailRow>> {
    let q = parse(cx, text)?;
    if q.is_empty() {
        return Err(crate::crm::search::nothing_to_search());
    }
    let config = cx.config()?;
    let store = cx.store()?;
    let f = filter(cx, &config, &store, &q, None)?;
    store.search_window(&f, window, limit)
}
