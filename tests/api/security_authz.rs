//! Authorisation across teams, record kinds and API-key scopes: stage deletion, scopes
//! per record kind, activities following their deal, and duplicate disclosure.

use actix_web::http::StatusCode;
use serde_json::{json, Value};
use stageflow::domain::user::Role;

use crate::api_tests;
use crate::factories::assert_invisible;
use crate::helpers::{id_of, stage_id, TestApp};

api_tests!(
    managers_cannot_restructure_shared_pipelines,
    stage_deletion_refuses_won_and_lost_targets,
    stage_deletion_enforces_the_target_gate_for_every_deal,
    evacuated_deals_enter_their_new_stage_like_a_move,
    lost_deals_of_a_deleted_stage_stay_lost,
    opportunity_keys_do_not_read_lead_activities_or_follow_ups,
    opportunity_write_keys_do_not_touch_lead_activities,
    api_keys_are_refused_at_users_me,
    former_owner_loses_the_activities_of_a_reassigned_deal,
    duplicates_name_only_records_the_caller_may_see,
);

async fn key(app: &TestApp, scopes: Value) -> String {
    app.api_key(scopes).await
}

/// Two teams: a manager with a rep, and a rep of another team. Returns
/// `(manager token, rep id, rep token, other rep id, other rep token)`.
async fn two_teams(app: &TestApp) -> (String, String, String, String, String) {
    let (manager_id, manager) = app.user("m@example.com", Role::Manager, None).await;
    let team = app.team("East", Some(&manager_id)).await;
    let (rep_id, rep) = app.user("r@example.com", Role::Rep, Some(&team)).await;
    let west = app.team("West", None).await;
    let (other_id, other) = app.user("o@example.com", Role::Rep, Some(&west)).await;
    (manager, rep_id, rep, other_id, other)
}

async fn stage_count(app: &TestApp, pipeline: &Value) -> usize {
    let p = app
        .get(&format!("/api/v1/pipelines/{}", id_of(pipeline)))
        .admin()
        .send()
        .await;
    p.body["stages"].as_array().unwrap().len()
}

/// The deal as it stands now, read by an admin.
async fn deal_as_admin(app: &TestApp, deal: &Value) -> Value {
    let res = app
        .get(&format!("/api/v1/opportunities/{}", id_of(deal)))
        .admin()
        .send()
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    res.body
}

async fn managers_cannot_restructure_shared_pipelines(app: TestApp) {
    let pipeline = app.gated_pipeline().await;
    let (manager, _, _, _, other) = two_teams(&app).await;
    let hidden = app
        .opportunity(
            &other,
            json!({"name": "West deal", "pipeline_id": pipeline["id"]}),
        )
        .await;
    let qualify = stage_id(&pipeline, "Qualify");
    let negotiate = stage_id(&pipeline, "Negotiate");
    let res = app
        .delete(&format!("/api/v1/stages/{qualify}"))
        .token(&manager)
        .send()
        .await;
    let body = res.problem(403, "forbidden");
    assert!(
        !body["detail"].as_str().unwrap().contains('1'),
        "no count of hidden deals: {body}"
    );
    let res = app
        .delete(&format!("/api/v1/stages/{negotiate}"))
        .token(&manager)
        .send()
        .await;
    res.problem(403, "forbidden");
    let deal = deal_as_admin(&app, &hidden).await;
    assert_eq!(deal["stage_id"], qualify.as_str());
    assert_eq!(deal["version"], 1);
    assert_eq!(
        stage_count(&app, &pipeline).await,
        5,
        "no stage was deleted"
    );
}

async fn stage_deletion_refuses_won_and_lost_targets(app: TestApp) {
    let pipeline = app.gated_pipeline().await;
    let deal = app
        .opportunity(
            &app.admin_token,
            json!({"name": "D", "pipeline_id": pipeline["id"], "amount": "100.00"}),
        )
        .await;
    let qualify = stage_id(&pipeline, "Qualify");
    for target in ["Won", "Lost"] {
        let res = app
            .delete(&format!(
                "/api/v1/stages/{qualify}?move_to={}",
                stage_id(&pipeline, target)
            ))
            .admin()
            .send()
            .await;
        res.problem(422, "validation_failed");
        assert_eq!(res.error_fields(), ["move_to"], "{target}");
    }
    let after = deal_as_admin(&app, &deal).await;
    assert_eq!(after["status"], "open");
    assert_eq!(after["stage_id"], qualify.as_str());
}

