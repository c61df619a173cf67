//! The RocketMQ name server and broker, run from the `rocketmq-namesrv` / `rocketmq-broker`
//! crates inside a child process of this binary (`bank-transfer namesrv|broker …`, hidden
//! subcommands). A child prints [`READY_LINE`] once it serves, and stops when told to
//! (SIGTERM / Ctrl-C) or, with `--exit-with-parent`, when its parent goes away (its stdin, a
//! pipe from the parent, reaches EOF) — so no broker outlives the stack that started it.
//! Run alone (e.g. in a container) they serve until SIGTERM.

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use rocketmq_broker::config::broker_config::BrokerConfig;
use rocketmq_broker::config::validated::ValidatedBrokerConfig;
use rocketmq_observability::{TelemetryHandle, TelemetryRuntimeGuard};
use rocketmq_runtime::{ChildServiceContext, RuntimeConfig, RuntimeOwner};
use rocketmq_store::MessageStoreConfig;
use rocketmq_transport::api::ServerConfig;

/// What a child prints on stdout once it accepts connections.
pub const READY_LINE: &str = "BANK_TRANSFER_SERVER_READY";

/// RocketMQ's default delay-level ladder (18 levels; retries start at level 3).
pub const DEFAULT_DELAY_LEVELS: &str = "1s 5s 10s 30s 1m 2m 3m 4m 5m 6m 7m 8m 9m 10m 20m 30m 1h 2h";

/// The stack's `transactionOpBatchInterval` (ms): done records of committed or rolled-back
/// half messages reach the store within about this long (the broker's default is 3000).
pub const DEFAULT_OP_BATCH_INTERVAL_MS: u64 = 200;

/// How far the transaction timeout must exceed the op-batch interval: the done record is
/// written within one interval of the commit, then read back by the check scan.
pub const OP_RECORD_MARGIN_MS: u64 = 1000;

/// How often the broker registers with the name server (ms): the lowest the broker accepts.
pub const REGISTER_NAME_SERVER_PERIOD_MS: u64 = 10_000;

/// The broker's defaults for the settings left unset.
const BROKER_TRANSACTION_TIMEOUT_MS: u64 = 6000;
const BROKER_TRANSACTION_CHECK_INTERVAL_MS: u64 = 30_000;

/// Name-server settings (`bank-transfer namesrv`).
#[derive(Debug, Clone, Args)]
pub struct NamesrvArgs {
    /// Port to listen on (127.0.0.1 unless --bind says otherwise).
    #[arg(long, default_value_t = 9876)]
    pub port: u16,
    /// Address to bind.
    #[arg(long, default_value = "127.0.0.1")]
    pub bind: String,
    /// Directory for the name server's small state files.
    #[arg(long)]
    pub home: PathBuf,
    /// Stop when stdin reaches EOF (the parent process is gone).
    #[arg(long)]
    pub exit_with_parent: bool,
}

/// Broker settings (`bank-transfer broker`). Broker knobs that tests and demos change are
/// flags here; anything left out keeps the rocketmq-rust default (= RocketMQ's).
#[derive(Debug, Clone, Args)]
pub struct BrokerArgs {
    /// Name server address (host:port).
    #[arg(long, default_value = "127.0.0.1:9876")]
    pub namesrv: String,
    /// Client port; the broker also binds port-2 ("fast" channel) and port+1 (HA).
    #[arg(long, default_value_t = 10911)]
    pub port: u16,
    /// Address to bind and to advertise to clients.
    #[arg(long, default_value = "127.0.0.1")]
    pub bind: String,
    /// Address advertised to clients when it differs from --bind (e.g. a container name).
    #[arg(long)]
    pub advertise: Option<String>,
    /// Store root (commit log, consume queues, index, offsets).
    #[arg(long)]
    pub store: PathBuf,
    /// Stop when stdin reaches EOF (the parent process is gone).
    #[arg(long)]
    pub exit_with_parent: bool,
    #[command(flatten)]
    pub tuning: BrokerTuning,
}

