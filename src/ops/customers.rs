//! The customer book (`customers add|list|show|edit|remove|import|export`, the console's
//! Customers pane and pair picker). The book is shared by every operator of an installation;
//! a customer's timeline shows only mail of the accounts the operator may see.

use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::json;

use super::Ctx;
use super::access;
use crate::crm::{book, csvio, timeline};
use crate::error::{AppError, Result};
use crate::store::{Store, TimelineWindow};

pub use crate::crm::MatchSummary;
pub use crate::crm::book::{CustomerEdit, CustomerInput};
pub use crate::crm::csvio::{ImportReport, RowError};
pub use crate::crm::timeline::{Thread, TimelineMessage, Why};
pub use crate::store::console::MessageSummary;
pub use crate::store::{CustomerRow, TimelineKey};

/// One customer with the timeline of the mail this operator may see, threads newest first.
#[derive(Debug, Clone, Serialize)]
pub struct CustomerView {
    #[serde(flatten)]
    pub customer: CustomerRow,
    pub timeline: Vec<Thread>,
    /// Paged (`--limit`): the cursor of the next page (`--after`), null on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<Option<String>>,
}

/// A position on a timeline as `customers show --after` takes it: `ID:DATE` (DATE empty for
/// mail without a date).
pub fn parse_cursor(s: &str) -> Result<TimelineKey> {
    let bad = || {
        AppError::usage(
            format!("{s:?} is not a timeline cursor"),
            "pass the `next` value of the previous page as it was printed",
        )
    };
    let (id, date) = s.split_once(':').ok_or_else(bad)?;
    Ok(TimelineKey {
        id: id.parse().map_err(|_| bad())?,
        date: Some(date.to_string()).filter(|d| !d.is_empty()),
    })
}

fn cursor(k: &TimelineKey) -> String {
    format!("{}:{}", k.id, k.date.as_deref().unwrap_or(""))
}

/// A customer added or edited: the customer, what matching did, and how many cached messages
/// are now matched to THIS customer (of the accounts the operator may see) — not every match
/// the re-matching touched.
#[derive(Debug, Clone, Serialize)]
pub struct Changed {
    #[serde(flatten)]
    pub change: crate::crm::book::Changed,
    pub matched: usize,
}

impl Changed {
    fn of(
        cx: &Ctx,
        config: &crate::config::Config,
        store: &Store,
        change: crate::crm::book::Changed,
    ) -> Result<Changed> {
        let visible = access::visible_account_ids(cx, config);
        let matched = store.timeline_count(change.customer.id, &visible)? as usize;
        Ok(Changed { change, matched })
    }
}

/// A removed customer; their mail is unmatched again.
#[derive(Debug, Clone, Serialize)]
pub struct Removed {
    pub removed: CustomerRow,
    pub rematch: MatchSummary,
}

/// The book as CSV, and where it went.
#[derive(Debug, Clone)]
pub struct Exported {
    pub count: usize,
    pub csv: Vec<u8>,
    /// The file written, if one was named.
    pub file: Option<PathBuf>,
}

/// Every change to the book is audited with the operator who made it.
fn audit(
    cx: &Ctx,
    store: &Store,
    action: &str,
    target: &str,
    detail: serde_json::Value,
) -> Result<()> {
    store.audit(&cx.operator, action, None, Some(target), &detail)?;
    Ok(())
}

/// `customers add`: validated, then the cache is matched again (a new address can claim mail
/// that is already stored).
pub fn add(cx: &Ctx, input: CustomerInput) -> Result<Changed> {
    let config = cx.config()?;
    let store = cx.store()?;
    crate::crm::match_pending(&store, &config)?;
    let ch = book::add(&store, &config, input)?;
    let c = &ch.customer;
    audit(
        cx,
        &store,
        "customers.add",
        &format!("customer:{}", c.id),
        json!({"name": c.name, "emails": c.emails, "domains": c.domains}),
    )?;
    Changed::of(cx, &config, &store, ch)
}

/// `customers list`: the whole book, by name.
pub fn list(cx: &Ctx) -> Result<Vec<CustomerRow>> {
    cx.store()?.customers()
}

/// `customers show ID`: the customer and their timeline (mail stored without matching is
/// matched first).
pub fn show(cx: &Ctx, id: i64) -> Result<CustomerView> {
    let config = cx.config()?;
    let store = cx.store()?;
    crate::crm::match_pending(&store, &config)?;
    let customer = store.customer(id)?.ok_or_else(|| book::not_found(id))?;
    let rows = store.timeline(id, &access::visible_account_ids(cx, &config))?;
    Ok(CustomerView {
        customer,
        timeline: timeline::threads(rows),
        next: None,
    })
}

/// `customers show ID --limit N [--after CURSOR]`: one keyset page of the timeline, newest
/// first (a thread may continue on the next page), and the cursor of the next page.
pub fn show_page(
    cx: &Ctx,
    id: i64,
    limit: i64,
    after: Option<&TimelineKey>,
) -> Result<CustomerView> {
    let config = cx.config()?;
    let store = cx.store()?;
    crate::crm::match_pending(&store, &config)?;
    let customer = store.customer(id)?.ok_or_else(|| book::not_found(id))?;
    let accounts = access::visible_account_ids(cx, &config);
    let limit = limit.max(1);
    let w = match after {
        Some(key) => TimelineWindow::After { key, limit },
        None => TimelineWindow::Offset { offset: 0, limit },
    };
    let mut rows = store.timeline_page(id, &accounts, w)?;
    let next = match rows.len() as i64 == limit {
        true => rows.last().map(|r| cursor(&r.key())),
        false => None,
    };
    rows.reverse();
    Ok(CustomerView {
        customer,
        timeline: timeline::threads(rows),
        next: Some(next),
    })
}

