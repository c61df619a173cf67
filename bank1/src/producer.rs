//! The transactional producer and its listener: the debit is the local transaction of a
//! RocketMQ half message, and the check-back answers the broker from bank1's own rows.
//!
//! Listeners are sync callbacks the client runs on its blocking pool; they drive sqlx by
//! blocking on the application's runtime handle (allowed on a blocking thread).

use std::any::Any;
use std::sync::{Arc, Mutex};

use common::message::{TransferMessage, TRANSFER_TAG};
use rocketmq_client_rust::{LocalTransactionState, TransactionListener, TransactionMQProducer};
use rocketmq_model::common::message::message_ext::MessageExt;
use rocketmq_model::common::message::message_single::Message;
use rocketmq_model::common::message::MessageTrait;
use sqlx::AnyPool;
use tokio::runtime::Handle;
use tokio::sync::RwLock;

use crate::faults::{FaultSwitch, Faults};
use crate::store::{self, NewTransfer, COMMITTED};

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

/// Handed to the listener with the half message; the handler reads the outcome back.
pub struct LocalTxArg {
    pub msg: TransferMessage,
    pub outcome: Arc<Mutex<Option<(LocalOutcome, LocalTransactionState)>>>,
}

struct Listener {
    pool: AnyPool,
    faults: FaultSwitch,
    handle: Handle,
}

impl TransactionListener for Listener {
    fn execute_local_transaction(
        &self,
        _msg: &dyn MessageTrait,
        arg: Option<&(dyn Any + Send + Sync)>,
    ) -> LocalTransactionState {
        let Some(arg) = arg.and_then(|a| a.downcast_ref::<LocalTxArg>()) else {
            tracing::error!("half message without its local-transaction argument; leaving it to the check-back");
            return LocalTransactionState::Unknown;
        };
        let faults = self.faults.get();
        let outcome = self.handle.block_on(run_local_tx(&self.pool, &arg.msg, faults));
        let state = answer(&outcome, &arg.msg, faults);
        tracing::info!(tx_no = %arg.msg.tx_no, ?outcome, ?state, "local transaction done");
        *arg.outcome.lock().unwrap_or_else(|e| e.into_inner()) = Some((outcome, state));
        state
    }

    fn check_local_transaction(&self, msg: &MessageExt) -> LocalTransactionState {
        let state = self.handle.block_on(check_back(&self.pool, msg, self.faults.get()));
        tracing::info!(keys = ?msg.get_keys(), ?state, "check-back answered");
        state
    }
}

