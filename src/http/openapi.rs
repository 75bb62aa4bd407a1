//! The OpenAPI 3.1 document, built from the handlers' annotations. The committed copy in
//! `openapi/openapi.json` must equal it (a test checks; `stageflow openapi` regenerates).

use crate::error::ProblemCode;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_swagger_ui::SwaggerUi;

use super::{
    accounts, activities, api_keys, auth, health, leads, opportunities, pipelines, reports, teams,
    users,
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
        opportunities::list_loss_reasons,
        opportunities::create_loss_reason,
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
        (name = "pipelines", description = "Pipelines and their stages"),
        (name = "leads", description = "Leads, scoring and conversion"),
        (name = "accounts", description = "Accounts and contacts"),
        (name = "opportunities", description = "Opportunities, stage moves and the stage log"),
        (name = "activities", description = "Activities and the follow-up queue"),
        (name = "reports", description = "Funnel, durations, stalled deals, losses, forecast and more"),
    )
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let mut scheme = Http::new(HttpAuthScheme::Bearer);
        scheme.bearer_format = Some("JWT or sfk_ API key".into());
        scheme.description = Some(
            "A JWT from POST /api/v1/auth/token, or an API key (sfk_…) from POST /api/v1/api-keys. \
             Each operation lists the API-key scopes it needs (alternatives as separate \
             requirements: activities and follow-ups need the scope of their lead or deal); an \
             operation that lists none is for people only and refuses API keys (403). Signed-in \
             people need no scopes: their role decides."
                .into(),
        );
        components.add_security_scheme("bearer", SecurityScheme::Http(scheme));
    }
}

/// Every operation of a path item, with its method.
fn operations_mut(
    item: &mut utoipa::openapi::path::PathItem,
) -> impl Iterator<Item = (&'static str, &mut utoipa::openapi::path::Operation)> {
    [
        ("get", &mut item.get),
        ("post", &mut item.post),
        ("put", &mut item.put),
        ("patch", &mut item.patch),
        ("delete", &mut item.delete),
    ]
    .into_iter()
    .filter_map(|(method, op)| op.as_mut().map(|op| (method, op)))
}

/// True when the operation needs credentials (public ones list an empty requirement).
fn is_secured(op: &utoipa::openapi::path::Operation) -> bool {
    let public = utoipa::openapi::security::SecurityRequirement::default();
    op.security.iter().flatten().any(|r| *r != public)
}

/// Every authenticated `POST` takes `Idempotency-Key` (see `http::idempotency`), except
/// those that issue a secret.
struct IdempotentPosts;

impl Modify for IdempotentPosts {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::path::{ParameterBuilder, ParameterIn};
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        use utoipa::openapi::{Required, ResponseBuilder};
        for (path, item) in openapi.paths.paths.iter_mut() {
            let Some(op) = item.post.as_mut() else {
                continue;
            };
            if !is_secured(op) {
                continue;
            }
            if super::idempotency::SECRET_ISSUING.contains(&path.as_str()) {
                let note = "\n\nThe answer carries a secret shown once and never stored, so \
                            `Idempotency-Key` is refused here (400 `idempotency_key_not_supported`).";
                let description = op.description.get_or_insert_with(String::new);
                description.push_str(note);
                continue;
            }
            let key = ParameterBuilder::new()
                .name("Idempotency-Key")
                .parameter_in(ParameterIn::Header)
                .required(Required::False)
                .description(Some(
                    "Makes a retry safe: the first request with a key runs; a retry with the same key and \
                     the same request within 24 h replays its answer (status and body) with \
                     `Idempotent-Replayed: true`. Keys belong to the caller; the same key with another \
                     request is 422 `idempotency_key_reused`, while the first is still running 409 \
                     `idempotency_key_in_progress`.",
                ))
                .schema(Some(
                    ObjectBuilder::new()
                        .schema_type(Type::String)
                        .min_length(Some(1))
                        .max_length(Some(255))
                        .pattern(Some(IDEMPOTENCY_KEY_PATTERN)),
                ))
                .build();
            op.parameters.get_or_insert_with(Vec::new).push(key.into());
            op.responses
                .responses
                .entry("409".to_owned())
                .or_insert_with(|| {
                    ResponseBuilder::new()
                        .description("Conflict: `idempotency_key_in_progress`, or a conflict named by `code`.")
                        .content(
                            super::problem::PROBLEM_JSON,
                            utoipa::openapi::ContentBuilder::new()
                                .schema(Some(utoipa::openapi::Ref::from_schema_name("Problem")))
                                .build(),
                        )
                        .build()
                        .into()
                });
        }
    }
}