async fn stage_deletion_enforces_the_target_gate_for_every_deal(app: TestApp) {
    let pipeline = app.gated_pipeline().await;
    app.opportunity(
        &app.admin_token,
        json!({"name": "Ready", "pipeline_id": pipeline["id"], "amount": "10.00",
               "expected_close_date": "2027-01-31"}),
    )
    .await;
    let unready = app
        .opportunity(
            &app.admin_token,
            json!({"name": "Unready", "pipeline_id": pipeline["id"]}),
        )
        .await;
    let qualify = stage_id(&pipeline, "Qualify");
    let propose = stage_id(&pipeline, "Propose");
    let res = app
        .delete(&format!("/api/v1/stages/{qualify}?move_to={propose}"))
        .admin()
        .send()
        .await;
    res.problem(422, "stage_requirements_unmet");
    let mut fields = res.error_fields();
    fields.sort();
    assert_eq!(fields, ["amount", "expected_close_date"]);
    assert!(
        !res.text.contains(&id_of(&unready)),
        "the problem names requirements, not deals: {}",
        res.text
    );
    assert_eq!(
        stage_count(&app, &pipeline).await,
        5,
        "no stage was deleted"
    );
    let in_qualify = app
        .get(&format!("/api/v1/opportunities?stage_id={qualify}"))
        .admin()
        .send()
        .await;
    assert_eq!(in_qualify.body["data"].as_array().unwrap().len(), 2);
}

async fn evacuated_deals_enter_their_new_stage_like_a_move(app: TestApp) {
    let pipeline = app.gated_pipeline().await;
    let deal = app
        .opportunity(
            &app.admin_token,
            json!({"name": "Ready", "pipeline_id": pipeline["id"], "amount": "10.00",
                   "expected_close_date": "2027-01-31"}),
        )
        .await;
    assert_eq!(deal["next_action"]["text"], "Call the buyer");
    let qualify = stage_id(&pipeline, "Qualify");
    let propose = stage_id(&pipeline, "Propose");
    let res = app
        .delete(&format!("/api/v1/stages/{qualify}?move_to={propose}"))
        .admin()
        .send()
        .await;
    assert_eq!(res.status, StatusCode::NO_CONTENT, "{}", res.text);
    let after = deal_as_admin(&app, &deal).await;
    assert_eq!(after["stage_id"], propose.as_str());
    assert_eq!(after["status"], "open");
    assert_eq!(after["version"], 2);
    // Propose suggests no action but gives three days: the stage's default applies.
    assert_eq!(after["next_action"]["text"], "推进：Propose");
    let history = app
        .get(&format!("/api/v1/opportunities/{}/history", id_of(&deal)))
        .admin()
        .send()
        .await;
    let rows = history.body["data"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[1]["to_stage_id"], propose.as_str());
    assert_eq!(rows[1]["channel"], "system");
    assert_eq!(rows[1]["entered_at"], after["stage_entered_at"]);
}

async fn lost_deals_of_a_deleted_stage_stay_lost(app: TestApp) {
    let res = app
        .post("/api/v1/pipelines")
        .admin()
        .json(json!({"name": "Two losses", "stages": [
            {"name": "Open", "probability": 20},
            {"name": "Won", "kind": "won"},
            {"name": "No budget", "kind": "lost"},
            {"name": "Gone", "kind": "lost"}
        ]}))
        .send()
        .await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.text);
    let pipeline = res.body;
    let deal = app
        .opportunity(
            &app.admin_token,
            json!({"name": "D", "pipeline_id": pipeline["id"]}),
        )
        .await;
    let no_budget = stage_id(&pipeline, "No budget");
    let lost = app
        .post(&format!("/api/v1/opportunities/{}/lose", id_of(&deal)))
        .admin()
        .json(json!({"loss_reason_id": "budget", "stage_id": no_budget}))
        .send()
        .await;
    assert_eq!(lost.status, StatusCode::OK, "{}", lost.text);
    let res = app
        .delete(&format!(
            "/api/v1/stages/{no_budget}?move_to={}",
            stage_id(&pipeline, "Open")
        ))
        .admin()
        .send()
        .await;
    res.problem(422, "validation_failed");
    assert_eq!(res.error_fields(), ["move_to"]);
    let gone = stage_id(&pipeline, "Gone");
    let res = app
        .delete(&format!("/api/v1/stages/{no_budget}?move_to={gone}"))
        .admin()
        .send()
        .await;
    assert_eq!(res.status, StatusCode::NO_CONTENT, "{}", res.text);
    let after = deal_as_admin(&app, &deal).await;
    assert_eq!(after["stage_id"], gone.as_str());
    assert_eq!(after["status"], "lost");
    assert_eq!(after["lost_reason_id"], "budget");
    assert_eq!(after["lost_at"], lost.body["lost_at"]);
}

