//! The one way to start a whole stack — name server, broker, both topics, bank1 and bank2 with
//! their databases, keys and tokens — for the launcher, the tests, the bench and the chaos
//! runner alike, and to crash, restart and stop its parts.
//!
//! ```text
//! let stack = StackBuilder::new(exe).database(DbChoice::Sqlite).start().await?;
//! // stack.bank1_url, stack.bank2_url, stack.secrets, stack.bank1().shared.db.pool, …
//! stack.stop().await;
//! ```
//!
//! The name server and broker are child processes of `exe` (the launcher binary, which has
//! the hidden `namesrv` / `broker` subcommands); the banks run in this process on listeners
//! bound before either starts, so each knows the other's address.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use common::service::app::{App, Service};
use common::service::settings::BankSettings;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::databases::{Databases, DbChoice};
use crate::embedded::BrokerTuning;
use crate::network::{Network, Placement};
use crate::ports::{free_broker_port, free_port};
use crate::processes::{ProcessParts, ProcessStack};
use crate::running::Running;
use crate::secrets::Secrets;
use crate::servers::{ServerPlaces, Servers};

/// How often a stack start is tried when its servers die before they are ready.
const START_ATTEMPTS: u32 = 3;

type Configure = Box<dyn FnOnce(&mut bank1::Settings, &mut bank2::Settings) + Send>;

/// What to start.
pub struct StackBuilder {
    exe: PathBuf,
    dir: Option<PathBuf>,
    keep: bool,
    db: DbChoice,
    tuning: BrokerTuning,
    namesrv_port: Option<u16>,
    broker_port: Option<u16>,
    bank1_listen: SocketAddr,
    bank2_listen: SocketAddr,
    secrets: Option<Secrets>,
    configure: Option<Configure>,
    network: Option<Network>,
}

/// A part of the stack that can be crashed or restarted alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    Namesrv,
    Broker,
    Bank1,
    Bank2,
}

impl Part {
    /// Its name in logs, journals and namespace names: `namesrv`, `broker`, `bank1`, `bank2`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Namesrv => "namesrv",
            Self::Broker => "broker",
            Self::Bank1 => "bank1",
            Self::Bank2 => "bank2",
        }
    }
}

impl StackBuilder {
    /// A stack whose servers are children of `exe` (the launcher binary). Defaults: a fresh
    /// temp dir, SQLite, free ports, the broker's default tuning with a small store, generated
    /// secrets.
    pub fn new(exe: impl Into<PathBuf>) -> Self {
        let any = SocketAddr::from(([127, 0, 0, 1], 0));
        Self {
            exe: exe.into(),
            dir: None,
            keep: false,
            db: DbChoice::Sqlite,
            tuning: BrokerTuning { small_store: true, ..BrokerTuning::default() },
            namesrv_port: None,
            broker_port: None,
            bank1_listen: any,
            bank2_listen: any,
            secrets: None,
            configure: None,
            network: None,
        }
    }

