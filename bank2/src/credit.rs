//! The one path by which a transfer is applied at bank2 (docs/ARCHITECTURE.md, "Consume"):
//! every deliverer — MQ consumer, reconciler, DLQ redrive, operator refund — goes through
//! [`Credits::apply`] or [`Credits::reject`].
//!
//! A transfer is applied exactly once, under its tx_no (the `de_duplication` row), as either
//! CREDITED or REJECTED, never both:
//! - credit: dedup row + credit, in ONE database transaction;
//! - a failure no retry can fix (unknown or closed receiver, balance ceiling) is *permanent*:
//!   the transfer is rejected instead, and the rejection row is the local transaction of a
//!   refund notice to bank1 ([`crate::refund`]) — the return of funds;
//! - anything else (a database error, the injected fault) is *transient*: the caller retries
//!   (broker redelivery, a parked reconcile entry).
//!
//! Batches of plain credits take [`Credits::credit_all`]. With credit groups on, the batches that
//! every consume thread holds at the same moment are credited in ONE database transaction, with
//! one commit (docs/ARCHITECTURE.md, "Credit groups"); a batch still ends all or none, exactly as
//! it would alone.

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::domain::message::{Body, RefundNotice, TransferMessage, MESSAGE_VERSION};
use common::infra::db::Engine;
use common::infra::mq::tx::TxProducer;
use common::service::balances::{self, Changes, Guard};
use common::service::faults::Trips;
use common::service::group_commit::{Groups, Next};
use sqlx::{AnyConnection, AnyPool, Connection};
use tokio::sync::{oneshot, Notify};

use crate::faults::FaultSwitch;
use crate::metrics::Metrics;
use crate::refund::{RejectTx, Rejection};
use crate::store::{self, Applied, AppliedAs, Refused, Source, REASON_CHARS};

/// What applying a transfer did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Credited now.
    Credited,
    /// Rejected now (permanently inapplicable); the refund notice is on its way to bank1.
    Rejected(String),
    /// Credited before: nothing changed.
    AlreadyCredited,
    /// Rejected before: nothing changed.
    AlreadyRejected,
    /// The tx_no was applied with other facts (amount, accounts): never applied twice, never
    /// silently called a duplicate.
    Conflicting(String),
    /// Not applied; worth retrying (database error, injected fault, broker unavailable).
    Failed(String),
}

/// The credit path's dependencies; cheap to clone.
#[derive(Clone)]
pub struct Credits {
    pub pool: AnyPool,
    /// `pool`'s engine: a credit group's statements go as one query on SQLite.
    pub engine: Engine,
    pub faults: FaultSwitch,
    pub metrics: Metrics,
    /// Publishes refund notices (local transaction: the rejection).
    pub refunds: TxProducer<RejectTx>,
    /// Wakes the rejection feed's sequencer.
    pub feed_wake: Arc<Notify>,
    /// Where batches wait for their credit group; `None`: each batch commits alone.
    pub groups: Option<Groups<CreditJob>>,
}

/// A batch of plain credits waiting for its group.
pub struct CreditJob {
    batch: Vec<TransferMessage>,
    source: Source,
    /// True once the batch is committed; false when none of it is.
    done: oneshot::Sender<bool>,
}

impl Credits {
    /// Turns credit groups on: at most `max` batches share one database transaction (1: off).
    /// Starts the writers on the current Tokio runtime, one on SQLite, four on MySQL.
    pub fn with_groups(mut self, max: usize) -> Self {
        let (pool, engine, metrics) = (self.pool.clone(), self.engine, self.metrics.clone());
        self.groups = Groups::start(engine, max, move |group, next| {
            let (pool, metrics) = (pool.clone(), metrics.clone());
            async move { commit_credits(&pool, engine, &metrics, group, next).await }
        });
        self
    }

    /// Applies `msg` exactly once: credit, or reject when that can never succeed.
    #[tracing::instrument(skip(self, msg), fields(tx_no = %msg.tx_no, source = source.as_str()))]
    pub async fn apply(&self, msg: &TransferMessage, source: Source) -> Outcome {
        let outcome = self.apply_inner(msg, source).await;
        self.metrics.record(msg, source, &outcome);
        outcome
    }

