//! After the nemesis: wait for the system to settle — running the reconcilers and redriving
//! the DLQ as an operator would — then check every invariant over both banks' rows and
//! everything the clients were told:
//!
//! - (a) conservation: Σ bank1 + Σ bank2 over the run's accounts = the initial total;
//! - (b) every transfer bank1 holds COMMITTED is credited exactly once at bank2, every REFUNDED
//!   one rejected there (never both), and bank2 holds nothing bank1 did not commit;
//! - (c) every COMMITTED answer is COMMITTED (or REFUNDED) at bank1, and every refusal left no
//!   debit behind;
//! - (d) no balance below zero, both banks healthy;
//! - (e) the time to converge after healing;
//! - (f) faults by kind; transfers attempted, committed, refused, indeterminate; and, per fault
//!   kind, the longest stretch without a COMMITTED answer and the time from heal to the next.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use comfy_table::Table;
use reqwest::Method;
use serde::Serialize;
use stack::api::BankApi;

use crate::bench::target::{Accounts, Dbs};

use super::clients::{Answer, Record};
use super::nemesis::{Fault, FaultKind, Journal};
use super::{ChaosArgs, INITIAL_BALANCE};

pub struct Inputs<'a> {
    pub seed: u64,
    pub args: &'a ChaosArgs,
    /// Run time at which everything was healed.
    pub heal_at: Duration,
    pub records: Vec<Record>,
    pub journal: &'a Journal,
    pub dbs: &'a Dbs,
    pub bank1: &'a BankApi,
    pub bank2: &'a BankApi,
    pub accounts: &'a Accounts,
}

/// One broken invariant, with what each side says and the faults on at the time.
#[derive(Debug, Clone, Serialize)]
pub struct Violation {
    pub invariant: &'static str,
    pub tx_no: Option<String>,
    pub what: String,
    pub bank1: Option<String>,
    pub bank2: Option<String>,
    pub faults_then: Vec<String>,
}

/// Availability around one kind of fault.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Availability {
    pub faults: usize,
    /// Longest stretch without a COMMITTED answer that overlapped a fault of this kind (ms).
    pub longest_gap_ms: u64,
    /// Longest time from healing a fault of this kind to the next COMMITTED answer (ms), over
    /// the heals that no other fault followed before that answer.
    pub longest_recovery_ms: u64,
    /// Heals measured for `longest_recovery_ms`; the others were cut short by the next process,
    /// database or network fault (a database kill right after a broker restart would be
    /// counted against the broker).
    pub recoveries_measured: usize,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Counts {
    pub attempted: usize,
    pub committed: usize,
    pub refused: usize,
    pub indeterminate: usize,
    pub retries: u64,
    pub to_unknown_receivers: usize,
    /// Refusals by error code (or `ROLLED_BACK` for a 201 that debited nothing).
    pub refusals_by_code: BTreeMap<String, usize>,
    pub bank1_committed: usize,
    pub bank1_refunded: usize,
    pub bank1_rolled_back: usize,
    pub bank2_credited: usize,
    pub bank2_rejected: usize,
    pub credits_by_source: BTreeMap<String, usize>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    pub seed: u64,
    pub db: String,
    pub duration_s: u64,
    pub clients: usize,
    pub accounts: usize,
    pub fault_kinds: Vec<String>,
    /// (a)
    pub initial_total: i64,
    pub final_total: i64,
    pub bank1_total: i64,
    pub bank2_total: i64,
    /// (d)
    pub lowest_balance: i64,
    pub bank1_healthy: bool,
    pub bank2_healthy: bool,
    /// (e) `None`: did not settle within `--converge-timeout`.
    pub converged_after_ms: Option<u64>,
    /// (f)
    pub counts: Counts,
    pub faults_by_kind: BTreeMap<String, usize>,
    /// By fault kind.
    pub availability: BTreeMap<String, Availability>,
    /// By kind and target (`kill broker`, `pause bank2`, …; injected faults by kind only).
    pub availability_by_target: BTreeMap<String, Availability>,
    pub violations: Vec<Violation>,
    pub faults: Vec<Fault>,
}

