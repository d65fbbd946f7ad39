//! What a folder's fetch of new mail asks for: everything above the checkpoint on later passes,
//! and on a first sync the scope's UIDs (`sync.since`, unread-only) found by `UID SEARCH`.
//! Shared with `sync --plan`, so the plan asks the server exactly what the sync asks.

use super::engine::{PassOptions, SyncSession};
use crate::config::HistoryScope;
use crate::error::Result;
use crate::imap::fetch;
use crate::store::{FolderRow, Level, Store};

/// What a folder's first sync asks the server for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FirstFetch {
    /// Every message (`UID FETCH 1:*`).
    Everything,
    /// Only the UIDs that `UID SEARCH` with these criteria finds (IMAP4rev1 SINCE / UNSEEN).
    Search(String),
    /// No old mail at all: the folder starts at UIDNEXT (`since = "new"`).
    Nothing,
}

/// The first-sync fetch for a scope: shared by sync and `sync --plan`, so the plan asks the
/// server exactly what the sync asks.
///
/// SINCE compares dates "disregarding time and timezone" (RFC 3501): the day of a message's
/// INTERNALDATE in its own or the server's zone, not in UTC. A message at 22:00 -0500 on the
/// 4th is on the 5th in UTC (in scope for `since = 5th`), but the server files it under the 4th
/// and `SINCE 5-…` would miss it. So the server is asked from the day before, and the exact
/// cut at midnight UTC is made here (`classify`, and the plan's INTERNALDATE count): one extra
/// day of headers on the wire, no mail missed.
pub fn first_fetch(scope: HistoryScope, unread_only: bool) -> FirstFetch {
    let mut keys = Vec::new();
    match scope {
        HistoryScope::NewOnly => return FirstFetch::Nothing,
        HistoryScope::Since(d) => {
            let day_before = d.pred_opt().unwrap_or(d);
            keys.push(format!("SINCE {}", day_before.format("%-d-%b-%Y")));
        }
        HistoryScope::All => {}
    }
    if unread_only {
        keys.push("UNSEEN".to_string());
    }
    if keys.is_empty() {
        FirstFetch::Everything
    } else {
        FirstFetch::Search(keys.join(" "))
    }
}

/// The `UID SEARCH` text of a first sync; one resumed after an interruption only asks above
/// the last committed UID.
pub fn first_sync_search(criteria: &str, known_max: u32) -> String {
    if known_max == 0 {
        criteria.to_string()
    } else {
        format!("UID {}:* {criteria}", known_max + 1)
    }
}

/// Longest UID set per `UID FETCH` of search results (Dovecot's default line limit is 64 KiB,
/// other servers' 8 KiB).
pub const MAX_UID_SET_CHARS: usize = 8000;

/// A part of the new-mail fetch: every UID from one on, or some of a search's UIDs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Span {
    From(u32),
    Uids(Vec<u32>),
}

impl Span {
    /// A search result as spans whose UID sets stay within [`MAX_UID_SET_CHARS`].
    pub fn chunks(uids: &[u32]) -> Vec<Span> {
        let mut out = Vec::new();
        let mut rest = uids;
        for set in fetch::uid_set_chunks(uids, MAX_UID_SET_CHARS) {
            let last: u32 = set
                .rsplit([',', ':'])
                .next()
                .and_then(|n| n.parse().ok())
                .unwrap_or(u32::MAX);
            let n = rest.partition_point(|u| *u <= last);
            out.push(Span::Uids(rest[..n].to_vec()));
            rest = &rest[n..];
        }
        out
    }

    /// The UID set of what is left of this span above `after`; None when nothing is.
    pub fn rest(&self, after: u32) -> Option<String> {
        match self {
            Span::From(from) => Some(format!("{}:*", (*from).max(after.saturating_add(1)))),
            Span::Uids(uids) => {
                let left: Vec<u32> = uids.iter().copied().filter(|u| *u > after).collect();
                (!left.is_empty()).then(|| fetch::uid_set(&left))
            }
        }
    }

    /// The first UID of this span above `after`, if the span knows it.
    pub fn next_known(&self, after: u32) -> Option<u32> {
        match self {
            Span::From(_) => None,
            Span::Uids(uids) => uids.iter().copied().find(|u| *u > after),
        }
    }
}

/// What the new-mail step fetches.
pub struct NewMail {
    /// In UID order.
    pub spans: Vec<Span>,
    /// Messages expected (for progress).
    pub total: u64,
    /// The checkpoint a completed fetch proves: every UID up to it was fetched or out of scope.
    pub checkpoint: u32,
}

