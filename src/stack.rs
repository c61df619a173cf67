//! The local stack: a name server and a broker (child processes of this binary), the
//! transfer topic, then bank1 and bank2 in this process on SQLite files — all under one
//! data directory. Tests build the same pieces with free ports and their own databases.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use clap::Args;

use crate::children::ChildServer;
use crate::servers::BrokerTuning;

/// How long a child may take to say it is ready (cold disk, 2 cores, busy machine).
const READY_WITHIN: Duration = Duration::from_secs(60);

/// `cargo run --release` flags (`bank-transfer --help`).
#[derive(Debug, Clone, Args)]
pub struct StackArgs {
    /// Where everything lives: broker store, name-server state, SQLite files, logs.
    #[arg(long, env = "BANK_TRANSFER_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
    #[arg(long, env = "BANK_TRANSFER_NAMESRV_PORT", default_value_t = 9876)]
    pub namesrv_port: u16,
    /// Broker client port (it also binds port-2 and port+1).
    #[arg(long, env = "BANK_TRANSFER_BROKER_PORT", default_value_t = 10911)]
    pub broker_port: u16,
    #[arg(long, env = "BANK_TRANSFER_BANK1_LISTEN", default_value = "127.0.0.1:56081")]
    pub bank1_listen: SocketAddr,
    #[arg(long, env = "BANK_TRANSFER_BANK2_LISTEN", default_value = "127.0.0.1:56082")]
    pub bank2_listen: SocketAddr,
    /// bank1's database (default: SQLite file in --data-dir).
    #[arg(long, env = "BANK1_DATABASE_URL")]
    pub bank1_database_url: Option<String>,
    /// bank2's database (default: SQLite file in --data-dir).
    #[arg(long, env = "BANK2_DATABASE_URL")]
    pub bank2_database_url: Option<String>,
    #[command(flatten)]
    pub broker: BrokerTuning,
}

/// The name server and broker children.
pub struct Servers {
    pub namesrv: ChildServer,
    pub broker: ChildServer,
    pub namesrv_addr: String,
    pub broker_addr: String,
    exe: PathBuf,
    dir: PathBuf,
    broker_port: u16,
    tuning: BrokerTuning,
}

impl Servers {
    /// Starts both under `dir` (`namesrv/`, `broker/`, `logs/`) and creates `topic`.
    pub async fn start(
        exe: &Path,
        dir: &Path,
        namesrv_port: u16,
        broker_port: u16,
        tuning: &BrokerTuning,
        topic: &str,
    ) -> anyhow::Result<Self> {
        tuning.validate()?;
        let dir = std::path::absolute(dir).context("resolving the data directory")?;
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let namesrv_addr = format!("127.0.0.1:{namesrv_port}");
        let namesrv = ChildServer::spawn(
            "namesrv",
            exe,
            &[
                "namesrv".into(),
                "--exit-with-parent".into(),
                "--port".into(),
                namesrv_port.to_string(),
                "--home".into(),
                dir.join("namesrv").display().to_string(),
            ],
            &dir.join("logs/namesrv.log"),
            READY_WITHIN,
        )
        .await?;
        let broker = spawn_broker(exe, &dir, &namesrv_addr, broker_port, tuning).await?;
        let me = Self {
            namesrv,
            broker,
            broker_addr: format!("127.0.0.1:{broker_port}"),
            namesrv_addr,
            exe: exe.to_owned(),
            dir,
            broker_port,
            tuning: tuning.clone(),
        };
        let rt = common::mq::MqRuntime::new("admin")?;
        let created = crate::topics::ensure_topic(&rt, &me.namesrv_addr, &me.broker_addr, topic, 4).await;
        rt.shutdown().await;
        created?;
        Ok(me)
    }

    /// Kills the broker (SIGKILL: a crash) and starts it again on the same store.
    pub async fn crash_and_restart_broker(&mut self) -> anyhow::Result<()> {
        let old = std::mem::replace(&mut self.broker, spawn_placeholder()?);
        old.kill().await;
        self.broker = spawn_broker(&self.exe, &self.dir, &self.namesrv_addr, self.broker_port, &self.tuning).await?;
        Ok(())
    }

