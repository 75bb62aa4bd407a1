use actix_web::http::StatusCode;
use serde_json::json;

use crate::api_tests;
use crate::helpers::{Backend, TestApp};

api_tests!(
    malformed_json_is_a_400_problem,
    wrong_content_type_is_415,
    unknown_routes_are_404_problems,
    wrong_methods_are_405_with_allow,
    bad_query_parameters_name_the_parameter,
    request_ids_are_echoed_or_generated,
    cors_preflight_allows_configured_origins_only,
    health_probes_answer,
);

async fn malformed_json_is_a_400_problem(app: TestApp) {
    let res = app
        .post("/api/v1/pipelines")
        .admin()
        .raw("application/json", "{\"name\": ")
        .send()
        .await;
    let body = res.problem(400, "malformed_json");
    assert_eq!(body["type"], "urn:stageflow:problem:malformed_json");
    assert_eq!(body["title"], "Bad Request");
    let res = app
        .post("/api/v1/pipelines")
        .admin()
        .raw("application/json", "{} trailing")
        .send()
        .await;
    res.problem(400, "malformed_json");
}

async fn wrong_content_type_is_415(app: TestApp) {
    let res = app
        .post("/api/v1/pipelines")
        .admin()
        .raw("text/plain", "name=x")
        .send()
        .await;
    res.problem(415, "unsupported_media_type");
}

async fn unknown_routes_are_404_problems(app: TestApp) {
    app.get("/api/v1/nothing-here")
        .admin()
        .send()
        .await
        .problem(404, "not_found");
    app.get("/favicon.ico")
        .send()
        .await
        .problem(404, "not_found");
    app.get("/api/v1/pipelines/does-not-exist")
        .admin()
        .send()
        .await
        .problem(404, "not_found");
}

async fn wrong_methods_are_405_with_allow(app: TestApp) {
    let res = app.delete("/api/v1/pipelines").admin().send().await;
    res.problem(405, "method_not_allowed");
    let allow = res.header("allow").unwrap();
    assert!(allow.contains("GET") && allow.contains("POST"), "{allow}");
    let res = app.get("/api/v1/auth/token").send().await;
    res.problem(405, "method_not_allowed");
    assert_eq!(res.header("allow"), Some("POST"));
}

async fn bad_query_parameters_name_the_parameter(app: TestApp) {
    let res = app.get("/api/v1/pipelines?limit=many").admin().send().await;
    res.problem(400, "invalid_parameter");
    assert_eq!(res.error_fields(), ["limit"]);
    // Unknown parameters (cache-busters such as `_=…`) are ignored; bad values of known
    // ones are still refused, naming the parameter.
    let res = app
        .get("/api/v1/pipelines?colour=red&limit=0")
        .admin()
        .send()
        .await;
    res.problem(400, "invalid_parameter");
    assert_eq!(res.error_fields(), ["limit"]);
    let res = app.get("/api/v1/pipelines?colour=red").admin().send().await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
}

async fn request_ids_are_echoed_or_generated(app: TestApp) {
    let res = app
        .get("/health/live")
        .header("x-request-id", "req-123")
        .send()
        .await;
    assert_eq!(res.header("x-request-id"), Some("req-123"));
    let res = app.get("/api/v1/users/me").send().await;
    let generated = res.header("x-request-id").unwrap();
    assert_eq!(generated.len(), 36);
}

async fn cors_preflight_allows_configured_origins_only(app: TestApp) {
    let res = app
        .req(actix_web::http::Method::OPTIONS, "/api/v1/pipelines")
        .header("origin", "https://app.example.com")
        .header("access-control-request-method", "PATCH")
        .header(
            "access-control-request-headers",
            "authorization, if-match, content-type",
        )
        .send()
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    assert_eq!(
        res.header("access-control-allow-origin"),
        Some("https://app.example.com")
    );
    let res = app
        .req(actix_web::http::Method::OPTIONS, "/api/v1/pipelines")
        .header("origin", "https://evil.example.net")
        .header("access-control-request-method", "GET")
        .send()
        .await;
    assert!(res.header("access-control-allow-origin").is_none());
    assert!(res.status.is_client_error());
    let res = app
        .get("/api/v1/pipelines")
        .admin()
        .header("origin", "https://app.example.com")
        .send()
        .await;
    assert_eq!(
        res.header("access-control-allow-origin"),
        Some("https://app.example.com")
    );
}

async fn health_probes_answer(app: TestApp) {
    let live = app.get("/health/live").send().await;
    assert_eq!(
        (live.status, live.body.clone()),
        (StatusCode::OK, json!({"status": "ok"}))
    );
    let ready = app.get("/health/ready").send().await;
    assert_eq!(ready.status, StatusCode::OK);
}

#[actix_web::test]
async fn oversized_bodies_are_413() {
    let Some(app) = TestApp::spawn_with(Backend::Sqlite, |s| s.max_body_bytes = 2_000).await else {
        return;
    };
    let big = json!({"name": "x".repeat(5_000), "stages": []});
    let res = app.post("/api/v1/pipelines").admin().json(big).send().await;
    res.problem(413, "payload_too_large");
}
