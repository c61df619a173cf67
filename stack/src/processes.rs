//! A stack whose four parts are separate processes ([`StackBuilder::start_processes`]): the
//! name server and broker as in every stack, and bank1 and bank2 as children of the launcher
//! too (`bank-transfer bank1|bank2`, configured through their environment). Any part can be
//! killed (SIGKILL), paused (SIGSTOP/SIGCONT) and started again on the same data and port —
//! what the chaos runner does to it.
//!
//! [`StackBuilder::start_processes`]: crate::StackBuilder::start_processes

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context;
use common::service::settings::{BankSettings, Common};
use tokio::process::Child;

use crate::builder::Prepared;
use crate::network::{Network, Placement};
use crate::running::Running;
use crate::servers::Servers;

use crate::Part;

/// How long a bank may take to answer `/health` after it is started (migrations, a cold
/// disk, a database that is itself restarting).
const BANK_READY_WITHIN: Duration = Duration::from_secs(90);

/// What [`StackBuilder::start_processes`](crate::StackBuilder::start_processes) hands over.
pub(crate) struct ProcessParts {
    pub exe: PathBuf,
    pub prepared: Prepared,
    pub network: Option<Network>,
    pub keep: bool,
}

/// A running stack of four processes; derefs to what every stack offers ([`Running`]:
/// URLs, secrets, data dir, databases, logs).
pub struct ProcessStack {
    running: Running,
    bank1: BankProcess,
    bank2: BankProcess,
    http: reqwest::Client,
    network: Option<Network>,
}

impl std::ops::Deref for ProcessStack {
    type Target = Running;

    fn deref(&self) -> &Running {
        &self.running
    }
}

impl ProcessStack {
    pub(crate) async fn launch(p: ProcessParts) -> anyhow::Result<Self> {
        let (running, s1, s2) = Running::new(p.prepared, p.keep);
        let at = |part| Placement::of(p.network.as_ref(), part);
        let bank1 = BankProcess::new("bank1", at(Part::Bank1), &p.exe, &running.dir, env_of(&s1));
        let bank2 = BankProcess::new("bank2", at(Part::Bank2), &p.exe, &running.dir, env_of(&s2));
        let mut me = Self {
            running,
            bank1,
            bank2,
            http: reqwest::Client::builder().timeout(Duration::from_secs(5)).build()?,
            network: p.network,
        };
        // bank1 first: it creates its schema, and bank2's reconciler reads its feed.
        let started = async {
            me.start(Part::Bank1).await?;
            me.start(Part::Bank2).await
        }
        .await;
        match started {
            Ok(()) => Ok(me),
            Err(e) => {
                me.stop().await;
                Err(e)
            }
        }
    }

    fn servers(&mut self) -> &mut Servers {
        self.running.servers_mut()
    }

    /// The process id of `part`, while it runs.
    pub fn pid(&self, part: Part) -> Option<u32> {
        let servers = self.running.servers();
        match part {
            Part::Namesrv => servers.namesrv.pid(),
            Part::Broker => servers.broker.pid(),
            Part::Bank1 => self.bank1.pid(),
            Part::Bank2 => self.bank2.pid(),
        }
    }

    /// SIGKILL: no chance to flush, deregister or answer anyone.
    pub async fn kill(&mut self, part: Part) -> anyhow::Result<()> {
        match part {
            Part::Namesrv => self.servers().stop_namesrv(true).await,
            Part::Broker => self.servers().stop_broker(true).await,
            Part::Bank1 => {
                self.bank1.kill().await;
                Ok(())
            }
            Part::Bank2 => {
                self.bank2.kill().await;
                Ok(())
            }
        }
    }

    /// Starts `part` again (after [`kill`](Self::kill)) on the same data and port; a bank is
    /// ready when it answers `/health`.
    pub async fn start(&mut self, part: Part) -> anyhow::Result<()> {
        match part {
            Part::Namesrv => self.servers().start_namesrv().await,
            Part::Broker => self.servers().start_broker().await,
            Part::Bank1 => {
                self.bank1.spawn()?;
                self.bank1.ready(&self.http, &self.running.bank1_url).await
            }
            Part::Bank2 => {
                self.bank2.spawn()?;
                self.bank2.ready(&self.http, &self.running.bank2_url).await
            }
        }
    }

    /// SIGSTOP: the process holds its sockets and its state but answers nothing.
    pub fn pause(&self, part: Part) -> anyhow::Result<()> {
        self.signal(part, "STOP")
    }

    /// SIGCONT after [`pause`](Self::pause).
    pub fn resume(&self, part: Part) -> anyhow::Result<()> {
        self.signal(part, "CONT")
    }

    fn signal(&self, part: Part, sig: &str) -> anyhow::Result<()> {
        let pid = self.pid(part).with_context(|| format!("{part:?} is not running"))?;
        send_signal(pid, sig)
    }

    /// Cuts `a` and `b` off from each other while both run (needs the stack on a
    /// [`Network`]: [`StackBuilder::network`](crate::StackBuilder::network)).
    pub fn partition(&self, a: Part, b: Part) -> anyhow::Result<()> {
        self.network.as_ref().context("partitions need the stack on its own network")?.cut(a, b)
    }

