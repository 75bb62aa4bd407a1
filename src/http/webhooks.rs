//! Outbound webhook subscriptions (admin), their delivery log, redelivery and test
//! pings. The signing secret is shown once, when the subscription is created.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use super::crud::delete_owned;
use super::extract::{etag, ApiJson, ApiQuery, IfMatch};
use super::fields::{patched, MergePatch};
use super::utc;
use crate::auth::api_keys::Scope;
use crate::auth::Caller;
use crate::crm::fields::opt_text;
use crate::crm::records::{self, restamped, save_whole, Ops};
use crate::domain::integration::{DeliveryStatus, EventType, PING};
use crate::domain::user::Role;
use crate::domain::Problems;
use crate::error::{AppError, AppResult, FieldError, ProblemCode};
use crate::integrations::guard::{self, Networks};
use crate::integrations::signing::new_webhook_secret;
use crate::state::AppState;
use crate::storage::types::JsonText;
use crate::storage::webhooks::{self as store, AttemptRow, DeliveryRow, SubscriptionRow};
use crate::storage::{self, check_version, pipelines, teams, users, DbConn, Repo};

/// Which records a subscription hears about: each filter set must match the record
/// after the change (a deal's pipeline and stage, the record's owner or the owner's
/// team). Records without such a field (a lead has no pipeline) do not match it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct WebhookFilter {
    pub pipeline_id: Option<String>,
    /// With `opportunity.stage_changed`: only moves into this stage.
    pub to_stage_id: Option<String>,
    pub owner_id: Option<String>,
    pub team_id: Option<String>,
}

/// The writable fields of a subscription.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookInput {
    /// An `http` or `https` URL on a public address.
    #[schema(example = "https://hooks.example.com/stageflow")]
    pub url: String,
    pub description: Option<String>,
    #[schema(example = json!(["opportunity.stage_changed", "opportunity.won"]))]
    pub events: Vec<EventType>,
    #[serde(default)]
    pub filter: WebhookFilter,
    /// Defaults to true. Setting it true again re-enables a subscription its receiver
    /// disabled with `410 Gone`; its pending deliveries then go out.
    pub active: Option<bool>,
}

pub type WebhookPatch = MergePatch<WebhookInput>;

#[derive(Serialize, ToSchema)]
pub struct WebhookOut {
    pub id: String,
    pub url: String,
    pub description: Option<String>,
    pub events: Vec<EventType>,
    pub filter: WebhookFilter,
    pub active: bool,
    /// Why the service turned the subscription off, if it did.
    pub disabled_reason: Option<String>,
    pub version: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Serialize, ToSchema)]
pub struct WebhookCreated {
    #[serde(flatten)]
    pub webhook: WebhookOut,
    /// The Standard Webhooks signing secret. Shown only in this response.
    #[schema(example = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")]
    pub secret: String,
}

#[derive(Serialize, ToSchema)]
pub struct WebhookList {
    pub data: Vec<WebhookOut>,
}

impl From<SubscriptionRow> for WebhookOut {
    fn from(s: SubscriptionRow) -> Self {
        WebhookOut {
            events: s.events.to_vec(),
            filter: WebhookFilter {
                pipeline_id: s.pipeline_id.map(String::from),
                to_stage_id: s.to_stage_id.map(String::from),
                owner_id: s.owner_id.map(String::from),
                team_id: s.team_id.map(String::from),
            },
            created_at: utc(s.created_at),
            updated_at: utc(s.updated_at),
            id: s.id.into(),
            url: s.url,
            description: s.description,
            active: s.active,
            disabled_reason: s.disabled_reason,
            version: s.version,
        }
    }
}

impl From<&SubscriptionRow> for WebhookInput {
    fn from(s: &SubscriptionRow) -> Self {
        WebhookInput {
            url: s.url.clone(),
            description: s.description.clone(),
            events: s.events.to_vec(),
            filter: WebhookFilter {
                pipeline_id: s.pipeline_id.as_deref().map(str::to_owned),
                to_stage_id: s.to_stage_id.as_deref().map(str::to_owned),
                owner_id: s.owner_id.as_deref().map(str::to_owned),
                team_id: s.team_id.as_deref().map(str::to_owned),
            },
            active: Some(s.active),
        }
    }
}

