//! bank1's SQL. Small, engine-neutral statements (SQLite and MySQL both accept them).
//! Writes that belong together take a `&mut AnyConnection` inside the caller's transaction.

use common::domain::ids::{AccountNo, TxNo};
use common::domain::money::{Amount, MAX_BALANCE_MINOR};
pub use common::domain::transfer::Status;
use sqlx::{AnyConnection, AnyPool, FromRow};

/// The schema, SQLite's and MySQL's (`sql/bank1/`, with the shared tables; sql/README.md): applied at
/// start-up.
pub static MIGRATORS: [sqlx::migrate::Migrator; 2] =
    [sqlx::migrate!("../sql/bank1/sqlite"), sqlx::migrate!("../sql/bank1/mysql")];

#[derive(Debug, Clone, FromRow)]
pub struct TransferRow {
    pub seq: i64,
    pub feed_pos: Option<i64>,
    pub tx_no: String,
    pub from_account: String,
    pub to_account: String,
    pub amount: i64,
    #[sqlx(try_from = "String")]
    pub status: Status,
    pub reason: Option<String>,
    pub created_at: i64,
    pub committed_at: Option<i64>,
    pub refunded_at: Option<i64>,
    pub refund_source: Option<String>,
    /// The local transaction's steps (migration 0005): the half message's id, when the local
    /// transaction began, what it answered the broker; when a ROLLED_BACK row was written.
    pub msg_id: Option<String>,
    pub half_at: Option<i64>,
    pub answer: Option<String>,
    pub rolled_back_at: Option<i64>,
}

/// A check-back of a transfer's half message, and bank1's answer.
#[derive(Debug, Clone, FromRow)]
pub struct CheckBackRow {
    pub msg_id: Option<String>,
    pub at: i64,
    pub answer: String,
}

#[derive(Debug, Clone, FromRow)]
pub struct IdempotencyRow {
    pub request_hash: String,
    pub tx_no: String,
    pub response_status: Option<i32>,
    pub response_body: Option<String>,
    pub created_at: i64,
}

pub const TRANSFER_COLUMNS: &str = "seq, feed_pos, tx_no, from_account, to_account, amount, status, reason, \
                                    created_at, committed_at, refunded_at, refund_source, msg_id, half_at, answer, \
                                    rolled_back_at";

/// The transfer feed's rows and order (see [`common::feed`]): every transfer that was debited,
/// refunded ones included (they were committed first).
pub const TRANSFER_FEED: common::service::feed::FeedTable = common::service::feed::FeedTable {
    table: "transfer",
    key: "seq",
    ready: "status IN ('COMMITTED', 'REFUNDED')",
    order: "seq",
    columns: TRANSFER_COLUMNS,
};

/// The transfers of `tx_nos` that bank1 has (the query interface, [`common::domain::proof`]).
pub async fn transfers_of(pool: &AnyPool, tx_nos: &[TxNo]) -> sqlx::Result<Vec<TransferRow>> {
    let sql = format!(
        "SELECT {TRANSFER_COLUMNS} FROM transfer WHERE tx_no IN ({})",
        common::infra::db::placeholders(tx_nos.len())
    );
    let mut q = sqlx::query_as::<_, TransferRow>(&sql);
    for t in tx_nos {
        q = q.bind(t.as_str());
    }
    q.fetch_all(pool).await
}

#[tracing::instrument(skip(pool), fields(tx_no = %tx_no))]
pub async fn transfer(pool: &AnyPool, tx_no: &TxNo) -> sqlx::Result<Option<TransferRow>> {
    sqlx::query_as::<_, TransferRow>(&format!("SELECT {TRANSFER_COLUMNS} FROM transfer WHERE tx_no = ?"))
        .bind(tx_no.as_str())
        .fetch_optional(pool)
        .await
}

/// Transfers newest first (by `seq`), of one status or all, older than `before` when given.
pub async fn transfers_newest_first(
    pool: &AnyPool,
    status: Option<Status>,
    before: Option<i64>,
    limit: i64,
) -> sqlx::Result<Vec<TransferRow>> {
    let sql = format!(
        "SELECT {TRANSFER_COLUMNS} FROM transfer WHERE (? IS NULL OR status = ?) AND seq < ? ORDER BY seq DESC LIMIT ?"
    );
    let status = status.map(Status::as_str);
    sqlx::query_as::<_, TransferRow>(&sql)
        .bind(status)
        .bind(status)
        .bind(before.unwrap_or(i64::MAX))
        .bind(limit)
        .fetch_all(pool)
        .await
}