    /// Everything under `dir` (kept): broker store, name-server state, SQLite files, logs, and
    /// the secrets (`dir/secrets/`, created on first start, reused after).
    pub fn data_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.dir = Some(dir.into());
        self
    }

    /// Keep the temp dir and scratch databases after `stop`.
    pub fn keep(mut self, keep: bool) -> Self {
        self.keep = keep;
        self
    }

    pub fn database(mut self, db: DbChoice) -> Self {
        self.db = db;
        self
    }

    pub fn tuning(mut self, tuning: BrokerTuning) -> Self {
        self.tuning = tuning;
        self
    }

    /// Fixed name-server and broker ports (default: free ones).
    pub fn server_ports(mut self, namesrv: u16, broker: u16) -> Self {
        self.namesrv_port = Some(namesrv);
        self.broker_port = Some(broker);
        self
    }

    /// Where the banks listen (default: free loopback ports).
    pub fn listen(mut self, bank1: SocketAddr, bank2: SocketAddr) -> Self {
        self.bank1_listen = bank1;
        self.bank2_listen = bank2;
        self
    }

    pub fn secrets(mut self, secrets: Secrets) -> Self {
        self.secrets = Some(secrets);
        self
    }

    /// Runs each part in a network namespace of its own on `network`, so that parts can be
    /// cut off from each other ([`ProcessStack::partition`]). Only for
    /// [`start_processes`](Self::start_processes).
    pub fn network(mut self, network: Network) -> Self {
        self.network = Some(network);
        self
    }

    /// Last word on the banks' settings (after addresses, databases and secrets are set).
    pub fn configure(mut self, f: impl FnOnce(&mut bank1::Settings, &mut bank2::Settings) + Send + 'static) -> Self {
        self.configure = Some(Box::new(f));
        self
    }

    /// Starts it all; on failure, stops what was started.
    /// The name server and broker. Ports the caller did not fix are picked at random; a pick
    /// can race another process, so a server that dies before it is ready is retried on
    /// fresh ports (up to [`START_ATTEMPTS`] times), each attempt logged under `logs/`.
    async fn start_servers(&self, dir: &std::path::Path, topics: &[&str]) -> anyhow::Result<Servers> {
        let fixed = self.namesrv_port.is_some() && self.broker_port.is_some();
        let mut attempt = 1;
        loop {
            let namesrv_port = self.namesrv_port.map_or_else(free_port, Ok)?;
            let broker_port = self.broker_port.map_or_else(free_broker_port, Ok)?;
            let on = self.network.as_ref();
            let at =
                ServerPlaces { namesrv: Placement::of(on, Part::Namesrv), broker: Placement::of(on, Part::Broker) };
            match Servers::start(&self.exe, dir, (namesrv_port, broker_port), &at, &self.tuning, topics).await {
                Ok(s) => return Ok(s),
                Err(e) if !fixed && attempt < START_ATTEMPTS => {
                    tracing::warn!(
                        attempt,
                        namesrv_port,
                        broker_port,
                        "servers did not start, retrying on fresh ports: {e:#}"
                    );
                    // A half-written store from the failed attempt must not be reused.
                    let _ = std::fs::remove_dir_all(dir.join("broker"));
                    let _ = std::fs::remove_dir_all(dir.join("namesrv"));
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Everything but the banks: directory, secrets, servers and topics, databases, and both
    /// banks' settings with the addresses, databases and secrets filled in (not yet where
    /// they listen).
    async fn prepare(&self) -> anyhow::Result<Prepared> {
        let (dir, temp) = match &self.dir {
            Some(d) => {
                let d = std::path::absolute(d).context("resolving the data directory")?;
                std::fs::create_dir_all(&d).with_context(|| format!("creating {}", d.display()))?;
                (d, None)
            }
            None => {
                let t = tempfile::Builder::new().prefix("bank-transfer.").tempdir().context("creating a temp dir")?;
                (t.path().to_owned(), Some(t))
            }
        };
        let secrets = match (&self.secrets, &self.dir) {
            (Some(s), _) => s.clone(),
            (None, Some(_)) => Secrets::load_or_create(&dir.join("secrets"))?,
            (None, None) => Secrets::generate(),
        };
        let mut s1 = bank1::Settings::from_env();
        let mut s2 = bank2::Settings::from_env();
        let topics = [s1.common.topic.as_str(), s1.common.refund_topic.as_str()];
        let servers = self.start_servers(&dir, &topics).await?;
        let tag = uuid::Uuid::new_v4().simple().to_string()[..12].to_owned();
        let databases = match Databases::prepare(&self.db, &dir, &tag).await {
            Ok(d) => d,
            Err(e) => {
                servers.stop().await;
                return Err(e);
            }
        };
        for (c, db) in [(&mut s1.common, &databases.bank1_url), (&mut s2.common, &databases.bank2_url)] {
            c.namesrv_addr = servers.namesrv_addr.clone();
            c.database_url = db.clone();
        }
        if let Err(e) = secrets.apply(&mut s1, &mut s2) {
            servers.stop().await;
            let mut databases = databases;
            databases.drop_scratch(self.keep).await;
            return Err(e);
        }
        Ok(Prepared { dir, temp, secrets, servers, databases, s1, s2 })
    }

    /// Starts it all, the banks in this process; on failure, stops what was started.
    pub async fn start(self) -> anyhow::Result<Stack> {
        anyhow::ensure!(
            self.network.is_none(),
            "a stack on its own network runs its banks as processes: start_processes"
        );
        let (running, mut s1, mut s2) = Running::new(self.prepare().await?, self.keep);
        let mut stack = Stack { running, bank1: None, bank2: None, settings: None };
        let started = async {
            // Both listeners first: each bank needs the other's address.
            let l1 =
                TcpListener::bind(self.bank1_listen).await.with_context(|| format!("binding {}", self.bank1_listen))?;
            let l2 =
                TcpListener::bind(self.bank2_listen).await.with_context(|| format!("binding {}", self.bank2_listen))?;
            stack.running.bank1_url = format!("http://{}", l1.local_addr()?);
            stack.running.bank2_url = format!("http://{}", l2.local_addr()?);
            set_addresses(&mut s1, &mut s2, l1.local_addr()?, l2.local_addr()?);
            if let Some(f) = self.configure {
                f(&mut s1, &mut s2);
            }
            stack.bank1 = Some(InProcess::start(App::build_on(s1.clone(), l1).await.context("starting bank1")?));
            stack.bank2 = Some(InProcess::start(App::build_on(s2.clone(), l2).await.context("starting bank2")?));
            stack.settings = Some((s1, s2));
            anyhow::Ok(())
        }
        .await;
        match started {
            Ok(()) => Ok(stack),
            Err(e) => {
                stack.stop().await;
                Err(e)
            }
        }
    }

    /// Starts it all with each bank in a child process of its own (`exe bank1|bank2`), so
    /// that every part — name server, broker, bank1, bank2 — can be killed, paused and
    /// restarted alone: what the chaos runner needs. The banks listen on free loopback ports
    /// (on a [`network`](Self::network): on their own addresses there) unless
    /// [`listen`](Self::listen) fixed the ports.
    pub async fn start_processes(mut self) -> anyhow::Result<ProcessStack> {
        let mut prepared = self.prepare().await?;
        let (s1, s2) = (&mut prepared.s1, &mut prepared.s2);
        // On a network a bank listens on its part's address there; the port is free or fixed.
        let pick = |a: SocketAddr, part: Part| -> anyhow::Result<SocketAddr> {
            let ip = self.network.as_ref().map_or(a.ip(), |n| n.ip(part));
            Ok(SocketAddr::new(ip, if a.port() == 0 { free_port()? } else { a.port() }))
        };
        let (a1, a2) = (pick(self.bank1_listen, Part::Bank1)?, pick(self.bank2_listen, Part::Bank2)?);
        set_addresses(s1, s2, a1, a2);
        if let Some(f) = self.configure {
            f(s1, s2);
        }
        ProcessStack::launch(ProcessParts {
            exe: self.exe.clone(),
            prepared,
            network: self.network.take(),
            keep: self.keep,
        })
        .await
    }
}

/// What [`StackBuilder::prepare`] made.
pub(crate) struct Prepared {
    pub dir: PathBuf,
    pub temp: Option<tempfile::TempDir>,
    pub secrets: Secrets,
    pub servers: Servers,
    pub databases: Databases,
    pub s1: bank1::Settings,
    pub s2: bank2::Settings,
}

/// Where each bank listens, and so where its peer finds it.
fn set_addresses(s1: &mut bank1::Settings, s2: &mut bank2::Settings, a1: SocketAddr, a2: SocketAddr) {
    s1.common.listen = a1;
    s2.common.listen = a2;
    s1.common.peer_url = format!("http://{a2}");
    s2.common.peer_url = format!("http://{a1}");
}

/// A running stack with its banks in this process; derefs to what every stack offers
/// ([`Running`]: URLs, secrets, data dir, databases, logs).
pub struct Stack {
    running: Running,
    bank1: Option<InProcess<bank1::AppState>>,
    bank2: Option<InProcess<bank2::AppState>>,
    settings: Option<(bank1::Settings, bank2::Settings)>,
}

impl std::ops::Deref for Stack {
    type Target = Running;

    fn deref(&self) -> &Running {
        &self.running
    }
}

impl Stack {
    /// bank1's state (database pool, producer, …).
    pub fn bank1(&self) -> &bank1::AppState {
        &self.bank1.as_ref().expect("bank1 runs").state
    }

    /// bank2's state (database pool, the apply path, …).
    pub fn bank2(&self) -> &bank2::AppState {
        &self.bank2.as_ref().expect("bank2 runs").state
    }

    /// The settings each bank was started with.
    pub fn settings(&self) -> &(bank1::Settings, bank2::Settings) {
        self.settings.as_ref().expect("started")
    }

    /// Process ids: (broker, name server).
    pub fn pids(&self) -> (Option<u32>, Option<u32>) {
        let s = self.servers();
        (s.broker.pid(), s.namesrv.pid())
    }

    /// Stops `part` gracefully and starts it again on the same data and port: a deploy.
    pub async fn restart(&mut self, part: Part) -> anyhow::Result<()> {
        self.bounce(part, false).await
    }

    /// Kills `part` without warning (SIGKILL for the name server and broker; for an in-process bank its task is
    /// aborted mid-flight) and starts it again on the same data and port.
    pub async fn crash_and_restart(&mut self, part: Part) -> anyhow::Result<()> {
        self.bounce(part, true).await
    }

    /// Like [`crash_and_restart`](Self::crash_and_restart), with `while_down` run to completion
    /// between the kill and the restart: what clients see during an outage.
    pub async fn crash_and_restart_after<F: std::future::Future>(
        &mut self,
        part: Part,
        while_down: F,
    ) -> anyhow::Result<F::Output> {
        self.take_down(part, true).await?;
        let out = while_down.await;
        self.bring_up(part).await?;
        Ok(out)
    }

    async fn bounce(&mut self, part: Part, crash: bool) -> anyhow::Result<()> {
        self.take_down(part, crash).await?;
        self.bring_up(part).await
    }

    async fn take_down(&mut self, part: Part, crash: bool) -> anyhow::Result<()> {
        match part {
            Part::Namesrv => self.running.servers_mut().stop_namesrv(crash).await?,
            Part::Broker => self.running.servers_mut().stop_broker(crash).await?,
            Part::Bank1 => {
                if let Some(b) = self.bank1.take() {
                    b.end(crash).await;
                }
            }
            Part::Bank2 => {
                if let Some(b) = self.bank2.take() {
                    b.end(crash).await;
                }
            }
        }
        Ok(())
    }

    async fn bring_up(&mut self, part: Part) -> anyhow::Result<()> {
        let (s1, s2) = self.settings.clone().expect("started");
        match part {
            Part::Namesrv => self.running.servers_mut().start_namesrv().await?,
            Part::Broker => self.running.servers_mut().start_broker().await?,
            Part::Bank1 => self.bank1 = Some(InProcess::start(App::build(s1).await.context("restarting bank1")?)),
            Part::Bank2 => self.bank2 = Some(InProcess::start(App::build(s2).await.context("restarting bank2")?)),
        }
        Ok(())
    }

    /// Stops the banks, then the servers; drops scratch databases and the temp dir unless
    /// kept.
    pub async fn stop(mut self) {
        if let Some(b) = self.bank2.take() {
            b.end(false).await;
        }
        if let Some(b) = self.bank1.take() {
            b.end(false).await;
        }
        self.running.tear_down().await;
    }
}

/// A bank serving in a task of this process, and the switch that stops it.
struct InProcess<S> {
    state: S,
    stop: watch::Sender<bool>,
    task: JoinHandle<anyhow::Result<()>>,
}

impl<S: Service> InProcess<S> {
    fn start(app: App<S>) -> Self {
        let state = app.state().clone();
        let (stop, mut rx) = watch::channel(false);
        let task = tokio::spawn(app.run_until(async move {
            let _ = rx.wait_for(|s| *s).await;
        }));
        Self { state, stop, task }
    }

    /// Graceful (HTTP drains, background tasks and MQ roles stop), or abrupt when `crash`
    /// (the serving task is dropped where it stands; its listener closes with it).
    async fn end(self, crash: bool) {
        let name = self.state.shared().names.bank;
        if crash {
            self.task.abort();
            let _ = self.task.await;
            return;
        }
        let _ = self.stop.send(true);
        match self.task.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = ?e, "{name} stopped with an error"),
            Err(e) => tracing::warn!(error = %e, "{name} task failed"),
        }
    }
}
