//! bank2's own operator endpoints (behind `Authorization: Bearer $BANK2_ADMIN_TOKEN`, like the
//! shared `/admin/faults` and `/admin/reconcile`): `POST /admin/dlq/redrive`,
//! `POST /admin/dlq/refund` (return a dead letter's funds), and `GET /admin/consumer`,
//! `POST /admin/consumer/pause|resume` (stop and restart pulling; messages wait at the broker).

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use common::domain::ids::TxNo;
use common::service::error::{AppJson, Result};
use serde::Serialize;

use crate::redrive;
use crate::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/admin/dlq/redrive", post(redrive_dlq))
        .route("/admin/dlq/refund", post(refund_dead_letter))
        .route("/admin/consumer", get(consumer_state))
        .route("/admin/consumer/pause", post(pause))
        .route("/admin/consumer/resume", post(resume))
}

async fn redrive_dlq(State(state): State<AppState>) -> Result<Json<redrive::Report>> {
    let report = redrive::redrive(&state).await?;
    tracing::warn!(scanned = report.scanned, credited = report.credited, complete = report.complete, "DLQ redrive");
    Ok(Json(report))
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RefundRequest {
    tx_no: TxNo,
}

async fn refund_dead_letter(
    State(state): State<AppState>,
    AppJson(req): AppJson<RefundRequest>,
) -> Result<Json<redrive::RefundReport>> {
    redrive::refund(&state, &req.tx_no).await.map(Json)
}

#[derive(Debug, Serialize)]
struct Consumer {
    paused: bool,
}

async fn consumer_state(State(state): State<AppState>) -> Json<Consumer> {
    Json(Consumer { paused: state.consumer.is_paused() })
}

async fn pause(State(state): State<AppState>) -> Json<Consumer> {
    state.consumer.pause().await;
    tracing::warn!("consumption paused");
    Json(Consumer { paused: true })
}

async fn resume(State(state): State<AppState>) -> Json<Consumer> {
    state.consumer.resume().await;
    tracing::warn!("consumption resumed");
    Json(Consumer { paused: false })
}
