//! Opportunities, their stage changes and the append-only stage log.

use crate::domain::ids::{
    AccountId, ContactId, LeadId, OpportunityId, PipelineId, StageId, TransitionId, UserId,
};
use crate::storage::uid::{uid, uids};
use crate::storage::NativeRead;
use chrono::{NaiveDate, NaiveDateTime};
use diesel::dsl::sql;
use diesel::expression::BoxableExpression;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bool, Text, Timestamp};

use super::aggregates::{self, Target};
use super::schema::{opportunities, stage_transitions, stages};
use super::types::JsonText;
use super::{
    contains_pattern, now, parse_ts_key, tag_pattern, ts_key, After, Backend, Db, DbConn, Page,
    PageRequest, Repo, Stamped,
};
use crate::domain::lead::{CompanySize, LeadSource};
use crate::domain::money::{exponent_of, to_thousandths};
use crate::domain::opportunity::{Channel, OpportunityStatus};
use crate::error::ProblemCode;
use crate::error::{AppError, AppResult};
use crate::storage::visibility::{owner_filter, Visibility};
use serde_json::{Map, Value};

#[derive(Debug, Clone, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = opportunities, treat_none_as_null = true)]
#[diesel(treat_none_as_default_value = false)] // NULL, not DEFAULT: lets `COPY` take the rows
pub struct OpportunityRow {
    pub id: OpportunityId,
    pub name: String,
    pub pipeline_id: PipelineId,
    pub stage_id: StageId,
    pub status: OpportunityStatus,
    pub amount_minor: Option<i64>,
    pub currency: String,
    pub probability: Option<i32>,
    pub expected_close_date: Option<NaiveDate>,
    pub account_id: Option<AccountId>,
    pub contact_id: Option<ContactId>,
    pub lead_id: Option<LeadId>,
    pub owner_id: UserId,
    pub source: Option<LeadSource>,
    pub industry: Option<String>,
    pub company_size: Option<CompanySize>,
    pub region: Option<String>,
    /// JSON array of strings.
    pub tags: JsonText<Vec<String>>,
    pub next_action_text: Option<String>,
    pub next_action_due_at: Option<NaiveDateTime>,
    pub lost_reason_id: Option<String>,
    pub lost_note: Option<String>,
    pub stage_entered_at: NaiveDateTime,
    pub last_activity_at: Option<NaiveDateTime>,
    /// When the deal was won or lost (the status says which).
    pub closed_at: Option<NaiveDateTime>,
    pub external_id: Option<String>,
    /// JSON object.
    pub custom: JsonText<Map<String, Value>>,
    #[diesel(skip_update)]
    pub version: i32,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    pub created_by: Option<UserId>,
    pub updated_by: Option<UserId>,
}

/// The record, if the caller may see it, with its stage's probability: one statement
/// for what a read of one deal shows. Each kind of visibility is its own statement type,
/// so the statement cache finds it by type rather than by first rendering its SQL.
pub fn find_visible_with_probability(
    conn: &mut DbConn,
    vis: &Visibility,
    id: &str,
) -> AppResult<(OpportunityRow, i32)> {
    let query = opportunities::table
        .inner_join(stages::table)
        .filter(opportunities::id.eq(super::sql::key(id)))
        .select((
            super::native::columns::<OpportunityRow>(),
            stages::probability,
        ));
    match vis {
        Visibility::All => query.maybe_one(conn),
        Visibility::Own(user) => query
            .filter(opportunities::owner_id.eq(uid(user)))
            .maybe_one(conn),
        Visibility::Team { members, .. } => query
            .filter(opportunities::owner_id.eq_any(uids(members)))
            .maybe_one(conn),
    }?
    .ok_or(AppError::NotFound)
}

/// One row of the stage log. There is deliberately no update or delete for it.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = stage_transitions)]
#[diesel(treat_none_as_default_value = false)] // NULL, not DEFAULT: lets `COPY` take the rows
pub struct TransitionRow {
    pub id: TransitionId,
    pub opportunity_id: OpportunityId,
    pub pipeline_id: PipelineId,
    pub from_stage_id: Option<StageId>,
    pub to_stage_id: StageId,
    pub entered_at: NaiveDateTime,
    pub actor_id: Option<UserId>,
    pub channel: Channel,
    pub note: Option<String>,
}

pub fn append_transition(conn: &mut DbConn, row: &TransitionRow) -> AppResult<()> {
    if super::batch::buffer_transition(row) {
        return Ok(());
    }
    diesel::insert_into(stage_transitions::table)
        .values(row.clone())
        .execute(conn)?;
    Ok(())
}

