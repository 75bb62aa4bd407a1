//! Opportunities: CRUD, gated stage moves, win / lose / reopen, the stage history, and
//! the managed list of loss reasons.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use super::extract::{etag, ApiJson, ApiQuery, IfMatch, OptionalJson};
use super::fields::{patched, MergePatch};
use super::pagination::{page_request, PageOut};
use super::utc;
use crate::auth::api_keys::Scope;
use crate::auth::Caller;
use crate::crm::opportunities::{self as crm, StageMove};
pub use crate::crm::opportunities::{NextAction, OpportunityInput};
pub use crate::crm::views::OpportunityOut;
use crate::domain::ids::{StageId, UserId};
use crate::domain::lead::LeadSource;
use crate::domain::money::{parse_minor, THOUSANDTHS};
use crate::domain::opportunity::{Channel, OpportunityStatus};
use crate::error::ProblemCode;
use crate::error::{AppError, AppResult};
use crate::state::AppState;
use crate::storage::opportunities::{self as store, OpportunityFilter, OpportunityRow};
use crate::storage::pipelines;
use crate::storage::{self, Visible};

/// The body of a PATCH: any writable members of [`OpportunityInput`].
pub type OpportunityPatch = MergePatch<OpportunityInput>;

fn respond(status: StatusCode, o: OpportunityRow, stage_probability: i32) -> HttpResponse {
    super::answer(status, "opportunities", &o.id)
        .insert_header(etag(o.version))
        .json(OpportunityOut::new(o, stage_probability))
}

fn can_read(caller: &Caller) -> AppResult<()> {
    caller.require_scope(Scope::OpportunitiesRead)
}

fn can_write(caller: &Caller) -> AppResult<()> {
    caller.require_scope(Scope::OpportunitiesWrite)
}

/// Creates an opportunity in an open stage of its pipeline (the first by default). The
/// stage's `required_fields` apply; the creation is the first row of the stage log.
#[utoipa::path(post, path = "/api/v1/opportunities", tag = "opportunities", operation_id = "create_opportunity",
    security(("bearer" = ["opportunities:write"])), request_body = OpportunityInput,
    responses(
        (status = 201, body = OpportunityOut, headers(("ETag" = String))),
        (status = 409, body = crate::error::Problem, description = "duplicate external_id"),
        (status = 422, body = crate::error::Problem, description = "invalid input or `stage_requirements_unmet`"),
    ))]
pub async fn create_opportunity(
    state: web::Data<AppState>,
    caller: Caller,
    body: ApiJson<OpportunityInput>,
) -> AppResult<HttpResponse> {
    can_write(&caller)?;
    let currency = state.settings.default_currency.clone();
    let (row, prob) = storage::run_tx(&state.pool, move |conn| {
        crm::create(conn, &caller, &currency, &body.0)
    })
    .await?;
    Ok(respond(StatusCode::CREATED, row, prob))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListOpportunities {
    pub limit: Option<usize>,
    pub cursor: Option<String>,
    /// `created_at` (default), `updated_at`, `name`, `amount`, `stage_entered_at`; `-` for descending.
    pub sort: Option<String>,
    pub pipeline_id: Option<String>,
    pub stage_id: Option<String>,
    pub status: Option<OpportunityStatus>,
    pub owner_id: Option<String>,
    pub tag: Option<String>,
    pub source: Option<LeadSource>,
    pub industry: Option<String>,
    /// `true`: only stalled open deals (past their stage's `stalled_after_days` in the
    /// stage or without activity); `false`: the others.
    pub stalled: Option<bool>,
    pub close_from: Option<NaiveDate>,
    pub close_to: Option<NaiveDate>,
    /// Deals whose amount, as written in its own currency, is at least this.
    pub amount_min: Option<String>,
    /// Deals whose amount, as written in its own currency, is at most this.
    pub amount_max: Option<String>,
    /// Part of the name.
    pub q: Option<String>,
}

fn amount_param(field: &str, value: &Option<String>) -> AppResult<Option<i64>> {
    value
        .as_deref()
        .map(|v| {
            // Exactly the documented pattern: no spaces around the number.
            // Compared with each deal's amount in its own currency, as written.
            let parsed = if v.trim() == v {
                parse_minor(v, THOUSANDTHS)
            } else {
                Err("must be a decimal string such as \"12500.00\" without spaces")
            };
            parsed.map_err(|m| AppError::BadRequest {
                code: ProblemCode::InvalidParameter,
                detail: format!("{field} {m}"),
                errors: vec![crate::error::FieldError::new(field, "invalid", m)],
            })
        })
        .transpose()
}

/// Lists the opportunities visible to the caller.
#[utoipa::path(get, path = "/api/v1/opportunities", tag = "opportunities", operation_id = "list_opportunities",
    security(("bearer" = ["opportunities:read"])), params(ListOpportunities),
    responses((status = 200, description = "One page as JSON, or every matching row with `Accept: text/csv` or `application/x-ndjson`", content((PageOut<OpportunityOut> = "application/json"), (String = "text/csv"), (String = "application/x-ndjson"))), (status = 400, body = crate::error::Problem)))]
