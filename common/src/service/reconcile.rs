//! Reconciliation ("定期校对"), for either direction: read the other bank's feed from a cursor
//! kept in our own database and apply every entry the messages did not deliver — bank2 credits
//! (or rejects) bank1's committed transfers, bank1 refunds bank2's rejections.
//!
//! It never stalls: an entry that cannot be applied *now* (a transient failure) is parked in
//! `reconcile_pending` with its own retry time and exponential backoff, and the cursor moves
//! on; entries that can *never* be applied are settled by the applier (rejected, quarantined)
//! and the cursor moves on too. Restart-safe: the cursor only moves past entries that are
//! applied, settled or parked, and parked entries are retried first on every run.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::Json;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sqlx::AnyPool;
use utoipa_axum::router::OpenApiRouter;

use crate::service::api::generic;
use crate::service::app::{Background, Service};
use crate::service::error::{AppQuery, Code, Error, ErrorBody, Result};

/// First retry delay of a parked entry; doubled per attempt up to [`MAX_BACKOFF`].
pub const FIRST_BACKOFF: Duration = Duration::from_secs(2);
pub const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// Feed entries read per page.
const PAGE: u32 = 200;

/// One entry of the other bank's feed.
#[derive(Debug, Clone)]
pub struct FeedEntry<T> {
    pub pos: i64,
    pub tx_no: String,
    /// When the entry was created at its source (for the grace period).
    pub created_at_ms: i64,
    pub item: T,
}

/// What applying one entry did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// Applied by this run; the label says how (`credited`, `rejected`, `refunded`).
    Now(&'static str),
    /// Applied before (by a message, an earlier run, an operator); the label names the count.
    Before(&'static str),
    /// Can never be applied; dealt with otherwise (e.g. quarantined). Label and why.
    Settled(&'static str, String),
    /// Not now: parked with backoff.
    Transient(String),
}

/// The labels of a reconciler's report: how an entry is applied now (lists of tx_no), and
/// how it was found applied before (counts).
#[derive(Debug, Clone, Copy)]
pub struct Labels {
    pub now: &'static [&'static str],
    pub before: &'static [&'static str],
}

/// A bank's side of reconciliation.
pub trait Reconciler: Send + Sync {
    type Item: Serialize + DeserializeOwned + Send + Sync;

    /// The cursor's name in `reconcile_cursor`.
    const CURSOR: &'static str;
    /// Report keys that are always present.
    const LABELS: Labels;

    fn page(&self, after: i64, limit: u32) -> impl Future<Output = Result<Vec<FeedEntry<Self::Item>>>> + Send;
    fn apply(&self, item: &Self::Item) -> impl Future<Output = Applied> + Send;
}

/// A parked entry as the report shows it.
#[derive(Debug, Clone, Serialize, Deserialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Pending {
    pub tx_no: String,
    pub error: String,
    pub attempts: i64,
    pub next_attempt_at_ms: i64,
    pub first_failed_at_ms: i64,
}

/// An entry settled without being applied.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SettledEntry {
    pub tx_no: String,
    pub outcome: &'static str,
    pub detail: String,
}

/// What one run did. Besides the fields listed, it has one field per way of applying: a list
/// of the tx_nos applied by this run (bank2: `credited`, `rejected`; bank1: `refunded`), and a
/// count of those found applied before (`already_credited`, …).
#[derive(Debug, Default, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = ReconcileReport)]
pub struct Report {
    pub cursor_before: i64,
    pub cursor_after: i64,
    /// Feed entries examined.
    pub scanned: usize,
    /// Left for a later run because younger than the grace period.
    pub too_young: usize,
    /// Parked entries retried by this run (before reading the feed).
    pub retried: usize,
    /// Applied by this run, by how: `{"credited": [tx_no…], …}`.
    #[serde(flatten)]
    #[schema(ignore)]
    pub now: BTreeMap<&'static str, Vec<String>>,
    /// Found applied already, by label: `{"already_credited": n, …}`.
    #[serde(flatten)]
    #[schema(ignore)]
    pub before: BTreeMap<&'static str, usize>,
    pub settled: Vec<SettledEntry>,
    /// Entries parked after this run (all of them, not only this run's), with why.
    pub pending: Vec<Pending>,
}

