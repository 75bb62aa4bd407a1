//! Reads run on the backend's own connection.
//!
//! [`DbConn`] speaks to either database through diesel's multi-backend wrapper, which
//! renders a query to SQL text on every pass over it (once to ask whether its prepared
//! statement may be cached, once more to collect its bind values), even when the
//! prepared statement is already cached. A query whose parts all exist for both
//! backends (every query built from the schema, [`super::sql::key`] and the typed ids
//! and columns) can skip that and run on the `PgConnection` or `SqliteConnection`
//! inside, where a cached statement is found by the query's type alone. The statement
//! and its result are the same; the read on the request path (the caller's user row,
//! then the record) costs about an eighth less CPU that way.

use diesel::pg::{Pg, PgConnection};
use diesel::query_dsl::LoadQuery;
use diesel::sqlite::SqliteConnection;
use diesel::{OptionalExtension, QueryResult, RunQueryDsl, Selectable};

use super::DbConn;

/// `get_result(..).optional()` on the backend's own connection.
pub trait NativeRead: Sized {
    /// The row the query selects, if there is one.
    fn maybe_one<'q, R>(self, conn: &mut DbConn) -> QueryResult<Option<R>>
    where
        Self: RunQueryDsl<PgConnection> + RunQueryDsl<SqliteConnection>,
        Self: LoadQuery<'q, PgConnection, R> + LoadQuery<'q, SqliteConnection, R>,
    {
        match conn {
            DbConn::Pg(c) => RunQueryDsl::<PgConnection>::get_result(self, c),
            DbConn::Sqlite(c) => RunQueryDsl::<SqliteConnection>::get_result(self, c),
        }
        .optional()
    }
}

impl<Q> NativeRead for Q {}

/// The columns of row type `T`, in its field order, as a selection both backends can run
/// (what `T::as_select()` selects, without naming a backend).
pub fn columns<T: Selectable<Pg>>() -> T::SelectExpression {
    T::construct_selection()
}
