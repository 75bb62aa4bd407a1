//! A real browser posts to the capture endpoint from another origin: headless Chromium
//! loads pages served on one port and posts to the API served on another, once as a
//! plain HTML form (navigation, 303 to the thank-you page) and once with `fetch`
//! (CORS), and a page on an origin the source does not allow is refused.
//!
//! Needs `chromium` (Debian's package; `.ci/run` installs it). Without it the test says
//! so and passes, except in CI, where a missing browser fails it.

use std::process::Command;
use std::time::Duration;

use actix_web::{web, App, HttpResponse, HttpServer};
use serde_json::json;

use crate::api_tests;
use crate::helpers::TestApp;

fn browser() -> Option<&'static str> {
    [
        "/usr/bin/chromium",
        "/usr/bin/chromium-browser",
        "/usr/bin/google-chrome",
    ]
    .into_iter()
    .find(|p| std::path::Path::new(p).exists())
}

/// Loads `url` in headless Chromium and answers the DOM once the page settled.
async fn dump_dom(url: String) -> String {
    let exe = browser().expect("a browser");
    let out = web::block(move || {
        let profile = tempfile_dir();
        let out = Command::new(exe)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--virtual-time-budget=10000",
                &format!("--user-data-dir={}", profile.display()),
                "--dump-dom",
                &url,
            ])
            .output()
            .expect("run the browser");
        let _ = std::fs::remove_dir_all(&profile);
        out
    })
    .await
    .expect("blocking");
    assert!(
        out.status.success(),
        "browser failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn tempfile_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("stageflow-browser-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&dir).expect("profile dir");
    dir
}

/// Serves `pages` (path → HTML) on 127.0.0.1; answers the port.
async fn page_server(pages: Vec<(String, String)>) -> u16 {
    let pages = web::Data::new(pages);
    let server = HttpServer::new(move || {
        App::new().app_data(pages.clone()).default_service(web::to(
            |req: actix_web::HttpRequest, pages: web::Data<Vec<(String, String)>>| async move {
                match pages.iter().find(|(p, _)| p == req.path()) {
                    Some((_, html)) => HttpResponse::Ok()
                        .content_type("text/html; charset=utf-8")
                        .body(html.clone()),
                    None => HttpResponse::NotFound().finish(),
                }
            },
        ))
    })
    .workers(1)
    .bind(("127.0.0.1", 0))
    .expect("bind pages");
    let port = server.addrs()[0].port();
    actix_web::rt::spawn(server.run());
    port
}

async fn a_browser_posts_forms_from_an_allowed_origin_only(app: TestApp) {
    if browser().is_none() {
        assert!(
            std::env::var("CI").map_or(true, |v| v != "true"),
            "CI must have chromium (installed by .ci/run)"
        );
        eprintln!("skipping the browser test: no chromium on this machine");
        return;
    }
    // The API on a real port.
    let state = app.state.clone();
    let api = HttpServer::new(move || stageflow::startup::app(state.clone()))
        .workers(1)
        .bind(("127.0.0.1", 0))
        .expect("bind api");
    let api_port = api.addrs()[0].port();
    actix_web::rt::spawn(api.run());

    // Pages: a form page and a fetch page, served on their own port (another origin).
    // The page server's port is known only once bound, so the allowed origin is set
    // on the source after the pages exist.
    let src = app
        .post("/api/v1/capture-sources")
        .admin()
        .json(
            json!({"name": "Browser form", "kind": "form", "honeypot_field": "website",
                     "field_map": {"email": "email"}}),
        )
        .created()
        .await
        .body;
    let key = src["key"].as_str().unwrap().to_owned();
    let capture = format!("http://127.0.0.1:{api_port}/api/v1/capture/{key}");
    let form_page = format!(
        r#"<!doctype html><html><body>
<form method="post" action="{capture}">
  <input name="first_name" value="Form">
  <input name="company" value="浏览器表单公司">
  <input name="email" value="form@browser.example">
  <input name="website" value="" style="display:none">
</form>
<script>document.forms[0].submit();</script>
</body></html>"#
    );
    let fetch_page = format!(
        r#"<!doctype html><html><body><p id="out">waiting</p>
<form><input name="company" value="Fetch 公司"><input name="email" value="fetch@browser.example"></form>
<script>
fetch("{capture}", {{method: "POST", body: new FormData(document.forms[0])}})
  .then(r => r.json().then(b => {{ document.getElementById("out").textContent = "status=" + r.status + " lead=" + b.lead_id; }}))
  .catch(e => {{ document.getElementById("out").textContent = "blocked: " + e; }});
</script></body></html>"#
    );
    let thanks = "<!doctype html><html><body><h1>thanks-page</h1></body></html>".to_owned();
    let pages_port = page_server(vec![
        ("/form.html".into(), form_page),
        ("/fetch.html".into(), fetch_page),
        ("/thanks.html".into(), thanks),
    ])
    .await;
    let allowed = format!("http://127.0.0.1:{pages_port}");
    app.patch(&format!(
        "/api/v1/capture-sources/{}",
        src["id"].as_str().unwrap()
    ))
    .admin()
    .json(json!({"allowed_origins": [allowed],
                     "redirect_url": format!("{allowed}/thanks.html")}))
    .send_ok()
    .await;

    // 1. A plain HTML form: the browser navigates, the API answers 303, the browser
    //    shows the thank-you page.
    let dom = dump_dom(format!("{allowed}/form.html")).await;
    assert!(dom.contains("thanks-page"), "after the form: {dom}");

    // 2. fetch with FormData from the allowed origin: CORS lets the page read 202.
    let dom = dump_dom(format!("{allowed}/fetch.html")).await;
    assert!(dom.contains("status=202 lead="), "fetch page: {dom}");

    // 3. The same fetch page on another origin (localhost is not 127.0.0.1): refused.
    let dom = dump_dom(format!("http://localhost:{pages_port}/fetch.html")).await;
    assert!(dom.contains("blocked"), "disallowed origin: {dom}");

    actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    let leads = app.get("/api/v1/leads?limit=50").admin().send_ok().await;
    let mut emails: Vec<String> = leads.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["email"].as_str().unwrap_or_default().to_owned())
        .collect();
    emails.sort();
    assert_eq!(
        emails,
        ["fetch@browser.example", "form@browser.example"],
        "one lead per allowed post, none from the other origin"
    );
}

api_tests!(a_browser_posts_forms_from_an_allowed_origin_only);
