//! Which sales actions move deals: for each open stage and activity type, how often a
//! stay in the stage advanced within N days when the deal got that activity during the
//! stay (within those N days), against stays that did not get it.
//!
//! A stay advances when the deal's next entry is a later step of the funnel (a later
//! open stage or won) no more than N days after it entered. Stays are those entered in
//! the range.

use crate::domain::pipeline::StageKind;
use std::collections::BTreeMap;

use diesel::sql_types::BigInt;
use diesel::QueryableByName;
use serde::Serialize;
use utoipa::ToSchema;

use super::math::Rate;
use super::{pipeline_stages, Scope, Sql};
use crate::domain::opportunity::ActivityType;
use crate::error::AppResult;
use crate::storage::aggregates::first_activity_column;
use crate::storage::opportunities::backend_of;
use crate::storage::DbConn;

#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
pub struct EffectivenessEntry {
    pub stage_id: String,
    pub stage_name: String,
    pub activity_type: String,
    pub stays_with: i64,
    pub advanced_with: i64,
    /// `advanced_with / stays_with`.
    pub advance_rate_with: Rate,
    pub stays_without: i64,
    pub advanced_without: i64,
    /// `advanced_without / stays_without`.
    pub advance_rate_without: Rate,
    /// Difference of the two rates, in points of rate (null when either is undefined).
    pub lift: Option<f64>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EffectivenessReport {
    pub pipeline_id: String,
    pub within_days: i64,
    pub data: Vec<EffectivenessEntry>,
}

/// Per open stage: all stays, those that advanced, and for each activity type the
/// stays with such an activity in the window and how many of those advanced.
#[derive(QueryableByName)]
struct StageRow {
    #[diesel(sql_type = crate::storage::uid::Uid)]
    stage_id: String,
    #[diesel(sql_type = BigInt)]
    stays: i64,
    #[diesel(sql_type = BigInt)]
    advanced: i64,
    #[diesel(sql_type = BigInt)]
    with_call: i64,
    #[diesel(sql_type = BigInt)]
    advanced_call: i64,
    #[diesel(sql_type = BigInt)]
    with_email: i64,
    #[diesel(sql_type = BigInt)]
    advanced_email: i64,
    #[diesel(sql_type = BigInt)]
    with_meeting: i64,
    #[diesel(sql_type = BigInt)]
    advanced_meeting: i64,
    #[diesel(sql_type = BigInt)]
    with_demo: i64,
    #[diesel(sql_type = BigInt)]
    advanced_demo: i64,
    #[diesel(sql_type = BigInt)]
    with_proposal: i64,
    #[diesel(sql_type = BigInt)]
    advanced_proposal: i64,
    #[diesel(sql_type = BigInt)]
    with_note: i64,
    #[diesel(sql_type = BigInt)]
    advanced_note: i64,
    #[diesel(sql_type = BigInt)]
    with_task: i64,
    #[diesel(sql_type = BigInt)]
    advanced_task: i64,
}

impl StageRow {
    fn typed(&self, activity_type: &str) -> (i64, i64) {
        match activity_type {
            "call" => (self.with_call, self.advanced_call),
            "email" => (self.with_email, self.advanced_email),
            "meeting" => (self.with_meeting, self.advanced_meeting),
            "demo" => (self.with_demo, self.advanced_demo),
            "proposal" => (self.with_proposal, self.advanced_proposal),
            "note" => (self.with_note, self.advanced_note),
            "task" => (self.with_task, self.advanced_task),
            _ => (0, 0),
        }
    }
}

/// One pass over the maintained stays (`stage_stays`) of the given stages: each stay
/// carries its duration, whether its next entry was a step forward, and the seconds
/// from its entry to the first completed activity of every type. On PostgreSQL the
/// pass reads the stays' covering index by pipeline, stage and length (`stage_stays_stage_idx`).
fn stage_rows(
    conn: &mut DbConn,
    scope: &Scope,
    days: i64,
    stage_ids: &[String],
) -> AppResult<Vec<StageRow>> {
    let mut q = Sql::new(backend_of(conn));
    let window = days * 86_400;
    let advanced = format!("st.advanced = 1 AND st.seconds <= {window}");
    let mut columns = String::new();
    for t in ActivityType::ALL {
        // The first activity of this type came within the window.
        let had = format!("st.{} <= {window}", first_activity_column(t));
        columns.push_str(&format!(
            ", COUNT(*) FILTER (WHERE {had}) AS with_{t}, COUNT(*) FILTER (WHERE {had} AND {advanced}) AS advanced_{t}"
        ));
    }
    q.push(&format!(
        "SELECT st.stage_id AS stage_id, COUNT(*) AS stays, COUNT(*) FILTER (WHERE {advanced}) AS advanced{columns} \
         FROM stage_stays st WHERE st.stage_id IN "
    ));
    q.in_ids(stage_ids);
    scope.push_filter_on(&mut q, "st");
    scope.push_range(&mut q, "st.entered_at");
    q.push(" GROUP BY st.stage_id");
    q.load::<StageRow>(conn)
}

pub fn report(conn: &mut DbConn, scope: &Scope, days: i64) -> AppResult<EffectivenessReport> {
    let pipeline_id = scope.pipeline_id.clone().unwrap_or_default();
    let stages = pipeline_stages(conn, &pipeline_id)?;
    let open: Vec<String> = stages
        .iter()
        .filter(|s| s.kind == StageKind::Open)
        .map(|s| s.id.clone())
        .collect();
    let rows: BTreeMap<String, StageRow> = stage_rows(conn, scope, days, &open)?
        .into_iter()
        .map(|r| (r.stage_id.clone(), r))
        .collect();

    let mut data = Vec::new();
    for s in stages.iter().filter(|s| s.kind == StageKind::Open) {
        let row = rows.get(&s.id);
        let (stays, advanced) = row.map_or((0, 0), |r| (r.stays, r.advanced));
        for t in ActivityType::ALL {
            let (w, wa) = row.map_or((0, 0), |r| r.typed(t));
            let with = Rate::of(wa, w);
            let without = Rate::of(advanced - wa, stays - w);
            data.push(EffectivenessEntry {
                stage_id: s.id.clone(),
                stage_name: s.name.clone(),
                activity_type: (*t).to_owned(),
                stays_with: w,
                advanced_with: wa,
                advance_rate_with: with,
                stays_without: stays - w,
                advanced_without: advanced - wa,
                advance_rate_without: without,
                lift: with
                    .value
                    .zip(without.value)
                    .map(|(a, b)| super::math::round4(a - b)),
            });
        }
    }
    Ok(EffectivenessReport {
        pipeline_id,
        within_days: days,
        data,
    })
}

pub fn csv_rows(r: &EffectivenessReport) -> Vec<Vec<String>> {
    let rate = |r: &Rate| r.value.map(|v| v.to_string()).unwrap_or_default();
    let mut rows = vec![[
        "stage_id",
        "stage_name",
        "activity_type",
        "stays_with",
        "advanced_with",
        "advance_rate_with",
        "stays_without",
        "advanced_without",
        "advance_rate_without",
        "lift",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()];
    for e in &r.data {
        rows.push(vec![
            e.stage_id.clone(),
            e.stage_name.clone(),
            e.activity_type.clone(),
            e.stays_with.to_string(),
            e.advanced_with.to_string(),
            rate(&e.advance_rate_with),
            e.stays_without.to_string(),
            e.advanced_without.to_string(),
            rate(&e.advance_rate_without),
            e.lift.map(|v| v.to_string()).unwrap_or_default(),
        ]);
    }
    rows
}
