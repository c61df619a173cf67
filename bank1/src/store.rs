//! bank1's SQL. Small, engine-neutral statements (SQLite and MySQL both accept them).
//! Writes that belong together take a `&mut AnyConnection` inside the caller's transaction.

use common::ids::{AccountNo, TxNo};
use common::money::Amount;
use sqlx::{AnyConnection, AnyPool, FromRow};

pub const COMMITTED: &str = "COMMITTED";
pub const ROLLED_BACK: &str = "ROLLED_BACK";

#[derive(Debug, Clone, FromRow)]
pub struct Account {
    pub account_no: String,
    pub account_name: String,
    pub balance: i64,
}

#[derive(Debug, Clone, FromRow)]
pub struct TransferRow {
    pub seq: i64,
    pub feed_pos: Option<i64>,
    pub tx_no: String,
    pub from_account: String,
    pub to_account: String,
    pub amount: i64,
    pub status: String,
    pub reason: Option<String>,
    pub created_at: i64,
    pub committed_at: Option<i64>,
}

#[derive(Debug, Clone, FromRow)]
pub struct IdempotencyRow {
    pub request_hash: String,
    pub tx_no: String,
    pub response_status: Option<i32>,
    pub response_body: Option<String>,
}

#[tracing::instrument(skip(pool))]
pub async fn account(pool: &AnyPool, no: &AccountNo) -> sqlx::Result<Option<Account>> {
    sqlx::query_as::<_, Account>("SELECT account_no, account_name, balance FROM account_info WHERE account_no = ?")
        .bind(no.as_str())
        .fetch_optional(pool)
        .await
}

pub const TRANSFER_COLUMNS: &str =
    "seq, feed_pos, tx_no, from_account, to_account, amount, status, reason, created_at, committed_at";

#[tracing::instrument(skip(pool), fields(tx_no = %tx_no))]
pub async fn transfer(pool: &AnyPool, tx_no: &TxNo) -> sqlx::Result<Option<TransferRow>> {
    sqlx::query_as::<_, TransferRow>(&format!("SELECT {TRANSFER_COLUMNS} FROM transfer WHERE tx_no = ?"))
        .bind(tx_no.as_str())
        .fetch_optional(pool)
        .await
}

/// The facts of one transfer, as inserted.
#[derive(Debug, Clone)]
pub struct NewTransfer<'a> {
    pub tx_no: &'a str,
    pub from_account: &'a str,
    pub to_account: &'a str,
    pub amount: i64,
    pub created_at: i64,
}

impl<'a> NewTransfer<'a> {
    pub fn of(msg: &'a common::message::TransferMessage) -> Self {
        Self {
            tx_no: msg.tx_no.as_str(),
            from_account: msg.from_account.as_str(),
            to_account: msg.to_account.as_str(),
            amount: msg.amount.minor(),
            created_at: msg.created_at_ms,
        }
    }
}

/// Inserts the transfer row; fails with a unique violation when the tx_no is taken (e.g. by
/// a check-back tombstone), which is how an in-flight local transaction learns it lost.
#[tracing::instrument(skip(conn, t), fields(tx_no = %t.tx_no))]
pub async fn insert_transfer(
    conn: &mut AnyConnection,
    t: &NewTransfer<'_>,
    status: &str,
    reason: Option<&str>,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO transfer (tx_no, from_account, to_account, amount, status, reason, created_at, committed_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(t.tx_no)
    .bind(t.from_account)
    .bind(t.to_account)
    .bind(t.amount)
    .bind(status)
    .bind(reason)
    .bind(t.created_at)
    .bind((status == COMMITTED).then(common::now_ms))
    .execute(conn)
    .await
    .map(|_| ())
}

/// Conditional debit: true when the account had the funds and was debited.
#[tracing::instrument(skip(conn))]
pub async fn debit(conn: &mut AnyConnection, from: &AccountNo, amount: Amount) -> sqlx::Result<bool> {
    let r = sqlx::query("UPDATE account_info SET balance = balance - ? WHERE account_no = ? AND balance >= ?")
        .bind(amount.minor())
        .bind(from.as_str())
        .bind(amount.minor())
        .execute(conn)
        .await?;
    Ok(r.rows_affected() == 1)
}

/// Writes a ROLLED_BACK row for a tx_no unless one exists. Returns the row now in force.
/// Against an in-flight local transaction this waits for it (row lock / SQLite's single
/// connection) and then sees its outcome, so the answer is always definitive.
#[tracing::instrument(skip(pool, t), fields(tx_no = %t.tx_no))]
pub async fn tombstone(pool: &AnyPool, t: &NewTransfer<'_>, reason: &str) -> sqlx::Result<TransferRow> {
    let mut conn = pool.acquire().await?;
    match insert_transfer(&mut conn, t, ROLLED_BACK, Some(reason)).await {
        Ok(()) => {}
        Err(e) if common::db::is_unique_violation(&e) => {}
        Err(e) => return Err(e),
    }
    sqlx::query_as::<_, TransferRow>(&format!("SELECT {TRANSFER_COLUMNS} FROM transfer WHERE tx_no = ?"))
        .bind(t.tx_no)
        .fetch_one(&mut *conn)
        .await
}

#[tracing::instrument(skip(pool))]
pub async fn idempotency(pool: &AnyPool, key: &str) -> sqlx::Result<Option<IdempotencyRow>> {
    sqlx::query_as::<_, IdempotencyRow>(
        "SELECT request_hash, tx_no, response_status, response_body FROM idempotency_key WHERE idem_key = ?",
    )
    .bind(key)
    .fetch_optional(pool)
    .await
}

/// Claims an idempotency key for a tx_no; a unique violation means another request has it.
#[tracing::instrument(skip(pool))]
pub async fn claim_idempotency(pool: &AnyPool, key: &str, hash: &str, tx_no: &str) -> sqlx::Result<()> {
    sqlx::query("INSERT INTO idempotency_key (idem_key, request_hash, tx_no, created_at) VALUES (?, ?, ?, ?)")
        .bind(key)
        .bind(hash)
        .bind(tx_no)
        .bind(common::now_ms())
        .execute(pool)
        .await
        .map(|_| ())
}

#[tracing::instrument(skip(pool, body))]
pub async fn finish_idempotency(pool: &AnyPool, key: &str, status: u16, body: &str) -> sqlx::Result<()> {
    sqlx::query("UPDATE idempotency_key SET response_status = ?, response_body = ? WHERE idem_key = ?")
        .bind(i32::from(status))
        .bind(body)
        .bind(key)
        .execute(pool)
        .await
        .map(|_| ())
}

/// Frees a key whose request changed nothing (refused before any debit), so a retry may run.
#[tracing::instrument(skip(pool))]
pub async fn release_idempotency(pool: &AnyPool, key: &str) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM idempotency_key WHERE idem_key = ? AND response_status IS NULL")
        .bind(key)
        .execute(pool)
        .await
        .map(|_| ())
}