/// A lead with a due follow-up and a planned activity, and a deal with one.
async fn lead_and_deal_with_tasks(app: &TestApp) -> (Value, Value, Value, Value) {
    let lead = app
        .lead_as(
            &app.admin_token,
            json!({"company": "线索公司", "email": "buyer@lead.example",
                   "next_follow_up_at": "2026-01-01T00:00:00Z"}),
        )
        .await;
    let pipeline = app.gated_pipeline().await;
    let deal = app
        .opportunity(
            &app.admin_token,
            json!({"name": "D", "pipeline_id": pipeline["id"]}),
        )
        .await;
    let mut tasks = Vec::new();
    for parent in [
        json!({"lead_id": lead["id"]}),
        json!({"opportunity_id": deal["id"]}),
    ] {
        let mut body = json!({"type": "task", "subject": "回访", "due_at": "2026-01-02T00:00:00Z"});
        body.as_object_mut()
            .unwrap()
            .extend(parent.as_object().unwrap().clone());
        let res = app
            .post("/api/v1/activities")
            .admin()
            .json(body)
            .send()
            .await;
        assert_eq!(res.status, StatusCode::CREATED, "{}", res.text);
        tasks.push(res.body);
    }
    let on_deal = tasks.pop().unwrap();
    let on_lead = tasks.pop().unwrap();
    (lead, deal, on_lead, on_deal)
}

async fn opportunity_keys_do_not_read_lead_activities_or_follow_ups(app: TestApp) {
    let (lead, deal, on_lead, on_deal) = lead_and_deal_with_tasks(&app).await;
    let secret = key(&app, json!(["opportunities:read"])).await;
    let list = app.get("/api/v1/activities").token(&secret).send().await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.text);
    let ids: Vec<&str> = list.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [on_deal["id"].as_str().unwrap()]);
    app.get(&format!("/api/v1/activities/{}", id_of(&on_lead)))
        .token(&secret)
        .send()
        .await
        .problem(403, "forbidden");
    app.get(&format!("/api/v1/activities?lead_id={}", id_of(&lead)))
        .token(&secret)
        .send()
        .await
        .problem(403, "forbidden");
    let queue = app.get("/api/v1/follow-ups").token(&secret).send().await;
    assert_eq!(queue.status, StatusCode::OK, "{}", queue.text);
    assert!(
        !queue.text.contains(&id_of(&lead)) && !queue.text.contains("线索公司"),
        "no lead data for an opportunities key: {}",
        queue.text
    );
    assert!(queue.text.contains(&id_of(&on_deal)));
    assert!(queue.text.contains(&id_of(&deal)));
    // A key with neither kind reads no follow-ups at all.
    let reports = key(&app, json!(["reports:read"])).await;
    app.get("/api/v1/follow-ups")
        .token(&reports)
        .send()
        .await
        .problem(403, "forbidden");
}

async fn opportunity_write_keys_do_not_touch_lead_activities(app: TestApp) {
    let (lead, _, on_lead, on_deal) = lead_and_deal_with_tasks(&app).await;
    let secret = key(&app, json!(["opportunities:read", "opportunities:write"])).await;
    app.post("/api/v1/activities")
        .token(&secret)
        .json(json!({"type": "note", "subject": "x", "lead_id": lead["id"]}))
        .send()
        .await
        .problem(403, "forbidden");
    let path = format!("/api/v1/activities/{}", id_of(&on_lead));
    app.patch(&path)
        .token(&secret)
        .json(json!({"subject": "changed"}))
        .send()
        .await
        .problem(403, "forbidden");
    app.delete(&path)
        .token(&secret)
        .send()
        .await
        .problem(403, "forbidden");
    let kept = app.get(&path).admin().send().await;
    assert_eq!(kept.body["subject"], "回访");
    assert_eq!(kept.body["version"], 1);
    // The deal's own activities stay writable with the key.
    let res = app
        .patch(&format!("/api/v1/activities/{}", id_of(&on_deal)))
        .token(&secret)
        .json(json!({"subject": "changed"}))
        .send()
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    // And a lead key does the lead's.
    let leads = key(&app, json!(["leads:read", "leads:write"])).await;
    let res = app
        .patch(&path)
        .token(&leads)
        .json(json!({"subject": "ok"}))
        .send()
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
}