/// `customers edit ID …`.
pub fn edit(cx: &Ctx, id: i64, e: CustomerEdit) -> Result<Changed> {
    let config = cx.config()?;
    let store = cx.store()?;
    crate::crm::match_pending(&store, &config)?;
    let ch = book::edit(&store, &config, id, e)?;
    audit(
        cx,
        &store,
        "customers.edit",
        &format!("customer:{id}"),
        json!({"emails": ch.customer.emails, "domains": ch.customer.domains}),
    )?;
    Changed::of(cx, &config, &store, ch)
}

/// `customers remove ID`.
pub fn remove(cx: &Ctx, id: i64) -> Result<Removed> {
    let config = cx.config()?;
    let store = cx.store()?;
    crate::crm::match_pending(&store, &config)?;
    let (c, rematch) = book::remove(&store, &config, id)?;
    audit(
        cx,
        &store,
        "customers.remove",
        &format!("customer:{id}"),
        json!({"name": c.name, "emails": c.emails}),
    )?;
    Ok(Removed {
        removed: c,
        rematch,
    })
}

/// `customers import FILE`: good rows imported, bad ones reported by line.
pub fn import(cx: &Ctx, file: &Path) -> Result<ImportReport> {
    let bytes = std::fs::read(file).map_err(|e| {
        AppError::usage(
            format!("cannot read {}: {e}", file.display()),
            "check the path",
        )
    })?;
    let config = cx.config()?;
    let store = cx.store()?;
    crate::crm::match_pending(&store, &config)?;
    let r = csvio::import(&store, &config, &bytes)?;
    audit(
        cx,
        &store,
        "customers.import",
        &file.display().to_string(),
        json!({"imported": r.imported, "updated": r.updated, "unchanged": r.unchanged,
               "errors": r.errors.len()}),
    )?;
    Ok(r)
}

/// `customers export [FILE]`: the book as CSV, written to `file` (private: 0600) if named.
pub fn export(cx: &Ctx, file: Option<&Path>) -> Result<Exported> {
    let store = cx.store()?;
    let csv = csvio::export(&store)?;
    let count = store.customers()?.len();
    if let Some(path) = file {
        crate::config::write_atomic(path, &csv, 0o600)?;
    }
    Ok(Exported {
        count,
        csv,
        file: file.map(Path::to_path_buf),
    })
}

/// The console's customer list: a fuzzy search over names, companies and addresses.
pub fn page(cx: &Ctx, query: &str, offset: i64, limit: i64) -> Result<Vec<CustomerRow>> {
    cx.store()?.customers_page(query, offset, limit)
}

pub fn count(cx: &Ctx, query: &str) -> Result<i64> {
    cx.store()?.customers_count(query)
}

/// The console's timeline of one customer: both directions, only mail of the accounts this
/// operator may see, newest first; the rows `offset..offset+limit`. A read: no matching.
/// `after`: the row just before `offset` when known — the page is read from there (keyset);
/// else a jump reads from whichever end is nearer.
pub fn timeline(
    cx: &Ctx,
    customer_id: i64,
    total: i64,
    offset: i64,
    limit: i64,
    after: Option<&TimelineKey>,
) -> Result<Vec<MessageSummary>> {
    let config = cx.config()?;
    let store = cx.store()?;
    let accounts = access::visible_account_ids(cx, &config);
    let want = (total - offset).min(limit).max(0);
    let mut rows = None;
    if let Some(key) = after {
        let page =
            store.timeline_page(customer_id, &accounts, TimelineWindow::After { key, limit })?;
        if page.len() as i64 >= want {
            rows = Some(page);
        }
    }
    let rows = match rows {
        Some(r) => r,
        None if offset > total / 2 => store.timeline_page(
            customer_id,
            &accounts,
            TimelineWindow::FromEnd {
                offset: (total - offset - limit).max(0),
                limit: want,
            },
        )?,
        None => store.timeline_page(
            customer_id,
            &accounts,
            TimelineWindow::Offset { offset, limit },
        )?,
    };
    Ok(rows
        .into_iter()
        .map(|r| MessageSummary {
            id: r.id,
            from_name: r.from_name,
            from_addr: r.from_addr,
            subject: r.subject,
            date: r.date,
            seen: true,
            has_attachments: false,
            direction: r.direction,
            size: None,
            why: Some(match &r.detail {
                Some(d) if !d.trim().is_empty() => format!("{}: {d}", r.rule),
                _ => r.rule.clone(),
            }),
            account_id: r.account_id,
        })
        .collect())
}

/// How many messages the console's timeline of the customer has (for its scroll bar).
pub fn timeline_count(cx: &Ctx, customer_id: i64) -> Result<i64> {
    let config = cx.config()?;
    cx.store()?
        .timeline_count(customer_id, &access::visible_account_ids(cx, &config))
}
