//! What the bench runs against: its own stack (name server + broker children, bank1 and bank2
//! in this process on port 0, fresh SQLite files or fresh MariaDB/MySQL databases), or
//! services already running (`--bank1-url`/`--bank2-url`). And how it looks at them: the
//! banks' databases when it can reach them, else their HTTP APIs.

use std::collections::HashMap;
use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use sqlx::any::AnyPoolOptions;
use sqlx::{AnyPool, Connection};

use crate::servers::BrokerTuning;
use crate::stack::Servers;

/// A bank app serving in a task, and the switch that stops it.
struct Running {
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Running {
    fn spawn<F>(run: impl FnOnce(std::pin::Pin<Box<dyn Future<Output = ()> + Send>>) -> F) -> Self
    where
        F: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        let (stop, mut rx) = tokio::sync::watch::channel(false);
        let wait = Box::pin(async move {
            let _ = rx.wait_for(|s| *s).await;
        });
        Self { stop, task: tokio::spawn(run(wait)) }
    }

    async fn stop(self, name: &str) {
        let _ = self.stop.send(true);
        match self.task.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = ?e, "{name} stopped with an error"),
            Err(e) => tracing::warn!(error = %e, "{name} task failed"),
        }
    }
}

/// The stack the bench started.
pub struct OwnStack {
    servers: Option<Servers>,
    bank1: Option<Running>,
    bank2: Option<Running>,
    /// MySQL server URL and the databases created on it.
    mysql: Option<(String, Vec<String>)>,
    keep: bool,
    dir: Option<tempfile::TempDir>,
}

/// Where the bench sends requests and reads results.
pub struct Target {
    pub bank1_url: String,
    pub bank2_url: String,
    pub namesrv_addr: String,
    pub broker_addr: String,
    /// The banks' databases, when reachable (always with an own stack).
    pub db: Option<Dbs>,
    pub own: Option<OwnStack>,
    /// Start → both banks answer `/health` (own stack).
    pub ready_ms: Option<u64>,
    /// When the bench began starting the stack (own stack).
    pub started: Option<std::time::Instant>,
    pub http: reqwest::Client,
}

/// Read/write pools of the bench's own on the banks' databases (separate from the banks'
/// pools: polling never takes a connection a bank needs; SQLite's WAL lets readers run
/// beside the one writer).
#[derive(Clone)]
pub struct Dbs {
    pub bank1: AnyPool,
    pub bank2: AnyPool,
}

/// Fresh databases for an own stack.
pub enum DbChoice {
    Sqlite,
    Mysql { server_url: String },
}

/// `mysql://u:p@h:port/db?x` → `mysql://u:p@h:port`.
pub fn server_url(url: &str) -> String {
    let scheme_end = url.find("://").map_or(0, |i| i + 3);
    match url[scheme_end..].find('/') {
        Some(i) => url[..scheme_end + i].to_owned(),
        None => url.trim_end_matches('/').to_owned(),
    }
}

pub fn http_client(concurrency: usize) -> anyhow::Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .pool_max_idle_per_host(concurrency.max(16))
        .tcp_nodelay(true)
        .build()
        .context("building the HTTP client")
}

/// Opens a small pool of the bench's own on a bank database.
pub async fn open_pool(url: &str) -> anyhow::Result<AnyPool> {
    sqlx::any::install_default_drivers();
    let engine = common::db::Engine::of_url(url)?;
    let url = url.replacen("mariadb:", "mysql:", 1);
    AnyPoolOptions::new()
        .max_connections(2)
        .acquire_timeout(Duration::from_secs(30))
        .after_connect(move |conn, _| {
            Box::pin(async move {
                if engine == common::db::Engine::Sqlite {
                    sqlx::query("PRAGMA busy_timeout = 10000").execute(&mut *conn).await?;
                }
                Ok(())
            })
        })
        .connect(&url)
        .await
        .with_context(|| format!("connecting to {}", common::db::redact(&url)))
}

