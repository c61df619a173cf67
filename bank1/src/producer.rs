//! The debit as the local transaction of a RocketMQ half message, and the check-back that
//! answers the broker from bank1's own rows (the producer itself is
//! [`common::infra::mq::tx::TxProducer`], which also signs every message).

use common::domain::message::{Body, TransferMessage};
use common::infra::mq::tx::LocalTransaction;
use common::infra::mq::MessageExt;
use common::service::faults::Trips;
use rocketmq_client_rust::LocalTransactionState;
use sqlx::{AnyConnection, AnyPool, Connection};

use crate::faults::{FaultSwitch, Faults};
use crate::metrics::Metrics;
use crate::store::{self, Facts, LocalSteps, NewTransfer, Status};

/// What the local transaction did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LocalOutcome {
    /// Debited and the COMMITTED row written, in one DB transaction.
    Committed,
    /// Rolled back; a ROLLED_BACK row records why.
    Refused(Refusal),
    /// The database failed; whether it committed is unknown until re-read.
    Failed(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    InsufficientFunds,
    UnknownAccount,
    InjectedFault,
    /// A check-back already wrote a tombstone for this tx_no.
    Superseded,
}

impl Refusal {
    pub fn reason(self) -> &'static str {
        match self {
            Refusal::InsufficientFunds => "insufficient funds",
            Refusal::UnknownAccount => "unknown account",
            Refusal::InjectedFault => "injected fault: local_tx_fail_at_least",
            Refusal::Superseded => "rolled back by the broker's check-back before the local transaction committed",
        }
    }
}

/// The transfer producer's listener.
pub struct DebitTx {
    /// Where the debits commit (alone or together).
    pub debits: crate::group_commit::GroupCommit,
    /// The check-backs' reads and tombstones.
    pub pool: AnyPool,
    pub faults: FaultSwitch,
    pub metrics: Metrics,
}

impl LocalTransaction for DebitTx {
    type Arg = TransferMessage;
    /// What happened, and what bank1 answered the broker.
    type Outcome = (LocalOutcome, LocalTransactionState);

    async fn execute(&self, msg: &TransferMessage, msg_id: &str) -> (Self::Outcome, LocalTransactionState) {
        let faults = self.faults.get();
        let half = Half { msg_id, at: common::now_ms() };
        let outcome = self.debits.run(msg, half, faults).await;
        let state = answer(&outcome, msg, faults);
        tracing::info!(tx_no = %msg.tx_no, ?outcome, ?state, "local transaction done");
        self.metrics.local_transaction(&outcome, state);
        ((outcome, state), state)
    }

    async fn check(&self, msg: &MessageExt) -> LocalTransactionState {
        let answer = check_back(&self.pool, msg, self.faults.get()).await;
        self.metrics.check_back(answer);
        answer
    }
}

/// The half message a local transaction runs for: its id, and when the local transaction began.
#[derive(Debug, Clone, Copy)]
pub struct Half<'a> {
    pub msg_id: &'a str,
    pub at: i64,
}

impl<'a> Half<'a> {
    /// What the row records of the local transaction that answers `state`. A committed row
    /// records the answer decided before its commit; should the commit's own reply be lost
    /// (bank1 cannot tell whether it committed), bank1 answers UNKNOWN instead and the
    /// check-back, recorded as such, settles it.
    fn steps(self, state: LocalTransactionState) -> LocalSteps<'a> {
        let msg_id = Some(self.msg_id).filter(|id| !id.is_empty());
        LocalSteps { msg_id, half_at: Some(self.at), answer: Some(answer_name(state)) }
    }
}

/// An answer as bank1's rows spell it.
pub fn answer_name(state: LocalTransactionState) -> &'static str {
    match state {
        LocalTransactionState::CommitMessage => "COMMIT",
        LocalTransactionState::RollbackMessage => "ROLLBACK",
        LocalTransactionState::Unknown => "UNKNOWN",
    }
}

/// The answer given to the broker for a local outcome (faults can distort it on purpose).
fn answer(outcome: &LocalOutcome, msg: &TransferMessage, faults: Faults) -> LocalTransactionState {
    match outcome {
        LocalOutcome::Committed if faults.lose_message_at_least.trips(msg.amount) => {
            LocalTransactionState::RollbackMessage
        }
        LocalOutcome::Committed if faults.unknown_at_least.trips(msg.amount) => LocalTransactionState::Unknown,
        LocalOutcome::Committed => LocalTransactionState::CommitMessage,
        LocalOutcome::Refused(_) => LocalTransactionState::RollbackMessage,
        LocalOutcome::Failed(_) => LocalTransactionState::Unknown,
    }
}

/// The local transaction, alone: claim the tx_no with a COMMITTED row, debit conditionally,
/// commit — all in ONE database transaction. Refusals roll back and leave a ROLLED_BACK row.
/// Either row records the half message and the answer the broker gets (decided before the
/// commit). [`crate::group_commit`] runs the same statements for several debits at once.
pub async fn run_local_tx(pool: &AnyPool, msg: &TransferMessage, half: Half<'_>, faults: Faults) -> LocalOutcome {
    let outcome = match pool.acquire().await {
        Ok(mut conn) => local_tx(&mut conn, msg, half, faults).await,
        Err(e) => Err(e),
    };
    match outcome {
        Ok(o) => record_refusal(pool, msg, half, o).await,
        Err(e) => LocalOutcome::Failed(e.to_string()),
    }
}

