//! The event/error log and the audit log.

use serde::Serialize;

use super::console::like_escape;
use super::sql::{Owned, Row, in_list, not_in, owned_args};
use super::{Store, now};
use crate::args;
use crate::error::Result;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Error,
    Warn,
    Info,
    Debug,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Error => "error",
            Level::Warn => "warn",
            Level::Info => "info",
            Level::Debug => "debug",
        }
    }
    pub fn parse(s: &str) -> Option<Level> {
        match s.to_ascii_lowercase().as_str() {
            "error" => Some(Level::Error),
            "warn" | "warning" => Some(Level::Warn),
            "info" => Some(Level::Info),
            "debug" | "trace" => Some(Level::Debug),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct EventRow {
    pub id: i64,
    pub at: String,
    pub account_id: Option<String>,
    pub level: String,
    pub what: String,
    pub detail: Option<String>,
    pub fix: Option<String>,
}

/// Which events the console's log pane shows.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EventFilter {
    /// Levels shown (error, warn, …); empty = all.
    pub levels: Vec<&'static str>,
    /// Substring of what/detail/fix (case-insensitive for ASCII).
    pub search: String,
}

/// The accounts whose log entries (events, audit rows) a reader may see. Entries about no
/// account are everyone's; entries about any other account — one not visible to the reader,
/// or one that is gone — are left out.
#[derive(Debug, Clone, Copy)]
pub struct Visible<'a>(pub &'a [String]);

impl Visible<'_> {
    /// The SQL condition on `account_id`, its list numbered from `?first`; push
    /// [`Visible::values`] in that place.
    fn sql(&self, first: usize) -> String {
        format!(
            "(account_id IS NULL OR account_id IN ({}))",
            in_list(first, self.0.len())
        )
    }

    fn values(&self) -> impl Iterator<Item = Owned> + '_ {
        self.0.iter().map(|a| Owned::Text(a.clone()))
    }
}

/// Who reads the audit log: rows about no account, and about the accounts they may see; rows
/// about an account that is gone (removed) only where they wrote them, since nobody may be
/// asked any more whose it was.
#[derive(Debug, Clone, Copy)]
pub struct AuditReader<'a> {
    pub operator: &'a str,
    /// The accounts this operator may see.
    pub visible: &'a [String],
    /// Every configured account.
    pub configured: &'a [String],
}

#[derive(Debug, Clone, Serialize)]
pub struct AuditRow {
    pub id: i64,
    pub at: String,
    pub operator: String,
    pub action: String,
    pub account_id: Option<String>,
    pub target: Option<String>,
    pub detail: Option<serde_json::Value>,
}

impl Store {
    pub fn log_event(
        &self,
        account_id: Option<&str>,
        level: Level,
        what: &str,
        detail: Option<&str>,
        fix: Option<&str>,
    ) -> Result<i64> {
        self.conn.one(
            "INSERT INTO events (at, account_id, level, what, detail, fix) VALUES (?1, ?2, ?3, ?4, ?5, ?6) RETURNING id",
            args![now(), account_id, level.as_str(), what, detail, fix],
            |r| r.get(0),
        )
    }

    /// Events with id > `after`, at or above `min_level`, of `visible` accounts, oldest first,
    /// at most `limit`.
    pub fn events_after(
        &self,
        after: i64,
        min_level: Level,
        visible: Visible<'_>,
        limit: i64,
    ) -> Result<Vec<EventRow>> {
        let mut values = vec![Owned::Int(after), Owned::Int(limit)];
        values.extend(visible.values());
        self.conn.rows(
            &format!(
                "SELECT {EVENT_COLS} FROM events WHERE id > ?1 AND level IN ({}) AND {}
                 ORDER BY id LIMIT ?2",
                levels_up_to(min_level),
                visible.sql(3),
            ),
            &owned_args(&values),
            event_row,
        )
    }

    /// The newest `limit` events at or above `min_level` of `visible` accounts (for `log`
    /// without --follow), oldest first.
    pub fn recent_events(
        &self,
        min_level: Level,
        visible: Visible<'_>,
        limit: i64,
    ) -> Result<Vec<EventRow>> {
        let mut values = vec![Owned::Int(limit)];
        values.extend(visible.values());
        let mut rows = self.conn.rows(
            &format!(
                "SELECT {EVENT_COLS} FROM events WHERE level IN ({}) AND {}
                 ORDER BY id DESC LIMIT ?1",
                levels_up_to(min_level),
                visible.sql(2),
            ),
            &owned_args(&values),
            event_row,
        )?;
        rows.reverse();
        Ok(rows)
    }