/// The broker settings the stack exposes (`--message-delay-level` etc.).
#[derive(Debug, Clone, Default, Args)]
pub struct BrokerTuning {
    /// Retry ladder: 18 delays with units s/m/h/d. Default: RocketMQ's
    /// "1s 5s 10s 30s 1m 2m 3m 4m 5m 6m 7m 8m 9m 10m 20m 30m 1h 2h".
    #[arg(long, env = "BANK_TRANSFER_MESSAGE_DELAY_LEVEL")]
    pub message_delay_level: Option<String>,
    /// Milliseconds a half message waits before the broker may check it back (default 6000).
    #[arg(long, env = "BANK_TRANSFER_TRANSACTION_TIMEOUT")]
    pub transaction_timeout: Option<u64>,
    /// Milliseconds between the broker's check-back scans (default 30000).
    #[arg(long, env = "BANK_TRANSFER_TRANSACTION_CHECK_INTERVAL")]
    pub transaction_check_interval: Option<u64>,
    /// Check-backs before an undecided half message is dropped (default 15).
    #[arg(long, env = "BANK_TRANSFER_TRANSACTION_CHECK_MAX")]
    pub transaction_check_max: Option<u32>,
    /// Milliseconds between the broker's writes of its "done" records of half messages
    /// (`transactionOpBatchInterval`). The broker's own default is 3000; the stack uses
    /// [`DEFAULT_OP_BATCH_INTERVAL_MS`]. A check-back scan that runs before a commit's done
    /// record is written re-checks that half message and commits it a second time (a duplicate
    /// delivery), so the transaction timeout must stay well above this interval: see
    /// [`BrokerTuning::validate`] and docs/ARCHITECTURE.md, "Check-backs and double commits".
    #[arg(long, env = "BANK_TRANSFER_TRANSACTION_OP_BATCH_INTERVAL")]
    pub transaction_op_batch_interval: Option<u64>,
    /// Keep the store small (64 MiB commit-log segments, small index): for demos and tests.
    /// Production brokers keep the 1 GiB default.
    #[arg(long, env = "BANK_TRANSFER_SMALL_STORE", default_value_t = true, action = clap::ArgAction::Set)]
    pub small_store: bool,
}

impl BrokerTuning {
    /// Command-line form, to hand the same settings to a broker child.
    pub fn to_args(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(v) = &self.message_delay_level {
            out.extend(["--message-delay-level".into(), v.clone()]);
        }
        if let Some(v) = self.transaction_timeout {
            out.extend(["--transaction-timeout".into(), v.to_string()]);
        }
        if let Some(v) = self.transaction_check_interval {
            out.extend(["--transaction-check-interval".into(), v.to_string()]);
        }
        if let Some(v) = self.transaction_check_max {
            out.extend(["--transaction-check-max".into(), v.to_string()]);
        }
        if let Some(v) = self.transaction_op_batch_interval {
            out.extend(["--transaction-op-batch-interval".into(), v.to_string()]);
        }
        out.extend(["--small-store".into(), self.small_store.to_string()]);
        out
    }

    /// The op-batch interval in force: ours unless the flag says otherwise.
    pub fn op_batch_interval(&self) -> u64 {
        self.transaction_op_batch_interval.unwrap_or(DEFAULT_OP_BATCH_INTERVAL_MS)
    }

    /// Checks the settings before any process starts: a ladder of 18 levels of
    /// `<n>(s|m|h|d)`, and check-back timings that cannot commit a half message twice (the
    /// transaction timeout at least [`OP_RECORD_MARGIN_MS`] above the op-batch interval, the
    /// check interval above it).
    pub fn validate(&self) -> anyhow::Result<()> {
        let op = self.op_batch_interval();
        anyhow::ensure!(op > 0, "--transaction-op-batch-interval must be at least 1 ms");
        let timeout = self.transaction_timeout.unwrap_or(BROKER_TRANSACTION_TIMEOUT_MS);
        anyhow::ensure!(
            timeout >= op + OP_RECORD_MARGIN_MS,
            "--transaction-timeout {timeout} ms must be at least the op-batch interval ({op} ms) + \
             {OP_RECORD_MARGIN_MS} ms: a check-back before the commit's done record is written commits \
             the half message twice"
        );
        let check = self.transaction_check_interval.unwrap_or(BROKER_TRANSACTION_CHECK_INTERVAL_MS);
        anyhow::ensure!(
            check > op,
            "--transaction-check-interval {check} ms must be above the op-batch interval ({op} ms)"
        );
        if let Some(levels) = &self.message_delay_level {
            let parts: Vec<&str> = levels.split_whitespace().collect();
            anyhow::ensure!(parts.len() == 18, "--message-delay-level needs 18 delays, got {}", parts.len());
            for p in parts {
                let (n, unit) = p.split_at(p.len().saturating_sub(1));
                let ok =
                    !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) && matches!(unit, "s" | "m" | "h" | "d");
                anyhow::ensure!(ok, "--message-delay-level: {p:?} is not a delay like 10s, 1m, 2h");
            }
        }
        Ok(())
    }
}

