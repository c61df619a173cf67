//! bank2's own operator endpoints (behind `Authorization: Bearer $BANK2_ADMIN_TOKEN`, like the
//! shared `/admin/faults` and `/admin/reconcile`): `GET /admin/dlq` (the dead letters and where
//! each stands), `POST /admin/dlq/redrive`,
//! `POST /admin/dlq/refund` (return a dead letter's funds), and `GET /admin/consumer`,
//! `POST /admin/consumer/pause|resume` (stop and restart pulling; messages wait at the broker).

use axum::extract::State;
use axum::Json;
use common::domain::ids::TxNo;
use common::service::error::{AppJson, AppQuery, Code, Error, ErrorBody, Result};
use serde::Serialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::redrive;
use crate::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_dlq))
        .routes(routes!(redrive_dlq))
        .routes(routes!(refund_dead_letter))
        .routes(routes!(consumer_state))
        .routes(routes!(pause))
        .routes(routes!(resume))
}

#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct DlqQuery {
    /// List at most this many, newest first (1-1000, default 100); the counts cover them all.
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<i64>,
}

/// The dead letters (read, not consumed), newest first, each with where its transfer stands:
/// `PENDING` ones wait for a redrive or a refund.
#[utoipa::path(get, path = "/admin/dlq", tag = "dlq", security(("admin_token" = [])),
    params(DlqQuery),
    responses(
        (status = 200, description = "The dead letters", body = redrive::DeadLetters),
        (status = 400, description = "A bad limit (`invalid_limit`, `bad_request`)", body = ErrorBody),
    ))]
async fn list_dlq(
    State(state): State<AppState>,
    AppQuery(q): AppQuery<DlqQuery>,
) -> Result<Json<redrive::DeadLetters>> {
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(Error::bad_request(Code::InvalidLimit, "limit must be 1-1000"));
    }
    redrive::list(&state, usize::try_from(limit).unwrap_or(100)).await.map(Json)
}

/// Reads the DLQ and applies every dead letter that can be applied now (credit, or reject and
/// return the funds); reports each one.
#[utoipa::path(post, path = "/admin/dlq/redrive", tag = "dlq", security(("admin_token" = [])),
    responses((status = 200, description = "What happened to each dead letter", body = redrive::Report)))]
async fn redrive_dlq(State(state): State<AppState>) -> Result<Json<redrive::Report>> {
    let report = redrive::redrive(&state).await?;
    tracing::warn!(scanned = report.scanned, credited = report.credited, complete = report.complete, "DLQ redrive");
    Ok(Json(report))
}

#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = DlqRefundRequest)]
struct RefundRequest {
    /// A dead-lettered transfer that was never credited.
    #[schema(value_type = String, pattern = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")]
    tx_no: TxNo,
}

/// Returns a dead letter's funds to bank1 instead of crediting it (reject + refund notice).
#[utoipa::path(post, path = "/admin/dlq/refund", tag = "dlq", security(("admin_token" = [])),
    request_body(content = RefundRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "Rejected now, or already", body = redrive::RefundReport),
        (status = 400, description = "Not JSON (`malformed_json`)", body = ErrorBody),
        (status = 409, description = "Not applicable: not dead-lettered, already credited, or never debited at bank1",
            body = ErrorBody),
        (status = 415, description = "Not `Content-Type: application/json`", body = ErrorBody),
        (status = 422, description = "A bad field (`invalid_request`)", body = ErrorBody),
    ))]
async fn refund_dead_letter(
    State(state): State<AppState>,
    AppJson(req): AppJson<RefundRequest>,
) -> Result<Json<redrive::RefundReport>> {
    redrive::refund(&state, &req.tx_no).await.map(Json)
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
struct Consumer {
    /// Pulling stopped: messages wait at the broker.
    paused: bool,
}

/// Whether the transfer consumer is pulling.
#[utoipa::path(get, path = "/admin/consumer", tag = "consumer", security(("admin_token" = [])),
    responses((status = 200, description = "The consumer's state", body = Consumer)))]
async fn consumer_state(State(state): State<AppState>) -> Json<Consumer> {
    Json(Consumer { paused: state.consumer.is_paused() })
}

/// Stops pulling transfer messages (they wait at the broker).
#[utoipa::path(post, path = "/admin/consumer/pause", tag = "consumer", security(("admin_token" = [])),
    responses((status = 200, description = "Paused", body = Consumer)))]
async fn pause(State(state): State<AppState>) -> Json<Consumer> {
    state.consumer.pause().await;
    tracing::warn!("consumption paused");
    Json(Consumer { paused: true })
}

/// Starts pulling again.
#[utoipa::path(post, path = "/admin/consumer/resume", tag = "consumer", security(("admin_token" = [])),
    responses((status = 200, description = "Pulling", body = Consumer)))]
async fn resume(State(state): State<AppState>) -> Json<Consumer> {
    state.consumer.resume().await;
    tracing::warn!("consumption resumed");
    Json(Consumer { paused: false })
}
