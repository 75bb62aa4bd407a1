//! Stalled deals: open deals past their stage's `stalled_after_days`, in the stage or
//! without activity. The selection is `storage::opportunities::stalled_condition`, the
//! reasons `domain::opportunity::stall_reasons`: the one rule the `stalled=true` filter
//! of the opportunity list uses too.

use crate::storage::uid::uid;
use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde::Serialize;
use utoipa::ToSchema;

use super::Scope;
use crate::auth::visibility::owner_filter;
use crate::domain::money::amount_text;
use crate::domain::opportunity::stall_reasons;
use crate::error::AppResult;
use crate::storage::opportunities::{backend_of, stalled_condition, OpportunityRow};
use crate::storage::schema::{opportunities, stages, users};
use crate::storage::DbConn;

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct StalledDeal {
    pub opportunity_id: String,
    pub name: String,
    pub pipeline_id: String,
    pub stage_id: String,
    pub stage_name: String,
    pub owner_id: String,
    pub owner_name: Option<String>,
    pub amount: Option<String>,
    /// `in_stage_too_long` and/or `no_recent_activity`.
    pub reasons: Vec<String>,
    /// The first reason, for lists that show one.
    pub reason: String,
    pub days_in_stage: i64,
    /// Days since the last completed activity (or since creation without one).
    pub days_idle: i64,
    pub stalled_after_days: i32,
    pub last_activity_at: Option<chrono::DateTime<chrono::Utc>>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct StalledReport {
    pub total: i64,
    /// Longest in stage first.
    pub data: Vec<StalledDeal>,
}

/// A deal, its stage's name and threshold, and its owner's name.
type StalledRow = (OpportunityRow, (String, Option<i32>), Option<String>);

pub fn report(
    conn: &mut DbConn,
    scope: &Scope,
    now: NaiveDateTime,
    limit: i64,
) -> AppResult<StalledReport> {
    let backend = backend_of(conn);
    let base = || {
        let mut q = opportunities::table
            .inner_join(stages::table)
            .left_join(users::table.on(users::id.eq(opportunities::owner_id)))
            .filter(owner_filter(&scope.visibility, opportunities::owner_id))
            .filter(stalled_condition(backend, now))
            .into_boxed();
        if let Some(p) = &scope.pipeline_id {
            q = q.filter(opportunities::pipeline_id.eq(uid(p)));
        }
        if let Some(o) = &scope.owner_id {
            q = q.filter(opportunities::owner_id.eq(uid(o)));
        }
        if let Some(t) = &scope.team_id {
            q = q.filter(users::team_id.eq(uid(t)));
        }
        q
    };
    let total: i64 = base().count().get_result(conn)?;
    let rows: Vec<StalledRow> = base()
        .select((
            OpportunityRow::as_select(),
            (stages::name, stages::stalled_after_days),
            users::name.nullable(),
        ))
        .order((
            opportunities::stage_entered_at.asc(),
            opportunities::id.asc(),
        ))
        .limit(limit)
        .load(conn)?;
    let data = rows
        .into_iter()
        .map(|(o, (stage_name, days), owner_name)| {
            let idle_since = o.last_activity_at.unwrap_or(o.created_at);
            let reasons: Vec<String> = stall_reasons(days, o.stage_entered_at, idle_since, now)
                .into_iter()
                .map(|r| r.as_str().to_owned())
                .collect();
            StalledDeal {
                reason: reasons.first().cloned().unwrap_or_default(),
                reasons,
                days_in_stage: (now - o.stage_entered_at).num_days(),
                days_idle: (now - idle_since).num_days(),
                stalled_after_days: days.unwrap_or_default(),
                last_activity_at: o.last_activity_at.map(|t| t.and_utc()),
                amount: o.amount_minor.map(|m| amount_text(m, &o.currency)),
                opportunity_id: o.id.into(),
                name: o.name,
                pipeline_id: o.pipeline_id.into(),
                stage_id: o.stage_id.into(),
                stage_name,
                owner_id: o.owner_id.into(),
                owner_name,
            }
        })
        .collect();
    Ok(StalledReport { total, data })
}

pub fn csv_rows(r: &StalledReport) -> Vec<Vec<String>> {
    let mut rows = vec![[
        "opportunity_id",
        "name",
        "stage_id",
        "stage_name",
        "owner_id",
        "owner_name",
        "amount",
        "reasons",
        "days_in_stage",
        "days_idle",
        "stalled_after_days",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()];
    for d in &r.data {
        rows.push(vec![
            d.opportunity_id.clone(),
            d.name.clone(),
            d.stage_id.clone(),
            d.stage_name.clone(),
            d.owner_id.clone(),
            d.owner_name.clone().unwrap_or_default(),
            d.amount.clone().unwrap_or_default(),
            d.reasons.join(" "),
            d.days_in_stage.to_string(),
            d.days_idle.to_string(),
            d.stalled_after_days.to_string(),
        ]);
    }
    rows
}
