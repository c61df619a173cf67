//! The nemesis: faults in an order drawn from the seed, each healed after a random while, and
//! the journal of what was on when.
//!
//! Two tracks run side by side, each with its own generator from the seed, so a seed replays
//! the same choices in the same order:
//! - processes: kill -9 of bank1, bank2, the broker or the name server, restarted on the same
//!   data; SIGSTOP/SIGCONT of bank2 or the broker; kill -9 of the MariaDB server (`db`);
//!   partitions (`partition`): bank2 or bank1 cut off from the broker, bank1 from bank2, or
//!   bank2 from the name server, while all of them run;
//! - injected faults (`inject`): bank1's `unknown_at_least`, `lose_message_at_least`,
//!   `local_tx_fail_at_least` and bank2's `consume_fail_at_least`, switched on live with
//!   `PUT /admin/faults` at a random threshold, and off again.
//!
//! What can be timed by a seed is the order and the lengths; the processes' own timing is not
//! (a replay with the same seed meets the same faults, not the same interleaving).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::seq::SliceRandom;
use rand::{RngExt, SeedableRng};
use rand_pcg::Pcg64Mcg;
use reqwest::Method;
use serde_json::json;
use stack::api::BankApi;
use stack::{Part, ProcessStack};

use super::mariadb::MariaDb;

/// The kinds `--faults` selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    /// kill -9 of a process, restarted on the same data.
    Kill,
    /// SIGSTOP, then SIGCONT.
    Pause,
    /// kill -9 of the MariaDB server, restarted.
    Db,
    /// The banks' injected faults, switched on live.
    Inject,
    /// Two running parts cut off from each other (network namespaces; needs root).
    Partition,
}

impl std::fmt::Display for FaultKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Kill => "kill",
            Self::Pause => "pause",
            Self::Db => "db",
            Self::Inject => "inject",
            Self::Partition => "partition",
        })
    }
}

/// One fault: what, on what, from when to when (ms of run time).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Fault {
    pub kind: FaultKind,
    pub target: String,
    pub start_ms: u64,
    /// When it was healed (`None` while on).
    pub heal_ms: Option<u64>,
    /// Something that went wrong applying or healing it (a restart that needed retries).
    pub note: Option<String>,
}

/// The shared log of faults, and the run's clock.
#[derive(Clone)]
pub struct Journal {
    pub start: Instant,
    faults: Arc<Mutex<Vec<Fault>>>,
}

impl Journal {
    pub fn new() -> Self {
        Self { start: Instant::now(), faults: Arc::new(Mutex::new(Vec::new())) }
    }

