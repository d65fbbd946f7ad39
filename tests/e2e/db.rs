//! A home's store as the tests check it directly, on either engine: SQLite (the default) or,
//! with `MAILROOM_E2E_STORE=postgres`, a PostgreSQL database of each home's own (the server
//! and the password file from `scripts/pgserver env`: MAILROOM_TEST_PG_URL, PGPASSFILE).
//!
//! Statements are written once in the subset both engines read (`?N` placeholders, as the
//! store itself writes them) and run through mailroom's own engine-neutral connection.

#![allow(dead_code)]

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use mailroom::store::sql::{Arg, Conn, Engine, FromColumn, PgConn, Row, pg_config};

/// Whether end-to-end homes live on PostgreSQL (`MAILROOM_E2E_STORE=postgres`).
pub fn e2e_on_postgres() -> bool {
    match std::env::var("MAILROOM_E2E_STORE") {
        Ok(v) if v == "postgres" || v == "postgresql" => true,
        Ok(v) if v.is_empty() || v == "sqlite" => false,
        Ok(v) => panic!("MAILROOM_E2E_STORE={v:?}: say sqlite or postgres"),
        Err(_) => false,
    }
}

/// A PostgreSQL database of one home: created fresh, dropped (with any connection a test
/// left behind) when the home goes.
pub struct PgDatabase {
    admin: String,
    name: String,
    /// `postgres://USER@HOST:PORT/NAME`: the home's store URL (no password: PGPASSFILE).
    pub url: String,
}

impl PgDatabase {
    /// A fresh database when the tests run on PostgreSQL, else None.
    pub fn for_e2e() -> Option<PgDatabase> {
        if !e2e_on_postgres() {
            return None;
        }
        Some(PgDatabase::fresh().expect(
            "MAILROOM_E2E_STORE=postgres needs MAILROOM_TEST_PG_URL and PGPASSFILE: \
             eval \"$(scripts/pgserver env)\"; export MAILROOM_TEST_PG_URL PGPASSFILE",
        ))
    }

    /// A fresh database on the test server whichever engine the homes use (a copy between
    /// engines), None without MAILROOM_TEST_PG_URL (an error when MAILROOM_TEST_PG_REQUIRED).
    pub fn fresh() -> Option<PgDatabase> {
        let admin = std::env::var("MAILROOM_TEST_PG_URL")
            .ok()
            .filter(|u| !u.is_empty());
        let Some(admin) = admin else {
            assert!(
                std::env::var_os("MAILROOM_TEST_PG_REQUIRED").is_none(),
                "MAILROOM_TEST_PG_REQUIRED is set but MAILROOM_TEST_PG_URL is not"
            );
            return None;
        };
        static N: AtomicUsize = AtomicUsize::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let name = format!(
            "e2e_{}_{}_{nanos}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        );
        admin_conn(&admin)
            .and_then(|c| c.batch(&format!("CREATE DATABASE {name}")))
            .unwrap_or_else(|e| panic!("CREATE DATABASE {name} on {admin}: {e}"));
        let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(&admin);
        Some(PgDatabase {
            url: format!("{base}/{name}"),
            admin,
            name,
        })
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let drop = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        if let Err(e) = admin_conn(&self.admin).and_then(|c| c.batch(&drop)) {
            eprintln!("{drop}: {e}");
        }
    }
}

fn admin_conn(url: &str) -> mailroom::error::Result<Conn> {
    Ok(Conn::Pg(PgConn::connect(pg_config(url)?)?))
}

/// A direct connection to a home's store.
pub struct Db {
    conn: Conn,
}

impl Db {
    pub fn sqlite(path: &Path) -> Db {
        Db {
            conn: Conn::Lite(rusqlite::Connection::open(path).expect("the database opens")),
        }
    }

    pub fn postgres(url: &str) -> Db {
        let config = pg_config(url).unwrap_or_else(|e| panic!("{url}: {e}"));
        Db {
            conn: Conn::Pg(PgConn::connect(config).unwrap_or_else(|e| panic!("{url}: {e}"))),
        }
    }

    pub fn engine(&self) -> Engine {
        self.conn.engine()
    }

