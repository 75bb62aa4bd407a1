//! Activities on leads and opportunities, and the follow-up queue.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use super::crud::{delete_owned, patch_owned};
use super::extract::{etag, ApiJson, ApiQuery, IfMatch};
use super::fields::MergePatch;
use super::pagination::{page_request, PageOut};
use super::utc;
use crate::auth::api_keys::Scope;
use crate::auth::Caller;
pub use crate::crm::activities::ActivityInput;
use crate::crm::activities::{self as crm, require_parent_scopes};
pub use crate::crm::views::ActivityOut;
use crate::domain::opportunity::ActivityType;
use crate::error::ProblemCode;
use crate::error::{AppError, AppResult};
use crate::state::AppState;
use crate::storage::activities::{self as store, ActivityFilter, ActivityRow, ParentKinds};
use crate::storage::{self, leads, opportunities, Visible};

/// The body of a PATCH: any writable members of [`ActivityInput`].
pub type ActivityPatch = MergePatch<ActivityInput>;

fn respond(status: StatusCode, a: ActivityRow) -> HttpResponse {
    super::answer(status, "activities", &a.id)
        .insert_header(etag(a.version))
        .json(ActivityOut::from(a))
}

fn can_write(caller: &Caller) -> AppResult<()> {
    caller.require_any_scope(&[Scope::LeadsWrite, Scope::OpportunitiesWrite])
}

/// The kinds of parent whose activities the caller may read; an API key with neither
/// scope reads none.
fn readable_kinds(caller: &Caller) -> AppResult<ParentKinds> {
    caller.require_any_scope(&[Scope::LeadsRead, Scope::OpportunitiesRead])?;
    Ok(ParentKinds {
        leads: caller.has_scope(Scope::LeadsRead),
        opportunities: caller.has_scope(Scope::OpportunitiesRead),
    })
}

/// Logs an activity on a lead or an opportunity the caller may see (404 otherwise).
#[utoipa::path(post, path = "/api/v1/activities", tag = "activities", operation_id = "create_activity",
    security(("bearer" = ["leads:write"]), ("bearer" = ["opportunities:write"])), request_body = ActivityInput,
    responses((status = 201, body = ActivityOut, headers(("ETag" = String))),
        (status = 404, body = crate::error::Problem, description = "the lead or opportunity is not visible to you"),
        (status = 422, body = crate::error::Problem)))]
pub async fn create_activity(
    state: web::Data<AppState>,
    caller: Caller,
    body: ApiJson<ActivityInput>,
) -> AppResult<HttpResponse> {
    can_write(&caller)?;
    let row = storage::run_tx(&state.pool, move |conn| crm::create(conn, &caller, &body.0)).await?;
    Ok(respond(StatusCode::CREATED, row))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListActivities {
    pub limit: Option<usize>,
    pub cursor: Option<String>,
    /// `created_at` (default); prefix `-` for descending.
    pub sort: Option<String>,
    pub lead_id: Option<String>,
    pub opportunity_id: Option<String>,
    #[serde(rename = "type")]
    #[param(rename = "type")]
    pub type_: Option<ActivityType>,
    pub owner_id: Option<String>,
    /// `true`: not completed; `false`: completed.
    pub open: Option<bool>,
    pub due_before: Option<DateTime<Utc>>,
}

/// Lists the activities visible to the caller.
#[utoipa::path(get, path = "/api/v1/activities", tag = "activities", operation_id = "list_activities",
    security(("bearer" = ["leads:read"]), ("bearer" = ["opportunities:read"])), params(ListActivities),
    responses((status = 200, description = "One page as JSON, or every matching row with `Accept: text/csv` or `application/x-ndjson`", content((PageOut<ActivityOut> = "application/json"), (String = "text/csv"), (String = "application/x-ndjson"))), (status = 400, body = crate::error::Problem)))]
