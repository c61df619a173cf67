//! Child processes the stack owns: spawned from this same binary, ready when they print
//! [`READY_LINE`](crate::embedded::READY_LINE), stopped by closing their stdin (graceful) or
//! killed, and never left behind (`kill_on_drop`).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};

use crate::embedded::READY_LINE;
use crate::network::Placement;

/// A running child; dropping it kills the process.
pub struct ChildServer {
    name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    log: PathBuf,
}

impl ChildServer {
    /// Spawns `exe args…` at `at` (its network namespace, if any), appends its output to
    /// `log`, and waits (up to `ready_within`) for the ready line.
    pub async fn spawn(
        name: &str,
        at: &Placement,
        exe: &Path,
        args: &[String],
        log: &Path,
        ready_within: Duration,
    ) -> anyhow::Result<Self> {
        if let Some(dir) = log.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let err_log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .with_context(|| format!("opening {}", log.display()))?;
        let mut child = at
            .command(exe)
            .args(args)
            .env("RUST_LOG", std::env::var("BANK_TRANSFER_BROKER_LOG").unwrap_or_else(|_| "warn".into()))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(err_log))
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {name} ({})", exe.display()))?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().context("child stdout")?;
        let mut out_log = tokio::fs::OpenOptions::new().create(true).append(true).open(log).await?;
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            let mut ready_tx = Some(ready_tx);
            while let Ok(Some(line)) = lines.next_line().await {
                if line.trim() == READY_LINE {
                    if let Some(tx) = ready_tx.take() {
                        let _ = tx.send(());
                    }
                }
                let _ = out_log.write_all(line.as_bytes()).await;
                let _ = out_log.write_all(b"\n").await;
            }
        });
        let mut me = Self { name: name.to_owned(), child, stdin, log: log.to_owned() };
        tokio::select! {
            r = ready_rx => {
                if r.is_err() {
                    let status = me.child.wait().await.ok();
                    anyhow::bail!("{name} exited before it was ready ({status:?}); see {}", me.log.display());
                }
            }
            () = tokio::time::sleep(ready_within) => {
                anyhow::bail!("{name} was not ready within {ready_within:?}; see {}", me.log.display());
            }
        }
        Ok(me)
    }

    pub fn log_path(&self) -> &Path {
        &self.log
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Graceful stop: close stdin, wait up to `grace`, then kill.
    pub async fn stop(mut self, grace: Duration) {
        drop(self.stdin.take());
        if tokio::time::timeout(grace, self.child.wait()).await.is_err() {
            tracing::warn!(name = %self.name, "did not stop within {grace:?}; killing it");
            let _ = self.child.kill().await;
        }
    }

    /// Crash: SIGKILL, no chance to flush or deregister.
    pub async fn kill(mut self) {
        let _ = self.child.kill().await;
    }
}

impl ChildServer {
    /// A finished no-op child, used to hold a slot while a server is swapped.
    pub fn placeholder() -> anyhow::Result<Self> {
        let child = Command::new("true").stdin(Stdio::null()).stdout(Stdio::null()).kill_on_drop(true).spawn()?;
        Ok(Self { name: "placeholder".into(), child, stdin: None, log: PathBuf::new() })
    }
}
