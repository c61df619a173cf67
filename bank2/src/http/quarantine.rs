//! `GET /api/quarantine`: messages that could never be applied, newest first.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::error::Result;
use crate::{store, AppState};

pub fn routes() -> Router<AppState> {
    Router::new().route("/api/quarantine", get(list))
}

async fn list(State(state): State<AppState>) -> Result<Json<Value>> {
    let rows = store::quarantined(&state.db.pool, 500).await?;
    let items: Vec<Value> = rows
        .iter()
        .map(|q| json!({"msg_key": q.msg_key, "msg_id": q.msg_id, "tx_no": q.tx_no, "body": q.body, "reason": q.reason, "at": common::format_ms(q.at)}))
        .collect();
    Ok(Json(json!({ "items": items })))
}
