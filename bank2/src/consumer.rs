//! bank2's handling of one delivered transfer message (the push consumer itself is
//! [`common::infra::mq::consumer::PushConsumer`]):
//! 1. the signature must be bank1's, else the message is quarantined as `bad_signature`;
//! 2. the body must parse and its KEYS name its tx_no, else `malformed`;
//! 3. bank1 must prove it: its signed answer says the transfer is `COMMITTED` with the
//!    message's facts, else `not_committed` (or `conflicting_duplicate`, other facts); while
//!    bank1 cannot answer, the message waits on the retry ladder like a failed credit;
//! 4. it is applied through [`Credits::apply`]: credited, rejected (funds returned), a
//!    duplicate, a `conflicting_duplicate` (quarantined), or a transient failure — recorded
//!    with the broker's `reconsume_times` and answered RECONSUME_LATER (the retry ladder, then
//!    `%DLQ%<group>`).
//!
//! Quarantined messages are acked: they never block a queue and never move money.
//!
//! The consumer hands over up to `BANK2_CONSUME_BATCH` messages at once. Those that open are
//! first credited together, in one database transaction ([`Credits::credit_all`]); if any of
//! them is not a plain credit now, none is, and each goes through the steps above alone. A
//! message that fails is sent back to the retry ladder alone; its batch-mates stay credited.
//! With credit groups on, the batches that the consume threads hold at the same moment share
//! that transaction (docs/ARCHITECTURE.md, "Credit groups").

use common::domain::message::TransferMessage;
use common::infra::mq::consumer::Ack;
use common::infra::mq::MessageExt;
use common::service::inbox::{self, Inbound, Inbox};
use common::service::quarantine::Code;

use crate::credit::{Credits, Outcome};
use crate::store::{self, Source};

/// The transfer consumer's handler.
pub struct Deliveries {
    pub credits: Credits,
    /// bank1's public keys and bank2's database.
    pub inbox: Inbox,
    /// The consumer's `max_reconsume_times`: a failure at this count is the last one.
    pub max_reconsume_times: i32,
}

impl Inbound for Deliveries {
    type Body = TransferMessage;

    fn inbox(&self) -> &Inbox {
        &self.inbox
    }

    async fn apply_all(&self, batch: &[(&MessageExt, &TransferMessage)]) -> bool {
        let transfers: Vec<&TransferMessage> = batch.iter().map(|(_, t)| *t).collect();
        if !self.credits.credit_all(&transfers, Source::Mq).await {
            return false;
        }
        for (msg, t) in batch {
            tracing::info!(tx_no = %t.tx_no, reconsume_times = msg.reconsume_times(), amount = %t.amount, "credited");
        }
        true
    }

    fn quarantined(&self, code: Code) {
        self.credits.metrics.quarantined(code);
    }

    async fn apply(&self, msg: &MessageExt, transfer: TransferMessage) -> Ack {
        let reconsume_times = msg.reconsume_times();
        match self.credits.apply(&transfer, Source::Mq).await {
            Outcome::Credited => {
                tracing::info!(tx_no = %transfer.tx_no, reconsume_times, amount = %transfer.amount, "credited");
                Ack::Done
            }
            Outcome::Rejected(_) => Ack::Done,
            Outcome::AlreadyCredited | Outcome::AlreadyRejected => {
                tracing::info!(tx_no = %transfer.tx_no, reconsume_times, "duplicate delivery: already applied");
                Ack::Done
            }
            Outcome::Conflicting(detail) => inbox::keep(self, msg, Code::ConflictingDuplicate, &detail).await,
            Outcome::Failed(error) => self.failed(msg, &transfer, &error).await,
        }
    }

    async fn unconfirmed(&self, msg: &MessageExt, transfer: &TransferMessage, detail: &str) -> Ack {
        self.credits.metrics.unproven();
        self.failed(msg, transfer, &format!("not proven by bank1 yet: {detail}")).await
    }
}

impl Deliveries {
    /// A delivery that failed for now: recorded with the broker's `reconsume_times`, then
    /// redelivered (or, at the last retry, dead-lettered).
    async fn failed(&self, msg: &MessageExt, transfer: &TransferMessage, error: &str) -> Ack {
        let reconsume_times = msg.reconsume_times();
        self.credits.metrics.failed_delivery(reconsume_times);
        let msg_id = msg.msg_id().to_string();
        let tx_no = transfer.tx_no.as_str();
        if let Err(e) = store::record_attempt(&self.credits.pool, tx_no, reconsume_times, &msg_id, error).await {
            tracing::error!(%tx_no, error = %e, "could not record the failed attempt");
        }
        if reconsume_times >= self.max_reconsume_times {
            self.credits.metrics.dead_lettered();
            tracing::warn!(
                %tx_no, reconsume_times, %error,
                "last retry failed: the broker moves this transfer to the dead-letter queue (refund or redrive it)"
            );
        } else {
            tracing::warn!(%tx_no, reconsume_times, %error, "credit failed; asking for redelivery");
        }
        Ack::Retry
    }
}