/// What makes a transfer: who pays whom how much (minor units), under which tx_no.
#[derive(Debug, Clone, Copy)]
pub struct Facts<'a> {
    pub tx_no: &'a str,
    pub from_account: &'a str,
    pub to_account: &'a str,
    pub amount: i64,
}

impl Facts<'_> {
    /// True when bank1's row is this transfer (same accounts and amount).
    fn matches(&self, row: &TransferRow) -> bool {
        row.from_account == self.from_account && row.to_account == self.to_account && row.amount == self.amount
    }
}

/// One transfer, as inserted.
#[derive(Debug, Clone)]
pub struct NewTransfer<'a> {
    pub transfer: Facts<'a>,
    pub created_at: i64,
}

impl<'a> NewTransfer<'a> {
    pub fn of(msg: &'a common::domain::message::TransferMessage) -> Self {
        let transfer = Facts {
            tx_no: msg.tx_no.as_str(),
            from_account: msg.from_account.as_str(),
            to_account: msg.to_account.as_str(),
            amount: msg.amount.minor(),
        };
        Self { transfer, created_at: msg.created_at_ms }
    }
}

/// What a local transaction knows of itself, recorded on the row it writes: the half
/// message's id, when it began, and the answer it gives the broker. Empty for rows no local
/// transaction wrote (a check-back's tombstone, a half message the broker never took).
#[derive(Debug, Clone, Copy, Default)]
pub struct LocalSteps<'a> {
    pub msg_id: Option<&'a str>,
    pub half_at: Option<i64>,
    pub answer: Option<&'static str>,
}

/// Inserts the transfer row; fails with a unique violation when the tx_no is taken (e.g. by
/// a check-back tombstone), which is how an in-flight local transaction learns it lost.
#[tracing::instrument(skip(conn, t, steps), fields(tx_no = %t.transfer.tx_no))]
pub async fn insert_transfer(
    conn: &mut AnyConnection,
    t: &NewTransfer<'_>,
    status: Status,
    reason: Option<&str>,
    steps: &LocalSteps<'_>,
) -> sqlx::Result<()> {
    insert_transfers(conn, &[(t.clone(), *steps)], status, reason).await
}

