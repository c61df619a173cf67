//! Waiting without fixed sleeps: poll a condition until it holds or a deadline passes.

use std::future::Future;
use std::time::Duration;

/// Polls `f` every 100 ms until it yields `Some`, or fails after `within`.
pub async fn poll<T, F, Fut>(what: &str, within: Duration, mut f: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(v) = f().await {
            return Ok(v);
        }
        anyhow::ensure!(tokio::time::Instant::now() < deadline, "timed out after {within:?} waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
