//! Regression tests for the security review: credentials resolved once and counted per
//! client IP when they do not hold, sign-in throttling per address, idempotency replays
//! that keep no secrets and need a live credential, security headers, token revocation,
//! SQLite in WAL mode, PostgreSQL over TLS and start-up errors that name their cause.

use actix_web::http::StatusCode;
use serde_json::json;
use stageflow::domain::user::Role;

use crate::api_tests;
use crate::helpers::{Backend, Res, TestApp, ADMIN_EMAIL, PASSWORD};
use crate::idempotency::post_lead;

api_tests!(
    made_up_credentials_share_the_client_ip_budget,
    a_spent_budget_says_so,
    one_address_cannot_lock_an_account_out_for_another,
    sign_in_is_throttled_per_address,
    secret_issuing_requests_refuse_idempotency_keys,
    replays_need_a_credential_that_still_holds,
    every_response_carries_security_headers,
    password_change_and_deactivation_revoke_earlier_tokens,
    a_write_succeeds_while_a_long_read_is_open,
);

fn ratelimit_field<'a>(res: &'a Res, name: &str) -> Option<&'a str> {
    res.header("ratelimit")?
        .split(';')
        .find_map(|part| part.strip_prefix(&format!("{name}=")))
}

async fn made_up_credentials_share_the_client_ip_budget(app: TestApp) {
    let Some(app) = app
        .respawn_with(|s| s.public_rate_limit_per_minute = 3)
        .await
    else {
        return;
    };
    let peer = "203.0.113.7:40000";
    // Every request brings a different made-up credential: none of them may open a
    // budget of its own.
    let forged = [
        "sfk_abcdefghij_made-up-secret-1",
        "sfk_bcdefghijk_made-up-secret-2",
        "not-even-a-jwt",
    ];
    for token in forged {
        let res = app
            .get("/api/v1/pipelines")
            .token(token)
            .peer(peer)
            .send()
            .await;
        res.problem(401, "unauthorized");
        assert_eq!(res.header("ratelimit-policy"), Some("\"ip\";q=3;w=60"));
    }
    let refused = app
        .get("/api/v1/pipelines")
        .token("sfk_cdefghijkl_made-up-secret-3")
        .peer(peer)
        .send()
        .await;
    refused.problem(429, "rate_limited");
    assert_eq!(ratelimit_field(&refused, "r"), Some("0"));
    assert_eq!(
        app.state.request_limiter.tracked_keys(),
        0,
        "made-up credentials must not create per-credential entries"
    );
    // A real credential from the same address still has its own budget.
    let ok = app.get("/api/v1/pipelines").admin().peer(peer).send().await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text);
    assert_eq!(
        ok.header("ratelimit-policy"),
        Some("\"credential\";q=1200;w=60")
    );
}

async fn sign_in(app: &TestApp, peer: &str, email: &str, password: &str) -> Res {
    app.post("/api/v1/auth/token")
        .peer(peer)
        .json(json!({"email": email, "password": password}))
        .send()
        .await
}

async fn a_spent_budget_says_so(app: TestApp) {
    let Some(app) = app.respawn_with(|s| s.login_attempts_per_minute = 2).await else {
        return;
    };
    let peer = "198.51.100.9:1234";
    for _ in 0..2 {
        sign_in(&app, peer, ADMIN_EMAIL, "wrong-password")
            .await
            .problem(401, "unauthorized");
    }
    let refused = sign_in(&app, peer, ADMIN_EMAIL, "wrong-password").await;
    refused.problem(429, "rate_limited");
    assert_eq!(
        refused.header("ratelimit-policy"),
        Some("\"sign-in\";q=2;w=60"),
        "the 429 shows the sign-in budget, not the request budget"
    );
    assert_eq!(ratelimit_field(&refused, "r"), Some("0"));
    assert!(refused.header("retry-after").is_some());
}

async fn one_address_cannot_lock_an_account_out_for_another(app: TestApp) {
    let Some(app) = app
        .respawn_with(|s| {
            s.login_attempts_per_minute = 3;
            s.login_ip_attempts_per_minute = 50;
        })
        .await
    else {
        return;
    };
    let attacker = "192.0.2.66:5000";
    let mut refused = 0;
    for _ in 0..10 {
        let res = sign_in(&app, attacker, ADMIN_EMAIL, "guess-guess-guess").await;
        if res.status == StatusCode::TOO_MANY_REQUESTS {
            refused += 1;
        } else {
            res.problem(401, "unauthorized");
        }
    }
    assert_eq!(
        refused, 7,
        "the attacker's address is throttled after 3 attempts"
    );
    // The real admin, from another address, signs in at once.
    let res = sign_in(&app, "192.0.2.10:6000", ADMIN_EMAIL, PASSWORD).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    assert!(res.body["access_token"].is_string());
}

