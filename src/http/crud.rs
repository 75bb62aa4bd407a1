//! The HTTP side of the shared update and delete paths: the transaction around
//! [`crate::crm::records`], with `If-Match` as the expected version and a PATCH body
//! applied as a JSON merge patch.

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use super::extract::IfMatch;
use super::fields::patched;
use crate::auth::Caller;
use crate::crm::records::{self, Ops};
use crate::error::AppResult;
use crate::state::AppState;
use crate::storage::{self, DbConn, Stamped, Visible};

pub async fn patch_owned<R, I>(
    state: &AppState,
    caller: Caller,
    id: String,
    if_match: IfMatch,
    patch: Value,
    ops: Ops<R, I>,
) -> AppResult<R>
where
    R: Stamped + Visible + Send + 'static,
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
    remove: fn(&mut DbConn, &Caller, &R) -> AppResult<()>,
) -> AppResult<()>
where
    R: Stamped + Visible + Send + 'static,
{
    storage::run_tx(&state.pool, move |conn| {
        records::delete(conn, &caller, &id, if_match.0, remove)
    })
    .await
}
