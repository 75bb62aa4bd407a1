//! The report endpoints (the analytics module over HTTP). Every report is scoped to what
//! the caller may see, and answers CSV instead of JSON to `Accept: text/csv`.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::extract::{ApiJson, ApiQuery};
use crate::analytics::activity::{self, EffectivenessReport};
use crate::analytics::durations::{self, DurationsReport};
use crate::analytics::forecast::{
    self, AccuracyReport, ForecastReport, ForecastRow, Period, SnapshotRow,
};
use crate::analytics::funnel::{self, FunnelMode, FunnelReport};
use crate::analytics::losses::{self, LossReport, ReactivationReport};
use crate::analytics::people::{self, LeadSourcesReport, Leaderboard, LeaderboardMetric};
use crate::analytics::stalled::{self, StalledReport};
use crate::analytics::{parse_bound, GroupBy, Scope};
use crate::auth::api_keys::Scope as KeyScope;
use crate::auth::Caller;
use crate::domain::user::Role;
use crate::domain::{required_text, Problems};
use crate::error::{AppError, AppResult, FieldError};
use crate::startup::AppState;
use crate::storage;

/// Parameters shared by the reports; each report says which it uses.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ReportQuery {
    /// Required by funnel, stage-durations and activity-effectiveness.
    pub pipeline_id: Option<String>,
    /// Start of the range: `YYYY-MM-DD` (UTC day) or RFC 3339 with an offset.
    pub from: Option<String>,
    /// End of the range, inclusive for a date.
    pub to: Option<String>,
    pub owner_id: Option<String>,
    pub team_id: Option<String>,
    /// Segments for funnel and stage-durations.
    pub group_by: Option<GroupBy>,
    /// Funnel: `cohort` (default) or `period`.
    pub mode: Option<FunnelMode>,
    /// Forecast: `month` (default) or `quarter`.
    pub period: Option<Period>,
    /// Leaderboard: `won_amount` (default), `won_count`, `stage_advances`.
    pub metric: Option<LeaderboardMetric>,
    /// Activity effectiveness: the advance window in days (default 14, 1–365).
    pub within_days: Option<i64>,
    /// Stalled: how many deals to list (default 200, at most 1000).
    pub limit: Option<i64>,
}

fn bad_param(field: &str, message: &str) -> AppError {
    AppError::BadRequest {
        code: "invalid_parameter",
        detail: format!("{field}: {message}"),
        errors: vec![FieldError::new(field, "invalid", message)],
    }
}

fn scope_of(caller: &Caller, q: &ReportQuery, needs_pipeline: bool) -> AppResult<Scope> {
    caller.require_scope(KeyScope::ReportsRead)?;
    if needs_pipeline && q.pipeline_id.is_none() {
        return Err(AppError::BadRequest {
            code: "invalid_parameter",
            detail: "pipeline_id is required for this report".into(),
            errors: vec![FieldError::new(
                "pipeline_id",
                "required",
                "give the pipeline to report on",
            )],
        });
    }
    let from = q
        .from
        .as_deref()
        .map(|f| parse_bound("from", f, false))
        .transpose()?;
    let to =
        q.to.as_deref()
            .map(|t| parse_bound("to", t, true))
            .transpose()?;
    if let (Some(f), Some(t)) = (from, to) {
        if f >= t {
            return Err(bad_param("to", "must be after from"));
        }
    }
    Ok(Scope {
        visibility: caller.visibility(),
        pipeline_id: q.pipeline_id.clone(),
        owner_id: q.owner_id.clone(),
        team_id: q.team_id.clone(),
        from,
        to,
    })
}

fn wants_csv(req: &HttpRequest) -> bool {
    req.headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/csv"))
}

