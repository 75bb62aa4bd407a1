//! The HTTP layer: thin handlers, request/response shapes, the route table, OpenAPI.

pub mod api_keys;
pub mod auth;
pub mod extract;
pub mod health;
pub mod middleware;
pub mod openapi;
pub mod pagination;
pub mod pipelines;
pub mod teams;
pub mod users;

use actix_web::{web, HttpResponse};
use chrono::{DateTime, NaiveDateTime, Utc};
use serde::{Deserialize, Deserializer};

use crate::error::AppError;

/// Every route in one place. Each path is one resource, so a known path with an
/// unsupported method answers 405 with `Allow` rather than 404.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/health/live").route(web::get().to(health::live)))
        .service(web::resource("/health/ready").route(web::get().to(health::ready)))
        .service(
            web::scope("/api/v1")
                .service(web::resource("/auth/token").route(web::post().to(auth::create_token)))
                .service(web::resource("/users/me").route(web::get().to(users::find_me)))
                .service(
                    web::resource("/users")
                        .route(web::get().to(users::list_users))
                        .route(web::post().to(users::create_user)),
                )
                .service(
                    web::resource("/users/{id}")
                        .route(web::get().to(users::find_user))
                        .route(web::patch().to(users::update_user)),
                )
                .service(
                    web::resource("/teams")
                        .route(web::get().to(teams::list_teams))
                        .route(web::post().to(teams::create_team)),
                )
                .service(
                    web::resource("/api-keys")
                        .route(web::get().to(api_keys::list_api_keys))
                        .route(web::post().to(api_keys::create_api_key)),
                )
                .service(
                    web::resource("/api-keys/{id}")
                        .route(web::delete().to(api_keys::delete_api_key)),
                )
                .service(
                    web::resource("/pipelines")
                        .route(web::get().to(pipelines::list_pipelines))
                        .route(web::post().to(pipelines::create_pipeline)),
                )
                .service(
                    web::resource("/pipelines/from-template")
                        .route(web::post().to(pipelines::create_pipeline_from_template)),
                )
                .service(
                    web::resource("/pipelines/{id}")
                        .route(web::get().to(pipelines::find_pipeline))
                        .route(web::patch().to(pipelines::update_pipeline))
                        .route(web::delete().to(pipelines::delete_pipeline)),
                )
                .service(
                    web::resource("/pipelines/{id}/stages")
                        .route(web::post().to(pipelines::create_stage)),
                )
                .service(
                    web::resource("/pipelines/{id}/stage-order")
                        .route(web::put().to(pipelines::update_stage_order)),
                )
                .service(
                    web::resource("/stages/{id}")
                        .route(web::patch().to(pipelines::update_stage))
                        .route(web::delete().to(pipelines::delete_stage)),
                ),
        )
        .service(web::resource("/openapi.json").route(web::get().to(openapi::serve_document)))
        .service(web::resource("/docs").route(web::get().to(|| async {
            HttpResponse::PermanentRedirect()
                .insert_header((actix_web::http::header::LOCATION, "/docs/"))
                .finish()
        })))
        .service(openapi::swagger_ui());
}

/// Fallback for unknown paths.
pub async fn not_found() -> Result<HttpResponse, AppError> {
    Err(AppError::NotFound)
}

/// Stored timestamps are UTC without an offset; the API speaks RFC 3339 with `Z`.
pub fn utc(t: NaiveDateTime) -> DateTime<Utc> {
    t.and_utc()
}

/// Tells "absent" (`None`) from "explicitly null" (`Some(None)`) in PATCH bodies.
pub fn double_option<'de, T, D>(de: D) -> Result<Option<Option<T>>, D::Error>
where
    T: Deserialize<'de>,
    D: Deserializer<'de>,
{
    Option::<T>::deserialize(de).map(Some)
}
