//! Outbound webhooks end to end: subscriptions over the API, events written in the
//! transaction of each change, delivered by the worker to a real local receiver, whose
//! signatures are checked by an independent implementation.

use std::time::Duration;

use serde_json::{json, Value};
use stageflow::config::Settings;
use stageflow::integrations::delivery::{self, Deliverer};
use stageflow::storage::webhooks as outbox;

use crate::api_tests;
use crate::helpers::{id_of, stage_id, TestApp};
use crate::receiver::{verify, Answer, Receiver};

/// Deliveries to 127.0.0.1 allowed, quick retries, a short timeout.
fn local(s: &mut Settings) {
    s.webhook_allowed_networks = "127.0.0.0/8".into();
    s.webhook_retry_base_ms = 20;
    s.webhook_timeout_ms = 500;
}

async fn local_app(app: TestApp) -> TestApp {
    app.respawn_with(local).await.expect("app")
}

fn deliverer(app: &TestApp) -> Deliverer {
    Deliverer::new(&app.state.settings).expect("deliverer")
}

/// Runs delivery rounds until nothing is pending (waiting out retry delays), at most
/// `rounds` times.
async fn deliver_all(app: &TestApp, d: &Deliverer, rounds: usize) {
    for _ in 0..rounds {
        delivery::run_once(&app.state.pool, app.state.backend, d)
            .await
            .expect("delivery round");
        if pending(app) == 0 {
            return;
        }
        actix_web::rt::time::sleep(Duration::from_millis(30)).await;
    }
}

fn pending(app: &TestApp) -> i64 {
    let mut conn = app.state.pool.get().unwrap();
    outbox::pending_count(&mut conn).unwrap()
}

async fn subscribe(app: &TestApp, url: &str, events: &[&str], filter: Value) -> (String, String) {
    let res = app
        .post("/api/v1/webhooks")
        .admin()
        .json(json!({"url": url, "events": events, "filter": filter}))
        .created()
        .await;
    let secret = res.body["secret"]
        .as_str()
        .expect("secret shown once")
        .to_owned();
    assert!(secret.starts_with("whsec_"));
    (id_of(&res.body), secret)
}

async fn deals_are_announced_signed_in_order_with_previous_values(app: TestApp) {
    let app = local_app(app).await;
    let rx = Receiver::start().await;
    let (sub, secret) = subscribe(
        &app,
        &rx.url,
        &[
            "opportunity.created",
            "opportunity.updated",
            "opportunity.stage_changed",
            "opportunity.won",
        ],
        json!({}),
    )
    .await;
    let listed = app
        .get(&format!("/api/v1/webhooks/{sub}"))
        .admin()
        .send_ok()
        .await;
    assert!(
        listed.body.get("secret").is_none(),
        "the secret is shown once only"
    );

    let p = app.pipeline().plain().create().await;
    let deal = app.deal(&p).amount("100").create().await;
    deal.move_to("B").await;
    deal.patch(json!({"amount": "250.00"})).await;
    deal.win().await;
    deliver_all(&app, &deliverer(&app), 20).await;

    assert_eq!(
        rx.types(),
        [
            "opportunity.created",
            "opportunity.stage_changed",
            "opportunity.updated",
            "opportunity.stage_changed",
            "opportunity.won"
        ]
    );
    let got = rx.received();
    for r in &got {
        assert!(verify(&secret, r), "signature of {}", r.body);
        let body = r.json();
        assert_eq!(body["id"], r.id.as_str(), "webhook-id is the event id");
        assert_eq!(body["data"]["id"], deal.id.as_str());
        assert!(verify(&secret, r));
    }
    let moved = got[1].json();
    assert_eq!(moved["data"]["stage_id"], stage_id(&p, "B"));
    assert_eq!(moved["previous"]["stage_id"], stage_id(&p, "A"));
    let updated = got[2].json();
    assert_eq!(updated["data"]["amount"], "250.00");
    assert_eq!(updated["previous"], json!({"amount": "100.00"}));
    assert_eq!(got[4].json()["data"]["status"], "won");
    assert_eq!(pending(&app), 0);
    // The log keeps ended deliveries until they are 30 days old; then they go, with
    // events nothing refers to.
    {
        let mut conn = app.state.pool.get().unwrap();
        let now = stageflow::storage::now();
        assert_eq!(
            outbox::purge(&mut conn, now - chrono::Duration::days(30)).unwrap(),
            0
        );
        assert_eq!(
            outbox::purge(&mut conn, now + chrono::Duration::seconds(1)).unwrap(),
            5
        );
    }
    // Delivered is delivered: another round sends nothing again.
    delivery::run_once(&app.state.pool, app.state.backend, &deliverer(&app))
        .await
        .unwrap();
    assert_eq!(rx.received().len(), 5);
    let log = app
        .get(&format!("/api/v1/webhooks/{sub}/deliveries"))
        .admin()
        .send_ok()
        .await;
    assert_eq!(log.body["data"], json!([]), "purged");
}