/// RFC 4180 CSV with a header row.
pub fn to_csv(rows: &[Vec<String>]) -> String {
    let mut out = String::new();
    for row in rows {
        let line: Vec<String> = row
            .iter()
            .map(|f| {
                if f.contains([',', '"', '\n', '\r']) {
                    format!("\"{}\"", f.replace('"', "\"\""))
                } else {
                    f.clone()
                }
            })
            .collect();
        out.push_str(&line.join(","));
        out.push_str("\r\n");
    }
    out
}

fn respond<T: Serialize>(
    req: &HttpRequest,
    name: &str,
    body: &T,
    csv: impl FnOnce(&T) -> Vec<Vec<String>>,
) -> HttpResponse {
    if wants_csv(req) {
        HttpResponse::Ok()
            .content_type("text/csv; charset=utf-8")
            .insert_header((
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}.csv\""),
            ))
            .body(to_csv(&csv(body)))
    } else {
        HttpResponse::Ok().json(body)
    }
}

/// Stage-to-stage conversion with numerators and denominators.
///
/// `cohort`: deals created in the range, followed to today. `period`: stage entries in
/// the range. Skipped stages count as passed, re-entries once; a reopened deal counts
/// once with all it reached. With `group_by`, `segments` repeats the structure per key.
#[utoipa::path(get, path = "/api/v1/reports/funnel", tag = "reports", operation_id = "funnel_report",
    security(("bearer" = ["reports:read"])), params(ReportQuery),
    responses((status = 200, body = FunnelReport, content_type = "application/json"),
        (status = 200, description = "with Accept: text/csv", content_type = "text/csv", body = String),
        (status = 400, body = crate::error::Problem), (status = 404, body = crate::error::Problem)))]
pub async fn funnel_report(
    state: web::Data<AppState>,
    req: HttpRequest,
    caller: Caller,
    query: ApiQuery<ReportQuery>,
) -> AppResult<HttpResponse> {
    let q = query.0;
    let scope = scope_of(&caller, &q, true)?;
    let mode = q.mode.unwrap_or(FunnelMode::Cohort);
    let r = storage::run(&state.pool, move |conn| {
        funnel::report(conn, &scope, mode, q.group_by)
    })
    .await?;
    Ok(respond(&req, "funnel", &r, funnel::csv_rows))
}

/// The funnel as an SVG picture: bars sized by deals reaching each step, labelled with
/// counts and conversion rates.
#[utoipa::path(get, path = "/api/v1/reports/funnel.svg", tag = "reports", operation_id = "funnel_svg",
    security(("bearer" = ["reports:read"])), params(ReportQuery),
    responses((status = 200, content_type = "image/svg+xml", body = String), (status = 400, body = crate::error::Problem),
        (status = 404, body = crate::error::Problem)))]
pub async fn funnel_svg(
    state: web::Data<AppState>,
    caller: Caller,
    query: ApiQuery<ReportQuery>,
) -> AppResult<HttpResponse> {
    let q = query.0;
    let scope = scope_of(&caller, &q, true)?;
    let mode = q.mode.unwrap_or(FunnelMode::Cohort);
    let pid = q.pipeline_id.clone().unwrap_or_default();
    let (r, title) = storage::run(&state.pool, move |conn| {
        let report = funnel::report(conn, &scope, mode, None)?;
        let name = storage::pipelines::find(conn, &pid)?.pipeline.name;
        Ok((report, name))
    })
    .await?;
    Ok(HttpResponse::Ok()
        .content_type("image/svg+xml; charset=utf-8")
        .body(funnel::svg(&r, &title)))
}

/// Time in each stage: closed stays (count, avg, median, p90, max, seconds) and running
/// stays (count, median and p90 age) apart. Percentiles interpolate like `percentile_cont`.
#[utoipa::path(get, path = "/api/v1/reports/stage-durations", tag = "reports", operation_id = "stage_durations_report",
    security(("bearer" = ["reports:read"])), params(ReportQuery),
    responses((status = 200, body = DurationsReport), (status = 400, body = crate::error::Problem),
        (status = 404, body = crate::error::Problem)))]
