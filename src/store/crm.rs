//! Typed queries for the customer book and matches (issue 5). The crm module decides; this file
//! only reads and writes rows.

use rusqlite::{OptionalExtension, params, params_from_iter};
use serde::Serialize;

use super::console::fuzzy_pattern;
use super::{Store, now};
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

const MSG_COLS: &str = "m.id, m.message_id, m.in_reply_to, m.refs, m.from_addr, m.to_json, m.cc_json, m.direction, \
     (SELECT group_concat(DISTINCT l.account_id) FROM locations l WHERE l.message_id = m.id), m.customer_id, m.denied, m.date";
fn match_input(r: &rusqlite::Row<'_>) -> rusqlite::Result<MatchInput> {
    let accounts: Option<String> = r.get(8)?;
    Ok(MatchInput {
        id: r.get(0)?,
        message_id: r.get(1)?,
        in_reply_to: r.get(2)?,
        refs: r.get(3)?,
        from_addr: r.get(4)?,
        to_json: r.get(5)?,
        cc_json: r.get(6)?,
        direction: r.get(7)?,
        accounts: accounts
            .map(|a| a.split(',').map(str::to_string).collect())
            .unwrap_or_default(),
        customer_id: r.get(9)?,
        denied: r.get::<_, i64>(10)? != 0,
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

impl Store {
    /// Runs `f` atomically: a transaction of its own, or a savepoint inside the caller's.
    pub fn atomically<T>(&self, f: impl FnOnce(&Store) -> Result<T>) -> Result<T> {
        let outer = self.conn.is_autocommit();
        // IMMEDIATE: take the write lock up front, so a concurrent sync makes us wait (busy
        // timeout) instead of failing on a read→write upgrade.
        self.conn.execute_batch(if outer {
            "BEGIN IMMEDIATE"
        } else {
            "SAVEPOINT crm"
        })?;
        match f(self) {
            Ok(v) => {
                self.conn
                    .execute_batch(if outer { "COMMIT" } else { "RELEASE crm" })?;
                Ok(v)
            }
            Err(e) => {
                let _ = self.conn.execute_batch(if outer {
                    "ROLLBACK"
                } else {
                    "ROLLBACK TO crm; RELEASE crm"
                });
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
        let t = now();
        self.conn.execute(
            "INSERT INTO customers (name, company, notes, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?4)",
            params![name, company, notes, t],
        )?;
        Ok(self.conn.last_insert_rowid())
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
            self.conn.execute(
                "UPDATE customers SET name = ?2 WHERE id = ?1",
                params![id, n],
            )?;
        }
        if let Some(c) = company {
            self.conn.execute(
                "UPDATE customers SET company = ?2 WHERE id = ?1",
                params![id, c],
            )?;
        }
        if let Some(n) = notes {
            self.conn.execute(
                "UPDATE customers SET notes = ?2 WHERE id = ?1",
                params![id, n],
            )?;
        }
        self.customer_touch(id)
    }

    pub fn customer_touch(&self, id: i64) -> Result<()> {
        self.conn.execute(
            "UPDATE customers SET updated_at = ?2 WHERE id = ?1",
            params![id, now()],
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
                self.conn.execute(
                    "INSERT INTO customer_emails (email, customer_id) VALUES (?1, ?2)",
                    params![email, id],
                )?;
                Ok(true)
            }
        }
    }

    pub fn customer_remove_email(&self, id: i64, email: &str) -> Result<bool> {
        Ok(self.conn.execute(
            "DELETE FROM customer_emails WHERE email = ?1 AND customer_id = ?2",
            params![email, id],
        )? > 0)
    }

    pub fn customer_add_domain(&self, id: i64, domain: &str) -> Result<bool> {
        Ok(self.conn.execute(
            "INSERT OR IGNORE INTO customer_domains (domain, customer_id) VALUES (?1, ?2)",
            params![domain, id],
        )? > 0)
    }

    pub fn customer_remove_domain(&self, id: i64, domain: &str) -> Result<bool> {
        Ok(self.conn.execute(
            "DELETE FROM customer_domains WHERE domain = ?1 AND customer_id = ?2",
            params![domain, id],
        )? > 0)
    }

    /// Removes the customer; its messages fall back to unmatched (FK: SET NULL / CASCADE).
    pub fn customer_delete(&self, id: i64) -> Result<bool> {
        Ok(self
            .conn
            .execute("DELETE FROM customers WHERE id = ?1", [id])?
            > 0)
    }

    pub fn email_owner(&self, email: &str) -> Result<Option<i64>> {
        Ok(self
            .conn
            .query_row(
                "SELECT customer_id FROM customer_emails WHERE email = ?1",
                [email],
                |r| r.get(0),
            )
            .optional()?)
    }

    pub fn customer(&self, id: i64) -> Result<Option<CustomerRow>> {
        let row = self
            .conn
            .query_row(
                "SELECT id, name, company, notes, created_at, updated_at FROM customers WHERE id = ?1",
                [id],
                customer_head,
            )
            .optional()?;
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
        let mut st = self.conn.prepare_cached(sql)?;
        let v = st
            .query_map([id], |r| r.get(0))?
            .collect::<rusqlite::Result<Vec<String>>>()?;
        Ok(v)
    }

    /// Every customer with addresses and domains, by name.
    pub fn customers(&self) -> Result<Vec<CustomerRow>> {
        let mut st = self.conn.prepare(
            "SELECT id, name, company, notes, created_at, updated_at FROM customers ORDER BY name COLLATE NOCASE, id",
        )?;
        let mut rows = st
            .query_map([], customer_head)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
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
        let mut st = self
            .conn
            .prepare("SELECT email, customer_id FROM customer_emails ORDER BY email")?;
        let emails = st
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let mut st = self.conn.prepare(
            "SELECT domain, customer_id FROM customer_domains ORDER BY domain, customer_id",
        )?;
        let domains = st
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(BookRows { emails, domains })
    }

    /// Matching input for the given messages, oldest first (thread parents are decided before
    /// their replies).
    pub fn match_inputs(&self, ids: &[i64]) -> Result<Vec<MatchInput>> {
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(CHUNK) {
            let mut st = self.conn.prepare_cached(&format!(
                "SELECT {MSG_COLS} FROM messages m WHERE m.id IN ({})",
                placeholders(chunk.len())
            ))?;
            for r in st.query_map(params_from_iter(chunk), match_input)? {
                out.push(r?);
            }
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
    pub fn for_each_match_input(&self, mut f: impl FnMut(MatchInput)) -> Result<()> {
        for sql in [
            format!(
                "SELECT {MSG_COLS} FROM messages m WHERE m.date IS NOT NULL ORDER BY m.date, m.id"
            ),
            format!("SELECT {MSG_COLS} FROM messages m WHERE m.date IS NULL ORDER BY m.id"),
        ] {
            let mut st = self.conn.prepare(&sql)?;
            let mut rows = st.query([])?;
            while let Some(r) = rows.next()? {
                f(match_input(r)?);
            }
        }
        Ok(())
    }

    /// Calls `f` with the In-Reply-To and References of every message that has either.
    pub fn for_each_reference(&self, mut f: impl FnMut(Option<&str>, Option<&str>)) -> Result<()> {
        let mut st = self.conn.prepare(
            "SELECT in_reply_to, refs FROM messages WHERE in_reply_to IS NOT NULL OR refs IS NOT NULL",
        )?;
        let mut rows = st.query([])?;
        while let Some(r) = rows.next()? {
            let irt: Option<String> = r.get(0)?;
            let refs: Option<String> = r.get(1)?;
            f(irt.as_deref(), refs.as_deref());
        }
        Ok(())
    }

    /// Messages carrying any of these Message-IDs (thread neighbours of a batch).
    pub fn messages_by_message_ids(&self, msgids: &[String]) -> Result<Vec<MatchInput>> {
        let mut out = Vec::new();
        for chunk in msgids.chunks(CHUNK) {
            let mut st = self.conn.prepare_cached(&format!(
                "SELECT {MSG_COLS} FROM messages m WHERE m.message_id IN ({})",
                placeholders(chunk.len())
            ))?;
            for r in st.query_map(params_from_iter(chunk), match_input)? {
                out.push(r?);
            }
        }
        Ok(out)
    }

    /// All matches of the given messages (or of every message), by message.
    pub fn matches_of(
        &self,
        ids: Option<&[i64]>,
    ) -> Result<std::collections::HashMap<i64, Vec<MatchRow>>> {
        let mut out: std::collections::HashMap<i64, Vec<MatchRow>> = Default::default();
        let mut add = |r: &rusqlite::Row<'_>| -> rusqlite::Result<()> {
            out.entry(r.get(0)?).or_default().push(MatchRow {
                customer_id: r.get(1)?,
                rule: r.get(2)?,
                detail: r.get(3)?,
            });
            Ok(())
        };
        let cols = "SELECT message_id, customer_id, rule, detail FROM matches";
        match ids {
            None => {
                let mut st = self.conn.prepare(cols)?;
                let mut rows = st.query([])?;
                while let Some(r) = rows.next()? {
                    add(r)?;
                }
            }
            Some(ids) => {
                for chunk in ids.chunks(CHUNK) {
                    let mut st = self.conn.prepare_cached(&format!(
                        "{cols} WHERE message_id IN ({}) ORDER BY rowid",
                        placeholders(chunk.len())
                    ))?;
                    let mut rows = st.query(params_from_iter(chunk))?;
                    while let Some(r) = rows.next()? {
                        add(r)?;
                    }
                }
            }
        }
        Ok(out)
    }

    /// Writes the outcome of matching for one message (call inside `atomically`).
    pub fn apply_match(&self, u: &MatchUpdate) -> Result<()> {
        self.conn
            .prepare_cached("DELETE FROM matches WHERE message_id = ?1 AND rule <> 'manual'")?
            .execute([u.message_id])?;
        let mut ins = self.conn.prepare_cached(
            "INSERT OR IGNORE INTO matches (message_id, customer_id, rule, detail) VALUES (?1, ?2, ?3, ?4)",
        )?;
        for m in &u.matches {
            ins.execute(params![u.message_id, m.customer_id, m.rule, m.detail])?;
        }
        self.conn
            .prepare_cached("UPDATE messages SET customer_id = ?2, denied = ?3 WHERE id = ?1")?
            .execute(params![u.message_id, u.customer_id, u.denied as i64])?;
        Ok(())
    }

    /// A manual pairing (triage `pair`); replaces an automatic match to the same customer.
    pub fn match_manual(&self, message_id: i64, customer_id: i64, detail: &str) -> Result<()> {
        self.conn.execute(
            "INSERT OR REPLACE INTO matches (message_id, customer_id, rule, detail) VALUES (?1, ?2, 'manual', ?3)",
            params![message_id, customer_id, detail],
        )?;
        self.conn.execute(
            "UPDATE messages SET customer_id = ?2 WHERE id = ?1",
            params![message_id, customer_id],
        )?;
        Ok(())
    }

    pub fn unmatch_manual(&self, message_id: i64, customer_id: i64) -> Result<()> {
        self.conn.execute(
            "DELETE FROM matches WHERE message_id = ?1 AND customer_id = ?2 AND rule = 'manual'",
            params![message_id, customer_id],
        )?;
        Ok(())
    }

    /// A customer's messages (through `matches`, so mail to two customers shows on both),
    /// limited to locations in `accounts`.
    pub fn timeline(&self, customer_id: i64, accounts: &[String]) -> Result<Vec<TimelineRow>> {
        if accounts.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT m.id, m.message_id, m.in_reply_to, m.refs, m.date, m.direction, m.from_addr, m.from_name,
                    m.to_json, m.subject, mt.rule, mt.detail,
                    (SELECT l.account_id FROM locations l WHERE l.message_id = m.id AND l.account_id IN ({p}) LIMIT 1) AS acct
             FROM matches mt JOIN messages m ON m.id = mt.message_id
             WHERE mt.customer_id = ? AND m.denied = 0
             ORDER BY m.date, m.id",
            p = placeholders(accounts.len())
        );
        let mut st = self.conn.prepare(&sql)?;
        let mut params: Vec<rusqlite::types::Value> =
            accounts.iter().map(|a| a.clone().into()).collect();
        params.push(customer_id.into());
        let rows = st
            .query_map(params_from_iter(params), |r| {
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
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        // A message only in accounts the operator may not see stays out of the timeline.
        Ok(rows
            .into_iter()
            .filter(|r| r.account_id.is_some())
            .collect())
    }
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
            // unmatched message through the customer index.
            let mut st = self.conn.prepare_cached(&format!(
                "SELECT id FROM messages m WHERE in_reply_to IN ({}) AND (+customer_id IS NULL
                   OR EXISTS (SELECT 1 FROM matches x WHERE x.message_id = m.id AND x.rule = 'thread'))",
                placeholders(chunk.len())
            ))?;
            for r in st.query_map(params_from_iter(chunk), |r| r.get(0))? {
                out.push(r?);
            }
        }
        Ok(out)
    }
}

fn customer_head(r: &rusqlite::Row<'_>) -> rusqlite::Result<CustomerRow> {
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
    /// Messages matching has not examined yet (see migration 3), ascending.
    pub fn unexamined_ids(&self) -> Result<Vec<i64>> {
        let mut st = self
            .conn
            .prepare_cached("SELECT id FROM messages WHERE crm_examined = 0 ORDER BY id")?;
        let v = st
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<Vec<i64>>>()?;
        Ok(v)
    }

    /// Marks messages as examined by matching.
    pub fn set_examined(&self, ids: &[i64]) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        // One statement for any number of ids (one JSON array parameter), instead of a
        // freshly prepared 500-placeholder UPDATE per chunk.
        let list = serde_json::to_string(ids).unwrap_or_else(|_| "[]".into());
        self.conn.execute(
            "UPDATE messages SET crm_examined = 1
             WHERE crm_examined = 0 AND id IN (SELECT value FROM json_each(?1))",
            [list],
        )?;
        Ok(())
    }

    /// With an empty customer book matching decides nothing for mail that is not denied: no
    /// customer, no match, not denied. Marks every such unexamined message examined at once and
    /// returns how many — in one write transaction that first checks that the book is empty (no
    /// address, no domain, no pairing, no message linked to a customer), else `None`. Denied
    /// mail is left for matching (an emptied deny list un-denies it).
    pub fn examine_without_book(&self) -> Result<Option<usize>> {
        self.atomically(|s| {
            let empty: bool = s.conn.query_row(
                "SELECT NOT EXISTS (SELECT 1 FROM customer_emails)
                    AND NOT EXISTS (SELECT 1 FROM customer_domains)
                    AND NOT EXISTS (SELECT 1 FROM matches)
                    AND NOT EXISTS (SELECT 1 FROM messages WHERE customer_id IS NOT NULL)",
                [],
                |r| r.get(0),
            )?;
            if !empty {
                return Ok(None);
            }
            let n = s.conn.execute(
                "UPDATE messages SET crm_examined = 1 WHERE crm_examined = 0 AND denied = 0",
                [],
            )?;
            Ok(Some(n))
        })
    }

    /// Logical messages in the cache.
    pub fn message_count(&self) -> Result<usize> {
        let n: i64 = self
            .conn
            .query_row("SELECT COUNT(*) FROM messages", [], |r| r.get(0))?;
        Ok(n as usize)
    }
}

/// A customer row with its addresses and domains folded in (one newline-separated list each:
/// canonical addresses and domains never hold a newline), ordered as `customer` orders them.
const CUSTOMER_COLS: &str = "c.id, c.name, c.company, c.notes, c.created_at, c.updated_at,
    (SELECT group_concat(email, char(10)) FROM (SELECT email FROM customer_emails e WHERE e.customer_id = c.id ORDER BY email)),
    (SELECT group_concat(domain, char(10)) FROM (SELECT domain FROM customer_domains d WHERE d.customer_id = c.id ORDER BY domain))";

fn customer_full(r: &rusqlite::Row<'_>) -> rusqlite::Result<CustomerRow> {
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
        let mut st = self.conn.prepare_cached(&format!(
            "SELECT {CUSTOMER_COLS} FROM customers c WHERE {CUSTOMER_MATCH}
             ORDER BY c.name COLLATE NOCASE, c.id LIMIT ?2 OFFSET ?3"
        ))?;
        let rows = st
            .query_map(params![fuzzy_pattern(query), limit, offset], customer_full)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    pub fn customers_count(&self, query: &str) -> Result<i64> {
        Ok(self.conn.query_row(
            &format!("SELECT COUNT(*) FROM customers c WHERE {CUSTOMER_MATCH}"),
            [fuzzy_pattern(query)],
            |r| r.get(0),
        )?)
    }
}

impl Store {
    /// Every customer's name by id (cheaper than `customers` when only names are needed).
    pub fn customer_names(&self) -> Result<std::collections::HashMap<i64, String>> {
        let mut st = self.conn.prepare_cached("SELECT id, name FROM customers")?;
        let v = st
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<std::collections::HashMap<i64, String>>>()?;
        Ok(v)
    }
}

impl Store {
    /// Messages from one of these addresses, or with one of them among To/Cc.
    pub fn messages_mentioning(&self, addresses: &[String]) -> Result<Vec<i64>> {
        let mut out: Vec<i64> = Vec::new();
        for chunk in addresses.chunks(CHUNK) {
            let mut st = self.conn.prepare_cached(&format!(
                "SELECT id FROM messages WHERE from_addr IN ({})",
                placeholders(chunk.len())
            ))?;
            for r in st.query_map(params_from_iter(chunk), |r| r.get(0))? {
                out.push(r?);
            }
        }
        // Recipients live in JSON; one scan for all addresses (a pairing names one or two).
        for chunk in addresses.chunks(100) {
            let cond = vec!["instr(lower(to_json || cc_json), ?) > 0"; chunk.len()].join(" OR ");
            let mut st = self
                .conn
                .prepare(&format!("SELECT id FROM messages WHERE {cond}"))?;
            for r in st.query_map(params_from_iter(chunk), |r| r.get(0))? {
                out.push(r?);
            }
        }
        out.sort_unstable();
        out.dedup();
        Ok(out)
    }

    /// Ids of every message matched to a customer (any rule).
    pub fn customer_message_ids(&self, customer_id: i64) -> Result<Vec<i64>> {
        let mut st = self
            .conn
            .prepare_cached("SELECT message_id FROM matches WHERE customer_id = ?1")?;
        let v = st
            .query_map([customer_id], |r| r.get(0))?
            .collect::<rusqlite::Result<Vec<i64>>>()?;
        Ok(v)
    }
}
