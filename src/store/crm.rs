//! Typed queries for the customer book and matches (issue 5). The crm module decides; this file
//! only reads and writes rows.

use serde::Serialize;

use super::console::fuzzy_pattern;
use super::sql::{Arg, Engine, Row, ToArg, in_list};
use super::{Store, now};
use crate::args;
use crate::error::{AppError, Result};

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CustomerRow {
    pub id: i64,
    pub name: String,
    pub company: Option<String>,
    pub notes: Option<String>,
    pub emails: Vec<String>,
    pub domains: Vec<String>,
    pub created_at: String,
    pub updated_at: String,
}

/// The whole book as lookup pairs, for building the in-memory matcher.
#[derive(Debug, Clone, Default)]
pub struct BookRows {
    pub emails: Vec<(String, i64)>,
    pub domains: Vec<(String, i64)>,
}

/// What matching needs of one message.
#[derive(Debug, Clone)]
pub struct MatchInput {
    pub id: i64,
    pub message_id: Option<String>,
    pub in_reply_to: Option<String>,
    pub refs: Option<String>,
    pub from_addr: Option<String>,
    pub to_json: String,
    pub cc_json: String,
    pub direction: String,
    /// Account ids holding a location of this message.
    pub accounts: Vec<String>,
    pub customer_id: Option<i64>,
    pub denied: bool,
    pub date: Option<String>,
}

/// One row of `matches`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MatchRow {
    pub customer_id: i64,
    pub rule: String,
    pub detail: Option<String>,
}

/// The new state of one message after matching.
#[derive(Debug, Clone)]
pub struct MatchUpdate {
    pub message_id: i64,
    /// The automatic matches (address/domain/thread); manual ones are never touched here.
    pub matches: Vec<MatchRow>,
    pub customer_id: Option<i64>,
    pub denied: bool,
}

/// One entry of a customer's timeline.
#[derive(Debug, Clone, Serialize)]
pub struct TimelineRow {
    pub id: i64,
    pub message_id: Option<String>,
    pub in_reply_to: Option<String>,
    pub refs: Option<String>,
    pub date: Option<String>,
    pub direction: String,
    pub from_addr: Option<String>,
    pub from_name: Option<String>,
    pub to_json: String,
    pub subject: Option<String>,
    pub rule: String,
    pub detail: Option<String>,
    pub account_id: Option<String>,
}

/// The accounts holding a message, as one column.
macro_rules! holders_col {
    () => {
        "(SELECT string_agg(l.account_id, ',') FROM locations l WHERE l.message_id = m.id)"
    };
}
const HOLDERS_COL: &str = holders_col!();
const MSG_COLS: &str = concat!(
    "m.id, m.message_id, m.in_reply_to, m.refs, m.from_addr, m.to_json, m.cc_json, m.direction, ",
    holders_col!(),
    ", m.customer_id, m.denied, m.date"
);

/// What a full matching pass reads of the accounts holding each message (see
/// `DenyLists::holders_wanted`): nothing, `*` when there is any, or every account's id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HoldersWanted {
    No,
    Any,
    Each,
}
fn match_input(r: &Row<'_>) -> Result<MatchInput> {
    let accounts: Option<String> = r.get(8)?;
    // One entry per account, in the order the locations came (a message can sit in several
    // folders of one account).
    let mut list: Vec<String> = Vec::new();
    for a in accounts.as_deref().unwrap_or_default().split(',') {
        if !a.is_empty() && !list.iter().any(|x| x == a) {
            list.push(a.to_string());
        }
    }
    Ok(MatchInput {
        id: r.get(0)?,
        message_id: r.get(1)?,
        in_reply_to: r.get(2)?,
        refs: r.get(3)?,
        from_addr: r.get(4)?,
        to_json: r.get(5)?,
        cc_json: r.get(6)?,
        direction: r.get(7)?,
        accounts: list,
        customer_id: r.get(9)?,
        denied: r.get(10)?,
        date: r.get(11)?,
    })
}

/// `?,?,?` for `n` parameters.
pub(super) fn placeholders(n: usize) -> String {
    let mut s = String::with_capacity(n * 2);
    for i in 0..n {
        if i > 0 {
            s.push(',');
        }
        s.push('?');
    }
    s
}

/// SQLite's default limit on host parameters is 32766; stay far below it.
pub(super) const CHUNK: usize = 500;

/// A list of values (ids, addresses) as statement arguments.
pub(super) fn list_args<T: ToArg>(values: &[T]) -> Vec<Arg<'_>> {
    values.iter().map(ToArg::arg).collect()
}

impl Store {
    /// Runs `f` atomically: a transaction of its own, or a savepoint inside the caller's.
    pub fn atomically<T>(&self, f: impl FnOnce(&Store) -> Result<T>) -> Result<T> {
        if !self.conn.in_tx() {
            // IMMEDIATE on SQLite: take the write lock up front, so a concurrent sync makes us
            // wait (busy timeout) instead of failing on a read→write upgrade.
            return self.conn.tx(|| f(self));
        }
        self.conn.batch("SAVEPOINT crm")?;
        match f(self) {
            Ok(v) => {
                self.conn.batch("RELEASE crm")?;
                Ok(v)
            }
            Err(e) => {
                let _ = self.conn.batch("ROLLBACK TO crm; RELEASE crm");
                Err(e)
            }
        }
    }

    pub fn customer_insert(
        &self,
        name: &str,
        company: Option<&str>,
        notes: Option<&str>,
    ) -> Result<i64> {
        self.conn.one(
            "INSERT INTO customers (name, company, notes, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?4) RETURNING id",
            args![name, company, notes, now()],
            |r| r.get(0),
        )
    }

    /// Sets name/company/notes; `None` leaves a field as it is, `Some(None)` clears it.
    pub fn customer_update(
        &self,
        id: i64,
        name: Option<&str>,
        company: Option<Option<&str>>,
        notes: Option<Option<&str>>,
    ) -> Result<()> {
        if let Some(n) = name {
            self.conn
                .exec("UPDATE customers SET name = ?2 WHERE id = ?1", args![id, n])?;
        }
        if let Some(c) = company {
            self.conn.exec(
                "UPDATE customers SET company = ?2 WHERE id = ?1",
                args![id, c],
            )?;
        }
        if let Some(n) = notes {
            self.conn.exec(
                "UPDATE customers SET notes = ?2 WHERE id = ?1",
                args![id, n],
            )?;
        }
        self.customer_touch(id)
    }

