//! Whole-system test harness: a real name server and broker (children of the
//! `bank-transfer` binary, free ports, their own store), real databases (a fresh SQLite pair,
//! or fresh MariaDB/MySQL databases when `TEST_MYSQL_URL` is set), and bank1 + bank2 running
//! in the test's runtime on port 0. Time is compressed with broker settings, never sleeps:
//! waits are polls with a deadline.
#![allow(dead_code)]

use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use bank_transfer::ports::{free_broker_port, free_port};
use bank_transfer::servers::BrokerTuning;
use bank_transfer::stack::Servers;
use reqwest::StatusCode;
use serde_json::{json, Value};
use sqlx::{AnyPool, Connection};

/// The seed: bank1 account 1 holds 1000.00, bank2 account 2 holds 0.00.
pub const INITIAL_TOTAL_MINOR: i64 = 100_000;

pub struct Opts {
    pub delay_levels: String,
    pub transaction_timeout_ms: u64,
    pub transaction_check_interval_ms: u64,
}

impl Default for Opts {
    fn default() -> Self {
        Self {
            // Every retry 1 s apart: the 16-step ladder in seconds instead of hours.
            delay_levels: vec!["1s"; 18].join(" "),
            // Check-backs within seconds. (At 1000/1000 the rocketmq-rust 1.0.0 broker also
            // re-checks half messages it has already committed and commits them again: extra
            // deliveries that bank2 deduplicates, but that blur the retry-ladder counts.)
            transaction_timeout_ms: 3000,
            transaction_check_interval_ms: 5000,
        }
    }
}

pub struct TestStack {
    pub http: reqwest::Client,
    pub bank1_url: String,
    pub bank2_url: String,
    pub bank1_pool: AnyPool,
    pub bank2_pool: AnyPool,
    pub namesrv_addr: String,
    pub servers: Option<Servers>,
    bank1: Running,
    bank2: Option<Running>,
    bank2_settings: bank2::Settings,
    mysql: Option<(String, Vec<String>)>,
    _dir: tempfile::TempDir,
}

/// A bank app serving in a task, and the switch that stops it.
struct Running {
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Running {
    fn spawn<F: Future<Output = anyhow::Result<()>> + Send + 'static>(run: impl FnOnce(WaitStop) -> F) -> Self {
        let (stop, mut rx) = tokio::sync::watch::channel(false);
        let wait: WaitStop = Box::pin(async move {
            let _ = rx.wait_for(|s| *s).await;
        });
        Self { stop, task: tokio::spawn(run(wait)) }
    }

    async fn stop(self) {
        let _ = self.stop.send(true);
        match self.task.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => panic!("app stopped with an error: {e:?}"),
            Err(e) => panic!("app task failed: {e}"),
        }
    }
}

type WaitStop = std::pin::Pin<Box<dyn Future<Output = ()> + Send>>;

fn init_logs() {
    if std::env::var_os("TEST_LOG").is_some() {
        common::telemetry::init(common::telemetry::DEFAULT_FILTER);
    }
}

/// Fresh databases: SQLite files in `dir`, or new databases on `TEST_MYSQL_URL`.
async fn databases(dir: &std::path::Path) -> (String, String, Option<(String, Vec<String>)>) {
    match std::env::var("TEST_MYSQL_URL") {
        Ok(url) if !url.is_empty() => {
            let base = server_url(&url);
            let tag = uuid::Uuid::new_v4().simple().to_string()[..12].to_owned();
            let names = vec![format!("bt_{tag}_bank1"), format!("bt_{tag}_bank2")];
            let mut conn = sqlx::mysql::MySqlConnection::connect(&base).await.expect("connect TEST_MYSQL_URL");
            for n in &names {
                sqlx::query(&format!("CREATE DATABASE `{n}` CHARACTER SET utf8mb4")).execute(&mut conn).await.unwrap();
            }
            let _ = conn.close().await;
            (format!("{base}/{}", names[0]), format!("{base}/{}", names[1]), Some((base, names)))
        }
        _ => {
            (bank_transfer::stack::sqlite_url(dir, "bank1.db"), bank_transfer::stack::sqlite_url(dir, "bank2.db"), None)
        }
    }
}

/// `mysql://u:p@h:port/db?x` → `mysql://u:p@h:port`.
fn server_url(url: &str) -> String {
    let scheme_end = url.find("://").map_or(0, |i| i + 3);
    match url[scheme_end..].find('/') {
        Some(i) => url[..scheme_end + i].to_owned(),
        None => url.trim_end_matches('/').to_owned(),
    }
}