/// A refused local transaction leaves a ROLLED_BACK row (unless a check-back's tombstone
/// superseded it), so the refusal is final and its check-back answers ROLLBACK at once.
pub async fn record_refusal(
    pool: &AnyPool,
    msg: &TransferMessage,
    half: Half<'_>,
    outcome: LocalOutcome,
) -> LocalOutcome {
    if let LocalOutcome::Refused(r) = outcome {
        if r != Refusal::Superseded {
            let steps = half.steps(LocalTransactionState::RollbackMessage);
            if let Err(e) = store::tombstone(pool, &NewTransfer::of(msg), r.reason(), &steps).await {
                tracing::warn!(tx_no = %msg.tx_no, error = %e, "could not record the refusal; the check-back will");
            }
        }
    }
    outcome
}

/// What a COMMITTED row records of its local transaction (the answer it will give included).
pub fn committed_steps<'a>(msg: &TransferMessage, half: Half<'a>, faults: Faults) -> LocalSteps<'a> {
    half.steps(answer(&LocalOutcome::Committed, msg, faults))
}

/// The local transaction's statements as one transaction on `conn`: a database transaction
/// of its own, or a savepoint when `conn` is already inside one (a group commit). A refusal
/// rolls back this transaction or savepoint only; `Committed` means committed, or released
/// into the enclosing transaction.
pub async fn local_tx(
    conn: &mut AnyConnection,
    msg: &TransferMessage,
    half: Half<'_>,
    faults: Faults,
) -> sqlx::Result<LocalOutcome> {
    let steps = committed_steps(msg, half, faults);
    let mut tx = conn.begin().await?;
    // The row first: it takes the write lock at once (SQLite) and loses cleanly to a tombstone.
    match store::insert_transfer(&mut tx, &NewTransfer::of(msg), Status::Committed, None, &steps).await {
        Ok(()) => {}
        Err(e) if common::infra::db::is_unique_violation(&e) => {
            tx.rollback().await?;
            return Ok(LocalOutcome::Refused(Refusal::Superseded));
        }
        Err(e) => return Err(e),
    }
    if !store::debit(&mut tx, &msg.from_account, msg.amount).await? {
        tx.rollback().await?;
        let refusal = match common::service::routes::account(&mut *conn, &msg.from_account).await? {
            Some(_) => Refusal::InsufficientFunds,
            None => Refusal::UnknownAccount,
        };
        return Ok(LocalOutcome::Refused(refusal));
    }
    if faults.local_tx_fail_at_least.trips(msg.amount) {
        tx.rollback().await?;
        return Ok(LocalOutcome::Refused(Refusal::InjectedFault));
    }
    tx.commit().await?;
    Ok(LocalOutcome::Committed)
}

/// Check-back: COMMITTED (or since REFUNDED) row ⇒ COMMIT; otherwise make "no such transfer"
/// permanent with a tombstone and ROLLBACK. Only a database error yields UNKNOWN (the broker asks again).
///
/// The broker may check back a half message whose ROLLBACK it has not processed yet (the
/// answer travels one-way); the `lose_message_at_least` fault therefore answers ROLLBACK here
/// too, or the "lost" notification would be recovered by the check-back.
pub async fn check_back(pool: &AnyPool, msg: &MessageExt, faults: Faults) -> LocalTransactionState {
    let parsed = msg.body().as_deref().map(TransferMessage::parse);
    let key = common::infra::mq::keys(msg);
    let fallback;
    let t = match &parsed {
        Some(Ok(m)) => NewTransfer::of(m),
        _ => {
            let Ok(tx_no) = common::domain::ids::TxNo::parse(key.split_whitespace().next().unwrap_or("")) else {
                tracing::warn!(keys = %key, "check-back for a message that is not a transfer; rolling it back");
                return LocalTransactionState::RollbackMessage;
            };
            fallback = tx_no;
            let transfer = Facts { tx_no: fallback.as_str(), from_account: "", to_account: "", amount: 0 };
            NewTransfer { transfer, created_at: common::now_ms() }
        }
    };
    let answer_of = |row: &store::TransferRow| {
        let lost = common::domain::money::Amount::from_minor(row.amount)
            .is_some_and(|a| faults.lose_message_at_least.trips(a));
        if row.status == Status::RolledBack || lost {
            LocalTransactionState::RollbackMessage
        } else {
            LocalTransactionState::CommitMessage
        }
    };
    let msg_id = common::infra::mq::message_key(msg);
    match store::check_back(pool, &t, Some(&msg_id), |row| answer_name(answer_of(row))).await {
        Ok((row, _)) => answer_of(&row),
        Err(e) => {
            tracing::warn!(tx_no = %t.transfer.tx_no, error = %e, "check-back could not read the database; answering UNKNOWN");
            LocalTransactionState::Unknown
        }
    }
}