/// The answer given to the broker for a local outcome (faults can distort it on purpose).
fn answer(outcome: &LocalOutcome, msg: &TransferMessage, faults: Faults) -> LocalTransactionState {
    match outcome {
        LocalOutcome::Committed if faults.loses_message(msg.amount) => LocalTransactionState::RollbackMessage,
        LocalOutcome::Committed if faults.answers_unknown(msg.amount) => LocalTransactionState::Unknown,
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
    match store::insert_transfer(&mut tx, &NewTransfer::of(msg), COMMITTED, None).await {
        Ok(()) => {}
        Err(e) if common::db::is_unique_violation(&e) => return Ok(LocalOutcome::Refused(Refusal::Superseded)),
        Err(e) => return Err(e),
    }
    if !store::debit(&mut tx, &msg.from_account, msg.amount).await? {
        tx.rollback().await?;
        let refusal = match store::account(pool, &msg.from_account).await? {
            Some(_) => Refusal::InsufficientFunds,
            None => Refusal::UnknownAccount,
        };
        return Ok(LocalOutcome::Refused(refusal));
    }
    if faults.local_tx_fails(msg.amount) {
        tx.rollback().await?;
        return Ok(LocalOutcome::Refused(Refusal::InjectedFault));
    }
    tx.commit().await?;
    Ok(LocalOutcome::Committed)
}

/// Check-back: COMMITTED row ⇒ COMMIT; otherwise make "no such transfer" permanent with a
/// tombstone and ROLLBACK. Only a database error yields UNKNOWN (the broker asks again).
///
/// The broker may check back a half message whose ROLLBACK it has not processed yet (the
/// answer travels one-way); the `lose_message_at_least` fault therefore answers ROLLBACK here
/// too, or the "lost" notification would be recovered by the check-back.
pub async fn check_back(pool: &AnyPool, msg: &MessageExt, faults: Faults) -> LocalTransactionState {
    let parsed = msg.body().as_deref().map(TransferMessage::parse);
    let key = msg.get_keys().map(|k| k.to_string()).unwrap_or_default();
    let fallback;
    let t = match &parsed {
        Some(Ok(m)) => NewTransfer::of(m),
        _ => {
            let Ok(tx_no) = common::ids::TxNo::parse(key.split_whitespace().next().unwrap_or("")) else {
                tracing::warn!(keys = %key, "check-back for a message that is not a transfer; rolling it back");
                return LocalTransactionState::RollbackMessage;
            };
            fallback = tx_no;
            NewTransfer {
                tx_no: fallback.as_str(),
                from_account: "",
                to_account: "",
                amount: 0,
                created_at: common::now_ms(),
            }
        }
    };
    match store::tombstone(pool, &t, "check-back: no local transaction committed").await {
        Ok(row) if row.status == COMMITTED => {
            let lost = common::money::Amount::from_minor(row.amount).is_some_and(|a| faults.loses_message(a));
            if lost {
                LocalTransactionState::RollbackMessage
            } else {
                LocalTransactionState::CommitMessage
            }
        }
        Ok(_) => LocalTransactionState::RollbackMessage,
        Err(e) => {
            tracing::warn!(tx_no = %t.tx_no, error = %e, "check-back could not read the database; answering UNKNOWN");
            LocalTransactionState::Unknown
        }
    }
}

/// The started producer; shared by request handlers.
#[derive(Clone)]
pub struct Publisher {
    producer: Arc<RwLock<TransactionMQProducer>>,
    topic: String,
}

impl Publisher {
    pub async fn start(
        rt: &common::mq::MqRuntime,
        settings: &crate::settings::Settings,
        pool: AnyPool,
        faults: FaultSwitch,
    ) -> anyhow::Result<Self> {
        let listener = Listener { pool, faults, handle: Handle::current() };
        let mut producer = TransactionMQProducer::builder(rt.client())
            .producer_group(settings.producer_group.clone())
            .name_server_addr(settings.namesrv_addr.clone())
            .topics(vec![settings.topic.clone()])
            .send_msg_timeout(settings.send_timeout_ms)
            .transaction_listener(listener)
            .build();
        producer.start().await.map_err(|e| anyhow::anyhow!("starting the transactional producer: {e}"))?;
        Ok(Self { producer: Arc::new(RwLock::new(producer)), topic: settings.topic.clone() })
    }

    /// Sends the half message; the listener runs the local transaction before this returns.
    /// `Err` means the broker did not take the half message (the listener did not run).
    pub async fn send(&self, msg: &TransferMessage, arg: LocalTxArg) -> Result<LocalTransactionState, String> {
        let message = Message::builder()
            .topic(self.topic.as_str())
            .tags(TRANSFER_TAG)
            .key(msg.tx_no.as_str())
            .body_slice(&msg.to_json())
            .build()
            .map_err(|e| e.to_string())?;
        let producer = self.producer.read().await;
        let r = producer
            .send_message_in_transaction::<LocalTxArg, _>(message, Some(arg))
            .await
            .map_err(|e| e.to_string())?;
        Ok(r.local_transaction_state.unwrap_or(LocalTransactionState::Unknown))
    }

    pub async fn shutdown(&self) {
        self.producer.write().await.shutdown().await;
    }
}
