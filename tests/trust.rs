//! Whole-system tests of trust (docs/ARCHITECTURE.md, "Trust"): only bank1's signed messages
//! move money at bank2 — a forged message is quarantined as `bad_signature`, a signed one that
//! contradicts an applied transfer as `conflicting_duplicate` — and every operator endpoint
//! needs its bearer token. Real broker, real databases; every test ends by checking that money
//! is conserved.
use crate::helpers;

use std::time::Duration;

use common::domain::ids::{AccountNo, TxNo};
use common::domain::message::{Body, TransferMessage, MESSAGE_VERSION};
use common::domain::money::Amount;
use helpers::{poll_until, TestStack};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

const DELIVERY: Duration = Duration::from_secs(60);

fn body(tx_no: &str, to: &str, amount: &str) -> Vec<u8> {
    TransferMessage {
        version: MESSAGE_VERSION,
        tx_no: TxNo::parse(tx_no).unwrap(),
        from_account: AccountNo::parse("1").unwrap(),
        to_account: AccountNo::parse(to).unwrap(),
        amount: Amount::parse(amount).unwrap(),
        created_at_ms: common::now_ms(),
    }
    .to_json()
}

async fn quarantined(app: &TestStack, n: usize) -> Vec<Value> {
    poll_until(&format!("{n} quarantined"), DELIVERY, || async {
        let q = app.quarantine2().await;
        (q.len() >= n).then_some(q)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_message_never_credited() {
    let app = TestStack::start().await;
    let stranger = common::domain::signing::Signer::generate();
    let (a, b, c) = (TxNo::new_random().to_string(), TxNo::new_random().to_string(), TxNo::new_random().to_string());
    // A plain producer that is not bank1: no signature, a stranger's key, bank2's own key.
    app.publish_raw(&[(Some(&a), body(&a, "2", "500.00"))]).await;
    app.publish(&[(Some(&b), body(&b, "2", "500.00"))], Some(&stranger)).await;
    app.publish(&[(Some(&c), body(&c, "2", "500.00"))], Some(&app.secrets.bank2_signer)).await;

    let q = quarantined(&app, 3).await;
    assert_eq!(q.len(), 3, "{q:?}");
    assert!(q.iter().all(|i| i["code"] == "bad_signature"), "{q:?}");
    assert!(q.iter().all(|i| i["reason"].as_str().unwrap().starts_with("bad_signature")), "{q:?}");
    for tx in [&a, &b, &c] {
        let credit = app.credit(tx).await;
        assert_eq!(credit["outcome"], "PENDING", "never applied: {credit}");
    }
    poll_until("the three counted", DELIVERY, || async {
        (app.bank2_metric("bank2_quarantined_total{reason=\"bad_signature\"}").await == 3).then_some(())
    })
    .await;
    assert_eq!(app.balance2("2").await, "0.00", "nothing minted");

    // The consumer kept going: a real transfer is credited.
    let ok = app.transfer("10.00").await;
    app.wait_credited(ok["tx_no"].as_str().unwrap(), DELIVERY).await;
    assert_eq!(app.balance2("2").await, "10.00");
    app.assert_conserved(0).await;
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_duplicate_with_other_amount_quarantined() {
    let app = TestStack::start().await;
    // A real transfer whose message waits for the broker's check-back.
    app.put_faults(&app.bank1_url, json!({"unknown_at_least": "50.00"})).await;
    let real = app.transfer("60.00").await;
    assert_eq!(real["message"], "UNKNOWN");
    let tx = real["tx_no"].as_str().unwrap().to_owned();

    // Meanwhile a forger reuses its tx_no with a larger amount: quarantined, never credited…
    app.publish_raw(&[(Some(&tx), body(&tx, "2", "600.00"))]).await;
    let q = quarantined(&app, 1).await;
    assert_eq!(q[0]["code"], "bad_signature", "{q:?}");
    assert_eq!(q[0]["tx_no"], tx.as_str());
    // …and the real message, committed by the check-back, is credited with the real amount.
    let c = app.wait_credited(&tx, DELIVERY).await;
    assert_eq!(c["amount"], "60.00", "{c}");
    assert_eq!(app.balance2("2").await, "60.00");

    // A body that contradicts the applied transfer, even signed with bank1's key (a bank1 bug
    // or a stolen key), is never called "already credited": it is quarantined.
    app.publish_signed(&[(Some(&tx), body(&tx, "2", "600.00"))]).await;
    let q = quarantined(&app, 2).await;
    let conflict = q.iter().find(|i| i["code"] == "conflicting_duplicate").unwrap_or_else(|| panic!("{q:?}"));
    assert_eq!(conflict["tx_no"], tx.as_str());
    assert!(conflict["reason"].as_str().unwrap().contains("600.00"), "{conflict}");
    // The counter follows the quarantine row's commit: poll, do not race it.
    poll_until("the conflicting duplicate counted", DELIVERY, || async {
        let n = app.bank2_metric("bank2_quarantined_total{reason=\"conflicting_duplicate\"}").await;
        (n == 1).then_some(())
    })
    .await;
    assert_eq!(app.bank2_metric("bank2_duplicate_deliveries_total").await, 0, "not counted as a duplicate");
    assert_eq!(app.balance2("2").await, "60.00");
    app.assert_conserved(0).await;
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_requires_token() {
    let app = TestStack::start().await;
    let (b1, b2) = (app.bank1_url.clone(), app.bank2_url.clone());
    let refund = json!({"tx_no": TxNo::new_random().to_string()});
    let routes: Vec<(Method, &str, &str, Option<Value>)> = vec![
        (Method::GET, &b1, "/admin/faults", None),
        (Method::PUT, &b1, "/admin/faults", Some(json!({"local_tx_fail_at_least": "0.01"}))),
        (Method::GET, &b1, "/admin/reconcile", None),
        (Method::POST, &b1, "/admin/reconcile", None),
        (Method::GET, &b2, "/admin/faults", None),
        (Method::PUT, &b2, "/admin/faults", Some(json!({"consume_fail_at_least": "0.01"}))),
        (Method::GET, &b2, "/admin/reconcile", None),
        (Method::POST, &b2, "/admin/reconcile", None),
        (Method::POST, &b2, "/admin/dlq/redrive", None),
        (Method::POST, &b2, "/admin/dlq/refund", Some(refund)),
        (Method::GET, &b2, "/admin/consumer", None),
        (Method::POST, &b2, "/admin/consumer/pause", None),
        (Method::POST, &b2, "/admin/consumer/resume", None),
    ];
    for (method, base, path, body) in &routes {
        // No token (what a cross-site page's body-less POST carries), a wrong one, the other bank's.
        let other = if *base == b1 { app.admin_token(&b2) } else { app.admin_token(&b1) };
        for token in [None, Some("not-the-token-at-all"), Some(other)] {
            let mut req = app.http.request(method.clone(), format!("{base}{path}"));
            if let Some(t) = token {
                req = req.bearer_auth(t);
            }
            if let Some(b) = body {
                req = req.json(b);
            }
            let r = req.send().await.unwrap();
            assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{method} {base}{path} with {token:?}");
            assert_eq!(r.headers()["www-authenticate"], "Bearer");
            let e: Value = r.json().await.unwrap();
            assert_eq!(e["error"]["code"], "unauthorized", "{e}");
            assert!(!e["error"]["message"].as_str().unwrap().is_empty());
        }
    }
    // The feeds want the service token, not an operator's; a transfer's own status stays public.
    for url in [format!("{b1}/api/transfers?after=0"), format!("{b2}/api/rejections?after=0")] {
        let r = app.http.get(&url).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{url}");
        let r = app.http.get(&url).bearer_auth(app.admin_token(&b1)).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{url} with an admin token");
    }
    let r = app
        .http
        .get(format!("{b2}/api/rejections?after=0"))
        .bearer_auth(app.secrets.bank2_feed.expose())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);

    // Nothing changed: no fault is set, the consumer runs, and a transfer goes through.
    let f1: Value = app.admin(Method::GET, &b1, "/admin/faults").send().await.unwrap().json().await.unwrap();
    let f2: Value = app.admin(Method::GET, &b2, "/admin/faults").send().await.unwrap().json().await.unwrap();
    assert_eq!(f1["local_tx_fail_at_least"], Value::Null, "{f1}");
    assert_eq!(f2["consume_fail_at_least"], Value::Null, "{f2}");
    let c: Value = app.admin(Method::GET, &b2, "/admin/consumer").send().await.unwrap().json().await.unwrap();
    assert_eq!(c["paused"], false);
    let ok = app.transfer("3.00").await;
    let tx = ok["tx_no"].as_str().unwrap();
    let (status, _) = app.bank1_transfer(tx).await;
    assert_eq!(status, StatusCode::OK, "a transfer's status needs no token");
    app.wait_credited(tx, DELIVERY).await;
    app.assert_conserved(0).await;
    app.shutdown().await;
}
