//! Figures: percentiles (an HDR histogram), process readings (`/proc`, through procfs), the
//! report (a table and JSON).

use std::path::Path;

use comfy_table::{presets, Table};
use hdrhistogram::Histogram;
use procfs::process::Process;
use procfs::CurrentSI;
use serde::Serialize;

/// p50 / p90 / p99 / max of a sample (milliseconds in, milliseconds out), from an HDR
/// histogram at microsecond resolution and 3 significant digits (values within 0.1 %).
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Summary {
    pub samples: usize,
    pub p50: Option<f64>,
    pub p90: Option<f64>,
    pub p99: Option<f64>,
    pub max: Option<f64>,
}

impl Summary {
    pub fn of(v: Vec<f64>) -> Self {
        let Ok(mut h) = Histogram::<u64>::new(3) else { return Self::default() };
        for x in &v {
            // Microseconds, at least 1 (the histogram's lowest value).
            let _ = h.record(((x * 1000.0).round() as u64).max(1));
        }
        if h.is_empty() {
            return Self::default();
        }
        let ms = |us: u64| Some(us as f64 / 1000.0);
        Self {
            samples: v.len(),
            p50: ms(h.value_at_quantile(0.50)),
            p90: ms(h.value_at_quantile(0.90)),
            p99: ms(h.value_at_quantile(0.99)),
            max: ms(h.max()),
        }
    }
}

/// Resident memory of a process (now and its peak), in MiB; `None` off Linux.
pub fn rss_mib(pid: u32) -> Option<(f64, f64)> {
    let status = Process::new(i32::try_from(pid).ok()?).ok()?.status().ok()?;
    Some((status.vmrss? as f64 / 1024.0, status.vmhwm? as f64 / 1024.0))
}

/// CPU time (user + system) a process has used so far, in seconds.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = Process::new(i32::try_from(pid).ok()?).ok()?.stat().ok()?;
    Some((stat.utime + stat.stime) as f64 / procfs::ticks_per_second() as f64)
}

/// Whole-machine CPU counters (busy, total) in ticks.
pub fn machine_ticks() -> Option<(u64, u64)> {
    let t = procfs::KernelStats::current().ok()?.total;
    let idle = t.idle + t.iowait.unwrap_or(0);
    let total = t.user + t.nice + t.system + idle + t.irq.unwrap_or(0) + t.softirq.unwrap_or(0) + t.steal.unwrap_or(0);
    Some((total - idle, total))
}

/// The pid of a local MariaDB/MySQL server (`mariadbd` / `mysqld`), to see its CPU too —
/// only when there is exactly one.
pub fn db_server_pid() -> Option<u32> {
    let found: Vec<u32> = procfs::process::all_processes()
        .ok()?
        .flatten()
        .filter(|p| p.stat().is_ok_and(|s| matches!(s.comm.as_str(), "mariadbd" | "mysqld")))
        .filter_map(|p| u32::try_from(p.pid).ok())
        .collect();
    (found.len() == 1).then(|| found[0])
}

/// CPU used by each part of the stack over a phase, in % of one core, and how busy the
/// whole machine was. Anything else running skews the figures: `others_pct` says how much.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CpuUse {
    /// This process: bank1, bank2 and the load driver (and the baseline clients).
    pub banks_and_driver_pct: Option<f64>,
    pub broker_pct: Option<f64>,
    pub namesrv_pct: Option<f64>,
    /// A local MariaDB/MySQL server, when there is exactly one.
    pub db_server_pct: Option<f64>,
    /// All cores, all processes: 100 % = every core busy.
    pub machine_busy_pct: Option<f64>,
    /// Every other process (builds, other tests…), % of one core: the noise in these figures.
    pub others_pct: Option<f64>,
}

/// Takes CPU readings at the start of a phase; [`CpuProbe::finish`] turns them into use.
pub struct CpuProbe {
    pids: [Option<u32>; 4],
    start: [Option<f64>; 4],
    machine: Option<(u64, u64)>,
    at: std::time::Instant,
}