pub async fn list_activities(
    state: web::Data<AppState>,
    caller: Caller,
    query: ApiQuery<ListActivities>,
    http_req: actix_web::HttpRequest,
) -> AppResult<HttpResponse> {
    let kinds = readable_kinds(&caller)?;
    let q = query.0;
    require_parent_scopes(
        &caller,
        q.lead_id.is_some(),
        q.opportunity_id.is_some(),
        false,
    )?;
    let page = page_request(
        q.limit,
        q.cursor.as_deref(),
        q.sort.as_deref(),
        super::pagination::sorts("/api/v1/activities"),
        "created_at",
    )?;
    let filter = ActivityFilter {
        lead_id: q.lead_id,
        opportunity_id: q.opportunity_id,
        type_: q.type_,
        owner_id: q.owner_id,
        open: q.open,
        due_before: q.due_before.map(|d| d.naive_utc()),
        kinds,
    };
    let vis = caller.visibility();
    super::export::list_or_export(
        &state.pool,
        &http_req,
        "activities",
        page,
        move |conn, req| store::list(conn, &vis, &filter, req),
        ActivityOut::from,
    )
    .await
}

/// One activity.
#[utoipa::path(get, path = "/api/v1/activities/{id}", tag = "activities", operation_id = "find_activity",
    security(("bearer" = ["leads:read"]), ("bearer" = ["opportunities:read"])), params(("id" = String, Path)),
    responses((status = 200, body = ActivityOut, headers(("ETag" = String))), (status = 404, body = crate::error::Problem)))]
pub async fn find_activity(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
) -> AppResult<HttpResponse> {
    readable_kinds(&caller)?;
    let vis = caller.visibility();
    let row = storage::run(&state.pool, move |conn| {
        Ok(ActivityRow::find_visible(conn, &vis, &id)?)
    })
    .await?;
    require_parent_scopes(
        &caller,
        row.lead_id.is_some(),
        row.opportunity_id.is_some(),
        false,
    )?;
    Ok(respond(StatusCode::OK, row))
}

/// Changes an activity (JSON merge patch); set `completed_at` to close a follow-up.
#[utoipa::path(patch, path = "/api/v1/activities/{id}", tag = "activities", operation_id = "update_activity",
    security(("bearer" = ["leads:write"]), ("bearer" = ["opportunities:write"])), params(("id" = String, Path), ("If-Match" = Option<String>, Header)),
    request_body = ActivityPatch,
    responses((status = 200, body = ActivityOut, headers(("ETag" = String))), (status = 404, body = crate::error::Problem),
        (status = 412, body = crate::error::Problem), (status = 422, body = crate::error::Problem)))]
pub async fn update_activity(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
    if_match: IfMatch,
    body: ApiJson<Value>,
) -> AppResult<HttpResponse> {
    can_write(&caller)?;
    let row = patch_owned(
        &state,
        caller,
        id.into_inner(),
        if_match,
        body.0,
        crm::ops(),
    )
    .await?;
    Ok(respond(StatusCode::OK, row))
}

/// Deletes an activity.
#[utoipa::path(delete, path = "/api/v1/activities/{id}", tag = "activities", operation_id = "delete_activity",
    security(("bearer" = ["leads:write"]), ("bearer" = ["opportunities:write"])), params(("id" = String, Path), ("If-Match" = Option<String>, Header)),
    responses((status = 204), (status = 404, body = crate::error::Problem), (status = 412, body = crate::error::Problem)))]
