//! Cross-cutting response handling: request ids and per-request spans, problem+json for
//! every error response that did not come from `AppError` (unknown route, wrong method,
//! middleware errors), and `Cache-Control: no-store` on API responses.

use std::time::Instant;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{Error, HttpMessage, HttpResponse};
use tracing::Instrument;

use crate::error::{problem_for_status, PROBLEM_JSON};
use crate::startup::AppState;
use crate::telemetry;

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Accepts a client's request id when it is short and printable; otherwise makes one.
fn request_id(req: &ServiceRequest) -> String {
    req.headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.chars().all(|c| c.is_ascii_graphic()))
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::now_v7().to_string())
}

pub async fn request_context(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let id = request_id(&req);
    let started = Instant::now();
    let is_api = req.path().starts_with("/api/");
    let span = tracing::info_span!(
        "request",
        request_id = %id,
        method = %req.method(),
        path = %req.path(),
    );
    let result = telemetry::with_request_id(id.clone(), next.call(req))
        .instrument(span.clone())
        .await;
    // Handlers and the CORS layer answer errors as responses; an `Err` here can only
    // come from actix itself and is rendered by it.
    let mut res = result?.map_into_boxed_body();
    let status = res.status();
    if status.as_u16() >= 400 && !is_problem(&res) {
        res = to_problem(res, &id);
    }
    let headers = res.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&id) {
        headers.insert(REQUEST_ID, v);
    }
    if is_api {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    let _guard = span.enter();
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    if status.is_server_error() {
        tracing::error!(status = status.as_u16(), latency_ms, "request failed");
    } else {
        tracing::info!(status = status.as_u16(), latency_ms, "request completed");
    }
    Ok(res)
}

fn is_problem(res: &ServiceResponse<BoxBody>) -> bool {
    res.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with(PROBLEM_JSON))
}

fn to_problem(res: ServiceResponse<BoxBody>, id: &str) -> ServiceResponse<BoxBody> {
    let (req, old) = res.into_parts();
    let mut problem = problem_for_status(old.status());
    if old.status().is_server_error() {
        problem.request_id = Some(id.to_owned());
    }
    let mut new = HttpResponse::build(old.status())
        .content_type(PROBLEM_JSON)
        .json(problem);
    for (name, value) in old.headers() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            new.headers_mut().append(name.clone(), value.clone());
        }
    }
    ServiceResponse::new(req, new)
}

/// The credential of a request, worked out once and kept with the request.
#[derive(Clone)]
struct Credential(Option<String>);

/// The credential of a request (`user:<id>` or `key:<hash>`), or `None` when it carries
/// none that holds. Rate limits and idempotency keys are counted per credential; the
/// token is checked once per request for both.
pub fn credential_scope(req: &ServiceRequest, state: &AppState) -> Option<String> {
    if let Some(Credential(known)) = req.extensions().get::<Credential>() {
        return known.clone();
    }
    let scope = scope_of(req, state);
    req.extensions_mut().insert(Credential(scope.clone()));
    scope
}

fn scope_of(req: &ServiceRequest, state: &AppState) -> Option<String> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let token = token.trim();
    if token.starts_with("sfk_") {
        // The key is checked by the handler; an unknown key gets its 401 there and the
        // answer is not kept.
        return Some(format!("key:{}", crate::auth::api_keys::hash_secret(token)));
    }
    state
        .jwt
        .verify(token)
        .ok()
        .map(|claims| format!("user:{}", claims.sub))
}
