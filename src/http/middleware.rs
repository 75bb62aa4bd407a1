//! Cross-cutting response handling: request ids and the request's root span (attached by
//! `tracing_actix_web::TracingLogger` with [`RequestSpan`]), problem+json for
//! every error response that did not come from `AppError` (unknown route, wrong method,
//! middleware errors), and `Cache-Control: no-store` on API responses (unless the handler
//! chose otherwise, as signed links do).

use std::time::Instant;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::{web, Error, HttpMessage, HttpResponse};
use tracing::Span;
use tracing_actix_web::RootSpanBuilder;

use super::problem::{problem_for_status, PROBLEM_JSON};
use crate::auth::caller::Credential;
use crate::config::Settings;
use crate::state::AppState;
use crate::storage::clock;
use crate::{storage, telemetry};

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

/// The request's id, decided once by [`RequestSpan`] and read by [`request_context`].
#[derive(Debug, Clone)]
struct RequestId(String);

/// When the request arrived, for the completion line.
struct Started(Instant);

/// The root span of every request, which `tracing_actix_web::TracingLogger` attaches to
/// the whole service call: the request id (the client's `X-Request-Id` when it is usable),
/// method, path and the matched route template; and one line when the request ends,
/// with its status and latency (an error line for a 5xx).
pub struct RequestSpan;

impl RootSpanBuilder for RequestSpan {
    fn on_request_start(req: &ServiceRequest) -> Span {
        let id = request_id(req);
        let span = tracing::info_span!(
            "request",
            request_id = %id,
            method = %req.method(),
            path = %req.path(),
            route = %req.match_pattern().unwrap_or_default(),
        );
        let mut extensions = req.extensions_mut();
        extensions.insert(RequestId(id));
        extensions.insert(Started(Instant::now()));
        span
    }

    fn on_request_end<B: MessageBody>(span: Span, outcome: &Result<ServiceResponse<B>, Error>) {
        let _guard = span.enter();
        match outcome {
            Ok(res) => {
                let status = res.status().as_u16();
                let latency_ms = res
                    .request()
                    .extensions()
                    .get::<Started>()
                    .map_or(0.0, |s| s.0.elapsed().as_secs_f64() * 1000.0);
                if res.status().is_server_error() {
                    tracing::error!(status, latency_ms, "request failed");
                } else {
                    tracing::info!(status, latency_ms, "request completed");
                }
            }
            // Handlers and the CORS layer answer errors as responses; an `Err` can only
            // come from actix itself.
            Err(e) => tracing::error!(error = %e, "request failed"),
        }
    }
}

pub async fn request_context(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let id = req
        .extensions()
        .get::<RequestId>()
        .map(|r| r.0.clone())
        .unwrap_or_else(|| request_id(&req));
    let is_api = req.path().starts_with("/api/");
    let policy = content_security_policy(req.path());
    let state = req.app_data::<web::Data<AppState>>();
    let hsts = state.and_then(|state| hsts_value(&state.settings));
    let clock = state.map(|state| state.clock.clone()).unwrap_or_default();
    let result = telemetry::with_request_id(id.clone(), clock::scope(clock, next.call(req))).await;
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
    // A response that chose its own caching keeps it: only signed links do, and they
    // carry no credentials (their answer is private to whoever holds the link).
    if is_api && !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(policy),
    );
    if let Some(value) = hsts {
        headers.insert(header::STRICT_TRANSPORT_SECURITY, value);
    }
    Ok(res)
}

/// Swagger UI loads its own scripts and styles from this server (it works offline) and
/// sets inline styles; the SVG funnel carries an inline style sheet; everything else is
/// data that must never run as a page.
fn content_security_policy(path: &str) -> &'static str {
    if path == "/docs" || path.starts_with("/docs/") {
        "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
         img-src 'self' data:; font-src 'self' data:; connect-src 'self'; \
         frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
    } else if path.ends_with(".svg") {
        "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'"
    } else {
        "default-src 'none'; frame-ancestors 'none'"
    }
}

/// `Strict-Transport-Security` only when configured: the server usually sits behind a
/// TLS proxy that owns that decision.
fn hsts_value(settings: &Settings) -> Option<HeaderValue> {
    settings
        .hsts
        .as_deref()
        .filter(|v| !v.is_empty())
        .and_then(|v| HeaderValue::from_str(v).ok())
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

/// Resolves the request's credential once (one token verification, one key or user
/// lookup) and keeps it with the request, where rate limiting, idempotency keys and the
/// `Caller` extractor read it.
pub async fn authenticate(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let state = req.app_data::<web::Data<AppState>>().cloned();
    let Some(state) =
        state.filter(|_| req.path().starts_with("/api/") && req.method() != Method::OPTIONS)
    else {
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_boxed_body);
    };
    let read = matches!(*req.method(), Method::GET | Method::HEAD);
    let resolve_and_call = async move {
        let header = req.headers().get(header::AUTHORIZATION).cloned();
        let header = header.as_ref().map(|v| v.as_bytes());
        let credential = Credential::resolve(&state.jwt, &state.pool, state.backend, header).await;
        req.extensions_mut().insert(credential);
        next.call(req)
            .await
            .map(ServiceResponse::map_into_boxed_body)
    };
    // Reads have no body to wait for: the handler reuses the connection the credential
    // was read on (see `storage::held`).
    if read {
        storage::held::one_connection(resolve_and_call).await
    } else {
        resolve_and_call.await
    }
}

/// The credential the authentication middleware found, if it ran.
pub fn credential(req: &ServiceRequest) -> Option<Credential> {
    req.extensions().get::<Credential>().cloned()
}