impl Report {
    fn record(&mut self, tx_no: &str, applied: &Applied) {
        match applied {
            Applied::Now(label) => self.now.entry(label).or_default().push(tx_no.to_owned()),
            Applied::Before(label) => *self.before.entry(label).or_default() += 1,
            Applied::Settled(outcome, detail) => {
                self.settled.push(SettledEntry { tx_no: tx_no.to_owned(), outcome, detail: detail.clone() })
            }
            Applied::Transient(_) => {}
        }
    }
}

/// One pass: retry due parked entries, then read the feed from the cursor. Callers serialize
/// runs (one at a time per bank).
pub async fn run_once<R: Reconciler>(r: &R, pool: &AnyPool, grace: Duration) -> Result<Report> {
    let mut cursor = cursor(pool, R::CURSOR).await?;
    let mut report = Report { cursor_before: cursor, ..Report::default() };
    for label in R::LABELS.now {
        report.now.insert(label, Vec::new());
    }
    for label in R::LABELS.before {
        report.before.insert(label, 0);
    }

    for (tx_no, item) in due(pool, crate::now_ms()).await? {
        report.retried += 1;
        let applied = match serde_json::from_str::<R::Item>(&item) {
            Ok(item) => r.apply(&item).await,
            Err(e) => Applied::Settled("unreadable", format!("parked entry does not parse: {e}")),
        };
        report.record(&tx_no, &applied);
        match applied {
            Applied::Transient(error) => park(pool, &tx_no, &item, &error).await?,
            _ => unpark(pool, &tx_no).await?,
        }
    }

    let grace_ms = millis(grace);
    'pages: loop {
        let page = r.page(cursor, PAGE).await?;
        let full = page.len() == PAGE as usize;
        for entry in &page {
            report.scanned += 1;
            if crate::now_ms().saturating_sub(entry.created_at_ms) < grace_ms {
                report.too_young += 1;
                break 'pages;
            }
            let applied = r.apply(&entry.item).await;
            report.record(&entry.tx_no, &applied);
            if let Applied::Transient(error) = &applied {
                tracing::warn!(tx_no = %entry.tx_no, %error, "reconcile: not applicable now; parked for a retry");
                let item = serde_json::to_string(&entry.item).map_err(anyhow::Error::from)?;
                park(pool, &entry.tx_no, &item, error).await?;
            }
            cursor = entry.pos;
        }
        set_cursor(pool, R::CURSOR, cursor).await?;
        if !full {
            break;
        }
    }
    set_cursor(pool, R::CURSOR, cursor).await?;
    report.cursor_after = cursor;
    report.pending = pending(pool).await?;
    Ok(report)
}

/// How a bank reconciles.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = ReconcileSettings)]
pub struct Settings {
    #[serde(skip)]
    pub cursor: &'static str,
    /// Between two runs of its own (0: only when asked).
    #[serde(serialize_with = "as_millis", rename = "interval_ms")]
    #[schema(value_type = u64)]
    pub interval: Duration,
    /// Entries younger than this are left for a later run (the messages may still deliver).
    #[serde(serialize_with = "as_millis", rename = "grace_ms")]
    #[schema(value_type = u64)]
    pub grace: Duration,
    /// The feed's bank.
    pub peer_url: String,
}

