//! Lead capture: sources (admin) and the public endpoint third-party forms and webhook
//! senders post to. `POST /api/v1/capture/{key}` needs no login; what protects it is the
//! source's own rules: CORS from its allowed origins (forms), a signature with its
//! secret (webhooks), a honeypot and a minimum time to fill the form, and rate limits.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::middleware::Next;
use actix_web::{web, HttpMessage, HttpRequest, HttpResponse, ResponseError};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::extract::{etag, ApiJson, IfMatch};
use super::fields::{patched, MergePatch};
use super::utc;
use crate::auth::Caller;
use crate::crm::capture::{self as crm, Captured};
use crate::crm::fields::opt_text;
use crate::domain::integration::CaptureKind;
use crate::domain::lead::LeadSource;
use crate::domain::{required_text, Problems};
use crate::error::{AppError, AppResult};
use crate::integrations::capture::{is_target, lead_fields, Payload, DEDUPE_KEYS};
use crate::integrations::signing::{self, new_capture_secret, Refusal};
use crate::state::AppState;
use crate::storage::capture::{self as store, SourceRow};
use crate::storage::types::JsonText;
use crate::storage::{self, check_version, teams, users, DbConn};

/// The header a webhook sender signs with.
pub const SIGNATURE_HEADER: &str = "x-stageflow-signature";
/// How long a rotated-out secret still verifies.
const ROTATION_GRACE_HOURS: i64 = 24;
/// How long receipts (signatures, idempotency keys) are kept.
const RECEIPT_HOURS: i64 = 24;
const CAPTURE_PREFIX: &str = "/api/v1/capture/";

/// The `Origin` of a browser's capture post, taken off the request before the API's
/// own CORS rules see it: capture answers by each source's allowed origins instead.
#[derive(Clone)]
pub struct CaptureOrigin(pub String);

/// Moves `Origin` aside on capture paths (see [`CaptureOrigin`]).
pub async fn detach_origin(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    if req.path().starts_with(CAPTURE_PREFIX) {
        // Without its origin, a preflight must not look like one to the API's rules.
        let h = req.headers_mut();
        h.remove(header::ACCESS_CONTROL_REQUEST_METHOD);
        h.remove(header::ACCESS_CONTROL_REQUEST_HEADERS);
        if let Some(origin) = req.headers_mut().remove(header::ORIGIN).next() {
            // An origin that is not text cannot be allowed, but it is still an origin.
            let text = String::from_utf8_lossy(origin.as_bytes()).into_owned();
            req.extensions_mut().insert(CaptureOrigin(text));
        }
    }
    next.call(req).await
}

/// What a source does with a post.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CaptureSourceInput {
    #[schema(example = "官网预约演示表单")]
    pub name: String,
    pub kind: CaptureKind,
    /// Lead field → where its value is in a post: a form field name, or a JSON Pointer
    /// (`/contact/email`) in a JSON body. A lead field not named here is read from a
    /// field of its own name. Targets: the lead's text fields, `tags`, `custom.<name>`.
    #[serde(default)]
    #[schema(value_type = Object, example = json!({"email": "your-email", "custom.budget": "/budget"}))]
    pub field_map: Map<String, Value>,
    /// Values for lead fields a post leaves empty.
    #[serde(default)]
    #[schema(value_type = Object, example = json!({"region": "华东"}))]
    pub defaults: Map<String, Value>,
    /// Values set on every captured lead, whatever was posted.
    #[serde(default)]
    #[schema(value_type = Object, example = json!({"tags": ["2026 展会"]}))]
    pub constants: Map<String, Value>,
    /// The new lead's `source`; `web_form` for forms and `api` for webhooks by default.
    pub default_source: Option<LeadSource>,
    pub source_detail: Option<String>,
    /// Every new lead goes to this user …
    pub default_owner_id: Option<String>,
    /// … or to the team's active reps in turn (round robin).
    pub round_robin_team_id: Option<String>,
    /// Lead keys that make a post a repeat of an existing lead (in this order):
    /// `email`, `phone`, `external_id`. Default `["email"]`.
    pub dedupe_on: Option<Vec<String>>,
    /// Forms: the page origins allowed to post (`https://www.example.com`).
    #[serde(default)]
    pub allowed_origins: Vec<String>,
    /// Forms: where a browser posting a plain HTML form is sent afterwards (303).
    pub redirect_url: Option<String>,
    /// Forms: a field hidden from people; a post that fills it is dropped silently.
    pub honeypot_field: Option<String>,
    /// Forms: a post sent sooner than this after the page set `_ts` (Unix seconds) is
    /// dropped silently. 0 (default) turns the check off.
    pub min_submit_seconds: Option<i32>,
    /// Posts per minute for the whole source (default 60).
    pub rate_limit_per_minute: Option<i32>,
    /// Default true.
    pub active: Option<bool>,
}

