use std::collections::BTreeSet;

use actix_web::http::{Method, StatusCode};
use serde_json::Value;

use crate::helpers::{Backend, TestApp};

const COMMITTED: &str = include_str!("../../openapi/openapi.json");

#[actix_web::test]
async fn served_spec_equals_the_committed_file() {
    let app = TestApp::spawn(Backend::Sqlite).await.expect("sqlite");
    let served = app.get("/openapi.json").send().await;
    assert_eq!(served.status, StatusCode::OK);
    assert!(
        served.text == COMMITTED,
        "openapi/openapi.json is out of date with the code.\n\
         Regenerate it with:  cargo run -- openapi > openapi/openapi.json\n\
         and review the diff before committing."
    );
    let spec: Value = serde_json::from_str(COMMITTED).unwrap();
    assert!(spec["openapi"].as_str().unwrap().starts_with("3.1"));
    assert_eq!(
        spec["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
}

/// Every documented operation is routed: answering 404/405 would mean the spec promises
/// an endpoint the server does not have.
#[actix_web::test]
async fn every_documented_operation_is_routed() {
    let app = TestApp::spawn(Backend::Sqlite).await.expect("sqlite");
    let spec: Value = serde_json::from_str(COMMITTED).unwrap();
    let mut checked = BTreeSet::new();
    for (path, item) in spec["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            let concrete = path
                .replace("{id}", "00000000-0000-0000-0000-000000000000")
                .replace("{key}", "cs_unknown");
            let m = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let res = app.req(m, &concrete).send().await;
            // A record or key that does not exist is a 404 of the handler, not of routing.
            let names_a_record = path.contains("{id}") || path.contains("{key}");
            let unrouted = res.status == StatusCode::NOT_FOUND
                && res.body["code"] == "not_found"
                && !names_a_record;
            assert!(
                res.status != StatusCode::METHOD_NOT_ALLOWED && !unrouted,
                "{method} {path} is documented but answered {}",
                res.status
            );
            // Without credentials a protected operation is 401, never a 404 from routing.
            if path.contains("{id}") {
                assert_ne!(res.status, StatusCode::NOT_FOUND, "{method} {path}");
            }
            checked.insert(format!("{method} {path}"));
        }
    }
    assert!(checked.len() >= 20, "{checked:?}");
}

#[actix_web::test]
async fn swagger_ui_is_served_offline() {
    let app = TestApp::spawn(Backend::Sqlite).await.expect("sqlite");
    let res = app.get("/docs/").send().await;
    assert_eq!(res.status, StatusCode::OK);
    assert!(
        res.text.contains("swagger"),
        "{}",
        &res.text[..200.min(res.text.len())]
    );
    let redirect = app.get("/docs").send().await;
    assert_eq!(redirect.header("location"), Some("/docs/"));
}