pub async fn delete_activity(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
    if_match: IfMatch,
) -> AppResult<HttpResponse> {
    can_write(&caller)?;
    delete_owned(&state, caller, id.into_inner(), if_match, crm::remove).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Debug, Clone, Copy, Serialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum FollowUpKind {
    /// A planned activity not completed yet.
    Activity,
    /// An open deal's next action.
    Opportunity,
    /// A lead's next follow-up.
    Lead,
}

#[derive(Serialize, ToSchema)]
pub struct FollowUp {
    pub kind: FollowUpKind,
    /// Id of the activity, opportunity or lead.
    pub id: String,
    pub title: String,
    pub due_at: DateTime<Utc>,
    pub overdue: bool,
    pub owner_id: String,
    pub lead_id: Option<String>,
    pub opportunity_id: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct FollowUpList {
    /// Soonest first, so overdue items lead.
    pub data: Vec<FollowUp>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FollowUpQuery {
    pub owner_id: Option<String>,
    /// Only items due before this time; all open items when absent.
    pub due_before: Option<DateTime<Utc>>,
    /// 1–500, default 100.
    pub limit: Option<usize>,
}

/// The open follow-up queue in the caller's scope: planned activities, open deals'
/// next actions and leads' next follow-ups, overdue first.
#[utoipa::path(get, path = "/api/v1/follow-ups", tag = "activities", operation_id = "list_follow_ups",
    security(("bearer" = ["leads:read"]), ("bearer" = ["opportunities:read"])), params(FollowUpQuery),
    responses((status = 200, body = FollowUpList), (status = 400, body = crate::error::Problem)))]
pub async fn list_follow_ups(
    state: web::Data<AppState>,
    caller: Caller,
    query: ApiQuery<FollowUpQuery>,
) -> AppResult<HttpResponse> {
    let kinds = readable_kinds(&caller)?;
    let q = query.0;
    let limit = q.limit.unwrap_or(100);
    if !(1..=500).contains(&limit) {
        return Err(AppError::BadRequest {
            code: ProblemCode::InvalidParameter,
            detail: "limit must be between 1 and 500".into(),
            errors: vec![crate::error::FieldError::new(
                "limit",
                "out_of_range",
                "must be between 1 and 500",
            )],
        });
    }
    let vis = caller.visibility();
    let before = q.due_before.map(|d| d.naive_utc());
    let owner = q.owner_id;
    let now = storage::now();
    let mut items = storage::run(&state.pool, move |conn| {
        let n = limit as i64;
        let owner = owner.as_deref();
        let mut items: Vec<FollowUp> = Vec::new();
        for a in store::open_due(conn, &vis, kinds, owner, before, n)? {
            let due = a.due_at.unwrap_or(now);
            items.push(FollowUp {
                kind: FollowUpKind::Activity,
                title: a.subject,
                due_at: utc(due),
                overdue: due < now,
                owner_id: a.owner_id.into(),
                lead_id: a.lead_id.map(String::from),
                opportunity_id: a.opportunity_id.map(String::from),
                id: a.id.into(),
            });
        }
        let deals = match kinds.opportunities {
            true => opportunities::due_next_actions(conn, &vis, owner, before, n)?,
            false => Vec::new(),
        };
        for o in deals {
            let due = o.next_action_due_at.unwrap_or(now);
            items.push(FollowUp {
                kind: FollowUpKind::Opportunity,
                title: format!("{}: {}", o.name, o.next_action_text.unwrap_or_default()),
                due_at: utc(due),
                overdue: due < now,
                owner_id: o.owner_id.into(),
                lead_id: o.lead_id.map(String::from),
                opportunity_id: Some(o.id.to_string()),
                id: o.id.into(),
            });
        }
        let due_leads = match kinds.leads {
            true => leads::due_follow_ups(conn, &vis, owner, before, n)?,
            false => Vec::new(),
        };
        for l in due_leads {
            let due = l.next_follow_up_at.unwrap_or(now);
            let who = [
                l.company.as_deref(),
                l.last_name.as_deref(),
                l.email.as_deref(),
            ]
            .into_iter()
            .flatten()
            .next()
            .unwrap_or("lead")
            .to_owned();
            items.push(FollowUp {
                kind: FollowUpKind::Lead,
                title: format!("跟进线索：{who}"),
                due_at: utc(due),
                overdue: due < now,
                owner_id: l.owner_id.into(),
                lead_id: Some(l.id.to_string()),
                opportunity_id: None,
                id: l.id.into(),
            });
        }
        Ok(items)
    })
    .await?;
    items.sort_by(|a, b| a.due_at.cmp(&b.due_at).then_with(|| a.id.cmp(&b.id)));
    items.truncate(limit);
    Ok(HttpResponse::Ok().json(FollowUpList { data: items }))
}
