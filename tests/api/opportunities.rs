use actix_web::http::StatusCode;
use futures_util::future::join;
use serde_json::{json, Value};
use stageflow::domain::user::Role;

use crate::api_tests;
use crate::factories::{assert_out_of_reach, Deal};
use crate::helpers::{id_of, stage_id, TestApp};

api_tests!(
    an_opportunity_keeps_its_fields_and_effective_probability,
    moves_are_gated_and_list_every_missing_field,
    a_corrupt_gate_stops_the_move_instead_of_opening,
    dry_runs_answer_the_same_and_write_nothing,
    patching_the_stage_is_gated_like_a_move,
    won_and_lost_stages_close_the_deal,
    lost_deals_flow_back_with_reopen,
    every_stage_change_appends_one_log_row,
    entering_a_stage_defaults_the_next_action,
    stalled_filter_uses_the_stage_threshold,
    list_filters_find_the_right_deals,
    reps_cannot_see_or_move_other_reps_deals,
    concurrent_moves_with_one_etag_log_once,
    deleting_a_deal_keeps_its_log,
    stage_and_pipeline_deletion_respect_deals,
    each_currency_has_its_own_decimals,
);

/// The gated pipeline and a deal in its first stage.
async fn setup(app: &TestApp) -> (Value, Deal<'_>) {
    let pipeline = app.gated_pipeline().await;
    let deal = app.deal(&pipeline).name("Deal").create().await;
    (pipeline, deal)
}

async fn move_to(app: &TestApp, opp: &str, stage: &str, extra: Value) -> crate::helpers::Res {
    let mut body = json!({"stage_id": stage});
    body.as_object_mut()
        .unwrap()
        .extend(extra.as_object().cloned().unwrap_or_default());
    app.post(&format!("/api/v1/opportunities/{opp}/move"))
        .admin()
        .json(body)
        .send()
        .await
}

async fn an_opportunity_keeps_its_fields_and_effective_probability(app: TestApp) {
    let pipeline = app.gated_pipeline().await;
    let account = app
        .post("/api/v1/accounts")
        .admin()
        .json(json!({"name": "Acme"}))
        .created()
        .await
        .body;
    let body = json!({
        "name": "Acme 年度合同", "pipeline_id": pipeline["id"], "amount": "12500.5", "currency": "usd",
        "expected_close_date": "2027-03-31", "account_id": account["id"], "source": "referral",
        "industry": "retail", "company_size": "201-1000", "region": "华东", "tags": ["renewal"],
        "external_id": "erp-42", "custom": {"po_number": "PO-1"}
    });
    let o = app.opportunity(&app.admin_token, body).await;
    assert_eq!(o["amount"], "12500.50");
    assert_eq!(o["currency"], "USD");
    assert_eq!(o["status"], "open");
    assert_eq!(o["stage_id"], stage_id(&pipeline, "Qualify").as_str());
    assert_eq!(o["probability"], Value::Null);
    assert_eq!(o["effective_probability"], 10);
    assert_eq!(o["expected_close_date"], "2027-03-31");
    assert_eq!(o["custom"], json!({"po_number": "PO-1"}));
    assert_eq!(o["stage_entered_at"], o["created_at"]);
    for field in ["won_at", "lost_at", "lost_reason_id", "last_activity_at"] {
        assert_eq!(o[field], Value::Null, "{field}");
    }
    let path = format!("/api/v1/opportunities/{}", id_of(&o));
    let res = app
        .patch(&path)
        .admin()
        .json(json!({"probability": 35}))
        .send()
        .await;
    assert_eq!(
        (
            res.body["probability"].clone(),
            res.body["effective_probability"].clone()
        ),
        (json!(35), json!(35))
    );
    let res = app
        .patch(&path)
        .admin()
        .json(json!({"probability": null}))
        .send()
        .await;
    assert_eq!(res.body["effective_probability"], 10);
    for (field, value, code) in [
        ("amount", json!("-5"), "invalid"),
        ("amount", json!(12.5), "invalid_type"),
        ("currency", json!("yuan"), "invalid"),
        ("probability", json!(101), "out_of_range"),
        ("expected_close_date", json!("next week"), "invalid"),
    ] {
        let res = app
            .patch(&path)
            .admin()
            .json(json!({field: value}))
            .send()
            .await;
        res.problem(422, "validation_failed");
        assert_eq!(
            res.body["errors"][0]["pointer"],
            format!("/{field}"),
            "{field}"
        );
        assert_eq!(res.body["errors"][0]["code"], code, "{field}");
    }
    let dup = app
        .post("/api/v1/opportunities")
        .admin()
        .json(json!({"name": "x", "pipeline_id": pipeline["id"], "external_id": "erp-42"}))
        .send()
        .await;
    dup.problem(409, "duplicate_opportunity");
    assert_eq!(dup.body["existing_id"], o["id"]);
    for field in [
        "status",
        "stage_entered_at",
        "won_at",
        "version",
        "lost_reason_id",
    ] {
        let res = app
            .patch(&path)
            .admin()
            .json(json!({field: "x"}))
            .send()
            .await;
        res.problem(422, "validation_failed");
        assert_eq!(res.body["errors"][0]["code"], "unknown_field", "{field}");
    }
}

