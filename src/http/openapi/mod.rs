//! The OpenAPI 3.1 document, built from the handlers' annotations. The committed copy in
//! `openapi/openapi.json` must equal it (a test checks; `stageflow openapi` regenerates).

use crate::error::ProblemCode;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_swagger_ui::SwaggerUi;

mod body_rules;
mod passes;

use body_rules::*;
use passes::*;
pub use passes::{AMOUNT_OUT_PATTERN, AMOUNT_PATTERN};

use super::{
    accounts, activities, api_keys, auth, capture, health, imports, leads, loss_reasons,
    opportunities, pipelines, reports, teams, users, webhooks,
};

#[derive(OpenApi)]
#[openapi(
    servers((url = "/", description = "This server")),
    info(
        title = "stageflow",
        description = "Sales-pipeline backend: leads, opportunities moving through gated stages, \
                       and funnel analytics. Errors are RFC 9457 problem+json with a stable `code`.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    paths(
        health::live,
        health::ready,
        auth::create_token,
        users::find_me,
        users::list_users,
        users::create_user,
        users::find_user,
        users::update_user,
        teams::list_teams,
        teams::create_team,
        api_keys::list_api_keys,
        api_keys::create_api_key,
        api_keys::delete_api_key,
        pipelines::list_pipelines,
        pipelines::create_pipeline,
        pipelines::create_pipeline_from_template,
        pipelines::find_pipeline,
        pipelines::update_pipeline,
        pipelines::delete_pipeline,
        pipelines::create_stage,
        pipelines::update_stage_order,
        pipelines::update_stage,
        pipelines::delete_stage,
        leads::list_scoring_rules,
        leads::replace_scoring_rules,
        leads::list_leads,
        leads::create_lead,
        leads::find_lead,
        leads::update_lead,
        leads::delete_lead,
        leads::convert_lead,
        leads::disqualify_lead,
        accounts::list_accounts,
        accounts::create_account,
        accounts::find_account,
        accounts::update_account,
        accounts::delete_account,
        accounts::list_contacts,
        accounts::create_contact,
        accounts::find_contact,
        accounts::update_contact,
        accounts::delete_contact,
        opportunities::list_opportunities,
        opportunities::create_opportunity,
        opportunities::find_opportunity,
        opportunities::update_opportunity,
        opportunities::delete_opportunity,
        opportunities::move_opportunity,
        opportunities::win_opportunity,
        opportunities::lose_opportunity,
        opportunities::reopen_opportunity,
        opportunities::opportunity_history,
        opportunities::list_stage_log,
        capture::create_source,
        capture::list_sources,
        capture::get_source,
        capture::update_source,
        capture::delete_source,
        capture::rotate_secret,
        capture::capture,
        webhooks::create_webhook,
        webhooks::list_webhooks,
        webhooks::get_webhook,
        webhooks::update_webhook,
        webhooks::delete_webhook,
        webhooks::list_deliveries,
        webhooks::redeliver,
        webhooks::test_webhook,
        imports::import_leads,
        imports::import_accounts,
        imports::import_contacts,
        imports::import_opportunities,
        imports::find_import,
        imports::cancel_import,
        imports::find_import_errors,
        loss_reasons::list_loss_reasons,
        loss_reasons::create_loss_reason,
        activities::list_activities,
        activities::create_activity,
        activities::find_activity,
        activities::update_activity,
        activities::delete_activity,
        activities::list_follow_ups,
        reports::funnel_report,
        reports::funnel_svg,
        reports::create_funnel_link,
        reports::stage_durations_report,
        reports::stalled_report,
        reports::loss_reasons_report,
        reports::activity_effectiveness_report,
        reports::lead_sources_report,
        reports::leaderboard_report,
        reports::reactivation_report,
        reports::forecast_report,
        reports::create_forecast_snapshot,
        reports::forecast_snapshot_accuracy,
    ),
    components(schemas(
        crate::imports::Mode,
        crate::imports::MatchOn,
        crate::imports::Kind,
        crate::error::Problem,
        crate::error::FieldError,
        crate::analytics::GroupBy
    )),
    modifiers(
        &BearerAuth,
        &IdempotentPosts,
        &ReportParameters,
        &ErrorResponses,
        &SharedParameters,
        &ResponseMembers,
        &WireFormats,
        &OptionalBodies,
        &CreatedLocations
    ),
    tags(
        (name = "health", description = "Probes"),
        (name = "auth", description = "Tokens and API keys"),
        (name = "users", description = "Users and teams"),
        (name = "imports", description = "Bulk imports from CSV, NDJSON or JSON, synchronous or as jobs"),
        (name = "pipelines", description = "Pipelines and their stages"),
        (name = "leads", description = "Leads, scoring and conversion"),
        (name = "accounts", description = "Accounts and contacts"),
        (name = "opportunities", description = "Opportunities, stage moves and the stage log"),
        (name = "activities", description = "Activities and the follow-up queue"),
        (name = "reports", description = "Funnel, durations, stalled deals, losses, forecast and more"),
        (name = "capture", description = "Leads from third-party web forms and signed webhooks"),
        (name = "webhooks", description = "Signed outbound webhooks from a transactional outbox"),
    )
)]
pub struct ApiDoc;

/// The document as served and committed: pretty JSON with a trailing newline.
pub fn document() -> String {
    let mut doc = ApiDoc::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    let mut json = serde_json::to_value(&doc).unwrap_or_default();
    BodyRules::apply(&mut json);
    refuse_idempotency_keys(&mut json);
    capture_form_fields(&mut json);
    catalogue_codes(&mut json);
    let mut text = serde_json::to_string_pretty(&json).unwrap_or_default();
    text.push('\n');
    text
}

/// Swagger UI at /docs (assets built in, no network needed) reading /openapi.json.
pub fn swagger_ui() -> SwaggerUi {
    SwaggerUi::new("/docs/{_:.*}").config(utoipa_swagger_ui::Config::from("/openapi.json"))
}

/// `GET /openapi.json`: byte for byte the committed document.
pub async fn serve_document() -> actix_web::HttpResponse {
    static DOC: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    actix_web::HttpResponse::Ok()
        .content_type("application/json")
        .body(DOC.get_or_init(document).clone())
}
