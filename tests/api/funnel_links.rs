//! Signed links to the funnel picture (`POST /reports/funnel.svg/links`) and the
//! picture's language.

use actix_web::http::header::AUTHORIZATION;
use actix_web::http::StatusCode;
use serde_json::{json, Value};
use stageflow::auth::caller::Credential;
use stageflow::domain::user::Role;
use stageflow::http::reports::{sign_funnel_link, FunnelSvgQuery};

use crate::api_tests;
use crate::helpers::{id_of, Res, TestApp};

api_tests!(
    a_link_draws_the_picture_without_credentials,
    altered_or_expired_links_are_refused,
    a_deactivated_signer_or_revoked_key_voids_the_link,
    a_reps_link_shows_only_the_reps_deals,
    fixed_words_follow_the_language,
);

async fn link(app: &TestApp, token: &str, body: Value) -> Res {
    app.post("/api/v1/reports/funnel.svg/links")
        .token(token)
        .json(body)
        .send()
        .await
}

async fn url_of(app: &TestApp, token: &str, body: Value) -> String {
    let res = link(app, token, body).await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.text);
    res.body["url"].as_str().unwrap().to_owned()
}

/// The link opened the way an `<img>` opens it: no credentials.
async fn open(app: &TestApp, url: &str) -> Res {
    app.get(url).send().await
}

/// The text of every `<text>` element.
fn texts(svg: &str) -> Vec<String> {
    svg.split("<text ")
        .skip(1)
        .filter_map(|t| t.split_once('>'))
        .filter_map(|(_, rest)| rest.split_once("</text>"))
        .map(|(text, _)| text.to_owned())
        .collect()
}

async fn a_link_draws_the_picture_without_credentials(app: TestApp) {
    let p = app.pipeline().plain().create().await;
    let admin = app.admin_token.clone();
    app.deal(&p)
        .create()
        .await
        .move_through(&["B", "Won"])
        .await;
    let before = chrono::Utc::now().timestamp();
    let res = link(
        &app,
        &admin,
        json!({"pipeline_id": p["id"], "mode": "cohort"}),
    )
    .await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.text);
    let url = res.body["url"].as_str().unwrap();
    assert_eq!(res.header("location"), Some(url));
    assert!(
        url.starts_with("/api/v1/reports/funnel.svg?pipeline_id="),
        "{url}"
    );
    assert!(url.contains("&mode=cohort&lang=en&expires="), "{url}");
    let expires_at = chrono::DateTime::parse_from_rfc3339(res.body["expires_at"].as_str().unwrap())
        .unwrap()
        .timestamp();
    assert!(
        (before + 900..=before + 902).contains(&expires_at),
        "15 minutes by default"
    );

    let svg = open(&app, url).await;
    assert_eq!(svg.status, StatusCode::OK, "{}", svg.text);
    assert!(svg
        .header("content-type")
        .unwrap()
        .starts_with("image/svg+xml"));
    assert!(svg.text.starts_with("<svg") && svg.text.contains("1 deal · win rate"));
    let cache = svg.header("cache-control").unwrap();
    let max_age: i64 = cache
        .strip_prefix("private, max-age=")
        .unwrap_or_else(|| panic!("{cache}"))
        .parse()
        .unwrap();
    assert!((890..=900).contains(&max_age), "{cache}");
    assert!(svg
        .header("content-security-policy")
        .unwrap()
        .starts_with("default-src 'none'"));
    assert_eq!(svg.header("content-language"), Some("en"));

    // With credentials the picture is answered as before, never cached.
    let direct = app
        .get(&format!(
            "/api/v1/reports/funnel.svg?pipeline_id={}",
            id_of(&p)
        ))
        .admin()
        .send()
        .await;
    assert_eq!(direct.status, StatusCode::OK);
    assert_eq!(direct.header("cache-control"), Some("no-store"));
    // Without either, 401 as before.
    open(
        &app,
        &format!("/api/v1/reports/funnel.svg?pipeline_id={}", id_of(&p)),
    )
    .await
    .problem(401, "unauthorized");

    let hour = link(
        &app,
        &admin,
        json!({"pipeline_id": p["id"], "ttl_secs": 3600}),
    )
    .await;
    assert_eq!(hour.status, StatusCode::CREATED, "{}", hour.text);
    for ttl in [0, 59, 3601] {
        let res = link(
            &app,
            &admin,
            json!({"pipeline_id": p["id"], "ttl_secs": ttl}),
        )
        .await;
        res.problem(422, "validation_failed");
        assert_eq!(res.error_fields(), ["ttl_secs"]);
    }
    link(
        &app,
        &admin,
        json!({"pipeline_id": p["id"], "from": "soon"}),
    )
    .await
    .problem(422, "validation_failed");
    link(
        &app,
        &admin,
        json!({"pipeline_id": "00000000-0000-0000-0000-000000000000"}),
    )
    .await
    .problem(404, "not_found");
}