impl CpuProbe {
    /// `pids`: this process, broker, name server, database server.
    pub fn start(pids: [Option<u32>; 4]) -> Self {
        Self {
            start: pids.map(|p| p.and_then(cpu_seconds)),
            pids,
            machine: machine_ticks(),
            at: std::time::Instant::now(),
        }
    }

    pub fn finish(&self) -> CpuUse {
        let wall = self.at.elapsed().as_secs_f64().max(1e-3);
        let pct = |i: usize| {
            let now = self.pids[i].and_then(cpu_seconds)?;
            Some(round1((now - self.start[i]?) / wall * 100.0))
        };
        let machine = match (self.machine, machine_ticks()) {
            (Some((b0, t0)), Some((b1, t1))) if t1 > t0 => Some(round1((b1 - b0) as f64 / (t1 - t0) as f64 * 100.0)),
            _ => None,
        };
        let ours = [pct(0), pct(1), pct(2), pct(3)];
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
        let others = machine.map(|m| round1((m * cores - ours.iter().flatten().sum::<f64>()).max(0.0)));
        CpuUse {
            banks_and_driver_pct: ours[0],
            broker_pct: ours[1],
            namesrv_pct: ours[2],
            db_server_pct: ours[3],
            machine_busy_pct: machine,
            others_pct: others,
        }
    }
}

pub fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

pub fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// `a / b` to two decimals; none when `b` is not positive.
pub fn ratio_of(a: f64, b: f64) -> Option<f64> {
    (b > 0.0).then(|| round2(a / b))
}

/// Memory of the stack (own-stack mode only), MiB.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Memory {
    /// Total RSS right after the stack became ready, before any load.
    pub rss_at_rest_mib: Option<f64>,
    pub rss_at_rest_banks_mib: Option<f64>,
    pub rss_at_rest_broker_mib: Option<f64>,
    pub rss_at_rest_namesrv_mib: Option<f64>,
    /// Sum of each process's peak RSS over the whole run.
    pub rss_peak_mib: Option<f64>,
}

/// One baseline: the same messages straight through the broker, no HTTP, no database.
#[derive(Debug, Clone, Serialize)]
pub struct BaselineFigures {
    /// `plain` (DefaultMQProducer) or `transactional` (TransactionMQProducer, commits at once).
    pub kind: &'static str,
    /// True: every message was sent while the consumer was suspended (a backlog), and
    /// `elapsed_s` runs from its resume.
    pub backlog: bool,
    pub messages: usize,
    pub body_bytes: usize,
    pub sent: usize,
    pub send_errors: usize,
    pub consumed: usize,
    pub redelivered: usize,
    /// First send (a backlog: the consumer's resume) → last message consumed.
    pub elapsed_s: f64,
    pub msgs_per_s: f64,
    pub send_ms: Summary,
    pub cpu: Option<CpuUse>,
}