pub async fn stage_durations_report(
    state: web::Data<AppState>,
    req: HttpRequest,
    caller: Caller,
    query: ApiQuery<ReportQuery>,
) -> AppResult<HttpResponse> {
    let q = query.0;
    let scope = scope_of(&caller, &q, true)?;
    let now = storage::now();
    let r = storage::run(&state.pool, move |conn| {
        durations::report(conn, &scope, q.group_by, now)
    })
    .await?;
    Ok(respond(&req, "stage-durations", &r, durations::csv_rows))
}

/// Open deals past their stage's `stalled_after_days` in the stage or without activity,
/// longest in stage first (the same rule as `GET /opportunities?stalled=true`).
#[utoipa::path(get, path = "/api/v1/reports/stalled", tag = "reports", operation_id = "stalled_report",
    security(("bearer" = ["reports:read"])), params(ReportQuery),
    responses((status = 200, body = StalledReport), (status = 400, body = crate::error::Problem)))]
pub async fn stalled_report(
    state: web::Data<AppState>,
    req: HttpRequest,
    caller: Caller,
    query: ApiQuery<ReportQuery>,
) -> AppResult<HttpResponse> {
    let q = query.0;
    let scope = scope_of(&caller, &q, false)?;
    let limit = q.limit.unwrap_or(200);
    if !(1..=1000).contains(&limit) {
        return Err(bad_param("limit", "must be between 1 and 1000"));
    }
    let now = storage::now();
    let r = storage::run(&state.pool, move |conn| {
        stalled::report(conn, &scope, now, limit)
    })
    .await?;
    Ok(respond(&req, "stalled", &r, stalled::csv_rows))
}

/// Lost deals (lost in the range) by the stage they were lost from × loss reason, with
/// counts and amounts.
#[utoipa::path(get, path = "/api/v1/reports/loss-reasons", tag = "reports", operation_id = "loss_reasons_report",
    security(("bearer" = ["reports:read"])), params(ReportQuery),
    responses((status = 200, body = LossReport), (status = 400, body = crate::error::Problem)))]
pub async fn loss_reasons_report(
    state: web::Data<AppState>,
    req: HttpRequest,
    caller: Caller,
    query: ApiQuery<ReportQuery>,
) -> AppResult<HttpResponse> {
    let scope = scope_of(&caller, &query.0, false)?;
    let r = storage::run(&state.pool, move |conn| losses::report(conn, &scope)).await?;
    Ok(respond(&req, "loss-reasons", &r, losses::csv_rows))
}

/// Per open stage and activity type: how often stays with that activity advanced
/// within `within_days`, against stays without it.
#[utoipa::path(get, path = "/api/v1/reports/activity-effectiveness", tag = "reports", operation_id = "activity_effectiveness_report",
    security(("bearer" = ["reports:read"])), params(ReportQuery),
    responses((status = 200, body = EffectivenessReport), (status = 400, body = crate::error::Problem),
        (status = 404, body = crate::error::Problem)))]
pub async fn activity_effectiveness_report(
    state: web::Data<AppState>,
    req: HttpRequest,
    caller: Caller,
    query: ApiQuery<ReportQuery>,
) -> AppResult<HttpResponse> {
    let q = query.0;
    let scope = scope_of(&caller, &q, true)?;
    let days = q.within_days.unwrap_or(14);
    if !(1..=365).contains(&days) {
        return Err(bad_param("within_days", "must be between 1 and 365"));
    }
    let r = storage::run(&state.pool, move |conn| {
        activity::report(conn, &scope, days)
    })
    .await?;
    Ok(respond(
        &req,
        "activity-effectiveness",
        &r,
        activity::csv_rows,
    ))
}

/// Per lead source: leads created in the range, qualified, converted, won, the rates
/// between them and the won amount.
#[utoipa::path(get, path = "/api/v1/reports/lead-sources", tag = "reports", operation_id = "lead_sources_report",
    security(("bearer" = ["reports:read"])), params(ReportQuery),
    responses((status = 200, body = LeadSourcesReport), (status = 400, body = crate::error::Problem)))]
