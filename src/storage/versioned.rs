//! Optimistic concurrency, in one place. Every mutable record has a `version`; a write
//! names the version it was based on and is an `UPDATE … WHERE id = ? AND version = ?`
//! that also bumps it, so two writers based on the same version cannot both succeed.
//! When the conditional statement touches nothing, the row's version is read back:
//! the answer is the version that is really stored, or not found, never a guess.

use diesel::dsl::{And, Eq, Filter};
use diesel::prelude::*;
use diesel::query_builder::IntoUpdateTarget;
use diesel::sql_types::Integer;

use super::schema::{accounts, activities, contacts, leads, opportunities, pipelines, stages};
use super::schema::{capture_sources, teams, users, webhook_subscriptions};
use super::{DbConn, StorageError};

/// A table whose rows have an id (`Uid`) primary key and an integer `version` column.
///
/// The statements that name the table's own columns are written once per table (by
/// `versioned_tables!` below). diesel cannot build them for a table that is only a type
/// parameter: its blanket query-builder impls for tables send the trait solver into
/// overflow, and a generic changeset cannot be proven to render on the multi-backend.
pub trait VersionedTable: Table + Default + Copy {
    type Version: Column<Table = Self, SqlType = Integer> + Default;
    /// The rows `id = ? AND version = ?`, as the target of an `UPDATE`.
    type Target: IntoUpdateTarget<Table = Self>;
    fn target(id: &str, version: i32) -> Self::Target;
    /// The stored version of row `id`, if the row exists.
    fn stored_version(conn: &mut DbConn, id: &str) -> QueryResult<Option<i32>>;
    /// `DELETE … WHERE id = ? AND version = ?`; the number of rows deleted.
    fn delete_if_version(conn: &mut DbConn, id: &str, version: i32) -> QueryResult<usize>;
}

/// `version = ?`, the assignment that moves a row to its next version.
pub type NextVersion<T> = Eq<<T as VersionedTable>::Version, i32>;

macro_rules! versioned_tables {
    ($($table:ident),*) => {$(
        impl VersionedTable for $table::table {
            type Version = $table::version;
            type Target = Filter<
                $table::table,
                And<Eq<$table::id, super::uid::Id>, Eq<$table::version, i32>>,
            >;
            fn target(id: &str, version: i32) -> Self::Target {
                $table::table.filter($table::id.eq(super::uid::uid(id)).and($table::version.eq(version)))
            }
            fn stored_version(conn: &mut DbConn, id: &str) -> QueryResult<Option<i32>> {
                $table::table.find($crate::storage::uid::uid(id)).select($table::version).first(conn).optional()
            }
            fn delete_if_version(conn: &mut DbConn, id: &str, version: i32) -> QueryResult<usize> {
                diesel::delete(Self::target(id, version)).execute(conn)
            }
        }
    )*};
}
versioned_tables!(
    accounts,
    activities,
    contacts,
    leads,
    opportunities,
    pipelines,
    stages,
    teams,
    users,
    capture_sources,
    webhook_subscriptions
);

/// Checks a client's `If-Match` (`expected`, when given) against the version of a row
/// already read (and, in a write transaction, locked). Absent means any version.
pub fn check_version(expected: Option<i32>, current: i32) -> Result<(), StorageError> {
    match expected {
        Some(v) if v != current => Err(StorageError::VersionConflict { current }),
        _ => Ok(()),
    }
}

/// The one conditional write. `write` is handed the target (row `id` at version
/// `expected`) and the assignment of version `expected + 1`, and runs
/// `diesel::update(target).set((<its columns>, next)).execute(conn)`, naming only the
/// columns it changes. When that touches no row, the stored version is read back.
pub fn save_if_version<T: VersionedTable>(
    conn: &mut DbConn,
    _table: T,
    id: &str,
    expected: i32,
    write: impl FnOnce(&mut DbConn, T::Target, NextVersion<T>) -> QueryResult<usize>,
) -> Result<(), StorageError> {
    let next = T::Version::default().eq(expected + 1);
    match write(conn, T::target(id, expected), next)? {
        0 => Err(lost::<T>(conn, id)?),
        _ => Ok(()),
    }
}

/// Deletes row `id` of `table` if its stored version is `expected`.
pub fn delete_if_version<T: VersionedTable>(
    conn: &mut DbConn,
    _table: T,
    id: &str,
    expected: i32,
) -> Result<(), StorageError> {
    match T::delete_if_version(conn, id, expected)? {
        0 => Err(lost::<T>(conn, id)?),
        _ => Ok(()),
    }
}

/// Why a conditional write touched nothing: the row is gone, or another version is stored.
fn lost<T: VersionedTable>(conn: &mut DbConn, id: &str) -> Result<StorageError, StorageError> {
    Ok(match T::stored_version(conn, id)? {
        Some(current) => StorageError::VersionConflict { current },
        None => StorageError::NotFound,
    })
}

/// A row saved whole (every column its `AsChangeset` writes, which leaves out `version`)
/// after [`Stamped::stamp_next`] moved it to the next version.
pub trait Stamped {
    fn version(&self) -> i32;
    /// Moves the row to the next version, changed by `actor` at `now`.
    fn stamp_next(&mut self, actor: &str, now: chrono::NaiveDateTime);
    /// Writes every column if the stored version is the one the row was read at
    /// (`version - 1`).
    fn save(&self, conn: &mut DbConn) -> Result<(), StorageError>;
}
