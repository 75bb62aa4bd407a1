//! API keys for machines (admin). The secret is shown once, at creation.

use actix_web::{web, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::extract::ApiJson;
use super::utc;
use crate::auth::api_keys::{self, Scope};
use crate::auth::Caller;
use crate::domain::{required_text, Problems};
use crate::error::AppResult;
use crate::state::AppState;
use crate::storage::types::JsonText;
use crate::storage::{self, api_keys as store, api_keys::ApiKeyRow};

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateApiKey {
    #[schema(example = "website form relay")]
    pub name: String,
    #[schema(example = json!(["leads:write"]))]
    pub scopes: Vec<Scope>,
}

#[derive(Serialize, ToSchema)]
pub struct ApiKeyOut {
    pub id: String,
    pub name: String,
    /// The first part of the key, to recognise it; the secret is never shown again.
    pub prefix: String,
    pub scopes: Vec<Scope>,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

#[derive(Serialize, ToSchema)]
pub struct ApiKeyCreated {
    #[serde(flatten)]
    pub key: ApiKeyOut,
    /// Use as `Authorization: Bearer <secret>`. Shown only in this response.
    #[schema(example = "sfk_AbCdEfGhJk_…")]
    pub secret: String,
}

impl From<ApiKeyRow> for ApiKeyOut {
    /// (Unreadable stored scopes are an error when the row is read, not a key with no
    /// scopes.)
    fn from(k: ApiKeyRow) -> Self {
        ApiKeyOut {
            scopes: k.scopes.into_inner(),
            id: k.id.into(),
            name: k.name,
            prefix: format!("sfk_{}", k.prefix),
            created_at: utc(k.created_at),
            last_used_at: k.last_used_at.map(utc),
            revoked_at: k.revoked_at.map(utc),
        }
    }
}

/// Creates an API key acting with the creating admin's visibility, limited to `scopes`.
#[utoipa::path(post, path = "/api/v1/api-keys", tag = "auth", operation_id = "create_api_key",
    security(("bearer" = [])), request_body = CreateApiKey,
    responses(
        (status = 201, body = ApiKeyCreated),
        (status = 403, body = crate::error::Problem),
        (status = 422, body = crate::error::Problem),
    ))]
pub async fn create_api_key(
    state: web::Data<AppState>,
    caller: Caller,
    body: ApiJson<CreateApiKey>,
) -> AppResult<HttpResponse> {
    caller.require_admin()?;
    let b = body.0;
    let mut p = Problems::default();
    let name = required_text(&mut p, "name", &b.name, 100);
    if b.scopes.is_empty() {
        p.add("scopes", "required", "give the key at least one scope");
    }
    p.into_result()?;
    let mut scopes = b.scopes;
    scopes.dedup();
    let generated = api_keys::generate()?;
    let row = ApiKeyRow {
        id: storage::new_id(),
        name,
        prefix: generated.prefix,
        secret_hash: generated.secret_hash,
        scopes: JsonText::encode(scopes)?,
        user_id: caller.user_id,
        created_at: storage::now(),
        last_used_at: None,
        revoked_at: None,
    };
    let stored = row.clone();
    storage::run_tx(&state.pool, move |conn| store::insert(conn, &stored)).await?;
    // Its URL is where the key is revoked (`DELETE`).
    Ok(
        super::answer(actix_web::http::StatusCode::CREATED, "api-keys", &row.id).json(
            ApiKeyCreated {
                key: row.into(),
                secret: generated.plaintext,
            },
        ),
    )
}

/// Lists API keys (admin), without their secrets.
#[utoipa::path(get, path = "/api/v1/api-keys", tag = "auth", operation_id = "list_api_keys",
    security(("bearer" = [])),
    responses((status = 200, body = inline(ApiKeyList)), (status = 403, body = crate::error::Problem)))]
pub async fn list_api_keys(state: web::Data<AppState>, caller: Caller) -> AppResult<HttpResponse> {
    caller.require_admin()?;
    let rows = storage::run(&state.pool, store::list).await?;
    Ok(HttpResponse::Ok().json(ApiKeyList {
        data: rows.into_iter().map(ApiKeyOut::from).collect(),
    }))
}

#[derive(Serialize, ToSchema)]
pub struct ApiKeyList {
    pub data: Vec<ApiKeyOut>,
}

/// Revokes an API key (admin); it stops working at once.
#[utoipa::path(delete, path = "/api/v1/api-keys/{id}", tag = "auth", operation_id = "delete_api_key",
    security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = crate::error::Problem)))]
pub async fn delete_api_key(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
) -> AppResult<HttpResponse> {
    caller.require_admin()?;
    storage::run_tx(&state.pool, move |conn| store::revoke(conn, &id)).await?;
    Ok(HttpResponse::NoContent().finish())
}
