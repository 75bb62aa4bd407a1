use actix_web::http::StatusCode;
use serde_json::{json, Value};
use stageflow::domain::user::Role;

use crate::api_tests;
use crate::factories::assert_out_of_reach;
use crate::helpers::{id_of, stage_id, TestApp};

api_tests!(
    a_lead_keeps_every_field_and_is_scored_transparently,
    leads_are_screened_by_filters,
    duplicate_email_or_external_id_names_the_existing_lead,
    changes_rescore_the_lead,
    scoring_rules_can_be_replaced_and_rescore_leads,
    bad_scoring_rules_are_refused_with_pointers,
    disqualify_needs_a_reason_and_patch_requalifies,
    conversion_creates_linked_records_once,
    conversion_links_an_existing_account_and_contact,
    a_failed_conversion_leaves_nothing_behind,
    status_and_server_fields_are_not_writable,
    reps_cannot_touch_other_reps_leads,
);

fn full_lead() -> Value {
    json!({
        "first_name": "磊", "last_name": "李", "email": "Li.Lei@Yunqi.example", "phone": "+86 571 8888 0000",
        "company": "杭州云启科技", "job_title": "CIO", "industry": "software", "company_size": "51-200",
        "region": "华东", "country": "CN", "source": "web_form", "source_detail": "官网试用表单",
        "interest": "CRM 升级", "status": "contacted",
        "bant": {"budget": "approved", "authority": "decision_maker", "need": "medium", "timeline": "within_6_months"},
        "tags": ["vip", "2026Q4"], "next_follow_up_at": "2026-12-01T09:30:00Z", "external_id": "form-1001",
        "custom": {"campaign": "双十一"}
    })
}

async fn a_lead_keeps_every_field_and_is_scored_transparently(app: TestApp) {
    let lead = app.lead_as(&app.admin_token, full_lead()).await;
    for (field, expected) in full_lead().as_object().unwrap() {
        if field == "email" {
            assert_eq!(lead[field], "li.lei@yunqi.example", "emails are normalised");
        } else {
            assert_eq!(&lead[field], expected, "{field}");
        }
    }
    // Default rules: budget approved 25 + decision maker 25 + need medium 12 + 6 months 12.
    assert_eq!(lead["score"], 74);
    let breakdown = lead["score_breakdown"].as_array().unwrap();
    let points: i64 = breakdown
        .iter()
        .map(|i| i["points"].as_i64().unwrap())
        .sum();
    assert_eq!(points, 74, "the breakdown adds up to the score");
    assert_eq!(breakdown.len(), 4);
    assert!(breakdown
        .iter()
        .all(|i| i["label"].as_str().is_some() && i["field"].as_str().is_some()));
    assert_eq!(lead["version"], 1);
    assert_eq!(lead["converted_at"], Value::Null);
    let fetched = app
        .get(&format!("/api/v1/leads/{}", id_of(&lead)))
        .admin()
        .send()
        .await;
    assert_eq!(fetched.body, lead);
    assert_eq!(fetched.header("etag"), Some("\"1\""));
}