async fn a_refused_change_announces_nothing(app: TestApp) {
    let app = local_app(app).await;
    let rx = Receiver::start().await;
    subscribe(
        &app,
        &rx.url,
        &["opportunity.stage_changed", "opportunity.updated"],
        json!({}),
    )
    .await;
    let p = app.gated_pipeline().await;
    let deal = app.deal(&p).create().await;
    // Propose requires an amount and a close date: the move rolls back, and with it
    // the event it would have written.
    app.post(&format!("{}/move", deal.path()))
        .admin()
        .json(json!({"stage_id": stage_id(&p, "Propose")}))
        .send()
        .await
        .problem(422, "stage_requirements_unmet");
    assert_eq!(pending(&app), 0);
    deliver_all(&app, &deliverer(&app), 3).await;
    assert!(rx.received().is_empty());
}

async fn failures_are_retried_until_delivered_with_a_log(app: TestApp) {
    let app = local_app(app).await;
    let rx = Receiver::start().await;
    let (sub, secret) = subscribe(&app, &rx.url, &["lead.created"], json!({})).await;
    rx.script(&[
        Answer::Status(500),
        Answer::Slow(Duration::from_millis(1500)),
    ]);
    app.lead().company("Retry Ltd").create().await;
    deliver_all(&app, &deliverer(&app), 100).await;

    let got = rx.received();
    assert_eq!(got.len(), 3, "a 500, a timeout, then delivered");
    assert!(got.iter().all(|r| r.id == got[0].id), "one event, retried");
    assert!(got.iter().all(|r| verify(&secret, r)));
    let log = app
        .get(&format!("/api/v1/webhooks/{sub}/deliveries"))
        .admin()
        .send_ok()
        .await;
    let d = &log.body["data"][0];
    assert_eq!(d["status"], "delivered");
    assert_eq!(d["event_type"], "lead.created");
    assert_eq!(d["log"].as_array().unwrap().len(), 3);
    assert_eq!(d["log"][0]["response_status"], 500);
    assert!(d["log"][0]["error"].as_str().unwrap().contains("HTTP 500"));
    assert_eq!(d["log"][1]["response_status"], Value::Null);
    assert!(
        d["log"][1]["error"].as_str().unwrap().contains("timed out"),
        "{d}"
    );
    assert_eq!(d["log"][2]["response_status"], 204);
    let failed = app
        .get(&format!("/api/v1/webhooks/{sub}/deliveries?status=failed"))
        .admin()
        .send_ok()
        .await;
    assert_eq!(failed.body["data"], json!([]));
}

async fn gone_disables_and_exhausted_retries_fail(app: TestApp) {
    let app = app
        .respawn_with(|s| {
            local(s);
            s.webhook_retry_window_secs = 0;
        })
        .await
        .unwrap();
    let rx = Receiver::start().await;
    let (sub, _) = subscribe(&app, &rx.url, &["lead.created"], json!({})).await;
    rx.script(&[Answer::Status(503), Answer::Status(410)]);
    app.lead().company("First").create().await;
    deliver_all(&app, &deliverer(&app), 5).await;
    let log = app
        .get(&format!("/api/v1/webhooks/{sub}/deliveries"))
        .admin()
        .send_ok()
        .await;
    assert_eq!(
        log.body["data"][0]["status"], "failed",
        "no retry window left"
    );
    // Redelivery queues it again; the receiver now answers 410 Gone.
    let id = log.body["data"][0]["id"].as_str().unwrap().to_owned();
    let res = app
        .post(&format!("/api/v1/webhooks/deliveries/{id}/redeliver"))
        .admin()
        .expect(202)
        .await;
    assert_eq!(res.body["status"], "pending");
    deliver_all(&app, &deliverer(&app), 5).await;
    let sub_now = app
        .get(&format!("/api/v1/webhooks/{sub}"))
        .admin()
        .send_ok()
        .await;
    assert_eq!(sub_now.body["active"], false);
    assert!(sub_now.body["disabled_reason"]
        .as_str()
        .unwrap()
        .contains("410"));
    // A disabled subscription gets nothing more until it is enabled again.
    app.lead().company("Second").create().await;
    assert_eq!(
        pending(&app),
        0,
        "inactive subscriptions are not written to"
    );
    app.patch(&format!("/api/v1/webhooks/{sub}"))
        .admin()
        .json(json!({"active": true}))
        .send_ok()
        .await;
    app.lead().company("Third").create().await;
    deliver_all(&app, &deliverer(&app), 5).await;
    assert_eq!(rx.received().len(), 3);
    assert_eq!(rx.received()[2].json()["data"]["company"], "Third");
}

