//! Whole-system tests of the return of funds (docs/ARCHITECTURE.md, "Refund"): a transfer
//! bank2 can never apply is rejected under its dedup key and its money goes back to the sender
//! over RocketMQ (a transactional refund notice, bank2 → bank1); a lost notice is recovered by
//! bank1's reconciliation of bank2's rejection feed; the reconciler never stalls on a bad
//! transfer; an operator can refund a dead letter. Real broker, real databases; every test ends
//! by checking that money is conserved.
use crate::helpers;

use std::time::Duration;

use helpers::{minor, poll_until, TestStack};
use reqwest::StatusCode;
use serde_json::{json, Value};

const DELIVERY: Duration = Duration::from_secs(60);
/// The 16-retry ladder at 1 s per step, with room for a slow machine.
const TO_DLQ: Duration = Duration::from_secs(180);

fn tx_no(reply: &Value) -> String {
    reply["tx_no"].as_str().unwrap().to_owned()
}

fn list(report: &Value, key: &str) -> Vec<String> {
    report[key]
        .as_array()
        .unwrap_or_else(|| panic!("{key} in {report}"))
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect()
}

async fn transfer_to(app: &TestStack, to: &str, amount: &str) -> Value {
    let (status, body) = app.post_transfer(json!({"from_account": "1", "to_account": to, "amount": amount})).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_receiver_refunded_to_sender() {
    let app = TestStack::start().await;

    let reply = transfer_to(&app, "999", "5.00").await;
    assert_eq!(reply["status"], "COMMITTED", "bank1 cannot know bank2's accounts: it debits and sends");
    let tx = tx_no(&reply);

    // bank2 rejects it at once (no retry ladder) and the refund notice brings the money back.
    let t = app.wait_refunded(&tx, DELIVERY).await;
    assert!(t["reason"].as_str().unwrap().contains("unknown receiver account 999"), "{t}");
    assert_eq!(t["refund_source"], "MQ");
    assert!(t["refunded_at"].as_str().is_some_and(|s| s.ends_with('Z')), "{t}");
    assert_eq!(app.balance1("1").await, "1000.00", "the sender is whole again");
    let (steps, timeline) = app.timeline(&tx).await;
    let last = steps.last().unwrap();
    assert_eq!(last.0, "REFUNDED", "{timeline}");
    assert!(last.1.starts_with("MQ: ") && last.1.contains("unknown receiver account 999"), "{timeline}");

    let c = app.credit(&tx).await;
    assert_eq!(c["outcome"], "REJECTED", "{c}");
    assert_eq!(c["credited"], false);
    assert!(c["reason"].as_str().unwrap().contains("unknown receiver account 999"), "{c}");
    assert!(c["rejected_at"].as_str().is_some(), "{c}");
    assert_eq!(c["attempts"].as_array().unwrap().len(), 0, "a permanent failure does not walk the ladder");
    assert_eq!(app.bank2_metric("bank2_rejections_total{source=\"MQ\"}").await, 1);
    assert_eq!(app.bank2_metric("bank2_credit_failures_total").await, 0);

    // Rejected and credited exclude each other, and a later good transfer still goes through.
    let ok = app.transfer("2.00").await;
    app.wait_credited(&tx_no(&ok), DELIVERY).await;
    let (_, again) = app.bank1_transfer(&tx).await;
    assert_eq!(again["status"], "REFUNDED");
    assert_eq!(app.balance1("1").await, "998.00");
    app.assert_conserved(0).await;
    app.shutdown().await;
}

/// A receiver that refuses its credit fails the union of its credit group; the group's other
/// batches are then credited each alone, and the refused transfer alone goes back to bank1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_credit_in_a_group_does_not_hold_back_its_mates() {
    let app = TestStack::start().await;
    let metric = |name: &'static str| app.metric(&app.bank2_url, name);
    let members_before = metric("bank2_credit_group_members_total").await;

    // Hold the receiver's row at bank2 (on SQLite, the one write connection itself): the credits
    // of account 2 wait, and the consume threads' batches pile up for the next group.
    let mut hold = app.bank2_pool.begin().await.unwrap();
    sqlx::query("UPDATE account_info SET balance = balance WHERE account_no = '2'").execute(&mut *hold).await.unwrap();
    let mut good = Vec::new();
    for _ in 0..6 {
        good.push(tx_no(&transfer_to(&app, "2", "1.00").await));
    }
    let refused = tx_no(&transfer_to(&app, "999", "5.00").await);
    // On MySQL a batch of the refused one alone does not wait for account 2's row.
    poll_until("the credits of account 2 wait in the credit groups", DELIVERY, || async {
        (metric("bank2_credits_in_group_commit").await >= 6).then_some(())
    })
    .await;
    hold.rollback().await.unwrap();

    for tx in &good {
        let credit = app.wait_credited(tx, DELIVERY).await;
        assert_eq!(credit["source"], "MQ", "{credit}");
    }
    let t = app.wait_refunded(&refused, DELIVERY).await;
    assert!(t["reason"].as_str().unwrap().contains("unknown receiver account 999"), "{t}");
    assert_eq!(app.balance1("1").await, "994.00", "six credited, the refused one returned");
    assert_eq!(
        metric("bank2_credit_group_members_total").await - members_before,
        7,
        "all seven went through the groups"
    );
    assert_eq!(metric("bank2_credits_in_group_commit").await, 0, "every batch answered");
    assert_eq!(metric("bank2_duplicate_deliveries_total").await, 0, "each applied once, first time");
    app.wait_conserved(0, DELIVERY).await;
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_refund_recovered_by_reconcile() {
    let app = TestStack::start().await;
    app.put_faults(&app.bank2_url, json!({"lose_refund_at_least": "5.00"})).await;

    let tx = tx_no(&transfer_to(&app, "999", "6.00").await);
    app.wait_outcome(&tx, "REJECTED", DELIVERY).await;
    // The refund notice was rolled back: it is not on the refund topic, and bank1 still has
    // the transfer COMMITTED (the money is in flight between the banks).
    let rt = common::infra::mq::MqRuntime::new("test").unwrap();
    let notices =
        common::infra::mq::read::messages_by_key(&rt, &app.namesrv_addr, common::infra::mq::DEFAULT_REFUND_TOPIC, &tx)
            .await
            .unwrap();
    rt.shutdown().await;
    assert!(notices.is_empty(), "the refund notice is lost for good");
    let (_, t) = app.bank1_transfer(&tx).await;
    assert_eq!(t["status"], "COMMITTED");
    assert_eq!(app.balance1("1").await, "994.00");
    app.assert_conserved(minor("6.00")).await;

    // bank1 reconciles returns from bank2's rejection feed, once.
    let report = poll_until("the rejection feed reaches the lost refund", DELIVERY, || async {
        let r = app.reconcile_refunds().await;
        (!list(&r, "refunded").is_empty()).then_some(r)
    })
    .await;
    assert_eq!(list(&report, "refunded"), vec![tx.clone()], "{report}");
    let (_, t) = app.bank1_transfer(&tx).await;
    assert_eq!((t["status"].as_str(), t["refund_source"].as_str()), (Some("REFUNDED"), Some("RECONCILE")), "{t}");
    assert_eq!(app.balance1("1").await, "1000.00");

    let again = app.reconcile_refunds().await;
    assert!(list(&again, "refunded").is_empty(), "a second run refunds nothing: {again}");
    assert_eq!(app.balance1("1").await, "1000.00");
    app.assert_conserved(0).await;
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconcile_never_stalls_on_a_bad_transfer() {
    let app = TestStack::start().await;
    // Every notification of 50.00 or more is lost: only reconciliation can deliver these.
    app.put_faults(&app.bank1_url, json!({"lose_message_at_least": "50.00"})).await;
    // One transfer bank2 can never credit, one that fails for now, then a good one.
    app.put_faults(&app.bank2_url, json!({"consume_fail_at_least": "75.00"})).await;
    let bad = tx_no(&transfer_to(&app, "999", "60.00").await);
    let stuck = tx_no(&transfer_to(&app, "2", "75.00").await);
    let lost = tx_no(&transfer_to(&app, "2", "55.00").await);

    poll_until("all three in bank1's feed", DELIVERY, || async {
        let page = app.feed("0").await;
        let n = page["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|i| [&bad, &stuck, &lost].contains(&&i["tx_no"].as_str().unwrap().to_owned()))
            .count();
        (n == 3).then_some(())
    })
    .await;
    let report = app.reconcile().await;
    assert_eq!(list(&report, "rejected"), vec![bad.clone()], "the bad one is rejected: {report}");
    assert_eq!(list(&report, "credited"), vec![lost.clone()], "the one after it is credited: {report}");
    let pending = report["pending"].as_array().unwrap();
    assert_eq!(pending.len(), 1, "{report}");
    assert_eq!(pending[0]["tx_no"], stuck.as_str());
    assert!(pending[0]["error"].as_str().unwrap().contains("consume_fail_at_least"), "{report}");
    assert!(report.get("stopped_at").is_none(), "{report}");
    assert_eq!(app.credit(&lost).await["source"], "RECONCILE");

    // The transient one is retried on its own schedule once its cause is gone.
    app.put_faults(&app.bank2_url, json!({"consume_fail_at_least": null})).await;
    let retried = poll_until("the parked transfer retried and credited", DELIVERY, || async {
        let r = app.reconcile().await;
        list(&r, "credited").contains(&stuck).then_some(r)
    })
    .await;
    assert!(retried["pending"].as_array().unwrap().is_empty(), "{retried}");
    // The rejected one's money is back at bank1 (its refund notice was not lost).
    app.wait_refunded(&bad, DELIVERY).await;
    assert_eq!(app.balance2("2").await, "130.00");
    assert_eq!(app.balance1("1").await, "870.00");
    app.assert_conserved(0).await;
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dlq_refund_returns_funds_once() {
    let app = TestStack::start().await;
    app.put_faults(&app.bank2_url, json!({"consume_fail_at_least": "50.00"})).await;
    let tx = tx_no(&app.transfer("60.00").await);
    app.wait_in_dlq(&tx, TO_DLQ).await;
    assert!(app.bank2_metric("bank2_dead_letters_total").await >= 1);
    assert_eq!(app.bank2_metric("bank2_dlq_size").await, 1);
    assert_eq!(app.balance1("1").await, "940.00");

    // Refused where it does not apply.
    let (status, body) = app.dlq_refund(&common::domain::ids::TxNo::new_random().to_string()).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::CONFLICT, Some("not_dead_lettered")), "{body}");
    let (status, body) = app.dlq_refund("not-a-uuid").await;
    assert!(status.is_client_error(), "{status} {body}");

    let (status, first) = app.dlq_refund(&tx).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(first["outcome"], "rejected", "{first}");
    let t = app.wait_refunded(&tx, DELIVERY).await;
    assert!(t["reason"].as_str().unwrap().contains("dead-letter"), "{t}");
    assert_eq!(app.balance1("1").await, "1000.00");
    assert_eq!(app.credit(&tx).await["source"], "DLQ_REFUND");
    assert_eq!(app.bank2_metric("bank2_rejections_total{source=\"DLQ_REFUND\"}").await, 1);
    assert_eq!(app.bank2_metric("bank2_dlq_size").await, 0, "refunded: no longer waiting");
    let refunded = "bank1_refunds_total{source=\"MQ\",outcome=\"refunded\"}";
    poll_until("bank1 counts the refund", DELIVERY, || async {
        (app.metric(&app.bank1_url, refunded).await == 1).then_some(())
    })
    .await;

    // Once: a second refund changes nothing, and redrive no longer credits it, fault or not.
    let (status, second) = app.dlq_refund(&tx).await;
    assert_eq!((status, second["outcome"].as_str()), (StatusCode::OK, Some("already_rejected")), "{second}");
    app.put_faults(&app.bank2_url, json!({"consume_fail_at_least": null})).await;
    let redrive = app.redrive().await;
    let item = redrive["items"].as_array().unwrap().iter().find(|i| i["tx_no"] == tx.as_str()).cloned().unwrap();
    assert_eq!(item["outcome"], "already_rejected", "{redrive}");
    assert_eq!(redrive["credited"], 0);
    assert_eq!(redrive["complete"], true, "{redrive}");
    assert_eq!(app.balance2("2").await, "0.00");
    assert_eq!(app.balance1("1").await, "1000.00");
    app.assert_conserved(0).await;

    // And the other way round: a redriven (credited) dead letter cannot be refunded.
    app.put_faults(&app.bank2_url, json!({"consume_fail_at_least": "50.00"})).await;
    let tx2 = tx_no(&app.transfer("70.00").await);
    app.wait_in_dlq(&tx2, TO_DLQ).await;
    app.put_faults(&app.bank2_url, json!({"consume_fail_at_least": null})).await;
    let redrive = app.redrive().await;
    assert_eq!(redrive["credited"], 1, "{redrive}");
    let (status, body) = app.dlq_refund(&tx2).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::CONFLICT, Some("already_credited")), "{body}");
    assert_eq!(app.balance2("2").await, "70.00");
    app.assert_conserved(0).await;
    app.shutdown().await;
}
