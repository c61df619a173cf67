//! `bank-transfer bench`: how fast the transfer goes end to end, against what the broker
//! alone can do, and whether every transfer arrived exactly once.
//!
//! - [`target`]: its own stack (default: name server + broker children, bank1 + bank2 in this
//!   process, fresh SQLite or MariaDB/MySQL databases) or running services (`--bank1-url`…);
//!   seeding accounts; reading both banks' records (databases, else HTTP APIs).
//! - [`driver`]: the HTTP load on bank1 (`--concurrency`, `--rate` pacing).
//! - [`baseline`]: the same messages through the broker with plain and transactional
//!   producers, no HTTP, no database (`--baseline`).
//! - [`report`]: percentiles, CPU and memory readings, the table and `--json`.
//!
//! Phases: main load → wait until every committed transfer is credited (polling bank2, with a
//! stall deadline) → `--backlog` (pause bank2, commit N, resume, time the drain) →
//! `--baseline` → the exactly-once check over everything the run committed.

pub mod baseline;
pub mod driver;
pub mod report;
pub mod target;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, ValueEnum};
use common::service::settings::BankSettings;
use futures::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};

use self::report::{ratio_of, round1, round2, CpuProbe, Memory, Report, Summary};
use self::target::{Accounts, Dbs, Target};
use stack::databases::DbChoice;

/// bank2's counter of deliveries it found applied already.
const DUPLICATE_DELIVERIES: &str = "bank2_duplicate_deliveries_total";
/// The sum of bank2's credit group commit times: its writers' busy seconds.
const WRITERS_BUSY: &str = "bank2_credit_group_commit_seconds_sum";
/// How many credit groups bank2 has committed.
const GROUP_COMMITS: &str = "bank2_credit_group_commit_seconds_count";
/// The shortest crediting span over which the bench reports how busy the writers were.
const MIN_BUSY_SPAN_S: f64 = 1.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DbKind {
    Sqlite,
    Mysql,
}

/// `bank-transfer bench` flags.
#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// Transfers in the main phase.
    #[arg(long, default_value_t = 2000)]
    pub transfers: usize,
    /// Requests in flight at once (HTTP workers; also the baseline's senders).
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
    /// Accounts per bank; transfer i goes from bank1 account i to bank2 account i (mod N).
    #[arg(long, default_value_t = 1000)]
    pub accounts: usize,
    /// Transfers sent (and waited for until credited) before measuring: connections, routes and
    /// the consumer's queue assignment settle first. Not in the figures; in the exactly-once check.
    #[arg(long, default_value_t = 50)]
    pub warmup: usize,
    /// Offered load in transfers/s (paced, open schedule); default: as fast as C allows.
    #[arg(long)]
    pub rate: Option<f64>,
    /// Also run the broker alone (plain and transactional producer → push consumer).
    #[arg(long)]
    pub baseline: bool,
    /// Then pause bank2's consumer, commit N more transfers, resume and time the drain.
    #[arg(long, value_name = "N")]
    pub backlog: Option<usize>,
    /// Databases of the bench's own stack.
    #[arg(long, value_enum, default_value_t = DbKind::Sqlite)]
    pub db: DbKind,
    /// MariaDB/MySQL server for --db mysql (fresh databases are created and dropped).
    #[arg(long, value_name = "URL")]
    pub mysql_url: Option<String>,
    /// Write the figures as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Amount of each transfer.
    #[arg(long, default_value = "1.00")]
    pub amount: String,
    /// Give up waiting for credits after this long without a new one (e.g. 30s, 2m).
    #[arg(long, default_value = "30s", value_parser = common::infra::clock::parse_duration)]
    pub stall_timeout: Duration,
    /// Keep the temp dir (broker store, SQLite files, logs) / MySQL databases afterwards.
    #[arg(long)]
    pub keep: bool,
    /// Target a running bank1 instead of starting a stack (needs --bank2-url).
    #[arg(long, value_name = "URL", requires = "bank2_url")]
    pub bank1_url: Option<String>,
    /// Target a running bank2 (needs --bank1-url).
    #[arg(long, value_name = "URL", requires = "bank1_url")]
    pub bank2_url: Option<String>,
    /// With --bank1-url: bank1's database, to seed accounts and read results directly.
    #[arg(long, value_name = "URL", requires_all = ["bank1_url", "bank2_database_url"])]
    pub bank1_database_url: Option<String>,
    /// With --bank2-url: bank2's database.
    #[arg(long, value_name = "URL", requires_all = ["bank2_url", "bank1_database_url"])]
    pub bank2_database_url: Option<String>,
    /// With --bank*-url and no databases: the existing sender account.
    #[arg(long, default_value = "1")]
    pub from_account: String,
    /// With --bank*-url and no databases: the existing receiver account.
    #[arg(long, default_value = "2")]
    pub to_account: String,
    /// With --bank*-url --backlog: bank2's operator token (to pause and resume its consumer).
    #[arg(long, env = "BANK2_ADMIN_TOKEN", hide_env_values = true, value_parser = common::service::auth::Token::parse)]
    pub bank2_admin_token: Option<common::service::auth::Token>,
    /// With --bank*-url --baseline: the name server.
    #[arg(long, default_value = common::infra::mq::DEFAULT_NAMESRV)]
    pub namesrv_addr: String,
    /// With --bank*-url --baseline: the broker (host:port) the baseline topics are created on.
    #[arg(long, default_value = "127.0.0.1:10911")]
    pub broker_addr: String,
    /// The own stack's broker (without --bank*-url): the same knobs as `bank-transfer
    /// --help` lists, e.g. the tests' check-backs with `--transaction-timeout 3000
    /// --transaction-check-interval 5000`.
    #[command(flatten, next_help_heading = "Broker of the own stack")]
    pub broker: stack::embedded::BrokerTuning,
}

