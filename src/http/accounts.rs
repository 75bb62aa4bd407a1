//! Accounts (companies) and contacts (people at them).

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
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
use crate::crm::accounts::{AccountInput, ContactInput};
use crate::domain::lead::CompanySize;
use crate::error::AppResult;
use crate::state::AppState;
use crate::storage::accounts::{
    self as store, AccountFilter, AccountRow, ContactFilter, ContactRow,
};
use crate::storage::{self, Repo, Visible};

/// The body of a PATCH: any writable members of [`AccountInput`].
pub type AccountPatch = MergePatch<AccountInput>;

#[derive(Serialize, ToSchema)]
pub struct AccountOut {
    pub id: String,
    pub name: String,
    pub industry: Option<String>,
    pub company_size: Option<CompanySize>,
    pub region: Option<String>,
    pub website: Option<String>,
    pub owner_id: String,
    pub version: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub created_by: Option<String>,
    pub updated_by: Option<String>,
    pub external_id: Option<String>,
}

impl From<AccountRow> for AccountOut {
    fn from(a: AccountRow) -> Self {
        AccountOut {
            company_size: a.company_size,
            id: a.id.into(),
            name: a.name,
            industry: a.industry,
            region: a.region,
            website: a.website,
            owner_id: a.owner_id.into(),
            version: a.version,
            created_at: utc(a.created_at),
            updated_at: utc(a.updated_at),
            created_by: a.created_by.map(String::from),
            updated_by: a.updated_by.map(String::from),
            external_id: a.external_id,
        }
    }
}

/// The body of a PATCH: any writable members of [`ContactInput`].
pub type ContactPatch = MergePatch<ContactInput>;

#[derive(Serialize, ToSchema)]
pub struct ContactOut {
    pub id: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub account_id: Option<String>,
    pub owner_id: String,
    pub version: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub created_by: Option<String>,
    pub updated_by: Option<String>,
    pub external_id: Option<String>,
}

impl From<ContactRow> for ContactOut {
    fn from(c: ContactRow) -> Self {
        ContactOut {
            id: c.id.into(),
            first_name: c.first_name,
            last_name: c.last_name,
            email: c.email,
            phone: c.phone,
            account_id: c.account_id.map(String::from),
            owner_id: c.owner_id.into(),
            version: c.version,
            created_at: utc(c.created_at),
            updated_at: utc(c.updated_at),
            created_by: c.created_by.map(String::from),
            updated_by: c.updated_by.map(String::from),
            external_id: c.external_id,
        }
    }
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListAccounts {
    pub limit: Option<usize>,
    pub cursor: Option<String>,
    /// `created_at` (default) or `name`; prefix `-` for descending.
    pub sort: Option<String>,
    /// Part of the name.
    pub q: Option<String>,
    pub owner_id: Option<String>,
    pub industry: Option<String>,
    pub region: Option<String>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListContacts {
    pub limit: Option<usize>,
    pub cursor: Option<String>,
    /// `created_at` (default); prefix `-` for descending.
    pub sort: Option<String>,
    /// Part of the name or email.
    pub q: Option<String>,
    pub owner_id: Option<String>,
    pub account_id: Option<String>,
    pub email: Option<String>,
}

fn can_read(caller: &Caller) -> AppResult<()> {
    caller.require_scope(Scope::LeadsRead)
}

fn can_write(caller: &Caller) -> AppResult<()> {
    caller.require_scope(Scope::LeadsWrite)
}

/// Creates an account.
#[utoipa::path(post, path = "/api/v1/accounts", tag = "accounts", operation_id = "create_account",
    security(("bearer" = ["leads:write"])), request_body = AccountInput,
    responses((status = 201, body = AccountOut, headers(("ETag" = String))), (status = 422, body = crate::error::Problem)))]
pub async fn create_account(
    state: web::Data<AppState>,
    caller: Caller,
    body: ApiJson<AccountInput>,
) -> AppResult<HttpResponse> {
    can_write(&caller)?;
    let row = storage::run_tx(&state.pool, move |conn| {
        crate::crm::accounts::create_account(conn, &caller, &body.0)
    })
    .await?;
    Ok(super::answer(StatusCode::CREATED, "accounts", &row.id)
        .insert_header(etag(row.version))
        .json(AccountOut::from(row)))
}

