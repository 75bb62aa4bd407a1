//! The update and delete paths every owned CRM record shares: lock the row the caller
//! may see, check `If-Match`, apply the JSON merge patch to its writable representation,
//! rebuild and check the row exactly as on create, save with the version check.

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use super::extract::IfMatch;
use super::fields::patched;
use crate::auth::{Caller, Visibility};
use crate::error::AppResult;
use crate::state::AppState;
use crate::storage::{self, check_version, DbConn};

pub use crate::storage::versioned::Stamped;

/// For an update: the stored row with the next version and `updated_*` set. For a
/// create: a fresh row from `fresh(new_id, now)`.
pub fn stamp_new_or_next<T: Stamped>(
    base: Option<T>,
    caller: &Caller,
    fresh: impl FnOnce(String, chrono::NaiveDateTime) -> T,
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

/// How one resource is locked, shown as input, rebuilt and saved.
pub struct Ops<R, I> {
    pub lock: fn(&mut DbConn, &Visibility, &str) -> AppResult<R>,
    pub input_of: fn(&R) -> I,
    pub build: fn(&mut DbConn, &Caller, &I, Option<&R>) -> AppResult<R>,
    pub save: fn(&mut DbConn, &Caller, &R) -> AppResult<()>,
}

pub async fn patch_owned<R, I>(
    state: &AppState,
    caller: Caller,
    id: String,
    if_match: IfMatch,
    patch: Value,
    ops: Ops<R, I>,
) -> AppResult<R>
where
    R: Stamped + Send + 'static,
    I: Serialize + DeserializeOwned + 'static,
{
    storage::run_tx(&state.pool, move |conn| {
        let current = (ops.lock)(conn, &caller.visibility(), &id)?;
        check_version(if_match.0, current.version())?;
        let input = patched(&(ops.input_of)(&current), &patch)?;
        let row = (ops.build)(conn, &caller, &input, Some(&current))?;
        (ops.save)(conn, &caller, &row)?;
        Ok(row)
    })
    .await
}

/// Deletes a visible record after `If-Match`; `remove` checks what must hold (for this
/// caller) and deletes.
pub async fn delete_owned<R>(
    state: &AppState,
    caller: Caller,
    id: String,
    if_match: IfMatch,
    lock: fn(&mut DbConn, &Visibility, &str) -> AppResult<R>,
    remove: fn(&mut DbConn, &Caller, &R) -> AppResult<()>,
) -> AppResult<()>
where
    R: Stamped + Send + 'static,
{
    storage::run_tx(&state.pool, move |conn| {
        let current = lock(conn, &caller.visibility(), &id)?;
        check_version(if_match.0, current.version())?;
        remove(conn, &caller, &current)
    })
    .await
}
