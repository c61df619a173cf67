//! `GET /api/credits/{tx_no}`: was a transfer credited, how, and every failed attempt.

use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use common::api_error::ApiError;
use common::ids::TxNo;
use serde_json::{json, Value};

use crate::error::Result;
use crate::{store, AppState};

pub fn routes() -> Router<AppState> {
    Router::new().route("/api/credits/{tx_no}", get(credit))
}

async fn credit(State(state): State<AppState>, Path(tx_no): Path<String>) -> Result<Json<Value>> {
    let tx_no = TxNo::parse(&tx_no).map_err(|e| ApiError::bad_request("invalid_tx_no", e.to_string()))?;
    let credit = store::credit(&state.db.pool, tx_no.as_str()).await?;
    let attempts = store::attempts(&state.db.pool, tx_no.as_str()).await?;
    let attempts: Vec<Value> = attempts
        .iter()
        .map(|a| json!({"reconsume_times": a.reconsume_times, "error": a.error, "at": common::format_ms(a.at), "msg_id": a.msg_id}))
        .collect();
    Ok(Json(json!({
        "tx_no": tx_no,
        "credited": credit.is_some(),
        "credited_at": credit.as_ref().map(|c| common::format_ms(c.credited_at)),
        "credited_at_ms": credit.as_ref().map(|c| c.credited_at),
        "source": credit.as_ref().map(|c| c.source.clone()),
        "to_account": credit.as_ref().map(|c| c.to_account.clone()),
        "amount": credit.as_ref().map(|c| common::money::format_minor(c.amount)),
        "attempts": attempts,
    })))
}