    pub fn customer_touch(&self, id: i64) -> Result<()> {
        self.conn.exec(
            "UPDATE customers SET updated_at = ?2 WHERE id = ?1",
            args![id, now()],
        )?;
        Ok(())
    }

    /// Adds a canonical address; Ok(false) when the customer already has it. An address of
    /// another customer is an error naming that customer.
    pub fn customer_add_email(&self, id: i64, email: &str) -> Result<bool> {
        match self.email_owner(email)? {
            Some(owner) if owner == id => Ok(false),
            Some(owner) => Err(AppError::needs_user(
                format!("{email} already belongs to customer {owner}"),
                "an address belongs to one customer",
                format!(
                    "remove it there first: `mailroom customers edit {owner} --remove-email {email}`"
                ),
            ).with_code(crate::error::Code::Conflict)),
            None => {
                self.conn.exec(
                    "INSERT INTO customer_emails (email, customer_id) VALUES (?1, ?2)",
                    args![email, id],
                )?;
                Ok(true)
            }
        }
    }

    pub fn customer_remove_email(&self, id: i64, email: &str) -> Result<bool> {
        Ok(self.conn.exec(
            "DELETE FROM customer_emails WHERE email = ?1 AND customer_id = ?2",
            args![email, id],
        )? > 0)
    }

    pub fn customer_add_domain(&self, id: i64, domain: &str) -> Result<bool> {
        Ok(self.conn.exec(
            "INSERT INTO customer_domains (domain, customer_id) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
            args![domain, id],
        )? > 0)
    }

    pub fn customer_remove_domain(&self, id: i64, domain: &str) -> Result<bool> {
        Ok(self.conn.exec(
            "DELETE FROM customer_domains WHERE domain = ?1 AND customer_id = ?2",
            args![domain, id],
        )? > 0)
    }

    /// Removes the customer; its messages fall back to unmatched (FK: SET NULL / CASCADE).
    pub fn customer_delete(&self, id: i64) -> Result<bool> {
        Ok(self
            .conn
            .exec("DELETE FROM customers WHERE id = ?1", args![id])?
            > 0)
    }

    pub fn email_owner(&self, email: &str) -> Result<Option<i64>> {
        self.conn.first(
            "SELECT customer_id FROM customer_emails WHERE email = ?1",
            args![email],
            |r| r.get(0),
        )
    }

    pub fn customer(&self, id: i64) -> Result<Option<CustomerRow>> {
        let row = self.conn.first(
            "SELECT id, name, company, notes, created_at, updated_at FROM customers WHERE id = ?1",
            args![id],
            customer_head,
        )?;
        match row {
            None => Ok(None),
            Some(mut c) => {
                c.emails = self.strings(
                    "SELECT email FROM customer_emails WHERE customer_id = ?1 ORDER BY email",
                    id,
                )?;
                c.domains = self.strings(
                    "SELECT domain FROM customer_domains WHERE customer_id = ?1 ORDER BY domain",
                    id,
                )?;
                Ok(Some(c))
            }
        }
    }

    fn strings(&self, sql: &str, id: i64) -> Result<Vec<String>> {
        self.conn.rows(sql, args![id], |r| r.get(0))
    }

    /// Every customer with addresses and domains, by name.
    pub fn customers(&self) -> Result<Vec<CustomerRow>> {
        let mut rows = self.conn.rows(
            "SELECT id, name, company, notes, created_at, updated_at FROM customers ORDER BY name COLLATE NOCASE, id",
            &[],
            customer_head,
        )?;
        let book = self.book_rows()?;
        let index: std::collections::HashMap<i64, usize> =
            rows.iter().enumerate().map(|(i, c)| (c.id, i)).collect();
        for (e, id) in book.emails {
            if let Some(&i) = index.get(&id) {
                rows[i].emails.push(e);
            }
        }
        for (d, id) in book.domains {
            if let Some(&i) = index.get(&id) {
                rows[i].domains.push(d);
            }
        }
        Ok(rows)
    }