/// The error answers every operation can give, documented once here rather than on
/// each handler: the statuses the middleware and extractors produce (400 for malformed
/// JSON, parameters or headers; 401 and 403 on protected operations; 404 on a record
/// path; 412 with `If-Match`; 413/415 with a body; 429 on the API), every error as
/// `application/problem+json`, and a description on every response.
struct ErrorResponses;

impl ErrorResponses {
    fn standard(
        path: &str,
        op: &utoipa::openapi::path::Operation,
    ) -> Vec<(&'static str, &'static str)> {
        let secured = is_secured(op);
        let has_param = |name: &str| {
            op.parameters.iter().flatten().any(|p| match p {
                utoipa::openapi::RefOr::T(p) => p.name == name,
                utoipa::openapi::RefOr::Ref(_) => false,
            })
        };
        let mut out = Vec::new();
        if path.starts_with("/api/") {
            out.push(("400", "Bad request: `malformed_json`, `invalid_parameter` (names the parameter), `invalid_if_match` or `invalid_idempotency_key`."));
        }
        if secured {
            out.push((
                "401",
                "Missing, invalid, expired or revoked credentials: `unauthorized`.",
            ));
            out.push((
                "403",
                "The role or the API key's scopes do not allow this: `forbidden`.",
            ));
        }
        if path.contains('{') {
            out.push((
                "404",
                "No such record, or one the caller may not see: `not_found`.",
            ));
        }
        if has_param("If-Match") {
            out.push((
                "412",
                "`If-Match` names an older version: `version_conflict` (with `current_version`).",
            ));
        }
        if op.request_body.is_some() {
            out.push((
                "413",
                "The body is larger than the configured limit: `payload_too_large`.",
            ));
            out.push((
                "415",
                "The body is not `application/json`: `unsupported_media_type`.",
            ));
        }
        if path.starts_with("/api/") {
            out.push((
                "429",
                "Too many requests: `rate_limited`; see `Retry-After` and `RateLimit`.",
            ));
        }
        out
    }
}

fn problem_response(description: &str) -> utoipa::openapi::RefOr<utoipa::openapi::Response> {
    utoipa::openapi::ResponseBuilder::new()
        .description(description)
        .content(
            super::problem::PROBLEM_JSON,
            utoipa::openapi::ContentBuilder::new()
                .schema(Some(utoipa::openapi::Ref::from_schema_name("Problem")))
                .build(),
        )
        .build()
        .into()
}

fn is_problem_schema(content: &utoipa::openapi::Content) -> bool {
    matches!(&content.schema, Some(utoipa::openapi::RefOr::Ref(r)) if r.ref_location.ends_with("/Problem"))
}

impl Modify for ErrorResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::RefOr;
        for (path, item) in openapi.paths.paths.iter_mut() {
            for (method, op) in operations_mut(item) {
                let changes_record = matches!(method, "put" | "patch" | "delete");
                let mut statuses = Self::standard(path, op);
                if changes_record && is_secured(op) {
                    statuses.push(("409", "A conflict named by `code`: a unique value taken by another record (`existing_id` when you may see it), or a record still in use."));
                }
                for (status, description) in statuses {
                    op.responses
                        .responses
                        .entry(status.to_owned())
                        .or_insert_with(|| problem_response(description));
                }
                for (status, response) in op.responses.responses.iter_mut() {
                    let RefOr::T(response) = response else {
                        continue;
                    };
                    let error = status.starts_with('4') || status.starts_with('5');
                    if error {
                        let json = response.content.shift_remove("application/json");
                        if let Some(RefOr::T(content)) = json {
                            let key = if is_problem_schema(&content) {
                                super::problem::PROBLEM_JSON
                            } else {
                                "application/json"
                            };
                            response.content.insert(key.to_owned(), RefOr::T(content));
                        }
                    }
                    if response.description.is_empty() {
                        response.description = status
                            .parse::<u16>()
                            .ok()
                            .and_then(|s| actix_web::http::StatusCode::from_u16(s).ok())
                            .and_then(|s| s.canonical_reason())
                            .unwrap_or("Answer")
                            .to_owned();
                    }
                }
            }
        }
    }
}