async fn leads_are_screened_by_filters(app: TestApp) {
    let (rep, rep_token) = app.user("rep@example.com", Role::Rep, None).await;
    let a = app
        .lead_as(&app.admin_token, json!({"company": "Alpha 制造", "source": "event", "industry": "manufacturing",
            "company_size": "1000+", "region": "华南", "tags": ["expo"], "bant": {"budget": "approved", "need": "high"}}))
        .await;
    let b = app
        .lead_as(
            &rep_token,
            json!({"company": "Beta 教育", "source": "referral", "industry": "education",
            "company_size": "11-50", "region": "华北", "status": "qualified"}),
        )
        .await;
    for (query, expected) in [
        ("status=qualified", vec![id_of(&b)]),
        ("source=event", vec![id_of(&a)]),
        ("industry=education", vec![id_of(&b)]),
        ("company_size=1000%2B", vec![id_of(&a)]),
        ("region=%E5%8D%8E%E5%8C%97", vec![id_of(&b)]),
        (&format!("owner_id={rep}"), vec![id_of(&b)]),
        ("tag=expo", vec![id_of(&a)]),
        ("min_score=40", vec![id_of(&a)]),
        ("q=beta", vec![id_of(&b)]),
        ("sort=-score&limit=1", vec![id_of(&a)]),
    ] {
        let res = app
            .get(&format!("/api/v1/leads?{query}"))
            .admin()
            .send()
            .await;
        assert_eq!(res.status, StatusCode::OK, "{query}: {}", res.text);
        assert_eq!(res.ids(), expected, "{query}");
    }
    let future = app
        .get("/api/v1/leads?created_from=2999-01-01T00:00:00Z")
        .admin()
        .send()
        .await;
    assert_eq!(future.ids(), Vec::<String>::new());
    let past = app
        .get("/api/v1/leads?created_to=2999-01-01T00:00:00Z")
        .admin()
        .send()
        .await;
    assert_eq!(past.ids().len(), 2);
    app.get("/api/v1/leads?status=hot")
        .admin()
        .send()
        .await
        .problem(400, "invalid_parameter");
    app.get("/api/v1/leads?min_score=lots")
        .admin()
        .send()
        .await
        .problem(400, "invalid_parameter");
}

async fn duplicate_email_or_external_id_names_the_existing_lead(app: TestApp) {
    let first = app
        .lead_as(
            &app.admin_token,
            json!({"email": "dup@example.com", "external_id": "crm-7"}),
        )
        .await;
    let by_email = app
        .post("/api/v1/leads")
        .admin()
        .json(json!({"email": "DUP@example.com"}))
        .send()
        .await;
    by_email.problem(409, "duplicate_lead");
    assert_eq!(by_email.body["existing_id"], first["id"]);
    let by_external = app
        .post("/api/v1/leads")
        .admin()
        .json(json!({"email": "other@example.com", "external_id": "crm-7"}))
        .send()
        .await;
    by_external.problem(409, "duplicate_lead");
    assert_eq!(by_external.body["existing_id"], first["id"]);
    let other = app
        .lead_as(&app.admin_token, json!({"email": "second@example.com"}))
        .await;
    let clash = app
        .patch(&format!("/api/v1/leads/{}", id_of(&other)))
        .admin()
        .json(json!({"email": "dup@example.com"}))
        .send()
        .await;
    clash.problem(409, "duplicate_lead");
    assert_eq!(app.count("leads", ""), 2);
}

async fn changes_rescore_the_lead(app: TestApp) {
    let lead = app
        .lead_as(&app.admin_token, json!({"company": "Gamma"}))
        .await;
    assert_eq!(lead["score"], 0);
    assert_eq!(lead["score_breakdown"], json!([]));
    let path = format!("/api/v1/leads/{}", id_of(&lead));
    let res = app
        .patch(&path)
        .admin()
        .header("if-match", "\"1\"")
        .json(json!({"bant": {"need": "high"}}))
        .send()
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    assert_eq!(res.body["score"], 25);
    assert_eq!(
        res.body["bant"],
        json!({"budget": "unknown", "authority": "unknown", "need": "high", "timeline": "unknown"})
    );
    let res = app
        .patch(&path)
        .admin()
        .json(json!({"bant": {"budget": "planned"}}))
        .send()
        .await;
    assert_eq!(
        res.body["score"], 40,
        "nested objects merge: need stays high"
    );
    assert_eq!(res.body["bant"]["need"], "high");
    let res = app
        .patch(&path)
        .admin()
        .header("if-match", "\"1\"")
        .json(json!({"company": "x"}))
        .send()
        .await;
    res.problem(412, "version_conflict");
}