    /// Run time now, in ms.
    pub fn ms(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn open(&self, kind: FaultKind, target: &str) -> usize {
        let mut f = self.faults.lock().expect("journal");
        f.push(Fault { kind, target: target.to_owned(), start_ms: self.ms(), heal_ms: None, note: None });
        f.len() - 1
    }

    fn close(&self, i: usize, note: Option<String>) {
        let now = self.ms();
        let mut f = self.faults.lock().expect("journal");
        f[i].heal_ms = Some(now);
        if note.is_some() {
            f[i].note = note;
        }
    }

    pub fn count(&self) -> usize {
        self.faults.lock().expect("journal").len()
    }

    pub fn all(&self) -> Vec<Fault> {
        self.faults.lock().expect("journal").clone()
    }

    /// The faults on at run time `ms`.
    pub fn active_at(&self, ms: u64) -> Vec<String> {
        self.all()
            .iter()
            .filter(|f| f.start_ms <= ms && f.heal_ms.is_none_or(|h| h >= ms))
            .map(|f| format!("{} {}", f.kind, f.target))
            .collect()
    }

    pub fn active_line(&self) -> String {
        let on = self.active_at(self.ms());
        if on.is_empty() {
            "-".to_owned()
        } else {
            on.join(", ")
        }
    }
}

impl Default for Journal {
    fn default() -> Self {
        Self::new()
    }
}

/// The nemesis's orders.
pub struct Nemesis {
    pub seed: u64,
    pub kinds: Vec<FaultKind>,
    pub deadline: Instant,
    pub bank1: BankApi,
    pub bank2: BankApi,
    pub journal: Journal,
}

/// The injected faults: (bank, switch).
const INJECTED: [(&str, &str); 4] = [
    ("bank1", "unknown_at_least"),
    ("bank1", "lose_message_at_least"),
    ("bank1", "local_tx_fail_at_least"),
    ("bank2", "consume_fail_at_least"),
];

/// The pairs a partition cuts apart: each bank from the broker (the two the pattern leans
/// on), bank1 from bank2 (the reconcile feeds, both ways), bank2 from the name server (routes).
const PARTITIONS: [(Part, Part); 4] = [
    (Part::Bank2, Part::Broker),
    (Part::Bank1, Part::Broker),
    (Part::Bank1, Part::Bank2),
    (Part::Bank2, Part::Namesrv),
];

/// How long a process restart is retried (its database or the broker may be down too).
const RESTART_WITHIN: Duration = Duration::from_secs(180);

impl Nemesis {
    /// Runs both tracks until the deadline, heals everything, and hands the stack back with
    /// every part running.
    pub async fn run(
        self,
        mut stack: ProcessStack,
        mut db: Option<MariaDb>,
    ) -> anyhow::Result<(ProcessStack, Option<MariaDb>)> {
        let inject = self.kinds.contains(&FaultKind::Inject).then(|| tokio::spawn(self.inject_track().run()));
        let outcome = self.process_track(&mut stack, &mut db).await;
        if let Some(t) = inject {
            let _ = t.await;
        }
        self.heal_injected().await;
        outcome.map(|()| (stack, db))
    }

    async fn process_track(&self, stack: &mut ProcessStack, db: &mut Option<MariaDb>) -> anyhow::Result<()> {
        let kinds: Vec<FaultKind> = self.kinds.iter().copied().filter(|k| *k != FaultKind::Inject).collect();
        if kinds.is_empty() {
            tokio::time::sleep_until(self.deadline.into()).await;
            return Ok(());
        }
        let mut rng = Pcg64Mcg::seed_from_u64(self.seed);
        // Kinds are dealt from a shuffled bag, refilled when empty: even a short run (CI's
        // minute) meets every kind, and a long one meets them in equal numbers.
        let mut bag: Vec<FaultKind> = Vec::new();
        loop {
            let gap = Duration::from_millis(rng.random_range(500..3_000));
            let hold = Duration::from_millis(rng.random_range(1_000..8_000));
            if bag.is_empty() {
                bag.clone_from(&kinds);
                bag.shuffle(&mut rng);
            }
            let kind = bag.pop().expect("refilled");
            let pick = rng.random_range(0..4_usize);
            if Instant::now() + gap >= self.deadline {
                tokio::time::sleep_until(self.deadline.into()).await;
                return Ok(());
            }
            tokio::time::sleep(gap).await;
            match kind {
                FaultKind::Kill => {
                    let part = [Part::Bank1, Part::Bank2, Part::Broker, Part::Namesrv][pick];
                    let i = self.journal.open(kind, part.name());
                    stack.kill(part).await?;
                    tokio::time::sleep(hold).await;
                    let note = restart(stack, part).await?;
                    self.journal.close(i, note);
                }
                FaultKind::Pause => {
                    let part = [Part::Bank2, Part::Broker][pick % 2];
                    let i = self.journal.open(kind, part.name());
                    stack.pause(part)?;
                    tokio::time::sleep(hold).await;
                    stack.resume(part)?;
                    self.journal.close(i, None);
                }
                FaultKind::Db => {
                    let server = db.as_mut().expect("validated: db faults need chaos's own server");
                    let i = self.journal.open(kind, "mariadb");
                    server.kill().await;
                    tokio::time::sleep(hold).await;
                    server.restart().await?;
                    self.journal.close(i, None);
                }
                FaultKind::Partition => {
                    let (a, b) = PARTITIONS[pick];
                    let i = self.journal.open(kind, &format!("{}|{}", a.name(), b.name()));
                    stack.partition(a, b)?;
                    tokio::time::sleep(hold).await;
                    stack.heal(a, b)?;
                    self.journal.close(i, None);
                }
                FaultKind::Inject => unreachable!("on its own track"),
            }
        }
    }