impl BenchArgs {
    fn validate(&self) -> anyhow::Result<i64> {
        anyhow::ensure!(self.concurrency >= 1, "--concurrency must be at least 1");
        anyhow::ensure!(self.accounts >= 1, "--accounts must be at least 1");
        anyhow::ensure!(
            self.transfers > 0 || self.backlog.is_some_and(|b| b > 0),
            "nothing to do: --transfers 0 and no --backlog"
        );
        if let Some(r) = self.rate {
            anyhow::ensure!(r.is_finite() && r > 0.0, "--rate must be a positive number of transfers/s");
        }
        if self.db == DbKind::Mysql {
            anyhow::ensure!(self.bank1_url.is_none(), "--db mysql is for the bench's own stack, not with --bank1-url");
            anyhow::ensure!(self.mysql_url.is_some(), "--db mysql needs --mysql-url mysql://user:pass@host:port");
        }
        common::domain::money::parse_minor(&self.amount).map_err(|e| anyhow::anyhow!("--amount {:?}: {e}", self.amount))
    }
}

/// Runs the bench, prints the table, writes `--json`; fails if exactly-once did not hold.
pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let amount_minor = args.validate()?;
    let http = target::http_client(args.concurrency)?;
    let started = std::time::Instant::now();
    let mut target = match (&args.bank1_url, &args.bank2_url) {
        (Some(b1), Some(b2)) => {
            let db = match (&args.bank1_database_url, &args.bank2_database_url) {
                (Some(d1), Some(d2)) => Some(Dbs::open(d1, d2).await?),
                _ => None,
            };
            Target {
                bank1_url: b1.trim_end_matches('/').to_owned(),
                bank2_url: b2.trim_end_matches('/').to_owned(),
                namesrv_addr: args.namesrv_addr.clone(),
                broker_addr: args.broker_addr.clone(),
                db,
                own: None,
                ready_ms: None,
                started: None,
                bank2_admin_token: args.bank2_admin_token.clone(),
                http: http.clone(),
            }
        }
        _ => {
            let choice = match args.db {
                DbKind::Sqlite => DbChoice::Sqlite,
                DbKind::Mysql => DbChoice::MysqlScratch { server_url: args.mysql_url.clone().unwrap_or_default() },
            };
            eprintln!("starting a stack (name server, broker, bank1, bank2; {:?} databases)…", args.db);
            let t = target::own_stack(choice, args.keep, &args.broker, http.clone()).await?;
            eprintln!(
                "stack ready in {:.2} s: bank1 {}, bank2 {}, broker {}{}",
                t.ready_ms.unwrap_or(0) as f64 / 1000.0,
                t.bank1_url,
                t.bank2_url,
                t.broker_addr,
                t.own.as_ref().map_or_else(String::new, |o| format!(", data {}", o.dir.display()))
            );
            t
        }
    };
    let result = measure(&args, &mut target, amount_minor).await;
    if let Some(own) = target.own.take() {
        own.stop().await;
    }
    let mut report = result?;
    report.duration_s = round1(started.elapsed().as_secs_f64());
    println!("{}", report.table());
    if let Some(path) = &args.json {
        report.write_json(path)?;
        eprintln!("figures written to {}", path.display());
    }
    anyhow::ensure!(
        report.exactly_once,
        "exactly-once did not hold: lost {}, duplicated {}, debit mismatch {} ¢, credit mismatch {} ¢, amount mismatches {}, API mismatches {}",
        report.lost,
        report.duplicated,
        report.debit_mismatch_cents,
        report.credit_mismatch_cents,
        report.amount_mismatch,
        report.api_mismatch
    );
    Ok(())
}