/// A stage whose stored requirements cannot be read is corrupt data: the move fails
/// (500, nothing written) rather than treating the gate as empty and letting the deal in.
async fn a_corrupt_gate_stops_the_move_instead_of_opening(app: TestApp) {
    let (pipeline, deal) = setup(&app).await;
    let propose = stage_id(&pipeline, "Propose");
    app.exec_sql(&format!(
        "UPDATE stages SET required_fields = 'amount' WHERE id = '{propose}'"
    ));
    let res = move_to(&app, &deal.id, &propose, json!({})).await;
    assert_eq!(
        res.status,
        StatusCode::INTERNAL_SERVER_ERROR,
        "{}",
        res.text
    );
    app.exec_sql(&format!(
        "UPDATE stages SET required_fields = '[]' WHERE id = '{propose}'"
    ));
    let now = app
        .get(&deal.path())
        .token(&app.admin_token)
        .send_ok()
        .await;
    assert_eq!(
        now.body["stage_id"],
        stage_id(&pipeline, "Qualify").as_str()
    );
    let history = app
        .get(&format!("{}/history", deal.path()))
        .token(&app.admin_token)
        .send_ok()
        .await;
    assert_eq!(history.body["data"].as_array().map(Vec::len), Some(1));
}

async fn moves_are_gated_and_list_every_missing_field(app: TestApp) {
    let (pipeline, deal) = setup(&app).await;
    let opp = &deal.id;
    let res = move_to(&app, opp, &stage_id(&pipeline, "Propose"), json!({})).await;
    res.problem(422, "stage_requirements_unmet");
    assert_eq!(res.error_fields(), ["amount", "expected_close_date"]);
    assert_eq!(res.body["errors"][0]["code"], "required_by_stage");
    let res = move_to(&app, opp, &stage_id(&pipeline, "Negotiate"), json!({})).await;
    res.problem(422, "stage_requirements_unmet");
    assert_eq!(res.error_fields(), ["account_id", "custom.po_number"]);
    deal.patch(json!({"amount": "1000", "expected_close_date": "2027-01-01"}))
        .await;
    let ok = move_to(
        &app,
        opp,
        &stage_id(&pipeline, "Propose"),
        json!({"note": "proposal sent"}),
    )
    .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text);
    assert_eq!(ok.body["stage_id"], stage_id(&pipeline, "Propose").as_str());
    assert_eq!(ok.body["effective_probability"], 40);
    move_to(&app, opp, &stage_id(&pipeline, "Propose"), json!({}))
        .await
        .problem(422, "validation_failed");
    let other = app.pipeline_from_template("saas").await;
    let res = move_to(&app, opp, &id_of(&other["stages"][0]), json!({})).await;
    res.problem(422, "validation_failed");
    assert_eq!(res.error_fields(), ["stage_id"]);
}

