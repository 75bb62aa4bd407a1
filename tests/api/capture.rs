//! Lead capture: sources over the API and posts from forms and signed webhooks, with
//! their CORS, honeypot, timing, rate-limit, de-duplication and signature rules.

use serde_json::{json, Value};
use stageflow::domain::user::Role;
use stageflow::integrations::signing::capture_signature;

use crate::api_tests;
use crate::helpers::{id_of, TestApp};

const SITE: &str = "https://www.example.com";

async fn source(app: &TestApp, body: Value) -> Value {
    app.post("/api/v1/capture-sources")
        .admin()
        .json(body)
        .created()
        .await
        .body
}

async fn leads(app: &TestApp) -> Vec<Value> {
    app.get("/api/v1/leads?limit=500")
        .admin()
        .send_ok()
        .await
        .body["data"]
        .as_array()
        .unwrap()
        .clone()
}

fn form_source() -> Value {
    json!({
        "name": "官网预约演示",
        "kind": "form",
        "field_map": {"email": "your-email", "custom.budget": "budget"},
        "constants": {"tags": ["官网"]},
        "source_detail": "demo form",
        "allowed_origins": [SITE],
        "redirect_url": "https://www.example.com/thanks",
        "honeypot_field": "website",
        "min_submit_seconds": 3,
    })
}

async fn a_plain_html_form_posts_a_lead_and_is_redirected(app: TestApp) {
    let src = source(&app, form_source()).await;
    assert!(src["secret"].is_null(), "forms have no secret");
    let url = src["capture_url"].as_str().unwrap().to_owned();
    let shown = chrono::Utc::now().timestamp() - 20;
    let res = app
        .post(&url)
        .header("origin", SITE)
        .header("accept", "text/html,application/xhtml+xml")
        .raw(
            "application/x-www-form-urlencoded",
            format!("first_name=%E6%9D%8E&your-email=Li%40Example.com&company=%E5%8D%8E%E4%B8%9C%E5%88%B6%E9%80%A0&budget=50%E4%B8%87&website=&_ts={shown}"),
        )
        .expect(303)
        .await;
    assert_eq!(
        res.header("location"),
        Some("https://www.example.com/thanks")
    );
    assert_eq!(res.header("access-control-allow-origin"), Some(SITE));
    let all = leads(&app).await;
    assert_eq!(all.len(), 1);
    let lead = &all[0];
    assert_eq!(lead["email"], "li@example.com");
    assert_eq!(lead["first_name"], "李");
    assert_eq!(lead["company"], "华东制造");
    assert_eq!(lead["source"], "web_form");
    assert_eq!(lead["source_detail"], "demo form");
    assert_eq!(lead["tags"], json!(["官网"]));
    assert_eq!(lead["custom"], json!({"budget": "50万"}));

    // With fetch (multipart, no HTML wanted): 202 and the lead id; the same email
    // again updates that lead and logs the repeat.
    let body = format!(
        "--XyZ\r\nContent-Disposition: form-data; name=\"your-email\"\r\n\r\nli@example.com\r\n\
--XyZ\r\nContent-Disposition: form-data; name=\"_ts\"\r\n\r\n{shown}\r\n\
--XyZ\r\nContent-Disposition: form-data; name=\"job_title\"\r\n\r\n采购经理\r\n--XyZ--\r\n"
    );
    let again = app
        .post(&url)
        .header("origin", SITE)
        .raw("multipart/form-data; boundary=XyZ", body)
        .expect(202)
        .await;
    assert_eq!(again.body["lead_id"], lead["id"]);
    assert_eq!(again.body["status"], "updated");
    assert_eq!(leads(&app).await.len(), 1);
    let updated = app
        .get(&format!("/api/v1/leads/{}", id_of(lead)))
        .admin()
        .send_ok()
        .await;
    assert_eq!(updated.body["job_title"], "采购经理");
    assert_eq!(
        updated.body["company"], "华东制造",
        "fields not posted stay"
    );
    let notes = app
        .get(&format!("/api/v1/activities?lead_id={}", id_of(lead)))
        .admin()
        .send_ok()
        .await;
    assert_eq!(notes.body["data"].as_array().unwrap().len(), 1);
    assert!(notes.body["data"][0]["subject"]
        .as_str()
        .unwrap()
        .contains("官网预约演示"));
}

