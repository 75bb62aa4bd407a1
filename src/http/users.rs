//! Users: `/users/me`, and user administration (admin; managers may list their team).

use actix_web::{web, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::extract::{etag, ApiJson, ApiQuery, IfMatch};
use super::pagination::{page_request, PageOut};
use super::{double_option, utc};
use crate::auth::{password, Caller};
use crate::domain::ids::{TeamId, UserId};
use crate::domain::user::{check_password, Email, Role};
use crate::domain::{required_text, Problems};
use crate::error::{AppError, AppResult};
use crate::state::AppState;
use crate::storage::{self, teams, users, users::UserRow};

#[derive(Serialize, ToSchema)]
pub struct UserOut {
    pub id: String,
    pub email: String,
    pub name: String,
    pub role: Role,
    pub team_id: Option<String>,
    pub active: bool,
    pub version: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<UserRow> for UserOut {
    fn from(u: UserRow) -> Self {
        UserOut {
            role: u.role,
            id: u.id.into(),
            email: u.email,
            name: u.name,
            team_id: u.team_id.map(String::from),
            active: u.active,
            version: u.version,
            created_at: utc(u.created_at),
            updated_at: utc(u.updated_at),
        }
    }
}

fn user_response(status: actix_web::http::StatusCode, u: UserRow) -> HttpResponse {
    super::answer(status, "users", &u.id)
        .insert_header(etag(u.version))
        .json(UserOut::from(u))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    #[schema(example = "li.lei@example.com")]
    pub email: String,
    /// At least 10 characters. Write-only: never returned.
    #[schema(format = Password, example = "a-long-secret-1")]
    pub password: String,
    #[schema(example = "李雷")]
    pub name: String,
    pub role: Role,
    pub team_id: Option<String>,
}

#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct UpdateUser {
    pub email: Option<String>,
    #[schema(format = Password)]
    pub password: Option<String>,
    pub name: Option<String>,
    pub role: Option<Role>,
    /// `null` removes the user from their team.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub team_id: Option<Option<String>>,
    /// `false` deactivates the account; its tokens and API keys stop working at once.
    pub active: Option<bool>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListUsers {
    /// 1–500, default 50.
    pub limit: Option<usize>,
    pub cursor: Option<String>,
    /// `created_at` (default), `email`; prefix `-` for descending.
    pub sort: Option<String>,
}

/// The signed-in user. API keys are not people and are refused (403).
#[utoipa::path(get, path = "/api/v1/users/me", tag = "users", operation_id = "find_me",
    security(("bearer" = [])),
    responses((status = 200, body = UserOut), (status = 401, body = crate::error::Problem),
        (status = 403, body = crate::error::Problem, description = "an API key")))]
pub async fn find_me(state: web::Data<AppState>, caller: Caller) -> AppResult<HttpResponse> {
    caller.require_person()?;
    let id = caller.user_id.clone();
    let user = storage::run(&state.pool, move |conn| users::find(conn, &id)).await?;
    Ok(user_response(
        actix_web::http::StatusCode::OK,
        user.ok_or(AppError::NotFound)?,
    ))
}

fn check_team(
    conn: &mut storage::DbConn,
    p: &mut Problems,
    team_id: Option<&str>,
) -> AppResult<()> {
    if let Some(team) = team_id {
        if teams::find(conn, team)?.is_none() {
            p.add("team_id", "not_found", "no such team");
        }
    }
    Ok(())
}

/// Creates a user (admin).
#[utoipa::path(post, path = "/api/v1/users", tag = "users", operation_id = "create_user",
    security(("bearer" = [])), request_body = CreateUser,
    responses(
        (status = 201, body = UserOut, headers(("ETag" = String))),
        (status = 403, body = crate::error::Problem),
        (status = 409, body = crate::error::Problem, description = "email taken; `existing_id` names the user"),
        (status = 422, body = crate::error::Problem),
    ))]
pub async fn create_user(
    state: web::Data<AppState>,
    caller: Caller,
    body: ApiJson<CreateUser>,
) -> AppResult<HttpResponse> {
    caller.require_admin()?;
    let b = body.0;
    let mut p = Problems::default();
    let email = Email::parse(&b.email)
        .map_err(|m| p.add("email", "invalid", m))
        .ok();
    let name = required_text(&mut p, "name", &b.name, 200);
    check_password(&mut p, "password", &b.password);
    let hash = if p.0.is_empty() {
        Some(web::block(move || password::hash(&b.password)).await??)
    } else {
        None
    };
    let user = storage::run_tx(&state.pool, move |conn| {
        check_team(conn, &mut p, b.team_id.as_deref())?;
        p.into_result()?;
        let now = storage::now();
        let row = UserRow {
            id: storage::new_id(),
            email: email.map(Email::into_inner).unwrap_or_default(),
            name,
            password_hash: hash.unwrap_or_default(),
            role: b.role,
            team_id: b.team_id.map(TeamId::from),
            active: true,
            version: 1,
            created_at: now,
            updated_at: now,
            created_by: Some(caller.user_id.clone()),
            updated_by: Some(caller.user_id),
            token_generation: 0,
        };
        users::insert(conn, &row)?;
        Ok(row)
    })
    .await?;
    Ok(user_response(actix_web::http::StatusCode::CREATED, user))
}

