//! One small SQL interface over the two databases the fleet backend runs on: SQLite (embedded,
//! the default: one file in the OEM's working directory) and PostgreSQL (several ingest nodes
//! on one server). Every statement of the backend is written once, in the SQL both accept
//! (`$1`-style parameters, `ON CONFLICT`, `BIGINT` and `TEXT` columns only), and runs through
//! [`Tx`]; only opening, pragmas and the migration lock differ.

use crate::error::{FleetError, Result};
use std::path::{Path, PathBuf};

/// A parameter or a column value. Only the types the schema uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    Null,
    Int(i64),
    Text(String),
}

impl Value {
    pub fn int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }
    pub fn text(&self) -> Option<&str> {
        match self {
            Value::Text(s) => Some(s),
            _ => None,
        }
    }
    /// A column known to hold text (empty when NULL).
    pub fn into_text(self) -> String {
        match self {
            Value::Text(s) => s,
            Value::Int(i) => i.to_string(),
            Value::Null => String::new(),
        }
    }
}

impl From<i64> for Value {
    fn from(i: i64) -> Self {
        Value::Int(i)
    }
}
impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::Text(s.to_string())
    }
}
impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::Text(s)
    }
}
impl From<&String> for Value {
    fn from(s: &String) -> Self {
        Value::Text(s.clone())
    }
}
impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Self {
        v.map_or(Value::Null, Into::into)
    }
}

/// A counter or version as stored (SQL has no unsigned integers): values above `i64::MAX` are
/// refused before they reach the database.
pub fn int(n: u64, what: &str) -> Result<Value> {
    i64::try_from(n)
        .map(Value::Int)
        .map_err(|_| FleetError::Malformed(format!("{what} {n} is out of range")))
}

/// Statements inside one transaction.
pub trait Tx {
    /// Run a statement; the number of rows it changed.
    fn exec(&mut self, sql: &str, params: &[Value]) -> Result<u64>;
    /// Run a query; its rows.
    fn rows(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Vec<Value>>>;
    /// The first row of a query, if any.
    fn row(&mut self, sql: &str, params: &[Value]) -> Result<Option<Vec<Value>>> {
        Ok(self.rows(sql, params)?.into_iter().next())
    }
    /// A query answering one integer (a count).
    fn count(&mut self, sql: &str, params: &[Value]) -> Result<i64> {
        Ok(self
            .row(sql, params)?
            .and_then(|r| r.first().and_then(Value::int))
            .unwrap_or(0))
    }
}

/// Where the reports live.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
    /// An SQLite file (made, mode 0600, when absent).
    Sqlite(PathBuf),
    /// A PostgreSQL connection string (`postgres://user@host:port/db` or key=value form).
    /// Without TLS: connect over a Unix socket or loopback (a local server, or a tunnel).
    Postgres(String),
}

impl Location {
    /// `postgres://…` / `postgresql://…` or `sqlite:PATH`, or a plain path (SQLite).
    pub fn parse(s: &str) -> Location {
        if s.starts_with("postgres://") || s.starts_with("postgresql://") {
            Location::Postgres(s.to_string())
        } else {
            Location::Sqlite(PathBuf::from(s.strip_prefix("sqlite:").unwrap_or(s)))
        }
    }
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::Sqlite(p) => write!(f, "sqlite:{}", p.display()),
            // The user name and host, never a password.
            Location::Postgres(url) => {
                let shown = match url.split_once("://") {
                    Some((scheme, rest)) => {
                        let host = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
                        let user = rest
                            .rsplit_once('@')
                            .map(|(u, _)| u.split(':').next().unwrap_or(""))
                            .filter(|u| !u.is_empty())
                            .map(|u| format!("{u}@"))
                            .unwrap_or_default();
                        format!("{scheme}://{user}{host}")
                    }
                    None => "postgres".into(),
                };
                f.write_str(&shown)
            }
        }
    }
}

/// An open database.
pub enum Db {
    Sqlite(rusqlite::Connection),
    /// The client, and the statements prepared on it (a statement is parsed once per
    /// connection, not once per use: half the round trips of an ingest).
    Postgres(Box<(postgres::Client, StatementCache)>),
}

type StatementCache = std::collections::HashMap<String, postgres::Statement>;