pub async fn lead_sources_report(
    state: web::Data<AppState>,
    req: HttpRequest,
    caller: Caller,
    query: ApiQuery<ReportQuery>,
) -> AppResult<HttpResponse> {
    let scope = scope_of(&caller, &query.0, false)?;
    let r = storage::run(&state.pool, move |conn| people::lead_sources(conn, &scope)).await?;
    Ok(respond(&req, "lead-sources", &r, people::lead_sources_csv))
}

/// Owners ranked by won amount, won count or stage advances in the range.
#[utoipa::path(get, path = "/api/v1/reports/leaderboard", tag = "reports", operation_id = "leaderboard_report",
    security(("bearer" = ["reports:read"])), params(ReportQuery),
    responses((status = 200, body = Leaderboard), (status = 400, body = crate::error::Problem)))]
pub async fn leaderboard_report(
    state: web::Data<AppState>,
    req: HttpRequest,
    caller: Caller,
    query: ApiQuery<ReportQuery>,
) -> AppResult<HttpResponse> {
    let q = query.0;
    let scope = scope_of(&caller, &q, false)?;
    let metric = q.metric.unwrap_or(LeaderboardMetric::WonAmount);
    let r = storage::run(&state.pool, move |conn| {
        people::leaderboard(conn, &scope, metric)
    })
    .await?;
    Ok(respond(&req, "leaderboard", &r, people::leaderboard_csv))
}

/// Lost deals that flowed back (回流) and how they ended.
#[utoipa::path(get, path = "/api/v1/reports/reactivation", tag = "reports", operation_id = "reactivation_report",
    security(("bearer" = ["reports:read"])), params(ReportQuery),
    responses((status = 200, body = ReactivationReport), (status = 400, body = crate::error::Problem)))]
pub async fn reactivation_report(
    state: web::Data<AppState>,
    req: HttpRequest,
    caller: Caller,
    query: ApiQuery<ReportQuery>,
) -> AppResult<HttpResponse> {
    let scope = scope_of(&caller, &query.0, false)?;
    let r = storage::run(&state.pool, move |conn| losses::reactivation(conn, &scope)).await?;
    Ok(respond(&req, "reactivation", &r, losses::reactivation_csv))
}

/// Weighted (by effective probability) and unweighted amounts of open deals by expected
/// close month or quarter, owner and currency; `from`/`to` bound the close dates.
#[utoipa::path(get, path = "/api/v1/reports/forecast", tag = "reports", operation_id = "forecast_report",
    security(("bearer" = ["reports:read"])), params(ReportQuery),
    responses((status = 200, body = ForecastReport), (status = 400, body = crate::error::Problem)))]
pub async fn forecast_report(
    state: web::Data<AppState>,
    req: HttpRequest,
    caller: Caller,
    query: ApiQuery<ReportQuery>,
) -> AppResult<HttpResponse> {
    let q = query.0;
    let scope = scope_of(&caller, &q, false)?;
    let period = q.period.unwrap_or(Period::Month);
    let r = storage::run(&state.pool, move |conn| {
        forecast::report(conn, &scope, period)
    })
    .await?;
    Ok(respond(&req, "forecast", &r, forecast::csv_rows))
}

#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSnapshot {
    #[schema(example = "2026 Q4 commit")]
    pub name: String,
    /// Defaults to `month`.
    pub period: Option<Period>,
    pub pipeline_id: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    pub owner_id: Option<String>,
    pub team_id: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SnapshotOut {
    pub id: String,
    pub name: String,
    pub period: Period,
    pub pipeline_id: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    pub owner_id: Option<String>,
    pub team_id: Option<String>,
    pub rows: Vec<ForecastRow>,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub created_by: String,
}

