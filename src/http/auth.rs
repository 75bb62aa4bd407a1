//! `POST /auth/token`: email + password for a bearer token.

use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::extract::ApiJson;
use crate::auth::password;
use crate::domain::user::Email;
use crate::error::{AppError, AppResult};
use crate::state::AppState;
use crate::storage::{self, users};

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    #[schema(example = "admin@localhost")]
    pub email: String,
    #[schema(example = "change-me-please", format = Password)]
    pub password: String,
}

#[derive(Serialize, ToSchema)]
pub struct TokenOut {
    pub access_token: String,
    #[schema(example = "Bearer")]
    pub token_type: &'static str,
    /// Seconds until the token expires.
    #[schema(example = 3600)]
    pub expires_in: i64,
}

/// Sign-in attempts are limited per client IP and per (client IP, email): one address
/// that keeps guessing an account's password never locks that account out for people
/// signing in from elsewhere. `None` when the attempt may go ahead; otherwise the 429,
/// whose `RateLimit` header shows the spent sign-in budget.
fn login_budget(state: &AppState, req: &HttpRequest, email: &str) -> Option<HttpResponse> {
    let ip = super::rate_limit::client_ip(req.peer_addr());
    let per_ip = state.login_ip_limiter.take(&ip);
    let quota = if per_ip.allowed {
        state.login_limiter.take(&format!("{ip} {email}"))
    } else {
        per_ip
    };
    if quota.allowed {
        return None;
    }
    let mut res = AppError::RateLimited {
        retry_after_secs: quota.reset_secs,
    }
    .error_response();
    super::rate_limit::set_headers(res.headers_mut(), "sign-in", quota);
    Some(res)
}

/// Exchanges email and password for a bearer token (JWT, HS256).
///
/// Attempts are limited per client IP and per (client IP, email); a wrong email and a
/// wrong password get the same answer.
#[utoipa::path(post, path = "/api/v1/auth/token", tag = "auth", operation_id = "create_token",
    security(()),
    request_body = TokenRequest,
    responses(
        (status = 200, body = TokenOut),
        (status = 401, body = crate::error::Problem, description = "wrong credentials or deactivated account"),
        (status = 422, body = crate::error::Problem),
        (status = 429, body = crate::error::Problem, description = "too many attempts; see Retry-After"),
    ))]
pub async fn create_token(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: ApiJson<TokenRequest>,
) -> AppResult<HttpResponse> {
    let body = body.0;
    let email = Email::parse(&body.email).map_err(|m| AppError::field("email", "invalid", m))?;
    // Refused before any lookup or hashing, so a blocked attempt costs the server
    // almost nothing.
    if let Some(refused) = login_budget(&state, &req, email.as_str()) {
        return Ok(refused);
    }
    let user = storage::run(&state.pool, move |conn| {
        users::find_by_email(conn, email.as_str())
    })
    .await?;
    let password = body.password;
    let user = web::block(move || {
        let ok = match &user {
            Some(u) => password::verify(&password, &u.password_hash) && u.active,
            None => {
                password::verify(&password, password::dummy_hash());
                false
            }
        };
        user.filter(|_| ok)
    })
    .await?
    .ok_or_else(|| {
        AppError::Unauthorized("Wrong email or password, or the account is deactivated.".into())
    })?;
    let token = state.jwt.issue(
        &user.id,
        user.role.as_str(),
        user.team_id.as_deref(),
        i64::from(user.token_generation),
    )?;
    Ok(HttpResponse::Ok().json(TokenOut {
        access_token: token,
        token_type: "Bearer",
        expires_in: state.jwt.ttl_secs,
    }))
}
