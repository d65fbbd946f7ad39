//! Typed queries for the triage queue, operator actions (undo) and the deny flag (issue 5).

use serde::Serialize;

use super::counts::{OUTSIDE_QUEUE, QUEUE_MESSAGE};
use super::crm::{CHUNK, placeholders};
use super::sql::{Arg, Row, ToArg};
use super::{Store, now};
use crate::args;
use crate::error::{AppError, Result};

/// Which messages the queue shows: located in one of `accounts` (those the operator may see,
/// or the one `--account` names), not from one of `own` addresses.
#[derive(Debug, Clone, Default)]
pub struct TriageFilter {
    pub accounts: Vec<String>,
    pub own: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TriageRow {
    pub id: i64,
    pub account_id: String,
    pub from_addr: Option<String>,
    pub from_name: Option<String>,
    pub subject: Option<String>,
    pub date: Option<String>,
    pub message_id: Option<String>,
    pub in_reply_to: Option<String>,
    pub refs: Option<String>,
    pub has_attachments: bool,
    pub size: Option<i64>,
    /// Some copy of it is marked \Seen.
    pub seen: bool,
}

/// A location with everything needed to put it back exactly (undo of a delete).
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct MessagePlace {
    pub id: i64,
    pub message_id: i64,
    pub account_id: String,
    pub folder_id: i64,
    pub folder: String,
    pub wire_name: String,
    pub role: Option<String>,
    pub uidvalidity: i64,
    pub uid: i64,
    pub flags: String,
    pub seen: bool,
    pub modseq: Option<i64>,
    pub internal_date: Option<String>,
}

/// A folder by role, as an op target needs it.
#[derive(Debug, Clone, Serialize)]
pub struct FolderRef {
    pub id: i64,
    pub name: String,
    pub wire_name: String,
    pub uidvalidity: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct MessageDetail {
    pub id: i64,
    pub message_id: Option<String>,
    pub in_reply_to: Option<String>,
    pub refs: Option<String>,
    pub from_addr: Option<String>,
    pub from_name: Option<String>,
    pub to_json: String,
    pub cc_json: String,
    pub subject: Option<String>,
    pub date: Option<String>,
    pub size: Option<i64>,
    pub headers: Option<Vec<u8>>,
    pub body: Option<Vec<u8>>,
    pub text_body: Option<String>,
    pub direction: String,
    pub customer_id: Option<i64>,
    pub denied: bool,
    pub triage_state: Option<TriageState>,
    pub locations: Vec<MessagePlace>,
}

/// What a triage action did (`actions.kind`; the audit log's `triage.KIND`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionKind {
    Pair,
    AddCustomer,
    Block,
    Delete,
}

impl ActionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ActionKind::Pair => "pair",
            ActionKind::AddCustomer => "add_customer",
            ActionKind::Block => "block",
            ActionKind::Delete => "delete",
        }
    }

    fn parse(s: &str) -> Option<ActionKind> {
        [
            ActionKind::Pair,
            ActionKind::AddCustomer,
            ActionKind::Block,
            ActionKind::Delete,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

impl std::fmt::Display for ActionKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a message left the triage queue without a customer (`messages.triage_state`; none: it
/// is in the queue if nothing else keeps it out).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TriageState {
    /// Moved to Trash from triage.
    Deleted,
}

impl TriageState {
    pub fn as_str(self) -> &'static str {
        match self {
            TriageState::Deleted => "deleted",
        }
    }

    pub fn parse(s: &str) -> Option<TriageState> {
        (s == "deleted").then_some(TriageState::Deleted)
    }
}

/// A text column read as one of our enums: an unknown value is a damaged row, named as such.
fn enum_column<T>(r: &Row<'_>, i: usize, parse: fn(&str) -> Option<T>) -> Result<T> {
    let text: String = r.get(i)?;
    parse(&text).ok_or_else(|| {
        AppError::local(
            "the database holds a value this mailroom does not know",
            format!("column {i}: unknown value {text:?}"),
            "upgrade mailroom, or report this as a bug",
        )
    })
}

#[derive(Debug, Clone, Serialize)]
pub struct ActionRow {
    pub id: i64,
    pub at: String,
    pub operator: String,
    pub kind: ActionKind,
    pub message_id: Option<i64>,
    pub payload: serde_json::Value,
    pub undone_at: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PendingOpRow {
    pub id: i64,
    pub account_id: String,
    pub location_id: Option<i64>,
    pub message_id: Option<i64>,
    pub op: String,
    pub arg: Option<String>,
    pub done_at: Option<String>,
    pub last_error: Option<String>,
}

/// Which messages are unknown-author mail (parameters: own addresses).
fn triage_message_pred(f: &TriageFilter) -> String {
    format!(
        "m.direction = 'in' AND m.customer_id IS NULL AND m.denied = 0 AND m.triage_state IS NULL
         AND (m.from_addr IS NULL OR m.from_addr NOT IN ({own}))",
        own = if f.own.is_empty() {
            "''".to_string()
        } else {
            placeholders(f.own.len())
        },
    )
}

/// Which locations put a message in the queue (parameters: accounts).
fn triage_location_pred(f: &TriageFilter) -> String {
    format!(
        "l.account_id IN ({acc})
         AND l.folder_id NOT IN (SELECT id FROM folders WHERE role IN ('sent', 'trash', 'junk', 'drafts'))",
        acc = placeholders(f.accounts.len()),
    )
}

/// The WHERE clause of the queue's page; parameters: own, then accounts. Its placeholders are
/// plain `?`, numbered in order, like every statement it goes into.
pub(super) fn triage_where(f: &TriageFilter) -> String {
    format!(
        "{} AND EXISTS (SELECT 1 FROM locations l WHERE l.message_id = m.id AND {})",
        triage_message_pred(f),
        triage_location_pred(f)
    )
}

/// The arguments of `triage_where`: own addresses, then accounts.
pub(super) fn filter_params(f: &TriageFilter) -> Vec<Arg<'_>> {
    f.own
        .iter()
        .chain(f.accounts.iter())
        .map(ToArg::arg)
        .collect()
}

/// Which rows of the queue a read returns. The queue is ordered newest first (date, then id;
/// mail without a date last).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TriageWindow<'a> {
    /// `limit` rows after skipping `offset`.
    Offset { offset: i64, limit: i64 },
    /// `limit` rows after the row (`date`, `id`) (keyset paging): the index seeks to `date`
    /// instead of stepping over every earlier row. Rows without a date sort last and are not
    /// reached this way; a caller falls back to `Offset` when a page comes short.
    After { date: &'a str, id: i64, limit: i64 },
    /// Rows `offset..offset+limit` counted from the oldest, still returned newest first:
    /// jumping to the end of 100k rows costs a short scan instead of skipping 100k rows.
    FromEnd { offset: i64, limit: i64 },
}

impl Store {
    /// The rows of the queue in `window` (the one triage query: the CLI's pages and the
    /// console's scrolling both read through it).
    pub fn triage_rows(
        &self,
        f: &TriageFilter,
        window: TriageWindow<'_>,
    ) -> Result<Vec<TriageRow>> {
        if f.accounts.is_empty() {
            return Ok(Vec::new());
        }
        let (extra, extra_params, offset, limit, asc): (&str, Vec<Arg<'_>>, i64, i64, bool) =
            match window {
                TriageWindow::Offset { offset, limit } => ("", Vec::new(), offset, limit, false),
                TriageWindow::After { date, id, limit } => (
                    "AND m.date <= ? AND (m.date < ? OR m.id < ?)",
                    vec![Arg::Text(date), Arg::Text(date), Arg::Int(id)],
                    0,
                    limit,
                    false,
                ),
                TriageWindow::FromEnd { offset, limit } => ("", Vec::new(), offset, limit, true),
            };
        // Mail without a date sorts last (SQLite's own order for DESC; said so for PostgreSQL,
        // which would put it first; SQLite plans the same with or without the words).
        let order = if asc {
            "m.date ASC NULLS FIRST, m.id ASC"
        } else {
            "m.date DESC NULLS LAST, m.id DESC"
        };
        let sql = format!(
            "SELECT m.id, m.from_addr, m.from_name, m.subject, m.date, m.message_id, m.in_reply_to, m.refs,
                    m.has_attachments, m.size,
                    EXISTS (SELECT 1 FROM locations l WHERE l.message_id = m.id AND l.seen = 1),
                    (SELECT l.account_id FROM locations l WHERE l.message_id = m.id AND l.account_id IN ({acc}) LIMIT 1)
             FROM messages m WHERE {w} {extra}
             ORDER BY {order} LIMIT ? OFFSET ?",
            acc = placeholders(f.accounts.len()),
            w = triage_where(f),
        );
        let mut p: Vec<Arg<'_>> = f.accounts.iter().map(ToArg::arg).collect();
        p.extend(filter_params(f));
        p.extend(extra_params);
        p.push(Arg::Int(limit));
        p.push(Arg::Int(offset));
        let mut rows = self.conn.rows(&sql, &p, |r| {
            Ok(TriageRow {
                id: r.get(0)?,
                from_addr: r.get(1)?,
                from_name: r.get(2)?,
                subject: r.get(3)?,
                date: r.get(4)?,
                message_id: r.get(5)?,
                in_reply_to: r.get(6)?,
                refs: r.get(7)?,
                has_attachments: r.get(8)?,
                size: r.get(9)?,
                seen: r.get(10)?,
                account_id: r.get::<Option<String>>(11)?.unwrap_or_default(),
            })
        })?;
        if asc {
            rows.reverse();
        }
        Ok(rows)
    }

    /// The queue's length (status, the dashboard, every page's total): the rule of
    /// `triage_rows`, from the counts kept per account (migration 14). The account with the
    /// longest queue is read from its kept count less its queued mail from own addresses
    /// (a lookup by sender); the queues of the others (usually short, often empty) are
    /// counted, without the mail already in the first one's.
    pub fn triage_count(&self, f: &TriageFilter) -> Result<i64> {
        let mut kept = Vec::with_capacity(f.accounts.len());
        for a in &f.accounts {
            kept.push((a, self.maintained_counts(a)?.queued));
        }
        let Some(&(big, queued)) = kept.iter().max_by_key(|(_, q)| *q) else {
            return Ok(0);
        };
        // `triage_message_pred`'s own list: '' when there is none.
        let none = [String::new()];
        let own: &[String] = if f.own.is_empty() { &none } else { &f.own };
        let mut p: Vec<Arg<'_>> = own.iter().map(ToArg::arg).collect();
        p.push(Arg::Text(big));
        let own_queued: i64 = self.conn.one(
            &format!(
                "SELECT COUNT(*) FROM messages m WHERE m.from_addr IN ({}) AND {QUEUE_MESSAGE}
                   AND EXISTS (SELECT 1 FROM locations l WHERE l.message_id = m.id AND l.account_id = ?
                               AND l.folder_id NOT IN {OUTSIDE_QUEUE})",
                placeholders(own.len())
            ),
            &p,
            |r| r.get(0),
        )?;
        let rest: Vec<String> = kept
            .iter()
            .filter(|(a, q)| *q > 0 && *a != big)
            .map(|(a, _)| a.to_string())
            .collect();
        if rest.is_empty() {
            return Ok(queued - own_queued);
        }
        let rest_filter = TriageFilter {
            accounts: rest,
            own: f.own.clone(),
        };
        let sql = format!(
            "SELECT COUNT(DISTINCT l.message_id) FROM locations l JOIN messages m ON m.id = l.message_id
             WHERE {} AND {}
               AND NOT EXISTS (SELECT 1 FROM locations o WHERE o.message_id = l.message_id AND o.account_id = ?
                               AND o.folder_id NOT IN {OUTSIDE_QUEUE})",
            triage_location_pred(&rest_filter),
            triage_message_pred(&rest_filter)
        );
        let mut p: Vec<Arg<'_>> = rest_filter.accounts.iter().map(ToArg::arg).collect();
        p.extend(rest_filter.own.iter().map(ToArg::arg));
        p.push(Arg::Text(big));
        let others: i64 = self.conn.one(&sql, &p, |r| r.get(0))?;
        Ok(queued - own_queued + others)
    }

    /// The queue's length counted over every location (what `triage_count` must equal).
    #[cfg(test)]
    pub fn triage_count_counted(&self, f: &TriageFilter) -> Result<i64> {
        if f.accounts.is_empty() {
            return Ok(0);
        }
        // The same rule as `triage_where`, driven from the account's locations (an index scan
        // in message order) instead of a correlated EXISTS per message: ~5× faster at 100k,
        // which is what keeps `status` fast.
        let sql = format!(
            "SELECT COUNT(DISTINCT l.message_id) FROM locations l JOIN messages m ON m.id = l.message_id
             WHERE {} AND {}",
            triage_location_pred(f),
            triage_message_pred(f)
        );
        let mut p: Vec<Arg<'_>> = f.accounts.iter().map(ToArg::arg).collect();
        p.extend(f.own.iter().map(ToArg::arg));
        self.conn.one(&sql, &p, |r| r.get(0))
    }

    /// Whether message `id` is in the queue under this filter.
    pub fn in_triage(&self, f: &TriageFilter, id: i64) -> Result<bool> {
        if f.accounts.is_empty() {
            return Ok(false);
        }
        let mut p = filter_params(f);
        p.push(Arg::Int(id));
        Ok(self
            .conn
            .first(
                &format!(
                    "SELECT 1 FROM messages m WHERE {} AND m.id = ?",
                    triage_where(f)
                ),
                &p,
                |_| Ok(()),
            )?
            .is_some())
    }

    pub fn message_detail(&self, id: i64) -> Result<Option<MessageDetail>> {
        let d = self.conn.first(
            "SELECT m.id, m.message_id, m.in_reply_to, m.refs, m.from_addr, m.from_name, m.to_json, m.cc_json,
                    m.subject, m.date, m.size, m.headers, COALESCE(b.raw, m.body), COALESCE(b.text, m.text_body),
                    m.direction, m.customer_id, m.denied, m.triage_state
             FROM messages m LEFT JOIN bodies b ON b.message_id = m.id WHERE m.id = ?1",
            args![id],
            |r| {
                Ok(MessageDetail {
                    id: r.get(0)?,
                    message_id: r.get(1)?,
                    in_reply_to: r.get(2)?,
                    refs: r.get(3)?,
                    from_addr: r.get(4)?,
                    from_name: r.get(5)?,
                    to_json: r.get(6)?,
                    cc_json: r.get(7)?,
                    subject: r.get(8)?,
                    date: r.get(9)?,
                    size: r.get(10)?,
                    headers: r.get(11)?,
                    body: r.get(12)?,
                    text_body: r.get(13)?,
                    direction: r.get(14)?,
                    customer_id: r.get(15)?,
                    denied: r.get(16)?,
                    triage_state: match r.get::<Option<String>>(17)? {
                        Some(_) => Some(enum_column(r, 17, TriageState::parse)?),
                        None => None,
                    },
                    locations: Vec::new(),
                })
            },
        )?;
        let Some(mut d) = d else { return Ok(None) };
        d.locations = self.message_locations(id)?;
        Ok(Some(d))
    }

    pub fn message_locations(&self, id: i64) -> Result<Vec<MessagePlace>> {
        self.conn.rows(
            "SELECT l.id, l.message_id, l.account_id, l.folder_id, f.name, f.wire_name, f.role, l.uidvalidity, l.uid,
                    l.flags, l.seen, l.modseq, l.internal_date
             FROM locations l JOIN folders f ON f.id = l.folder_id WHERE l.message_id = ?1 ORDER BY l.id",
            args![id],
            |r| {
                Ok(MessagePlace {
                    id: r.get(0)?,
                    message_id: r.get(1)?,
                    account_id: r.get(2)?,
                    folder_id: r.get(3)?,
                    folder: r.get(4)?,
                    wire_name: r.get(5)?,
                    role: r.get(6)?,
                    uidvalidity: r.get(7)?,
                    uid: r.get(8)?,
                    flags: r.get(9)?,
                    seen: r.get(10)?,
                    modseq: r.get(11)?,
                    internal_date: r.get(12)?,
                })
            },
        )
    }

    /// The folder with `role` in an account (e.g. the Trash to move into).
    pub fn role_folder(&self, account_id: &str, role: &str) -> Result<Option<FolderRef>> {
        self.conn.first(
            "SELECT id, name, wire_name, uidvalidity FROM folders
             WHERE account_id = ?1 AND role = ?2 AND present = 1 ORDER BY id LIMIT 1",
            args![account_id, role],
            folder_ref,
        )
    }

    pub fn folder_ref(&self, folder_id: i64) -> Result<Option<FolderRef>> {
        self.conn.first(
            "SELECT id, name, wire_name, uidvalidity FROM folders WHERE id = ?1",
            args![folder_id],
            folder_ref,
        )
    }

    /// Drops a location from the cache (a queued move takes it away at once).
    pub fn delete_location(&self, id: i64) -> Result<()> {
        self.conn
            .exec("DELETE FROM locations WHERE id = ?1", args![id])?;
        Ok(())
    }

    /// Puts a location back as it was; a no-op if sync has re-added it meanwhile.
    pub fn restore_location(&self, l: &MessagePlace) -> Result<()> {
        self.conn.exec(
            "INSERT INTO locations (id, message_id, account_id, folder_id, uidvalidity, uid, flags, seen, modseq, internal_date)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) ON CONFLICT DO NOTHING",
            args![l.id, l.message_id, l.account_id, l.folder_id, l.uidvalidity, l.uid, l.flags, l.seen, l.modseq, l.internal_date],
        )?;
        Ok(())
    }

    pub fn set_triage_state(&self, id: i64, state: Option<TriageState>) -> Result<()> {
        self.conn.exec(
            "UPDATE messages SET triage_state = ?2 WHERE id = ?1",
            args![id, state.map(TriageState::as_str)],
        )?;
        Ok(())
    }

    /// Ids and senders of an account's inbound messages (or every account's, for `None`),
    /// for counting and marking what a block affects.
    pub fn senders(&self, account_id: Option<&str>) -> Result<Vec<(i64, String, bool)>> {
        let sql = match account_id {
            Some(_) => "SELECT m.id, m.from_addr, m.denied FROM messages m WHERE m.from_addr IS NOT NULL
                        AND EXISTS (SELECT 1 FROM locations l WHERE l.message_id = m.id AND l.account_id = ?1)",
            None => "SELECT m.id, m.from_addr, m.denied FROM messages m WHERE m.from_addr IS NOT NULL AND ?1 IS NULL",
        };
        self.conn.rows(sql, args![account_id], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
    }

    pub fn set_denied(&self, ids: &[i64], denied: bool) -> Result<()> {
        for chunk in ids.chunks(CHUNK) {
            let mut p = vec![Arg::Int(i64::from(denied))];
            p.extend(chunk.iter().map(ToArg::arg));
            self.conn.exec(
                &format!(
                    "UPDATE messages SET denied = ? WHERE id IN ({})",
                    placeholders(chunk.len())
                ),
                &p,
            )?;
        }
        Ok(())
    }

    /// Queues a server change for the sync engine to replay (the durable queue of issue 3).
    pub fn insert_pending_op(
        &self,
        account_id: &str,
        location_id: Option<i64>,
        message_id: Option<i64>,
        op: &str,
        arg: Option<&str>,
    ) -> Result<i64> {
        self.conn.one(
            "INSERT INTO pending_ops (account_id, location_id, message_id, op, arg, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6) RETURNING id",
            args![account_id, location_id, message_id, op, arg, now()],
            |r| r.get(0),
        )
    }

    pub fn pending_op(&self, id: i64) -> Result<Option<PendingOpRow>> {
        self.conn.first(
            "SELECT id, account_id, location_id, message_id, op, arg, done_at, last_error FROM pending_ops WHERE id = ?1",
            args![id],
            |r| {
                Ok(PendingOpRow {
                    id: r.get(0)?,
                    account_id: r.get(1)?,
                    location_id: r.get(2)?,
                    message_id: r.get(3)?,
                    op: r.get(4)?,
                    arg: r.get(5)?,
                    done_at: r.get(6)?,
                    last_error: r.get(7)?,
                })
            },
        )
    }

    /// Withdraws a queued op that has not been replayed yet; false when it already ran.
    pub fn cancel_pending_op(&self, id: i64) -> Result<bool> {
        Ok(self.conn.exec(
            "DELETE FROM pending_ops WHERE id = ?1 AND done_at IS NULL",
            args![id],
        )? > 0)
    }

    pub fn insert_action(
        &self,
        operator: &str,
        kind: ActionKind,
        message_id: Option<i64>,
        payload: &serde_json::Value,
    ) -> Result<i64> {
        self.conn.one(
            "INSERT INTO actions (at, operator, kind, message_id, payload) VALUES (?1, ?2, ?3, ?4, ?5) RETURNING id",
            args![now(), operator, kind.as_str(), message_id, payload.to_string()],
            |r| r.get(0),
        )
    }

    pub fn action(&self, id: i64) -> Result<Option<ActionRow>> {
        self.conn.first(
            "SELECT id, at, operator, kind, message_id, payload, undone_at FROM actions WHERE id = ?1",
            args![id],
            action_row,
        )
    }

    /// The operator's newest action that is not undone yet.
    pub fn last_action(&self, operator: &str) -> Result<Option<ActionRow>> {
        self.conn.first(
            "SELECT id, at, operator, kind, message_id, payload, undone_at FROM actions
             WHERE operator = ?1 AND undone_at IS NULL ORDER BY id DESC LIMIT 1",
            args![operator],
            action_row,
        )
    }

    pub fn mark_undone(&self, id: i64) -> Result<bool> {
        Ok(self.conn.exec(
            "UPDATE actions SET undone_at = ?2 WHERE id = ?1 AND undone_at IS NULL",
            args![id, now()],
        )? > 0)
    }
}

fn folder_ref(r: &Row<'_>) -> Result<FolderRef> {
    Ok(FolderRef {
        id: r.get(0)?,
        name: r.get(1)?,
        wire_name: r.get(2)?,
        uidvalidity: r.get(3)?,
    })
}

fn action_row(r: &Row<'_>) -> Result<ActionRow> {
    let payload: String = r.get(5)?;
    Ok(ActionRow {
        id: r.get(0)?,
        at: r.get(1)?,
        operator: r.get(2)?,
        kind: enum_column(r, 3, ActionKind::parse)?,
        message_id: r.get(4)?,
        payload: serde_json::from_str(&payload).unwrap_or(serde_json::Value::Null),
        undone_at: r.get(6)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::FixtureMessage;

    /// The fast count and the rows are two spellings of one rule: they must agree.
    #[test]
    fn triage_count_agrees_with_the_rows() {
        crate::store::testing::each(|s| {
            let inbox = s.fixture_folder("a1", "INBOX", Some("inbox")).unwrap();
            s.fixture_folder("a1", "Archive", Some("archive")).unwrap();
            let sent = s.fixture_folder("a1", "Sent", Some("sent")).unwrap();
            let other = s.fixture_folder("a2", "INBOX", Some("inbox")).unwrap();
            let msg = |from: &str| FixtureMessage {
                from_addr: from.into(),
                subject: "s".into(),
                date: "2026-01-01T00:00:00Z".into(),
                direction: "in",
                ..Default::default()
            };
            let m1 = s.fixture_message("a1", inbox, 1, &msg("x@a.test")).unwrap();
            // Also in Archive: one message, counted once.
            s.fixture_add_location(m1, "a1", "archive", 1).unwrap();
            s.fixture_message("a1", inbox, 2, &msg("me@own.test"))
                .unwrap();
            s.fixture_message("a1", sent, 3, &msg("y@a.test")).unwrap();
            s.fixture_message("a2", other, 4, &msg("z@a.test")).unwrap();
            let denied = s
                .fixture_message("a1", inbox, 5, &msg("spam@a.test"))
                .unwrap();
            s.set_denied(&[denied], true).unwrap();
            for (accounts, own) in [
                (vec!["a1"], vec!["me@own.test"]),
                (vec!["a1"], vec![]),
                (vec!["a1", "a2"], vec!["me@own.test"]),
                (vec!["a2"], vec![]),
            ] {
                let f = TriageFilter {
                    accounts: accounts.iter().map(|s| s.to_string()).collect(),
                    own: own.iter().map(|s| s.to_string()).collect(),
                };
                let rows = s
                    .triage_rows(
                        &f,
                        TriageWindow::Offset {
                            offset: 0,
                            limit: 100,
                        },
                    )
                    .unwrap();
                assert_eq!(
                    s.triage_count(&f).unwrap(),
                    rows.len() as i64,
                    "{accounts:?} {own:?}"
                );
                for r in &rows {
                    assert!(s.in_triage(&f, r.id).unwrap());
                }
            }
            let f = TriageFilter {
                accounts: vec!["a1".into()],
                own: vec!["me@own.test".into()],
            };
            assert_eq!(s.triage_count(&f).unwrap(), 1);
            assert!(!s.in_triage(&f, denied).unwrap());
        });
    }

    #[test]
    fn keyset_far_end_and_offset_windows_agree() {
        crate::store::testing::each(|s| {
            s.conn
                .batch(
                    "INSERT INTO accounts (id, name, created_at, state, state_since) VALUES ('a','a','t','idle','t');
                     INSERT INTO folders (id, account_id, name, wire_name, role) VALUES (1,'a','INBOX','INBOX','inbox');",
                )
                .unwrap();
            for i in 1..=57i64 {
                // Ties on the date (three per minute) and a few without a date.
                let date = (i % 10 != 0).then(|| format!("2026-01-01T00:{:02}:00Z", i / 3));
                s.conn
                    .exec(
                        "INSERT INTO messages (id, content_hash, subject, date, created_at) VALUES (?1, ?2, ?2, ?3, 't')",
                        args![i, i.to_string(), date],
                    )
                    .unwrap();
                s.conn
                    .exec(
                        "INSERT INTO locations (message_id, account_id, folder_id, uidvalidity, uid) VALUES (?1, 'a', 1, 1, ?1)",
                        args![i],
                    )
                    .unwrap();
            }
            let f = TriageFilter {
                accounts: vec!["a".into()],
                own: vec![],
            };
            fn ids(s: &Store, f: &TriageFilter, w: TriageWindow<'_>) -> Vec<i64> {
                s.triage_rows(f, w).unwrap().iter().map(|m| m.id).collect()
            }
            let all = ids(
                s,
                &f,
                TriageWindow::Offset {
                    offset: 0,
                    limit: 100,
                },
            );
            assert_eq!(all.len(), 57);
            // Newest first, mail without a date last.
            assert_eq!(all[..4], [57, 56, 55, 54]);
            assert_eq!(all[52..], [50, 40, 30, 20, 10]);
            assert_eq!(s.triage_count(&f).unwrap(), 57);
            for offset in [1usize, 7, 20, 40] {
                let anchor = s
                    .triage_rows(
                        &f,
                        TriageWindow::Offset {
                            offset: offset as i64 - 1,
                            limit: 1,
                        },
                    )
                    .unwrap()
                    .remove(0);
                let date = anchor.date.clone().unwrap();
                let keyset = ids(
                    s,
                    &f,
                    TriageWindow::After {
                        date: &date,
                        id: anchor.id,
                        limit: 5,
                    },
                );
                assert_eq!(keyset, all[offset..offset + 5], "after offset {offset}");
            }
            let tail = ids(
                s,
                &f,
                TriageWindow::FromEnd {
                    offset: 0,
                    limit: 6,
                },
            );
            assert_eq!(tail, all[51..]);
            // No visible account: an empty queue, not every account's.
            assert_eq!(s.triage_count(&TriageFilter::default()).unwrap(), 0);
            assert!(
                s.triage_rows(
                    &TriageFilter::default(),
                    TriageWindow::Offset {
                        offset: 0,
                        limit: 10
                    }
                )
                .unwrap()
                .is_empty()
            );
        });
    }

    #[test]
    fn actions_pending_ops_locations_and_details_round_trip() {
        crate::store::testing::each(|s| {
            let inbox = s.fixture_folder("a1", "INBOX", Some("inbox")).unwrap();
            let trash = s.fixture_folder("a1", "Trash", Some("trash")).unwrap();
            let m = s
                .fixture_message(
                    "a1",
                    inbox,
                    7,
                    &FixtureMessage {
                        from_addr: "x@a.test".into(),
                        subject: "hi".into(),
                        date: "2026-01-01T00:00:00Z".into(),
                        body: Some(b"raw \xff bytes".to_vec()),
                        ..Default::default()
                    },
                )
                .unwrap();
            let d = s.message_detail(m).unwrap().unwrap();
            assert_eq!(d.body.as_deref(), Some(&b"raw \xff bytes"[..]));
            assert!(!d.denied);
            assert_eq!(d.triage_state, None);
            assert_eq!(d.locations.len(), 1);
            assert!(s.message_detail(m + 1000).unwrap().is_none());
            let place = d.locations[0].clone();
            assert_eq!((place.folder.as_str(), place.uid), ("INBOX", 7));
            assert_eq!(s.role_folder("a1", "trash").unwrap().unwrap().id, trash);
            assert_eq!(s.folder_ref(inbox).unwrap().unwrap().name, "INBOX");
            assert!(s.role_folder("a1", "junk").unwrap().is_none());

            // Delete, then undo: the location comes back as it was; twice is a no-op.
            s.delete_location(place.id).unwrap();
            assert!(s.message_locations(m).unwrap().is_empty());
            s.restore_location(&place).unwrap();
            s.restore_location(&place).unwrap();
            assert_eq!(s.message_locations(m).unwrap()[0].id, place.id);
            s.set_triage_state(m, Some(TriageState::Deleted)).unwrap();
            assert_eq!(
                s.message_detail(m).unwrap().unwrap().triage_state,
                Some(TriageState::Deleted)
            );

            let op = s
                .insert_pending_op("a1", Some(place.id), Some(m), "move", Some("Trash"))
                .unwrap();
            let row = s.pending_op(op).unwrap().unwrap();
            assert_eq!(
                (row.op.as_str(), row.arg.as_deref()),
                ("move", Some("Trash"))
            );
            s.fixture_mark_op_done(op).unwrap();
            assert!(!s.cancel_pending_op(op).unwrap(), "already replayed");
            let op2 = s
                .insert_pending_op("a1", None, Some(m), "flag", None)
                .unwrap();
            assert!(op2 > op);
            assert!(s.cancel_pending_op(op2).unwrap());
            assert!(s.pending_op(op2).unwrap().is_none());

            let payload = serde_json::json!({"customer_id": 3});
            let a1 = s
                .insert_action("eve", ActionKind::Pair, Some(m), &payload)
                .unwrap();
            let a2 = s
                .insert_action("eve", ActionKind::Block, None, &payload)
                .unwrap();
            assert_eq!(s.last_action("eve").unwrap().unwrap().id, a2);
            assert!(s.mark_undone(a2).unwrap());
            assert!(!s.mark_undone(a2).unwrap());
            let last = s.last_action("eve").unwrap().unwrap();
            assert_eq!(
                (last.id, last.kind, last.payload),
                (a1, ActionKind::Pair, payload)
            );
            assert!(s.last_action("bob").unwrap().is_none());
            assert!(s.action(a2).unwrap().unwrap().undone_at.is_some());

            let senders = s.senders(Some("a1")).unwrap();
            assert_eq!(senders, vec![(m, "x@a.test".to_string(), false)]);
            s.set_denied(&[m], true).unwrap();
            assert!(s.senders(None).unwrap()[0].2);
            assert!(s.senders(Some("a2")).unwrap().is_empty());
        });
    }

    #[test]
    fn an_unknown_action_kind_is_named_not_taken() {
        crate::store::testing::each(|s| {
            let id: i64 = s
                .conn
                .one(
                    "INSERT INTO actions (at, operator, kind, payload) VALUES ('t', 'eve', 'teleport', '{}') RETURNING id",
                    &[],
                    |r| r.get(0),
                )
                .unwrap();
            let e = s.action(id).unwrap_err();
            assert!(e.detail.contains("teleport"), "{e:?}");
        });
    }
}