pub type CaptureSourcePatch = MergePatch<CaptureSourceInput>;

#[derive(Serialize, ToSchema)]
pub struct CaptureSourceOut {
    pub id: String,
    /// The public key in the capture URL.
    pub key: String,
    /// Where to post: `POST {capture_url}`.
    #[schema(example = "/api/v1/capture/cs_4Fq…")]
    pub capture_url: String,
    pub name: String,
    pub kind: CaptureKind,
    #[schema(value_type = Object)]
    pub field_map: Map<String, Value>,
    #[schema(value_type = Object)]
    pub defaults: Map<String, Value>,
    #[schema(value_type = Object)]
    pub constants: Map<String, Value>,
    pub default_source: LeadSource,
    pub source_detail: Option<String>,
    pub default_owner_id: Option<String>,
    pub round_robin_team_id: Option<String>,
    pub dedupe_on: Vec<String>,
    pub allowed_origins: Vec<String>,
    pub redirect_url: Option<String>,
    pub honeypot_field: Option<String>,
    pub min_submit_seconds: i32,
    pub rate_limit_per_minute: i32,
    /// Webhooks: until when the secret replaced by the last rotation still verifies.
    pub previous_secret_valid_until: Option<DateTime<Utc>>,
    pub active: bool,
    pub version: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Serialize, ToSchema)]