/// 1 to 255 printable ASCII characters without spaces (see `http::idempotency`).
const IDEMPOTENCY_KEY_PATTERN: &str = "^[!-~]{1,255}$";
/// `*`, or the ETag of a version as this API writes it (`"3"`, weak `W/"3"` accepted).
const IF_MATCH_PATTERN: &str = "^(\\*|(W/)?\"[0-9]{1,9}\")$";

/// Parameters that mean the same on every operation, typed as strictly as the server
/// reads them: record ids in paths are UUIDs, `If-Match` is an ETag of this API,
/// `limit` pages are 1–500 (the stalled report lists up to 1000).
struct SharedParameters;

impl Modify for SharedParameters {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::path::ParameterIn;
        use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};
        use utoipa::openapi::{RefOr, Required};
        for (path, item) in openapi.paths.paths.iter_mut() {
            for (_, op) in operations_mut(item) {
                for param in op.parameters.iter_mut().flatten() {
                    let RefOr::T(param) = param else { continue };
                    let schema = match (&param.parameter_in, param.name.as_str()) {
                        (ParameterIn::Path, "id") => ObjectBuilder::new()
                            .schema_type(Type::String)
                            .format(Some(SchemaFormat::Custom("uuid".into()))),
                        (ParameterIn::Header, "If-Match") => {
                            param.description = Some(
                                "The `ETag` of the version read (e.g. `\"3\"`); a stale one is 412 `version_conflict`, `*` matches any version.".into(),
                            );
                            param.required = Required::False;
                            ObjectBuilder::new()
                                .schema_type(Type::String)
                                .pattern(Some(IF_MATCH_PATTERN))
                        }
                        (ParameterIn::Query, "sort")
                            if !super::pagination::sorts(path).is_empty() =>
                        {
                            let fields = super::pagination::sorts(path);
                            let values: Vec<String> = fields
                                .iter()
                                .flat_map(|f| [(*f).to_owned(), format!("-{f}")])
                                .collect();
                            ObjectBuilder::new()
                                .schema_type(Type::String)
                                .enum_values(Some(values))
                        }
                        (ParameterIn::Query, "amount_min" | "amount_max") => ObjectBuilder::new()
                            .schema_type(Type::String)
                            .pattern(Some(AMOUNT_PATTERN)),
                        (ParameterIn::Query, "cursor") => ObjectBuilder::new()
                            .schema_type(Type::String)
                            .pattern(Some("^[A-Za-z0-9_-]*$")),
                        (ParameterIn::Query, "limit") => {
                            let max = if path.ends_with("/reports/stalled") {
                                1000
                            } else {
                                super::pagination::MAX_LIMIT
                            };
                            ObjectBuilder::new()
                                .schema_type(Type::Integer)
                                .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int32)))
                                .minimum(Some(1))
                                .maximum(Some(max as f64))
                        }
                        _ => continue,
                    };
                    param.schema = Some(schema.into());
                }
            }
        }
    }
}

/// The component schemas that `$ref`s in `value` reach, directly or through other schemas.
fn reached_schemas(
    components: &utoipa::openapi::Components,
    value: serde_json::Value,
) -> std::collections::BTreeSet<String> {
    fn refs(v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(map) => {
                for (k, v) in map {
                    match (k.as_str(), v.as_str()) {
                        ("$ref", Some(r)) => out.push(r.rsplit('/').next().unwrap_or("").into()),
                        _ => refs(v, out),
                    }
                }
            }
            serde_json::Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }
    let mut todo = Vec::new();
    refs(&value, &mut todo);
    let mut seen = std::collections::BTreeSet::new();
    while let Some(name) = todo.pop() {
        if let Some(schema) = components.schemas.get(&name) {
            if seen.insert(name) {
                refs(&serde_json::to_value(schema).unwrap_or_default(), &mut todo);
            }
        }
    }
    seen
}

