//! Request rate limits on `/api/`: per credential (the user behind a token, or the API
//! key), and per client IP for requests without valid credentials (none, or one that
//! does not hold: a made-up key must not buy a fresh budget). Budgets refill
//! continuously and live in process memory, so with several replicas each counts on its
//! own.
//!
//! Every answer carries the limit and what is left of it, in the structured-field form
//! of the IETF httpapi rate-limit draft:
//! `RateLimit-Policy: "credential";q=1200;w=60` and `RateLimit: "credential";r=1187;t=42`.
//! Past the limit the answer is 429 `rate_limited` with `Retry-After`.

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::middleware::Next;
use actix_web::{web, Error};

use crate::auth::rate_limit::Quota;
use crate::error::AppError;
use crate::state::AppState;

pub const RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");
pub const RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");

pub fn set_headers(headers: &mut HeaderMap, policy: &str, quota: Quota) {
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

/// The socket peer, not X-Forwarded-For: a client must not pick its own bucket.
pub fn client_ip(peer: Option<std::net::SocketAddr>) -> String {
    peer.map_or_else(|| "unknown".to_owned(), |a| a.ip().to_string())
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
    let scope = super::middleware::credential(&req).and_then(|c| c.scope());
    let (policy, quota) = match scope {
        Some(scope) => ("credential", state.request_limiter.take(&scope)),
        None => (
            "ip",
            state
                .public_limiter
                .take(&format!("ip:{}", client_ip(req.peer_addr()))),
        ),
    };
    if !quota.allowed {
        let mut res = req.error_response(AppError::RateLimited {
            retry_after_secs: quota.reset_secs.max(1),
        });
        set_headers(res.headers_mut(), policy, quota);
        return Ok(res);
    }
    let mut res = next.call(req).await?.map_into_boxed_body();
    // A 429 from further in (the sign-in limit) carries its own budget; this one was
    // not spent and must not be shown beside it.
    if res.status() != StatusCode::TOO_MANY_REQUESTS {
        set_headers(res.headers_mut(), policy, quota);
    }
    Ok(res)
}
