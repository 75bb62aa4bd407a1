use actix_web::http::StatusCode;
use serde_json::{json, Value};
use stageflow::domain::user::Role;

use crate::api_tests;
use crate::helpers::{id_of, TestApp};

api_tests!(
    logging_an_activity_updates_last_activity_at,
    planned_activities_stay_open_until_completed,
    activities_need_exactly_one_visible_parent,
    follow_up_queue_is_overdue_first_and_scoped,
    accounts_and_contacts_have_full_crud,
);

async fn logging_an_activity_updates_last_activity_at(app: TestApp) {
    let pipeline = app.gated_pipeline().await;
    let opp = app
        .opportunity(
            &app.admin_token,
            json!({"name": "D", "pipeline_id": pipeline["id"]}),
        )
        .await;
    let res = app
        .post("/api/v1/activities")
        .admin()
        .json(json!({"type": "meeting", "subject": "需求访谈", "opportunity_id": opp["id"], "outcome": "确认痛点"}))
        .send()
        .await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.text);
    assert!(
        res.body["completed_at"].is_string(),
        "a logged activity is done now"
    );
    let after = app
        .get(&format!("/api/v1/opportunities/{}", id_of(&opp)))
        .admin()
        .send()
        .await;
    assert_eq!(after.body["last_activity_at"], res.body["completed_at"]);
    let lead = app.lead_as(&app.admin_token, json!({"company": "L"})).await;
    let on_lead = app
        .post("/api/v1/activities")
        .admin()
        .json(json!({"type": "email", "subject": "资料", "lead_id": lead["id"], "completed_at": "2026-10-01T08:00:00Z"}))
        .send()
        .await;
    assert_eq!(on_lead.status, StatusCode::CREATED);
    let lead_after = app
        .get(&format!("/api/v1/leads/{}", id_of(&lead)))
        .admin()
        .send()
        .await;
    assert_eq!(lead_after.body["last_activity_at"], "2026-10-01T08:00:00Z");
    let deleted = app
        .delete(&format!("/api/v1/activities/{}", id_of(&on_lead.body)))
        .admin()
        .send()
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    let lead_after = app
        .get(&format!("/api/v1/leads/{}", id_of(&lead)))
        .admin()
        .send()
        .await;
    assert_eq!(lead_after.body["last_activity_at"], Value::Null);
}

async fn planned_activities_stay_open_until_completed(app: TestApp) {
    let lead = app.lead_as(&app.admin_token, json!({"company": "P"})).await;
    let task = app
        .post("/api/v1/activities")
        .admin()
        .json(json!({"type": "task", "subject": "回访", "lead_id": lead["id"], "due_at": "2030-01-01T00:00:00Z"}))
        .created()
        .await
        .body;
    assert_eq!(task["completed_at"], Value::Null);
    let open = app.get("/api/v1/activities?open=true").admin().send().await;
    assert_eq!(open.body["data"].as_array().unwrap().len(), 1);
    let path = format!("/api/v1/activities/{}", id_of(&task));
    let done = app
        .patch(&path)
        .admin()
        .header("if-match", "\"1\"")
        .json(json!({"completed_at": "2026-11-20T10:00:00Z", "outcome": "已回访"}))
        .send()
        .await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.text);
    assert_eq!(done.header("etag"), Some("\"2\""));
    assert_eq!(
        app.get("/api/v1/activities?open=true")
            .admin()
            .send()
            .await
            .body["data"],
        json!([])
    );
    assert_eq!(
        app.get(&format!("/api/v1/leads/{}", id_of(&lead)))
            .admin()
            .send()
            .await
            .body["last_activity_at"],
        "2026-11-20T10:00:00Z"
    );
    let moved = app
        .patch(&path)
        .admin()
        .json(json!({"lead_id": null, "opportunity_id": "x"}))
        .send()
        .await;
    moved.problem(404, "not_found");
}

async fn activities_need_exactly_one_visible_parent(app: TestApp) {
    let lead = app.lead_as(&app.admin_token, json!({"company": "Q"})).await;
    let pipeline = app.gated_pipeline().await;
    let opp = app
        .opportunity(
            &app.admin_token,
            json!({"name": "D", "pipeline_id": pipeline["id"]}),
        )
        .await;
    let both = app
        .post("/api/v1/activities")
        .admin()
        .json(json!({"type": "call", "subject": "x", "lead_id": lead["id"], "opportunity_id": opp["id"]}))
        .send()
        .await;
    both.problem(422, "validation_failed");
    let neither = app
        .post("/api/v1/activities")
        .admin()
        .json(json!({"type": "call", "subject": "x"}))
        .send()
        .await;
    neither.problem(422, "validation_failed");
    let bad_type = app
        .post("/api/v1/activities")
        .admin()
        .json(json!({"type": "fax", "subject": "x", "lead_id": lead["id"]}))
        .send()
        .await;
    bad_type.problem(422, "validation_failed");
    assert_eq!(bad_type.body["errors"][0]["pointer"], "/type");
    app.post("/api/v1/activities")
        .admin()
        .json(json!({"type": "call", "subject": "x", "lead_id": "missing"}))
        .send()
        .await
        .problem(404, "not_found");
    assert_eq!(app.count("activities", ""), 0);
}

