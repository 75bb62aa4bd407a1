//! Limits that keep one user from breaking or flooding the reports of everyone: exact
//! money totals at the largest amount, bounded texts and snapshot counts, capped
//! segments, date ranges up to the year 9999 and CSV cells that a spreadsheet does not
//! run as formulas.

use actix_web::http::StatusCode;
use serde_json::{json, Value};
use stageflow::domain::user::Role;

use crate::api_tests;
use crate::helpers::{id_of, TestApp};

api_tests!(forecast_totals_stay_exact_at_the_largest_amount,);

/// The documented maximum of `amount` (money.rs: ten trillion units).
const MAX_AMOUNT: &str = "10000000000000";

/// A → B → Won, Lost.
async fn pipeline(app: &TestApp) -> Value {
    let res = app
        .post("/api/v1/pipelines")
        .admin()
        .json(json!({"name": "Limits", "stages": [
            {"name": "A", "probability": 10},
            {"name": "B", "probability": 50},
            {"name": "Won", "kind": "won"},
            {"name": "Lost", "kind": "lost"}]}))
        .send()
        .await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.text);
    res.body
}

/// A team with a manager and a rep; returns `(rep_id, rep_token, manager_token)`.
async fn team_with_rep(app: &TestApp) -> (String, String, String) {
    let team = app.team("North", None).await;
    let (_, manager) = app
        .user("manager@example.com", Role::Manager, Some(&team))
        .await;
    let (rep_id, rep) = app.user("rep@example.com", Role::Rep, Some(&team)).await;
    (rep_id, rep, manager)
}

async fn forecast_totals_stay_exact_at_the_largest_amount(app: TestApp) {
    let p = pipeline(&app).await;
    let (_, rep, manager) = team_with_rep(&app).await;
    let too_much = app
        .post("/api/v1/opportunities")
        .token(&rep)
        .json(json!({"name": "too much", "pipeline_id": p["id"], "amount": "10000000000000.01"}))
        .send()
        .await;
    too_much.problem(422, "validation_failed");
    assert_eq!(too_much.error_fields(), ["amount"]);
    // 100 deals at the maximum and 100 %: Σ amount × probability is 10^19 hundredths of
    // a minor unit, beyond a 64-bit integer.
    for i in 0..100 {
        app.opportunity(
            &rep,
            json!({"name": format!("big {i}"), "pipeline_id": p["id"], "amount": MAX_AMOUNT,
                   "probability": 100, "expected_close_date": "2027-01-15"}),
        )
        .await;
    }
    for token in [&app.admin_token, &manager] {
        let res = app
            .get("/api/v1/reports/forecast")
            .token(token)
            .send()
            .await;
        assert_eq!(res.status, StatusCode::OK, "{}", res.text);
        let total = &res.body["totals"][0];
        assert_eq!(total["deals"], 100);
        assert_eq!(total["unweighted"], "1000000000000000.00");
        assert_eq!(total["weighted"], "1000000000000000.00");
        assert_eq!(res.body["rows"][0]["weighted"], "1000000000000000.00");
    }
    let snap = app
        .post("/api/v1/reports/forecast/snapshots")
        .token(&rep)
        .json(json!({"name": "All in"}))
        .send()
        .await;
    assert_eq!(snap.status, StatusCode::CREATED, "{}", snap.text);
    let acc = app
        .get(&format!(
            "/api/v1/reports/forecast/snapshots/{}/accuracy",
            id_of(&snap.body)
        ))
        .token(&rep)
        .send()
        .await;
    assert_eq!(acc.status, StatusCode::OK, "{}", acc.text);
    let row = &acc.body["rows"][0];
    assert_eq!(row["forecast_weighted"], "1000000000000000.00");
    assert_eq!(row["error"], "-1000000000000000.00");
}