pub async fn list_opportunities(
    state: web::Data<AppState>,
    caller: Caller,
    query: ApiQuery<ListOpportunities>,
    http_req: HttpRequest,
) -> AppResult<HttpResponse> {
    can_read(&caller)?;
    let q = query.0;
    let page = page_request(
        q.limit,
        q.cursor.as_deref(),
        q.sort.as_deref(),
        super::pagination::sorts("/api/v1/opportunities"),
        "created_at",
    )?;
    let filter = OpportunityFilter {
        amount_min: amount_param("amount_min", &q.amount_min)?,
        amount_max: amount_param("amount_max", &q.amount_max)?,
        pipeline_id: q.pipeline_id,
        stage_id: q.stage_id,
        status: q.status,
        owner_id: q.owner_id,
        tag: q.tag,
        source: q.source,
        industry: q.industry,
        stalled: q.stalled,
        close_from: q.close_from,
        close_to: q.close_to,
        q: q.q,
    };
    let vis = caller.visibility();
    super::export::list_or_export(
        &state.pool,
        &http_req,
        "opportunities",
        page,
        move |conn, req| store::list(conn, &vis, &filter, req),
        |(o, p)| OpportunityOut::new(o, p),
    )
    .await
}

/// One opportunity.
#[utoipa::path(get, path = "/api/v1/opportunities/{id}", tag = "opportunities", operation_id = "find_opportunity",
    security(("bearer" = ["opportunities:read"])), params(("id" = String, Path)),
    responses((status = 200, body = OpportunityOut, headers(("ETag" = String))), (status = 404, body = crate::error::Problem)))]
pub async fn find_opportunity(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
) -> AppResult<HttpResponse> {
    can_read(&caller)?;
    let vis = caller.visibility();
    let (row, prob) = storage::run_point_read(&state.pool, state.backend, move |conn| {
        store::find_visible_with_probability(conn, &vis, &id)
    })
    .await?;
    Ok(respond(StatusCode::OK, row, prob))
}

/// Changes an opportunity (JSON merge patch of its writable fields). A new `stage_id`
/// is a stage move: the target stage's requirements are checked against the patched
/// record and the move is logged.
#[utoipa::path(patch, path = "/api/v1/opportunities/{id}", tag = "opportunities", operation_id = "update_opportunity",
    security(("bearer" = ["opportunities:write"])), params(("id" = String, Path), ("If-Match" = Option<String>, Header)),
    request_body = OpportunityPatch,
    responses(
        (status = 200, body = OpportunityOut, headers(("ETag" = String))),
        (status = 404, body = crate::error::Problem),
        (status = 409, body = crate::error::Problem),
        (status = 412, body = crate::error::Problem, description = "version_conflict"),
        (status = 422, body = crate::error::Problem, description = "invalid input or `stage_requirements_unmet`"),
    ))]
pub async fn update_opportunity(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
    if_match: IfMatch,
    body: ApiJson<Value>,
) -> AppResult<HttpResponse> {
    can_write(&caller)?;
    let currency = state.settings.default_currency.clone();
    let (row, prob) = storage::run_tx(&state.pool, move |conn| {
        let sets_next_action = body.0.get("next_action").is_some();
        let edit = |current: OpportunityInput| patched(&current, &body.0);
        crm::update(
            conn,
            &caller,
            &currency,
            &id,
            if_match.0,
            edit,
            sets_next_action,
        )
    })
    .await?;
    Ok(respond(StatusCode::OK, row, prob))
}

