//! `GET /api/accounts/{account_no}`.

use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use common::api_error::ApiError;
use common::ids::AccountNo;
use serde_json::{json, Value};

use crate::error::Result;
use crate::{store, AppState};

pub fn routes() -> Router<AppState> {
    Router::new().route("/api/accounts/{account_no}", get(account))
}

async fn account(State(state): State<AppState>, Path(no): Path<String>) -> Result<Json<Value>> {
    let no = AccountNo::parse(&no).map_err(|e| ApiError::bad_request("invalid_account", e.to_string()))?;
    let a = store::account(&state.db.pool, &no)
        .await?
        .ok_or_else(|| ApiError::not_found("unknown_account", format!("account {no} does not exist at bank2")))?;
    Ok(Json(json!({
        "account_no": a.account_no,
        "account_name": a.account_name,
        "balance": common::money::format_minor(a.balance),
    })))
}
