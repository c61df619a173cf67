//! Counters behind `GET /metrics` (Prometheus text format). Rejections and dead letters are
//! the alert hooks: each one also logs at WARN with its tx_no.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use common::service::quarantine::Code;

use crate::credit::Outcome;
use crate::store::Source;

const SOURCES: [Source; 4] = [Source::Mq, Source::Reconcile, Source::DlqRedrive, Source::DlqRefund];
const CODES: [Code; 4] = [Code::BadSignature, Code::ConflictingDuplicate, Code::Malformed, Code::Unmatched];

#[derive(Debug, Default)]
pub struct Counters {
    credited: [AtomicU64; 4],
    rejected: [AtomicU64; 4],
    duplicates: AtomicU64,
    failures: AtomicU64,
    dead_letters: AtomicU64,
    quarantined: [AtomicU64; 4],
}

/// Shared counters.
#[derive(Debug, Clone, Default)]
pub struct Metrics(Arc<Counters>);

fn source_index(s: Source) -> usize {
    SOURCES.iter().position(|x| *x == s).unwrap_or(0)
}

impl Metrics {
    pub fn record(&self, source: Source, outcome: &Outcome) {
        let c = &self.0;
        let counter = match outcome {
            Outcome::Credited => &c.credited[source_index(source)],
            Outcome::Rejected(_) => &c.rejected[source_index(source)],
            Outcome::AlreadyCredited | Outcome::AlreadyRejected => &c.duplicates,
            // Counted when quarantined.
            Outcome::Conflicting(_) => return,
            Outcome::Failed(_) => &c.failures,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn quarantined(&self, code: Code) {
        let i = CODES.iter().position(|x| *x == code).unwrap_or(0);
        self.0.quarantined[i].fetch_add(1, Ordering::Relaxed);
    }

    pub fn dead_lettered(&self) {
        self.0.dead_letters.fetch_add(1, Ordering::Relaxed);
    }

    pub fn render(&self) -> String {
        let c = &self.0;
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let mut out = String::new();
        let mut family = |name: &str, help: &str, rows: Vec<(String, u64)>| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            for (labels, v) in rows {
                let _ = writeln!(out, "{name}{labels} {v}");
            }
        };
        let by_source = |a: &[AtomicU64; 4]| -> Vec<(String, u64)> {
            SOURCES.iter().zip(a).map(|(s, v)| (format!("{{source=\"{}\"}}", s.as_str()), g(v))).collect()
        };
        family("bank2_credits_total", "Transfers credited, by how they arrived.", by_source(&c.credited));
        family(
            "bank2_rejections_total",
            "Transfers rejected for good (funds returned to bank1), by how they arrived.",
            by_source(&c.rejected),
        );
        family(
            "bank2_duplicate_deliveries_total",
            "Deliveries of transfers already applied (acked, no effect).",
            vec![(String::new(), g(&c.duplicates))],
        );
        family(
            "bank2_credit_failures_total",
            "Failed credit attempts (each asks for redelivery or is parked).",
            vec![(String::new(), g(&c.failures))],
        );
        family(
            "bank2_dead_letters_total",
            "Deliveries that failed their last retry (the broker moves them to the DLQ).",
            vec![(String::new(), g(&c.dead_letters))],
        );
        family(
            "bank2_quarantined_total",
            "Messages quarantined (never applied), by reason.",
            CODES.iter().zip(&c.quarantined).map(|(k, v)| (format!("{{reason=\"{}\"}}", k.as_str()), g(v))).collect(),
        );
        out
    }
}