    pub fn book_rows(&self) -> Result<BookRows> {
        let emails = self.conn.rows(
            "SELECT email, customer_id FROM customer_emails ORDER BY email",
            &[],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        let domains = self.conn.rows(
            "SELECT domain, customer_id FROM customer_domains ORDER BY domain, customer_id",
            &[],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        Ok(BookRows { emails, domains })
    }

    /// Matching input for the given messages, oldest first (thread parents are decided before
    /// their replies).
    pub fn match_inputs(&self, ids: &[i64]) -> Result<Vec<MatchInput>> {
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(CHUNK) {
            self.conn.each(
                &format!(
                    "SELECT {MSG_COLS} FROM messages m WHERE m.id IN ({})",
                    in_list(1, chunk.len())
                ),
                &list_args(chunk),
                |r| {
                    out.push(match_input(r)?);
                    Ok(())
                },
            )?;
        }
        // Sorted here rather than in SQL: one sort of the whole result (chunks sorted one by
        // one would not be).
        out.sort_by(|a, b| {
            (a.date.is_none(), &a.date, a.id).cmp(&(b.date.is_none(), &b.date, b.id))
        });
        Ok(out)
    }

    /// Calls `f` with every message's matching input, oldest first (dated mail by date, then
    /// mail without a date), streamed from two index-ordered queries.
    pub fn for_each_match_input(
        &self,
        holders: HoldersWanted,
        mut f: impl FnMut(MatchInput),
    ) -> Result<()> {
        // The holders cost a lookup in `locations` per message (a quarter of a 100k pass):
        // only what the deny lists need is read.
        let cols = match holders {
            HoldersWanted::Each => MSG_COLS.to_string(),
            HoldersWanted::Any => MSG_COLS.replace(
                HOLDERS_COL,
                "CASE WHEN EXISTS (SELECT 1 FROM locations l WHERE l.message_id = m.id) THEN '*' END",
            ),
            HoldersWanted::No => MSG_COLS.replace(HOLDERS_COL, "NULL"),
        };
        for sql in [
            format!("SELECT {cols} FROM messages m WHERE m.date IS NOT NULL ORDER BY m.date, m.id"),
            format!("SELECT {cols} FROM messages m WHERE m.date IS NULL ORDER BY m.id"),
        ] {
            self.conn.each(&sql, &[], |r| {
                f(match_input(r)?);
                Ok(())
            })?;
        }
        Ok(())
    }

    /// Calls `f` with the id, In-Reply-To and References of every message that has either.
    pub fn for_each_reference(
        &self,
        mut f: impl FnMut(i64, Option<&str>, Option<&str>),
    ) -> Result<()> {
        self.conn.each(
            "SELECT id, in_reply_to, refs FROM messages WHERE in_reply_to IS NOT NULL OR refs IS NOT NULL",
            &[],
            |r| {
                let irt: Option<String> = r.get(1)?;
                let refs: Option<String> = r.get(2)?;
                f(r.get(0)?, irt.as_deref(), refs.as_deref());
                Ok(())
            },
        )
    }

    /// Every stored sender once (read from the sender index alone, without touching the rows).
    pub fn distinct_senders(&self) -> Result<Vec<String>> {
        self.conn.rows(
            "SELECT DISTINCT from_addr FROM messages WHERE from_addr IS NOT NULL",
            &[],
            |r| r.get(0),
        )
    }

    /// Messages whose stored sender is one of these.
    pub fn messages_from(&self, senders: &[String]) -> Result<Vec<i64>> {
        let mut out = Vec::new();
        for chunk in senders.chunks(CHUNK) {
            out.extend(self.conn.rows(
                &format!(
                    "SELECT id FROM messages WHERE from_addr IN ({})",
                    in_list(1, chunk.len())
                ),
                &list_args(chunk),
                |r| r.get::<i64>(0),
            )?);
        }
        Ok(out)
    }

    /// Messages stored as outbound (found in Sent or sent by us).
    pub fn outbound_ids(&self) -> Result<Vec<i64>> {
        self.conn.rows(
            "SELECT id FROM messages WHERE direction = 'out'",
            &[],
            |r| r.get(0),
        )
    }

    /// Messages matching has left a mark on: a customer, a match row or the denied flag (may
    /// repeat an id). Three index reads; as one UNION, SQLite spent 20+ ms on temporary trees.
    pub fn ids_with_match_state(&self) -> Result<Vec<i64>> {
        let mut out = Vec::new();
        for sql in [
            "SELECT id FROM messages WHERE customer_id IS NOT NULL",
            "SELECT id FROM messages WHERE denied = 1",
            "SELECT DISTINCT message_id FROM matches",
        ] {
            out.extend(self.conn.rows(sql, &[], |r| r.get::<i64>(0))?);
        }
        Ok(out)
    }

    /// The Message-IDs of the messages that belong to a customer (what a reply can join).
    pub fn customers_mail_ids(&self) -> Result<Vec<String>> {
        self.conn.rows(
            "SELECT message_id FROM messages WHERE customer_id IS NOT NULL AND message_id IS NOT NULL",
            &[],
            |r| r.get(0),
        )
    }

    /// Messages carrying any of these Message-IDs (thread neighbours of a batch).
    pub fn messages_by_message_ids(&self, msgids: &[String]) -> Result<Vec<MatchInput>> {
        let mut out = Vec::new();
        for chunk in msgids.chunks(CHUNK) {
            self.conn.each(
                &format!(
                    "SELECT {MSG_COLS} FROM messages m WHERE m.message_id IN ({})",
                    in_list(1, chunk.len())
                ),
                &list_args(chunk),
                |r| {
                    out.push(match_input(r)?);
                    Ok(())
                },
            )?;
        }
        Ok(out)
    }

    /// All matches of the given messages (or of every message), by message; a message's
    /// matches by customer.
    pub fn matches_of(
        &self,
        ids: Option<&[i64]>,
    ) -> Result<std::collections::HashMap<i64, Vec<MatchRow>>> {
        let mut out: std::collections::HashMap<i64, Vec<MatchRow>> = Default::default();
        let mut add = |r: &Row<'_>| -> Result<()> {
            out.entry(r.get(0)?).or_default().push(MatchRow {
                customer_id: r.get(1)?,
                rule: r.get(2)?,
                detail: r.get(3)?,
            });
            Ok(())
        };
        let cols = "SELECT message_id, customer_id, rule, detail FROM matches";
        match ids {
            None => self.conn.each(
                &format!("{cols} ORDER BY message_id, customer_id"),
                &[],
                add,
            )?,
            Some(ids) => {
                for chunk in ids.chunks(CHUNK) {
                    self.conn.each(
                        &format!(
                            "{cols} WHERE message_id IN ({}) ORDER BY message_id, customer_id",
                            in_list(1, chunk.len())
                        ),
                        &list_args(chunk),
                        &mut add,
                    )?;
                }
            }
        }
        Ok(out)
    }

    /// Writes the outcome of matching for one message (call inside `atomically`).
    pub fn apply_match(&self, u: &MatchUpdate) -> Result<()> {
        self.conn.exec(
            "DELETE FROM matches WHERE message_id = ?1 AND rule <> 'manual'",
            args![u.message_id],
        )?;
        for m in &u.matches {
            self.conn.exec(
                "INSERT INTO matches (message_id, customer_id, rule, detail) VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING",
                args![u.message_id, m.customer_id, m.rule, m.detail],
            )?;
        }
        self.conn.exec(
            "UPDATE messages SET customer_id = ?2, denied = ?3 WHERE id = ?1",
            args![u.message_id, u.customer_id, u.denied],
        )?;
        Ok(())
    }

    /// A manual pairing (triage `pair`); replaces an automatic match to the same customer.
    pub fn match_manual(&self, message_id: i64, customer_id: i64, detail: &str) -> Result<()> {
        self.conn.exec(
            "INSERT INTO matches (message_id, customer_id, rule, detail) VALUES (?1, ?2, 'manual', ?3)
             ON CONFLICT (message_id, customer_id) DO UPDATE SET rule = excluded.rule, detail = excluded.detail",
            args![message_id, customer_id, detail],
        )?;
        self.conn.exec(
            "UPDATE messages SET customer_id = ?2 WHERE id = ?1",
            args![message_id, customer_id],
        )?;
        Ok(())
    }

    pub fn unmatch_manual(&self, message_id: i64, customer_id: i64) -> Result<()> {
        self.conn.exec(
            "DELETE FROM matches WHERE message_id = ?1 AND customer_id = ?2 AND rule = 'manual'",
            args![message_id, customer_id],
        )?;
        Ok(())
    }

    /// A customer's messages (through `matches`, so mail to two customers shows on both),
    /// limited to locations in `accounts`; oldest first, mail without a date before the rest.
    /// Read a keyset page at a time (`timeline_page`), never as one big result.
    pub fn timeline(&self, customer_id: i64, accounts: &[String]) -> Result<Vec<TimelineRow>> {
        const PAGE: i64 = 1000;
        let mut all = Vec::new();
        let mut after: Option<TimelineKey> = None;
        loop {
            let w = match &after {
                Some(k) => TimelineWindow::After {
                    key: k,
                    limit: PAGE,
                },
                None => TimelineWindow::Offset {
                    offset: 0,
                    limit: PAGE,
                },
            };
            let page = self.timeline_page(customer_id, accounts, w)?;
            let done = (page.len() as i64) < PAGE;
            after = page.last().map(TimelineRow::key);
            all.extend(page);
            if done || after.is_none() {
                break;
            }
        }
        all.reverse();
        Ok(all)
    }

    /// How many messages are on the customer's timeline (as `timeline_page` reads them).
    pub fn timeline_count(&self, customer_id: i64, accounts: &[String]) -> Result<i64> {
        if accounts.is_empty() {
            return Ok(0);
        }
        let sql = format!(
            "SELECT COUNT(*) FROM matches mt JOIN messages m ON m.id = mt.message_id
             WHERE mt.customer_id = ? AND m.denied = 0 AND {visible}",
            visible = visible_in(accounts.len()),
        );
        let mut p = vec![Arg::Int(customer_id)];
        p.extend(accounts.iter().map(ToArg::arg));
        Ok(self.conn.first(&sql, &p, |r| r.get::<i64>(0))?.unwrap_or(0))
    }

    /// One page of a customer's timeline, newest first (mail without a date last): keyset
    /// paging on (date, id), so a page deep in 12.5k messages costs what the first does.
    pub fn timeline_page(
        &self,
        customer_id: i64,
        accounts: &[String],
        window: TimelineWindow<'_>,
    ) -> Result<Vec<TimelineRow>> {
        if accounts.is_empty() {
            return Ok(Vec::new());
        }
        // In the text's order: the account subquery's, the customer, the visibility's, the
        // window's.
        let mut p: Vec<Arg<'_>> = accounts.iter().map(ToArg::arg).collect();
        p.push(Arg::Int(customer_id));
        p.extend(accounts.iter().map(ToArg::arg));
        let (extra, offset, limit, asc) = match window {
            TimelineWindow::Offset { offset, limit } => ("", offset, limit, false),
            TimelineWindow::FromEnd { offset, limit } => ("", offset, limit, true),
            // Older mail, the same date with a lower id, then every undated message.
            TimelineWindow::After {
                key: TimelineKey { date: Some(d), id },
                limit,
            } => {
                p.extend([Arg::Text(d), Arg::Text(d), Arg::Int(*id)]);
                (
                    "AND (m.date IS NULL OR m.date < ? OR (m.date = ? AND m.id < ?))",
                    0,
                    limit,
                    false,
                )
            }
            TimelineWindow::After {
                key: TimelineKey { date: None, id },
                limit,
            } => {
                p.push(Arg::Int(*id));
                ("AND m.date IS NULL AND m.id < ?", 0, limit, false)
            }
        };
        let order = if asc {
            "m.date ASC NULLS FIRST, m.id ASC"
        } else {
            "m.date DESC NULLS LAST, m.id DESC"
        };
        let sql = format!(
            "SELECT m.id, m.message_id, m.in_reply_to, m.refs, m.date, m.direction, m.from_addr, m.from_name,
                    m.to_json, m.subject, mt.rule, mt.detail,
                    (SELECT l.account_id FROM locations l WHERE l.message_id = m.id AND l.account_id IN ({acc}) LIMIT 1) AS acct
             FROM matches mt JOIN messages m ON m.id = mt.message_id
             WHERE mt.customer_id = ? AND m.denied = 0 AND {visible} {extra}
             ORDER BY {order} LIMIT ? OFFSET ?",
            acc = placeholders(accounts.len()),
            visible = visible_in(accounts.len()),
        );
        p.push(Arg::Int(limit));
        p.push(Arg::Int(offset));
        let mut rows = self.conn.rows(&sql, &p, |r| {
            Ok(TimelineRow {
                id: r.get(0)?,
                message_id: r.get(1)?,
                in_reply_to: r.get(2)?,
                refs: r.get(3)?,
                date: r.get(4)?,
                direction: r.get(5)?,
                from_addr: r.get(6)?,
                from_name: r.get(7)?,
                to_json: r.get(8)?,
                subject: r.get(9)?,
                rule: r.get(10)?,
                detail: r.get(11)?,
                account_id: r.get(12)?,
            })
        })?;
        if asc {
            rows.reverse();
        }
        Ok(rows)
    }
}

/// Where a timeline row sorts: its date (none sorts after every dated one) and id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimelineKey {
    pub date: Option<String>,
    pub id: i64,
}