/// Inserts several transfer rows in one statement (a group commit's): all of them, or none
/// when one tx_no is taken (a unique violation).
pub async fn insert_transfers(
    conn: &mut AnyConnection,
    rows: &[(NewTransfer<'_>, LocalSteps<'_>)],
    status: Status,
    reason: Option<&str>,
) -> sqlx::Result<()> {
    const COLUMNS: usize = 12;
    let now = common::now_ms();
    let sql = format!(
        "INSERT INTO transfer (tx_no, from_account, to_account, amount, status, reason, created_at, committed_at, \
         msg_id, half_at, answer, rolled_back_at) VALUES {}",
        common::infra::db::value_rows(COLUMNS, rows.len())
    );
    // A statement per group size: prepared once per size, kept in the connection's cache.
    let mut q = sqlx::query(&sql);
    for (t, steps) in rows {
        q = q
            .bind(t.transfer.tx_no)
            .bind(t.transfer.from_account)
            .bind(t.transfer.to_account)
            .bind(t.transfer.amount)
            .bind(status.as_str())
            .bind(reason)
            .bind(t.created_at)
            .bind((status == Status::Committed).then_some(now))
            .bind(steps.msg_id)
            .bind(steps.half_at)
            .bind(steps.answer)
            .bind((status == Status::RolledBack).then_some(now));
    }
    q.execute(conn).await.map(|_| ())
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
#[tracing::instrument(skip(pool, t, steps), fields(tx_no = %t.transfer.tx_no))]
pub async fn tombstone(
    pool: &AnyPool,
    t: &NewTransfer<'_>,
    reason: &str,
    steps: &LocalSteps<'_>,
) -> sqlx::Result<TransferRow> {
    let mut conn = pool.acquire().await?;
    tombstone_on(&mut conn, t, reason, steps).await
}

async fn tombstone_on(
    conn: &mut AnyConnection,
    t: &NewTransfer<'_>,
    reason: &str,
    steps: &LocalSteps<'_>,
) -> sqlx::Result<TransferRow> {
    match insert_transfer(conn, t, Status::RolledBack, Some(reason), steps).await {
        Ok(()) => {}
        Err(e) if common::infra::db::is_unique_violation(&e) => {}
        Err(e) => return Err(e),
    }
    sqlx::query_as::<_, TransferRow>(&format!("SELECT {TRANSFER_COLUMNS} FROM transfer WHERE tx_no = ?"))
        .bind(t.transfer.tx_no)
        .fetch_one(&mut *conn)
        .await
}

/// A check-back, in ONE database transaction: the tombstone (unless a row exists), the
/// answer `answer_of` gives for the row now in force, and the check-back's own row.
#[tracing::instrument(skip(pool, t, answer_of), fields(tx_no = %t.transfer.tx_no))]
pub async fn check_back(
    pool: &AnyPool,
    t: &NewTransfer<'_>,
    msg_id: Option<&str>,
    answer_of: impl FnOnce(&TransferRow) -> &'static str,
) -> sqlx::Result<(TransferRow, &'static str)> {
    let mut tx = pool.begin().await?;
    let row = tombstone_on(&mut tx, t, "check-back: no local transaction committed", &LocalSteps::default()).await?;
    let answer = answer_of(&row);
    sqlx::query("INSERT INTO check_back (tx_no, msg_id, at, answer) VALUES (?, ?, ?, ?)")
        .bind(t.transfer.tx_no)
        .bind(msg_id)
        .bind(common::now_ms())
        .bind(answer)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok((row, answer))
}

/// The check-backs of a transfer, oldest first.
pub async fn check_backs(pool: &AnyPool, tx_no: &TxNo) -> sqlx::Result<Vec<CheckBackRow>> {
    sqlx::query_as::<_, CheckBackRow>("SELECT msg_id, at, answer FROM check_back WHERE tx_no = ? ORDER BY id")
        .bind(tx_no.as_str())
        .fetch_all(pool)
        .await
}

#[tracing::instrument(skip(pool))]
pub async fn idempotency(pool: &AnyPool, key: &str) -> sqlx::Result<Option<IdempotencyRow>> {
    sqlx::query_as::<_, IdempotencyRow>(
        "SELECT request_hash, tx_no, response_status, response_body, created_at FROM idempotency_key WHERE idem_key = ?",
    )
    .bind(key)
    .fetch_optional(pool)
    .await
}

/// Claims an idempotency key for a tx_no; a unique violation means another request has it.
#[tracing::instrument(skip(pool))]
pub async fn claim_idempotency(pool: &AnyPool, key: &str, hash: &str, tx_no: &str) -> sqlx::Result<()> {
    let sql = "INSERT INTO idempotency_key (idem_key, request_hash, tx_no, created_at) VALUES (?, ?, ?, ?)";
    execute(pool, sqlx::query(sql).bind(key).bind(hash).bind(tx_no).bind(common::now_ms())).await.map(drop)
}

/// Records the reply of the request that holds `key` for `tx_no` (a retaken key is not
/// overwritten by the request that abandoned it).
#[tracing::instrument(skip(pool, body))]
pub async fn finish_idempotency(pool: &AnyPool, key: &str, tx_no: &str, status: u16, body: &str) -> sqlx::Result<()> {
    let sql = "UPDATE idempotency_key SET response_status = ?, response_body = ? WHERE idem_key = ? AND tx_no = ?";
    execute(pool, sqlx::query(sql).bind(i32::from(status)).bind(body).bind(key).bind(tx_no)).await.map(drop)
}

/// Frees a key whose request changed nothing (refused before any debit), so a retry may run.
#[tracing::instrument(skip(pool))]
pub async fn release_idempotency(pool: &AnyPool, key: &str, tx_no: &str) -> sqlx::Result<()> {
    let sql = "DELETE FROM idempotency_key WHERE idem_key = ? AND tx_no = ? AND response_status IS NULL";
    execute(pool, sqlx::query(sql).bind(key).bind(tx_no)).await.map(drop)
}

/// Hands an abandoned key (its transfer `old` settled as never debited) to a new transfer.
/// False when another request retook it first.
#[tracing::instrument(skip(pool))]
pub async fn retake_idempotency(pool: &AnyPool, key: &str, old: &str, new: &str) -> sqlx::Result<bool> {
    let sql = "UPDATE idempotency_key SET tx_no = ?, created_at = ? WHERE idem_key = ? AND tx_no = ? \
               AND response_status IS NULL";
    let q = sqlx::query(sql).bind(new).bind(common::now_ms()).bind(key).bind(old);
    Ok(execute(pool, q).await? == 1)
}

/// Runs one statement; the rows it changed.
async fn execute<'q>(
    pool: &AnyPool,
    q: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
) -> sqlx::Result<u64> {
    Ok(q.execute(pool).await?.rows_affected())
}

