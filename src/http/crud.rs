//! The HTTP side of the shared update and delete paths: the transaction around
//! [`crate::crm::records`], with `If-Match` as the expected version and a PATCH body
//! applied as a JSON merge patch.

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use super::extract::IfMatch;
use super::fields::patched;
use crate::auth::{Caller, Visibility};
use crate::crm::records::{self, Ops};
use crate::error::AppResult;
use crate::state::AppState;
use crate::storage::{self, DbConn, Stamped};

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
        let edit = |current: I| patched(&current, &patch);
        records::update(conn, &caller, &id, if_match.0, edit, &ops)
    })
    .await
}

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
        records::delete(conn, &caller, &id, if_match.0, lock, remove)
    })
    .await
}