pub struct CaptureSourceCreated {
    #[serde(flatten)]
    pub source: CaptureSourceOut,
    /// Webhooks: the signing secret, shown only in this response (null for forms).
    pub secret: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct CaptureSourceList {
    pub data: Vec<CaptureSourceOut>,
}

#[derive(Serialize, ToSchema)]
pub struct RotatedSecret {
    /// The new secret, shown only in this response.
    pub secret: String,
    /// The old secret verifies until then.
    pub previous_secret_valid_until: DateTime<Utc>,
}

fn part(row: &SourceRow, name: &str) -> Map<String, Value> {
    row.constants
        .get(name)
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default()
}

impl From<SourceRow> for CaptureSourceOut {
    fn from(s: SourceRow) -> Self {
        CaptureSourceOut {
            capture_url: format!("{CAPTURE_PREFIX}{}", s.public_key),
            defaults: part(&s, "defaults"),
            constants: part(&s, "constants"),
            field_map: (*s.field_map).clone(),
            dedupe_on: s.dedupe_on.to_vec(),
            allowed_origins: s.allowed_origins.to_vec(),
            previous_secret_valid_until: s.previous_secret_until.map(utc),
            created_at: utc(s.created_at),
            updated_at: utc(s.updated_at),
            id: s.id,
            key: s.public_key,
            name: s.name,
            kind: s.kind,
            default_source: s.default_source,
            source_detail: s.source_detail,
            default_owner_id: s.owner_id,
            round_robin_team_id: s.team_id,
            redirect_url: s.redirect_url,
            honeypot_field: s.honeypot_field,
            min_submit_seconds: s.min_submit_seconds,
            rate_limit_per_minute: s.rate_limit_per_minute,
            active: s.active,
            version: s.version,
        }
    }
}

impl From<&SourceRow> for CaptureSourceInput {
    fn from(s: &SourceRow) -> Self {
        CaptureSourceInput {
            name: s.name.clone(),
            kind: s.kind,
            field_map: (*s.field_map).clone(),
            defaults: part(s, "defaults"),
            constants: part(s, "constants"),
            default_source: Some(s.default_source),
            source_detail: s.source_detail.clone(),
            default_owner_id: s.owner_id.clone(),
            round_robin_team_id: s.team_id.clone(),
            dedupe_on: Some(s.dedupe_on.to_vec()),
            allowed_origins: s.allowed_origins.to_vec(),
            redirect_url: s.redirect_url.clone(),
            honeypot_field: s.honeypot_field.clone(),
            min_submit_seconds: Some(s.min_submit_seconds),
            rate_limit_per_minute: Some(s.rate_limit_per_minute),
            active: Some(s.active),
        }
    }
}

/// `scheme://host[:port]`, as browsers send `Origin`.
fn is_origin(o: &str) -> bool {
    match reqwest::Url::parse(o) {
        Ok(u) => {
            matches!(u.scheme(), "http" | "https")
                && u.host_str().is_some()
                && u.path() == "/"
                && !o.ends_with('/')
                && u.query().is_none()
        }
        Err(_) => false,
    }
}

fn check_targets(p: &mut Problems, field: &str, map: &Map<String, Value>, specs: bool) {
    for (k, v) in map {
        if !is_target(k) {
            p.add(
                format!("{field}.{k}"),
                "unknown_field",
                "not a lead field a capture may fill (text fields, tags, custom.<name>)",
            );
        } else if specs
            && !v
                .as_str()
                .is_some_and(|s| !s.trim().is_empty() && s.len() <= 200)
        {
            p.add(
                format!("{field}.{k}"),
                "invalid",
                "give a form field name or a JSON Pointer (at most 200 characters)",
            );
        }
    }
}

/// Checks a source and writes it into `row`.
fn apply(conn: &mut DbConn, row: &mut SourceRow, input: CaptureSourceInput) -> AppResult<()> {
    let mut p = Problems::default();
    let name = required_text(&mut p, "name", &input.name, 200);
    if input.kind != row.kind && row.version > 0 {
        p.add(
            "kind",
            "immutable",
            "create another source for another kind",
        );
    }
    check_targets(&mut p, "field_map", &input.field_map, true);
    check_targets(&mut p, "defaults", &input.defaults, false);
    check_targets(&mut p, "constants", &input.constants, false);
    let detail = opt_text(&mut p, "source_detail", &input.source_detail, 200);
    let dedupe = input.dedupe_on.unwrap_or_else(|| vec!["email".to_owned()]);
    for (i, k) in dedupe.iter().enumerate() {
        if !DEDUPE_KEYS.contains(&k.as_str()) {
            p.add(
                format!("dedupe_on[{i}]"),
                "unknown_value",
                "email, phone or external_id",
            );
        }
    }
    let mut origins = Vec::new();
    for (i, o) in input.allowed_origins.iter().enumerate() {
        match reqwest::Url::parse(o).ok().filter(|_| is_origin(o)) {
            // As browsers write it: lower-case host, punycode, no default port.
            Some(u) => origins.push(u.origin().ascii_serialization()),
            None => p.add(
                format!("allowed_origins[{i}]"),
                "invalid",
                "an origin: scheme://host[:port], no path",
            ),
        }
    }
    if let Some(url) = &input.redirect_url {
        if !reqwest::Url::parse(url).is_ok_and(|u| matches!(u.scheme(), "http" | "https")) {
            p.add(
                "redirect_url",
                "invalid_url",
                "an absolute http:// or https:// URL",
            );
        }
    }
    let honeypot = opt_text(&mut p, "honeypot_field", &input.honeypot_field, 100);
    let min_secs = input.min_submit_seconds.unwrap_or(0);
    if !(0..=3600).contains(&min_secs) {
        p.add("min_submit_seconds", "out_of_range", "between 0 and 3600");
    }
    let rate = input.rate_limit_per_minute.unwrap_or(60);
    if !(1..=100_000).contains(&rate) {
        p.add(
            "rate_limit_per_minute",
            "out_of_range",
            "between 1 and 100000",
        );
    }
    if input.default_owner_id.is_some() && input.round_robin_team_id.is_some() {
        p.add(
            "round_robin_team_id",
            "not_allowed",
            "give default_owner_id or round_robin_team_id, not both",
        );
    }
    if let Some(id) = &input.default_owner_id {
        if !users::find(conn, &id.as_str().into())?.is_some_and(|u| u.active) {
            p.add("default_owner_id", "not_found", "no such active user");
        }
    }
    if let Some(id) = &input.round_robin_team_id {
        if teams::find(conn, id)?.is_none() {
            p.add("round_robin_team_id", "not_found", "no such team");
        }
    }
    p.into_result()?;
    let json = |v| JsonText::new(v).map_err(AppError::internal);
    let mut both = Map::new();
    both.insert("defaults".into(), Value::Object(input.defaults));
    both.insert("constants".into(), Value::Object(input.constants));
    row.name = name;
    row.kind = input.kind;
    row.field_map = JsonText::new(input.field_map).map_err(AppError::internal)?;
    row.constants = json(both)?;
    row.default_source = input.default_source.unwrap_or(match input.kind {
        CaptureKind::Form => LeadSource::WebForm,
        CaptureKind::Webhook => LeadSource::Api,
    });
    row.source_detail = detail;
    row.owner_id = input.default_owner_id;
    row.team_id = input.round_robin_team_id;
    row.dedupe_on = JsonText::new(dedupe).map_err(AppError::internal)?;
    row.allowed_origins = JsonText::new(origins).map_err(AppError::internal)?;
    row.redirect_url = input.redirect_url;
    row.honeypot_field = honeypot;
    row.min_submit_seconds = min_secs;
    row.rate_limit_per_minute = rate;
    row.active = input.active.unwrap_or(true);
    Ok(())
}

/// Creates a capture source (admin). A webhook source's signing secret is in this
/// answer only.
#[utoipa::path(post, path = "/api/v1/capture-sources", tag = "capture", operation_id = "create_capture_source",
    security(("bearer" = [])), request_body = CaptureSourceInput,
    responses(
        (status = 201, body = CaptureSourceCreated, headers(("Location" = String), ("ETag" = String))),
        (status = 403, body = crate::error::Problem),
        (status = 422, body = crate::error::Problem),
    ))]
