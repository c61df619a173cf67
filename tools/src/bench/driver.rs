//! The load: `POST /api/transfers` on bank1 from `concurrency` workers, optionally paced to
//! an offered rate, each reply timed.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::ProgressBar;
use serde::Deserialize;

/// When request `i` (0-based) is due, counted from the start of a run offered at `rate`
/// requests per second: an open schedule, so a slow reply delays no later slot (only the
/// concurrency cap can).
pub fn due_at(i: usize, rate: f64) -> Duration {
    Duration::from_secs_f64(i as f64 / rate)
}

/// A request that starts this much after its slot counts as "behind schedule".
pub const LATE_AFTER: Duration = Duration::from_millis(10);

/// What to send.
#[derive(Debug, Clone)]
pub struct Load {
    pub n: usize,
    pub concurrency: usize,
    pub rate: Option<f64>,
    /// (from, to) account pairs; request `i` uses pair `(first_pair + i) % len`.
    pub pairs: Arc<Vec<(String, String)>>,
    pub first_pair: usize,
    pub amount: String,
}

/// What came back.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Wall clock (ms since the epoch) just before the first request.
    pub started_ms: i64,
    /// First request → last reply.
    pub elapsed: Duration,
    /// Reply latency of every answered request, ms.
    pub api_ms: Vec<f64>,
    /// tx_no of every reply that said COMMITTED.
    pub committed: Vec<String>,
    /// 4xx, or a 201 that was not COMMITTED (ROLLED_BACK / UNKNOWN).
    pub refused: usize,
    /// No reply, or 5xx.
    pub errors: usize,
    pub error_samples: Vec<String>,
    pub behind_schedule: usize,
}

#[derive(Deserialize)]
struct Reply {
    tx_no: Option<String>,
    status: Option<String>,
}

/// Runs the load to completion (every request answered or failed).
pub async fn drive(http: &reqwest::Client, bank1_url: &str, load: &Load, bar: &ProgressBar) -> Outcome {
    let url: Arc<str> = format!("{}/api/transfers", bank1_url.trim_end_matches('/')).into();
    let next = Arc::new(AtomicUsize::new(0));
    let started_ms = common::now_ms();
    let start = tokio::time::Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..load.concurrency.max(1) {
        let (http, url, next, load, bar) =
            (http.clone(), Arc::clone(&url), Arc::clone(&next), load.clone(), bar.clone());
        workers.spawn(async move {
            let mut out = Outcome::default();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= load.n {
                    break;
                }
                if let Some(rate) = load.rate {
                    let due = start + due_at(i, rate);
                    tokio::time::sleep_until(due).await;
                    if tokio::time::Instant::now().saturating_duration_since(due) > LATE_AFTER {
                        out.behind_schedule += 1;
                    }
                }
                let (from, to) = &load.pairs[(load.first_pair + i) % load.pairs.len()];
                let body = serde_json::json!({"from_account": from, "to_account": to, "amount": load.amount});
                let t0 = Instant::now();
                let sent = http.post(&*url).json(&body).send().await;
                let result = match sent {
                    Ok(r) => {
                        let status = r.status();
                        r.bytes().await.map(|b| (status, b))
                    }
                    Err(e) => Err(e),
                };
                let took = t0.elapsed().as_secs_f64() * 1000.0;
                match result {
                    Ok((status, bytes)) if status.is_success() => {
                        out.api_ms.push(took);
                        match serde_json::from_slice::<Reply>(&bytes) {
                            Ok(Reply { tx_no: Some(tx), status: Some(s) }) if s == "COMMITTED" => {
                                out.committed.push(tx)
                            }
                            _ => {
                                out.refused += 1;
                                sample(
                                    &mut out.error_samples,
                                    format!("{status}: {}", String::from_utf8_lossy(&bytes)),
                                );
                            }
                        }
                    }
                    Ok((status, bytes)) if status.is_client_error() => {
                        out.api_ms.push(took);
                        out.refused += 1;
                        sample(&mut out.error_samples, format!("{status}: {}", String::from_utf8_lossy(&bytes)));
                    }
                    Ok((status, bytes)) => {
                        out.errors += 1;
                        sample(&mut out.error_samples, format!("{status}: {}", String::from_utf8_lossy(&bytes)));
                    }
                    Err(e) => {
                        out.errors += 1;
                        sample(&mut out.error_samples, format!("request failed: {e}"));
                    }
                }
                bar.inc(1);
            }
            out
        });
    }
    let mut all = Outcome { started_ms, ..Outcome::default() };
    while let Some(w) = workers.join_next().await {
        let Ok(w) = w else { continue };
        all.api_ms.extend(w.api_ms);
        all.committed.extend(w.committed);
        all.refused += w.refused;
        all.errors += w.errors;
        all.behind_schedule += w.behind_schedule;
        for s in w.error_samples {
            sample(&mut all.error_samples, s);
        }
    }
    all.elapsed = start.elapsed();
    all
}

fn sample(samples: &mut Vec<String>, s: String) {
    if samples.len() < 5 {
        samples.push(s.chars().take(300).collect());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pacing_spreads_requests_evenly() {
        assert_eq!(due_at(0, 300.0), Duration::ZERO);
        assert_eq!(due_at(300, 300.0), Duration::from_secs(1));
        assert_eq!(due_at(1, 4.0), Duration::from_millis(250));
        // 1000 requests at 250/s take 4 s to offer, evenly spaced and never going back.
        let slots: Vec<Duration> = (0..1000).map(|i| due_at(i, 250.0)).collect();
        assert!(slots.windows(2).all(|w| w[1] > w[0]));
        let gap = due_at(1, 250.0);
        assert!(slots.windows(2).all(|w| (w[1] - w[0]).abs_diff(gap) < Duration::from_micros(1)));
        assert!((due_at(999, 250.0).as_secs_f64() - 3.996).abs() < 1e-9);
    }
}
