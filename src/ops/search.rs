//! `search`: plain words and "quoted phrases" over subjects, addresses and text bodies of the
//! messages this operator may see (all of them, or one named account's).

use serde::Serialize;

use super::Ctx;
use super::access::{self, Need};

use crate::error::Result;

/// One message found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Hit {
    pub id: i64,
    /// The name of the account holding it.
    pub account: String,
    pub date: Option<String>,
    pub from: Option<String>,
    pub from_name: Option<String>,
    pub subject: Option<String>,
    pub direction: String,
    pub customer_id: Option<i64>,
}

/// What a search found: the first `limit` hits, newest first, and how many there are.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Found {
    pub query: String,
    pub total: i64,
    pub messages: Vec<Hit>,
}

/// Searches the visible mail (`account`: only that account's, if the operator may see it).
/// Customers are matched first, so hits carry their pairing.
pub fn search(cx: &Ctx, query: &str, account: Option<&str>, limit: i64) -> Result<Found> {
    let config = cx.config()?;
    let store = cx.store()?;
    let mut accounts = access::visible_account_ids(cx, &config);
    if let Some(name) = account {
        let (_, a) = access::account(cx, &config, &store, name, Need::Read)?;
        accounts.retain(|id| *id == a.id);
    }
    crate::crm::match_pending(&store, &config)?;
    let (total, rows) = crate::crm::search::search(&store, query, &accounts, limit, 0)?;
    let name = |id: &str| {
        config
            .account_by_id(id)
            .map(|(n, _)| n.clone())
            .unwrap_or_else(|| id.to_string())
    };
    let messages = rows
        .into_iter()
        .map(|r| Hit {
            id: r.id,
            account: name(&r.account_id),
            date: r.date,
            from: r.from_addr,
            from_name: r.from_name,
            subject: r.subject,
            direction: r.direction,
            customer_id: r.customer_id,
        })
        .collect();
    Ok(Found {
        query: query.to_string(),
        total,
        messages,
    })
}