async fn targets_inside_the_network_are_refused(app: TestApp) {
    for (url, code) in [
        ("http://127.0.0.1:9/hook", "forbidden_target"),
        ("http://localhost:9/hook", "forbidden_target"),
        (
            "http://169.254.169.254/latest/meta-data",
            "forbidden_target",
        ),
        ("http://[::1]/x", "forbidden_target"),
        ("http://10.0.0.8/x", "forbidden_target"),
        ("ftp://example.com/x", "unsupported_scheme"),
        ("not a url", "invalid_url"),
        ("http://nonexistent.invalid/x", "unresolvable_host"),
    ] {
        let res = app
            .post("/api/v1/webhooks")
            .admin()
            .json(json!({"url": url, "events": ["lead.created"]}))
            .send()
            .await;
        res.problem(422, "validation_failed");
        assert_eq!(res.body["errors"][0]["field"], "url", "{url}");
        assert_eq!(res.body["errors"][0]["code"], code, "{url}");
    }
    // Allowed when saved, refused at delivery once the operator's allowance is gone:
    // every delivery checks the address again.
    let app = local_app(app).await;
    let rx = Receiver::start().await;
    subscribe(&app, &rx.url, &["lead.created"], json!({})).await;
    app.lead().company("Guarded").create().await;
    let strict = Deliverer::new(&Settings {
        webhook_allowed_networks: String::new(),
        ..(*app.state.settings).clone()
    })
    .unwrap();
    delivery::run_once(&app.state.pool, app.state.backend, &strict)
        .await
        .unwrap();
    assert!(
        rx.received().is_empty(),
        "nothing reached the loopback receiver"
    );
    assert_eq!(pending(&app), 1, "the delivery waits for a retry");
}

async fn redirects_are_not_followed(app: TestApp) {
    let app = local_app(app).await;
    let rx = Receiver::start().await;
    let elsewhere = Receiver::start().await;
    let (sub, _) = subscribe(&app, &rx.url, &["lead.created"], json!({})).await;
    let to: &'static str = Box::leak(elsewhere.url.clone().into_boxed_str());
    rx.script(&[Answer::Redirect(to)]);
    app.lead().company("Redirected").create().await;
    delivery::run_once(&app.state.pool, app.state.backend, &deliverer(&app))
        .await
        .unwrap();
    assert!(
        elsewhere.received().is_empty(),
        "the redirect was not followed"
    );
    let log = app
        .get(&format!("/api/v1/webhooks/{sub}/deliveries"))
        .admin()
        .send_ok()
        .await;
    let d = &log.body["data"][0];
    assert_eq!(
        d["status"], "pending",
        "a redirect is a failed attempt, retried"
    );
    assert_eq!(d["log"][0]["response_status"], 307);
}

async fn two_workers_never_send_one_event_twice(app: TestApp) {
    let app = local_app(app).await;
    let rx = Receiver::start().await;
    rx.delay_all(Duration::from_millis(20));
    subscribe(&app, &rx.url, &["lead.created"], json!({})).await;
    for i in 0..40 {
        app.lead().company(&format!("Lead {i}")).create().await;
    }
    let (a, b) = (deliverer(&app), deliverer(&app));
    for _ in 0..20 {
        let (x, y) = futures_util::future::join(
            delivery::run_once(&app.state.pool, app.state.backend, &a),
            delivery::run_once(&app.state.pool, app.state.backend, &b),
        )
        .await;
        x.unwrap();
        y.unwrap();
        if pending(&app) == 0 {
            break;
        }
    }
    let mut ids: Vec<String> = rx.received().iter().map(|r| r.id.clone()).collect();
    assert_eq!(ids.len(), 40);
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 40, "each event exactly once");
}