async fn origins_bots_and_floods_are_kept_out(app: TestApp) {
    let app = app
        .respawn_with(|s| s.capture_ip_per_minute = 3)
        .await
        .unwrap();
    let src = source(&app, form_source()).await;
    let url = src["capture_url"].as_str().unwrap().to_owned();
    // Preflight: the allowed origin gets CORS headers, another is refused.
    let ok = app
        .req(actix_web::http::Method::OPTIONS, &url)
        .header("origin", SITE)
        .header("access-control-request-method", "POST")
        .expect(204)
        .await;
    assert_eq!(ok.header("access-control-allow-origin"), Some(SITE));
    assert!(ok
        .header("access-control-allow-methods")
        .unwrap()
        .contains("POST"));
    let evil = app
        .req(actix_web::http::Method::OPTIONS, &url)
        .header("origin", "https://evil.example")
        .header("access-control-request-method", "POST")
        .send()
        .await;
    evil.problem(403, "forbidden");
    assert_eq!(evil.header("access-control-allow-origin"), None);
    let posted = app
        .post(&url)
        .header("origin", "https://evil.example")
        .raw(
            "application/x-www-form-urlencoded",
            "your-email=x%40evil.example",
        )
        .send()
        .await;
    posted.problem(403, "forbidden");
    // A filled honeypot and a form sent one second after it was shown look accepted
    // but store nothing.
    let now = chrono::Utc::now().timestamp();
    for body in [
        "your-email=bot%40spam.example&website=http%3A%2F%2Fspam".to_owned(),
        format!("your-email=fast%40spam.example&_ts={}", now - 1),
    ] {
        let res = app
            .post(&url)
            .header("origin", SITE)
            .raw("application/x-www-form-urlencoded", body)
            .expect(202)
            .await;
        assert!(res.body["lead_id"].is_string());
    }
    assert!(leads(&app).await.is_empty(), "nothing from bots");
    // Three posts per minute from one address: the fourth waits.
    let res = app
        .post(&url)
        .header("origin", SITE)
        .raw(
            "application/x-www-form-urlencoded",
            format!("your-email=slow%40ok.example&_ts={}", now - 60),
        )
        .expect(202)
        .await;
    assert_eq!(res.body["status"], "created");
    let limited = app
        .post(&url)
        .header("origin", SITE)
        .raw(
            "application/x-www-form-urlencoded",
            format!("your-email=more%40ok.example&_ts={}", now - 60),
        )
        .send()
        .await;
    limited.problem(429, "rate_limited");
    assert!(limited.header("retry-after").is_some());
    let other_ip = app
        .post(&url)
        .peer("203.0.113.9:5000")
        .header("origin", SITE)
        .raw(
            "application/x-www-form-urlencoded",
            format!("your-email=more%40ok.example&_ts={}", now - 60),
        )
        .expect(202)
        .await;
    assert_eq!(other_ip.body["status"], "created");
    let stored = leads(&app).await.len();
    assert_eq!(stored, 2, "the two real posts");
    // Without `_ts` a source that asks for a minimum time takes nothing; a repeated
    // honeypot field is still filled.
    for body in [
        "your-email=nots%40ok.example".to_owned(),
        format!(
            "your-email=twice%40ok.example&website=x&website=&_ts={}",
            now - 60
        ),
    ] {
        app.post(&url)
            .peer("203.0.113.12:5000")
            .raw("application/x-www-form-urlencoded", body)
            .expect(202)
            .await;
    }
    assert_eq!(leads(&app).await.len(), stored);
    // A percent-encoded path reaches the same handler, and the origin is still checked.
    let encoded = url.replace("/capture/", "/%63apture/");
    app.post(&encoded)
        .peer("203.0.113.13:5000")
        .header("origin", "https://evil.example")
        .raw(
            "application/x-www-form-urlencoded",
            format!("your-email=enc%40evil.example&_ts={}", now - 60),
        )
        .send()
        .await
        .problem(403, "forbidden");
    assert_eq!(leads(&app).await.len(), stored);
    // Bad values are refused like the API refuses them, naming the field.
    let bad = app
        .post(&url)
        .peer("203.0.113.10:5000")
        .raw(
            "application/x-www-form-urlencoded",
            format!("your-email=not-an-email&company=Acme&_ts={}", now - 60),
        )
        .send()
        .await;
    bad.problem(422, "validation_failed");
    assert_eq!(bad.error_fields(), ["email"]);
    let odd = app
        .post(&url)
        .peer("203.0.113.11:5000")
        .raw("text/plain", "hello")
        .send()
        .await;
    odd.problem(415, "unsupported_media_type");
    app.post("/api/v1/capture/cs_nope")
        .raw("application/x-www-form-urlencoded", "email=a%40b.cn")
        .send()
        .await
        .problem(404, "not_found");
}

