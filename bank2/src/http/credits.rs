//! `GET /api/credits/{tx_no}`: how bank2 applied a transfer — `outcome` CREDITED, REJECTED
//! (funds returned to bank1, with the reason) or PENDING (not applied yet) — and every failed
//! delivery attempt.

use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use common::domain::ids::TxNo;
use common::service::error::{Code, Error};
use serde_json::{json, Value};

use crate::error::Result;
use crate::store::{self, AppliedAs};
use crate::AppState;

pub fn routes() -> Router<AppState> {
    Router::new().route("/api/credits/{tx_no}", get(credit))
}

async fn credit(State(state): State<AppState>, Path(tx_no): Path<String>) -> Result<Json<Value>> {
    let tx_no = TxNo::parse(&tx_no).map_err(|e| Error::bad_request(Code::InvalidTxNo, e.to_string()))?;
    let applied = store::applied(&state.shared.db.read, tx_no.as_str()).await?;
    let attempts = store::attempts(&state.shared.db.read, tx_no.as_str()).await?;
    let attempts: Vec<Value> = attempts
        .iter()
        .map(|a| json!({"reconsume_times": a.reconsume_times, "error": a.error, "at": common::format_ms(a.at), "msg_id": a.msg_id}))
        .collect();
    let credited = applied.as_ref().filter(|a| a.outcome == AppliedAs::Credited);
    let rejected = applied.as_ref().filter(|a| a.outcome == AppliedAs::Rejected);
    Ok(Json(json!({
        "tx_no": tx_no,
        "outcome": applied.as_ref().map_or("PENDING", |a| a.outcome.as_str()),
        "credited": credited.is_some(),
        "credited_at": credited.map(|c| common::format_ms(c.credited_at)),
        "credited_at_ms": credited.map(|c| c.credited_at),
        "rejected_at": rejected.map(|r| common::format_ms(r.credited_at)),
        "rejected_at_ms": rejected.map(|r| r.credited_at),
        "reason": rejected.and_then(|r| r.reason.clone()),
        "source": applied.as_ref().map(|a| a.source),
        "from_account": applied.as_ref().map(|a| a.from_account.clone()),
        "to_account": applied.as_ref().map(|a| a.to_account.clone()),
        "amount": applied.as_ref().map(|a| common::domain::money::format_minor(a.amount)),
        "attempts": attempts,
    })))
}
