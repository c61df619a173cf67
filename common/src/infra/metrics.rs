//! A bank's metrics, rendered in Prometheus' text format at `GET /metrics`, with the
//! [`metrics`] facade and [`metrics_exporter_prometheus`].
//!
//! Each bank records into a recorder of its own, never the process-wide one: the tests, the
//! bench and `cargo run` start both banks (sometimes several stacks) in one process, and each
//! `/metrics` must count only its own bank. Code records through [`Metrics::record`], which
//! makes the bank's recorder the current one while its closure runs, so the `metrics` macros
//! inside it (`counter!`, `gauge!`, `histogram!`) land there.

use std::sync::Arc;
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusRecorder};

/// Upper bounds of every `*_seconds` histogram: 1 ms to 2 h (the top of the retry ladder).
const SECONDS_BUCKETS: [f64; 18] =
    [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0, 7200.0];

/// How often histogram samples are folded into their buckets when nobody scrapes.
pub const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// One bank's recorder; cheap to clone.
#[derive(Clone)]
pub struct Metrics(Arc<PrometheusRecorder>);

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &SECONDS_BUCKETS)
            .unwrap_or_else(|_| unreachable!("the bucket list is not empty"))
            .build_recorder();
        Self(Arc::new(recorder))
    }
}

impl Metrics {
    /// Runs `f` with this bank's recorder as the current one (on this thread, for `f` only).
    pub fn record<T>(&self, f: impl FnOnce() -> T) -> T {
        metrics::with_local_recorder(&*self.0, f)
    }

    /// Everything recorded so far, in Prometheus' text format.
    pub fn render(&self) -> String {
        self.0.handle().render()
    }

    /// Folds pending histogram samples into their buckets, so they do not pile up between
    /// scrapes (run every [`UPKEEP_EVERY`]).
    pub fn upkeep(&self) {
        self.0.handle().run_upkeep();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_recorder_counts_only_its_own() {
        let (a, b) = (Metrics::default(), Metrics::default());
        a.record(|| metrics::counter!("demo_total", "k" => "v").increment(2));
        b.record(|| metrics::histogram!("demo_seconds").record(0.003));
        let (a, b) = (a.render(), b.render());
        assert!(a.contains("demo_total{k=\"v\"} 2"), "{a}");
        assert!(!a.contains("demo_seconds"), "{a}");
        assert!(b.contains("demo_seconds_bucket{le=\"0.005\"} 1"), "{b}");
        assert!(b.contains("demo_seconds_count 1"), "{b}");
    }
}