async fn scoring_rules_can_be_replaced_and_rescore_leads(app: TestApp) {
    let rules = app.get("/api/v1/scoring-rules").admin().send().await;
    assert_eq!(rules.status, StatusCode::OK);
    assert!(rules.body["rules"].as_array().unwrap().len() >= 8);
    let lead = app
        .lead_as(
            &app.admin_token,
            json!({"company": "Delta", "source": "referral", "tags": ["vip"]}),
        )
        .await;
    assert_eq!(lead["score"], 0);
    let res = app
        .put("/api/v1/scoring-rules")
        .admin()
        .json(json!({"rules": [
            {"id": "ref", "field": "source", "value": "referral", "points": 30, "label": "转介绍"},
            {"field": "tag", "value": "vip", "points": 15, "label": "重点客户"},
            {"field": "has_email", "value": "false", "points": -10, "label": "没有邮箱"}
        ]}))
        .send()
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    assert_eq!(res.body["rescored"], 1);
    assert_eq!(res.body["rules"].as_array().unwrap().len(), 3);
    let after = app
        .get(&format!("/api/v1/leads/{}", id_of(&lead)))
        .admin()
        .send()
        .await;
    assert_eq!(after.body["score"], 35);
    let labels: Vec<&str> = after.body["score_breakdown"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["label"].as_str().unwrap())
        .collect();
    assert_eq!(labels, ["转介绍", "重点客户", "没有邮箱"]);
    let (_, rep) = app.user("rep@example.com", Role::Rep, None).await;
    app.put("/api/v1/scoring-rules")
        .token(&rep)
        .json(json!({"rules": []}))
        .send()
        .await
        .problem(403, "forbidden");
}

async fn bad_scoring_rules_are_refused_with_pointers(app: TestApp) {
    let res = app
        .put("/api/v1/scoring-rules")
        .admin()
        .json(json!({"rules": [
            {"field": "bant.budget", "value": "huge", "points": 10, "label": "x"},
            {"field": "salary", "value": "high", "points": 10, "label": "x"},
            {"field": "source", "value": "ads", "points": 500, "label": ""}
        ]}))
        .send()
        .await;
    res.problem(422, "validation_failed");
    let pointers: Vec<&str> = res.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["pointer"].as_str().unwrap())
        .collect();
    assert_eq!(
        pointers,
        [
            "/rules/0/value",
            "/rules/1/field",
            "/rules/2/points",
            "/rules/2/label"
        ]
    );
    let still = app.get("/api/v1/scoring-rules").admin().send().await;
    assert!(
        still.body["rules"].as_array().unwrap().len() >= 8,
        "nothing replaced"
    );
}

async fn disqualify_needs_a_reason_and_patch_requalifies(app: TestApp) {
    let lead = app
        .lead_as(&app.admin_token, json!({"company": "Epsilon"}))
        .await;
    let path = format!("/api/v1/leads/{}", id_of(&lead));
    app.post(&format!("{path}/disqualify"))
        .admin()
        .json(json!({"reason": "  "}))
        .send()
        .await
        .problem(422, "validation_failed");
    let res = app
        .post(&format!("{path}/disqualify"))
        .admin()
        .json(json!({"reason": "无预算"}))
        .send()
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    assert_eq!(res.body["status"], "disqualified");
    assert_eq!(res.body["disqualified_reason"], "无预算");
    let res = app
        .patch(&path)
        .admin()
        .json(json!({"status": "nurturing"}))
        .send()
        .await;
    assert_eq!(res.body["status"], "nurturing");
    assert_eq!(res.body["disqualified_reason"], Value::Null);
    app.patch(&path)
        .admin()
        .json(json!({"status": "converted"}))
        .send()
        .await
        .problem(422, "validation_failed");
}