async fn api_keys_are_refused_at_users_me(app: TestApp) {
    let secret = key(&app, json!(["leads:read", "opportunities:read"])).await;
    let res = app.get("/api/v1/users/me").token(&secret).send().await;
    res.problem(403, "forbidden");
    assert!(!res.text.contains(crate::helpers::ADMIN_EMAIL));
    // The document states the scopes of each operation.
    let spec: Value = serde_json::from_str(include_str!("../../openapi/openapi.json")).unwrap();
    let security = |path: &str, method: &str| spec["paths"][path][method]["security"].clone();
    assert_eq!(
        security("/api/v1/leads", "get"),
        json!([{"bearer": ["leads:read"]}])
    );
    assert_eq!(
        security("/api/v1/activities", "post"),
        json!([{"bearer": ["leads:write"]}, {"bearer": ["opportunities:write"]}])
    );
    assert_eq!(
        security("/api/v1/leads/{id}/convert", "post"),
        json!([{"bearer": ["leads:write", "opportunities:write"]}])
    );
}

async fn former_owner_loses_the_activities_of_a_reassigned_deal(app: TestApp) {
    let pipeline = app.gated_pipeline().await;
    let (_, _, rep, other_id, other) = two_teams(&app).await;
    let deal = app
        .opportunity(&rep, json!({"name": "D", "pipeline_id": pipeline["id"]}))
        .await;
    let logged = app
        .post("/api/v1/activities")
        .token(&rep)
        .json(
            json!({"type": "call", "subject": "首次通话", "opportunity_id": deal["id"],
                     "completed_at": "2026-10-01T08:00:00Z"}),
        )
        .send()
        .await;
    assert_eq!(logged.status, StatusCode::CREATED, "{}", logged.text);
    let res = app
        .patch(&format!("/api/v1/opportunities/{}", id_of(&deal)))
        .admin()
        .json(json!({"owner_id": other_id}))
        .send()
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    let path = format!("/api/v1/activities/{}", id_of(&logged.body));
    assert_invisible(&app, &rep, &path).await;
    app.delete(&path)
        .token(&rep)
        .send()
        .await
        .problem(404, "not_found");
    let listed = app.get("/api/v1/activities").token(&rep).send().await;
    assert_eq!(listed.body["data"], json!([]));
    // The deal's new owner sees the deal's history of activities.
    let seen = app.get(&path).token(&other).send().await;
    assert_eq!(seen.status, StatusCode::OK, "{}", seen.text);
    let after = deal_as_admin(&app, &deal).await;
    assert_eq!(after["last_activity_at"], "2026-10-01T08:00:00Z");
}

async fn duplicates_name_only_records_the_caller_may_see(app: TestApp) {
    let (_, _, rep, _, other) = two_teams(&app).await;
    let theirs = app
        .lead_as(
            &other,
            json!({"company": "A", "email": "taken@example.com", "external_id": "crm-1"}),
        )
        .await;
    for body in [
        json!({"company": "B", "email": "TAKEN@example.com"}),
        json!({"company": "B", "external_id": "crm-1"}),
    ] {
        let res = app
            .post("/api/v1/leads")
            .token(&rep)
            .json(body)
            .send()
            .await;
        let problem = res.problem(409, "duplicate_lead");
        assert!(problem.get("existing_id").is_none(), "{problem}");
        assert!(!res.text.contains(&id_of(&theirs)));
    }
    // Whoever may see the record is told which it is.
    let res = app
        .post("/api/v1/leads")
        .admin()
        .json(json!({"company": "B", "email": "taken@example.com"}))
        .send()
        .await;
    assert_eq!(
        res.problem(409, "duplicate_lead")["existing_id"],
        id_of(&theirs)
    );
    // The same holds for opportunities' external ids.
    let pipeline = app.gated_pipeline().await;
    let deal = app
        .opportunity(
            &other,
            json!({"name": "D", "pipeline_id": pipeline["id"], "external_id": "deal-1"}),
        )
        .await;
    let res = app
        .post("/api/v1/opportunities")
        .token(&rep)
        .json(json!({"name": "E", "pipeline_id": pipeline["id"], "external_id": "deal-1"}))
        .send()
        .await;
    let problem = res.problem(409, "duplicate_opportunity");
    assert!(problem.get("existing_id").is_none(), "{problem}");
    assert!(!res.text.contains(&id_of(&deal)));
}