async fn follow_up_queue_is_overdue_first_and_scoped(app: TestApp) {
    let pipeline = app.gated_pipeline().await;
    let (rep_id, rep) = app.user("rep@example.com", Role::Rep, None).await;
    let (_, other) = app.user("other@example.com", Role::Rep, None).await;
    let lead = app
        .lead_as(
            &rep,
            json!({"company": "R", "next_follow_up_at": "2020-01-01T00:00:00Z"}),
        )
        .await;
    let opp = app
        .opportunity(
            &rep,
            json!({"name": "Deal R", "pipeline_id": pipeline["id"],
        "next_action": {"text": "报价", "due_at": "2021-01-01T00:00:00Z"}}),
        )
        .await;
    app.post("/api/v1/activities").token(&rep)
        .json(json!({"type": "task", "subject": "寄样品", "opportunity_id": opp["id"], "due_at": "2099-01-01T00:00:00Z"}))
        .created().await;
    app.post("/api/v1/activities").token(&other)
        .json(json!({"type": "task", "subject": "someone else's", "lead_id": app.lead().by(&other).company("S").create().await["id"], "due_at": "2019-01-01T00:00:00Z"}))
        .created().await;
    let queue = app.get("/api/v1/follow-ups").token(&rep).send().await;
    assert_eq!(queue.status, StatusCode::OK, "{}", queue.text);
    let items = queue.body["data"].as_array().unwrap();
    let kinds: Vec<&str> = items.iter().map(|i| i["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["lead", "opportunity", "activity"]);
    assert_eq!(items[0]["id"], lead["id"]);
    assert_eq!(
        (items[0]["overdue"].clone(), items[2]["overdue"].clone()),
        (json!(true), json!(false))
    );
    assert!(items.iter().all(|i| i["owner_id"] == rep_id.as_str()));
    let due_soon = app
        .get("/api/v1/follow-ups?due_before=2030-01-01T00:00:00Z")
        .token(&rep)
        .send()
        .await;
    assert_eq!(due_soon.body["data"].as_array().unwrap().len(), 2);
    let admin = app.get("/api/v1/follow-ups").admin().send().await;
    assert_eq!(admin.body["data"].as_array().unwrap().len(), 4);
    assert_eq!(admin.body["data"][0]["title"], "someone else's");
}

async fn accounts_and_contacts_have_full_crud(app: TestApp) {
    let a = app
        .post("/api/v1/accounts")
        .admin()
        .json(json!({"name": "Omega", "company_size": "11-50", "website": "https://omega.example"}))
        .send()
        .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
    let apath = format!("/api/v1/accounts/{}", id_of(&a.body));
    let c = app
        .post("/api/v1/contacts")
        .admin()
        .json(json!({"last_name": "王", "email": "wang@omega.example", "account_id": a.body["id"]}))
        .send()
        .await;
    assert_eq!(c.status, StatusCode::CREATED, "{}", c.text);
    let cpath = format!("/api/v1/contacts/{}", id_of(&c.body));
    let renamed = app
        .patch(&apath)
        .admin()
        .header("if-match", "\"1\"")
        .json(json!({"name": "Omega Group", "website": null}))
        .send()
        .await;
    assert_eq!(
        (
            renamed.body["name"].clone(),
            renamed.body["website"].clone()
        ),
        (json!("Omega Group"), Value::Null)
    );
    app.patch(&apath)
        .admin()
        .header("if-match", "\"1\"")
        .json(json!({"name": "x"}))
        .send()
        .await
        .problem(412, "version_conflict");
    let listed = app
        .get(&format!("/api/v1/contacts?account_id={}", id_of(&a.body)))
        .admin()
        .send()
        .await;
    assert_eq!(listed.body["data"].as_array().unwrap().len(), 1);
    assert_eq!(
        app.get("/api/v1/accounts?q=group")
            .admin()
            .send()
            .await
            .body["data"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    app.delete(&apath)
        .admin()
        .send()
        .await
        .problem(409, "account_in_use");
    assert_eq!(
        app.delete(&cpath).admin().send().await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.delete(&apath).admin().send().await.status,
        StatusCode::NO_CONTENT
    );
    app.get(&apath)
        .admin()
        .send()
        .await
        .problem(404, "not_found");
    app.post("/api/v1/contacts")
        .admin()
        .json(json!({"phone": "1"}))
        .send()
        .await
        .problem(422, "validation_failed");
    app.post("/api/v1/accounts")
        .admin()
        .json(json!({"name": ""}))
        .send()
        .await
        .problem(422, "validation_failed");
}
