//! bank2's SQL. Engine-neutral statements; the credit's two writes share one transaction.

use common::ids::AccountNo;
use sqlx::{AnyConnection, AnyPool, FromRow};

#[derive(Debug, Clone, FromRow)]
pub struct Account {
    pub account_no: String,
    pub account_name: String,
    pub balance: i64,
}

#[derive(Debug, Clone, FromRow)]
pub struct Credit {
    pub tx_no: String,
    pub from_account: String,
    pub to_account: String,
    pub amount: i64,
    pub source: String,
    pub credited_at: i64,
}

#[derive(Debug, Clone, FromRow)]
pub struct Attempt {
    pub reconsume_times: i32,
    pub msg_id: String,
    pub error: String,
    pub at: i64,
}

/// How much of a quarantined body is kept (the column is VARCHAR(8000) on MySQL).
pub const QUARANTINE_BODY_CHARS: usize = 8000;

#[derive(Debug, Clone, FromRow)]
pub struct Quarantined {
    pub msg_key: String,
    pub msg_id: String,
    pub tx_no: Option<String>,
    pub body: String,
    pub reason: String,
    pub at: i64,
}

#[tracing::instrument(skip(pool))]
pub async fn account(pool: &AnyPool, no: &AccountNo) -> sqlx::Result<Option<Account>> {
    sqlx::query_as::<_, Account>("SELECT account_no, account_name, balance FROM account_info WHERE account_no = ?")
        .bind(no.as_str())
        .fetch_optional(pool)
        .await
}

#[tracing::instrument(skip(pool))]
pub async fn credit(pool: &AnyPool, tx_no: &str) -> sqlx::Result<Option<Credit>> {
    sqlx::query_as::<_, Credit>(
        "SELECT tx_no, from_account, to_account, amount, source, credited_at FROM de_duplication WHERE tx_no = ?",
    )
    .bind(tx_no)
    .fetch_optional(pool)
    .await
}

/// The dedup row; a unique violation means the transfer was applied already.
#[tracing::instrument(skip(conn, c), fields(tx_no = %c.tx_no))]
pub async fn insert_dedup(conn: &mut AnyConnection, c: &Credit) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO de_duplication (tx_no, from_account, to_account, amount, source, credited_at) VALUES (?, ?, ?, ?, ?, ?)",
    )
    .bind(&c.tx_no)
    .bind(&c.from_account)
    .bind(&c.to_account)
    .bind(c.amount)
    .bind(&c.source)
    .bind(c.credited_at)
    .execute(conn)
    .await
    .map(|_| ())
}

/// Adds to a balance; false when the account does not exist.
#[tracing::instrument(skip(conn))]
pub async fn add_balance(conn: &mut AnyConnection, to: &str, amount: i64) -> sqlx::Result<bool> {
    let r = sqlx::query("UPDATE account_info SET balance = balance + ? WHERE account_no = ?")
        .bind(amount)
        .bind(to)
        .execute(conn)
        .await?;
    Ok(r.rows_affected() == 1)
}

#[tracing::instrument(skip(pool, error))]
pub async fn record_attempt(
    pool: &AnyPool,
    tx_no: &str,
    reconsume_times: i32,
    msg_id: &str,
    error: &str,
) -> sqlx::Result<()> {
    let error: String = error.chars().take(1000).collect();
    sqlx::query("INSERT INTO delivery_attempt (tx_no, reconsume_times, msg_id, error, at) VALUES (?, ?, ?, ?, ?)")
        .bind(tx_no)
        .bind(reconsume_times)
        .bind(msg_id)
        .bind(error)
        .bind(common::now_ms())
        .execute(pool)
        .await
        .map(|_| ())
}

#[tracing::instrument(skip(pool))]
pub async fn attempts(pool: &AnyPool, tx_no: &str) -> sqlx::Result<Vec<Attempt>> {
    sqlx::query_as::<_, Attempt>(
        "SELECT reconsume_times, msg_id, error, at FROM delivery_attempt WHERE tx_no = ? ORDER BY id",
    )
    .bind(tx_no)
    .fetch_all(pool)
    .await
}

/// Quarantines a message once (keyed by its stable UNIQ_KEY / msg id); repeats are ignored.
#[tracing::instrument(skip(pool, q), fields(msg_key = %q.msg_key))]
pub async fn quarantine(pool: &AnyPool, q: &Quarantined) -> sqlx::Result<()> {
    let r = sqlx::query("INSERT INTO quarantine (msg_key, msg_id, tx_no, body, reason, at) VALUES (?, ?, ?, ?, ?, ?)")
        .bind(&q.msg_key)
        .bind(&q.msg_id)
        .bind(&q.tx_no)
        .bind(&q.body)
        .bind(&q.reason)
        .bind(q.at)
        .execute(pool)
        .await;
    match r {
        Ok(_) => Ok(()),
        Err(e) if common::db::is_unique_violation(&e) => Ok(()),
        Err(e) => Err(e),
    }
}

#[tracing::instrument(skip(pool))]
pub async fn quarantined(pool: &AnyPool, limit: i64) -> sqlx::Result<Vec<Quarantined>> {
    sqlx::query_as::<_, Quarantined>(
        "SELECT msg_key, msg_id, tx_no, body, reason, at FROM quarantine ORDER BY at DESC LIMIT ?",
    )
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// The reconciler's feed cursor (0 before the first run).
#[tracing::instrument(skip(pool))]
pub async fn cursor(pool: &AnyPool, name: &str) -> sqlx::Result<i64> {
    let row: Option<(i64,)> =
        sqlx::query_as("SELECT position FROM reconcile_cursor WHERE name = ?").bind(name).fetch_optional(pool).await?;
    Ok(row.map_or(0, |r| r.0))
}

/// Stores the cursor (insert on first use, then update).
#[tracing::instrument(skip(pool))]
pub async fn set_cursor(pool: &AnyPool, name: &str, position: i64) -> sqlx::Result<()> {
    let now = common::now_ms();
    let r = sqlx::query("UPDATE reconcile_cursor SET position = ?, updated_at = ? WHERE name = ?")
        .bind(position)
        .bind(now)
        .bind(name)
        .execute(pool)
        .await?;
    if r.rows_affected() == 0 {
        sqlx::query("INSERT INTO reconcile_cursor (name, position, updated_at) VALUES (?, ?, ?)")
            .bind(name)
            .bind(position)
            .bind(now)
            .execute(pool)
            .await?;
    }
    Ok(())
}
