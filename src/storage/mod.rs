//! Storage: one diesel connection type over PostgreSQL and SQLite, the pool, write
//! transactions, migrations. Repositories live in one file per resource.

pub mod accounts;
pub mod activities;
pub mod aggregates;
pub mod api_keys;
pub mod batch;
pub mod capture;
pub mod checkout;
pub mod clock;
pub mod held;
pub mod idempotency;
pub mod import_jobs;
pub mod imports;
pub mod leads;
pub mod native;
pub mod opportunities;
pub mod pipelines;
pub mod repo;
pub mod schema;
pub mod scoring;
pub mod settings;
pub mod sql;
pub mod teams;
pub mod types;
pub mod uid;
pub mod users;
pub mod versioned;
pub mod visibility;
pub mod webhooks;

pub use versioned::check_version;

use diesel::connection::SimpleConnection;
use diesel::connection::{AnsiTransactionManager, TransactionManager};
use diesel::prelude::*;
use diesel::r2d2::{CustomizeConnection, ManageConnection, Pool, PooledConnection, R2D2Connection};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

use crate::error::{AppError, AppResult};
pub use native::NativeRead;
pub use repo::{Lock, Repo, Visible};
pub use versioned::Stamped;

pub const PG_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");
pub const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");

/// Why the database could not be opened or brought up to date at start.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("cannot create {dir:?}")]
    CreateDir {
        dir: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The driver's own reason is the source (refused, bad URL, TLS).
    #[error("cannot connect to the {backend} database")]
    Connect {
        backend: &'static str,
        #[source]
        source: diesel::ConnectionError,
    },
    #[error("cannot connect to the database")]
    Pool(#[source] diesel::r2d2::PoolError),
    #[error("cannot read SQLite settings")]
    SqliteSettings(#[source] diesel::result::Error),
    #[error("SQLite kept journal mode {mode:?} instead of WAL for {path}")]
    NotWal { mode: String, path: String },
    #[error("migrations failed")]
    Migrations(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("reading the server settings failed")]
    Settings(#[source] diesel::result::Error),
    #[error("rebuilding the report aggregates failed")]
    RebuildAggregates(#[source] AppError),
    #[error("vacuuming the report aggregates failed")]
    SettleAggregates(#[source] AppError),
}

/// A connection to whichever backend the database URL names.
#[derive(diesel::MultiConnection)]
pub enum DbConn {
    Pg(PgConnection),
    Sqlite(SqliteConnection),
}

pub type Db = <DbConn as Connection>::Backend;
pub type DbPool = Pool<Manager>;
pub type PooledConn = PooledConnection<Manager>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    Sqlite,
}

/// What a repository reports when it cannot do what was asked, before anyone decides
/// what a client hears (`From<StorageError> for AppError` makes that decision).
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("not found")]
    NotFound,
    /// A conditional write found another version stored: `current`.
    #[error("version conflict (current {current})")]
    VersionConflict { current: i32 },
    #[error("database: {0}")]
    Database(#[from] diesel::result::Error),
    #[error("database pool: {0}")]
    Pool(#[from] diesel::r2d2::PoolError),
}

impl From<StorageError> for AppError {
    fn from(err: StorageError) -> Self {
        match err {
            StorageError::NotFound => AppError::NotFound,
            StorageError::VersionConflict { current } => AppError::VersionConflict { current },
            StorageError::Database(e) => e.into(),
            StorageError::Pool(e) => e.into(),
        }
    }
}

/// Opens connections to the backend the URL names. diesel's multi-backend `establish`
/// tries each backend in turn and reports only that none worked; this one hands on the
/// driver's own reason (refused connection, bad URL option, TLS failure, …).
#[derive(Debug, Clone)]
pub struct Manager {
    backend: Backend,
    url: String,
}

impl Manager {
    pub fn new(database_url: &str) -> Self {
        let (backend, url) = driver_url(database_url);
        Manager { backend, url }
    }

    pub fn establish(&self) -> ConnectionResult<DbConn> {
        match self.backend {
            Backend::Postgres => PgConnection::establish(&self.url).map(DbConn::Pg),
            Backend::Sqlite => SqliteConnection::establish(&self.url).map(DbConn::Sqlite),
        }
    }
}

impl ManageConnection for Manager {
    type Connection = DbConn;
    type Error = diesel::r2d2::Error;

    fn connect(&self) -> Result<DbConn, Self::Error> {
        self.establish()
            .map_err(diesel::r2d2::Error::ConnectionError)
    }

    fn is_valid(&self, conn: &mut DbConn) -> Result<(), Self::Error> {
        conn.ping().map_err(diesel::r2d2::Error::QueryError)
    }

    fn has_broken(&self, conn: &mut DbConn) -> bool {
        std::thread::panicking() || conn.is_broken()
    }
}

/// Turns `sqlite://path` into the path SQLite's driver expects; PostgreSQL URLs pass through.
pub fn driver_url(url: &str) -> (Backend, String) {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        (Backend::Postgres, url.to_owned())
    } else {
        let path = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .unwrap_or(url);
        (Backend::Sqlite, path.to_owned())
    }
}

/// Per-connection settings. SQLite: WAL for readers beside a writer, a busy timeout so
/// writers queue instead of failing, and foreign keys (off by default in SQLite).
/// PostgreSQL: no JIT and a larger `work_mem` for the report queries.
#[derive(Debug)]
struct SessionSettings;

impl CustomizeConnection<DbConn, diesel::r2d2::Error> for SessionSettings {
    fn on_acquire(&self, conn: &mut DbConn) -> Result<(), diesel::r2d2::Error> {
        if let DbConn::Pg(c) = conn {
            // Report queries are short analytical scans: JIT compilation costs more than
            // it saves on them, and their sorts and hashes should stay in memory.
            for setting in ["SET jit = off", "SET work_mem = '64MB'"] {
                diesel::sql_query(setting)
                    .execute(c)
                    .map_err(diesel::r2d2::Error::QueryError)?;
            }
        }
        if let DbConn::Sqlite(c) = conn {
            // One pragma per statement: a prepared statement runs only the first of
            // several, which once left the database in rollback-journal mode.
            for pragma in [
                "PRAGMA busy_timeout = 10000",
                "PRAGMA journal_mode = WAL",
                "PRAGMA synchronous = NORMAL",
                "PRAGMA foreign_keys = ON",
            ] {
                c.batch_execute(pragma)
                    .map_err(diesel::r2d2::Error::QueryError)?;
            }
        }
        Ok(())
    }
}

/// The SQLite settings a connection actually runs with, read back after they were set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqliteSettings {
    pub journal_mode: String,
    pub synchronous: i32,
    pub foreign_keys: i32,
    pub busy_timeout: i32,
}

pub fn sqlite_settings(conn: &mut SqliteConnection) -> QueryResult<SqliteSettings> {
    #[derive(QueryableByName)]
    struct Text {
        #[diesel(sql_type = diesel::sql_types::Text)]
        v: String,
    }
    #[derive(QueryableByName)]
    struct Int {
        #[diesel(sql_type = diesel::sql_types::Integer)]
        v: i32,
    }
    let int = |conn: &mut SqliteConnection, name: &str| {
        diesel::sql_query(format!("SELECT {name} AS v FROM pragma_{name}"))
            .get_result::<Int>(conn)
            .map(|r| r.v)
    };
    Ok(SqliteSettings {
        journal_mode: diesel::sql_query("SELECT journal_mode AS v FROM pragma_journal_mode")
            .get_result::<Text>(conn)?
            .v,
        synchronous: int(conn, "synchronous")?,
        foreign_keys: int(conn, "foreign_keys")?,
        busy_timeout: diesel::sql_query("SELECT timeout AS v FROM pragma_busy_timeout")
            .get_result::<Int>(conn)?
            .v,
    })
}

/// Refuses to run a file database without WAL: readers would block writers.
fn check_sqlite(conn: &mut DbConn, path: &str) -> Result<(), SetupError> {
    let DbConn::Sqlite(c) = conn else {
        return Ok(());
    };
    let settings = sqlite_settings(c).map_err(SetupError::SqliteSettings)?;
    tracing::info!(
        journal_mode = %settings.journal_mode,
        synchronous = settings.synchronous,
        foreign_keys = settings.foreign_keys,
        busy_timeout_ms = settings.busy_timeout,
        "SQLite database {path}"
    );
    let in_memory = path == ":memory:" || path.contains("mode=memory");
    if !in_memory && settings.journal_mode != "wal" {
        return Err(SetupError::NotWal {
            mode: settings.journal_mode,
            path: path.to_owned(),
        });
    }
    Ok(())
}

/// Builds the pool and runs the embedded migrations of the backend.
pub fn connect(url: &str, size: u32) -> Result<(DbPool, Backend), SetupError> {
    let (backend, driver) = driver_url(url);
    if backend == Backend::Sqlite {
        if let Some(dir) = std::path::Path::new(&driver).parent() {
            if !dir.as_os_str().is_empty() && driver != ":memory:" {
                std::fs::create_dir_all(dir).map_err(|source| SetupError::CreateDir {
                    dir: dir.to_owned(),
                    source,
                })?;
            }
        }
    }
    let manager = Manager::new(url);
    // One connection first, so a refused connection, a bad URL or a TLS failure is
    // reported as the driver states it (the pool would only say it timed out).
    let mut first = manager.establish().map_err(|source| SetupError::Connect {
        backend: match backend {
            Backend::Postgres => "PostgreSQL",
            Backend::Sqlite => "SQLite",
        },
        source,
    })?;
    // It also turns a new SQLite file to WAL, which is kept in the file: the pool opens
    // its connections side by side, and several switching one new file at once found it
    // locked (and logged so) until one had won.
    if let DbConn::Sqlite(c) = &mut first {
        c.batch_execute("PRAGMA journal_mode = WAL")
            .map_err(SetupError::SqliteSettings)?;
    }
    drop(first);
    let pool = Pool::builder()
        .max_size(size.max(1))
        .connection_timeout(std::time::Duration::from_secs(10))
        .connection_customizer(Box::new(SessionSettings))
        // Probing is `checkout`'s, and only after the connection idled.
        .test_on_check_out(false)
        .build(manager)
        .map_err(SetupError::Pool)?;
    let mut conn = pool.get().map_err(SetupError::Pool)?;
    check_sqlite(&mut conn, &driver)?;
    run_migrations(&mut conn)?;
    aggregates::catch_up(&mut conn)?;
    Ok((pool, backend))
}

pub fn run_migrations(conn: &mut DbConn) -> Result<(), SetupError> {
    let applied = match conn {
        DbConn::Pg(c) => c.run_pending_migrations(PG_MIGRATIONS).map(|v| v.len()),
        DbConn::Sqlite(c) => c.run_pending_migrations(SQLITE_MIGRATIONS).map(|v| v.len()),
    }
    .map_err(SetupError::Migrations)?;
    if applied > 0 {
        tracing::info!(applied, "database migrations applied");
    }
    Ok(())
}

/// Runs `f` in a write transaction. On SQLite it begins with `BEGIN IMMEDIATE`, so the
/// write lock is taken up front: a deferred transaction that reads and then writes can
/// fail with SQLITE_BUSY when another writer got there first.
pub fn write_tx<T, E, F>(conn: &mut DbConn, f: F) -> Result<T, E>
where
    F: FnOnce(&mut DbConn) -> Result<T, E>,
    E: From<diesel::result::Error>,
{
    let DbConn::Sqlite(sqlite) = conn else {
        return conn.transaction(f);
    };
    AnsiTransactionManager::begin_transaction_sql(sqlite, "BEGIN IMMEDIATE")?;
    match f(conn) {
        Ok(value) => {
            <DbConn as Connection>::TransactionManager::commit_transaction(conn)?;
            Ok(value)
        }
        Err(err) => {
            if let Err(rollback) =
                <DbConn as Connection>::TransactionManager::rollback_transaction(conn)
            {
                tracing::error!(error = %rollback, "rollback failed");
            }
            Err(err)
        }
    }
}

/// Runs blocking database work on the blocking pool with a pooled connection (the
/// request's own one inside [`held::one_connection`]).
pub async fn run<T, F>(pool: &DbPool, f: F) -> AppResult<T>
where
    F: FnOnce(&mut DbConn) -> AppResult<T> + Send + 'static,
    T: Send + 'static,
{
    let held = held::take();
    let keep = held.is_some();
    on_blocking_pool(pool, held.flatten(), keep, f).await
}

/// Runs `f` on the blocking pool with `conn` (else one from the pool), leaving the
/// connection with the request afterwards when `keep`.
async fn on_blocking_pool<T, F>(
    pool: &DbPool,
    conn: Option<PooledConn>,
    keep: bool,
    f: F,
) -> AppResult<T>
where
    F: FnOnce(&mut DbConn) -> AppResult<T> + Send + 'static,
    T: Send + 'static,
{
    let pool = pool.clone();
    let clock = clock::current();
    // tokio's blocking pool, the same one the web framework's own blocking helper uses.
    let (result, conn) = tokio::task::spawn_blocking(move || {
        clock::enter(clock, move || {
            let mut conn = match conn {
                Some(conn) => conn,
                None => match checkout::checkout(&pool) {
                    Ok(conn) => conn,
                    Err(e) => return (Err(e.into()), None),
                },
            };
            let result = f(&mut conn);
            checkout::mark_used(&mut conn);
            (result, Some(conn))
        })
    })
    .await
    // The blocking task panicked or was cancelled.
    .map_err(|e| AppError::Internal(format!("blocking task: {e}")))?;
    if let Some(conn) = conn.filter(|_| keep) {
        held::keep(conn);
    }
    result
}

/// Like [`run`], for a few primary-key reads (the credential's user row, one record).
/// On SQLite in WAL mode such a read takes microseconds and never waits for a writer,
/// less than the two thread switches of a trip to the blocking pool, so it runs right
/// here when a connection is at hand (held by the request or free in the pool without
/// waiting). Anything that may write or scan, and every PostgreSQL query (a network round
/// trip), goes through [`run`].
///
/// A point read is also the first statement of every request (the credential's user
/// row), so it is where a PostgreSQL connection that died within the probe-free window
/// (see [`checkout`]) shows: when `f` fails and leaves the connection broken, the read
/// runs once more on a freshly checked-out connection, and the dead one goes back to be
/// discarded. A read changes nothing, so running it twice is safe.
pub async fn run_point_read<T, F>(pool: &DbPool, backend: Backend, f: F) -> AppResult<T>
where
    F: Fn(&mut DbConn) -> AppResult<T> + Send + 'static,
    T: Send + 'static,
{
    let held = held::take();
    let keep = held.is_some();
    let conn = match held {
        Some(Some(conn)) => Some(conn),
        // A PostgreSQL checkout probes the connection over the network: not here.
        _ if backend == Backend::Sqlite => checkout::try_checkout(pool),
        _ => None,
    };
    match conn {
        Some(mut conn) if matches!(*conn, DbConn::Sqlite(_)) => {
            let result = clock::enter(clock::current(), || f(&mut conn));
            if keep {
                held::keep(conn);
            }
            result
        }
        // The connection in hand goes along, so it is not checked out twice.
        other => {
            let spare = pool.clone();
            let read_again_if_dead = move |conn: &mut DbConn| match f(conn) {
                Err(_) if matches!(conn, DbConn::Pg(_)) && conn.is_broken() => {
                    let mut fresh = checkout::checkout_probed(&spare)?;
                    // The live connection takes the place of the dead one, which leaves
                    // with `fresh` and is discarded by the pool (it is broken).
                    std::mem::swap(conn, &mut *fresh);
                    f(conn)
                }
                result => result,
            };
            on_blocking_pool(pool, other, keep, read_again_if_dead).await
        }
    }
}

/// Like [`run`], inside a write transaction.
pub async fn run_tx<T, F>(pool: &DbPool, f: F) -> AppResult<T>
where
    F: FnOnce(&mut DbConn) -> AppResult<T> + Send + 'static,
    T: Send + 'static,
{
    run(pool, move |conn| write_tx(conn, f)).await
}

/// Lets the current transaction commit without waiting for its WAL to reach the disk
/// (PostgreSQL's `synchronous_commit = off`, for this transaction only). A crash may
/// lose such a commit, never half of it; the next synchronous commit makes it durable.
/// Bulk writers use it for all but their last transaction. SQLite: nothing to do.
pub fn commit_without_waiting(conn: &mut DbConn) -> AppResult<()> {
    if let DbConn::Pg(_) = conn {
        diesel::sql_query("SET LOCAL synchronous_commit = off").execute(conn)?;
    }
    Ok(())
}

/// Fresh planner statistics for `tables`. A bulk write into a table the planner last saw
/// small would otherwise be planned with sequential scans; run it as the table grows.
pub fn analyze(conn: &mut DbConn, tables: &[&str]) -> AppResult<()> {
    for table in tables {
        diesel::sql_query(format!("ANALYZE {table}")).execute(conn)?;
    }
    Ok(())
}

/// True when the error is a unique-constraint violation (used to turn races on unique
/// keys into a clean 409 rather than a 500).
pub fn is_unique_violation(err: &diesel::result::Error) -> bool {
    matches!(
        err,
        diesel::result::Error::DatabaseError(diesel::result::DatabaseErrorKind::UniqueViolation, _)
    )
}

/// Current UTC time at microsecond precision (what both backends store).
/// The time to write now (microseconds): the request's clock (see [`clock`]), else the
/// system's.
pub fn now() -> chrono::NaiveDateTime {
    clock::now()
}

pub fn new_id<T: From<String>>() -> T {
    T::from(uuid::Uuid::now_v7().to_string())
}

/// Checks the database answers (readiness probe).
pub fn ping(conn: &mut DbConn) -> AppResult<()> {
    diesel::sql_query("SELECT 1")
        .execute(conn)
        .map(|_| ())
        .map_err(|e| AppError::Unavailable(format!("database: {e}")))
}

/// Where a keyset page starts: the sort value and id of the last row already seen.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct After {
    pub value: String,
    pub id: String,
}

/// One page request, already checked by the HTTP layer.
#[derive(Debug, Clone)]
pub struct PageRequest {
    pub limit: usize,
    /// Name of the sort column (without the `-`).
    pub sort: String,
    pub desc: bool,
    pub after: Option<After>,
}

pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<After>,
}

