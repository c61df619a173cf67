//! Whole-system test harness over the one stack builder ([`stack::StackBuilder`]): a real
//! name server and broker (children of the `bank-transfer` binary, free ports, their own
//! store), real databases (a fresh SQLite pair, or fresh MariaDB/MySQL databases when
//! `TEST_MYSQL_URL` is set), and bank1 + bank2 running in the test's runtime. Time is
//! compressed with broker settings, never sleeps: waits are polls with a deadline.
#![allow(dead_code)]

use std::future::Future;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};
use sqlx::AnyPool;
use stack::databases::DbChoice;
use stack::embedded::BrokerTuning;
use stack::secrets::Secrets;
use stack::{Part, Stack, StackBuilder};

/// The seed: bank1 account 1 holds 1000.00, bank2 account 2 holds 0.00.
pub const INITIAL_TOTAL_MINOR: i64 = 100_000;

pub struct Opts {
    pub delay_levels: String,
    pub transaction_timeout_ms: u64,
    pub transaction_check_interval_ms: u64,
    /// Where bank2 finds bank1 (instead of bank1 itself), and the CA file it trusts there.
    pub bank2_bank1: Option<(String, Option<std::path::PathBuf>)>,
    /// Where bank1 finds bank2 (instead of bank2 itself).
    pub bank1_bank2_url: Option<String>,
}

impl Default for Opts {
    fn default() -> Self {
        Self {
            // Every retry 1 s apart: the 16-step ladder in seconds instead of hours.
            delay_levels: vec!["1s"; 18].join(" "),
            // Check-backs within seconds. The stack's op-batch interval (200 ms) keeps the
            // timeout far above the time the broker takes to record a commit, so no half
            // message is checked back and committed twice (docs/ARCHITECTURE.md, "Check-backs
            // and double commits"); the retry-ladder test counts deliveries exactly.
            transaction_timeout_ms: 3000,
            transaction_check_interval_ms: 5000,
            bank2_bank1: None,
            bank1_bank2_url: None,
        }
    }
}

pub struct TestStack {
    pub http: reqwest::Client,
    pub bank1_url: String,
    pub bank2_url: String,
    pub bank1_pool: AnyPool,
    pub bank2_pool: AnyPool,
    /// bank2's one apply path, for tests that drive it directly.
    pub bank2_credits: bank2::credit::Credits,
    pub namesrv_addr: String,
    /// The keys and tokens both banks run with.
    pub secrets: Secrets,
    pub stack: Option<Stack>,
}

/// The tests' databases: fresh MariaDB/MySQL ones on `TEST_MYSQL_URL` when it is set, else
/// SQLite files.
pub fn db_choice() -> DbChoice {
    match std::env::var("TEST_MYSQL_URL") {
        Ok(url) if !url.is_empty() => DbChoice::MysqlScratch { server_url: url },
        _ => DbChoice::Sqlite,
    }
}

fn init_logs() {
    if std::env::var_os("TEST_LOG").is_some() {
        common::infra::telemetry::init(common::infra::telemetry::DEFAULT_FILTER);
    }
}

impl TestStack {
    pub async fn start() -> Self {
        Self::start_with(Opts::default()).await
    }

    pub async fn start_with(opts: Opts) -> Self {
        init_logs();
        let tuning = BrokerTuning {
            message_delay_level: Some(opts.delay_levels.clone()),
            transaction_timeout: Some(opts.transaction_timeout_ms),
            transaction_check_interval: Some(opts.transaction_check_interval_ms),
            small_store: true,
            ..BrokerTuning::default()
        };
        let stack = StackBuilder::new(env!("CARGO_BIN_EXE_bank-transfer"))
            .database(db_choice())
            .tuning(tuning)
            .configure(move |s1, s2| {
                // Hermetic: no fault from the environment; reconciliation runs when a test asks
                // (POST /admin/reconcile on either bank), with no grace period.
                s1.faults = Default::default();
                s1.common.reconcile_interval = Duration::ZERO;
                s1.common.reconcile_grace = Duration::ZERO;
                s2.faults = Default::default();
                s2.common.reconcile_interval = Duration::ZERO;
                s2.common.reconcile_grace = Duration::ZERO;
                if let Some((url, ca)) = &opts.bank2_bank1 {
                    s2.common.peer_url = url.clone();
                    s2.common.peer_ca_file = ca.clone();
                }
                if let Some(url) = &opts.bank1_bank2_url {
                    s1.common.peer_url = url.clone();
                }
            })
            .start()
            .await
            .expect("start the stack");
        Self {
            http: reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap(),
            bank1_url: stack.bank1_url.clone(),
            bank2_url: stack.bank2_url.clone(),
            bank1_pool: stack.bank1().shared.db.pool.clone(),
            bank2_pool: stack.bank2().shared.db.pool.clone(),
            bank2_credits: stack.bank2().credits.clone(),
            namesrv_addr: stack.namesrv_addr.clone(),
            secrets: stack.secrets.clone(),
            stack: Some(stack),
        }
    }

