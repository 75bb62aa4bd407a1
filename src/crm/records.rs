//! The update and delete paths every owned record shares: lock the row the caller may
//! see, check the expected version, let the caller edit the writable representation,
//! rebuild and check the row exactly as on create, save with the version check.

use chrono::NaiveDateTime;

use crate::auth::Caller;
use crate::error::AppResult;
use crate::storage::{self, check_version, DbConn, Stamped, Visible};

/// For an update: the stored row with the next version and `updated_*` set. For a
/// create: a fresh row from `fresh(new_id, now)`.
pub fn stamp_new_or_next<T: Stamped>(
    base: Option<T>,
    caller: &Caller,
    fresh: impl FnOnce(String, NaiveDateTime) -> T,
) -> T {
    let now = storage::now();
    match base {
        Some(mut row) => {
            row.stamp_next(&caller.user_id, now);
            row
        }
        None => fresh(storage::new_id(), now),
    }
}

/// For an update that rewrites the stored row in place: a copy of it at the next
/// version, changed by `caller` now. Not found when there is no stored row (a create).
pub fn restamped<T: Stamped + Clone>(current: Option<&T>, caller: &Caller) -> AppResult<T> {
    let mut row = current.cloned().ok_or(crate::error::AppError::NotFound)?;
    row.stamp_next(&caller.user_id, storage::now());
    Ok(row)
}

/// The usual `save` of [`Ops`]: the rebuilt row written whole at its next version.
pub fn save_whole<R: Stamped>(conn: &mut DbConn, _: &Caller, _: &R, row: &R) -> AppResult<()> {
    Ok(row.save(conn)?)
}

/// How one kind of record is shown as input, rebuilt and saved (it is locked by
/// [`Visible::lock_visible`]).
pub struct Ops<R, I> {
    pub input_of: fn(&R) -> I,
    pub build: fn(&mut DbConn, &Caller, &I, Option<&R>) -> AppResult<R>,
    /// Saves the rebuilt row (second) over the stored one (first), which it was built from.
    pub save: fn(&mut DbConn, &Caller, &R, &R) -> AppResult<()>,
}

/// Updates a visible record: `edit` turns its current input into the new one (a merge
/// patch over HTTP, a file's row in an import), which is then checked like a create.
pub fn update<R: Stamped + Visible, I>(
    conn: &mut DbConn,
    caller: &Caller,
    id: &str,
    expected_version: Option<i32>,
    edit: impl FnOnce(I) -> AppResult<I>,
    ops: &Ops<R, I>,
) -> AppResult<R> {
    let current = R::lock_visible(conn, &caller.visibility(), id)?;
    check_version(expected_version, current.version())?;
    let input = edit((ops.input_of)(&current))?;
    let row = (ops.build)(conn, caller, &input, Some(&current))?;
    (ops.save)(conn, caller, &current, &row)?;
    Ok(row)
}

/// Deletes a visible record at the expected version; `remove` checks what must hold
/// (for this caller) and deletes.
pub fn delete<R: Stamped + Visible>(
    conn: &mut DbConn,
    caller: &Caller,
    id: &str,
    expected_version: Option<i32>,
    remove: fn(&mut DbConn, &Caller, &R) -> AppResult<()>,
) -> AppResult<()> {
    let current = R::lock_visible(conn, &caller.visibility(), id)?;
    check_version(expected_version, current.version())?;
    remove(conn, caller, &current)
}