    /// Graceful stop: broker first, then the name server.
    pub async fn stop(self) {
        self.broker.stop(Duration::from_secs(20)).await;
        self.namesrv.stop(Duration::from_secs(10)).await;
    }
}

async fn spawn_broker(
    exe: &Path,
    dir: &Path,
    namesrv_addr: &str,
    port: u16,
    tuning: &BrokerTuning,
) -> anyhow::Result<ChildServer> {
    let mut args: Vec<String> = vec![
        "broker".into(),
        "--exit-with-parent".into(),
        "--namesrv".into(),
        namesrv_addr.into(),
        "--port".into(),
        port.to_string(),
        "--store".into(),
        dir.join("broker").display().to_string(),
    ];
    args.extend(tuning.to_args());
    ChildServer::spawn("broker", exe, &args, &dir.join("logs/broker.log"), READY_WITHIN).await
}

/// A stand-in while the real broker is swapped; `true` exits at once and is reaped on drop.
fn spawn_placeholder() -> anyhow::Result<ChildServer> {
    ChildServer::placeholder()
}

/// `cargo run --release`: the whole stack until Ctrl-C / SIGTERM.
pub async fn run(args: StackArgs) -> anyhow::Result<()> {
    let exe = std::env::current_exe().context("locating this executable")?;
    let data_dir = std::path::absolute(&args.data_dir)?;
    std::fs::create_dir_all(&data_dir)?;
    let started = std::time::Instant::now();
    let mut bank1_settings = bank1::Settings::from_env();
    let mut bank2_settings = bank2::Settings::from_env();
    let servers =
        Servers::start(&exe, &data_dir, args.namesrv_port, args.broker_port, &args.broker, &bank1_settings.topic)
            .await?;

    bank1_settings.listen = args.bank1_listen;
    bank1_settings.namesrv_addr = servers.namesrv_addr.clone();
    bank1_settings.database_url = args.bank1_database_url.clone().unwrap_or_else(|| sqlite_url(&data_dir, "bank1.db"));
    bank2_settings.listen = args.bank2_listen;
    bank2_settings.namesrv_addr = servers.namesrv_addr.clone();
    bank2_settings.database_url = args.bank2_database_url.clone().unwrap_or_else(|| sqlite_url(&data_dir, "bank2.db"));

    let bank1 = bank1::App::build(bank1_settings).await.context("starting bank1")?;
    let bank2 = bank2::App::build(bank2_settings).await.context("starting bank2")?;
    let (b1, b2) = (bank1.port(), bank2.port());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let wait = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let h1 = tokio::spawn(bank1.run_until(wait(stop_rx.clone())));
    let h2 = tokio::spawn(bank2.run_until(wait(stop_rx)));

    let host1 = args.bank1_listen.ip();
    let host2 = args.bank2_listen.ip();
    println!();
    println!("bank-transfer is up ({:.1}s):", started.elapsed().as_secs_f64());
    println!("  bank1    http://{host1}:{b1}   (sender; account 1 张三)");
    println!("  bank2    http://{host2}:{b2}   (receiver; account 2 李四)");
    println!("  namesrv  {}   broker {}", servers.namesrv_addr, servers.broker_addr);
    println!("  data     {}   (logs in {}/logs)", data_dir.display(), data_dir.display());
    println!();
    println!("Try:");
    println!(
        "  curl -s -X POST http://{host1}:{b1}/api/transfers -H 'Content-Type: application/json' -d '{{\"from_account\":\"1\",\"to_account\":\"2\",\"amount\":\"100.00\"}}'"
    );
    println!("  curl -s http://{host2}:{b2}/api/accounts/2");
    println!();
    println!("Ctrl-C stops everything.");

    common::shutdown::shutdown_signal().await;
    println!("stopping…");
    let _ = stop_tx.send(true);
    for (name, h) in [("bank1", h1), ("bank2", h2)] {
        match h.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(error = ?e, "{name} stopped with an error"),
            Err(e) => tracing::error!(error = %e, "{name} task failed"),
        }
    }
    servers.stop().await;
    println!("stopped.");
    Ok(())
}

/// A SQLite URL for a file in `dir`.
pub fn sqlite_url(dir: &Path, file: &str) -> String {
    format!("sqlite://{}", dir.join(file).display())
}
