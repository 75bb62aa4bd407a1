use actix_web::http::StatusCode;
use serde_json::json;
use stageflow::domain::user::Role;

use crate::api_tests;
use crate::factories::assert_invisible;
use crate::helpers::{TestApp, PASSWORD};

api_tests!(
    visibility_follows_roles,
    user_input_is_validated_field_by_field,
    duplicate_emails_conflict_with_the_existing_id,
    clients_cannot_set_server_owned_fields,
    stale_if_match_is_412_and_fresh_one_succeeds,
    reps_and_managers_cannot_administer_users,
    user_lists_paginate_with_cursors,
);

fn ids(body: &serde_json::Value) -> Vec<String> {
    let mut v: Vec<String> = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["id"].as_str().unwrap().to_owned())
        .collect();
    v.sort();
    v
}

async fn visibility_follows_roles(app: TestApp) {
    let (manager, manager_token) = app.user("manager@example.com", Role::Manager, None).await;
    let team = app.team("华东大客户组", Some(&manager)).await;
    let (rep_a, rep_a_token) = app.user("a@example.com", Role::Rep, Some(&team)).await;
    let (rep_b, rep_b_token) = app.user("b@example.com", Role::Rep, None).await;
    // The manager's token predates the team; visibility is read per request.
    let manager_sees = app.get("/api/v1/users").token(&manager_token).send().await;
    let mut expected = vec![manager.clone(), rep_a.clone()];
    expected.sort();
    assert_eq!(ids(&manager_sees.body), expected);

    let admin_sees = app.get("/api/v1/users").admin().send().await;
    assert_eq!(admin_sees.body["data"].as_array().unwrap().len(), 4);

    let rep_sees = app.get("/api/v1/users").token(&rep_a_token).send().await;
    assert_eq!(ids(&rep_sees.body), vec![rep_a.clone()]);

    // Invisible records are 404, not 403.
    assert_invisible(&app, &rep_a_token, &format!("/api/v1/users/{rep_b}")).await;
    assert_invisible(&app, &manager_token, &format!("/api/v1/users/{rep_b}")).await;
    assert_invisible(&app, &rep_b_token, &format!("/api/v1/users/{rep_a}")).await;
    let ok = app
        .get(&format!("/api/v1/users/{rep_a}"))
        .token(&manager_token)
        .send()
        .await;
    assert_eq!(ok.status, StatusCode::OK);
    assert_eq!(ok.body["team_id"], team.as_str());
    let own = app
        .get(&format!("/api/v1/users/{rep_b}"))
        .token(&rep_b_token)
        .send()
        .await;
    assert_eq!(own.status, StatusCode::OK);
}

async fn user_input_is_validated_field_by_field(app: TestApp) {
    let res = app
        .post("/api/v1/users")
        .admin()
        .json(json!({"email": "not-an-email", "password": "short", "name": " ", "role": "rep"}))
        .send()
        .await;
    res.problem(422, "validation_failed");
    let mut fields = res.error_fields();
    fields.sort();
    assert_eq!(fields, ["email", "name", "password"]);
    let res = app
        .post("/api/v1/users")
        .admin()
        .json(json!({"email": "x@example.com", "password": PASSWORD, "name": "X", "role": "boss"}))
        .send()
        .await;
    res.problem(422, "validation_failed");
    assert_eq!(res.body["errors"][0]["pointer"], "/role");
    assert_eq!(res.body["errors"][0]["code"], "unknown_value");
    let res = app
        .post("/api/v1/users")
        .admin()
        .json(json!({"email": "x@example.com", "password": PASSWORD, "name": "X", "role": "rep", "team_id": "nope"}))
        .send()
        .await;
    res.problem(422, "validation_failed");
    assert_eq!(res.error_fields(), ["team_id"]);
    let list = app.get("/api/v1/users").admin().send().await;
    assert_eq!(
        list.body["data"].as_array().unwrap().len(),
        1,
        "nothing half-written"
    );
}