async fn altered_or_expired_links_are_refused(app: TestApp) {
    let p = app.pipeline().plain().create().await;
    let admin = app.admin_token.clone();
    app.deal(&p).create().await.move_through(&["B"]).await;
    let url = url_of(
        &app,
        &admin,
        json!({"pipeline_id": p["id"], "from": "2020-01-01", "mode": "cohort"}),
    )
    .await;
    assert_eq!(open(&app, &url).await.status, StatusCode::OK);

    let (head, mac) = url.rsplit_once('.').unwrap();
    let flipped = if mac.starts_with('A') { 'B' } else { 'A' };
    let tampered_signature = format!("{head}.{flipped}{}", &mac[1..]);
    let expires: i64 = url
        .split_once("expires=")
        .and_then(|(_, rest)| rest.split_once('&'))
        .unwrap()
        .0
        .parse()
        .unwrap();
    for altered in [
        url.replace("mode=cohort", "mode=period"),
        url.replace("from=2020-01-01", "from=2019-01-01"),
        url.replace("&from=2020-01-01", ""),
        url.replace("lang=en", "lang=zh"),
        url.replace(
            &format!("expires={expires}"),
            &format!("expires={}", expires + 3600),
        ),
        format!("{url}&owner_id=00000000-0000-0000-0000-000000000000"),
        tampered_signature,
        url.replace("signature=u.", "signature=k."),
    ] {
        let res = open(&app, &altered).await;
        res.problem(401, "unauthorized");
        assert!(
            res.body["detail"].as_str().unwrap().contains("invalid")
                || res.body["detail"].as_str().unwrap().contains("revoked"),
            "{altered}: {}",
            res.text
        );
    }
    let unsigned = url.split_once("&signature=").unwrap().0;
    open(&app, unsigned).await.problem(401, "unauthorized");

    // A link that expired: signed directly with an expiry in the past.
    let header = format!("Bearer {admin}");
    let caller = Credential::resolve(
        &app.state.jwt,
        &app.state.pool,
        app.state.backend,
        Some(header.as_bytes()),
    )
    .await
    .caller()
    .unwrap();
    let q = FunnelSvgQuery {
        pipeline_id: Some(id_of(&p)),
        ..FunnelSvgQuery::default()
    };
    let now = chrono::Utc::now().timestamp();
    let past = sign_funnel_link(&app.state, &caller, &q, now - 1)
        .await
        .unwrap();
    let res = open(&app, &past).await;
    res.problem(401, "unauthorized");
    assert!(
        res.body["detail"].as_str().unwrap().contains("expired"),
        "{}",
        res.text
    );
    let fresh = sign_funnel_link(&app.state, &caller, &q, now + 60)
        .await
        .unwrap();
    assert_eq!(open(&app, &fresh).await.status, StatusCode::OK);
    // A credential that does not hold is refused even beside a good link.
    app.get(&fresh)
        .header(AUTHORIZATION.as_str(), "Bearer not-a-token")
        .send()
        .await
        .problem(401, "unauthorized");
}

async fn a_deactivated_signer_or_revoked_key_voids_the_link(app: TestApp) {
    let p = app.pipeline().plain().create().await;
    let (rep, token) = app.user("rep@example.com", Role::Rep, None).await;
    let url = url_of(&app, &token, json!({"pipeline_id": p["id"]})).await;
    assert_eq!(open(&app, &url).await.status, StatusCode::OK);
    let res = app
        .patch(&format!("/api/v1/users/{rep}"))
        .admin()
        .json(json!({"active": false}))
        .send()
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    let res = open(&app, &url).await;
    res.problem(401, "unauthorized");
    assert!(res.body["detail"].as_str().unwrap().contains("deactivated"));

    let key = |scopes: Value| {
        let app = &app;
        async move {
            let res = app
                .post("/api/v1/api-keys")
                .admin()
                .json(json!({"name": "dashboard", "scopes": scopes}))
                .send()
                .await;
            assert_eq!(res.status, StatusCode::CREATED, "{}", res.text);
            (
                id_of(&res.body),
                res.body["secret"].as_str().unwrap().to_owned(),
            )
        }
    };
    let (_, leads_only) = key(json!(["leads:read"])).await;
    link(&app, &leads_only, json!({"pipeline_id": p["id"]}))
        .await
        .problem(403, "forbidden");
    let (key_id, reports) = key(json!(["reports:read"])).await;
    let url = url_of(&app, &reports, json!({"pipeline_id": p["id"]})).await;
    assert!(url.contains(&format!("signature=k.{key_id}.")), "{url}");
    assert_eq!(open(&app, &url).await.status, StatusCode::OK);
    let res = app
        .delete(&format!("/api/v1/api-keys/{key_id}"))
        .admin()
        .send()
        .await;
    assert!(res.status.is_success(), "{}", res.text);
    open(&app, &url).await.problem(401, "unauthorized");
}