/// (schemas reached from success responses, schemas reached from request bodies).
fn response_and_request_schemas(
    openapi: &utoipa::openapi::OpenApi,
) -> (
    std::collections::BTreeSet<String>,
    std::collections::BTreeSet<String>,
) {
    let mut responses = Vec::new();
    let mut requests = Vec::new();
    for item in openapi.paths.paths.values() {
        let ops = [&item.get, &item.post, &item.put, &item.patch, &item.delete];
        for op in ops.into_iter().flatten() {
            for (status, response) in &op.responses.responses {
                if status.starts_with('2') {
                    responses.push(serde_json::to_value(response).unwrap_or_default());
                }
            }
            requests.push(serde_json::to_value(&op.request_body).unwrap_or_default());
        }
    }
    let Some(components) = openapi.components.as_ref() else {
        return Default::default();
    };
    (
        reached_schemas(components, responses.into()),
        reached_schemas(components, requests.into()),
    )
}

/// Whether a schema's `type` admits `t`.
fn has_type(
    schema_type: &utoipa::openapi::schema::SchemaType,
    t: utoipa::openapi::schema::Type,
) -> bool {
    use utoipa::openapi::schema::SchemaType;
    match schema_type {
        SchemaType::Type(one) => *one == t,
        SchemaType::Array(many) => many.contains(&t),
        SchemaType::AnyValue => false,
    }
}

fn is_nullable(schema: &utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>) -> bool {
    use utoipa::openapi::schema::{Schema, Type};
    use utoipa::openapi::RefOr;
    match schema {
        RefOr::T(Schema::Object(o)) => has_type(&o.schema_type, Type::Null),
        RefOr::T(Schema::Array(a)) => has_type(&a.schema_type, Type::Null),
        RefOr::T(Schema::OneOf(one)) => one.items.iter().any(is_nullable),
        _ => false,
    }
}

/// Response members as the server writes them, so that a generated client need not
/// guard against members that are always there. A member is either always sent —
/// required, and nullable when it can be null (an `Option` serialised as `null`) — or
/// left out when it has no value (`skip_serializing_if`, marked `nullable = false`), and
/// then it is optional and never null. Schemas that request bodies use as well (`Bant`,
/// `NextAction`) keep the optional members a request may leave out.
struct ResponseMembers;

impl Modify for ResponseMembers {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::schema::Schema;
        use utoipa::openapi::RefOr;
        let (responses, requests) = response_and_request_schemas(openapi);
        let Some(components) = openapi.components.as_mut() else {
            return;
        };
        for name in responses.difference(&requests) {
            let Some(RefOr::T(Schema::Object(object))) = components.schemas.get_mut(name) else {
                continue;
            };
            for (member, schema) in &object.properties {
                if is_nullable(schema) && !object.required.contains(member) {
                    object.required.push(member.clone());
                }
            }
        }
        // A page lists records whose schemas are components: reference them rather than
        // repeat them, so that a client names one type per record.
        for (name, schema) in components.schemas.iter_mut() {
            let Some(item) = name.strip_prefix("PageOut_") else {
                continue;
            };
            let RefOr::T(Schema::Object(page)) = schema else {
                continue;
            };
            if let Some(RefOr::T(Schema::Array(data))) = page.properties.get_mut("data") {
                data.items = utoipa::openapi::schema::ArrayItems::RefOrSchema(Box::new(
                    utoipa::openapi::Ref::from_schema_name(item).into(),
                ));
            }
        }
    }
}

