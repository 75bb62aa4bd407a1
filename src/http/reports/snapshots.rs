//! Forecast snapshots and how accurate a snapshot turned out.

use super::*;
use crate::storage::types::JsonText;

pub use crate::analytics::forecast::CreateSnapshot;

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

pub(super) fn snapshot_out(s: SnapshotRow) -> SnapshotOut {
    let params = s.scope.into_inner();
    SnapshotOut {
        rows: s.rows.into_inner(),
        period: s.period,
        id: s.id.into(),
        name: s.name,
        pipeline_id: params.pipeline_id,
        from: params.from,
        to: params.to,
        owner_id: params.owner_id,
        team_id: params.team_id,
        created_at: s.created_at.and_utc(),
        created_by: s.created_by.into(),
    }
}

pub(super) fn snapshot_query(p: &CreateSnapshot) -> ReportQuery {
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
/// Each user may take 100 snapshots in any 24 hours.
#[utoipa::path(post, path = "/api/v1/reports/forecast/snapshots", tag = "reports", operation_id = "create_forecast_snapshot",
    security(("bearer" = [])), request_body = CreateSnapshot,
    responses((status = 201, body = SnapshotOut), (status = 400, body = crate::error::Problem),
        (status = 422, body = crate::error::Problem, description = "`name` over 200 characters, or an id that is not a UUID"),
        (status = 429, body = crate::error::Problem, description = "`snapshot_quota_exceeded`: 100 snapshots in the last 24 hours; see `Retry-After`")))]
pub async fn create_forecast_snapshot(
    state: web::Data<AppState>,
    caller: Caller,
    body: ApiJson<CreateSnapshot>,
) -> AppResult<HttpResponse> {
    caller.require_person()?;
    let mut b = body.0;
    let mut p = Problems::default();
    b.name = required_text(&mut p, "name", &b.name, MAX_NAME_CHARS);
    for (field, id) in [
        ("pipeline_id", &b.pipeline_id),
        ("owner_id", &b.owner_id),
        ("team_id", &b.team_id),
    ] {
        optional_id(&mut p, field, id.as_deref());
    }
    p.into_result()?;
    let scope = scope_of(&caller, &snapshot_query(&b), false).map_err(body_error)?;
    let period = b.period.unwrap_or(Period::Month);
    let name = b.name.clone();
    let params = JsonText::encode(b)?;
    let snapshot = storage::run_tx(&state.pool, move |conn| {
        let now = storage::now();
        forecast::check_snapshot_quota(conn, &caller.user_id, now)?;
        let report = forecast::report(conn, &scope, period)?;
        let row = SnapshotRow {
            id: storage::new_id(),
            name,
            period,
            scope: params,
            rows: JsonText::encode(report.rows)?,
            created_at: now,
            created_by: caller.user_id.clone(),
        };
        forecast::insert_snapshot(conn, &row)?;
        Ok(row)
    })
    .await?;
    // A snapshot is read through its accuracy report, its one URL.
    let location = format!(
        "/api/v1/reports/forecast/snapshots/{}/accuracy",
        snapshot.id
    );
    Ok(HttpResponse::Created()
        .insert_header((actix_web::http::header::LOCATION, location))
        .json(snapshot_out(snapshot)))
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
        let scope = scope_of(&caller, &snapshot_query(&snapshot.scope), false)?;
        forecast::accuracy(conn, &snapshot, &scope)
    })
    .await?;
    respond(&req, "forecast-accuracy", &r, forecast::accuracy_csv)
}
