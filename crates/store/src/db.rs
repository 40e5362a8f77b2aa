//! The store's one way to run SQL on either database: a query with numbered parameters (`$1`,
//! `$2`, ...), run on the pool or inside a transaction, giving rows of plain values.
//!
//! - **SQLite** runs through rusqlite on the calling thread: a statement costs the time SQLite
//!   takes and nothing more (sqlx hands every statement to a thread of its own and back, about
//!   0.1 ms a round trip on a busy machine, which made SQLite's one writer the login's
//!   bottleneck). Readers take a connection from a small stack of their own.
//! - **PostgreSQL** runs through sqlx, asynchronously, as before.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use rusqlite::types::ValueRef;
use sqlx::any::{AnyRow, AnyTypeInfoKind};
use sqlx::{AnyConnection, AnyPool, Row as _, Value as _, ValueRef as _};

use domain::{DeviceId, Serial, TxnId, UserId};

use crate::sqlite::open_sqlite;
use crate::writer::Writer;
use crate::Error;

/// A parameter or column value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    Int(i64),
    Bool(bool),
    Text(String),
    Blob(Vec<u8>),
    /// NULL, of the type a parameter would have (PostgreSQL wants to know).
    Null(Kind),
}

/// A value's type, for NULL parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Int,
    Bool,
    Text,
    Blob,
}

/// What can be a query parameter.
pub(crate) trait IntoValue {
    /// The value.
    fn into_value(self) -> Value;
    /// The type of its NULL.
    fn kind() -> Kind;
}

macro_rules! into_value {
    ($t:ty, $kind:ident, |$v:ident| $e:expr) => {
        impl IntoValue for $t {
            fn into_value(self) -> Value {
                let $v = self;
                $e
            }
            fn kind() -> Kind {
                Kind::$kind
            }
        }
    };
}

into_value!(i64, Int, |v| Value::Int(v));
into_value!(i32, Int, |v| Value::Int(i64::from(v)));
into_value!(u32, Int, |v| Value::Int(i64::from(v)));
into_value!(bool, Bool, |v| Value::Bool(v));
into_value!(String, Text, |v| Value::Text(v));
into_value!(&str, Text, |v| Value::Text(v.to_owned()));
into_value!(&String, Text, |v| Value::Text(v.clone()));
into_value!(Vec<u8>, Blob, |v| Value::Blob(v));
into_value!(&[u8], Blob, |v| Value::Blob(v.to_vec()));
into_value!(&Vec<u8>, Blob, |v| Value::Blob(v.clone()));

// The typed ids are stored as their text, a serial as its hex.
into_value!(&UserId, Text, |v| Value::Text(v.as_str().to_owned()));
into_value!(&TxnId, Text, |v| Value::Text(v.as_str().to_owned()));
into_value!(&DeviceId, Text, |v| Value::Text(v.as_str().to_owned()));
into_value!(&Serial, Text, |v| Value::Text(v.to_hex()));
into_value!(UserId, Text, |v| Value::Text(v.as_str().to_owned()));
into_value!(TxnId, Text, |v| Value::Text(v.as_str().to_owned()));
into_value!(DeviceId, Text, |v| Value::Text(v.as_str().to_owned()));
into_value!(Serial, Text, |v| Value::Text(v.to_hex()));

impl<T: IntoValue> IntoValue for Option<T> {
    fn into_value(self) -> Value {
        match self {
            Some(value) => value.into_value(),
            None => Value::Null(T::kind()),
        }
    }
    fn kind() -> Kind {
        T::kind()
    }
}

/// What a column can be read as.
pub(crate) trait FromValue: Sized {
    /// The column's value as `Self`, or why not.
    fn from_value(value: &Value) -> Result<Self, String>;
}

impl FromValue for i64 {
    fn from_value(value: &Value) -> Result<Self, String> {
        match value {
            Value::Int(v) => Ok(*v),
            Value::Bool(v) => Ok(i64::from(*v)),
            other => Err(format!("expected an integer, found {other:?}")),
        }
    }
}

impl FromValue for i32 {
    fn from_value(value: &Value) -> Result<Self, String> {
        i32::try_from(i64::from_value(value)?).map_err(|_| "an integer out of range".to_owned())
    }
}