/// A decimal amount as requests may write it (`domain::money::parse_amount`): up to 14
/// whole digits and two decimals, at most 10000000000000.00, never negative.
pub const AMOUNT_PATTERN: &str = "^(0?[0-9]{1,13}(\\.[0-9]{1,2})?|10000000000000(\\.00?)?)$";
/// An amount or a sum of amounts as the server writes it (`domain::money::format_amount`).
pub const AMOUNT_OUT_PATTERN: &str = "^[0-9]+\\.[0-9]{2}$";

/// Members holding money: decimal strings.
const MONEY_MEMBERS: [&str; 6] = [
    "amount",
    "won_amount",
    "total_amount",
    "weighted",
    "unweighted",
    "won_amount_after_reopen",
];

/// Whether a member holds a record id this server wrote: a UUIDv7. Loss reasons and
/// scoring rules have slugs, `external_id` is the client's own and `request_id` may come
/// from the client's `X-Request-Id`.
fn is_uuid_member(schema: &str, member: &str) -> bool {
    let slug_ids = [
        "LossReasonOut",
        "CreateLossReason",
        "ScoringRule",
        "ScoringRuleInput",
    ];
    let other_ids = [
        "external_id",
        "existing_id",
        "request_id",
        "loss_reason_id",
        "lost_reason_id",
        "rule_id",
    ];
    match member {
        "id" => !slug_ids.contains(&schema),
        m if other_ids.contains(&m) => false,
        m => m.ends_with("_id") || m.ends_with("_ids"),
    }
}

/// Formats of the values every schema shares: ids are UUIDs, amounts decimal strings
/// with a pattern (as requests may write them, or as the server writes them). A pattern
/// set on the field itself is kept.
struct WireFormats;

impl Modify for WireFormats {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::schema::{ArrayItems, Schema, SchemaFormat, Type};
        use utoipa::openapi::RefOr;
        let (_, requests) = response_and_request_schemas(openapi);
        let Some(components) = openapi.components.as_mut() else {
            return;
        };
        for (name, schema) in components.schemas.iter_mut() {
            let RefOr::T(Schema::Object(object)) = schema else {
                continue;
            };
            for (member, schema) in object.properties.iter_mut() {
                let target = match schema {
                    RefOr::T(Schema::Object(o)) => Some(o),
                    RefOr::T(Schema::Array(a)) => match &mut a.items {
                        ArrayItems::RefOrSchema(item) => match item.as_mut() {
                            RefOr::T(Schema::Object(o)) => Some(o),
                            _ => None,
                        },
                        ArrayItems::False => None,
                    },
                    _ => None,
                };
                let Some(value) = target else { continue };
                if !has_type(&value.schema_type, Type::String) {
                    continue;
                }
                if is_uuid_member(name, member) {
                    value.format = Some(SchemaFormat::Custom("uuid".into()));
                }
                if MONEY_MEMBERS.contains(&member.as_str()) && value.pattern.is_none() {
                    let pattern = if requests.contains(name) {
                        AMOUNT_PATTERN
                    } else {
                        AMOUNT_OUT_PATTERN
                    };
                    value.pattern = Some(pattern.into());
                }
            }
        }
    }
}

/// A body annotated as `Option<T>` (read with `extract::OptionalJson`) may be left out:
/// it is documented as `required: false` with `T`'s schema, since a JSON `null` is not a
/// body the server reads.
struct OptionalBodies;

impl Modify for OptionalBodies {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::schema::Schema;
        use utoipa::openapi::{RefOr, Required};
        for item in openapi.paths.paths.values_mut() {
            for (_, op) in operations_mut(item) {
                let Some(RefOr::T(body)) = op.request_body.as_mut() else {
                    continue;
                };
                for content in body.content.values_mut() {
                    let RefOr::T(content) = content else { continue };
                    let Some(RefOr::T(Schema::OneOf(one))) = &content.schema else {
                        continue;
                    };
                    let mut items = one.items.iter().filter(|i| !is_nullable(i));
                    if let (Some(inner), None, true) =
                        (items.next(), items.next(), one.items.len() == 2)
                    {
                        content.schema = Some(inner.clone());
                        body.required = Some(Required::False);
                    }
                }
            }
        }
    }
}