async fn sign_in_is_throttled_per_address(app: TestApp) {
    let Some(app) = app
        .respawn_with(|s| {
            s.login_attempts_per_minute = 100;
            s.login_ip_attempts_per_minute = 4;
        })
        .await
    else {
        return;
    };
    // Spraying one password over many accounts from one address.
    let sprayer = "192.0.2.77:5000";
    let mut statuses = Vec::new();
    for i in 0..6 {
        let res = sign_in(
            &app,
            sprayer,
            &format!("user{i}@example.com"),
            "Summer2026!!",
        )
        .await;
        statuses.push(res.status.as_u16());
    }
    assert_eq!(statuses, [401, 401, 401, 401, 429, 429]);
    let other = sign_in(&app, "192.0.2.78:5000", ADMIN_EMAIL, PASSWORD).await;
    assert_eq!(other.status, StatusCode::OK, "{}", other.text);
}

async fn secret_issuing_requests_refuse_idempotency_keys(app: TestApp) {
    let res = app
        .post("/api/v1/api-keys")
        .admin()
        .header("Idempotency-Key", "key-create-1")
        .json(json!({"name": "sync", "scopes": ["leads:read"]}))
        .send()
        .await;
    let problem = res.problem(400, "idempotency_key_not_supported");
    assert_eq!(problem["errors"][0]["field"], "Idempotency-Key");
    assert_eq!(app.count("api_keys", ""), 0, "nothing was created");
    // Without the header the key is issued, and no answer holding it is kept.
    let created = app
        .post("/api/v1/api-keys")
        .admin()
        .json(json!({"name": "sync", "scopes": ["leads:read"]}))
        .send()
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    assert_eq!(app.count("idempotency_keys", "body LIKE '%sfk_%'"), 0);
    // The spec says so.
    let spec = app.get("/openapi.json").send().await;
    let op = &spec.body["paths"]["/api/v1/api-keys"]["post"];
    assert!(op["description"]
        .as_str()
        .unwrap_or("")
        .contains("idempotency_key_not_supported"));
    // Documented as a header no value satisfies, so typed clients cannot send it.
    let params = op["parameters"].as_array().cloned().unwrap_or_default();
    let key = params
        .iter()
        .find(|p| p["name"] == "Idempotency-Key")
        .expect("the header is documented");
    assert_eq!(key["schema"], serde_json::json!({"not": {}}));
    // Without credentials the answer is 401, whatever the header says.
    app.post("/api/v1/api-keys")
        .header("Idempotency-Key", "key-create-2")
        .json(json!({"name": "sync", "scopes": ["leads:read"]}))
        .send()
        .await
        .problem(401, "unauthorized");
}

async fn replays_need_a_credential_that_still_holds(app: TestApp) {
    let (rep, rep_token) = app.user("rep@example.com", Role::Rep, None).await;
    let lead = json!({"first_name": "Li", "company": "Acme", "email": "li@acme.example"});
    let first = post_lead(&app, &rep_token, "lead-1", lead.clone()).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.text);
    let res = app
        .patch(&format!("/api/v1/users/{rep}"))
        .admin()
        .json(json!({"active": false}))
        .send()
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    let replay = post_lead(&app, &rep_token, "lead-1", lead).await;
    replay.problem(401, "unauthorized");
    assert_eq!(replay.header("idempotent-replayed"), None);

    // A revoked API key gets no replay either.
    let key = app
        .post("/api/v1/api-keys")
        .admin()
        .json(json!({"name": "forms", "scopes": ["leads:write", "leads:read"]}))
        .send()
        .await;
    assert_eq!(key.status, StatusCode::CREATED, "{}", key.text);
    let secret = key.body["secret"].as_str().unwrap().to_owned();
    let key_id = key.body["id"].as_str().unwrap().to_owned();
    let lead = json!({"first_name": "Wang", "company": "Beta", "email": "wang@beta.example"});
    let first = post_lead(&app, &secret, "lead-2", lead.clone()).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.text);
    let again = post_lead(&app, &secret, "lead-2", lead.clone()).await;
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    let revoked = app
        .delete(&format!("/api/v1/api-keys/{key_id}"))
        .admin()
        .send()
        .await;
    assert_eq!(revoked.status, StatusCode::NO_CONTENT);
    let replay = post_lead(&app, &secret, "lead-2", lead).await;
    replay.problem(401, "unauthorized");
    assert_eq!(replay.header("idempotent-replayed"), None);
}

