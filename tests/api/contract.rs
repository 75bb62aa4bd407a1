//! The OpenAPI document as a client generator reads it: every reference resolves, enums
//! carry the values on the wire, every response is described, errors are problem+json,
//! and the statuses the server answers are documented. Plus the HTTP details a browser
//! client meets: content negotiation by q-values and the headers CORS exposes.

use std::collections::BTreeSet;

use actix_web::http::StatusCode;
use serde_json::{json, Value};

use crate::api_tests;
use crate::helpers::TestApp;

const DOCUMENT: &str = include_str!("../../openapi/openapi.json");

fn document() -> Value {
    serde_json::from_str(DOCUMENT).expect("the committed document is JSON")
}

fn collect_refs(v: &Value, out: &mut BTreeSet<String>) {
    match v {
        Value::Object(map) => {
            for (k, v) in map {
                match (k.as_str(), v) {
                    ("$ref", Value::String(r)) => {
                        out.insert(r.clone());
                    }
                    _ => collect_refs(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_refs(v, out)),
        _ => {}
    }
}

/// (path, method, operation) for every operation.
fn operations(doc: &Value) -> Vec<(String, String, Value)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            out.push((path.clone(), method.clone(), op.clone()));
        }
    }
    out
}

#[test]
fn every_reference_resolves() {
    let doc = document();
    let mut refs = BTreeSet::new();
    collect_refs(&doc, &mut refs);
    assert!(refs.contains("#/components/schemas/GroupBy"), "{refs:?}");
    for r in refs {
        let name = r
            .strip_prefix("#/components/schemas/")
            .expect("local schema ref");
        assert!(
            doc["components"]["schemas"].get(name).is_some(),
            "{r} points nowhere"
        );
    }
}

#[test]
fn enums_carry_the_values_on_the_wire() {
    let doc = document();
    let values = |name: &str| -> Vec<String> {
        doc["components"]["schemas"][name]["enum"]
            .as_array()
            .unwrap_or_else(|| panic!("{name} has no enum"))
            .iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        values("CompanySize"),
        ["1-10", "11-50", "51-200", "201-1000", "1000+"]
    );
    assert!(values("LeadSource").contains(&"web_form".to_owned()));
    assert!(values("Timeline").contains(&"within_3_months".to_owned()));
    assert_eq!(values("OpportunityStatus"), ["open", "won", "lost"]);
    assert!(values("ActivityType").contains(&"meeting".to_owned()));
    assert_eq!(
        doc["components"]["schemas"]["FunnelStage"]["properties"]["kind"]["$ref"],
        "#/components/schemas/StageKind"
    );
    let codes = &doc["components"]["schemas"]["Problem"]["properties"]["code"]["enum"];
    assert!(codes
        .as_array()
        .is_some_and(|c| c.contains(&"stage_requirements_unmet".into())));
    assert!(values("Channel").contains(&"import".to_owned()));
}

