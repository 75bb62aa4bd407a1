use actix_web::http::StatusCode;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{json, Value};
use stageflow::domain::user::Role;

use crate::api_tests;
use crate::helpers::{TestApp, ADMIN_EMAIL, PASSWORD};

api_tests!(
    a_token_identifies_the_user,
    wrong_password_and_unknown_email_get_the_same_401,
    requests_without_a_token_are_401,
    expired_tokens_are_refused,
    tokens_for_another_audience_or_issuer_are_refused,
    unsigned_alg_none_tokens_are_refused,
    tokens_signed_with_another_secret_are_refused,
    a_deactivated_users_token_stops_working,
    api_keys_are_shown_once_scoped_and_revocable,
    only_admins_manage_api_keys,
);

fn claims_of(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("three parts");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("base64")).expect("json")
}

fn good_claims(app: &TestApp, sub: &str) -> Value {
    let now = chrono::Utc::now().timestamp();
    let s = &app.state.settings;
    json!({"sub": sub, "role": "admin", "iat": now, "nbf": now, "exp": now + 600,
           "iss": s.jwt_issuer, "aud": s.jwt_audience})
}

async fn me_status(app: &TestApp, token: &str) -> u16 {
    app.get("/api/v1/users/me")
        .token(token)
        .send()
        .await
        .status
        .as_u16()
}

async fn admin_id(app: &TestApp) -> String {
    let me = app.get("/api/v1/users/me").admin().send().await;
    me.body["id"].as_str().unwrap().to_owned()
}

async fn a_token_identifies_the_user(app: TestApp) {
    let res = app
        .post("/api/v1/auth/token")
        .json(json!({"email": "Admin@Example.com", "password": PASSWORD}))
        .send()
        .await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(res.body["token_type"], "Bearer");
    assert_eq!(res.body["expires_in"], 3600);
    let token = res.body["access_token"].as_str().unwrap();
    let claims = claims_of(token);
    for claim in ["sub", "role", "iat", "nbf", "exp", "iss", "aud"] {
        assert!(claims.get(claim).is_some(), "claim {claim} missing");
    }
    assert_eq!(claims["role"], "admin");
    let me = app.get("/api/v1/users/me").token(token).send().await;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(me.body["email"], ADMIN_EMAIL);
    assert_eq!(me.body["id"], claims["sub"]);
    assert!(me.body.get("password_hash").is_none() && me.body.get("password").is_none());
    assert_eq!(me.header("cache-control"), Some("no-store"));
}

async fn wrong_password_and_unknown_email_get_the_same_401(app: TestApp) {
    let wrong = app
        .post("/api/v1/auth/token")
        .json(json!({"email": ADMIN_EMAIL, "password": "not-the-password"}))
        .send()
        .await;
    let unknown = app
        .post("/api/v1/auth/token")
        .json(json!({"email": "nobody@example.com", "password": "not-the-password"}))
        .send()
        .await;
    wrong.problem(401, "unauthorized");
    unknown.problem(401, "unauthorized");
    assert_eq!(wrong.body["detail"], unknown.body["detail"]);
    let missing = app
        .post("/api/v1/auth/token")
        .json(json!({"email": ADMIN_EMAIL}))
        .send()
        .await;
    missing.problem(422, "validation_failed");
    assert_eq!(missing.error_fields(), ["password"]);
}

async fn requests_without_a_token_are_401(app: TestApp) {
    let res = app.get("/api/v1/pipelines").send().await;
    res.problem(401, "unauthorized");
    assert_eq!(res.header("www-authenticate"), Some("Bearer"));
    let res = app
        .get("/api/v1/pipelines")
        .header("authorization", "Basic YTpi")
        .send()
        .await;
    res.problem(401, "unauthorized");
    let res = app.get("/api/v1/pipelines").token("not.a.jwt").send().await;
    res.problem(401, "unauthorized");
}

async fn expired_tokens_are_refused(app: TestApp) {
    let id = admin_id(&app).await;
    let mut claims = good_claims(&app, &id);
    assert_eq!(
        me_status(&app, &app.state.jwt.sign_raw(&claims).unwrap()).await,
        200
    );
    let past = chrono::Utc::now().timestamp() - 3600;
    claims["exp"] = json!(past);
    claims["iat"] = json!(past - 60);
    claims["nbf"] = json!(past - 60);
    assert_eq!(
        me_status(&app, &app.state.jwt.sign_raw(&claims).unwrap()).await,
        401
    );
    let mut future = good_claims(&app, &id);
    future["nbf"] = json!(chrono::Utc::now().timestamp() + 3600);
    assert_eq!(
        me_status(&app, &app.state.jwt.sign_raw(&future).unwrap()).await,
        401
    );
}

