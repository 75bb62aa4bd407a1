//! The operations every stored record shares, as traits with default methods: read by
//! id (optionally row-locked), insert, delete ([`Repo`]); the same reads narrowed to
//! what a caller may see ([`Visible`]); the versioned save is [`Stamped::save`].
//!
//! A record type implements the few statements that name its own table (written once
//! per table by `records!` below, because diesel cannot build `table.find(…)` for a table
//! that is only a type parameter: see `storage::versioned`); everything else is a
//! default method here, so `OpportunityRow::lock_visible(conn, &vis, id)` and its
//! documentation are one go-to-definition away.

use diesel::prelude::*;

use super::native::{columns, NativeRead};
use super::schema::webhook_subscriptions;
use super::schema::{accounts, activities, capture_sources, contacts, leads, opportunities};
use super::uid::uid;
use super::versioned::{save_if_version, Stamped};
use super::visibility::Visibility;
use super::{DbConn, StorageError};

/// Whether a read takes the row's lock (`FOR UPDATE` on PostgreSQL; SQLite write
/// transactions already hold the database's write lock).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lock {
    No,
    ForUpdate,
}

/// A record stored in one table under an id primary key.
pub trait Repo: Sized {
    /// Row `id`, if it exists. Per table.
    fn read(conn: &mut DbConn, id: &str, lock: Lock) -> QueryResult<Option<Self>>;
    /// Inserts the row. Per table.
    fn insert(&self, conn: &mut DbConn) -> QueryResult<usize>;
    /// Deletes row `id`; the number of rows deleted. Per table.
    fn delete_by_id(conn: &mut DbConn, id: &str) -> QueryResult<usize>;

    /// Row `id`, or not found.
    fn find(conn: &mut DbConn, id: &str) -> Result<Self, StorageError> {
        Self::read(conn, id, Lock::No)?.ok_or(StorageError::NotFound)
    }

    /// Row `id`, row-locked, or not found.
    fn lock(conn: &mut DbConn, id: &str) -> Result<Self, StorageError> {
        Self::read(conn, id, Lock::ForUpdate)?.ok_or(StorageError::NotFound)
    }

    fn insert_row(&self, conn: &mut DbConn) -> Result<(), StorageError> {
        self.insert(conn)?;
        Ok(())
    }

    /// Deletes row `id`; not found when there was none.
    fn delete(conn: &mut DbConn, id: &str) -> Result<(), StorageError> {
        match Self::delete_by_id(conn, id)? {
            0 => Err(StorageError::NotFound),
            _ => Ok(()),
        }
    }
}

/// A record some callers may not see. Someone who may not see it learns only that it
/// was not found, never that it exists.
pub trait Visible: Repo {
    /// Whether a caller who sees `vis` may see this row.
    fn visible_to(&self, conn: &mut DbConn, vis: &Visibility) -> QueryResult<bool>;

    /// The record, if the caller may see it.
    fn find_visible(conn: &mut DbConn, vis: &Visibility, id: &str) -> Result<Self, StorageError> {
        Self::read_visible(conn, vis, id, Lock::No)
    }

    /// The record, row-locked, if the caller may see it.
    fn lock_visible(conn: &mut DbConn, vis: &Visibility, id: &str) -> Result<Self, StorageError> {
        Self::read_visible(conn, vis, id, Lock::ForUpdate)
    }

    fn read_visible(
        conn: &mut DbConn,
        vis: &Visibility,
        id: &str,
        lock: Lock,
    ) -> Result<Self, StorageError> {
        match Self::read(conn, id, lock)? {
            Some(row) if row.visible_to(conn, vis)? => Ok(row),
            _ => Err(StorageError::NotFound),
        }
    }
}

/// A record with an owner: visible to its owner, the owner's manager and admins.
macro_rules! owned {
    ($($row:ty),*) => {$(
        impl Visible for $row {
            fn visible_to(&self, _: &mut DbConn, vis: &Visibility) -> QueryResult<bool> {
                Ok(vis.allows(&self.owner_id))
            }
        }
    )*};
}

/// [`Repo`] for rows of tables with an `id` primary key.
macro_rules! records {
    ($($row:ty => $table:ident),*) => {$(
        impl Repo for $row {
            fn read(conn: &mut DbConn, id: &str, lock: Lock) -> QueryResult<Option<Self>> {
                let query = $table::table.find(uid(id));
                match (conn, lock) {
                    (DbConn::Pg(pg), Lock::ForUpdate) => {
                        query.select(<$row>::as_select()).for_update().first(pg).optional()
                    }
                    (conn, _) => query.select(columns::<$row>()).maybe_one(conn),
                }
            }
            fn insert(&self, conn: &mut DbConn) -> QueryResult<usize> {
                diesel::insert_into($table::table).values(self.clone()).execute(conn)
            }
            fn delete_by_id(conn: &mut DbConn, id: &str) -> QueryResult<usize> {
                diesel::delete($table::table.find(uid(id))).execute(conn)
            }
        }
    )*};
}

/// [`Stamped`] for rows with `version` and `updated_at` (and `updated_by`, when named
/// after the table), saved whole through their `AsChangeset`.
macro_rules! stamped {
    ($($row:ty => $table:ident $(, $by:ident)?);* $(;)?) => {$(
        impl Stamped for $row {
            fn version(&self) -> i32 {
                self.version
            }
            fn stamp_next(&mut self, _actor: &str, now: chrono::NaiveDateTime) {
                self.version += 1;
                self.updated_at = now;
                $(self.$by = Some(_actor.into());)?
            }
            fn save(&self, conn: &mut DbConn) -> Result<(), StorageError> {
                save_if_version(conn, $table::table, &self.id, self.version - 1, |conn, target, next| {
                    diesel::update(target).set((self.clone(), next)).execute(conn)
                })
            }
        }
    )*};
}

use super::accounts::{AccountRow, ContactRow};
use super::activities::ActivityRow;
use super::capture::SourceRow;
use super::leads::LeadRow;
use super::opportunities::OpportunityRow;
use super::webhooks::SubscriptionRow;

records!(
    AccountRow => accounts,
    ContactRow => contacts,
    LeadRow => leads,
    OpportunityRow => opportunities,
    ActivityRow => activities,
    SourceRow => capture_sources,
    SubscriptionRow => webhook_subscriptions
);
stamped!(
    AccountRow => accounts, updated_by;
    ContactRow => contacts, updated_by;
    LeadRow => leads, updated_by;
    OpportunityRow => opportunities, updated_by;
    ActivityRow => activities, updated_by;
    SourceRow => capture_sources;
    SubscriptionRow => webhook_subscriptions;
);
owned!(AccountRow, ContactRow, LeadRow, OpportunityRow);

/// Capture sources and webhook subscriptions are managed by admins only: whoever the
/// handlers let through sees every one of them.
impl Visible for SourceRow {
    fn visible_to(&self, _: &mut DbConn, _: &Visibility) -> QueryResult<bool> {
        Ok(true)
    }
}

impl Visible for SubscriptionRow {
    fn visible_to(&self, _: &mut DbConn, _: &Visibility) -> QueryResult<bool> {
        Ok(true)
    }
}
