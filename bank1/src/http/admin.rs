//! bank1's own operator endpoint (behind `Authorization: Bearer $BANK1_ADMIN_TOKEN`):
//! `GET /admin/transfers`, every transfer bank1 holds, newest first, by status, a page at a
//! time. The console's transfer list; the reconciliation feed (`GET /api/transfers`) holds only
//! the debited ones, in feed order.

use axum::extract::State;
use axum::Json;
use common::service::error::{AppQuery, Code, Error, ErrorBody};
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::Result;
use crate::store::{self, Status};
use crate::transfers::TransferView;
use crate::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list))
}

/// Transfers on one page at most.
const MAX_LIMIT: i64 = 500;
const DEFAULT_LIMIT: i64 = 50;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// Only this status: `COMMITTED`, `ROLLED_BACK` or `REFUNDED`.
    #[param(pattern = "^(COMMITTED|ROLLED_BACK|REFUNDED)$")]
    status: Option<String>,
    /// Only transfers older than this `seq` (the `next_before` of the previous page).
    #[param(minimum = 1)]
    before: Option<i64>,
    /// At most this many (1-500, default 50).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<i64>,
}

/// A page of transfers, newest first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TransferList {
    pub items: Vec<TransferView>,
    /// Pass as `before` for the next (older) page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_before: Option<i64>,
}

/// Every transfer bank1 holds, newest first (by `seq`), optionally of one status.
#[utoipa::path(get, path = "/admin/transfers", tag = "transfers", security(("admin_token" = [])),
    params(ListQuery),
    responses(
        (status = 200, description = "Newest first", body = TransferList),
        (status = 400, description = "A bad status, cursor or limit (`invalid_request`, `invalid_cursor`, \
            `invalid_limit`, `bad_request`)", body = ErrorBody),
    ))]
async fn list(State(state): State<AppState>, AppQuery(q): AppQuery<ListQuery>) -> Result<Json<TransferList>> {
    let status =
        q.status.map(Status::try_from).transpose().map_err(|_| {
            Error::bad_request(Code::InvalidRequest, "status must be COMMITTED, ROLLED_BACK or REFUNDED")
        })?;
    let before = match q.before {
        Some(b) if b < 1 => return Err(Error::bad_request(Code::InvalidCursor, "before must be a seq ≥ 1")),
        b => b,
    };
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(Error::bad_request(Code::InvalidLimit, format!("limit must be 1-{MAX_LIMIT}")));
    }
    let rows = store::transfers_newest_first(&state.shared.db.read, status, before, limit).await?;
    let next_before = (rows.len() as i64 == limit).then(|| rows.last().map(|r| r.seq)).flatten();
    Ok(Json(TransferList { items: rows.iter().map(TransferView::from_row).collect(), next_before }))
}