impl OwnStack {
    /// Starts a name server and broker (free ports, a temp dir), fresh databases, and bank1 +
    /// bank2 on port 0; ready when both answer `/health`.
    pub async fn start(choice: &DbChoice, keep: bool, http: reqwest::Client) -> anyhow::Result<Target> {
        let started = std::time::Instant::now();
        let dir = tempfile::Builder::new().prefix("bank-transfer-bench.").tempdir().context("creating a temp dir")?;
        let exe = std::env::current_exe().context("locating this executable")?;
        let tuning = BrokerTuning { small_store: true, ..BrokerTuning::default() };
        let mut s1 = bank1::Settings::from_env();
        let mut s2 = bank2::Settings::from_env();
        let servers = Servers::start(
            &exe,
            dir.path(),
            crate::ports::free_port()?,
            crate::ports::free_broker_port()?,
            &tuning,
            &s1.topic,
        )
        .await
        .context("starting the name server and broker")?;
        let mut me = OwnStack { servers: Some(servers), bank1: None, bank2: None, mysql: None, keep, dir: Some(dir) };
        match me.start_banks(choice, &mut s1, &mut s2, &http).await {
            Ok(()) => {}
            Err(e) => {
                me.stop().await;
                return Err(e);
            }
        }
        let ready_ms = started.elapsed().as_millis() as u64;
        let db = match Dbs::open(&s1.database_url, &s2.database_url).await {
            Ok(d) => d,
            Err(e) => {
                me.stop().await;
                return Err(e);
            }
        };
        let servers = me.servers.as_ref().expect("servers");
        Ok(Target {
            bank1_url: s2.bank1_url.clone(),
            bank2_url: format!("http://{}", s2.listen),
            namesrv_addr: servers.namesrv_addr.clone(),
            broker_addr: servers.broker_addr.clone(),
            db: Some(db),
            own: Some(me),
            ready_ms: Some(ready_ms),
            started: Some(started),
            http,
        })
    }

    async fn start_banks(
        &mut self,
        choice: &DbChoice,
        s1: &mut bank1::Settings,
        s2: &mut bank2::Settings,
        http: &reqwest::Client,
    ) -> anyhow::Result<()> {
        let dir = self.dir.as_ref().expect("dir").path().to_owned();
        let namesrv = self.servers.as_ref().expect("servers").namesrv_addr.clone();
        let (db1, db2) = match choice {
            DbChoice::Sqlite => {
                (crate::stack::sqlite_url(&dir, "bank1.db"), crate::stack::sqlite_url(&dir, "bank2.db"))
            }
            DbChoice::Mysql { server_url: url } => {
                let base = server_url(url);
                let tag = uuid::Uuid::new_v4().simple().to_string()[..10].to_owned();
                let names = vec![format!("bt_bench_{tag}_bank1"), format!("bt_bench_{tag}_bank2")];
                let mut conn = sqlx::mysql::MySqlConnection::connect(&base)
                    .await
                    .with_context(|| format!("connecting to {}", common::db::redact(&base)))?;
                for n in &names {
                    sqlx::query(&format!("CREATE DATABASE `{n}` CHARACTER SET utf8mb4"))
                        .execute(&mut conn)
                        .await
                        .with_context(|| format!("creating database {n}"))?;
                }
                let _ = conn.close().await;
                let urls = (format!("{base}/{}", names[0]), format!("{base}/{}", names[1]));
                self.mysql = Some((base, names));
                urls
            }
        };
        s1.listen = "127.0.0.1:0".parse()?;
        s1.database_url = db1;
        s1.namesrv_addr = namesrv.clone();
        s1.local_tx_fail_at_least = None;
        s1.unknown_at_least = None;
        s1.lose_message_at_least = None;
        s2.listen = "127.0.0.1:0".parse()?;
        s2.database_url = db2;
        s2.namesrv_addr = namesrv;
        s2.consume_fail_at_least = None;
        // Credits must come through the message path: the reconciler would mask a lost message.
        s2.reconcile_interval = Duration::ZERO;

        let app1 = bank1::App::build(s1.clone()).await.context("starting bank1")?;
        s1.listen = format!("127.0.0.1:{}", app1.port()).parse()?;
        s2.bank1_url = format!("http://{}", s1.listen);
        self.bank1 = Some(Running::spawn(|stop| app1.run_until(stop)));
        let app2 = bank2::App::build(s2.clone()).await.context("starting bank2")?;
        s2.listen = format!("127.0.0.1:{}", app2.port()).parse()?;
        self.bank2 = Some(Running::spawn(|stop| app2.run_until(stop)));
        for url in [format!("http://{}/health", s1.listen), format!("http://{}/health", s2.listen)] {
            poll(&format!("{url} answering"), Duration::from_secs(30), || async {
                let r = http.get(&url).send().await.ok()?;
                r.status().is_success().then_some(())
            })
            .await?;
        }
        Ok(())
    }

