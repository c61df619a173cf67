//! `POST /api/transfers` (with `Idempotency-Key`) and `GET /api/transfers/{tx_no}`.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use common::api_error::{ApiError, AppJson};
use common::ids::TxNo;
use serde_json::Value;

use crate::error::Result;
use crate::store;
use crate::transfers::{self, TransferRequest, TransferView};
use crate::AppState;

pub fn routes() -> Router<AppState> {
    Router::new().route("/api/transfers", post(create).get(feed)).route("/api/transfers/{tx_no}", get(status))
}

const IDEMPOTENCY_KEY: &str = "idempotency-key";

fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>> {
    let Some(v) = headers.get(IDEMPOTENCY_KEY) else { return Ok(None) };
    let s = v
        .to_str()
        .ok()
        .map(str::trim)
        .filter(|s| !s.is_empty() && s.len() <= 255 && s.bytes().all(|b| b.is_ascii_graphic()));
    match s {
        Some(s) => Ok(Some(s.to_owned())),
        None => Err(ApiError::bad_request(
            "invalid_idempotency_key",
            "Idempotency-Key must be 1-255 visible ASCII characters",
        )
        .into()),
    }
}

async fn create(State(state): State<AppState>, headers: HeaderMap, AppJson(body): AppJson<Value>) -> Result<Response> {
    let req = TransferRequest::from_json(&body)?;
    let key = idempotency_key(&headers)?;
    if let Some(key) = &key {
        if let Some(row) = store::idempotency(&state.db.pool, key).await? {
            return replay(&state, &req, row).await;
        }
    }
    transfers::precheck(&state, &req).await?;
    let tx_no = TxNo::new_random();
    if let Some(key) = &key {
        if let Err(e) = store::claim_idempotency(&state.db.pool, key, &req.fingerprint(), tx_no.as_str()).await {
            if common::db::is_unique_violation(&e) {
                if let Some(row) = store::idempotency(&state.db.pool, key).await? {
                    return replay(&state, &req, row).await;
                }
            }
            return Err(e.into());
        }
    }
    match transfers::execute(&state, &req, tx_no).await {
        Ok(view) => {
            let body = serde_json::to_string(&view).map_err(anyhow::Error::from)?;
            if let Some(key) = &key {
                store::finish_idempotency(&state.db.pool, key, StatusCode::CREATED.as_u16(), &body).await?;
            }
            Ok(json_response(StatusCode::CREATED, body, false))
        }
        Err(e) => {
            // Nothing was debited: free the key so a retry is evaluated afresh.
            if let Some(key) = &key {
                let _ = store::release_idempotency(&state.db.pool, key).await;
            }
            Err(e)
        }
    }
}

/// A retried POST: the first result, or where the first request is still running, 409.
async fn replay(state: &AppState, req: &TransferRequest, row: store::IdempotencyRow) -> Result<Response> {
    if row.request_hash != req.fingerprint() {
        return Err(ApiError::unprocessable(
            "idempotency_key_reused",
            "this Idempotency-Key was used for a different transfer",
        )
        .into());
    }
    if let (Some(status), Some(body)) = (row.response_status, row.response_body) {
        let status =
            u16::try_from(status).ok().and_then(|s| StatusCode::from_u16(s).ok()).unwrap_or(StatusCode::CREATED);
        return Ok(json_response(status, body, true));
    }
    // The first request did not record its reply (still running, or bank1 stopped mid-way):
    // the transfer row, once present, is the truth.
    let tx_no = TxNo::parse(&row.tx_no).map_err(|e| anyhow::anyhow!("stored tx_no: {e}"))?;
    match store::transfer(&state.db.pool, &tx_no).await? {
        Some(t) => Ok(json_response(
            StatusCode::CREATED,
            serde_json::to_string(&TransferView::from_row(&t)).map_err(anyhow::Error::from)?,
            true,
        )),
        None => Err(ApiError::new(
            StatusCode::CONFLICT,
            "request_in_progress",
            "a request with this Idempotency-Key is still being processed",
        )
        .into()),
    }
}

fn json_response(status: StatusCode, body: String, replayed: bool) -> Response {
    let mut r = (status, [(axum::http::header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], body)
        .into_response();
    if replayed {
        r.headers_mut().insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    r
}

async fn status(State(state): State<AppState>, Path(tx_no): Path<String>) -> Result<Json<TransferView>> {
    let tx_no = TxNo::parse(&tx_no).map_err(|e| ApiError::bad_request("invalid_tx_no", e.to_string()))?;
    let row = store::transfer(&state.db.pool, &tx_no)
        .await?
        .ok_or_else(|| ApiError::not_found("unknown_transfer", format!("no transfer {tx_no} at bank1")))?;
    Ok(Json(TransferView::from_row(&row)))
}

#[derive(Debug, serde::Deserialize)]
struct FeedQuery {
    after: Option<String>,
    limit: Option<String>,
}

/// `GET /api/transfers?after=<cursor>&limit=<n>`: committed transfers after a feed cursor.
async fn feed(State(state): State<AppState>, Query(q): Query<FeedQuery>) -> Result<Json<Value>> {
    let after = match q.after.as_deref() {
        None | Some("") => 0,
        Some(s) => s.parse::<i64>().ok().filter(|v| *v >= 0).ok_or_else(|| {
            ApiError::bad_request("invalid_cursor", "after must be a cursor from a previous page (an integer >= 0)")
        })?,
    };
    let limit = match q.limit.as_deref() {
        None | Some("") => 100,
        Some(s) => s
            .parse::<i64>()
            .ok()
            .filter(|v| (1..=1000).contains(v))
            .ok_or_else(|| ApiError::bad_request("invalid_limit", "limit must be an integer from 1 to 1000"))?,
    };
    let rows = crate::feed::page(&state.db.pool, after, limit).await?;
    let next = rows.last().and_then(|r| r.feed_pos).unwrap_or(after);
    let items: Vec<TransferView> = rows.iter().map(TransferView::from_row).collect();
    Ok(Json(serde_json::json!({ "items": items, "next": next.to_string() })))
}