/// What a refund notice did at bank1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refund {
    /// COMMITTED → REFUNDED and the sender credited back, now.
    Refunded,
    /// Refunded before, with the same facts: nothing changed.
    AlreadyRefunded,
    /// bank1 has this tx_no with other facts (amount, accounts).
    Conflicting(String),
    /// Nothing to give back: no such transfer, or it was never debited.
    Unmatched(String),
}

/// A refund: the transfer it gives back, why, and who asked (`MQ` or `RECONCILE`).
#[derive(Debug, Clone)]
pub struct RefundRequest<'a> {
    pub transfer: Facts<'a>,
    pub reason: &'a str,
    pub source: &'static str,
}

/// The return of funds, in ONE database transaction: the transfer goes COMMITTED → REFUNDED
/// (only with the same facts) and the sender is credited back.
#[tracing::instrument(skip(pool, r), fields(tx_no = %r.transfer.tx_no))]
pub async fn refund(pool: &AnyPool, r: &RefundRequest<'_>) -> sqlx::Result<Refund> {
    let f = &r.transfer;
    let mut tx = pool.begin().await?;
    let reason: String = r.reason.chars().take(255).collect();
    let moved = sqlx::query(
        "UPDATE transfer SET status = 'REFUNDED', reason = ?, refunded_at = ?, refund_source = ? \
         WHERE tx_no = ? AND status = 'COMMITTED' AND from_account = ? AND to_account = ? AND amount = ?",
    )
    .bind(&reason)
    .bind(common::now_ms())
    .bind(r.source)
    .bind(f.tx_no)
    .bind(f.from_account)
    .bind(f.to_account)
    .bind(f.amount)
    .execute(&mut *tx)
    .await?;
    if moved.rows_affected() == 1 {
        // Back to the sender whatever its status: the money was theirs. Never past the ceiling.
        let back = sqlx::query("UPDATE account_info SET balance = balance + ? WHERE account_no = ? AND balance <= ?")
            .bind(f.amount)
            .bind(f.from_account)
            .bind(MAX_BALANCE_MINOR - f.amount)
            .execute(&mut *tx)
            .await?;
        if back.rows_affected() == 1 {
            tx.commit().await?;
            return Ok(Refund::Refunded);
        }
        tx.rollback().await?;
        return Ok(Refund::Unmatched(format!(
            "sender account {} cannot take the refund back (missing, or past the balance ceiling)",
            f.from_account
        )));
    }
    tx.rollback().await?;
    let Some(t) = transfer(pool, &TxNo::parse(f.tx_no).map_err(|e| sqlx::Error::Protocol(e.to_string()))?).await?
    else {
        return Ok(Refund::Unmatched(format!("bank1 has no transfer {}", f.tx_no)));
    };
    Ok(match (t.status, f.matches(&t)) {
        (Status::Refunded, true) => Refund::AlreadyRefunded,
        (Status::RolledBack, _) => Refund::Unmatched(format!("transfer {} was never debited", f.tx_no)),
        _ => Refund::Conflicting(format!(
            "transfer {} is {} → {} {} at bank1; the refund says {} → {} {}",
            f.tx_no,
            t.from_account,
            t.to_account,
            common::domain::money::format_minor(t.amount),
            f.from_account,
            f.to_account,
            common::domain::money::format_minor(f.amount)
        )),
    })
}
