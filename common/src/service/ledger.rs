//! `GET /admin/accounts`: a bank's accounts and its side of the money-conservation sum. The
//! totals are read in one statement (one snapshot); the listed accounts in a second one.
//!
//! Across both banks, `Σ bank1 balances + Σ bank2 balances + in flight` never changes, where
//! in flight is what bank1 debited and has not got back (its COMMITTED transfers, the
//! [`Flow`] bank1 reports) less what bank2 credited from them (bank2's [`Flow`]). Each bank's
//! figures come from one snapshot, and a transfer is credited only after it is debited, so
//! the sum holds whichever bank is read first (README "Console").

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};

use crate::domain::money::format_minor;
use crate::service::app::Service;
use crate::service::error::{AppQuery, Code, Error, ErrorBody, Result};
use crate::service::routes::{Account, AccountView};

/// A bank's own part of the conservation sum: what its transfers add, as one SQL expression
/// over its own tables (no user input).
#[derive(Debug, Clone, Copy)]
pub struct Flow {
    /// `committed` at bank1 (debited, not returned), `credited` at bank2.
    pub name: &'static str,
    /// A scalar subquery giving the amount in minor units.
    pub sql: &'static str,
}

/// Accounts on one page at most.
const MAX_LIMIT: i64 = 1000;

pub fn routes<S: Service>() -> utoipa_axum::router::OpenApiRouter<S> {
    utoipa_axum::router::OpenApiRouter::new()
        .routes(crate::service::api::generic::<__path_summary_handler, _, _, _>(summary_handler::<S>))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct SummaryQuery {
    /// List at most this many accounts, by account number (1-1000, default 100); the totals
    /// always cover them all.
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<i64>,
}

/// A bank's accounts and totals.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Ledger {
    pub bank: String,
    /// By account number, at most `limit`.
    pub accounts: Vec<AccountView>,
    /// How many accounts the bank holds.
    pub account_count: i64,
    /// The sum of every balance, major units.
    pub balance_total: String,
    pub balance_total_minor: i64,
    /// The bank's transfers, as the conservation sum counts them.
    pub flow: FlowTotal,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct FlowTotal {
    /// `committed` (bank1: debited and not returned) or `credited` (bank2: credited from
    /// bank1's transfers).
    pub name: String,
    pub total: String,
    pub total_minor: i64,
}

/// The accounts, the total of their balances, and the bank's transfer total. The totals (the
/// figures the console's conservation sum adds up) come from one statement, one snapshot; the
/// listed accounts from a second, so under load a listed balance may be a moment newer.
#[utoipa::path(get, path = "/admin/accounts", tag = "accounts", security(("admin_token" = [])),
    params(SummaryQuery),
    responses(
        (status = 200, description = "The accounts and totals", body = Ledger),
        (status = 400, description = "A bad limit (`invalid_limit`, `bad_request`)", body = ErrorBody),
    ))]
async fn summary_handler<S: Service>(
    State(state): State<S>,
    AppQuery(q): AppQuery<SummaryQuery>,
) -> Result<Json<Ledger>> {
    let limit = q.limit.unwrap_or(100);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(Error::bad_request(Code::InvalidLimit, format!("limit must be 1-{MAX_LIMIT}")));
    }
    let shared = state.shared();
    let flow = S::FLOW;
    // One statement, one snapshot: the totals agree with each other.
    let sql = format!(
        "SELECT (SELECT COUNT(*) FROM account_info), \
                (SELECT CAST(COALESCE(SUM(balance), 0) AS SIGNED) FROM account_info), \
                (SELECT CAST(COALESCE(({}), 0) AS SIGNED))",
        flow.sql
    );
    let (count, total, moved): (i64, i64, i64) = sqlx::query_as(&sql).fetch_one(&shared.db.read).await?;
    let accounts = sqlx::query_as::<_, Account>(
        "SELECT account_no, account_name, balance, status FROM account_info ORDER BY account_no LIMIT ?",
    )
    .bind(limit)
    .fetch_all(&shared.db.read)
    .await?;
    Ok(Json(Ledger {
        bank: shared.names.bank.to_owned(),
        accounts: accounts.into_iter().map(AccountView::from).collect(),
        account_count: count,
        balance_total: format_minor(total),
        balance_total_minor: total,
        flow: FlowTotal { name: flow.name.to_owned(), total: format_minor(moved), total_minor: moved },
    }))
}
