//! The types a client generator reads from the document, checked against what the
//! server sends and accepts: PATCH bodies list their members, response members that are
//! always sent are required, pages reference their items, ids and amounts have formats,
//! `/win` refuses bodies it cannot read, and every 201 names the created record.

use std::collections::BTreeSet;

use actix_web::http::StatusCode;
use serde_json::{json, Value};

use crate::api_tests;
use crate::helpers::{id_of, stage_id, TestApp};

const DOCUMENT: &str = include_str!("../../openapi/openapi.json");

fn document() -> Value {
    serde_json::from_str(DOCUMENT).expect("the committed document is JSON")
}

/// The component schema a `$ref` names.
fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    match schema["$ref"].as_str() {
        Some(r) => &doc["components"]["schemas"][r.trim_start_matches("#/components/schemas/")],
        None => schema,
    }
}

fn members(schema: &Value) -> BTreeSet<String> {
    schema["properties"]
        .as_object()
        .map(|p| p.keys().cloned().collect())
        .unwrap_or_default()
}

fn types_of(schema: &Value) -> Vec<String> {
    match &schema["type"] {
        Value::String(t) => vec![t.clone()],
        Value::Array(ts) => ts
            .iter()
            .filter_map(|t| t.as_str().map(str::to_owned))
            .collect(),
        _ => schema["oneOf"]
            .as_array()
            .map(|items| items.iter().flat_map(types_of).collect())
            .unwrap_or_default(),
    }
}

const PATCHED: [(&str, &str); 5] = [
    ("/api/v1/accounts/{id}", "AccountInput"),
    ("/api/v1/contacts/{id}", "ContactInput"),
    ("/api/v1/leads/{id}", "LeadInput"),
    ("/api/v1/opportunities/{id}", "OpportunityInput"),
    ("/api/v1/activities/{id}", "ActivityInput"),
];

#[test]
fn patch_bodies_list_the_members_the_handler_reads() {
    let doc = document();
    for (path, input) in PATCHED {
        let body =
            &doc["paths"][path]["patch"]["requestBody"]["content"]["application/json"]["schema"];
        let patch = resolve(&doc, body);
        let create = &doc["components"]["schemas"][input];
        assert_eq!(patch["type"], "object", "{path}: {body}");
        assert_eq!(members(patch), members(create), "{path}");
        assert_eq!(patch["additionalProperties"], false, "{path}");
        assert!(
            patch.get("required").is_none(),
            "{path}: nothing is required"
        );
        let required: Vec<&str> = create["required"]
            .as_array()
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        for (name, member) in patch["properties"].as_object().unwrap() {
            let nullable = types_of(member).iter().any(|t| t == "null");
            assert_eq!(
                nullable,
                !required.contains(&name.as_str()),
                "{path} {name}: null clears a member a create may omit, and only those"
            );
        }
    }
    let amount = &resolve(
        &doc,
        &doc["paths"]["/api/v1/opportunities/{id}"]["patch"]["requestBody"]["content"]
            ["application/json"]["schema"],
    )["properties"]["amount"];
    assert!(types_of(amount).contains(&"string".to_owned()), "{amount}");
}

#[test]
fn custom_members_hold_any_json_values() {
    let doc = document();
    let mut seen = 0;
    for (name, schema) in doc["components"]["schemas"].as_object().unwrap() {
        if let Some(custom) = schema["properties"].get("custom") {
            seen += 1;
            assert!(types_of(custom).contains(&"object".to_owned()), "{name}");
            assert!(
                custom["additionalProperties"] == json!({})
                    || custom["additionalProperties"] == json!(true),
                "{name}.custom must allow any member: {custom}"
            );
        }
    }
    assert!(seen >= 4, "custom appears on leads and deals, in and out");
}

api_tests!(patch_bodies_are_applied_as_documented);

async fn patch_bodies_are_applied_as_documented(app: TestApp) {
    let pipeline = app.gated_pipeline().await;
    let deal = app
        .opportunity(
            &app.admin_token,
            json!({"name": "Typed", "pipeline_id": id_of(&pipeline), "tags": ["a"],
                   "custom": {"po": {"number": 7, "lines": [1, 2]}}}),
        )
        .await;
    let res = app
        .patch(&format!("/api/v1/opportunities/{}", id_of(&deal)))
        .admin()
        .json(
            json!({"amount": "12500.00", "tags": null, "custom": {"region": "华东"},
                     "stage_id": stage_id(&pipeline, "Qualify")}),
        )
        .send()
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    assert_eq!(res.body["amount"], "12500.00");
    assert_eq!(res.body["tags"], json!([]));
    assert_eq!(
        res.body["custom"],
        json!({"po": {"number": 7, "lines": [1, 2]}, "region": "华东"})
    );
    let res = app
        .patch(&format!("/api/v1/opportunities/{}", id_of(&deal)))
        .admin()
        .json(json!({"name": null}))
        .send()
        .await;
    res.problem(422, "validation_failed");
}
