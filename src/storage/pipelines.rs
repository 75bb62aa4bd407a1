//! Pipelines and stages repository.

use crate::domain::ids::{PipelineId, StageId, UserId};
use crate::storage::uid::{opt_uid, uid, uids};
use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::{pipelines, stages};
use super::types::JsonText;
use super::versioned::{check_version, delete_if_version, save_if_version, VersionedTable};
use super::{now, parse_ts_key, ts_key, After, DbConn, Page, PageRequest};
use crate::domain::pipeline::{StageDraft, StageKind};
use crate::error::{AppError, AppResult};

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = pipelines)]
pub struct PipelineRow {
    pub id: PipelineId,
    pub name: String,
    pub description: Option<String>,
    pub version: i32,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    pub created_by: Option<UserId>,
    pub updated_by: Option<UserId>,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = stages)]
pub struct StageRow {
    pub id: StageId,
    pub pipeline_id: PipelineId,
    pub name: String,
    pub position: i32,
    pub probability: i32,
    pub kind: StageKind,
    pub stalled_after_days: Option<i32>,
    pub required_fields: JsonText<Vec<String>>,
    pub exit_criteria: JsonText<Vec<String>>,
    pub suggested_actions: JsonText<Vec<String>>,
    pub next_action_within_days: Option<i32>,
    pub version: i32,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    pub created_by: Option<UserId>,
    pub updated_by: Option<UserId>,
}

impl StageRow {
    pub fn from_draft(
        pipeline_id: &PipelineId,
        position: i32,
        d: &StageDraft,
        actor: &UserId,
    ) -> AppResult<StageRow> {
        let t = now();
        Ok(StageRow {
            id: super::new_id(),
            pipeline_id: pipeline_id.clone(),
            name: d.name.clone(),
            position,
            probability: d.probability,
            kind: d.kind,
            stalled_after_days: d.stalled_after_days,
            required_fields: JsonText::encode(d.required_fields.clone())?,
            exit_criteria: JsonText::encode(d.exit_criteria.clone())?,
            suggested_actions: JsonText::encode(d.suggested_actions.clone())?,
            next_action_within_days: d.next_action_within_days,
            version: 1,
            created_at: t,
            updated_at: t,
            created_by: Some(actor.clone()),
            updated_by: Some(actor.clone()),
        })
    }
}

/// A pipeline with its stages in position order.
#[derive(Debug, Clone)]
pub struct PipelineWithStages {
    pub pipeline: PipelineRow,
    pub stages: Vec<StageRow>,
}

pub fn create(
    conn: &mut DbConn,
    name: &str,
    description: Option<&str>,
    drafts: &[StageDraft],
    actor: &UserId,
) -> AppResult<PipelineWithStages> {
    let t = now();
    let pipeline = PipelineRow {
        id: super::new_id(),
        name: name.to_owned(),
        description: description.map(str::to_owned),
        version: 1,
        created_at: t,
        updated_at: t,
        created_by: Some(actor.clone()),
        updated_by: Some(actor.clone()),
    };
    diesel::insert_into(pipelines::table)
        .values(pipeline.clone())
        .execute(conn)?;
    let stage_rows: Vec<StageRow> = drafts
        .iter()
        .enumerate()
        .map(|(i, d)| StageRow::from_draft(&pipeline.id, i as i32, d, actor))
        .collect::<AppResult<_>>()?;
    for row in &stage_rows {
        diesel::insert_into(stages::table)
            .values(row.clone())
            .execute(conn)?;
    }
    Ok(PipelineWithStages {
        pipeline,
        stages: stage_rows,
    })
}

pub fn find(conn: &mut DbConn, id: &PipelineId) -> AppResult<PipelineWithStages> {
    let pipeline = pipelines::table
        .find(uid(id))
        .select(PipelineRow::as_select())
        .first(conn)
        .optional()?
        .ok_or(AppError::NotFound)?;
    let stages = stages_of(conn, id)?;
    Ok(PipelineWithStages { pipeline, stages })
}

pub fn stages_of(conn: &mut DbConn, pipeline_id: &PipelineId) -> AppResult<Vec<StageRow>> {
    super::batch::stages(conn, pipeline_id, load_stages)
}

fn load_stages(conn: &mut DbConn, pipeline_id: &str) -> AppResult<Vec<StageRow>> {
    Ok(stages::table
        .filter(stages::pipeline_id.eq(uid(pipeline_id)))
        .order((stages::position.asc(), stages::id.asc()))
        .select(StageRow::as_select())
        .load(conn)?)
}

pub fn find_stage(conn: &mut DbConn, id: &StageId) -> AppResult<StageRow> {
    stages::table
        .find(uid(id))
        .select(StageRow::as_select())
        .first(conn)
        .optional()?
        .ok_or(AppError::NotFound)
}

#[derive(Debug, Clone)]
pub struct PipelineFilter {
    /// Case-insensitive substring of the name.
    pub q: Option<String>,
}