/// Deletes an opportunity and its activities. Its stage log stays (it is history).
#[utoipa::path(delete, path = "/api/v1/opportunities/{id}", tag = "opportunities", operation_id = "delete_opportunity",
    security(("bearer" = ["opportunities:write"])), params(("id" = String, Path), ("If-Match" = Option<String>, Header)),
    responses((status = 204), (status = 404, body = crate::error::Problem), (status = 412, body = crate::error::Problem)))]
pub async fn delete_opportunity(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
    if_match: IfMatch,
) -> AppResult<HttpResponse> {
    can_write(&caller)?;
    storage::run_tx(&state.pool, move |conn| {
        crm::delete(conn, &caller, &id, if_match.0)
    })
    .await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MoveRequest {
    pub stage_id: String,
    /// Kept in the stage log.
    pub note: Option<String>,
    /// Check the gate and answer as a real move would, without writing anything.
    #[serde(default)]
    pub dry_run: bool,
    /// Required when the target is a lost stage.
    pub loss_reason_id: Option<String>,
    pub lost_note: Option<String>,
    /// Replaces the next action the stage would suggest.
    pub next_action: Option<NextAction>,
}

#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct WinRequest {
    pub note: Option<String>,
    #[serde(default)]
    pub dry_run: bool,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoseRequest {
    /// One of `/loss-reasons`.
    #[schema(example = "competitor")]
    pub loss_reason_id: String,
    pub note: Option<String>,
    /// Which lost stage, when the pipeline has several; defaults to the first.
    pub stage_id: Option<String>,
    #[serde(default)]
    pub dry_run: bool,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReopenRequest {
    /// The open stage the deal flows back to.
    pub stage_id: String,
    pub note: Option<String>,
    #[serde(default)]
    pub dry_run: bool,
}

/// Runs a stage move in a transaction (rolled back for a dry run) and answers the deal.
async fn stage_endpoint(
    state: web::Data<AppState>,
    caller: Caller,
    id: String,
    if_match: IfMatch,
    dry_run: bool,
    requested: StageMove,
) -> AppResult<HttpResponse> {
    can_write(&caller)?;
    let (row, prob) = storage::run_tx_maybe_dry(&state.pool, dry_run, move |conn| {
        crm::change_stage(conn, &caller, &id, if_match.0, requested)
    })
    .await?;
    Ok(respond(StatusCode::OK, row, prob))
}

/// Moves a deal to another stage of its pipeline. The target's `required_fields` must
/// be set (422 `stage_requirements_unmet` lists the missing ones); a won or lost target
/// wins or loses the deal. `dry_run` answers the same without writing.
#[utoipa::path(post, path = "/api/v1/opportunities/{id}/move", tag = "opportunities", operation_id = "move_opportunity",
    security(("bearer" = ["opportunities:write"])), params(("id" = String, Path), ("If-Match" = Option<String>, Header)),
    request_body = MoveRequest,
    responses(
        (status = 200, body = OpportunityOut, headers(("ETag" = String))),
        (status = 404, body = crate::error::Problem),
        (status = 409, body = crate::error::Problem, description = "the deal is closed"),
        (status = 412, body = crate::error::Problem, description = "version_conflict"),
        (status = 422, body = crate::error::Problem, description = "`stage_requirements_unmet` or invalid input"),
    ))]
pub async fn move_opportunity(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
    if_match: IfMatch,
    body: ApiJson<MoveRequest>,
) -> AppResult<HttpResponse> {
    let b = body.0;
    let requested = StageMove::Move {
        stage_id: b.stage_id,
        note: b.note,
        loss_reason_id: b.loss_reason_id,
        lost_note: b.lost_note,
        next_action: b.next_action,
    };
    stage_endpoint(
        state,
        caller,
        id.into_inner(),
        if_match,
        b.dry_run,
        requested,
    )
    .await
}

/// Wins a deal: moves it to the pipeline's won stage (its requirements apply).
#[utoipa::path(post, path = "/api/v1/opportunities/{id}/win", tag = "opportunities", operation_id = "win_opportunity",
    security(("bearer" = ["opportunities:write"])), params(("id" = String, Path), ("If-Match" = Option<String>, Header)),
    request_body(content = Option<WinRequest>, description = "Optional: without a body (or with an empty one) the deal is simply won. A body that is sent must be JSON with known members."),
    responses(
        (status = 200, body = OpportunityOut, headers(("ETag" = String))),
        (status = 409, body = crate::error::Problem),
        (status = 412, body = crate::error::Problem),
        (status = 422, body = crate::error::Problem),
    ))]