impl Verdict {
    pub fn holds(&self) -> bool {
        self.violations.is_empty()
    }

    pub fn broken(&self) -> usize {
        self.violations.len()
    }

    pub fn write_json(&self, path: &Path) -> anyhow::Result<()> {
        std::fs::write(path, serde_json::to_vec_pretty(self)?).with_context(|| format!("writing {}", path.display()))
    }

    /// The verdict as a terminal table, then each violation.
    pub fn table(&self) -> String {
        let mark = |ok: bool| if ok { "ok" } else { "BROKEN" };
        let broken = |inv: &str| self.violations.iter().any(|v| v.invariant == inv);
        let c = &self.counts;
        let mut t = Table::new();
        t.load_style(comfy_table::presets::UTF8_HORIZONTAL_ONLY).set_header(["check", "", "figures"]);
        t.add_row([
            "(a) conservation".to_owned(),
            mark(!broken("a")).to_owned(),
            format!(
                "bank1 {} + bank2 {} = {} (initial {})",
                money(self.bank1_total),
                money(self.bank2_total),
                money(self.final_total),
                money(self.initial_total)
            ),
        ]);
        t.add_row([
            "(b) exactly once".to_owned(),
            mark(!broken("b")).to_owned(),
            format!(
                "bank1 committed {} refunded {} rolled back {}; bank2 credited {} rejected {}",
                c.bank1_committed, c.bank1_refunded, c.bank1_rolled_back, c.bank2_credited, c.bank2_rejected
            ),
        ]);
        t.add_row([
            "(c) acknowledged writes".to_owned(),
            mark(!broken("c")).to_owned(),
            format!(
                "{} COMMITTED answers, {} refusals checked ({})",
                c.committed,
                c.refused,
                c.refusals_by_code.iter().map(|(k, n)| format!("{k} {n}")).collect::<Vec<_>>().join(", ")
            ),
        ]);
        t.add_row([
            "(d) balances, health".to_owned(),
            mark(!broken("d")).to_owned(),
            format!(
                "lowest balance {}; bank1 {}, bank2 {}",
                money(self.lowest_balance),
                health(self.bank1_healthy),
                health(self.bank2_healthy)
            ),
        ]);
        t.add_row([
            "(e) convergence".to_owned(),
            mark(!broken("e")).to_owned(),
            self.converged_after_ms
                .map_or("did not settle".to_owned(), |ms| format!("{:.1} s after healing", ms as f64 / 1000.0)),
        ]);
        t.add_row([
            "(f) transfers".to_owned(),
            String::new(),
            format!(
                "attempted {} committed {} refused {} indeterminate {} (retries {}, to unknown receivers {})",
                c.attempted, c.committed, c.refused, c.indeterminate, c.retries, c.to_unknown_receivers
            ),
        ]);
        t.add_row([
            "(f) faults".to_owned(),
            String::new(),
            self.faults_by_kind.iter().map(|(k, n)| format!("{k} {n}")).collect::<Vec<_>>().join(", "),
        ]);
        for (kind, a) in &self.availability_by_target {
            t.add_row([
                format!("availability: {kind}"),
                String::new(),
                format!(
                    "{} faults; longest gap without a commit {:.1} s; heal → next commit ≤ {:.1} s{}",
                    a.faults,
                    a.longest_gap_ms as f64 / 1000.0,
                    a.longest_recovery_ms as f64 / 1000.0,
                    if a.recoveries_measured < a.faults {
                        format!(
                            " ({} of {} heals; the others were followed by another fault first)",
                            a.recoveries_measured, a.faults
                        )
                    } else {
                        String::new()
                    }
                ),
            ]);
        }
        let mut out =
            format!("seed {}: {}\n{t}", self.seed, if self.holds() { "every invariant holds" } else { "BROKEN" });
        for v in self.violations.iter().take(50) {
            out.push_str(&format!(
                "\n({}) {} {}\n    bank1: {}\n    bank2: {}\n    faults then: {}",
                v.invariant,
                v.tx_no.as_deref().unwrap_or("-"),
                v.what,
                v.bank1.as_deref().unwrap_or("-"),
                v.bank2.as_deref().unwrap_or("-"),
                if v.faults_then.is_empty() { "-".to_owned() } else { v.faults_then.join(", ") }
            ));
        }
        if self.violations.len() > 50 {
            out.push_str(&format!("\n… and {} more (see --json)", self.violations.len() - 50));
        }
        out
    }
}

