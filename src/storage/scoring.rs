//! Scoring rules and loss reasons: small managed lists.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::{loss_reasons, scoring_rules};
use super::DbConn;
use crate::domain::lead::ScoringRule;
use crate::error::AppResult;

pub fn rules(conn: &mut DbConn) -> AppResult<Vec<ScoringRule>> {
    super::batch::rules(conn, load_rules)
}

fn load_rules(conn: &mut DbConn) -> AppResult<Vec<ScoringRule>> {
    let rows: Vec<(String, String, String, i32, String)> = scoring_rules::table
        .select((
            scoring_rules::id,
            scoring_rules::field,
            scoring_rules::value,
            scoring_rules::points,
            scoring_rules::label,
        ))
        .order((scoring_rules::position.asc(), scoring_rules::id.asc()))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .map(|(id, field, value, points, label)| ScoringRule {
            id,
            field,
            value,
            points,
            label,
        })
        .collect())
}

pub fn replace_rules(conn: &mut DbConn, rules: &[ScoringRule]) -> AppResult<()> {
    diesel::delete(scoring_rules::table).execute(conn)?;
    for (i, r) in rules.iter().enumerate() {
        diesel::insert_into(scoring_rules::table)
            .values((
                scoring_rules::id.eq(&r.id),
                scoring_rules::position.eq(i as i32),
                scoring_rules::field.eq(&r.field),
                scoring_rules::value.eq(&r.value),
                scoring_rules::points.eq(r.points),
                scoring_rules::label.eq(&r.label),
            ))
            .execute(conn)?;
    }
    Ok(())
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = loss_reasons)]
pub struct LossReasonRow {
    pub id: String,
    pub label: String,
    pub active: bool,
    pub position: i32,
    pub created_at: NaiveDateTime,
}

pub fn loss_reasons(conn: &mut DbConn) -> AppResult<Vec<LossReasonRow>> {
    Ok(loss_reasons::table
        .select(LossReasonRow::as_select())
        .order((loss_reasons::position.asc(), loss_reasons::id.asc()))
        .load(conn)?)
}

pub fn find_loss_reason(conn: &mut DbConn, id: &str) -> AppResult<Option<LossReasonRow>> {
    Ok(loss_reasons::table
        .find(id)
        .select(LossReasonRow::as_select())
        .first(conn)
        .optional()?)
}

pub fn insert_loss_reason(conn: &mut DbConn, row: &LossReasonRow) -> AppResult<()> {
    diesel::insert_into(loss_reasons::table)
        .values(row)
        .execute(conn)?;
    Ok(())
}

pub fn next_loss_reason_position(conn: &mut DbConn) -> AppResult<i32> {
    let max: Option<i32> = loss_reasons::table
        .select(diesel::dsl::max(loss_reasons::position))
        .first(conn)?;
    Ok(max.map_or(0, |m| m + 1))
}
