//! Typed queries on the durable send queue (`outbox`). Every state change is one committed
//! transaction together with its audit entry, so a crash between two steps resumes from the last
//! committed state and the audit log never disagrees with the queue.

use serde::{Deserialize, Serialize};

use super::sql::{Arg, Kind, Owned, Row, ToArg, Typed, in_list, owned_args};
use super::{Store, now};
use crate::args;
use crate::error::{AppError, Result};

/// An item's state (contract): queued → sending → sent → copied → verified, plus uncertain,
/// failed, cancelled. Stored as its contract word.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutboxState {
    Queued,
    Sending,
    Uncertain,
    Sent,
    Copied,
    Verified,
    Failed,
    Cancelled,
}

impl OutboxState {
    pub const ALL: [OutboxState; 8] = [
        OutboxState::Queued,
        OutboxState::Sending,
        OutboxState::Uncertain,
        OutboxState::Sent,
        OutboxState::Copied,
        OutboxState::Verified,
        OutboxState::Failed,
        OutboxState::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            OutboxState::Queued => "queued",
            OutboxState::Sending => "sending",
            OutboxState::Uncertain => "uncertain",
            OutboxState::Sent => "sent",
            OutboxState::Copied => "copied",
            OutboxState::Verified => "verified",
            OutboxState::Failed => "failed",
            OutboxState::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<OutboxState> {
        OutboxState::ALL.into_iter().find(|v| v.as_str() == s)
    }

    /// The SMTP server accepted it (its Sent copy may still be pending).
    pub fn accepted(self) -> bool {
        matches!(
            self,
            OutboxState::Sent | OutboxState::Copied | OutboxState::Verified
        )
    }
}

/// The Sent copy's sub-state (contract): pending, appended, filed_by_server, skipped, failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CopyState {
    Pending,
    Appended,
    FiledByServer,
    Skipped,
    Failed,
}

impl CopyState {
    pub const ALL: [CopyState; 5] = [
        CopyState::Pending,
        CopyState::Appended,
        CopyState::FiledByServer,
        CopyState::Skipped,
        CopyState::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CopyState::Pending => "pending",
            CopyState::Appended => "appended",
            CopyState::FiledByServer => "filed_by_server",
            CopyState::Skipped => "skipped",
            CopyState::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<CopyState> {
        CopyState::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

impl std::fmt::Display for OutboxState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::fmt::Display for CopyState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A state word the database holds but this version does not know.
fn unknown(what: &str, text: &str) -> AppError {
    AppError::local(
        format!("the outbox holds an unknown {what} {text:?}"),
        "it was written by another version of mailroom",
        "upgrade mailroom, or use the version that wrote it",
    )
}

/// A state column, read as its contract word.
fn state_column<T>(
    r: &Row<'_>,
    i: usize,
    what: &str,
    parse: fn(&str) -> Option<T>,
) -> Result<Option<T>> {
    match r.get::<Option<String>>(i)? {
        None => Ok(None),
        Some(t) => parse(&t).map(Some).ok_or_else(|| unknown(what, &t)),
    }
}

impl ToArg for OutboxState {
    fn arg(&self) -> Arg<'_> {
        Arg::Text(self.as_str())
    }
}

impl ToArg for CopyState {
    fn arg(&self) -> Arg<'_> {
        Arg::Text(self.as_str())
    }
}

impl Typed for OutboxState {
    const KIND: Kind = Kind::Text;
}

impl Typed for CopyState {
    const KIND: Kind = Kind::Text;
}

/// `'a','b'` for an `IN (…)` list of known words (never user text).
fn sql_words<'a>(words: impl IntoIterator<Item = &'a str>) -> String {
    words
        .into_iter()
        .map(|w| format!("'{w}'"))
        .collect::<Vec<_>>()
        .join(",")
}

#[derive(Debug, Clone, Serialize)]
pub struct OutboxRow {
    pub id: i64,
    pub account_id: String,
    pub operator: Option<String>,
    pub from_addr: String,
    pub rcpts: Vec<String>,
    pub message_id: String,
    pub subject: Option<String>,
    pub state: OutboxState,
    pub copy_state: Option<CopyState>,
    pub copy_folder: Option<String>,
    pub copy_uid: Option<i64>,
    pub copy_uidvalidity: Option<i64>,
    pub copy_note: Option<String>,
    pub attempts: i64,
    pub copy_attempts: i64,
    pub last_error_what: Option<String>,
    pub last_error_fix: Option<String>,
    pub last_error_at: Option<String>,
    pub next_attempt_at: Option<String>,
    pub in_reply_to: Option<String>,
    pub thread_message_id: Option<i64>,
    pub created_at: String,
    pub updated_at: String,
    pub sent_at: Option<String>,
    pub verified_at: Option<String>,
    pub size: Option<i64>,
    pub claim: Option<String>,
    pub claim_until: Option<String>,
    /// What our Sent copy carries as `X-Mailroom-Copy` (set, committed, before it is appended).
    pub copy_token: Option<String>,
}

const COLUMNS: &str = "id, account_id, operator, from_addr, rcpt_json, message_id, subject, state, copy_state, copy_folder, copy_uid, copy_uidvalidity, copy_note, attempts, copy_attempts, last_error_what, last_error_fix, last_error_at, next_attempt_at, in_reply_to, thread_message_id, created_at, updated_at, sent_at, verified_at, size, claim, claim_until, copy_token";

