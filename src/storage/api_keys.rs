//! API keys repository. Only hashes are stored.

use crate::storage::uid::uid;
use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::api_keys;
use super::types::JsonText;
use super::DbConn;
use crate::domain::ids::{ApiKeyId, UserId};
use crate::domain::user::Scope;
use crate::error::{AppError, AppResult};

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = api_keys)]
pub struct ApiKeyRow {
    pub id: ApiKeyId,
    pub name: String,
    pub prefix: String,
    pub secret_hash: String,
    /// JSON array of scope names.
    pub scopes: JsonText<Vec<Scope>>,
    pub user_id: UserId,
    pub created_at: NaiveDateTime,
    pub last_used_at: Option<NaiveDateTime>,
    pub revoked_at: Option<NaiveDateTime>,
}

pub fn insert(conn: &mut DbConn, row: &ApiKeyRow) -> AppResult<()> {
    diesel::insert_into(api_keys::table)
        .values(row.clone())
        .execute(conn)?;
    Ok(())
}

pub fn find_by_prefix(conn: &mut DbConn, prefix: &str) -> AppResult<Option<ApiKeyRow>> {
    Ok(api_keys::table
        .filter(api_keys::prefix.eq(prefix))
        .select(ApiKeyRow::as_select())
        .first(conn)
        .optional()?)
}

pub fn find(conn: &mut DbConn, id: &str) -> AppResult<Option<ApiKeyRow>> {
    Ok(api_keys::table
        .find(uid(id))
        .select(ApiKeyRow::as_select())
        .first(conn)
        .optional()?)
}

pub fn list(conn: &mut DbConn) -> AppResult<Vec<ApiKeyRow>> {
    Ok(api_keys::table
        .select(ApiKeyRow::as_select())
        .order((api_keys::created_at.desc(), api_keys::id.desc()))
        .load(conn)?)
}

pub fn revoke(conn: &mut DbConn, id: &str) -> AppResult<()> {
    let n = diesel::update(
        api_keys::table
            .find(uid(id))
            .filter(api_keys::revoked_at.is_null()),
    )
    .set(api_keys::revoked_at.eq(super::now()))
    .execute(conn)?;
    if n == 0 {
        return Err(AppError::NotFound);
    }
    Ok(())
}

/// Records use at most once a minute per key, so reads do not turn into writes.
pub fn touch(conn: &mut DbConn, row: &ApiKeyRow) -> AppResult<()> {
    let now = super::now();
    if row
        .last_used_at
        .is_some_and(|t| now - t < chrono::Duration::minutes(1))
    {
        return Ok(());
    }
    diesel::update(api_keys::table.find(uid(&row.id)))
        .set(api_keys::last_used_at.eq(now))
        .execute(conn)?;
    Ok(())
}