/// The log of one opportunity, oldest first.
pub fn history(conn: &mut DbConn, opportunity_id: &OpportunityId) -> AppResult<Vec<TransitionRow>> {
    Ok(stage_transitions::table
        .filter(stage_transitions::opportunity_id.eq(uid(opportunity_id)))
        .order((
            stage_transitions::entered_at.asc(),
            stage_transitions::id.asc(),
        ))
        .select(TransitionRow::as_select())
        .load(conn)?)
}

/// Inserts a deal written by someone who sees `vis` (a duplicate names the existing deal
/// only when it is visible).
pub fn insert(conn: &mut DbConn, row: &OpportunityRow, vis: &Visibility) -> AppResult<()> {
    // In an import batch the unique index catches a duplicate at the flush.
    if super::batch::buffer_deal(row) {
        return aggregates::refresh(conn, Target::Deal(&row.id));
    }
    check_external_id(conn, row, vis)?;
    row.insert_row(conn)?;
    aggregates::refresh(conn, Target::Deal(&row.id))
}

pub fn save(conn: &mut DbConn, row: &OpportunityRow, vis: &Visibility) -> AppResult<()> {
    check_external_id(conn, row, vis)?;
    row.save(conn)?;
    aggregates::refresh(conn, Target::Deal(&row.id))
}

fn check_external_id(conn: &mut DbConn, row: &OpportunityRow, vis: &Visibility) -> AppResult<()> {
    let Some(external_id) = &row.external_id else {
        return Ok(());
    };
    let other: Option<(String, String)> = opportunities::table
        .select((opportunities::id, opportunities::owner_id))
        .filter(opportunities::external_id.eq(external_id))
        .filter(opportunities::id.ne(uid(&row.id)))
        .first(conn)
        .optional()?;
    match other {
        Some(other) => Err(super::duplicate(
            vis,
            other,
            ProblemCode::DuplicateOpportunity,
            "An opportunity",
            "external_id",
        )),
        None => Ok(()),
    }
}

pub fn count_in_stage(conn: &mut DbConn, stage_id: &StageId) -> AppResult<i64> {
    Ok(opportunities::table
        .filter(opportunities::stage_id.eq(stage_id))
        .count()
        .get_result(conn)?)
}

pub fn count_in_pipeline(conn: &mut DbConn, pipeline_id: &PipelineId) -> AppResult<i64> {
    Ok(opportunities::table
        .filter(opportunities::pipeline_id.eq(pipeline_id))
        .count()
        .get_result(conn)?)
}

/// The deals in a stage, in id order (the order evacuation locks them in).
pub fn ids_in_stage(conn: &mut DbConn, stage_id: &StageId) -> AppResult<Vec<OpportunityId>> {
    Ok(opportunities::table
        .select(opportunities::id)
        .filter(opportunities::stage_id.eq(stage_id))
        .order(opportunities::id.asc())
        .load(conn)?)
}

pub fn backend_of(conn: &DbConn) -> Backend {
    match conn {
        DbConn::Pg(_) => Backend::Postgres,
        DbConn::Sqlite(_) => Backend::Sqlite,
    }
}

/// The stalled rule as SQL over `opportunities` joined with `stages`: an open deal
/// whose stage has a `stalled_after_days` threshold and that has been in the stage, or
/// without activity (since creation when there was none), longer than that. The same
/// rule in Rust is `domain::opportunity::stall_reasons`.
pub fn stalled_condition<'a, QS: 'a>(
    backend: Backend,
    at: NaiveDateTime,
) -> Box<dyn BoxableExpression<QS, Db, SqlType = Bool> + 'a> {
    let (entered, idle, tail) = match backend {
        Backend::Postgres => (
            "(opportunities.status = 'open' AND stages.stalled_after_days IS NOT NULL AND \
             (opportunities.stage_entered_at + stages.stalled_after_days * INTERVAL '1 day' < ",
            " OR COALESCE(opportunities.last_activity_at, opportunities.created_at) + stages.stalled_after_days * INTERVAL '1 day' < ",
            "))",
        ),
        Backend::Sqlite => (
            "(opportunities.status = 'open' AND stages.stalled_after_days IS NOT NULL AND \
             (julianday(opportunities.stage_entered_at) + stages.stalled_after_days < julianday(",
            ") OR julianday(COALESCE(opportunities.last_activity_at, opportunities.created_at)) + stages.stalled_after_days < julianday(",
            ")))",
        ),
    };
    Box::new(
        sql::<Bool>(entered)
            .bind::<Timestamp, _>(at)
            .sql(idle)
            .bind::<Timestamp, _>(at)
            .sql(tail),
    )
}

