//! Passes over the document as JSON: the body rules (lengths, patterns) of members the
//! schemas derive without them, the problem-code catalogue, refused idempotency keys.

use super::*;

/// Text the server trims and refuses when empty: at least one non-space character.
pub(super) fn text(max: usize) -> serde_json::Value {
    serde_json::json!({"minLength": 1, "maxLength": max, "pattern": "\\S"})
}

/// The rules the server checks on request bodies, stated in their schemas so that what
/// the schema allows the server accepts: lengths of trimmed text, ranges, formats,
/// list sizes, and the "one of these members" rules. Rules that depend on stored data
/// (references to records, a stage's required fields, unique names, the won/lost
/// stages of a pipeline) cannot be stated in a schema; those answers are 422 and the
/// operations document them.
pub(super) struct BodyRules;

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
pub(super) fn catalogue_codes(doc: &mut serde_json::Value) {
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

/// Requests that cannot be replayed refuse `Idempotency-Key` (see `http::idempotency`):
/// the header is documented with a schema no value satisfies, so a generated client
/// cannot send it and a test tool knows that sending it is an error.
pub(super) fn refuse_idempotency_keys(doc: &mut serde_json::Value) {
    for (path, why) in crate::http::idempotency::NOT_REPLAYABLE {
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
                "description": format!("Not accepted here (400 `idempotency_key_not_supported`): {why}."),
                "schema": {"not": {}}
            }));
        }
    }
}

/// Merges `patch` into `target` (objects member by member, anything else replaced).
pub(super) fn merge(target: &mut serde_json::Value, patch: &serde_json::Value) {
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
    pub(super) fn apply(doc: &mut serde_json::Value) {
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

/// The capture endpoint's form bodies: fields of text. A multipart field's name travels
/// in a header, so it cannot hold control characters or a double quote; the schema
/// says so rather than letting a client build a body no server could read.
pub(super) fn capture_form_fields(doc: &mut serde_json::Value) {
    let fields = serde_json::json!({
        "type": "object",
        "additionalProperties": {"type": "string"},
        "propertyNames": {"pattern": "^[^\\u0000-\\u001f\\u007f\"]*$"},
    });
    let content = doc
        .pointer_mut("/paths/~1api~1v1~1capture~1{key}/post/requestBody/content")
        .and_then(|c| c.as_object_mut());
    if let Some(content) = content {
        for media in ["multipart/form-data", "application/x-www-form-urlencoded"] {
            if let Some(m) = content.get_mut(media) {
                m["schema"] = fields.clone();
            }
        }
    }
}
