//! Limits that keep one user from breaking or flooding the reports of everyone: exact
//! money totals at the largest amount, bounded texts and snapshot counts, capped
//! segments, date ranges up to the year 9999 and CSV cells that a spreadsheet does not
//! run as formulas.

use actix_web::http::StatusCode;
use serde_json::{json, Value};
use stageflow::domain::user::Role;

use crate::api_tests;
use crate::helpers::{id_of, stage_id, TestApp};

api_tests!(
    forecast_totals_stay_exact_at_the_largest_amount,
    snapshots_refuse_malformed_ids_and_long_texts,
    free_texts_are_capped,
    snapshots_are_limited_per_user_per_day,
    tag_segments_are_capped_with_the_rest_as_other,
    report_ranges_reach_the_year_9999_and_refuse_beyond,
    report_csv_neutralises_formulas_in_user_text,
);

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

async fn snapshots_refuse_malformed_ids_and_long_texts(app: TestApp) {
    let huge = "x".repeat(100_000);
    let res = app
        .post("/api/v1/reports/forecast/snapshots")
        .admin()
        .json(
            json!({"name": "ids", "owner_id": huge, "team_id": "team-7", "pipeline_id": "1; DROP"}),
        )
        .send()
        .await;
    res.problem(422, "validation_failed");
    let mut fields = res.error_fields();
    fields.sort();
    assert_eq!(fields, ["owner_id", "pipeline_id", "team_id"]);
    let long_name = app
        .post("/api/v1/reports/forecast/snapshots")
        .admin()
        .json(json!({"name": "n".repeat(201)}))
        .send()
        .await;
    long_name.problem(422, "validation_failed");
    assert_eq!(long_name.error_fields(), ["name"]);
    assert_eq!(app.count("forecast_snapshots", ""), 0);
    let p = pipeline(&app).await;
    let ok = app
        .post("/api/v1/reports/forecast/snapshots")
        .admin()
        .json(json!({"name": "n".repeat(200), "pipeline_id": p["id"]}))
        .send()
        .await;
    assert_eq!(ok.status, StatusCode::CREATED, "{}", ok.text);
}

async fn free_texts_are_capped(app: TestApp) {
    let long = |n: usize| "述".repeat(n);
    let stages = json!([{"name": "A", "probability": 10}, {"name": "Won", "kind": "won"},
                        {"name": "Lost", "kind": "lost"}]);
    let res = app
        .post("/api/v1/pipelines")
        .admin()
        .json(json!({"name": "P", "description": long(2001), "stages": stages}))
        .send()
        .await;
    res.problem(422, "validation_failed");
    assert_eq!(res.error_fields(), ["description"]);
    let res = app
        .post("/api/v1/pipelines")
        .admin()
        .json(json!({"name": "P", "description": long(2000), "stages": stages}))
        .send()
        .await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.text);
    let p = res.body;
    let res = app
        .patch(&format!("/api/v1/pipelines/{}", id_of(&p)))
        .admin()
        .json(json!({"description": long(2001)}))
        .send()
        .await;
    res.problem(422, "validation_failed");
    assert_eq!(res.error_fields(), ["description"]);

    let deal = app
        .opportunity(
            &app.admin_token,
            json!({"name": "d", "pipeline_id": p["id"]}),
        )
        .await;
    let res = app
        .post(&format!("/api/v1/opportunities/{}/move", id_of(&deal)))
        .admin()
        .json(
            json!({"stage_id": stage_id(&p, "Lost"), "loss_reason_id": "budget",
                     "lost_note": long(2001)}),
        )
        .send()
        .await;
    res.problem(422, "validation_failed");
    assert_eq!(res.error_fields(), ["lost_note"]);

    let res = app
        .put("/api/v1/scoring-rules")
        .admin()
        .json(
            json!({"rules": [{"field": "region", "value": long(101), "points": 5, "label": "r"}]}),
        )
        .send()
        .await;
    res.problem(422, "validation_failed");
    assert_eq!(res.error_fields(), ["rules[0].value"]);
}

async fn snapshots_are_limited_per_user_per_day(app: TestApp) {
    let (_, rep, manager) = team_with_rep(&app).await;
    for i in 0..100 {
        let res = app
            .post("/api/v1/reports/forecast/snapshots")
            .token(&rep)
            .json(json!({"name": format!("s{i}")}))
            .send()
            .await;
        assert_eq!(res.status, StatusCode::CREATED, "{i}: {}", res.text);
    }
    let res = app
        .post("/api/v1/reports/forecast/snapshots")
        .token(&rep)
        .json(json!({"name": "one too many"}))
        .send()
        .await;
    res.problem(429, "snapshot_quota_exceeded");
    let retry: u64 = res
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .unwrap();
    assert!((1..=86_400).contains(&retry), "{retry}");
    assert_eq!(app.count("forecast_snapshots", ""), 100);
    // The quota is the rep's own: their manager still has a full day's worth.
    let res = app
        .post("/api/v1/reports/forecast/snapshots")
        .token(&manager)
        .json(json!({"name": "team"}))
        .send()
        .await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.text);
}