pub async fn create_source(
    state: web::Data<AppState>,
    caller: Caller,
    body: ApiJson<CaptureSourceInput>,
) -> AppResult<HttpResponse> {
    caller.require_admin()?;
    let input = body.0;
    let secret = match input.kind {
        CaptureKind::Webhook => Some(new_capture_secret()?),
        CaptureKind::Form => None,
    };
    let now = storage::now();
    let mut row = SourceRow {
        id: storage::new_id(),
        name: String::new(),
        kind: input.kind,
        public_key: format!("cs_{}", crate::auth::password::random_token(24)?),
        field_map: JsonText::default(),
        constants: JsonText::default(),
        default_source: LeadSource::WebForm,
        source_detail: None,
        owner_id: None,
        team_id: None,
        round_robin_next: 0,
        dedupe_on: JsonText::default(),
        allowed_origins: JsonText::default(),
        redirect_url: None,
        honeypot_field: None,
        min_submit_seconds: 0,
        rate_limit_per_minute: 60,
        secret: secret.clone(),
        previous_secret: None,
        previous_secret_until: None,
        active: true,
        version: 0,
        created_at: now,
        updated_at: now,
        created_by: caller.user_id.to_string(),
    };
    let row = storage::run_tx(&state.pool, move |conn| {
        apply(conn, &mut row, input)?;
        row.version = 1;
        store::insert(conn, &row)?;
        Ok(row)
    })
    .await?;
    Ok(
        super::answer(StatusCode::CREATED, "capture-sources", &row.id)
            .insert_header(etag(row.version))
            .json(CaptureSourceCreated {
                source: row.into(),
                secret,
            }),
    )
}