impl TimelineRow {
    pub fn key(&self) -> TimelineKey {
        TimelineKey {
            date: self.date.clone(),
            id: self.id,
        }
    }
}

/// Which rows of a timeline (newest first) a page holds.
#[derive(Debug, Clone, Copy)]
pub enum TimelineWindow<'a> {
    /// `limit` rows after skipping `offset` (the first page: offset 0).
    Offset { offset: i64, limit: i64 },
    /// `limit` rows after the row `key` (keyset paging).
    After { key: &'a TimelineKey, limit: i64 },
    /// Rows `offset..offset+limit` counted from the oldest, still returned newest first.
    FromEnd { offset: i64, limit: i64 },
}

/// The message has a location in one of the operator's accounts (`n` placeholders).
fn visible_in(n: usize) -> String {
    format!(
        "EXISTS (SELECT 1 FROM locations l WHERE l.message_id = m.id AND l.account_id IN ({}))",
        placeholders(n)
    )
}

impl Store {
    /// Messages answering one of these Message-IDs (stored with or without <>) whose customer
    /// can follow from the thread: unmatched, or matched by the thread rule.
    pub fn thread_replies_to(&self, msgids: &[String]) -> Result<Vec<i64>> {
        let mut out = Vec::new();
        let forms: Vec<String> = msgids
            .iter()
            .flat_map(|m| [m.clone(), format!("<{m}>")])
            .collect();
        for chunk in forms.chunks(CHUNK) {
            // `+customer_id`: keeps SQLite on the in_reply_to index instead of scanning every
            // unmatched message through the customer index (PostgreSQL reads it as a no-op).
            out.extend(self.conn.rows(
                &format!(
                    "SELECT id FROM messages m WHERE in_reply_to IN ({}) AND (+customer_id IS NULL
                       OR EXISTS (SELECT 1 FROM matches x WHERE x.message_id = m.id AND x.rule = 'thread'))",
                    in_list(1, chunk.len())
                ),
                &list_args(chunk),
                |r| r.get::<i64>(0),
            )?);
        }
        Ok(out)
    }
}