impl<T> Page<T> {
    /// `rows` was loaded with `limit + 1`; the extra row only says another page exists.
    pub fn from_rows(mut rows: Vec<T>, limit: usize, key: impl Fn(&T) -> After) -> Page<T> {
        let next = if rows.len() > limit {
            rows.truncate(limit);
            rows.last().map(key)
        } else {
            None
        };
        Page { items: rows, next }
    }

    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Page<U> {
        Page {
            items: self.items.into_iter().map(f).collect(),
            next: self.next,
        }
    }
}

/// Text form of a timestamp inside a cursor (sorts like the timestamp itself).
pub fn ts_key(t: &chrono::NaiveDateTime) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6f").to_string()
}

pub fn parse_ts_key(s: &str) -> AppResult<chrono::NaiveDateTime> {
    chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.6f").map_err(|_| invalid_cursor())
}

pub fn invalid_cursor() -> AppError {
    AppError::field(
        "cursor",
        "invalid_cursor",
        "the cursor is malformed or belongs to another sort order",
    )
}

/// Orders a boxed query by `(col, id)` and, when a cursor is given, keeps the rows after it.
///
/// A macro rather than a function: the query, the column and the cursor value are
/// different diesel types at each use (boxed queries of different tables, text and
/// timestamp columns, `COALESCE` expressions); a generic function would have to state
/// diesel's `filter`/`order` bounds for every combination.
macro_rules! keyset {
    ($query:expr, $col:expr, $id:expr, $desc:expr, $after:expr) => {{
        let q = $query;
        match ($desc, $after) {
            (false, None) => q.order(($col.asc(), $id.asc())),
            (true, None) => q.order(($col.desc(), $id.desc())),
            (false, Some((v, id))) => q
                .filter(
                    $col.gt(v.clone())
                        .or($col.eq(v).and($id.gt($crate::storage::uid::uid(id)))),
                )
                .order(($col.asc(), $id.asc())),
            (true, Some((v, id))) => q
                .filter(
                    $col.lt(v.clone())
                        .or($col.eq(v).and($id.lt($crate::storage::uid::uid(id)))),
                )
                .order(($col.desc(), $id.desc())),
        }
    }};
}