/// Everything a run measured. `--json` writes this; the table shows the main lines.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub mode: &'static str,
    pub db: String,
    pub transfers: usize,
    pub concurrency: usize,
    pub accounts: usize,
    /// Offered load (transfers/s); `null` = as fast as the concurrency allows.
    pub rate: Option<f64>,
    pub amount: String,
    pub started_at: String,
    pub duration_s: f64,

    // readiness and memory (own stack)
    pub ready_ms: Option<u64>,
    /// Start → the first transfer credited (its own latency included): ready in earnest.
    pub ready_to_credit_ms: Option<u64>,
    /// That first transfer alone: request → credit, ms (a cold pipe: routes, queue assignment).
    pub first_transfer_ms: Option<u64>,
    #[serde(flatten)]
    pub memory: Memory,

    // the main phase
    pub committed: usize,
    pub refused: usize,
    pub api_errors: usize,
    /// Requests that started more than 10 ms after their slot (`--rate` not sustained).
    pub behind_schedule: usize,
    pub api_tps: Option<f64>,
    /// Transfers committed at bank1 AND credited at bank2 per second, first request → last credit.
    pub e2e_tps: Option<f64>,
    pub raw_tps: Option<f64>,
    /// e2e_tps / raw_tps.
    pub ratio: Option<f64>,
    pub api_p50_ms: Option<f64>,
    pub api_p90_ms: Option<f64>,
    pub api_p99_ms: Option<f64>,
    pub api_max_ms: Option<f64>,
    pub debit_to_credit_p50_ms: Option<f64>,
    pub debit_to_credit_p90_ms: Option<f64>,
    pub debit_to_credit_p99_ms: Option<f64>,
    pub debit_to_credit_max_ms: Option<f64>,
    pub cpu: CpuUse,

    // the backlog phase
    pub backlog: Option<usize>,
    /// Time to commit the backlog at bank1 while bank2 was paused.
    pub backlog_fill_s: Option<f64>,
    /// Resume → last of the backlog credited.
    pub backlog_drain_s: Option<f64>,
    pub backlog_drain_tps: Option<f64>,
    pub backlog_cpu: Option<CpuUse>,
    /// First → last of the backlog credited (the drain without the restart of pulling).
    pub backlog_crediting_s: Option<f64>,
    /// bank2's credit writers' time committing groups (`bank2_credit_group_commit_seconds`)
    /// per second of `backlog_crediting_s`: 1.0 = one writer never idle (SQLite has one,
    /// MySQL four). Only over a span of a second or more.
    pub backlog_writers_busy: Option<f64>,
    /// The credit groups bank2 committed from the resume to the last of the backlog credited.
    pub backlog_groups: Option<u64>,
    /// Their mean commit time (`bank2_credit_group_commit_seconds`), in ms.
    pub backlog_group_ms: Option<f64>,

    // baselines
    pub baseline_plain: Option<BaselineFigures>,
    pub baseline_transactional: Option<BaselineFigures>,
    /// With `--backlog`: the same number of plain messages drained by a consumer resumed after
    /// all were sent, like bank2 after its pause.
    pub baseline_backlog: Option<BaselineFigures>,
    /// `backlog_drain_tps` / the raw backlog drain's msgs/s.
    pub backlog_drain_ratio: Option<f64>,

    // exactly-once, over every transfer of the run (counted, never assumed)
    pub committed_total: usize,
    pub credited_total: usize,
    /// Committed at bank1, not credited at bank2 by the deadline.
    pub lost: usize,
    /// Credited more than once, or credited though bank1 did not commit it.
    pub duplicated: usize,
    /// bank1's debits (balance change) minus the sum of its COMMITTED transfers, in cents.
    pub debit_mismatch_cents: i64,
    /// bank2's credits (balance change) minus the sum of its de_duplication rows, in cents.
    pub credit_mismatch_cents: i64,
    /// Credits whose amount or receiver differs from bank1's transfer.
    pub amount_mismatch: usize,
    /// Replies that said COMMITTED for a transfer bank1 did not commit.
    pub api_mismatch: usize,
    /// How credits arrived (MQ, RECONCILE, DLQ_REDRIVE).
    pub credits_by_source: std::collections::BTreeMap<String, usize>,
    /// Deliveries bank2 received for transfers already credited (acked, no effect).
    pub redeliveries: Option<u64>,
    pub exactly_once: bool,
    pub notes: Vec<String>,
}

fn ms(v: Option<f64>) -> String {
    v.map_or_else(|| "–".into(), |x| if x < 10.0 { format!("{x:.1}") } else { format!("{x:.0}") })
}

fn rate(v: Option<f64>) -> String {
    v.map_or_else(|| "–".into(), |x| format!("{x:.0}"))
}

fn ratio(v: Option<f64>) -> String {
    v.map_or_else(|| "–".into(), |x| format!("{x:.2}"))
}

