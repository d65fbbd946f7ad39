//! The event/error log and the audit log.

use rusqlite::params;
use serde::Serialize;

use super::{Store, now};
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
        self.conn.execute(
            "INSERT INTO events (at, account_id, level, what, detail, fix) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![now(), account_id, level.as_str(), what, detail, fix],
        )?;
        Ok(self.conn.last_insert_rowid())
    }

    /// Events with id > `after`, at or above `min_level`, oldest first, at most `limit`.
    pub fn events_after(&self, after: i64, min_level: Level, limit: i64) -> Result<Vec<EventRow>> {
        let levels: Vec<&str> = [Level::Error, Level::Warn, Level::Info, Level::Debug]
            .iter()
            .filter(|l| **l <= min_level)
            .map(|l| l.as_str())
            .collect();
        let placeholders = levels
            .iter()
            .map(|l| format!("'{l}'"))
            .collect::<Vec<_>>()
            .join(",");
        let mut st = self.conn.prepare(&format!(
            "SELECT id, at, account_id, level, what, detail, fix FROM events WHERE id > ?1 AND level IN ({placeholders}) ORDER BY id LIMIT ?2"
        ))?;
        let rows = st
            .query_map(params![after, limit], |r| {
                Ok(EventRow {
                    id: r.get(0)?,
                    at: r.get(1)?,
                    account_id: r.get(2)?,
                    level: r.get(3)?,
                    what: r.get(4)?,
                    detail: r.get(5)?,
                    fix: r.get(6)?,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    /// The newest `limit` events (for `log` without --follow), oldest first.
    pub fn recent_events(&self, min_level: Level, limit: i64) -> Result<Vec<EventRow>> {
        let max: i64 = self
            .conn
            .query_row("SELECT COALESCE(MAX(id), 0) FROM events", [], |r| r.get(0))?;
        let mut rows = self.events_after((max - limit * 4).max(0), min_level, limit * 4)?;
        let skip = rows.len().saturating_sub(limit as usize);
        rows.drain(..skip);
        Ok(rows)
    }

    pub fn audit(
        &self,
        operator: &str,
        action: &str,
        account_id: Option<&str>,
        target: Option<&str>,
        detail: &serde_json::Value,
    ) -> Result<i64> {
        self.conn.execute(
            "INSERT INTO audit (at, operator, action, account_id, target, detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![now(), operator, action, account_id, target, detail.to_string()],
        )?;
        Ok(self.conn.last_insert_rowid())
    }

    pub fn audit_rows(&self, limit: i64) -> Result<Vec<AuditRow>> {
        let mut st = self.conn.prepare("SELECT id, at, operator, action, account_id, target, detail FROM audit ORDER BY id DESC LIMIT ?1")?;
        let mut rows = st
            .query_map([limit], |r| {
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
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        rows.reverse();
        Ok(rows)
    }
}
