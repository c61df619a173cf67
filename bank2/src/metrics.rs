//! Counters behind `GET /metrics` (Prometheus text format).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::credit::{CreditOutcome, Source};

#[derive(Debug, Default)]
pub struct Counters {
    credited_mq: AtomicU64,
    credited_reconcile: AtomicU64,
    credited_dlq: AtomicU64,
    duplicates: AtomicU64,
    failures: AtomicU64,
    quarantined: AtomicU64,
}

/// Shared counters.
#[derive(Debug, Clone, Default)]
pub struct Metrics(Arc<Counters>);

impl Metrics {
    pub fn record(&self, source: Source, outcome: &CreditOutcome) {
        let c = &self.0;
        let counter = match (outcome, source) {
            (CreditOutcome::Credited, Source::Mq) => &c.credited_mq,
            (CreditOutcome::Credited, Source::Reconcile) => &c.credited_reconcile,
            (CreditOutcome::Credited, Source::DlqRedrive) => &c.credited_dlq,
            (CreditOutcome::AlreadyCredited, _) => &c.duplicates,
            (CreditOutcome::Failed(_), _) => &c.failures,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn quarantined(&self) {
        self.0.quarantined.fetch_add(1, Ordering::Relaxed);
    }

    pub fn render(&self) -> String {
        let c = &self.0;
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        format!(
            "# HELP bank2_credits_total Transfers credited, by how they arrived.\n\
             # TYPE bank2_credits_total counter\n\
             bank2_credits_total{{source=\"MQ\"}} {}\n\
             bank2_credits_total{{source=\"RECONCILE\"}} {}\n\
             bank2_credits_total{{source=\"DLQ_REDRIVE\"}} {}\n\
             # HELP bank2_duplicate_deliveries_total Deliveries of transfers already credited (acked, no effect).\n\
             # TYPE bank2_duplicate_deliveries_total counter\n\
             bank2_duplicate_deliveries_total {}\n\
             # HELP bank2_credit_failures_total Failed credit attempts (each asks for redelivery).\n\
             # TYPE bank2_credit_failures_total counter\n\
             bank2_credit_failures_total {}\n\
             # HELP bank2_quarantined_total Messages quarantined as unusable.\n\
             # TYPE bank2_quarantined_total counter\n\
             bank2_quarantined_total {}\n",
            g(&c.credited_mq),
            g(&c.credited_reconcile),
            g(&c.credited_dlq),
            g(&c.duplicates),
            g(&c.failures),
            g(&c.quarantined)
        )
    }
}