async fn round_robin_shares_leads_among_the_team_reps(app: TestApp) {
    let team = app.team("华东销售", None).await;
    let mut reps = Vec::new();
    for i in 0..3 {
        reps.push(
            app.user(&format!("rep{i}@example.com"), Role::Rep, Some(&team))
                .await
                .0,
        );
    }
    let src = source(
        &app,
        json!({"name": "Ads", "kind": "form", "round_robin_team_id": team,
               "default_source": "ads", "rate_limit_per_minute": 1000}),
    )
    .await;
    let url = src["capture_url"].as_str().unwrap().to_owned();
    let mut owners = Vec::new();
    for i in 0..6 {
        let res = app
            .post(&url)
            .peer(&format!("198.51.100.{i}:4000"))
            .json(json!({"email": format!("buyer{i}@example.com")}))
            .expect(202)
            .await;
        let lead = app
            .get(&format!(
                "/api/v1/leads/{}",
                res.body["lead_id"].as_str().unwrap()
            ))
            .admin()
            .send_ok()
            .await;
        assert_eq!(lead.body["source"], "ads");
        owners.push(lead.body["owner_id"].as_str().unwrap().to_owned());
    }
    let expected: Vec<String> = reps.iter().chain(reps.iter()).cloned().collect();
    assert_eq!(owners, expected, "each rep in turn");
}

