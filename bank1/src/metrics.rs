//! bank1's own metrics, beside the ones every bank has (`common::service::metrics`), all at
//! `GET /metrics`: the transfers' outcomes, the local transaction and the answer given to the
//! broker, the check-backs, the refunds and the Idempotency-Key replays.

use metrics::{counter, describe_counter};
use rocketmq_client_rust::LocalTransactionState;

use crate::producer::LocalOutcome;
use crate::store::Refund;

/// bank1's recorder (the bank's [`common::infra::metrics::Metrics`]); cheap to clone.
#[derive(Debug, Clone)]
pub struct Metrics(common::infra::metrics::Metrics);

impl Metrics {
    /// Describes bank1's metrics in the bank's recorder.
    pub fn new(recorder: common::infra::metrics::Metrics) -> Self {
        recorder.record(|| {
            describe_counter!(
                "bank1_transfers_total",
                "Transfers answered 201, by the status they ended the request in (COMMITTED, ROLLED_BACK, UNKNOWN)."
            );
            describe_counter!(
                "bank1_transfers_refused_total",
                "Transfer requests refused with nothing debited, by error code (insufficient_funds, unknown_account, …)."
            );
            describe_counter!(
                "bank1_local_transactions_total",
                "Local transactions (the debit) of half messages, by outcome and by the answer given to the broker."
            );
            describe_counter!("bank1_check_backs_total", "The broker's check-backs, by the answer bank1 gave.");
            describe_counter!("bank1_refunds_total", "Refunds (returned funds) handled, by how they arrived and outcome.");
            describe_counter!(
                "bank1_idempotency_replays_total",
                "Requests answered from an Idempotency-Key's stored reply (no second transfer)."
            );
            // Every counter a dashboard reads shows 0 before its first event.
            for status in ["COMMITTED", "ROLLED_BACK", "UNKNOWN"] {
                counter!("bank1_transfers_total", "status" => status).increment(0);
            }
            for answer in ["COMMIT", "ROLLBACK", "UNKNOWN"] {
                counter!("bank1_check_backs_total", "answer" => answer).increment(0);
            }
            counter!("bank1_idempotency_replays_total").increment(0);
        });
        Self(recorder)
    }

    pub fn transfer(&self, status: &str) {
        let status = status.to_owned();
        self.0.record(|| counter!("bank1_transfers_total", "status" => status).increment(1));
    }

    pub fn refused(&self, code: common::service::error::Code) {
        let code = code.name();
        self.0.record(|| counter!("bank1_transfers_refused_total", "code" => code).increment(1));
    }

    pub fn local_transaction(&self, outcome: &LocalOutcome, answer: LocalTransactionState) {
        let outcome = match outcome {
            LocalOutcome::Committed => "committed",
            LocalOutcome::Refused(_) => "refused",
            LocalOutcome::Failed(_) => "failed",
        };
        let answer = answer_label(answer);
        self.0.record(|| {
            counter!("bank1_local_transactions_total", "outcome" => outcome, "answer" => answer).increment(1)
        });
    }

    pub fn check_back(&self, answer: LocalTransactionState) {
        let answer = answer_label(answer);
        self.0.record(|| counter!("bank1_check_backs_total", "answer" => answer).increment(1));
    }

    pub fn refund(&self, source: &'static str, outcome: &Refund) {
        let outcome = match outcome {
            Refund::Refunded => "refunded",
            Refund::AlreadyRefunded => "already_refunded",
            Refund::Conflicting(_) => "conflicting",
            Refund::Unmatched(_) => "unmatched",
        };
        self.0.record(|| counter!("bank1_refunds_total", "source" => source, "outcome" => outcome).increment(1));
    }

    pub fn idempotency_replay(&self) {
        self.0.record(|| counter!("bank1_idempotency_replays_total").increment(1));
    }
}

/// The answer as the broker's protocol names it.
pub fn answer_label(answer: LocalTransactionState) -> &'static str {
    match answer {
        LocalTransactionState::CommitMessage => "COMMIT",
        LocalTransactionState::RollbackMessage => "ROLLBACK",
        LocalTransactionState::Unknown => "UNKNOWN",
    }
}