fn as_millis<S: serde::Serializer>(d: &Duration, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Serializes a bank's runs (periodic and on demand), so two never read the same page, and
/// remembers when one last read the feed up to its grace window.
#[derive(Debug, Clone)]
pub struct Runs {
    one_at_a_time: Arc<tokio::sync::Mutex<()>>,
    /// When the last run that succeeded began (ms); the start of the process before any.
    caught_up_ms: Arc<AtomicI64>,
}

impl Default for Runs {
    fn default() -> Self {
        Self { one_at_a_time: Arc::default(), caught_up_ms: Arc::new(AtomicI64::new(crate::now_ms())) }
    }
}

impl Runs {
    /// Runs one pass of `r` alone.
    pub async fn once<R: Reconciler>(&self, r: &R, pool: &AnyPool, grace: Duration) -> Result<Report> {
        let _only_one = self.one_at_a_time.lock().await;
        let began = crate::now_ms();
        let report = run_once(r, pool, grace).await?;
        self.caught_up_ms.fetch_max(began, Ordering::Relaxed);
        Ok(report)
    }

    /// How long since a run last read the other bank's feed up to its grace window.
    pub fn lag(&self) -> Duration {
        let since = crate::now_ms().saturating_sub(self.caught_up_ms.load(Ordering::Relaxed));
        Duration::from_millis(u64::try_from(since).unwrap_or(0))
    }
}

/// How many entries are parked for a retry.
pub async fn pending_count(pool: &AnyPool) -> sqlx::Result<i64> {
    let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM reconcile_pending").fetch_one(pool).await?;
    Ok(n)
}

/// `GET /admin/reconcile` (cursor, settings, parked entries) and `POST /admin/reconcile` (run
/// now; `?grace=0s` overrides the grace period).
pub fn routes<S: Service>() -> OpenApiRouter<S> {
    OpenApiRouter::new()
        .routes(generic::<__path_view, _, _, _>(view::<S>))
        .routes(generic::<__path_run_now, _, _, _>(run_now::<S>))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = ReconcileView)]
struct View {
    /// The last position of the other bank's feed this bank has applied, settled or parked.
    cursor: String,
    #[serde(flatten)]
    settings: Settings,
    pending: Vec<Pending>,
}

/// The reconciler's cursor, settings and parked entries.
#[utoipa::path(get, path = "/admin/reconcile", tag = "reconciliation", security(("admin_token" = [])),
    responses((status = 200, description = "Cursor, settings and parked entries", body = View)))]
async fn view<S: Service>(State(state): State<S>) -> Result<Json<View>> {
    let shared = state.shared();
    let settings = shared.reconcile.clone();
    let cursor = cursor(&shared.db.pool, settings.cursor).await?;
    let pending = pending(&shared.db.pool).await?;
    Ok(Json(View { cursor: cursor.to_string(), settings, pending }))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct RunQuery {
    /// Overrides the grace period for this run (`0s`, `30s`, `2m`).
    #[param(pattern = "^[0-9]+(ms|s|m|h)?$", example = "0s")]
    grace: Option<String>,
}

/// Runs one reconciliation pass now, and reports what it did.
#[utoipa::path(post, path = "/admin/reconcile", tag = "reconciliation", security(("admin_token" = [])),
    params(RunQuery),
    responses(
        (status = 200, description = "What the run did", body = Report),
        (status = 400, description = "`grace` is not a duration (`invalid_grace`)", body = ErrorBody),
    ))]
async fn run_now<S: Service>(State(state): State<S>, AppQuery(q): AppQuery<RunQuery>) -> Result<Json<Report>> {
    let grace = match q.grace.as_deref() {
        None => state.shared().reconcile.grace,
        Some(g) => crate::infra::clock::parse_duration(g).map_err(|e| Error::bad_request(Code::InvalidGrace, e))?,
    };
    state.reconcile(grace).await.map(Json)
}

/// Runs `state`'s reconciliation every interval (0: never on its own) on `bg`.
pub fn spawn_periodic<S: Service>(state: &S, bg: &mut Background) {
    let settings = state.shared().reconcile.clone();
    if settings.interval.is_zero() {
        return;
    }
    let (state, grace) = (state.clone(), settings.grace);
    bg.every(settings.interval, move || {
        let state = state.clone();
        async move {
            match state.reconcile(grace).await {
                Ok(r) if r.now.values().any(|v| !v.is_empty()) || !r.settled.is_empty() || !r.pending.is_empty() => {
                    tracing::info!(report = ?r, "reconcile run")
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "reconcile run failed"),
            }
        }
    });
}