impl FromValue for bool {
    fn from_value(value: &Value) -> Result<Self, String> {
        match value {
            Value::Bool(v) => Ok(*v),
            Value::Int(v) => Ok(*v != 0),
            other => Err(format!("expected a boolean, found {other:?}")),
        }
    }
}

impl FromValue for String {
    fn from_value(value: &Value) -> Result<Self, String> {
        match value {
            Value::Text(v) => Ok(v.clone()),
            other => Err(format!("expected text, found {other:?}")),
        }
    }
}

impl FromValue for Vec<u8> {
    fn from_value(value: &Value) -> Result<Self, String> {
        match value {
            Value::Blob(v) => Ok(v.clone()),
            other => Err(format!("expected bytes, found {other:?}")),
        }
    }
}

macro_rules! text_id_from_value {
    ($($t:ty),*) => {$(
        impl FromValue for $t {
            fn from_value(value: &Value) -> Result<Self, String> {
                String::from_value(value).map(<$t>::from)
            }
        }
    )*};
}

text_id_from_value!(UserId, TxnId, DeviceId);

impl FromValue for Serial {
    fn from_value(value: &Value) -> Result<Self, String> {
        let text = String::from_value(value)?;
        Serial::parse_hex(&text).ok_or_else(|| format!("not a serial: {text}"))
    }
}

impl<T: FromValue> FromValue for Option<T> {
    fn from_value(value: &Value) -> Result<Self, String> {
        match value {
            Value::Null(_) => Ok(None),
            other => T::from_value(other).map(Some),
        }
    }
}

/// A result row.
#[derive(Debug, Clone)]
pub(crate) struct Row(Vec<Value>);

impl Row {
    /// Column `index` (from 0) as `T`.
    pub(crate) fn try_get<T: FromValue>(&self, index: usize) -> Result<T, Error> {
        let value = self
            .0
            .get(index)
            .ok_or_else(|| Error::Corrupt(format!("no column {index}")))?;
        T::from_value(value).map_err(|why| Error::Corrupt(format!("column {index}: {why}")))
    }
}

/// The database: SQLite's readers and its one writer (see `writer`), or PostgreSQL's pool,
/// where every transaction has a connection of its own.
pub(crate) enum Db {
    Sqlite(Readers, Arc<Writer>),
    Postgres(AnyPool),
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Sqlite(readers, _) => f.debug_tuple("Sqlite").field(&readers.path).finish(),
            Self::Postgres(_) => f.write_str("Postgres"),
        }
    }
}

/// Where a query runs: the pool, or a transaction's connection.
pub(crate) enum On<'a> {
    Pool(&'a Db),
    /// `&mut` although SQLite only reads through it: a `Connection` is not `Sync`, and a future
    /// holding a shared reference to it could not move between threads. The flag, inside a use
    /// case's transaction: set when a statement fails ([`Failed`]).
    Sqlite(&'a mut rusqlite::Connection, Option<&'a mut Failed>),
    Postgres(&'a mut AnyConnection, Option<&'a mut Failed>),
}

/// Whether a statement of a use case's transaction failed. Its commit then stores nothing and
/// says so, on both databases alike: PostgreSQL has aborted the transaction by then (and would
/// answer its COMMIT with a rollback that sqlx reports as success), and SQLite would commit
/// the other statements without the refused one.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Failed(pub(crate) bool);

impl Failed {
    fn mark<T>(flag: Option<&mut Self>, result: Result<T, Error>) -> Result<T, Error> {
        if let (Some(flag), Err(_)) = (flag, &result) {
            flag.0 = true;
        }
        result
    }
}

impl<'a> From<&'a Db> for On<'a> {
    fn from(db: &'a Db) -> Self {
        Self::Pool(db)
    }
}

/// What a statement did.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Done(u64);

impl Done {
    /// Rows inserted, changed or deleted.
    pub(crate) fn rows_affected(&self) -> u64 {
        self.0
    }
}

impl<'a> On<'a> {
    /// The same place, for one more query.
    pub(crate) fn reborrow(&mut self) -> On<'_> {
        match self {
            Self::Pool(db) => On::Pool(db),
            Self::Sqlite(conn, failed) => On::Sqlite(conn, failed.as_deref_mut()),
            Self::Postgres(conn, failed) => On::Postgres(conn, failed.as_deref_mut()),
        }
    }
}

