//! Liveness and readiness probes.

use actix_web::{web, HttpResponse};
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::AppResult;
use crate::state::AppState;
use crate::storage;

#[derive(Serialize, ToSchema)]
pub struct HealthOut {
    #[schema(example = "ok")]
    pub status: &'static str,
}

/// The process is up.
#[utoipa::path(get, path = "/health/live", tag = "health", operation_id = "live", security(()),
    responses((status = 200, body = HealthOut)))]
pub async fn live() -> HttpResponse {
    HttpResponse::Ok().json(HealthOut { status: "ok" })
}

/// The process can reach its database.
#[utoipa::path(get, path = "/health/ready", tag = "health", operation_id = "ready", security(()),
    responses((status = 200, body = HealthOut), (status = 503, body = crate::error::Problem)))]
pub async fn ready(state: web::Data<AppState>) -> AppResult<HttpResponse> {
    storage::run(&state.pool, storage::ping).await?;
    Ok(HttpResponse::Ok().json(HealthOut { status: "ok" }))
}