    /// Events of `visible` accounts through the log pane's level and text filter, newest first.
    pub fn events_page(
        &self,
        filter: &EventFilter,
        visible: Visible<'_>,
        offset: i64,
        limit: i64,
    ) -> Result<Vec<EventRow>> {
        let (sql, values) = event_query(filter, visible, EVENT_COLS);
        self.conn.rows(
            &format!("{sql} ORDER BY id DESC LIMIT {limit} OFFSET {offset}"),
            &owned_args(&values),
            event_row,
        )
    }

    pub fn events_count(&self, filter: &EventFilter, visible: Visible<'_>) -> Result<i64> {
        let (sql, values) = event_query(filter, visible, "COUNT(*)");
        self.conn.one(&sql, &owned_args(&values), |r| r.get(0))
    }

    pub fn audit(
        &self,
        operator: &str,
        action: &str,
        account_id: Option<&str>,
        target: Option<&str>,
        detail: &serde_json::Value,
    ) -> Result<i64> {
        self.conn.one(
            "INSERT INTO audit (at, operator, action, account_id, target, detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6) RETURNING id",
            args![now(), operator, action, account_id, target, detail.to_string()],
            |r| r.get(0),
        )
    }

    /// Audits a refusal of something the connection's role may not see (PostgreSQL: row-level
    /// security hid its holder from the caller). `kind` is `message`, `outbox`, `quarantine` or
    /// `event`; nothing is recorded when no such thing exists. On SQLite nothing is hidden, so
    /// there is nothing to do.
    pub fn audit_hidden_refusal(
        &self,
        kind: &str,
        target_id: i64,
        target: &str,
        need: &str,
    ) -> Result<()> {
        if self.engine() == super::sql::Engine::Postgres {
            self.conn.one(
                "SELECT 1 FROM (SELECT mailroom_audit_refusal(?1, ?2, ?3, ?4, ?5)) AS r",
                args![kind, target_id, target, need, now()],
                |_| Ok(()),
            )?;
        }
        Ok(())
    }

    /// The newest `limit` audit rows, oldest first (every row: for tests and tools).
    pub fn audit_rows(&self, limit: i64) -> Result<Vec<AuditRow>> {
        self.audit_query("1 = 1", vec![Owned::Int(limit)])
    }

    /// The newest `limit` audit rows `reader` may read, oldest first.
    pub fn audit_visible(&self, reader: AuditReader<'_>, limit: i64) -> Result<Vec<AuditRow>> {
        let (nv, nc) = (reader.visible.len(), reader.configured.len());
        let mut values = vec![Owned::Int(limit), Owned::Text(reader.operator.to_string())];
        values.extend(reader.visible.iter().map(|a| Owned::Text(a.clone())));
        values.extend(reader.configured.iter().map(|a| Owned::Text(a.clone())));
        self.audit_query(
            &format!(
                "account_id IS NULL OR account_id IN ({})
                 OR (operator = ?2 AND {})",
                in_list(3, nv),
                not_in("account_id", 3 + nv, nc)
            ),
            values,
        )
    }

    fn audit_query(&self, cond: &str, values: Vec<Owned>) -> Result<Vec<AuditRow>> {
        let mut rows = self.conn.rows(
            &format!(
                "SELECT id, at, operator, action, account_id, target, detail FROM audit
                 WHERE {cond} ORDER BY id DESC LIMIT ?1"
            ),
            &owned_args(&values),
            |r| {
                let detail: Option<String> = r.get(6)?;
                Ok(AuditRow {
                    id: r.get(0)?,
                    at: r.get(1)?,
                    operator: r.get(2)?,
                    action: r.get(3)?,
                    account_id: r.get(4)?,
                    target: r.get(5)?,
                    detail: detail.and_then(|d| serde_json::from_str(&d).ok()),
                })
            },
        )?;
        rows.reverse();
        Ok(rows)
    }
}

const EVENT_COLS: &str = "id, at, account_id, level, what, detail, fix";

fn event_row(r: &Row<'_>) -> Result<EventRow> {
    Ok(EventRow {
        id: r.get(0)?,
        at: r.get(1)?,
        account_id: r.get(2)?,
        level: r.get(3)?,
        what: r.get(4)?,
        detail: r.get(5)?,
        fix: r.get(6)?,
    })
}

/// `'error','warn'` for `Warn`: the levels at or above `min` as SQL literals.
fn levels_up_to(min: Level) -> String {
    [Level::Error, Level::Warn, Level::Info, Level::Debug]
        .iter()
        .filter(|l| **l <= min)
        .map(|l| format!("'{}'", l.as_str()))
        .collect::<Vec<_>>()
        .join(",")
}

