//! Whole-system tests of recovery (docs/ARCHITECTURE.md, "Reconcile" and "DLQ"):
//! reconciliation over bank1's feed, DLQ redrive, quarantine of poison messages. Real broker,
//! real databases; every test ends by checking that money is conserved.
use crate::helpers;

use std::time::Duration;

use common::domain::ids::{AccountNo, TxNo};
use common::domain::message::{Body, TransferMessage, MESSAGE_VERSION};
use common::domain::money::Amount;
use helpers::{minor, poll_until, TestStack};
use serde_json::{json, Value};

const DELIVERY: Duration = Duration::from_secs(60);
/// The 16-retry ladder at 1 s per step, with room for a slow machine.
const TO_DLQ: Duration = Duration::from_secs(180);

fn credited_list(report: &Value) -> Vec<String> {
    report["credited"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_owned()).collect()
}

fn message_for(tx_no: &str, amount: &str) -> Vec<u8> {
    TransferMessage {
        version: MESSAGE_VERSION,
        tx_no: TxNo::parse(tx_no).unwrap(),
        from_account: AccountNo::parse("1").unwrap(),
        to_account: AccountNo::parse("2").unwrap(),
        amount: Amount::parse(amount).unwrap(),
        created_at_ms: common::now_ms(),
    }
    .to_json()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_message_recovered_by_reconcile() {
    let app = TestStack::start().await;
    app.put_faults(&app.bank1_url, json!({"lose_message_at_least": "50.00"})).await;

    let lost = app.transfer("60.00").await;
    assert_eq!(lost["status"], "COMMITTED");
    assert_eq!(lost["message"], "ROLLED_BACK", "the notification is lost for good");
    let lost_tx = lost["tx_no"].as_str().unwrap().to_owned();
    let ok = app.transfer("1.00").await;
    app.wait_credited(ok["tx_no"].as_str().unwrap(), DELIVERY).await;
    assert_eq!(app.credit(&lost_tx).await["credited"], false);
    let rt = common::infra::mq::MqRuntime::new("test").unwrap();
    let on_topic =
        common::infra::mq::read::messages_by_key(&rt, &app.namesrv_addr, common::infra::mq::DEFAULT_TOPIC, &lost_tx)
            .await
            .unwrap();
    rt.shutdown().await;
    assert!(on_topic.is_empty(), "no message was ever delivered for the lost transfer");
    assert_eq!(app.balance1("1").await, "939.00");
    assert_eq!(app.balance2("2").await, "1.00");

    let report = poll_until("the feed reaches the lost transfer", DELIVERY, || async {
        let r = app.reconcile().await;
        (!credited_list(&r).is_empty()).then_some(r)
    })
    .await;
    assert_eq!(credited_list(&report), vec![lost_tx.clone()], "{report}");
    let c = app.credit(&lost_tx).await;
    assert_eq!(c["source"], "RECONCILE");
    assert_eq!(app.balance2("2").await, "61.00");

    let again = app.reconcile().await;
    assert!(credited_list(&again).is_empty(), "a second run credits nothing: {again}");
    assert_eq!(app.balance2("2").await, "61.00");
    app.assert_conserved(0).await;
    app.shutdown().await;
}

/// Inserts a transfer row with an explicit `seq` and debits, in one DB transaction, exactly
/// as bank1's local transaction does.
async fn commit_by_hand(pool: &sqlx::AnyPool, seq: i64, amount_minor: i64) -> String {
    let tx_no = TxNo::new_random().to_string();
    let mut tx = pool.begin().await.unwrap();
    sqlx::query(
        "INSERT INTO transfer (seq, tx_no, from_account, to_account, amount, status, created_at) \
         VALUES (?, ?, '1', '2', ?, 'COMMITTED', ?)",
    )
    .bind(seq)
    .bind(&tx_no)
    .bind(amount_minor)
    .bind(common::now_ms())
    .execute(&mut *tx)
    .await
    .unwrap();
    let r = sqlx::query("UPDATE account_info SET balance = balance - ? WHERE account_no = '1' AND balance >= ?")
        .bind(amount_minor)
        .bind(amount_minor)
        .execute(&mut *tx)
        .await
        .unwrap();
    assert_eq!(r.rows_affected(), 1);
    tx.commit().await.unwrap();
    tx_no
}

fn feed_tx_nos(page: &Value) -> Vec<String> {
    page["items"].as_array().unwrap().iter().map(|i| i["tx_no"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feed_does_not_skip_out_of_order_commits() {
    let app = TestStack::start().await;
    let first = app.transfer("3.00").await;
    let first_tx = first["tx_no"].as_str().unwrap().to_owned();
    app.wait_credited(&first_tx, DELIVERY).await;
    let (max_seq,): (i64,) = sqlx::query_as("SELECT MAX(seq) FROM transfer").fetch_one(&app.bank1_pool).await.unwrap();

    // B takes a higher seq and commits first; A's lower seq commits later.
    let b = commit_by_hand(&app.bank1_pool, max_seq + 10, 200).await;
    let page = poll_until("B in the feed", DELIVERY, || async {
        let p = app.feed("0").await;
        feed_tx_nos(&p).contains(&b).then_some(p)
    })
    .await;
    assert_eq!(feed_tx_nos(&page), vec![first_tx.clone(), b.clone()]);
    let cursor = page["next"].as_str().unwrap().to_owned();
    let report = app.reconcile().await;
    assert_eq!(credited_list(&report), vec![b.clone()], "{report}");
    assert_eq!(report["cursor_after"].to_string(), cursor, "the reconciler's cursor passed B");

    let a = commit_by_hand(&app.bank1_pool, max_seq + 5, 300).await;
    let after = poll_until("A in the feed after the cursor", DELIVERY, || async {
        let p = app.feed(&cursor).await;
        (!feed_tx_nos(&p).is_empty()).then_some(p)
    })
    .await;
    assert_eq!(feed_tx_nos(&after), vec![a.clone()], "A, committed after B with a lower seq, is not skipped");
    let report = app.reconcile().await;
    assert_eq!(credited_list(&report), vec![a.clone()], "{report}");

    // On a server database, the real race: A holds its seq in an open transaction while C
    // (a higher seq) commits and is read; A commits afterwards and still reaches the reader.
    if std::env::var("TEST_MYSQL_URL").is_ok_and(|u| !u.is_empty()) {
        // A's transaction takes its seq now and debits just before it commits (so it does not
        // hold account 1's row lock while C debits the same account).
        let mut open = app.bank1_pool.begin().await.unwrap();
        let held = TxNo::new_random().to_string();
        sqlx::query("INSERT INTO transfer (tx_no, from_account, to_account, amount, status, created_at) VALUES (?, '1', '2', 400, 'COMMITTED', ?)")
            .bind(&held)
            .bind(common::now_ms())
            .execute(&mut *open)
            .await
            .unwrap();
        let c = app.transfer("5.00").await;
        let c_tx = c["tx_no"].as_str().unwrap().to_owned();
        app.wait_credited(&c_tx, DELIVERY).await;
        poll_until("C in the feed", DELIVERY, || async {
            let p = app.feed("0").await;
            feed_tx_nos(&p).contains(&c_tx).then_some(())
        })
        .await;
        let r = app.reconcile().await;
        assert!(credited_list(&r).is_empty(), "C came by message: {r}");
        let r = sqlx::query("UPDATE account_info SET balance = balance - 400 WHERE account_no = '1'")
            .execute(&mut *open)
            .await
            .unwrap();
        assert_eq!(r.rows_affected(), 1);
        open.commit().await.unwrap();
        let r = poll_until("the held transfer reconciled", DELIVERY, || async {
            let r = app.reconcile().await;
            (!credited_list(&r).is_empty()).then_some(r)
        })
        .await;
        assert_eq!(credited_list(&r), vec![held], "{r}");
    }
    app.wait_conserved(0, DELIVERY).await;
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dlq_redrive_credits_once_after_fault_lifted() {
    let app = TestStack::start().await;
    app.put_faults(&app.bank2_url, json!({"consume_fail_at_least": "50.00"})).await;
    let t = app.transfer("60.00").await;
    let tx_no = t["tx_no"].as_str().unwrap().to_owned();
    app.wait_in_dlq(&tx_no, TO_DLQ).await;
    assert_eq!(app.credit(&tx_no).await["credited"], false);

    // Faults apply to every credit path: a redrive under the fault credits nothing.
    let blocked = app.redrive().await;
    let item = blocked["items"].as_array().unwrap().iter().find(|i| i["tx_no"] == tx_no.as_str()).cloned().unwrap();
    assert_eq!(item["outcome"], "failed", "{blocked}");
    assert_eq!(app.balance2("2").await, "0.00");

    app.put_faults(&app.bank2_url, json!({"consume_fail_at_least": null})).await;
    let first = app.redrive().await;
    let item = first["items"].as_array().unwrap().iter().find(|i| i["tx_no"] == tx_no.as_str()).cloned().unwrap();
    assert_eq!(item["outcome"], "credited", "{first}");
    assert_eq!(first["credited"], 1);
    let c = app.credit(&tx_no).await;
    assert_eq!((c["credited"].as_bool(), c["source"].as_str()), (Some(true), Some("DLQ_REDRIVE")));
    assert_eq!(app.balance2("2").await, "60.00");

    let second = app.redrive().await;
    assert_eq!(second["credited"], 0, "a second redrive credits nothing: {second}");
    let item = second["items"].as_array().unwrap().iter().find(|i| i["tx_no"] == tx_no.as_str()).cloned().unwrap();
    assert_eq!(item["outcome"], "already_credited");
    assert_eq!(app.balance2("2").await, "60.00");
    app.assert_conserved(0).await;
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dlq_redrive_skips_uncommitted() {
    let app = TestStack::start().await;
    // A transfer bank1 rolled back, and one bank1 never heard of (written long ago), both
    // signed with bank1's key, land in the DLQ: published straight onto it, as anyone on the
    // broker could (no fault sends them there: bank2's consumer would quarantine them).
    app.put_faults(&app.bank1_url, json!({"local_tx_fail_at_least": "50.00"})).await;
    let rolled_back = app.transfer("70.00").await;
    assert_eq!(rolled_back["status"], "ROLLED_BACK");
    let rb_tx = rolled_back["tx_no"].as_str().unwrap().to_owned();
    let unknown_tx = TxNo::new_random().to_string();
    let mut old = TransferMessage::parse(&message_for(&unknown_tx, "80.00")).unwrap();
    old.created_at_ms -= 3_600_000;
    let dlq = format!("%DLQ%{}", common::infra::mq::DEFAULT_CONSUMER_GROUP);
    let rt = common::infra::mq::MqRuntime::new("test-dlq-topic").unwrap();
    let stack = app.stack.as_ref().unwrap();
    stack::topics::ensure_topic(&rt, &app.namesrv_addr, &stack.broker_addr, &dlq, 1).await.unwrap();
    rt.shutdown().await;
    let signer = &app.secrets.bank1_signer;
    let dead: Vec<(Option<&str>, Vec<u8>, Option<String>)> =
        [(&rb_tx, message_for(&rb_tx, "70.00")), (&unknown_tx, old.to_json())]
            .into_iter()
            .map(|(tx, body)| {
                let signature = signer.sign(&body);
                (Some(tx.as_str()), body, Some(signature))
            })
            .collect();
    app.publish_on(&dlq, common::domain::message::TRANSFER_TAG, &dead).await;
    app.wait_in_dlq(&rb_tx, TO_DLQ).await;
    app.wait_in_dlq(&unknown_tx, TO_DLQ).await;

    let report = app.redrive().await;
    for tx in [&rb_tx, &unknown_tx] {
        let item = report["items"].as_array().unwrap().iter().find(|i| i["tx_no"] == tx.as_str()).cloned().unwrap();
        assert_eq!(item["outcome"], "not_committed_at_bank1", "{report}");
        assert_eq!(app.credit(tx).await["credited"], false);
    }
    assert_eq!(report["credited"], 0);
    assert_eq!(app.balance1("1").await, "1000.00");
    assert_eq!(app.balance2("2").await, "0.00");
    app.assert_conserved(0).await;
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_message_quarantined_consumer_continues() {
    let app = TestStack::start().await;
    let negative = String::from_utf8(message_for(&TxNo::new_random().to_string(), "1.00"))
        .unwrap()
        .replace("\"1.00\"", "\"-5.00\"");
    let future = String::from_utf8(message_for(&TxNo::new_random().to_string(), "1.00"))
        .unwrap()
        .replace("\"version\":1", "\"version\":99");
    let float =
        String::from_utf8(message_for(&TxNo::new_random().to_string(), "1.00")).unwrap().replace("\"1.00\"", "1.0");
    let poison: Vec<(Option<&str>, Vec<u8>)> = vec![
        (None, b"this is not json".to_vec()),
        (None, negative.into_bytes()),
        (None, future.into_bytes()),
        (None, float.into_bytes()),
    ];
    // Signed with bank1's key: what a bank1 bug could send (unsigned ones never get this far).
    app.publish_signed(&poison).await;
    let ok = app.transfer("10.00").await;
    app.wait_credited(ok["tx_no"].as_str().unwrap(), DELIVERY).await;

    let items = poll_until("4 quarantined messages", DELIVERY, || async {
        let (_, q) = app.get(format!("{}/api/quarantine", app.bank2_url)).await;
        let items = q["items"].as_array().unwrap().clone();
        (items.len() >= 4).then_some(items)
    })
    .await;
    assert_eq!(items.len(), 4, "each poison message quarantined once");
    assert!(items.iter().all(|i| !i["reason"].as_str().unwrap().is_empty()));
    assert!(items.iter().any(|i| i["reason"].as_str().unwrap().contains("version 99")));
    assert!(items.iter().any(|i| i["body"] == "this is not json"));
    // The consumer kept going: another transfer after the poison is credited too.
    let ok2 = app.transfer("2.00").await;
    app.wait_credited(ok2["tx_no"].as_str().unwrap(), DELIVERY).await;
    assert_eq!(app.balance2("2").await, "12.00");
    assert_eq!(app.bank2_metric("bank2_credit_failures_total").await, 0, "poison is not retried");
    app.assert_conserved(0).await;
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconcile_and_redelivery_race_credits_once() {
    let app = TestStack::start().await;
    app.put_faults(&app.bank2_url, json!({"consume_fail_at_least": "50.00"})).await;
    let t = app.transfer("60.00").await;
    let tx_no = t["tx_no"].as_str().unwrap().to_owned();
    app.wait_attempts(&tx_no, 2, DELIVERY).await;

    // Lift the fault while reconcile runs keep racing the broker's next redelivery.
    app.put_faults(&app.bank2_url, json!({"consume_fail_at_least": null})).await;
    let mut runs = Vec::new();
    for _ in 0..4 {
        let http = app.http.clone();
        let url = format!("{}/admin/reconcile?grace=0s", app.bank2_url);
        let token = app.secrets.bank2_admin.expose().to_owned();
        runs.push(tokio::spawn(async move {
            let mut credited = 0;
            for _ in 0..10 {
                let r: Value = http.post(&url).bearer_auth(&token).send().await.unwrap().json().await.unwrap();
                credited += r["credited"].as_array().map_or(0, Vec::len);
            }
            credited
        }));
    }
    let mut by_reconcile = 0;
    for r in runs {
        by_reconcile += r.await.unwrap();
    }
    let c = app.wait_credited(&tx_no, DELIVERY).await;
    assert!(by_reconcile <= 1, "reconcile credited it at most once ({by_reconcile})");
    assert_eq!(c["source"] == "RECONCILE", by_reconcile == 1, "{c}");
    if c["source"] == "RECONCILE" {
        // The broker still owes a redelivery: it must land as a duplicate, not a credit.
        poll_until("the pending redelivery seen as a duplicate", DELIVERY, || async {
            (app.bank2_metric("bank2_duplicate_deliveries_total").await >= 1).then_some(())
        })
        .await;
        assert_eq!(app.bank2_metric("bank2_credits_total{source=\"MQ\"}").await, 0);
    }
    let (rows,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM de_duplication WHERE tx_no = ?")
        .bind(&tx_no)
        .fetch_one(&app.bank2_pool)
        .await
        .unwrap();
    assert_eq!(rows, 1);
    assert_eq!(app.balance2("2").await, "60.00", "credited exactly once");
    app.assert_conserved(0).await;
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconcile_cursor_survives_restart() {
    let mut app = TestStack::start().await;
    app.put_faults(&app.bank1_url, json!({"lose_message_at_least": "50.00"})).await;
    let t1 = app.transfer("60.00").await["tx_no"].as_str().unwrap().to_owned();
    let r1 = poll_until("t1 reconciled", DELIVERY, || async {
        let r = app.reconcile().await;
        (!credited_list(&r).is_empty()).then_some(r)
    })
    .await;
    assert_eq!(credited_list(&r1), vec![t1.clone()]);
    let cursor = r1["cursor_after"].as_i64().unwrap();
    assert!(cursor > 0);

    app.restart_bank2().await;
    let state: Value =
        app.admin(reqwest::Method::GET, &app.bank2_url, "/admin/reconcile").send().await.unwrap().json().await.unwrap();
    assert_eq!(state["cursor"], cursor.to_string(), "the cursor survived the restart");

    let t2 = app.transfer("70.00").await["tx_no"].as_str().unwrap().to_owned();
    let r2 = poll_until("t2 reconciled", DELIVERY, || async {
        let r = app.reconcile().await;
        (!credited_list(&r).is_empty()).then_some(r)
    })
    .await;
    assert_eq!(r2["cursor_before"].as_i64(), Some(cursor), "resumed where it stopped");
    assert_eq!(credited_list(&r2), vec![t2.clone()]);
    assert_eq!(r2["already_credited"], 0, "nothing before the cursor was read again");
    assert_eq!(minor(&app.balance2("2").await), 13_000);
    app.assert_conserved(0).await;
    app.shutdown().await;
}
