//! Which sales actions move deals: for each open stage and activity type, how often a
//! stay in the stage advanced within N days when the deal got that activity during the
//! stay (within those N days), against stays that did not get it.
//!
//! A stay advances when the deal's next entry is a later step of the funnel (a later
//! open stage or won) no more than N days after it entered. Stays are those entered in
//! the range.

use std::collections::BTreeMap;

use diesel::sql_types::{BigInt, Text};
use diesel::QueryableByName;
use serde::Serialize;
use utoipa::ToSchema;

use super::math::Rate;
use super::{pipeline_stages, Scope, Sql};
use crate::domain::opportunity::ActivityType;
use crate::error::AppResult;
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

#[derive(QueryableByName)]
struct TotalRow {
    #[diesel(sql_type = Text)]
    stage_id: String,
    #[diesel(sql_type = BigInt)]
    stays: i64,
    #[diesel(sql_type = BigInt)]
    advanced: i64,
}

#[derive(QueryableByName)]
struct TypeRow {
    #[diesel(sql_type = Text)]
    stage_id: String,
    #[diesel(sql_type = Text)]
    activity_type: String,
    #[diesel(sql_type = BigInt)]
    stays: i64,
    #[diesel(sql_type = BigInt)]
    advanced: i64,
}

fn stays_cte(q: &mut Sql, scope: &Scope, days: i64) {
    let rank = |a: &str| {
        format!("(CASE WHEN {a}.kind = 'won' THEN 1000000 WHEN {a}.kind = 'open' THEN {a}.position ELSE -1 END)")
    };
    q.push(
        "WITH seq AS (SELECT t.id AS sid, t.opportunity_id AS oid, t.to_stage_id AS stage_id, t.entered_at AS entered_at, \
         LEAD(t.entered_at) OVER (PARTITION BY t.opportunity_id ORDER BY t.entered_at, t.id) AS left_at, \
         LEAD(t.to_stage_id) OVER (PARTITION BY t.opportunity_id ORDER BY t.entered_at, t.id) AS next_stage \
         FROM stage_transitions t",
    );
    if scope.restricts_deals() {
        q.push(" JOIN opportunities o ON o.id = t.opportunity_id WHERE 1 = 1");
        scope.push_deal_filter(q);
    } else {
        // Every deal of the pipeline: the stage log alone answers.
        q.push(" WHERE t.pipeline_id = ")
            .text(scope.pipeline_id.as_deref().unwrap_or_default());
    }
    let within = q.within_days("st.left_at", "st.entered_at", days);
    q.push(&format!(
        "), stays AS (SELECT st.sid, st.oid, st.stage_id, st.entered_at, st.left_at, \
         CASE WHEN ns.id IS NOT NULL AND {} > {} AND {within} THEN 1 ELSE 0 END AS advanced \
         FROM seq st JOIN stages s ON s.id = st.stage_id LEFT JOIN stages ns ON ns.id = st.next_stage WHERE s.kind = 'open'",
        rank("ns"),
        rank("s")
    ));
    scope.push_range(q, "st.entered_at");
    q.push(")");
}

pub fn report(conn: &mut DbConn, scope: &Scope, days: i64) -> AppResult<EffectivenessReport> {
    let pipeline_id = scope.pipeline_id.clone().unwrap_or_default();
    let stages = pipeline_stages(conn, &pipeline_id)?;
    let backend = backend_of(conn);

    let mut totals_q = Sql::new(backend);
    stays_cte(&mut totals_q, scope, days);
    totals_q.push(" SELECT stage_id, CAST(COUNT(*) AS BIGINT) AS stays, CAST(SUM(advanced) AS BIGINT) AS advanced FROM stays GROUP BY stage_id");
    let totals: BTreeMap<String, (i64, i64)> = totals_q
        .load::<TotalRow>(conn)?
        .into_iter()
        .map(|r| (r.stage_id, (r.stays, r.advanced)))
        .collect();

    let mut typed_q = Sql::new(backend);
    stays_cte(&mut typed_q, scope, days);
    let in_window = typed_q.within_days("a.completed_at", "st.entered_at", days);
    typed_q.push(&format!(
        " SELECT st.stage_id AS stage_id, a.type AS activity_type, CAST(COUNT(DISTINCT st.sid) AS BIGINT) AS stays, \
         CAST(COUNT(DISTINCT CASE WHEN st.advanced = 1 THEN st.sid END) AS BIGINT) AS advanced \
         FROM stays st JOIN activities a ON a.opportunity_id = st.oid AND a.completed_at >= st.entered_at \
         AND (st.left_at IS NULL OR a.completed_at < st.left_at) AND {in_window} \
         GROUP BY st.stage_id, a.type"
    ));
    let typed: BTreeMap<(String, String), (i64, i64)> = typed_q
        .load::<TypeRow>(conn)?
        .into_iter()
        .map(|r| ((r.stage_id, r.activity_type), (r.stays, r.advanced)))
        .collect();

    let mut data = Vec::new();
    for s in stages.iter().filter(|s| s.kind == "open") {
        let (stays, advanced) = totals.get(&s.id).copied().unwrap_or((0, 0));
        for t in ActivityType::ALL {
            let (w, wa) = typed
                .get(&(s.id.clone(), (*t).to_owned()))
                .copied()
                .unwrap_or((0, 0));
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
