//! Capture sources (admin): what each source accepts, where its leads go, and its
//! signing secret for webhook senders.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use crate::auth::Caller;
use crate::crm::fields::opt_text;
use crate::crm::records::{restamped, save_whole, Ops};
use crate::domain::integration::CaptureKind;
use crate::domain::lead::LeadSource;
use crate::domain::{required_text, Problems};
use crate::error::{AppError, AppResult};
use crate::http::crud::{delete_owned, patch_owned};
use crate::http::extract::{etag, ApiJson, IfMatch};
use crate::http::fields::MergePatch;
use crate::http::utc;
use crate::integrations::capture::{is_target, DEDUPE_KEYS};
use crate::integrations::signing::new_capture_secret;
use crate::state::AppState;
use crate::storage::capture::{self as store, SourceRow};
use crate::storage::types::JsonText;
use crate::storage::{self, teams, users, DbConn, Repo, Stamped};

use super::CAPTURE_PREFIX;

/// How long a rotated-out secret still verifies.
const ROTATION_GRACE_HOURS: i64 = 24;

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

pub(super) fn part(row: &SourceRow, name: &str) -> Map<String, Value> {
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
            id: s.id.into(),
            key: s.public_key,
            name: s.name,
            kind: s.kind,
            default_source: s.default_source,
            source_detail: s.source_detail,
            default_owner_id: s.owner_id.map(String::from),
            round_robin_team_id: s.team_id.map(String::from),
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
            default_owner_id: s.owner_id.as_deref().map(str::to_owned),
            round_robin_team_id: s.team_id.as_deref().map(str::to_owned),
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
    if input.kind != row.kind {
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
    let mut both = Map::new();
    both.insert("defaults".into(), Value::Object(input.defaults));
    both.insert("constants".into(), Value::Object(input.constants));
    row.name = name;
    row.kind = input.kind;
    row.field_map = JsonText::encode(input.field_map)?;
    row.constants = JsonText::encode(both)?;
    row.default_source = input.default_source.unwrap_or(match input.kind {
        CaptureKind::Form => LeadSource::WebForm,
        CaptureKind::Webhook => LeadSource::Api,
    });
    row.source_detail = detail;
    row.owner_id = input.default_owner_id.map(Into::into);
    row.team_id = input.round_robin_team_id.map(Into::into);
    row.dedupe_on = JsonText::encode(dedupe)?;
    row.allowed_origins = JsonText::encode(origins)?;
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
        version: 1,
        created_at: now,
        updated_at: now,
        created_by: caller.user_id.clone(),
    };
    let row = storage::run_tx(&state.pool, move |conn| {
        apply(conn, &mut row, input)?;
        row.insert_row(conn)?;
        Ok(row)
    })
    .await?;
    Ok(
        crate::http::answer(StatusCode::CREATED, "capture-sources", &row.id)
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
    let row = storage::run(&state.pool, move |c| Ok(SourceRow::find(c, &id)?)).await?;
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
    let ops = Ops {
        input_of: |r| CaptureSourceInput::from(r),
        build: |conn, caller, input, current| {
            let mut row = restamped(current, caller)?;
            apply(conn, &mut row, input.clone())?;
            Ok(row)
        },
        save: save_whole,
    };
    let row = patch_owned(&state, caller, id.into_inner(), if_match, body.0, ops).await?;
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
    let remove =
        |conn: &mut DbConn, _: &Caller, row: &SourceRow| store::delete(conn, &row.id, row.version);
    delete_owned(&state, caller, id.into_inner(), if_match, remove).await?;
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
        let mut row = SourceRow::lock(conn, &id)?;
        if row.kind != CaptureKind::Webhook {
            return Err(AppError::field(
                "kind",
                "not_supported",
                "form sources have no secret",
            ));
        }
        let now = storage::now();
        row.stamp_next(&caller.user_id, now);
        let until = now + chrono::Duration::hours(ROTATION_GRACE_HOURS);
        row.previous_secret = row.secret.take();
        row.previous_secret_until = Some(until);
        row.secret = Some(new);
        row.save(conn)?;
        Ok(until)
    })
    .await?;
    Ok(HttpResponse::Ok().json(RotatedSecret {
        secret,
        previous_secret_valid_until: utc(until),
    }))
}
