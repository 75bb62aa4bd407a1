use actix_web::http::StatusCode;
use serde_json::{json, Value};
use stageflow::domain::user::Role;

use crate::api_tests;
use crate::helpers::TestApp;

api_tests!(
    standard_template_has_the_seven_stages_and_outcomes,
    every_template_builds_a_usable_pipeline,
    unknown_templates_are_422,
    pipelines_are_validated_with_pointers,
    pipelines_list_paginates_and_filters,
    pipeline_etag_guards_updates,
    stages_can_be_added_changed_reordered_and_deleted,
    stage_deletion_honours_if_match,
    stage_rules_hold_after_every_change,
    reps_read_but_do_not_configure_pipelines,
    deleted_pipelines_are_gone,
);

fn names(p: &Value) -> Vec<String> {
    p["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_owned())
        .collect()
}

fn stage_ids(p: &Value) -> Vec<String> {
    p["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_owned())
        .collect()
}

fn custom_pipeline(name: &str) -> Value {
    json!({
        "name": name,
        "stages": [
            {"name": "Qualify", "probability": 10, "stalled_after_days": 7},
            {"name": "Propose", "probability": 50, "required_fields": ["amount", "expected_close_date"],
             "exit_criteria": ["Proposal accepted"], "suggested_actions": ["Send proposal"], "next_action_within_days": 3},
            {"name": "Won", "kind": "won"},
            {"name": "Lost", "kind": "lost"}
        ]
    })
}

async fn standard_template_has_the_seven_stages_and_outcomes(app: TestApp) {
    let p = app.pipeline_from_template("standard").await;
    assert_eq!(
        names(&p),
        [
            "初步接触",
            "意向确认",
            "方案设计",
            "预算评估",
            "商务谈判",
            "合同签订",
            "售后跟进",
            "输单"
        ]
    );
    let stages = p["stages"].as_array().unwrap();
    let kinds: Vec<&str> = stages.iter().map(|s| s["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        ["open", "open", "open", "open", "open", "open", "won", "lost"]
    );
    let probs: Vec<i64> = stages
        .iter()
        .map(|s| s["probability"].as_i64().unwrap())
        .collect();
    assert_eq!(probs, [10, 20, 40, 55, 75, 90, 100, 0]);
    for (i, s) in stages.iter().enumerate() {
        assert_eq!(s["position"], i);
        assert_eq!(s["pipeline_id"], p["id"]);
    }
    assert_eq!(
        stages[4]["required_fields"],
        json!(["amount", "expected_close_date", "account_id"])
    );
    assert!(!stages[2]["exit_criteria"].as_array().unwrap().is_empty());
    assert!(!stages[2]["suggested_actions"]
        .as_array()
        .unwrap()
        .is_empty());
    assert!(stages[0]["stalled_after_days"].as_i64().unwrap() > 0);
    let fetched = app
        .get(&format!("/api/v1/pipelines/{}", p["id"].as_str().unwrap()))
        .admin()
        .send()
        .await;
    assert_eq!(fetched.body, p);
}

async fn every_template_builds_a_usable_pipeline(app: TestApp) {
    for template in ["saas", "medical_devices", "education"] {
        let p = app.pipeline_from_template(template).await;
        let stages = p["stages"].as_array().unwrap();
        assert!(stages.len() >= 6, "{template}");
        assert_eq!(stages.iter().filter(|s| s["kind"] == "won").count(), 1);
        assert!(stages.iter().any(|s| s["kind"] == "lost"));
        assert!(stages
            .iter()
            .filter(|s| s["kind"] == "open")
            .all(|s| !s["suggested_actions"].as_array().unwrap().is_empty()));
    }
    let named = app
        .post("/api/v1/pipelines/from-template")
        .admin()
        .json(json!({"template": "saas", "name": "SMB 订阅"}))
        .send()
        .await;
    assert_eq!(named.status, StatusCode::CREATED);
    assert_eq!(named.body["name"], "SMB 订阅");
}

async fn unknown_templates_are_422(app: TestApp) {
    let res = app
        .post("/api/v1/pipelines/from-template")
        .admin()
        .json(json!({"template": "real_estate"}))
        .send()
        .await;
    res.problem(422, "validation_failed");
    assert_eq!(res.body["errors"][0]["pointer"], "/template");
}

async fn pipelines_are_validated_with_pointers(app: TestApp) {
    let mut body = custom_pipeline("Broken");
    body["stages"][2]["kind"] = json!("open");
    body["stages"][1]["required_fields"] = json!(["amount", "budget"]);
    body["stages"][0]["probability"] = json!(150);
    let res = app
        .post("/api/v1/pipelines")
        .admin()
        .json(body)
        .send()
        .await;
    res.problem(422, "validation_failed");
    let errors = res.body["errors"].as_array().unwrap();
    let found: Vec<(String, String)> = errors
        .iter()
        .map(|e| {
            (
                e["pointer"].as_str().unwrap().to_owned(),
                e["code"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert!(
        found.contains(&("/stages/0/probability".into(), "out_of_range".into())),
        "{found:?}"
    );
    assert!(
        found.contains(&("/stages/1/required_fields/1".into(), "unknown_field".into())),
        "{found:?}"
    );
    assert!(
        found.contains(&("/stages".into(), "won_stage_count".into())),
        "{found:?}"
    );
    let list = app.get("/api/v1/pipelines").admin().send().await;
    assert_eq!(list.body["data"], json!([]), "nothing stored");

    let mut dup = custom_pipeline("Dup");
    dup["stages"][1]["name"] = json!("qualify");
    let res = app.post("/api/v1/pipelines").admin().json(dup).send().await;
    res.problem(422, "validation_failed");
    assert_eq!(res.body["errors"][0]["code"], "duplicate_name");

    let res = app
        .post("/api/v1/pipelines")
        .admin()
        .json(json!({"name": "", "stages": []}))
        .send()
        .await;
    res.problem(422, "validation_failed");
    assert!(res.error_fields().contains(&"name".to_owned()));

    let ok = app
        .post("/api/v1/pipelines")
        .admin()
        .json(custom_pipeline("Custom"))
        .send()
        .await;
    assert_eq!(ok.status, StatusCode::CREATED, "{}", ok.text);
    assert_eq!(ok.body["stages"][2]["probability"], 100);
    assert_eq!(ok.body["stages"][3]["probability"], 0);
    assert_eq!(ok.body["stages"][1]["next_action_within_days"], 3);
    assert_eq!(ok.header("etag"), Some("\"1\""));
}

async fn pipelines_list_paginates_and_filters(app: TestApp) {
    for name in ["Alpha", "Bravo", "Charlie"] {
        let res = app
            .post("/api/v1/pipelines")
            .admin()
            .json(custom_pipeline(name))
            .send()
            .await;
        assert_eq!(res.status, StatusCode::CREATED);
    }
    let first = app
        .get("/api/v1/pipelines?limit=2&sort=-name")
        .admin()
        .send()
        .await;
    assert_eq!(first.status, StatusCode::OK);
    let page1: Vec<&str> = first.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(page1, ["Charlie", "Bravo"]);
    assert_eq!(first.body["data"][0]["stages"].as_array().unwrap().len(), 4);
    let cursor = first.body["next_cursor"].as_str().unwrap();
    let second = app
        .get(&format!(
            "/api/v1/pipelines?limit=2&sort=-name&cursor={cursor}"
        ))
        .admin()
        .send()
        .await;
    assert_eq!(second.body["data"][0]["name"], "Alpha");
    assert_eq!(second.body["next_cursor"], Value::Null);
    // A cursor only works with the sort it was issued for.
    app.get(&format!(
        "/api/v1/pipelines?limit=2&sort=name&cursor={cursor}"
    ))
    .admin()
    .send()
    .await
    .problem(400, "invalid_cursor");
    let q = app.get("/api/v1/pipelines?q=RAV").admin().send().await;
    assert_eq!(q.body["data"].as_array().unwrap().len(), 1);
    assert_eq!(q.body["data"][0]["name"], "Bravo");
    let by_time = app.get("/api/v1/pipelines?limit=1").admin().send().await;
    let c = by_time.body["next_cursor"].as_str().unwrap();
    let next = app
        .get(&format!("/api/v1/pipelines?limit=1&cursor={c}"))
        .admin()
        .send()
        .await;
    assert_eq!(next.body["data"][0]["name"], "Bravo");
    app.get("/api/v1/pipelines?limit=501")
        .admin()
        .send()
        .await
        .problem(400, "invalid_parameter");
    app.get("/api/v1/pipelines?sort=password")
        .admin()
        .send()
        .await
        .problem(400, "invalid_parameter");
}

async fn pipeline_etag_guards_updates(app: TestApp) {
    let p = app.pipeline_from_template("standard").await;
    let path = format!("/api/v1/pipelines/{}", p["id"].as_str().unwrap());
    let got = app.get(&path).admin().send().await;
    assert_eq!(got.header("etag"), Some("\"1\""));
    let ok = app
        .patch(&path)
        .admin()
        .header("if-match", "\"1\"")
        .json(json!({"name": "华北销售", "description": null}))
        .send()
        .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text);
    assert_eq!(ok.body["name"], "华北销售");
    assert_eq!(ok.body["description"], Value::Null);
    assert_eq!(ok.header("etag"), Some("\"2\""));
    let stale = app
        .patch(&path)
        .admin()
        .header("if-match", "\"1\"")
        .json(json!({"name": "Other"}))
        .send()
        .await;
    stale.problem(412, "version_conflict");
    assert_eq!(stale.body["current_version"], 2);
    assert_eq!(app.get(&path).admin().send().await.body["name"], "华北销售");
    app.patch(&path)
        .admin()
        .json(json!({"version": 9}))
        .send()
        .await
        .problem(422, "validation_failed");
}

/// A custom pipeline named `name`, with `stage` added to it: the pipeline's id and the
/// answer to the stage's creation (checked to be 201).
async fn pipeline_with_added_stage(
    app: &TestApp,
    name: &str,
    stage: Value,
) -> (String, crate::helpers::Res) {
    let p = app
        .post("/api/v1/pipelines")
        .admin()
        .json(custom_pipeline(name))
        .created()
        .await
        .body;
    let pid = p["id"].as_str().unwrap().to_owned();
    let added = app
        .post(&format!("/api/v1/pipelines/{pid}/stages"))
        .admin()
        .json(stage)
        .send()
        .await;
    assert_eq!(added.status, StatusCode::CREATED, "{}", added.text);
    (pid, added)
}

async fn stages_can_be_added_changed_reordered_and_deleted(app: TestApp) {
    let (pid, added) = pipeline_with_added_stage(
        &app,
        "Flow",
        json!({"name": "Negotiate", "probability": 75, "required_fields": ["amount", "custom.po_number"]}),
    )
    .await;
    let pid = pid.as_str();
    assert_eq!(
        added.body["position"], 2,
        "new open stages go before the outcomes"
    );
    let stage_id = added.body["id"].as_str().unwrap().to_owned();
    let now = app
        .get(&format!("/api/v1/pipelines/{pid}"))
        .admin()
        .send()
        .await;
    assert_eq!(
        names(&now.body),
        ["Qualify", "Propose", "Negotiate", "Won", "Lost"]
    );
    assert_eq!(
        now.header("etag"),
        Some("\"2\""),
        "stage changes bump the pipeline version"
    );

    let changed = app
        .patch(&format!("/api/v1/stages/{stage_id}"))
        .admin()
        .header("if-match", "\"1\"")
        .json(json!({"probability": 80, "stalled_after_days": 10, "suggested_actions": ["Call the buyer"]}))
        .send()
        .await;
    assert_eq!(changed.status, StatusCode::OK, "{}", changed.text);
    assert_eq!(changed.body["probability"], 80);
    assert_eq!(changed.body["name"], "Negotiate");
    assert_eq!(
        changed.body["required_fields"],
        json!(["amount", "custom.po_number"])
    );
    assert_eq!(changed.header("etag"), Some("\"2\""));
    app.patch(&format!("/api/v1/stages/{stage_id}"))
        .admin()
        .header("if-match", "\"1\"")
        .json(json!({"probability": 70}))
        .send()
        .await
        .problem(412, "version_conflict");

    let mut order = stage_ids(&now.body);
    order.swap(0, 1);
    let reordered = app
        .put(&format!("/api/v1/pipelines/{pid}/stage-order"))
        .admin()
        .json(json!({"stage_ids": order}))
        .send()
        .await;
    assert_eq!(reordered.status, StatusCode::OK, "{}", reordered.text);
    assert_eq!(
        names(&reordered.body),
        ["Propose", "Qualify", "Negotiate", "Won", "Lost"]
    );

    let deleted = app
        .delete(&format!("/api/v1/stages/{stage_id}?move_to={}", order[0]))
        .admin()
        .send()
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT, "{}", deleted.text);
    let after = app
        .get(&format!("/api/v1/pipelines/{pid}"))
        .admin()
        .send()
        .await;
    assert_eq!(names(&after.body), ["Propose", "Qualify", "Won", "Lost"]);
    let positions: Vec<i64> = after.body["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["position"].as_i64().unwrap())
        .collect();
    assert_eq!(positions, [0, 1, 2, 3]);
}

async fn stage_deletion_honours_if_match(app: TestApp) {
    let (pid, added) = pipeline_with_added_stage(
        &app,
        "Guarded",
        json!({"name": "Negotiate", "probability": 75}),
    )
    .await;
    let stage = format!("/api/v1/stages/{}", added.body["id"].as_str().unwrap());
    let changed = app
        .patch(&stage)
        .admin()
        .json(json!({"probability": 80}))
        .send()
        .await;
    assert_eq!(changed.header("etag"), Some("\"2\""), "{}", changed.text);
    let pipeline = format!("/api/v1/pipelines/{pid}");
    let before = app.get(&pipeline).admin().send().await;

    let stale = app
        .delete(&stage)
        .admin()
        .header("if-match", "\"1\"")
        .send()
        .await;
    stale.problem(412, "version_conflict");
    assert_eq!(stale.body["current_version"], 2);
    let unchanged = app.get(&pipeline).admin().send().await;
    assert_eq!(
        names(&unchanged.body),
        ["Qualify", "Propose", "Negotiate", "Won", "Lost"]
    );
    assert_eq!(
        unchanged.header("etag"),
        before.header("etag"),
        "nothing was written"
    );

    let current = app
        .delete(&stage)
        .admin()
        .header("if-match", "\"2\"")
        .send()
        .await;
    assert_eq!(current.status, StatusCode::NO_CONTENT, "{}", current.text);
    let after = app.get(&pipeline).admin().send().await;
    assert_eq!(names(&after.body), ["Qualify", "Propose", "Won", "Lost"]);
    app.delete(&stage)
        .admin()
        .header("if-match", "\"2\"")
        .send()
        .await
        .problem(404, "not_found");
}

async fn stage_rules_hold_after_every_change(app: TestApp) {
    let p = app
        .post("/api/v1/pipelines")
        .admin()
        .json(custom_pipeline("Rules"))
        .created()
        .await
        .body;
    let pid = p["id"].as_str().unwrap();
    let ids = stage_ids(&p);
    // A second won stage.
    let res = app
        .patch(&format!("/api/v1/stages/{}", ids[0]))
        .admin()
        .json(json!({"kind": "won"}))
        .send()
        .await;
    res.problem(422, "validation_failed");
    assert_eq!(res.body["errors"][0]["code"], "won_stage_count");
    // The only lost stage.
    let res = app
        .delete(&format!("/api/v1/stages/{}", ids[3]))
        .admin()
        .send()
        .await;
    res.problem(422, "validation_failed");
    assert_eq!(res.body["errors"][0]["code"], "lost_stage_missing");
    // A won stage with another probability.
    let res = app
        .patch(&format!("/api/v1/stages/{}", ids[2]))
        .admin()
        .json(json!({"probability": 90}))
        .send()
        .await;
    res.problem(422, "validation_failed");
    assert_eq!(res.body["errors"][0]["pointer"], "/probability");
    // Required fields must be real opportunity fields.
    let res = app
        .post(&format!("/api/v1/pipelines/{pid}/stages"))
        .admin()
        .json(json!({"name": "X", "probability": 20, "required_fields": ["favourite_colour"]}))
        .send()
        .await;
    res.problem(422, "validation_failed");
    assert_eq!(res.body["errors"][0]["pointer"], "/required_fields/0");
    // move_to must be a sibling.
    let other = app.pipeline_from_template("saas").await;
    let foreign = other["stages"][0]["id"].as_str().unwrap();
    let res = app
        .delete(&format!("/api/v1/stages/{}?move_to={foreign}", ids[0]))
        .admin()
        .send()
        .await;
    res.problem(422, "validation_failed");
    assert_eq!(res.error_fields(), ["move_to"]);
    // Reordering must name every stage once.
    let res = app
        .put(&format!("/api/v1/pipelines/{pid}/stage-order"))
        .admin()
        .json(json!({"stage_ids": [ids[0], ids[0], ids[1], ids[2]]}))
        .send()
        .await;
    res.problem(422, "validation_failed");
    let unchanged = app
        .get(&format!("/api/v1/pipelines/{pid}"))
        .admin()
        .send()
        .await;
    assert_eq!(names(&unchanged.body), names(&p));
    assert_eq!(
        unchanged.header("etag"),
        Some("\"1\""),
        "refused changes leave no trace"
    );
}

async fn reps_read_but_do_not_configure_pipelines(app: TestApp) {
    let p = app.pipeline_from_template("education").await;
    let (_, rep) = app.user("rep@example.com", Role::Rep, None).await;
    let list = app.get("/api/v1/pipelines").token(&rep).send().await;
    assert_eq!(list.body["data"].as_array().unwrap().len(), 1);
    let pid = p["id"].as_str().unwrap();
    app.post("/api/v1/pipelines")
        .token(&rep)
        .json(custom_pipeline("Mine"))
        .send()
        .await
        .problem(403, "forbidden");
    app.patch(&format!("/api/v1/pipelines/{pid}"))
        .token(&rep)
        .json(json!({"name": "x"}))
        .send()
        .await
        .problem(403, "forbidden");
    app.delete(&format!("/api/v1/pipelines/{pid}"))
        .token(&rep)
        .send()
        .await
        .problem(403, "forbidden");
    let (_, manager) = app.user("m@example.com", Role::Manager, None).await;
    let res = app
        .post("/api/v1/pipelines")
        .token(&manager)
        .json(custom_pipeline("Team flow"))
        .send()
        .await;
    assert_eq!(res.status, StatusCode::CREATED);
    assert_eq!(res.body["created_by"], res.body["updated_by"]);
}

async fn deleted_pipelines_are_gone(app: TestApp) {
    let p = app.pipeline_from_template("standard").await;
    let path = format!("/api/v1/pipelines/{}", p["id"].as_str().unwrap());
    app.delete(&path)
        .admin()
        .header("if-match", "\"7\"")
        .send()
        .await
        .problem(412, "version_conflict");
    assert_eq!(
        app.delete(&path).admin().send().await.status,
        StatusCode::NO_CONTENT
    );
    app.get(&path)
        .admin()
        .send()
        .await
        .problem(404, "not_found");
    let stage = p["stages"][0]["id"].as_str().unwrap();
    app.patch(&format!("/api/v1/stages/{stage}"))
        .admin()
        .json(json!({"name": "x"}))
        .send()
        .await
        .problem(404, "not_found");
}