async fn a_reps_link_shows_only_the_reps_deals(app: TestApp) {
    let p = app.pipeline().plain().create().await;
    for stages in [&["B", "Won"][..], &["B"], &[], &[]] {
        app.deal(&p).create().await.move_through(stages).await;
    }
    let (_, rep) = app.user("rep@example.com", Role::Rep, None).await;
    app.deal(&p)
        .by(&rep)
        .create()
        .await
        .move_through(&["B"])
        .await;
    app.deal(&p).by(&rep).create().await.move_through(&[]).await;

    let funnel = app
        .get(&format!("/api/v1/reports/funnel?pipeline_id={}", id_of(&p)))
        .token(&rep)
        .send()
        .await;
    assert_eq!(funnel.status, StatusCode::OK, "{}", funnel.text);
    assert_eq!(funnel.body["total"], 2);

    let url = url_of(&app, &rep, json!({"pipeline_id": p["id"]})).await;
    let svg = open(&app, &url).await;
    assert_eq!(svg.status, StatusCode::OK, "{}", svg.text);
    let labels = texts(&svg.text);
    for stage in funnel.body["stages"].as_array().unwrap() {
        let drawn = format!(
            "{} — {}",
            stage["name"].as_str().unwrap(),
            stage["reached_or_passed"]
        );
        assert!(
            labels.iter().any(|l| l.starts_with(&drawn)),
            "{drawn} not in {labels:?}"
        );
    }
    let footer = labels.last().unwrap();
    assert!(
        footer.starts_with("2 deals · win rate 0.0% (0/2)"),
        "{footer}"
    );
    assert!(
        labels
            .iter()
            .any(|l| l.starts_with("A — 2 · conversion 50.0% (1/2)")),
        "{labels:?}"
    );
}

async fn fixed_words_follow_the_language(app: TestApp) {
    let p = app.pipeline().plain().create().await;
    let admin = app.admin_token.clone();
    app.deal(&p)
        .create()
        .await
        .move_through(&["B", "Won"])
        .await;
    app.deal(&p).create().await.move_through(&["B"]).await;
    // Only the pipeline's own names may differ from the language: the pipeline's in
    // the title, each stage's before " — " on its bar.
    let fixed = |svg: &str| -> String {
        texts(svg)
            .iter()
            .map(|t| t.split_once(" — ").map_or(t.as_str(), |(_, rest)| rest))
            .collect::<Vec<_>>()
            .join("\n")
            .replace("Plain", "")
    };
    let is_cjk =
        |c: char| ('\u{3000}'..='\u{9fff}').contains(&c) || ('\u{ff00}'..='\u{ffef}').contains(&c);

    let zh_url = url_of(&app, &admin, json!({"pipeline_id": p["id"], "lang": "zh"})).await;
    let zh = open(&app, &zh_url).await;
    assert_eq!(zh.status, StatusCode::OK, "{}", zh.text);
    assert_eq!(zh.header("content-language"), Some("zh"));
    let words = fixed(&zh.text);
    assert!(
        !words.chars().any(|c| c.is_ascii_alphabetic()),
        "English in the Chinese picture: {words}"
    );
    assert!(
        words.contains("赢单率") && words.contains("转化率"),
        "{words}"
    );

    let en_url = url_of(&app, &admin, json!({"pipeline_id": p["id"], "lang": "en"})).await;
    let words = fixed(&open(&app, &en_url).await.text);
    assert!(
        !words.chars().any(is_cjk),
        "Chinese in the English picture: {words}"
    );
    assert!(
        words.contains("win rate") && words.contains("won"),
        "{words}"
    );

    // Without lang: the language Accept-Language prefers, written into the link.
    let res = app
        .post("/api/v1/reports/funnel.svg/links")
        .admin()
        .header("accept-language", "zh-CN,zh;q=0.9,en;q=0.8")
        .json(json!({"pipeline_id": p["id"]}))
        .send()
        .await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.text);
    assert!(res.body["url"].as_str().unwrap().contains("lang=zh"));
    let direct = |lang: &'static str| {
        let app = &app;
        let path = format!("/api/v1/reports/funnel.svg?pipeline_id={}", id_of(&p));
        async move {
            app.get(&path)
                .admin()
                .header("accept-language", lang)
                .send()
                .await
        }
    };
    assert_eq!(direct("zh-TW").await.header("content-language"), Some("zh"));
    assert_eq!(
        direct("fr, en;q=0.5").await.header("content-language"),
        Some("en")
    );
    app.get(&format!(
        "/api/v1/reports/funnel.svg?pipeline_id={}&lang=fr",
        id_of(&p)
    ))
    .admin()
    .send()
    .await
    .problem(400, "invalid_parameter");
}