/// A query and its parameters, in order: `$1` is the first.
pub(crate) struct Query<'q> {
    sql: &'q str,
    args: Vec<Value>,
}

/// A query, to be given its parameters with [`Query::bind`].
pub(crate) fn query(sql: &str) -> Query<'_> {
    Query {
        sql,
        args: Vec::new(),
    }
}

impl<'q> Query<'q> {
    /// The next parameter.
    pub(crate) fn bind(mut self, value: impl IntoValue) -> Self {
        self.args.push(value.into_value());
        self
    }

    /// Runs it; how many rows it changed.
    pub(crate) async fn execute<'a>(self, on: impl Into<On<'a>>) -> Result<Done, Error> {
        Ok(Done(self.run(on.into(), false).await?.0))
    }

    /// Runs it; the first row, if any.
    pub(crate) async fn fetch_optional<'a>(
        self,
        on: impl Into<On<'a>>,
    ) -> Result<Option<Row>, Error> {
        Ok(self.run(on.into(), true).await?.1.into_iter().next())
    }

    /// Runs it; the first row, which must be there.
    pub(crate) async fn fetch_one<'a>(self, on: impl Into<On<'a>>) -> Result<Row, Error> {
        let sql = self.sql;
        self.fetch_optional(on)
            .await?
            .ok_or_else(|| Error::NotFound(format!("no row for: {sql}")))
    }

    /// Runs it; every row.
    pub(crate) async fn fetch_all<'a>(self, on: impl Into<On<'a>>) -> Result<Vec<Row>, Error> {
        Ok(self.run(on.into(), true).await?.1)
    }

    async fn run(self, on: On<'_>, rows: bool) -> Result<(u64, Vec<Row>), Error> {
        match on {
            On::Pool(Db::Sqlite(readers, _)) => {
                readers.with(|conn| sqlite_run(conn, self.sql, &self.args, rows))
            }
            On::Sqlite(conn, failed) => {
                // This is the writer's connection, inside the group's transaction. An error
                // that ended the transaction (SQLite rolls it all back on a full disk, an I/O
                // error, `RAISE(ROLLBACK)`) must not leave the use case's next statements to
                // run, and commit, each on its own.
                if conn.is_autocommit() {
                    return Err(Error::GroupCommit(
                        "an earlier error rolled the transaction back".into(),
                    ));
                }
                Failed::mark(failed, sqlite_run(conn, self.sql, &self.args, rows))
            }
            On::Pool(Db::Postgres(pool)) => {
                let mut conn = pool.acquire().await?;
                postgres_run(&mut conn, self.sql, self.args, rows).await
            }
            On::Postgres(conn, failed) => {
                Failed::mark(failed, postgres_run(conn, self.sql, self.args, rows).await)
            }
        }
    }
}

/// Runs one statement on a SQLite connection, here and now.
pub(crate) fn sqlite_run(
    conn: &rusqlite::Connection,
    sql: &str,
    args: &[Value],
    want_rows: bool,
) -> Result<(u64, Vec<Row>), Error> {
    let mut statement = conn.prepare_cached(sql)?;
    for index in 1..=statement.parameter_count() {
        // `$N` is a named parameter to SQLite; the name says which value it takes.
        let number = statement
            .parameter_name(index)
            .and_then(|name| name.strip_prefix('$'))
            .and_then(|n| n.parse::<usize>().ok());
        let value = number
            .and_then(|n| n.checked_sub(1))
            .and_then(|n| args.get(n));
        let Some(value) = value else {
            return Err(Error::Corrupt(format!(
                "parameter {index} of `{sql}` has no value"
            )));
        };
        match value {
            Value::Int(v) => statement.raw_bind_parameter(index, v)?,
            Value::Bool(v) => statement.raw_bind_parameter(index, v)?,
            Value::Text(v) => statement.raw_bind_parameter(index, v)?,
            Value::Blob(v) => statement.raw_bind_parameter(index, v)?,
            Value::Null(_) => statement.raw_bind_parameter(index, rusqlite::types::Null)?,
        }
    }
    let columns = statement.column_count();
    let mut found = Vec::new();
    let mut rows = statement.raw_query();
    while let Some(row) = rows.next()? {
        if !want_rows {
            continue;
        }
        let mut values = Vec::with_capacity(columns);
        for index in 0..columns {
            values.push(match row.get_ref(index)? {
                ValueRef::Null => Value::Null(Kind::Int),
                ValueRef::Integer(v) => Value::Int(v),
                ValueRef::Text(v) => Value::Text(
                    String::from_utf8(v.to_vec())
                        .map_err(|_| Error::Corrupt("text that is not UTF-8".into()))?,
                ),
                ValueRef::Blob(v) => Value::Blob(v.to_vec()),
                ValueRef::Real(v) => {
                    return Err(Error::Corrupt(format!(
                        "a real number ({v}) where none is stored"
                    )))
                }
            });
        }
        found.push(Row(values));
    }
    drop(rows);
    Ok((conn.changes(), found))
}