fn snapshot_out(s: SnapshotRow) -> AppResult<SnapshotOut> {
    let params: CreateSnapshot = serde_json::from_str(&s.scope).map_err(AppError::internal)?;
    Ok(SnapshotOut {
        rows: serde_json::from_str(&s.rows).map_err(AppError::internal)?,
        period: if s.period == "quarter" {
            Period::Quarter
        } else {
            Period::Month
        },
        id: s.id,
        name: s.name,
        pipeline_id: params.pipeline_id,
        from: params.from,
        to: params.to,
        owner_id: params.owner_id,
        team_id: params.team_id,
        created_at: s.created_at.and_utc(),
        created_by: s.created_by,
    })
}

fn snapshot_query(p: &CreateSnapshot) -> ReportQuery {
    ReportQuery {
        pipeline_id: p.pipeline_id.clone(),
        from: p.from.clone(),
        to: p.to.clone(),
        owner_id: p.owner_id.clone(),
        team_id: p.team_id.clone(),
        period: p.period,
        ..ReportQuery::default()
    }
}

/// Freezes the current forecast (as the caller sees it) for a later accuracy check.
#[utoipa::path(post, path = "/api/v1/reports/forecast/snapshots", tag = "reports", operation_id = "create_forecast_snapshot",
    security(("bearer" = [])), request_body = CreateSnapshot,
    responses((status = 201, body = SnapshotOut), (status = 400, body = crate::error::Problem),
        (status = 422, body = crate::error::Problem)))]
pub async fn create_forecast_snapshot(
    state: web::Data<AppState>,
    caller: Caller,
    body: ApiJson<CreateSnapshot>,
) -> AppResult<HttpResponse> {
    caller.require_person()?;
    let b = body.0;
    let mut p = Problems::default();
    let name = required_text(&mut p, "name", &b.name, 200);
    p.into_result()?;
    let scope = scope_of(&caller, &snapshot_query(&b), false)?;
    let period = b.period.unwrap_or(Period::Month);
    let params = serde_json::to_string(&b).map_err(AppError::internal)?;
    let snapshot = storage::run_tx(&state.pool, move |conn| {
        let report = forecast::report(conn, &scope, period)?;
        let row = SnapshotRow {
            id: storage::new_id(),
            name,
            period: period.as_str().to_owned(),
            scope: params,
            rows: serde_json::to_string(&report.rows).map_err(AppError::internal)?,
            created_at: storage::now(),
            created_by: caller.user_id.clone(),
        };
        forecast::insert_snapshot(conn, &row)?;
        Ok(row)
    })
    .await?;
    Ok(HttpResponse::Created().json(snapshot_out(snapshot)?))
}

/// A snapshot against what actually closed: per period and owner, the frozen weighted
/// forecast beside the amount won in that period, attainment and error.
#[utoipa::path(get, path = "/api/v1/reports/forecast/snapshots/{id}/accuracy", tag = "reports", operation_id = "forecast_snapshot_accuracy",
    security(("bearer" = ["reports:read"])), params(("id" = String, Path)),
    responses((status = 200, body = AccuracyReport), (status = 404, body = crate::error::Problem)))]
pub async fn forecast_snapshot_accuracy(
    state: web::Data<AppState>,
    req: HttpRequest,
    caller: Caller,
    id: web::Path<String>,
) -> AppResult<HttpResponse> {
    caller.require_scope(KeyScope::ReportsRead)?;
    let admin = caller.role == Role::Admin;
    let r = storage::run(&state.pool, move |conn| {
        let snapshot = forecast::find_snapshot(conn, &id, &caller.user_id, admin)?;
        let params: CreateSnapshot =
            serde_json::from_str(&snapshot.scope).map_err(AppError::internal)?;
        let scope = scope_of(&caller, &snapshot_query(&params), false)?;
        forecast::accuracy(conn, &snapshot, &scope)
    })
    .await?;
    Ok(respond(
        &req,
        "forecast-accuracy",
        &r,
        forecast::accuracy_csv,
    ))
}