/// Decides what the new-mail step fetches. Later passes (and a first sync of everything) take
/// `known_max+1:*`. A first sync with a date or unread-only scope takes only what `UID SEARCH`
/// finds. Under `since = "new"` a first sync fetches nothing: the folder starts at UIDNEXT-1.
/// None: nothing to fetch (the checkpoint has been moved where the scope allows).
pub async fn plan_new_mail(
    store: &mut Store,
    ss: &mut SyncSession,
    folder: &FolderRow,
    sel: &fetch::Selected,
    opts: &PassOptions,
    known_max: u32,
) -> Result<Option<NewMail>> {
    let everything = || NewMail {
        spans: vec![Span::From(known_max + 1)],
        total: match sel.uidnext {
            Some(_) if !folder.first_sync_done && known_max == 0 => sel.exists as u64,
            Some(n) => (n.saturating_sub(known_max + 1) as u64).min(sel.exists as u64),
            None => sel.exists as u64,
        },
        checkpoint: sel.uidnext.map_or(0, |n| n.saturating_sub(1)),
    };
    if folder.first_sync_done {
        return Ok(Some(everything()));
    }
    let scope = first_sync_scope(store, folder.id, sel.uidvalidity, opts.scope)?;
    match first_fetch(scope, opts.unread_only) {
        FirstFetch::Everything => Ok(Some(everything())),
        // Resuming is only for fetches; an unfinished start (crash) just fetches what is new.
        FirstFetch::Nothing if known_max > 0 => Ok(Some(everything())),
        FirstFetch::Nothing => {
            let start = last_uid(ss, sel).await?;
            store.set_checkpoint(folder.id, start)?;
            store.log_event(
                Some(&folder.account_id),
                Level::Info,
                &format!(
                    "{}: no old mail fetched (sync.since = \"new\"); new mail from UID {} on",
                    folder.name,
                    start + 1
                ),
                None,
                None,
            )?;
            Ok(None)
        }
        FirstFetch::Search(criteria) => {
            let top = last_uid(ss, sel).await?;
            let uids: Vec<u32> =
                fetch::uid_search(&mut ss.session, &first_sync_search(&criteria, known_max))
                    .await?
                    .into_iter()
                    // `n:*` also matches the last UID when it is below n.
                    .filter(|u| *u > known_max)
                    .collect();
            if uids.is_empty() {
                // Everything up to `top` is out of scope.
                store.set_checkpoint(folder.id, top)?;
                return Ok(None);
            }
            Ok(Some(NewMail {
                spans: Span::chunks(&uids),
                total: uids.len() as u64,
                checkpoint: top,
            }))
        }
    }
}

/// The scope of a folder's first sync. Under `since = "new"`, a rebuild (the cache still holds
/// the folder's mail under an old UIDVALIDITY) fetches again from the day of the oldest message
/// it held, so none of it is lost; a first sync proper fetches nothing old.
fn first_sync_scope(
    store: &Store,
    folder_id: i64,
    uidvalidity: u32,
    scope: HistoryScope,
) -> Result<HistoryScope> {
    if scope != HistoryScope::NewOnly {
        return Ok(scope);
    }
    let (stale, oldest) = store.stale_locations_span(folder_id, uidvalidity)?;
    if stale == 0 {
        return Ok(HistoryScope::NewOnly);
    }
    let day = oldest
        .as_deref()
        .and_then(|d| chrono::DateTime::parse_from_rfc3339(d).ok())
        .map(|d| d.with_timezone(&chrono::Utc).date_naive());
    // Without a date to start from, fetching everything is the way to lose nothing.
    Ok(day.map_or(HistoryScope::All, HistoryScope::Since))
}

/// UIDNEXT-1 from SELECT, or, from a server that gives no UIDNEXT, the highest UID there is.
pub async fn last_uid(ss: &mut SyncSession, sel: &fetch::Selected) -> Result<u32> {
    match sel.uidnext {
        Some(n) => Ok(n.saturating_sub(1)),
        None if sel.exists == 0 => Ok(0),
        None => fetch::max_uid(&mut ss.session).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_split_search_results_and_resume_above_a_uid() {
        let odd: Vec<u32> = (1..20_000).filter(|u| u % 2 == 1).collect();
        let spans = Span::chunks(&odd);
        assert!(spans.len() > 1);
        let back: Vec<u32> = spans
            .iter()
            .flat_map(|s| match s {
                Span::Uids(u) => u.clone(),
                Span::From(_) => vec![],
            })
            .collect();
        assert_eq!(back, odd);
        let s = Span::Uids(vec![3, 5, 6, 9]);
        assert_eq!(s.rest(0).as_deref(), Some("3,5:6,9"));
        assert_eq!(s.rest(5).as_deref(), Some("6,9"));
        assert_eq!(s.rest(9), None);
        assert_eq!(s.next_known(5), Some(6));
        assert_eq!(Span::From(10).rest(0).as_deref(), Some("10:*"));
        assert_eq!(Span::From(10).rest(40).as_deref(), Some("41:*"));
    }

    #[test]
    fn first_sync_search_criteria() {
        let d = |s: &str| HistoryScope::parse(s).unwrap();
        assert_eq!(
            first_fetch(HistoryScope::All, false),
            FirstFetch::Everything
        );
        assert_eq!(
            first_fetch(HistoryScope::All, true),
            FirstFetch::Search("UNSEEN".into())
        );
        // IMAP4rev1 date: day without padding, English month, four-digit year.
        // Asked from the day before: the server's SINCE day is not the UTC day (see
        // first_fetch); the exact cut is classify's.
        assert_eq!(
            first_fetch(d("2026-01-05"), false),
            FirstFetch::Search("SINCE 4-Jan-2026".into())
        );
        assert_eq!(
            first_fetch(d("2026-01-01"), true),
            FirstFetch::Search("SINCE 31-Dec-2025 UNSEEN".into())
        );
        assert_eq!(
            first_fetch(HistoryScope::NewOnly, true),
            FirstFetch::Nothing
        );
        assert_eq!(
            first_fetch(HistoryScope::NewOnly, false),
            FirstFetch::Nothing
        );
        // A first sync resumed after a break only asks above what was committed.
        assert_eq!(first_sync_search("SINCE 5-Jan-2026", 0), "SINCE 5-Jan-2026");
        assert_eq!(
            first_sync_search("SINCE 5-Jan-2026 UNSEEN", 400),
            "UID 401:* SINCE 5-Jan-2026 UNSEEN"
        );
    }
}
