//! One connection, two engines: the embedded SQLite (default) and PostgreSQL (teams across
//! hosts). Store code writes each statement once, in the subset both engines read — `?N`
//! placeholders, `ON CONFLICT … DO …`, `RETURNING`, `string_agg`, `COALESCE`, integer 0/1 for
//! booleans, `CAST(SUM(…) AS BIGINT)` — and this module runs it on either. What cannot be said
//! the same way (schema, full-text search, change notification) is written per engine, next to
//! each other, and chosen with [`Conn::engine`].
//!
//! PostgreSQL runs behind a thread of its own: the synchronous client must not be driven from
//! inside a tokio runtime (it panics), and store calls are made from runtime threads (a sync
//! task between two network waits, the CLI's command future). Each call hands the statement and
//! owned arguments to that thread and waits for the rows on a plain channel.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};

use crate::error::{AppError, Result};

/// Which engine a connection talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
}

/// The type of a value, also when it is NULL (PostgreSQL wants to know).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Int,
    Real,
    Text,
    Blob,
}

/// One statement argument, borrowed from the caller.
#[derive(Debug, Clone, Copy)]
pub enum Arg<'a> {
    Null(Kind),
    Int(i64),
    Real(f64),
    Text(&'a str),
    Blob(&'a [u8]),
}

/// A Rust value that can be a statement argument.
pub trait ToArg {
    fn arg(&self) -> Arg<'_>;
}

macro_rules! int_arg {
    ($($t:ty),*) => {$(
        impl ToArg for $t {
            fn arg(&self) -> Arg<'_> {
                Arg::Int(*self as i64)
            }
        }
    )*};
}
int_arg!(i64, i32, u32, u16, u8, usize);

impl ToArg for u64 {
    fn arg(&self) -> Arg<'_> {
        Arg::Int(i64::try_from(*self).unwrap_or(i64::MAX))
    }
}
impl ToArg for bool {
    fn arg(&self) -> Arg<'_> {
        Arg::Int(i64::from(*self))
    }
}
impl ToArg for f64 {
    fn arg(&self) -> Arg<'_> {
        Arg::Real(*self)
    }
}
impl ToArg for str {
    fn arg(&self) -> Arg<'_> {
        Arg::Text(self)
    }
}
impl ToArg for String {
    fn arg(&self) -> Arg<'_> {
        Arg::Text(self)
    }
}
impl ToArg for [u8] {
    fn arg(&self) -> Arg<'_> {
        Arg::Blob(self)
    }
}
impl ToArg for Vec<u8> {
    fn arg(&self) -> Arg<'_> {
        Arg::Blob(self)
    }
}
impl<T: ToArg + ?Sized> ToArg for &T {
    fn arg(&self) -> Arg<'_> {
        (**self).arg()
    }
}
/// The kind a NULL of this type has.
pub trait Typed {
    const KIND: Kind;
}
macro_rules! typed {
    ($k:ident: $($t:ty),*) => {$( impl Typed for $t { const KIND: Kind = Kind::$k; } )*};
}
typed!(Int: i64, i32, u32, u16, u8, usize, u64, bool);
typed!(Real: f64);
typed!(Text: str, String);
typed!(Blob: [u8], Vec<u8>);
impl<T: Typed + ?Sized> Typed for &T {
    const KIND: Kind = T::KIND;
}
impl<T: ToArg + Typed> ToArg for Option<T> {
    fn arg(&self) -> Arg<'_> {
        match self {
            Some(v) => v.arg(),
            None => Arg::Null(T::KIND),
        }
    }
}

/// Arguments collected at run time, as one statement's arguments.
pub fn owned_args(values: &[Owned]) -> Vec<Arg<'_>> {
    values.iter().map(Owned::arg).collect()
}