async fn pending_events_survive_a_worker_that_stopped(app: TestApp) {
    let app = local_app(app).await;
    let rx = Receiver::start().await;
    subscribe(&app, &rx.url, &["lead.created", "lead.updated"], json!({})).await;
    let lead = app.lead().company("Before").create().await;
    app.patch(&format!("/api/v1/leads/{}", id_of(&lead)))
        .admin()
        .json(json!({"company": "After"}))
        .send_ok()
        .await;
    // A worker claims the first event and dies before sending: its short lease runs
    // out and another worker (another process, after a restart) delivers everything.
    {
        let mut conn = app.state.pool.get().unwrap();
        let claimed = outbox::claim(
            &mut conn,
            app.state.backend,
            stageflow::storage::now(),
            chrono::Duration::milliseconds(1),
            10,
        )
        .unwrap();
        assert_eq!(
            claimed.len(),
            1,
            "only the head of the lead's events is claimable"
        );
    }
    actix_web::rt::time::sleep(Duration::from_millis(10)).await;
    let restarted = stageflow::startup::build_state((*app.state.settings).clone()).unwrap();
    let d = Deliverer::new(&restarted.settings).unwrap();
    for _ in 0..5 {
        delivery::run_once(&restarted.pool, restarted.backend, &d)
            .await
            .unwrap();
    }
    assert_eq!(rx.types(), ["lead.created", "lead.updated"]);
    assert_eq!(
        rx.received()[1].json()["previous"],
        json!({"company": "Before"})
    );
}

async fn filters_pings_and_lead_events(app: TestApp) {
    let app = local_app(app).await;
    let rx = Receiver::start().await;
    let p = app.pipeline().plain().create().await;
    let (sub, secret) = subscribe(
        &app,
        &rx.url,
        &[
            "opportunity.stage_changed",
            "lead.converted",
            "activity.created",
        ],
        json!({"pipeline_id": p["id"], "to_stage_id": stage_id(&p, "C")}),
    )
    .await;
    let deal = app.deal(&p).create().await;
    deal.move_to("B").await;
    deal.move_to("C").await;
    app.post("/api/v1/activities")
        .admin()
        .json(json!({"type": "call", "subject": "called", "opportunity_id": deal.id}))
        .created()
        .await;
    deliver_all(&app, &deliverer(&app), 10).await;
    assert_eq!(
        rx.types(),
        ["opportunity.stage_changed", "activity.created"]
    );
    assert_eq!(
        rx.received()[0].json()["data"]["stage_id"],
        stage_id(&p, "C")
    );

    let ping = app
        .post(&format!("/api/v1/webhooks/{sub}/test"))
        .admin()
        .expect(202)
        .await;
    assert_eq!(ping.body["event_type"], "webhook.ping");
    deliver_all(&app, &deliverer(&app), 10).await;
    let last = rx.received().pop().unwrap();
    assert_eq!(last.event_type(), "webhook.ping");
    assert!(verify(&secret, &last));

    app.post("/api/v1/webhooks")
        .admin()
        .header("idempotency-key", "sub-1")
        .json(json!({"url": rx.url, "events": ["lead.created"]}))
        .send()
        .await
        .problem(400, "idempotency_key_not_supported");
    // An admin's API key with webhooks:manage may manage them; without it, not.
    let key = app.api_key(json!(["webhooks:manage"])).await;
    app.get("/api/v1/webhooks").token(&key).send_ok().await;
    let reader = app.api_key(json!(["leads:read"])).await;
    app.get("/api/v1/webhooks")
        .token(&reader)
        .send()
        .await
        .problem(403, "forbidden");
    let bad = app
        .post("/api/v1/webhooks")
        .admin()
        .json(json!({"url": rx.url, "events": ["lead.created"], "filter": {"pipeline_id": "nope"}}))
        .send()
        .await;
    bad.problem(422, "validation_failed");
    assert_eq!(bad.error_fields(), ["filter.pipeline_id"]);
    let unknown = app
        .post("/api/v1/webhooks")
        .admin()
        .json(json!({"url": rx.url, "events": ["lead.exploded"]}))
        .send()
        .await;
    assert_eq!(unknown.status.as_u16(), 422, "{}", unknown.text);
}

