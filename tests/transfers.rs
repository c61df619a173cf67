//! Whole-system tests of the core transfer, one per row of the test matrix in
//! docs/ARCHITECTURE.md: a real rocketmq-rust name server and broker, real databases (SQLite,
//! or MariaDB/MySQL with `TEST_MYSQL_URL`), bank1 and bank2 as they run in production.
use crate::helpers;

use std::any::Any;
use std::time::Duration;

use common::domain::ids::{AccountNo, TxNo};
use common::domain::message::{Body, TransferMessage, MESSAGE_VERSION, TRANSFER_TAG};
use common::domain::money::Amount;
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
        .topic(common::infra::mq::DEFAULT_TOPIC)
        .tags(TRANSFER_TAG)
        .key(m.tx_no.as_str())
        .body_slice(&m.to_json())
        .build()
        .unwrap()
}

/// The message as bank1 sends it: signed with its key.
fn signed_message(app: &TestStack, m: &TransferMessage) -> Message {
    let body = m.to_json();
    Message::builder()
        .topic(common::infra::mq::DEFAULT_TOPIC)
        .tags(TRANSFER_TAG)
        .key(m.tx_no.as_str())
        .body_slice(&body)
        .raw_property(common::domain::signing::SIGNATURE_PROPERTY, app.secrets.bank1_signer.sign(&body))
        .unwrap()
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
    // bank1's side of the timeline: every step of the happy path, the half message by its id.
    let (steps, timeline) = app.timeline(tx_no).await;
    let expected = [
        ("ACCEPTED".to_owned(), "".to_owned()),
        ("HALF_MESSAGE".to_owned(), "".to_owned()),
        ("LOCAL_COMMITTED".to_owned(), "".to_owned()),
        ("ANSWERED".to_owned(), "COMMIT".to_owned()),
    ];
    assert_eq!(steps, expected, "{timeline}");
    assert!(!timeline["steps"][1]["msg_id"].as_str().unwrap().is_empty(), "{timeline}");

    // Each bank's /metrics counts its own side, once.
    let bank1 = |name: &'static str| app.metric(&app.bank1_url, name);
    assert_eq!(bank1("bank1_transfers_total{status=\"COMMITTED\"}").await, 1);
    assert_eq!(bank1("bank1_local_transactions_total{outcome=\"committed\",answer=\"COMMIT\"}").await, 1);
    assert_eq!(bank1("http_requests_total{route=\"/api/transfers\",method=\"POST\",status=\"201\"}").await, 1);
    assert_eq!(bank1("bank2_credits_total").await, 0, "bank1 does not see bank2's counters");
    poll_until("bank2 counts the credit and its latency", DELIVERY, || async {
        let credits = app.bank2_metric("bank2_credits_total{source=\"MQ\"}").await;
        let timed = app.bank2_metric("bank2_debit_to_credit_seconds_count{source=\"MQ\"}").await;
        (credits == 1 && timed == 1).then_some(())
    })
    .await;
    assert_eq!(app.bank2_metric("bank1_transfers_total").await, 0, "bank2 does not see bank1's counters");

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
    assert_eq!(app.metric(&app.bank1_url, "bank1_idempotency_replays_total").await, 1);
    let refused = "bank1_transfers_refused_total{code=\"idempotency_key_reused\"}";
    assert_eq!(app.metric(&app.bank1_url, refused).await, 1);
    assert_eq!(app.metric(&app.bank1_url, "bank1_transfers_total").await, 1, "one transfer ran");
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
    let (steps, timeline) = app.timeline(failed_tx).await;
    let names: Vec<&str> = steps.iter().map(|(s, _)| s.as_str()).collect();
    assert_eq!(names, ["ACCEPTED", "HALF_MESSAGE", "ROLLED_BACK", "ANSWERED"], "{timeline}");
    assert!(steps[2].1.contains("local_tx_fail_at_least"), "{timeline}");
    assert_eq!(steps[3].1, "ROLLBACK");

    // Below the threshold transfers go through; the rolled-back one never reaches bank2.
    let ok = app.transfer("10.00").await;
    assert_eq!(ok["status"], "COMMITTED");
    app.wait_credited(ok["tx_no"].as_str().unwrap(), DELIVERY).await;
    assert_eq!(app.credit(failed_tx).await["credited"], false);
    let rt = common::infra::mq::MqRuntime::new("test").unwrap();
    let delivered =
        common::infra::mq::read::messages_by_key(&rt, &app.namesrv_addr, common::infra::mq::DEFAULT_TOPIC, failed_tx)
            .await
            .unwrap();
    assert!(delivered.is_empty(), "a rolled-back half message is never committed to the topic");
    let committed = common::infra::mq::read::messages_by_key(
        &rt,
        &app.namesrv_addr,
        common::infra::mq::DEFAULT_TOPIC,
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
    let answered = "bank1_local_transactions_total{outcome=\"committed\",answer=\"UNKNOWN\"}";
    assert_eq!(app.metric(&app.bank1_url, answered).await, 1);
    assert!(app.metric(&app.bank1_url, "bank1_check_backs_total{answer=\"COMMIT\"}").await >= 1);
    // The timeline shows the UNKNOWN answer, then the check-back that committed it.
    let (steps, timeline) = app.timeline(tx_no).await;
    let expected = [
        ("ACCEPTED".to_owned(), "".to_owned()),
        ("HALF_MESSAGE".to_owned(), "".to_owned()),
        ("LOCAL_COMMITTED".to_owned(), "".to_owned()),
        ("ANSWERED".to_owned(), "UNKNOWN".to_owned()),
        ("CHECK_BACK".to_owned(), "COMMIT".to_owned()),
    ];
    assert_eq!(steps[..5], expected, "{timeline}");
    assert!(steps[5..].iter().all(|s| *s == expected[4]), "only more COMMIT check-backs may follow: {timeline}");
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
    let rt = common::infra::mq::MqRuntime::new("crashing-bank1").unwrap();
    let mut crashing = TransactionMQProducer::builder(rt.client())
        .producer_group(common::infra::mq::DEFAULT_PRODUCER_GROUP)
        .name_server_addr(app.namesrv_addr.clone())
        .topics(vec![common::infra::mq::DEFAULT_TOPIC])
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
    let (steps, timeline) = app.timeline(&tx_no).await;
    let names: Vec<&str> = steps.iter().map(|(s, _)| s.as_str()).collect();
    assert_eq!(names[..3], ["ACCEPTED", "ROLLED_BACK", "CHECK_BACK"], "{timeline}");
    assert_eq!(steps[2].1, "ROLLBACK", "{timeline}");

    // The dead instance's local transaction, arriving late, loses to the tombstone.
    let half = bank1::producer::Half { msg_id: "late", at: common::now_ms() };
    let late = bank1::producer::run_local_tx(&app.bank1_pool, &msg, half, bank1::faults::Faults::default()).await;
    assert_eq!(late, bank1::producer::LocalOutcome::Refused(bank1::producer::Refusal::Superseded));
    assert_eq!(app.balance1("1").await, "1000.00");

    let ok = app.transfer("5.00").await;
    app.wait_credited(ok["tx_no"].as_str().unwrap(), DELIVERY).await;
    assert_eq!(app.credit(&tx_no).await["credited"], false);
    let delivered =
        common::infra::mq::read::messages_by_key(&rt, &app.namesrv_addr, common::infra::mq::DEFAULT_TOPIC, &tx_no)
            .await
            .unwrap();
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
    let rt = common::infra::mq::MqRuntime::new("test").unwrap();
    let dlq = format!("%DLQ%{}", common::infra::mq::DEFAULT_CONSUMER_GROUP);
    let dead = poll_until("the message in the DLQ", Duration::from_secs(180), || async {
        let m = common::infra::mq::read::messages_by_key(&rt, &app.namesrv_addr, &dlq, &tx_no).await.ok()?;
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
    // Each attempt names what came next: the next rung of the ladder, and after the 16th retry the DLQ.
    for a in &attempts {
        let n = a["reconsume_times"].as_i64().unwrap();
        let next = if n < 16 { ("RETRY", Some(3 + n)) } else { ("DLQ", None) };
        assert_eq!((a["then"].as_str().unwrap(), a["next_delay_level"].as_i64()), next, "{a}");
    }
    for rung in 0..=16 {
        let failed = format!("bank2_failed_deliveries_total{{reconsume_times=\"{rung}\"}}");
        assert!(app.bank2_metric(&failed).await >= 1, "{failed}");
    }
    assert!(app.bank2_metric("bank2_dead_letters_total").await >= 1);
    assert_eq!(app.bank2_metric("bank2_dlq_size").await, 1, "waiting for an operator");
    // The operators' view of the DLQ (GET /admin/dlq): the dead letter, neither credited nor
    // returned, with the deliveries it had.
    let r = app.admin(reqwest::Method::GET, &app.bank2_url, "/admin/dlq").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let dlq: serde_json::Value = r.json().await.unwrap();
    assert_eq!((dlq["total"].as_u64(), dlq["pending"].as_u64()), (Some(1), Some(1)), "{dlq}");
    let dead = &dlq["items"][0];
    assert_eq!(
        (dead["tx_no"].as_str(), dead["applied"].as_str(), dead["amount"].as_str()),
        (Some(tx_no.as_str()), Some("PENDING"), Some("60.00")),
        "{dead}"
    );
    assert!(dead["reconsume_times"].as_i64().unwrap() >= 16, "{dead}");

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

/// bank2 credits up to `BANK2_CONSUME_BATCH` messages in one database transaction. A message of
/// a batch that fails goes back to the retry ladder alone: its batch-mates are credited once and
/// never delivered again, and it is credited once the fault is lifted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_message_in_a_batch_is_retried_alone() {
    let app = TestStack::start().await;
    app.put_faults(&app.bank2_url, json!({"consume_fail_at_least": "50.00"})).await;
    // While bank2 does not pull, the transfers wait at the broker; it then gets them in batches.
    app.admin_post(&app.bank2_url, "/admin/consumer/pause", None).await;
    let mut mates = Vec::new();
    for _ in 0..20 {
        mates.push(app.transfer("1.00").await["tx_no"].as_str().unwrap().to_owned());
    }
    let failing = app.transfer("60.00").await["tx_no"].as_str().unwrap().to_owned();
    for _ in 0..20 {
        mates.push(app.transfer("1.00").await["tx_no"].as_str().unwrap().to_owned());
    }
    app.admin_post(&app.bank2_url, "/admin/consumer/resume", None).await;

    for tx_no in &mates {
        app.wait_credited(tx_no, DELIVERY).await;
    }
    let attempts = app.wait_attempts(&failing, 2, Duration::from_secs(60)).await;
    assert!(attempts.iter().all(|a| a["error"].as_str().unwrap().contains("consume_fail_at_least")), "{attempts:?}");
    app.put_faults(&app.bank2_url, json!({"consume_fail_at_least": null})).await;
    app.wait_credited(&failing, Duration::from_secs(60)).await;

    // No mate came back: a whole batch retried would redeliver its credited mates.
    assert_eq!(app.bank2_metric("bank2_duplicate_deliveries_total").await, 0, "batch-mates were delivered again");
    for tx_no in &mates {
        assert!(app.credit(tx_no).await["attempts"].as_array().unwrap().is_empty(), "{tx_no} failed an attempt");
    }
    assert_eq!(app.balance2("2").await, "100.00");
    app.assert_conserved(0).await;
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_delivery_credits_once() {
    let app = TestStack::start().await;
    let reply = app.transfer("100.00").await;
    let tx_no = reply["tx_no"].as_str().unwrap().to_owned();
    app.wait_credited(&tx_no, DELIVERY).await;

    // The broker delivers the same transfer again (a producer retry, a rebalance): twice.
    let rt = common::infra::mq::MqRuntime::new("dup").unwrap();
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
        producer.send(signed_message(&app, &original)).await.unwrap();
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
        let credits = app.bank2_credits.clone();
        let m = msg.clone();
        runs.push(tokio::spawn(async move { credits.apply(&m, bank2::store::Source::Mq).await }));
    }
    let mut credited = 0;
    for r in runs {
        match r.await.unwrap() {
            bank2::credit::Outcome::Credited => credited += 1,
            bank2::credit::Outcome::AlreadyCredited => {}
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

/// Debits that wait at the same moment commit in one database transaction (bank1's group
/// commit), and each keeps its own outcome: with every debit of account 1 held up until all 40
/// wait, the 10 that the balance covers commit and the 30 others are refused inside the same
/// groups, each with its own 422. Nothing else moves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn debits_waiting_together_commit_together_each_with_its_own_outcome() {
    let app = TestStack::start().await;
    let groups_before = app.metric(&app.bank1_url, "bank1_debit_groups_total").await;
    let members_before = app.metric(&app.bank1_url, "bank1_debit_group_members_total").await;
    let balance = minor(&app.balance1("1").await);
    assert_eq!(balance, helpers::INITIAL_TOTAL_MINOR, "account 1 holds all the money");

    // Hold account 1's row (on SQLite, the one write connection itself): every debit waits.
    let mut hold = app.bank1_pool.begin().await.unwrap();
    sqlx::query("UPDATE account_info SET balance = balance WHERE account_no = '1'").execute(&mut *hold).await.unwrap();
    let n = 40;
    let amount = balance / 10;
    let mut posts = Vec::new();
    for _ in 0..n {
        let http = app.http.clone();
        let url = format!("{}/api/transfers", app.bank1_url);
        let body =
            json!({"from_account": "1", "to_account": "2", "amount": common::domain::money::format_minor(amount)});
        posts.push(tokio::spawn(async move {
            let r = http.post(url).json(&body).send().await.unwrap();
            (r.status(), r.json::<serde_json::Value>().await.unwrap())
        }));
    }
    // Every request passed the pre-check (the balance covered each alone) and waits to debit.
    poll_until("all 40 debits wait in the group commit", Duration::from_secs(30), || async {
        (app.metric(&app.bank1_url, "bank1_debits_in_group_commit").await == n).then_some(())
    })
    .await;
    hold.rollback().await.unwrap();

    let mut committed = Vec::new();
    let mut refused = 0;
    for p in posts {
        match p.await.unwrap() {
            (StatusCode::CREATED, reply) => {
                assert_eq!(reply["status"], "COMMITTED", "{reply}");
                committed.push(reply["tx_no"].as_str().unwrap().to_owned());
            }
            (StatusCode::UNPROCESSABLE_ENTITY, reply) => {
                assert_eq!(reply["error"]["code"], "insufficient_funds", "{reply}");
                refused += 1;
            }
            (status, reply) => panic!("unexpected {status}: {reply}"),
        }
    }
    assert_eq!((committed.len(), refused), (10, 30), "the balance covers exactly 10");
    assert_eq!(minor(&app.balance1("1").await), 0, "bank1 debited exactly the committed transfers");
    let groups = app.metric(&app.bank1_url, "bank1_debit_groups_total").await - groups_before;
    let members = app.metric(&app.bank1_url, "bank1_debit_group_members_total").await - members_before;
    assert_eq!(members, n, "every debit went through the group commit");
    assert!(groups < members, "debits committed together: {members} debits in {groups} commits");
    assert_eq!(app.metric(&app.bank1_url, "bank1_debits_in_group_commit").await, 0, "every debit answered");

    for tx in &committed {
        app.wait_credited(tx, DELIVERY).await;
    }
    app.wait_conserved(0, DELIVERY).await;
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credits_waiting_together_commit_together() {
    let app = TestStack::start().await;
    let metric = |name: &'static str| app.metric(&app.bank2_url, name);
    let groups_before = metric("bank2_credit_groups_total").await;
    let members_before = metric("bank2_credit_group_members_total").await;
    let duplicates_before = metric("bank2_duplicate_deliveries_total").await;

    // Hold the receiver's row at bank2 (on SQLite, the one write connection itself): every
    // credit of account 2 waits, and the consume threads' batches pile up for the next group.
    let mut hold = app.bank2_pool.begin().await.unwrap();
    sqlx::query("UPDATE account_info SET balance = balance WHERE account_no = '2'").execute(&mut *hold).await.unwrap();
    let n = 8;
    let mut committed = Vec::new();
    for _ in 0..n {
        committed.push(app.transfer("1.00").await["tx_no"].as_str().unwrap().to_owned());
    }
    poll_until("all 8 credits wait in the credit groups", Duration::from_secs(30), || async {
        (metric("bank2_credits_in_group_commit").await == n).then_some(())
    })
    .await;
    hold.rollback().await.unwrap();

    for tx in &committed {
        let credit = app.wait_credited(tx, DELIVERY).await;
        assert_eq!(credit["source"], "MQ", "{credit}");
    }
    let groups = metric("bank2_credit_groups_total").await - groups_before;
    let members = metric("bank2_credit_group_members_total").await - members_before;
    assert_eq!(members, n, "every credit went through the credit groups");
    assert!(groups < members, "batches credited together: {members} credits in {groups} commits");
    assert_eq!(metric("bank2_credits_in_group_commit").await, 0, "every batch answered");
    assert_eq!(metric("bank2_duplicate_deliveries_total").await, duplicates_before, "each credited once, first time");
    app.wait_conserved(0, DELIVERY).await;
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotency_key_survives_crash_between_claim_and_send() {
    let app = TestStack::start().await;
    let body = json!({"from_account": "1", "to_account": "2", "amount": "25.00"});
    let fingerprint = bank1::transfers::TransferRequest::from_json(&body).unwrap().fingerprint();
    // A request claimed its key, then died before its half message: only the claim is left.
    let claim = |key: &'static str, age_ms: i64| {
        let pool = app.bank1_pool.clone();
        let fingerprint = fingerprint.clone();
        async move {
            let tx = TxNo::new_random().to_string();
            sqlx::query("INSERT INTO idempotency_key (idem_key, request_hash, tx_no, created_at) VALUES (?, ?, ?, ?)")
                .bind(key)
                .bind(&fingerprint)
                .bind(&tx)
                .bind(common::now_ms() - age_ms)
                .execute(&pool)
                .await
                .unwrap();
            tx
        }
    };

    // Young: the first request may still be running.
    claim("order-young", 0).await;
    let (status, reply) = app.post_transfer_with(body.clone(), Some("order-young")).await;
    assert_eq!((status, reply["error"]["code"].as_str()), (StatusCode::CONFLICT, Some("request_in_progress")));

    // Older than the claim timeout: settled from bank1's rows and run afresh, not 409 forever.
    let abandoned = claim("order-crashed", 120_000).await;
    let (status, first) = app.post_transfer_with(body.clone(), Some("order-crashed")).await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    assert_eq!(first["status"], "COMMITTED");
    assert_ne!(first["tx_no"], abandoned.as_str(), "a fresh transfer");
    let (status, again) = app.post_transfer_with(body.clone(), Some("order-crashed")).await;
    assert_eq!((status, &again), (StatusCode::CREATED, &first), "then replayed as usual");
    // The abandoned transfer is settled as never debited: its late local transaction loses.
    let (_, t) = app.bank1_transfer(&abandoned).await;
    assert_eq!(t["status"], "ROLLED_BACK", "{t}");
    let late = TransferMessage {
        version: MESSAGE_VERSION,
        tx_no: TxNo::parse(&abandoned).unwrap(),
        from_account: AccountNo::parse("1").unwrap(),
        to_account: AccountNo::parse("2").unwrap(),
        amount: Amount::parse("25.00").unwrap(),
        created_at_ms: common::now_ms(),
    };
    let half = bank1::producer::Half { msg_id: "late", at: common::now_ms() };
    let outcome = bank1::producer::run_local_tx(&app.bank1_pool, &late, half, bank1::faults::Faults::default()).await;
    assert_eq!(outcome, bank1::producer::LocalOutcome::Refused(bank1::producer::Refusal::Superseded));

    app.wait_credited(first["tx_no"].as_str().unwrap(), DELIVERY).await;
    assert_eq!(app.balance1("1").await, "975.00", "debited once");
    assert_eq!(app.balance2("2").await, "25.00");
    app.assert_conserved(0).await;
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_same_idempotency_key_debits_once() {
    let app = TestStack::start().await;
    let body = json!({"from_account": "1", "to_account": "2", "amount": "40.00"});
    let mut posts = Vec::new();
    for _ in 0..12 {
        let http = app.http.clone();
        let url = format!("{}/api/transfers", app.bank1_url);
        let body = body.clone();
        posts.push(tokio::spawn(async move {
            let r = http.post(url).header("Idempotency-Key", "order-race").json(&body).send().await.unwrap();
            (r.status(), r.json::<serde_json::Value>().await.unwrap())
        }));
    }
    let mut tx_nos = std::collections::BTreeSet::new();
    let mut created = 0;
    for p in posts {
        let (status, reply) = p.await.unwrap();
        match status {
            StatusCode::CREATED => {
                created += 1;
                assert_eq!(reply["status"], "COMMITTED", "{reply}");
                tx_nos.insert(reply["tx_no"].as_str().unwrap().to_owned());
            }
            StatusCode::CONFLICT => assert_eq!(reply["error"]["code"], "request_in_progress", "{reply}"),
            other => panic!("unexpected {other}: {reply}"),
        }
    }
    assert!(created >= 1);
    assert_eq!(tx_nos.len(), 1, "every success names the same transfer: {tx_nos:?}");
    // Once settled, every replay answers that one transfer.
    let (status, replay) = app.post_transfer_with(body.clone(), Some("order-race")).await;
    assert_eq!(status, StatusCode::CREATED);
    assert!(tx_nos.contains(replay["tx_no"].as_str().unwrap()));
    let (rows,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM transfer WHERE status = 'COMMITTED'")
        .fetch_one(&app.bank1_pool)
        .await
        .unwrap();
    assert_eq!(rows, 1, "one transfer row debited");
    app.wait_credited(tx_nos.first().unwrap(), DELIVERY).await;
    assert_eq!(app.balance1("1").await, "960.00", "debited once");
    app.assert_conserved(0).await;
    app.shutdown().await;
}

/// A client that keeps sending 1.00 transfers, each with its own Idempotency-Key, retrying an
/// indeterminate answer (no reply) with the same key as a careful client would. It records
/// every definitive reply.
struct SteadyClient {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    replies: std::sync::Arc<std::sync::Mutex<Vec<(StatusCode, serde_json::Value)>>>,
    task: tokio::task::JoinHandle<()>,
}

impl SteadyClient {
    fn start(app: &TestStack) -> Self {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let replies = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (http, url) = (app.http.clone(), format!("{}/api/transfers", app.bank1_url));
        let (s, r) = (stop.clone(), replies.clone());
        let task = tokio::spawn(async move {
            let body = json!({"from_account": "1", "to_account": "2", "amount": "1.00"});
            while !s.load(std::sync::atomic::Ordering::Relaxed) {
                let key = uuid::Uuid::new_v4().to_string();
                let reply = loop {
                    match http.post(&url).header("Idempotency-Key", &key).json(&body).send().await {
                        Ok(resp) => break (resp.status(), resp.json().await.unwrap_or_default()),
                        Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                    }
                };
                let unavailable = reply.0 == StatusCode::SERVICE_UNAVAILABLE;
                r.lock().unwrap().push(reply);
                if unavailable {
                    // A client backs off a little when the service says it is unavailable.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        });
        Self { stop, replies, task }
    }

    fn unavailable(&self) -> usize {
        self.replies.lock().unwrap().iter().filter(|(s, _)| *s == StatusCode::SERVICE_UNAVAILABLE).count()
    }

    fn committed(&self) -> usize {
        self.replies
            .lock()
            .unwrap()
            .iter()
            .filter(|(s, b)| *s == StatusCode::CREATED && b["status"] == "COMMITTED")
            .count()
    }

    async fn finish(self) -> Vec<(StatusCode, serde_json::Value)> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.task.await.unwrap();
        std::sync::Arc::try_unwrap(self.replies).unwrap().into_inner().unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_restart_mid_flow_loses_nothing() {
    let mut app = TestStack::start().await;
    let client = SteadyClient::start(&app);
    poll_until("transfers flowing before the crash", DELIVERY, || async { (client.committed() >= 5).then_some(()) })
        .await;

    // kill -9 of the broker with transfers in flight. It stays down until the client has been
    // refused often enough to open the RocketMQ client's circuit breaker (5 failures open it
    // for 30 s), then restarts on the same store.
    app.crash_broker_then(poll_until("503s while the broker is down", DELIVERY, || async {
        (client.unavailable() >= 8).then_some(())
    }))
    .await;
    let restarted = std::time::Instant::now();
    let before = client.committed();
    poll_until("bank1 accepts transfers again after the broker restart", Duration::from_secs(120), || async {
        (client.committed() >= before + 5).then_some(())
    })
    .await;
    println!("first COMMITTED transfers after the restart within {:?}", restarted.elapsed());
    let replies = client.finish().await;

    // Every answer is definitive and clean: 201 with a settled status, or 503 naming the cause.
    let mut committed = Vec::new();
    let mut unavailable = 0;
    for (status, body) in &replies {
        match *status {
            StatusCode::CREATED => {
                let tx_no = body["tx_no"].as_str().unwrap().to_owned();
                let settled = match body["status"].as_str().unwrap() {
                    "UNKNOWN" => {
                        poll_until("bank1 settles its own outcome", DELIVERY, || async {
                            let (_, t) = app.bank1_transfer(&tx_no).await;
                            (t["status"] != "UNKNOWN").then(|| t["status"].as_str().unwrap().to_owned())
                        })
                        .await
                    }
                    s => s.to_owned(),
                };
                match settled.as_str() {
                    "COMMITTED" => committed.push(tx_no),
                    "ROLLED_BACK" => {}
                    other => panic!("unexpected status {other}: {body}"),
                }
            }
            StatusCode::SERVICE_UNAVAILABLE => {
                assert_eq!(body["error"]["code"], "unavailable", "{body}");
                unavailable += 1;
            }
            other => panic!("unexpected answer {other}: {body}"),
        }
    }
    println!("{} transfers committed, {unavailable} answered 503 during the outage", committed.len());

    // Nothing lost: every committed transfer is credited once (by its message, redelivered
    // after the restart), and nothing else was debited — a 503 left nothing behind.
    for tx in &committed {
        app.wait_credited(tx, Duration::from_secs(180)).await;
    }
    println!("every committed transfer credited {:?} after the restart", restarted.elapsed());
    let debited = i64::try_from(committed.len()).unwrap() * 100;
    assert_eq!(
        minor(&app.balance1("1").await),
        helpers::INITIAL_TOTAL_MINOR - debited,
        "bank1 debited exactly the committed"
    );
    app.wait_conserved(0, DELIVERY).await;
    app.shutdown().await;
}
