//! Teams: a manager sees the records owned by the members of their team.

use crate::storage::uid::uid;
use actix_web::{web, HttpResponse};
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::extract::{etag, ApiJson, ApiQuery};
use super::pagination::{page_request, PageOut};
use super::utc;
use crate::auth::Caller;
use crate::domain::ids::UserId;
use crate::domain::user::Role;
use crate::domain::{required_text, Problems};
use crate::error::AppResult;
use crate::state::AppState;
use crate::storage::{self, schema, teams, teams::TeamRow, users};

#[derive(Serialize, ToSchema)]
pub struct TeamOut {
    pub id: String,
    pub name: String,
    pub manager_id: Option<String>,
    pub version: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<TeamRow> for TeamOut {
    fn from(t: TeamRow) -> Self {
        TeamOut {
            id: t.id.into(),
            name: t.name,
            manager_id: t.manager_id.map(String::from),
            version: t.version,
            created_at: utc(t.created_at),
            updated_at: utc(t.updated_at),
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTeam {
    #[schema(example = "华东大客户组")]
    pub name: String,
    /// A user with role `manager` (or `admin`); they join the team.
    pub manager_id: Option<String>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListTeams {
    pub limit: Option<usize>,
    pub cursor: Option<String>,
    /// `name` (default); prefix `-` for descending.
    pub sort: Option<String>,
}

/// Creates a team (admin).
#[utoipa::path(post, path = "/api/v1/teams", tag = "users", operation_id = "create_team",
    security(("bearer" = [])), request_body = CreateTeam,
    responses(
        (status = 201, body = TeamOut, headers(("ETag" = String))),
        (status = 403, body = crate::error::Problem),
        (status = 409, body = crate::error::Problem),
        (status = 422, body = crate::error::Problem),
    ))]
pub async fn create_team(
    state: web::Data<AppState>,
    caller: Caller,
    body: ApiJson<CreateTeam>,
) -> AppResult<HttpResponse> {
    caller.require_admin()?;
    let b = body.0;
    let mut p = Problems::default();
    let name = required_text(&mut p, "name", &b.name, 100);
    let team = storage::run_tx(&state.pool, move |conn| {
        if let Some(manager_id) = &b.manager_id {
            match users::find(conn, &manager_id.as_str().into())? {
                None => p.add("manager_id", "not_found", "no such user"),
                Some(u) if u.role == Role::Rep => p.add(
                    "manager_id",
                    "invalid",
                    "a rep cannot manage a team; give the user the manager role first",
                ),
                Some(_) => {}
            }
        }
        p.into_result()?;
        let now = storage::now();
        let row = TeamRow {
            id: storage::new_id(),
            name,
            manager_id: b.manager_id.clone().map(UserId::from),
            version: 1,
            created_at: now,
            updated_at: now,
            created_by: Some(caller.user_id.clone()),
            updated_by: Some(caller.user_id.clone()),
        };
        teams::insert(conn, &row)?;
        if let Some(manager_id) = &b.manager_id {
            diesel::update(schema::users::table.find(uid(manager_id)))
                .set(schema::users::team_id.eq(uid(&row.id)))
                .execute(conn)?;
        }
        Ok(row)
    })
    .await?;
    // Teams have no URL of their own; their list is where the new one is read.
    Ok(HttpResponse::Created()
        .insert_header((actix_web::http::header::LOCATION, "/api/v1/teams"))
        .insert_header(etag(team.version))
        .json(TeamOut::from(team)))
}

/// Lists teams (every signed-in user may see team names).
#[utoipa::path(get, path = "/api/v1/teams", tag = "users", operation_id = "list_teams",
    security(("bearer" = [])), params(ListTeams),
    responses((status = 200, description = "One page as JSON, or every matching row with `Accept: text/csv` or `application/x-ndjson`", content((PageOut<TeamOut> = "application/json"), (String = "text/csv"), (String = "application/x-ndjson"))), (status = 400, body = crate::error::Problem)))]
pub async fn list_teams(
    state: web::Data<AppState>,
    caller: Caller,
    query: ApiQuery<ListTeams>,
    http_req: actix_web::HttpRequest,
) -> AppResult<HttpResponse> {
    caller.require_person()?;
    let q = query.0;
    let page = page_request(
        q.limit,
        q.cursor.as_deref(),
        q.sort.as_deref(),
        super::pagination::sorts("/api/v1/teams"),
        "name",
    )?;
    super::export::list_or_export(
        &state.pool,
        &http_req,
        "teams",
        page,
        teams::list,
        TeamOut::from,
    )
    .await
}