#[test]
fn reports_document_json_and_csv_and_only_their_parameters() {
    let doc = document();
    let funnel = &doc["paths"]["/api/v1/reports/funnel"]["get"];
    let ok = &funnel["responses"]["200"]["content"];
    assert_eq!(
        ok["application/json"]["schema"]["$ref"],
        "#/components/schemas/FunnelReport"
    );
    assert_eq!(ok["text/csv"]["schema"]["type"], "string");
    let names: Vec<&str> = funnel["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"mode") && !names.contains(&"metric") && !names.contains(&"limit"));
    let pipeline = funnel["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "pipeline_id")
        .unwrap();
    assert_eq!(pipeline["required"], true);
}

#[test]
fn every_response_is_described_and_errors_are_problems() {
    let doc = document();
    for (path, method, op) in operations(&doc) {
        for (status, response) in op["responses"].as_object().unwrap() {
            assert!(
                !response["description"].as_str().unwrap_or("").is_empty(),
                "{method} {path} {status} has no description"
            );
            if status.starts_with('4') || status.starts_with('5') {
                let content = response["content"].as_object();
                assert!(
                    content.is_some_and(|c| c.contains_key("application/problem+json")
                        && !c.contains_key("application/json")),
                    "{method} {path} {status} is not documented as problem+json"
                );
            }
        }
    }
}

#[test]
fn the_statuses_the_server_answers_are_documented() {
    let doc = document();
    for (path, method, op) in operations(&doc) {
        let statuses: BTreeSet<&str> = op["responses"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let public = op["security"].as_array().is_some_and(|s| {
            s.iter()
                .all(|r| r.as_object().is_some_and(|o| o.is_empty()))
        });
        if path.starts_with("/api/") {
            assert!(
                statuses.contains("400") && statuses.contains("429"),
                "{method} {path}"
            );
        }
        if !public {
            assert!(
                statuses.contains("401") && statuses.contains("403"),
                "{method} {path}"
            );
        }
        if path.contains("{id}") {
            assert!(statuses.contains("404"), "{method} {path}");
        }
        let if_match = op["parameters"]
            .as_array()
            .is_some_and(|ps| ps.iter().any(|p| p["name"] == "If-Match"));
        if if_match {
            assert!(statuses.contains("412"), "{method} {path}");
        }
        if op.get("requestBody").is_some() {
            assert!(statuses.contains("415"), "{method} {path}");
        }
    }
}

api_tests!(
    reports_negotiate_by_q_values,
    browsers_can_read_download_names,
    a_lead_deals_point_at_is_kept,
    blank_ids_are_refused_not_read_as_absent,
);

async fn a_lead_deals_point_at_is_kept(app: TestApp) {
    let pipeline = app.pipeline_from_template("standard").await;
    let lead = app
        .lead_as(&app.admin_token, json!({"company": "Origin"}))
        .await;
    app.opportunity(
        &app.admin_token,
        json!({"name": "From the lead", "pipeline_id": pipeline["id"], "lead_id": lead["id"]}),
    )
    .await;
    let url = format!("/api/v1/leads/{}", lead["id"].as_str().unwrap());
    app.delete(&url)
        .admin()
        .send()
        .await
        .problem(409, "lead_in_use");
    let still = app.get(&url).admin().send().await;
    assert_eq!(still.status, StatusCode::OK);
}

async fn blank_ids_are_refused_not_read_as_absent(app: TestApp) {
    let res = app
        .post("/api/v1/accounts")
        .admin()
        .json(json!({"name": "Blank owner", "owner_id": ""}))
        .send()
        .await;
    res.problem(422, "validation_failed");
    assert_eq!(res.error_fields(), ["owner_id"]);
    let pipeline = app.pipeline_from_template("standard").await;
    let res = app
        .post("/api/v1/reports/funnel.svg/links")
        .admin()
        .json(json!({"pipeline_id": pipeline["id"], "team_id": ""}))
        .send()
        .await;
    res.problem(422, "validation_failed");
    assert_eq!(res.error_fields(), ["team_id"]);
    let res = app
        .post("/api/v1/reports/funnel.svg/links")
        .admin()
        .json(json!({"pipeline_id": pipeline["id"], "from": "soon"}))
        .send()
        .await;
    res.problem(422, "validation_failed");
    assert_eq!(res.error_fields(), ["from"]);
    let res = app
        .get("/api/v1/opportunities?amount_min=%2012")
        .admin()
        .send()
        .await;
    res.problem(400, "invalid_parameter");
    assert_eq!(res.error_fields(), ["amount_min"]);
}

async fn reports_negotiate_by_q_values(app: TestApp) {
    let pipeline = app.pipeline_from_template("standard").await;
    let url = format!(
        "/api/v1/reports/funnel?pipeline_id={}",
        pipeline["id"].as_str().unwrap()
    );
    for (accept, csv) in [
        ("application/json, text/csv;q=0.1", false),
        ("text/csv", true),
        ("text/csv;q=0.9, application/json;q=0.5", true),
        ("*/*", false),
    ] {
        let res = app.get(&url).admin().header("Accept", accept).send().await;
        assert_eq!(res.status, StatusCode::OK, "{}", res.text);
        let ct = res.header("content-type").unwrap_or("");
        assert_eq!(ct.starts_with("text/csv"), csv, "{accept} gave {ct}");
    }
}

async fn browsers_can_read_download_names(app: TestApp) {
    let res = app
        .req(actix_web::http::Method::OPTIONS, "/api/v1/reports/funnel")
        .header("Origin", "https://app.example.com")
        .header("Access-Control-Request-Method", "GET")
        .send()
        .await;
    assert!(res.status.is_success(), "{}", res.status);
    let res = app
        .get("/api/v1/pipelines")
        .admin()
        .header("Origin", "https://app.example.com")
        .send()
        .await;
    let exposed = res
        .header("access-control-expose-headers")
        .unwrap_or("")
        .to_ascii_lowercase();
    assert!(exposed.contains("content-disposition"), "{exposed}");
    assert!(exposed.contains("location"), "{exposed}");
}