/// Lists the accounts visible to the caller.
#[utoipa::path(get, path = "/api/v1/accounts", tag = "accounts", operation_id = "list_accounts",
    security(("bearer" = ["leads:read"])), params(ListAccounts),
    responses((status = 200, description = "One page as JSON, or every matching row with `Accept: text/csv` or `application/x-ndjson`", content((PageOut<AccountOut> = "application/json"), (String = "text/csv"), (String = "application/x-ndjson"))), (status = 400, body = crate::error::Problem)))]
pub async fn list_accounts(
    state: web::Data<AppState>,
    caller: Caller,
    query: ApiQuery<ListAccounts>,
    http_req: HttpRequest,
) -> AppResult<HttpResponse> {
    can_read(&caller)?;
    let q = query.0;
    let page = page_request(
        q.limit,
        q.cursor.as_deref(),
        q.sort.as_deref(),
        super::pagination::sorts("/api/v1/accounts"),
        "created_at",
    )?;
    let filter = AccountFilter {
        q: q.q,
        owner_id: q.owner_id,
        industry: q.industry,
        region: q.region,
    };
    let vis = caller.visibility();
    super::export::list_or_export(
        &state.pool,
        &http_req,
        "accounts",
        page,
        move |conn, req| store::list_accounts(conn, &vis, &filter, req),
        AccountOut::from,
    )
    .await
}

/// One account.
#[utoipa::path(get, path = "/api/v1/accounts/{id}", tag = "accounts", operation_id = "find_account",
    security(("bearer" = ["leads:read"])), params(("id" = String, Path)),
    responses((status = 200, body = AccountOut, headers(("ETag" = String))), (status = 404, body = crate::error::Problem)))]
pub async fn find_account(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
) -> AppResult<HttpResponse> {
    can_read(&caller)?;
    let vis = caller.visibility();
    let row = storage::run(&state.pool, move |conn| {
        Ok(AccountRow::find_visible(conn, &vis, &id)?)
    })
    .await?;
    Ok(HttpResponse::Ok()
        .insert_header(etag(row.version))
        .json(AccountOut::from(row)))
}

/// Changes an account (JSON merge patch of its writable fields).
#[utoipa::path(patch, path = "/api/v1/accounts/{id}", tag = "accounts", operation_id = "update_account",
    security(("bearer" = ["leads:write"])), params(("id" = String, Path), ("If-Match" = Option<String>, Header)),
    request_body = AccountPatch,
    responses((status = 200, body = AccountOut, headers(("ETag" = String))), (status = 404, body = crate::error::Problem),
        (status = 412, body = crate::error::Problem), (status = 422, body = crate::error::Problem)))]
pub async fn update_account(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
    if_match: IfMatch,
    body: ApiJson<Value>,
) -> AppResult<HttpResponse> {
    can_write(&caller)?;
    let ops = crate::crm::accounts::account_ops();
    let row = patch_owned(&state, caller, id.into_inner(), if_match, body.0, ops).await?;
    Ok(HttpResponse::Ok()
        .insert_header(etag(row.version))
        .json(AccountOut::from(row)))
}

/// Deletes an account no opportunity or contact refers to.
#[utoipa::path(delete, path = "/api/v1/accounts/{id}", tag = "accounts", operation_id = "delete_account",
    security(("bearer" = ["leads:write"])), params(("id" = String, Path), ("If-Match" = Option<String>, Header)),
    responses((status = 204), (status = 404, body = crate::error::Problem), (status = 409, body = crate::error::Problem)))]
pub async fn delete_account(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
    if_match: IfMatch,
) -> AppResult<HttpResponse> {
    can_write(&caller)?;
    delete_owned(
        &state,
        caller,
        id.into_inner(),
        if_match,
        |conn, _, a: &AccountRow| {
            store::ensure_account_unused(conn, &a.id)?;
            Ok(AccountRow::delete(conn, &a.id)?)
        },
    )
    .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Creates a contact.
#[utoipa::path(post, path = "/api/v1/contacts", tag = "accounts", operation_id = "create_contact",
    security(("bearer" = ["leads:write"])), request_body = ContactInput,
    responses((status = 201, body = ContactOut, headers(("ETag" = String))), (status = 422, body = crate::error::Problem)))]