/// Lists capture sources (admin), without secrets.
#[utoipa::path(get, path = "/api/v1/capture-sources", tag = "capture", operation_id = "list_capture_sources",
    security(("bearer" = [])),
    responses((status = 200, body = CaptureSourceList), (status = 403, body = crate::error::Problem)))]
pub async fn list_sources(state: web::Data<AppState>, caller: Caller) -> AppResult<HttpResponse> {
    caller.require_admin()?;
    let rows = storage::run(&state.pool, store::list).await?;
    Ok(HttpResponse::Ok().json(CaptureSourceList {
        data: rows.into_iter().map(CaptureSourceOut::from).collect(),
    }))
}

/// One capture source (admin).
#[utoipa::path(get, path = "/api/v1/capture-sources/{id}", tag = "capture", operation_id = "get_capture_source",
    security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 200, body = CaptureSourceOut, headers(("ETag" = String))), (status = 403, body = crate::error::Problem),
        (status = 404, body = crate::error::Problem)))]
pub async fn get_source(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
) -> AppResult<HttpResponse> {
    caller.require_admin()?;
    let row = storage::run(&state.pool, move |c| store::find(c, &id)).await?;
    Ok(HttpResponse::Ok()
        .insert_header(etag(row.version))
        .json(CaptureSourceOut::from(row)))
}

/// Changes a capture source (admin; JSON merge patch). The kind stays.
#[utoipa::path(patch, path = "/api/v1/capture-sources/{id}", tag = "capture", operation_id = "update_capture_source",
    security(("bearer" = [])), params(("id" = String, Path), ("If-Match" = Option<String>, Header)),
    request_body = CaptureSourcePatch,
    responses((status = 200, body = CaptureSourceOut, headers(("ETag" = String))), (status = 403, body = crate::error::Problem),
        (status = 404, body = crate::error::Problem), (status = 412, body = crate::error::Problem),
        (status = 422, body = crate::error::Problem)))]
pub async fn update_source(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
    if_match: IfMatch,
    body: ApiJson<Value>,
) -> AppResult<HttpResponse> {
    caller.require_admin()?;
    let row = storage::run_tx(&state.pool, move |conn| {
        let mut row = store::find(conn, &id)?;
        check_version(if_match.0, row.version)?;
        let input = patched(&CaptureSourceInput::from(&row), &body.0)?;
        apply(conn, &mut row, input)?;
        row.version += 1;
        row.updated_at = storage::now();
        store::save(conn, &row)?;
        Ok(row)
    })
    .await?;
    Ok(HttpResponse::Ok()
        .insert_header(etag(row.version))
        .json(CaptureSourceOut::from(row)))
}

/// Deletes a capture source (admin); its URL stops taking posts at once.
#[utoipa::path(delete, path = "/api/v1/capture-sources/{id}", tag = "capture", operation_id = "delete_capture_source",
    security(("bearer" = [])), params(("id" = String, Path), ("If-Match" = Option<String>, Header)),
    responses((status = 204), (status = 403, body = crate::error::Problem), (status = 404, body = crate::error::Problem),
        (status = 412, body = crate::error::Problem)))]
pub async fn delete_source(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
    if_match: IfMatch,
) -> AppResult<HttpResponse> {
    caller.require_admin()?;
    storage::run_tx(&state.pool, move |conn| {
        let row = store::find(conn, &id)?;
        check_version(if_match.0, row.version)?;
        store::delete(conn, &id, row.version)
    })
    .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Gives a webhook source a new secret (admin). The old one keeps verifying for 24
/// hours, so senders can switch without losing posts.
#[utoipa::path(post, path = "/api/v1/capture-sources/{id}/rotate-secret", tag = "capture", operation_id = "rotate_capture_secret",
    security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 200, body = RotatedSecret), (status = 403, body = crate::error::Problem),
        (status = 404, body = crate::error::Problem), (status = 422, body = crate::error::Problem)))]
