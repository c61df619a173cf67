//! A MariaDB server that chaos owns (`--db mysql` without `--mysql-url`): a fresh data
//! directory, a free port, a user for the banks — so the nemesis can kill -9 it and start it
//! again on the same data (InnoDB crash recovery included). Needs `mariadb-install-db`,
//! `mariadbd` and `mariadb` on PATH (Debian: `mariadb-server mariadb-client`).

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context;
use tokio::process::{Child, Command};

/// How long a (re)start may take, crash recovery included.
const READY_WITHIN: Duration = Duration::from_secs(120);

pub struct MariaDb {
    dir: PathBuf,
    /// The address it listens on: loopback, or the launcher's address on the chaos network.
    host: IpAddr,
    port: u16,
    child: Option<Child>,
}

impl MariaDb {
    /// Initialises a data directory under `dir`, starts the server on `host` and creates the
    /// banks' user.
    pub async fn start(dir: &Path, host: IpAddr) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let mut me = Self { dir: dir.to_owned(), host, port: stack::ports::free_port()?, child: None };
        let mut install = Command::new("mariadb-install-db");
        install
            .arg("--no-defaults")
            .arg(format!("--datadir={}", me.data().display()))
            .args(["--auth-root-authentication-method=normal", "--skip-test-db"]);
        if let Some(user) = run_as() {
            chown(dir, user)?;
            install.arg(format!("--user={user}"));
        }
        let out = install.output().await.context("running mariadb-install-db (is mariadb-server installed?)")?;
        anyhow::ensure!(
            out.status.success(),
            "mariadb-install-db failed: {}",
            String::from_utf8_lossy(&out.stderr).lines().last().unwrap_or_default()
        );
        me.restart().await?;
        // The banks connect from their own addresses when they run on the chaos network.
        let sql = "CREATE USER 'chaos'@'%' IDENTIFIED BY 'chaos'; GRANT ALL PRIVILEGES ON *.* TO 'chaos'@'%';";
        let out = Command::new("mariadb")
            .arg(format!("--socket={}", me.socket().display()))
            .args(["-uroot", "-e", sql])
            .output()
            .await
            .context("running mariadb (is mariadb-client installed?)")?;
        anyhow::ensure!(out.status.success(), "creating the banks' user: {}", String::from_utf8_lossy(&out.stderr));
        Ok(me)
    }

    /// The server URL the stack creates its scratch databases on.
    pub fn url(&self) -> String {
        format!("mysql://chaos:chaos@{}:{}", self.host, self.port)
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn socket(&self) -> PathBuf {
        self.dir.join("mysqld.sock")
    }

    /// Starts the server on its data directory and port, and waits until it answers.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        anyhow::ensure!(self.child.is_none(), "MariaDB is already running");
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.dir.join("mysqld.log"))?;
        let mut cmd = Command::new("mariadbd");
        cmd.arg("--no-defaults")
            .arg(format!("--datadir={}", self.data().display()))
            .arg(format!("--socket={}", self.socket().display()))
            .arg(format!("--pid-file={}", self.dir.join("mysqld.pid").display()))
            .arg(format!("--port={}", self.port))
            .arg(format!("--bind-address={}", self.host))
            .args(["--innodb-buffer-pool-size=128M", "--max-connections=500", "--skip-name-resolve"])
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .kill_on_drop(true);
        if let Some(user) = run_as() {
            cmd.arg(format!("--user={user}"));
        }
        self.child = Some(cmd.spawn().context("starting mariadbd")?);
        let deadline = tokio::time::Instant::now() + READY_WITHIN;
        loop {
            let ping = Command::new("mariadb-admin")
                .arg(format!("--socket={}", self.socket().display()))
                .args(["-uroot", "ping"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .await;
            if ping.is_ok_and(|s| s.success()) {
                return Ok(());
            }
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                self.child = None;
                anyhow::bail!("mariadbd exited ({status}); see {}", self.dir.join("mysqld.log").display());
            }
            anyhow::ensure!(tokio::time::Instant::now() < deadline, "MariaDB did not answer within {READY_WITHIN:?}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// kill -9: no flush, no clean shutdown.
    pub async fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill().await;
        }
    }

    /// A clean shutdown (SIGTERM), killed after a grace.
    pub async fn stop(mut self) {
        if let Some(mut c) = self.child.take() {
            if let Some(pid) = c.id() {
                let _ = stack::processes::send_signal(pid, "TERM");
            }
            if tokio::time::timeout(Duration::from_secs(30), c.wait()).await.is_err() {
                let _ = c.kill().await;
            }
        }
    }
}

/// mariadbd refuses to run as root unless told whom to run as: `mysql` then.
fn run_as() -> Option<&'static str> {
    stack::processes::running_as_root().then_some("mysql")
}

fn chown(dir: &Path, user: &str) -> anyhow::Result<()> {
    let status = std::process::Command::new("chown")
        .args(["-R", &format!("{user}:{user}")])
        .arg(dir)
        .status()
        .context("running chown")?;
    anyhow::ensure!(status.success(), "chown -R {user} {}: {status}", dir.display());
    Ok(())
}
