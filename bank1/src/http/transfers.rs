//! `POST /api/transfers` (with `Idempotency-Key`), `GET /api/transfers/{tx_no}` (public), the
//! feed `GET /api/transfers?after=&limit=` and the query interface `POST /api/transfers/proofs`
//! (both with the service token `BANK1_FEED_TOKEN`, both answers signed with bank1's key).
//!
//! Idempotency-Key lifecycle: a request *claims* the key for a fresh tx_no, runs the transfer,
//! then records its reply. A replay answers the recorded reply — or, where the first request
//! left none, the truth from bank1's own rows:
//! - its transfer row exists: that transfer (COMMITTED, REFUNDED) is the answer; a ROLLED_BACK
//!   one debited nothing, so the key is retaken for a fresh transfer;
//! - no row yet, claim younger than `BANK1_IDEMPOTENCY_CLAIM_TIMEOUT`: 409, still running;
//! - no row, older: the first request died between the claim and its half message. A
//!   ROLLED_BACK tombstone makes that final (a late half message is rolled back by the
//!   check-back; a late local transaction loses on the key) and the key is retaken.
//!
//! A recorded UNKNOWN is not frozen: a replay answers the transfer's current status. The
//! transfer runs in a task of its own, so a client that disconnects cannot cancel it halfway.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use common::domain::ids::TxNo;
use common::domain::proof::{ProofAnswer, ProofEntry, ProofRequest};
use common::service::error::{AppJson, Code, Error, ErrorBody};
use common::service::feed::{FeedQuery, FeedRequest, Page};
use common::service::proofs::{answer, signed_json, Question};
use serde_json::Value;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::Result;
use crate::store::{self, NewTransfer, Status};
use crate::transfers::{self, Timeline, TransferBody, TransferRequest, TransferView};
use crate::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create))
        .routes(routes!(feed))
        .routes(routes!(proofs))
        .routes(routes!(status))
        .routes(routes!(timeline))
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
        None => Err(Error::bad_request(
            Code::InvalidIdempotencyKey,
            "Idempotency-Key must be 1-255 visible ASCII characters",
        )),
    }
}

/// Sends a transfer: debits the sender and publishes the transfer message, atomically. With an
/// `Idempotency-Key`, a retry answers the first request's result (header
/// `Idempotent-Replayed: true`) and never debits twice.
#[utoipa::path(post, path = "/api/transfers", tag = "transfers",
    params(("Idempotency-Key" = Option<String>, Header,
        description = "Makes retries safe: 1-255 visible ASCII characters, bound to this transfer's contents")),
    request_body(content = TransferBody, content_type = "application/json"),
    responses(
        (status = 201, description = "COMMITTED (debited; bank2 will credit it), ROLLED_BACK (nothing debited, \
            `reason` says why) or UNKNOWN (the status endpoint will tell)", body = TransferView,
            headers(("idempotent-replayed" = Option<String>, description = "`true` when this is a replay"))),
        (status = 400, description = "Not JSON (`malformed_json`) or a bad Idempotency-Key (`invalid_idempotency_key`)",
            body = ErrorBody),
        (status = 409, description = "A request with this Idempotency-Key is still running (`request_in_progress`)",
            body = ErrorBody),
        (status = 415, description = "Not `Content-Type: application/json`", body = ErrorBody),
        (status = 422, description = "Invalid fields (`invalid_account`, `invalid_amount`, `invalid_request`), \
            a refusal (`unknown_account`, `insufficient_funds`) or a reused key (`idempotency_key_reused`); \
            nothing was debited", body = ErrorBody),
    ))]
async fn create(State(state): State<AppState>, headers: HeaderMap, AppJson(body): AppJson<Value>) -> Result<Response> {
    let req = TransferRequest::from_json(&body)?;
    let key = idempotency_key(&headers)?;
    let metrics = state.metrics.clone();
    // Detached: dropping this handler (client gone) does not stop the transfer mid-way.
    let answer = tokio::spawn(async move {
        match key {
            Some(key) => create_keyed(&state, &req, &key).await,
            None => {
                transfers::precheck(&state, &req).await?;
                run(&state, &req, TxNo::new_random(), None).await
            }
        }
    })
    .await
    .map_err(|e| anyhow::anyhow!("transfer task failed: {e}"))?;
    if let Err(e) = &answer {
        metrics.refused(e.code());
    }
    answer
}

