//! `GET /api/credits/{tx_no}`: how bank2 applied a transfer — `outcome` CREDITED, REJECTED
//! (funds returned to bank1, with the reason) or PENDING (not applied yet) — and every failed
//! delivery attempt.

use axum::extract::{Path, State};
use axum::Json;
use common::domain::ids::TxNo;
use common::service::error::{Code, Error, ErrorBody};
use serde::Serialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::Result;
use crate::store::{self, AppliedAs, Source};
use crate::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(credit))
}

/// How bank2 applied a transfer. Fields that do not apply are `null`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CreditView {
    tx_no: String,
    /// `CREDITED`, `REJECTED` (the funds go back to bank1) or `PENDING` (not applied yet).
    outcome: &'static str,
    credited: bool,
    credited_at: Option<String>,
    credited_at_ms: Option<i64>,
    rejected_at: Option<String>,
    rejected_at_ms: Option<i64>,
    /// Why it was rejected.
    reason: Option<String>,
    /// How it arrived.
    source: Option<Source>,
    from_account: Option<String>,
    to_account: Option<String>,
    amount: Option<String>,
    /// Every failed delivery, oldest first.
    attempts: Vec<AttemptView>,
}

/// A delivery of the transfer message that failed (it goes down the broker's retry ladder).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AttemptView {
    /// 0 for the first delivery, then one per retry (16 retries, then the DLQ).
    reconsume_times: i32,
    error: String,
    at: String,
    at_ms: i64,
    msg_id: String,
    /// What the broker does next: `RETRY` (after the delay of `next_delay_level`) or `DLQ`.
    then: &'static str,
    /// The broker's delay level of the next delivery (3 + `reconsume_times`: 10 s, 30 s, 1 m …
    /// on the default ladder); absent when the next stop is the DLQ.
    #[serde(skip_serializing_if = "Option::is_none")]
    next_delay_level: Option<i32>,
}

impl AttemptView {
    fn of(a: store::Attempt, max_reconsume_times: i32) -> Self {
        let retried = a.reconsume_times < max_reconsume_times;
        Self {
            then: if retried { "RETRY" } else { "DLQ" },
            next_delay_level: retried.then_some(3 + a.reconsume_times),
            reconsume_times: a.reconsume_times,
            error: a.error,
            at: common::format_ms(a.at),
            at_ms: a.at,
            msg_id: a.msg_id,
        }
    }
}

/// How bank2 applied a transfer, and its failed deliveries.
#[utoipa::path(get, path = "/api/credits/{tx_no}", tag = "credits",
    params(("tx_no" = String, Path, description = "The transfer number bank1 gave", pattern = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")),
    responses(
        (status = 200, description = "Applied, rejected or pending", body = CreditView),
        (status = 400, description = "Not a transfer number (`invalid_tx_no`)", body = ErrorBody),
    ))]
async fn credit(State(state): State<AppState>, Path(tx_no): Path<String>) -> Result<Json<CreditView>> {
    let tx_no = TxNo::parse(&tx_no).map_err(|e| Error::bad_request(Code::InvalidTxNo, e.to_string()))?;
    let applied = store::applied(&state.shared.db.read, tx_no.as_str()).await?;
    let attempts = store::attempts(&state.shared.db.read, tx_no.as_str()).await?;
    let max = state.settings.common.max_reconsume_times;
    let attempts = attempts.into_iter().map(|a| AttemptView::of(a, max)).collect();
    let credited = applied.as_ref().filter(|a| a.outcome == AppliedAs::Credited);
    let rejected = applied.as_ref().filter(|a| a.outcome == AppliedAs::Rejected);
    Ok(Json(CreditView {
        tx_no: tx_no.to_string(),
        outcome: applied.as_ref().map_or("PENDING", |a| a.outcome.as_str()),
        credited: credited.is_some(),
        credited_at: credited.map(|c| common::format_ms(c.credited_at)),
        credited_at_ms: credited.map(|c| c.credited_at),
        rejected_at: rejected.map(|r| common::format_ms(r.credited_at)),
        rejected_at_ms: rejected.map(|r| r.credited_at),
        reason: rejected.and_then(|r| r.reason.clone()),
        source: applied.as_ref().map(|a| a.source),
        from_account: applied.as_ref().map(|a| a.from_account.clone()),
        to_account: applied.as_ref().map(|a| a.to_account.clone()),
        amount: applied.as_ref().map(|a| common::domain::money::format_minor(a.amount)),
        attempts,
    }))
}