#[derive(Debug, Default, Clone)]
pub struct OpportunityFilter {
    pub pipeline_id: Option<String>,
    pub stage_id: Option<String>,
    pub status: Option<OpportunityStatus>,
    pub owner_id: Option<String>,
    pub tag: Option<String>,
    pub source: Option<LeadSource>,
    pub industry: Option<String>,
    pub stalled: Option<bool>,
    pub close_from: Option<NaiveDate>,
    pub close_to: Option<NaiveDate>,
    /// Bounds on the amount as written, whatever its currency, in thousandths of a unit.
    pub amount_min: Option<i64>,
    pub amount_max: Option<i64>,
    pub q: Option<String>,
}

/// The amount as written, in thousandths of a unit of its currency: how deals of
/// different currencies are filtered and sorted by amount.
fn amount_thousandths_sql() -> String {
    super::sql::thousandths("opportunities.amount_minor", "opportunities.currency")
}

fn amount_thousandths() -> diesel::expression::SqlLiteral<BigInt> {
    sql::<BigInt>(&amount_thousandths_sql())
}

/// The sort key: deals without an amount first.
fn amount_key() -> diesel::expression::SqlLiteral<BigInt> {
    sql::<BigInt>(&format!("COALESCE({}, -1)", amount_thousandths_sql()))
}

pub fn list(
    conn: &mut DbConn,
    vis: &Visibility,
    f: &OpportunityFilter,
    page: &PageRequest,
) -> AppResult<Page<(OpportunityRow, i32)>> {
    let backend = backend_of(conn);
    let mut q = opportunities::table
        .inner_join(stages::table)
        .filter(owner_filter(vis, opportunities::owner_id))
        .select((OpportunityRow::as_select(), stages::probability))
        .into_boxed();
    if let Some(v) = &f.pipeline_id {
        q = q.filter(opportunities::pipeline_id.eq(uid(v)));
    }
    if let Some(v) = &f.stage_id {
        q = q.filter(opportunities::stage_id.eq(uid(v)));
    }
    if let Some(v) = &f.status {
        q = q.filter(opportunities::status.eq(*v));
    }
    if let Some(v) = &f.owner_id {
        q = q.filter(opportunities::owner_id.eq(uid(v)));
    }
    if let Some(v) = &f.tag {
        q = q.filter(opportunities::tags.like(tag_pattern(v)).escape('\\'));
    }
    if let Some(v) = &f.source {
        q = q.filter(opportunities::source.eq(*v));
    }
    if let Some(v) = &f.industry {
        q = q.filter(opportunities::industry.eq(v.clone()));
    }
    match f.stalled {
        Some(true) => q = q.filter(stalled_condition(backend, now())),
        Some(false) => q = q.filter(diesel::dsl::not(stalled_condition(backend, now()))),
        None => {}
    }
    if let Some(v) = f.close_from {
        q = q.filter(opportunities::expected_close_date.ge(v));
    }
    if let Some(v) = f.close_to {
        q = q.filter(opportunities::expected_close_date.le(v));
    }
    if let Some(v) = f.amount_min {
        q = q.filter(amount_thousandths().ge(v));
    }
    if let Some(v) = f.amount_max {
        q = q.filter(amount_thousandths().le(v));
    }
    if let Some(text) = &f.q {
        q = q.filter(
            sql::<Text>("lower(opportunities.name)")
                .like(contains_pattern(text))
                .escape('\\'),
        );
    }
    let after = page.after.as_ref().map(|a| (a.value.clone(), a.id.clone()));
    let ts_after = |after: Option<(String, String)>| {
        after
            .map(|(v, id)| Ok::<_, AppError>((parse_ts_key(&v)?, id)))
            .transpose()
    };
    let q = match page.sort.as_str() {
        "name" => crate::keyset!(q, opportunities::name, opportunities::id, page.desc, after),
        "amount" => {
            let after = after
                .map(|(v, id)| {
                    v.parse::<i64>()
                        .map(|v| (v, id))
                        .map_err(|_| super::invalid_cursor())
                })
                .transpose()?;
            crate::keyset!(q, amount_key(), opportunities::id, page.desc, after)
        }
        "updated_at" => crate::keyset!(
            q,
            opportunities::updated_at,
            opportunities::id,
            page.desc,
            ts_after(after)?
        ),
        "stage_entered_at" => {
            crate::keyset!(
                q,
                opportunities::stage_entered_at,
                opportunities::id,
                page.desc,
                ts_after(after)?
            )
        }
        _ => crate::keyset!(
            q,
            opportunities::created_at,
            opportunities::id,
            page.desc,
            ts_after(after)?
        ),
    };
    let rows = q
        .limit(page.limit as i64 + 1)
        .load::<(OpportunityRow, i32)>(conn)?;
    let sort = page.sort.clone();
    Ok(Page::from_rows(
        rows,
        page.limit,
        |(o, _): &(OpportunityRow, i32)| After {
            value: match sort.as_str() {
                "name" => o.name.clone(),
                "amount" => o
                    .amount_minor
                    .map_or(-1, |m| to_thousandths(m, exponent_of(&o.currency)))
                    .to_string(),
                "updated_at" => ts_key(&o.updated_at),
                "stage_entered_at" => ts_key(&o.stage_entered_at),
                _ => ts_key(&o.created_at),
            },
            id: o.id.to_string(),
        },
    ))
}