fn money(minor: i64) -> String {
    common::domain::money::format_minor(minor)
}

fn health(ok: bool) -> &'static str {
    if ok {
        "healthy"
    } else {
        "NOT healthy"
    }
}

/// bank1's `transfer` row.
#[derive(Debug, Clone, sqlx::FromRow)]
struct Debit {
    tx_no: String,
    from_account: String,
    to_account: String,
    amount: i64,
    status: String,
    created_at: i64,
}

/// bank2's `de_duplication` row.
#[derive(Debug, Clone, sqlx::FromRow)]
struct Applied {
    tx_no: String,
    to_account: String,
    amount: i64,
    outcome: String,
    source: String,
}

struct Rows {
    debits: HashMap<String, Debit>,
    applied: HashMap<String, Applied>,
    keys: HashMap<String, String>,
}

async fn read_rows(dbs: &Dbs) -> anyhow::Result<Rows> {
    let debits: Vec<Debit> =
        sqlx::query_as("SELECT tx_no, from_account, to_account, amount, status, created_at FROM transfer")
            .fetch_all(&dbs.bank1)
            .await
            .context("reading bank1's transfers")?;
    let applied: Vec<Applied> = sqlx::query_as("SELECT tx_no, to_account, amount, outcome, source FROM de_duplication")
        .fetch_all(&dbs.bank2)
        .await
        .context("reading bank2's credits and rejections")?;
    let keys: Vec<(String, String)> = sqlx::query_as("SELECT idem_key, tx_no FROM idempotency_key")
        .fetch_all(&dbs.bank1)
        .await
        .context("reading bank1's Idempotency-Keys")?;
    Ok(Rows {
        debits: debits.into_iter().map(|d| (d.tx_no.clone(), d)).collect(),
        applied: applied.into_iter().map(|a| (a.tx_no.clone(), a)).collect(),
        keys: keys.into_iter().collect(),
    })
}

async fn balances(pool: &sqlx::AnyPool, like: &str) -> sqlx::Result<Vec<i64>> {
    sqlx::query_scalar("SELECT balance FROM account_info WHERE account_no LIKE ?").bind(like).fetch_all(pool).await
}

/// Transfers not settled yet: COMMITTED at bank1 without a bank2 row, or rejected at bank2
/// without the refund at bank1.
fn unsettled(rows: &Rows) -> usize {
    let open_debits = rows.debits.values().filter(|d| d.status == "COMMITTED" && !rows.applied.contains_key(&d.tx_no));
    let open_refunds = rows
        .applied
        .values()
        .filter(|a| a.outcome == "REJECTED" && rows.debits.get(&a.tx_no).is_some_and(|d| d.status == "COMMITTED"));
    open_debits.count() + open_refunds.count()
}