/// Completes when the parent closes our stdin (it exited or dropped us).
async fn parent_gone() {
    use tokio::io::AsyncReadExt;
    let mut stdin = tokio::io::stdin();
    let mut buf = [0u8; 64];
    loop {
        match stdin.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

async fn stop_requested(exit_with_parent: bool) {
    let parent = async {
        if exit_with_parent {
            parent_gone().await
        } else {
            std::future::pending().await
        }
    };
    tokio::select! {
        () = common::infra::shutdown::shutdown_signal() => {},
        () = parent => {},
    }
}

fn init_remoting() -> anyhow::Result<()> {
    rocketmq_protocol::protocol::remoting_command_facade::initialize_remoting_defaults(
        rocketmq_model::version::CURRENT_VERSION as i32,
    )
    .map_err(|e| anyhow::anyhow!("initialising RocketMQ remoting defaults: {e}"))
}

/// Runs `f` on a RuntimeOwner sized like the upstream server binaries (`RuntimeConfig`'s
/// server profile), then shuts that runtime down.
fn serve<F, Fut>(config: RuntimeConfig, scope: &'static str, f: F) -> anyhow::Result<()>
where
    F: FnOnce(ChildServiceContext) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let owner = RuntimeOwner::plan(config)
        .context("server runtime configuration")?
        .build()
        .context("building the server runtime")?;
    let ctx = owner.root_context().component(scope);
    let result = owner.block_on(f(ctx));
    if let Err(e) = owner.shutdown_runtime_blocking_with_timeout(std::time::Duration::from_secs(15)) {
        tracing::warn!(error = %e, "{scope} runtime did not stop cleanly");
    }
    result
}

/// `bank-transfer namesrv`: a name server until stopped.
pub fn serve_namesrv(args: NamesrvArgs) -> anyhow::Result<()> {
    serve(RuntimeConfig::namesrv_default(), "rocketmq-namesrv-runtime", |ctx| run_namesrv(args, ctx))
}

/// `bank-transfer broker`: a broker until stopped.
pub fn serve_broker(args: BrokerArgs) -> anyhow::Result<()> {
    serve(RuntimeConfig::broker_default(), "rocketmq-broker-runtime", |ctx| run_broker(args, ctx))
}

/// Runs a name server until stopped.
async fn run_namesrv(args: NamesrvArgs, ctx: ChildServiceContext) -> anyhow::Result<()> {
    init_remoting()?;
    std::fs::create_dir_all(&args.home).with_context(|| format!("creating {}", args.home.display()))?;
    let home = args.home.to_string_lossy().into_owned();
    let config = rocketmq_namesrv::NamesrvConfig {
        rocketmq_home: home.clone(),
        kv_config_path: args.home.join("kvConfig.json").to_string_lossy().into_owned(),
        config_store_path: args.home.join("namesrv.properties").to_string_lossy().into_owned(),
        ..rocketmq_namesrv::NamesrvConfig::default()
    };
    let server =
        ServerConfig { bind_address: args.bind.clone(), listen_port: u32::from(args.port), ..ServerConfig::default() };
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel::<()>();
    let port = args.port;
    let bind = args.bind.clone();
    tokio::spawn(async move {
        let addr = if bind == "0.0.0.0" { "127.0.0.1".to_string() } else { bind };
        loop {
            if tokio::net::TcpStream::connect((addr.as_str(), port)).await.is_ok() {
                let _ = ready_tx.send(());
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    });
    let boot = rocketmq_namesrv::bootstrap::Builder::new(ctx, TelemetryHandle::noop())
        .set_name_server_config(config)
        .set_server_config(server)
        .build()
        .boot_with_shutdown(stop_requested(args.exit_with_parent));
    tokio::pin!(boot);
    tokio::select! {
        r = &mut boot => return r.map_err(|e| anyhow::anyhow!("name server failed: {e}")),
        _ = ready_rx => println!("{READY_LINE}"),
    }
    boot.await.map_err(|e| anyhow::anyhow!("name server failed: {e}"))
}

/// Builds the broker's validated configuration from our flags.
pub fn broker_config(args: &BrokerArgs) -> anyhow::Result<ValidatedBrokerConfig> {
    args.tuning.validate()?;
    std::fs::create_dir_all(&args.store).with_context(|| format!("creating {}", args.store.display()))?;
    let root = args.store.to_string_lossy().into_owned();
    let advertise = args.advertise.clone().unwrap_or_else(|| args.bind.clone());
    let mut broker = BrokerConfig {
        broker_ip1: advertise.into(),
        listen_port: u32::from(args.port),
        store_path_root_dir: root.clone().into(),
        namesrv_addr: Some(args.namesrv.clone().into()),
        auto_create_topic_enable: true,
        auto_create_subscription_group: true,
        ..BrokerConfig::default()
    };
    broker.broker_server_config.bind_address = args.bind.clone();
    broker.broker_server_config.listen_port = u32::from(args.port);
    let t = &args.tuning;
    if let Some(v) = t.transaction_timeout {
        broker.transaction_timeout = v;
    }
    if let Some(v) = t.transaction_check_interval {
        broker.transaction_check_interval = v;
    }
    if let Some(v) = t.transaction_check_max {
        broker.transaction_check_max = v;
    }
    broker.transaction_op_batch_interval = t.op_batch_interval();
    // Re-register with the name server every 10 s (the broker's floor; RocketMQ's default is
    // 30 s): a name server that restarts knows no broker until then, and a client that starts
    // meanwhile finds no route (chaos saw bank1 refuse transfers for 27 s after both restarted).
    broker.register_name_server_period = REGISTER_NAME_SERVER_PERIOD_MS;
    let bind_ip: IpAddr = args.bind.parse().unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST));
    let mut store = MessageStoreConfig {
        store_path_root_dir: root.into(),
        ha_listen_address: bind_ip,
        ha_listen_port: usize::from(args.port) + 1,
        ..MessageStoreConfig::default()
    };
    if let Some(levels) = &t.message_delay_level {
        store.message_delay_level = levels.clone();
    }
    if t.small_store {
        store.mapped_file_size_commit_log = 64 * 1024 * 1024;
        store.max_hash_slot_num = 100_000;
        store.max_index_num = 400_000;
    }
    ValidatedBrokerConfig::try_from_parts(broker, store)
        .map_err(|e| anyhow::anyhow!("invalid broker configuration: {e}"))
}

/// Runs a broker until stopped.
async fn run_broker(args: BrokerArgs, ctx: ChildServiceContext) -> anyhow::Result<()> {
    init_remoting()?;
    let config = broker_config(&args)?;
    let running = rocketmq_broker::Builder::new(ctx, TelemetryRuntimeGuard::noop())
        .with_validated_config(config)
        .build()
        .initialize()
        .await
        .map_err(|e| anyhow::anyhow!("broker initialisation failed: {e}"))?
        .start()
        .await
        .map_err(|e| anyhow::anyhow!("broker start failed: {e}"))?;
    println!("{READY_LINE}");
    stop_requested(args.exit_with_parent).await;
    running.shutdown().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delay_ladder_is_checked() {
        let mut t = BrokerTuning { message_delay_level: Some(vec!["1s"; 18].join(" ")), ..Default::default() };
        assert!(t.validate().is_ok());
        t.message_delay_level = Some(DEFAULT_DELAY_LEVELS.into());
        assert!(t.validate().is_ok());
        t.message_delay_level = Some("1s 2s".into());
        assert!(t.validate().is_err());
        t.message_delay_level = Some(vec!["1x"; 18].join(" "));
        assert!(t.validate().is_err());
    }

    #[test]
    fn check_back_timings_cannot_commit_twice() {
        let ok = BrokerTuning {
            transaction_timeout: Some(3000),
            transaction_check_interval: Some(5000),
            ..Default::default()
        };
        assert!(ok.validate().is_ok());
        assert!(BrokerTuning::default().validate().is_ok(), "the broker's defaults with ours");
        // The broker's own op-batch interval with the tests' old timeout: the race that
        // committed half messages twice.
        let racy = BrokerTuning { transaction_op_batch_interval: Some(3000), ..ok.clone() };
        assert!(racy.validate().is_err());
        let slow_check = BrokerTuning { transaction_check_interval: Some(200), ..ok };
        assert!(slow_check.validate().is_err());
    }
}
