//! Whole-system tests of the API contract (README, "API contract"): each bank serves an
//! OpenAPI 3.1 document derived from its handlers at `/api-docs/openapi.json` that lists
//! exactly the routes it serves, with their guards and error answers, and Swagger UI at `/docs`
//! from vendored assets. Schemathesis fuzzes the same documents in CI (tests/contract/run.sh).
use crate::helpers;

use std::collections::BTreeSet;

use helpers::TestStack;
use reqwest::StatusCode;
use serde_json::Value;

/// Every route both banks serve, as `METHOD path`.
const SHARED: &[&str] = &[
    "GET /api/accounts/{account_no}",
    "GET /api/quarantine",
    "GET /health",
    "GET /metrics",
    "GET /admin/faults",
    "PUT /admin/faults",
    "GET /admin/reconcile",
    "POST /admin/reconcile",
    "GET /admin/accounts",
];
const BANK1: &[&str] = &[
    "POST /api/transfers",
    "GET /api/transfers",
    "POST /api/transfers/proofs",
    "GET /api/transfers/{tx_no}",
    "GET /api/transfers/{tx_no}/timeline",
    "GET /admin/transfers",
];
const BANK2: &[&str] = &[
    "GET /api/credits/{tx_no}",
    "GET /api/rejections",
    "POST /api/rejections/proofs",
    "GET /admin/dlq",
    "POST /admin/dlq/redrive",
    "POST /admin/dlq/refund",
    "GET /admin/consumer",
    "POST /admin/consumer/pause",
    "POST /admin/consumer/resume",
];

/// The operations of a spec, as `METHOD path` with the operation.
fn operations(spec: &Value) -> Vec<(String, Value)> {
    let mut ops = Vec::new();
    for (path, item) in spec["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("path item") {
            ops.push((format!("{} {path}", method.to_uppercase()), op.clone()));
        }
    }
    ops
}

fn security(op: &Value) -> Vec<String> {
    op["security"].as_array().into_iter().flatten().flat_map(|s| s.as_object().unwrap().keys().cloned()).collect()
}

async fn check_bank(app: &TestStack, url: &str, own: &[&str]) {
    let (status, spec) = app.get(format!("{url}/api-docs/openapi.json")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(spec["openapi"].as_str().unwrap().starts_with("3.1"), "{}", spec["openapi"]);
    let ops = operations(&spec);
    let listed: BTreeSet<String> = ops.iter().map(|(k, _)| k.clone()).collect();
    let expected: BTreeSet<String> = SHARED.iter().chain(own).map(|s| (*s).to_owned()).collect();
    assert_eq!(listed, expected, "{url}: the spec lists exactly the routes served");

    let schemes = spec["components"]["securitySchemes"].as_object().expect("security schemes");
    assert_eq!(schemes["admin_token"]["scheme"], "bearer");
    assert_eq!(schemes["feed_token"]["scheme"], "bearer");
    for (name, op) in &ops {
        let path = name.split_once(' ').unwrap().1;
        let responses = op["responses"].as_object().unwrap();
        let guard = security(op);
        if path.starts_with("/admin/") {
            assert_eq!(guard, ["admin_token"], "{name}");
        } else if name == "GET /api/transfers" || name == "GET /api/rejections" || path.ends_with("/proofs") {
            assert_eq!(guard, ["feed_token"], "{name}");
        } else {
            assert!(guard.is_empty(), "{name} is public");
        }
        assert_eq!(responses.contains_key("401"), !guard.is_empty(), "{name}: 401 documented where guarded");
        for status in ["500", "503"] {
            assert!(responses.contains_key(status), "{name}: {status} documented");
        }
        for (status, r) in responses {
            if status.starts_with('4') || status == "500" {
                let schema = &r["content"]["application/json"]["schema"]["$ref"];
                assert_eq!(schema, "#/components/schemas/ErrorBody", "{name} {status}");
            }
        }
    }

    // The spec's own documents: what is not routed answers the JSON 404.
    let (status, body) = app.get(format!("{url}/api/no-such-thing")).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::NOT_FOUND, Some("not_found")));

    // Swagger UI, from vendored assets.
    let page = app.http.get(format!("{url}/docs/")).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    let html = page.text().await.unwrap();
    assert!(html.contains("swagger-ui"), "{html}");
    let css = app.http.get(format!("{url}/docs/swagger-ui.css")).send().await.unwrap();
    assert_eq!(css.status(), StatusCode::OK);
    let config = app.get(format!("{url}/docs/swagger-initializer.js")).await;
    assert_ne!(config.0, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_lists_every_route_with_its_guard() {
    let app = TestStack::start().await;
    check_bank(&app, &app.bank1_url, BANK1).await;
    check_bank(&app, &app.bank2_url, BANK2).await;
    app.assert_conserved(0).await;
    app.shutdown().await;
}