fn customer_head(r: &Row<'_>) -> Result<CustomerRow> {
    Ok(CustomerRow {
        id: r.get(0)?,
        name: r.get(1)?,
        company: r.get(2)?,
        notes: r.get(3)?,
        emails: Vec::new(),
        domains: Vec::new(),
        created_at: r.get(4)?,
        updated_at: r.get(5)?,
    })
}

impl Store {
    /// Messages matching has not examined yet (`crm_pending`, migration 17), ascending.
    pub fn unexamined_ids(&self) -> Result<Vec<i64>> {
        self.conn.rows(
            "SELECT message_id FROM crm_pending ORDER BY message_id",
            &[],
            |r| r.get(0),
        )
    }

    /// Marks messages as examined by matching.
    pub fn set_examined(&self, ids: &[i64]) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        // Runs of consecutive ids (a first sync's mail is one run) are deleted as ranges: every
        // id in such a range is in `ids`, so nothing stored meanwhile is marked by mistake,
        // and a range costs a fifth of the same ids passed as a list.
        let mut sorted = ids.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        let mut runs: Vec<(i64, i64)> = Vec::new();
        for id in sorted {
            match runs.last_mut() {
                Some((_, end)) if *end + 1 == id => *end = id,
                _ => runs.push((id, id)),
            }
        }
        if runs.len() * 8 <= ids.len() {
            return self.atomically(|s| {
                runs.iter().try_for_each(|(a, b)| {
                    s.conn
                        .exec(
                            "DELETE FROM crm_pending WHERE message_id BETWEEN ?1 AND ?2",
                            args![a, b],
                        )
                        .map(drop)
                })
            });
        }
        // One statement for any number of ids (one JSON array parameter), instead of a
        // freshly prepared 500-placeholder UPDATE per chunk.
        let list = serde_json::to_string(ids).unwrap_or_else(|_| "[]".into());
        let sql = match self.conn.engine() {
            Engine::Sqlite => {
                "DELETE FROM crm_pending WHERE message_id IN (SELECT value FROM json_each(?1))"
            }
            Engine::Postgres => {
                "DELETE FROM crm_pending
                 WHERE message_id IN (SELECT value::bigint FROM json_array_elements_text(?1::json))"
            }
        };
        self.conn.exec(sql, args![list])?;
        Ok(())
    }

    /// With an empty customer book matching decides nothing for mail that is not denied: no
    /// customer, no match, not denied. Marks every such unexamined message examined at once and
    /// returns how many — in one write transaction that first checks that the book is empty (no
    /// address, no domain, no pairing, no message linked to a customer), else `None`. Denied
    /// mail is left for matching (an emptied deny list un-denies it).
    pub fn examine_without_book(&self) -> Result<Option<usize>> {
        self.atomically(|s| {
            let empty: bool = s.conn.one(
                "SELECT NOT EXISTS (SELECT 1 FROM customer_emails)
                    AND NOT EXISTS (SELECT 1 FROM customer_domains)
                    AND NOT EXISTS (SELECT 1 FROM matches)
                    AND NOT EXISTS (SELECT 1 FROM messages WHERE customer_id IS NOT NULL)",
                &[],
                |r| r.get(0),
            )?;
            if !empty {
                return Ok(None);
            }
            let n = s.conn.exec(
                "DELETE FROM crm_pending WHERE NOT EXISTS (SELECT 1 FROM messages m
                     WHERE m.id = crm_pending.message_id AND m.denied <> 0)",
                &[],
            )?;
            Ok(Some(n as usize))
        })
    }

    /// Logical messages in the cache.
    pub fn message_count(&self) -> Result<usize> {
        let n: i64 = self
            .conn
            .one("SELECT COUNT(*) FROM messages", &[], |r| r.get(0))?;
        Ok(n as usize)
    }
}

/// A customer row with its addresses and domains folded in (one newline-separated list each:
/// canonical addresses and domains never hold a newline), ordered as `customer` orders them.
const CUSTOMER_COLS: &str = "c.id, c.name, c.company, c.notes, c.created_at, c.updated_at,
    (SELECT string_agg(e.email, '\n' ORDER BY e.email) FROM customer_emails e WHERE e.customer_id = c.id),
    (SELECT string_agg(d.domain, '\n' ORDER BY d.domain) FROM customer_domains d WHERE d.customer_id = c.id)";

fn customer_full(r: &Row<'_>) -> Result<CustomerRow> {
    let list = |v: Option<String>| -> Vec<String> {
        v.map(|s| s.split('\n').map(str::to_string).collect())
            .unwrap_or_default()
    };
    let mut c = customer_head(r)?;
    c.emails = list(r.get(6)?);
    c.domains = list(r.get(7)?);
    Ok(c)
}

/// Customers whose name, company or an address contains the pattern as a subsequence.
const CUSTOMER_MATCH: &str = "?1 = '%' OR c.name LIKE ?1 ESCAPE '\\' OR COALESCE(c.company, '') LIKE ?1 ESCAPE '\\'
    OR EXISTS (SELECT 1 FROM customer_emails e WHERE e.customer_id = c.id AND e.email LIKE ?1 ESCAPE '\\')";

impl Store {
    /// Customers whose name, company or an address contains `query` as a subsequence (a fuzzy
    /// search), by name: the console's customer list and pair picker.
    pub fn customers_page(&self, query: &str, offset: i64, limit: i64) -> Result<Vec<CustomerRow>> {
        self.conn.rows(
            &format!(
                "SELECT {CUSTOMER_COLS} FROM customers c WHERE {CUSTOMER_MATCH}
                 ORDER BY c.name COLLATE NOCASE, c.id LIMIT ?2 OFFSET ?3"
            ),
            args![fuzzy_pattern(query), limit, offset],
            customer_full,
        )
    }

    pub fn customers_count(&self, query: &str) -> Result<i64> {
        self.conn.one(
            &format!("SELECT COUNT(*) FROM customers c WHERE {CUSTOMER_MATCH}"),
            args![fuzzy_pattern(query)],
            |r| r.get(0),
        )
    }
}