pub async fn create_contact(
    state: web::Data<AppState>,
    caller: Caller,
    body: ApiJson<ContactInput>,
) -> AppResult<HttpResponse> {
    can_write(&caller)?;
    let row = storage::run_tx(&state.pool, move |conn| {
        crate::crm::accounts::create_contact(conn, &caller, &body.0)
    })
    .await?;
    Ok(super::answer(StatusCode::CREATED, "contacts", &row.id)
        .insert_header(etag(row.version))
        .json(ContactOut::from(row)))
}

/// Lists the contacts visible to the caller.
#[utoipa::path(get, path = "/api/v1/contacts", tag = "accounts", operation_id = "list_contacts",
    security(("bearer" = ["leads:read"])), params(ListContacts),
    responses((status = 200, description = "One page as JSON, or every matching row with `Accept: text/csv` or `application/x-ndjson`", content((PageOut<ContactOut> = "application/json"), (String = "text/csv"), (String = "application/x-ndjson"))), (status = 400, body = crate::error::Problem)))]
pub async fn list_contacts(
    state: web::Data<AppState>,
    caller: Caller,
    query: ApiQuery<ListContacts>,
    http_req: HttpRequest,
) -> AppResult<HttpResponse> {
    can_read(&caller)?;
    let q = query.0;
    let page = page_request(
        q.limit,
        q.cursor.as_deref(),
        q.sort.as_deref(),
        super::pagination::sorts("/api/v1/contacts"),
        "created_at",
    )?;
    let filter = ContactFilter {
        q: q.q,
        owner_id: q.owner_id,
        account_id: q.account_id,
        email: q.email,
    };
    let vis = caller.visibility();
    super::export::list_or_export(
        &state.pool,
        &http_req,
        "contacts",
        page,
        move |conn, req| store::list_contacts(conn, &vis, &filter, req),
        ContactOut::from,
    )
    .await
}

/// One contact.
#[utoipa::path(get, path = "/api/v1/contacts/{id}", tag = "accounts", operation_id = "find_contact",
    security(("bearer" = ["leads:read"])), params(("id" = String, Path)),
    responses((status = 200, body = ContactOut, headers(("ETag" = String))), (status = 404, body = crate::error::Problem)))]
pub async fn find_contact(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
) -> AppResult<HttpResponse> {
    can_read(&caller)?;
    let vis = caller.visibility();
    let row = storage::run(&state.pool, move |conn| {
        Ok(ContactRow::find_visible(conn, &vis, &id)?)
    })
    .await?;
    Ok(HttpResponse::Ok()
        .insert_header(etag(row.version))
        .json(ContactOut::from(row)))
}

/// Changes a contact (JSON merge patch of its writable fields).
#[utoipa::path(patch, path = "/api/v1/contacts/{id}", tag = "accounts", operation_id = "update_contact",
    security(("bearer" = ["leads:write"])), params(("id" = String, Path), ("If-Match" = Option<String>, Header)),
    request_body = ContactPatch,
    responses((status = 200, body = ContactOut, headers(("ETag" = String))), (status = 404, body = crate::error::Problem),
        (status = 412, body = crate::error::Problem), (status = 422, body = crate::error::Problem)))]
pub async fn update_contact(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
    if_match: IfMatch,
    body: ApiJson<Value>,
) -> AppResult<HttpResponse> {
    can_write(&caller)?;
    let ops = crate::crm::accounts::contact_ops();
    let row = patch_owned(&state, caller, id.into_inner(), if_match, body.0, ops).await?;
    Ok(HttpResponse::Ok()
        .insert_header(etag(row.version))
        .json(ContactOut::from(row)))
}

/// Deletes a contact no opportunity refers to.
#[utoipa::path(delete, path = "/api/v1/contacts/{id}", tag = "accounts", operation_id = "delete_contact",
    security(("bearer" = ["leads:write"])), params(("id" = String, Path), ("If-Match" = Option<String>, Header)),
    responses((status = 204), (status = 404, body = crate::error::Problem), (status = 409, body = crate::error::Problem)))]
pub async fn delete_contact(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
    if_match: IfMatch,
) -> AppResult<HttpResponse> {
    can_write(&caller)?;
    delete_owned(
        &state,
        caller,
        id.into_inner(),
        if_match,
        |conn, _, c: &ContactRow| {
            store::ensure_contact_unused(conn, &c.id)?;
            Ok(ContactRow::delete(conn, &c.id)?)
        },
    )
    .await?;
    Ok(HttpResponse::NoContent().finish())
}