/// `?3, ?4, ?5` for a list of `n` arguments starting at `?first` (`NULL` for none, which no
/// value equals): an `IN (…)` list both engines read.
pub fn in_list(first: usize, n: usize) -> String {
    if n == 0 {
        return "NULL".into();
    }
    (first..first + n)
        .map(|i| format!("?{i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `column NOT IN (?first, …)`, true for an empty list: `x NOT IN (NULL)` would be NULL
/// (false) for every row, which hid an operator's own rows once their last account was gone.
pub fn not_in(column: &str, first: usize, n: usize) -> String {
    if n == 0 {
        return "1 = 1".into();
    }
    format!("{column} NOT IN ({})", in_list(first, n))
}

/// `args![a, b, c]`: the arguments of one statement.
#[macro_export]
macro_rules! args {
    ($($x:expr),* $(,)?) => {
        &[$($crate::store::sql::ToArg::arg(&$x)),*][..]
    };
}

/// A row being read; columns by position, typed by the caller.
pub enum Row<'a> {
    Lite(&'a rusqlite::Row<'a>),
    Pg(&'a postgres::Row),
}

impl Row<'_> {
    pub fn get<T: FromColumn>(&self, i: usize) -> Result<T> {
        match self {
            Row::Lite(r) => {
                let v = r.get_ref(i).map_err(AppError::from)?;
                T::from_lite(v).ok_or_else(|| column_error(i, "SQLite", std::any::type_name::<T>()))
            }
            Row::Pg(r) => T::from_pg(r, i)
                .ok_or_else(|| column_error(i, "PostgreSQL", std::any::type_name::<T>())),
        }
    }
}

fn column_error(i: usize, engine: &str, ty: &str) -> AppError {
    AppError::local(
        "the database returned a value of an unexpected type",
        format!("{engine} column {i} cannot be read as {ty}"),
        "report this as a bug (the schema and the code disagree)",
    )
}

/// A Rust value a column can be read as, from either engine.
pub trait FromColumn: Sized {
    fn from_lite(v: rusqlite::types::ValueRef<'_>) -> Option<Self>;
    fn from_pg(row: &postgres::Row, i: usize) -> Option<Self>;
}

use rusqlite::types::ValueRef;

impl FromColumn for i64 {
    fn from_lite(v: ValueRef<'_>) -> Option<i64> {
        match v {
            ValueRef::Integer(n) => Some(n),
            ValueRef::Real(f) => Some(f as i64),
            _ => None,
        }
    }
    fn from_pg(row: &postgres::Row, i: usize) -> Option<i64> {
        row.try_get::<_, i64>(i)
            .ok()
            .or_else(|| row.try_get::<_, i32>(i).ok().map(i64::from))
            .or_else(|| row.try_get::<_, i16>(i).ok().map(i64::from))
            .or_else(|| row.try_get::<_, bool>(i).ok().map(i64::from))
            .or_else(|| row.try_get::<_, f64>(i).ok().map(|f| f as i64))
    }
}

macro_rules! int_column {
    ($($t:ty),*) => {$(
        impl FromColumn for $t {
            fn from_lite(v: ValueRef<'_>) -> Option<$t> {
                i64::from_lite(v).and_then(|n| <$t>::try_from(n).ok())
            }
            fn from_pg(row: &postgres::Row, i: usize) -> Option<$t> {
                i64::from_pg(row, i).and_then(|n| <$t>::try_from(n).ok())
            }
        }
    )*};
}
int_column!(i32, u32, u64, usize, u16, u8);

impl FromColumn for bool {
    fn from_lite(v: ValueRef<'_>) -> Option<bool> {
        i64::from_lite(v).map(|n| n != 0)
    }
    fn from_pg(row: &postgres::Row, i: usize) -> Option<bool> {
        row.try_get::<_, bool>(i)
            .ok()
            .or_else(|| i64::from_pg(row, i).map(|n| n != 0))
    }
}

impl FromColumn for f64 {
    fn from_lite(v: ValueRef<'_>) -> Option<f64> {
        match v {
            ValueRef::Real(f) => Some(f),
            ValueRef::Integer(n) => Some(n as f64),
            _ => None,
        }
    }
    fn from_pg(row: &postgres::Row, i: usize) -> Option<f64> {
        row.try_get::<_, f64>(i)
            .ok()
            .or_else(|| i64::from_pg(row, i).map(|n| n as f64))
    }
}

impl FromColumn for String {
    fn from_lite(v: ValueRef<'_>) -> Option<String> {
        match v {
            ValueRef::Text(t) => Some(String::from_utf8_lossy(t).into_owned()),
            ValueRef::Integer(n) => Some(n.to_string()),
            ValueRef::Real(f) => Some(f.to_string()),
            _ => None,
        }
    }
    fn from_pg(row: &postgres::Row, i: usize) -> Option<String> {
        row.try_get::<_, String>(i).ok()
    }
}

impl FromColumn for Vec<u8> {
    fn from_lite(v: ValueRef<'_>) -> Option<Vec<u8>> {
        match v {
            ValueRef::Blob(b) | ValueRef::Text(b) => Some(b.to_vec()),
            _ => None,
        }
    }
    fn from_pg(row: &postgres::Row, i: usize) -> Option<Vec<u8>> {
        row.try_get::<_, Vec<u8>>(i)
            .ok()
            .or_else(|| row.try_get::<_, String>(i).ok().map(String::into_bytes))
    }
}

impl<T: FromColumn> FromColumn for Option<T> {
    fn from_lite(v: ValueRef<'_>) -> Option<Option<T>> {
        match v {
            ValueRef::Null => Some(None),
            other => T::from_lite(other).map(Some),
        }
    }
    fn from_pg(row: &postgres::Row, i: usize) -> Option<Option<T>> {
        // A NULL of any type reads as None; anything else must read as T.
        let is_null = matches!(row.try_get::<_, Option<NullProbe>>(i), Ok(None));
        if is_null {
            return Some(None);
        }
        T::from_pg(row, i).map(Some)
    }
}

/// Reads nothing; only asks whether a column is NULL, whatever its type.
struct NullProbe;

impl<'a> postgres::types::FromSql<'a> for NullProbe {
    fn from_sql(
        _: &postgres::types::Type,
        _: &'a [u8],
    ) -> std::result::Result<NullProbe, Box<dyn std::error::Error + Sync + Send>> {
        Ok(NullProbe)
    }
    fn accepts(_: &postgres::types::Type) -> bool {
        true
    }
}

/// An open connection to one of the engines.
pub enum Conn {
    Lite(rusqlite::Connection),
    Pg(PgConn),
}

impl Conn {
    pub fn engine(&self) -> Engine {
        match self {
            Conn::Lite(_) => Engine::Sqlite,
            Conn::Pg(_) => Engine::Postgres,
        }
    }

    /// The SQLite connection, for what only SQLite does (PRAGMAs, FTS5, the bulk writer).
    pub fn lite(&self) -> Option<&rusqlite::Connection> {
        match self {
            Conn::Lite(c) => Some(c),
            Conn::Pg(_) => None,
        }
    }

    /// Runs one statement; returns the number of rows it changed.
    pub fn exec(&self, sql: &str, args: &[Arg<'_>]) -> Result<u64> {
        match self {
            Conn::Lite(c) => {
                let mut st = c.prepare_cached(sql)?;
                Ok(st.execute(rusqlite::params_from_iter(args.iter()))? as u64)
            }
            Conn::Pg(p) => p.execute(sql, args),
        }
    }

    /// Runs several statements separated by `;` with no arguments (schema, BEGIN/COMMIT).
    pub fn batch(&self, sql: &str) -> Result<()> {
        match self {
            Conn::Lite(c) => Ok(c.execute_batch(sql)?),
            Conn::Pg(p) => p.batch(sql),
        }
    }

    /// Every row of a query, each read by `f`.
    pub fn rows<T>(
        &self,
        sql: &str,
        args: &[Arg<'_>],
        mut f: impl FnMut(&Row<'_>) -> Result<T>,
    ) -> Result<Vec<T>> {
        let mut out = Vec::new();
        self.each(sql, args, |r| {
            out.push(f(r)?);
            Ok(())
        })?;
        Ok(out)
    }

    /// The first row of a query, if any.
    pub fn first<T>(
        &self,
        sql: &str,
        args: &[Arg<'_>],
        f: impl FnOnce(&Row<'_>) -> Result<T>,
    ) -> Result<Option<T>> {
        match self {
            Conn::Lite(c) => {
                let mut st = c.prepare_cached(sql)?;
                let mut rows = st.query(rusqlite::params_from_iter(args.iter()))?;
                match rows.next()? {
                    Some(r) => Ok(Some(f(&Row::Lite(r))?)),
                    None => Ok(None),
                }
            }
            Conn::Pg(p) => match p.query(sql, args, Some(1))?.first() {
                Some(r) => Ok(Some(f(&Row::Pg(r))?)),
                None => Ok(None),
            },
        }
    }

    /// The one row a query must return (an aggregate, a `RETURNING`).
    pub fn one<T>(
        &self,
        sql: &str,
        args: &[Arg<'_>],
        f: impl FnOnce(&Row<'_>) -> Result<T>,
    ) -> Result<T> {
        self.first(sql, args, f)?.ok_or_else(|| {
            AppError::local(
                "the database returned no row where one was expected",
                sql.chars().take(120).collect::<String>(),
                "report this as a bug",
            )
        })
    }

    /// Calls `f` for each row as it arrives (a long scan holds one chunk of rows at a time).
    pub fn each(
        &self,
        sql: &str,
        args: &[Arg<'_>],
        mut f: impl FnMut(&Row<'_>) -> Result<()>,
    ) -> Result<()> {
        match self {
            Conn::Lite(c) => {
                let mut st = c.prepare_cached(sql)?;
                let mut rows = st.query(rusqlite::params_from_iter(args.iter()))?;
                while let Some(r) = rows.next()? {
                    f(&Row::Lite(r))?;
                }
                Ok(())
            }
            Conn::Pg(p) => p.for_each(sql, args, |r| f(&Row::Pg(r))),
        }
    }
}

impl Conn {
    /// Whether a transaction is open on this connection (a caller's, to nest inside with a
    /// savepoint).
    pub fn in_tx(&self) -> bool {
        match self {
            Conn::Lite(c) => !c.is_autocommit(),
            Conn::Pg(p) => p.in_tx.get(),
        }
    }

    /// Runs `f` in one transaction that takes the write lock at once (SQLite's BEGIN
    /// IMMEDIATE; a plain BEGIN on PostgreSQL, whose row locks come with the writes): all of it
    /// lands, or none of it.
    pub fn tx<T>(&self, f: impl FnOnce() -> Result<T>) -> Result<T> {
        self.batch(match self.engine() {
            Engine::Sqlite => "BEGIN IMMEDIATE",
            Engine::Postgres => "BEGIN",
        })?;
        match f() {
            Ok(v) => {
                if let Err(e) = self.batch("COMMIT") {
                    let _ = self.batch("ROLLBACK");
                    return Err(e);
                }
                Ok(v)
            }
            Err(e) => {
                let _ = self.batch("ROLLBACK");
                Err(e)
            }
        }
    }
}

/// SQLite reads statement arguments directly.
impl rusqlite::ToSql for Arg<'_> {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, Value};
        Ok(match *self {
            Arg::Null(_) => ToSqlOutput::Owned(Value::Null),
            Arg::Int(n) => ToSqlOutput::Owned(Value::Integer(n)),
            Arg::Real(f) => ToSqlOutput::Owned(Value::Real(f)),
            Arg::Text(s) => ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes())),
            Arg::Blob(b) => ToSqlOutput::Borrowed(ValueRef::Blob(b)),
        })
    }
}

// ------------------------------------------------------------------------------ PostgreSQL

/// An argument that owns its value: one that can travel to the connection's thread, or that
/// a statement built at run time collects (`IN (?, ?, …)` lists, optional filters).
#[derive(Debug, Clone)]
pub enum Owned {
    Null(Kind),
    Int(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
}

impl Owned {
    /// This value as a statement argument.
    pub fn arg(&self) -> Arg<'_> {
        match self {
            Owned::Null(k) => Arg::Null(*k),
            Owned::Int(n) => Arg::Int(*n),
            Owned::Real(f) => Arg::Real(*f),
            Owned::Text(s) => Arg::Text(s),
            Owned::Blob(b) => Arg::Blob(b),
        }
    }

    pub fn of(a: &Arg<'_>) -> Owned {
        match *a {
            Arg::Null(k) => Owned::Null(k),
            Arg::Int(n) => Owned::Int(n),
            Arg::Real(f) => Owned::Real(f),
            Arg::Text(s) => Owned::Text(s.to_string()),
            Arg::Blob(b) => Owned::Blob(b.to_vec()),
        }
    }
    fn pg_type(&self) -> postgres::types::Type {
        use postgres::types::Type;
        let kind = match self {
            Owned::Null(k) => *k,
            Owned::Int(_) => Kind::Int,
            Owned::Real(_) => Kind::Real,
            Owned::Text(_) => Kind::Text,
            Owned::Blob(_) => Kind::Blob,
        };
        match kind {
            Kind::Int => Type::INT8,
            Kind::Real => Type::FLOAT8,
            Kind::Text => Type::TEXT,
            Kind::Blob => Type::BYTEA,
        }
    }
}

impl postgres::types::ToSql for Owned {
    fn to_sql(
        &self,
        ty: &postgres::types::Type,
        out: &mut bytes::BytesMut,
    ) -> std::result::Result<postgres::types::IsNull, Box<dyn std::error::Error + Sync + Send>>
    {
        match self {
            Owned::Null(_) => Ok(postgres::types::IsNull::Yes),
            Owned::Int(n) => n.to_sql(ty, out),
            Owned::Real(f) => f.to_sql(ty, out),
            // PostgreSQL's text cannot hold NUL (SQLite's can; hostile mail has it): the
            // replacement character stands in, as for any other undecodable byte.
            Owned::Text(s) if s.contains('\0') => s.replace('\0', "\u{FFFD}").to_sql(ty, out),
            Owned::Text(s) => s.to_sql(ty, out),
            Owned::Blob(b) => b.to_sql(ty, out),
        }
    }
    fn accepts(_: &postgres::types::Type) -> bool {
        true
    }
    postgres::types::to_sql_checked!();
}

/// What the connection's thread is asked to do.
enum Job {
    Execute(String, Vec<Owned>, mpsc::Sender<Result<u64>>),
    Batch(String, mpsc::Sender<Result<()>>),
    /// Rows in chunks of at most `chunk`; `limit` stops early (query_opt).
    Query {
        sql: String,
        args: Vec<Owned>,
        limit: Option<usize>,
        chunk: usize,
        rows: mpsc::SyncSender<Result<Vec<postgres::Row>>>,
    },
    Notifications(mpsc::Sender<Result<u64>>),
}

/// A PostgreSQL connection owned by a thread of its own. When the server closes it (a restart,
/// a failover, `pg_terminate_backend`) the next statement opens a new one, so a long-lived
/// holder — a sync task, the lease keeper, a pooled connection — outlives the server's restart
/// instead of failing until the process is restarted.
pub struct PgConn {
    link: RefCell<Link>,
    /// `?N` → `$N` and the other rewrites, done once per statement text.
    translated: RefCell<HashMap<String, String>>,
    /// The store URL it was opened from, when it came from one.
    pub(super) url: Option<String>,
    /// LISTEN mailroom_changes was issued on this connection (a change watcher); false again
    /// when the connection is opened anew.
    listening: std::cell::Cell<bool>,
    /// A transaction is open on this connection (BEGIN seen, COMMIT/ROLLBACK not yet).
    in_tx: std::cell::Cell<bool>,
    /// What it connected with, for a second connection to the same database.
    config: Box<postgres::Config>,
}

/// The way to the connection's thread, and whether the server closed that connection.
struct Link {
    jobs: mpsc::Sender<Job>,
    closed: Arc<AtomicBool>,
}

/// What a statement does to the transaction (`ROLLBACK TO SAVEPOINT` ends nothing).
enum TxVerb {
    Begin,
    Commit,
    Rollback,
    Other,
}

impl TxVerb {
    fn of(stmt: &str) -> TxVerb {
        let words: Vec<String> = stmt
            .split_whitespace()
            .map(|w| w.to_ascii_uppercase())
            .collect();
        match words.first().map(String::as_str) {
            Some("BEGIN" | "START") => TxVerb::Begin,
            Some("COMMIT" | "END") => TxVerb::Commit,
            Some("ROLLBACK" | "ABORT") if !words.iter().any(|w| w == "TO") => TxVerb::Rollback,
            _ => TxVerb::Other,
        }
    }
}

/// Whether a statement may go to the server now.
enum Ready {
    Go,
    /// Answered here: the ROLLBACK of a transaction that was lost with its connection.
    Done,
}

/// How many rows a long scan carries per trip from the connection's thread.
const PG_CHUNK: usize = 512;

impl PgConn {
    /// Connects (on the connection's own thread) and returns once it is ready.
    pub fn connect(config: postgres::Config) -> Result<PgConn> {
        let link = PgConn::open_link(&config)?;
        Ok(PgConn {
            link: RefCell::new(link),
            listening: std::cell::Cell::new(false),
            in_tx: std::cell::Cell::new(false),
            translated: RefCell::new(HashMap::new()),
            config: Box::new(config),
            url: None,
        })
    }

    /// Connects on a new thread of its own; returns once the connection is ready.
    fn open_link(config: &postgres::Config) -> Result<Link> {
        let (jobs, rx) = mpsc::channel::<Job>();
        let (ready_tx, ready_rx) = mpsc::channel::<Result<()>>();
        let own = config.clone();
        let closed = Arc::new(AtomicBool::new(false));
        let closed_there = closed.clone();
        std::thread::Builder::new()
            .name("mailroom-pg".into())
            .spawn(move || match own.connect(postgres::NoTls) {
                Ok(client) => {
                    let _ = ready_tx.send(Ok(()));
                    serve(client, rx, &closed_there);
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(pg_error(&e)));
                }
            })
            .map_err(|e| {
                AppError::local(
                    "cannot start the database connection",
                    e.to_string(),
                    "check system limits (threads)",
                )
            })?;
        ready_rx.recv().map_err(|_| gone())??;
        Ok(Link { jobs, closed })
    }

    /// Before a statement: a connection the server closed is opened again — unless a
    /// transaction was open on it. That transaction is gone with it, and until its caller ends
    /// it nothing runs, so no statement meant for it lands on its own outside it: a ROLLBACK is
    /// answered here, a COMMIT fails (nothing of the transaction was saved), anything else too.
    fn ready(&self, sql: &str) -> Result<Ready> {
        if !self.link.borrow().closed.load(Ordering::SeqCst) {
            return Ok(Ready::Go);
        }
        if self.in_tx.get() {
            let first = sql.split(';').next().unwrap_or_default();
            return match TxVerb::of(first) {
                TxVerb::Rollback => {
                    self.in_tx.set(false);
                    Ok(Ready::Done)
                }
                TxVerb::Commit => {
                    self.in_tx.set(false);
                    Err(lost_transaction())
                }
                _ => Err(lost_transaction()),
            };
        }
        let fresh = PgConn::open_link(&self.config)?;
        *self.link.borrow_mut() = fresh;
        // LISTEN went with the old connection; the next change check subscribes again.
        self.listening.set(false);
        tracing::info!("the PostgreSQL connection was closed by the server; connected again");
        Ok(Ready::Go)
    }

    /// Hands a job to the connection's thread.
    fn send(&self, job: Job) -> Result<()> {
        let sent = self.link.borrow().jobs.send(job);
        sent.map_err(|_| self.dead())
    }

    /// The connection's thread is gone (the server closed the connection): the next statement
    /// connects again.
    fn dead(&self) -> AppError {
        self.link.borrow().closed.store(true, Ordering::SeqCst);
        gone()
    }

    /// A second connection to the same database, with the same settings.
    pub fn reconnect(&self) -> Result<PgConn> {
        let mut c = PgConn::connect((*self.config).clone())?;
        c.url.clone_from(&self.url);
        Ok(c)
    }

    /// The store URL this connection was opened from (what another part opens again).
    pub fn url(&self) -> Option<&str> {
        self.url.as_deref()
    }

    /// Follows BEGIN/COMMIT/ROLLBACK in what this connection runs, so [`Conn::in_tx`] knows
    /// whether a transaction is open (PostgreSQL's client does not say).
    fn track_tx(&self, sql: &str, ok: bool) {
        for stmt in sql.split(';') {
            match TxVerb::of(stmt) {
                TxVerb::Begin if ok => self.in_tx.set(true),
                // A failed COMMIT ends the transaction too (PostgreSQL rolls it back).
                TxVerb::Commit | TxVerb::Rollback => self.in_tx.set(false),
                _ => {}
            }
        }
    }

    fn sql(&self, sql: &str) -> String {
        if let Some(t) = self.translated.borrow().get(sql) {
            return t.clone();
        }
        let t = translate(sql);
        self.translated
            .borrow_mut()
            .insert(sql.to_string(), t.clone());
        t
    }

    fn execute(&self, sql: &str, args: &[Arg<'_>]) -> Result<u64> {
        if let Ready::Done = self.ready(sql)? {
            return Ok(0);
        }
        let (tx, rx) = mpsc::channel();
        let args = args.iter().map(Owned::of).collect();
        self.send(Job::Execute(self.sql(sql), args, tx))?;
        let r = rx.recv().map_err(|_| self.dead())?;
        self.track_tx(sql, r.is_ok());
        r
    }

    fn batch(&self, sql: &str) -> Result<()> {
        if let Ready::Done = self.ready(sql)? {
            return Ok(());
        }
        let (tx, rx) = mpsc::channel();
        self.send(Job::Batch(translate(sql), tx))?;
        let r = rx.recv().map_err(|_| self.dead())?;
        self.track_tx(sql, r.is_ok());
        r
    }

    fn query(
        &self,
        sql: &str,
        args: &[Arg<'_>],
        limit: Option<usize>,
    ) -> Result<Vec<postgres::Row>> {
        let mut all = Vec::new();
        self.chunks(sql, args, limit, |chunk| {
            all.extend(chunk);
            Ok(())
        })?;
        Ok(all)
    }

    fn for_each(
        &self,
        sql: &str,
        args: &[Arg<'_>],
        mut f: impl FnMut(&postgres::Row) -> Result<()>,
    ) -> Result<()> {
        self.chunks(sql, args, None, |chunk| chunk.iter().try_for_each(&mut f))
    }

    fn chunks(
        &self,
        sql: &str,
        args: &[Arg<'_>],
        limit: Option<usize>,
        mut f: impl FnMut(Vec<postgres::Row>) -> Result<()>,
    ) -> Result<()> {
        if let Ready::Done = self.ready(sql)? {
            return Ok(());
        }
        let (tx, rx) = mpsc::sync_channel(2);
        self.send(Job::Query {
            sql: self.sql(sql),
            args: args.iter().map(Owned::of).collect(),
            limit,
            chunk: PG_CHUNK,
            rows: tx,
        })?;
        // Every chunk is taken, even after a failure in `f`, so the connection's thread is free
        // for the next statement when this returns.
        let mut first_err = None;
        let mut answered = false;
        for chunk in rx {
            answered = true;
            match (chunk, first_err.is_some()) {
                (Ok(rows), false) => {
                    if let Err(e) = f(rows) {
                        first_err = Some(e);
                    }
                }
                (Err(e), false) => first_err = Some(e),
                _ => {}
            }
        }
        if !answered {
            return Err(self.dead());
        }
        first_err.map_or(Ok(()), Err)
    }

    /// How many of the tables' change notifications arrived since the connection opened; the
    /// first call (and the first after the connection was opened again) subscribes.
    pub fn notifications(&self) -> Result<u64> {
        self.ready("")?;
        if !self.listening.get() {
            self.batch("LISTEN mailroom_changes")?;
            self.listening.set(true);
        }
        let (tx, rx) = mpsc::channel();
        self.send(Job::Notifications(tx))?;
        rx.recv().map_err(|_| self.dead())?
    }
}

fn lost_transaction() -> AppError {
    AppError::transient(
        "the connection to PostgreSQL was closed in the middle of a transaction",
        "the server restarted or ended the session; nothing of that transaction was saved",
        "run the command again (a sync or a send picks up where it was)",
    )
}

fn gone() -> AppError {
    AppError::local(
        "the connection to PostgreSQL is gone",
        "",
        "check that the PostgreSQL server runs (`scripts/pgserver status` for the test server), then run the command again",
    )
}

/// Statements a connection runs more than once, prepared on the second run: PostgreSQL then
/// skips parsing, analysing (row-level security included) and planning them. Before this, a
/// first sync's per-message statements cost the server ~1.2 ms of CPU per message, most of it
/// there. A statement seen once (an IN list of a given length, say) stays unnamed: preparing it
/// would cost a round trip more.
#[derive(Default)]
struct Prepared {
    /// By statement text, then by argument types: None while seen once.
    seen: HashMap<String, HashMap<Vec<postgres::types::Type>, Option<postgres::Statement>>>,
}

/// Distinct statement texts remembered per connection; beyond that the memory starts over.
const PREPARED_MAX: usize = 1024;

impl Prepared {
    /// The prepared statement for this text and these types, if it is worth one.
    fn get(
        &mut self,
        client: &mut postgres::Client,
        sql: &str,
        types: &[postgres::types::Type],
    ) -> std::result::Result<Option<postgres::Statement>, postgres::Error> {
        if let Some(slot) = self.seen.get_mut(sql).and_then(|by| by.get_mut(types)) {
            if slot.is_none() {
                *slot = Some(client.prepare_typed(sql, types)?);
            }
            return Ok(slot.clone());
        }
        if self.seen.len() >= PREPARED_MAX {
            self.seen.clear();
        }
        self.seen
            .entry(sql.to_string())
            .or_default()
            .insert(types.to_vec(), None);
        Ok(None)
    }

    /// After a failure the statement is prepared afresh next time (e.g. another process
    /// changed the schema under it).
    fn forget(&mut self, sql: &str) {
        self.seen.remove(sql);
    }
}

/// The arguments with their types, for a statement run unnamed.
fn typed<'a>(
    args: &'a [Owned],
    types: &[postgres::types::Type],
) -> Vec<(
    &'a (dyn postgres::types::ToSql + Sync),
    postgres::types::Type,
)> {
    args.iter()
        .zip(types)
        .map(|(a, t)| (a as _, t.clone()))
        .collect()
}

/// Runs one statement, prepared when it repeats; the rows it changed.
fn execute(
    client: &mut postgres::Client,
    prepared: &mut Prepared,
    sql: &str,
    args: &[Owned],
) -> std::result::Result<u64, postgres::Error> {
    let types: Vec<postgres::types::Type> = args.iter().map(Owned::pg_type).collect();
    match prepared.get(client, sql, &types)? {
        Some(st) => {
            let params: Vec<&(dyn postgres::types::ToSql + Sync)> =
                args.iter().map(|a| a as _).collect();
            client.execute(&st, &params)
        }
        None => client.execute_typed(sql, &typed(args, &types)),
    }
}

/// The connection's thread: one statement at a time, in order.
fn serve(mut client: postgres::Client, jobs: mpsc::Receiver<Job>, closed: &AtomicBool) {
    let mut notified: u64 = 0;
    let mut prepared = Prepared::default();
    for job in jobs {
        // A failure that ends the session is marked before its answer goes out, so the
        // caller's next statement already sees it and connects again.
        match job {
            Job::Execute(sql, args, reply) => {
                let r = execute(&mut client, &mut prepared, &sql, &args).map_err(|e| {
                    prepared.forget(&sql);
                    failed(&e, &client, closed)
                });
                let _ = reply.send(r);
            }
            Job::Batch(sql, reply) => {
                let r = client
                    .batch_execute(&sql)
                    .map_err(|e| failed(&e, &client, closed));
                let _ = reply.send(r);
            }
            Job::Query {
                sql,
                args,
                limit,
                chunk,
                rows,
            } => run_query(
                &mut client,
                &mut prepared,
                Query {
                    sql: &sql,
                    args: &args,
                    limit,
                    chunk,
                },
                &rows,
                closed,
            ),
            Job::Notifications(reply) => {
                // A round trip first: the client reads the socket only while it waits for an
                // answer (its non-blocking poll never lets the I/O driver see new bytes), and
                // every notification the server sent before the answer is read with it.
                if let Err(e) = client.batch_execute("") {
                    let _ = reply.send(Err(failed(&e, &client, closed)));
                    if closed.load(Ordering::SeqCst) {
                        return;
                    }
                    continue;
                }
                let mut n = client.notifications();
                let mut it = n.iter();
                loop {
                    match postgres::fallible_iterator::FallibleIterator::next(&mut it) {
                        Ok(Some(_)) => notified += 1,
                        Ok(None) => break,
                        Err(e) => {
                            // The reply below still goes out; the count stays as it was.
                            tracing::debug!("reading PostgreSQL notifications: {e}");
                            break;
                        }
                    }
                }
                let _ = reply.send(Ok(notified));
            }
        }
        if closed.load(Ordering::SeqCst) || client.is_closed() {
            // The caller's next statement connects again (`PgConn::ready`); a job sent
            // meanwhile is dropped unanswered, which its caller takes for the same.
            closed.store(true, Ordering::SeqCst);
            return;
        }
    }
}

/// A failure in mailroom's words; one that ended the session marks the connection closed.
fn failed(e: &postgres::Error, client: &postgres::Client, closed: &AtomicBool) -> AppError {
    if ends_session(e) || client.is_closed() {
        closed.store(true, Ordering::SeqCst);
    }
    pg_error(e)
}

/// Whether a failure means the server ended this session: it shut down or restarted, the
/// session was terminated, or the socket is gone.
fn ends_session(e: &postgres::Error) -> bool {
    use postgres::error::SqlState;
    e.is_closed()
        || e.code().is_some_and(|c| {
            *c == SqlState::ADMIN_SHUTDOWN
                || *c == SqlState::CRASH_SHUTDOWN
                || *c == SqlState::CANNOT_CONNECT_NOW
        })
}

/// A query and how its rows are wanted.
struct Query<'a> {
    sql: &'a str,
    args: &'a [Owned],
    /// Stop after this many rows (query_opt).
    limit: Option<usize>,
    /// Rows per trip back to the caller.
    chunk: usize,
}

fn run_query(
    client: &mut postgres::Client,
    prepared: &mut Prepared,
    q: Query<'_>,
    out: &mpsc::SyncSender<Result<Vec<postgres::Row>>>,
    closed: &AtomicBool,
) {
    use postgres::fallible_iterator::FallibleIterator;
    let Query {
        sql,
        args,
        limit,
        chunk,
    } = q;
    let types: Vec<postgres::types::Type> = args.iter().map(Owned::pg_type).collect();
    let started = match prepared.get(client, sql, &types) {
        Ok(Some(st)) => {
            client.query_raw(&st, args.iter().map(|a| a as &dyn postgres::types::ToSql))
        }
        Ok(None) => client.query_typed_raw(sql, typed(args, &types)),
        Err(e) => Err(e),
    };
    let mut it = match started {
        Ok(it) => it,
        Err(e) => {
            prepared.forget(sql);
            if ends_session(&e) {
                closed.store(true, Ordering::SeqCst);
            }
            let _ = out.send(Err(pg_error(&e)));
            return;
        }
    };
    let mut buf = Vec::with_capacity(chunk.min(limit.unwrap_or(chunk)));
    let mut taken = 0usize;
    loop {
        match it.next() {
            Ok(Some(row)) => {
                buf.push(row);
                taken += 1;
                if limit.is_some_and(|l| taken >= l) {
                    break;
                }
                if buf.len() >= chunk && out.send(Ok(std::mem::take(&mut buf))).is_err() {
                    return;
                }
            }
            Ok(None) => break,
            Err(e) => {
                prepared.forget(sql);
                if ends_session(&e) {
                    closed.store(true, Ordering::SeqCst);
                }
                let _ = out.send(Err(pg_error(&e)));
                return;
            }
        }
    }
    // Drain what a limit left unread, so the connection is ready for the next statement.
    while let Ok(Some(_)) = it.next() {}
    // The last chunk always goes, empty or not: a query answered by nothing at all was
    // dropped unanswered (`PgConn::chunks`), never taken for one without rows.
    let _ = out.send(Ok(buf));
}

/// PostgreSQL's failures in mailroom's words.
pub fn pg_error(e: &postgres::Error) -> AppError {
    use postgres::error::SqlState;
    if let Some(db) = e.as_db_error() {
        let code = db.code();
        if *code == SqlState::DISK_FULL {
            return AppError::local(
                "the database server's disk is full",
                db.message().to_string(),
                "free space on the PostgreSQL server; nothing was lost, the last change was rolled back",
            );
        }
        if *code == SqlState::T_R_SERIALIZATION_FAILURE
            || *code == SqlState::T_R_DEADLOCK_DETECTED
            || *code == SqlState::LOCK_NOT_AVAILABLE
        {
            return AppError::transient(
                "the database is busy",
                db.message().to_string(),
                "another mailroom process holds a conflicting write; try again",
            );
        }
        if *code == SqlState::INVALID_PASSWORD
            || *code == SqlState::INVALID_AUTHORIZATION_SPECIFICATION
        {
            return AppError::needs_user(
                "PostgreSQL refused the login",
                db.message().to_string(),
                "check the user in the store URL and its password in PGPASSFILE (or ~/.pgpass)",
            );
        }
        if *code == SqlState::INVALID_CATALOG_NAME {
            return AppError::local(
                "the PostgreSQL database does not exist",
                db.message().to_string(),
                "create it (createdb -h HOST -p PORT -U USER NAME), or fix the database name in the store URL",
            );
        }
        return AppError::local(
            "database error",
            format!("{} ({})", db.message(), code.code()),
            "run `mailroom status`; if it persists, see docs/troubleshooting.md",
        );
    }
    if e.is_closed() {
        return gone();
    }
    let text = e.to_string();
    if text.contains("password missing")
        || std::error::Error::source(e).is_some_and(|s| s.to_string().contains("password missing"))
    {
        return AppError::needs_user(
            "PostgreSQL asks for a password and none was found",
            "no line for this server, database and user in PGPASSFILE or ~/.pgpass",
            "add `HOST:PORT:DATABASE:USER:PASSWORD` to ~/.pgpass (mode 0600) or to the file PGPASSFILE names",
        );
    }
    AppError::transient(
        "cannot reach the PostgreSQL server",
        crate::error::network_detail(&e.to_string(), None),
        "check that it runs and that the store URL's host and port are right",
    )
}

/// The few words the two engines spell differently, rewritten for PostgreSQL: `?N` → `$N`
/// (outside quotes), `LIKE` → `ILIKE` (SQLite's LIKE ignores ASCII case), `COLLATE NOCASE` →
/// the case-insensitive ICU collation the PostgreSQL schema creates.
pub fn translate(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 8);
    let chars: Vec<char> = sql.chars().collect();
    let mut i = 0;
    let mut next_anon = 1;
    let mut quote: Option<char> = None;
    while i < chars.len() {
        let c = chars[i];
        if let Some(q) = quote {
            out.push(c);
            if c == q {
                quote = None;
            }
            i += 1;
            continue;
        }
        match c {
            '\'' | '"' => {
                quote = Some(c);
                out.push(c);
                i += 1;
            }
            '?' => {
                let mut j = i + 1;
                while j < chars.len() && chars[j].is_ascii_digit() {
                    j += 1;
                }
                out.push('$');
                if j > i + 1 {
                    out.extend(&chars[i + 1..j]);
                } else {
                    out.push_str(&next_anon.to_string());
                    next_anon += 1;
                }
                i = j;
            }
            _ => {
                if let Some(rest) = word_at(&chars, i, "LIKE") {
                    out.push_str("ILIKE");
                    i = rest;
                } else if let Some(rest) = indexed_by_at(&chars, i) {
                    // SQLite's index hint: PostgreSQL's planner picks on its own.
                    i = rest;
                } else if let Some(rest) = word_at(&chars, i, "CROSS")
                    .and_then(|k| skip_space(&chars, k))
                    .and_then(|k| word_at(&chars, k, "JOIN"))
                {
                    // SQLite's "join in this order" (with ON), a plain join for PostgreSQL.
                    out.push_str("JOIN");
                    i = rest;
                } else if let Some(rest) = word_at(&chars, i, "NOCASE") {
                    out.push_str("mailroom_nocase");
                    i = rest;
                } else {
                    out.push(c);
                    i += 1;
                }
            }
        }
    }
    out
}

/// The index after the spaces at `k`, if there is at least one.
fn skip_space(chars: &[char], k: usize) -> Option<usize> {
    let mut j = k;
    while j < chars.len() && chars[j].is_whitespace() {
        j += 1;
    }
    (j > k).then_some(j)
}

/// `INDEXED BY name` at `i`: the index after the name.
fn indexed_by_at(chars: &[char], i: usize) -> Option<usize> {
    let k = word_at(chars, i, "INDEXED")?;
    let k = skip_space(chars, k)?;
    let k = word_at(chars, k, "BY")?;
    let mut j = skip_space(chars, k)?;
    while j < chars.len() && (chars[j].is_alphanumeric() || chars[j] == '_') {
        j += 1;
    }
    Some(j)
}

/// `word` (any case) as a whole word at `i`: the index after it.
fn word_at(chars: &[char], i: usize, word: &str) -> Option<usize> {
    let boundary = |k: usize| k >= chars.len() || !(chars[k].is_alphanumeric() || chars[k] == '_');
    if i > 0 && !boundary(i - 1) {
        return None;
    }
    let n = word.len();
    if i + n > chars.len() {
        return None;
    }
    let same = chars[i..i + n]
        .iter()
        .zip(word.chars())
        .all(|(a, b)| a.eq_ignore_ascii_case(&b));
    (same && boundary(i + n)).then_some(i + n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_like_and_collation_are_rewritten_outside_quotes() {
        assert_eq!(
            translate(
                "SELECT a FROM t WHERE b = ?1 AND c LIKE ?2 ESCAPE '\\' AND d = '?3 like' ORDER BY a COLLATE NOCASE"
            ),
            "SELECT a FROM t WHERE b = $1 AND c ILIKE $2 ESCAPE '\\' AND d = '?3 like' ORDER BY a COLLATE mailroom_nocase"
        );
        assert_eq!(translate("VALUES (?, ?)"), "VALUES ($1, $2)");
        assert_eq!(
            translate("FROM messages m INDEXED BY messages_by_date CROSS JOIN locations l ON x"),
            "FROM messages m  JOIN locations l ON x"
        );
        assert_eq!(
            translate("SELECT unlike FROM liked"),
            "SELECT unlike FROM liked"
        );
    }

    /// A statement that comes back is prepared once on the server and then reused; one seen
    /// once is not; a prepared statement whose table changed under it fails once, is forgotten
    /// and works again prepared afresh.
    #[test]
    fn repeated_postgresql_statements_are_prepared_once() {
        let Some(pg) = engines::PgScratch::new() else {
            return;
        };
        let c = pg.conn();
        let prepared = |c: &Conn| -> i64 {
            c.one(
                "SELECT COUNT(*) FROM pg_prepared_statements
                 WHERE NOT from_sql AND statement NOT LIKE '%pg_prepared_statements%'",
                &[],
                |r| r.get(0),
            )
            .unwrap()
        };
        let before = prepared(&c);
        c.batch("CREATE TABLE p (n BIGINT)").unwrap();
        for n in 0..5i64 {
            c.exec("INSERT INTO p (n) VALUES (?1)", args![n]).unwrap();
        }
        let sum = |c: &Conn| -> i64 {
            c.one("SELECT CAST(SUM(n) AS BIGINT) FROM p", &[], |r| r.get(0))
                .unwrap()
        };
        for _ in 0..3 {
            assert_eq!(sum(&c), 10);
        }
        assert_eq!(
            prepared(&c) - before,
            2,
            "the INSERT and the SUM, once each"
        );
        c.exec("INSERT INTO p (n) VALUES (?1 + 100)", args![1i64])
            .unwrap();
        assert_eq!(
            prepared(&c) - before,
            2,
            "a statement seen once stays unnamed"
        );
        // Another process adds a column under a prepared `SELECT *`: PostgreSQL refuses the
        // old plan once ("cached plan must not change result type"); it is forgotten, and the
        // next run prepares it afresh.
        let all = |c: &Conn| c.rows("SELECT * FROM p ORDER BY n", &[], |r| r.get::<i64>(0));
        assert_eq!(all(&c).unwrap().len(), 6);
        assert_eq!(all(&c).unwrap().len(), 6);
        c.batch("ALTER TABLE p ADD COLUMN m BIGINT").unwrap();
        assert!(all(&c).is_err(), "the stale plan is refused");
        assert_eq!(all(&c).unwrap(), [0, 1, 2, 3, 4, 101]);
    }

    /// The server ends the session (as a restart or `pg_terminate_backend` does): the
    /// statement that meets it fails, the next one runs on a new connection. A transaction
    /// open at that moment is lost as a whole: nothing meant for it runs outside it, its
    /// COMMIT fails, its ROLLBACK is answered, and after it the connection works again.
    /// LISTEN is issued again on the new connection.
    #[test]
    fn a_postgresql_connection_the_server_ended_opens_again() {
        let Some(pg) = engines::PgScratch::new() else {
            return;
        };
        let c = pg.conn();
        let admin = pg.conn();
        let Conn::Pg(p) = &c else {
            panic!("a PostgreSQL connection");
        };
        let pid = |c: &Conn| -> i64 {
            c.one("SELECT CAST(pg_backend_pid() AS BIGINT)", &[], |r| r.get(0))
                .unwrap()
        };
        let end = |victim: i64| {
            admin
                .one(
                    "SELECT pg_terminate_backend(CAST(?1 AS INTEGER))",
                    args![victim],
                    |r| r.get::<bool>(0),
                )
                .unwrap()
        };
        c.batch("CREATE TABLE r (n BIGINT)").unwrap();
        let first = pid(&c);
        assert!(end(first));
        let met = c.exec("INSERT INTO r (n) VALUES (1)", &[]);
        assert!(met.is_err(), "the statement that meets the end fails");
        let second = pid(&c);
        assert_ne!(second, first, "a new session");
        c.exec("INSERT INTO r (n) VALUES (?1)", args![2i64])
            .unwrap();

        // In a transaction: the transaction is lost as a whole.
        c.batch("BEGIN").unwrap();
        c.exec("INSERT INTO r (n) VALUES (?1)", args![3i64])
            .unwrap();
        assert!(end(second));
        assert!(
            c.exec("INSERT INTO r (n) VALUES (?1)", args![4i64])
                .is_err()
        );
        assert!(
            c.exec("INSERT INTO r (n) VALUES (?1)", args![5i64])
                .is_err(),
            "nothing meant for the lost transaction runs on its own"
        );
        assert!(c.in_tx());
        assert!(
            c.batch("COMMIT").is_err(),
            "its COMMIT saves nothing and says so"
        );
        assert!(!c.in_tx());
        let rows = c
            .rows("SELECT n FROM r ORDER BY n", &[], |r| r.get::<i64>(0))
            .unwrap();
        assert_eq!(rows, [2], "only what was committed before");
        c.batch("BEGIN").unwrap();
        assert!(end(pid(&c)));
        assert!(
            c.exec("INSERT INTO r (n) VALUES (?1)", args![6i64])
                .is_err()
        );
        c.batch("ROLLBACK").unwrap();
        assert!(!c.in_tx());

        // Change notifications: counted again on the new connection after it subscribes.
        let before = p.notifications().unwrap();
        admin.batch("NOTIFY mailroom_changes").unwrap();
        let counted = (0..50).find_map(|_| {
            std::thread::sleep(std::time::Duration::from_millis(20));
            (p.notifications().unwrap() > before).then_some(())
        });
        assert!(counted.is_some(), "a NOTIFY is counted");
        assert!(end(pid(&c)));
        let _ = p.notifications();
        let again = p.notifications().unwrap();
        admin.batch("NOTIFY mailroom_changes").unwrap();
        let counted = (0..50).find_map(|_| {
            std::thread::sleep(std::time::Duration::from_millis(20));
            (p.notifications().unwrap() > again).then_some(())
        });
        assert!(
            counted.is_some(),
            "LISTEN was issued again on the new connection"
        );
    }

    /// A vanished database host is given up on within about a minute unless the URL says
    /// otherwise.
    #[test]
    fn postgresql_connections_notice_a_vanished_host_within_a_minute() {
        use std::time::Duration;
        let c = pg_config("postgres://u@db.invalid:5432/d").unwrap();
        assert!(c.get_keepalives());
        assert_eq!(c.get_keepalives_idle(), Duration::from_secs(30));
        assert_eq!(c.get_keepalives_interval(), Some(Duration::from_secs(10)));
        assert_eq!(c.get_keepalives_retries(), Some(3));
        assert_eq!(c.get_tcp_user_timeout(), Some(&Duration::from_secs(60)));
        assert_eq!(c.get_connect_timeout(), Some(&Duration::from_secs(10)));
        let own = pg_config(
            "postgres://u@db.invalid:5432/d?keepalives_idle=90&tcp_user_timeout=5&connect_timeout=3",
        )
        .unwrap();
        assert_eq!(own.get_keepalives_idle(), Duration::from_secs(90));
        assert_eq!(own.get_tcp_user_timeout(), Some(&Duration::from_secs(5)));
        assert_eq!(own.get_connect_timeout(), Some(&Duration::from_secs(3)));
        let off = pg_config("postgres://u@db.invalid:5432/d?keepalives=0").unwrap();
        assert!(
            !off.get_keepalives(),
            "keepalives switched off by the URL stay off"
        );
    }

    #[test]
    fn both_engines_read_and_write_every_kind_through_the_common_calls() {
        engines::each(|c| {
            c.batch(match c.engine() {
                Engine::Sqlite => "CREATE TABLE t (id INTEGER PRIMARY KEY, n BIGINT, s TEXT, b BLOB, f REAL)",
                Engine::Postgres => "CREATE TABLE t (id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, n BIGINT, s TEXT, b BYTEA, f DOUBLE PRECISION)",
            })
            .unwrap();
            let none: Option<String> = None;
            let id: i64 = c
                .one(
                    "INSERT INTO t (n, s, b, f) VALUES (?1, ?2, ?3, ?4) RETURNING id",
                    args![42i64, "héllo", vec![1u8, 2], 1.5f64],
                    |r| r.get(0),
                )
                .unwrap();
            c.exec("INSERT INTO t (n, s) VALUES (?1, ?2)", args![7u32, none])
                .unwrap();
            let rows = c
                .rows("SELECT id, n, s, b, f FROM t ORDER BY id", &[], |r| {
                    Ok((
                        r.get::<i64>(0)?,
                        r.get::<i64>(1)?,
                        r.get::<Option<String>>(2)?,
                        r.get::<Option<Vec<u8>>>(3)?,
                        r.get::<Option<f64>>(4)?,
                    ))
                })
                .unwrap();
            assert_eq!(
                rows[0],
                (id, 42, Some("héllo".into()), Some(vec![1, 2]), Some(1.5))
            );
            assert_eq!(rows[1].2, None);
            // NUL in text (hostile mail): stored on both, as U+FFFD on PostgreSQL.
            c.exec("INSERT INTO t (n, s) VALUES (?1, ?2)", args![8u32, "a\0b"])
                .unwrap();
            let nul: String = c
                .one("SELECT s FROM t WHERE n = 8", &[], |r| r.get(0))
                .unwrap();
            assert!(nul == "a\0b" || nul == "a\u{FFFD}b", "{nul:?}");
            c.exec("DELETE FROM t WHERE n = 8", &[]).unwrap();
            assert_eq!(
                c.first("SELECT n FROM t WHERE n = ?1", args![99i64], |r| r
                    .get::<i64>(0))
                    .unwrap(),
                None
            );
            // Aggregates and comparisons read as numbers on both (PostgreSQL says bigint/bool).
            let (count, any): (i64, bool) = c
                .one(
                    "SELECT COUNT(*), EXISTS (SELECT 1 FROM t WHERE s LIKE ?1) FROM t",
                    args!["HÉ%"],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .unwrap();
            assert_eq!(count, 2);
            assert!(
                !any || c.engine() == Engine::Postgres,
                "SQLite's LIKE folds ASCII only"
            );
            let ascii: bool = c
                .one(
                    "SELECT EXISTS (SELECT 1 FROM t WHERE s LIKE ?1)",
                    args!["HELLO"],
                    |r| r.get(0),
                )
                .unwrap();
            assert!(!ascii, "é is not l");
            let folded: bool = c
                .one(
                    "SELECT EXISTS (SELECT 1 FROM t WHERE s LIKE ?1)",
                    args!["H_LLO"],
                    |r| r.get(0),
                )
                .unwrap();
            assert!(folded, "both engines ignore ASCII case in LIKE");
            // A long scan arrives whole, in order.
            c.batch("BEGIN").unwrap();
            for i in 0..1500i64 {
                c.exec("INSERT INTO t (n) VALUES (?1)", args![i]).unwrap();
            }
            c.batch("COMMIT").unwrap();
            let mut seen = 0i64;
            c.each(
                "SELECT n FROM t WHERE s IS NULL AND b IS NULL AND n < 1500 ORDER BY id",
                &[],
                |r| {
                    let n: i64 = r.get(0)?;
                    assert_eq!(n, if seen == 0 { 7 } else { seen - 1 });
                    seen += 1;
                    Ok(())
                },
            )
            .unwrap();
            assert_eq!(seen, 1501);
        });
    }

    #[test]
    fn pgpass_fields_unescape() {
        assert_eq!(
            pgpass_fields(r"h:5432:db:u:p\:w:x"),
            vec!["h", "5432", "db", "u", "p:w:x"]
        );
    }
}

/// The client settings for a `postgres://` URL. The password never sits in the URL or in
/// config.toml: it comes from `PGPASSFILE` (else `~/.pgpass`), as libpq reads it.
pub fn pg_config(url: &str) -> Result<postgres::Config> {
    let mut config: postgres::Config = url.parse().map_err(|e: postgres::Error| {
        AppError::usage(
            format!("{url:?} is not a PostgreSQL URL"),
            format!("write it as postgres://USER@HOST:PORT/DATABASE ({e})"),
        )
    })?;
    if config.get_password().is_some() {
        return Err(AppError::usage(
            "the store URL carries a password",
            "remove it from the URL and put it in PGPASSFILE or ~/.pgpass (HOST:PORT:DATABASE:USER:PASSWORD)",
        ));
    }
    let host = config
        .get_hosts()
        .first()
        .map(|h| match h {
            postgres::config::Host::Tcp(h) => h.clone(),
            postgres::config::Host::Unix(p) => p.display().to_string(),
        })
        .unwrap_or_else(|| "localhost".into());
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let user = config.get_user().unwrap_or_default().to_string();
    let db = config.get_dbname().unwrap_or(&user).to_string();
    if let Some(pw) = pgpass_lookup(&host, port, &db, &user)? {
        config.password(pw);
    }
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(std::time::Duration::from_secs(10));
    }
    bound_dead_hosts(&mut config);
    Ok(config)
}

/// A database host that vanishes without a reset (a pulled cable, a crashed VM, a firewall
/// forgetting the session) is noticed within about a minute, not after the system's defaults
/// (the first keepalive after 2 h idle; ~15 min of retransmissions for a statement sent): TCP
/// keepalives after 30 s idle, every 10 s, 3 unanswered; data unacknowledged for 60 s ends the
/// connection. What the URL sets itself stays (the client's own 2 h idle default counts as
/// unset); a long statement is not cut short, as the server's kernel answers keepalives.
fn bound_dead_hosts(config: &mut postgres::Config) {
    use std::time::Duration;
    if !config.get_keepalives() {
        return;
    }
    if config.get_keepalives_idle() == Duration::from_secs(2 * 60 * 60) {
        config.keepalives_idle(Duration::from_secs(30));
    }
    if config.get_keepalives_interval().is_none() {
        config.keepalives_interval(Duration::from_secs(10));
    }
    if config.get_keepalives_retries().is_none() {
        config.keepalives_retries(3);
    }
    if config.get_tcp_user_timeout().is_none() {
        config.tcp_user_timeout(Duration::from_secs(60));
    }
}

/// The password for this server, database and user in the pgpass file, if any.
fn pgpass_lookup(host: &str, port: u16, db: &str, user: &str) -> Result<Option<String>> {
    let path = match std::env::var_os("PGPASSFILE") {
        Some(p) => std::path::PathBuf::from(p),
        None => match directories::BaseDirs::new() {
            Some(b) => b.home_dir().join(".pgpass"),
            None => return Ok(None),
        },
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(AppError::local(
                format!("cannot read the password file {}", path.display()),
                e.to_string(),
                "check its permissions (it should be 0600 and yours)",
            ));
        }
    };
    let port = port.to_string();
    for line in text.lines() {
        if line.trim_start().starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let fields = pgpass_fields(line);
        if fields.len() < 5 {
            continue;
        }
        let hit = |pat: &str, val: &str| pat == "*" || pat == val;
        if hit(&fields[0], host)
            && hit(&fields[1], &port)
            && hit(&fields[2], db)
            && hit(&fields[3], user)
        {
            return Ok(Some(fields[4..].join(":")));
        }
    }
    Ok(None)
}

/// `a:b\:c` → ["a", "b:c"]: pgpass fields with `\:` and `\\` escapes.
fn pgpass_fields(line: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(n) = chars.next()
                    && let Some(last) = out.last_mut()
                {
                    last.push(n);
                }
            }
            ':' if out.len() < 5 => out.push(String::new()),
            c => {
                if let Some(last) = out.last_mut() {
                    last.push(c);
                }
            }
        }
    }
    out
}

/// Test support: each engine in turn. SQLite always; PostgreSQL when `MAILROOM_TEST_PG_URL`
/// names a server (scripts/test sets it from scripts/pgserver, and then requires it).
#[cfg(test)]
pub mod engines {
    use super::*;

    /// A fresh PostgreSQL database for one test, dropped afterwards.
    pub struct PgScratch {
        admin: String,
        pub url: String,
        name: String,
    }

    impl PgScratch {
        pub fn new() -> Option<PgScratch> {
            let admin = match std::env::var("MAILROOM_TEST_PG_URL") {
                Ok(u) if !u.is_empty() => u,
                _ => {
                    assert!(
                        std::env::var_os("MAILROOM_TEST_PG_REQUIRED").is_none(),
                        "MAILROOM_TEST_PG_REQUIRED is set but MAILROOM_TEST_PG_URL is not"
                    );
                    return None;
                }
            };
            let name = format!("t_{}", crate::model::new_id());
            let c = PgConn::connect(pg_config(&admin).unwrap()).unwrap();
            c.batch(&format!("CREATE DATABASE {name}")).unwrap();
            // Tests want speed, not durability across a power cut.
            c.batch(&format!(
                "ALTER DATABASE {name} SET synchronous_commit = off"
            ))
            .unwrap();
            let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(&admin);
            Some(PgScratch {
                url: format!("{base}/{name}"),
                admin,
                name,
            })
        }
        pub fn conn(&self) -> Conn {
            Conn::Pg(PgConn::connect(pg_config(&self.url).unwrap()).unwrap())
        }
    }

    impl Drop for PgScratch {
        fn drop(&mut self) {
            if let Ok(c) = pg_config(&self.admin).and_then(PgConn::connect) {
                let _ = c.batch(&format!(
                    "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                    self.name
                ));
            }
        }
    }

    /// Runs `body` on a fresh SQLite connection and, when configured, a fresh PostgreSQL one.
    pub fn each(body: impl Fn(&Conn)) {
        body(&Conn::Lite(rusqlite::Connection::open_in_memory().unwrap()));
        if let Some(pg) = PgScratch::new() {
            body(&pg.conn());
        }
    }
}
