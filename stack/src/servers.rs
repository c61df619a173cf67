//! The name server and broker as child processes of the launcher binary (its hidden
//! `namesrv` / `broker` subcommands, see [`crate::embedded`]): started on given ports under a
//! data directory, with the topics created up front; the broker can be crashed and restarted
//! on the same store.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;

use crate::children::ChildServer;
use crate::embedded::BrokerTuning;
use crate::network::Placement;

/// How long a child may take to say it is ready (cold disk, 2 cores, busy machine).
const READY_WITHIN: Duration = Duration::from_secs(60);

/// The name server and broker children.
pub struct Servers {
    pub namesrv: ChildServer,
    pub broker: ChildServer,
    pub namesrv_addr: String,
    pub broker_addr: String,
    exe: PathBuf,
    dir: PathBuf,
    namesrv_port: u16,
    broker_port: u16,
    tuning: BrokerTuning,
    at: ServerPlaces,
}

/// Where the name server and the broker run (both on loopback unless the stack has a
/// [`Network`](crate::network::Network)).
#[derive(Debug, Clone)]
pub struct ServerPlaces {
    pub namesrv: Placement,
    pub broker: Placement,
}

impl Servers {
    /// Starts both under `dir` (`namesrv/`, `broker/`, `logs/`) where `at` says, and creates
    /// `topics`.
    pub async fn start(
        exe: &Path,
        dir: &Path,
        (namesrv_port, broker_port): (u16, u16),
        at: &ServerPlaces,
        tuning: &BrokerTuning,
        topics: &[&str],
    ) -> anyhow::Result<Self> {
        tuning.validate()?;
        let dir = std::path::absolute(dir).context("resolving the data directory")?;
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let mut me = Self {
            namesrv: ChildServer::placeholder()?,
            broker: ChildServer::placeholder()?,
            namesrv_addr: format!("{}:{namesrv_port}", at.namesrv.ip),
            broker_addr: format!("{}:{broker_port}", at.broker.ip),
            exe: exe.to_owned(),
            dir,
            namesrv_port,
            broker_port,
            tuning: tuning.clone(),
            at: at.clone(),
        };
        me.start_namesrv().await?;
        me.start_broker().await?;
        let rt = common::infra::mq::MqRuntime::new("admin")?;
        let mut created = Ok(());
        for topic in topics {
            created = crate::topics::ensure_topic(&rt, &me.namesrv_addr, &me.broker_addr, topic, 4).await;
            if created.is_err() {
                break;
            }
        }
        rt.shutdown().await;
        created?;
        Ok(me)
    }

    /// Stops the broker — gracefully, or with SIGKILL (a crash) when `kill` — and starts it
    /// again on the same store and port.
    pub async fn restart_broker(&mut self, kill: bool) -> anyhow::Result<()> {
        self.stop_broker(kill).await?;
        self.start_broker().await
    }

    /// Stops the broker — gracefully, or with SIGKILL when `kill` — and leaves it down.
    pub async fn stop_broker(&mut self, kill: bool) -> anyhow::Result<()> {
        take_down(&mut self.broker, kill, Duration::from_secs(20)).await
    }

    /// Starts the broker again on the same store and port (after [`stop_broker`](Self::stop_broker)).
    pub async fn start_broker(&mut self) -> anyhow::Result<()> {
        let args = broker_args(&self.dir, &self.namesrv_addr, &self.at.broker, self.broker_port, &self.tuning);
        self.broker = self.spawn("broker", &self.at.broker, &args).await?;
        Ok(())
    }

    /// Stops the name server — gracefully, or with SIGKILL when `kill` — and leaves it down.
    pub async fn stop_namesrv(&mut self, kill: bool) -> anyhow::Result<()> {
        take_down(&mut self.namesrv, kill, Duration::from_secs(10)).await
    }

    /// Starts the name server again on the same port and state (after
    /// [`stop_namesrv`](Self::stop_namesrv)). The broker registers with it again on its next
    /// heartbeat (every [`REGISTER_NAME_SERVER_PERIOD_MS`](crate::embedded::REGISTER_NAME_SERVER_PERIOD_MS)),
    /// and clients find their routes then.
    pub async fn start_namesrv(&mut self) -> anyhow::Result<()> {
        let args = namesrv_args(&self.dir, &self.at.namesrv, self.namesrv_port);
        self.namesrv = self.spawn("namesrv", &self.at.namesrv, &args).await?;
        Ok(())
    }

    async fn spawn(&self, name: &str, at: &Placement, args: &[String]) -> anyhow::Result<ChildServer> {
        let log = self.dir.join(format!("logs/{name}.log"));
        ChildServer::spawn(name, at, &self.exe, args, &log, READY_WITHIN).await
    }

    /// Graceful stop: broker first, then the name server.
    pub async fn stop(self) {
        self.broker.stop(Duration::from_secs(20)).await;
        self.namesrv.stop(Duration::from_secs(10)).await;
    }
}

fn namesrv_args(dir: &Path, at: &Placement, port: u16) -> Vec<String> {
    let mut args = server_args("namesrv", at, port);
    args.extend(["--home".into(), dir.join("namesrv").display().to_string()]);
    args
}

fn broker_args(dir: &Path, namesrv_addr: &str, at: &Placement, port: u16, tuning: &BrokerTuning) -> Vec<String> {
    let mut args = server_args("broker", at, port);
    args.extend(["--namesrv".into(), namesrv_addr.into(), "--store".into(), dir.join("broker").display().to_string()]);
    args.extend(tuning.to_args());
    args
}

/// What both servers are started with: the subcommand, and where they listen.
fn server_args(server: &str, at: &Placement, port: u16) -> Vec<String> {
    let (ip, port) = (at.ip.to_string(), port.to_string());
    [server, "--exit-with-parent", "--bind", &ip, "--port", &port].map(String::from).to_vec()
}

/// Stops the child in `slot` — SIGKILL when `kill`, else gracefully within `grace` — and
/// leaves a finished placeholder there until it is started again.
async fn take_down(slot: &mut ChildServer, kill: bool, grace: Duration) -> anyhow::Result<()> {
    let old = std::mem::replace(slot, ChildServer::placeholder()?);
    if kill {
        old.kill().await;
    } else {
        old.stop(grace).await;
    }
    Ok(())
}