pub fn list(
    conn: &mut DbConn,
    filter: &PipelineFilter,
    page: &PageRequest,
) -> AppResult<Page<PipelineWithStages>> {
    let mut query = pipelines::table
        .select(PipelineRow::as_select())
        .into_boxed();
    if let Some(q) = &filter.q {
        let pattern = format!("%{}%", escape_like(&q.to_lowercase()));
        query = query.filter(
            diesel::dsl::sql::<diesel::sql_types::Text>("lower(name)")
                .like(pattern)
                .escape('\\'),
        );
    }
    let after = page.after.as_ref().map(|a| (a.value.clone(), a.id.clone()));
    let query = match page.sort.as_str() {
        "name" => crate::keyset!(query, pipelines::name, pipelines::id, page.desc, after),
        "updated_at" => {
            let after = ts_after(after)?;
            crate::keyset!(
                query,
                pipelines::updated_at,
                pipelines::id,
                page.desc,
                after
            )
        }
        _ => {
            let after = ts_after(after)?;
            crate::keyset!(
                query,
                pipelines::created_at,
                pipelines::id,
                page.desc,
                after
            )
        }
    };
    let rows: Vec<PipelineRow> = query.limit(page.limit as i64 + 1).load(conn)?;
    let sort = page.sort.clone();
    let page = Page::from_rows(rows, page.limit, |p: &PipelineRow| After {
        value: match sort.as_str() {
            "name" => p.name.clone(),
            "updated_at" => ts_key(&p.updated_at),
            _ => ts_key(&p.created_at),
        },
        id: p.id.to_string(),
    });
    let ids: Vec<&str> = page.items.iter().map(|p| p.id.as_str()).collect();
    let mut all_stages: Vec<StageRow> = stages::table
        .filter(stages::pipeline_id.eq_any(uids(&ids)))
        .order((stages::position.asc(), stages::id.asc()))
        .select(StageRow::as_select())
        .load(conn)?;
    Ok(page.map(|pipeline| {
        let (mine, rest): (Vec<StageRow>, Vec<StageRow>) = std::mem::take(&mut all_stages)
            .into_iter()
            .partition(|s| s.pipeline_id == pipeline.id);
        all_stages = rest;
        PipelineWithStages {
            pipeline,
            stages: mine,
        }
    }))
}

fn ts_after(after: Option<(String, String)>) -> AppResult<Option<(NaiveDateTime, String)>> {
    after.map(|(v, id)| Ok((parse_ts_key(&v)?, id))).transpose()
}

pub fn escape_like(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

/// Bumps the pipeline's version (its representation includes its stages) and, on
/// PostgreSQL, takes the row lock that serialises structural changes to one pipeline.
/// `expected` is the client's If-Match version, if any.
pub fn touch(
    conn: &mut DbConn,
    id: &str,
    expected: Option<i32>,
    actor: &str,
) -> AppResult<PipelineRow> {
    let current = pipelines::table::stored_version(conn, id)?.ok_or(AppError::NotFound)?;
    check_version(expected, current)?;
    save_if_version(conn, pipelines::table, id, current, |conn, target, next| {
        diesel::update(target)
            .set((
                next,
                pipelines::updated_at.eq(now()),
                pipelines::updated_by.eq(uid(actor)),
            ))
            .execute(conn)
    })?;
    Ok(pipelines::table
        .find(uid(id))
        .select(PipelineRow::as_select())
        .first(conn)?)
}

pub fn rename(
    conn: &mut DbConn,
    id: &str,
    name: Option<&str>,
    description: Option<Option<&str>>,
) -> AppResult<()> {
    if let Some(name) = name {
        diesel::update(pipelines::table.find(uid(id)))
            .set(pipelines::name.eq(name))
            .execute(conn)?;
    }
    if let Some(description) = description {
        diesel::update(pipelines::table.find(uid(id)))
            .set(pipelines::description.eq(description))
            .execute(conn)?;
    }
    Ok(())
}

pub fn delete(conn: &mut DbConn, id: &PipelineId) -> AppResult<()> {
    diesel::delete(stages::table.filter(stages::pipeline_id.eq(uid(id)))).execute(conn)?;
    let n = diesel::delete(pipelines::table.find(uid(id))).execute(conn)?;
    if n == 0 {
        return Err(AppError::NotFound);
    }
    Ok(())
}

pub fn insert_stage(conn: &mut DbConn, row: &StageRow) -> AppResult<()> {
    diesel::insert_into(stages::table)
        .values(row.clone())
        .execute(conn)?;
    Ok(())
}

/// Rewrites stage positions to 0..n in the given order.
pub fn set_positions(conn: &mut DbConn, ordered_ids: &[StageId]) -> AppResult<()> {
    for (i, id) in ordered_ids.iter().enumerate() {
        diesel::update(stages::table.find(uid(id)))
            .set(stages::position.eq(i as i32))
            .execute(conn)?;
    }
    Ok(())
}

/// Saves every field of a stage whose stored version equals `row.version - 1`.
pub fn save_stage(conn: &mut DbConn, row: &StageRow) -> AppResult<()> {
    let expected = row.version - 1;
    Ok(save_if_version(
        conn,
        stages::table,
        &row.id,
        expected,
        |conn, target, next| {
            diesel::update(target)
                .set((
                    next,
                    stages::name.eq(&row.name),
                    stages::probability.eq(row.probability),
                    stages::kind.eq(&row.kind),
                    stages::stalled_after_days.eq(row.stalled_after_days),
                    stages::required_fields.eq(&row.required_fields),
                    stages::exit_criteria.eq(&row.exit_criteria),
                    stages::suggested_actions.eq(&row.suggested_actions),
                    stages::next_action_within_days.eq(row.next_action_within_days),
                    stages::updated_at.eq(row.updated_at),
                    stages::updated_by.eq(opt_uid(row.updated_by.as_ref())),
                ))
                .execute(conn)
        },
    )?)
}

/// Deletes a stage if its stored version is `expected`.
pub fn delete_stage(conn: &mut DbConn, id: &StageId, expected: i32) -> AppResult<()> {
    Ok(delete_if_version(conn, stages::table, id, expected)?)
}