    async fn apply_inner(&self, msg: &TransferMessage, source: Source) -> Outcome {
        if self.faults.get().consume_fail_at_least.trips(msg.amount) {
            // A transfer already applied stays applied: faults never undo or hide one.
            if let Ok(Some(a)) = store::applied(&self.pool, msg.tx_no.as_str()).await {
                return already(msg, &a);
            }
            return Outcome::Failed("injected fault: consume_fail_at_least".into());
        }
        match try_credit(&self.pool, msg, source).await {
            Ok(Ok(())) => Outcome::Credited,
            Ok(Err(Existing(a))) => already(msg, &a),
            Ok(Err(Permanent(reason))) => self.reject_inner(msg, &reason, source).await,
            Err(e) => Outcome::Failed(format!("database error: {e}")),
        }
    }

    /// Credits every transfer of `batch` in ONE database transaction, or none of them: false
    /// when any is not a plain credit now (a repeat, a receiver that refuses it, the injected
    /// consume fault) or the database fails; each then takes [`Credits::apply`] on its own.
    /// With credit groups on, the transaction may hold other batches too; the answer comes
    /// after its commit.
    pub async fn credit_all(&self, batch: &[&TransferMessage], source: Source) -> bool {
        let faults = self.faults.get();
        if batch.iter().any(|m| faults.consume_fail_at_least.trips(m.amount)) {
            return false;
        }
        let credited = match &self.groups {
            Some(groups) => self.in_group(groups, batch, source).await,
            None => {
                let batch: Vec<_> = batch.iter().map(|m| (*m, source)).collect();
                match self.pool.acquire().await {
                    Ok(mut conn) => credit_or_report(&mut conn, self.engine, &batch).await,
                    Err(e) => not_credited(&e, batch.len()),
                }
            }
        };
        if credited {
            for msg in batch {
                self.metrics.record(msg, source, &Outcome::Credited);
            }
        }
        credited
    }

    /// Hands `batch` to the next credit group and waits for its answer.
    async fn in_group(&self, groups: &Groups<CreditJob>, batch: &[&TransferMessage], source: Source) -> bool {
        let members = batch.len() as f64;
        let (done, answer) = oneshot::channel();
        let job = CreditJob { batch: batch.iter().map(|m| (*m).clone()).collect(), source, done };
        self.metrics.in_group_commit(members);
        // No writer (shutdown): "not credited", and each message takes the single path, where a
        // repeat is recognised as one. The same if a writer stopped while it held the batch.
        let credited = groups.send(job).is_ok() && answer.await.unwrap_or(false);
        self.metrics.in_group_commit(-members);
        credited
    }

    /// Rejects `msg` for good with `reason` (if it is not applied yet) and publishes the refund
    /// notice, as one transactional message whose local transaction is the rejection row.
    #[tracing::instrument(skip(self, msg, reason), fields(tx_no = %msg.tx_no, source = source.as_str()))]
    pub async fn reject(&self, msg: &TransferMessage, reason: &str, source: Source) -> Outcome {
        let outcome = self.reject_inner(msg, reason, source).await;
        self.metrics.record(msg, source, &outcome);
        outcome
    }

    async fn reject_inner(&self, msg: &TransferMessage, reason: &str, source: Source) -> Outcome {
        let notice = RefundNotice {
            version: MESSAGE_VERSION,
            notice_id: uuid::Uuid::new_v4().to_string(),
            tx_no: msg.tx_no.clone(),
            from_account: msg.from_account.clone(),
            to_account: msg.to_account.clone(),
            amount: msg.amount,
            reason: reason.chars().take(REASON_CHARS).collect(),
            rejected_at_ms: common::now_ms(),
        };
        let body = notice.to_json();
        let (sent, rejection) = match self.refunds.send(msg.tx_no.as_str(), &body, (notice.clone(), source)).await {
            Ok(sent) => (Ok(sent.state), sent.outcome),
            Err((e, outcome)) => (Err(e), outcome),
        };
        match (sent, rejection) {
            (_, Some(Rejection::Rejected)) => {
                self.feed_wake.notify_one();
                tracing::warn!(
                    tx_no = %msg.tx_no, amount = %msg.amount, reason = %notice.reason,
                    "transfer REJECTED: it can never be applied; its funds go back to bank1"
                );
                Outcome::Rejected(notice.reason)
            }
            (_, Some(Rejection::Existing(a))) => already(msg, &a),
            (_, Some(Rejection::Superseded)) => {
                Outcome::Failed("the rejection lost to the broker's check-back; it will be retried".into())
            }
            (_, Some(Rejection::Failed(e))) => Outcome::Failed(format!("database error while rejecting: {e}")),
            (Err(e), None) => {
                Outcome::Failed(format!("the broker did not take the refund notice ({e}); nothing was rejected"))
            }
            (Ok(_), None) => Outcome::Failed("the rejection's local transaction did not run".into()),
        }
    }
}