async fn duplicate_emails_conflict_with_the_existing_id(app: TestApp) {
    let (id, _) = app.user("dup@example.com", Role::Rep, None).await;
    let res = app
        .post("/api/v1/users")
        .admin()
        .json(json!({"email": "DUP@example.com", "password": PASSWORD, "name": "Again", "role": "rep"}))
        .send()
        .await;
    res.problem(409, "email_taken");
    assert_eq!(res.body["existing_id"], id.as_str());
}

async fn clients_cannot_set_server_owned_fields(app: TestApp) {
    for (field, value) in [
        ("id", json!("mine")),
        ("version", json!(7)),
        ("created_by", json!("x")),
    ] {
        let mut body =
            json!({"email": "x@example.com", "password": PASSWORD, "name": "X", "role": "rep"});
        body[field] = value;
        let res = app.post("/api/v1/users").admin().json(body).send().await;
        res.problem(422, "validation_failed");
        assert_eq!(res.body["errors"][0]["code"], "unknown_field");
        assert_eq!(res.body["errors"][0]["pointer"], format!("/{field}"));
    }
}

async fn stale_if_match_is_412_and_fresh_one_succeeds(app: TestApp) {
    let (id, _) = app.user("v@example.com", Role::Rep, None).await;
    let first = app.get(&format!("/api/v1/users/{id}")).admin().send().await;
    let etag = first.header("etag").unwrap().to_owned();
    assert_eq!(etag, "\"1\"");
    let ok = app
        .patch(&format!("/api/v1/users/{id}"))
        .admin()
        .header("if-match", &etag)
        .json(json!({"name": "Renamed"}))
        .send()
        .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text);
    assert_eq!(ok.header("etag"), Some("\"2\""));
    assert_eq!(ok.body["name"], "Renamed");
    let stale = app
        .patch(&format!("/api/v1/users/{id}"))
        .admin()
        .header("if-match", &etag)
        .json(json!({"name": "Lost update"}))
        .send()
        .await;
    stale.problem(412, "version_conflict");
    assert_eq!(stale.body["current_version"], 2);
    let now = app.get(&format!("/api/v1/users/{id}")).admin().send().await;
    assert_eq!(now.body["name"], "Renamed");
    app.patch(&format!("/api/v1/users/{id}"))
        .admin()
        .header("if-match", "garbage")
        .json(json!({"name": "x"}))
        .send()
        .await
        .problem(400, "invalid_if_match");
}

async fn reps_and_managers_cannot_administer_users(app: TestApp) {
    let (_, rep) = app.user("r@example.com", Role::Rep, None).await;
    let (manager_id, manager) = app.user("m@example.com", Role::Manager, None).await;
    let body =
        json!({"email": "new@example.com", "password": PASSWORD, "name": "N", "role": "admin"});
    app.post("/api/v1/users")
        .token(&rep)
        .json(body.clone())
        .send()
        .await
        .problem(403, "forbidden");
    app.post("/api/v1/users")
        .token(&manager)
        .json(body)
        .send()
        .await
        .problem(403, "forbidden");
    app.patch(&format!("/api/v1/users/{manager_id}"))
        .token(&manager)
        .json(json!({"role": "admin"}))
        .send()
        .await
        .problem(403, "forbidden");
    app.post("/api/v1/teams")
        .token(&manager)
        .json(json!({"name": "t"}))
        .send()
        .await
        .problem(403, "forbidden");
}

async fn user_lists_paginate_with_cursors(app: TestApp) {
    for i in 0..4 {
        app.user(&format!("u{i}@example.com"), Role::Rep, None)
            .await;
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/users?limit=2&sort=email&cursor={c}"),
            None => "/api/v1/users?limit=2&sort=email".to_owned(),
        };
        let page = app.get(&path).admin().send().await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.text);
        for u in page.body["data"].as_array().unwrap() {
            seen.push(u["email"].as_str().unwrap().to_owned());
        }
        match page.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    let mut sorted = seen.clone();
    sorted.sort();
    assert_eq!(seen, sorted);
    assert_eq!(seen.len(), 5);
    sorted.dedup();
    assert_eq!(sorted.len(), 5, "no row twice");
}