    /// Process ids: (broker, name server).
    pub fn pids(&self) -> (Option<u32>, Option<u32>) {
        match &self.servers {
            Some(s) => (s.broker.pid(), s.namesrv.pid()),
            None => (None, None),
        }
    }

    pub fn data_dir(&self) -> Option<&Path> {
        self.dir.as_ref().map(|d| d.path())
    }

    /// Stops the banks, then the servers; drops MySQL databases and the temp dir unless kept.
    pub async fn stop(&mut self) {
        if let Some(b) = self.bank2.take() {
            b.stop("bank2").await;
        }
        if let Some(b) = self.bank1.take() {
            b.stop("bank1").await;
        }
        if let Some(s) = self.servers.take() {
            s.stop().await;
        }
        if let Some((base, names)) = self.mysql.take() {
            if self.keep {
                eprintln!("kept databases {} on {}", names.join(", "), common::db::redact(&base));
            } else if let Ok(mut conn) = sqlx::mysql::MySqlConnection::connect(&base).await {
                for n in names {
                    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS `{n}`")).execute(&mut conn).await;
                }
                let _ = conn.close().await;
            }
        }
        if let Some(dir) = self.dir.take() {
            if self.keep {
                eprintln!("kept {}", dir.keep().display());
            }
        }
    }
}

impl Dbs {
    pub async fn open(bank1_url: &str, bank2_url: &str) -> anyhow::Result<Self> {
        Ok(Self { bank1: open_pool(bank1_url).await?, bank2: open_pool(bank2_url).await? })
    }
}

pub use crate::wait::poll;

/// The accounts a run uses: `prefix` + a number, in both banks.
#[derive(Debug, Clone)]
pub struct Accounts {
    /// `LIKE` pattern matching exactly this run's accounts (`None`: the given pair only).
    pub like: Option<String>,
    pub pairs: Arc<Vec<(String, String)>>,
}

impl Accounts {
    /// `n` fresh accounts per bank, named `b-<tag>-<i>` (letters, digits and '-' only).
    pub fn fresh(n: usize) -> Self {
        let tag = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
        let pairs = (0..n)
            .map(|i| {
                let a = format!("b-{tag}-{i:06}");
                (a.clone(), a)
            })
            .collect();
        Self { like: Some(format!("b-{tag}-%")), pairs: Arc::new(pairs) }
    }

    pub fn existing(from: &str, to: &str) -> Self {
        Self { like: None, pairs: Arc::new(vec![(from.to_owned(), to.to_owned())]) }
    }
}