/// Like [`run_tx`], but with `dry_run` the transaction is rolled back after `f`
/// succeeds: the caller gets exactly the answer a real run would give, and nothing
/// is written.
pub async fn run_tx_maybe_dry<T, F>(pool: &DbPool, dry_run: bool, f: F) -> AppResult<T>
where
    F: FnOnce(&mut DbConn) -> AppResult<T> + Send + 'static,
    T: Send + 'static,
{
    enum Abort<T> {
        Failed(AppError),
        DryRun(T),
    }
    impl<T> From<diesel::result::Error> for Abort<T> {
        fn from(e: diesel::result::Error) -> Self {
            Abort::Failed(e.into())
        }
    }
    run(pool, move |conn| {
        let outcome = write_tx(conn, |c| match f(c) {
            Ok(v) if dry_run => Err(Abort::DryRun(v)),
            Ok(v) => Ok(v),
            Err(e) => Err(Abort::Failed(e)),
        });
        match outcome {
            Ok(v) | Err(Abort::DryRun(v)) => Ok(v),
            Err(Abort::Failed(e)) => Err(e),
        }
    })
    .await
}

/// Shared list filters: a `LIKE` pattern for case-insensitive substring search, and
/// one for a tag inside a JSON array of strings.
pub fn contains_pattern(text: &str) -> String {
    format!("%{}%", pipelines::escape_like(&text.to_lowercase()))
}

pub fn tag_pattern(tag: &str) -> String {
    let quoted = serde_json::to_string(tag).unwrap_or_default();
    format!("%{}%", pipelines::escape_like(&quoted))
}

/// A uniqueness conflict with the record `(id, owner_id)`. Its id is named only to a caller
/// who may see it; anyone else learns just that the value is taken, never which record
/// holds it.
pub fn duplicate(
    vis: &crate::storage::visibility::Visibility,
    (id, owner_id): (String, String),
    code: crate::error::ProblemCode,
    record: &str,
    field: &str,
) -> AppError {
    let visible = vis.allows(&owner_id);
    AppError::Conflict {
        code,
        detail: match visible {
            true => format!("{record} with the same {field} already exists."),
            false => format!("This {field} is already taken."),
        },
        existing_id: visible.then_some(id),
    }
}

// Crate-private: the crate root re-exports it so `crate::keyset!` resolves.
pub(crate) use keyset;