/// Every 201 names the created record's URL in `Location` (see `http::answer`).
struct CreatedLocations;

impl Modify for CreatedLocations {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::header::HeaderBuilder;
        use utoipa::openapi::schema::{ObjectBuilder, SchemaFormat, Type};
        use utoipa::openapi::RefOr;
        for item in openapi.paths.paths.values_mut() {
            for (_, op) in operations_mut(item) {
                let Some(RefOr::T(created)) = op.responses.responses.get_mut("201") else {
                    continue;
                };
                let location = HeaderBuilder::new()
                    .schema(Some(
                        ObjectBuilder::new()
                            .schema_type(Type::String)
                            .format(Some(SchemaFormat::Custom("uri-reference".into()))),
                    ))
                    .description(Some(
                        "The URL of the created record, e.g. `/api/v1/leads/{id}` (a conversion: \
                         its opportunity; a forecast snapshot: its accuracy report; teams and \
                         loss reasons, which have no URL of their own: their list).",
                    ))
                    .build();
                created
                    .headers
                    .insert("Location".to_owned(), location.into());
            }
        }
    }
}

/// Each report lists the parameters it reads (`reports::PARAMETERS`), typed as the
/// server parses them, and offers its answer as JSON or, to `Accept: text/csv`, as CSV.
struct ReportParameters;

impl Modify for ReportParameters {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::schema::{
            KnownFormat, ObjectBuilder, OneOfBuilder, SchemaFormat, Type,
        };
        use utoipa::openapi::{ContentBuilder, RefOr, Required};
        for (name, wanted) in super::reports::PARAMETERS {
            let path = format!("/api/v1/reports/{name}");
            let Some(op) = openapi
                .paths
                .paths
                .get_mut(&path)
                .and_then(|i| i.get.as_mut())
            else {
                continue;
            };
            let params = op.parameters.get_or_insert_with(Vec::new);
            params.retain(|p| match p {
                RefOr::T(p) => {
                    p.parameter_in != utoipa::openapi::path::ParameterIn::Query
                        || wanted.iter().any(|w| w.trim_end_matches('*') == p.name)
                }
                RefOr::Ref(_) => true,
            });
            for param in params.iter_mut() {
                let RefOr::T(param) = param else { continue };
                if wanted.contains(&format!("{}*", param.name).as_str()) {
                    param.required = Required::True;
                }
                let schema: Option<RefOr<utoipa::openapi::schema::Schema>> =
                    match param.name.as_str() {
                        "pipeline_id" | "owner_id" | "team_id" => Some(
                            ObjectBuilder::new()
                                .schema_type(Type::String)
                                .format(Some(SchemaFormat::Custom("uuid".into())))
                                .into(),
                        ),
                        "from" | "to" => {
                            Some(
                                OneOfBuilder::new()
                                    .item(
                                        ObjectBuilder::new().schema_type(Type::String).format(
                                            Some(SchemaFormat::KnownFormat(KnownFormat::Date)),
                                        ),
                                    )
                                    .item(ObjectBuilder::new().schema_type(Type::String).format(
                                        Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)),
                                    ))
                                    .into(),
                            )
                        }
                        "within_days" => Some(
                            ObjectBuilder::new()
                                .schema_type(Type::Integer)
                                .minimum(Some(1))
                                .maximum(Some(365))
                                .into(),
                        ),
                        _ => None,
                    };
                if let Some(schema) = schema {
                    param.schema = Some(schema);
                }
            }
            if *name == "funnel.svg" {
                continue;
            }
            if let Some(RefOr::T(ok)) = op.responses.responses.get_mut("200") {
                ok.content.insert(
                    "text/csv".to_owned(),
                    RefOr::T(
                        ContentBuilder::new()
                            .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
                            .build(),
                    ),
                );
                if ok.description.is_empty() {
                    ok.description =
                        "The report as JSON, or as CSV (one header row) to `Accept: text/csv`."
                            .into();
                }
            }
        }
    }
}