async fn tag_segments_are_capped_with_the_rest_as_other(app: TestApp) {
    let p = pipeline(&app).await;
    // 81 distinct tags: `common` on three deals, then 40 + 40 tags of one deal each.
    let t = app.admin_token.clone();
    let one = |prefix: &str| {
        let mut tags: Vec<String> = (0..40).map(|i| format!("{prefix}{i:02}")).collect();
        tags.push("common".into());
        tags
    };
    let d1 = app
        .opportunity(
            &t,
            json!({"name": "d1", "pipeline_id": p["id"], "tags": one("a")}),
        )
        .await;
    app.opportunity(
        &t,
        json!({"name": "d2", "pipeline_id": p["id"], "tags": one("b")}),
    )
    .await;
    app.opportunity(
        &t,
        json!({"name": "d3", "pipeline_id": p["id"], "tags": ["common"]}),
    )
    .await;
    let moved = app
        .post(&format!("/api/v1/opportunities/{}/move", id_of(&d1)))
        .admin()
        .json(json!({"stage_id": stage_id(&p, "B")}))
        .send()
        .await;
    assert_eq!(moved.status, StatusCode::OK, "{}", moved.text);

    let res = app
        .get(&format!(
            "/api/v1/reports/funnel?pipeline_id={}&group_by=tag",
            id_of(&p)
        ))
        .admin()
        .send()
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    let r = &res.body;
    assert_eq!(r["total"], 3);
    let segments = r["segments"].as_array().unwrap();
    assert_eq!(segments.len(), 50);
    assert_eq!(r["segments_truncated"], true);
    let common = segments.iter().find(|s| s["key"] == "common").unwrap();
    assert_eq!(common["total"], 3, "the largest segment is kept");
    // Kept: common and the first 49 one-deal tags (a00…a39, b00…b08); the other 31
    // (b09…b39, all on d2) are one segment counting d2 once.
    assert_eq!(r["other"]["segments"], 31);
    assert_eq!(r["other"]["total"], 1);
    assert_eq!(r["other"]["stages"][0]["reached_or_passed"], 1);
    // The same from the stage log: the entries of a range.
    let period = app
        .get(&format!(
            "/api/v1/reports/funnel?pipeline_id={}&group_by=tag&mode=period&from=2020-01-01",
            id_of(&p)
        ))
        .admin()
        .send()
        .await;
    assert_eq!(period.status, StatusCode::OK, "{}", period.text);
    assert_eq!(period.body["segments"].as_array().unwrap().len(), 50);
    assert_eq!(
        (
            &period.body["other"]["segments"],
            &period.body["other"]["total"]
        ),
        (&json!(31), &json!(1))
    );

    let res = app
        .get(&format!(
            "/api/v1/reports/stage-durations?pipeline_id={}&group_by=tag",
            id_of(&p)
        ))
        .admin()
        .send()
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    assert_eq!(res.body["segments"].as_array().unwrap().len(), 50);
    assert_eq!(res.body["segments_truncated"], true);
    assert_eq!(res.body["other"]["segments"], 31);
    // d2 still sits in A: one running stay.
    assert_eq!(res.body["other"]["stages"][0]["open_count"], 1);

    let few = app
        .get(&format!(
            "/api/v1/reports/funnel?pipeline_id={}&group_by=owner",
            id_of(&p)
        ))
        .admin()
        .send()
        .await;
    assert_eq!(few.body["segments"].as_array().unwrap().len(), 1);
    assert_eq!(few.body["segments_truncated"], false);
    assert!(few.body.get("other").is_none());
}

