//! Group commit of the debits (docs/ARCHITECTURE.md, "Group commit"). Local transactions that
//! wait at the same moment share one database transaction, each under a savepoint of its own,
//! and one commit: on SQLite with `synchronous = FULL`, one fsync for the group instead of one
//! per transfer. Nothing waits to fill a group: a writer takes whatever is queued when it is
//! free, so a lone debit commits as soon as it would alone.
//!
//! A group normally takes two statements, however many debits it holds: one multi-row INSERT of
//! the transfer rows and one `UPDATE` of the balances ([`all_at_once`], [`balances::Changes`]).
//! Only when something in it would be refused does each debit run its own statements, under a
//! savepoint.
//!
//! Each local transaction keeps its own outcome, and the broker gets each its own answer,
//! sent only after the group's commit returned:
//! - a refusal (insufficient funds, unknown account, a superseding tombstone, an injected
//!   fault) rolls back its own savepoint; the others go on;
//! - if a statement fails, the group is rolled back whole (nothing of it committed) and each
//!   local transaction runs again, alone;
//! - if the COMMIT fails, whether it happened is unknown: each debit of the group reports
//!   `Failed`, exactly as a lone debit whose commit fails, so bank1 answers UNKNOWN and reads
//!   its rows to settle it (the check-back does the same).

use common::domain::message::TransferMessage;
use common::infra::db::{Db, Engine};
use common::service::balances::{self, Guard};
use common::service::faults::Trips;
use common::service::group_commit::Groups;
use sqlx::{AnyConnection, AnyPool, Connection};
use tokio::sync::oneshot;

use crate::faults::Faults;
use crate::metrics::Metrics;
use crate::producer::{self, Half, LocalOutcome};
use crate::store::{self, NewTransfer, Status};

/// Where bank1's debits commit: together, or alone when groups are off.
pub struct GroupCommit {
    pool: AnyPool,
    queue: Option<Groups<Job>>,
    metrics: Metrics,
}

/// A local transaction waiting for its group.
struct Job {
    msg: TransferMessage,
    msg_id: String,
    at: i64,
    faults: Faults,
    done: oneshot::Sender<LocalOutcome>,
}

impl Job {
    fn half(&self) -> Half<'_> {
        Half { msg_id: &self.msg_id, at: self.at }
    }
}

impl GroupCommit {
    /// Starts the writers (on the current Tokio runtime) on `db`'s writer pool: groups of at
    /// most `max` debits; one writer on SQLite (it has one writer connection), four on MySQL.
    /// `max` 1: every debit commits alone, on the caller's task.
    pub fn start(db: &Db, max: usize, metrics: Metrics) -> Self {
        let (pool, engine) = (db.pool.clone(), db.engine);
        let (writer_pool, writer_metrics) = (pool.clone(), metrics.clone());
        let queue = Groups::start(engine, max, move |mut group: Vec<Job>, _next| {
            let (pool, metrics) = (writer_pool.clone(), writer_metrics.clone());
            async move {
                // Account order (stable: each account's debits keep their order of arrival), so
                // that two groups on MySQL take their row locks in the same order and never
                // deadlock.
                group.sort_by(|a, b| a.msg.from_account.as_str().cmp(b.msg.from_account.as_str()));
                commit_group(&pool, engine, group, &metrics).await;
            }
        });
        Self { pool, queue, metrics }
    }

    /// Runs one local transaction in the next group, and reports its own outcome once the group
    /// has committed.
    pub async fn run(&self, msg: &TransferMessage, half: Half<'_>, faults: Faults) -> LocalOutcome {
        let Some(queue) = &self.queue else {
            return producer::run_local_tx(&self.pool, msg, half, faults).await;
        };
        let (done, outcome) = oneshot::channel();
        let job = Job { msg: msg.clone(), msg_id: half.msg_id.to_owned(), at: half.at, faults, done };
        self.metrics.in_group_commit(1.0);
        if queue.send(job).is_err() {
            // No writer took it: nothing of it ran.
            self.metrics.in_group_commit(-1.0);
            return producer::run_local_tx(&self.pool, msg, half, faults).await;
        }
        // A writer stopped while it held the job (shutdown): its group may have committed.
        let outcome = outcome.await.unwrap_or_else(|_| LocalOutcome::Failed("the group commit stopped".into()));
        self.metrics.in_group_commit(-1.0);
        outcome
    }
}