async fn lead_events_follow_conversion(app: TestApp) {
    let app = local_app(app).await;
    let rx = Receiver::start().await;
    subscribe(
        &app,
        &rx.url,
        &[
            "lead.created",
            "lead.updated",
            "lead.converted",
            "opportunity.created",
        ],
        json!({}),
    )
    .await;
    let p = app.pipeline().plain().create().await;
    let lead = app.lead().company("Convert Co").create().await;
    app.post(&format!("/api/v1/leads/{}/convert", id_of(&lead)))
        .admin()
        .json(json!({"pipeline_id": p["id"], "name": "Convert Co deal"}))
        .created()
        .await;
    deliver_all(&app, &deliverer(&app), 10).await;
    assert_eq!(
        rx.types(),
        ["lead.created", "opportunity.created", "lead.converted"]
    );
    let converted = rx.received()[2].json();
    assert_eq!(converted["data"]["status"], "converted");
    assert_eq!(converted["previous"]["status"], "new");
}

async fn a_stall_is_announced_once_per_stay(app: TestApp) {
    let app = local_app(app).await;
    let rx = Receiver::start().await;
    subscribe(&app, &rx.url, &["opportunity.stalled"], json!({})).await;
    let p = app.pipeline().plain().create().await;
    let now = chrono::Utc::now().naive_utc();
    app.state.clock.set(now - chrono::Duration::days(30));
    let deal = app.deal(&p).create().await;
    let scan = || delivery::scan_stalls(&app.state.pool, app.state.backend);
    assert_eq!(scan().await.unwrap(), 1, "A stalls after 7 days");
    assert_eq!(scan().await.unwrap(), 0, "once per stay");
    // Moved (20 days ago) into B, which has no threshold, and back into A 10 days ago:
    // a new stay in A that has stalled again.
    app.state.clock.set(now - chrono::Duration::days(20));
    deal.move_to("B").await;
    assert_eq!(scan().await.unwrap(), 0);
    app.state.clock.set(now - chrono::Duration::days(10));
    deal.move_to("A").await;
    assert_eq!(scan().await.unwrap(), 1);
    deliver_all(&app, &deliverer(&app), 10).await;
    assert_eq!(rx.types(), ["opportunity.stalled", "opportunity.stalled"]);
}

/// A subscription change holds only at the version it was based on, also when its URL
/// is checked before the write; a deletion too.
async fn subscription_changes_are_versioned(app: TestApp) {
    let app = local_app(app).await;
    let rx = Receiver::start().await;
    let (sub, _) = subscribe(&app, &rx.url, &["lead.created"], json!({})).await;
    let path = format!("/api/v1/webhooks/{sub}");
    let changed = app
        .patch(&path)
        .admin()
        .header("if-match", "\"1\"")
        .json(json!({"events": ["lead.created", "lead.converted"], "description": "市场部"}))
        .send_ok()
        .await;
    assert_eq!(changed.header("etag"), Some("\"2\""));
    assert_eq!(
        changed.body["events"],
        json!(["lead.converted", "lead.created"])
    );
    let stale = app
        .patch(&path)
        .admin()
        .header("if-match", "\"1\"")
        .json(json!({"description": "lost update"}))
        .send()
        .await;
    assert_eq!(stale.problem(412, "version_conflict")["current_version"], 2);
    assert_eq!(
        app.get(&path).admin().send_ok().await.body["description"],
        "市场部"
    );
    app.delete_only_at_version(&path, 1, 2).await;
}

api_tests!(
    deals_are_announced_signed_in_order_with_previous_values,
    subscription_changes_are_versioned,
    a_refused_change_announces_nothing,
    failures_are_retried_until_delivered_with_a_log,
    gone_disables_and_exhausted_retries_fail,
    targets_inside_the_network_are_refused,
    redirects_are_not_followed,
    two_workers_never_send_one_event_twice,
    pending_events_survive_a_worker_that_stopped,
    filters_pings_and_lead_events,
    lead_events_follow_conversion,
    a_stall_is_announced_once_per_stay,
);
