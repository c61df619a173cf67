//! bank2's own metrics, beside the ones every bank has (`common::service::metrics`), all at
//! `GET /metrics`. Rejections and dead letters are the alert hooks: each one also logs at WARN
//! with its tx_no.

use std::time::Duration;

use common::domain::message::TransferMessage;
use common::service::quarantine::Code;
use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram, Unit};

use crate::credit::Outcome;
use crate::store::Source;

/// bank2's recorder (the bank's [`common::infra::metrics::Metrics`]); cheap to clone.
#[derive(Debug, Clone)]
pub struct Metrics(common::infra::metrics::Metrics);

impl Metrics {
    /// Describes bank2's metrics in the bank's recorder.
    pub fn new(recorder: common::infra::metrics::Metrics) -> Self {
        recorder.record(|| {
            describe_counter!("bank2_credits_total", "Transfers credited, by how they arrived.");
            describe_counter!(
                "bank2_rejections_total",
                "Transfers rejected for good (funds returned to bank1), by how they arrived."
            );
            describe_counter!(
                "bank2_duplicate_deliveries_total",
                "Deliveries of transfers already applied (acked, no effect)."
            );
            describe_counter!(
                "bank2_credit_failures_total",
                "Failed credit attempts, by how the transfer arrived (each asks for a retry or is parked)."
            );
            describe_counter!(
                "bank2_failed_deliveries_total",
                "Failed deliveries from the broker, by reconsume_times (the rung of the retry ladder)."
            );
            describe_counter!(
                "bank2_dead_letters_total",
                "Deliveries that failed their last retry (the broker moves them to the DLQ)."
            );
            describe_counter!("bank2_quarantined_total", "Messages quarantined (never applied), by reason.");
            describe_counter!(
                "bank2_unproven_deliveries_total",
                "Deliveries bank1 could not prove yet (down, or the transfer unknown to it so far): redelivered later."
            );
            describe_histogram!(
                "bank2_debit_to_credit_seconds",
                Unit::Seconds,
                "From the debit at bank1 (the transfer's created_at) to its credit at bank2, by how it arrived."
            );
            describe_counter!(
                "bank2_credit_groups_total",
                "Credit groups (a group of one batch included): consumer batches credited together in one database transaction."
            );
            describe_counter!(
                "bank2_credit_group_members_total",
                "Transfer messages handed to the credit groups (÷ bank2_credit_groups_total: the mean group size)."
            );
            describe_histogram!(
                "bank2_credit_group_commit_seconds",
                Unit::Seconds,
                "How long a credit writer took to commit one credit group and answer its batches (the _sum over a span ÷ the span: how busy the writers were; SQLite has one, MySQL four)."
            );
            describe_gauge!(
                "bank2_credits_in_group_commit",
                "Transfer messages handed to the credit groups and not answered yet (queued, or in a group being committed)."
            );
            describe_gauge!(
                "bank2_dlq_size",
                "Transfers whose last retry failed and that are still not applied (redrive or refund them)."
            );
            // Every counter a dashboard or the bench reads shows 0 before its first event.
            for source in [Source::Mq, Source::Reconcile, Source::DlqRedrive, Source::DlqRefund] {
                for name in ["bank2_credits_total", "bank2_rejections_total", "bank2_credit_failures_total"] {
                    counter!(name, "source" => source.as_str()).increment(0);
                }
            }
            for name in [
                "bank2_duplicate_deliveries_total",
                "bank2_dead_letters_total",
                "bank2_credit_groups_total",
                "bank2_credit_group_members_total",
            ] {
                counter!(name).increment(0);
            }
            gauge!("bank2_credits_in_group_commit").set(0.0);
            for code in [Code::BadSignature, Code::ConflictingDuplicate, Code::Malformed] {
                counter!("bank2_quarantined_total", "reason" => code.as_str()).increment(0);
            }
        });
        Self(recorder)
    }

    /// Counts what applying `msg` did; a credit also times debit → credit.
    pub fn record(&self, msg: &TransferMessage, source: Source, outcome: &Outcome) {
        let source = source.as_str();
        self.0.record(|| match outcome {
            Outcome::Credited => {
                counter!("bank2_credits_total", "source" => source).increment(1);
                let seconds = common::now_ms().saturating_sub(msg.created_at_ms) as f64 / 1000.0;
                histogram!("bank2_debit_to_credit_seconds", "source" => source).record(seconds.max(0.0));
            }
            Outcome::Rejected(_) => counter!("bank2_rejections_total", "source" => source).increment(1),
            Outcome::AlreadyCredited | Outcome::AlreadyRejected => {
                counter!("bank2_duplicate_deliveries_total").increment(1)
            }
            // Counted when quarantined.
            Outcome::Conflicting(_) => {}
            Outcome::Failed(_) => counter!("bank2_credit_failures_total", "source" => source).increment(1),
        });
    }

    /// A delivery from the broker failed at this rung of the retry ladder.
    pub fn failed_delivery(&self, reconsume_times: i32) {
        let rung = reconsume_times.to_string();
        self.0.record(|| counter!("bank2_failed_deliveries_total", "reconsume_times" => rung).increment(1));
    }

    pub fn quarantined(&self, code: Code) {
        self.0.record(|| counter!("bank2_quarantined_total", "reason" => code.as_str()).increment(1));
    }

    /// A delivery bank1 could not prove yet (down, or the transfer unknown to it so far).
    pub fn unproven(&self) {
        self.0.record(|| counter!("bank2_unproven_deliveries_total").increment(1));
    }

    pub fn dead_lettered(&self) {
        self.0.record(|| counter!("bank2_dead_letters_total").increment(1));
    }

    /// Transfer messages handed to the credit groups (+n) or answered (-n).
    pub fn in_group_commit(&self, delta: f64) {
        self.0.record(|| gauge!("bank2_credits_in_group_commit").increment(delta));
    }

    /// A credit group of `members` transfer messages went to the database, and its writer took
    /// `busy` to commit it and answer its batches.
    pub fn credit_group(&self, members: usize, busy: Duration) {
        self.0.record(|| {
            counter!("bank2_credit_groups_total").increment(1);
            counter!("bank2_credit_group_members_total").increment(members as u64);
            histogram!("bank2_credit_group_commit_seconds").record(busy.as_secs_f64());
        });
    }

    /// Sets the DLQ size read from bank2's database when scraped.
    pub fn dlq_size(&self, n: i64) {
        self.0.record(|| gauge!("bank2_dlq_size").set(n as f64));
    }
}