/// Waits until nothing is in flight, doing an operator's rounds (reconcile both ways, redrive
/// the DLQ) every few seconds. Returns the time it took, `None` past the deadline.
async fn converge(i: &Inputs<'_>) -> Option<Duration> {
    let started = Instant::now();
    let deadline = started + i.args.converge_timeout;
    let mut last_round = None::<Instant>;
    loop {
        if let Ok(rows) = read_rows(i.dbs).await {
            if unsettled(&rows) == 0 {
                return Some(started.elapsed());
            }
        }
        if Instant::now() >= deadline {
            return None;
        }
        if last_round.is_none_or(|t| t.elapsed() >= Duration::from_secs(5)) {
            let _ = i.bank2.admin(Method::POST, "/admin/reconcile", None).await;
            let _ = i.bank1.admin(Method::POST, "/admin/reconcile", None).await;
            let _ = i.bank2.admin(Method::POST, "/admin/dlq/redrive", None).await;
            last_round = Some(Instant::now());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

pub async fn judge(i: Inputs<'_>) -> anyhow::Result<Verdict> {
    let converged = converge(&i).await;
    let rows = read_rows(i.dbs).await?;
    let run_started_ms = common::now_ms() - i.journal.ms() as i64;
    let faults_at =
        |created_at_ms: i64| i.journal.active_at(u64::try_from(created_at_ms - run_started_ms).unwrap_or(0));
    let mut violations = Vec::new();
    let describe_debit = |d: &Debit| format!("{} {} → {} {}", d.status, d.from_account, d.to_account, money(d.amount));
    let describe_applied = |a: &Applied| format!("{} {} {} via {}", a.outcome, a.to_account, money(a.amount), a.source);

    // (a) and (d): balances.
    let like = i.accounts.like.clone().unwrap_or_default();
    let b1 = balances(&i.dbs.bank1, &like).await.context("reading bank1's balances")?;
    let b2 = balances(&i.dbs.bank2, &like).await.context("reading bank2's balances")?;
    let (bank1_total, bank2_total) = (b1.iter().sum::<i64>(), b2.iter().sum::<i64>());
    let initial_total = INITIAL_BALANCE * i.accounts.pairs.len() as i64;
    if bank1_total + bank2_total != initial_total {
        violations.push(Violation {
            invariant: "a",
            tx_no: None,
            what: format!("Σ balances {} ≠ initial {}", money(bank1_total + bank2_total), money(initial_total)),
            bank1: Some(money(bank1_total)),
            bank2: Some(money(bank2_total)),
            faults_then: Vec::new(),
        });
    }
    let lowest_balance = b1.iter().chain(&b2).copied().min().unwrap_or(0);
    if lowest_balance < 0 {
        violations.push(Violation {
            invariant: "d",
            tx_no: None,
            what: format!("a balance below zero: {}", money(lowest_balance)),
            bank1: None,
            bank2: None,
            faults_then: Vec::new(),
        });
    }

    // (b): both banks' rows against each other.
    for d in rows.debits.values() {
        let a = rows.applied.get(&d.tx_no);
        let problem = match (d.status.as_str(), a.map(|a| a.outcome.as_str())) {
            ("COMMITTED", Some("CREDITED")) | ("REFUNDED", Some("REJECTED")) | ("ROLLED_BACK", None) => None,
            ("COMMITTED", None) => Some("committed at bank1, never applied at bank2"),
            ("COMMITTED", Some(_)) => Some("rejected at bank2, never refunded at bank1"),
            ("REFUNDED", Some(_)) => Some("refunded at bank1 although bank2 credited it"),
            ("REFUNDED", None) => Some("refunded at bank1 without a rejection at bank2"),
            ("ROLLED_BACK", Some(_)) => Some("applied at bank2 although bank1 rolled it back"),
            _ => Some("a status this checker does not know"),
        };
        let mismatch = a.is_some_and(|a| a.amount != d.amount || a.to_account != d.to_account);
        if let Some(what) = problem.or(mismatch.then_some("bank2 applied another amount or account")) {
            violations.push(Violation {
                invariant: "b",
                tx_no: Some(d.tx_no.clone()),
                what: what.to_owned(),
                bank1: Some(describe_debit(d)),
                bank2: a.map(describe_applied),
                faults_then: faults_at(d.created_at),
            });
        }
    }
    for a in rows.applied.values().filter(|a| !rows.debits.contains_key(&a.tx_no)) {
        violations.push(Violation {
            invariant: "b",
            tx_no: Some(a.tx_no.clone()),
            what: "applied at bank2, unknown to bank1".to_owned(),
            bank1: None,
            bank2: Some(describe_applied(a)),
            faults_then: Vec::new(),
        });
    }

    // (c): what the clients were told.
    for r in &i.records {
        let tx = r.tx_no.clone().or_else(|| rows.keys.get(&r.key).cloned());
        let debit = tx.as_ref().and_then(|t| rows.debits.get(t));
        let debited = debit.is_some_and(|d| d.status == "COMMITTED" || d.status == "REFUNDED");
        let what = match r.answer {
            Answer::Committed if !debited => Some("answered COMMITTED, not committed at bank1"),
            Answer::Refused if debited && r.status != 201 => Some("answered with a refusal, but debited"),
            _ => None,
        };
        if let Some(what) = what {
            violations.push(Violation {
                invariant: "c",
                tx_no: tx.clone(),
                what: format!("{what} (key {}, HTTP {}, {})", r.key, r.status, r.detail),
                bank1: debit.map(describe_debit),
                bank2: tx.as_ref().and_then(|t| rows.applied.get(t)).map(describe_applied),
                faults_then: i.journal.active_at(r.answered_ms),
            });
        }
    }

    // (d): health.
    let healthy = |api: &BankApi| {
        let api = api.clone();
        async move { api.get("/health").await.is_ok_and(|(s, _)| s.is_success()) }
    };
    let (bank1_healthy, bank2_healthy) = (healthy(i.bank1).await, healthy(i.bank2).await);
    for (ok, bank) in [(bank1_healthy, "bank1"), (bank2_healthy, "bank2")] {
        if !ok {
            violations.push(Violation {
                invariant: "d",
                tx_no: None,
                what: format!("{bank} is not healthy at the end"),
                bank1: None,
                bank2: None,
                faults_then: Vec::new(),
            });
        }
    }
    // (e)
    if converged.is_none() {
        violations.push(Violation {
            invariant: "e",
            tx_no: None,
            what: format!("{} transfers still in flight after {:?}", unsettled(&rows), i.args.converge_timeout),
            bank1: None,
            bank2: None,
            faults_then: Vec::new(),
        });
    }

    // (f)
    let mut counts = Counts { attempted: i.records.len(), ..Counts::default() };
    for r in &i.records {
        match r.answer {
            Answer::Committed => counts.committed += 1,
            Answer::Refused => {
                counts.refused += 1;
                *counts.refusals_by_code.entry(r.detail.clone()).or_default() += 1;
            }
            Answer::Indeterminate => counts.indeterminate += 1,
        }
        counts.retries += u64::from(r.tries.saturating_sub(1));
        counts.to_unknown_receivers += usize::from(r.to == "chaos-nobody");
    }
    for d in rows.debits.values() {
        match d.status.as_str() {
            "COMMITTED" => counts.bank1_committed += 1,
            "REFUNDED" => counts.bank1_refunded += 1,
            _ => counts.bank1_rolled_back += 1,
        }
    }
    for a in rows.applied.values() {
        if a.outcome == "CREDITED" {
            counts.bank2_credited += 1;
            *counts.credits_by_source.entry(a.source.clone()).or_default() += 1;
        } else {
            counts.bank2_rejected += 1;
        }
    }
    let faults = i.journal.all();
    let mut faults_by_kind = BTreeMap::new();
    for f in &faults {
        *faults_by_kind.entry(f.kind.to_string()).or_insert(0) += 1;
    }
    let mut commits: Vec<u64> =
        i.records.iter().filter(|r| r.answer == Answer::Committed).map(|r| r.answered_ms).collect();
    commits.sort_unstable();
    let end = u64::try_from(i.heal_at.as_millis()).unwrap_or(u64::MAX);
    let availability_by_target = availability(&faults, &commits, end, |f| match f.kind {
        FaultKind::Inject => f.kind.to_string(),
        _ => format!("{} {}", f.kind, f.target),
    });
    let availability = availability(&faults, &commits, end, |f| f.kind.to_string());

    Ok(Verdict {
        seed: i.seed,
        db: format!("{:?}", i.args.db).to_lowercase(),
        duration_s: i.args.duration.as_secs(),
        clients: i.args.clients,
        accounts: i.args.accounts,
        fault_kinds: i.args.kinds().iter().map(|k| k.to_string()).collect(),
        initial_total,
        final_total: bank1_total + bank2_total,
        bank1_total,
        bank2_total,
        lowest_balance,
        bank1_healthy,
        bank2_healthy,
        converged_after_ms: converged.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
        counts,
        faults_by_kind,
        availability,
        availability_by_target,
        violations,
        faults,
    })
}

/// Per group of faults (by kind, or kind and target): the longest stretch without a COMMITTED
/// answer overlapping a fault, and the longest time from a heal to the next COMMITTED answer —
/// counted only where no other fault started in between, so that each figure belongs to its
/// own fault. `commits` is sorted; `end` is when the load stopped.
pub fn availability(
    faults: &[Fault],
    commits: &[u64],
    end: u64,
    group: impl Fn(&Fault) -> String,
) -> BTreeMap<String, Availability> {
    let mut out: BTreeMap<String, Availability> = BTreeMap::new();
    for f in faults {
        let a = out.entry(group(f)).or_default();
        a.faults += 1;
        let heal = f.heal_ms.unwrap_or(end);
        let next = |t: u64| commits.iter().copied().find(|&c| c >= t);
        let before = commits.iter().copied().rev().find(|&c| c <= f.start_ms).unwrap_or(0);
        // The stretch that contains the fault's start, up to the first commit after its heal.
        let until = next(heal).unwrap_or(end.max(heal));
        let mut longest = 0;
        let mut prev = before;
        for &c in commits.iter().filter(|&&c| c > before && c <= until) {
            longest = longest.max(c - prev);
            prev = c;
        }
        longest = longest.max(until.saturating_sub(prev));
        a.longest_gap_ms = a.longest_gap_ms.max(longest);
        if let Some(n) = next(heal) {
            // Injected faults hit a share of transfers and leave the rest committing: only a
            // process, database or network fault takes the next commit away from this one.
            let followed = faults.iter().any(|g| g.kind != FaultKind::Inject && g.start_ms > heal && g.start_ms < n);
            if !followed {
                a.longest_recovery_ms = a.longest_recovery_ms.max(n - heal);
                a.recoveries_measured += 1;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn availability_measures_the_gap_around_a_fault() {
        let f =
            Fault { kind: FaultKind::Kill, target: "broker".into(), start_ms: 1_000, heal_ms: Some(5_000), note: None };
        // Commits every 100 ms until 1.05 s, then none until 6.5 s.
        let mut commits: Vec<u64> = (0..=10).map(|i| 50 + i * 100).collect();
        commits.extend([6_500, 6_600]);
        let a = &availability(&[f], &commits, 10_000, |f| f.kind.to_string())["kill"];
        assert_eq!(a.faults, 1);
        assert_eq!(a.longest_gap_ms, 6_500 - 1_050);
        assert_eq!(a.longest_recovery_ms, 1_500);
        assert_eq!(a.recoveries_measured, 1);
    }

    #[test]
    fn a_recovery_cut_short_by_the_next_fault_is_not_counted() {
        let fault = |kind, target: &str, start_ms, heal| Fault {
            kind,
            target: target.into(),
            start_ms,
            heal_ms: Some(heal),
            note: None,
        };
        // The broker is back at 5 s; the database dies at 5.5 s and is back at 8 s; the next
        // commit is at 12 s: 7 s belong to the database, not to the broker.
        let faults = [fault(FaultKind::Kill, "broker", 1_000, 5_000), fault(FaultKind::Db, "mariadb", 5_500, 8_000)];
        let commits = [500, 12_000];
        let a = availability(&faults, &commits, 20_000, |f| f.kind.to_string());
        assert_eq!((a["kill"].recoveries_measured, a["kill"].longest_recovery_ms), (0, 0));
        assert_eq!((a["db"].recoveries_measured, a["db"].longest_recovery_ms), (1, 4_000));
    }
}