/// Text the server trims and refuses when empty: at least one non-space character.
fn text(max: usize) -> serde_json::Value {
    serde_json::json!({"minLength": 1, "maxLength": max, "pattern": "\\S"})
}

/// The rules the server checks on request bodies, stated in their schemas so that what
/// the schema allows the server accepts: lengths of trimmed text, ranges, formats,
/// list sizes, and the "one of these members" rules. Rules that depend on stored data
/// (references to records, a stage's required fields, unique names, the won/lost
/// stages of a pipeline) cannot be stated in a schema; those answers are 422 and the
/// operations document them.
struct BodyRules;

impl BodyRules {
    fn properties() -> Vec<(&'static str, &'static str, serde_json::Value)> {
        use serde_json::json;
        let email = json!({"format": "email", "maxLength": 254});
        let password =
            json!({"minLength": crate::domain::user::MIN_PASSWORD_LEN, "maxLength": 256});
        let tags = json!({"maxItems": 50, "items": text(50)});
        let uuid = json!({"format": "uuid"});
        let texts = json!({"maxItems": 30, "items": text(500)});
        let date_or_time =
            json!({"anyOf": [{"type": "null"}, {"format": "date"}, {"format": "date-time"}]});
        let mut rules = vec![
            ("TokenRequest", "email", email.clone()),
            ("CreateUser", "email", email.clone()),
            ("CreateUser", "password", password.clone()),
            ("CreateUser", "name", text(200)),
            ("UpdateUser", "email", email.clone()),
            ("UpdateUser", "password", password),
            ("UpdateUser", "name", text(200)),
            ("CreateApiKey", "name", text(100)),
            ("CreateApiKey", "scopes", json!({"minItems": 1})),
            (
                "CreateLossReason",
                "id",
                json!({"pattern": "^[a-z0-9_]{1,50}$"}),
            ),
            ("CreateLossReason", "label", text(200)),
            ("CreateTeam", "name", text(200)),
            ("CreatePipeline", "name", text(200)),
            (
                "CreatePipeline",
                "description",
                json!({"maxLength": crate::domain::MAX_DESCRIPTION_CHARS}),
            ),
            (
                "CreatePipeline",
                "stages",
                json!({"minItems": 3, "maxItems": crate::domain::pipeline::MAX_STAGES}),
            ),
            ("UpdatePipeline", "name", text(200)),
            (
                "UpdatePipeline",
                "description",
                json!({"maxLength": crate::domain::MAX_DESCRIPTION_CHARS}),
            ),
            ("CreateSnapshot", "name", text(200)),
            ("CreateSnapshot", "pipeline_id", uuid.clone()),
            ("CreateSnapshot", "owner_id", uuid.clone()),
            ("CreateSnapshot", "team_id", uuid),
            ("CreateSnapshot", "from", date_or_time.clone()),
            ("CreateSnapshot", "to", date_or_time.clone()),
            ("CreateFunnelLink", "from", date_or_time.clone()),
            ("CreateFunnelLink", "to", date_or_time),
            ("LeadInput", "email", email.clone()),
            ("LeadInput", "tags", tags.clone()),
            ("ContactInput", "email", email),
            ("OpportunityInput", "tags", tags),
            ("ScoringRuleInput", "points", json!({"type": "integer"})),
        ];
        for stage in ["StageInput", "UpdateStage"] {
            rules.extend([
                (stage, "name", text(100)),
                (stage, "probability", json!({"minimum": 0, "maximum": 100})),
                (
                    stage,
                    "stalled_after_days",
                    json!({"minimum": 1, "maximum": 3650}),
                ),
                (
                    stage,
                    "next_action_within_days",
                    json!({"minimum": 0, "maximum": 365}),
                ),
                (stage, "exit_criteria", texts.clone()),
                (stage, "suggested_actions", texts.clone()),
            ]);
        }
        rules
    }

    /// `{"anyOf": [...]}`: at least one of `members` holds non-blank text.
    fn any_text_of(members: &[&str]) -> serde_json::Value {
        let branches: Vec<serde_json::Value> = members
            .iter()
            .map(|m| serde_json::json!({"required": [m], "properties": {*m: {"type": "string", "pattern": "\\S"}}}))
            .collect();
        serde_json::json!({ "anyOf": branches })
    }