/// Commits one group and answers each of its local transactions.
async fn commit_group(pool: &AnyPool, engine: Engine, group: Vec<Job>, metrics: &Metrics) {
    metrics.debit_group(group.len());
    let together = match group.len() {
        1 => None,
        n => match together(pool, engine, &group).await {
            Ok(outcomes) => Some(outcomes),
            Err(e) => {
                tracing::warn!(debits = n, error = %e, "a group of debits failed; each runs again alone");
                None
            }
        },
    };
    match together {
        Some(outcomes) => {
            for (job, outcome) in group.into_iter().zip(outcomes) {
                let outcome = producer::record_refusal(pool, &job.msg, job.half(), outcome).await;
                let _ = job.done.send(outcome);
            }
        }
        None => {
            for job in group {
                let outcome = producer::run_local_tx(pool, &job.msg, job.half(), job.faults).await;
                let _ = job.done.send(outcome);
            }
        }
    }
}

/// The group in one database transaction: all at once when none of it is refused, else each
/// local transaction under its own savepoint; then one commit. `Err`: a statement failed
/// before the commit, and the whole group was rolled back.
async fn together(pool: &AnyPool, engine: Engine, group: &[Job]) -> sqlx::Result<Vec<LocalOutcome>> {
    let mut tx = pool.begin().await?;
    let outcomes = if all_at_once(&mut tx, engine, group).await? {
        vec![LocalOutcome::Committed; group.len()]
    } else {
        let mut outcomes = Vec::with_capacity(group.len());
        for job in group {
            outcomes.push(producer::local_tx(&mut tx, &job.msg, job.half(), job.faults).await?);
        }
        outcomes
    };
    match tx.commit().await {
        Ok(()) => Ok(outcomes),
        Err(e) => {
            tracing::warn!(debits = group.len(), error = %e, "the commit of a group of debits failed; each answers UNKNOWN");
            let failed = |o| match o {
                LocalOutcome::Committed => LocalOutcome::Failed(e.to_string()),
                refused => refused,
            };
            Ok(outcomes.into_iter().map(failed).collect())
        }
    }
}

/// The common case in two statements, whatever the group's size: every transfer row, then every
/// account's debit (one `UPDATE`, guarded so that no balance goes below zero). True when
/// both did all of it; false, with nothing done (its savepoint rolled back), when anything in
/// the group would be refused: a tx_no already taken, an account short of funds or unknown, an
/// injected fault. Each debit then runs under its own savepoint and gets its own outcome.
async fn all_at_once(conn: &mut AnyConnection, engine: Engine, group: &[Job]) -> sqlx::Result<bool> {
    if group.iter().any(|j| j.faults.local_tx_fail_at_least.trips(j.msg.amount)) {
        return Ok(false);
    }
    let rows: Vec<_> = group
        .iter()
        .map(|j| (NewTransfer::of(&j.msg), producer::committed_steps(&j.msg, j.half(), j.faults)))
        .collect();
    let mut tx = conn.begin().await?;
    match store::insert_transfers(&mut tx, &rows, Status::Committed, None).await {
        Ok(()) => {}
        Err(e) if common::infra::db::is_unique_violation(&e) => {
            tx.rollback().await?;
            return Ok(false);
        }
        Err(e) => return Err(e),
    }
    let debits: Vec<(&str, i64)> = group.iter().map(|j| (j.msg.from_account.as_str(), -j.msg.amount.minor())).collect();
    if !balances::change_all(&mut tx, &debits, Guard::Covers, engine).await? {
        tx.rollback().await?;
        return Ok(false);
    }
    tx.commit().await?;
    Ok(true)
}
