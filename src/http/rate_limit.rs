//! Request rate limits on `/api/`: per credential (the user behind a token, or the API
//! key), and per client IP for requests without valid credentials. Fixed one-minute
//! windows kept in process memory, so with several replicas each counts on its own.
//!
//! Every answer carries the limit and what is left of it, in the structured-field form
//! of the IETF httpapi rate-limit draft:
//! `RateLimit-Policy: "credential";q=1200;w=60` and `RateLimit: "credential";r=1187;t=42`.
//! Past the limit the answer is 429 `rate_limited` with `Retry-After`.

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue, RETRY_AFTER};
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::{web, Error};

use crate::auth::rate_limit::Quota;
use crate::error::AppError;
use crate::startup::AppState;

pub const RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");
pub const RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");

fn set_headers(headers: &mut HeaderMap, policy: &str, quota: Quota) {
    let pairs = [
        (
            RATELIMIT_POLICY,
            format!("\"{policy}\";q={};w=60", quota.limit),
        ),
        (
            RATELIMIT,
            format!("\"{policy}\";r={};t={}", quota.remaining, quota.reset_secs),
        ),
    ];
    for (name, value) in pairs {
        if let Ok(v) = HeaderValue::from_str(&value) {
            headers.insert(name, v);
        }
    }
}

pub async fn rate_limit(
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
    let (policy, quota) = match super::middleware::credential_scope(&req, &state) {
        Some(scope) => ("credential", state.request_limiter.take(&scope)),
        None => {
            // The socket peer, not X-Forwarded-For: a client must not pick its own bucket.
            let ip = req
                .peer_addr()
                .map_or_else(|| "unknown".to_owned(), |a| a.ip().to_string());
            ("ip", state.public_limiter.take(&format!("ip:{ip}")))
        }
    };
    if !quota.allowed {
        let mut res = req.error_response(AppError::RateLimited {
            retry_after_secs: quota.reset_secs.max(1),
        });
        let headers = res.headers_mut();
        set_headers(headers, policy, quota);
        if !headers.contains_key(RETRY_AFTER) {
            headers.insert(RETRY_AFTER, HeaderValue::from(quota.reset_secs.max(1)));
        }
        return Ok(res);
    }
    let mut res = next.call(req).await?.map_into_boxed_body();
    set_headers(res.headers_mut(), policy, quota);
    Ok(res)
}