async fn tokens_for_another_audience_or_issuer_are_refused(app: TestApp) {
    let id = admin_id(&app).await;
    for (claim, value) in [("aud", "someone-else"), ("iss", "another-issuer")] {
        let mut claims = good_claims(&app, &id);
        claims[claim] = json!(value);
        assert_eq!(
            me_status(&app, &app.state.jwt.sign_raw(&claims).unwrap()).await,
            401,
            "{claim}"
        );
    }
    for claim in ["aud", "exp", "iss", "sub"] {
        let mut claims = good_claims(&app, &id);
        claims.as_object_mut().unwrap().remove(claim);
        assert_eq!(
            me_status(&app, &app.state.jwt.sign_raw(&claims).unwrap()).await,
            401,
            "token without {claim} accepted"
        );
    }
}

async fn unsigned_alg_none_tokens_are_refused(app: TestApp) {
    let id = admin_id(&app).await;
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(good_claims(&app, &id).to_string());
    for token in [
        format!("{header}.{payload}."),
        format!("{header}.{payload}"),
    ] {
        assert_eq!(me_status(&app, &token).await, 401);
    }
    // HS256 header but the signature stripped.
    let real = app.admin_token.clone();
    let stripped: Vec<&str> = real.split('.').take(2).collect();
    assert_eq!(
        me_status(&app, &format!("{}.", stripped.join("."))).await,
        401
    );
}

async fn tokens_signed_with_another_secret_are_refused(app: TestApp) {
    let id = admin_id(&app).await;
    let other =
        stageflow::auth::jwt::JwtKeys::new(&[9u8; 40], "stageflow", "stageflow-api", 600).unwrap();
    let token = other.sign_raw(&good_claims(&app, &id)).unwrap();
    assert_eq!(me_status(&app, &token).await, 401);
}

async fn a_deactivated_users_token_stops_working(app: TestApp) {
    let (rep, token) = app.user("rep@example.com", Role::Rep, None).await;
    assert_eq!(me_status(&app, &token).await, 200);
    let res = app
        .patch(&format!("/api/v1/users/{rep}"))
        .admin()
        .json(json!({"active": false}))
        .send()
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    assert_eq!(res.body["active"], false);
    assert_eq!(me_status(&app, &token).await, 401);
    let login = app
        .post("/api/v1/auth/token")
        .json(json!({"email": "rep@example.com", "password": PASSWORD}))
        .send()
        .await;
    login.problem(401, "unauthorized");
}