impl Store {
    /// Every customer's name by id (cheaper than `customers` when only names are needed).
    pub fn customer_names(&self) -> Result<std::collections::HashMap<i64, String>> {
        let pairs = self.conn.rows("SELECT id, name FROM customers", &[], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?;
        Ok(pairs.into_iter().collect())
    }
}

impl Store {
    /// Messages from one of these addresses, or with one of them among To/Cc.
    pub fn messages_mentioning(&self, addresses: &[String]) -> Result<Vec<i64>> {
        let mut out = self.messages_from(addresses)?;
        // Recipients live in JSON; one scan for all addresses (a pairing names one or two).
        let find = match self.conn.engine() {
            Engine::Sqlite => "instr",
            Engine::Postgres => "strpos",
        };
        for chunk in addresses.chunks(100) {
            let cond = (1..=chunk.len())
                .map(|i| format!("{find}(lower(to_json || cc_json), ?{i}) > 0"))
                .collect::<Vec<_>>()
                .join(" OR ");
            out.extend(self.conn.rows(
                &format!("SELECT id FROM messages WHERE {cond}"),
                &list_args(chunk),
                |r| r.get::<i64>(0),
            )?);
        }
        out.sort_unstable();
        out.dedup();
        Ok(out)
    }

    /// Ids of every message matched to a customer (any rule).
    pub fn customer_message_ids(&self, customer_id: i64) -> Result<Vec<i64>> {
        self.conn.rows(
            "SELECT message_id FROM matches WHERE customer_id = ?1",
            args![customer_id],
            |r| r.get(0),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::FixtureMessage;

    #[test]
    fn the_book_reads_back_alike_and_pages_by_name_ignoring_case() {
        crate::store::testing::each(|s| {
            let zed = s.customer_insert("zed", None, None).unwrap();
            let anna = s
                .customer_insert("Anna", Some("ACME"), Some("notes"))
                .unwrap();
            let bob = s.customer_insert("bob", None, None).unwrap();
            assert!(s.customer_add_email(anna, "b@acme.test").unwrap());
            assert!(s.customer_add_email(anna, "a@acme.test").unwrap());
            assert!(!s.customer_add_email(anna, "a@acme.test").unwrap());
            let e = s.customer_add_email(bob, "a@acme.test").unwrap_err();
            assert!(e.summary.contains(&format!("customer {anna}")), "{e}");
            assert!(s.customer_add_domain(anna, "acme.test").unwrap());
            assert!(!s.customer_add_domain(anna, "acme.test").unwrap());
            s.customer_update(anna, None, Some(None), None).unwrap();
            let c = s.customer(anna).unwrap().unwrap();
            assert_eq!(c.company, None);
            assert_eq!(c.notes.as_deref(), Some("notes"));
            assert_eq!(c.emails, ["a@acme.test", "b@acme.test"]);
            assert_eq!(c.domains, ["acme.test"]);
            let names: Vec<i64> = s.customers().unwrap().iter().map(|c| c.id).collect();
            assert_eq!(names, [anna, bob, zed], "by name, case aside");
            // The paged list folds the same lists in, in the same order.
            let page = s.customers_page("", 0, 10).unwrap();
            assert_eq!(page[0], c);
            assert_eq!(page.iter().map(|c| c.id).collect::<Vec<_>>(), names);
            assert_eq!(s.customers_page("", 1, 1).unwrap()[0].id, bob);
            // Fuzzy: a subsequence of the name, company or an address, any case.
            assert_eq!(s.customers_count("").unwrap(), 3);
            assert_eq!(s.customers_count("AN").unwrap(), 1);
            assert_eq!(s.customers_count("bacme").unwrap(), 1);
            assert_eq!(s.customers_count("%").unwrap(), 0);
            assert_eq!(s.email_owner("b@acme.test").unwrap(), Some(anna));
            assert_eq!(s.customer_names().unwrap()[&zed], "zed");
            assert!(s.customer_remove_email(anna, "b@acme.test").unwrap());
            assert!(s.customer_remove_domain(anna, "acme.test").unwrap());
            assert!(s.customer_delete(zed).unwrap());
            assert!(s.customer(zed).unwrap().is_none());
            let book = s.book_rows().unwrap();
            assert_eq!(book.emails, [("a@acme.test".to_string(), anna)]);
            assert!(book.domains.is_empty());
        });
    }

    /// Runs of consecutive ids are deleted as ranges, a scattered list as a list; either way
    /// exactly the given ids leave `crm_pending` (a message stored meanwhile, inside a range's
    /// span but not in the list, stays).
    #[test]
    fn set_examined_marks_exactly_the_given_ids() {
        crate::store::testing::each(|s| {
            let inbox = s.fixture_folder("a1", "INBOX", Some("inbox")).unwrap();
            let ids: Vec<i64> = (0..60i64)
                .map(|i| {
                    let m = FixtureMessage {
                        message_id: Some(format!("p{i}@test")),
                        from_addr: "x@example.test".into(),
                        subject: format!("p{i}"),
                        date: "2026-01-01T10:00:00Z".into(),
                        ..Default::default()
                    };
                    s.fixture_message("a1", inbox, i + 1, &m).unwrap()
                })
                .collect();
            // Two long runs around a gap of one: the range path.
            let mut runs: Vec<i64> = ids[..20].to_vec();
            runs.extend_from_slice(&ids[21..45]);
            s.set_examined(&runs).unwrap();
            let left = s.unexamined_ids().unwrap();
            let mut want = vec![ids[20]];
            want.extend_from_slice(&ids[45..]);
            assert_eq!(left, want);
            // Every other id: the list path.
            let scattered: Vec<i64> = ids[45..].iter().step_by(2).copied().collect();
            s.set_examined(&scattered).unwrap();
            let mut want = vec![ids[20]];
            want.extend(ids[46..].iter().step_by(2));
            assert_eq!(s.unexamined_ids().unwrap(), want);
        });
    }

    #[test]
    fn atomically_nests_and_rolls_back_only_its_own_part() {
        crate::store::testing::each(|s| {
            let failed = s.atomically(|s| {
                s.customer_insert("gone", None, None)?;
                Err::<(), _>(AppError::local("boom", "", ""))
            });
            assert!(failed.is_err());
            assert!(s.customers().unwrap().is_empty(), "rolled back whole");
            s.atomically(|s| {
                s.customer_insert("kept", None, None)?;
                let inner = s.atomically(|s| {
                    s.customer_insert("inner", None, None)?;
                    // A failing statement inside: PostgreSQL aborts up to the savepoint only.
                    s.customer_add_email(-1, "x@y.test")
                });
                assert!(inner.is_err());
                s.atomically(|s| s.customer_insert("second", None, None))?;
                Ok(())
            })
            .unwrap();
            let names: Vec<String> = s.customers().unwrap().into_iter().map(|c| c.name).collect();
            assert_eq!(names, ["kept", "second"]);
            assert!(!s.conn.in_tx());
        });
    }

    /// The console's first timeline page at 12.5k messages of one customer: the whole timeline
    /// read and paged in memory (before) against a count and one keyset page (after).
    /// `cargo test --release --lib timeline_first_page_speed -- --ignored --nocapture`
    #[test]
    #[ignore]
    fn timeline_first_page_speed() {
        crate::store::testing::each(|s| {
            let inbox = s.fixture_folder("a1", "INBOX", Some("inbox")).unwrap();
            let c = s.customer_insert("Big", None, None).unwrap();
            s.atomically(|s| {
                for i in 0..12_500i64 {
                    let m = FixtureMessage {
                        message_id: Some(format!("big{i}@test")),
                        from_addr: "x@client0.example".into(),
                        to: vec!["me@example.test".into()],
                        subject: format!("Order {i}"),
                        date: format!(
                            "2026-{:02}-{:02}T10:{:02}:00Z",
                            1 + i % 12,
                            1 + i % 28,
                            i % 60
                        ),
                        ..Default::default()
                    };
                    let id = s.fixture_message("a1", inbox, i + 1, &m)?;
                    s.match_manual(id, c, "domain client0.example")?;
                }
                Ok(())
            })
            .unwrap();
            let accounts = ["a1".to_string()];
            let time = |f: &dyn Fn()| {
                let mut v: Vec<_> = (0..7)
                    .map(|_| {
                        let t = std::time::Instant::now();
                        f();
                        t.elapsed()
                    })
                    .collect();
                v.sort();
                v[3]
            };
            let before = time(&|| {
                let all = s.timeline(c, &accounts).unwrap();
                let page: Vec<_> = all.into_iter().rev().take(50).collect();
                assert_eq!(page.len(), 50);
            });
            let after = time(&|| {
                assert_eq!(s.timeline_count(c, &accounts).unwrap(), 12_500);
                let page = s
                    .timeline_page(
                        c,
                        &accounts,
                        TimelineWindow::Offset {
                            offset: 0,
                            limit: 50,
                        },
                    )
                    .unwrap();
                assert_eq!(page.len(), 50);
            });
            let key = s
                .timeline_page(
                    c,
                    &accounts,
                    TimelineWindow::Offset {
                        offset: 6000,
                        limit: 1,
                    },
                )
                .unwrap()[0]
                .key();
            let deep = time(&|| {
                let page = s
                    .timeline_page(
                        c,
                        &accounts,
                        TimelineWindow::After {
                            key: &key,
                            limit: 50,
                        },
                    )
                    .unwrap();
                assert_eq!(page.len(), 50);
            });
            println!(
                "timeline 12.5k, first page: whole read {before:?} -> count + keyset page {after:?}; a page at 6000 by keyset {deep:?}"
            );
        });
    }

    /// Keyset pages of a big timeline: newest first, undated mail last, no duplicate and no
    /// gap across page boundaries (equal dates included), hidden and denied mail left out —
    /// the same on both engines; jumps (offset, from the end) agree with the walk.
    #[test]
    fn timeline_pages_are_keyset_without_dupes_or_gaps() {
        crate::store::testing::each(|s| {
            let mine = s.fixture_folder("a1", "INBOX", Some("inbox")).unwrap();
            let hidden = s.fixture_folder("a2", "INBOX", Some("inbox")).unwrap();
            let c = s.customer_insert("C", None, None).unwrap();
            let mut expected: Vec<(Option<String>, i64)> = Vec::new();
            for i in 0..300i64 {
                // Many messages share a date (a page boundary falls inside a run of them).
                let date = format!("2026-01-{:02}T10:00:00Z", 1 + (i * 7) % 20);
                let m = FixtureMessage {
                    message_id: Some(format!("m{i}@test")),
                    from_addr: "x@a.test".into(),
                    subject: format!("s{i}"),
                    date: date.clone(),
                    ..Default::default()
                };
                let folder = if i % 11 == 0 { hidden } else { mine };
                let acct = if i % 11 == 0 { "a2" } else { "a1" };
                let id = s.fixture_message(acct, folder, i + 1, &m).unwrap();
                s.match_manual(id, c, "by hand").unwrap();
                let undated = i % 17 == 0;
                if undated {
                    s.conn
                        .exec("UPDATE messages SET date = NULL WHERE id = ?1", args![id])
                        .unwrap();
                }
                if i % 13 == 0 {
                    s.conn
                        .exec("UPDATE messages SET denied = 1 WHERE id = ?1", args![id])
                        .unwrap();
                }
                if i % 11 != 0 && i % 13 != 0 {
                    expected.push(((!undated).then_some(date), id));
                }
            }
            // Newest first; undated last; ties by id, higher first.
            expected.sort_by(|a, b| match (&a.0, &b.0) {
                (Some(x), Some(y)) => y.cmp(x).then(b.1.cmp(&a.1)),
                (Some(_), None) => std::cmp::Ordering::Less,
                (None, Some(_)) => std::cmp::Ordering::Greater,
                (None, None) => b.1.cmp(&a.1),
            });
            let accounts = ["a1".to_string()];
            let total = s.timeline_count(c, &accounts).unwrap();
            assert_eq!(total as usize, expected.len());
            let keys = |rows: &[TimelineRow]| -> Vec<(Option<String>, i64)> {
                rows.iter().map(|r| (r.date.clone(), r.id)).collect()
            };
            for limit in [1i64, 7, 50, 1000] {
                let mut walked = Vec::new();
                let mut after: Option<TimelineKey> = None;
                loop {
                    let w = match &after {
                        Some(key) => TimelineWindow::After { key, limit },
                        None => TimelineWindow::Offset { offset: 0, limit },
                    };
                    let page = s.timeline_page(c, &accounts, w).unwrap();
                    assert!(page.len() as i64 <= limit);
                    walked.extend(keys(&page));
                    after = page.last().map(TimelineRow::key);
                    if (page.len() as i64) < limit {
                        break;
                    }
                }
                assert_eq!(walked, expected, "pages of {limit}");
            }
            for (offset, limit) in [(0i64, 10i64), (95, 20), (total - 5, 10)] {
                let want: Vec<_> = expected
                    .iter()
                    .skip(offset as usize)
                    .take(limit as usize)
                    .cloned()
                    .collect();
                let by_offset = s
                    .timeline_page(c, &accounts, TimelineWindow::Offset { offset, limit })
                    .unwrap();
                assert_eq!(keys(&by_offset), want);
                let from_end = s
                    .timeline_page(
                        c,
                        &accounts,
                        TimelineWindow::FromEnd {
                            offset: (total - offset - limit).max(0),
                            limit: (total - offset).min(limit),
                        },
                    )
                    .unwrap();
                assert_eq!(keys(&from_end), want, "from the end at {offset}");
            }
            // The whole timeline (customers show) is the walk, oldest first.
            let mut all = keys(&s.timeline(c, &accounts).unwrap());
            all.reverse();
            assert_eq!(all, expected);
            assert_eq!(s.timeline_count(c, &[]).unwrap(), 0);
        });
    }

    #[test]
    fn matches_examined_marks_and_mentions() {
        crate::store::testing::each(|s| {
            let inbox = s.fixture_folder("a1", "INBOX", Some("inbox")).unwrap();
            let other = s.fixture_folder("a2", "INBOX", Some("inbox")).unwrap();
            let c = s.customer_insert("C", None, None).unwrap();
            let d = s.customer_insert("D", None, None).unwrap();
            let msg = |from: &str, to: &[&str], date: &str| FixtureMessage {
                message_id: Some(format!("{from}-{date}@test")),
                in_reply_to: Some("root@test".into()),
                from_addr: from.into(),
                to: to.iter().map(|s| s.to_string()).collect(),
                subject: "s".into(),
                date: date.into(),
                ..Default::default()
            };
            let m1 = s
                .fixture_message(
                    "a1",
                    inbox,
                    1,
                    &msg("x@a.test", &["Y@B.test"], "2026-01-02"),
                )
                .unwrap();
            let m2 = s
                .fixture_message("a1", inbox, 2, &msg("y@b.test", &[], ""))
                .unwrap();
            s.conn
                .exec("UPDATE messages SET date = NULL WHERE id = ?1", args![m2])
                .unwrap();
            // m1 also in a second account and twice in the first.
            s.fixture_message("a2", other, 1, &msg("z@c.test", &[], "2026-01-01"))
                .unwrap();
            s.conn
                .exec(
                    "INSERT INTO locations (message_id, account_id, folder_id, uidvalidity, uid) VALUES (?1, 'a2', ?2, 1, 9), (?1, 'a1', ?3, 2, 9)",
                    args![m1, other, inbox],
                )
                .unwrap();
            let inputs = s.match_inputs(&[m2, m1]).unwrap();
            assert_eq!(inputs.iter().map(|m| m.id).collect::<Vec<_>>(), [m1, m2]);
            let mut accounts = inputs[0].accounts.clone();
            accounts.sort();
            assert_eq!(accounts, ["a1", "a2"]);
            let mut all = Vec::new();
            s.for_each_match_input(HoldersWanted::Each, |m| all.push(m.id))
                .unwrap();
            assert_eq!(all.len(), 3);
            // The holders as the deny lists need them: each account, only whether there is
            // one (`*`), or not at all.
            let mut holders = Vec::new();
            for wanted in [HoldersWanted::Each, HoldersWanted::Any, HoldersWanted::No] {
                s.for_each_match_input(wanted, |m| {
                    if m.id == m1 {
                        let mut a = m.accounts.clone();
                        a.sort();
                        holders.push(a);
                    }
                })
                .unwrap();
            }
            assert_eq!(
                holders,
                [
                    vec!["a1".to_string(), "a2".into()],
                    vec!["*".into()],
                    vec![]
                ]
            );
            assert_eq!(all.last(), Some(&m2), "mail without a date last");
            let mut refs = 0;
            s.for_each_reference(|_, irt, _| {
                assert_eq!(irt, Some("root@test"));
                refs += 1;
            })
            .unwrap();
            assert_eq!(refs, 3);
            let found = s
                .messages_by_message_ids(&["x@a.test-2026-01-02@test".to_string()])
                .unwrap();
            assert_eq!(found[0].id, m1);

            s.apply_match(&MatchUpdate {
                message_id: m1,
                matches: vec![
                    MatchRow {
                        customer_id: d,
                        rule: "address".into(),
                        detail: None,
                    },
                    MatchRow {
                        customer_id: c,
                        rule: "domain".into(),
                        detail: Some("why".into()),
                    },
                ],
                customer_id: Some(d),
                denied: true,
            })
            .unwrap();
            s.match_manual(m1, c, "by hand").unwrap();
            let mut rows = s.matches_of(Some(&[m1, m2])).unwrap().remove(&m1).unwrap();
            rows.sort_by_key(|r| r.customer_id);
            assert_eq!(rows[0].rule, "manual");
            assert_eq!(rows[0].detail.as_deref(), Some("by hand"));
            assert_eq!(s.matches_of(None).unwrap()[&m1].len(), 2);
            assert_eq!(s.customer_message_ids(c).unwrap(), [m1]);
            // Denied mail stays out of the timeline.
            assert!(s.timeline(c, &["a1".into()]).unwrap().is_empty());
            s.apply_match(&MatchUpdate {
                message_id: m1,
                matches: vec![],
                customer_id: Some(c),
                denied: false,
            })
            .unwrap();
            assert_eq!(
                s.matches_of(Some(&[m1])).unwrap()[&m1].len(),
                1,
                "manual kept"
            );
            let tl = s.timeline(c, &["zz".into(), "a2".into()]).unwrap();
            assert_eq!((tl[0].id, tl[0].account_id.as_deref()), (m1, Some("a2")));
            assert!(s.timeline(c, &[]).unwrap().is_empty());
            s.unmatch_manual(m1, c).unwrap();
            assert!(s.matches_of(Some(&[m1])).unwrap().is_empty());

            assert_eq!(s.unexamined_ids().unwrap().len(), 3);
            s.set_examined(&[m1, m2]).unwrap();
            assert_eq!(s.unexamined_ids().unwrap().len(), 1);
            s.fixture_unexamine(&[m2]).unwrap();
            assert_eq!(s.unexamined_ids().unwrap().len(), 2);
            assert_eq!(s.message_count().unwrap(), 3);

            // From the address, or among To/Cc in any case.
            assert_eq!(
                s.messages_mentioning(&["y@b.test".to_string()]).unwrap(),
                [m1, m2]
            );
            // Replies whose customer can follow from the thread: not m1, which has one.
            let replies = s.thread_replies_to(&["root@test".to_string()]).unwrap();
            assert_eq!(replies.len(), 2);
            assert!(!replies.contains(&m1));
        });
    }
}