    /// Ends a [`partition`](Self::partition).
    pub fn heal(&self, a: Part, b: Part) -> anyhow::Result<()> {
        self.network.as_ref().context("partitions need the stack on its own network")?.heal(a, b)
    }

    /// Stops the banks (SIGTERM, then SIGKILL after a grace), then the servers; drops scratch
    /// databases and the temp dir unless kept.
    pub async fn stop(mut self) {
        for b in [&mut self.bank2, &mut self.bank1] {
            b.stop(Duration::from_secs(20)).await;
        }
        self.running.tear_down().await;
        if let Some(mut n) = self.network.take() {
            n.destroy();
        }
    }
}

/// Whether this process runs as root (what network namespaces need, and what mariadbd must
/// be told to step down from).
pub fn running_as_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// Sends `SIG<sig>` to `pid` with kill(1) (this workspace forbids `unsafe`).
pub fn send_signal(pid: u32, sig: &str) -> anyhow::Result<()> {
    let status = std::process::Command::new("kill")
        .args([format!("-{sig}"), pid.to_string()])
        .status()
        .context("running kill(1)")?;
    anyhow::ensure!(status.success(), "kill -{sig} {pid}: {status}");
    Ok(())
}

/// One bank as a child process: how to start it again, and the running child.
struct BankProcess {
    name: &'static str,
    at: Placement,
    exe: PathBuf,
    log: PathBuf,
    env: Vec<(String, String)>,
    child: Option<Child>,
}

impl BankProcess {
    fn new(name: &'static str, at: Placement, exe: &Path, dir: &Path, env: Vec<(String, String)>) -> Self {
        Self { name, at, exe: exe.to_owned(), log: dir.join("logs").join(format!("{name}.log")), env, child: None }
    }

    fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(Child::id)
    }

    fn spawn(&mut self) -> anyhow::Result<()> {
        anyhow::ensure!(self.child.is_none(), "{} is already running", self.name);
        if let Some(dir) = self.log.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .with_context(|| format!("opening {}", self.log.display()))?;
        let child = self
            .at
            .command(&self.exe)
            .arg(self.name)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .env("RUST_LOG", std::env::var("BANK_TRANSFER_BANK_LOG").unwrap_or_else(|_| "info".into()))
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {} ({})", self.name, self.exe.display()))?;
        self.child = Some(child);
        Ok(())
    }

    /// Waits until the bank answers `/health` with 200, or fails if it exits first.
    async fn ready(&mut self, http: &reqwest::Client, url: &str) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + BANK_READY_WITHIN;
        let health = format!("{url}/health");
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Some(status) = child.try_wait()? {
                    self.child = None;
                    anyhow::bail!("{} exited before it was ready ({status}); see {}", self.name, self.log.display());
                }
            }
            if http.get(&health).send().await.is_ok_and(|r| r.status().is_success()) {
                return Ok(());
            }
            anyhow::ensure!(
                tokio::time::Instant::now() < deadline,
                "{} did not answer /health within {BANK_READY_WITHIN:?}; see {}",
                self.name,
                self.log.display()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill().await;
        }
    }

    /// SIGTERM (the bank drains and stops), SIGKILL after `grace`. A paused bank is resumed
    /// first, or it could not act on the SIGTERM.
    async fn stop(&mut self, grace: Duration) {
        let Some(mut c) = self.child.take() else { return };
        if let Some(pid) = c.id() {
            let _ = send_signal(pid, "CONT");
            let _ = send_signal(pid, "TERM");
        }
        if tokio::time::timeout(grace, c.wait()).await.is_err() {
            tracing::warn!(bank = self.name, "did not stop within {grace:?}; killing it");
            let _ = c.kill().await;
        }
    }
}

/// A bank's settings as the environment its own process reads them from (the settings the
/// stack fills in: addresses, database, keys, tokens, reconciler timing).
fn env_of<S: BankSettings>(s: &S) -> Vec<(String, String)> {
    let names = S::NAMES;
    let c: &Common = s.common();
    let peer = names.peer.to_uppercase();
    let ms = |d: Duration| format!("{}ms", d.as_millis());
    let mut env = vec![
        (names.env("LISTEN"), c.listen.to_string()),
        (names.env("DATABASE_URL"), c.database_url.clone()),
        ("NAMESRV_ADDR".to_owned(), c.namesrv_addr.clone()),
        (names.env(&format!("{peer}_URL")), c.peer_url.clone()),
        (names.env("RECONCILE_INTERVAL"), ms(c.reconcile_interval)),
        (names.env("RECONCILE_GRACE"), ms(c.reconcile_grace)),
        (names.env("MAX_RECONSUME_TIMES"), c.max_reconsume_times.to_string()),
    ];
    let optional = [
        ("SIGNING_KEY".to_owned(), c.signing_key.clone()),
        ("PEER_PUBLIC_KEYS".to_owned(), c.peer_public_keys.clone()),
        ("ADMIN_TOKEN".to_owned(), c.admin_token.as_ref().map(|t| t.expose().to_owned())),
        ("FEED_TOKEN".to_owned(), c.feed_token.as_ref().map(|t| t.expose().to_owned())),
        (format!("{peer}_FEED_TOKEN"), c.peer_feed_token.as_ref().map(|t| t.expose().to_owned())),
    ];
    env.extend(optional.into_iter().filter_map(|(k, v)| v.map(|v| (names.env(&k), v))));
    env
}
