//! The HTTP layer: thin handlers, request/response shapes, the route table, OpenAPI.

pub mod accounts;
pub mod activities;
pub mod api_keys;
pub mod auth;
pub mod capture;
pub mod crud;
pub mod export;
pub mod extract;
pub mod fields;
pub mod health;
pub mod idempotency;
pub mod imports;
pub mod leads;
pub mod loss_reasons;
pub mod middleware;
pub mod openapi;
pub mod opportunities;
pub mod pagination;
pub mod pipelines;
pub mod problem;
pub mod rate_limit;
pub mod reports;
pub mod teams;
pub mod users;
pub mod webhooks;

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpResponse, HttpResponseBuilder};
use serde::{Deserialize, Deserializer};

use crate::error::AppError;

/// Every route in one place. Each path is one resource, so a known path with an
/// unsupported method answers 405 with `Allow` rather than 404. Resources are grouped
/// in a scope per collection: the router compares a scope's fixed prefix before it
/// tries the path patterns inside, instead of matching every `{id}` pattern of the
/// API in turn.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/health/live").route(web::get().to(health::live)))
        .service(web::resource("/health/ready").route(web::get().to(health::ready)))
        .service(
            web::scope("/api/v1")
                .service(web::resource("/auth/token").route(web::post().to(auth::create_token)))
                .service(
                    web::scope("/users")
                        .service(web::resource("/me").route(web::get().to(users::find_me)))
                        .service(
                            web::resource("")
                                .route(web::get().to(users::list_users))
                                .route(web::post().to(users::create_user)),
                        )
                        .service(
                            web::resource("/{id}")
                                .route(web::get().to(users::find_user))
                                .route(web::patch().to(users::update_user)),
                        ),
                )
                .service(
                    web::resource("/teams")
                        .route(web::get().to(teams::list_teams))
                        .route(web::post().to(teams::create_team)),
                )
                .service(
                    web::scope("/api-keys")
                        .service(
                            web::resource("")
                                .route(web::get().to(api_keys::list_api_keys))
                                .route(web::post().to(api_keys::create_api_key)),
                        )
                        .service(
                            web::resource("/{id}")
                                .route(web::delete().to(api_keys::delete_api_key)),
                        ),
                )
                .service(
                    web::scope("/pipelines")
                        .service(
                            web::resource("")
                                .route(web::get().to(pipelines::list_pipelines))
                                .route(web::post().to(pipelines::create_pipeline)),
                        )
                        .service(
                            web::resource("/from-template")
                                .route(web::post().to(pipelines::create_pipeline_from_template)),
                        )
                        .service(
                            web::resource("/{id}")
                                .route(web::get().to(pipelines::find_pipeline))
                                .route(web::patch().to(pipelines::update_pipeline))
                                .route(web::delete().to(pipelines::delete_pipeline)),
                        )
                        .service(
                            web::resource("/{id}/stages")
                                .route(web::post().to(pipelines::create_stage)),
                        )
                        .service(
                            web::resource("/{id}/stage-order")
                                .route(web::put().to(pipelines::update_stage_order)),
                        ),
                )
                .service(
                    web::scope("/stages").service(
                        web::resource("/{id}")
                            .route(web::patch().to(pipelines::update_stage))
                            .route(web::delete().to(pipelines::delete_stage)),
                    ),
                )
                .service(
                    web::resource("/scoring-rules")
                        .route(web::get().to(leads::list_scoring_rules))
                        .route(web::put().to(leads::replace_scoring_rules)),
                )
                .service(
                    web::scope("/leads")
                        .service(
                            web::resource("")
                                .route(web::get().to(leads::list_leads))
                                .route(web::post().to(leads::create_lead)),
                        )
                        .service(
                            web::resource("/{id}")
                                .route(web::get().to(leads::find_lead))
                                .route(web::patch().to(leads::update_lead))
                                .route(web::delete().to(leads::delete_lead)),
                        )
                        .service(
                            web::resource("/{id}/convert")
                                .route(web::post().to(leads::convert_lead)),
                        )
                        .service(
                            web::resource("/{id}/disqualify")
                                .route(web::post().to(leads::disqualify_lead)),
                        ),
                )
                .service(
                    web::scope("/accounts")
                        .service(
                            web::resource("")
                                .route(web::get().to(accounts::list_accounts))
                                .route(web::post().to(accounts::create_account)),
                        )
                        .service(
                            web::resource("/{id}")
                                .route(web::get().to(accounts::find_account))
                                .route(web::patch().to(accounts::update_account))
                                .route(web::delete().to(accounts::delete_account)),
                        ),
                )
                .service(
                    web::scope("/contacts")
                        .service(
                            web::resource("")
                                .route(web::get().to(accounts::list_contacts))
                                .route(web::post().to(accounts::create_contact)),
                        )
                        .service(
                            web::resource("/{id}")
                                .route(web::get().to(accounts::find_contact))
                                .route(web::patch().to(accounts::update_contact))
                                .route(web::delete().to(accounts::delete_contact)),
                        ),
                )
                .service(
                    web::resource("/stage-log").route(web::get().to(opportunities::list_stage_log)),
                )
                .service(
                    web::scope("/imports")
                        .service(
                            web::resource("/leads").route(web::post().to(imports::import_leads)),
                        )
                        .service(
                            web::resource("/accounts")
                                .route(web::post().to(imports::import_accounts)),
                        )
                        .service(
                            web::resource("/contacts")
                                .route(web::post().to(imports::import_contacts)),
                        )
                        .service(
                            web::resource("/opportunities")
                                .route(web::post().to(imports::import_opportunities)),
                        )
                        .service(
                            web::resource("/{id}")
                                .route(web::get().to(imports::find_import))
                                .route(web::delete().to(imports::cancel_import)),
                        )
                        .service(
                            web::resource("/{id}/errors.csv")
                                .route(web::get().to(imports::find_import_errors)),
                        ),
                )
                .service(
                    web::scope("/capture-sources")
                        .service(
                            web::resource("")
                                .route(web::get().to(capture::list_sources))
                                .route(web::post().to(capture::create_source)),
                        )
                        .service(
                            web::resource("/{id}")
                                .route(web::get().to(capture::get_source))
                                .route(web::patch().to(capture::update_source))
                                .route(web::delete().to(capture::delete_source)),
                        )
                        .service(
                            web::resource("/{id}/rotate-secret")
                                .route(web::post().to(capture::rotate_secret)),
                        ),
                )
                .service(
                    web::scope("/capture").service(
                        web::resource("/{key}")
                            .route(web::post().to(capture::capture))
                            .route(
                                web::method(actix_web::http::Method::OPTIONS)
                                    .to(capture::preflight),
                            ),
                    ),
                )
                .service(
                    web::scope("/webhooks")
                        .service(
                            web::resource("")
                                .route(web::get().to(webhooks::list_webhooks))
                                .route(web::post().to(webhooks::create_webhook)),
                        )
                        .service(
                            web::resource("/deliveries/{id}/redeliver")
                                .route(web::post().to(webhooks::redeliver)),
                        )
                        .service(
                            web::resource("/{id}")
                                .route(web::get().to(webhooks::get_webhook))
                                .route(web::patch().to(webhooks::update_webhook))
                                .route(web::delete().to(webhooks::delete_webhook)),
                        )
                        .service(
                            web::resource("/{id}/deliveries")
                                .route(web::get().to(webhooks::list_deliveries)),
                        )
                        .service(
                            web::resource("/{id}/test")
                                .route(web::post().to(webhooks::test_webhook)),
                        ),
                )
                .service(
                    web::scope("/opportunities")
                        .service(
                            web::resource("")
                                .route(web::get().to(opportunities::list_opportunities))
                                .route(web::post().to(opportunities::create_opportunity)),
                        )
                        .service(
                            web::resource("/{id}")
                                .route(web::get().to(opportunities::find_opportunity))
                                .route(web::patch().to(opportunities::update_opportunity))
                                .route(web::delete().to(opportunities::delete_opportunity)),
                        )
                        .service(
                            web::resource("/{id}/move")
                                .route(web::post().to(opportunities::move_opportunity)),
                        )
                        .service(
                            web::resource("/{id}/win")
                                .route(web::post().to(opportunities::win_opportunity)),
                        )
                        .service(
                            web::resource("/{id}/lose")
                                .route(web::post().to(opportunities::lose_opportunity)),
                        )
                        .service(
                            web::resource("/{id}/reopen")
                                .route(web::post().to(opportunities::reopen_opportunity)),
                        )
                        .service(
                            web::resource("/{id}/history")
                                .route(web::get().to(opportunities::opportunity_history)),
                        ),
                )
                .service(
                    web::resource("/loss-reasons")
                        .route(web::get().to(loss_reasons::list_loss_reasons))
                        .route(web::post().to(loss_reasons::create_loss_reason)),
                )
                .service(
                    web::scope("/activities")
                        .service(
                            web::resource("")
                                .route(web::get().to(activities::list_activities))
                                .route(web::post().to(activities::create_activity)),
                        )
                        .service(
                            web::resource("/{id}")
                                .route(web::get().to(activities::find_activity))
                                .route(web::patch().to(activities::update_activity))
                                .route(web::delete().to(activities::delete_activity)),
                        ),
                )
                .service(
                    web::resource("/follow-ups").route(web::get().to(activities::list_follow_ups)),
                )
                .service(web::scope("/reports").configure(report_routes)),
        )
        .service(web::resource("/openapi.json").route(web::get().to(openapi::serve_document)))
        .service(web::resource("/docs").route(web::get().to(|| async {
            HttpResponse::PermanentRedirect()
                .insert_header((actix_web::http::header::LOCATION, "/docs/"))
                .finish()
        })))
        .service(openapi::swagger_ui());
}