impl Report {
    /// The table printed at the end of a run.
    pub fn table(&self) -> String {
        let mut rows: Vec<(String, String)> = Vec::new();
        let mut row = |k: &str, v: String| rows.push((k.to_owned(), v));
        if let Some(r) = self.ready_ms {
            let mem = self.memory.rss_at_rest_mib.map_or_else(String::new, |m| {
                format!(
                    "; RSS at rest {m:.0} MiB (banks {:.0}, broker {:.0}, namesrv {:.0})",
                    self.memory.rss_at_rest_banks_mib.unwrap_or(0.0),
                    self.memory.rss_at_rest_broker_mib.unwrap_or(0.0),
                    self.memory.rss_at_rest_namesrv_mib.unwrap_or(0.0)
                )
            });
            row("stack ready (HTTP up)", format!("{:.2} s{mem}", r as f64 / 1000.0));
            if let (Some(c), Some(f)) = (self.ready_to_credit_ms, self.first_transfer_ms) {
                row(
                    "first transfer credited",
                    format!("{:.2} s after start ({f} ms request → credit)", c as f64 / 1000.0),
                );
            }
        }
        if self.transfers > 0 {
            row(
                "transfers",
                format!(
                    "{} sent, {} committed, {} refused, {} errors{}",
                    self.transfers,
                    self.committed,
                    self.refused,
                    self.api_errors,
                    if self.behind_schedule > 0 {
                        format!(", {} behind schedule", self.behind_schedule)
                    } else {
                        String::new()
                    }
                ),
            );
            row("API replies/s", rate(self.api_tps));
            row("e2e transfers/s (committed+credited)", rate(self.e2e_tps));
        }
        if self.baseline_plain.is_some() || self.baseline_transactional.is_some() {
            row(
                "raw broker msgs/s (plain / transactional)",
                format!(
                    "{} / {}",
                    rate(self.baseline_plain.as_ref().map(|b| b.msgs_per_s)),
                    rate(self.baseline_transactional.as_ref().map(|b| b.msgs_per_s))
                ),
            );
            row("ratio e2e / raw", ratio(self.ratio));
        }
        if self.transfers > 0 {
            row(
                "API latency p50 / p90 / p99 / max",
                format!(
                    "{} / {} / {} / {} ms",
                    ms(self.api_p50_ms),
                    ms(self.api_p90_ms),
                    ms(self.api_p99_ms),
                    ms(self.api_max_ms)
                ),
            );
            row(
                "debit→credit p50 / p90 / p99 / max",
                format!(
                    "{} / {} / {} / {} ms",
                    ms(self.debit_to_credit_p50_ms),
                    ms(self.debit_to_credit_p90_ms),
                    ms(self.debit_to_credit_p99_ms),
                    ms(self.debit_to_credit_max_ms)
                ),
            );
            row("CPU (% of one core)", cpu_line(&self.cpu));
        }
        if let Some(n) = self.backlog {
            row(
                "backlog",
                format!(
                    "{n} committed in {} s while bank2 paused; drained in {} s ({} /s)",
                    self.backlog_fill_s.map_or_else(|| "–".into(), |s| format!("{s:.1}")),
                    self.backlog_drain_s.map_or_else(|| "–".into(), |s| format!("{s:.1}")),
                    rate(self.backlog_drain_tps)
                ),
            );
            if let Some(c) = &self.backlog_cpu {
                row("CPU while draining", cpu_line(c));
            }
            if let (Some(busy), Some(span)) = (self.backlog_writers_busy, self.backlog_crediting_s) {
                row(
                    "credit writers while draining",
                    format!("busy {busy:.2} s per s over the {span:.1} s from first to last credit (SQLite: 1 writer, MySQL: 4)"),
                );
            }
            if let (Some(groups), Some(ms), Some(n)) = (self.backlog_groups, self.backlog_group_ms, self.backlog) {
                let per_group = n as f64 / groups as f64;
                row(
                    "credit groups while draining",
                    format!("{groups}: {per_group:.0} credits and {ms:.2} ms each on average"),
                );
            }
            if let Some(b) = &self.baseline_backlog {
                row(
                    "raw backlog drain msgs/s",
                    format!("{} (bank2's drain / raw: {})", rate(Some(b.msgs_per_s)), ratio(self.backlog_drain_ratio)),
                );
            }
        }
        if let Some(p) = self.memory.rss_peak_mib {
            row("RSS peak (sum of processes)", format!("{p:.0} MiB"));
        }
        row(
            "exactly-once",
            format!(
                "{} committed, {} credited: lost {}, duplicated {}{}",
                self.committed_total,
                self.credited_total,
                self.lost,
                self.duplicated,
                if self.exactly_once { " ✔" } else { " ✘" }
            ),
        );
        if let Some(n) = self.redeliveries {
            // Deliveries bank2 had already applied (deduplicated by tx_no): broker redeliveries,
            // or a half message committed twice (see ARCHITECTURE.md, "Check-backs and double
            // commits").
            row("duplicate deliveries (deduplicated)", n.to_string());
        }
        if self.debit_mismatch_cents != 0 || self.credit_mismatch_cents != 0 || self.amount_mismatch != 0 {
            row(
                "mismatches",
                format!(
                    "debits {} ¢, credits {} ¢, amounts {}, API {}",
                    self.debit_mismatch_cents, self.credit_mismatch_cents, self.amount_mismatch, self.api_mismatch
                ),
            );
        }
        let mut table = Table::new();
        table.load_style(presets::UTF8_HORIZONTAL_ONLY);
        for (k, v) in rows {
            table.add_row(vec![k, v]);
        }
        for n in &self.notes {
            table.add_row(vec!["note".to_owned(), n.clone()]);
        }
        format!(
            "\nbank-transfer bench — {}, {} db, {} transfers, C = {}, {} accounts, rate {}\n{table}\n",
            self.mode,
            self.db,
            self.transfers,
            self.concurrency,
            self.accounts,
            self.rate.map_or_else(|| "unlimited".into(), |r| format!("{r}/s"))
        )
    }