pub async fn rotate_secret(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
) -> AppResult<HttpResponse> {
    caller.require_admin()?;
    let secret = new_capture_secret()?;
    let new = secret.clone();
    let until = storage::run_tx(&state.pool, move |conn| {
        let mut row = store::find(conn, &id)?;
        if row.kind != CaptureKind::Webhook {
            return Err(AppError::field(
                "kind",
                "not_supported",
                "form sources have no secret",
            ));
        }
        let now = storage::now();
        let until = now + chrono::Duration::hours(ROTATION_GRACE_HOURS);
        row.previous_secret = row.secret.take();
        row.previous_secret_until = Some(until);
        row.secret = Some(new);
        row.version += 1;
        row.updated_at = now;
        store::save(conn, &row)?;
        Ok(until)
    })
    .await?;
    Ok(HttpResponse::Ok().json(RotatedSecret {
        secret,
        previous_secret_valid_until: utc(until),
    }))
}

/// What a capture answers when it did not redirect.
#[derive(Serialize, ToSchema)]
pub struct CaptureAccepted {
    pub lead_id: String,
    /// `created`, or `updated` for a repeat of an existing lead.
    #[schema(example = "created")]
    pub status: String,
}

/// The browser's `Origin`: set aside by [`detach_origin`], or still on the request when
/// the path was written so that the middleware did not recognise it (percent-encoded).
fn request_origin(req: &HttpRequest) -> Option<String> {
    req.extensions()
        .get::<CaptureOrigin>()
        .map(|o| o.0.clone())
        .or_else(|| {
            req.headers()
                .get(header::ORIGIN)
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        })
}

fn origin_allowed(source: &SourceRow, origin: &str) -> bool {
    source.allowed_origins.iter().any(|o| o == origin)
}

fn cors_headers(res: &mut HttpResponse, origin: &str) {
    let h = res.headers_mut();
    if let Ok(v) = HeaderValue::from_str(origin) {
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
    }
    h.insert(header::VARY, HeaderValue::from_static("Origin"));
}

async fn active_source(state: &AppState, key: String) -> AppResult<SourceRow> {
    storage::run(&state.pool, move |c| store::find_by_key(c, &key))
        .await?
        .filter(|s| s.active)
        .ok_or(AppError::NotFound)
}

/// The CORS preflight of a browser about to post to a form source: 204 with the
/// CORS headers for an allowed origin, 403 otherwise. (Not an API operation: browsers
/// send it on their own, so it is left out of the OpenAPI document.)
pub async fn preflight(
    state: web::Data<AppState>,
    req: HttpRequest,
    key: web::Path<String>,
) -> AppResult<HttpResponse> {
    let source = active_source(&state, key.into_inner()).await?;
    let Some(origin) = request_origin(&req).filter(|o| origin_allowed(&source, o)) else {
        return Err(AppError::Forbidden(
            "This origin may not post to this source.".into(),
        ));
    };
    let mut res = HttpResponse::NoContent()
        .insert_header((header::ACCESS_CONTROL_ALLOW_METHODS, "POST"))
        .insert_header((
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            "content-type, idempotency-key",
        ))
        .insert_header((header::ACCESS_CONTROL_MAX_AGE, "600"))
        .finish();
    cors_headers(&mut res, &origin);
    Ok(res)
}