async fn conversion_creates_linked_records_once(app: TestApp) {
    let pipeline = app.pipeline_from_template("standard").await;
    let lead = app.lead_as(&app.admin_token, full_lead()).await;
    let path = format!("/api/v1/leads/{}/convert", id_of(&lead));
    let res = app
        .post(&path)
        .admin()
        .json(json!({"pipeline_id": pipeline["id"], "amount": "88000.00", "expected_close_date": "2027-01-31"}))
        .send()
        .await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.text);
    let (l, a, c, o) = (
        &res.body["lead"],
        &res.body["account"],
        &res.body["contact"],
        &res.body["opportunity"],
    );
    assert_eq!(l["status"], "converted");
    assert!(l["converted_at"].is_string());
    assert_eq!(l["converted_opportunity_id"], o["id"]);
    assert_eq!(o["lead_id"], l["id"]);
    assert_eq!(o["account_id"], a["id"]);
    assert_eq!(o["contact_id"], c["id"]);
    assert_eq!(c["account_id"], a["id"]);
    assert_eq!(a["name"], "杭州云启科技");
    assert_eq!(c["email"], "li.lei@yunqi.example");
    assert_eq!(o["stage_id"], stage_id(&pipeline, "初步接触").as_str());
    assert_eq!(o["amount"], "88000.00");
    assert_eq!(
        (
            o["source"].clone(),
            o["industry"].clone(),
            o["region"].clone()
        ),
        (json!("web_form"), json!("software"), json!("华东"))
    );
    assert_eq!(o["tags"], json!(["vip", "2026Q4"]));
    assert_eq!(o["effective_probability"], 10);
    let history = app
        .get(&format!("/api/v1/opportunities/{}/history", id_of(o)))
        .admin()
        .send()
        .await;
    assert_eq!(
        history.body["data"].as_array().unwrap().len(),
        1,
        "conversion is the first log row"
    );
    assert_eq!(history.body["data"][0]["from_stage_id"], Value::Null);

    let again = app
        .post(&path)
        .admin()
        .json(json!({"pipeline_id": pipeline["id"]}))
        .send()
        .await;
    again.problem(409, "lead_already_converted");
    assert_eq!(again.body["existing_id"], o["id"]);
    assert_eq!(app.count("opportunities", ""), 1);
    assert_eq!(app.count("accounts", ""), 1);
}

async fn conversion_links_an_existing_account_and_contact(app: TestApp) {
    let pipeline = app.pipeline_from_template("saas").await;
    let account = app
        .post("/api/v1/accounts")
        .admin()
        .json(json!({"name": "Zeta Holdings"}))
        .send()
        .await;
    assert_eq!(account.status, StatusCode::CREATED);
    let contact = app
        .post("/api/v1/contacts")
        .admin()
        .json(json!({"first_name": "Ann", "email": "ann@zeta.example", "account_id": account.body["id"]}))
        .send()
        .await;
    assert_eq!(contact.status, StatusCode::CREATED, "{}", contact.text);
    let lead = app
        .lead_as(
            &app.admin_token,
            json!({"company": "zeta holdings", "email": "ann@zeta.example"}),
        )
        .await;
    let res = app
        .post(&format!("/api/v1/leads/{}/convert", id_of(&lead)))
        .admin()
        .json(json!({"pipeline_id": pipeline["id"], "name": "Zeta renewal"}))
        .send()
        .await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.text);
    assert_eq!(res.body["account"]["id"], account.body["id"]);
    assert_eq!(res.body["contact"]["id"], contact.body["id"]);
    assert_eq!(res.body["opportunity"]["name"], "Zeta renewal");
    assert_eq!(
        (app.count("accounts", ""), app.count("contacts", "")),
        (1, 1)
    );
}

async fn a_failed_conversion_leaves_nothing_behind(app: TestApp) {
    let res = app
        .post("/api/v1/pipelines")
        .admin()
        .json(json!({"name": "Strict", "stages": [
            {"name": "Sized", "probability": 20, "required_fields": ["amount"]},
            {"name": "Won", "kind": "won"}, {"name": "Lost", "kind": "lost"}]}))
        .created()
        .await;
    let lead = app
        .lead_as(
            &app.admin_token,
            json!({"company": "Eta", "email": "eta@example.com"}),
        )
        .await;
    let path = format!("/api/v1/leads/{}/convert", id_of(&lead));
    let fail = app
        .post(&path)
        .admin()
        .json(json!({"pipeline_id": res.body["id"]}))
        .send()
        .await;
    fail.problem(422, "stage_requirements_unmet");
    assert_eq!(fail.error_fields(), ["amount"]);
    assert_eq!(
        (
            app.count("accounts", ""),
            app.count("contacts", ""),
            app.count("opportunities", "")
        ),
        (0, 0, 0)
    );
    assert_eq!(app.count("stage_transitions", ""), 0);
    let unchanged = app
        .get(&format!("/api/v1/leads/{}", id_of(&lead)))
        .admin()
        .send()
        .await;
    assert_eq!(unchanged.body["status"], "new");
    let ok = app
        .post(&path)
        .admin()
        .json(json!({"pipeline_id": res.body["id"], "amount": "5000"}))
        .send()
        .await;
    assert_eq!(ok.status, StatusCode::CREATED, "{}", ok.text);
    app.post(&path)
        .admin()
        .json(json!({"pipeline_id": "nope"}))
        .send()
        .await
        .problem(409, "lead_already_converted");
}

