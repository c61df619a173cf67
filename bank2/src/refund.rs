//! The return of funds, bank2's side: a rejection is the local transaction of a transactional
//! refund notice on `topic_txmsg_refund` (producer group `producer_group_txmsg_bank2`), the
//! mirror of bank1's debit. The broker's check-back is answered from bank2's own rows.
//!
//! Local transaction, ONE database transaction:
//! 1. `refund_notice(notice_id, SENT)`: this attempt's barrier row. A check-back that found no
//!    row has written `ROLLED_BACK` under the same id, so a late local transaction fails here
//!    and the answer the broker got stays true;
//! 2. `de_duplication(tx_no, REJECTED, reason)`: the rejection itself, under the same dedup
//!    key as a credit, so a transfer is credited or rejected, never both.

use common::domain::message::{Body, RefundNotice};
use common::infra::mq::tx::LocalTransaction;
use common::infra::mq::MessageExt;
use common::service::faults::Trips;
use rocketmq_client_rust::LocalTransactionState;
use sqlx::AnyPool;

use crate::credit::{applied_row, existing};
use crate::faults::FaultSwitch;
use crate::store::{self, Applied, AppliedAs, Source, NOTICE_SENT};

/// What the rejection's local transaction did.
#[derive(Debug, Clone)]
pub enum Rejection {
    /// Rejected now.
    Rejected,
    /// The tx_no was applied already (credited or rejected): the row in force.
    Existing(Applied),
    /// The broker's check-back rolled this attempt back first.
    Superseded,
    /// The database failed; the check-back will settle what happened.
    Failed(String),
}

/// The refund producer's listener.
pub struct RejectTx {
    pub pool: AnyPool,
    pub faults: FaultSwitch,
}

impl LocalTransaction for RejectTx {
    /// The notice to publish, and how the rejected transfer arrived.
    type Arg = (RefundNotice, Source);
    type Outcome = Rejection;

    async fn execute(&self, (n, source): &(RefundNotice, Source), _msg_id: &str) -> (Rejection, LocalTransactionState) {
        let rejection = match reject_tx(&self.pool, n, *source).await {
            Ok(r) => r,
            Err(e) => Rejection::Failed(e.to_string()),
        };
        let state = match &rejection {
            Rejection::Rejected if self.faults.get().lose_refund_at_least.trips(n.amount) => {
                LocalTransactionState::RollbackMessage
            }
            Rejection::Rejected => LocalTransactionState::CommitMessage,
            Rejection::Existing(_) | Rejection::Superseded => LocalTransactionState::RollbackMessage,
            Rejection::Failed(_) => LocalTransactionState::Unknown,
        };
        tracing::info!(tx_no = %n.tx_no, notice_id = %n.notice_id, ?rejection, ?state, "rejection done");
        (rejection, state)
    }

    /// SENT ⇒ COMMIT; no row ⇒ a ROLLED_BACK tombstone and ROLLBACK. The lose-refund fault
    /// answers ROLLBACK here too, or the "lost" notice would be recovered by the check-back.
    async fn check(&self, msg: &MessageExt) -> LocalTransactionState {
        let Some(Ok(n)) = msg.body().as_deref().map(RefundNotice::parse) else {
            tracing::warn!(keys = %common::infra::mq::keys(msg), "check-back for a message that is not a refund notice");
            return LocalTransactionState::RollbackMessage;
        };
        match store::settle_notice(&self.pool, &n.notice_id, n.tx_no.as_str()).await {
            Ok(state) if state == NOTICE_SENT && !self.faults.get().lose_refund_at_least.trips(n.amount) => {
                LocalTransactionState::CommitMessage
            }
            Ok(_) => LocalTransactionState::RollbackMessage,
            Err(e) => {
                tracing::warn!(tx_no = %n.tx_no, error = %e, "check-back could not read the database; answering UNKNOWN");
                LocalTransactionState::Unknown
            }
        }
    }
}

async fn reject_tx(pool: &AnyPool, n: &RefundNotice, source: Source) -> sqlx::Result<Rejection> {
    let mut tx = pool.begin().await?;
    match store::insert_notice(&mut tx, &n.notice_id, n.tx_no.as_str(), NOTICE_SENT).await {
        Ok(()) => {}
        Err(e) if common::infra::db::is_unique_violation(&e) => return Ok(Rejection::Superseded),
        Err(e) => return Err(e),
    }
    let msg = crate::credit::transfer_facts(n);
    match store::insert_applied(&mut tx, &applied_row(&msg, source, AppliedAs::Rejected, Some(&n.reason))).await {
        Ok(()) => {}
        Err(e) if common::infra::db::is_unique_violation(&e) => {
            tx.rollback().await?;
            return existing(pool, &msg).await.map(Rejection::Existing);
        }
        Err(e) => return Err(e),
    }
    tx.commit().await?;
    Ok(Rejection::Rejected)
}