/// Inserts the run's accounts: bank1 accounts with `balance` cents each, bank2 accounts at 0.
pub async fn seed(db: &Dbs, accounts: &Accounts, balance: i64) -> anyhow::Result<()> {
    for (pool, bank, bal) in [(&db.bank1, "bank1", balance), (&db.bank2, "bank2", 0)] {
        let mut tx = pool.begin().await?;
        for chunk in accounts.pairs.chunks(200) {
            let values = vec!["(?, ?, ?)"; chunk.len()].join(", ");
            let sql = format!("INSERT INTO account_info (account_no, account_name, balance) VALUES {values}");
            let mut q = sqlx::query(&sql);
            for (from, to) in chunk {
                let no = if bank == "bank1" { from } else { to };
                q = q.bind(no.clone()).bind(format!("bench {no}")).bind(bal);
            }
            q.execute(&mut *tx).await.with_context(|| format!("seeding {bank} accounts"))?;
        }
        tx.commit().await?;
    }
    Ok(())
}

/// A bank1 COMMITTED transfer as its database has it.
#[derive(Debug, Clone)]
pub struct Debit {
    pub amount: i64,
    pub to_account: String,
    /// When the COMMITTED row was written (ms); `None` if the service does not record it.
    pub committed_at: Option<i64>,
}

/// A bank2 credit (`de_duplication` row).
#[derive(Debug, Clone)]
pub struct Credit {
    pub amount: i64,
    pub to_account: String,
    pub credited_at: i64,
    pub source: String,
}

/// Both banks' records of this run, and the balances of its accounts.
#[derive(Debug, Default)]
pub struct Ledger {
    pub debits: HashMap<String, Debit>,
    pub credits: HashMap<String, Credit>,
    pub bank1_balance: i64,
    pub bank2_balance: i64,
}

impl Dbs {
    /// Credits so far (all of bank2's when the databases are the bench's own, else this run's).
    pub async fn credited_count(&self, like: Option<&str>, own: bool) -> anyhow::Result<i64> {
        let n: i64 = match (own, like) {
            (false, Some(like)) => {
                sqlx::query_scalar("SELECT COUNT(*) FROM de_duplication WHERE to_account LIKE ?")
                    .bind(like)
                    .fetch_one(&self.bank2)
                    .await?
            }
            _ => sqlx::query_scalar("SELECT COUNT(*) FROM de_duplication").fetch_one(&self.bank2).await?,
        };
        Ok(n)
    }

    /// This run's COMMITTED transfers at bank1.
    pub async fn committed_count(&self, like: &str) -> anyhow::Result<i64> {
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM transfer WHERE status = 'COMMITTED' AND from_account LIKE ?")
            .bind(like)
            .fetch_one(&self.bank1)
            .await?)
    }

    pub async fn ledger(&self, like: &str) -> anyhow::Result<Ledger> {
        let mut ledger = Ledger::default();
        let rows: Vec<(String, i64, String, Option<i64>)> = sqlx::query_as(
            "SELECT tx_no, amount, to_account, committed_at FROM transfer WHERE status = 'COMMITTED' AND from_account LIKE ?",
        )
        .bind(like)
        .fetch_all(&self.bank1)
        .await
        .context("reading bank1's transfers")?;
        for (tx, amount, to_account, committed_at) in rows {
            ledger.debits.insert(tx, Debit { amount, to_account, committed_at });
        }
        let rows: Vec<(String, i64, String, i64, String)> = sqlx::query_as(
            "SELECT tx_no, amount, to_account, credited_at, source FROM de_duplication WHERE to_account LIKE ?",
        )
        .bind(like)
        .fetch_all(&self.bank2)
        .await
        .context("reading bank2's credits")?;
        for (tx, amount, to_account, credited_at, source) in rows {
            ledger.credits.insert(tx, Credit { amount, to_account, credited_at, source });
        }
        ledger.bank1_balance = balance_sum(&self.bank1, like).await?;
        ledger.bank2_balance = balance_sum(&self.bank2, like).await?;
        Ok(ledger)
    }
}

