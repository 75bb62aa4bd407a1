//! The managed list of loss reasons a lost deal names.

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::extract::ApiJson;
use crate::auth::api_keys::Scope;
use crate::auth::Caller;
use crate::domain::user::Role;
use crate::domain::{required_text, Problems};
use crate::error::{AppError, AppResult, ProblemCode};
use crate::state::AppState;
use crate::storage;
use crate::storage::scoring::{self, LossReasonRow};

#[derive(Serialize, ToSchema)]
pub struct LossReasonOut {
    #[schema(example = "competitor")]
    pub id: String,
    #[schema(example = "竞争对手介入")]
    pub label: String,
    pub active: bool,
    pub position: i32,
}

impl From<LossReasonRow> for LossReasonOut {
    fn from(r: LossReasonRow) -> Self {
        LossReasonOut {
            id: r.id,
            label: r.label,
            active: r.active,
            position: r.position,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct LossReasonList {
    pub data: Vec<LossReasonOut>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateLossReason {
    /// Stable snake_case code used by clients and reports.
    #[schema(example = "price_too_high")]
    pub id: String,
    #[schema(example = "报价过高")]
    pub label: String,
}

/// The managed loss reasons.
#[utoipa::path(get, path = "/api/v1/loss-reasons", tag = "opportunities", operation_id = "list_loss_reasons",
    security(("bearer" = ["opportunities:read"])), responses((status = 200, body = LossReasonList)))]
pub async fn list_loss_reasons(
    state: web::Data<AppState>,
    caller: Caller,
) -> AppResult<HttpResponse> {
    caller.require_scope(Scope::OpportunitiesRead)?;
    let rows = storage::run(&state.pool, scoring::loss_reasons).await?;
    Ok(HttpResponse::Ok().json(LossReasonList {
        data: rows.into_iter().map(LossReasonOut::from).collect(),
    }))
}

/// Adds a loss reason (admin or manager).
#[utoipa::path(post, path = "/api/v1/loss-reasons", tag = "opportunities", operation_id = "create_loss_reason",
    security(("bearer" = [])), request_body = CreateLossReason,
    responses((status = 201, body = LossReasonOut), (status = 403, body = crate::error::Problem),
        (status = 409, body = crate::error::Problem), (status = 422, body = crate::error::Problem)))]
pub async fn create_loss_reason(
    state: web::Data<AppState>,
    caller: Caller,
    body: ApiJson<CreateLossReason>,
) -> AppResult<HttpResponse> {
    caller.require_person()?;
    caller.require_role(&[Role::Admin, Role::Manager])?;
    let b = body.0;
    let mut p = Problems::default();
    let code = b.id.trim().to_owned();
    if code.is_empty()
        || code.len() > 50
        || !code
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    {
        p.add("id", "invalid", "use 1–50 characters of a-z, 0-9 and _");
    }
    let label = required_text(&mut p, "label", &b.label, 100);
    p.into_result()?;
    let row = storage::run_tx(&state.pool, move |conn| {
        if scoring::find_loss_reason(conn, &code)?.is_some() {
            return Err(AppError::Conflict {
                code: ProblemCode::LossReasonExists,
                detail: format!("The loss reason {code} already exists."),
                existing_id: Some(code),
            });
        }
        let row = LossReasonRow {
            position: scoring::next_loss_reason_position(conn)?,
            id: code,
            label,
            active: true,
            created_at: storage::now(),
        };
        scoring::insert_loss_reason(conn, &row)?;
        Ok(row)
    })
    .await?;
    // Loss reasons have no URL of their own; their list is where the new one is read.
    Ok(HttpResponse::Created()
        .insert_header((actix_web::http::header::LOCATION, "/api/v1/loss-reasons"))
        .json(LossReasonOut::from(row)))
}