    /// The one number a query gives (`SELECT COUNT(*) …`).
    pub fn count(&self, sql: &str, args: &[Arg<'_>]) -> i64 {
        self.value(sql, args)
    }

    /// The number, or None while the query cannot run yet (no database, no table: before
    /// the first command created them).
    pub fn try_count(&self, sql: &str, args: &[Arg<'_>]) -> Option<i64> {
        self.conn.one(sql, args, |r| r.get(0)).ok()
    }

    /// The first column of the one row a query must give.
    pub fn value<T: FromColumn>(&self, sql: &str, args: &[Arg<'_>]) -> T {
        self.maybe(sql, args)
            .unwrap_or_else(|| panic!("no row from {sql}"))
    }

    /// The first column of the first row, if there is a row.
    pub fn maybe<T: FromColumn>(&self, sql: &str, args: &[Arg<'_>]) -> Option<T> {
        self.conn
            .first(sql, args, |r| r.get(0))
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// The first column of every row.
    pub fn column<T: FromColumn>(&self, sql: &str, args: &[Arg<'_>]) -> Vec<T> {
        self.conn
            .rows(sql, args, |r| r.get(0))
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// The one row a query must give, as a tuple.
    pub fn row<T: FromRow>(&self, sql: &str, args: &[Arg<'_>]) -> T {
        self.conn
            .first(sql, args, T::from_row)
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
            .unwrap_or_else(|| panic!("no row from {sql}"))
    }

    /// Every row, each as a tuple (or a single value).
    pub fn rows<T: FromRow>(&self, sql: &str, args: &[Arg<'_>]) -> Vec<T> {
        self.conn
            .rows(sql, args, T::from_row)
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// Runs a change; the number of rows it changed.
    pub fn exec(&self, sql: &str, args: &[Arg<'_>]) -> u64 {
        self.conn
            .exec(sql, args)
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// Runs an `INSERT … RETURNING id`; the new row's id.
    pub fn insert(&self, sql: &str, args: &[Arg<'_>]) -> i64 {
        assert!(sql.contains("RETURNING"), "{sql}: say RETURNING id");
        self.value(sql, args)
    }

    /// The tables of mailroom's schema (without SQLite's own and the search index's).
    pub fn tables(&self) -> Vec<String> {
        self.column(
            match self.engine() {
                Engine::Sqlite => {
                    "SELECT name FROM sqlite_master WHERE type = 'table'
                     AND name NOT LIKE 'messages_fts%' AND name NOT LIKE 'sqlite_%' ORDER BY name"
                }
                Engine::Postgres => {
                    "SELECT tablename::text FROM pg_tables WHERE schemaname = 'public'
                     AND tablename <> 'messages_fts' ORDER BY tablename"
                }
            },
            &[],
        )
    }

    /// Every row of a table as text, sorted: a fingerprint to compare before and after.
    pub fn dump(&self, table: &str) -> Vec<String> {
        let mut rows = match &self.conn {
            Conn::Lite(c) => {
                let mut st = c
                    .prepare(&format!("SELECT * FROM \"{table}\""))
                    .expect("select");
                let n = st.column_count();
                st.query_map([], |r| {
                    let mut line = String::new();
                    for i in 0..n {
                        let v: rusqlite::types::Value = r.get(i)?;
                        line.push_str(&format!("{v:?}|"));
                    }
                    Ok(line)
                })
                .expect("rows")
                .collect::<Result<Vec<String>, _>>()
                .expect("read rows")
            }
            Conn::Pg(_) => self.column(&format!("SELECT x::text FROM \"{table}\" x"), &[]),
        };
        rows.sort();
        rows
    }
}

/// A row read as a tuple of columns (or as its first column alone).
pub trait FromRow: Sized {
    fn from_row(r: &Row<'_>) -> mailroom::error::Result<Self>;
}

macro_rules! single {
    ($($t:ty),*) => {$(
        impl FromRow for $t {
            fn from_row(r: &Row<'_>) -> mailroom::error::Result<$t> {
                r.get(0)
            }
        }
        impl FromRow for Option<$t> {
            fn from_row(r: &Row<'_>) -> mailroom::error::Result<Option<$t>> {
                r.get(0)
            }
        }
    )*};
}
single!(i64, String, Vec<u8>, bool, f64);

macro_rules! tuple {
    ($($i:tt $t:ident),*) => {
        impl<$($t: FromColumn),*> FromRow for ($($t,)*) {
            fn from_row(r: &Row<'_>) -> mailroom::error::Result<Self> {
                Ok(($(r.get::<$t>($i)?,)*))
            }
        }
    };
}
tuple!(0 A, 1 B);
tuple!(0 A, 1 B, 2 C);
tuple!(0 A, 1 B, 2 C, 3 D);
