//! Whole response bodies compared with the snapshots in `snapshots/`: representative
//! problem documents and report answers, with ids and request ids redacted. A change to
//! a body shows up as a diff to review (and to accept by updating the snapshot); in CI a
//! mismatch or a missing snapshot fails.

use insta::assert_json_snapshot;
use serde_json::json;

use crate::api_tests;
use crate::helpers::{id_of, stage_id, TestApp};

api_tests!(problem_bodies, report_bodies);

async fn problem_bodies(app: TestApp) {
    let p = app.gated_pipeline().await;
    let deal = app
        .deal(&p)
        .name("Deal")
        .set("external_id", "erp-1")
        .create()
        .await;

    let res = app
        .post(&format!("{}/move", deal.path()))
        .admin()
        .json(json!({"stage_id": stage_id(&p, "Propose")}))
        .send()
        .await;
    res.problem(422, "stage_requirements_unmet");
    assert_json_snapshot!("stage_requirements_unmet", res.body, {".request_id" => "[request_id]"});

    let res = app
        .post("/api/v1/pipelines")
        .admin()
        .json(json!({"name": "", "stages": [
            {"name": "", "probability": 150},
            {"name": "Won", "kind": "won", "required_fields": ["colour"]}]}))
        .send()
        .await;
    res.problem(422, "validation_failed");
    assert_json_snapshot!("validation_failed", res.body, {".request_id" => "[request_id]"});

    let res = app
        .patch(&deal.path())
        .admin()
        .header("if-match", "\"9\"")
        .json(json!({"name": "Renamed"}))
        .send()
        .await;
    res.problem(412, "version_conflict");
    assert_json_snapshot!("version_conflict", res.body, {".request_id" => "[request_id]"});

    let res = app
        .get("/api/v1/opportunities/00000000-0000-0000-0000-000000000000")
        .admin()
        .send()
        .await;
    res.problem(404, "not_found");
    assert_json_snapshot!("not_found", res.body, {".request_id" => "[request_id]"});

    let res = app
        .post("/api/v1/opportunities")
        .admin()
        .json(json!({"name": "Again", "pipeline_id": p["id"], "external_id": "erp-1"}))
        .send()
        .await;
    res.problem(409, "duplicate_opportunity");
    assert_eq!(res.body["existing_id"], deal.id.as_str());
    assert_json_snapshot!("duplicate_opportunity", res.body, {
        ".existing_id" => "[existing_id]",
        ".request_id" => "[request_id]",
    });
}

async fn report_bodies(app: TestApp) {
    let p = app.pipeline().plain().create().await;
    let won = app.deal(&p).name("won").amount("1200").create().await;
    won.move_through(&["B", "Won"]).await;
    let lost = app.deal(&p).name("lost").amount("300.50").create().await;
    lost.move_to("C").await;
    lost.lose("budget").await;
    app.deal(&p).name("open").amount("99").create().await;

    let funnel = app
        .get(&format!("/api/v1/reports/funnel?pipeline_id={}", id_of(&p)))
        .admin()
        .send_ok()
        .await;
    assert_json_snapshot!("funnel", funnel.body, {
        ".pipeline_id" => "[pipeline_id]",
        ".**.stage_id" => "[stage_id]",
    });

    let losses = app
        .get("/api/v1/reports/loss-reasons")
        .admin()
        .send_ok()
        .await;
    assert_json_snapshot!("loss_reasons", losses.body, {
        ".**.stage_id" => "[stage_id]",
    });
}