    fn objects() -> Vec<(&'static str, serde_json::Value)> {
        let parent = |one: &str, other: &str| serde_json::json!({"required": [one], "properties": {one: {"type": "string"}, other: {"type": "null"}}});
        vec![
            (
                "LeadInput",
                Self::any_text_of(&["first_name", "last_name", "company", "email", "phone"]),
            ),
            (
                "ContactInput",
                Self::any_text_of(&["first_name", "last_name", "email"]),
            ),
            (
                "ActivityInput",
                serde_json::json!({"oneOf": [parent("lead_id", "opportunity_id"), parent("opportunity_id", "lead_id")]}),
            ),
        ]
    }
}

/// `Problem.code` and `FieldError.code` list every code the server sends (the
/// `ProblemCode` type and the field-code catalogue in `error.rs`, which a test keeps
/// complete), so clients can switch on them typed.
fn catalogue_codes(doc: &mut serde_json::Value) {
    let problems: Vec<&str> = ProblemCode::ALL.iter().map(|c| c.as_str()).collect();
    for (schema, codes) in [
        ("Problem", problems.as_slice()),
        ("FieldError", crate::error::FIELD_CODES),
    ] {
        if let Some(code) =
            doc.pointer_mut(&format!("/components/schemas/{schema}/properties/code"))
        {
            code["enum"] = serde_json::json!(codes);
        }
    }
}

/// Requests that issue a secret refuse `Idempotency-Key` (see `http::idempotency`): the
/// header is documented with a schema no value satisfies, so a generated client cannot
/// send it and a test tool knows that sending it is an error.
fn refuse_idempotency_keys(doc: &mut serde_json::Value) {
    for path in super::idempotency::SECRET_ISSUING {
        let Some(op) = doc.pointer_mut(&format!("/paths/{}/post", path.replace('/', "~1"))) else {
            continue;
        };
        let params = op.as_object_mut().map(|o| {
            o.entry("parameters")
                .or_insert_with(|| serde_json::json!([]))
        });
        if let Some(serde_json::Value::Array(params)) = params {
            params.push(serde_json::json!({
                "name": "Idempotency-Key",
                "in": "header",
                "required": false,
                "description": "Not accepted here: the answer carries a secret that is never stored, so it cannot be replayed (400 `idempotency_key_not_supported`).",
                "schema": {"not": {}}
            }));
        }
    }
}

/// Merges `patch` into `target` (objects member by member, anything else replaced).
fn merge(target: &mut serde_json::Value, patch: &serde_json::Value) {
    match (target, patch) {
        (serde_json::Value::Object(t), serde_json::Value::Object(p)) => {
            for (k, v) in p {
                merge(t.entry(k.clone()).or_insert(serde_json::Value::Null), v);
            }
        }
        (t, p) => *t = p.clone(),
    }
}

impl BodyRules {
    /// Applied to the document as JSON: utoipa's schema types cannot hold every keyword
    /// these rules need (`anyOf` beside `properties`).
    fn apply(doc: &mut serde_json::Value) {
        let Some(schemas) = doc.pointer_mut("/components/schemas") else {
            return;
        };
        for (component, property, rule) in Self::properties() {
            if let Some(slot) = schemas.pointer_mut(&format!("/{component}/properties/{property}"))
            {
                // Siblings of `$ref` are ignored by some tools: wrap it.
                if slot.get("$ref").is_some() {
                    *slot = serde_json::json!({"allOf": [slot.clone()]});
                }
                merge(slot, &rule);
            }
        }
        for (component, rule) in Self::objects() {
            if let Some(schema) = schemas.get_mut(component) {
                merge(schema, &rule);
            }
        }
    }
}

/// The document as served and committed: pretty JSON with a trailing newline.
pub fn document() -> String {
    let mut doc = ApiDoc::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    let mut json = serde_json::to_value(&doc).unwrap_or_default();
    BodyRules::apply(&mut json);
    refuse_idempotency_keys(&mut json);
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
