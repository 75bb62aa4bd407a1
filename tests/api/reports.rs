//! Report scenarios whose expected numbers are worked out by hand in each test.

use actix_web::http::StatusCode;
use serde_json::{json, Value};

use crate::api_tests;
use crate::factories::Deal;
use crate::helpers::{id_of, stage_id, TestApp};

api_tests!(
    funnel_counts_skips_reentries_reopens_and_losses,
    funnel_segments_and_visibility,
    period_funnel_counts_entries_in_the_range,
    stage_durations_use_closed_stays_and_interpolate,
    stalled_report_gives_reasons,
    loss_reasons_and_reactivation,
    leaderboard_and_lead_sources,
    forecast_weighs_by_effective_probability_and_snapshots_measure_accuracy,
    activity_effectiveness_compares_stays_with_and_without,
    reports_answer_csv_and_svg_and_refuse_bad_parameters,
    aggregates_kept_in_step_equal_a_rebuild_from_the_log,
    report_variants_count_only_the_range_and_split_by_segment,
    indexes_set_aside_for_a_bulk_write_come_back_at_the_next_start,
);

/// The five deals of the funnel scenario:
/// d1 A→B→C→Won · d2 A→C (skips B)→Lost · d3 A→B→A→B (re-enters B, open)
/// d4 A→Lost→reopened to B→Won · d5 A (open).
async fn five_deals<'a>(app: &'a TestApp, p: &Value) -> Vec<Deal<'a>> {
    let mut d = Vec::new();
    for (i, source) in ["ads", "ads", "referral", "referral", "event"]
        .iter()
        .enumerate()
    {
        let deal = app
            .deal(p)
            .name(&format!("d{}", i + 1))
            .source(source)
            .amount(&format!("{}000", i + 1))
            .create()
            .await;
        d.push(deal);
    }
    d[0].move_through(&["B", "C", "Won"]).await;
    d[1].move_to("C").await;
    d[1].lose("competitor").await;
    d[2].move_through(&["B", "A", "B"]).await;
    d[3].lose("budget").await;
    d[3].reopen("B").await;
    d[3].win().await;
    d
}

pub(crate) fn step<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["stages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap()
}

fn rate(v: &Value) -> (i64, i64) {
    (
        v["numerator"].as_i64().unwrap(),
        v["denominator"].as_i64().unwrap(),
    )
}

