//! `bank-transfer chaos`: many transfers while a seeded nemesis kills, pauses and misconfigures
//! the stack, then a verdict over everything the clients saw (Jepsen's "bank" workload, for
//! this pattern). See docs/RELIABILITY.md for the method and the runs on record.
//!
//! - [`clients`]: careful clients — an Idempotency-Key per transfer, an indeterminate answer
//!   retried with the same key — and what each was told.
//! - [`nemesis`]: the faults (kill -9, SIGSTOP, the database, the banks' injected faults), in
//!   an order drawn from `--seed`, each healed after a random while.
//! - [`mariadb`]: the MariaDB server chaos owns for `--db mysql`, so that it can kill it too.
//! - [`verdict`]: convergence after healing, the invariants (a)–(f), the report and `--json`.
//!
//! The stack is [`stack::StackBuilder::start_processes`]: name server, broker, bank1 and
//! bank2 as four processes on free ports in a temp dir.

pub mod clients;
pub mod mariadb;
pub mod nemesis;
pub mod verdict;

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use stack::databases::DbChoice;
use stack::embedded::BrokerTuning;
use stack::StackBuilder;

use crate::bench::target::{self, Accounts, Dbs};
use crate::bench::DbKind;

use self::nemesis::{FaultKind, Journal};

/// `bank-transfer chaos` flags.
#[derive(Debug, Clone, Args)]
pub struct ChaosArgs {
    /// How long the clients send transfers while the nemesis works (e.g. 120s, 10m).
    #[arg(long, default_value = "120s", value_parser = common::infra::clock::parse_duration)]
    pub duration: Duration,
    /// Concurrent clients.
    #[arg(long, default_value_t = 8)]
    pub clients: usize,
    /// Account pairs (bank1 account i → bank2 account j, both drawn at random).
    #[arg(long, default_value_t = 20)]
    pub accounts: usize,
    /// Seed of the nemesis and the clients' choices (default: drawn and printed).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Fault kinds, comma-separated: kill, pause, db, inject, partition. `db` needs --db mysql
    /// without --mysql-url (chaos runs its own MariaDB server to kill it); `partition` needs
    /// root, `ip` and `nft` (each part runs in a network namespace of its own), and SQLite or
    /// chaos's own MariaDB. Default: every kind this machine and these flags allow.
    #[arg(long, value_delimiter = ',')]
    pub faults: Option<Vec<FaultKind>>,
    /// Databases: SQLite files, or MariaDB/MySQL.
    #[arg(long, value_enum, default_value_t = DbKind::Sqlite)]
    pub db: DbKind,
    /// With --db mysql: use this server (fresh databases, dropped after) instead of starting
    /// one; it is then not killed (no `db` faults).
    #[arg(long, value_name = "URL")]
    pub mysql_url: Option<String>,
    /// Longest wait for the system to settle after healing.
    #[arg(long, default_value = "300s", value_parser = common::infra::clock::parse_duration)]
    pub converge_timeout: Duration,
    /// Share of transfers sent to a receiver bank2 does not have (refunds under faults).
    #[arg(long, default_value_t = 0.03)]
    pub unknown_receivers: f64,
    /// Write the verdict and every figure as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Keep the temp dir (stores, databases, every process's log) afterwards.
    #[arg(long)]
    pub keep: bool,
}

/// Every bank1 account starts with this much (minor units): 10,000,000.00, enough that a long
/// run is not mostly refusals for insufficient funds.
pub const INITIAL_BALANCE: i64 = 1_000_000_000;