impl TestStack {
    pub async fn start() -> Self {
        Self::start_with(Opts::default()).await
    }

    pub async fn start_with(opts: Opts) -> Self {
        init_logs();
        let dir = tempfile::tempdir().unwrap();
        let tuning = BrokerTuning {
            message_delay_level: Some(opts.delay_levels.clone()),
            transaction_timeout: Some(opts.transaction_timeout_ms),
            transaction_check_interval: Some(opts.transaction_check_interval_ms),
            transaction_check_max: None,
            small_store: true,
        };
        let exe = PathBuf::from(env!("CARGO_BIN_EXE_bank-transfer"));
        let servers = Servers::start(
            &exe,
            dir.path(),
            free_port().unwrap(),
            free_broker_port().unwrap(),
            &tuning,
            common::mq::DEFAULT_TOPIC,
        )
        .await
        .expect("start name server and broker");
        let (db1, db2, mysql) = databases(dir.path()).await;

        let mut s1 = bank1::Settings::from_env();
        s1.listen = "127.0.0.1:0".parse().unwrap();
        s1.database_url = db1;
        s1.namesrv_addr = servers.namesrv_addr.clone();
        s1.local_tx_fail_at_least = None;
        s1.unknown_at_least = None;
        s1.lose_message_at_least = None;
        let mut s2 = bank2::Settings::from_env();
        s2.listen = "127.0.0.1:0".parse().unwrap();
        s2.database_url = db2;
        s2.namesrv_addr = servers.namesrv_addr.clone();
        s2.consume_fail_at_least = None;
        // Reconciliation runs when a test asks for it (POST /admin/reconcile).
        s2.reconcile_interval = Duration::ZERO;
        s2.reconcile_grace = Duration::ZERO;

        let app1 = bank1::App::build(s1).await.expect("build bank1");
        let bank1_url = format!("http://127.0.0.1:{}", app1.port());
        s2.bank1_url = bank1_url.clone();
        let bank1_pool = app1.state().db.pool.clone();
        let bank1 = Running::spawn(|stop| app1.run_until(stop));
        let app2 = bank2::App::build(s2.clone()).await.expect("build bank2");
        s2.listen = format!("127.0.0.1:{}", app2.port()).parse().unwrap();
        let bank2_url = format!("http://127.0.0.1:{}", app2.port());
        let bank2_pool = app2.state().db.pool.clone();
        let bank2 = Running::spawn(|stop| app2.run_until(stop));
        Self {
            http: reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap(),
            bank1_url,
            bank2_url,
            bank1_pool,
            bank2_pool,
            namesrv_addr: servers.namesrv_addr.clone(),
            servers: Some(servers),
            bank1,
            bank2: Some(bank2),
            bank2_settings: s2,
            mysql,
            _dir: dir,
        }
    }

    /// Stops bank2 (consumer, reconciler, HTTP) and starts it again on the same database and
    /// port: what a deploy or a crash-and-restart does.
    pub async fn restart_bank2(&mut self) {
        if let Some(b) = self.bank2.take() {
            b.stop().await;
        }
        let app2 = bank2::App::build(self.bank2_settings.clone()).await.expect("rebuild bank2");
        self.bank2_pool = app2.state().db.pool.clone();
        self.bank2 = Some(Running::spawn(|stop| app2.run_until(stop)));
    }