    fn stack_mut(&mut self) -> &mut Stack {
        self.stack.as_mut().expect("the stack runs")
    }

    /// Stops bank2 (consumer, reconciler, HTTP) and starts it again on the same database and
    /// port: what a deploy does.
    pub async fn restart_bank2(&mut self) {
        self.stack_mut().restart(Part::Bank2).await.expect("restart bank2");
        let stack = self.stack.as_ref().expect("the stack runs");
        self.bank2_pool = stack.bank2().shared.db.pool.clone();
        self.bank2_credits = stack.bank2().credits.clone();
    }

    /// Kills the broker (SIGKILL) and starts it again on the same store.
    pub async fn crash_and_restart_broker(&mut self) {
        self.stack_mut().crash_and_restart(Part::Broker).await.expect("restart the broker");
    }

    /// Kills the broker (SIGKILL), runs `while_down`, then starts the broker again on the same
    /// store.
    pub async fn crash_broker_then<F: Future>(&mut self, while_down: F) -> F::Output {
        self.stack_mut().crash_and_restart_after(Part::Broker, while_down).await.expect("restart the broker")
    }

    /// Stops the banks, then the servers, and drops MySQL test databases.
    pub async fn shutdown(mut self) {
        if let Some(s) = self.stack.take() {
            s.stop().await;
        }
    }

    // ---- bank1 ----

    pub async fn post_transfer(&self, body: Value) -> (StatusCode, Value) {
        self.post_transfer_with(body, None).await
    }

