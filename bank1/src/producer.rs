//! The debit as the local transaction of a RocketMQ half message, and the check-back that
//! answers the broker from bank1's own rows (the producer itself is
//! [`common::infra::mq::tx::TxProducer`], which also signs every message).

use common::domain::message::{Body, TransferMessage};
use common::infra::mq::tx::LocalTransaction;
use common::infra::mq::MessageExt;
use common::service::faults::Trips;
use rocketmq_client_rust::LocalTransactionState;
use sqlx::AnyPool;

use crate::faults::{FaultSwitch, Faults};
use crate::metrics::Metrics;
use crate::store::{self, Facts, NewTransfer, Status};

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
    pub pool: AnyPool,
    pub faults: FaultSwitch,
    pub metrics: Metrics,
}

impl LocalTransaction for DebitTx {
    type Arg = TransferMessage;
    /// What happened, and what bank1 answered the broker.
    type Outcome = (LocalOutcome, LocalTransactionState);

    async fn execute(&self, msg: &TransferMessage) -> (Self::Outcome, LocalTransactionState) {
        let faults = self.faults.get();
        let outcome = run_local_tx(&self.pool, msg, faults).await;
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

/// The local transaction: claim the tx_no with a COMMITTED row, debit conditionally, commit —
/// all in ONE database transaction. Refusals roll back and leave a ROLLED_BACK row.
pub async fn run_local_tx(pool: &AnyPool, msg: &TransferMessage, faults: Faults) -> LocalOutcome {
    match try_local_tx(pool, msg, faults).await {
        Ok(LocalOutcome::Refused(r)) => {
            if r != Refusal::Superseded {
                if let Err(e) = store::tombstone(pool, &NewTransfer::of(msg), r.reason()).await {
                    tracing::warn!(tx_no = %msg.tx_no, error = %e, "could not record the refusal; the check-back will");
                }
            }
            LocalOutcome::Refused(r)
        }
        Ok(o) => o,
        Err(e) => LocalOutcome::Failed(e.to_string()),
    }
}

async fn try_local_tx(pool: &AnyPool, msg: &TransferMessage, faults: Faults) -> sqlx::Result<LocalOutcome> {
    let mut tx = pool.begin().await?;
    // The row first: it takes the write lock at once (SQLite) and loses cleanly to a tombstone.
    match store::insert_transfer(&mut tx, &NewTransfer::of(msg), Status::Committed, None).await {
        Ok(()) => {}
        Err(e) if common::infra::db::is_unique_violation(&e) => return Ok(LocalOutcome::Refused(Refusal::Superseded)),
        Err(e) => return Err(e),
    }
    if !store::debit(&mut tx, &msg.from_account, msg.amount).await? {
        tx.rollback().await?;
        let refusal = match common::service::routes::account(pool, &msg.from_account).await? {
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
    match store::tombstone(pool, &t, "check-back: no local transaction committed").await {
        Ok(row) if row.status != Status::RolledBack => {
            let lost = common::domain::money::Amount::from_minor(row.amount)
                .is_some_and(|a| faults.lose_message_at_least.trips(a));
            if lost {
                LocalTransactionState::RollbackMessage
            } else {
                LocalTransactionState::CommitMessage
            }
        }
        Ok(_) => LocalTransactionState::RollbackMessage,
        Err(e) => {
            tracing::warn!(tx_no = %t.transfer.tx_no, error = %e, "check-back could not read the database; answering UNKNOWN");
            LocalTransactionState::Unknown
        }
    }
}