async fn concurrent_posts_share_owners_fairly_and_sources_have_a_budget(app: TestApp) {
    let team = app.team("华南销售", None).await;
    let mut reps = Vec::new();
    for i in 0..3 {
        reps.push(
            app.user(&format!("south{i}@example.com"), Role::Rep, Some(&team))
                .await
                .0,
        );
    }
    let src = source(
        &app,
        json!({"name": "Expo", "kind": "webhook", "round_robin_team_id": team,
               "rate_limit_per_minute": 9}),
    )
    .await;
    let secret = src["secret"].as_str().unwrap().to_owned();
    let url = src["capture_url"].as_str().unwrap().to_owned();
    let now = chrono::Utc::now().timestamp();
    let posts = (0..9).map(|i| {
        let body = format!(r#"{{"email":"expo{i}@example.com"}}"#);
        let sig = signed(&secret, now, &body);
        app.post(&url)
            .header("x-stageflow-signature", &sig)
            .raw("application/json", body)
            .expect(202)
    });
    let answers = futures_util::future::join_all(posts).await;
    let mut per_rep = std::collections::BTreeMap::<String, usize>::new();
    for a in &answers {
        let lead = app
            .get(&format!(
                "/api/v1/leads/{}",
                a.body["lead_id"].as_str().unwrap()
            ))
            .admin()
            .send_ok()
            .await;
        *per_rep
            .entry(lead.body["owner_id"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    assert_eq!(per_rep.len(), 3);
    assert!(
        per_rep.values().all(|n| *n == 3),
        "nine at once, three each: {per_rep:?}"
    );
    // The source's own budget (9 a minute) is spent, whoever posts.
    let body = r#"{"email":"late@example.com"}"#;
    app.post(&url)
        .peer("192.0.2.200:4000")
        .header("x-stageflow-signature", &signed(&secret, now, body))
        .raw("application/json", body)
        .send()
        .await
        .problem(429, "rate_limited");
}

fn signed(secret: &str, t: i64, body: &str) -> String {
    format!("t={t},v1={}", capture_signature(secret, t, body.as_bytes()))
}

async fn webhook_sources_take_only_fresh_valid_signatures(app: TestApp) {
    let src = source(
        &app,
        json!({"name": "Landing pages", "kind": "webhook",
               "field_map": {"email": "/contact/email", "company": "/contact/org", "external_id": "/id"},
               "dedupe_on": ["external_id", "email"]}),
    )
    .await;
    let secret = src["secret"].as_str().unwrap().to_owned();
    let url = src["capture_url"].as_str().unwrap().to_owned();
    let shown = app
        .get(&format!("/api/v1/capture-sources/{}", id_of(&src)))
        .admin()
        .send_ok()
        .await;
    assert!(
        shown.body.get("secret").is_none(),
        "the secret is shown once"
    );
    let body = r#"{"id":"lp-1","contact":{"email":"wang@example.cn","org":"远景医疗"}}"#;
    let now = chrono::Utc::now().timestamp();
    let post = |sig: Option<String>, body: &'static str| {
        let mut r = app.post(&url);
        if let Some(s) = sig {
            r = r.header("x-stageflow-signature", &s);
        }
        r.raw("application/json", body)
    };
    for (sig, why) in [
        (None, "missing"),
        (Some(signed(&secret, now - 301, body)), "stale"),
        (Some(signed("scs_wrong", now, body)), "wrong secret"),
        (Some(format!("t={now},v1=00ff")), "forged"),
        (Some("v1=abc".to_owned()), "malformed"),
    ] {
        let res = post(sig, body).send().await;
        res.problem(401, "invalid_signature");
        assert!(!res.body["detail"].as_str().unwrap().is_empty(), "{why}");
    }
    assert!(
        leads(&app).await.is_empty(),
        "nothing stored for refused posts"
    );
    let good = signed(&secret, now, body);
    let res = post(Some(good.clone()), body).expect(202).await;
    assert_eq!(res.body["status"], "created");
    let lead = app
        .get(&format!(
            "/api/v1/leads/{}",
            res.body["lead_id"].as_str().unwrap()
        ))
        .admin()
        .send_ok()
        .await;
    assert_eq!(lead.body["external_id"], "lp-1");
    assert_eq!(lead.body["company"], "远景医疗");
    assert_eq!(lead.body["source"], "api");
    // The same signed post again is a replay.
    post(Some(good), body)
        .send()
        .await
        .problem(401, "invalid_signature");
    // During a rotation both secrets verify; the new one is shown once.
    let rotated = app
        .post(&format!(
            "/api/v1/capture-sources/{}/rotate-secret",
            id_of(&src)
        ))
        .admin()
        .send_ok()
        .await;
    let new_secret = rotated.body["secret"].as_str().unwrap().to_owned();
    assert_ne!(new_secret, secret);
    let body2 = r#"{"id":"lp-1","contact":{"email":"wang@example.cn","org":"远景医疗集团"}}"#;
    let res = post(Some(signed(&secret, now + 1, body2)), body2)
        .expect(202)
        .await;
    assert_eq!(res.body["status"], "updated", "same external id: a repeat");
    let body3 = r#"{"id":"lp-2","contact":{"email":"zhao@example.cn"}}"#;
    post(Some(signed(&new_secret, now, body3)), body3)
        .expect(202)
        .await;
    assert_eq!(leads(&app).await.len(), 2);
}

async fn idempotency_keys_and_source_checks(app: TestApp) {
    let src = source(&app, json!({"name": "Chat", "kind": "form"})).await;
    let url = src["capture_url"].as_str().unwrap().to_owned();
    let first = app
        .post(&url)
        .header("idempotency-key", "chat-77")
        .json(json!({"phone": "13800000000"}))
        .expect(202)
        .await;
    let second = app
        .post(&url)
        .header("idempotency-key", "chat-77")
        .json(json!({"phone": "13800000000"}))
        .expect(202)
        .await;
    assert_eq!(first.body["lead_id"], second.body["lead_id"]);
    assert_eq!(leads(&app).await.len(), 1);

    app.post("/api/v1/capture-sources")
        .admin()
        .header("idempotency-key", "make-source-1")
        .json(json!({"name": "Keyed", "kind": "webhook"}))
        .send()
        .await
        .problem(400, "idempotency_key_not_supported");
    app.post(&format!(
        "/api/v1/capture-sources/{}/rotate-secret",
        id_of(&src)
    ))
    .admin()
    .header("idempotency-key", "rotate-1")
    .send()
    .await
    .problem(400, "idempotency_key_not_supported");
    let origins = app
        .patch(&format!("/api/v1/capture-sources/{}", id_of(&src)))
        .admin()
        .json(json!({"allowed_origins": ["HTTPS://WWW.Example.COM:443", "http://例子.测试:8080"]}))
        .send_ok()
        .await;
    assert_eq!(
        origins.body["allowed_origins"],
        json!([
            "https://www.example.com",
            "http://xn--fsqu00a.xn--0zwm56d:8080"
        ]),
        "stored as browsers send them"
    );
    let bad = app
        .post("/api/v1/capture-sources")
        .admin()
        .json(
            json!({"name": "x", "kind": "form", "field_map": {"score": "s"},
                     "allowed_origins": ["https://a.example/path"], "dedupe_on": ["name"],
                     "redirect_url": "javascript:alert(1)"}),
        )
        .send()
        .await;
    bad.problem(422, "validation_failed");
    let mut fields = bad.error_fields();
    fields.sort();
    assert_eq!(
        fields,
        [
            "allowed_origins[0]",
            "dedupe_on[0]",
            "field_map.score",
            "redirect_url"
        ]
    );
    // Admin only; a deactivated source stops taking posts.
    let (_, rep) = app.user("rep@example.com", Role::Rep, None).await;
    app.get("/api/v1/capture-sources")
        .token(&rep)
        .send()
        .await
        .problem(403, "forbidden");
    app.patch(&format!("/api/v1/capture-sources/{}", id_of(&src)))
        .admin()
        .json(json!({"active": false}))
        .send_ok()
        .await;
    app.post(&url)
        .json(json!({"email": "late@example.com"}))
        .send()
        .await
        .problem(404, "not_found");
}

/// Sources take the versioned writes every record takes: a change or a deletion based
/// on an older version is refused with the version stored, and a secret rotation is a
/// new version too.
async fn source_changes_are_versioned(app: TestApp) {
    let src = source(
        &app,
        json!({"name": "CRM 推送", "kind": "webhook", "field_map": {"email": "/email"}}),
    )
    .await;
    let path = format!("/api/v1/capture-sources/{}", id_of(&src));
    let renamed = app
        .patch(&path)
        .admin()
        .header("if-match", "\"1\"")
        .json(json!({"name": "CRM 推送（新）"}))
        .send_ok()
        .await;
    assert_eq!(renamed.header("etag"), Some("\"2\""));
    assert_eq!(renamed.body["name"], "CRM 推送（新）");
    assert_eq!(renamed.body["version"], 2);

    let stale = app
        .patch(&path)
        .admin()
        .header("if-match", "\"1\"")
        .json(json!({"name": "lost update"}))
        .send()
        .await;
    assert_eq!(stale.problem(412, "version_conflict")["current_version"], 2);

    app.post(&format!("{path}/rotate-secret"))
        .admin()
        .send_ok()
        .await;
    let after_rotation = app.get(&path).admin().send_ok().await;
    assert_eq!(after_rotation.header("etag"), Some("\"3\""));
    assert_eq!(after_rotation.body["name"], "CRM 推送（新）");
    app.delete_only_at_version(&path, 2, 3).await;
}

api_tests!(
    a_plain_html_form_posts_a_lead_and_is_redirected,
    source_changes_are_versioned,
    origins_bots_and_floods_are_kept_out,
    round_robin_shares_leads_among_the_team_reps,
    concurrent_posts_share_owners_fairly_and_sources_have_a_budget,
    webhook_sources_take_only_fresh_valid_signatures,
    idempotency_keys_and_source_checks,
);
