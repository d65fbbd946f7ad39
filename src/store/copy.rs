//! Moving an installation between stores (`mailroom store copy`): every table, row for row,
//! from one engine to the other (or the same), into a store that holds nothing yet, in one
//! transaction on the target; the search index is rebuilt from the copied messages; then the
//! rows of every table are counted on both sides.
//!
//! The tables are listed here in the order their references need (an account before its
//! folders, a message before its locations); a unit test checks the list against the schema on
//! both engines, so a migration that adds a table cannot be forgotten here.

use serde::Serialize;

use super::Store;
use super::sql::{Engine, Kind, Owned, Row, owned_args};
use crate::args;
use crate::error::{AppError, Result};

/// Every table of the schema but the search index and the per-account counts (both derived:
/// rebuilt on the target after the copy), parents first.
pub const TABLES: &[&str] = &[
    "accounts",
    "credentials",
    "oauth_state",
    "leases",
    "daemons",
    "folders",
    "customers",
    "customer_emails",
    "customer_domains",
    "messages",
    "crm_pending",
    "bodies",
    "locations",
    "pending_ops",
    "quarantine",
    "events",
    "audit",
    "outbox",
    "matches",
    "actions",
    "sent_filing",
    "drafts",
    "alert_accounts",
    "alert_events",
    "shared_settings",
    "key_check",
    "alert_deliveries",
    "alert_told",
    "trace_settings",
    "trace_lines",
    "operators",
    "account_access",
];

/// Statement arguments per INSERT (SQLite's old limit, so any build reads it).
const MAX_ARGS: usize = 999;

/// One table's rows on each side after a copy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TableCount {
    pub table: String,
    pub source: i64,
    pub target: i64,
}

impl Store {
    /// The tables of this store's schema (the search index and engine bookkeeping aside).
    pub fn table_names(&self) -> Result<Vec<String>> {
        let sql = match self.engine() {
            Engine::Sqlite => {
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'
                   AND name NOT LIKE 'messages_fts%' AND name <> 'account_counts' ORDER BY name"
            }
            Engine::Postgres => {
                "SELECT table_name FROM information_schema.tables
                 WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'
                   AND table_name NOT IN ('messages_fts', 'mailroom_schema', 'account_counts')
                 ORDER BY table_name"
            }
        };
        self.conn.rows(sql, &[], |r| r.get(0))
    }