pub async fn win_opportunity(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
    if_match: IfMatch,
    body: OptionalJson<WinRequest>,
) -> AppResult<HttpResponse> {
    let b = body.0.unwrap_or_default();
    let requested = StageMove::Win { note: b.note };
    stage_endpoint(
        state,
        caller,
        id.into_inner(),
        if_match,
        b.dry_run,
        requested,
    )
    .await
}

/// Loses a deal with a managed loss reason.
#[utoipa::path(post, path = "/api/v1/opportunities/{id}/lose", tag = "opportunities", operation_id = "lose_opportunity",
    security(("bearer" = ["opportunities:write"])), params(("id" = String, Path), ("If-Match" = Option<String>, Header)),
    request_body = LoseRequest,
    responses(
        (status = 200, body = OpportunityOut, headers(("ETag" = String))),
        (status = 409, body = crate::error::Problem),
        (status = 412, body = crate::error::Problem),
        (status = 422, body = crate::error::Problem),
    ))]
pub async fn lose_opportunity(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
    if_match: IfMatch,
    body: ApiJson<LoseRequest>,
) -> AppResult<HttpResponse> {
    let b = body.0;
    let requested = StageMove::Lose {
        loss_reason_id: b.loss_reason_id,
        stage_id: b.stage_id,
        note: b.note,
    };
    stage_endpoint(
        state,
        caller,
        id.into_inner(),
        if_match,
        b.dry_run,
        requested,
    )
    .await
}

/// Brings a lost deal back to an open stage (回流); counted by the reactivation report.
#[utoipa::path(post, path = "/api/v1/opportunities/{id}/reopen", tag = "opportunities", operation_id = "reopen_opportunity",
    security(("bearer" = ["opportunities:write"])), params(("id" = String, Path), ("If-Match" = Option<String>, Header)),
    request_body = ReopenRequest,
    responses(
        (status = 200, body = OpportunityOut, headers(("ETag" = String))),
        (status = 409, body = crate::error::Problem, description = "the deal is not lost"),
        (status = 412, body = crate::error::Problem),
        (status = 422, body = crate::error::Problem),
    ))]
pub async fn reopen_opportunity(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
    if_match: IfMatch,
    body: ApiJson<ReopenRequest>,
) -> AppResult<HttpResponse> {
    let b = body.0;
    let requested = StageMove::Reopen {
        stage_id: b.stage_id,
        note: b.note,
    };
    stage_endpoint(
        state,
        caller,
        id.into_inner(),
        if_match,
        b.dry_run,
        requested,
    )
    .await
}

#[derive(Serialize, ToSchema)]
pub struct HistoryEntry {
    pub from_stage_id: Option<String>,
    pub from_stage_name: Option<String>,
    pub to_stage_id: String,
    pub to_stage_name: Option<String>,
    pub entered_at: DateTime<Utc>,
    /// When the deal entered the next stage; null for the current stay.
    pub left_at: Option<DateTime<Utc>>,
    /// `left_at − entered_at`; null for the current stay.
    pub duration_seconds: Option<i64>,
    pub actor_id: Option<String>,
    pub channel: Channel,
    pub note: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct HistoryOut {
    pub data: Vec<HistoryEntry>,
}

/// The deal's stage log, oldest first, with the time spent in each stay.
#[utoipa::path(get, path = "/api/v1/opportunities/{id}/history", tag = "opportunities", operation_id = "opportunity_history",
    security(("bearer" = ["opportunities:read"])), params(("id" = String, Path)),
    responses((status = 200, body = HistoryOut), (status = 404, body = crate::error::Problem)))]