impl Db {
    /// Open (and for SQLite create) the database, and bring its schema up to date.
    pub fn open(at: &Location) -> Result<Db> {
        let mut db = match at {
            Location::Sqlite(path) => Db::Sqlite(open_sqlite(path)?),
            Location::Postgres(url) => Db::Postgres(Box::new((
                postgres::Client::connect(url, postgres::NoTls)
                    .map_err(|e| FleetError::db(at, e))?,
                StatementCache::new(),
            ))),
        };
        crate::schema::migrate(&mut db, at)?;
        Ok(db)
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self, Db::Postgres(_))
    }

    /// Run `f` in one transaction: committed when it returns `Ok`, rolled back otherwise.
    pub fn transaction<T>(&mut self, f: impl FnOnce(&mut dyn Tx) -> Result<T>) -> Result<T> {
        match self {
            Db::Sqlite(c) => {
                let mut tx = c
                    .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                    .map_err(FleetError::sqlite)?;
                let out = f(&mut SqliteTx(&mut tx))?;
                tx.commit().map_err(FleetError::sqlite)?;
                Ok(out)
            }
            Db::Postgres(pg) => {
                let (c, cache) = &mut **pg;
                let mut tx = c.transaction().map_err(FleetError::postgres)?;
                let out = f(&mut PgTx(&mut tx, cache))?;
                tx.commit().map_err(FleetError::postgres)?;
                Ok(out)
            }
        }
    }
}

fn open_sqlite(path: &Path) -> Result<rusqlite::Connection> {
    let io = |e: std::io::Error| FleetError::Io {
        path: path.to_path_buf(),
        source: e,
    };
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => {
            return Err(FleetError::Refused(format!(
                "{}: a symbolic link; the report database must be a regular file",
                path.display()
            )))
        }
        Ok(m) if !m.is_file() => {
            return Err(FleetError::Refused(format!(
                "{}: not a regular file",
                path.display()
            )))
        }
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(e)),
    }
    let fresh = !path.exists();
    if fresh {
        // Made private before SQLite writes a byte: reports name vehicles.
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| FleetError::Io {
                path: path.to_path_buf(),
                source: e,
            })?;
    }
    // A path, never an SQLite URI (`file:…?mode=memory`): reports must reach the disk.
    let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE
        | rusqlite::OpenFlags::SQLITE_OPEN_CREATE
        | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let c = rusqlite::Connection::open_with_flags(path, flags).map_err(FleetError::sqlite)?;
    // WAL: readers (queries, `oem assign`) never wait for the ingest writer. FULL: a report
    // answered 200 survives a power cut (the writer batches reports, so one fsync serves
    // many).
    c.pragma_update(None, "journal_mode", "WAL")
        .map_err(FleetError::sqlite)?;
    c.pragma_update(None, "synchronous", "FULL")
        .map_err(FleetError::sqlite)?;
    c.busy_timeout(std::time::Duration::from_secs(30))
        .map_err(FleetError::sqlite)?;
    Ok(c)
}

struct SqliteTx<'a, 'c>(&'a mut rusqlite::Transaction<'c>);

/// PostgreSQL's `$N` parameters as SQLite's `?N`: SQLite reads `$N` as a *named* parameter
/// numbered by first appearance, so `… $2 … $1` would bind them swapped.
fn sqlite_params(sql: &str) -> std::borrow::Cow<'_, str> {
    let bytes = sql.as_bytes();
    let numbered = |i: usize| bytes.get(i + 1).is_some_and(u8::is_ascii_digit);
    if !(0..bytes.len()).any(|i| bytes[i] == b'$' && numbered(i)) {
        return std::borrow::Cow::Borrowed(sql);
    }
    // '$' and digits are ASCII: replacing one ASCII byte by another keeps the text UTF-8.
    let out: Vec<u8> = bytes
        .iter()
        .enumerate()
        .map(|(i, &b)| if b == b'$' && numbered(i) { b'?' } else { b })
        .collect();
    let out = String::from_utf8(out).unwrap_or_else(|_| sql.to_string());
    std::borrow::Cow::Owned(out)
}

impl rusqlite::ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, ValueRef};
        Ok(match self {
            Value::Null => ToSqlOutput::Borrowed(ValueRef::Null),
            Value::Int(i) => ToSqlOutput::Borrowed(ValueRef::Integer(*i)),
            Value::Text(s) => ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes())),
        })
    }
}

impl Tx for SqliteTx<'_, '_> {
    fn exec(&mut self, sql: &str, params: &[Value]) -> Result<u64> {
        let mut st = self
            .0
            .prepare_cached(&sqlite_params(sql))
            .map_err(FleetError::sqlite)?;
        let n = st
            .execute(rusqlite::params_from_iter(params))
            .map_err(FleetError::sqlite)?;
        Ok(n as u64)
    }