/// The cursor (0 before the first run).
pub async fn cursor(pool: &AnyPool, name: &str) -> sqlx::Result<i64> {
    let row: Option<(i64,)> =
        sqlx::query_as("SELECT position FROM reconcile_cursor WHERE name = ?").bind(name).fetch_optional(pool).await?;
    Ok(row.map_or(0, |r| r.0))
}

/// Stores the cursor (insert on first use, then update).
async fn set_cursor(pool: &AnyPool, name: &str, position: i64) -> sqlx::Result<()> {
    let now = crate::now_ms();
    let r = sqlx::query("UPDATE reconcile_cursor SET position = ?, updated_at = ? WHERE name = ?")
        .bind(position)
        .bind(now)
        .bind(name)
        .execute(pool)
        .await?;
    if r.rows_affected() == 0 {
        sqlx::query("INSERT INTO reconcile_cursor (name, position, updated_at) VALUES (?, ?, ?)")
            .bind(name)
            .bind(position)
            .bind(now)
            .execute(pool)
            .await?;
    }
    Ok(())
}

/// The retry delay after `attempts` failures.
pub fn backoff(attempts: i64) -> Duration {
    let doublings = u32::try_from(attempts.saturating_sub(1).clamp(0, 16)).unwrap_or(16);
    FIRST_BACKOFF.saturating_mul(1 << doublings).min(MAX_BACKOFF)
}

/// Parks (or re-parks) an entry: one more attempt, the next one after the backoff.
async fn park(pool: &AnyPool, tx_no: &str, item: &str, error: &str) -> sqlx::Result<()> {
    let now = crate::now_ms();
    let error: String = error.chars().take(1000).collect();
    let before: Option<(i64,)> = sqlx::query_as("SELECT attempts FROM reconcile_pending WHERE tx_no = ?")
        .bind(tx_no)
        .fetch_optional(pool)
        .await?;
    match before {
        None => {
            let next = now + millis(backoff(1));
            sqlx::query(
                "INSERT INTO reconcile_pending (tx_no, item, error, attempts, next_attempt_at, first_failed_at) \
                 VALUES (?, ?, ?, 1, ?, ?)",
            )
            .bind(tx_no)
            .bind(item)
            .bind(&error)
            .bind(next)
            .bind(now)
            .execute(pool)
            .await?;
        }
        Some((n,)) => {
            sqlx::query("UPDATE reconcile_pending SET error = ?, attempts = ?, next_attempt_at = ? WHERE tx_no = ?")
                .bind(&error)
                .bind(n + 1)
                .bind(now + millis(backoff(n + 1)))
                .bind(tx_no)
                .execute(pool)
                .await?;
        }
    }
    Ok(())
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

async fn unpark(pool: &AnyPool, tx_no: &str) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM reconcile_pending WHERE tx_no = ?").bind(tx_no).execute(pool).await.map(|_| ())
}

/// Parked entries due for a retry at `now`: (tx_no, item JSON).
async fn due(pool: &AnyPool, now: i64) -> sqlx::Result<Vec<(String, String)>> {
    sqlx::query_as("SELECT tx_no, item FROM reconcile_pending WHERE next_attempt_at <= ? ORDER BY first_failed_at")
        .bind(now)
        .fetch_all(pool)
        .await
}

/// Every parked entry, oldest first.
pub async fn pending(pool: &AnyPool) -> sqlx::Result<Vec<Pending>> {
    sqlx::query_as(
        "SELECT tx_no, error, attempts, next_attempt_at AS next_attempt_at_ms, first_failed_at AS first_failed_at_ms \
         FROM reconcile_pending ORDER BY first_failed_at",
    )
    .fetch_all(pool)
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_a_cap() {
        assert_eq!(backoff(1), Duration::from_secs(2));
        assert_eq!(backoff(2), Duration::from_secs(4));
        assert_eq!(backoff(4), Duration::from_secs(16));
        assert_eq!(backoff(50), MAX_BACKOFF);
        assert_eq!(backoff(0), Duration::from_secs(2));
    }
}
