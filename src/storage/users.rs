//! Users repository.

use crate::domain::ids::{TeamId, UserId};
use crate::storage::uid::uid;
use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::domain::user::Role;

use super::schema::users;
use super::versioned::{check_version, save_if_version};
use super::{parse_ts_key, ts_key, After, DbConn, NativeRead, Page, PageRequest, StorageError};
use crate::error::ProblemCode;
use crate::error::{AppError, AppResult};
use crate::storage::visibility::{owner_filter, Visibility};

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = users)]
pub struct UserRow {
    pub id: UserId,
    pub email: String,
    pub name: String,
    pub password_hash: String,
    pub role: Role,
    pub team_id: Option<TeamId>,
    pub active: bool,
    pub version: i32,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    pub created_by: Option<UserId>,
    pub updated_by: Option<UserId>,
    pub token_generation: i32,
}

#[derive(Debug, Default, AsChangeset)]
#[diesel(table_name = users)]
pub struct UserChanges {
    pub email: Option<String>,
    pub name: Option<String>,
    pub password_hash: Option<String>,
    pub role: Option<Role>,
    pub team_id: Option<Option<crate::storage::uid::Id>>,
    pub active: Option<bool>,
}

pub fn count(conn: &mut DbConn) -> AppResult<i64> {
    Ok(users::table.count().get_result(conn)?)
}

pub fn find(conn: &mut DbConn, id: &UserId) -> AppResult<Option<UserRow>> {
    super::batch::user(conn, id, load)
}

fn load(conn: &mut DbConn, id: &str) -> AppResult<Option<UserRow>> {
    Ok(users::table
        .filter(users::id.eq(super::sql::key(id)))
        .select(super::native::columns::<UserRow>())
        .maybe_one(conn)?)
}

pub fn find_by_email(conn: &mut DbConn, email: &str) -> AppResult<Option<UserRow>> {
    Ok(users::table
        .filter(users::email.eq(email))
        .select(UserRow::as_select())
        .first(conn)
        .optional()?)
}

/// The oldest active admin (who a command-line import acts as by default).
pub fn oldest_admin(conn: &mut DbConn) -> AppResult<Option<UserRow>> {
    Ok(users::table
        .filter(users::role.eq(crate::domain::user::Role::Admin))
        .filter(users::active.eq(true))
        .order((users::created_at.asc(), users::id.asc()))
        .select(UserRow::as_select())
        .first(conn)
        .optional()?)
}

/// A user the caller may see (themselves, their team, or anyone for admins).
pub fn find_visible(conn: &mut DbConn, vis: &Visibility, id: &str) -> AppResult<UserRow> {
    users::table
        .find(uid(id))
        .filter(owner_filter(vis, users::id))
        .select(UserRow::as_select())
        .first(conn)
        .optional()?
        .ok_or(AppError::NotFound)
}

fn email_taken(email: &str, existing_id: Option<String>) -> AppError {
    AppError::Conflict {
        code: ProblemCode::EmailTaken,
        detail: format!("A user with email {email} already exists."),
        existing_id,
    }
}

/// Looks before writing: on PostgreSQL a failed statement aborts the transaction, so
/// the existing id could not be read after the unique violation.
fn check_email_free(conn: &mut DbConn, email: &str, except: Option<&str>) -> AppResult<()> {
    match find_by_email(conn, email)? {
        Some(u) if Some(u.id.as_str()) != except => Err(email_taken(email, Some(u.id.into()))),
        _ => Ok(()),
    }
}

pub fn insert(conn: &mut DbConn, row: &UserRow) -> AppResult<()> {
    check_email_free(conn, &row.email, None)?;
    match diesel::insert_into(users::table)
        .values(row.clone())
        .execute(conn)
    {
        Ok(_) => Ok(()),
        // A concurrent insert of the same email won the race.
        Err(e) if super::is_unique_violation(&e) => Err(email_taken(&row.email, None)),
        Err(e) => Err(e.into()),
    }
}

/// Applies `changes` when the stored version equals `expected` (if given).
pub fn update(
    conn: &mut DbConn,
    id: &UserId,
    expected: Option<i32>,
    changes: &UserChanges,
    actor: &str,
) -> AppResult<UserRow> {
    let current = find(conn, id)?.ok_or(AppError::NotFound)?;
    check_version(expected, current.version)?;
    // Tokens issued before a password change or a deactivation stop working.
    let revokes_tokens = changes.password_hash.is_some() || changes.active == Some(false);
    let generation = current.token_generation + i32::from(revokes_tokens);
    let written = save_if_version(
        conn,
        users::table,
        id,
        current.version,
        |conn, target, next| {
            diesel::update(target)
                .set((
                    changes,
                    next,
                    users::token_generation.eq(generation),
                    users::updated_at.eq(super::now()),
                    users::updated_by.eq(uid(actor)),
                ))
                .execute(conn)
        },
    );
    match written {
        Ok(()) => find(conn, id)?.ok_or(AppError::NotFound),
        Err(StorageError::Database(e)) if super::is_unique_violation(&e) => Err(email_taken(
            changes.email.as_deref().unwrap_or_default(),
            None,
        )),
        Err(e) => Err(e.into()),
    }
}

pub fn list(conn: &mut DbConn, vis: &Visibility, page: &PageRequest) -> AppResult<Page<UserRow>> {
    let query = users::table
        .filter(owner_filter(vis, users::id))
        .select(UserRow::as_select())
        .into_boxed();
    let after = page.after.as_ref().map(|a| (a.value.clone(), a.id.clone()));
    let query = match page.sort.as_str() {
        "email" => crate::keyset!(query, users::email, users::id, page.desc, after),
        _ => {
            let after = match after {
                Some((v, id)) => Some((parse_ts_key(&v)?, id)),
                None => None,
            };
            crate::keyset!(query, users::created_at, users::id, page.desc, after)
        }
    };
    let rows = query.limit(page.limit as i64 + 1).load(conn)?;
    let sort = page.sort.clone();
    Ok(Page::from_rows(rows, page.limit, |u: &UserRow| After {
        value: if sort == "email" {
            u.email.clone()
        } else {
            ts_key(&u.created_at)
        },
        id: u.id.to_string(),
    }))
}

/// Ids of the members of a team.
pub fn member_ids(conn: &mut DbConn, team_id: &str) -> AppResult<Vec<UserId>> {
    Ok(users::table
        .select(users::id)
        .filter(users::team_id.eq(uid(team_id)))
        .load(conn)?)
}

/// Every user's id and name (reports label owners with them).
pub fn names(conn: &mut DbConn) -> AppResult<Vec<(String, String)>> {
    Ok(users::table.select((users::id, users::name)).load(conn)?)
}
