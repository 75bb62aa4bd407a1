//! `POST /auth/token`: email + password for a bearer token.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::extract::ApiJson;
use crate::auth::password;
use crate::domain::user::Email;
use crate::error::{AppError, AppResult};
use crate::startup::AppState;
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

/// Exchanges email and password for a bearer token (JWT, HS256).
///
/// Attempts are limited per client IP and per email; a wrong email and a wrong password
/// get the same answer.
#[utoipa::path(post, path = "/api/v1/auth/token", tag = "auth", operation_id = "create_token",
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
    // The socket peer, not X-Forwarded-For: a client must not pick its own bucket.
    let ip = req
        .peer_addr()
        .map_or_else(|| "unknown".to_owned(), |a| a.ip().to_string());
    state
        .login_limiter
        .hit(&[&format!("ip:{ip}"), &format!("email:{}", email.as_str())])
        .map_err(|retry_after_secs| AppError::RateLimited { retry_after_secs })?;
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
    let token = state
        .jwt
        .issue(&user.id, &user.role, user.team_id.as_deref())?;
    Ok(HttpResponse::Ok().json(TokenOut {
        access_token: token,
        token_type: "Bearer",
        expires_in: state.jwt.ttl_secs,
    }))
}
