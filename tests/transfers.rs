//! Whole-system tests, one per DESIGN test-matrix row of the core transfer: a real
//! rocketmq-rust name server and broker, real databases (SQLite, or MariaDB/MySQL with
//! `TEST_MYSQL_URL`), bank1 and bank2 as they run in production.
#![recursion_limit = "512"]

mod helpers;

use std::any::Any;
use std::time::Duration;

use common::ids::{AccountNo, TxNo};
use common::message::{TransferMessage, MESSAGE_VERSION, TRANSFER_TAG};
use common::money::Amount;
use helpers::{minor, poll_until, TestStack};
use reqwest::StatusCode;
use rocketmq_client_rust::{DefaultMQProducer, LocalTransactionState, TransactionListener, TransactionMQProducer};
use rocketmq_model::common::message::message_ext::MessageExt;
use rocketmq_model::common::message::message_single::Message;
use rocketmq_model::common::message::MessageTrait;
use serde_json::json;

const DELIVERY: Duration = Duration::from_secs(60);

fn transfer_message(amount: &str) -> TransferMessage {
    TransferMessage {
        version: MESSAGE_VERSION,
        tx_no: TxNo::new_random(),
        from_account: AccountNo::parse("1").unwrap(),
        to_account: AccountNo::parse("2").unwrap(),
        amount: Amount::parse(amount).unwrap(),
        created_at_ms: common::now_ms(),
    }
}

