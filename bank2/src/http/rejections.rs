//! `GET /api/rejections?after=<cursor>&limit=<n>`: the rejection feed bank1's reconciler reads
//! to recover lost refund notices (service token: `BANK2_FEED_TOKEN`). Ordered by feed position,
//! given after commit by the sequencer, so a cursor never skips one.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use common::service::feed::{FeedRequest, Page, RejectionEntry};

use crate::error::Result;
use crate::store;
use crate::AppState;

pub fn routes() -> Router<AppState> {
    Router::new().route("/api/rejections", get(feed))
}

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
