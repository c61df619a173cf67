//! `GET /api/rejections?after=<cursor>&limit=<n>`: the rejection feed bank1's reconciler reads
//! to recover lost refund notices (service token: `BANK2_FEED_TOKEN`). Ordered by feed position,
//! given after commit by the sequencer, so a cursor never skips one. And bank2's query interface,
//! `POST /api/rejections/proofs`: where transfers stand at bank2. Both answers are signed with
//! bank2's key: bank1 refunds only what bank2's signed word calls `REJECTED`.

use axum::extract::State;
use axum::response::Response;
use common::domain::proof::{ProofAnswer, ProofEntry, ProofRequest};
use common::service::error::ErrorBody;
use common::service::feed::{FeedQuery, FeedRequest, Page, RejectionEntry};
use common::service::proofs::{answer, signed_json, Question};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::Result;
use crate::store;
use crate::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(feed)).routes(routes!(proofs))
}

/// Transfers bank2 rejected (their funds go back to bank1), after a feed cursor.
#[utoipa::path(get, path = "/api/rejections", tag = "feeds", security(("feed_token" = [])),
    params(FeedQuery),
    responses(
        (status = 200, description = "Rejections after the cursor, in feed order", body = Page<RejectionEntry>),
        (status = 400, description = "A bad cursor or limit (`invalid_cursor`, `invalid_limit`, `bad_request`)",
            body = ErrorBody),
    ))]
async fn feed(State(state): State<AppState>, FeedRequest { after, limit }: FeedRequest) -> Result<Response> {
    let rows: Vec<store::Applied> = store::REJECTION_FEED.page(&state.shared.db.read, after, limit).await?;
    let items: Vec<RejectionEntry> = rows
        .into_iter()
        .filter_map(|r| {
            Some(RejectionEntry {
                feed_pos: r.feed_pos?,
                amount: common::domain::money::format_minor(r.amount),
                reason: r.reason.unwrap_or_default(),
                rejected_at_ms: r.credited_at,
                tx_no: r.tx_no,
                from_account: r.from_account,
                to_account: r.to_account,
            })
        })
        .collect();
    Ok(signed_json(&state.shared.signer, &Page::after(after, items, |i| Some(i.feed_pos))))
}

/// `POST /api/rejections/proofs`: where these transfers stand at bank2 (`CREDITED` or
/// `REJECTED`), with their facts, in one answer signed with bank2's key (header
/// `bank-signature`). bank1 refunds only what it proves `REJECTED` (消息校对,
/// docs/ARCHITECTURE.md, "Trust"). A tx_no bank2 has not applied has no entry.
#[utoipa::path(post, path = "/api/rejections/proofs", tag = "feeds", security(("feed_token" = [])),
    request_body(content = ProofRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "bank2's applied rows for the tx_nos it has, signed", body = ProofAnswer,
            headers(("bank-signature" = String, description = "`v1:<key id>:<base64>`: bank2's Ed25519 signature over the body"))),
        (status = 400, description = "Not JSON, a bad tx_no, nonce or count (`malformed_json`, `invalid_request`)",
            body = ErrorBody),
        (status = 415, description = "Not `Content-Type: application/json`", body = ErrorBody),
        (status = 422, description = "Fields of the wrong type (`invalid_request`)", body = ErrorBody),
    ))]
async fn proofs(State(state): State<AppState>, Question(q): Question) -> Result<Response> {
    let rows = store::applied_of(&state.shared.db.read, &q.tx_nos).await?;
    let entries = rows
        .iter()
        .filter_map(|a| ProofEntry::of_row(&a.tx_no, a.outcome.as_str(), &a.from_account, &a.to_account, a.amount))
        .collect();
    Ok(answer(&state, &q, entries))
}
