//! Passes over the generated document that add what the annotations cannot say once
//! for all operations: security, idempotency keys, shared parameters and errors, wire
//! formats, report parameters.

use super::*;

pub(super) struct BearerAuth;

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
pub(super) fn operations_mut(
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
pub(super) fn is_secured(op: &utoipa::openapi::path::Operation) -> bool {
    let public = utoipa::openapi::security::SecurityRequirement::default();
    op.security.iter().flatten().any(|r| *r != public)
}

/// Every authenticated `POST` takes `Idempotency-Key` (see `http::idempotency`), except
/// those that issue a secret.
pub(super) struct IdempotentPosts;

impl Modify for IdempotentPosts {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::path::{ParameterBuilder, ParameterIn};
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        use utoipa::openapi::{Required, ResponseBuilder};
        let key_schema = || {
            ObjectBuilder::new()
                .schema_type(Type::String)
                .min_length(Some(1))
                .max_length(Some(255))
                .pattern(Some(IDEMPOTENCY_KEY_PATTERN))
        };
        for (path, item) in openapi.paths.paths.iter_mut() {
            let Some(op) = item.post.as_mut() else {
                continue;
            };
            // An operation that declares the header itself (the public capture
            // endpoint) checks it the same way: the same schema.
            for param in op.parameters.iter_mut().flatten() {
                if let utoipa::openapi::RefOr::T(param) = param {
                    if param.name == "Idempotency-Key" {
                        param.schema = Some(key_schema().into());
                    }
                }
            }
            if !is_secured(op) {
                continue;
            }
            if let Some(why) = crate::http::idempotency::not_replayable(path) {
                let note = format!(
                    "\n\n`Idempotency-Key` is refused here (400 `idempotency_key_not_supported`): {why}."
                );
                let description = op.description.get_or_insert_with(String::new);
                description.push_str(&note);
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
                .schema(Some(key_schema()))
                .build();
            op.parameters.get_or_insert_with(Vec::new).push(key.into());
            op.responses
                .responses
                .entry("409".to_owned())
                .or_insert_with(|| {
                    ResponseBuilder::new()
                        .description("Conflict: `idempotency_key_in_progress`, or a conflict named by `code`.")
                        .content(
                            crate::http::problem::PROBLEM_JSON,
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
pub(super) struct ErrorResponses;

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

pub(super) fn problem_response(
    description: &str,
) -> utoipa::openapi::RefOr<utoipa::openapi::Response> {
    utoipa::openapi::ResponseBuilder::new()
        .description(description)
        .content(
            crate::http::problem::PROBLEM_JSON,
            utoipa::openapi::ContentBuilder::new()
                .schema(Some(utoipa::openapi::Ref::from_schema_name("Problem")))
                .build(),
        )
        .build()
        .into()
}

pub(super) fn is_problem_schema(content: &utoipa::openapi::Content) -> bool {
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
                                crate::http::problem::PROBLEM_JSON
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
pub(super) const IDEMPOTENCY_KEY_PATTERN: &str = "^[!-~]{1,255}$";
/// `*`, or the ETag of a version as this API writes it (`"3"`, weak `W/"3"` accepted).
pub(super) const IF_MATCH_PATTERN: &str = "^(\\*|(W/)?\"[0-9]{1,9}\")$";

/// Parameters that mean the same on every operation, typed as strictly as the server
/// reads them: record ids in paths are UUIDs, `If-Match` is an ETag of this API,
/// `limit` pages are 1–500 (the stalled report lists up to 1000).
pub(super) struct SharedParameters;

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
                            if !crate::http::pagination::sorts(path).is_empty() =>
                        {
                            let fields = crate::http::pagination::sorts(path);
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
                                crate::http::pagination::MAX_LIMIT
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
pub(super) fn reached_schemas(
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
pub(super) fn response_and_request_schemas(
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
pub(super) fn has_type(
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

pub(super) fn is_nullable(
    schema: &utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
) -> bool {
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
pub(super) struct ResponseMembers;

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

/// A decimal amount as requests may write it (`domain::money::Money::parse`): up to 14
/// whole digits and three decimals, at most 10000000000000, never negative. How many
/// decimals are accepted depends on the currency (none for JPY, two for CNY, three for
/// KWD; further zeros are accepted), which a pattern cannot say.
pub const AMOUNT_PATTERN: &str = "^(0?[0-9]{1,13}(\\.[0-9]{1,3})?|10000000000000(\\.0{1,3})?)$";
/// An amount or a sum of amounts as the server writes it: a deal's amount with its
/// currency's decimals (`domain::money::format_minor`), a sum over deals with two
/// decimals and a third when one is needed (`domain::money::format_thousandths`).
pub const AMOUNT_OUT_PATTERN: &str = "^[0-9]+(\\.[0-9]{2,3})?$";

/// Members holding money: decimal strings.
pub(super) const MONEY_MEMBERS: [&str; 6] = [
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
pub(super) fn is_uuid_member(schema: &str, member: &str) -> bool {
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
pub(super) struct WireFormats;

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
pub(super) struct OptionalBodies;

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
pub(super) struct CreatedLocations;

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
pub(super) struct ReportParameters;

impl Modify for ReportParameters {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::schema::{
            KnownFormat, ObjectBuilder, OneOfBuilder, SchemaFormat, Type,
        };
        use utoipa::openapi::{ContentBuilder, RefOr, Required};
        for (name, wanted) in crate::http::reports::PARAMETERS {
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
