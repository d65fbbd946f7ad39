//! The protocol trace: each account's switch and its bounded ring of redacted lines.

use serde::Serialize;

use super::sql::{Owned, in_list, owned_args};
use super::{Store, now};
use crate::args;
use crate::error::Result;

/// Lines kept per account: the oldest go as new ones come.
pub const TRACE_RING: i64 = 5000;

/// An account's trace switch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TraceSetting {
    pub account_id: String,
    pub enabled: bool,
    pub literals: bool,
    pub updated_at: String,
    pub updated_by: String,
}

/// One stored line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TraceRow {
    pub id: i64,
    pub account_id: String,
    pub at: String,
    pub proto: String,
    pub dir: String,
    pub level: String,
    pub line: String,
}

/// A line to store.
#[derive(Debug, Clone)]
pub struct NewTraceLine {
    pub account_id: String,
    pub proto: &'static str,
    pub dir: &'static str,
    pub level: &'static str,
    pub line: String,
}

/// Which lines a reader asks for: of these accounts (the visible ones, or one of them), at
/// these levels (empty: all).
#[derive(Debug, Clone, Default)]
pub struct TraceFilter {
    pub accounts: Vec<String>,
    pub levels: Vec<&'static str>,
}

impl TraceFilter {
    fn sql(&self) -> (String, Vec<Owned>) {
        let mut values: Vec<Owned> = self
            .accounts
            .iter()
            .map(|a| Owned::Text(a.clone()))
            .collect();
        let mut cond = format!("account_id IN ({})", in_list(1, self.accounts.len()));
        if !self.levels.is_empty() {
            cond.push_str(&format!(
                " AND level IN ({})",
                in_list(values.len() + 1, self.levels.len())
            ));
            values.extend(self.levels.iter().map(|l| Owned::Text(l.to_string())));
        }
        (cond, values)
    }
}

const COLS: &str = "id, account_id, at, proto, dir, level, line";

fn row(r: &super::sql::Row<'_>) -> Result<TraceRow> {
    Ok(TraceRow {
        id: r.get(0)?,
        account_id: r.get(1)?,
        at: r.get(2)?,
        proto: r.get(3)?,
        dir: r.get(4)?,
        level: r.get(5)?,
        line: r.get(6)?,
    })
}

impl Store {
    /// Switches an account's trace on or off (`literals`: keep message literals in full).
    pub fn set_trace(
        &self,
        account_id: &str,
        enabled: bool,
        literals: bool,
        operator: &str,
    ) -> Result<()> {
        self.conn.exec(
            "INSERT INTO trace_settings (account_id, enabled, literals, updated_at, updated_by)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (account_id) DO UPDATE SET enabled = excluded.enabled,
                 literals = excluded.literals, updated_at = excluded.updated_at,
                 updated_by = excluded.updated_by",
            args![account_id, enabled as i64, literals as i64, now(), operator],
        )?;
        Ok(())
    }

    /// Every account's switch (accounts never switched have none).
    pub fn trace_settings(&self) -> Result<Vec<TraceSetting>> {
        self.conn.rows(
            "SELECT account_id, enabled, literals, updated_at, updated_by FROM trace_settings
             ORDER BY account_id",
            args![],
            |r| {
                Ok(TraceSetting {
                    account_id: r.get(0)?,
                    enabled: r.get::<i64>(1)? != 0,
                    literals: r.get::<i64>(2)? != 0,
                    updated_at: r.get(3)?,
                    updated_by: r.get(4)?,
                })
            },
        )
    }

    /// Appends lines and trims each account's ring to its newest [`TRACE_RING`], in one
    /// transaction.
    pub fn append_trace(&self, lines: &[NewTraceLine]) -> Result<()> {
        if lines.is_empty() {
            return Ok(());
        }
        let at = now();
        self.conn.tx(|| {
            for l in lines {
                self.conn.exec(
                    "INSERT INTO trace_lines (account_id, at, proto, dir, level, line)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    args![l.account_id, at, l.proto, l.dir, l.level, l.line],
                )?;
            }
            let mut accounts: Vec<&str> = lines.iter().map(|l| l.account_id.as_str()).collect();
            accounts.sort_unstable();
            accounts.dedup();
            for a in accounts {
                self.conn.exec(
                    "DELETE FROM trace_lines WHERE account_id = ?1 AND id <= (
                         SELECT id FROM trace_lines WHERE account_id = ?1
                         ORDER BY id DESC LIMIT 1 OFFSET ?2)",
                    args![a, TRACE_RING],
                )?;
            }
            Ok(())
        })
    }

    /// Lines through `filter`, newest first.
    pub fn trace_page(
        &self,
        filter: &TraceFilter,
        offset: i64,
        limit: i64,
    ) -> Result<Vec<TraceRow>> {
        if filter.accounts.is_empty() {
            return Ok(Vec::new());
        }
        let (cond, values) = filter.sql();
        self.conn.rows(
            &format!(
                "SELECT {COLS} FROM trace_lines WHERE {cond}
                 ORDER BY id DESC LIMIT {limit} OFFSET {offset}"
            ),
            &owned_args(&values),
            row,
        )
    }

    pub fn trace_count(&self, filter: &TraceFilter) -> Result<i64> {
        if filter.accounts.is_empty() {
            return Ok(0);
        }
        let (cond, values) = filter.sql();
        self.conn.one(
            &format!("SELECT COUNT(*) FROM trace_lines WHERE {cond}"),
            &owned_args(&values),
            |r| r.get(0),
        )
    }
}
