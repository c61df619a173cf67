//! The reconciler (DESIGN flow 4, "定期校对"): reads bank1's feed of committed transfers from
//! a cursor kept in bank2's database and credits — through the one credit path, with the same
//! fault checks — every transfer the messages did not deliver, once it is older than the
//! grace period (younger ones are left to the message path). Restart-safe: the cursor only
//! moves past transfers that are credited (now or before).

use std::time::Duration;

use serde::Serialize;

use crate::credit::{self, CreditOutcome, Source};
use crate::{store, AppState};

/// The cursor's name in `reconcile_cursor`.
pub const CURSOR: &str = "bank1_feed";
const PAGE: u32 = 200;

#[derive(Debug, Default, Clone, Serialize)]
pub struct Report {
    pub cursor_before: i64,
    pub cursor_after: i64,
    /// Feed entries examined.
    pub scanned: usize,
    /// Credited by this run (the messages had not delivered them).
    pub credited: Vec<String>,
    /// Already credited (by the consumer, an earlier run or a redrive).
    pub already_credited: usize,
    /// Left for a later run because younger than the grace period.
    pub too_young: usize,
    /// The entry the run stopped at, and why (it is retried next run).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopped_at: Option<Stop>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Stop {
    pub tx_no: String,
    pub error: String,
}

/// One reconciliation pass. Runs are serialized by the state's lock.
pub async fn run_once(state: &AppState, grace: Duration) -> Result<Report, String> {
    let _only_one = state.reconcile_lock.lock().await;
    let pool = &state.db.pool;
    let mut cursor = store::cursor(pool, CURSOR).await.map_err(|e| format!("reading the cursor: {e}"))?;
    let mut report = Report { cursor_before: cursor, ..Report::default() };
    let grace_ms = i64::try_from(grace.as_millis()).unwrap_or(i64::MAX);
    'pages: loop {
        let page = state.bank1.feed(cursor, PAGE).await?;
        let full = page.items.len() == PAGE as usize;
        for item in &page.items {
            report.scanned += 1;
            if common::now_ms().saturating_sub(item.created_at_ms) < grace_ms {
                report.too_young += 1;
                break 'pages;
            }
            let Some(pos) = item.feed_pos else { return Err(format!("feed entry {} has no position", item.tx_no)) };
            let msg = match item.to_message() {
                Ok(m) => m,
                Err(e) => {
                    report.stopped_at =
                        Some(Stop { tx_no: item.tx_no.clone(), error: format!("unusable feed entry: {e}") });
                    break 'pages;
                }
            };
            let outcome = credit::apply(pool, state.faults.get(), &msg, Source::Reconcile).await;
            state.metrics.record(Source::Reconcile, &outcome);
            match outcome {
                CreditOutcome::Credited => {
                    tracing::info!(tx_no = %msg.tx_no, amount = %msg.amount, "reconciled: credited a transfer the messages missed");
                    report.credited.push(msg.tx_no.to_string());
                }
                CreditOutcome::AlreadyCredited => report.already_credited += 1,
                CreditOutcome::Failed(error) => {
                    tracing::warn!(tx_no = %msg.tx_no, %error, "reconcile could not credit; will retry");
                    report.stopped_at = Some(Stop { tx_no: msg.tx_no.to_string(), error });
                    break 'pages;
                }
            }
            cursor = pos;
        }
        store::set_cursor(pool, CURSOR, cursor).await.map_err(|e| format!("saving the cursor: {e}"))?;
        if !full {
            break;
        }
    }
    store::set_cursor(pool, CURSOR, cursor).await.map_err(|e| format!("saving the cursor: {e}"))?;
    report.cursor_after = cursor;
    Ok(report)
}

/// Runs [`run_once`] every `interval` until `stop` resolves.
pub async fn run_periodically(
    state: AppState,
    interval: Duration,
    grace: Duration,
    stop: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(stop);
    if interval.is_zero() {
        return stop.await;
    }
    loop {
        tokio::select! {
            () = &mut stop => return,
            () = tokio::time::sleep(interval) => {},
        }
        match run_once(&state, grace).await {
            Ok(r) if !r.credited.is_empty() || r.stopped_at.is_some() => tracing::info!(report = ?r, "reconcile run"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "reconcile run failed"),
        }
    }
}
