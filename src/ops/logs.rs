//! The event log (`log [--follow]`, the console's Log pane) and the audit log (`audit`). An
//! entry about an account the operator may not see is never listed (contract: Operators): the
//! refusals the access gate writes carry the target's account, so only those who may see that
//! account read them. Entries about an account that was removed have nobody to ask whose it
//! was: its events are no one's any more, its audit rows stay with whoever wrote them.

use std::collections::HashMap;
use std::time::Duration;

use super::Ctx;
use super::access;
use crate::error::{AppError, Result};
use crate::store::{AuditReader, Visible};

pub use crate::store::{AuditRow, EventFilter, EventRow, Level};

/// How often `log --follow` looks for new events.
const FOLLOW_POLL: Duration = Duration::from_millis(500);

/// `--level L`.
pub fn level(text: &str) -> Result<Level> {
    Level::parse(text).ok_or_else(|| {
        AppError::usage(
            format!("unknown level {text:?}"),
            "use error, warn, info or debug",
        )
    })
}

/// The ids of the accounts whose entries this operator reads.
fn visible(cx: &Ctx) -> Result<Vec<String>> {
    Ok(access::visible_account_ids(cx, &*cx.config()?))
}

/// Account names by id, for showing an entry's account.
pub fn account_names(cx: &Ctx) -> Result<HashMap<String, String>> {
    Ok(cx
        .store()?
        .accounts()?
        .into_iter()
        .map(|a| (a.id, a.name))
        .collect())
}

/// The newest `limit` events at or above `min`, oldest first.
pub fn recent(cx: &Ctx, min: Level, limit: i64) -> Result<Vec<EventRow>> {
    let ids = visible(cx)?;
    cx.store()?.recent_events(min, Visible(&ids), limit)
}

/// Events after the event `last`, oldest first (at most `limit`).
pub fn after(cx: &Ctx, last: i64, min: Level, limit: i64) -> Result<Vec<EventRow>> {
    let ids = visible(cx)?;
    cx.store()?.events_after(last, min, Visible(&ids), limit)
}

/// Hands every event after `last` to `each` as it is written, until `each` says stop (or
/// forever: the caller ends it, e.g. on Ctrl-C).
pub async fn follow(
    cx: &Ctx,
    min: Level,
    mut last: i64,
    mut each: impl FnMut(&EventRow) -> bool,
) -> Result<()> {
    loop {
        tokio::time::sleep(FOLLOW_POLL).await;
        let events = cx.blocking(move |cx| after(cx, last, min, 1000)).await?;
        for e in &events {
            last = e.id;
            if !each(e) {
                return Ok(());
            }
        }
    }
}

/// The newest `limit` audit rows this operator may read, oldest first.
pub fn audit(cx: &Ctx, limit: i64) -> Result<Vec<AuditRow>> {
    let config = cx.config()?;
    let visible = access::visible_account_ids(cx, &config);
    let configured: Vec<String> = config.accounts.values().map(|a| a.id.clone()).collect();
    let reader = AuditReader {
        operator: &cx.operator,
        visible: &visible,
        configured: &configured,
    };
    cx.store()?.audit_visible(reader, limit)
}

/// The console's Log pane: events through its filter, newest first.
pub fn page(cx: &Ctx, filter: &EventFilter, offset: i64, limit: i64) -> Result<Vec<EventRow>> {
    let ids = visible(cx)?;
    cx.store()?
        .events_page(filter, Visible(&ids), offset, limit)
}

pub fn count(cx: &Ctx, filter: &EventFilter) -> Result<i64> {
    let ids = visible(cx)?;
    cx.store()?.events_count(filter, Visible(&ids))
}