async fn status_and_server_fields_are_not_writable(app: TestApp) {
    let lead = app
        .lead_as(&app.admin_token, json!({"company": "Theta"}))
        .await;
    let path = format!("/api/v1/leads/{}", id_of(&lead));
    for (field, value) in [
        ("score", json!(99)),
        ("id", json!("x")),
        ("version", json!(5)),
        ("created_by", json!("me")),
        ("converted_opportunity_id", json!("o")),
    ] {
        let res = app
            .patch(&path)
            .admin()
            .json(json!({field: value}))
            .send()
            .await;
        res.problem(422, "validation_failed");
        assert_eq!(res.body["errors"][0]["code"], "unknown_field", "{field}");
        let res = app
            .post("/api/v1/leads")
            .admin()
            .json(json!({"company": "New", field: value}))
            .send()
            .await;
        res.problem(422, "validation_failed");
    }
    let now = app.get(&path).admin().send().await;
    assert_eq!(now.body["score"], 0);
    assert_eq!(now.body["version"], 1);
}

async fn reps_cannot_touch_other_reps_leads(app: TestApp) {
    let pipeline = app.pipeline_from_template("standard").await;
    let (manager, manager_token) = app.user("m@example.com", Role::Manager, None).await;
    let team = app.team("Team A", Some(&manager)).await;
    let (_, rep_a) = app.user("a@example.com", Role::Rep, Some(&team)).await;
    let (rep_b_id, rep_b) = app.user("b@example.com", Role::Rep, None).await;
    let lead = app
        .lead_as(
            &rep_a,
            json!({"company": "Iota", "email": "iota@example.com"}),
        )
        .await;
    let path = format!("/api/v1/leads/{}", id_of(&lead));
    assert_out_of_reach(&app, &rep_b, &path, json!({"company": "mine"})).await;
    app.post(&format!("{path}/convert"))
        .token(&rep_b)
        .json(json!({"pipeline_id": pipeline["id"]}))
        .send()
        .await
        .problem(404, "not_found");
    app.post(&format!("{path}/disqualify"))
        .token(&rep_b)
        .json(json!({"reason": "x"}))
        .send()
        .await
        .problem(404, "not_found");
    let listed = app.get("/api/v1/leads").token(&rep_b).send().await;
    assert_eq!(listed.body["data"], json!([]));
    app.post("/api/v1/activities")
        .token(&rep_b)
        .json(json!({"type": "call", "subject": "x", "lead_id": lead["id"]}))
        .send()
        .await
        .problem(404, "not_found");
    // A rep cannot hand a record to someone they cannot see.
    let res = app
        .post("/api/v1/leads")
        .token(&rep_a)
        .json(json!({"company": "Kappa", "owner_id": rep_b_id}))
        .send()
        .await;
    res.problem(422, "validation_failed");
    assert_eq!(res.error_fields(), ["owner_id"]);
    // The manager sees the team's lead; the admin sees all.
    assert_eq!(
        app.get(&path).token(&manager_token).send().await.status,
        StatusCode::OK
    );
    assert_eq!(app.get(&path).admin().send().await.status, StatusCode::OK);
    assert_eq!(app.count("activities", ""), 0);
}