impl ChaosArgs {
    /// Checks the flags, and settles the fault kinds in `faults` (then [`kinds`](Self::kinds)):
    /// those asked for must be possible here; by default, every kind that is (with a line
    /// saying why one is left out).
    fn validate(&mut self) -> anyhow::Result<()> {
        anyhow::ensure!(self.clients >= 1, "--clients must be at least 1");
        anyhow::ensure!(self.accounts >= 1, "--accounts must be at least 1");
        anyhow::ensure!(!self.duration.is_zero(), "--duration must be above 0");
        anyhow::ensure!((0.0..=1.0).contains(&self.unknown_receivers), "--unknown-receivers is a share in 0..=1");
        let asked = self.faults.is_some();
        let mut kinds = self.faults.clone().unwrap_or_else(|| {
            vec![FaultKind::Kill, FaultKind::Pause, FaultKind::Db, FaultKind::Inject, FaultKind::Partition]
        });
        kinds.sort();
        kinds.dedup();
        let own_db = self.db == DbKind::Mysql && self.mysql_url.is_none();
        let mut drop_kind = |kind: FaultKind, why: Option<String>| -> anyhow::Result<()> {
            let Some(why) = why.filter(|_| kinds.contains(&kind)) else { return Ok(()) };
            anyhow::ensure!(!asked || self.db == DbKind::Sqlite && kind == FaultKind::Db, "--faults {kind}: {why}");
            println!("chaos: no {kind} faults: {why}");
            kinds.retain(|k| *k != kind);
            Ok(())
        };
        // SQLite lives inside each bank process: killing a bank kills its database.
        let db_why = match (self.db, own_db) {
            (DbKind::Sqlite, _) => Some("SQLite lives in the bank processes (kill covers it)".to_owned()),
            (DbKind::Mysql, false) => Some("chaos kills only its own MariaDB: leave out --mysql-url".to_owned()),
            (DbKind::Mysql, true) => None,
        };
        drop_kind(FaultKind::Db, db_why)?;
        let partition_why = match stack::network::Network::check() {
            Err(e) => Some(format!("{e:#}")),
            Ok(()) if self.mysql_url.is_some() => Some(
                "the banks run on their own network and reach only chaos's own MariaDB: leave out --mysql-url".into(),
            ),
            Ok(()) => None,
        };
        drop_kind(FaultKind::Partition, partition_why)?;
        anyhow::ensure!(!kinds.is_empty(), "--faults: no fault kind left to inject");
        self.faults = Some(kinds);
        Ok(())
    }

    /// The fault kinds, once [`validate`](Self::validate) has settled them.
    pub fn kinds(&self) -> &[FaultKind] {
        self.faults.as_deref().unwrap_or_default()
    }
}

/// Runs chaos: start, load + nemesis, heal, converge, verdict. Fails when an invariant broke.
pub async fn run(mut args: ChaosArgs) -> anyhow::Result<()> {
    args.validate()?;
    let seed = args.seed.unwrap_or_else(|| uuid::Uuid::new_v4().as_u64_pair().0 >> 1);
    let network = args.kinds().contains(&FaultKind::Partition);
    let kinds: Vec<String> = args.kinds().iter().map(|k| k.to_string()).collect();
    println!(
        "chaos: seed {seed}, {} on {}, {} clients over {} account pairs, faults {}",
        humantime::format_duration(args.duration),
        match args.db {
            DbKind::Sqlite => "SQLite",
            DbKind::Mysql => "MariaDB/MySQL",
        },
        args.clients,
        args.accounts,
        kinds.join(",")
    );
    println!("replay: bank-transfer chaos --seed {seed} --faults {} …", kinds.join(","));

    let dir = tempfile::Builder::new().prefix("bank-transfer-chaos.").tempdir().context("creating a temp dir")?;
    let network = network.then(stack::network::Network::create).transpose()?;
    let mut own_db = None;
    let choice = match (args.db, &args.mysql_url) {
        (DbKind::Sqlite, _) => DbChoice::Sqlite,
        (DbKind::Mysql, Some(url)) => DbChoice::MysqlScratch { server_url: url.clone() },
        (DbKind::Mysql, None) => {
            // mariadbd runs as `mysql` under root and must reach its directory inside ours.
            let open = <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o755);
            std::fs::set_permissions(dir.path(), open).context("opening the temp dir to mariadbd")?;
            let host = network.as_ref().map_or(IpAddr::V4(Ipv4Addr::LOCALHOST), |n| n.host_ip());
            let db = mariadb::MariaDb::start(&dir.path().join("mariadb"), host).await?;
            let url = db.url();
            own_db = Some(db);
            DbChoice::MysqlScratch { server_url: url }
        }
    };
    let exe = std::env::current_exe().context("locating this executable")?;
    let started = Instant::now();
    let mut builder = StackBuilder::new(exe);
    if let Some(n) = network {
        builder = builder.network(n);
    }
    let stack = builder
        .data_dir(dir.path().join("stack"))
        .database(choice)
        .keep(args.keep)
        .tuning(chaos_tuning())
        .configure(|s1, s2| {
            // Reconcilers run as in production, faster: they are part of what must converge.
            for c in [&mut s1.common, &mut s2.common] {
                c.reconcile_interval = Duration::from_secs(5);
                c.reconcile_grace = Duration::from_secs(5);
            }
        })
        .start_processes()
        .await
        .context("starting the stack")?;
    println!(
        "stack up in {:.1} s under {} (bank1 {}, bank2 {})",
        started.elapsed().as_secs_f64(),
        dir.path().display(),
        stack.bank1_url,
        stack.bank2_url
    );
    let outcome = drive(&args, seed, stack, own_db).await;
    // A broken run keeps its logs (each process's, under stack/logs/) for the post-mortem.
    let failed = !outcome.as_ref().is_ok_and(verdict::Verdict::holds);
    if args.keep || failed {
        println!("kept {} (the processes' logs are in stack/logs/)", dir.keep().display());
    }
    let verdict = outcome?;
    anyhow::ensure!(verdict.holds(), "chaos: {} invariant(s) broken (seed {seed})", verdict.broken());
    Ok(())
}