fn event_query(filter: &EventFilter, visible: Visible<'_>, cols: &str) -> (String, Vec<Owned>) {
    let mut args: Vec<Owned> = visible.values().collect();
    let mut sql = format!("SELECT {cols} FROM events WHERE {}", visible.sql(1));
    if !filter.levels.is_empty() {
        let marks: Vec<String> = filter
            .levels
            .iter()
            .map(|l| {
                args.push(Owned::Text(l.to_string()));
                format!("?{}", args.len())
            })
            .collect();
        sql.push_str(&format!(" AND level IN ({})", marks.join(",")));
    }
    if !filter.search.is_empty() {
        args.push(Owned::Text(format!("%{}%", like_escape(&filter.search))));
        let n = args.len();
        sql.push_str(&format!(
            " AND (what LIKE ?{n} ESCAPE '\\' OR COALESCE(detail, '') LIKE ?{n} ESCAPE '\\' OR COALESCE(fix, '') LIKE ?{n} ESCAPE '\\')"
        ));
    }
    (sql, args)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_filter_by_level_text_and_visible_account() {
        crate::store::testing::each(|s| {
            s.log_event(
                None,
                Level::Error,
                "login failed",
                Some("bad pw"),
                Some("set-password"),
            )
            .unwrap();
            s.log_event(None, Level::Info, "synced INBOX", None, None)
                .unwrap();
            s.log_event(Some("hidden"), Level::Error, "theirs", None, None)
                .unwrap();
            s.log_event(Some("mine"), Level::Info, "synced mine", None, None)
                .unwrap();
            let mine = ["mine".to_string()];
            let v = Visible(&mine);
            let all = EventFilter::default();
            assert_eq!(s.events_count(&all, v).unwrap(), 3);
            assert_eq!(s.events_count(&all, Visible(&[])).unwrap(), 2);
            let errors = EventFilter {
                levels: vec!["error"],
                search: String::new(),
            };
            let rows = s.events_page(&errors, v, 0, 10).unwrap();
            assert_eq!(rows.len(), 1);
            assert_eq!(rows[0].what, "login failed");
            let text = EventFilter {
                levels: vec![],
                search: "INBOX".into(),
            };
            assert_eq!(s.events_count(&text, v).unwrap(), 1);
            let pct = EventFilter {
                levels: vec![],
                search: "%".into(),
            };
            assert_eq!(s.events_count(&pct, v).unwrap(), 0);
            // The CLI's reads leave the hidden account out too, newest last.
            let recent: Vec<String> = s
                .recent_events(Level::Debug, v, 2)
                .unwrap()
                .into_iter()
                .map(|e| e.what)
                .collect();
            assert_eq!(recent, ["synced INBOX", "synced mine"]);
            let after: Vec<String> = s
                .events_after(1, Level::Error, v, 10)
                .unwrap()
                .into_iter()
                .map(|e| e.what)
                .collect();
            assert!(after.is_empty(), "{after:?}");
        });
    }

    #[test]
    fn audit_rows_about_a_hidden_account_are_left_out() {
        crate::store::testing::each(|s| {
            let j = serde_json::json!({});
            s.audit("eve", "refused", Some("theirs"), Some("message 1"), &j)
                .unwrap();
            s.audit("eve", "customers.add", None, None, &j).unwrap();
            s.audit("eve", "triage.pair", Some("mine"), None, &j)
                .unwrap();
            s.audit("eve", "account_remove", Some("gone"), None, &j)
                .unwrap();
            s.audit("bob", "account_remove", Some("gone2"), None, &j)
                .unwrap();
            let mine = ["mine".to_string()];
            let configured = ["mine".to_string(), "theirs".to_string()];
            let eve = AuditReader {
                operator: "eve",
                visible: &mine,
                configured: &configured,
            };
            let rows: Vec<String> = s
                .audit_visible(eve, 10)
                .unwrap()
                .into_iter()
                .map(|r| r.action)
                .collect();
            assert_eq!(rows, ["customers.add", "triage.pair", "account_remove"]);
            assert_eq!(s.audit_rows(10).unwrap().len(), 5);
            assert_eq!(s.audit_visible(eve, 1).unwrap()[0].action, "account_remove");
        });
    }

    #[test]
    fn an_operator_sees_their_own_removal_of_the_last_account() {
        crate::store::testing::each(|s| {
            let j = serde_json::json!({});
            s.audit("eve", "account_remove", Some("gone"), None, &j)
                .unwrap();
            let eve = AuditReader {
                operator: "eve",
                visible: &[],
                configured: &[],
            };
            let rows: Vec<String> = s
                .audit_visible(eve, 10)
                .unwrap()
                .into_iter()
                .map(|r| r.action)
                .collect();
            assert_eq!(rows, ["account_remove"]);
        });
    }
}