async fn dry_runs_answer_the_same_and_write_nothing(app: TestApp) {
    let (pipeline, deal) = setup(&app).await;
    let opp = &deal.id;
    let propose = stage_id(&pipeline, "Propose");
    let refused = move_to(&app, opp, &propose, json!({"dry_run": true})).await;
    refused.problem(422, "stage_requirements_unmet");
    assert_eq!(refused.error_fields(), ["amount", "expected_close_date"]);
    deal.patch(json!({"amount": "1000", "expected_close_date": "2027-01-01"}))
        .await;
    let before = app
        .get(&format!("/api/v1/opportunities/{opp}"))
        .admin()
        .send()
        .await;
    let dry = move_to(&app, opp, &propose, json!({"dry_run": true})).await;
    assert_eq!(dry.status, StatusCode::OK, "{}", dry.text);
    assert_eq!(dry.body["stage_id"], propose.as_str());
    let after = app
        .get(&format!("/api/v1/opportunities/{opp}"))
        .admin()
        .send()
        .await;
    assert_eq!(after.body, before.body, "nothing changed");
    assert_eq!(
        app.count("stage_transitions", &format!("opportunity_id = '{opp}'")),
        1
    );
    let real = move_to(&app, opp, &propose, json!({})).await;
    assert_eq!(real.body["stage_id"], dry.body["stage_id"]);
    assert_eq!(real.body["version"], dry.body["version"]);
    let dry_win = app
        .post(&format!("/api/v1/opportunities/{opp}/win"))
        .admin()
        .json(json!({"dry_run": true}))
        .send()
        .await;
    assert_eq!(dry_win.body["status"], "won");
    assert_eq!(
        app.get(&format!("/api/v1/opportunities/{opp}"))
            .admin()
            .send()
            .await
            .body["status"],
        "open"
    );
}

async fn patching_the_stage_is_gated_like_a_move(app: TestApp) {
    let (pipeline, deal) = setup(&app).await;
    let opp = &deal.id;
    let path = format!("/api/v1/opportunities/{opp}");
    let propose = stage_id(&pipeline, "Propose");
    let res = app
        .patch(&path)
        .admin()
        .json(json!({"stage_id": propose, "amount": "500"}))
        .send()
        .await;
    res.problem(422, "stage_requirements_unmet");
    assert_eq!(
        res.error_fields(),
        ["expected_close_date"],
        "checked against the patched record"
    );
    assert_eq!(
        app.get(&path).admin().send().await.body["amount"],
        Value::Null,
        "nothing half-written"
    );
    let res = app
        .patch(&path)
        .admin()
        .json(json!({"stage_id": propose, "amount": "500", "expected_close_date": "2027-02-01"}))
        .send()
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    assert_eq!(res.body["stage_id"], propose.as_str());
    assert_eq!(
        app.count("stage_transitions", &format!("opportunity_id = '{opp}'")),
        2
    );
    let res = app
        .patch(&path)
        .admin()
        .json(json!({"stage_id": stage_id(&pipeline, "Lost")}))
        .send()
        .await;
    res.problem(422, "validation_failed");
    assert_eq!(res.error_fields(), ["loss_reason_id"]);
}