    fn rows(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Vec<Value>>> {
        use rusqlite::types::ValueRef;
        let mut st = self
            .0
            .prepare_cached(&sqlite_params(sql))
            .map_err(FleetError::sqlite)?;
        let width = st.column_count();
        let mut rows = st
            .query(rusqlite::params_from_iter(params))
            .map_err(FleetError::sqlite)?;
        let mut out = Vec::new();
        while let Some(r) = rows.next().map_err(FleetError::sqlite)? {
            let mut row = Vec::with_capacity(width);
            for i in 0..width {
                row.push(match r.get_ref(i).map_err(FleetError::sqlite)? {
                    ValueRef::Integer(n) => Value::Int(n),
                    ValueRef::Text(t) => Value::Text(String::from_utf8_lossy(t).into_owned()),
                    _ => Value::Null,
                });
            }
            out.push(row);
        }
        Ok(out)
    }
}

struct PgTx<'a, 'c>(&'a mut postgres::Transaction<'c>, &'a mut StatementCache);

impl postgres::types::ToSql for Value {
    fn to_sql(
        &self,
        ty: &postgres::types::Type,
        out: &mut bytes::BytesMut,
    ) -> std::result::Result<postgres::types::IsNull, Box<dyn std::error::Error + Sync + Send>>
    {
        use postgres::types::{IsNull, Type};
        match self {
            Value::Null => Ok(IsNull::Yes),
            Value::Int(i) if *ty == Type::INT4 => i32::try_from(*i)?.to_sql(ty, out),
            Value::Int(i) => i.to_sql(ty, out),
            Value::Text(s) => s.as_str().to_sql(ty, out),
        }
    }

    fn accepts(ty: &postgres::types::Type) -> bool {
        use postgres::types::Type;
        [
            Type::INT8,
            Type::INT4,
            Type::TEXT,
            Type::VARCHAR,
            Type::BPCHAR,
        ]
        .contains(ty)
    }

    postgres::types::to_sql_checked!();
}

impl PgTx<'_, '_> {
    fn statement(&mut self, sql: &str) -> Result<postgres::Statement> {
        if let Some(st) = self.1.get(sql) {
            return Ok(st.clone());
        }
        let st = self.0.prepare(sql).map_err(FleetError::postgres)?;
        self.1.insert(sql.to_string(), st.clone());
        Ok(st)
    }

    fn params(params: &[Value]) -> Vec<&(dyn postgres::types::ToSql + Sync)> {
        params
            .iter()
            .map(|p| p as &(dyn postgres::types::ToSql + Sync))
            .collect()
    }
}

impl Tx for PgTx<'_, '_> {
    fn exec(&mut self, sql: &str, params: &[Value]) -> Result<u64> {
        let st = self.statement(sql)?;
        self.0
            .execute(&st, &Self::params(params))
            .map_err(FleetError::postgres)
    }

    fn rows(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Vec<Value>>> {
        use postgres::types::Type;
        let st = self.statement(sql)?;
        let rows = self
            .0
            .query(&st, &Self::params(params))
            .map_err(FleetError::postgres)?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let mut row = Vec::with_capacity(r.len());
            for (i, col) in r.columns().iter().enumerate() {
                let v = match *col.type_() {
                    Type::INT8 => r
                        .try_get::<_, Option<i64>>(i)
                        .map_err(FleetError::postgres)?
                        .map(Value::Int),
                    Type::INT4 => r
                        .try_get::<_, Option<i32>>(i)
                        .map_err(FleetError::postgres)?
                        .map(|n| Value::Int(n.into())),
                    Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME => r
                        .try_get::<_, Option<String>>(i)
                        .map_err(FleetError::postgres)?
                        .map(Value::Text),
                    // No statement reads another type (`void` of a lock function, say).
                    _ => None,
                };
                row.push(v.unwrap_or(Value::Null));
            }
            out.push(row);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::sqlite_params;

    #[test]
    fn postgres_parameters_become_numbered_sqlite_ones() {
        assert_eq!(
            sqlite_params("SELECT $2, $1 WHERE a = '$' AND b = $10"),
            "SELECT ?2, ?1 WHERE a = '$' AND b = ?10"
        );
        assert_eq!(sqlite_params("SELECT 1"), "SELECT 1");
    }
}