/// A transfer under an Idempotency-Key: replay, or claim it (or retake an abandoned claim) and run.
async fn create_keyed(state: &AppState, req: &TransferRequest, key: &str) -> Result<Response> {
    let pool = &state.shared.db.pool;
    // Two rounds at most: a lost race for the claim is answered by the winner's replay.
    for _ in 0..2 {
        if let Some(row) = store::idempotency(pool, key).await? {
            match replay(state, req, key, row).await? {
                Replayed::Answer(r) => {
                    state.metrics.idempotency_replay();
                    return Ok(r);
                }
                Replayed::Retake(old) => {
                    transfers::precheck(state, req).await?;
                    let tx_no = TxNo::new_random();
                    if store::retake_idempotency(pool, key, &old, tx_no.as_str()).await? {
                        tracing::warn!(idempotency_key = %key, abandoned = %old, %tx_no, "retook an abandoned Idempotency-Key");
                        return run(state, req, tx_no, Some(key)).await;
                    }
                    continue;
                }
            }
        }
        transfers::precheck(state, req).await?;
        let tx_no = TxNo::new_random();
        match store::claim_idempotency(pool, key, &req.fingerprint(), tx_no.as_str()).await {
            Ok(()) => return run(state, req, tx_no, Some(key)).await,
            Err(e) if common::infra::db::is_unique_violation(&e) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(in_progress())
}

/// Runs one transfer and records its reply under the key it holds.
async fn run(state: &AppState, req: &TransferRequest, tx_no: TxNo, key: Option<&str>) -> Result<Response> {
    match transfers::execute(state, req, tx_no.clone()).await {
        Ok(view) => {
            state.metrics.transfer(&view.status);
            let body = serde_json::to_string(&view).map_err(anyhow::Error::from)?;
            if let Some(key) = key {
                store::finish_idempotency(
                    &state.shared.db.pool,
                    key,
                    tx_no.as_str(),
                    StatusCode::CREATED.as_u16(),
                    &body,
                )
                .await?;
            }
            Ok(json_response(StatusCode::CREATED, body, false))
        }
        Err(e) => {
            // Nothing was debited: free the key so a retry is evaluated afresh.
            if let Some(key) = key {
                let _ = store::release_idempotency(&state.shared.db.pool, key, tx_no.as_str()).await;
            }
            Err(e)
        }
    }
}

enum Replayed {
    Answer(Response),
    /// The key's transfer (this tx_no) is settled as never debited: run a fresh one.
    Retake(String),
}

/// A retried POST: the first result, or the truth from bank1's rows (see the module docs).
async fn replay(state: &AppState, req: &TransferRequest, key: &str, row: store::IdempotencyRow) -> Result<Replayed> {
    if row.request_hash != req.fingerprint() {
        return Err(Error::unprocessable(
            Code::IdempotencyKeyReused,
            "this Idempotency-Key was used for a different transfer",
        ));
    }
    let tx_no = TxNo::parse(&row.tx_no).map_err(|e| anyhow::anyhow!("stored tx_no: {e}"))?;
    if let (Some(status), Some(body)) = (row.response_status, row.response_body) {
        let unknown = serde_json::from_str::<Value>(&body).is_ok_and(|v| v["status"] == "UNKNOWN");
        if unknown {
            // Not frozen: the transfer's status now.
            if let Some(t) = store::transfer(&state.shared.db.pool, &tx_no).await? {
                let now = serde_json::to_string(&TransferView::from_row(&t)).map_err(anyhow::Error::from)?;
                store::finish_idempotency(&state.shared.db.pool, key, tx_no.as_str(), 201, &now).await?;
                return Ok(Replayed::Answer(json_response(StatusCode::CREATED, now, true)));
            }
        }
        let status =
            u16::try_from(status).ok().and_then(|s| StatusCode::from_u16(s).ok()).unwrap_or(StatusCode::CREATED);
        return Ok(Replayed::Answer(json_response(status, body, true)));
    }
    let row_now = match store::transfer(&state.shared.db.pool, &tx_no).await? {
        Some(t) => Some(t),
        None if common::now_ms() - row.created_at < claim_timeout_ms(state) => return Err(in_progress()),
        None => {
            let n = NewTransfer::abandoned(tx_no.as_str(), req);
            Some(
                store::tombstone(
                    &state.shared.db.pool,
                    &n,
                    "abandoned: the request holding its Idempotency-Key stopped before the transfer began",
                    &store::LocalSteps::default(),
                )
                .await?,
            )
        }
    };
    match row_now {
        Some(t) if t.status == Status::RolledBack => Ok(Replayed::Retake(t.tx_no)),
        Some(t) => {
            let body = serde_json::to_string(&TransferView::from_row(&t)).map_err(anyhow::Error::from)?;
            store::finish_idempotency(&state.shared.db.pool, key, tx_no.as_str(), 201, &body).await?;
            Ok(Replayed::Answer(json_response(StatusCode::CREATED, body, true)))
        }
        None => Err(in_progress()),
    }
}

fn claim_timeout_ms(state: &AppState) -> i64 {
    i64::try_from(state.settings.idempotency_claim_timeout.as_millis()).unwrap_or(i64::MAX)
}

fn in_progress() -> Error {
    Error::conflict(Code::RequestInProgress, "a request with this Idempotency-Key is still being processed")
}

fn json_response(status: StatusCode, body: String, replayed: bool) -> Response {
    let mut r = (status, [(axum::http::header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], body)
        .into_response();
    if replayed {
        r.headers_mut().insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    r
}

/// A transfer's status at bank1.
#[utoipa::path(get, path = "/api/transfers/{tx_no}", tag = "transfers",
    params(("tx_no" = String, Path, description = "The transfer number `POST /api/transfers` answered",
        pattern = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")),
    responses(
        (status = 200, description = "The transfer", body = TransferView),
        (status = 400, description = "Not a transfer number (`invalid_tx_no`)", body = ErrorBody),
        (status = 404, description = "No such transfer at bank1 (`unknown_transfer`)", body = ErrorBody),
    ))]
async fn status(State(state): State<AppState>, Path(tx_no): Path<String>) -> Result<Json<TransferView>> {
    let (_, row) = known_transfer(&state, &tx_no).await?;
    Ok(Json(TransferView::from_row(&row)))
}

/// The transfer a path names: 400 when it is not a tx_no, 404 when bank1 has none.
async fn known_transfer(state: &AppState, tx_no: &str) -> Result<(TxNo, store::TransferRow)> {
    let tx_no = TxNo::parse(tx_no).map_err(|e| Error::bad_request(Code::InvalidTxNo, e.to_string()))?;
    let row = store::transfer(&state.shared.db.read, &tx_no)
        .await?
        .ok_or_else(|| Error::not_found(Code::UnknownTransfer, format!("no transfer {tx_no} at bank1")))?;
    Ok((tx_no, row))
}

/// bank1's side of a transfer's timeline: accepted, the half message, the local transaction and
/// its answer to the broker, each check-back, the refund.
#[utoipa::path(get, path = "/api/transfers/{tx_no}/timeline", tag = "transfers",
    params(("tx_no" = String, Path, description = "The transfer number `POST /api/transfers` answered",
        pattern = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")),
    responses(
        (status = 200, description = "The steps bank1 recorded, oldest first", body = Timeline),
        (status = 400, description = "Not a transfer number (`invalid_tx_no`)", body = ErrorBody),
        (status = 404, description = "No such transfer at bank1 (`unknown_transfer`)", body = ErrorBody),
    ))]
async fn timeline(State(state): State<AppState>, Path(tx_no): Path<String>) -> Result<Json<Timeline>> {
    let (tx_no, row) = known_transfer(&state, &tx_no).await?;
    let check_backs = store::check_backs(&state.shared.db.read, &tx_no).await?;
    Ok(Json(Timeline::of(&row, &check_backs)))
}

/// `GET /api/transfers?after=<cursor>&limit=<n>`: debited transfers (COMMITTED, and REFUNDED
/// ones) after a feed cursor.
#[utoipa::path(get, path = "/api/transfers", tag = "feeds", security(("feed_token" = [])),
    params(FeedQuery),
    responses(
        (status = 200, description = "Debited transfers after the cursor, in feed order", body = Page<TransferView>),
        (status = 400, description = "A bad cursor or limit (`invalid_cursor`, `invalid_limit`, `bad_request`)",
            body = ErrorBody),
    ))]
async fn feed(State(state): State<AppState>, FeedRequest { after, limit }: FeedRequest) -> Result<Response> {
    let rows: Vec<store::TransferRow> = store::TRANSFER_FEED.page(&state.shared.db.read, after, limit).await?;
    let items: Vec<TransferView> = rows.iter().map(TransferView::from_row).collect();
    Ok(signed_json(&state.shared.signer, &Page::after(after, items, |t| t.feed_pos)))
}

/// `POST /api/transfers/proofs`: where these transfers stand at bank1, with their facts, in one
/// answer signed with bank1's key (header `bank-signature`). bank2 credits only what it proves
/// `COMMITTED` (消息校对, docs/ARCHITECTURE.md, "Trust"). A tx_no bank1 never saw has no entry.
#[utoipa::path(post, path = "/api/transfers/proofs", tag = "feeds", security(("feed_token" = [])),
    request_body(content = ProofRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "bank1's rows for the tx_nos it has, signed", body = ProofAnswer,
            headers(("bank-signature" = String, description = "`v1:<key id>:<base64>`: bank1's Ed25519 signature over the body"))),
        (status = 400, description = "Not JSON, a bad tx_no, nonce or count (`malformed_json`, `invalid_request`)",
            body = ErrorBody),
        (status = 415, description = "Not `Content-Type: application/json`", body = ErrorBody),
        (status = 422, description = "Fields of the wrong type (`invalid_request`)", body = ErrorBody),
    ))]
async fn proofs(State(state): State<AppState>, Question(q): Question) -> Result<Response> {
    let rows = store::transfers_of(&state.shared.db.read, &q.tx_nos).await?;
    let entries = rows
        .iter()
        .filter_map(|t| ProofEntry::of_row(&t.tx_no, t.status.as_str(), &t.from_account, &t.to_account, t.amount))
        .collect();
    Ok(answer(&state, &q, entries))
}