async fn won_and_lost_stages_close_the_deal(app: TestApp) {
    let (pipeline, deal) = setup(&app).await;
    let opp = &deal.id;
    let win = app
        .post(&format!("/api/v1/opportunities/{opp}/win"))
        .admin()
        .send()
        .await;
    win.problem(422, "stage_requirements_unmet");
    assert_eq!(win.error_fields(), ["amount"]);
    deal.patch(json!({"amount": "9000"})).await;
    let won = move_to(&app, opp, &stage_id(&pipeline, "Won"), json!({})).await;
    assert_eq!(won.status, StatusCode::OK, "{}", won.text);
    assert_eq!(won.body["status"], "won");
    assert!(won.body["won_at"].is_string());
    assert_eq!(won.body["effective_probability"], 100);
    assert_eq!(won.body["next_action"], Value::Null);
    app.post(&format!("/api/v1/opportunities/{opp}/lose"))
        .admin()
        .json(json!({"loss_reason_id": "budget"}))
        .send()
        .await
        .problem(409, "opportunity_closed");

    let other = app
        .opportunity(
            &app.admin_token,
            json!({"name": "Second", "pipeline_id": pipeline["id"]}),
        )
        .await;
    let lose_path = format!("/api/v1/opportunities/{}/lose", id_of(&other));
    app.post(&lose_path)
        .admin()
        .json(json!({}))
        .send()
        .await
        .problem(422, "validation_failed");
    app.post(&lose_path)
        .admin()
        .json(json!({"loss_reason_id": "weather"}))
        .send()
        .await
        .problem(422, "validation_failed");
    let lost = app
        .post(&lose_path)
        .admin()
        .json(json!({"loss_reason_id": "competitor", "note": "选了竞品"}))
        .send()
        .await;
    assert_eq!(lost.status, StatusCode::OK, "{}", lost.text);
    assert_eq!(lost.body["status"], "lost");
    assert_eq!(lost.body["lost_reason_id"], "competitor");
    assert_eq!(lost.body["lost_note"], "选了竞品");
    assert!(lost.body["lost_at"].is_string());
    assert_eq!(lost.body["effective_probability"], 0);

    let third = app
        .opportunity(
            &app.admin_token,
            json!({"name": "Third", "pipeline_id": pipeline["id"]}),
        )
        .await;
    let via_move = move_to(
        &app,
        &id_of(&third),
        &stage_id(&pipeline, "Lost"),
        json!({"loss_reason_id": "need_changed"}),
    )
    .await;
    assert_eq!(via_move.body["status"], "lost", "{}", via_move.text);
    let reasons = app.get("/api/v1/loss-reasons").admin().send().await;
    let ids: Vec<&str> = reasons.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [
            "budget",
            "decision_chain",
            "competitor",
            "need_changed",
            "late_follow_up",
            "other"
        ]
    );
    let added = app
        .post("/api/v1/loss-reasons")
        .admin()
        .json(json!({"id": "price_too_high", "label": "报价过高"}))
        .send()
        .await;
    assert_eq!(added.status, StatusCode::CREATED);
    app.post("/api/v1/loss-reasons")
        .admin()
        .json(json!({"id": "price_too_high", "label": "x"}))
        .send()
        .await
        .problem(409, "loss_reason_exists");
}