/// Takes a lead from a third-party form or webhook (no login). Form posts
/// (urlencoded or multipart) and JSON are accepted. `202` with the lead id, or `303`
/// to the source's `redirect_url` for a browser's plain HTML form (`Accept: text/html`).
/// A repeat (same email, phone or external id, per the source, or the same
/// `Idempotency-Key`) updates the existing lead. Webhook sources require
/// `X-Stageflow-Signature: t=<unix>,v1=<hex HMAC-SHA256 of "<t>.<raw body>">`;
/// missing, stale (over 5 minutes), wrong or replayed signatures get 401 and nothing
/// is stored.
#[utoipa::path(post, path = "/api/v1/capture/{key}", tag = "capture", operation_id = "capture_lead",
    security(()),
    params(("key" = String, Path),
        ("X-Stageflow-Signature" = Option<String>, Header, description = "Webhook sources: t=<unix>,v1=<hex>"),
        ("Idempotency-Key" = Option<String>, Header)),
    request_body(content(
        (Object = "application/x-www-form-urlencoded"),
        (Object = "multipart/form-data"),
        (Object = "application/json"),
    )),
    responses(
        (status = 202, body = CaptureAccepted),
        (status = 303, description = "To the source's redirect_url", headers(("Location" = String))),
        (status = 401, body = crate::error::Problem, description = "invalid_signature"),
        (status = 403, body = crate::error::Problem, description = "origin not allowed"),
        (status = 404, body = crate::error::Problem),
        (status = 413, body = crate::error::Problem),
        (status = 415, body = crate::error::Problem),
        (status = 422, body = crate::error::Problem),
        (status = 429, body = crate::error::Problem, headers(("Retry-After" = String))),
    ))]
pub async fn capture(
    state: web::Data<AppState>,
    req: HttpRequest,
    key: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    let origin = request_origin(&req);
    let source = match active_source(&state, key.into_inner()).await {
        Ok(s) => s,
        Err(e) => return e.error_response(),
    };
    let allowed = origin
        .as_ref()
        .filter(|o| origin_allowed(&source, o))
        .cloned();
    if origin.is_some() && allowed.is_none() {
        return AppError::Forbidden("This origin may not post to this source.".into())
            .error_response();
    }
    let mut res = match take(&state, &req, source, body).await {
        Ok(r) => r,
        Err(e) => e.error_response(),
    };
    if let Some(o) = allowed {
        cors_headers(&mut res, &o);
    }
    res
}

fn limited(q: crate::auth::rate_limit::Quota) -> AppResult<()> {
    if q.allowed {
        Ok(())
    } else {
        Err(AppError::RateLimited {
            retry_after_secs: q.reset_secs,
        })
    }
}

async fn payload_of(req: &HttpRequest, body: web::Bytes) -> AppResult<Payload> {
    let ct = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let essence = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match essence.as_str() {
        "application/x-www-form-urlencoded" => Ok(Payload::Form(
            form_urlencoded::parse(&body).into_owned().collect(),
        )),
        "multipart/form-data" => {
            let boundary = multer::parse_boundary(&ct)
                .map_err(|_| unreadable("the multipart boundary is missing"))?;
            let stream = futures_util::stream::once(async move { Ok::<_, std::io::Error>(body) });
            let mut parts = multer::Multipart::new(stream, boundary);
            let mut fields = Vec::new();
            while let Some(field) = parts
                .next_field()
                .await
                .map_err(|e| unreadable(&e.to_string()))?
            {
                let name = field.name().unwrap_or("").to_owned();
                if field.file_name().is_some() {
                    continue;
                }
                let text = field.text().await.map_err(|e| unreadable(&e.to_string()))?;
                fields.push((name, text));
            }
            Ok(Payload::Form(fields))
        }
        e if e == "application/json" || e.ends_with("+json") => {
            match serde_json::from_slice::<Value>(&body) {
                Ok(v @ Value::Object(_)) => Ok(Payload::Json(v)),
                Ok(_) => Err(AppError::field(
                    "",
                    "invalid_type",
                    "the body must be a JSON object",
                )),
                Err(e) => Err(AppError::BadRequest {
                    code: crate::error::ProblemCode::MalformedJson,
                    detail: format!("The body is not valid JSON: {e}"),
                    errors: Vec::new(),
                }),
            }
        }
        _ => Err(AppError::UnsupportedMediaType(
            "Post application/x-www-form-urlencoded, multipart/form-data or application/json."
                .into(),
        )),
    }
}

fn unreadable(why: &str) -> AppError {
    AppError::BadRequest {
        code: crate::error::ProblemCode::BodyUnreadable,
        detail: format!("The form body cannot be read: {why}"),
        errors: Vec::new(),
    }
}