    pub fn write_json(&self, path: &Path) -> anyhow::Result<()> {
        let text = serde_json::to_string_pretty(self)?;
        std::fs::write(path, text + "\n").map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))
    }
}

fn cpu_line(c: &CpuUse) -> String {
    let f = |v: Option<f64>| v.map_or_else(|| "–".into(), |x| format!("{x:.0}"));
    let db = c.db_server_pct.map_or_else(String::new, |d| format!(", db server {d:.0}"));
    format!(
        "banks+driver {}, broker {}, namesrv {}{db}, others {}; machine {} % busy",
        f(c.banks_and_driver_pct),
        f(c.broker_pct),
        f(c.namesrv_pct),
        f(c.others_pct),
        f(c.machine_busy_pct)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_reads_percentiles_within_a_tenth_of_a_percent() {
        let s = Summary::of((1..=100).map(f64::from).rev().collect());
        let near = |got: Option<f64>, want: f64| (got.unwrap() - want).abs() <= want * 0.001;
        assert_eq!(s.samples, 100);
        assert!(near(s.p50, 50.0) && near(s.p90, 90.0) && near(s.p99, 99.0) && near(s.max, 100.0), "{s:?}");
        let e = Summary::of(Vec::new());
        assert_eq!((e.samples, e.p50, e.max), (0, None, None));
    }

    #[test]
    fn reads_own_process() {
        if cfg!(target_os = "linux") {
            let me = std::process::id();
            let (rss, peak) = rss_mib(me).unwrap();
            assert!(rss > 0.0 && peak >= rss);
            assert!(cpu_seconds(me).unwrap() >= 0.0);
        }
    }
}