/// Why a credit was not applied.
enum NotCredited {
    /// The tx_no is applied already: the row in force.
    Existing(Box<Applied>),
    /// No retry can fix it.
    Permanent(String),
}
use NotCredited::{Existing, Permanent};

/// Dedup row + credit, in ONE database transaction.
async fn try_credit(pool: &AnyPool, msg: &TransferMessage, source: Source) -> sqlx::Result<Result<(), NotCredited>> {
    let mut tx = pool.begin().await?;
    let row = applied_row(msg, source, AppliedAs::Credited, None);
    // The dedup row first: it takes the write lock and detects a repeat before any credit.
    match store::insert_applied(&mut tx, &row).await {
        Ok(()) => {}
        Err(e) if common::infra::db::is_unique_violation(&e) => {
            tx.rollback().await?;
            return existing(pool, msg).await.map(|a| Err(Existing(Box::new(a))));
        }
        Err(e) => return Err(e),
    }
    match store::add_balance(&mut tx, msg.to_account.as_str(), msg.amount.minor()).await? {
        Ok(()) => {
            tx.commit().await?;
            Ok(Ok(()))
        }
        Err(refused) => {
            tx.rollback().await?;
            let to = &msg.to_account;
            Ok(Err(Permanent(match refused {
                Refused::UnknownAccount => format!("unknown receiver account {to} at bank2"),
                Refused::Closed => format!("receiver account {to} at bank2 is closed"),
                Refused::Ceiling => {
                    format!("crediting {} would take account {to} past the balance ceiling", msg.amount)
                }
            })))
        }
    }
}

/// How long a credit writer keeps its connection for the groups queued behind its own. On SQLite
/// the one writer connection is also the refunds', the reconciler's and the single credits':
/// they wait at most this long, plus one group.
const HOLD_AT_MOST: Duration = Duration::from_millis(20);

/// Commits one credit group, then the groups queued behind it (for at most [`HOLD_AT_MOST`]), on
/// one connection: a backlog's groups come back to back, and each acquire and release of the
/// connection is a round trip of its own (docs/ARCHITECTURE.md, "Credit groups"). Answers each
/// batch, and counts each group with the time its writer spent on it.
async fn commit_credits(
    pool: &AnyPool,
    engine: Engine,
    metrics: &Metrics,
    mut group: Vec<CreditJob>,
    next: Next<CreditJob>,
) {
    let held = Instant::now();
    let mut started = held;
    let mut conn = match pool.acquire().await {
        Ok(conn) => conn,
        Err(e) => {
            let members = group.iter().map(|j| j.batch.len()).sum();
            not_credited(&e, members);
            for job in group {
                let _ = job.done.send(false);
            }
            return;
        }
    };
    loop {
        let members = group.iter().map(|j| j.batch.len()).sum();
        commit_group(&mut conn, engine, group).await;
        metrics.credit_group(members, started.elapsed());
        if held.elapsed() >= HOLD_AT_MOST {
            return;
        }
        match next.take() {
            Some(queued) => group = queued,
            None => return,
        }
        started = Instant::now();
    }
}

/// The union of the batches in one transaction when it can; else each batch in its own, with its
/// own answer (so a repeat or a refusing receiver in one batch does not hold back the others).
async fn commit_group(conn: &mut AnyConnection, engine: Engine, group: Vec<CreditJob>) {
    if group.len() > 1 {
        let union: Vec<_> = group.iter().flat_map(|j| j.batch.iter().map(move |m| (m, j.source))).collect();
        if credit_or_report(conn, engine, &union).await {
            for job in group {
                let _ = job.done.send(true);
            }
            return;
        }
    }
    for job in group {
        let batch: Vec<_> = job.batch.iter().map(|m| (m, job.source)).collect();
        let _ = job.done.send(credit_or_report(conn, engine, &batch).await);
    }
}

