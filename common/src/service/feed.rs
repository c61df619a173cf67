//! A bank's feed for the other bank's reconciler: rows in a stable order with a cursor that
//! never skips one. bank1 serves its committed transfers, bank2 its rejections.
//!
//! Why not order by an id taken at insert: it is taken before the row's transaction commits,
//! so a reader can see id 11 committed while 10 is still in flight; a cursor moved past 11
//! would skip 10 for ever. Instead a *sequencer* gives rows a `feed_pos` after they commit, in
//! one transaction that first locks the `feed_sequencer` row: positions are handed out one
//! batch at a time, and a batch becomes visible atomically, so a reader that sees position p
//! sees every position below p. The writers' hot path takes no extra lock; the feed trails
//! commits by at most one sequencer run, and runs start at least [`COALESCE`] apart.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use sqlx::{Any, AnyPool};

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use crate::service::app::Service;
use crate::service::error::{AppQuery, Code, Error, Result};
use tokio::sync::Notify;

/// One entry of bank2's rejection feed (`GET /api/rejections`), as served and as bank1's refund
/// reconciler reads it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RejectionEntry {
    pub tx_no: String,
    pub from_account: String,
    pub to_account: String,
    pub amount: String,
    pub reason: String,
    pub rejected_at_ms: i64,
    pub feed_pos: i64,
}

pub use crate::domain::page::Page;

/// Rows sequenced per sequencer transaction.
const BATCH: i64 = 500;
/// The shortest time between two sequencer runs: the most the feed trails a commit under load
/// (plus one run).
pub const COALESCE: Duration = Duration::from_millis(50);

/// Which rows of which table a sequencer numbers. The table has a nullable, unique
/// `feed_pos` column and the database a one-row `feed_sequencer (id = 1, last_pos)`.
#[derive(Debug, Clone, Copy)]
pub struct FeedTable {
    pub table: &'static str,
    /// The primary key column.
    pub key: &'static str,
    /// Which rows belong in the feed, as a WHERE condition (no user input).
    pub ready: &'static str,
    /// The order positions are given in (oldest first).
    pub order: &'static str,
    /// The columns a feed page reads (no user input).
    pub columns: &'static str,
}

impl FeedTable {
    /// The rows with `feed_pos > after`, in feed order, at most `limit`.
    pub async fn page<T>(&self, pool: &AnyPool, after: i64, limit: i64) -> sqlx::Result<Vec<T>>
    where
        T: for<'r> sqlx::FromRow<'r, sqlx::any::AnyRow> + Send + Unpin,
    {
        let sql = format!("SELECT {} FROM {} WHERE feed_pos > ? ORDER BY feed_pos LIMIT ?", self.columns, self.table);
        sqlx::query_as::<_, T>(&sql).bind(after).bind(limit).fetch_all(pool).await
    }

    /// Gives feed positions to ready, unsequenced rows. Returns how many it sequenced. Safe to
    /// run from several instances: the first statement locks the sequencer row, so they take
    /// turns.
    pub async fn sequence_once<K>(&self, pool: &AnyPool) -> sqlx::Result<usize>
    where
        K: for<'r> sqlx::Decode<'r, Any> + for<'q> sqlx::Encode<'q, Any> + sqlx::Type<Any> + Send + Sync + Unpin,
    {
        let mut tx = pool.begin().await?;
        sqlx::query("UPDATE feed_sequencer SET last_pos = last_pos WHERE id = 1").execute(&mut *tx).await?;
        let (mut last,): (i64,) =
            sqlx::query_as("SELECT last_pos FROM feed_sequencer WHERE id = 1").fetch_one(&mut *tx).await?;
        let select = format!(
            "SELECT {key} FROM {table} WHERE {ready} AND feed_pos IS NULL ORDER BY {order} LIMIT ?",
            key = self.key,
            table = self.table,
            ready = self.ready,
            order = self.order
        );
        let keys: Vec<(K,)> = sqlx::query_as(&select).bind(BATCH).fetch_all(&mut *tx).await?;
        if keys.is_empty() {
            tx.rollback().await?;
            return Ok(0);
        }
        // One statement for the whole batch: CASE key WHEN k1 THEN p1 … END WHERE key IN (k1, …).
        let update = format!(
            "UPDATE {table} SET feed_pos = CASE {key} {whens} END WHERE {key} IN ({keys})",
            table = self.table,
            key = self.key,
            whens = vec!["WHEN ? THEN ?"; keys.len()].join(" "),
            keys = vec!["?"; keys.len()].join(", ")
        );
        let mut q = sqlx::query(&update);
        for (key,) in &keys {
            last += 1;
            q = q.bind(key).bind(last);
        }
        for (key,) in &keys {
            q = q.bind(key);
        }
        q.execute(&mut *tx).await?;
        sqlx::query("UPDATE feed_sequencer SET last_pos = ? WHERE id = 1").bind(last).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(keys.len())
    }