/// Broker settings for chaos: the whole retry ladder in seconds (so dead letters happen
/// within a run), check-backs within seconds.
fn chaos_tuning() -> BrokerTuning {
    BrokerTuning {
        message_delay_level: Some(vec!["1s"; 18].join(" ")),
        transaction_timeout: Some(3000),
        transaction_check_interval: Some(5000),
        small_store: true,
        ..BrokerTuning::default()
    }
}

async fn drive(
    args: &ChaosArgs,
    seed: u64,
    stack: stack::ProcessStack,
    own_db: Option<mariadb::MariaDb>,
) -> anyhow::Result<verdict::Verdict> {
    let dbs = Dbs::open(&stack.databases.bank1_url, &stack.databases.bank2_url).await?;
    let accounts = Accounts::fresh(args.accounts);
    target::seed(&dbs, &accounts, INITIAL_BALANCE).await?;
    let http = target::http_client(args.clients)?;
    let bank1 = stack::api::BankApi::new(http.clone(), &stack.bank1_url, Some(stack.secrets.bank1_admin.clone()));
    let bank2 = stack::api::BankApi::new(http.clone(), &stack.bank2_url, Some(stack.secrets.bank2_admin.clone()));

    let journal = Journal::new();
    let bar = ProgressBar::new(args.duration.as_secs());
    bar.set_style(
        ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len}s {msg}")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    let deadline = journal.start + args.duration;
    let load = clients::Load {
        bank1: bank1.clone(),
        accounts: accounts.clone(),
        seed,
        unknown_share: args.unknown_receivers,
        deadline,
        journal: journal.clone(),
    };
    let workers = clients::spawn(&load, args.clients);
    let nemesis = nemesis::Nemesis {
        seed,
        kinds: args.kinds().to_vec(),
        deadline,
        bank1: bank1.clone(),
        bank2: bank2.clone(),
        journal: journal.clone(),
    };
    let nemesis_task = tokio::spawn(nemesis.run(stack, own_db));
    let ticker = {
        let (bar, journal, log) = (bar.clone(), journal.clone(), Arc::clone(&workers.log));
        tokio::spawn(async move {
            // Not a terminal (CI): a plain line every 15 s instead of the bar.
            let mut tick = 0_u32;
            loop {
                tokio::time::sleep(Duration::from_millis(500)).await;
                let line = clients::progress_line(&log.lock().expect("log"), &journal);
                tick += 1;
                if bar.is_hidden() {
                    if tick.is_multiple_of(30) {
                        println!("{:>4} s  {line}", journal.start.elapsed().as_secs());
                    }
                } else {
                    bar.set_position(journal.start.elapsed().as_secs());
                    bar.set_message(line);
                }
            }
        })
    };
    let records = workers.join().await;
    let (stack, own_db) = nemesis_task.await.context("the nemesis task failed")??;
    ticker.abort();
    bar.finish_and_clear();
    println!("load and nemesis done at {:.1} s; healed, converging …", journal.start.elapsed().as_secs_f64());
    let heal_at = journal.start.elapsed();
    let resolved = clients::resolve(&load, records, Duration::from_secs(120)).await;
    let verdict = verdict::judge(verdict::Inputs {
        seed,
        args,
        heal_at,
        records: resolved,
        journal: &journal,
        dbs: &dbs,
        bank1: &bank1,
        bank2: &bank2,
        accounts: &accounts,
    })
    .await;
    stack.stop().await;
    if let Some(db) = own_db {
        db.stop().await;
    }
    let verdict = verdict?;
    println!("{}", verdict.table());
    if let Some(path) = &args.json {
        verdict.write_json(path)?;
        println!("wrote {}", path.display());
    }
    Ok(verdict)
}