async fn every_response_carries_security_headers(app: TestApp) {
    let api = app.get("/api/v1/pipelines").admin().send().await;
    let problem = app.get("/api/v1/pipelines").send().await;
    let spec = app.get("/openapi.json").send().await;
    let docs = app.get("/docs/").send().await;
    assert_eq!(docs.status, StatusCode::OK);
    for res in [&api, &problem, &spec, &docs] {
        assert_eq!(res.header("x-content-type-options"), Some("nosniff"));
        assert_eq!(res.header("x-frame-options"), Some("DENY"));
        let csp = res.header("content-security-policy").unwrap_or("");
        assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
        assert_eq!(res.header("strict-transport-security"), None);
    }
    assert!(api
        .header("content-security-policy")
        .unwrap()
        .starts_with("default-src 'none'"));
    // Swagger UI runs only its own scripts, served from here (it works offline).
    let docs_csp = docs.header("content-security-policy").unwrap();
    assert!(docs_csp.contains("script-src 'self'"), "{docs_csp}");
    assert!(!docs_csp.contains("unsafe-eval"), "{docs_csp}");
    assert!(
        !docs.text.contains("<script>"),
        "an inline script would be blocked by the policy"
    );
    let pipeline = app.pipeline_from_template("standard").await;
    let svg = app
        .get(&format!(
            "/api/v1/reports/funnel.svg?pipeline_id={}",
            pipeline["id"].as_str().unwrap()
        ))
        .admin()
        .send()
        .await;
    assert_eq!(svg.status, StatusCode::OK, "{}", svg.text);
    let svg_csp = svg.header("content-security-policy").unwrap();
    assert!(
        svg_csp.starts_with("default-src 'none'") && !svg_csp.contains("script-src"),
        "{svg_csp}"
    );

    // HSTS only when configured.
    let Some(app) = app
        .respawn_with(|s| s.hsts = Some("max-age=31536000".into()))
        .await
    else {
        return;
    };
    let res = app.get("/health/live").send().await;
    assert_eq!(
        res.header("strict-transport-security"),
        Some("max-age=31536000")
    );
}

async fn me_status(app: &TestApp, token: &str) -> u16 {
    app.get("/api/v1/users/me")
        .token(token)
        .send()
        .await
        .status
        .as_u16()
}

async fn password_change_and_deactivation_revoke_earlier_tokens(app: TestApp) {
    let (rep, before) = app.user("rep@example.com", Role::Rep, None).await;
    let other_session = app.login("rep@example.com", PASSWORD).await;
    assert_eq!(me_status(&app, &before).await, 200);
    let res = app
        .patch(&format!("/api/v1/users/{rep}"))
        .admin()
        .json(json!({"password": "a-brand-new-password"}))
        .send()
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    assert_eq!(me_status(&app, &before).await, 401);
    assert_eq!(me_status(&app, &other_session).await, 401);
    let after = app.login("rep@example.com", "a-brand-new-password").await;
    assert_eq!(me_status(&app, &after).await, 200);
    // A change that is not about credentials keeps sessions.
    let res = app
        .patch(&format!("/api/v1/users/{rep}"))
        .admin()
        .json(json!({"name": "Rep Renamed"}))
        .send()
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    assert_eq!(me_status(&app, &after).await, 200);
    // Deactivation revokes too, and reactivating does not bring old tokens back.
    for active in [false, true] {
        let res = app
            .patch(&format!("/api/v1/users/{rep}"))
            .admin()
            .json(json!({"active": active}))
            .send()
            .await;
        assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    }
    assert_eq!(me_status(&app, &after).await, 401);
    let fresh = app.login("rep@example.com", "a-brand-new-password").await;
    assert_eq!(me_status(&app, &fresh).await, 200);
}