/// [`try_credit_all`], with a database error reported and answered "not credited".
async fn credit_or_report(conn: &mut AnyConnection, engine: Engine, batch: &[(&TransferMessage, Source)]) -> bool {
    try_credit_all(conn, engine, batch).await.unwrap_or_else(|e| not_credited(&e, batch.len()))
}

/// Reports a database error that kept `messages` from being credited together: "not credited".
fn not_credited(e: &sqlx::Error, messages: usize) -> bool {
    tracing::debug!(error = %e, messages, "credit of these messages together failed; each batch, then each message, goes alone");
    false
}

/// The dedup rows and credits of a whole batch, in ONE database transaction of two statements
/// (a multi-row INSERT, an `UPDATE` of the balances, [`balances::Changes`]; on SQLite sent as one
/// query); rolled back (false) when a tx_no is applied already or a receiver refuses its credit.
async fn try_credit_all(
    conn: &mut AnyConnection,
    engine: Engine,
    batch: &[(&TransferMessage, Source)],
) -> sqlx::Result<bool> {
    let rows: Vec<Applied> =
        batch.iter().map(|(m, source)| applied_row(m, *source, AppliedAs::Credited, None)).collect();
    // One statement for every receiver (MySQL locks its rows in key order, so two batches never
    // wait for each other's rows in a cycle).
    let credits: Vec<(&str, i64)> = batch.iter().map(|(m, _)| (m.to_account.as_str(), m.amount.minor())).collect();
    let credits = Changes::new(&credits, Guard::OpenUnderCeiling, engine);
    let mut tx = conn.begin().await?;
    let applied = if engine == Engine::Sqlite {
        store::insert_applied_and_credit(&mut tx, &rows, &credits).await
    } else {
        match store::insert_applied_all(&mut tx, &rows).await {
            Ok(()) => balances::change_all_of(&mut tx, &credits).await,
            Err(e) => Err(e),
        }
    };
    match applied {
        Ok(true) => {
            tx.commit().await?;
            Ok(true)
        }
        Ok(false) => {
            tx.rollback().await?;
            Ok(false)
        }
        Err(e) if common::infra::db::is_unique_violation(&e) => {
            tx.rollback().await?;
            Ok(false)
        }
        Err(e) => Err(e),
    }
}

/// The row in force for a tx_no that just hit the unique key.
pub(crate) async fn existing(pool: &AnyPool, msg: &TransferMessage) -> sqlx::Result<Applied> {
    store::applied(pool, msg.tx_no.as_str())
        .await?
        .ok_or_else(|| sqlx::Error::Protocol(format!("tx_no {} hit the dedup key but has no row", msg.tx_no)))
}

pub(crate) fn applied_row(msg: &TransferMessage, source: Source, outcome: AppliedAs, reason: Option<&str>) -> Applied {
    Applied {
        tx_no: msg.tx_no.to_string(),
        from_account: msg.from_account.to_string(),
        to_account: msg.to_account.to_string(),
        amount: msg.amount.minor(),
        source,
        credited_at: common::now_ms(),
        outcome,
        reason: reason.map(str::to_owned),
        feed_pos: None,
    }
}

/// What an already-applied tx_no means for this delivery.
fn already(msg: &TransferMessage, a: &Applied) -> Outcome {
    if !msg.same_facts(&a.tx_no, &a.from_account, &a.to_account, a.amount) {
        return Outcome::Conflicting(format!(
            "tx_no {} was {} as {} → {} {}; this one says {} → {} {}",
            a.tx_no,
            a.outcome.as_str().to_lowercase(),
            a.from_account,
            a.to_account,
            common::domain::money::format_minor(a.amount),
            msg.from_account,
            msg.to_account,
            msg.amount
        ));
    }
    match a.outcome {
        AppliedAs::Credited => Outcome::AlreadyCredited,
        AppliedAs::Rejected => Outcome::AlreadyRejected,
    }
}

/// The transfer a refund notice returns.
pub(crate) fn transfer_facts(n: &RefundNotice) -> TransferMessage {
    TransferMessage {
        version: MESSAGE_VERSION,
        tx_no: n.tx_no.clone(),
        from_account: n.from_account.clone(),
        to_account: n.to_account.clone(),
        amount: n.amount,
        created_at_ms: n.rejected_at_ms,
    }
}
