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

fn schema<'a>(doc: &'a Value, name: &str) -> &'a Value {
    let s = &doc["components"]["schemas"][name];
    assert!(s.is_object(), "no schema {name}");
    s
}

fn required(schema: &Value) -> BTreeSet<String> {
    schema["required"]
        .as_array()
        .map(|r| {
            r.iter()
                .filter_map(|m| m.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

fn is_nullable(member: &Value) -> bool {
    types_of(member).iter().any(|t| t == "null")
}

#[test]
fn members_the_server_always_sends_are_required() {
    let doc = document();
    let lead = schema(&doc, "LeadOut");
    assert!(required(lead).contains("email"));
    assert!(is_nullable(&lead["properties"]["email"]));
    for (name, s) in doc["components"]["schemas"].as_object().unwrap() {
        if !(name.ends_with("Out") || name.ends_with("Report") || name.starts_with("PageOut_")) {
            continue;
        }
        for (member, m) in s["properties"].as_object().into_iter().flatten() {
            if is_nullable(m) {
                assert!(
                    required(s).contains(member),
                    "{name}.{member} is sent as null, so it is always there"
                );
            }
        }
    }
    // Segments appear only with `group_by`, and are never null then.
    let funnel = schema(&doc, "FunnelReport");
    assert!(!required(funnel).contains("segments"));
    assert!(!is_nullable(&funnel["properties"]["segments"]));
}

#[test]
fn pages_reference_their_items_and_always_send_next_cursor() {
    let doc = document();
    let mut pages = 0;
    for (name, s) in doc["components"]["schemas"].as_object().unwrap() {
        let Some(item) = name.strip_prefix("PageOut_") else {
            continue;
        };
        pages += 1;
        assert_eq!(
            required(s),
            BTreeSet::from(["data".into(), "next_cursor".into()])
        );
        assert!(is_nullable(&s["properties"]["next_cursor"]), "{name}");
        assert_eq!(
            s["properties"]["data"]["items"]["$ref"],
            format!("#/components/schemas/{item}"),
            "{name}"
        );
    }
    assert!(pages >= 8, "{pages}");
}

#[test]
fn ids_are_uuids_except_slugs() {
    let doc = document();
    let format = |s: &str, m: &str| schema(&doc, s)["properties"][m]["format"].clone();
    for (s, m) in [
        ("LeadOut", "id"),
        ("LeadOut", "owner_id"),
        ("LeadOut", "converted_opportunity_id"),
        ("OpportunityOut", "pipeline_id"),
        ("OpportunityInput", "account_id"),
        ("OpportunityPatch", "stage_id"),
        ("ConvertRequest", "pipeline_id"),
        ("MoveRequest", "stage_id"),
        ("HistoryEntry", "to_stage_id"),
        ("StageOut", "id"),
        ("UserOut", "team_id"),
    ] {
        assert_eq!(format(s, m), "uuid", "{s}.{m}");
    }
    assert_eq!(
        schema(&doc, "StageOrder")["properties"]["stage_ids"]["items"]["format"],
        "uuid"
    );
    for (s, m) in [
        ("LossReasonOut", "id"),
        ("LoseRequest", "loss_reason_id"),
        ("OpportunityOut", "lost_reason_id"),
        ("OpportunityOut", "external_id"),
        ("ScoringRule", "id"),
    ] {
        assert_eq!(format(s, m), Value::Null, "{s}.{m} is not a UUID");
    }
}

#[test]
fn amounts_are_decimal_strings_with_a_pattern() {
    let doc = document();
    for (s, m) in [
        ("OpportunityInput", "amount"),
        ("OpportunityPatch", "amount"),
        ("ConvertRequest", "amount"),
        ("OpportunityOut", "amount"),
        ("StalledDeal", "amount"),
        ("ForecastRow", "weighted"),
        ("LeaderboardEntry", "won_amount"),
    ] {
        let member = &schema(&doc, s)["properties"][m];
        assert!(types_of(member).contains(&"string".to_owned()), "{s}.{m}");
        let pattern = member["pattern"].as_str().unwrap_or("");
        assert!(
            pattern.starts_with('^') && pattern.ends_with('$') && pattern.contains("[0-9]"),
            "{s}.{m}: {member}"
        );
        assert!(
            !pattern.contains("^-") && !pattern.contains("-?"),
            "{s}.{m}: amounts are never negative"
        );
    }
    assert_eq!(
        schema(&doc, "OpportunityPatch")["properties"]["amount"]["pattern"],
        stageflow::http::openapi::AMOUNT_PATTERN
    );
}

#[test]
fn duration_counts_are_counts() {
    let doc = document();
    let stage = &schema(&doc, "StageDuration")["properties"];
    for count in ["count", "open_count"] {
        let text = stage[count]["description"].as_str().unwrap_or("");
        assert!(!text.contains("second"), "{count}: {text}");
    }
    for length in [
        "avg",
        "median",
        "p90",
        "max",
        "open_median_age",
        "open_p90_age",
    ] {
        let text = stage[length]["description"].as_str().unwrap_or("");
        assert!(text.contains("seconds"), "{length}: {text}");
    }
}

/// Every member the schema requires is in the answer, ids are UUIDs and amounts read as
/// the pattern says.
fn assert_sent_as_documented(doc: &Value, name: &str, value: &Value) {
    let s = schema(doc, name);
    for member in required(s) {
        assert!(
            value.get(&member).is_some(),
            "{name}.{member} missing in {value}"
        );
        let sent = &value[&member];
        let format = &s["properties"][&member]["format"];
        if let (Some(text), "uuid") = (sent.as_str(), format.as_str().unwrap_or("")) {
            assert!(
                uuid::Uuid::parse_str(text).is_ok(),
                "{name}.{member}: {text}"
            );
        }
        if let (Some(text), Some(_)) = (sent.as_str(), s["properties"][&member]["pattern"].as_str())
        {
            let (whole, cents) = text.split_once('.').unwrap_or((text, ""));
            assert!(
                !whole.is_empty()
                    && whole.bytes().all(|b| b.is_ascii_digit())
                    && cents.len() == 2
                    && cents.bytes().all(|b| b.is_ascii_digit()),
                "{name}.{member}: {text}"
            );
        }
    }
}

api_tests!(
    patch_bodies_are_applied_as_documented,
    answers_carry_every_required_member,
    win_refuses_a_body_it_cannot_read,
    win_without_a_body_wins,
    every_201_names_the_created_record,
    unknown_query_parameters_are_ignored,
);

async fn answers_carry_every_required_member(app: TestApp) {
    let doc = document();
    let pipeline = app.gated_pipeline().await;
    let lead = app
        .lead_as(&app.admin_token, json!({"company": "杭州云启科技"}))
        .await;
    assert_sent_as_documented(&doc, "LeadOut", &lead);
    let deal = app
        .opportunity(
            &app.admin_token,
            json!({"name": "Sent", "pipeline_id": id_of(&pipeline), "amount": "12500.5"}),
        )
        .await;
    assert_sent_as_documented(&doc, "OpportunityOut", &deal);
    for (path, page) in [
        ("/api/v1/leads", "PageOut_LeadOut"),
        ("/api/v1/opportunities", "PageOut_OpportunityOut"),
        ("/api/v1/pipelines", "PageOut_PipelineOut"),
    ] {
        let res = app.get(path).admin().send().await;
        assert_eq!(res.status, StatusCode::OK, "{}", res.text);
        assert_sent_as_documented(&doc, page, &res.body);
        let item = page.trim_start_matches("PageOut_");
        for record in res.body["data"].as_array().unwrap() {
            assert_sent_as_documented(&doc, item, record);
        }
    }
    let pipeline_id = id_of(&pipeline);
    for (report, name) in [
        ("funnel", "FunnelReport"),
        ("stage-durations", "DurationsReport"),
    ] {
        let res = app
            .get(&format!(
                "/api/v1/reports/{report}?pipeline_id={pipeline_id}"
            ))
            .admin()
            .send()
            .await;
        assert_eq!(res.status, StatusCode::OK, "{}", res.text);
        assert_sent_as_documented(&doc, name, &res.body);
        assert!(res.body.get("segments").is_none(), "{}", res.text);
    }
}

#[test]
fn the_win_body_is_optional() {
    let doc = document();
    let body = &doc["paths"]["/api/v1/opportunities/{id}/win"]["post"]["requestBody"];
    assert_eq!(body["required"], false, "{body}");
    assert!(body["content"]["application/json"].is_object(), "{body}");
    let responses = &doc["paths"]["/api/v1/opportunities/{id}/win"]["post"]["responses"];
    for status in ["400", "415", "422"] {
        assert!(responses.get(status).is_some(), "{status}");
    }
}

async fn open_deal(app: &TestApp) -> String {
    let pipeline = app.gated_pipeline().await;
    let deal = app
        .opportunity(
            &app.admin_token,
            json!({"name": "Win me", "pipeline_id": id_of(&pipeline), "amount": "100.00"}),
        )
        .await;
    id_of(&deal)
}

async fn assert_still_open(app: &TestApp, id: &str) {
    let res = app
        .get(&format!("/api/v1/opportunities/{id}"))
        .admin()
        .send()
        .await;
    assert_eq!(res.body["status"], "open", "{}", res.text);
    assert_eq!(res.body["version"], 1, "{}", res.text);
}

async fn win_refuses_a_body_it_cannot_read(app: TestApp) {
    let id = open_deal(&app).await;
    let url = format!("/api/v1/opportunities/{id}/win");
    let res = app
        .post(&url)
        .admin()
        .raw("application/json", "{\"note\": ")
        .send()
        .await;
    res.problem(400, "malformed_json");
    assert_still_open(&app, &id).await;
    let res = app
        .post(&url)
        .admin()
        .raw("text/plain;charset=UTF-8", "{\"note\":\"x\"}")
        .send()
        .await;
    res.problem(415, "unsupported_media_type");
    assert_still_open(&app, &id).await;
    let res = app
        .post(&url)
        .admin()
        .json(json!({"dryrun": true}))
        .send()
        .await;
    res.problem(422, "validation_failed");
    assert_eq!(res.error_fields(), ["dryrun"]);
    assert_still_open(&app, &id).await;
    let res = app.post(&url).admin().json(json!({"note": 5})).send().await;
    res.problem(422, "validation_failed");
    assert_eq!(res.error_fields(), ["note"]);
    assert_still_open(&app, &id).await;
    let res = app
        .post(&url)
        .admin()
        .json(json!({"dry_run": true}))
        .send()
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    assert_eq!(res.body["status"], "won");
    assert_still_open(&app, &id).await;
}

async fn win_without_a_body_wins(app: TestApp) {
    for (content_type, body) in [
        (None, ""),
        (Some("text/plain;charset=UTF-8"), ""),
        (Some("application/json"), ""),
        (Some("application/json"), "{\"note\":\"签约\"}"),
    ] {
        let id = open_deal(&app).await;
        let req = app.post(&format!("/api/v1/opportunities/{id}/win")).admin();
        let req = match content_type {
            Some(ct) => req.raw(ct, body),
            None => req,
        };
        let res = req.send().await;
        assert_eq!(
            res.status,
            StatusCode::OK,
            "{content_type:?} {body:?}: {}",
            res.text
        );
        assert_eq!(res.body["status"], "won");
    }
}

#[test]
fn every_201_documents_location() {
    let doc = document();
    let mut created = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            if let Some(response) = op["responses"].get("201") {
                created += 1;
                let location = &response["headers"]["Location"];
                assert_eq!(location["schema"]["type"], "string", "{method} {path}");
                assert!(location["description"].is_string(), "{method} {path}");
            }
        }
    }
    assert!(created >= 14, "{created}");
}

/// Asserts the 201 and its `Location`; returns the created record.
#[track_caller]
fn created_at(res: &crate::helpers::Res, location: &str) -> Value {
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.text);
    assert_eq!(res.header("location"), Some(location), "{}", res.text);
    res.body.clone()
}

/// Reads the record back at its `Location`.
async fn read_back(app: &TestApp, location: &str, id: &str) {
    let res = app.get(location).admin().send().await;
    assert_eq!(res.status, StatusCode::OK, "{location}: {}", res.text);
    assert_eq!(res.body["id"], id, "{location}");
}

async fn every_201_names_the_created_record(app: TestApp) {
    let res = app
        .post("/api/v1/pipelines/from-template")
        .admin()
        .json(json!({"template": "saas"}))
        .send()
        .await;
    let id = res.body["id"].as_str().unwrap_or_default().to_owned();
    created_at(&res, &format!("/api/v1/pipelines/{id}"));
    read_back(&app, &format!("/api/v1/pipelines/{id}"), &id).await;
    let pipeline = app.gated_pipeline().await;
    let pipeline_id = id_of(&pipeline);
    let res = app
        .post("/api/v1/pipelines")
        .admin()
        .json(
            json!({"name": "Located", "stages": [{"name": "Open", "probability": 10},
            {"name": "Won", "kind": "won"}, {"name": "Lost", "kind": "lost"}]}),
        )
        .send()
        .await;
    let id = res.body["id"].as_str().unwrap_or_default().to_owned();
    created_at(&res, &format!("/api/v1/pipelines/{id}"));
    let res = app
        .post(&format!("/api/v1/pipelines/{id}/stages"))
        .admin()
        .json(json!({"name": "Demo", "probability": 30}))
        .send()
        .await;
    let stage = res.body["id"].as_str().unwrap_or_default().to_owned();
    created_at(&res, &format!("/api/v1/stages/{stage}"));

    let res = app
        .post("/api/v1/leads")
        .admin()
        .json(json!({"company": "杭州云启科技", "email": "li@yunqi.example"}))
        .send()
        .await;
    let lead = res.body["id"].as_str().unwrap_or_default().to_owned();
    created_at(&res, &format!("/api/v1/leads/{lead}"));
    read_back(&app, &format!("/api/v1/leads/{lead}"), &lead).await;
    let res = app
        .post(&format!("/api/v1/leads/{lead}/convert"))
        .admin()
        .json(json!({"pipeline_id": pipeline_id}))
        .send()
        .await;
    let deal = res.body["opportunity"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    created_at(&res, &format!("/api/v1/opportunities/{deal}"));
    read_back(&app, &format!("/api/v1/opportunities/{deal}"), &deal).await;

    let res = app
        .post("/api/v1/opportunities")
        .admin()
        .json(json!({"name": "Direct", "pipeline_id": pipeline_id}))
        .send()
        .await;
    let id = res.body["id"].as_str().unwrap_or_default().to_owned();
    created_at(&res, &format!("/api/v1/opportunities/{id}"));
    for (collection, body) in [
        ("accounts", json!({"name": "宁波港科"})),
        ("contacts", json!({"last_name": "王"})),
        (
            "activities",
            json!({"type": "call", "subject": "首次通话", "opportunity_id": deal}),
        ),
        (
            "users",
            json!({"email": "rep@example.com", "password": "correct-horse-battery",
                         "name": "Rep", "role": "rep"}),
        ),
    ] {
        let res = app
            .post(&format!("/api/v1/{collection}"))
            .admin()
            .json(body)
            .send()
            .await;
        let id = res.body["id"].as_str().unwrap_or_default().to_owned();
        let location = format!("/api/v1/{collection}/{id}");
        created_at(&res, &location);
        read_back(&app, &location, &id).await;
    }
    let res = app
        .post("/api/v1/api-keys")
        .admin()
        .json(json!({"name": "forms", "scopes": ["leads:write"]}))
        .send()
        .await;
    let key = res.body["id"].as_str().unwrap_or_default().to_owned();
    created_at(&res, &format!("/api/v1/api-keys/{key}"));
    let res = app
        .post("/api/v1/teams")
        .admin()
        .json(json!({"name": "华东"}))
        .send()
        .await;
    created_at(&res, "/api/v1/teams");
    let res = app
        .post("/api/v1/loss-reasons")
        .admin()
        .json(json!({"id": "timing", "label": "时机不对"}))
        .send()
        .await;
    created_at(&res, "/api/v1/loss-reasons");
    let res = app
        .post("/api/v1/reports/forecast/snapshots")
        .admin()
        .json(json!({"name": "Q4"}))
        .send()
        .await;
    let id = res.body["id"].as_str().unwrap_or_default().to_owned();
    let location = format!("/api/v1/reports/forecast/snapshots/{id}/accuracy");
    created_at(&res, &location);
    let res = app.get(&location).admin().send().await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
}

async fn unknown_query_parameters_are_ignored(app: TestApp) {
    let pipeline = app.pipeline_from_template("standard").await;
    let pipeline_id = id_of(&pipeline);
    for path in [
        "/api/v1/pipelines?_=1733000000000".to_owned(),
        "/api/v1/leads?colour=red&_=1".to_owned(),
        "/api/v1/opportunities?utm_source=mail".to_owned(),
        "/api/v1/follow-ups?_=1".to_owned(),
        format!("/api/v1/reports/funnel?pipeline_id={pipeline_id}&_=1"),
    ] {
        let res = app.get(&path).admin().send().await;
        assert_eq!(res.status, StatusCode::OK, "{path}: {}", res.text);
    }
    for (path, parameter) in [
        ("/api/v1/pipelines?limit=many&_=1", "limit"),
        ("/api/v1/leads?status=maybe&colour=red", "status"),
        ("/api/v1/opportunities?stalled=perhaps", "stalled"),
    ] {
        let res = app.get(path).admin().send().await;
        res.problem(400, "invalid_parameter");
        assert_eq!(res.error_fields(), [parameter], "{path}");
    }
}