fn bar(len: usize, prefix: &str) -> ProgressBar {
    let style =
        ProgressStyle::with_template("{prefix:>9} [{elapsed_precise}] {wide_bar} {pos}/{len} {per_sec:>10} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar());
    let b = ProgressBar::new(len as u64).with_style(style).with_prefix(prefix.to_owned());
    b.enable_steady_tick(Duration::from_millis(200));
    b
}

/// Pids of (this process, broker, name server) for CPU and memory readings.
fn pids(target: &Target) -> (u32, Option<u32>, Option<u32>) {
    let (broker, namesrv) = target.own.as_ref().map_or((None, None), |o| o.pids());
    (std::process::id(), broker, namesrv)
}

/// Starts CPU readings of every process of the stack (a local MySQL server included).
fn cpu_probe(target: &Target, report: &Report) -> CpuProbe {
    let (me, broker, namesrv) = pids(target);
    let db = if report.db == "mysql" { report::db_server_pid() } else { None };
    CpuProbe::start([Some(me), broker, namesrv, db])
}

fn memory_now(target: &Target) -> Option<[(f64, f64); 3]> {
    let (me, broker, namesrv) = pids(target);
    Some([report::rss_mib(me)?, report::rss_mib(broker?)?, report::rss_mib(namesrv?)?])
}

/// Everything after the stack is up; the caller stops the stack whatever happens here.
async fn measure(args: &BenchArgs, target: &mut Target, amount_minor: i64) -> anyhow::Result<Report> {
    let mut report = Report {
        mode: if target.own.is_some() { "own stack" } else { "running services" },
        db: db_name(args, target),
        transfers: args.transfers,
        concurrency: args.concurrency,
        rate: args.rate,
        amount: args.amount.clone(),
        started_at: common::format_ms(common::now_ms()),
        ready_ms: target.ready_ms,
        backlog: args.backlog,
        ..Report::default()
    };
    if let Some(m) = memory_now(target) {
        report.memory = Memory {
            rss_at_rest_mib: Some(round1(m.iter().map(|x| x.0).sum())),
            rss_at_rest_banks_mib: Some(round1(m[0].0)),
            rss_at_rest_broker_mib: Some(round1(m[1].0)),
            rss_at_rest_namesrv_mib: Some(round1(m[2].0)),
            rss_peak_mib: None,
        };
    }

    // Accounts: fresh ones seeded through the databases, else the given existing pair.
    let total = args.transfers + args.backlog.unwrap_or(0) + args.warmup.max(1);
    let accounts = match &target.db {
        Some(db) => {
            let accounts = Accounts::fresh(args.accounts);
            let per_account = total.div_ceil(args.accounts) as i64;
            let balance = amount_minor.saturating_mul(per_account + 1).saturating_mul(2);
            target::seed(db, &accounts, balance).await?;
            accounts
        }
        None => {
            let accounts = Accounts::existing(&args.from_account, &args.to_account);
            let have = target::api_balance(&target.http, &target.bank1_url, &args.from_account).await?;
            anyhow::ensure!(
                have >= amount_minor.saturating_mul(total as i64),
                "bank1 account {} holds {} ¢, the run needs {} ¢ (use --amount 0.01, fewer transfers, or the \
                 --bank*-database-url flags so the bench seeds its own accounts)",
                args.from_account,
                have,
                amount_minor.saturating_mul(total as i64)
            );
            report.notes.push(format!(
                "no database access: all transfers go {} → {} and results are read through the HTTP APIs; \
                 other traffic on these accounts would skew the balance checks",
                args.from_account, args.to_account
            ));
            accounts
        }
    };
    report.accounts = accounts.pairs.len();
    let mut watch = Watch::new(target, &accounts, args.stall_timeout).await?;

    // ---- warm-up: one transfer alone (how long until the stack really transfers), then the rest ----
    let warm = |n: usize, first_pair: usize| driver::Load {
        n,
        concurrency: args.concurrency,
        rate: None,
        pairs: accounts.pairs.clone(),
        first_pair,
        amount: args.amount.clone(),
    };
    let first_pair = args.transfers + args.backlog.unwrap_or(0);
    let hidden = ProgressBar::hidden();
    let out = driver::drive(&target.http, &target.bank1_url, &warm(1, first_pair), &hidden).await;
    anyhow::ensure!(out.committed.len() == 1, "the first transfer did not commit: {:?}", out.error_samples);
    watch.wait_all_credited(target, &out.committed).await?;
    anyhow::ensure!(watch.credited_at(&out.committed[0]).is_some(), "the first transfer was never credited");
    if let Some(started) = target.started {
        report.ready_to_credit_ms = Some(started.elapsed().as_millis() as u64);
        report.first_transfer_ms = watch.last_credit_ms(&out.committed).map(|at| (at - out.started_ms).max(0) as u64);
    }
    if args.warmup > 1 {
        eprintln!("warm-up: {} transfers", args.warmup - 1);
        let out = driver::drive(&target.http, &target.bank1_url, &warm(args.warmup - 1, first_pair + 1), &hidden).await;
        watch.wait_all_credited(target, &out.committed).await?;
    }

    // ---- main phase ----
    let mut main_committed = Vec::new();
    if args.transfers > 0 {
        eprintln!(
            "main phase: {} transfers, C = {}, rate {}",
            args.transfers,
            args.concurrency,
            args.rate.map_or_else(|| "unlimited".into(), |r| format!("{r}/s"))
        );
        let probe = cpu_probe(target, &report);
        let load = driver::Load {
            n: args.transfers,
            concurrency: args.concurrency,
            rate: args.rate,
            pairs: accounts.pairs.clone(),
            first_pair: 0,
            amount: args.amount.clone(),
        };
        let b = bar(args.transfers, "transfers");
        let out = driver::drive(&target.http, &target.bank1_url, &load, &b).await;
        b.finish_and_clear();
        eprintln!(
            "  {} replies in {:.1} s: {} committed, {} refused, {} errors",
            out.api_ms.len(),
            out.elapsed.as_secs_f64(),
            out.committed.len(),
            out.refused,
            out.errors
        );
        for s in &out.error_samples {
            eprintln!("  e.g. {s}");
        }
        watch.wait_all_credited(target, &out.committed).await?;
        report.cpu = probe.finish();
        report.committed = out.committed.len();
        report.refused = out.refused;
        report.api_errors = out.errors;
        report.behind_schedule = out.behind_schedule;
        let answered = out.api_ms.len() + out.errors;
        report.api_tps = (out.elapsed.as_secs_f64() > 0.0).then(|| round1(answered as f64 / out.elapsed.as_secs_f64()));
        let api = Summary::of(out.api_ms.clone());
        (report.api_p50_ms, report.api_p90_ms, report.api_p99_ms, report.api_max_ms) =
            (api.p50.map(round2), api.p90.map(round2), api.p99.map(round2), api.max.map(round2));
        report.e2e_tps = watch.last_credit_ms(&out.committed).and_then(|last| {
            let credited = out.committed.iter().filter(|t| watch.credited_at(t).is_some()).count();
            let secs = (last - out.started_ms) as f64 / 1000.0;
            (secs > 0.0).then(|| round1(credited as f64 / secs))
        });
        main_committed = out.committed;
    }

    // ---- backlog ----
    if let Some(n) = args.backlog.filter(|n| *n > 0) {
        eprintln!("backlog: pausing bank2's consumer, committing {n} transfers");
        target::consumer_switch(target, "pause").await?;
        let load = driver::Load {
            n,
            concurrency: args.concurrency,
            rate: None,
            pairs: accounts.pairs.clone(),
            first_pair: args.transfers,
            amount: args.amount.clone(),
        };
        let b = bar(n, "backlog");
        let out = driver::drive(&target.http, &target.bank1_url, &load, &b).await;
        b.finish_and_clear();
        report.backlog_fill_s = Some(round2(out.elapsed.as_secs_f64()));
        report.refused += out.refused;
        report.api_errors += out.errors;
        eprintln!(
            "  {} committed in {:.1} s ({} refused, {} errors); resuming",
            out.committed.len(),
            out.elapsed.as_secs_f64(),
            out.refused,
            out.errors
        );
        let probe = cpu_probe(target, &report);
        let drain_metrics = [WRITERS_BUSY, GROUP_COMMITS];
        let before = target::bank2_metrics(&target.http, &target.bank2_url, drain_metrics).await;
        let resumed_ms = common::now_ms();
        target::consumer_switch(target, "resume").await?;
        watch.wait_all_credited(target, &out.committed).await?;
        report.backlog_cpu = Some(probe.finish());
        let after = target::bank2_metrics(&target.http, &target.bank2_url, drain_metrics).await;
        let spent = before.zip(after).map(|([busy0, groups0], [busy1, groups1])| [busy1 - busy0, groups1 - groups0]);
        let busy = spent.map(|[busy, _]| busy);
        let groups = spent.map(|[_, groups]| groups).filter(|g| *g > 0.0);
        report.backlog_groups = groups.map(|g| g as u64);
        report.backlog_group_ms = busy.zip(groups).map(|(busy, groups)| round2(busy * 1000.0 / groups));
        // A pull already under way when bank2 paused may have credited a few during the fill.
        if let Some((first, last)) = watch.credit_span_ms(&out.committed, resumed_ms) {
            let secs = (last - resumed_ms).max(1) as f64 / 1000.0;
            report.backlog_drain_s = Some(round2(secs));
            report.backlog_drain_tps = Some(round1(out.committed.len() as f64 / secs));
            // The writers' time within the span bank2 was crediting: nothing commits credits
            // between the resume and the first of the backlog, or after its last.
            let crediting = (last - first).max(1) as f64 / 1000.0;
            report.backlog_crediting_s = Some(round2(crediting));
            // None when no group was committed (groups off, or a bank2 without the histogram),
            // and over a short span: the first and last groups' commits straddle its ends.
            report.backlog_writers_busy =
                busy.filter(|busy| *busy > 0.0 && crediting >= MIN_BUSY_SPAN_S).map(|busy| round2(busy / crediting));
        }
    }

    // ---- baselines ----
    if args.baseline {
        let messages = if args.transfers > 0 { args.transfers } else { args.backlog.unwrap_or(0) };
        let bank2_settings = bank2::Settings::from_env();
        let setup = baseline::Setup {
            namesrv: &target.namesrv_addr,
            broker: &target.broker_addr,
            messages,
            concurrency: args.concurrency,
            consume_threads: bank2_settings.consume_threads,
            consume_batch: bank2_settings.consume_batch,
            flow: baseline::Flow::Pipeline,
            stall_timeout: args.stall_timeout,
        };
        let tag = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
        for kind in [baseline::Kind::Plain, baseline::Kind::Transactional] {
            eprintln!("baseline: {messages} {kind:?} messages, C = {}", args.concurrency);
            let b = bar(messages, if kind == baseline::Kind::Plain { "plain" } else { "tx" });
            let probe = cpu_probe(target, &report);
            let r = baseline::run(&setup, kind, &tag, &b).await;
            b.finish_and_clear();
            let mut r = r.with_context(|| format!("{kind:?} baseline"))?;
            r.cpu = Some(probe.finish());
            eprintln!("  {} consumed in {:.2} s: {:.0} msgs/s", r.consumed, r.elapsed_s, r.msgs_per_s);
            match kind {
                baseline::Kind::Plain => report.baseline_plain = Some(r),
                baseline::Kind::Transactional => report.baseline_transactional = Some(r),
            }
        }
        report.raw_tps = [&report.baseline_plain, &report.baseline_transactional]
            .into_iter()
            .flatten()
            .map(|b| b.msgs_per_s)
            .reduce(f64::max);
        if let (Some(e2e), Some(raw)) = (report.e2e_tps, report.raw_tps) {
            report.ratio = ratio_of(e2e, raw);
        }
        if let Some(n) = args.backlog.filter(|&n| n > 0) {
            eprintln!("baseline: a backlog of {n} plain messages, drained after all were sent");
            let b = bar(n, "drain");
            let drain = baseline::Setup { messages: n, flow: baseline::Flow::Backlog, ..setup };
            let r = baseline::run(&drain, baseline::Kind::Plain, &tag, &b).await;
            b.finish_and_clear();
            let r = r.context("backlog baseline")?;
            eprintln!("  {} drained in {:.2} s: {:.0} msgs/s", r.consumed, r.elapsed_s, r.msgs_per_s);
            if let Some(drained) = report.backlog_drain_tps {
                report.backlog_drain_ratio = ratio_of(drained, r.msgs_per_s);
            }
            report.baseline_backlog = Some(r);
        }
        if args.rate.is_some() {
            report.notes.push("the baselines run unpaced: --rate applies to the transfers only".into());
        }
    }

    // ---- exactly-once, over everything the run committed ----
    let check = watch.check(target, amount_minor).await?;
    let d2c: Vec<f64> = main_committed
        .iter()
        .filter_map(|t| Some((watch.credited_at(t)? - watch.committed_at(t)?).max(0) as f64))
        .collect();
    if !main_committed.is_empty() && d2c.is_empty() {
        report.notes.push("no debit→credit latencies: bank1 does not record committed_at".into());
    }
    let d2c = Summary::of(d2c);
    (
        report.debit_to_credit_p50_ms,
        report.debit_to_credit_p90_ms,
        report.debit_to_credit_p99_ms,
        report.debit_to_credit_max_ms,
    ) = (d2c.p50, d2c.p90, d2c.p99, d2c.max);
    report.committed_total = check.committed;
    report.credited_total = check.credited;
    report.lost = check.lost;
    report.duplicated = check.duplicated;
    report.debit_mismatch_cents = check.debit_mismatch;
    report.credit_mismatch_cents = check.credit_mismatch;
    report.amount_mismatch = check.amount_mismatch;
    report.api_mismatch = check.api_mismatch;
    report.credits_by_source = check.by_source;
    report.redeliveries =
        target::bank2_metric(&target.http, &target.bank2_url, DUPLICATE_DELIVERIES).await.map(|n| n as u64);
    report.exactly_once = report.lost == 0
        && report.duplicated == 0
        && report.debit_mismatch_cents == 0
        && report.credit_mismatch_cents == 0
        && report.amount_mismatch == 0
        && report.api_mismatch == 0;

    if let Some(m) = memory_now(target) {
        report.memory.rss_peak_mib = Some(round1(m.iter().map(|x| x.1).sum()));
    }
    Ok(report)
}

fn db_name(args: &BenchArgs, target: &Target) -> String {
    match (&target.own, &args.bank1_database_url) {
        (Some(_), _) => match args.db {
            DbKind::Sqlite => "sqlite".into(),
            DbKind::Mysql => "mysql".into(),
        },
        (None, Some(url)) => match common::infra::db::Engine::of_url(url) {
            Ok(common::infra::db::Engine::Sqlite) => "sqlite".into(),
            Ok(common::infra::db::Engine::MySql) => "mysql".into(),
            Err(_) => "unknown".into(),
        },
        (None, None) => "unknown".into(),
    }
}

/// Exactly-once, counted.
#[derive(Debug, Default)]
struct Check {
    committed: usize,
    credited: usize,
    lost: usize,
    duplicated: usize,
    debit_mismatch: i64,
    credit_mismatch: i64,
    amount_mismatch: usize,
    api_mismatch: usize,
    by_source: std::collections::BTreeMap<String, usize>,
}

/// Follows what the banks recorded for the run: through the databases when the bench can
/// reach them, else transfer by transfer through the APIs.
struct Watch {
    like: Option<String>,
    /// The first account pair (the only one without database access).
    pair: (String, String),
    stall: Duration,
    /// bank1 / bank2 balances of the run's accounts before any transfer (cents).
    before: (i64, i64),
    /// Every tx_no the API said COMMITTED, across phases.
    api_committed: Vec<String>,
    committed_at: HashMap<String, Option<i64>>,
    credited_at: HashMap<String, i64>,
    /// The banks' records (database mode), refreshed after each wait.
    ledger: Option<target::Ledger>,
}

impl Watch {
    async fn new(target: &Target, accounts: &Accounts, stall: Duration) -> anyhow::Result<Self> {
        let before = match (&target.db, &accounts.like) {
            (Some(db), Some(like)) => {
                (target::balance_sum(&db.bank1, like).await?, target::balance_sum(&db.bank2, like).await?)
            }
            _ => {
                let (from, to) = &accounts.pairs[0];
                (
                    target::api_balance(&target.http, &target.bank1_url, from).await?,
                    target::api_balance(&target.http, &target.bank2_url, to).await?,
                )
            }
        };
        Ok(Self {
            like: accounts.like.clone(),
            pair: accounts.pairs[0].clone(),
            stall,
            before,
            api_committed: Vec::new(),
            committed_at: HashMap::new(),
            credited_at: HashMap::new(),
            ledger: None,
        })
    }

    fn db<'a>(&self, target: &'a Target) -> Option<(&'a Dbs, &str)> {
        Some((target.db.as_ref()?, self.like.as_deref()?))
    }

    /// Waits until every transfer bank1 committed so far is credited (or no credit arrives
    /// for the stall timeout), then takes both banks' timestamps.
    async fn wait_all_credited(&mut self, target: &Target, committed: &[String]) -> anyhow::Result<()> {
        self.api_committed.extend_from_slice(committed);
        let b = bar(0, "credited");
        let result = if let Some((db, like)) = self.db(target) {
            let expected = db.committed_count(like).await? as u64;
            b.set_length(expected);
            let own = target.own.is_some();
            let mut last = (0u64, tokio::time::Instant::now());
            loop {
                let n = db.credited_count(Some(like), own).await? as u64;
                b.set_position(n);
                if n >= expected {
                    break;
                }
                if n != last.0 {
                    last = (n, tokio::time::Instant::now());
                } else if last.1.elapsed() > self.stall {
                    eprintln!(
                        "  no credit for {:?}: {} of {expected} credited; counting the rest as lost",
                        self.stall, n
                    );
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let ledger = db.ledger(like).await?;
            for (tx, d) in &ledger.debits {
                self.committed_at.insert(tx.clone(), d.committed_at);
            }
            for (tx, c) in &ledger.credits {
                self.credited_at.insert(tx.clone(), c.credited_at);
            }
            self.ledger = Some(ledger);
            Ok(())
        } else {
            let mut pending: Vec<String> = committed.to_vec();
            b.set_length(pending.len() as u64);
            let mut last = (0usize, tokio::time::Instant::now());
            let total = pending.len();
            while !pending.is_empty() {
                let (http, url) = (&target.http, target.bank2_url.as_str());
                let got: Vec<Option<i64>> = futures::stream::iter(&pending)
                    .map(|tx| target::api_credited_at(http, url, tx))
                    .buffered(16)
                    .collect()
                    .await;
                let mut still = Vec::new();
                for (tx, at) in pending.into_iter().zip(got) {
                    match at {
                        Some(at) => {
                            self.credited_at.insert(tx, at);
                        }
                        None => still.push(tx),
                    }
                }
                pending = still;
                let done = total - pending.len();
                b.set_position(done as u64);
                if done != last.0 {
                    last = (done, tokio::time::Instant::now());
                } else if last.1.elapsed() > self.stall {
                    eprintln!(
                        "  no credit for {:?}: {done} of {total} credited; counting the rest as lost",
                        self.stall
                    );
                    break;
                }
                if !pending.is_empty() {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
            let (http, url) = (&target.http, target.bank1_url.as_str());
            let at: Vec<Option<Option<i64>>> = futures::stream::iter(committed)
                .map(|tx| target::api_committed_at(http, url, tx))
                .buffered(16)
                .collect()
                .await;
            for (tx, at) in committed.iter().zip(at) {
                if let Some(at) = at {
                    self.committed_at.insert(tx.clone(), at);
                }
            }
            Ok(())
        };
        b.finish_and_clear();
        result
    }

    fn credited_at(&self, tx: &str) -> Option<i64> {
        self.credited_at.get(tx).copied()
    }

    fn committed_at(&self, tx: &str) -> Option<i64> {
        self.committed_at.get(tx).copied().flatten()
    }

    fn last_credit_ms(&self, txs: &[String]) -> Option<i64> {
        self.credit_span_ms(txs, i64::MIN).map(|(_, last)| last)
    }

    /// When the first and the last of `txs` credited at `since` or later were credited.
    fn credit_span_ms(&self, txs: &[String], since: i64) -> Option<(i64, i64)> {
        let at = txs.iter().filter_map(|t| self.credited_at(t)).filter(|at| *at >= since);
        at.clone().min().zip(at.max())
    }

    /// lost / duplicated / mismatches over everything the run committed.
    async fn check(&mut self, target: &Target, amount_minor: i64) -> anyhow::Result<Check> {
        let mut c = Check::default();
        let api: HashSet<&String> = self.api_committed.iter().collect();
        if let Some((db, like)) = self.db(target) {
            // Fresh records: anything credited twice or late since the last wait shows here.
            let l = db.ledger(like).await?;
            c.committed = l.debits.len();
            c.credited = l.credits.len();
            c.lost = l.debits.keys().filter(|t| !l.credits.contains_key(*t)).count();
            let phantom = l.credits.keys().filter(|t| !l.debits.contains_key(*t)).count();
            c.amount_mismatch = l
                .credits
                .iter()
                .filter(|(t, cr)| {
                    l.debits.get(*t).is_some_and(|d| d.amount != cr.amount || d.to_account != cr.to_account)
                })
                .count();
            c.api_mismatch = api.iter().filter(|t| !l.debits.contains_key(**t)).count();
            let debited: i64 = l.debits.values().map(|d| d.amount).sum();
            let credited: i64 = l.credits.values().map(|cr| cr.amount).sum();
            c.debit_mismatch = (self.before.0 - l.bank1_balance) - debited;
            c.credit_mismatch = (l.bank2_balance - self.before.1) - credited;
            // Money credited beyond the dedup rows = credits applied twice.
            let extra = c.credit_mismatch.max(0);
            c.duplicated = phantom + (extra as u64).div_ceil(amount_minor.max(1) as u64) as usize;
            for cr in l.credits.values() {
                *c.by_source.entry(cr.source.clone()).or_default() += 1;
            }
            self.ledger = Some(l);
        } else {
            let (from, to) = self.pair.clone();
            let after1 = target::api_balance(&target.http, &target.bank1_url, &from).await?;
            let after2 = target::api_balance(&target.http, &target.bank2_url, &to).await?;
            c.committed = api.len();
            c.credited = api.iter().filter(|t| self.credited_at.contains_key(**t)).count();
            c.lost = c.committed - c.credited;
            c.api_mismatch = api.iter().filter(|t| !self.committed_at.contains_key(**t)).count();
            let n = i64::try_from(c.committed).unwrap_or(i64::MAX);
            let m = i64::try_from(c.credited).unwrap_or(i64::MAX);
            c.debit_mismatch = (self.before.0 - after1) - n * amount_minor;
            c.credit_mismatch = (after2 - self.before.1) - m * amount_minor;
            c.duplicated = (c.credit_mismatch.max(0) as u64).div_ceil(amount_minor.max(1) as u64) as usize;
            c.by_source.insert("unknown (HTTP only)".into(), c.credited);
        }
        // Money missing at bank2 for recorded credits is lost too.
        if c.credit_mismatch < 0 {
            c.lost += (c.credit_mismatch.unsigned_abs()).div_ceil(amount_minor.max(1) as u64) as usize;
        }
        Ok(c)
    }
}