pub async fn opportunity_history(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
    http_req: HttpRequest,
) -> AppResult<HttpResponse> {
    can_read(&caller)?;
    let vis = caller.visibility();
    let (rows, stages) = storage::run(&state.pool, move |conn| {
        let opp = OpportunityRow::find_visible(conn, &vis, &id)?;
        Ok((
            store::history(conn, &opp.id)?,
            pipelines::stages_of(conn, &opp.pipeline_id)?,
        ))
    })
    .await?;
    let name = |id: &str| stages.iter().find(|s| s.id == id).map(|s| s.name.clone());
    let mut data = Vec::with_capacity(rows.len());
    for (i, t) in rows.iter().enumerate() {
        let left_at = rows.get(i + 1).map(|next| next.entered_at);
        data.push(HistoryEntry {
            from_stage_name: t.from_stage_id.as_deref().and_then(name),
            from_stage_id: t.from_stage_id.as_ref().map(StageId::to_string),
            to_stage_name: name(&t.to_stage_id),
            to_stage_id: t.to_stage_id.to_string(),
            entered_at: utc(t.entered_at),
            left_at: left_at.map(utc),
            duration_seconds: left_at.map(|l| (l - t.entered_at).num_seconds()),
            actor_id: t.actor_id.as_ref().map(UserId::to_string),
            channel: t.channel,
            note: t.note.clone(),
        });
    }
    if let Some(format) = super::export::requested(&http_req) {
        return Ok(super::export::all_rows(format, "history", data));
    }
    Ok(HttpResponse::Ok().json(HistoryOut { data }))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListStageLog {
    pub limit: Option<usize>,
    pub cursor: Option<String>,
    pub pipeline_id: Option<String>,
    /// Entered at or after (RFC 3339).
    pub from: Option<DateTime<Utc>>,
    /// Entered before (RFC 3339).
    pub to: Option<DateTime<Utc>>,
}

/// One entry of the stage log, for BI tools.
#[derive(Serialize, ToSchema)]
pub struct StageLogEntry {
    pub id: String,
    pub opportunity_id: String,
    /// The deal's key in another system.
    pub external_id: Option<String>,
    pub pipeline_id: String,
    pub from_stage_id: Option<String>,
    pub from_stage_name: Option<String>,
    pub to_stage_id: String,
    pub to_stage_name: Option<String>,
    pub entered_at: DateTime<Utc>,
    pub actor_id: Option<String>,
    pub channel: Channel,
    pub note: Option<String>,
}

impl From<store::LogEntry> for StageLogEntry {
    fn from(e: store::LogEntry) -> Self {
        let t = e.row;
        StageLogEntry {
            id: t.id.into(),
            opportunity_id: t.opportunity_id.into(),
            external_id: e.external_id,
            pipeline_id: t.pipeline_id.into(),
            from_stage_id: t.from_stage_id.map(String::from),
            from_stage_name: e.from_stage_name,
            to_stage_id: t.to_stage_id.into(),
            to_stage_name: e.to_stage_name,
            entered_at: utc(t.entered_at),
            actor_id: t.actor_id.map(String::from),
            channel: t.channel,
            note: t.note,
        }
    }
}

/// The whole stage log of the deals the caller may see, in entry order: one page of
/// JSON, or every entry with `Accept: text/csv` or `application/x-ndjson` (for BI
/// tools). Imported history is marked `channel: import`.
#[utoipa::path(get, path = "/api/v1/stage-log", tag = "opportunities", operation_id = "list_stage_log",
    security(("bearer" = ["opportunities:read"])), params(ListStageLog),
    responses((status = 200, content(
        (PageOut<StageLogEntry> = "application/json"),
        (String = "text/csv"),
        (String = "application/x-ndjson"))),
        (status = 400, body = crate::error::Problem)))]
pub async fn list_stage_log(
    state: web::Data<AppState>,
    caller: Caller,
    query: ApiQuery<ListStageLog>,
    http_req: HttpRequest,
) -> AppResult<HttpResponse> {
    can_read(&caller)?;
    let q = query.0;
    let page = page_request(
        q.limit,
        q.cursor.as_deref(),
        None,
        &["entered_at"],
        "entered_at",
    )?;
    let filter = store::LogFilter {
        pipeline_id: q.pipeline_id,
        from: q.from.map(|t| t.naive_utc()),
        to: q.to.map(|t| t.naive_utc()),
    };
    let vis = caller.visibility();
    super::export::list_or_export(
        &state.pool,
        &http_req,
        "stage-log",
        page,
        move |conn, req| store::log_page(conn, &vis, &filter, req),
        StageLogEntry::from,
    )
    .await
}
