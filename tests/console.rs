//! Whole-system test of the operator console (README "Console") on a real stack: its pages and
//! live fragments read both banks through their operator APIs, its forms drive them, and its
//! conservation total adds up. The browser test (tests/browser/run.sh) drives the same pages in
//! headless Chromium; this one runs with `cargo test`.
use crate::helpers;

use std::time::Duration;

use common::infra::token::Token;
use helpers::{poll_until, TestStack};
use reqwest::StatusCode;
use serde_json::Value;

const WITHIN: Duration = Duration::from_secs(60);

/// The console on an ephemeral port, against the test stack.
async fn console(app: &TestStack) -> (String, tokio::sync::oneshot::Sender<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let settings = console::Settings {
        listen: listener.local_addr().unwrap(),
        bank1_url: app.bank1_url.clone(),
        bank2_url: app.bank2_url.clone(),
        bank1_admin_token: Some(Token::parse(app.admin_token(&app.bank1_url)).unwrap()),
        bank2_admin_token: Some(Token::parse(app.admin_token(&app.bank2_url)).unwrap()),
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let ui = console::Console::new(&settings).unwrap();
    tokio::spawn(console::serve(listener, ui, async {
        let _ = stopped.await;
    }));
    (url, stop)
}

async fn page(http: &reqwest::Client, url: String) -> (StatusCode, String) {
    let r = http.get(url).send().await.unwrap();
    (r.status(), r.text().await.unwrap())
}

/// The text of the element with this id (`id="total"` and the like).
fn by_id<'a>(html: &'a str, id: &str) -> Option<&'a str> {
    let at = html.find(&format!("id=\"{id}\""))?;
    let start = at + html[at..].find('>')? + 1;
    Some(&html[start..start + html[start..].find('<')?])
}

/// A POST of a console form, without following its redirect: the `Location` it answers.
async fn submit(url: String, form: &[(&str, &str)]) -> String {
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let r = http.post(url).form(form).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    url::form_urlencoded::parse(location.split_once('?').map_or("", |(_, q)| q).as_bytes())
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_shows_money_transfers_and_timelines() {
    let app = TestStack::start().await;
    let (ui, stop) = console(&app).await;
    let http = &app.http;

    // Both banks' operator views, as the console reads them.
    let r = app.admin(reqwest::Method::GET, &app.bank1_url, "/admin/accounts").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let l1: Value = r.json().await.unwrap();
    assert_eq!(
        (l1["balance_total"].as_str(), l1["flow"]["name"].as_str()),
        (Some("1000.00"), Some("committed")),
        "{l1}"
    );
    let (_, page_html) = page(http, format!("{ui}/")).await;
    assert!(page_html.contains("bank-transfer console") && page_html.contains("id=\"transfer-form\""));
    let (_, money) = page(http, format!("{ui}/live/money")).await;
    assert_eq!((by_id(&money, "total"), by_id(&money, "in-flight")), (Some("1000.00"), Some("0.00")), "{money}");

    // A transfer through the console's form, with an Idempotency-Key: the answer names both.
    let key = uuid::Uuid::new_v4().to_string();
    let form = [("from_account", "1"), ("to_account", "2"), ("amount", "12.34"), ("idempotency_key", key.as_str())];
    let note = submit(format!("{ui}/transfers"), &form).await;
    assert!(note.starts_with("note=") && note.contains(&key) && note.contains("COMMITTED"), "{note}");
    // "… with Idempotency-Key <key>: <tx_no> COMMITTED": the tx_no is the id after the key.
    let tx_no = note.split_whitespace().rev().find(|w| uuid::Uuid::try_parse(w).is_ok()).expect("the tx_no").to_owned();
    assert_ne!(tx_no, key);
    // The same key again is a replay: one debit.
    let again = submit(format!("{ui}/transfers"), &form).await;
    assert!(again.contains(&tx_no) && again.contains("replay"), "{again}");

    // Listed newest first, credited; its timeline has every step of the happy path, in order.
    let row = format!("data-tx=\"{tx_no}\" data-status=\"COMMITTED\" data-outcome=\"CREDITED\"");
    poll_until("the transfer credited in the console's list", WITHIN, || async {
        page(http, format!("{ui}/live/transfers")).await.1.contains(&row).then_some(())
    })
    .await;
    let (status, timeline) = page(http, format!("{ui}/transfers/{tx_no}")).await;
    assert_eq!(status, StatusCode::OK);
    let steps: Vec<&str> = timeline.split("data-step=\"").skip(1).map(|s| &s[..s.find('"').unwrap()]).collect();
    assert_eq!(steps, ["ACCEPTED", "HALF_MESSAGE", "LOCAL_COMMITTED", "ANSWERED", "CREDITED"], "{timeline}");

    // bank2's consume fault from the operations page: the failed deliveries appear.
    let note = submit(
        format!("{ui}/faults/bank2"),
        &[("fault", "consume_fail_at_least"), ("threshold", "50.00"), ("switch", "on")],
    )
    .await;
    assert!(note.contains("on at ≥ 50.00"), "{note}");
    let failing = app.transfer("60.00").await["tx_no"].as_str().unwrap().to_owned();
    poll_until("failed deliveries on the timeline", WITHIN, || async {
        let t = page(http, format!("{ui}/live/transfers/{failing}")).await.1;
        (t.matches("data-step=\"DELIVERY_FAILED\"").count() >= 2).then_some(())
    })
    .await;
    let (status, ops) = page(http, format!("{ui}/operations")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(ops.contains("data-fault=\"consume_fail_at_least\"") && ops.contains("on ≥ 50.00"), "{ops}");
    let note = submit(format!("{ui}/faults/bank2"), &[("fault", "consume_fail_at_least"), ("switch", "off")]).await;
    assert!(note.ends_with("off"), "{note}");
    app.wait_credited(&failing, WITHIN).await;

    // A filter, a refusal shown as the bank's words, and a page that does not exist.
    let (_, rolled_back) = page(http, format!("{ui}/live/transfers?status=ROLLED_BACK")).await;
    assert!(!rolled_back.contains(&tx_no), "{rolled_back}");
    let refused =
        submit(format!("{ui}/transfers"), &[("from_account", "1"), ("to_account", "2"), ("amount", "-1")]).await;
    assert!(refused.starts_with("error=") && refused.contains("invalid_amount"), "{refused}");
    assert_eq!(page(http, format!("{ui}/transfers/not-a-tx")).await.0, StatusCode::BAD_REQUEST);
    assert_eq!(page(http, format!("{ui}/no-such-page")).await.0, StatusCode::NOT_FOUND);

    // Settled: the console's total still adds up, nothing in flight.
    poll_until("nothing in flight on the console", WITHIN, || async {
        let money = page(http, format!("{ui}/live/money")).await.1;
        (by_id(&money, "total") == Some("1000.00") && by_id(&money, "in-flight") == Some("0.00")).then_some(())
    })
    .await;
    let _ = stop.send(());
    app.assert_conserved(0).await;
    app.shutdown().await;
}
