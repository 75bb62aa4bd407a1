//! Capture sources and what they have already taken (signatures and idempotency keys).

use crate::storage::uid::{opt_uid, uid};
use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::{capture_receipts, capture_sources, leads, users};
use super::types::JsonText;
use super::versioned::delete_if_version;
use super::DbConn;
use crate::domain::ids::{CaptureSourceId, TeamId, UserId};
use crate::domain::integration::CaptureKind;
use crate::domain::lead::LeadSource;
use crate::domain::user::Role;
use crate::error::AppResult;

#[derive(Debug, Clone, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = capture_sources, treat_none_as_null = true)]
pub struct SourceRow {
    pub id: CaptureSourceId,
    pub name: String,
    /// Chosen at creation; a form stays a form.
    #[diesel(skip_update)]
    pub kind: CaptureKind,
    #[diesel(skip_update)]
    pub public_key: String,
    pub field_map: JsonText<serde_json::Map<String, serde_json::Value>>,
    pub constants: JsonText<serde_json::Map<String, serde_json::Value>>,
    pub default_source: LeadSource,
    pub source_detail: Option<String>,
    pub owner_id: Option<UserId>,
    pub team_id: Option<TeamId>,
    /// Moved only by [`next_turn`], one statement per capture.
    #[diesel(skip_update)]
    pub round_robin_next: i64,
    pub dedupe_on: JsonText<Vec<String>>,
    pub allowed_origins: JsonText<Vec<String>>,
    pub redirect_url: Option<String>,
    pub honeypot_field: Option<String>,
    pub min_submit_seconds: i32,
    pub rate_limit_per_minute: i32,
    pub secret: Option<String>,
    pub previous_secret: Option<String>,
    pub previous_secret_until: Option<NaiveDateTime>,
    pub active: bool,
    #[diesel(skip_update)]
    pub version: i32,
    #[diesel(skip_update)]
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    #[diesel(skip_update)]
    pub created_by: UserId,
}

pub fn find_by_key(conn: &mut DbConn, key: &str) -> AppResult<Option<SourceRow>> {
    Ok(capture_sources::table
        .filter(capture_sources::public_key.eq(key))
        .select(SourceRow::as_select())
        .first(conn)
        .optional()?)
}

pub fn list(conn: &mut DbConn) -> AppResult<Vec<SourceRow>> {
    Ok(capture_sources::table
        .select(SourceRow::as_select())
        .order(capture_sources::created_at.asc())
        .load(conn)?)
}

pub fn delete(conn: &mut DbConn, id: &str, version: i32) -> AppResult<()> {
    delete_if_version(conn, capture_sources::table, id, version)?;
    diesel::delete(capture_receipts::table.filter(capture_receipts::source_id.eq(uid(id))))
        .execute(conn)?;
    Ok(())
}

/// Holds the source's row until the transaction ends (PostgreSQL; a SQLite write
/// transaction already excludes every other writer).
pub fn lock(conn: &mut DbConn, id: &str) -> AppResult<()> {
    if let DbConn::Pg(c) = conn {
        capture_sources::table
            .find(uid(id))
            .select(capture_sources::id)
            .for_update()
            .first::<String>(c)
            .optional()?;
    }
    Ok(())
}

/// The next turn of a round-robin source. The increment is one statement on the
/// source's row, so concurrent captures (on any replica) take consecutive turns.
pub fn next_turn(conn: &mut DbConn, id: &str) -> AppResult<i64> {
    use capture_sources::dsl as s;
    Ok(diesel::update(s::capture_sources.find(uid(id)))
        .set(s::round_robin_next.eq(s::round_robin_next + 1))
        .returning(s::round_robin_next)
        .get_result::<i64>(conn)?
        - 1)
}

/// A team's active reps (else its active members), in a stable order.
pub fn assignable_members(conn: &mut DbConn, team_id: &str) -> AppResult<Vec<String>> {
    let members: Vec<(String, Role)> = users::table
        .filter(users::team_id.eq(uid(team_id)))
        .filter(users::active.eq(true))
        .order((users::created_at.asc(), users::id.asc()))
        .select((users::id, users::role))
        .load(conn)?;
    let reps: Vec<String> = members
        .iter()
        .filter(|(_, r)| *r == Role::Rep)
        .map(|(id, _)| id.clone())
        .collect();
    Ok(if reps.is_empty() {
        members.into_iter().map(|(id, _)| id).collect()
    } else {
        reps
    })
}

/// Records what a source took; false when it was taken before (a replay).
pub fn receipt(
    conn: &mut DbConn,
    source_id: &str,
    fingerprint: &str,
    lead_id: Option<&str>,
) -> AppResult<bool> {
    let values = (
        capture_receipts::source_id.eq(uid(source_id)),
        capture_receipts::fingerprint.eq(fingerprint),
        capture_receipts::lead_id.eq(opt_uid(lead_id)),
        capture_receipts::created_at.eq(super::now()),
    );
    let insert = diesel::insert_into(capture_receipts::table).values(values);
    let n = match conn {
        DbConn::Pg(c) => insert.on_conflict_do_nothing().execute(c)?,
        DbConn::Sqlite(c) => insert.on_conflict_do_nothing().execute(c)?,
    };
    Ok(n == 1)
}

/// The lead an earlier post with this fingerprint (an idempotency key) captured.
pub fn receipt_lead(
    conn: &mut DbConn,
    source_id: &str,
    fingerprint: &str,
) -> AppResult<Option<Option<String>>> {
    Ok(capture_receipts::table
        .find((uid(source_id), fingerprint))
        .select(capture_receipts::lead_id)
        .first(conn)
        .optional()?)
}

/// Forgets receipts older than `before` (signatures past their tolerance).
pub fn forget_receipts(conn: &mut DbConn, before: NaiveDateTime) -> AppResult<usize> {
    Ok(
        diesel::delete(capture_receipts::table.filter(capture_receipts::created_at.lt(before)))
            .execute(conn)?,
    )
}

/// The id of a lead whose `column` equals `value`, for de-duplication.
pub fn lead_with(conn: &mut DbConn, key: &str, value: &str) -> AppResult<Option<String>> {
    let q = leads::table.select(leads::id).into_boxed();
    let q = match key {
        "email" => q.filter(leads::email.eq(value.to_lowercase())),
        "phone" => q.filter(leads::phone.eq(value)),
        "external_id" => q.filter(leads::external_id.eq(value)),
        _ => return Ok(None),
    };
    Ok(q.order(leads::created_at.asc()).first(conn).optional()?)
}