fn row(r: &Row<'_>) -> Result<OutboxRow> {
    let rcpt: String = r.get(4)?;
    Ok(OutboxRow {
        id: r.get(0)?,
        account_id: r.get(1)?,
        operator: r.get(2)?,
        from_addr: r.get(3)?,
        rcpts: serde_json::from_str(&rcpt).unwrap_or_default(),
        message_id: r.get(5)?,
        subject: r.get(6)?,
        state: state_column(r, 7, "state", OutboxState::parse)?
            .ok_or_else(|| unknown("state", ""))?,
        copy_state: state_column(r, 8, "copy state", CopyState::parse)?,
        copy_folder: r.get(9)?,
        copy_uid: r.get(10)?,
        copy_uidvalidity: r.get(11)?,
        copy_note: r.get(12)?,
        attempts: r.get(13)?,
        copy_attempts: r.get(14)?,
        last_error_what: r.get(15)?,
        last_error_fix: r.get(16)?,
        last_error_at: r.get(17)?,
        next_attempt_at: r.get(18)?,
        in_reply_to: r.get(19)?,
        thread_message_id: r.get(20)?,
        created_at: r.get(21)?,
        updated_at: r.get(22)?,
        sent_at: r.get(23)?,
        verified_at: r.get(24)?,
        size: r.get(25)?,
        claim: r.get(26)?,
        claim_until: r.get(27)?,
        copy_token: r.get(28)?,
    })
}

/// (bytes for SMTP, Sent copy bytes when they differ)
pub type RawPair = (Vec<u8>, Option<Vec<u8>>);

/// A message about to enter the queue, with its exact bytes.
#[derive(Debug, Clone)]
pub struct NewOutbox {
    pub account_id: String,
    pub operator: String,
    pub from_addr: String,
    pub rcpts: Vec<String>,
    pub message_id: String,
    pub subject: Option<String>,
    pub raw: Vec<u8>,
    pub copy_raw: Option<Vec<u8>>,
    pub copy_note: Option<String>,
    /// `skipped` when copies are off for the account, else `pending`.
    pub copy_state: CopyState,
    pub in_reply_to: Option<String>,
    pub thread_message_id: Option<i64>,
}

/// One state change; `None` fields stay as they are.
#[derive(Debug, Clone, Default)]
pub struct Change {
    pub state: Option<OutboxState>,
    pub copy_state: Option<CopyState>,
    pub attempts_inc: bool,
    pub copy_attempts_inc: bool,
    /// Some(Some((what, fix))) records an error, Some(None) clears it.
    pub error: Option<Option<(String, String)>>,
    pub next_attempt_at: Option<Option<String>>,
    pub sent_at: Option<String>,
    pub verified_at: Option<String>,
    pub copy_folder: Option<String>,
    /// (uidvalidity, uid)
    pub copy_uid: Option<(i64, Option<i64>)>,
    /// Some(Some((claim, until))) sets the claim, Some(None) releases it.
    pub claim: Option<Option<(String, String)>>,
}

/// What is known about a server filing sent mail into one folder itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentFiling {
    pub server_files: bool,
    /// When this was concluded.
    pub since: String,
    /// What it was concluded from (for people).
    pub evidence: String,
}

/// The parts of a cached message that a reply needs.
#[derive(Debug, Clone)]
pub struct ReplyBase {
    pub id: i64,
    pub message_id: Option<String>,
    pub refs: Option<String>,
    pub from_addr: Option<String>,
    pub from_name: Option<String>,
    pub to_json: String,
    pub cc_json: String,
    pub subject: Option<String>,
    pub date: Option<String>,
    pub headers: Option<Vec<u8>>,
    pub body: Option<Vec<u8>>,
    pub text_body: Option<String>,
    pub thread_id: Option<i64>,
    /// Accounts holding a copy of it (to pick the replying account).
    pub account_ids: Vec<String>,
}

impl Store {
    pub fn outbox_insert(&self, n: &NewOutbox, audit_detail: &serde_json::Value) -> Result<i64> {
        let c = &self.conn;
        c.tx(|| {
            let t = now();
            let id: i64 = c.one(
                "INSERT INTO outbox (account_id, operator, from_addr, rcpt_json, message_id, subject, raw, copy_raw, copy_note, state, copy_state, in_reply_to, thread_message_id, created_at, updated_at, size)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 'queued', ?10, ?11, ?12, ?13, ?13, ?14) RETURNING id",
                args![
                    n.account_id,
                    n.operator,
                    n.from_addr,
                    serde_json::to_string(&n.rcpts).unwrap_or_else(|_| "[]".into()),
                    n.message_id,
                    n.subject,
                    n.raw,
                    n.copy_raw,
                    n.copy_note,
                    n.copy_state,
                    n.in_reply_to,
                    n.thread_message_id,
                    t,
                    n.raw.len(),
                ],
                |r| r.get(0),
            )?;
            c.exec(
                "INSERT INTO audit (at, operator, action, account_id, target, detail) VALUES (?1, ?2, 'outbox.queued', ?3, ?4, ?5)",
                args![t, n.operator, n.account_id, format!("outbox:{id}"), audit_detail.to_string()],
            )?;
            Ok(id)
        })
    }

    pub fn outbox_get(&self, id: i64) -> Result<Option<OutboxRow>> {
        self.conn.first(
            &format!("SELECT {COLUMNS} FROM outbox WHERE id = ?1"),
            args![id],
            row,
        )
    }

    /// One page of the items of `account_ids` (those the operator may see), newest first.
    /// No accounts: nothing.
    pub fn outbox_page(
        &self,
        account_ids: &[String],
        offset: i64,
        limit: i64,
    ) -> Result<Vec<OutboxRow>> {
        if account_ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut values = vec![Owned::Int(limit), Owned::Int(offset)];
        values.extend(account_ids.iter().map(|a| Owned::Text(a.clone())));
        self.conn.rows(
            &format!(
                "SELECT {COLUMNS} FROM outbox WHERE account_id IN ({}) ORDER BY id DESC LIMIT ?1 OFFSET ?2",
                in_list(3, account_ids.len())
            ),
            &owned_args(&values),
            row,
        )
    }

