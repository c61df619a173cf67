//! bank1's own metrics, beside the ones every bank has (`common::service::metrics`), all at
//! `GET /metrics`: the transfers' outcomes, the local transaction and the answer given to the
//! broker, the group commits of the debits, the check-backs, the refunds and the
//! Idempotency-Key replays.

use metrics::{counter, describe_counter, describe_gauge, gauge};
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
            describe_counter!(
                "bank1_debit_groups_total",
                "Group commits of debits (a group of one included): local transactions committed together in one database transaction."
            );
            describe_counter!(
                "bank1_debit_group_members_total",
                "Local transactions run by the group commit (÷ bank1_debit_groups_total: the mean group size)."
            );
            describe_gauge!(
                "bank1_debits_in_group_commit",
                "Local transactions handed to the group commit and not answered yet (queued, or in a group being committed)."
            );
            // Every counter a dashboard reads shows 0 before its first event.
            for status in ["COMMITTED", "ROLLED_BACK", "UNKNOWN"] {
                counter!("bank1_transfers_total", "status" => status).increment(0);
            }
            for answer in ["COMMIT", "ROLLBACK", "UNKNOWN"] {
                counter!("bank1_check_backs_total", "answer" => answer).increment(0);
            }
            counter!("bank1_idempotency_replays_total").increment(0);
            counter!("bank1_debit_groups_total").increment(0);
            counter!("bank1_debit_group_members_total").increment(0);
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

    /// Local transactions handed to the group commit (+1) or answered (-1).
    pub fn in_group_commit(&self, delta: f64) {
        self.0.record(|| gauge!("bank1_debits_in_group_commit").increment(delta));
    }

    /// A group of `members` debits went to the database as one transaction.
    pub fn debit_group(&self, members: usize) {
        self.0.record(|| {
            counter!("bank1_debit_groups_total").increment(1);
            counter!("bank1_debit_group_members_total").increment(members as u64);
        });
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
