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
    each_request_is_logged_once_in_its_span,
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
    // Inside a collection's prefix, a path no route takes is the same 404.
    for path in [
        "/api/v1/opportunities/",
        "/api/v1/opportunities/some-id/nothing",
        "/api/v1/reports/nothing",
        "/api/v1/users/some-id/nothing",
    ] {
        app.get(path).admin().send().await.problem(404, "not_found");
    }
}

async fn wrong_methods_are_405_with_allow(app: TestApp) {
    let res = app.delete("/api/v1/pipelines").admin().send().await;
    res.problem(405, "method_not_allowed");
    let allow = res.header("allow").unwrap();
    assert!(allow.contains("GET") && allow.contains("POST"), "{allow}");
    let res = app.get("/api/v1/auth/token").send().await;
    res.problem(405, "method_not_allowed");
    assert_eq!(res.header("allow"), Some("POST"));
    let res = app
        .put("/api/v1/opportunities/some-id")
        .admin()
        .send()
        .await;
    res.problem(405, "method_not_allowed");
    let allow = res.header("allow").unwrap();
    assert!(
        allow.contains("GET") && allow.contains("PATCH") && allow.contains("DELETE"),
        "{allow}"
    );
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

/// Log lines shared with the test through a buffer.
#[derive(Clone, Default)]
struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Every request ends with one log line inside its root span: the span names the
/// request id the client sent, the method, the path and the matched route template; the
/// line gives the status and the latency.
async fn each_request_is_logged_once_in_its_span(app: TestApp) {
    let path = "/api/v1/opportunities/01900000-0000-7000-8000-000000000000";
    // A first request registers the log call sites while no subscriber of this test
    // exists; installing the subscriber below then re-evaluates them. Otherwise another
    // test registering one of them at the same moment could cache it as disabled.
    app.get(path).admin().expect(404).await;
    let captured = Captured::default();
    let sink = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_max_level(tracing::Level::INFO)
        .with_writer(move || sink.clone())
        .finish();
    let guard = tracing::subscriber::set_default(subscriber);
    app.get(path)
        .admin()
        .header("x-request-id", "trace-me-42")
        .expect(404)
        .await;
    drop(guard);

    let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let ends: Vec<serde_json::Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["span"]["request_id"] == "trace-me-42")
        .filter(|v| v["fields"]["message"] == "request completed")
        .collect();
    assert_eq!(ends.len(), 1, "{text}");
    let end = &ends[0];
    assert_eq!(end["fields"]["status"], 404);
    assert!(end["fields"]["latency_ms"].as_f64().is_some(), "{end}");
    assert_eq!(end["span"]["name"], "request");
    assert_eq!(end["span"]["method"], "GET");
    assert_eq!(end["span"]["path"], path);
    assert_eq!(end["span"]["route"], "/api/v1/opportunities/{id}");
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