    /// How many items `account_ids` have.
    pub fn outbox_count(&self, account_ids: &[String]) -> Result<i64> {
        if account_ids.is_empty() {
            return Ok(0);
        }
        let values: Vec<Owned> = account_ids.iter().map(|a| Owned::Text(a.clone())).collect();
        self.conn.one(
            &format!(
                "SELECT COUNT(*) FROM outbox WHERE account_id IN ({})",
                in_list(1, values.len())
            ),
            &owned_args(&values),
            |r| r.get(0),
        )
    }

    /// The account an item belongs to (None: no such item). What the visibility gate asks.
    pub fn outbox_account_id(&self, id: i64) -> Result<Option<String>> {
        self.conn.first(
            "SELECT account_id FROM outbox WHERE id = ?1",
            args![id],
            |r| r.get(0),
        )
    }

    /// The bytes SMTP sends, and the Sent copy's own bytes when they differ.
    pub fn outbox_raw(&self, id: i64) -> Result<Option<RawPair>> {
        self.conn.first(
            "SELECT raw, copy_raw FROM outbox WHERE id = ?1",
            args![id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
    }

    /// Ids in `states` whose next attempt is due (`force`: regardless of the time), oldest first.
    pub fn outbox_due(
        &self,
        account_id: &str,
        states: &[OutboxState],
        copy_states: Option<&[CopyState]>,
        at: &str,
        force: bool,
    ) -> Result<Vec<i64>> {
        let mut sql = format!(
            "SELECT id FROM outbox WHERE account_id = ?1 AND state IN ({})",
            sql_words(states.iter().map(|s| s.as_str()))
        );
        if let Some(cs) = copy_states {
            sql.push_str(&format!(
                " AND copy_state IN ({})",
                sql_words(cs.iter().map(|s| s.as_str()))
            ));
        }
        if !force {
            sql.push_str(" AND (next_attempt_at IS NULL OR next_attempt_at <= ?2)");
        } else {
            sql.push_str(" AND ?2 IS NOT NULL");
        }
        sql.push_str(" ORDER BY id");
        self.conn.rows(&sql, args![account_id, at], |r| r.get(0))
    }

    /// Copies that only wait for their batch time (never tried yet).
    pub fn outbox_waiting_batch(&self, account_id: &str) -> Result<Vec<i64>> {
        self.conn.rows(
            "SELECT id FROM outbox WHERE account_id = ?1 AND state = 'sent' AND copy_state = 'pending' AND copy_attempts = 0 ORDER BY id",
            args![account_id],
            |r| r.get(0),
        )
    }

    /// Accounts that have anything left to drive.
    pub fn outbox_active_accounts(&self) -> Result<Vec<String>> {
        self.conn.rows(
            "SELECT DISTINCT account_id FROM outbox
             WHERE state IN ('queued','sending','uncertain')
                OR (state IN ('sent','copied') AND copy_state IN ('pending','appended'))",
            &[],
            |r| r.get(0),
        )
    }

    /// The earliest time something becomes due (for the background worker's sleep).
    pub fn outbox_next_due(&self) -> Result<Option<String>> {
        self.conn.one(
            "SELECT MIN(COALESCE(next_attempt_at, '')) FROM outbox
             WHERE state = 'queued' OR (state IN ('sent','copied') AND copy_state IN ('pending','appended'))",
            &[],
            |r| r.get(0),
        )
    }

    /// Items left in `sending` (the process that marked them may have died).
    pub fn outbox_in_sending(&self) -> Result<Vec<OutboxRow>> {
        self.conn.rows(
            &format!("SELECT {COLUMNS} FROM outbox WHERE state = 'sending' ORDER BY id"),
            &[],
            row,
        )
    }

    /// Takes the item for one step unless another live process holds it (a claim whose
    /// process is gone, or whose deadline passed, is taken over). Returns false when it is not
    /// in `states` any more or someone else holds it.
    pub fn outbox_claim(
        &self,
        id: i64,
        states: &[OutboxState],
        claim: &str,
        until: &str,
        at: &str,
    ) -> Result<bool> {
        type Held = (Option<String>, Option<String>);
        let held: Option<Held> = self.conn.first(
            "SELECT claim, claim_until FROM outbox WHERE id = ?1",
            args![id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        let Some((old, old_until)) = held else {
            return Ok(false);
        };
        if old.as_deref().is_some_and(|o| o != claim)
            && !claim_is_dead(old.as_deref(), old_until.as_deref(), at)
        {
            return Ok(false);
        }
        let list = sql_words(states.iter().map(|s| s.as_str()));
        // Compare-and-set on the claim we saw, so two takers never both win (null-safe
        // equality spelled out: `IS` is SQLite's, `IS NOT DISTINCT FROM` PostgreSQL's).
        let n = self.conn.exec(
            &format!(
                "UPDATE outbox SET claim = ?2, claim_until = ?3
                 WHERE id = ?1 AND state IN ({list}) AND (claim = ?4 OR (claim IS NULL AND ?4 IS NULL))"
            ),
            args![id, claim, until, old],
        )?;
        Ok(n == 1)
    }

    pub fn outbox_release(&self, id: i64, claim: &str) -> Result<()> {
        self.conn.exec(
            "UPDATE outbox SET claim = NULL, claim_until = NULL WHERE id = ?1 AND claim = ?2",
            args![id, claim],
        )?;
        Ok(())
    }

    /// Applies one change if the item is still in one of `from` (None = any), committing it
    /// with its audit entry. Returns false (and changes nothing) when the state moved on.
    pub fn outbox_change(
        &self,
        id: i64,
        from: Option<&[OutboxState]>,
        change: &Change,
        operator: &str,
        action: &str,
        detail: &serde_json::Value,
    ) -> Result<bool> {
        let t = now();
        let (sets, vals) = change_sets(change, id, &t);
        let mut sql = format!("UPDATE outbox SET {} WHERE id = ?1", sets.join(", "));
        if let Some(from) = from {
            let list = sql_words(from.iter().map(|s| s.as_str()));
            sql.push_str(&format!(" AND state IN ({list})"));
        }
        let c = &self.conn;
        c.tx(|| {
            let n = c.exec(&sql, &owned_args(&vals))?;
            if n == 1 {
                let account: Option<String> = c.first(
                    "SELECT account_id FROM outbox WHERE id = ?1",
                    args![id],
                    |r| r.get(0),
                )?;
                c.exec(
                    "INSERT INTO audit (at, operator, action, account_id, target, detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    args![t, operator, action, account, format!("outbox:{id}"), detail.to_string()],
                )?;
            }
            Ok(n == 1)
        })
    }

    /// The token our Sent copy of item `id` carries, committed before the copy is appended:
    /// the one it has, else `fresh`. None: no such item.
    pub fn outbox_copy_token(&self, id: i64, fresh: &str) -> Result<Option<String>> {
        self.conn.exec(
            "UPDATE outbox SET copy_token = ?2 WHERE id = ?1 AND copy_token IS NULL",
            args![id, fresh],
        )?;
        Ok(self
            .conn
            .first(
                "SELECT copy_token FROM outbox WHERE id = ?1",
                args![id],
                |r| r.get::<Option<String>>(0),
            )?
            .flatten())
    }

    /// Whether the server is known to file this account's sent mail into `folder` by itself
    /// (learned from a copy there that mailroom did not append), so the copy step waits for the
    /// server's copy before appending one. Per folder: a server that files into Sent says
    /// nothing about a per-type copy folder.
    pub fn sent_filing(&self, account_id: &str, folder: &str) -> Result<Option<SentFiling>> {
        self.conn.first(
            "SELECT server_files, since, evidence FROM sent_filing WHERE account_id = ?1 AND folder = ?2",
            args![account_id, folder],
            |r| {
                Ok(SentFiling {
                    server_files: r.get(0)?,
                    since: r.get(1)?,
                    evidence: r.get(2)?,
                })
            },
        )
    }

    /// Records what was learned about the server filing into `folder`; returns whether that
    /// changed the conclusion (so the change is told once, not on every copy).
    pub fn set_sent_filing(
        &self,
        account_id: &str,
        folder: &str,
        server_files: bool,
        evidence: &str,
    ) -> Result<bool> {
        let n = self.conn.exec(
            "INSERT INTO sent_filing (account_id, folder, server_files, since, evidence) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (account_id, folder) DO UPDATE SET server_files = ?3, since = ?4, evidence = ?5
             WHERE sent_filing.server_files <> ?3",
            args![account_id, folder, server_files, now(), evidence],
        )?;
        Ok(n == 1)
    }

    /// A cached message to reply to, or None.
    pub fn reply_base(&self, id: i64) -> Result<Option<ReplyBase>> {
        let base = self.conn.first(
            "SELECT m.id, m.message_id, m.refs, m.from_addr, m.from_name, m.to_json, m.cc_json, m.subject, m.date, m.headers,
                    COALESCE(b.raw, m.body), COALESCE(b.text, m.text_body), m.thread_id
             FROM messages m LEFT JOIN bodies b ON b.message_id = m.id WHERE m.id = ?1",
            args![id],
            |r| {
                Ok(ReplyBase {
                    id: r.get(0)?,
                    message_id: r.get(1)?,
                    refs: r.get(2)?,
                    from_addr: r.get(3)?,
                    from_name: r.get(4)?,
                    to_json: r.get(5)?,
                    cc_json: r.get(6)?,
                    subject: r.get(7)?,
                    date: r.get(8)?,
                    headers: r.get(9)?,
                    body: r.get(10)?,
                    text_body: r.get(11)?,
                    thread_id: r.get(12)?,
                    account_ids: Vec::new(),
                })
            },
        )?;
        let Some(mut base) = base else {
            return Ok(None);
        };
        base.account_ids = self.conn.rows(
            "SELECT DISTINCT account_id FROM locations WHERE message_id = ?1 ORDER BY account_id",
            args![id],
            |r| r.get(0),
        )?;
        Ok(Some(base))
    }

    /// Finds a cached message by its Message-ID (without <>).
    pub fn message_by_message_id(&self, message_id: &str) -> Result<Option<i64>> {
        self.conn.first(
            "SELECT id FROM messages WHERE message_id = ?1 ORDER BY id LIMIT 1",
            args![message_id],
            |r| r.get(0),
        )
    }
}

/// The `SET` list of one change and its values: `?1` is the item's id, `?2` the time.
fn change_sets(change: &Change, id: i64, t: &str) -> (Vec<String>, Vec<Owned>) {
    let mut sets: Vec<String> = vec!["updated_at = ?2".into()];
    let mut vals: Vec<Owned> = vec![Owned::Int(id), Owned::Text(t.to_string())];
    let mut push = |col: &str, v: Owned, sets: &mut Vec<String>| {
        vals.push(v);
        sets.push(format!("{col} = ?{}", vals.len()));
    };
    let text = |s: &str| Owned::Text(s.to_string());
    let opt = |s: Option<&str>| s.map_or(Owned::Null(Kind::Text), text);
    if let Some(s) = change.state {
        push("state", text(s.as_str()), &mut sets);
    }
    if let Some(s) = change.copy_state {
        push("copy_state", text(s.as_str()), &mut sets);
    }
    if let Some(e) = &change.error {
        let (what, fix) = match e {
            Some((w, f)) => (Some(w.as_str()), Some(f.as_str())),
            None => (None, None),
        };
        push("last_error_what", opt(what), &mut sets);
        push("last_error_fix", opt(fix), &mut sets);
        push("last_error_at", opt(e.as_ref().map(|_| t)), &mut sets);
    }
    if let Some(n) = &change.next_attempt_at {
        push("next_attempt_at", opt(n.as_deref()), &mut sets);
    }
    if let Some(s) = &change.sent_at {
        push("sent_at", text(s), &mut sets);
    }
    if let Some(s) = &change.verified_at {
        push("verified_at", text(s), &mut sets);
    }
    if let Some(s) = &change.copy_folder {
        push("copy_folder", text(s), &mut sets);
    }
    if let Some((validity, uid)) = change.copy_uid {
        push("copy_uidvalidity", Owned::Int(validity), &mut sets);
        push(
            "copy_uid",
            uid.map_or(Owned::Null(Kind::Int), Owned::Int),
            &mut sets,
        );
    }
    if let Some(c) = &change.claim {
        let (claim, until) = match c {
            Some((c, u)) => (Some(c.as_str()), Some(u.as_str())),
            None => (None, None),
        };
        push("claim", opt(claim), &mut sets);
        push("claim_until", opt(until), &mut sets);
    }
    if change.attempts_inc {
        sets.push("attempts = attempts + 1".into());
    }
    if change.copy_attempts_inc {
        sets.push("copy_attempts = copy_attempts + 1".into());
    }
    (sets, vals)
}

/// The claim time of a process whose claims are renewed (a daemon: its lease time); 0: none.
static RENEWED_CLAIM_SECS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// A daemon renews its claims with its leases (`renew_claims`), so they last the lease time:
/// a daemon killed with -9 lets its items go after that, not after the usual hour.
pub fn renew_claims_every_lease(secs: u64) {
    RENEWED_CLAIM_SECS.store(secs.max(1), std::sync::atomic::Ordering::Relaxed);
}

/// How long a claim meant to last `default` seconds is taken for by this process.
pub fn claim_secs(default: u64) -> u64 {
    match RENEWED_CLAIM_SECS.load(std::sync::atomic::Ordering::Relaxed) {
        0 => default,
        secs => secs.min(default),
    }
}

impl Store {
    /// Renews every outbox claim this process holds (`claim_tag`) until `until`.
    pub fn renew_claims(&self, until: &str) -> Result<u64> {
        self.conn.exec(
            "UPDATE outbox SET claim_until = ?2 WHERE claim = ?1 AND claim_until IS NOT NULL",
            args![claim_tag(), until],
        )
    }
}

/// This process's claim tag: host id (`config::host`), pid and a random token.
pub fn claim_tag() -> String {
    use std::sync::OnceLock;
    static TAG: OnceLock<String> = OnceLock::new();
    TAG.get_or_init(|| {
        format!(
            "{}:{}:{}",
            crate::config::host::id(),
            std::process::id(),
            crate::model::new_id()
        )
    })
    .clone()
}

/// Whether the process named by a claim tag is gone (same host id: its pid no longer exists;
/// another host id: the claim expired — its pid is never looked at).
pub fn claim_is_dead(claim: Option<&str>, until: Option<&str>, at: &str) -> bool {
    let Some(claim) = claim else { return true };
    if claim == claim_tag() {
        return false;
    }
    let mut parts = claim.splitn(3, ':');
    let host = parts.next().unwrap_or("");
    let pid = parts.next().and_then(|p| p.parse::<u32>().ok());
    if host == crate::config::host::id()
        && let Some(pid) = pid
    {
        // Same host: a pid that exists but is a different process is possible after a
        // reboot; the claim deadline covers that case.
        let alive = super::leases::process_alive(pid as i64);
        return !alive || until.is_some_and(|u| u < at);
    }
    until.is_none_or(|u| u < at)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item() -> NewOutbox {
        NewOutbox {
            account_id: "a1".into(),
            operator: "op".into(),
            from_addr: "a@example.test".into(),
            rcpts: vec!["b@example.test".into()],
            message_id: "x@example.test".into(),
            subject: Some("hi".into()),
            raw: b"Subject: hi\r\n\r\nbody\r\n".to_vec(),
            copy_raw: None,
            copy_note: None,
            copy_state: CopyState::Pending,
            in_reply_to: None,
            thread_message_id: None,
        }
    }

    #[test]
    fn states_are_their_contract_words_in_sql_and_json() {
        for st in OutboxState::ALL {
            assert_eq!(OutboxState::parse(st.as_str()), Some(st));
            assert_eq!(serde_json::to_value(st).unwrap(), st.as_str());
        }
        for c in CopyState::ALL {
            assert_eq!(CopyState::parse(c.as_str()), Some(c));
            assert_eq!(serde_json::to_value(c).unwrap(), c.as_str());
        }
        assert_eq!(CopyState::FiledByServer.as_str(), "filed_by_server");
        assert!(OutboxState::parse("bogus").is_none());
    }

    #[test]
    fn changes_are_conditional_and_audited() {
        crate::store::testing::each(|s| {
            let id = s.outbox_insert(&item(), &serde_json::json!({})).unwrap();
            let r = s.outbox_get(id).unwrap().unwrap();
            assert_eq!(
                (r.state, r.copy_state),
                (OutboxState::Queued, Some(CopyState::Pending))
            );
            let ch = Change {
                state: Some(OutboxState::Sending),
                ..Default::default()
            };
            assert!(
                s.outbox_change(
                    id,
                    Some(&[OutboxState::Queued]),
                    &ch,
                    "op",
                    "outbox.sending",
                    &serde_json::json!({})
                )
                .unwrap()
            );
            // Not queued any more: a second claim of the same step changes nothing.
            assert!(
                !s.outbox_change(
                    id,
                    Some(&[OutboxState::Queued]),
                    &ch,
                    "op",
                    "outbox.sending",
                    &serde_json::json!({})
                )
                .unwrap()
            );
            let audit = s.audit_rows(10).unwrap();
            assert_eq!(
                audit.iter().map(|a| a.action.as_str()).collect::<Vec<_>>(),
                ["outbox.queued", "outbox.sending"]
            );
            let counts = s.outbox_counts("a1").unwrap();
            assert_eq!(counts.queued, 1, "sending counts as queued for status");
        });
    }

    #[test]
    fn pages_hold_only_the_named_accounts_items() {
        crate::store::testing::each(|s| {
            let mine = s.outbox_insert(&item(), &serde_json::json!({})).unwrap();
            let other = NewOutbox {
                account_id: "a2".into(),
                ..item()
            };
            let theirs = s.outbox_insert(&other, &serde_json::json!({})).unwrap();
            let a1 = vec!["a1".to_string()];
            let ids: Vec<i64> = s
                .outbox_page(&a1, 0, 10)
                .unwrap()
                .iter()
                .map(|r| r.id)
                .collect();
            assert_eq!(ids, vec![mine]);
            assert_eq!(s.outbox_count(&a1).unwrap(), 1);
            assert!(s.outbox_page(&[], 0, 10).unwrap().is_empty());
            assert_eq!(s.outbox_count(&[]).unwrap(), 0);
            let both = vec!["a1".to_string(), "a2".to_string()];
            let ids: Vec<i64> = s
                .outbox_page(&both, 0, 10)
                .unwrap()
                .iter()
                .map(|r| r.id)
                .collect();
            assert_eq!(ids, vec![theirs, mine], "newest first");
            assert_eq!(s.outbox_account_id(theirs).unwrap().as_deref(), Some("a2"));
            assert_eq!(s.outbox_account_id(theirs + 9).unwrap(), None);
        });
    }

    #[test]
    fn claims_exclude_other_live_holders() {
        crate::store::testing::each(|s| {
            let id = s.outbox_insert(&item(), &serde_json::json!({})).unwrap();
            let far = "2999-01-01T00:00:00Z";
            assert!(
                s.outbox_claim(id, &[OutboxState::Queued], "other:1:x", far, &now())
                    .unwrap()
            );
            assert!(
                !s.outbox_claim(id, &[OutboxState::Queued], &claim_tag(), far, &now())
                    .unwrap()
            );
            s.outbox_release(id, "other:1:x").unwrap();
            assert!(
                s.outbox_claim(id, &[OutboxState::Queued], &claim_tag(), far, &now())
                    .unwrap()
            );
            assert!(!claim_is_dead(Some(&claim_tag()), Some(far), &now()));
            assert!(claim_is_dead(
                Some(&format!("{}:999999999:t", crate::config::host::id())),
                Some(far),
                &now()
            ));
            assert!(claim_is_dead(
                Some("elsewhere:1:t"),
                Some("2000-01-01T00:00:00Z"),
                &now()
            ));
            assert!(!claim_is_dead(Some("elsewhere:1:t"), Some(far), &now()));
        });
    }

    #[test]
    fn the_copy_token_is_set_once_and_kept() {
        crate::store::testing::each(|s| {
            let id = s.outbox_insert(&item(), &serde_json::json!({})).unwrap();
            assert_eq!(s.outbox_get(id).unwrap().unwrap().copy_token, None);
            assert_eq!(
                s.outbox_copy_token(id, "t1").unwrap().as_deref(),
                Some("t1")
            );
            // A second attempt (after a crash) appends with the same token, so either copy is ours.
            assert_eq!(
                s.outbox_copy_token(id, "t2").unwrap().as_deref(),
                Some("t1")
            );
            assert_eq!(
                s.outbox_get(id).unwrap().unwrap().copy_token.as_deref(),
                Some("t1")
            );
            assert_eq!(s.outbox_copy_token(id + 1, "t3").unwrap(), None);
        });
    }

    #[test]
    fn server_filing_is_learned_and_unlearned_per_folder_and_told_once() {
        crate::store::testing::each(|s| {
            assert_eq!(s.sent_filing("a1", "Sent").unwrap(), None);
            assert!(s.set_sent_filing("a1", "Sent", true, "seen #1").unwrap());
            assert!(
                !s.set_sent_filing("a1", "Sent", true, "seen #2").unwrap(),
                "no news"
            );
            let f = s.sent_filing("a1", "Sent").unwrap().unwrap();
            assert!(f.server_files);
            assert_eq!(f.evidence, "seen #1");
            assert_eq!(s.sent_filing("a1", "Replies").unwrap(), None);
            assert_eq!(s.sent_filing("a2", "Sent").unwrap(), None);
            assert!(
                s.set_sent_filing("a1", "Sent", false, "not within 60 s")
                    .unwrap()
            );
            let f = s.sent_filing("a1", "Sent").unwrap().unwrap();
            assert!(!f.server_files);
            assert_eq!(f.evidence, "not within 60 s");
        });
    }

    /// What an older version left: two items, one whose copy it concluded the server filed.
    fn older_outbox(old: &Store) {
        let filed = old.outbox_insert(&item(), &serde_json::json!({})).unwrap();
        old.outbox_insert(&item(), &serde_json::json!({})).unwrap();
        old.conn
            .exec(
                "UPDATE outbox SET state = 'verified', copy_state = 'filed_by_server', copy_folder = 'Sent' WHERE id = ?1",
                args![filed],
            )
            .unwrap();
    }

    fn learned_from_older_outbox(s: &Store) {
        let f = s.sent_filing("a1", "Sent").unwrap().unwrap();
        assert!(f.server_files);
        assert!(f.evidence.contains("earlier version"), "{}", f.evidence);
        assert_eq!(s.sent_filing("a1", "Sent/Replies").unwrap(), None);
    }

    #[test]
    fn what_older_versions_concluded_about_server_filing_carries_over() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.db");
        {
            let conn = rusqlite::Connection::open(&path).unwrap();
            for sql in &crate::store::schema::MIGRATIONS[..5] {
                conn.execute_batch(sql).unwrap();
            }
            conn.pragma_update(None, "user_version", 5).unwrap();
            older_outbox(&Store {
                conn: crate::store::sql::Conn::Lite(conn),
            });
        }
        learned_from_older_outbox(&Store::open(&path).unwrap());
        // The same step on PostgreSQL (its twin in schema_pg.rs).
        let Some(pg) = crate::store::sql::engines::PgScratch::new() else {
            return;
        };
        {
            let conn = pg.conn();
            for sql in &crate::store::schema_pg::MIGRATIONS[..5] {
                conn.batch(sql).unwrap();
            }
            conn.batch(
                "CREATE TABLE mailroom_schema (version BIGINT NOT NULL);
                 INSERT INTO mailroom_schema (version) VALUES (5)",
            )
            .unwrap();
            older_outbox(&Store { conn });
        }
        let url = crate::config::StoreUrl::Postgres(pg.url.clone());
        let s = Store::open_url(&url).unwrap();
        assert_eq!(
            s.schema_version().unwrap() as usize,
            crate::store::schema_pg::MIGRATIONS.len()
        );
        learned_from_older_outbox(&s);
    }

    #[test]
    fn due_respects_next_attempt() {
        crate::store::testing::each(|s| {
            let id = s.outbox_insert(&item(), &serde_json::json!({})).unwrap();
            let ch = Change {
                next_attempt_at: Some(Some("2999-01-01T00:00:00Z".into())),
                ..Default::default()
            };
            s.outbox_change(
                id,
                None,
                &ch,
                "op",
                "outbox.retry_later",
                &serde_json::json!({}),
            )
            .unwrap();
            assert!(
                s.outbox_due("a1", &[OutboxState::Queued], None, &now(), false)
                    .unwrap()
                    .is_empty()
            );
            assert_eq!(
                s.outbox_due("a1", &[OutboxState::Queued], None, &now(), true)
                    .unwrap(),
                vec![id]
            );
        });
    }

    #[test]
    fn every_change_field_lands_and_reads_back() {
        crate::store::testing::each(|s| {
            let n = NewOutbox {
                copy_raw: Some(b"copy".to_vec()),
                copy_note: Some("no attachments".into()),
                thread_message_id: Some(7),
                in_reply_to: Some("p@x".into()),
                ..item()
            };
            let id = s.outbox_insert(&n, &serde_json::json!({"k": 1})).unwrap();
            assert_eq!(
                s.outbox_raw(id).unwrap().unwrap(),
                (n.raw.clone(), Some(b"copy".to_vec()))
            );
            let ch = Change {
                state: Some(OutboxState::Sent),
                copy_state: Some(CopyState::Appended),
                attempts_inc: true,
                copy_attempts_inc: true,
                error: Some(Some(("refused".into(), "check it".into()))),
                next_attempt_at: Some(Some("2030-01-01T00:00:00Z".into())),
                sent_at: Some("2026-01-01T00:00:00Z".into()),
                verified_at: Some("2026-01-02T00:00:00Z".into()),
                copy_folder: Some("Sent".into()),
                copy_uid: Some((9, Some(42))),
                claim: Some(Some(("me:1:t".into(), "2030-01-01T00:00:00Z".into()))),
            };
            assert!(
                s.outbox_change(id, None, &ch, "op", "outbox.sent", &serde_json::json!({}))
                    .unwrap()
            );
            let r = s.outbox_get(id).unwrap().unwrap();
            assert_eq!(
                (r.state, r.copy_state),
                (OutboxState::Sent, Some(CopyState::Appended))
            );
            assert_eq!((r.attempts, r.copy_attempts), (1, 1));
            assert_eq!(
                (r.last_error_what.as_deref(), r.last_error_fix.as_deref()),
                (Some("refused"), Some("check it"))
            );
            assert!(r.last_error_at.is_some());
            assert_eq!(r.next_attempt_at.as_deref(), Some("2030-01-01T00:00:00Z"));
            assert_eq!(r.sent_at.as_deref(), Some("2026-01-01T00:00:00Z"));
            assert_eq!(r.verified_at.as_deref(), Some("2026-01-02T00:00:00Z"));
            assert_eq!(
                (r.copy_folder.as_deref(), r.copy_uidvalidity, r.copy_uid),
                (Some("Sent"), Some(9), Some(42))
            );
            assert_eq!(r.claim.as_deref(), Some("me:1:t"));
            assert_eq!(
                (r.copy_note.as_deref(), r.thread_message_id),
                (Some("no attachments"), Some(7))
            );
            assert_eq!(r.size, Some(n.raw.len() as i64));
            assert_eq!(r.rcpts, ["b@example.test"]);
            // Clearing: the error, the next attempt, the claim and the copy's UID.
            let clear = Change {
                error: Some(None),
                next_attempt_at: Some(None),
                claim: Some(None),
                copy_uid: Some((9, None)),
                ..Default::default()
            };
            assert!(
                s.outbox_change(
                    id,
                    Some(&[OutboxState::Sent]),
                    &clear,
                    "op",
                    "outbox.x",
                    &serde_json::json!({})
                )
                .unwrap()
            );
            let r = s.outbox_get(id).unwrap().unwrap();
            assert_eq!(
                (
                    r.last_error_what,
                    r.last_error_at,
                    r.next_attempt_at,
                    r.claim,
                    r.claim_until,
                    r.copy_uid
                ),
                (None, None, None, None, None, None)
            );
            let audit = s.audit_rows(10).unwrap();
            assert_eq!(audit.len(), 3);
            assert_eq!(audit[0].detail, Some(serde_json::json!({"k": 1})));
            assert_eq!(
                audit[2].target.as_deref(),
                Some(format!("outbox:{id}").as_str())
            );
            assert_eq!(audit[2].account_id.as_deref(), Some("a1"));
            assert!(s.outbox_get(id + 1).unwrap().is_none());
            assert!(s.outbox_raw(id + 1).unwrap().is_none());
        });
    }

    #[test]
    fn the_worker_finds_what_is_left_to_drive() {
        crate::store::testing::each(|s| {
            assert_eq!(s.outbox_next_due().unwrap(), None);
            assert!(s.outbox_active_accounts().unwrap().is_empty());
            let q = s.outbox_insert(&item(), &serde_json::json!({})).unwrap();
            let other = NewOutbox {
                account_id: "a2".into(),
                ..item()
            };
            let sent = s.outbox_insert(&other, &serde_json::json!({})).unwrap();
            let done = s.outbox_insert(&other, &serde_json::json!({})).unwrap();
            let set = |id: i64, ch: Change| {
                s.outbox_change(id, None, &ch, "op", "t", &serde_json::json!({}))
                    .unwrap();
            };
            set(
                sent,
                Change {
                    state: Some(OutboxState::Sent),
                    next_attempt_at: Some(Some("2030-01-01T00:00:00Z".into())),
                    ..Default::default()
                },
            );
            set(
                done,
                Change {
                    state: Some(OutboxState::Verified),
                    copy_state: Some(CopyState::Appended),
                    ..Default::default()
                },
            );
            assert_eq!(s.outbox_active_accounts().unwrap(), ["a1", "a2"]);
            assert_eq!(
                s.outbox_next_due().unwrap().as_deref(),
                Some(""),
                "the queued item is due now"
            );
            assert_eq!(s.outbox_waiting_batch("a2").unwrap(), [sent]);
            assert!(s.outbox_waiting_batch("a1").unwrap().is_empty());
            assert_eq!(
                s.outbox_due(
                    "a2",
                    &[OutboxState::Sent],
                    Some(&[CopyState::Pending]),
                    &now(),
                    true
                )
                .unwrap(),
                [sent]
            );
            assert!(
                s.outbox_due(
                    "a2",
                    &[OutboxState::Sent],
                    Some(&[CopyState::Failed]),
                    &now(),
                    true
                )
                .unwrap()
                .is_empty()
            );
            assert!(s.outbox_in_sending().unwrap().is_empty());
            set(
                q,
                Change {
                    state: Some(OutboxState::Sending),
                    ..Default::default()
                },
            );
            let ids: Vec<i64> = s
                .outbox_in_sending()
                .unwrap()
                .iter()
                .map(|r| r.id)
                .collect();
            assert_eq!(ids, [q]);
            assert_eq!(
                s.outbox_next_due().unwrap().as_deref(),
                Some("2030-01-01T00:00:00Z")
            );
            // A state word this version does not know is an error, not a guess.
            s.conn
                .exec(
                    "UPDATE outbox SET state = 'teleported' WHERE id = ?1",
                    args![q],
                )
                .unwrap();
            let err = s.outbox_get(q).unwrap_err();
            assert!(err.summary.contains("teleported"), "{}", err.summary);
        });
    }

    #[test]
    fn a_reply_finds_its_message_and_the_accounts_holding_it() {
        crate::store::testing::each(|s| {
            let id: i64 = s
                .conn
                .one(
                    "INSERT INTO messages (message_id, content_hash, refs, from_addr, subject, headers, created_at)
                     VALUES ('m@x', 'h', 'r@x', 'a@x', 'hi', ?1, 't') RETURNING id",
                    args![b"Subject: hi\r\n".to_vec()],
                    |r| r.get(0),
                )
                .unwrap();
            for (acc, folder) in [("b", 2), ("a", 1), ("b", 3)] {
                s.conn
                    .exec(
                        "INSERT INTO accounts (id, name, created_at, state, state_since) VALUES (?1, ?1, 't', 'idle', 't') ON CONFLICT (id) DO NOTHING",
                        args![acc],
                    )
                    .unwrap();
                s.conn
                    .exec(
                        "INSERT INTO folders (id, account_id, name, wire_name) VALUES (?1, ?2, ?3, ?3)",
                        args![folder, acc, format!("F{folder}")],
                    )
                    .unwrap();
                s.conn
                    .exec(
                        "INSERT INTO locations (message_id, account_id, folder_id, uidvalidity, uid) VALUES (?1, ?2, ?3, 1, 1)",
                        args![id, acc, folder],
                    )
                    .unwrap();
            }
            let r = s.reply_base(id).unwrap().unwrap();
            assert_eq!(r.account_ids, ["a", "b"]);
            assert_eq!(
                (
                    r.message_id.as_deref(),
                    r.refs.as_deref(),
                    r.subject.as_deref()
                ),
                (Some("m@x"), Some("r@x"), Some("hi"))
            );
            assert_eq!(r.headers.as_deref(), Some(&b"Subject: hi\r\n"[..]));
            assert_eq!(
                (r.body, r.text_body, r.to_json.as_str()),
                (None, None, "[]")
            );
            assert!(s.reply_base(id + 1).unwrap().is_none());
            assert_eq!(s.message_by_message_id("m@x").unwrap(), Some(id));
            assert_eq!(s.message_by_message_id("M@x").unwrap(), None, "exact match");
        });
    }
}