async fn a_write_succeeds_while_a_long_read_is_open(app: TestApp) {
    use diesel::RunQueryDsl;
    if app.backend == Backend::Sqlite {
        let mut conn = app.state.pool.get().unwrap();
        let stageflow::storage::DbConn::Sqlite(c) = &mut *conn else {
            panic!("expected SQLite");
        };
        let settings = stageflow::storage::sqlite_settings(c).unwrap();
        assert_eq!(settings.journal_mode, "wal");
        assert_eq!(settings.synchronous, 1, "NORMAL");
        assert_eq!(settings.foreign_keys, 1);
        assert_eq!(settings.busy_timeout, 10_000);
    }
    let _ = app
        .lead_as(&app.admin_token, json!({"company": "Before"}))
        .await;
    // A report-sized read holds its snapshot open…
    let mut reader = app.state.pool.get().unwrap();
    let begin = match app.backend {
        Backend::Sqlite => "BEGIN",
        Backend::Postgres => "BEGIN ISOLATION LEVEL REPEATABLE READ",
    };
    diesel::sql_query(begin).execute(&mut *reader).unwrap();
    diesel::sql_query("SELECT COUNT(*) FROM leads")
        .execute(&mut *reader)
        .unwrap();
    // …while a writer commits.
    let res = app
        .post("/api/v1/leads")
        .admin()
        .json(json!({"company": "During"}))
        .send()
        .await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.text);
    diesel::sql_query("COMMIT").execute(&mut *reader).unwrap();
    assert_eq!(app.count("leads", ""), 2);
}

/// PostgreSQL closes every connection of the service (a restart, a proxy's idle
/// timeout). A request that follows within the probe-free window after the last use
/// meets the dead connection on its credential read, which runs again on a fresh
/// connection: the client sees nothing. After an idle pause the pooled connections are
/// probed before use: the dead ones are replaced and every request is answered.
#[actix_web::test]
async fn closed_database_connections_are_replaced() {
    use diesel::{Connection, RunQueryDsl};
    let Some(app) = TestApp::spawn(Backend::Postgres).await else {
        return;
    };
    let close_all = || {
        let url = app.state.settings.database_url.clone();
        let mut conn = diesel::PgConnection::establish(&url).expect("connect");
        let closed = diesel::sql_query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = current_database() AND pid <> pg_backend_pid()",
        )
        .execute(&mut conn)
        .expect("terminate");
        assert!(closed > 0, "no connection of the service was open");
        // A terminated backend exits asynchronously.
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    let me = || app.get("/api/v1/users/me").admin();
    let pipeline = app.pipeline_from_template("standard").await["id"].clone();

    me().send_ok().await;
    close_all();
    me().send_ok().await;
    let deal = app
        .post("/api/v1/opportunities")
        .admin()
        .json(serde_json::json!({"name": "After the restart", "pipeline_id": pipeline}))
        .created()
        .await;
    close_all();
    app.get(&format!(
        "/api/v1/opportunities/{}",
        deal.body["id"].as_str().unwrap()
    ))
    .admin()
    .send_ok()
    .await;

    me().send_ok().await;
    close_all();
    tokio::time::sleep(stageflow::storage::checkout::ALIVE_WITHOUT_PROBE * 2).await;
    for _ in 0..8 {
        me().send_ok().await;
    }
}

/// `sslmode=require` and other libpq parameters work (the local server has a
/// self-signed certificate, which `require` accepts and `verify-full` would not).
#[actix_web::test]
async fn postgres_connects_over_tls_with_url_parameters() {
    let Some(app) = TestApp::spawn_with(Backend::Postgres, |s| {
        let sep = if s.database_url.contains('?') {
            '&'
        } else {
            '?'
        };
        s.database_url.push_str(&format!(
            "{sep}sslmode=require&application_name=stageflow-tls"
        ));
    })
    .await
    else {
        return;
    };
    assert_eq!(
        app.texts("SELECT CAST(ssl AS TEXT) AS v FROM pg_stat_ssl WHERE pid = pg_backend_pid()"),
        ["true"]
    );
    assert_eq!(
        app.texts("SELECT current_setting('application_name') AS v"),
        ["stageflow-tls"]
    );
    let res = app.get("/health/ready").send().await;
    assert_eq!(res.status, StatusCode::OK);
}

/// A server that refuses connections, a bad URL and a missing root certificate each
/// fail start-up with the driver's own reason, not a generic message.
#[test]
fn connection_failures_name_their_cause() {
    let cases = [
        (
            "postgres://postgres@127.0.0.1:1/none",
            "Connection refused",
        ),
        (
            "postgres://postgres@127.0.0.1:notaport/none",
            "invalid integer value",
        ),
        (
            "postgres://postgres@127.0.0.1:5432/postgres?sslmode=verify-full&sslrootcert=/nonexistent/root.crt",
            "root certificate file",
        ),
    ];
    for (url, cause) in cases {
        let err = stageflow::storage::connect(url, 1)
            .err()
            .map(|e| stageflow::startup::error_chain(&e))
            .unwrap_or_else(|| panic!("{url} connected"));
        assert!(err.contains(cause), "{url}: {err}");
        assert!(err.contains("PostgreSQL"), "{url}: {err}");
        assert!(!err.contains("multiconnection"), "{url}: {err}");
    }
}