/// Admins, and API keys of admins with the `webhooks:manage` scope.
fn can_manage(caller: &Caller) -> AppResult<()> {
    caller.require_role(&[Role::Admin])?;
    caller.require_scope(Scope::WebhooksManage)
}

fn networks(state: &AppState) -> AppResult<Networks> {
    Networks::parse(&state.settings.webhook_allowed_networks).map_err(AppError::internal)
}

/// Checks what needs no database, the URL included (resolved now: the guard refuses
/// internal addresses before anything is stored).
async fn checked(state: &AppState, input: WebhookInput) -> AppResult<WebhookInput> {
    let mut p = Problems::default();
    if input.url.chars().count() > 2000 {
        p.add("url", "too_long", "at most 2000 characters");
    } else if let Err(r) = guard::check(&input.url, &networks(state)?).await {
        p.add("url", r.code, r.message);
    }
    let description = opt_text(&mut p, "description", &input.description, 500);
    if input.events.is_empty() {
        p.add("events", "required", "name at least one event");
    }
    let mut events = input.events;
    events.sort_by_key(|e| e.as_str());
    events.dedup();
    p.into_result()?;
    Ok(WebhookInput {
        description,
        events,
        ..input
    })
}

/// Checks that the filter names records that exist.
fn check_filter(conn: &mut DbConn, f: &WebhookFilter) -> AppResult<()> {
    let mut p = Problems::default();
    if let Some(id) = &f.pipeline_id {
        if pipelines::find(conn, &id.as_str().into()).is_err() {
            p.add("filter.pipeline_id", "not_found", "no such pipeline");
        }
    }
    if let Some(id) = &f.to_stage_id {
        match pipelines::find_stage(conn, &id.as_str().into()) {
            Ok(stage)
                if f.pipeline_id
                    .as_ref()
                    .is_some_and(|p| *p != stage.pipeline_id) =>
            {
                p.add(
                    "filter.to_stage_id",
                    "wrong_pipeline",
                    "the stage belongs to another pipeline",
                )
            }
            Ok(_) => {}
            Err(_) => p.add("filter.to_stage_id", "not_found", "no such stage"),
        }
    }
    if let Some(id) = &f.owner_id {
        if users::find(conn, &id.as_str().into())?.is_none() {
            p.add("filter.owner_id", "not_found", "no such user");
        }
    }
    if let Some(id) = &f.team_id {
        if teams::find(conn, id)?.is_none() {
            p.add("filter.team_id", "not_found", "no such team");
        }
    }
    p.into_result()
}

fn apply(row: &mut SubscriptionRow, input: WebhookInput) -> AppResult<()> {
    let active = input.active.unwrap_or(true);
    if active && !row.active {
        row.disabled_reason = None;
    }
    row.url = input.url;
    row.description = input.description;
    row.events = JsonText::encode(input.events)?;
    row.pipeline_id = input.filter.pipeline_id.map(Into::into);
    row.to_stage_id = input.filter.to_stage_id.map(Into::into);
    row.owner_id = input.filter.owner_id.map(Into::into);
    row.team_id = input.filter.team_id.map(Into::into);
    row.active = active;
    Ok(())
}

/// Subscribes a URL to events (admin). Events are written to an outbox in the
/// transaction of each change and delivered, signed, by a background worker.
#[utoipa::path(post, path = "/api/v1/webhooks", tag = "webhooks", operation_id = "create_webhook",
    security(("bearer" = [])), request_body = WebhookInput,
    responses(
        (status = 201, body = WebhookCreated, headers(("Location" = String), ("ETag" = String))),
        (status = 403, body = crate::error::Problem),
        (status = 422, body = crate::error::Problem, description = "invalid_url, unsupported_scheme, unresolvable_host or forbidden_target on `url`; not_found on a filter"),
    ))]