fn mq_message(m: &TransferMessage) -> Message {
    Message::builder()
        .topic(common::mq::DEFAULT_TOPIC)
        .tags(TRANSFER_TAG)
        .key(m.tx_no.as_str())
        .body_slice(&m.to_json())
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn happy_path() {
    let app = TestStack::start().await;

    let reply = app.transfer("100.00").await;
    assert_eq!(reply["status"], "COMMITTED");
    assert_eq!(reply["message"], "COMMITTED");
    assert_eq!(reply["from_account"], "1");
    assert_eq!(reply["to_account"], "2");
    assert_eq!(reply["amount"], "100.00");
    let tx_no = reply["tx_no"].as_str().unwrap();

    let credit = app.wait_credited(tx_no, DELIVERY).await;
    assert_eq!(credit["source"], "MQ");
    assert_eq!(credit["amount"], "100.00");
    assert_eq!(credit["attempts"].as_array().unwrap().len(), 0);
    assert_eq!(app.balance1("1").await, "900.00");
    assert_eq!(app.balance2("2").await, "100.00");
    let (status, t) = app.bank1_transfer(tx_no).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(t["status"], "COMMITTED");
    assert_eq!(t["amount"], "100.00");

    app.assert_conserved(0).await;
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_change_nothing() {
    let app = TestStack::start().await;
    let cases = [
        (json!({"from_account": "999", "to_account": "2", "amount": "1.00"}), "unknown_account"),
        (json!({"from_account": "1", "to_account": "2", "amount": "1000.01"}), "insufficient_funds"),
        (json!({"from_account": "1", "to_account": "2", "amount": "0"}), "invalid_amount"),
        (json!({"from_account": "1", "to_account": "2", "amount": "0.00"}), "invalid_amount"),
        (json!({"from_account": "1", "to_account": "2", "amount": "-5.00"}), "invalid_amount"),
        (json!({"from_account": "1", "to_account": "2", "amount": "1.001"}), "invalid_amount"),
        (json!({"from_account": "1", "to_account": "2", "amount": "abc"}), "invalid_amount"),
        (json!({"from_account": "1", "to_account": "2", "amount": "1e3"}), "invalid_amount"),
        (json!({"from_account": "1", "to_account": "2", "amount": "99999999999999999999.00"}), "invalid_amount"),
        (json!({"from_account": "1", "to_account": "2", "amount": 100.0}), "invalid_amount"),
        (json!({"from_account": "1", "to_account": "2"}), "invalid_amount"),
        (json!({"from_account": "a b", "to_account": "2", "amount": "1.00"}), "invalid_account"),
        (json!({"from_account": "1", "to_account": "", "amount": "1.00"}), "invalid_account"),
        (json!({"from_account": 1, "to_account": "2", "amount": "1.00"}), "invalid_account"),
        (json!({"to_account": "2", "amount": "1.00"}), "invalid_account"),
        (json!(["not", "an", "object"]), "invalid_request"),
    ];
    for (body, code) in cases {
        let (status, reply) = app.post_transfer(body.clone()).await;
        assert!(status.is_client_error(), "{body} → {status} {reply}");
        assert_eq!(reply["error"]["code"], code, "{body} → {reply}");
        assert!(reply["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{reply}");
    }
    // Malformed JSON and a missing content type get the same error shape.
    let r = app
        .http
        .post(format!("{}/api/transfers", app.bank1_url))
        .header("content-type", "application/json")
        .body("{\"from_account\":")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(r.json::<serde_json::Value>().await.unwrap()["error"]["code"], "malformed_json");
    let r = app.http.post(format!("{}/api/transfers", app.bank1_url)).body("{}").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(r.json::<serde_json::Value>().await.unwrap()["error"]["code"], "unsupported_media_type");
    // Bad lookups.
    let (status, body) = app.bank1_transfer(&TxNo::new_random().to_string()).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::NOT_FOUND, Some("unknown_transfer")));
    let (status, body) = app.bank1_transfer("not-a-uuid").await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_tx_no")));
    let (status, body) = app.get(format!("{}/api/accounts/404", app.bank1_url)).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::NOT_FOUND, Some("unknown_account")));
    let r = app
        .http
        .put(format!("{}/admin/faults", app.bank1_url))
        .json(&json!({"unknown_at_leest": "1"}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_client_error());

    // Nothing moved, no transfer row was written, and the next transfer is the only credit.
    assert_eq!(app.balance1("1").await, "1000.00");
    assert_eq!(app.balance2("2").await, "0.00");
    let (rows,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM transfer").fetch_one(&app.bank1_pool).await.unwrap();
    assert_eq!(rows, 0, "a refusal writes no transfer row");
    let ok = app.transfer("1.00").await;
    app.wait_credited(ok["tx_no"].as_str().unwrap(), DELIVERY).await;
    assert_eq!(app.balance2("2").await, "1.00");
    app.assert_conserved(0).await;
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotent_retry_debits_once() {
    let app = TestStack::start().await;
    let body = json!({"from_account": "1", "to_account": "2", "amount": "25.00"});
    let (s1, first) = app.post_transfer_with(body.clone(), Some("order-42")).await;
    let (s2, again) = app.post_transfer_with(body.clone(), Some("order-42")).await;
    assert_eq!((s1, s2), (StatusCode::CREATED, StatusCode::CREATED));
    assert_eq!(first, again, "a replay returns the first result");
    let (s3, other) = app
        .post_transfer_with(json!({"from_account": "1", "to_account": "2", "amount": "26.00"}), Some("order-42"))
        .await;
    assert_eq!(s3, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(other["error"]["code"], "idempotency_key_reused");
    app.wait_credited(first["tx_no"].as_str().unwrap(), DELIVERY).await;
    assert_eq!(app.balance1("1").await, "975.00");
    assert_eq!(app.balance2("2").await, "25.00");
    app.assert_conserved(0).await;
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bank1_failure_rolls_back() {
    let app = TestStack::start().await;
    app.put_faults(&app.bank1_url, json!({"local_tx_fail_at_least": "50.00"})).await;

    let failed = app.transfer("60.00").await;
    assert_eq!(failed["status"], "ROLLED_BACK");
    assert_eq!(failed["message"], "ROLLED_BACK");
    assert!(failed["reason"].as_str().unwrap().contains("local_tx_fail_at_least"));
    let failed_tx = failed["tx_no"].as_str().unwrap();
    let (_, t) = app.bank1_transfer(failed_tx).await;
    assert_eq!(t["status"], "ROLLED_BACK");
    assert_eq!(app.balance1("1").await, "1000.00");

    // Below the threshold transfers go through; the rolled-back one never reaches bank2.
    let ok = app.transfer("10.00").await;
    assert_eq!(ok["status"], "COMMITTED");
    app.wait_credited(ok["tx_no"].as_str().unwrap(), DELIVERY).await;
    assert_eq!(app.credit(failed_tx).await["credited"], false);
    let rt = common::mq::MqRuntime::new("test").unwrap();
    let delivered = bank_transfer::query::messages_by_key(&rt, &app.namesrv_addr, common::mq::DEFAULT_TOPIC, failed_tx)
        .await
        .unwrap();
    assert!(delivered.is_empty(), "a rolled-back half message is never committed to the topic");
    let committed = bank_transfer::query::messages_by_key(
        &rt,
        &app.namesrv_addr,
        common::mq::DEFAULT_TOPIC,
        ok["tx_no"].as_str().unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(committed.len(), 1, "the committed transfer's message is found by its key");
    rt.shutdown().await;
    assert_eq!(app.balance1("1").await, "990.00");
    assert_eq!(app.balance2("2").await, "10.00");
    app.assert_conserved(0).await;
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_resolved_by_check_back() {
    let app = TestStack::start().await;
    app.put_faults(&app.bank1_url, json!({"unknown_at_least": "50.00"})).await;

    let reply = app.transfer("60.00").await;
    assert_eq!(reply["status"], "COMMITTED", "the debit committed locally");
    assert_eq!(reply["message"], "UNKNOWN", "bank1 answered UNKNOWN to the broker");
    let tx_no = reply["tx_no"].as_str().unwrap();
    assert_eq!(app.balance1("1").await, "940.00");

    // Only the broker's check-back can commit the message now.
    let credit = app.wait_credited(tx_no, DELIVERY).await;
    assert_eq!(credit["source"], "MQ");
    assert_eq!(app.balance2("2").await, "60.00");
    app.assert_conserved(0).await;
    app.shutdown().await;
}

/// A "bank1 instance" that sent its half message and died before its local transaction:
/// it answers nothing useful and is gone when the broker checks back.
struct CrashedBeforeCommit;

impl TransactionListener for CrashedBeforeCommit {
    fn execute_local_transaction(
        &self,
        _: &dyn MessageTrait,
        _: Option<&(dyn Any + Send + Sync)>,
    ) -> LocalTransactionState {
        LocalTransactionState::Unknown
    }
    fn check_local_transaction(&self, _: &MessageExt) -> LocalTransactionState {
        LocalTransactionState::Unknown
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_before_commit_check_back_rolls_back() {
    let app = TestStack::start().await;
    let rt = common::mq::MqRuntime::new("crashing-bank1").unwrap();
    let mut crashing = TransactionMQProducer::builder(rt.client())
        .producer_group(common::mq::DEFAULT_PRODUCER_GROUP)
        .name_server_addr(app.namesrv_addr.clone())
        .topics(vec![common::mq::DEFAULT_TOPIC])
        .transaction_listener(CrashedBeforeCommit)
        .build();
    crashing.start().await.unwrap();
    let msg = transfer_message("50.00");
    crashing.send_message_in_transaction::<(), _>(mq_message(&msg), None).await.unwrap();
    crashing.shutdown().await; // the instance is gone; the check-back reaches the live bank1

    let tx_no = msg.tx_no.to_string();
    let t = poll_until("check-back tombstone at bank1", DELIVERY, || async {
        let (status, t) = app.bank1_transfer(&tx_no).await;
        (status == StatusCode::OK).then_some(t)
    })
    .await;
    assert_eq!(t["status"], "ROLLED_BACK", "no local transaction ⇒ definitive rollback: {t}");

    // The dead instance's local transaction, arriving late, loses to the tombstone.
    let late = bank1::producer::run_local_tx(&app.bank1_pool, &msg, bank1::faults::Faults::default()).await;
    assert_eq!(late, bank1::producer::LocalOutcome::Refused(bank1::producer::Refusal::Superseded));
    assert_eq!(app.balance1("1").await, "1000.00");

    let ok = app.transfer("5.00").await;
    app.wait_credited(ok["tx_no"].as_str().unwrap(), DELIVERY).await;
    assert_eq!(app.credit(&tx_no).await["credited"], false);
    let delivered =
        bank_transfer::query::messages_by_key(&rt, &app.namesrv_addr, common::mq::DEFAULT_TOPIC, &tx_no).await.unwrap();
    assert!(delivered.is_empty(), "the rolled-back half message never reached the topic");
    rt.shutdown().await;
    assert_eq!(app.balance2("2").await, "5.00");
    app.assert_conserved(0).await;
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bank2_failure_retries_16_times_then_dlq() {
    let app = TestStack::start().await;
    app.put_faults(&app.bank2_url, json!({"consume_fail_at_least": "50.00"})).await;
    let reply = app.transfer("60.00").await;
    assert_eq!(reply["status"], "COMMITTED");
    let tx_no = reply["tx_no"].as_str().unwrap().to_owned();

    // The first delivery and 16 redeliveries on the ladder, then the dead-letter queue.
    let rt = common::mq::MqRuntime::new("test").unwrap();
    let dlq = format!("%DLQ%{}", common::mq::DEFAULT_CONSUMER_GROUP);
    let dead = poll_until("the message in the DLQ", Duration::from_secs(180), || async {
        let m = bank_transfer::query::messages_by_key(&rt, &app.namesrv_addr, &dlq, &tx_no).await.ok()?;
        (!m.is_empty()).then_some(m)
    })
    .await;
    let body = TransferMessage::parse(&dead[0].body().unwrap()).unwrap();
    assert_eq!(body.tx_no.as_str(), tx_no);
    rt.shutdown().await;

    let attempts = app.credit(&tx_no).await["attempts"].as_array().unwrap().clone();
    let mut seen: Vec<i64> = attempts.iter().map(|a| a["reconsume_times"].as_i64().unwrap()).collect();
    seen.sort_unstable();
    seen.dedup();
    assert_eq!(seen, (0..=16).collect::<Vec<_>>(), "reconsume_times 0..=16 were seen: {attempts:?}");
    assert!(attempts.iter().all(|a| a["error"].as_str().unwrap().contains("consume_fail_at_least")));

    // Dead-lettered: while the consumer goes on with other transfers, no more deliveries of
    // this one and nothing credited; its 60.00 is committed at bank1 and pending
    // (reconciliation / redrive recover it).
    let later = app.transfer("1.00").await;
    app.wait_credited(later["tx_no"].as_str().unwrap(), DELIVERY).await;
    let c = app.credit(&tx_no).await;
    assert_eq!(c["credited"], false);
    assert_eq!(c["attempts"].as_array().unwrap().len(), attempts.len(), "no delivery after the dead-lettering");
    assert_eq!(app.balance1("1").await, "939.00");
    assert_eq!(app.balance2("2").await, "1.00");
    app.assert_conserved(minor("60.00")).await;
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_delivery_credits_once() {
    let app = TestStack::start().await;
    let reply = app.transfer("100.00").await;
    let tx_no = reply["tx_no"].as_str().unwrap().to_owned();
    app.wait_credited(&tx_no, DELIVERY).await;

    // The broker delivers the same transfer again (a producer retry, a rebalance): twice.
    let rt = common::mq::MqRuntime::new("dup").unwrap();
    let mut producer = DefaultMQProducer::builder(rt.client())
        .producer_group("duplicate_sender")
        .name_server_addr(app.namesrv_addr.clone())
        .build();
    producer.start().await.unwrap();
    let original = TransferMessage {
        version: MESSAGE_VERSION,
        tx_no: TxNo::parse(&tx_no).unwrap(),
        from_account: AccountNo::parse("1").unwrap(),
        to_account: AccountNo::parse("2").unwrap(),
        amount: Amount::parse("100.00").unwrap(),
        created_at_ms: common::now_ms(),
    };
    for _ in 0..2 {
        producer.send(mq_message(&original)).await.unwrap();
    }
    producer.shutdown().await;
    rt.shutdown().await;
    poll_until("both duplicates consumed", DELIVERY, || async {
        (app.bank2_metric("bank2_duplicate_deliveries_total").await >= 2).then_some(())
    })
    .await;
    assert_eq!(app.balance2("2").await, "100.00", "credited once");

    // And concurrently, straight through the credit path: one winner.
    let msg = transfer_message("7.00");
    let mut runs = Vec::new();
    for _ in 0..8 {
        let pool = app.bank2_pool.clone();
        let m = msg.clone();
        runs.push(tokio::spawn(async move {
            bank2::credit::apply(&pool, bank2::faults::Faults::default(), &m, bank2::credit::Source::Mq).await
        }));
    }
    let mut credited = 0;
    for r in runs {
        match r.await.unwrap() {
            bank2::credit::CreditOutcome::Credited => credited += 1,
            bank2::credit::CreditOutcome::AlreadyCredited => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(credited, 1, "exactly one concurrent delivery credits");
    assert_eq!(app.balance2("2").await, "107.00");
    // (That 7.00 never left bank1: undo it to check conservation of the real transfers.)
    sqlx::query("UPDATE account_info SET balance = balance - 700 WHERE account_no = '2'")
        .execute(&app.bank2_pool)
        .await
        .unwrap();
    sqlx::query("DELETE FROM de_duplication WHERE tx_no = ?")
        .bind(msg.tx_no.as_str())
        .execute(&app.bank2_pool)
        .await
        .unwrap();
    app.assert_conserved(0).await;
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_transfers_conserve_money() {
    let app = TestStack::start().await;
    // Faults at every stage: some local transactions fail, some answer UNKNOWN (check-back),
    // and bank2 fails the largest credits until the fault is lifted (redelivery).
    app.put_faults(&app.bank1_url, json!({"local_tx_fail_at_least": "19.00", "unknown_at_least": "15.00"})).await;
    app.put_faults(&app.bank2_url, json!({"consume_fail_at_least": "17.00"})).await;

    let amounts: Vec<String> = (0..48).map(|i| format!("{}.{:02}", 1 + (i * 7) % 20, (i * 13) % 100)).collect();
    let mut posts = Vec::new();
    for a in &amounts {
        let http = app.http.clone();
        let url = format!("{}/api/transfers", app.bank1_url);
        let body = json!({"from_account": "1", "to_account": "2", "amount": a});
        posts.push(tokio::spawn(async move {
            let r = http.post(url).json(&body).send().await.unwrap();
            (r.status(), r.json::<serde_json::Value>().await.unwrap())
        }));
    }
    let mut committed = Vec::new();
    let mut rolled_back = Vec::new();
    for p in posts {
        let (status, reply) = p.await.unwrap();
        assert_eq!(status, StatusCode::CREATED, "{reply}");
        let tx = (reply["tx_no"].as_str().unwrap().to_owned(), minor(reply["amount"].as_str().unwrap()));
        match reply["status"].as_str().unwrap() {
            "COMMITTED" => committed.push(tx),
            "ROLLED_BACK" => rolled_back.push(tx),
            other => panic!("unexpected status {other}: {reply}"),
        }
    }
    assert!(!rolled_back.is_empty() && !committed.is_empty());
    let debited: i64 = committed.iter().map(|(_, a)| a).sum();
    assert_eq!(
        minor(&app.balance1("1").await),
        helpers::INITIAL_TOTAL_MINOR - debited,
        "bank1 debited exactly the committed transfers"
    );

    app.put_faults(&app.bank2_url, json!({"consume_fail_at_least": null})).await;
    for (tx, _) in &committed {
        app.wait_credited(tx, Duration::from_secs(120)).await;
    }
    for (tx, _) in &rolled_back {
        assert_eq!(app.credit(tx).await["credited"], false, "rolled back {tx} is never credited");
        let (_, t) = app.bank1_transfer(tx).await;
        assert_eq!(t["status"], "ROLLED_BACK");
    }
    assert_eq!(minor(&app.balance2("2").await), debited, "bank2 credited exactly the committed transfers");
    app.wait_conserved(0, DELIVERY).await;
    app.shutdown().await;
}
