//! The reconciliation feed (DESIGN flow 4): committed transfers in a stable order with a
//! cursor that never skips one.
//!
//! Why not order by `seq`: `seq` is taken when the row is inserted, before its transaction
//! commits, so a reader can see seq 11 committed while seq 10 is still in flight; a cursor
//! moved past 11 would skip 10 for ever. Instead a *sequencer* gives committed rows a
//! `feed_pos` after they commit, in one transaction that first locks the `feed_sequencer`
//! row: positions are handed out one batch at a time, and a batch becomes visible atomically,
//! so a reader that sees position p sees every position below p. The transfer's hot path
//! takes no extra lock; the feed trails commits by at most one sequencer tick.

use std::sync::Arc;
use std::time::Duration;

use sqlx::AnyPool;
use tokio::sync::Notify;

use crate::store::{TransferRow, COMMITTED, TRANSFER_COLUMNS};

/// Rows sequenced per sequencer transaction.
const BATCH: i64 = 500;

/// Gives feed positions to committed, unsequenced transfers (oldest `seq` first). Returns
/// how many it sequenced. Safe to run from several bank1 instances: the first statement
/// locks the sequencer row, so they take turns.
pub async fn sequence_once(pool: &AnyPool) -> sqlx::Result<usize> {
    let mut tx = pool.begin().await?;
    sqlx::query("UPDATE feed_sequencer SET last_pos = last_pos WHERE id = 1").execute(&mut *tx).await?;
    let (mut last,): (i64,) =
        sqlx::query_as("SELECT last_pos FROM feed_sequencer WHERE id = 1").fetch_one(&mut *tx).await?;
    let seqs: Vec<(i64,)> =
        sqlx::query_as("SELECT seq FROM transfer WHERE status = ? AND feed_pos IS NULL ORDER BY seq LIMIT ?")
            .bind(COMMITTED)
            .bind(BATCH)
            .fetch_all(&mut *tx)
            .await?;
    if seqs.is_empty() {
        tx.rollback().await?;
        return Ok(0);
    }
    for (seq,) in &seqs {
        last += 1;
        sqlx::query("UPDATE transfer SET feed_pos = ? WHERE seq = ?").bind(last).bind(seq).execute(&mut *tx).await?;
    }
    sqlx::query("UPDATE feed_sequencer SET last_pos = ? WHERE id = 1").bind(last).execute(&mut *tx).await?;
    tx.commit().await?;
    Ok(seqs.len())
}

/// Runs the sequencer until `stop` resolves: after every commit it is told of, and at least
/// every 250 ms (rows committed by other instances, or missed notifications).
pub async fn run_sequencer(pool: AnyPool, wake: Arc<Notify>, stop: impl std::future::Future<Output = ()>) {
    tokio::pin!(stop);
    loop {
        loop {
            match sequence_once(&pool).await {
                Ok(n) if n as i64 == BATCH => continue,
                Ok(_) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "feed sequencer failed; retrying");
                    break;
                }
            }
        }
        tokio::select! {
            () = &mut stop => return,
            () = wake.notified() => {},
            () = tokio::time::sleep(Duration::from_millis(250)) => {},
        }
    }
}

/// Committed transfers with `feed_pos > after`, in feed order.
pub async fn page(pool: &AnyPool, after: i64, limit: i64) -> sqlx::Result<Vec<TransferRow>> {
    sqlx::query_as::<_, TransferRow>(&format!(
        "SELECT {TRANSFER_COLUMNS} FROM transfer WHERE feed_pos > ? ORDER BY feed_pos LIMIT ?"
    ))
    .bind(after)
    .bind(limit)
    .fetch_all(pool)
    .await
}