/// Lists users: admins see everyone, managers their team, reps themselves.
#[utoipa::path(get, path = "/api/v1/users", tag = "users", operation_id = "list_users",
    security(("bearer" = [])), params(ListUsers),
    responses((status = 200, description = "One page as JSON, or every matching row with `Accept: text/csv` or `application/x-ndjson`", content((PageOut<UserOut> = "application/json"), (String = "text/csv"), (String = "application/x-ndjson"))), (status = 400, body = crate::error::Problem)))]
pub async fn list_users(
    state: web::Data<AppState>,
    caller: Caller,
    query: ApiQuery<ListUsers>,
    http_req: actix_web::HttpRequest,
) -> AppResult<HttpResponse> {
    caller.require_person()?;
    let q = query.0;
    let page = page_request(
        q.limit,
        q.cursor.as_deref(),
        q.sort.as_deref(),
        super::pagination::sorts("/api/v1/users"),
        "created_at",
    )?;
    let vis = caller.visibility();
    super::export::list_or_export(
        &state.pool,
        &http_req,
        "users",
        page,
        move |conn, req| users::list(conn, &vis, req),
        UserOut::from,
    )
    .await
}

/// One user, if visible to the caller.
#[utoipa::path(get, path = "/api/v1/users/{id}", tag = "users", operation_id = "find_user",
    security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 200, body = UserOut, headers(("ETag" = String))), (status = 404, body = crate::error::Problem)))]
pub async fn find_user(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
) -> AppResult<HttpResponse> {
    caller.require_person()?;
    let vis = caller.visibility();
    let user = storage::run(&state.pool, move |conn| {
        users::find_visible(conn, &vis, &id)
    })
    .await?;
    Ok(user_response(actix_web::http::StatusCode::OK, user))
}

/// Changes a user (admin). Send `If-Match` with the ETag to avoid lost updates.
#[utoipa::path(patch, path = "/api/v1/users/{id}", tag = "users", operation_id = "update_user",
    security(("bearer" = [])), params(("id" = String, Path), ("If-Match" = Option<String>, Header)),
    request_body = UpdateUser,
    responses(
        (status = 200, body = UserOut, headers(("ETag" = String))),
        (status = 404, body = crate::error::Problem),
        (status = 412, body = crate::error::Problem, description = "version_conflict"),
        (status = 422, body = crate::error::Problem),
    ))]
pub async fn update_user(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<UserId>,
    if_match: IfMatch,
    body: ApiJson<UpdateUser>,
) -> AppResult<HttpResponse> {
    caller.require_admin()?;
    let b = body.0;
    let mut p = Problems::default();
    let email = match &b.email {
        Some(e) => Email::parse(e)
            .map_err(|m| p.add("email", "invalid", m))
            .ok()
            .map(Email::into_inner),
        None => None,
    };
    let name = b
        .name
        .as_deref()
        .map(|n| required_text(&mut p, "name", n, 200));
    if let Some(pw) = &b.password {
        check_password(&mut p, "password", pw);
    }
    if *id == caller.user_id
        && (b.active == Some(false) || b.role.is_some_and(|r| r != Role::Admin))
    {
        p.add(
            "active",
            "self_lockout",
            "you cannot deactivate or demote yourself",
        );
    }
    let hash = match b.password.filter(|_| p.0.is_empty()) {
        Some(pw) => Some(web::block(move || password::hash(&pw)).await??),
        None => None,
    };
    let user = storage::run_tx(&state.pool, move |conn| {
        check_team(conn, &mut p, b.team_id.as_ref().and_then(|t| t.as_deref()))?;
        p.into_result()?;
        let changes = users::UserChanges {
            email,
            name,
            password_hash: hash,
            role: b.role,
            team_id: b.team_id.map(|t| t.map(Into::into)),
            active: b.active,
        };
        users::update(conn, &id, if_match.0, &changes, &caller.user_id)
    })
    .await?;
    Ok(user_response(actix_web::http::StatusCode::OK, user))
}