async fn report_ranges_reach_the_year_9999_and_refuse_beyond(app: TestApp) {
    let p = pipeline(&app).await;
    let d = app
        .opportunity(
            &app.admin_token,
            json!({"name": "d", "pipeline_id": p["id"], "amount": "100", "expected_close_date": "2027-01-15"}),
        )
        .await;
    let won = app
        .post(&format!("/api/v1/opportunities/{}/win", id_of(&d)))
        .admin()
        .send()
        .await;
    assert_eq!(won.status, StatusCode::OK, "{}", won.text);
    let open = app
        .opportunity(
            &app.admin_token,
            json!({"name": "open", "pipeline_id": p["id"], "amount": "50", "expected_close_date": "9999-12-31"}),
        )
        .await;
    let _ = open;

    let forecast = app
        .get("/api/v1/reports/forecast?from=2027-01-01&to=9999-12-31")
        .admin()
        .send()
        .await;
    assert_eq!(forecast.status, StatusCode::OK, "{}", forecast.text);
    assert_eq!(forecast.body["rows"][0]["period"], "9999-12");
    let board = app
        .get("/api/v1/reports/leaderboard?from=0001-01-01&to=9999-12-31")
        .admin()
        .send()
        .await;
    assert_eq!(board.status, StatusCode::OK, "{}", board.text);
    assert_eq!(board.body["data"][0]["won_amount"], "100.00");
    let funnel = app
        .get(&format!(
            "/api/v1/reports/funnel?pipeline_id={}&to=9999-12-31T23:00:00-05:00",
            id_of(&p)
        ))
        .admin()
        .send()
        .await;
    assert_eq!(funnel.status, StatusCode::OK, "{}", funnel.text);
    assert_eq!(funnel.body["total"], 2);

    for (query, field) in [
        ("to=10000-01-01", "to"),
        ("to=%2B10000-01-01", "to"),
        ("from=0000-12-31", "from"),
        ("from=0000-12-31T23:00:00Z", "from"),
    ] {
        let res = app
            .get(&format!("/api/v1/reports/leaderboard?{query}"))
            .admin()
            .send()
            .await;
        res.problem(400, "invalid_parameter");
        assert_eq!(res.error_fields(), [field], "{query}");
    }
}

async fn report_csv_neutralises_formulas_in_user_text(app: TestApp) {
    let p = pipeline(&app).await;
    let formula = "=HYPERLINK(\"http://evil.example\",\"Q\")";
    let res = app
        .post("/api/v1/users")
        .admin()
        .json(
            json!({"email": "rep@example.com", "password": crate::helpers::PASSWORD,
                     "name": formula, "role": "rep"}),
        )
        .send()
        .await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.text);
    let rep = app.login("rep@example.com", crate::helpers::PASSWORD).await;
    let d = app
        .opportunity(
            &rep,
            json!({"name": "-2+3", "pipeline_id": p["id"], "amount": "12.00", "region": "+SUM(1,2)",
                   "tags": ["@cmd"], "expected_close_date": "2027-01-15"}),
        )
        .await;
    let snap = app
        .post("/api/v1/reports/forecast/snapshots")
        .token(&rep)
        .json(json!({"name": "Jan"}))
        .send()
        .await;
    assert_eq!(snap.status, StatusCode::CREATED, "{}", snap.text);
    let won = app
        .post(&format!("/api/v1/opportunities/{}/win", id_of(&d)))
        .token(&rep)
        .send()
        .await;
    assert_eq!(won.status, StatusCode::OK, "{}", won.text);

    let csv = |path: String| {
        let app = &app;
        async move {
            let res = app
                .get(&path)
                .admin()
                .header("accept", "text/csv")
                .send()
                .await;
            assert_eq!(res.status, StatusCode::OK, "{path}: {}", res.text);
            res.text
        }
    };
    let region = csv(format!(
        "/api/v1/reports/funnel?pipeline_id={}&group_by=region",
        id_of(&p)
    ))
    .await;
    assert!(region.contains("\r\n\"'+SUM(1,2)\","), "{region}");
    let tag = csv(format!(
        "/api/v1/reports/funnel?pipeline_id={}&group_by=tag",
        id_of(&p)
    ))
    .await;
    assert!(tag.contains("\r\n'@cmd,"), "{tag}");
    let board = csv("/api/v1/reports/leaderboard".into()).await;
    assert!(
        board.contains(",\"'=HYPERLINK(\"\"http://evil.example\"\",\"\"Q\"\")\",12.00,1,"),
        "{board}"
    );
    // Numbers the server writes keep their sign: the snapshot weighed 10 % of 12.00 for
    // January 2027, and the deal was won this month instead.
    let acc = csv(format!(
        "/api/v1/reports/forecast/snapshots/{}/accuracy",
        id_of(&snap.body)
    ))
    .await;
    let row = acc.lines().nth(1).unwrap_or_default();
    assert!(row.ends_with(",1,12.00,1.20,0,0.00,0,-1.20"), "{acc}");
    for line in [region.as_str(), tag.as_str(), board.as_str(), acc.as_str()]
        .iter()
        .flat_map(|t| t.lines())
    {
        for cell in line.split(',') {
            let c = cell.trim_start_matches('"');
            let formula = c.starts_with(['=', '+', '@'])
                || (c.starts_with('-') && c[1..].contains(['+', '(']));
            assert!(!formula, "{line}");
        }
    }
}
