//! Teams repository.

use crate::domain::ids::{TeamId, UserId};
use crate::storage::uid::uid;
use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::teams;
use super::{DbConn, Page, PageRequest};
use crate::error::ProblemCode;
use crate::error::{AppError, AppResult};

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = teams)]
pub struct TeamRow {
    pub id: TeamId,
    pub name: String,
    pub manager_id: Option<UserId>,
    pub version: i32,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    pub created_by: Option<UserId>,
    pub updated_by: Option<UserId>,
}

pub fn find(conn: &mut DbConn, id: &str) -> AppResult<Option<TeamRow>> {
    Ok(teams::table
        .find(uid(id))
        .select(TeamRow::as_select())
        .first(conn)
        .optional()?)
}

fn name_taken(name: &str, existing_id: Option<String>) -> AppError {
    AppError::Conflict {
        code: ProblemCode::TeamNameTaken,
        detail: format!("A team named {name:?} already exists."),
        existing_id,
    }
}

pub fn insert(conn: &mut DbConn, row: &TeamRow) -> AppResult<()> {
    let existing = teams::table
        .select(teams::id)
        .filter(
            diesel::dsl::sql::<diesel::sql_types::Text>("lower(name)").eq(row.name.to_lowercase()),
        )
        .first::<String>(conn)
        .optional()?;
    if existing.is_some() {
        return Err(name_taken(&row.name, existing));
    }
    match diesel::insert_into(teams::table)
        .values(row.clone())
        .execute(conn)
    {
        Ok(_) => Ok(()),
        Err(e) if super::is_unique_violation(&e) => Err(name_taken(&row.name, None)),
        Err(e) => Err(e.into()),
    }
}

/// Teams are few and visible to every signed-in user; ordered by name.
pub fn list(conn: &mut DbConn, page: &PageRequest) -> AppResult<Page<TeamRow>> {
    let query = teams::table.select(TeamRow::as_select()).into_boxed();
    let after = page.after.as_ref().map(|a| (a.value.clone(), a.id.clone()));
    let rows = crate::keyset!(query, teams::name, teams::id, page.desc, after)
        .limit(page.limit as i64 + 1)
        .load(conn)?;
    Ok(Page::from_rows(rows, page.limit, |t: &TeamRow| {
        super::After {
            value: t.name.clone(),
            id: t.id.to_string(),
        }
    }))
}