async fn funnel_counts_skips_reentries_reopens_and_losses(app: TestApp) {
    let p = app.pipeline().plain().create().await;
    five_deals(&app, &p).await;
    let res = app
        .get(&format!("/api/v1/reports/funnel?pipeline_id={}", id_of(&p)))
        .admin()
        .send()
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    let r = &res.body;
    assert_eq!(r["total"], 5);
    let names: Vec<&str> = r["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["A", "B", "C", "Won"], "lost stages are not steps");
    // reached_or_passed: A all 5; B d1,d2 (skipped B, reached C),d3,d4 = 4; C d1,d2,d4 = 3; Won d1,d4 = 2.
    let expect = [
        ("A", 5, 5, 4, 1, 0),
        ("B", 3, 4, 3, 1, 0),
        ("C", 2, 3, 2, 1, 1),
        ("Won", 2, 2, 0, 0, 0),
    ];
    for (name, entered, reached, advanced, drop, lost_here) in expect {
        let s = step(r, name);
        assert_eq!(
            (
                s["entered"].as_i64(),
                s["reached_or_passed"].as_i64(),
                s["advanced"].as_i64(),
                s["drop_off"].as_i64(),
                s["lost_here"].as_i64()
            ),
            (
                Some(entered),
                Some(reached),
                Some(advanced),
                Some(drop),
                Some(lost_here)
            ),
            "{name}"
        );
    }
    assert_eq!(rate(&step(r, "A")["conversion_rate"]), (4, 5));
    assert_eq!(step(r, "B")["conversion_rate"]["value"], 0.75);
    assert_eq!(rate(&step(r, "C")["conversion_rate"]), (2, 3));
    assert_eq!(step(r, "Won")["conversion_rate"]["value"], Value::Null);
    assert_eq!(rate(&r["win_rate"]), (2, 5));
    assert_eq!(r["win_rate"]["value"], 0.4);
    assert!(r.get("segments").is_none());
}

async fn funnel_segments_and_visibility(app: TestApp) {
    let p = app.pipeline().plain().create().await;
    five_deals(&app, &p).await;
    let (_, rep) = app.rep("rep@example.com").await;
    let mine = app.deal(&p).by(&rep).source("ads").create().await;
    mine.move_to("B").await;
    let res = app
        .get(&format!(
            "/api/v1/reports/funnel?pipeline_id={}&group_by=source",
            id_of(&p)
        ))
        .admin()
        .send()
        .await;
    let segments = res.body["segments"].as_array().unwrap();
    let keys: Vec<&str> = segments
        .iter()
        .map(|s| s["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["ads", "event", "referral"]);
    // ads: d1 (won), d2 (lost from C), the rep's deal (in B).
    let ads = &segments[0];
    assert_eq!(ads["total"], 3);
    assert_eq!(rate(&ads["win_rate"]), (1, 3));
    assert_eq!(step(ads, "B")["reached_or_passed"], 3);
    assert_eq!(step(ads, "C")["reached_or_passed"], 2);
    assert_eq!(res.body["total"], 6, "the whole funnel beside the segments");
    // A rep sees only their own deal.
    let theirs = app
        .get(&format!("/api/v1/reports/funnel?pipeline_id={}", id_of(&p)))
        .token(&rep)
        .send()
        .await;
    assert_eq!(theirs.body["total"], 1);
    assert_eq!(step(&theirs.body, "B")["entered"], 1);
    let owner = app
        .get(&format!(
            "/api/v1/reports/funnel?pipeline_id={}&group_by=owner",
            id_of(&p)
        ))
        .token(&rep)
        .send()
        .await;
    assert_eq!(owner.body["segments"].as_array().unwrap().len(), 1);
    let tags = app
        .get(&format!(
            "/api/v1/reports/funnel?pipeline_id={}&group_by=tag",
            id_of(&p)
        ))
        .admin()
        .send()
        .await;
    assert_eq!(tags.status, StatusCode::OK, "{}", tags.text);
    assert_eq!(tags.body["segments"], json!([]), "no deal has tags");
}

async fn period_funnel_counts_entries_in_the_range(app: TestApp) {
    let p = app.pipeline().plain().create().await;
    // d1 and d2 live their whole lives on 2025-01-10; d3–d5 today (the paths of
    // `five_deals`).
    let today = chrono::Utc::now().naive_utc();
    app.state.clock.set(
        chrono::NaiveDate::from_ymd_opt(2025, 1, 10)
            .unwrap()
            .and_hms_opt(12, 0, 0)
            .unwrap(),
    );
    let d1 = app.deal(&p).name("d1").create().await;
    d1.move_through(&["B", "C", "Won"]).await;
    let d2 = app.deal(&p).name("d2").create().await;
    d2.move_to("C").await;
    d2.lose("competitor").await;
    app.state.clock.set(today);
    let d3 = app.deal(&p).name("d3").create().await;
    d3.move_through(&["B", "A", "B"]).await;
    let d4 = app.deal(&p).name("d4").create().await;
    d4.lose("budget").await;
    d4.reopen("B").await;
    d4.win().await;
    app.deal(&p).name("d5").create().await;
    let path = format!(
        "/api/v1/reports/funnel?pipeline_id={}&mode=period",
        id_of(&p)
    );
    let early = app
        .get(&format!("{path}&from=2025-01-01&to=2025-01-31"))
        .admin()
        .send()
        .await;
    assert_eq!(early.body["total"], 2);
    assert_eq!(step(&early.body, "C")["entered"], 2);
    assert_eq!(step(&early.body, "B")["reached_or_passed"], 2);
    assert_eq!(rate(&early.body["win_rate"]), (1, 2));
    assert_eq!(step(&early.body, "C")["lost_here"], 1);
    let later = app
        .get(&format!("{path}&from=2025-02-01"))
        .admin()
        .send()
        .await;
    assert_eq!(later.body["total"], 3);
    assert_eq!(rate(&later.body["win_rate"]), (1, 3));
    // A cohort report by creation date from 2025-01-01 sees all five.
    let cohort = app
        .get(&format!(
            "/api/v1/reports/funnel?pipeline_id={}&from=2025-01-01",
            id_of(&p)
        ))
        .admin()
        .send()
        .await;
    assert_eq!(cohort.body["total"], 5);
}

async fn stage_durations_use_closed_stays_and_interpolate(app: TestApp) {
    let p = app.pipeline().plain().create().await;
    // Three deals created at midnight on 2026-01-01 and moved on 1, 2 and 4 hours later,
    // by the service's clock (each reading moves a set clock on by a microsecond).
    let midnight = chrono::NaiveDate::from_ymd_opt(2026, 1, 1)
        .unwrap()
        .and_hms_opt(0, 0, 0)
        .unwrap();
    let mut ids = Vec::new();
    for hours in [1, 2, 4] {
        app.state.clock.set(midnight);
        let deal = app.deal(&p).create().await;
        app.state
            .clock
            .set(midnight + chrono::Duration::hours(hours));
        deal.move_to("B").await;
        ids.push(deal.id.clone());
    }
    app.state.clock.set(chrono::Utc::now().naive_utc());
    let res = app
        .get(&format!(
            "/api/v1/reports/stage-durations?pipeline_id={}",
            id_of(&p)
        ))
        .admin()
        .send()
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    let a = step(&res.body, "A");
    // Closed stays in A: 3600, 7200, 14400 s.
    assert_eq!(a["count"], 3);
    assert_eq!(a["avg"].as_f64().unwrap().round(), 8400.0);
    assert_eq!(a["median"].as_f64().unwrap().round(), 7200.0);
    // p90: rank 0.9 × 2 = 1.8 → 7200 + 0.8 × (14400 − 7200) = 12960.
    assert_eq!(a["p90"].as_f64().unwrap().round(), 12960.0);
    assert_eq!(a["max"].as_f64().unwrap().round(), 14400.0);
    assert_eq!(a["open_count"], 0);
    let b = step(&res.body, "B");
    assert_eq!(
        (b["count"].as_i64(), b["open_count"].as_i64()),
        (Some(0), Some(3))
    );
    assert_eq!(b["median"], Value::Null);
    let entered_b = chrono::NaiveDate::from_ymd_opt(2026, 1, 1)
        .unwrap()
        .and_hms_opt(2, 0, 0)
        .unwrap();
    let expected_age = (chrono::Utc::now().naive_utc() - entered_b).num_seconds() as f64;
    assert!((b["open_median_age"].as_f64().unwrap() - expected_age).abs() < 120.0);
    // Stays entered in the range only.
    let none = app
        .get(&format!(
            "/api/v1/reports/stage-durations?pipeline_id={}&from=2026-02-01",
            id_of(&p)
        ))
        .admin()
        .send()
        .await;
    assert_eq!(step(&none.body, "A")["count"], 0);
    let grouped = app
        .get(&format!(
            "/api/v1/reports/stage-durations?pipeline_id={}&group_by=owner",
            id_of(&p)
        ))
        .admin()
        .send()
        .await;
    assert_eq!(grouped.body["segments"][0]["stages"][0]["count"], 3);
}

async fn stalled_report_gives_reasons(app: TestApp) {
    let p = app.pipeline().plain().create().await;
    let today = chrono::Utc::now().naive_utc();
    app.state.clock.set(today - chrono::Duration::days(9));
    let old = app.deal(&p).name("old").create().await.id;
    app.state.clock.set(today);
    app.deal(&p).name("fresh").create().await;
    let res = app.get("/api/v1/reports/stalled").admin().send().await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    assert_eq!(res.body["total"], 1);
    let row = &res.body["data"][0];
    assert_eq!(row["opportunity_id"], old.as_str());
    assert_eq!(
        row["reasons"],
        json!(["in_stage_too_long", "no_recent_activity"])
    );
    assert_eq!(
        (
            row["days_in_stage"].as_i64(),
            row["days_idle"].as_i64(),
            row["stalled_after_days"].as_i64()
        ),
        (Some(9), Some(9), Some(7))
    );
    assert_eq!(row["owner_name"], "Administrator");
    // The list filter agrees.
    let list = app
        .get("/api/v1/opportunities?stalled=true")
        .admin()
        .send()
        .await;
    assert_eq!(
        list.body["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(id_of)
            .collect::<Vec<_>>(),
        [old]
    );
}

async fn loss_reasons_and_reactivation(app: TestApp) {
    let p = app.pipeline().plain().create().await;
    five_deals(&app, &p).await;
    let extra = app.deal(&p).amount("500.50").create().await;
    extra.lose("budget").await;
    let res = app.get("/api/v1/reports/loss-reasons").admin().send().await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    // d2 lost from C (competitor, 2000.00); the extra deal lost from A (budget, 500.50).
    // d4 was lost from A too but has been reopened and won.
    assert_eq!(res.body["total_lost"], 2);
    assert_eq!(res.body["total_amount"], "2500.50");
    let rows: Vec<(String, String, i64, String)> = res.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["stage_name"].as_str().unwrap().to_owned(),
                r["loss_reason_id"].as_str().unwrap().to_owned(),
                r["count"].as_i64().unwrap(),
                r["amount"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            ("A".into(), "budget".into(), 1, "500.50".into()),
            ("C".into(), "competitor".into(), 1, "2000.00".into())
        ]
    );
    // Correcting the amount of a lost deal shows in the report at once.
    extra.patch(json!({"amount": "700.25"})).await;
    let res = app.get("/api/v1/reports/loss-reasons").admin().send().await;
    assert_eq!(res.body["total_amount"], "2700.25");
    let re = app.get("/api/v1/reports/reactivation").admin().send().await;
    // Lost at some point: d2, d4, extra = 3; reopened: d4, now won.
    assert_eq!(
        (
            re.body["lost"].as_i64(),
            re.body["reopened"].as_i64(),
            re.body["won_after_reopen"].as_i64()
        ),
        (Some(3), Some(1), Some(1))
    );
    assert_eq!(rate(&re.body["reactivation_rate"]), (1, 3));
    assert_eq!(rate(&re.body["win_rate_after_reopen"]), (1, 1));
    assert_eq!(re.body["won_amount_after_reopen"], "4000.00");
}

async fn leaderboard_and_lead_sources(app: TestApp) {
    let p = app.pipeline().plain().create().await;
    let (rep_id, rep) = app.rep("rep@example.com").await;
    app.deal(&p).amount("100").create().await.win().await;
    for amount in ["300", "50"] {
        let d = app.deal(&p).by(&rep).amount(amount).create().await;
        d.move_to("B").await;
        d.win().await;
    }
    let board = app.get("/api/v1/reports/leaderboard").admin().send().await;
    assert_eq!(board.status, StatusCode::OK, "{}", board.text);
    let first = &board.body["data"][0];
    assert_eq!(
        (
            first["owner_id"].as_str(),
            first["won_amount"].as_str(),
            first["won_count"].as_i64()
        ),
        (Some(rep_id.as_str()), Some("350.00"), Some(2))
    );
    // Advances: the rep A→B twice and B→Won twice; the admin A→Won once.
    assert_eq!(first["stage_advances"], 4);
    assert_eq!(board.body["data"][1]["stage_advances"], 1);
    let by_count = app
        .get("/api/v1/reports/leaderboard?metric=won_count")
        .admin()
        .send()
        .await;
    assert_eq!(by_count.body["data"][0]["owner_id"], rep_id.as_str());

    // Lead sources: 3 web_form leads, 2 qualified+, 1 converted and won; 1 event lead.
    let mut web = Vec::new();
    for (i, status) in ["new", "qualified", "new"].iter().enumerate() {
        web.push(
            app.lead()
                .company(&format!("W{i}"))
                .source("web_form")
                .status(status)
                .create()
                .await,
        );
    }
    app.lead().company("E").source("event").create().await;
    let conv = app
        .post(&format!("/api/v1/leads/{}/convert", id_of(&web[2])))
        .admin()
        .json(json!({"pipeline_id": p["id"], "amount": "800"}))
        .created()
        .await;
    let opp = conv.body["opportunity"]["id"].as_str().unwrap().to_owned();
    app.post(&format!("/api/v1/opportunities/{opp}/win"))
        .admin()
        .send_ok()
        .await;
    let sources = app.get("/api/v1/reports/lead-sources").admin().send().await;
    let web_row = sources.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["source"] == "web_form")
        .unwrap()
        .clone();
    assert_eq!(
        (
            web_row["leads"].as_i64(),
            web_row["qualified"].as_i64(),
            web_row["converted"].as_i64(),
            web_row["won"].as_i64()
        ),
        (Some(3), Some(2), Some(1), Some(1))
    );
    assert_eq!(rate(&web_row["qualification_rate"]), (2, 3));
    assert_eq!(rate(&web_row["win_rate"]), (1, 1));
    assert_eq!(web_row["won_amount"], "800.00");
}

async fn forecast_weighs_by_effective_probability_and_snapshots_measure_accuracy(app: TestApp) {
    let p = app.pipeline().plain().create().await;
    // In A (10 %): 1000.00 → weighted 100.00. In B with a 50 % override: 2000.00 → 1000.00.
    let a = app
        .deal(&p)
        .amount("1000")
        .set("expected_close_date", "2027-01-20")
        .create()
        .await;
    let b = app
        .deal(&p)
        .amount("2000")
        .set("expected_close_date", "2027-01-25")
        .set("probability", 50)
        .create()
        .await;
    b.move_to("B").await;
    app.deal(&p)
        .amount("999")
        .set("expected_close_date", "2027-04-02")
        .create()
        .await;
    let res = app
        .get("/api/v1/reports/forecast?from=2027-01-01&to=2027-03-31")
        .admin()
        .send()
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    assert_eq!(res.body["rows"].as_array().unwrap().len(), 1);
    let row = &res.body["rows"][0];
    assert_eq!(
        (row["period"].as_str(), row["deals"].as_i64()),
        (Some("2027-01"), Some(2))
    );
    assert_eq!(
        (row["unweighted"].as_str(), row["weighted"].as_str()),
        (Some("3000.00"), Some("1100.00"))
    );
    let quarters = app
        .get("/api/v1/reports/forecast?period=quarter")
        .admin()
        .send()
        .await;
    let periods: Vec<&str> = quarters.body["totals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["period"].as_str().unwrap())
        .collect();
    assert_eq!(periods, ["2027-Q1", "2027-Q2"]);

    let snap = app
        .post("/api/v1/reports/forecast/snapshots")
        .admin()
        .json(json!({"name": "Jan commit", "from": "2027-01-01", "to": "2027-01-31"}))
        .send()
        .await;
    assert_eq!(snap.status, StatusCode::CREATED, "{}", snap.text);
    assert_eq!(snap.body["rows"][0]["weighted"], "1100.00");
    // B is won, dated into January 2027; A is lost.
    let today = chrono::Utc::now().naive_utc();
    app.state.clock.set(
        chrono::NaiveDate::from_ymd_opt(2027, 1, 15)
            .unwrap()
            .and_hms_opt(10, 0, 0)
            .unwrap(),
    );
    b.win().await;
    app.state.clock.set(today);
    a.lose("budget").await;
    let acc = app
        .get(&format!(
            "/api/v1/reports/forecast/snapshots/{}/accuracy",
            id_of(&snap.body)
        ))
        .admin()
        .send()
        .await;
    assert_eq!(acc.status, StatusCode::OK, "{}", acc.text);
    let r = &acc.body["rows"][0];
    assert_eq!(
        (
            r["forecast_weighted"].as_str(),
            r["won_amount"].as_str(),
            r["won_deals"].as_i64()
        ),
        (Some("1100.00"), Some("2000.00"), Some(1))
    );
    assert_eq!(r["attainment"], 1.8182);
    assert_eq!(r["error"], "900.00");
    let (_, rep) = app.rep("rep@example.com").await;
    app.get(&format!(
        "/api/v1/reports/forecast/snapshots/{}/accuracy",
        id_of(&snap.body)
    ))
    .token(&rep)
    .send()
    .await
    .problem(404, "not_found");
}

async fn activity_effectiveness_compares_stays_with_and_without(app: TestApp) {
    let p = app.pipeline().plain().create().await;
    let called = app.deal(&p).create().await;
    app.deal(&p).create().await;
    let res = app
        .post("/api/v1/activities")
        .admin()
        .json(json!({"type": "call", "subject": "需求访谈", "opportunity_id": called.id}))
        .send()
        .await;
    assert_eq!(res.status, StatusCode::CREATED);
    called.move_to("B").await;
    let r = app
        .get(&format!(
            "/api/v1/reports/activity-effectiveness?pipeline_id={}&within_days=14",
            id_of(&p)
        ))
        .admin()
        .send()
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let row = r.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["stage_name"] == "A" && e["activity_type"] == "call")
        .unwrap()
        .clone();
    // Two stays in A: the called deal advanced, the quiet one did not.
    assert_eq!(rate(&row["advance_rate_with"]), (1, 1));
    assert_eq!(rate(&row["advance_rate_without"]), (0, 1));
    assert_eq!(row["lift"], 1.0);
    let demo = r.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["stage_name"] == "A" && e["activity_type"] == "demo")
        .unwrap()
        .clone();
    assert_eq!(rate(&demo["advance_rate_without"]), (1, 2));
    assert_eq!(demo["lift"], Value::Null);
}

async fn reports_answer_csv_and_svg_and_refuse_bad_parameters(app: TestApp) {
    let p = app.pipeline().plain().create().await;
    five_deals(&app, &p).await;
    let csv = app
        .get(&format!("/api/v1/reports/funnel?pipeline_id={}", id_of(&p)))
        .admin()
        .header("accept", "text/csv")
        .send()
        .await;
    assert_eq!(csv.status, StatusCode::OK);
    assert!(csv.header("content-type").unwrap().starts_with("text/csv"));
    let lines: Vec<&str> = csv.text.lines().collect();
    assert!(lines[0].starts_with("segment,stage_id,name,position"));
    assert_eq!(lines.len(), 5, "header + 4 steps");
    assert!(
        lines[1].contains(",A,0,open,5,5,4,0.8,4,5,1,0"),
        "{}",
        lines[1]
    );
    for report in [
        "stage-durations?pipeline_id=P",
        "stalled",
        "loss-reasons",
        "activity-effectiveness?pipeline_id=P",
        "lead-sources",
        "leaderboard",
        "reactivation",
        "forecast",
    ] {
        let path = format!("/api/v1/reports/{}", report.replace('P', &id_of(&p)));
        let res = app
            .get(&path)
            .admin()
            .header("accept", "text/csv")
            .send()
            .await;
        assert_eq!(res.status, StatusCode::OK, "{report}: {}", res.text);
        assert!(
            res.header("content-type").unwrap().starts_with("text/csv"),
            "{report}"
        );
        assert!(
            res.text.lines().count() >= 1 && !res.text.starts_with('{'),
            "{report}"
        );
    }
    let svg = app
        .get(&format!(
            "/api/v1/reports/funnel.svg?pipeline_id={}",
            id_of(&p)
        ))
        .admin()
        .send()
        .await;
    assert_eq!(svg.status, StatusCode::OK);
    assert!(svg
        .header("content-type")
        .unwrap()
        .starts_with("image/svg+xml"));
    assert!(
        svg.text.starts_with("<svg") && svg.text.contains("Plain") && svg.text.contains("5 deals")
    );
    app.get("/api/v1/reports/funnel")
        .admin()
        .send()
        .await
        .problem(400, "invalid_parameter");
    let res = app
        .get("/api/v1/reports/funnel?pipeline_id=nope")
        .admin()
        .send()
        .await;
    res.problem(400, "invalid_parameter");
    assert_eq!(res.error_fields(), ["pipeline_id"]);
    app.get("/api/v1/reports/funnel?pipeline_id=00000000-0000-0000-0000-000000000000")
        .admin()
        .send()
        .await
        .problem(404, "not_found");
    app.get(&format!(
        "/api/v1/reports/funnel?pipeline_id={}&mode=weekly",
        id_of(&p)
    ))
    .admin()
    .send()
    .await
    .problem(400, "invalid_parameter");
    app.get(&format!(
        "/api/v1/reports/funnel?pipeline_id={}&from=yesterday",
        id_of(&p)
    ))
    .admin()
    .send()
    .await
    .problem(400, "invalid_parameter");
    app.get(&format!(
        "/api/v1/reports/funnel?pipeline_id={}&from=2026-05-01&to=2026-04-01",
        id_of(&p)
    ))
    .admin()
    .send()
    .await
    .problem(400, "invalid_parameter");
    app.get("/api/v1/reports/leaderboard?metric=charm")
        .admin()
        .send()
        .await
        .problem(400, "invalid_parameter");
    app.get("/api/v1/reports/stalled?limit=0")
        .admin()
        .send()
        .await
        .problem(400, "invalid_parameter");
    let key = app
        .post("/api/v1/api-keys")
        .admin()
        .json(json!({"name": "k", "scopes": ["leads:read"]}))
        .created()
        .await;
    app.get("/api/v1/reports/leaderboard")
        .token(key.body["secret"].as_str().unwrap())
        .send()
        .await
        .problem(403, "forbidden");
}

/// Every row of the report aggregates, as text.
pub(crate) fn aggregate_rows(app: &TestApp) -> (Vec<String>, Vec<String>) {
    let reach = app.texts(
        "SELECT opportunity_id || '|' || pipeline_id || '|' || owner_id || '|' || CAST(entered_mask AS TEXT) || '|' \
         || COALESCE(CAST(lost_from_stage_id AS TEXT), '-') || '|' || CAST(was_lost AS TEXT) || '|' || CAST(reopened AS TEXT) || '|' \
         || CAST(advances AS TEXT) || '|' || status || '|' || COALESCE(CAST(amount_milli AS TEXT), '-') || '|' \
         || COALESCE(CAST(closed_at AS TEXT), '-') || '|' || COALESCE(lost_reason_id, '-') || '|' \
         || COALESCE(CAST(lost_at AS TEXT), '-') || '|' || COALESCE(source, '-') || '|' || COALESCE(region, '-') || '|' \
         || COALESCE(industry, '-') || '|' || COALESCE(company_size, '-') || '|' || tags AS v FROM deal_reach",
    );
    let stays = app.texts(
        "SELECT id || '|' || owner_id || '|' || stage_id || '|' || COALESCE(CAST(left_at AS TEXT), '-') || '|' \
         || COALESCE(CAST(next_stage_id AS TEXT), '-') || '|' || COALESCE(CAST(ROUND(seconds) AS TEXT), '-') || '|' \
         || CAST(advanced AS TEXT) || '|' || COALESCE(CAST(ROUND(first_call_after) AS TEXT), '-') || '|' \
         || COALESCE(CAST(ROUND(first_demo_after) AS TEXT), '-') || '|' || stage_kind || '|' \
         || CAST(advance_in AS TEXT) || '|' || COALESCE(source, '-') || '|' || COALESCE(region, '-') || '|' || tags AS v \
         FROM stage_stays",
    );
    (reach, stays)
}

async fn aggregates_kept_in_step_equal_a_rebuild_from_the_log(app: TestApp) {
    let p = app.pipeline().plain().create().await;
    let ids = five_deals(&app, &p).await;
    // Activities on a deal: one logged, one changed to another type, one deleted.
    let mut activity_ids = Vec::new();
    for kind in ["call", "meeting", "email"] {
        let res = app
            .post("/api/v1/activities")
            .admin()
            .json(json!({"type": kind, "subject": kind, "opportunity_id": ids[4].id}))
            .send()
            .await;
        assert_eq!(res.status, StatusCode::CREATED, "{}", res.text);
        activity_ids.push((id_of(&res.body), res.body["version"].as_i64().unwrap()));
    }
    let res = app
        .patch(&format!("/api/v1/activities/{}", activity_ids[1].0))
        .admin()
        .header("if-match", &format!("\"{}\"", activity_ids[1].1))
        .json(json!({"type": "demo"}))
        .send()
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    let res = app
        .delete(&format!("/api/v1/activities/{}", activity_ids[0].0))
        .admin()
        .send()
        .await;
    assert_eq!(res.status, StatusCode::NO_CONTENT, "{}", res.text);
    ids[4].move_to("C").await;
    // The stays of d5 in A: the call was deleted, the meeting became a demo.
    let stays = app.texts(&format!(
        "SELECT CAST(COUNT(*) AS TEXT) AS v FROM stage_stays WHERE opportunity_id = '{}' AND first_call_after IS NULL \
         AND first_meeting_after IS NULL AND first_demo_after >= 0 AND first_email_after >= 0",
        ids[4].id
    ));
    assert_eq!(stays, vec!["1"]);
    // Reassign a deal to a rep: the rep's reports see it at once.
    let (rep_id, rep_token) = app.rep("rep@example.com").await;
    let res = app
        .patch(&format!("/api/v1/opportunities/{}", ids[0].id))
        .admin()
        .json(json!({"owner_id": rep_id, "region": "north", "tags": ["vip"]}))
        .send()
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    let mine = app
        .get(&format!("/api/v1/reports/funnel?pipeline_id={}", id_of(&p)))
        .token(&rep_token)
        .send()
        .await;
    assert_eq!(mine.body["total"], 1);
    assert_eq!(rate(&mine.body["win_rate"]), (1, 1));
    // Reorder the pipeline (C before B): ranks and stage bits follow the positions.
    let order: Vec<String> = ["A", "C", "B", "Won", "Lost"]
        .iter()
        .map(|s| stage_id(&p, s))
        .collect();
    let res = app
        .put(&format!("/api/v1/pipelines/{}/stage-order", id_of(&p)))
        .admin()
        .json(json!({"stage_ids": order}))
        .send()
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    let kept = aggregate_rows(&app);
    assert_eq!(kept.0.len(), 5, "one summary row per deal");
    assert!(kept.1.len() >= 15, "one stay per log row");
    app.rebuild_aggregates();
    assert_eq!(aggregate_rows(&app), kept);
    // Deleting a deal removes its aggregate rows with it.
    let res = app
        .delete(&format!("/api/v1/opportunities/{}", ids[4].id))
        .admin()
        .send()
        .await;
    assert_eq!(res.status, StatusCode::NO_CONTENT, "{}", res.text);
    assert_eq!(app.count("deal_reach", ""), 4);
    assert_eq!(
        app.count("stage_stays", &format!("opportunity_id = '{}'", ids[4].id)),
        0
    );
}

/// The variants read from the aggregates' range and segment columns: period funnels with
/// a range, advances and losses in a range, segmented durations in a range.
///
/// In February 2025 (the range): d1 (east, vip) A→B on the 10th, B→C on the 12th (won on
/// 5 March, after it); d2 (west, vip+smb) created on the 5th, lost on the 6th, reopened
/// into B on the 20th; d4 (east, smb) A→B on the 15th, lost on the 16th. d3 (west, no
/// tags) has no entry in February: created and lost in January.
async fn report_variants_count_only_the_range_and_split_by_segment(app: TestApp) {
    let p = app.pipeline().plain().create().await;
    let at = |month: u32, day: u32| {
        chrono::NaiveDate::from_ymd_opt(2025, month, day)
            .unwrap()
            .and_hms_opt(12, 0, 0)
            .unwrap()
    };
    let clock = &app.state.clock;
    let deal = |name: &str, region: &str, tags: Value| {
        app.deal(&p)
            .name(name)
            .set("region", region)
            .set("tags", tags)
    };
    clock.set(at(1, 10));
    let d1 = deal("d1", "east", json!(["vip"])).create().await;
    let d3 = deal("d3", "west", json!([])).create().await;
    let d4 = deal("d4", "east", json!(["smb"])).create().await;
    clock.set(at(1, 20));
    d3.lose("budget").await;
    clock.set(at(2, 5));
    let d2 = deal("d2", "west", json!(["vip", "smb"])).create().await;
    clock.set(at(2, 6));
    d2.lose("budget").await;
    clock.set(at(2, 10));
    d1.move_to("B").await;
    clock.set(at(2, 12));
    d1.move_to("C").await;
    clock.set(at(2, 15));
    d4.move_to("B").await;
    clock.set(at(2, 16));
    d4.lose("competitor").await;
    clock.set(at(2, 20));
    d2.reopen("B").await;
    clock.set(at(3, 5));
    d1.win().await;
    clock.set(chrono::Utc::now().naive_utc());
    let range = "from=2025-02-01&to=2025-02-28";
    let app = &app;
    let get = |path: String| async move {
        let res = app.get(&path).admin().send().await;
        assert_eq!(res.status, StatusCode::OK, "{path}: {}", res.text);
        res.body
    };

    // Period funnel: d1 entered B and C, d2 A, Lost and B, d4 B and Lost in the range.
    let funnel = format!(
        "/api/v1/reports/funnel?pipeline_id={}&mode=period&{range}",
        id_of(&p)
    );
    let whole = get(funnel.clone()).await;
    assert_eq!(whole["total"], 3);
    let counts = |r: &Value, name: &str| {
        let s = step(r, name);
        [
            s["entered"].as_i64().unwrap(),
            s["reached_or_passed"].as_i64().unwrap(),
            s["advanced"].as_i64().unwrap(),
            s["lost_here"].as_i64().unwrap(),
        ]
    };
    assert_eq!(counts(&whole, "A"), [1, 3, 3, 0]);
    assert_eq!(counts(&whole, "B"), [3, 3, 1, 1], "d4 was lost from B");
    assert_eq!(counts(&whole, "C"), [1, 1, 0, 0]);
    assert_eq!(
        counts(&whole, "Won"),
        [0, 0, 0, 0],
        "d1 won after the range"
    );
    let segment = |r: &Value, key: &str| {
        r["segments"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["key"] == key)
            .cloned()
            .unwrap_or_else(|| panic!("segment {key} in {r}"))
    };
    let by_region = get(format!("{funnel}&group_by=region")).await;
    assert_eq!(by_region["total"], 3);
    let east = segment(&by_region, "east");
    assert_eq!(east["total"], 2);
    assert_eq!(counts(&east, "B"), [2, 2, 1, 1]);
    let west = segment(&by_region, "west");
    assert_eq!(west["total"], 1, "d3 has no entry in the range");
    assert_eq!(counts(&west, "A"), [1, 1, 1, 0]);
    let by_tag = get(format!("{funnel}&group_by=tag")).await;
    assert_eq!(
        by_tag["total"], 3,
        "a deal with two tags counts once in the whole"
    );
    assert_eq!(segment(&by_tag, "vip")["total"], 2);
    assert_eq!(segment(&by_tag, "smb")["total"], 2);
    assert_eq!(counts(&segment(&by_tag, "smb"), "B"), [2, 2, 0, 1]);

    // Advances: d1 A→B and B→C and d4 A→B in the range; a reopening is not one.
    let board = get(format!("/api/v1/reports/leaderboard?{range}")).await;
    assert_eq!(board["data"][0]["stage_advances"], 3);
    assert_eq!(board["data"][0]["won_count"], 0);
    let all_time = get("/api/v1/reports/leaderboard".to_owned()).await;
    assert_eq!(
        all_time["data"][0]["stage_advances"], 4,
        "with C→Won in March"
    );

    // Losses in the range: d2 and d4; d2 was reopened and is open.
    let re = get(format!("/api/v1/reports/reactivation?{range}")).await;
    assert_eq!(
        (&re["lost"], &re["reopened"], &re["open_after_reopen"]),
        (&json!(2), &json!(1), &json!(1))
    );
    let re_all = get("/api/v1/reports/reactivation".to_owned()).await;
    assert_eq!(re_all["lost"], 3);

    // Closed stays entered in the range, by region: east B (2 days, 1 day), C (21 days);
    // west A (1 day) and its lost stay (14 days); the running stays are not closed.
    let durations = get(format!(
        "/api/v1/reports/stage-durations?pipeline_id={}&{range}&group_by=region",
        id_of(&p)
    ))
    .await;
    let day = 86_400.0;
    let close = |v: &Value, expected: f64| {
        let got = v.as_f64().unwrap_or(f64::NAN);
        assert!((got - expected).abs() < 1.0, "{got} vs {expected}");
    };
    let east = segment(&durations, "east");
    assert_eq!(step(&east, "B")["count"], 2);
    close(&step(&east, "B")["median"], 1.5 * day);
    close(&step(&east, "B")["max"], 2.0 * day);
    close(&step(&east, "C")["avg"], 21.0 * day);
    let west = segment(&durations, "west");
    assert_eq!(step(&west, "A")["count"], 1);
    assert_eq!(step(&west, "B")["count"], 0);
    close(&step(&west, "Lost")["median"], 14.0 * day);
    assert_eq!(step(&durations, "B")["count"], 2);
    assert_eq!(step(&durations, "A")["count"], 1);
    close(&step(&durations, "A")["p90"], day);
    // By tag: a stay counts under each of its deal's tags, and once in the whole.
    let tagged = get(format!(
        "/api/v1/reports/stage-durations?pipeline_id={}&{range}&group_by=tag",
        id_of(&p)
    ))
    .await;
    assert_eq!(step(&tagged, "B")["count"], 2);
    assert_eq!(step(&tagged, "A")["count"], 1);
    let vip = segment(&tagged, "vip");
    assert_eq!(
        (&step(&vip, "A")["count"], &step(&vip, "B")["count"]),
        (&json!(1), &json!(1))
    );
    let smb = segment(&tagged, "smb");
    assert_eq!(
        (&step(&smb, "A")["count"], &step(&smb, "B")["count"]),
        (&json!(1), &json!(1))
    );
    close(&step(&smb, "B")["median"], day);
    // The running stays of open deals: d2 in B (west) only.
    assert_eq!(step(&west, "B")["open_count"], 1);
    assert_eq!(step(&east, "B")["open_count"], 0);
}

/// A bulk write (the demo-data load) drops the bulk tables' secondary indexes and builds
/// them at its end; when it stops before that, the next start builds them.
async fn indexes_set_aside_for_a_bulk_write_come_back_at_the_next_start(app: TestApp) {
    use stageflow::storage::{aggregates, write_tx, DbConn};
    let indexes = |app: &TestApp| {
        let query = match *app.state.pool.get().expect("connection") {
            DbConn::Pg(_) => "SELECT indexname AS v FROM pg_indexes WHERE tablename = 'stage_transitions'",
            DbConn::Sqlite(_) => {
                "SELECT name AS v FROM sqlite_master WHERE type = 'index' AND tbl_name = 'stage_transitions'"
            }
        };
        app.texts(query)
    };
    let before = indexes(&app);
    assert!(before.len() >= 3, "{before:?}");
    let mut conn = app.state.pool.get().expect("connection");
    write_tx(&mut conn, |c| {
        aggregates::set_indexes_aside(c, &["stage_transitions"])
    })
    .expect("set aside");
    drop(conn);
    let during = indexes(&app);
    assert!(
        during.len() < before.len(),
        "only the unique ones stay: {during:?}"
    );
    // The process stopped here; the next start catches up.
    let mut conn = app.state.pool.get().expect("connection");
    aggregates::catch_up(&mut conn).expect("catch up");
    drop(conn);
    assert_eq!(indexes(&app), before);
    assert_eq!(app.count("server_settings", "key = 'indexes_set_aside'"), 0);
}