    fn inject_track(&self) -> InjectTrack {
        InjectTrack {
            seed: self.seed,
            deadline: self.deadline,
            bank1: self.bank1.clone(),
            bank2: self.bank2.clone(),
            journal: self.journal.clone(),
        }
    }

    /// Every injected fault off at both banks (retried: a bank may be restarting).
    async fn heal_injected(&self) {
        for (bank, switch) in INJECTED {
            let api = if bank == "bank1" { &self.bank1 } else { &self.bank2 };
            for _ in 0..60 {
                if switch_fault(api, switch, serde_json::Value::Null).await.is_ok() {
                    break;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// The inject track's own copy of what it needs (it runs as a task of its own).
pub struct InjectTrack {
    seed: u64,
    deadline: Instant,
    bank1: BankApi,
    bank2: BankApi,
    journal: Journal,
}

impl InjectTrack {
    /// Switches one injected fault on at a time, at a threshold that hits some transfers.
    async fn run(self) {
        let mut rng = Pcg64Mcg::seed_from_u64(self.seed.wrapping_add(1));
        loop {
            let gap = Duration::from_millis(rng.random_range(1_000..5_000));
            let hold = Duration::from_millis(rng.random_range(2_000..10_000));
            let (bank, switch) = INJECTED[rng.random_range(0..INJECTED.len())];
            // Amounts are 1.00..=50.00: a threshold of 35.00..=49.00 hits 2–30 % of them.
            let threshold = common::domain::money::format_minor(rng.random_range(35_i64..=49) * 100);
            if Instant::now() + gap >= self.deadline {
                return;
            }
            tokio::time::sleep(gap).await;
            let api = if bank == "bank1" { &self.bank1 } else { &self.bank2 };
            let i = self.journal.open(FaultKind::Inject, &format!("{bank}.{switch}≥{threshold}"));
            let on = switch_fault(api, switch, json!(threshold)).await;
            tokio::time::sleep(hold).await;
            let off = switch_fault(api, switch, serde_json::Value::Null).await;
            // A bank restarted meanwhile came back with its faults off (its defaults).
            let said = |r: anyhow::Result<()>| r.map_or_else(|e| format!("{e:#}"), |()| "ok".to_owned());
            let note = match (on, off) {
                (Ok(()), Ok(())) => None,
                (on, off) => Some(format!("on: {}, off: {}", said(on), said(off))),
            };
            self.journal.close(i, note);
        }
    }
}

async fn switch_fault(api: &BankApi, switch: &str, value: serde_json::Value) -> anyhow::Result<()> {
    let (status, body) = api.admin(Method::PUT, "/admin/faults", Some(&json!({ switch: value }))).await?;
    anyhow::ensure!(status.is_success(), "PUT /admin/faults: {status} {body}");
    Ok(())
}

/// Starts a killed part again, retrying while what it needs is itself down; notes retries.
async fn restart(stack: &mut ProcessStack, part: Part) -> anyhow::Result<Option<String>> {
    let until = Instant::now() + RESTART_WITHIN;
    let mut failures = Vec::new();
    loop {
        match stack.start(part).await {
            Ok(()) => return Ok((!failures.is_empty()).then(|| failures.join("; "))),
            Err(e) if Instant::now() < until => {
                failures.push(format!("{e:#}"));
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(e) => return Err(e.context(format!("{part:?} did not come back within {RESTART_WITHIN:?}"))),
        }
    }
}