/// Open deals whose next action is due before `before`, for the follow-up queue.
pub fn due_next_actions(
    conn: &mut DbConn,
    vis: &Visibility,
    owner_id: Option<&str>,
    before: Option<NaiveDateTime>,
    limit: i64,
) -> AppResult<Vec<OpportunityRow>> {
    let mut q = opportunities::table
        .filter(owner_filter(vis, opportunities::owner_id))
        .filter(opportunities::status.eq(OpportunityStatus::Open))
        .filter(opportunities::next_action_due_at.is_not_null())
        .select(OpportunityRow::as_select())
        .into_boxed();
    if let Some(owner) = owner_id {
        q = q.filter(opportunities::owner_id.eq(uid(owner)));
    }
    if let Some(before) = before {
        q = q.filter(opportunities::next_action_due_at.lt(before));
    }
    Ok(q.order((
        opportunities::next_action_due_at.asc(),
        opportunities::id.asc(),
    ))
    .limit(limit)
    .load(conn)?)
}

pub fn touch_activity(conn: &mut DbConn, id: &str, at: Option<NaiveDateTime>) -> AppResult<()> {
    diesel::update(opportunities::table.find(uid(id)))
        .set(opportunities::last_activity_at.eq(at))
        .execute(conn)?;
    // The stays record the first activity of each type.
    aggregates::refresh(conn, Target::Deal(id))
}

/// Which rows of the whole stage log to read.
#[derive(Debug, Clone, Default)]
pub struct LogFilter {
    pub pipeline_id: Option<String>,
    /// Entered at or after.
    pub from: Option<NaiveDateTime>,
    /// Entered before.
    pub to: Option<NaiveDateTime>,
}

/// A row of the stage log with its deal's external id and the stages' names.
#[derive(Debug, Clone)]
pub struct LogEntry {
    pub row: TransitionRow,
    pub external_id: Option<String>,
    pub from_stage_name: Option<String>,
    pub to_stage_name: Option<String>,
}

/// A page of the stage log of the deals the caller may see, in entry order
/// (`entered_at`, then id), for BI exports.
pub fn log_page(
    conn: &mut DbConn,
    vis: &Visibility,
    f: &LogFilter,
    page: &PageRequest,
) -> AppResult<Page<LogEntry>> {
    let mut q = stage_transitions::table
        .inner_join(
            opportunities::table.on(opportunities::id.eq(stage_transitions::opportunity_id)),
        )
        .filter(owner_filter(vis, opportunities::owner_id))
        .select((TransitionRow::as_select(), opportunities::external_id))
        .into_boxed();
    if let Some(p) = &f.pipeline_id {
        q = q.filter(stage_transitions::pipeline_id.eq(uid(p)));
    }
    if let Some(t) = f.from {
        q = q.filter(stage_transitions::entered_at.ge(t));
    }
    if let Some(t) = f.to {
        q = q.filter(stage_transitions::entered_at.lt(t));
    }
    let after = page
        .after
        .as_ref()
        .map(|a| Ok::<_, AppError>((parse_ts_key(&a.value)?, a.id.clone())))
        .transpose()?;
    let q = crate::keyset!(
        q,
        stage_transitions::entered_at,
        stage_transitions::id,
        page.desc,
        after
    );
    let rows: Vec<(TransitionRow, Option<String>)> = q.limit(page.limit as i64 + 1).load(conn)?;
    let mut ids: Vec<StageId> = rows
        .iter()
        .flat_map(|(t, _)| [Some(t.to_stage_id.clone()), t.from_stage_id.clone()])
        .flatten()
        .collect();
    ids.sort();
    ids.dedup();
    let names: std::collections::HashMap<StageId, String> = stages::table
        .filter(stages::id.eq_any(uids(&ids)))
        .select((stages::id, stages::name))
        .load::<(StageId, String)>(conn)?
        .into_iter()
        .collect();
    let entries = rows
        .into_iter()
        .map(|(row, external_id)| LogEntry {
            from_stage_name: row
                .from_stage_id
                .as_ref()
                .and_then(|s| names.get(s).cloned()),
            to_stage_name: names.get(&row.to_stage_id).cloned(),
            row,
            external_id,
        })
        .collect();
    Ok(Page::from_rows(entries, page.limit, |e: &LogEntry| After {
        value: ts_key(&e.row.entered_at),
        id: e.row.id.to_string(),
    }))
}