async fn api_keys_are_shown_once_scoped_and_revocable(app: TestApp) {
    let created = app
        .post("/api/v1/api-keys")
        .admin()
        .json(json!({"name": "reporting", "scopes": ["pipelines:read"]}))
        .send()
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let secret = created.body["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("sfk_"));
    let id = created.body["id"].as_str().unwrap().to_owned();

    let listed = app.get("/api/v1/api-keys").admin().send().await;
    assert_eq!(listed.status, StatusCode::OK);
    assert!(
        !listed.text.contains(&secret[15..]),
        "the secret must not be listed"
    );
    assert_eq!(listed.body["data"][0]["scopes"], json!(["pipelines:read"]));

    assert_eq!(
        app.get("/api/v1/pipelines")
            .token(&secret)
            .send()
            .await
            .status,
        StatusCode::OK
    );
    let create = app
        .post("/api/v1/pipelines/from-template")
        .token(&secret)
        .json(json!({"template": "saas"}))
        .send()
        .await;
    create.problem(403, "forbidden");
    app.get("/api/v1/users")
        .token(&secret)
        .send()
        .await
        .problem(403, "forbidden");
    // Another last character (never the same one, or the key would be unchanged).
    let last = if secret.ends_with('x') { 'y' } else { 'x' };
    let tampered = format!("{}{last}", &secret[..secret.len() - 1]);
    app.get("/api/v1/pipelines")
        .token(&tampered)
        .send()
        .await
        .problem(401, "unauthorized");

    let revoked = app
        .delete(&format!("/api/v1/api-keys/{id}"))
        .admin()
        .send()
        .await;
    assert_eq!(revoked.status, StatusCode::NO_CONTENT);
    app.get("/api/v1/pipelines")
        .token(&secret)
        .send()
        .await
        .problem(401, "unauthorized");

    let bad = app
        .post("/api/v1/api-keys")
        .admin()
        .json(json!({"name": "x", "scopes": ["everything"]}))
        .send()
        .await;
    bad.problem(422, "validation_failed");
    assert_eq!(bad.body["errors"][0]["pointer"], "/scopes/0");
}

async fn only_admins_manage_api_keys(app: TestApp) {
    let (_, manager) = app.user("m@example.com", Role::Manager, None).await;
    let res = app
        .post("/api/v1/api-keys")
        .token(&manager)
        .json(json!({"name": "mine", "scopes": ["leads:read"]}))
        .send()
        .await;
    res.problem(403, "forbidden");
    app.get("/api/v1/api-keys")
        .token(&manager)
        .send()
        .await
        .problem(403, "forbidden");
}

#[actix_web::test]
async fn login_attempts_are_rate_limited() {
    let backend = crate::helpers::Backend::Sqlite;
    let Some(app) = TestApp::spawn_with(backend, |s| s.login_attempts_per_minute = 3).await else {
        return;
    };
    // The harness has already signed in once as admin.
    for _ in 0..2 {
        let res = app
            .post("/api/v1/auth/token")
            .json(json!({"email": ADMIN_EMAIL, "password": "wrong-password"}))
            .send()
            .await;
        res.problem(401, "unauthorized");
    }
    let res = app
        .post("/api/v1/auth/token")
        .json(json!({"email": ADMIN_EMAIL, "password": PASSWORD}))
        .send()
        .await;
    res.problem(429, "rate_limited");
    let retry: u64 = res.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry));
}

#[actix_web::test]
async fn api_requests_are_rate_limited_per_credential_with_headers() {
    let backend = crate::helpers::Backend::Sqlite;
    let Some(app) = TestApp::spawn_with(backend, |s| {
        s.rate_limit_per_minute = 3;
        s.public_rate_limit_per_minute = 4;
    })
    .await
    else {
        return;
    };
    let first = app.get("/api/v1/pipelines").admin().send().await;
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(
        first.header("ratelimit-policy"),
        Some("\"credential\";q=3;w=60")
    );
    let remaining = |res: &crate::helpers::Res| -> String {
        res.header("ratelimit")
            .unwrap()
            .split(';')
            .find_map(|p| p.strip_prefix("r="))
            .unwrap()
            .to_owned()
    };
    assert_eq!(remaining(&first), "2");
    // A new token of the same user shares the user's budget.
    let other_token = app.login(ADMIN_EMAIL, PASSWORD).await;
    let second = app
        .get("/api/v1/pipelines")
        .token(&other_token)
        .send()
        .await;
    assert_eq!(remaining(&second), "1");
    app.get("/api/v1/pipelines").admin().send_ok().await;
    let refused = app.get("/api/v1/pipelines").admin().send().await;
    refused.problem(429, "rate_limited");
    let retry: u64 = refused.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry));
    assert_eq!(remaining(&refused), "0");
    // Another user has a budget of their own.
    // (Created directly: the admin's API budget is spent.)
    {
        let mut conn = app.state.pool.get().unwrap();
        stageflow::startup::create_user(&mut conn, "rep@example.com", PASSWORD, "Rep", Role::Rep)
            .unwrap();
    }
    let rep = app.login("rep@example.com", PASSWORD).await;
    let res = app.get("/api/v1/pipelines").token(&rep).send().await;
    assert_eq!(res.status, StatusCode::OK);
    // Requests without valid credentials are counted per client IP: the three sign-ins
    // so far (the harness's, the admin's second, the rep's) and this one.
    let anonymous = app.get("/api/v1/pipelines").send().await;
    anonymous.problem(401, "unauthorized");
    assert_eq!(
        anonymous.header("ratelimit-policy"),
        Some("\"ip\";q=4;w=60")
    );
    assert_eq!(remaining(&anonymous), "0");
    app.get("/api/v1/pipelines")
        .token("forged")
        .send()
        .await
        .problem(429, "rate_limited");
    // Probes and the spec are not API calls and are never limited.
    let live = app.get("/health/live").send().await;
    assert_eq!(live.status, StatusCode::OK);
    assert_eq!(live.header("ratelimit"), None);
}
