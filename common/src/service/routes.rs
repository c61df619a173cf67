//! Routes both banks serve the same way: `GET /api/accounts/{account_no}` and `GET /health`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Serialize;
use utoipa_axum::router::OpenApiRouter;

use crate::domain::ids::AccountNo;
use crate::service::api::generic;
use crate::service::app::Service;
use crate::service::error::{Code, Error, ErrorBody, Result};

pub fn routes<S: Service>() -> OpenApiRouter<S> {
    OpenApiRouter::new().routes(generic::<__path_account_view, _, _, _>(account_view::<S>)).routes(generic::<
        __path_health,
        _,
        _,
        _,
    >(health::<S>))
}

/// An account as both banks store it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Account {
    pub account_no: String,
    pub account_name: String,
    /// Minor units.
    pub balance: i64,
    /// `OPEN` or `CLOSED` (a closed account is never credited: transfers to it come back).
    pub status: String,
}

/// `account_info` row of `no`, read on `db`: a pool, or the connection of a transaction in
/// progress (bank1's refused debit asks on the connection its group holds).
pub async fn account<'e>(
    db: impl sqlx::Executor<'e, Database = sqlx::Any>,
    no: &AccountNo,
) -> sqlx::Result<Option<Account>> {
    sqlx::query_as::<_, Account>(
        "SELECT account_no, account_name, balance, status FROM account_info WHERE account_no = ?",
    )
    .bind(no.as_str())
    .fetch_optional(db)
    .await
}

/// An account as the API shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AccountView {
    account_no: String,
    account_name: String,
    /// Major units, two decimals (`"100.00"`).
    balance: String,
    /// `OPEN` or `CLOSED`.
    status: String,
}

/// An account and its balance.
#[utoipa::path(get, path = "/api/accounts/{account_no}", tag = "accounts",
    params(("account_no" = String, Path, description = "The account number", pattern = "^[A-Za-z0-9_-]{1,32}$", example = "1")),
    responses(
        (status = 200, description = "The account", body = AccountView),
        (status = 400, description = "Not a valid account number (`invalid_account`)", body = ErrorBody),
        (status = 404, description = "No such account here (`unknown_account`)", body = ErrorBody),
    ))]
async fn account_view<S: Service>(State(state): State<S>, Path(no): Path<String>) -> Result<Json<AccountView>> {
    let no = AccountNo::parse(&no).map_err(|e| Error::bad_request(Code::InvalidAccount, e.to_string()))?;
    let shared = state.shared();
    let a = account(&shared.db.read, &no).await?.ok_or_else(|| {
        Error::not_found(Code::UnknownAccount, format!("account {no} does not exist at {}", shared.names.bank))
    })?;
    Ok(Json(AccountView::from(a)))
}

impl From<Account> for AccountView {
    fn from(a: Account) -> Self {
        Self {
            balance: crate::domain::money::format_minor(a.balance),
            account_no: a.account_no,
            account_name: a.account_name,
            status: a.status,
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Health {
    service: &'static str,
    /// `ok`, or `degraded` when the database does not answer.
    status: &'static str,
    database: bool,
}

/// Whether the service and its database answer.
#[utoipa::path(get, path = "/health", tag = "operations",
    responses(
        (status = 200, description = "Serving", body = Health),
        (status = 503, description = "The database does not answer", body = Health),
    ))]
async fn health<S: Service>(State(state): State<S>) -> (StatusCode, Json<Health>) {
    let shared = state.shared();
    let database = sqlx::query("SELECT 1").execute(&shared.db.pool).await.is_ok();
    let status = if database { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(Health { service: shared.names.bank, status: if database { "ok" } else { "degraded" }, database }))
}