async fn postgres_run(
    conn: &mut AnyConnection,
    sql: &str,
    args: Vec<Value>,
    want_rows: bool,
) -> Result<(u64, Vec<Row>), Error> {
    let mut query = sqlx::query(sql);
    for value in args {
        query = match value {
            Value::Int(v) => query.bind(v),
            Value::Bool(v) => query.bind(v),
            Value::Text(v) => query.bind(v),
            Value::Blob(v) => query.bind(v),
            Value::Null(Kind::Int) => query.bind(None::<i64>),
            Value::Null(Kind::Bool) => query.bind(None::<bool>),
            Value::Null(Kind::Text) => query.bind(None::<String>),
            Value::Null(Kind::Blob) => query.bind(None::<Vec<u8>>),
        };
    }
    if !want_rows {
        return Ok((query.execute(&mut *conn).await?.rows_affected(), Vec::new()));
    }
    let rows = query.fetch_all(&mut *conn).await?;
    let count = u64::try_from(rows.len()).unwrap_or(u64::MAX);
    Ok((count, rows.iter().map(from_any).collect::<Result<_, _>>()?))
}

fn from_any(row: &AnyRow) -> Result<Row, Error> {
    let mut values = Vec::with_capacity(row.len());
    for index in 0..row.len() {
        let raw = row.try_get_raw(index)?;
        if raw.is_null() {
            values.push(Value::Null(Kind::Int));
            continue;
        }
        let kind = raw.type_info().kind();
        let value = sqlx::ValueRef::to_owned(&raw);
        values.push(match kind {
            AnyTypeInfoKind::Bool => Value::Bool(value.try_decode()?),
            AnyTypeInfoKind::SmallInt | AnyTypeInfoKind::Integer | AnyTypeInfoKind::BigInt => {
                Value::Int(value.try_decode::<i64>()?)
            }
            AnyTypeInfoKind::Text => Value::Text(value.try_decode()?),
            AnyTypeInfoKind::Blob => Value::Blob(value.try_decode()?),
            other => {
                return Err(Error::Corrupt(format!(
                    "column {index}: unexpected type {other:?}"
                )))
            }
        });
    }
    Ok(Row(values))
}

/// SQLite connections for reading, made as needed and kept for the next reader.
pub(crate) struct Readers {
    path: PathBuf,
    idle: Mutex<Vec<rusqlite::Connection>>,
    /// Readers kept idle at most (more may exist while busy).
    max_idle: usize,
}

impl Readers {
    pub(crate) fn new(path: PathBuf, max_idle: u32) -> Self {
        Self {
            path,
            idle: Mutex::new(Vec::new()),
            max_idle: usize::try_from(max_idle).unwrap_or(usize::MAX),
        }
    }

    fn with<T>(
        &self,
        work: impl FnOnce(&rusqlite::Connection) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let idle = self.idle.lock().ok().and_then(|mut idle| idle.pop());
        let conn = match idle {
            Some(conn) => conn,
            None => open_sqlite(&self.path)?,
        };
        let result = work(&conn);
        if let Ok(mut idle) = self.idle.lock() {
            if idle.len() < self.max_idle {
                idle.push(conn);
            }
        }
        result
    }
}