/// Everything after the source and origin are known.
async fn take(
    state: &AppState,
    req: &HttpRequest,
    source: SourceRow,
    body: web::Bytes,
) -> AppResult<HttpResponse> {
    let ip = super::rate_limit::client_ip(req.peer_addr());
    if source.kind == CaptureKind::Form {
        limited(
            state
                .capture_ip_limiter
                .take(&format!("{}:{ip}", source.id)),
        )?;
    }
    let per_minute = u32::try_from(source.rate_limit_per_minute).unwrap_or(1);
    if source.kind == CaptureKind::Form {
        limited(state.capture_source_budgets.take(per_minute, &source.id))?;
    }
    let now = storage::now();
    let signature = match source.kind {
        CaptureKind::Webhook => {
            let header = req
                .headers()
                .get(SIGNATURE_HEADER)
                .and_then(|v| v.to_str().ok());
            let mut secrets: Vec<&str> = source.secret.iter().map(String::as_str).collect();
            if source.previous_secret_until.is_some_and(|t| t > now) {
                secrets.extend(source.previous_secret.as_deref());
            }
            let fp = signing::verify_capture(header, &body, &secrets, now.and_utc().timestamp())
                .map_err(refusal)?;
            // Only signed posts spend a webhook source's budget, so unsigned noise
            // cannot starve the real sender.
            limited(state.capture_source_budgets.take(per_minute, &source.id))?;
            Some(format!("sig:{fp}"))
        }
        CaptureKind::Form => None,
    };
    let payload = payload_of(req, body).await?;
    let wants_html = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/html"));
    let redirect = source.redirect_url.clone();
    let answer = |captured: Captured| -> HttpResponse {
        match (&redirect, wants_html) {
            (Some(url), true) => HttpResponse::SeeOther()
                .insert_header((header::LOCATION, url.clone()))
                .finish(),
            _ => HttpResponse::Accepted().json(CaptureAccepted {
                lead_id: captured.lead_id,
                status: if captured.created {
                    "created"
                } else {
                    "updated"
                }
                .into(),
            }),
        }
    };
    if source.kind == CaptureKind::Form
        && (payload.honeypot_filled(source.honeypot_field.as_deref())
            || payload.too_fast(source.min_submit_seconds, now.and_utc().timestamp()))
    {
        tracing::info!(source = %source.id, "capture dropped as automated");
        return Ok(answer(Captured {
            lead_id: storage::new_id(),
            created: true,
        }));
    }
    let fields = lead_fields(
        &payload,
        &source.field_map,
        &part(&source, "defaults"),
        &part(&source, "constants"),
    );
    let idempotency = req
        .headers()
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(|k| format!("key:{}", k.trim()))
        .filter(|k| k.len() > 4 && k.len() <= 260);
    let captured = storage::run_tx(&state.pool, move |conn| {
        // One capture of a source at a time: its repeats (same key, same email) then
        // see each other, on any replica.
        store::lock(conn, &source.id)?;
        store::forget_receipts(conn, now - chrono::Duration::hours(RECEIPT_HOURS))?;
        if let Some(sig) = &signature {
            if !store::receipt(conn, &source.id, sig, None)? {
                return Err(refusal_replayed());
            }
        }
        if let Some(key) = &idempotency {
            if let Some(Some(lead_id)) = store::receipt_lead(conn, &source.id, key)? {
                return Ok(Captured {
                    lead_id,
                    created: false,
                });
            }
        }
        let captured = crm::capture(conn, &source, fields)?;
        if let Some(key) = &idempotency {
            store::receipt(conn, &source.id, key, Some(&captured.lead_id))?;
        }
        // (The receipt for an idempotency key cannot clash: the source is locked.)
        Ok(captured)
    })
    .await?;
    Ok(answer(captured))
}

fn refusal(r: Refusal) -> AppError {
    AppError::Signature(r.message().to_owned())
}

fn refusal_replayed() -> AppError {
    AppError::Signature("this signature was already used; sign each delivery anew".into())
}
