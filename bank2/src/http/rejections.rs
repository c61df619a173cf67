//! `GET /api/rejections?after=<cursor>&limit=<n>`: the rejection feed bank1's reconciler reads
//! to recover lost refund notices (service token: `BANK2_FEED_TOKEN`). Ordered by feed position,
//! given after commit by the sequencer, so a cursor never skips one.

use axum::extract::State;
use axum::Json;
use common::service::error::ErrorBody;
use common::service::feed::{FeedQuery, FeedRequest, Page, RejectionEntry};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::Result;
use crate::store;
use crate::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(feed))
}

/// Transfers bank2 rejected (their funds go back to bank1), after a feed cursor.
#[utoipa::path(get, path = "/api/rejections", tag = "feeds", security(("feed_token" = [])),
    params(FeedQuery),
    responses(
        (status = 200, description = "Rejections after the cursor, in feed order", body = Page<RejectionEntry>),
        (status = 400, description = "A bad cursor or limit (`invalid_cursor`, `invalid_limit`, `bad_request`)",
            body = ErrorBody),
    ))]
async fn feed(
    State(state): State<AppState>,
    FeedRequest { after, limit }: FeedRequest,
) -> Result<Json<Page<RejectionEntry>>> {
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
    Ok(Json(Page::after(after, items, |i| Some(i.feed_pos))))
}
