//! The report endpoints (the analytics module over HTTP). Every report is scoped to what
//! the caller may see, and answers CSV instead of JSON to `Accept: text/csv`.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

mod funnel_links;
mod negotiation;
mod snapshots;

pub use funnel_links::*;
pub use negotiation::to_csv;
use negotiation::*;
pub use snapshots::*;

use super::extract::{ApiJson, ApiQuery};
use crate::analytics::activity::{self, EffectivenessReport};
use crate::analytics::durations::{self, DurationsReport};
use crate::analytics::forecast::{
    self, AccuracyReport, ForecastReport, ForecastRow, Period, SnapshotRow,
};
use crate::analytics::funnel::{self, FunnelMode, FunnelReport};
use crate::analytics::funnel_svg::{self, Lang};
use crate::analytics::losses::{self, LossReport, ReactivationReport};
use crate::analytics::people::{self, LeadSourcesReport, Leaderboard, LeaderboardMetric};
use crate::analytics::stalled::{self, StalledReport};
use crate::analytics::{parse_bound, GroupBy, Scope};
use crate::auth::api_keys::Scope as KeyScope;
use crate::auth::caller::link_signer;
use crate::auth::links::{self, Signature};
use crate::auth::Caller;
use crate::domain::user::Role;
use crate::domain::{optional_id, required_text, Problems, MAX_NAME_CHARS};
use crate::error::ProblemCode;
use crate::error::{AppError, AppResult, FieldError};
use crate::state::AppState;
use crate::storage;

/// The query parameters each report reads (`*`: required). The OpenAPI document lists
/// exactly these per report (`http::openapi`), so a client is never offered a
/// parameter its report ignores.
pub const PARAMETERS: &[(&str, &[&str])] = &[
    (
        "funnel",
        &[
            "pipeline_id*",
            "from",
            "to",
            "owner_id",
            "team_id",
            "group_by",
            "mode",
        ],
    ),
    (
        "funnel.svg",
        &[
            "pipeline_id*",
            "from",
            "to",
            "owner_id",
            "team_id",
            "mode",
            "lang",
            "expires",
            "signature",
        ],
    ),
    (
        "stage-durations",
        &[
            "pipeline_id*",
            "from",
            "to",
            "owner_id",
            "team_id",
            "group_by",
        ],
    ),
    ("stalled", &["pipeline_id", "owner_id", "team_id", "limit"]),
    (
        "loss-reasons",
        &["pipeline_id", "from", "to", "owner_id", "team_id"],
    ),
    (
        "activity-effectiveness",
        &[
            "pipeline_id*",
            "from",
            "to",
            "owner_id",
            "team_id",
            "within_days",
        ],
    ),
    (
        "lead-sources",
        &["pipeline_id", "from", "to", "owner_id", "team_id"],
    ),
    (
        "leaderboard",
        &["pipeline_id", "from", "to", "owner_id", "team_id", "metric"],
    ),
    (
        "reactivation",
        &["pipeline_id", "from", "to", "owner_id", "team_id"],
    ),
    (
        "forecast",
        &["pipeline_id", "from", "to", "owner_id", "team_id", "period"],
    ),
];

/// Parameters shared by the reports; each report reads those [`PARAMETERS`] names.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
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
        code: ProblemCode::InvalidParameter,
        detail: format!("{field}: {message}"),
        errors: vec![FieldError::new(field, "invalid", message)],
    }
}

/// An id parameter: a UUID in its 36-character form, any case (as the document's
/// `format: uuid` allows), compared in the lower case ids are stored in.
fn id_param(field: &str, value: Option<&str>) -> AppResult<Option<String>> {
    value
        .map(|v| {
            uuid::Uuid::parse_str(v)
                .ok()
                .filter(|_| v.len() == 36)
                .map(|u| u.hyphenated().to_string())
                .ok_or_else(|| bad_param(field, "must be an id (a UUID)"))
        })
        .transpose()
}

/// The report's parameter checks applied to members of a body: a bad one is 422
/// `validation_failed` naming the member, as for any body.
fn body_error(e: AppError) -> AppError {
    match e {
        AppError::BadRequest {
            code: ProblemCode::InvalidParameter,
            errors,
            ..
        } => AppError::Validation(errors),
        other => other,
    }
}

fn scope_of(caller: &Caller, q: &ReportQuery, needs_pipeline: bool) -> AppResult<Scope> {
    caller.require_scope(KeyScope::ReportsRead)?;
    if needs_pipeline && q.pipeline_id.is_none() {
        return Err(AppError::BadRequest {
            code: ProblemCode::InvalidParameter,
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
        pipeline_id: id_param("pipeline_id", q.pipeline_id.as_deref())?,
        owner_id: id_param("owner_id", q.owner_id.as_deref())?,
        team_id: id_param("team_id", q.team_id.as_deref())?,
        from,
        to,
    })
}

fn respond<T: Serialize>(
    req: &HttpRequest,
    name: &str,
    body: &T,
    csv: impl FnOnce(&T) -> Vec<Vec<String>>,
) -> AppResult<HttpResponse> {
    Ok(if wants_csv(req) {
        HttpResponse::Ok()
            .content_type("text/csv; charset=utf-8")
            .insert_header((
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}.csv\""),
            ))
            .body(to_csv(&csv(body))?)
    } else {
        HttpResponse::Ok().json(body)
    })
}

/// Stage-to-stage conversion with numerators and denominators.
///
/// `cohort`: deals created in the range, followed to today. `period`: stage entries in
/// the range. Skipped stages count as passed, re-entries once; a reopened deal counts
/// once with all it reached. With `group_by`, `segments` repeats the structure per key.
#[utoipa::path(get, path = "/api/v1/reports/funnel", tag = "reports", operation_id = "funnel_report",
    security(("bearer" = ["reports:read"])), params(ReportQuery),
    responses((status = 200, body = FunnelReport),
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
    respond(&req, "funnel", &r, funnel::csv_rows)
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
    let pool = state.pool.clone();
    let r = storage::run(&state.pool, move |conn| {
        // On PostgreSQL a second connection, when one is free, halves the heaviest
        // query's time; SQLite reads in this process and has no use for one.
        let mut helper = match conn {
            storage::DbConn::Pg(_) => storage::checkout::try_checkout(&pool),
            storage::DbConn::Sqlite(_) => None,
        };
        durations::report(conn, helper.as_deref_mut(), &scope, q.group_by, now)
    })
    .await?;
    respond(&req, "stage-durations", &r, durations::csv_rows)
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
    respond(&req, "stalled", &r, stalled::csv_rows)
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
    respond(&req, "loss-reasons", &r, losses::csv_rows)
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
    respond(&req, "activity-effectiveness", &r, activity::csv_rows)
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
    respond(&req, "lead-sources", &r, people::lead_sources_csv)
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
    respond(&req, "leaderboard", &r, people::leaderboard_csv)
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
    respond(&req, "reactivation", &r, losses::reactivation_csv)
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
    respond(&req, "forecast", &r, forecast::csv_rows)
}