    pub async fn post_transfer_with(&self, body: Value, idempotency_key: Option<&str>) -> (StatusCode, Value) {
        let mut req = self.http.post(format!("{}/api/transfers", self.bank1_url)).json(&body);
        if let Some(k) = idempotency_key {
            req = req.header("Idempotency-Key", k);
        }
        let r = req.send().await.expect("POST /api/transfers");
        let status = r.status();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// A transfer 1 → 2 of `amount`; returns the reply body, asserting 201.
    pub async fn transfer(&self, amount: &str) -> Value {
        let (status, body) =
            self.post_transfer(json!({"from_account": "1", "to_account": "2", "amount": amount})).await;
        assert_eq!(status, StatusCode::CREATED, "transfer {amount}: {body}");
        body
    }

    pub async fn get(&self, url: String) -> (StatusCode, Value) {
        let r = self.http.get(url).send().await.expect("GET");
        let status = r.status();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn bank1_transfer(&self, tx_no: &str) -> (StatusCode, Value) {
        self.get(format!("{}/api/transfers/{tx_no}", self.bank1_url)).await
    }

    /// bank1's timeline of a transfer: its steps as `(step, detail)`, oldest first, and the
    /// whole reply.
    pub async fn timeline(&self, tx_no: &str) -> (Vec<(String, String)>, Value) {
        let (status, t) = self.get(format!("{}/api/transfers/{tx_no}/timeline", self.bank1_url)).await;
        assert_eq!(status, StatusCode::OK, "{t}");
        let steps = t["steps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| (s["step"].as_str().unwrap().to_owned(), s["detail"].as_str().unwrap_or("").to_owned()))
            .collect();
        (steps, t)
    }

    pub async fn balance1(&self, account: &str) -> String {
        balance_of(self.get(format!("{}/api/accounts/{account}", self.bank1_url)).await)
    }

    pub async fn balance2(&self, account: &str) -> String {
        balance_of(self.get(format!("{}/api/accounts/{account}", self.bank2_url)).await)
    }

    pub async fn credit(&self, tx_no: &str) -> Value {
        let (status, body) = self.get(format!("{}/api/credits/{tx_no}", self.bank2_url)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }

    /// The operator token of the bank at `bank_url`.
    pub fn admin_token(&self, bank_url: &str) -> &str {
        if bank_url == self.bank1_url {
            self.secrets.bank1_admin.expose()
        } else {
            self.secrets.bank2_admin.expose()
        }
    }

    /// An operator request (`/admin/*`) with the bank's token.
    pub fn admin(&self, method: reqwest::Method, bank_url: &str, path: &str) -> reqwest::RequestBuilder {
        self.http.request(method, format!("{bank_url}{path}")).bearer_auth(self.admin_token(bank_url))
    }

    pub async fn put_faults(&self, bank_url: &str, faults: Value) -> Value {
        let r = self.admin(reqwest::Method::PUT, bank_url, "/admin/faults").json(&faults).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        r.json().await.unwrap()
    }

    pub async fn bank2_metric(&self, name: &str) -> u64 {
        self.metric(&self.bank2_url, name).await
    }

    /// A value of `bank_url`'s `GET /metrics` ([`stack::api::sample`]: a bare name sums its
    /// label sets).
    pub async fn metric(&self, bank_url: &str, name: &str) -> u64 {
        let text = self.http.get(format!("{bank_url}/metrics")).send().await.unwrap().text().await.unwrap();
        stack::api::sample(&text, name) as u64
    }

    /// An operator POST on `bank_url`; asserts 200 and returns the body.
    pub async fn admin_post(&self, bank_url: &str, path: &str, body: Option<Value>) -> Value {
        let mut req = self.admin(reqwest::Method::POST, bank_url, path);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.unwrap();
        let status = r.status();
        let body: Value = r.json().await.unwrap();
        assert_eq!(status, StatusCode::OK, "POST {path}: {body}");
        body
    }

    /// `POST /admin/reconcile?grace=0s` on bank2: the report.
    pub async fn reconcile(&self) -> Value {
        self.admin_post(&self.bank2_url, "/admin/reconcile?grace=0s", None).await
    }

    /// `POST /admin/reconcile?grace=0s` on bank1 (refunds from bank2's rejection feed).
    pub async fn reconcile_refunds(&self) -> Value {
        self.admin_post(&self.bank1_url, "/admin/reconcile?grace=0s", None).await
    }

    /// `POST /admin/dlq/redrive` on bank2: the report.
    pub async fn redrive(&self) -> Value {
        self.admin_post(&self.bank2_url, "/admin/dlq/redrive", None).await
    }

    /// bank1's feed page after `after` (with bank2's feed token, as bank2 reads it).
    pub async fn feed(&self, after: &str) -> Value {
        let r = self
            .http
            .get(format!("{}/api/transfers?after={after}&limit=1000", self.bank1_url))
            .bearer_auth(self.secrets.bank1_feed.expose())
            .send()
            .await
            .unwrap();
        let status = r.status();
        let body: Value = r.json().await.unwrap_or(Value::Null);
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }

    /// Waits until bank2 has recorded at least `n` failed attempts for `tx_no`.
    pub async fn wait_attempts(&self, tx_no: &str, n: usize, within: Duration) -> Vec<Value> {
        poll_until(&format!("{n} failed attempts of {tx_no}"), within, || async {
            let a = self.credit(tx_no).await["attempts"].as_array().unwrap().clone();
            (a.len() >= n).then_some(a)
        })
        .await
    }

    /// Waits until `tx_no` is in the dead-letter queue `%DLQ%consumer_group_txmsg_bank2`.
    pub async fn wait_in_dlq(&self, tx_no: &str, within: Duration) {
        let rt = common::infra::mq::MqRuntime::new("test-dlq").unwrap();
        let dlq = format!("%DLQ%{}", common::infra::mq::DEFAULT_CONSUMER_GROUP);
        poll_until(&format!("{tx_no} in {dlq}"), within, || async {
            let m = common::infra::mq::read::messages_by_key(&rt, &self.namesrv_addr, &dlq, tx_no).await.ok()?;
            (!m.is_empty()).then_some(())
        })
        .await;
        rt.shutdown().await;
    }

    /// Publishes raw message bodies on the transfer topic, as any producer could: unsigned.
    pub async fn publish_raw(&self, bodies: &[(Option<&str>, Vec<u8>)]) {
        self.publish(bodies, None).await
    }

    /// Publishes bodies signed with bank1's key: what a bank1 bug (or a stolen key) could send.
    pub async fn publish_signed(&self, bodies: &[(Option<&str>, Vec<u8>)]) {
        self.publish(bodies, Some(&self.secrets.bank1_signer)).await
    }

    /// Publishes on the transfer topic with a plain producer, each body signed by `signer` if given.
    pub async fn publish(&self, bodies: &[(Option<&str>, Vec<u8>)], signer: Option<&common::domain::signing::Signer>) {
        let signed: Vec<(Option<&str>, Vec<u8>, Option<String>)> =
            bodies.iter().map(|(k, b)| (*k, b.clone(), signer.map(|s| s.sign(b)))).collect();
        self.publish_on(common::infra::mq::DEFAULT_TOPIC, common::domain::message::TRANSFER_TAG, &signed).await
    }

    /// Publishes on `topic` with a plain producer that is not a bank's: each body with its key
    /// and its `SIGNATURE` property, if given.
    pub async fn publish_on(&self, topic: &str, tag: &str, messages: &[(Option<&str>, Vec<u8>, Option<String>)]) {
        use rocketmq_model::common::message::message_single::Message;
        let rt = common::infra::mq::MqRuntime::new("test-raw").unwrap();
        let mut p = rocketmq_client_rust::DefaultMQProducer::builder(rt.client())
            .producer_group("test_raw_sender")
            .name_server_addr(self.namesrv_addr.clone())
            .build();
        p.start().await.unwrap();
        for (key, body, signature) in messages {
            let mut b = Message::builder().topic(topic).tags(tag).body_slice(body);
            if let Some(k) = key {
                b = b.key(*k);
            }
            if let Some(s) = signature {
                b = b.raw_property(common::domain::signing::SIGNATURE_PROPERTY, s.clone()).unwrap();
            }
            p.send(b.build().unwrap()).await.unwrap();
        }
        p.shutdown().await;
        rt.shutdown().await;
    }

    /// The half messages the broker keeps for `tx_no`, read back by key as any client of the
    /// broker can (`QUERY_MESSAGE` on `RMQ_SYS_TRANS_HALF_TOPIC`, like `mqadmin queryMsgByKey`).
    pub async fn half_messages(&self, tx_no: &str) -> Vec<rocketmq_model::common::message::message_ext::MessageExt> {
        let rt = common::infra::mq::MqRuntime::new("test-half").unwrap();
        let found = poll_until(&format!("the half message of {tx_no}"), Duration::from_secs(30), || async {
            let m =
                common::infra::mq::read::messages_by_key(&rt, &self.namesrv_addr, "RMQ_SYS_TRANS_HALF_TOPIC", tx_no)
                    .await
                    .ok()?;
            (!m.is_empty()).then_some(m)
        })
        .await;
        rt.shutdown().await;
        found
    }

    /// bank1's quarantine (refund notices).
    pub async fn quarantine1(&self) -> Vec<Value> {
        let (_, q) = self.get(format!("{}/api/quarantine", self.bank1_url)).await;
        q["items"].as_array().cloned().unwrap_or_default()
    }

    /// Waits until bank1 shows `tx_no` REFUNDED; returns bank1's view of it.
    pub async fn wait_refunded(&self, tx_no: &str, within: Duration) -> Value {
        poll_until(&format!("{tx_no} refunded at bank1"), within, || async {
            let (_, t) = self.bank1_transfer(tx_no).await;
            (t["status"] == "REFUNDED").then_some(t)
        })
        .await
    }

    /// Waits until bank2 shows `tx_no` with `outcome` (CREDITED, REJECTED); returns its record.
    pub async fn wait_outcome(&self, tx_no: &str, outcome: &str, within: Duration) -> Value {
        poll_until(&format!("{tx_no} {outcome} at bank2"), within, || async {
            let c = self.credit(tx_no).await;
            (c["outcome"] == outcome).then_some(c)
        })
        .await
    }

    /// `POST /admin/dlq/refund {"tx_no"}` on bank2: status and body.
    pub async fn dlq_refund(&self, tx_no: &str) -> (StatusCode, Value) {
        let r = self
            .admin(reqwest::Method::POST, &self.bank2_url, "/admin/dlq/refund")
            .json(&json!({ "tx_no": tx_no }))
            .send()
            .await
            .unwrap();
        let status = r.status();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// bank2's quarantine, newest first.
    pub async fn quarantine2(&self) -> Vec<Value> {
        let (_, q) = self.get(format!("{}/api/quarantine", self.bank2_url)).await;
        q["items"].as_array().cloned().unwrap_or_default()
    }

    /// Waits until `tx_no` is credited at bank2; returns the credit record.
    pub async fn wait_credited(&self, tx_no: &str, within: Duration) -> Value {
        poll_until(&format!("{tx_no} credited"), within, || async {
            let c = self.credit(tx_no).await;
            (c["credited"] == true).then_some(c)
        })
        .await
    }

    /// Conservation: bank1 account 1 + bank2 account 2 + in flight is 1000.00, where a refunded
    /// transfer counts at bank1 again, and every ledger row agrees with the other bank:
    /// - every CREDITED row at bank2 is a transfer bank1 committed (not refunded), same amount;
    /// - every REJECTED row at bank2 is a transfer bank1 committed — and later refunds — same
    ///   amount; every REFUNDED transfer at bank1 is REJECTED at bank2;
    /// - bank2's balance is exactly the sum of its credits.
    ///
    /// `pending_minor` is what the test knows to be in flight (committed at bank1, not credited
    /// or refunded yet: a dead letter, a refund on its way).
    pub async fn assert_conserved(&self, pending_minor: i64) {
        let b1 = minor(&self.balance1("1").await);
        let b2 = minor(&self.balance2("2").await);
        assert!(b1 >= 0 && b2 >= 0, "no balance below zero: bank1 {b1}, bank2 {b2}");
        assert_eq!(
            b1 + b2 + pending_minor,
            INITIAL_TOTAL_MINOR,
            "money conserved: bank1 {b1} + bank2 {b2} + pending {pending_minor}"
        );
        let applied: Vec<(String, i64, String)> = sqlx::query_as("SELECT tx_no, amount, outcome FROM de_duplication")
            .fetch_all(&self.bank2_pool)
            .await
            .unwrap();
        let mut credited_total = 0;
        for (tx_no, amount, outcome) in &applied {
            let (status, t) = self.bank1_transfer(tx_no).await;
            assert_eq!(status, StatusCode::OK, "applied {tx_no} is known to bank1");
            assert_eq!(minor(t["amount"].as_str().unwrap()), *amount, "applied amount of {tx_no}");
            match outcome.as_str() {
                "CREDITED" => {
                    assert_eq!(t["status"], "COMMITTED", "credited {tx_no} is committed (never refunded) at bank1");
                    credited_total += amount;
                }
                "REJECTED" => assert!(
                    t["status"] == "COMMITTED" || t["status"] == "REFUNDED",
                    "rejected {tx_no} was debited at bank1: {t}"
                ),
                other => panic!("unknown outcome {other}"),
            }
        }
        assert_eq!(credited_total, b2, "bank2's balance is exactly the sum of its credits");
        let refunded: Vec<(String,)> = sqlx::query_as("SELECT tx_no FROM transfer WHERE status = 'REFUNDED'")
            .fetch_all(&self.bank1_pool)
            .await
            .unwrap();
        for (tx_no,) in refunded {
            assert!(
                applied.iter().any(|(t, _, o)| *t == tx_no && o == "REJECTED"),
                "refunded {tx_no} was rejected at bank2"
            );
        }
    }

    /// Waits until bank1 + bank2 adds up with `pending_minor` in flight, then asserts it all.
    pub async fn wait_conserved(&self, pending_minor: i64, within: Duration) {
        poll_until("bank totals add up", within, || async {
            let b1 = minor(&self.balance1("1").await);
            let b2 = minor(&self.balance2("2").await);
            (b1 + b2 + pending_minor == INITIAL_TOTAL_MINOR).then_some(())
        })
        .await;
        self.assert_conserved(pending_minor).await;
    }
}

fn balance_of((status, body): (StatusCode, Value)) -> String {
    assert_eq!(status, StatusCode::OK, "{body}");
    body["balance"].as_str().expect("balance").to_owned()
}

/// "12.34" → 1234.
pub fn minor(s: &str) -> i64 {
    common::domain::money::parse_minor(s).unwrap_or_else(|e| panic!("{s:?}: {e}"))
}

/// Polls `f` every 100 ms until it yields `Some`, or panics after `within`.
pub async fn poll_until<T, F, Fut>(what: &str, within: Duration, f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    stack::wait::poll(what, within, f).await.unwrap_or_else(|e| panic!("{e}"))
}
