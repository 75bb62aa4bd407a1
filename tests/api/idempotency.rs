use actix_web::http::StatusCode;
use serde_json::{json, Value};
use stageflow::domain::user::Role;

use crate::api_tests;
use crate::helpers::{id_of, TestApp, ADMIN_EMAIL, PASSWORD};

api_tests!(
    a_retried_post_replays_the_first_answer,
    a_key_belongs_to_its_caller_and_one_request,
    a_retried_conversion_answers_like_the_first,
    running_abandoned_expired_and_invalid_keys,
);

fn lead_body(company: &str) -> Value {
    json!({"company": company, "email": format!("{}@example.com", company.to_lowercase()), "source": "web_form"})
}

pub async fn post_lead(app: &TestApp, token: &str, key: &str, body: Value) -> crate::helpers::Res {
    app.post("/api/v1/leads")
        .token(token)
        .header("Idempotency-Key", key)
        .json(body)
        .send()
        .await
}

async fn a_retried_post_replays_the_first_answer(app: TestApp) {
    let first = post_lead(&app, &app.admin_token, "order-42", lead_body("Acme")).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.text);
    assert_eq!(first.header("idempotent-replayed"), None);
    let retry = post_lead(&app, &app.admin_token, "order-42", lead_body("Acme")).await;
    assert_eq!(retry.status, StatusCode::CREATED);
    assert_eq!(retry.header("idempotent-replayed"), Some("true"));
    assert_eq!(retry.body, first.body, "the same lead, not a new one");
    assert_eq!(retry.header("location"), first.header("location"));
    assert_eq!(retry.header("etag"), first.header("etag"));
    assert_eq!(retry.header("content-type"), first.header("content-type"));
    assert_eq!(app.count("leads", ""), 1);
    // A new token of the same user keeps the user's keys.
    let fresh = app.login(ADMIN_EMAIL, PASSWORD).await;
    let again = post_lead(&app, &fresh, "order-42", lead_body("Acme")).await;
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(id_of(&again.body), id_of(&first.body));
    // Without a key, the same body is a second request (and a duplicate email).
    let plain = app
        .post("/api/v1/leads")
        .admin()
        .json(lead_body("Acme"))
        .send()
        .await;
    plain.problem(409, "duplicate_lead");
    // A refused request is kept and replayed as refused.
    let bad = post_lead(&app, &app.admin_token, "bad-1", json!({"email": "nope"})).await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    let bad_again = post_lead(&app, &app.admin_token, "bad-1", json!({"email": "nope"})).await;
    assert_eq!(bad_again.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(bad_again.header("idempotent-replayed"), Some("true"));
    assert_eq!(bad_again.body, bad.body);
    assert_eq!(app.count("leads", ""), 1);
}

async fn a_key_belongs_to_its_caller_and_one_request(app: TestApp) {
    let (_, rep) = app.user("rep@example.com", Role::Rep, None).await;
    let first = post_lead(&app, &app.admin_token, "k-1", lead_body("Acme")).await;
    assert_eq!(first.status, StatusCode::CREATED);
    // Another caller with the same key runs its own request.
    let other = post_lead(&app, &rep, "k-1", lead_body("Beta")).await;
    assert_eq!(other.status, StatusCode::CREATED, "{}", other.text);
    assert_eq!(other.header("idempotent-replayed"), None);
    assert_ne!(id_of(&other.body), id_of(&first.body));
    // The same key with another body, or another path, is refused.
    let reused = post_lead(&app, &app.admin_token, "k-1", lead_body("Gamma")).await;
    let problem = reused.problem(422, "idempotency_key_reused");
    assert_eq!(problem["errors"][0]["field"], "Idempotency-Key");
    let elsewhere = app
        .post("/api/v1/teams")
        .admin()
        .header("Idempotency-Key", "k-1")
        .json(json!({"name": "East"}))
        .send()
        .await;
    elsewhere.problem(422, "idempotency_key_reused");
    assert_eq!(app.count("leads", ""), 2);
    assert_eq!(app.count("teams", "name = 'East'"), 0);
    // A request with a bad token is answered 401 and its key is not taken.
    let unauthorised = post_lead(&app, "not-a-token", "k-2", lead_body("Delta")).await;
    unauthorised.problem(401, "unauthorized");
    assert_eq!(app.count("idempotency_keys", ""), 2);
}

async fn a_retried_conversion_answers_like_the_first(app: TestApp) {
    let pipeline = app.pipeline_from_template("standard").await;
    let lead = app.lead_as(&app.admin_token, lead_body("Acme")).await;
    let path = format!("/api/v1/leads/{}/convert", id_of(&lead));
    let body = json!({"pipeline_id": pipeline["id"], "amount": "5000.00"});
    let convert = |key: &'static str| {
        app.post(&path)
            .admin()
            .header("Idempotency-Key", key)
            .json(body.clone())
            .send()
    };
    let first = convert("convert-1").await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.text);
    let retry = convert("convert-1").await;
    assert_eq!(retry.status, StatusCode::CREATED);
    assert_eq!(retry.body, first.body);
    assert_eq!(app.count("opportunities", ""), 1);
    assert_eq!(app.count("stage_transitions", ""), 1);
    // A new key is a new request: the lead is already converted.
    convert("convert-2")
        .await
        .problem(409, "lead_already_converted");
}

async fn running_abandoned_expired_and_invalid_keys(app: TestApp) {
    let first = post_lead(&app, &app.admin_token, "slow", lead_body("Acme")).await;
    assert_eq!(first.status, StatusCode::CREATED);
    // While the first request runs (no answer recorded yet), a retry is told to wait.
    app.exec_sql("UPDATE idempotency_keys SET status = NULL, body = NULL");
    post_lead(&app, &app.admin_token, "slow", lead_body("Acme"))
        .await
        .problem(409, "idempotency_key_in_progress");
    // A first request that never answered (its process died) may be run again.
    app.state.clock.advance(chrono::Duration::hours(1));
    app.exec_sql("DELETE FROM leads");
    let rerun = post_lead(&app, &app.admin_token, "slow", lead_body("Acme")).await;
    assert_eq!(rerun.status, StatusCode::CREATED, "{}", rerun.text);
    assert_eq!(rerun.header("idempotent-replayed"), None);
    // After 24 hours a key is forgotten: a different request may use it.
    app.state.clock.advance(chrono::Duration::hours(25));
    let reused_later = post_lead(&app, &app.admin_token, "slow", lead_body("Beta")).await;
    assert_eq!(
        reused_later.status,
        StatusCode::CREATED,
        "{}",
        reused_later.text
    );
    assert_eq!(app.count("leads", ""), 2);
    // Keys are short printable tokens.
    let long = "x".repeat(256);
    let res = post_lead(&app, &app.admin_token, &long, lead_body("Gamma")).await;
    let problem = res.problem(400, "invalid_idempotency_key");
    assert_eq!(problem["errors"][0]["field"], "Idempotency-Key");
    assert_eq!(app.count("leads", ""), 2);
    // The key is documented on authenticated POSTs.
    let doc = app.get("/openapi.json").send().await;
    let params = doc.body["paths"]["/api/v1/leads"]["post"]["parameters"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(params
        .iter()
        .any(|p| p["name"] == "Idempotency-Key" && p["in"] == "header"));
}