pub async fn create_webhook(
    state: web::Data<AppState>,
    caller: Caller,
    body: ApiJson<WebhookInput>,
) -> AppResult<HttpResponse> {
    can_manage(&caller)?;
    let input = checked(&state, body.0).await?;
    let secret = new_webhook_secret()?;
    let now = storage::now();
    let mut row = SubscriptionRow {
        id: storage::new_id(),
        url: String::new(),
        description: None,
        events: JsonText::default(),
        pipeline_id: None,
        to_stage_id: None,
        owner_id: None,
        team_id: None,
        secret: secret.clone(),
        active: true,
        disabled_reason: None,
        version: 1,
        created_at: now,
        updated_at: now,
        created_by: caller.user_id.clone(),
    };
    let row = storage::run_tx(&state.pool, move |conn| {
        check_filter(conn, &input.filter)?;
        apply(&mut row, input)?;
        row.insert_row(conn)?;
        Ok(row)
    })
    .await?;
    Ok(super::answer(StatusCode::CREATED, "webhooks", &row.id)
        .insert_header(etag(row.version))
        .json(WebhookCreated {
            webhook: row.into(),
            secret,
        }))
}

/// Lists the subscriptions (admin), without their secrets.
#[utoipa::path(get, path = "/api/v1/webhooks", tag = "webhooks", operation_id = "list_webhooks",
    security(("bearer" = [])),
    responses((status = 200, body = WebhookList), (status = 403, body = crate::error::Problem)))]
pub async fn list_webhooks(state: web::Data<AppState>, caller: Caller) -> AppResult<HttpResponse> {
    can_manage(&caller)?;
    let rows = storage::run(&state.pool, store::list_subscriptions).await?;
    Ok(HttpResponse::Ok().json(WebhookList {
        data: rows.into_iter().map(WebhookOut::from).collect(),
    }))
}

/// One subscription (admin).
#[utoipa::path(get, path = "/api/v1/webhooks/{id}", tag = "webhooks", operation_id = "get_webhook",
    security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 200, body = WebhookOut, headers(("ETag" = String))), (status = 403, body = crate::error::Problem),
        (status = 404, body = crate::error::Problem)))]
pub async fn get_webhook(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
) -> AppResult<HttpResponse> {
    can_manage(&caller)?;
    let row = storage::run(&state.pool, move |c| Ok(SubscriptionRow::find(c, &id)?)).await?;
    Ok(HttpResponse::Ok()
        .insert_header(etag(row.version))
        .json(WebhookOut::from(row)))
}

/// Changes a subscription (admin; JSON merge patch). A new URL is checked like on
/// creation; `active: true` re-enables a subscription the service turned off.
#[utoipa::path(patch, path = "/api/v1/webhooks/{id}", tag = "webhooks", operation_id = "update_webhook",
    security(("bearer" = [])), params(("id" = String, Path), ("If-Match" = Option<String>, Header)),
    request_body = WebhookPatch,
    responses((status = 200, body = WebhookOut, headers(("ETag" = String))), (status = 403, body = crate::error::Problem),
        (status = 404, body = crate::error::Problem), (status = 412, body = crate::error::Problem),
        (status = 422, body = crate::error::Problem)))]