/// Σ balance of the run's accounts (summed here: MySQL's SUM is a DECIMAL).
pub async fn balance_sum(pool: &AnyPool, like: &str) -> anyhow::Result<i64> {
    let v: Vec<i64> = sqlx::query_scalar("SELECT balance FROM account_info WHERE account_no LIKE ?")
        .bind(like)
        .fetch_all(pool)
        .await
        .context("reading balances")?;
    Ok(v.iter().sum())
}

// ---- over HTTP (services whose databases the bench cannot reach) ----

/// A balance through `GET /api/accounts/{no}`, in cents.
pub async fn api_balance(http: &reqwest::Client, base: &str, account: &str) -> anyhow::Result<i64> {
    let url = format!("{}/api/accounts/{account}", base.trim_end_matches('/'));
    let r = http.get(&url).send().await.with_context(|| format!("GET {url}"))?;
    anyhow::ensure!(r.status().is_success(), "GET {url}: {}", r.status());
    let v: serde_json::Value = r.json().await?;
    let s = v["balance"].as_str().context("balance in the reply")?;
    common::money::parse_minor(s).map_err(|e| anyhow::anyhow!("balance {s:?}: {e}"))
}

/// Applies `f` to every item with `c` requests in flight; results in item order.
pub async fn fan_out<T, R, F, Fut>(items: Vec<T>, c: usize, f: F) -> Vec<R>
where
    T: Send + Sync + 'static,
    R: Send + 'static,
    F: Fn(&T) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = R> + Send,
{
    let items = Arc::new(items);
    let f = Arc::new(f);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..c.max(1) {
        let (items, f, next) = (Arc::clone(&items), Arc::clone(&f), Arc::clone(&next));
        set.spawn(async move {
            let mut out = Vec::new();
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(item) = items.get(i) else { break };
                out.push((i, f(item).await));
            }
            out
        });
    }
    let mut all = Vec::new();
    while let Some(r) = set.join_next().await {
        if let Ok(r) = r {
            all.extend(r);
        }
    }
    all.sort_by_key(|(i, _)| *i);
    all.into_iter().map(|(_, r)| r).collect()
}

/// bank1's `committed_at_ms` for a transfer (`GET /api/transfers/{tx_no}`), if COMMITTED.
pub async fn api_committed_at(http: &reqwest::Client, base: &str, tx: &str) -> Option<Option<i64>> {
    let url = format!("{}/api/transfers/{tx}", base.trim_end_matches('/'));
    let v: serde_json::Value = http.get(url).send().await.ok()?.json().await.ok()?;
    (v["status"] == "COMMITTED").then(|| v["committed_at_ms"].as_i64())
}

/// bank2's credit of a transfer (`GET /api/credits/{tx_no}`): `Some(credited_at_ms)` once credited.
pub async fn api_credited_at(http: &reqwest::Client, base: &str, tx: &str) -> Option<i64> {
    let url = format!("{}/api/credits/{tx}", base.trim_end_matches('/'));
    let v: serde_json::Value = http.get(url).send().await.ok()?.json().await.ok()?;
    if v["credited"] == true {
        Some(v["credited_at_ms"].as_i64().unwrap_or_else(common::now_ms))
    } else {
        None
    }
}

/// A counter from bank2's `/metrics`.
pub async fn bank2_metric(http: &reqwest::Client, base: &str, name: &str) -> Option<u64> {
    let text = http.get(format!("{}/metrics", base.trim_end_matches('/'))).send().await.ok()?.text().await.ok()?;
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find(|l| l.split_whitespace().next() == Some(name))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

/// `POST {bank2}/admin/consumer/pause|resume`.
pub async fn consumer_switch(http: &reqwest::Client, bank2_url: &str, action: &str) -> anyhow::Result<()> {
    let url = format!("{}/admin/consumer/{action}", bank2_url.trim_end_matches('/'));
    let r = http.post(&url).send().await.with_context(|| format!("POST {url}"))?;
    anyhow::ensure!(r.status().is_success(), "POST {url}: {} (does this bank2 support pausing?)", r.status());
    Ok(())
}