    /// A table's columns in order, with the kind of value each holds.
    fn columns(&self, table: &str) -> Result<Vec<(String, Kind)>> {
        let rows: Vec<(String, String)> = match self.engine() {
            Engine::Sqlite => self.conn.rows(
                "SELECT name, type FROM pragma_table_info(?1) ORDER BY cid",
                args![table],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?,
            Engine::Postgres => self.conn.rows(
                "SELECT column_name, data_type FROM information_schema.columns
                 WHERE table_schema = current_schema() AND table_name = ?1 ORDER BY ordinal_position",
                args![table],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?,
        };
        Ok(rows
            .into_iter()
            .map(|(name, ty)| (name, kind_of(&ty)))
            .collect())
    }

    /// Rows in a table.
    pub fn row_count(&self, table: &str) -> Result<i64> {
        self.conn
            .one(&format!("SELECT COUNT(*) FROM {table}"), &[], |r| r.get(0))
    }

    /// Copies every table of `self` into `target`, which must hold no data; then counts both
    /// sides. All of the copy lands, or none of it.
    pub fn copy_into(&self, target: &Store) -> Result<Vec<TableCount>> {
        let (from, to) = (self.schema_version()?, target.schema_version()?);
        if from != to {
            return Err(AppError::local(
                "the two stores are at different schema versions",
                format!("source at {from}, target at {to}"),
                "open both with the same mailroom version (any command migrates a store), then copy again",
            ));
        }
        target.refuse_data()?;
        target.conn.tx(|| {
            for table in TABLES {
                self.copy_table(target, table)?;
            }
            target.after_copy()?;
            target.recount_accounts()
        })?;
        let ids = target.all_message_ids()?;
        target.fts_reindex(&ids)?;
        let mut counts = Vec::new();
        for table in TABLES {
            counts.push(TableCount {
                table: table.to_string(),
                source: self.row_count(table)?,
                target: target.row_count(table)?,
            });
        }
        let (indexed, messages) = target.fts_counts()?;
        let wrong: Vec<String> = counts
            .iter()
            .filter(|c| c.source != c.target)
            .map(|c| format!("{}: {} → {}", c.table, c.source, c.target))
            .chain(
                (indexed != messages)
                    .then(|| format!("search index: {indexed} entries for {messages} messages")),
            )
            .collect();
        if !wrong.is_empty() {
            return Err(AppError::local(
                "the copy's counts differ from the source's",
                wrong.join("; "),
                "a process wrote to the source during the copy: stop every mailroom on it, empty the target and copy again",
            ));
        }
        Ok(counts)
    }

    /// An error naming the tables that hold rows, if any does.
    fn refuse_data(&self) -> Result<()> {
        let mut full = Vec::new();
        for table in TABLES {
            let n = self.row_count(table)?;
            if n > 0 {
                full.push(format!("{table} ({n})"));
            }
        }
        if full.is_empty() {
            return Ok(());
        }
        Err(AppError::local(
            "the target store already holds data; nothing was copied",
            format!("rows in {}", full.join(", ")),
            "copy into an empty store: a new SQLite file, or a new PostgreSQL database (createdb NAME)",
        ))
    }

    /// Copies one table's rows into `target`, several rows per statement.
    fn copy_table(&self, target: &Store, table: &str) -> Result<()> {
        let columns = self.columns(table)?;
        let theirs = target.columns(table)?;
        if let Some((missing, _)) = columns
            .iter()
            .find(|(c, _)| !theirs.iter().any(|(t, _)| t == c))
        {
            return Err(AppError::local(
                "the target store's schema differs from the source's",
                format!("{table}.{missing} is missing in the target"),
                "open both with the same mailroom version, then copy again",
            ));
        }
        // The target's kinds: what its columns take (its engine is the strict one).
        let kinds: Vec<Kind> = columns
            .iter()
            .map(|(c, k)| {
                theirs
                    .iter()
                    .find(|(t, _)| t == c)
                    .map_or(*k, |(_, tk)| *tk)
            })
            .collect();
        let names: Vec<&str> = columns.iter().map(|(c, _)| c.as_str()).collect();
        let per_statement = (MAX_ARGS / names.len().max(1)).max(1);
        let mut batch: Vec<Owned> = Vec::new();
        let mut rows = 0;
        self.conn.each(
            &format!("SELECT {} FROM {table}", names.join(", ")),
            &[],
            |r| {
                for (i, kind) in kinds.iter().enumerate() {
                    batch.push(read(r, i, *kind)?);
                }
                rows += 1;
                if rows == per_statement {
                    insert_rows(target, table, &names, &batch, rows)?;
                    batch.clear();
                    rows = 0;
                }
                Ok(())
            },
        )?;
        if rows > 0 {
            insert_rows(target, table, &names, &batch, rows)?;
        }
        Ok(())
    }

    /// PostgreSQL hands out ids from a sequence per table: move each past the copied ids.
    fn after_copy(&self) -> Result<()> {
        if self.engine() != Engine::Postgres {
            return Ok(());
        }
        for table in TABLES {
            let has_id = self
                .columns(table)?
                .iter()
                .any(|(c, k)| c == "id" && *k == Kind::Int);
            if !has_id {
                continue;
            }
            self.conn.one(
                &format!(
                    "SELECT CASE WHEN pg_get_serial_sequence('{table}', 'id') IS NULL THEN 0
                     ELSE setval(pg_get_serial_sequence('{table}', 'id'),
                                 COALESCE((SELECT MAX(id) FROM {table}), 0) + 1, false) END"
                ),
                &[],
                |r| r.get::<i64>(0),
            )?;
        }
        Ok(())
    }
}

/// The kind of a declared column type, on either engine.
fn kind_of(declared: &str) -> Kind {
    let t = declared.to_ascii_lowercase();
    if t.contains("int") || t == "boolean" {
        Kind::Int
    } else if t.contains("real") || t.contains("floa") || t.contains("doub") || t == "numeric" {
        Kind::Real
    } else if t.contains("blob") || t == "bytea" {
        Kind::Blob
    } else {
        Kind::Text
    }
}

/// Column `i` of a row as a value of `kind`.
fn read(r: &Row<'_>, i: usize, kind: Kind) -> Result<Owned> {
    Ok(match kind {
        Kind::Int => r
            .get::<Option<i64>>(i)?
            .map_or(Owned::Null(kind), Owned::Int),
        Kind::Real => r
            .get::<Option<f64>>(i)?
            .map_or(Owned::Null(kind), Owned::Real),
        Kind::Text => r
            .get::<Option<String>>(i)?
            .map_or(Owned::Null(kind), Owned::Text),
        Kind::Blob => r
            .get::<Option<Vec<u8>>>(i)?
            .map_or(Owned::Null(kind), Owned::Blob),
    })
}

/// `INSERT INTO table (names) VALUES (…), (…)` for `rows` rows of values.
fn insert_rows(
    target: &Store,
    table: &str,
    names: &[&str],
    values: &[Owned],
    rows: usize,
) -> Result<()> {
    let n = names.len();
    let tuples: Vec<String> = (0..rows)
        .map(|row| {
            let ps: Vec<String> = (1..=n).map(|c| format!("?{}", row * n + c)).collect();
            format!("({})", ps.join(", "))
        })
        .collect();
    target.conn.exec(
        &format!(
            "INSERT INTO {table} ({}) VALUES {}",
            names.join(", "),
            tuples.join(", ")
        ),
        &owned_args(values),
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{FixtureMessage, testing};

    /// A new table needs its place in TABLES (parents first), or the copy would leave it out.
    #[test]
    fn the_copy_list_is_every_table_of_the_schema() {
        testing::each(|s| {
            let mut listed: Vec<String> = TABLES.iter().map(|t| t.to_string()).collect();
            listed.sort();
            assert_eq!(s.table_names().unwrap(), listed, "{:?}", s.engine());
        });
    }

    fn fill(s: &Store) {
        s.insert_account("a1", "work", true).unwrap();
        let f = s.fixture_folder("a1", "INBOX", Some("inbox")).unwrap();
        for i in 0..5 {
            let m = FixtureMessage {
                message_id: Some(format!("m{i}@x")),
                from_addr: format!("ann{i}@client.example"),
                subject: format!("hello number {i}"),
                date: format!("2026-01-0{}T10:00:00Z", i + 1),
                direction: "in",
                ..Default::default()
            };
            s.fixture_message("a1", f, i + 1, &m).unwrap();
        }
        s.customer_insert("Client", None, None).unwrap();
    }

    #[test]
    fn a_copy_to_the_other_engine_and_back_keeps_every_row_and_refuses_a_full_target() {
        let Some(pg) = crate::store::sql::engines::PgScratch::new() else {
            return;
        };
        let dir = tempfile::tempdir().unwrap();
        let first = Store::open(&dir.path().join("a.db")).unwrap();
        fill(&first);
        let middle = Store::open_url(&crate::config::StoreUrl::Postgres(pg.url.clone())).unwrap();
        let counts = first.copy_into(&middle).unwrap();
        assert!(counts.iter().all(|c| c.source == c.target));
        assert_eq!(
            counts
                .iter()
                .find(|c| c.table == "messages")
                .unwrap()
                .target,
            5
        );
        let last = Store::open(&dir.path().join("b.db")).unwrap();
        middle.copy_into(&last).unwrap();
        // The search index is rebuilt on each side; ids go on from the copied ones.
        let f = crate::store::SearchFilter {
            fts: Some("\"number\"".into()),
            accounts: vec!["a1".into()],
            ..Default::default()
        };
        assert_eq!(middle.search_count(&f).unwrap(), 5);
        assert_eq!(last.search_count(&f).unwrap(), 5);
        let id = middle.customer_insert("Next", None, None).unwrap();
        assert!(id > 1, "the sequence moved past the copied ids");
        // A target with data is refused, and left as it was.
        let err = first.copy_into(&last).unwrap_err();
        assert!(err.to_string().contains("already holds data"), "{err}");
        assert_eq!(last.row_count("messages").unwrap(), 5);
    }
}