pub async fn update_webhook(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
    if_match: IfMatch,
    body: ApiJson<Value>,
) -> AppResult<HttpResponse> {
    can_manage(&caller)?;
    let id = id.into_inner();
    let lookup = id.clone();
    let current =
        storage::run(&state.pool, move |c| Ok(SubscriptionRow::find(c, &lookup)?)).await?;
    check_version(if_match.0, current.version)?;
    // The URL is resolved outside the transaction; the write then holds only if nobody
    // changed the subscription since it was read.
    let input = checked(&state, patched(&WebhookInput::from(&current), &body.0)?).await?;
    let ops = Ops {
        input_of: |r| WebhookInput::from(r),
        build: |conn, caller, input, current| {
            check_filter(conn, &input.filter)?;
            let mut row = restamped(current, caller)?;
            apply(&mut row, input.clone())?;
            Ok(row)
        },
        save: save_whole,
    };
    let row = storage::run_tx(&state.pool, move |conn| {
        records::update(
            conn,
            &caller,
            &id,
            Some(current.version),
            |_| Ok(input),
            &ops,
        )
    })
    .await?;
    Ok(HttpResponse::Ok()
        .insert_header(etag(row.version))
        .json(WebhookOut::from(row)))
}

/// Deletes a subscription with its delivery log (admin); nothing more is sent to it.
#[utoipa::path(delete, path = "/api/v1/webhooks/{id}", tag = "webhooks", operation_id = "delete_webhook",
    security(("bearer" = [])), params(("id" = String, Path), ("If-Match" = Option<String>, Header)),
    responses((status = 204), (status = 403, body = crate::error::Problem), (status = 404, body = crate::error::Problem),
        (status = 412, body = crate::error::Problem)))]
pub async fn delete_webhook(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
    if_match: IfMatch,
) -> AppResult<HttpResponse> {
    can_manage(&caller)?;
    let remove = |conn: &mut DbConn, _: &Caller, row: &SubscriptionRow| {
        store::delete_subscription(conn, &row.id, row.version)
    };
    delete_owned(&state, caller, id.into_inner(), if_match, remove).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// One attempt to deliver.
#[derive(Serialize, ToSchema)]
pub struct AttemptOut {
    pub attempt: i32,
    pub attempted_at: DateTime<Utc>,
    /// The receiver's status code; null when it did not answer.
    pub response_status: Option<i32>,
    pub latency_ms: i32,
    pub error: Option<String>,
}

/// One event's delivery to one subscription.
#[derive(Serialize, ToSchema)]
pub struct DeliveryOut {
    pub id: String,
    /// The event's `webhook-id`.
    pub event_id: String,
    pub event_type: String,
    pub record_id: String,
    pub status: DeliveryStatus,
    /// Attempts since it was (re)queued.
    pub attempts: i32,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub response_status: Option<i32>,
    pub latency_ms: Option<i32>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    /// Every attempt, oldest first.
    pub log: Vec<AttemptOut>,
}

#[derive(Serialize, ToSchema)]
pub struct DeliveryList {
    pub data: Vec<DeliveryOut>,
    /// Pass as `cursor` for the next (older) page; null on the last.
    pub next_cursor: Option<String>,
}

fn delivery_out(
    d: DeliveryRow,
    event_id: String,
    event_type: String,
    log: Vec<AttemptRow>,
) -> DeliveryOut {
    DeliveryOut {
        id: d.id.into(),
        event_id,
        event_type,
        record_id: d.record_id,
        status: d.status,
        attempts: d.attempts,
        next_attempt_at: d.next_attempt_at.map(utc),
        response_status: d.response_status,
        latency_ms: d.latency_ms,
        last_error: d.last_error,
        created_at: utc(d.created_at),
        finished_at: d.finished_at.map(utc),
        log: log
            .into_iter()
            .map(|a| AttemptOut {
                attempt: a.attempt,
                attempted_at: utc(a.attempted_at),
                response_status: a.response_status,
                latency_ms: a.latency_ms,
                error: a.error,
            })
            .collect(),
    }
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DeliveryQuery {
    pub status: Option<DeliveryStatus>,
    /// Default 50.
    pub limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// A subscription's deliveries, newest first, with each attempt (admin).
#[utoipa::path(get, path = "/api/v1/webhooks/{id}/deliveries", tag = "webhooks", operation_id = "list_webhook_deliveries",
    security(("bearer" = [])), params(("id" = String, Path), DeliveryQuery),
    responses((status = 200, body = DeliveryList), (status = 400, body = crate::error::Problem),
        (status = 403, body = crate::error::Problem), (status = 404, body = crate::error::Problem)))]
pub async fn list_deliveries(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
    query: ApiQuery<DeliveryQuery>,
) -> AppResult<HttpResponse> {
    can_manage(&caller)?;
    let q = query.0;
    let limit = q.limit.unwrap_or(50);
    let max = super::pagination::MAX_LIMIT as i64;
    if !(1..=max).contains(&limit) {
        return Err(AppError::BadRequest {
            code: ProblemCode::InvalidParameter,
            detail: format!("limit must be between 1 and {max}"),
            errors: vec![FieldError::new(
                "limit",
                "out_of_range",
                format!("must be between 1 and {max}"),
            )],
        });
    }
    let before = match q.cursor.as_deref().filter(|c| !c.is_empty()) {
        None => None,
        Some(c) => Some(
            c.parse::<i64>()
                .map_err(|_| super::pagination::bad_cursor())?,
        ),
    };
    let rows = storage::run(&state.pool, move |conn| {
        SubscriptionRow::find(conn, &id)?;
        store::deliveries(conn, &id, q.status, before, limit + 1)
    })
    .await?;
    let more = rows.len() as i64 > limit;
    let mut data = Vec::new();
    let mut last_seq = None;
    for (d, event_id, event_type, log) in rows.into_iter().take(limit as usize) {
        last_seq = Some(d.event_seq);
        data.push(delivery_out(d, event_id, event_type, log));
    }
    Ok(HttpResponse::Ok().json(DeliveryList {
        data,
        next_cursor: last_seq.filter(|_| more).map(|s| s.to_string()),
    }))
}

/// Queues a delivery again at once, with a fresh retry schedule (admin). Its earlier
/// attempts stay in its log.
#[utoipa::path(post, path = "/api/v1/webhooks/deliveries/{id}/redeliver", tag = "webhooks", operation_id = "redeliver_webhook_delivery",
    security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 202, body = DeliveryOut), (status = 403, body = crate::error::Problem),
        (status = 404, body = crate::error::Problem),
        (status = 409, body = crate::error::Problem, description = "the delivery is being sent right now")))]