    /// Stops the banks, then the servers, and drops MySQL test databases.
    pub async fn shutdown(mut self) {
        if let Some(b) = self.bank2.take() {
            b.stop().await;
        }
        self.bank1.stop().await;
        if let Some(s) = self.servers.take() {
            s.stop().await;
        }
        if let Some((base, names)) = self.mysql.take() {
            if let Ok(mut conn) = sqlx::mysql::MySqlConnection::connect(&base).await {
                for n in names {
                    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS `{n}`")).execute(&mut conn).await;
                }
            }
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

    pub async fn put_faults(&self, bank_url: &str, faults: Value) -> Value {
        let r = self.http.put(format!("{bank_url}/admin/faults")).json(&faults).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        r.json().await.unwrap()
    }

    pub async fn bank2_metric(&self, name: &str) -> u64 {
        let text = self.http.get(format!("{}/metrics", self.bank2_url)).send().await.unwrap().text().await.unwrap();
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .find(|l| l.split_whitespace().next() == Some(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }

    /// `POST /admin/reconcile?grace=0s` on bank2: the report.
    pub async fn reconcile(&self) -> Value {
        let r = self.http.post(format!("{}/admin/reconcile?grace=0s", self.bank2_url)).send().await.unwrap();
        let status = r.status();
        let body: Value = r.json().await.unwrap();
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }

    /// `POST /admin/dlq/redrive` on bank2: the report.
    pub async fn redrive(&self) -> Value {
        let r = self.http.post(format!("{}/admin/dlq/redrive", self.bank2_url)).send().await.unwrap();
        let status = r.status();
        let body: Value = r.json().await.unwrap();
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }

    /// bank1's feed page after `after`.
    pub async fn feed(&self, after: &str) -> Value {
        let (status, body) = self.get(format!("{}/api/transfers?after={after}&limit=1000", self.bank1_url)).await;
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
        let rt = common::mq::MqRuntime::new("test-dlq").unwrap();
        let dlq = format!("%DLQ%{}", common::mq::DEFAULT_CONSUMER_GROUP);
        poll_until(&format!("{tx_no} in {dlq}"), within, || async {
            let m = bank_transfer::query::messages_by_key(&rt, &self.namesrv_addr, &dlq, tx_no).await.ok()?;
            (!m.is_empty()).then_some(())
        })
        .await;
        rt.shutdown().await;
    }

    /// Publishes raw message bodies on the transfer topic, as any producer could.
    pub async fn publish_raw(&self, bodies: &[(Option<&str>, Vec<u8>)]) {
        use rocketmq_model::common::message::message_single::Message;
        let rt = common::mq::MqRuntime::new("test-raw").unwrap();
        let mut p = rocketmq_client_rust::DefaultMQProducer::builder(rt.client())
            .producer_group("test_raw_sender")
            .name_server_addr(self.namesrv_addr.clone())
            .build();
        p.start().await.unwrap();
        for (key, body) in bodies {
            let mut b = Message::builder()
                .topic(common::mq::DEFAULT_TOPIC)
                .tags(common::message::TRANSFER_TAG)
                .body_slice(body);
            if let Some(k) = key {
                b = b.key(*k);
            }
            p.send(b.build().unwrap()).await.unwrap();
        }
        p.shutdown().await;
        rt.shutdown().await;
    }

    /// Waits until `tx_no` is credited at bank2; returns the credit record.
    pub async fn wait_credited(&self, tx_no: &str, within: Duration) -> Value {
        poll_until(&format!("{tx_no} credited"), within, || async {
            let c = self.credit(tx_no).await;
            (c["credited"] == true).then_some(c)
        })
        .await
    }

    /// Conservation: bank1 account 1 + bank2 account 2 + committed-but-not-yet-credited is
    /// 1000.00, and nothing bank1 did not commit is credited. `pending` lists the tx_nos known
    /// to be committed and not credited on purpose (DLQ), whose amounts are in flight.
    pub async fn assert_conserved(&self, pending_minor: i64) {
        let b1 = minor(&self.balance1("1").await);
        let b2 = minor(&self.balance2("2").await);
        assert!(b1 >= 0 && b2 >= 0, "no balance below zero: bank1 {b1}, bank2 {b2}");
        assert_eq!(
            b1 + b2 + pending_minor,
            INITIAL_TOTAL_MINOR,
            "money conserved: bank1 {b1} + bank2 {b2} + pending {pending_minor}"
        );
        // Every credit at bank2 is a transfer bank1 committed, with the same amount.
        let credits: Vec<(String, i64)> =
            sqlx::query_as("SELECT tx_no, amount FROM de_duplication").fetch_all(&self.bank2_pool).await.unwrap();
        let mut credited_total = 0;
        for (tx_no, amount) in credits {
            let (status, t) = self.bank1_transfer(&tx_no).await;
            assert_eq!(status, StatusCode::OK, "credited {tx_no} is known to bank1");
            assert_eq!(t["status"], "COMMITTED", "credited {tx_no} was committed at bank1");
            assert_eq!(minor(t["amount"].as_str().unwrap()), amount, "credited amount of {tx_no}");
            credited_total += amount;
        }
        assert_eq!(credited_total, b2, "bank2's balance is exactly the sum of its credits");
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
    common::money::parse_minor(s).unwrap_or_else(|e| panic!("{s:?}: {e}"))
}

/// Polls `f` every 100 ms until it yields `Some`, or panics after `within`.
pub async fn poll_until<T, F, Fut>(what: &str, within: Duration, f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    bank_transfer::wait::poll(what, within, f).await.unwrap_or_else(|e| panic!("{e}"))
}
