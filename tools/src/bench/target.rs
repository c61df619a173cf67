//! What the bench runs against: its own stack (from the one [`StackBuilder`]: name server and
//! broker children, bank1 and bank2 in this process, fresh SQLite files or scratch
//! MariaDB/MySQL databases), or services already running (`--bank1-url`/`--bank2-url`). And
//! how it looks at them: the banks' databases when it can reach them, else their HTTP APIs.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use sqlx::any::AnyPoolOptions;
use sqlx::AnyPool;

use stack::databases::DbChoice;
use stack::{Stack, StackBuilder};

/// Where the bench sends requests and reads results.
pub struct Target {
    pub bank1_url: String,
    pub bank2_url: String,
    pub namesrv_addr: String,
    pub broker_addr: String,
    /// The banks' databases, when reachable (always with an own stack).
    pub db: Option<Dbs>,
    pub own: Option<Stack>,
    /// Start → both banks answer `/health` (own stack).
    pub ready_ms: Option<u64>,
    /// When the bench began starting the stack (own stack).
    pub started: Option<std::time::Instant>,
    /// bank2's operator token (pausing the consumer for `--backlog`).
    pub bank2_admin_token: Option<common::infra::token::Token>,
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
    let engine = common::infra::db::Engine::of_url(url)?;
    let url = url.replacen("mariadb:", "mysql:", 1);
    AnyPoolOptions::new()
        .max_connections(2)
        .acquire_timeout(Duration::from_secs(30))
        .after_connect(move |conn, _| {
            Box::pin(async move {
                if engine == common::infra::db::Engine::Sqlite {
                    sqlx::query("PRAGMA busy_timeout = 10000").execute(&mut *conn).await?;
                }
                Ok(())
            })
        })
        .connect(&url)
        .await
        .with_context(|| format!("connecting to {}", common::infra::db::redact(&url)))
}

/// Starts the bench's own stack (free ports, a temp dir, fresh databases); ready when both
/// banks answer `/health`. Credits must come through the message path, so neither
/// reconciler runs, and no fault is on.
pub async fn own_stack(
    choice: DbChoice,
    keep: bool,
    broker: &stack::embedded::BrokerTuning,
    http: reqwest::Client,
) -> anyhow::Result<Target> {
    let started = std::time::Instant::now();
    let exe = std::env::current_exe().context("locating this executable")?;
    let stack = StackBuilder::new(exe)
        .database(choice)
        .keep(keep)
        .tuning(broker.clone())
        .configure(|s1, s2| {
            s1.faults = Default::default();
            s1.common.reconcile_interval = Duration::ZERO;
            s2.faults = Default::default();
            s2.common.reconcile_interval = Duration::ZERO;
        })
        .start()
        .await
        .context("starting the stack")?;
    for url in [format!("{}/health", stack.bank1_url), format!("{}/health", stack.bank2_url)] {
        poll(&format!("{url} answering"), Duration::from_secs(30), || async {
            let r = http.get(&url).send().await.ok()?;
            r.status().is_success().then_some(())
        })
        .await?;
    }
    let ready_ms = started.elapsed().as_millis() as u64;
    let db = Dbs::open(&stack.databases.bank1_url, &stack.databases.bank2_url).await?;
    Ok(Target {
        bank1_url: stack.bank1_url.clone(),
        bank2_url: stack.bank2_url.clone(),
        namesrv_addr: stack.namesrv_addr.clone(),
        broker_addr: stack.broker_addr.clone(),
        db: Some(db),
        ready_ms: Some(ready_ms),
        started: Some(started),
        bank2_admin_token: Some(stack.secrets.bank2_admin.clone()),
        own: Some(stack),
        http,
    })
}

impl Dbs {
    pub async fn open(bank1_url: &str, bank2_url: &str) -> anyhow::Result<Self> {
        Ok(Self { bank1: open_pool(bank1_url).await?, bank2: open_pool(bank2_url).await? })
    }
}

pub use stack::wait::poll;

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
                sqlx::query_scalar(
                    "SELECT COUNT(*) FROM de_duplication WHERE outcome = 'CREDITED' AND to_account LIKE ?",
                )
                .bind(like)
                .fetch_one(&self.bank2)
                .await?
            }
            _ => {
                sqlx::query_scalar("SELECT COUNT(*) FROM de_duplication WHERE outcome = 'CREDITED'")
                    .fetch_one(&self.bank2)
                    .await?
            }
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
            "SELECT tx_no, amount, to_account, credited_at, source FROM de_duplication WHERE outcome = 'CREDITED' AND to_account LIKE ?",
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
    common::domain::money::parse_minor(s).map_err(|e| anyhow::anyhow!("balance {s:?}: {e}"))
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

/// A sample from bank2's `/metrics` ([`stack::api::sample`]); `None` when it cannot be read.
pub async fn bank2_metric(http: &reqwest::Client, base: &str, name: &str) -> Option<f64> {
    bank2_metrics(http, base, [name]).await.map(|[value]| value)
}

/// Several of bank2's metrics from one scrape of its `/metrics`, in the order named.
pub async fn bank2_metrics<const N: usize>(http: &reqwest::Client, base: &str, names: [&str; N]) -> Option<[f64; N]> {
    let text = http.get(format!("{}/metrics", base.trim_end_matches('/'))).send().await.ok()?.text().await.ok()?;
    Some(names.map(|name| stack::api::sample(&text, name)))
}

/// `POST {bank2}/admin/consumer/pause|resume` with bank2's admin token.
pub async fn consumer_switch(target: &Target, action: &str) -> anyhow::Result<()> {
    let url = format!("{}/admin/consumer/{action}", target.bank2_url.trim_end_matches('/'));
    let mut req = target.http.post(&url);
    if let Some(t) = &target.bank2_admin_token {
        req = req.bearer_auth(t.expose());
    }
    let r = req.send().await.with_context(|| format!("POST {url}"))?;
    anyhow::ensure!(r.status().is_success(), "POST {url}: {} (does this bank2 support pausing?)", r.status());
    Ok(())
}