pub async fn redeliver(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
) -> AppResult<HttpResponse> {
    can_manage(&caller)?;
    let out = storage::run_tx(&state.pool, move |conn| {
        store::find_delivery(conn, &id)?;
        store::redeliver(conn, &id)?;
        store::delivery_with_log(conn, &id)
    })
    .await?;
    let (d, event_id, event_type, log) = out;
    Ok(HttpResponse::Accepted().json(delivery_out(d, event_id, event_type, log)))
}

/// Sends a `webhook.ping` event to this subscription only (admin), to check the
/// receiver and its signature check; the answer is the queued delivery.
#[utoipa::path(post, path = "/api/v1/webhooks/{id}/test", tag = "webhooks", operation_id = "test_webhook",
    security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 202, body = DeliveryOut), (status = 403, body = crate::error::Problem),
        (status = 404, body = crate::error::Problem)))]
pub async fn test_webhook(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
) -> AppResult<HttpResponse> {
    can_manage(&caller)?;
    let out = storage::run_tx(&state.pool, move |conn| {
        let sub = SubscriptionRow::find(conn, &id)?;
        let event_id = crate::crm::events::message_id();
        let at = storage::now();
        let payload = serde_json::json!({
            "id": event_id,
            "type": PING,
            "occurred_at": utc(at),
            "data": {"webhook_id": sub.id, "url": sub.url},
            "previous": {},
        });
        let delivery = store::enqueue(
            conn,
            &event_id,
            PING,
            &sub.id,
            at,
            &payload.to_string(),
            &[&sub.id],
        )?;
        store::delivery_with_log(conn, &delivery[0])
    })
    .await?;
    let (d, event_id, event_type, log) = out;
    Ok(HttpResponse::Accepted().json(delivery_out(d, event_id, event_type, log)))
}