async fn lost_deals_flow_back_with_reopen(app: TestApp) {
    let (pipeline, deal) = setup(&app).await;
    let opp = &deal.id;
    let reopen = format!("/api/v1/opportunities/{opp}/reopen");
    app.post(&reopen)
        .admin()
        .json(json!({"stage_id": stage_id(&pipeline, "Qualify")}))
        .send()
        .await
        .problem(409, "not_lost");
    deal.lose("late_follow_up").await;
    move_to(&app, opp, &stage_id(&pipeline, "Qualify"), json!({}))
        .await
        .problem(409, "opportunity_closed");
    app.post(&reopen)
        .admin()
        .json(json!({"stage_id": stage_id(&pipeline, "Won")}))
        .send()
        .await
        .problem(422, "validation_failed");
    app.post(&reopen)
        .admin()
        .json(json!({"stage_id": stage_id(&pipeline, "Propose")}))
        .send()
        .await
        .problem(422, "stage_requirements_unmet");
    let back = app
        .post(&reopen)
        .admin()
        .json(json!({"stage_id": stage_id(&pipeline, "Qualify"), "note": "客户重新启动预算"}))
        .send()
        .await;
    assert_eq!(back.status, StatusCode::OK, "{}", back.text);
    assert_eq!(back.body["status"], "open");
    assert_eq!(back.body["lost_reason_id"], Value::Null);
    assert_eq!(back.body["lost_at"], Value::Null);
    let history = app
        .get(&format!("/api/v1/opportunities/{opp}/history"))
        .admin()
        .send()
        .await;
    let last = history.body["data"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(last["from_stage_id"], stage_id(&pipeline, "Lost").as_str());
    assert_eq!(last["note"], "客户重新启动预算");
}

async fn every_stage_change_appends_one_log_row(app: TestApp) {
    let (_, deal) = setup(&app).await;
    let opp = &deal.id;
    deal.patch(json!({"amount": "1000", "expected_close_date": "2027-01-01", "account_id": null}))
        .await;
    deal.move_to("Propose").await;
    deal.lose("budget").await;
    deal.reopen("Propose").await;
    let won = app
        .post(&format!("/api/v1/opportunities/{opp}/win"))
        .admin()
        .send()
        .await;
    assert_eq!(won.status, StatusCode::OK, "{}", won.text);
    let history = app
        .get(&format!("/api/v1/opportunities/{opp}/history"))
        .admin()
        .send()
        .await;
    let rows = history.body["data"].as_array().unwrap();
    let path: Vec<String> = rows
        .iter()
        .map(|r| r["to_stage_name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(path, ["Qualify", "Propose", "Lost", "Propose", "Won"]);
    for pair in rows.windows(2) {
        assert_eq!(pair[0]["left_at"], pair[1]["entered_at"]);
        assert_eq!(pair[0]["to_stage_id"], pair[1]["from_stage_id"]);
        assert!(pair[0]["duration_seconds"].as_i64().unwrap() >= 0);
    }
    assert_eq!(rows.last().unwrap()["left_at"], Value::Null);
    assert!(rows
        .iter()
        .all(|r| r["channel"] == "api" && r["actor_id"].is_string()));
    assert_eq!(
        won.body["stage_entered_at"],
        rows.last().unwrap()["entered_at"],
        "cached entry time in step with the log"
    );
    // Changes that are not stage changes add nothing.
    deal.patch(json!({"name": "Renamed"})).await;
    assert_eq!(
        app.count("stage_transitions", &format!("opportunity_id = '{opp}'")),
        5
    );
}

async fn entering_a_stage_defaults_the_next_action(app: TestApp) {
    let (pipeline, deal) = setup(&app).await;
    let opp = &deal.id;
    let o = app
        .get(&format!("/api/v1/opportunities/{opp}"))
        .admin()
        .send()
        .await
        .body;
    assert_eq!(o["next_action"]["text"], "Call the buyer");
    let entered =
        chrono::DateTime::parse_from_rfc3339(o["stage_entered_at"].as_str().unwrap()).unwrap();
    let due =
        chrono::DateTime::parse_from_rfc3339(o["next_action"]["due_at"].as_str().unwrap()).unwrap();
    assert_eq!((due - entered).num_days(), 2);
    deal.patch(json!({"amount": "1", "expected_close_date": "2027-01-01"}))
        .await;
    let moved = move_to(&app, opp, &stage_id(&pipeline, "Propose"), json!({}))
        .await
        .body;
    assert_eq!(moved["next_action"]["text"], "推进：Propose");
    let own = app
        .opportunity(
            &app.admin_token,
            json!({"name": "Own", "pipeline_id": pipeline["id"],
        "next_action": {"text": "Send the deck", "due_at": "2027-01-05T10:00:00Z"}}),
        )
        .await;
    assert_eq!(
        own["next_action"],
        json!({"text": "Send the deck", "due_at": "2027-01-05T10:00:00Z"})
    );
}

async fn stalled_filter_uses_the_stage_threshold(app: TestApp) {
    let (pipeline, fresh) = setup(&app).await;
    let fresh = fresh.id.clone();
    // Qualify stalls after 7 days. "Old" entered it 10 days ago; "Idle" was created 10
    // days ago and came back into Qualify an hour ago, with no activity in between.
    let today = chrono::Utc::now().naive_utc();
    app.state.clock.set(today - chrono::Duration::days(10));
    let old = app
        .opportunity(
            &app.admin_token,
            json!({"name": "Old", "pipeline_id": pipeline["id"]}),
        )
        .await;
    let idle = app
        .opportunity(
            &app.admin_token,
            json!({"name": "Idle", "pipeline_id": pipeline["id"], "amount": "100",
                   "expected_close_date": "2027-01-01"}),
        )
        .await;
    app.state.clock.set(today - chrono::Duration::hours(1));
    for stage in ["Propose", "Qualify"] {
        let moved = move_to(&app, &id_of(&idle), &stage_id(&pipeline, stage), json!({})).await;
        assert_eq!(moved.status, StatusCode::OK, "{}", moved.text);
    }
    app.state.clock.set(today + chrono::Duration::minutes(1));
    let stalled = app
        .get("/api/v1/opportunities?stalled=true&sort=name")
        .admin()
        .send()
        .await;
    assert_eq!(stalled.status, StatusCode::OK, "{}", stalled.text);
    let names: Vec<&str> = stalled.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Idle", "Old"]);
    let active = app
        .get("/api/v1/opportunities?stalled=false")
        .admin()
        .send()
        .await;
    assert_eq!(
        active.body["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(id_of)
            .collect::<Vec<_>>(),
        [fresh]
    );
    // An activity makes "Idle" active again; "Old" stays stalled by its time in stage.
    for o in [&idle, &old] {
        let res = app
            .post("/api/v1/activities")
            .admin()
            .json(json!({"type": "call", "subject": "check-in", "opportunity_id": o["id"]}))
            .send()
            .await;
        assert_eq!(res.status, StatusCode::CREATED, "{}", res.text);
    }
    let stalled = app
        .get("/api/v1/opportunities?stalled=true")
        .admin()
        .send()
        .await;
    assert_eq!(
        stalled.body["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(id_of)
            .collect::<Vec<_>>(),
        [id_of(&old)]
    );
}

async fn list_filters_find_the_right_deals(app: TestApp) {
    let pipeline = app.gated_pipeline().await;
    let (rep, rep_token) = app.user("rep@example.com", Role::Rep, None).await;
    let big = app.opportunity(&app.admin_token, json!({"name": "Big ERP", "pipeline_id": pipeline["id"], "amount": "500000",
        "expected_close_date": "2027-06-30", "tags": ["erp"], "source": "ads", "industry": "manufacturing"})).await;
    let small = app
        .opportunity(
            &rep_token,
            json!({"name": "Small CRM", "pipeline_id": pipeline["id"], "amount": "8000",
        "expected_close_date": "2026-12-15"}),
        )
        .await;
    let ids = |v: &Value| {
        v["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(id_of)
            .collect::<Vec<_>>()
    };
    for (query, expected) in [
        (format!("owner_id={rep}"), vec![id_of(&small)]),
        ("tag=erp".into(), vec![id_of(&big)]),
        ("source=ads".into(), vec![id_of(&big)]),
        ("industry=manufacturing".into(), vec![id_of(&big)]),
        ("amount_min=10000".into(), vec![id_of(&big)]),
        ("amount_max=10000.00".into(), vec![id_of(&small)]),
        ("close_to=2026-12-31".into(), vec![id_of(&small)]),
        ("close_from=2027-01-01".into(), vec![id_of(&big)]),
        ("q=crm".into(), vec![id_of(&small)]),
        ("sort=-amount".into(), vec![id_of(&big), id_of(&small)]),
        ("sort=amount&limit=1".into(), vec![id_of(&small)]),
        (
            format!("stage_id={}", stage_id(&pipeline, "Qualify")),
            vec![id_of(&big), id_of(&small)],
        ),
        ("status=won".into(), vec![]),
    ] {
        let res = app
            .get(&format!("/api/v1/opportunities?{query}"))
            .admin()
            .send()
            .await;
        assert_eq!(res.status, StatusCode::OK, "{query}: {}", res.text);
        assert_eq!(ids(&res.body), expected, "{query}");
    }
    let first = app
        .get("/api/v1/opportunities?sort=amount&limit=1")
        .admin()
        .send()
        .await;
    let cursor = first.body["next_cursor"].as_str().unwrap();
    let second = app
        .get(&format!(
            "/api/v1/opportunities?sort=amount&limit=1&cursor={cursor}"
        ))
        .admin()
        .send()
        .await;
    assert_eq!(ids(&second.body), [id_of(&big)]);
    app.get("/api/v1/opportunities?amount_min=lots")
        .admin()
        .send()
        .await
        .problem(400, "invalid_parameter");
    app.get("/api/v1/opportunities?status=maybe")
        .admin()
        .send()
        .await
        .problem(400, "invalid_parameter");
}

async fn reps_cannot_see_or_move_other_reps_deals(app: TestApp) {
    let pipeline = app.gated_pipeline().await;
    let (manager, manager_token) = app.user("m@example.com", Role::Manager, None).await;
    let team = app.team("East", Some(&manager)).await;
    let (_, rep_a) = app.user("a@example.com", Role::Rep, Some(&team)).await;
    let (_, rep_b) = app.user("b@example.com", Role::Rep, None).await;
    let deal = app
        .opportunity(
            &rep_a,
            json!({"name": "A's deal", "pipeline_id": pipeline["id"], "amount": "100"}),
        )
        .await;
    let path = format!("/api/v1/opportunities/{}", id_of(&deal));
    assert_out_of_reach(&app, &rep_b, &path, json!({"name": "mine"})).await;
    app.get(&format!("{path}/history"))
        .token(&rep_b)
        .send()
        .await
        .problem(404, "not_found");
    app.post(&format!("{path}/move"))
        .token(&rep_b)
        .json(json!({"stage_id": stage_id(&pipeline, "Won")}))
        .send()
        .await
        .problem(404, "not_found");
    app.post(&format!("{path}/win"))
        .token(&rep_b)
        .send()
        .await
        .problem(404, "not_found");
    app.post(&format!("{path}/lose"))
        .token(&rep_b)
        .json(json!({"loss_reason_id": "budget"}))
        .send()
        .await
        .problem(404, "not_found");
    app.post("/api/v1/activities")
        .token(&rep_b)
        .json(json!({"type": "note", "subject": "x", "opportunity_id": deal["id"]}))
        .send()
        .await
        .problem(404, "not_found");
    assert_eq!(
        app.get("/api/v1/opportunities")
            .token(&rep_b)
            .send()
            .await
            .body["data"],
        json!([])
    );
    assert_eq!(
        app.get("/api/v1/opportunities")
            .token(&manager_token)
            .send()
            .await
            .body["data"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let win = app
        .post(&format!("{path}/win"))
        .token(&manager_token)
        .send()
        .await;
    assert_eq!(win.status, StatusCode::OK, "{}", win.text);
    assert_eq!(win.body["updated_by"], json!(manager));
}

async fn concurrent_moves_with_one_etag_log_once(app: TestApp) {
    let (pipeline, deal) = setup(&app).await;
    let opp = &deal.id;
    deal.patch(json!({"amount": "1", "expected_close_date": "2027-01-01"}))
        .await;
    let etag = app
        .get(&format!("/api/v1/opportunities/{opp}"))
        .admin()
        .send()
        .await
        .header("etag")
        .unwrap()
        .to_owned();
    let path = format!("/api/v1/opportunities/{opp}/move");
    let first = app
        .post(&path)
        .admin()
        .header("if-match", &etag)
        .json(json!({"stage_id": stage_id(&pipeline, "Propose")}));
    let second = app
        .post(&path)
        .admin()
        .header("if-match", &etag)
        .json(json!({"stage_id": stage_id(&pipeline, "Won")}));
    let (a, b) = join(first.send(), second.send()).await;
    let mut statuses = [a.status.as_u16(), b.status.as_u16()];
    statuses.sort();
    assert_eq!(statuses, [200, 412], "{} / {}", a.text, b.text);
    let loser = if a.status == StatusCode::PRECONDITION_FAILED {
        &a
    } else {
        &b
    };
    loser.problem(412, "version_conflict");
    assert_eq!(
        app.count("stage_transitions", &format!("opportunity_id = '{opp}'")),
        2,
        "creation + exactly one move"
    );
}

async fn deleting_a_deal_keeps_its_log(app: TestApp) {
    let (_, deal) = setup(&app).await;
    let opp = &deal.id;
    app.post("/api/v1/activities")
        .admin()
        .json(json!({"type": "call", "subject": "x", "opportunity_id": opp}))
        .created()
        .await;
    let path = format!("/api/v1/opportunities/{opp}");
    app.delete(&path)
        .admin()
        .header("if-match", "\"9\"")
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
    assert_eq!(app.count("activities", ""), 0);
    assert_eq!(
        app.count("stage_transitions", &format!("opportunity_id = '{opp}'")),
        1,
        "the log is history and stays"
    );
}

async fn stage_and_pipeline_deletion_respect_deals(app: TestApp) {
    let (pipeline, deal) = setup(&app).await;
    let opp = &deal.id;
    let pid = id_of(&pipeline);
    app.delete(&format!("/api/v1/pipelines/{pid}"))
        .admin()
        .send()
        .await
        .problem(409, "pipeline_not_empty");
    let qualify = stage_id(&pipeline, "Qualify");
    app.delete(&format!("/api/v1/stages/{qualify}"))
        .admin()
        .send()
        .await
        .problem(409, "stage_not_empty");
    app.patch(&format!("/api/v1/stages/{qualify}"))
        .admin()
        .json(json!({"kind": "lost"}))
        .send()
        .await
        .problem(409, "stage_not_empty");
    // The deals enter the target as a move would: its gate applies.
    let propose = stage_id(&pipeline, "Propose");
    let path = format!("/api/v1/stages/{qualify}?move_to={propose}");
    app.delete(&path)
        .admin()
        .send()
        .await
        .problem(422, "stage_requirements_unmet");
    let ready = app
        .patch(&format!("/api/v1/opportunities/{opp}"))
        .admin()
        .json(json!({"amount": "10.00", "expected_close_date": "2027-01-31"}))
        .send()
        .await;
    assert_eq!(ready.status, StatusCode::OK, "{}", ready.text);
    let res = app.delete(&path).admin().send().await;
    assert_eq!(res.status, StatusCode::NO_CONTENT, "{}", res.text);
    let o = app
        .get(&format!("/api/v1/opportunities/{opp}"))
        .admin()
        .send()
        .await
        .body;
    assert_eq!(o["stage_id"], propose.as_str());
    let history = app
        .get(&format!("/api/v1/opportunities/{opp}/history"))
        .admin()
        .send()
        .await
        .body;
    assert_eq!(history["data"][1]["channel"], "system");
}

/// Yen have no decimals and dinars three: amounts are read and written with the
/// currency's own, filters and sorting compare them as written, and report sums add them
/// exactly.
async fn each_currency_has_its_own_decimals(app: TestApp) {
    let p = app.pipeline().plain().create().await;
    let yen = app
        .deal(&p)
        .amount("1500000.00")
        .set("currency", "jpy")
        .create()
        .await;
    assert_eq!(
        (yen["amount"].as_str(), yen["currency"].as_str()),
        (Some("1500000"), Some("JPY"))
    );
    let dinar = app
        .deal(&p)
        .amount("1.25")
        .set("currency", "KWD")
        .create()
        .await;
    assert_eq!(dinar["amount"], "1.250");
    let yuan = app.deal(&p).amount("12500.5").create().await;
    assert_eq!(yuan["amount"], "12500.50");

    for (amount, currency, message) in [
        (
            "1000.5",
            "JPY",
            "must be a whole number: the currency has no decimals",
        ),
        ("1.2345", "KWD", "must have at most three decimals"),
        ("1.234", "CNY", "must have at most two decimals"),
    ] {
        let res = app
            .post("/api/v1/opportunities")
            .admin()
            .json(json!({"name": "x", "pipeline_id": p["id"], "amount": amount, "currency": currency}))
            .send()
            .await;
        res.problem(422, "validation_failed");
        assert_eq!(res.error_fields(), ["amount"], "{amount} {currency}");
        assert_eq!(res.body["errors"][0]["message"], message);
    }
    // Changing the currency re-reads the amount in it: 12500.50 yuan are no yen.
    app.patch(&yuan.path())
        .admin()
        .json(json!({"currency": "JPY"}))
        .send()
        .await
        .problem(422, "validation_failed");
    let res = yen.patch(json!({"amount": "2000000"})).await;
    assert_eq!(res.body["amount"], "2000000");

    for (query, expected) in [
        ("amount_min=10000&sort=-amount", vec![&yen.id, &yuan.id]),
        ("amount_max=1.25&sort=amount", vec![&dinar.id]),
        ("sort=amount", vec![&dinar.id, &yuan.id, &yen.id]),
    ] {
        let list = app
            .get(&format!("/api/v1/opportunities?{query}"))
            .admin()
            .send_ok()
            .await;
        assert_eq!(list.ids().iter().collect::<Vec<_>>(), expected, "{query}");
    }

    // Won by one owner: the leaderboard adds 2,000,000 yen, 1.255 dinars and 12,500.50
    // yuan as written, to the thousandth.
    let res = dinar.patch(json!({"amount": "1.255"})).await;
    assert_eq!(res.body["amount"], "1.255");
    for d in [&yen, &dinar, &yuan] {
        d.win().await;
    }
    let board = app
        .get("/api/v1/reports/leaderboard")
        .admin()
        .send_ok()
        .await;
    assert_eq!(board.body["data"][0]["won_amount"], "2012501.755");
}
