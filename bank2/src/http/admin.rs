//! `GET|PUT /admin/faults` (live fault injection), `GET|POST /admin/reconcile` (the
//! reconciler's cursor; run it now), `POST /admin/dlq/redrive`, and `GET /admin/consumer`,
//! `POST /admin/consumer/pause|resume` (stop and restart pulling; messages wait at the broker).

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use common::api_error::{ApiError, AppJson};
use serde_json::{json, Value};

use crate::error::{Error, Result};
use crate::{reconcile, redrive, store};

use crate::faults::{Faults, FaultsPatch};
use crate::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/admin/faults", get(get_faults).put(put_faults))
        .route("/admin/reconcile", get(reconcile_state).post(reconcile_now))
        .route("/admin/dlq/redrive", post(redrive_dlq))
        .route("/admin/consumer", get(consumer_state))
        .route("/admin/consumer/pause", post(pause))
        .route("/admin/consumer/resume", post(resume))
}

async fn get_faults(State(state): State<AppState>) -> AppJson<Faults> {
    AppJson(state.faults.get())
}

async fn put_faults(State(state): State<AppState>, AppJson(patch): AppJson<FaultsPatch>) -> AppJson<Faults> {
    let f = state.faults.update(|f| patch.apply_to(f));
    tracing::warn!(faults = ?f, "faults changed");
    AppJson(f)
}

async fn reconcile_state(State(state): State<AppState>) -> Result<Json<Value>> {
    let cursor = store::cursor(&state.db.pool, reconcile::CURSOR).await?;
    let s = &state.settings;
    Ok(Json(json!({
        "cursor": cursor.to_string(),
        "interval_ms": s.reconcile_interval.as_millis() as u64,
        "grace_ms": s.reconcile_grace.as_millis() as u64,
        "bank1_url": s.bank1_url,
    })))
}

#[derive(Debug, serde::Deserialize)]
struct ReconcileQuery {
    /// Overrides the grace period for this run, e.g. `grace=0s`.
    grace: Option<String>,
}

async fn reconcile_now(
    State(state): State<AppState>,
    Query(q): Query<ReconcileQuery>,
) -> Result<Json<reconcile::Report>> {
    let grace = match q.grace.as_deref() {
        None => state.settings.reconcile_grace,
        Some(g) => common::parse_duration(g).map_err(|e| ApiError::bad_request("invalid_grace", e))?,
    };
    reconcile::run_once(&state, grace).await.map(Json).map_err(Error::Unavailable)
}

async fn redrive_dlq(State(state): State<AppState>) -> Result<(StatusCode, Json<redrive::Report>)> {
    let report = redrive::redrive(&state).await.map_err(Error::Unavailable)?;
    tracing::warn!(scanned = report.scanned, credited = report.credited, "DLQ redrive");
    Ok((StatusCode::OK, Json(report)))
}

async fn consumer_state(State(state): State<AppState>) -> Json<Value> {
    Json(json!({ "paused": state.consumer.is_paused() }))
}

async fn pause(State(state): State<AppState>) -> Json<Value> {
    state.consumer.pause().await;
    tracing::warn!("consumption paused");
    Json(json!({ "paused": true }))
}

async fn resume(State(state): State<AppState>) -> Json<Value> {
    state.consumer.resume().await;
    tracing::warn!("consumption resumed");
    Json(json!({ "paused": false }))
}