    /// Runs the sequencer until `stop` resolves: after the commits it is told of, and at least
    /// every 250 ms (rows committed by other instances, or missed notifications). Runs start
    /// at least [`COALESCE`] apart, so under load one transaction sequences the commits of a
    /// whole window instead of one each.
    pub async fn run<K>(self, pool: AnyPool, wake: Arc<Notify>, stop: impl Future<Output = ()>)
    where
        K: for<'r> sqlx::Decode<'r, Any> + for<'q> sqlx::Encode<'q, Any> + sqlx::Type<Any> + Send + Sync + Unpin,
    {
        tokio::pin!(stop);
        let mut last_run: Option<Instant> = None;
        loop {
            if let Some(wait) = last_run.and_then(|t| COALESCE.checked_sub(t.elapsed())) {
                tokio::select! {
                    () = &mut stop => return,
                    () = tokio::time::sleep(wait) => {},
                }
            }
            last_run = Some(Instant::now());
            loop {
                match self.sequence_once::<K>(&pool).await {
                    Ok(n) if n as i64 == BATCH => continue,
                    Ok(_) => break,
                    Err(e) => {
                        tracing::warn!(table = self.table, error = %e, "feed sequencer failed; retrying");
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
}

/// A feed request's `?after=<cursor>&limit=<n>`.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FeedQuery {
    /// The cursor of the previous page's `next` (0, or absent, for the start).
    #[param(value_type = Option<i64>, minimum = 0)]
    pub after: Option<String>,
    /// Entries per page (default 100).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 1000)]
    pub limit: Option<String>,
}

impl FeedQuery {
    /// Checked: `after` an integer ≥ 0 (default 0), `limit` 1–1000 (default 100).
    pub fn bounds(&self) -> Result<(i64, i64)> {
        let after = match self.after.as_deref() {
            None | Some("") => 0,
            Some(s) => s.parse::<i64>().ok().filter(|v| *v >= 0).ok_or_else(|| {
                Error::bad_request(Code::InvalidCursor, "after must be a cursor from a previous page (an integer >= 0)")
            })?,
        };
        let limit = match self.limit.as_deref() {
            None | Some("") => 100,
            Some(s) => s
                .parse::<i64>()
                .ok()
                .filter(|v| (1..=1000).contains(v))
                .ok_or_else(|| Error::bad_request(Code::InvalidLimit, "limit must be an integer from 1 to 1000"))?,
        };
        Ok((after, limit))
    }
}

/// A feed request that passed its checks: the feed token was presented, and `after` and
/// `limit` parse. An extractor: a feed handler takes it and reads its page.
#[derive(Debug, Clone, Copy)]
pub struct FeedRequest {
    pub after: i64,
    pub limit: i64,
}

impl<S: Service> FromRequestParts<S> for FeedRequest {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self> {
        state.shared().feed_guard.check(&parts.headers)?;
        let AppQuery(q) = AppQuery::<FeedQuery>::from_request_parts(parts, state).await?;
        let (after, limit) = q.bounds()?;
        Ok(Self { after, limit })
    }
}