fn report_routes(cfg: &mut web::ServiceConfig) {
    let at = |path: &str, route| web::resource(path.to_owned()).route(route);
    cfg.service(at("/funnel", web::get().to(reports::funnel_report)))
        .service(at("/funnel.svg", web::get().to(reports::funnel_svg)))
        .service(at(
            "/funnel.svg/links",
            web::post().to(reports::create_funnel_link),
        ))
        .service(at(
            "/stage-durations",
            web::get().to(reports::stage_durations_report),
        ))
        .service(at("/stalled", web::get().to(reports::stalled_report)))
        .service(at(
            "/loss-reasons",
            web::get().to(reports::loss_reasons_report),
        ))
        .service(at(
            "/activity-effectiveness",
            web::get().to(reports::activity_effectiveness_report),
        ))
        .service(at(
            "/lead-sources",
            web::get().to(reports::lead_sources_report),
        ))
        .service(at(
            "/leaderboard",
            web::get().to(reports::leaderboard_report),
        ))
        .service(at(
            "/reactivation",
            web::get().to(reports::reactivation_report),
        ))
        .service(at("/forecast", web::get().to(reports::forecast_report)))
        .service(at(
            "/forecast/snapshots",
            web::post().to(reports::create_forecast_snapshot),
        ))
        .service(at(
            "/forecast/snapshots/{id}/accuracy",
            web::get().to(reports::forecast_snapshot_accuracy),
        ));
}

/// Fallback for unknown paths.
pub async fn not_found() -> Result<HttpResponse, AppError> {
    Err(AppError::NotFound)
}

/// The builder of an answer about the record at `/api/v1/{collection}/{id}`. A 201 names
/// that URL in `Location` (RFC 9110 §15.3.2), so a client reads the new record back
/// without assembling URLs.
pub fn answer(status: StatusCode, collection: &str, id: &str) -> HttpResponseBuilder {
    let mut builder = HttpResponse::build(status);
    if status == StatusCode::CREATED {
        builder.insert_header((header::LOCATION, format!("/api/v1/{collection}/{id}")));
    }
    builder
}

pub use crate::crm::views::utc;

/// Tells "absent" (`None`) from "explicitly null" (`Some(None)`) in PATCH bodies.
pub fn double_option<'de, T, D>(de: D) -> Result<Option<Option<T>>, D::Error>
where
    T: Deserialize<'de>,
    D: Deserializer<'de>,
{
    Option::<T>::deserialize(de).map(Some)
}
