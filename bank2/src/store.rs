//! bank2's SQL. Engine-neutral statements; writes that belong together take a
//! `&mut AnyConnection` inside the caller's transaction.

use common::domain::money::MAX_BALANCE_MINOR;
use common::service::balances::Changes;
use serde::Serialize;
use sqlx::any::AnyArguments;
use sqlx::query::Query;
use sqlx::{Any, AnyConnection, AnyPool, FromRow};

/// The schema, SQLite's and MySQL's (`sql/bank2/`, with the shared tables; sql/README.md): applied at
/// start-up.
pub static MIGRATORS: [sqlx::migrate::Migrator; 2] =
    [sqlx::migrate!("../sql/bank2/sqlite"), sqlx::migrate!("../sql/bank2/mysql")];

/// How an applied transfer ended at bank2 (`de_duplication.outcome`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AppliedAs {
    /// The receiver was credited.
    Credited,
    /// It can never be applied; the funds go back to bank1.
    Rejected,
}

impl AppliedAs {
    pub fn as_str(self) -> &'static str {
        match self {
            AppliedAs::Credited => "CREDITED",
            AppliedAs::Rejected => "REJECTED",
        }
    }
}

impl TryFrom<String> for AppliedAs {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        match s.as_str() {
            "CREDITED" => Ok(AppliedAs::Credited),
            "REJECTED" => Ok(AppliedAs::Rejected),
            other => Err(format!("unknown outcome {other:?}")),
        }
    }
}

/// How a transfer reached bank2 (`de_duplication.source`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Source {
    Mq,
    Reconcile,
    DlqRedrive,
    /// An operator returned a dead letter's funds (`POST /admin/dlq/refund`).
    DlqRefund,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Mq => "MQ",
            Source::Reconcile => "RECONCILE",
            Source::DlqRedrive => "DLQ_REDRIVE",
            Source::DlqRefund => "DLQ_REFUND",
        }
    }
}

impl TryFrom<String> for Source {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        [Source::Mq, Source::Reconcile, Source::DlqRedrive, Source::DlqRefund]
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| format!("unknown source {s:?}"))
    }
}

/// A `de_duplication` row: one applied transfer.
#[derive(Debug, Clone, FromRow)]
pub struct Applied {
    pub tx_no: String,
    pub from_account: String,
    pub to_account: String,
    pub amount: i64,
    #[sqlx(try_from = "String")]
    pub source: Source,
    /// When the row was written (credited or rejected), ms.
    pub credited_at: i64,
    #[sqlx(try_from = "String")]
    pub outcome: AppliedAs,
    pub reason: Option<String>,
    pub feed_pos: Option<i64>,
}

const APPLIED_COLUMNS: &str = "tx_no, from_account, to_account, amount, source, credited_at, outcome, reason, feed_pos";

#[derive(Debug, Clone, FromRow)]
pub struct Attempt {
    pub reconsume_times: i32,
    pub msg_id: String,
    pub error: String,
    pub at: i64,
}

/// Longest stored rejection reason (VARCHAR(255)).
pub const REASON_CHARS: usize = 255;

/// The applied rows of `tx_nos` that bank2 has (the query interface,
/// [`common::domain::proof`]).
pub async fn applied_of(pool: &AnyPool, tx_nos: &[common::domain::ids::TxNo]) -> sqlx::Result<Vec<Applied>> {
    let sql = format!(
        "SELECT {APPLIED_COLUMNS} FROM de_duplication WHERE tx_no IN ({})",
        common::infra::db::placeholders(tx_nos.len())
    );
    let mut q = sqlx::query_as::<_, Applied>(&sql);
    for t in tx_nos {
        q = q.bind(t.as_str());
    }
    q.fetch_all(pool).await
}

#[tracing::instrument(skip(pool))]
pub async fn applied(pool: &AnyPool, tx_no: &str) -> sqlx::Result<Option<Applied>> {
    sqlx::query_as::<_, Applied>(&format!("SELECT {APPLIED_COLUMNS} FROM de_duplication WHERE tx_no = ?"))
        .bind(tx_no)
        .fetch_optional(pool)
        .await
}

/// The dedup row; a unique violation means the transfer was applied already (credited or
/// rejected).
#[tracing::instrument(skip(conn, a), fields(tx_no = %a.tx_no))]
pub async fn insert_applied(conn: &mut AnyConnection, a: &Applied) -> sqlx::Result<()> {
    insert_applied_all(conn, std::slice::from_ref(a)).await
}

/// Inserts several dedup rows in one statement (a batch credit's): all of them, or none when
/// one tx_no is applied already (a unique violation).
pub async fn insert_applied_all(conn: &mut AnyConnection, rows: &[Applied]) -> sqlx::Result<()> {
    let sql = insert_applied_sql(rows.len());
    bind_applied(sqlx::query(&sql), rows).execute(conn).await.map(|_| ())
}

/// SQLite: [`insert_applied_all`] and the credits' `UPDATE` as ONE query of two statements: one
/// round trip to the connection's thread instead of two (sqlx binds each statement's
/// placeholders in turn; MySQL's prepared statements take one statement each). True when every
/// row was inserted and every receiver credited; a unique violation is an error, as there.
pub async fn insert_applied_and_credit(
    conn: &mut AnyConnection,
    rows: &[Applied],
    credits: &Changes<'_>,
) -> sqlx::Result<bool> {
    let sql = format!("{}; {}", insert_applied_sql(rows.len()), credits.sql());
    let q = credits.bind(bind_applied(sqlx::query(&sql).persistent(false), rows));
    // The INSERT adds every row or fails; the rest is the UPDATE's count.
    Ok(q.execute(conn).await?.rows_affected() == rows.len() as u64 + credits.accounts())
}

/// The multi-row INSERT of `rows` dedup rows.
fn insert_applied_sql(rows: usize) -> String {
    const COLUMNS: usize = 8;
    format!(
        "INSERT INTO de_duplication (tx_no, from_account, to_account, amount, source, credited_at, outcome, reason) \
         VALUES {}",
        common::infra::db::value_rows(COLUMNS, rows)
    )
}

/// Binds `rows` to [`insert_applied_sql`]'s placeholders, in its column order.
fn bind_applied<'q>(mut q: Query<'q, Any, AnyArguments<'q>>, rows: &'q [Applied]) -> Query<'q, Any, AnyArguments<'q>> {
    for a in rows {
        q = q
            .bind(&a.tx_no)
            .bind(&a.from_account)
            .bind(&a.to_account)
            .bind(a.amount)
            .bind(a.source.as_str())
            .bind(a.credited_at)
            .bind(a.outcome.as_str())
            .bind(&a.reason);
    }
    q
}

/// Why a credit could not be applied; every one is permanent (no retry can fix it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    UnknownAccount,
    Closed,
    Ceiling,
}

/// Credits an open account, never past [`MAX_BALANCE_MINOR`]; `Err(why)` changes nothing.
#[tracing::instrument(skip(conn))]
pub async fn add_balance(conn: &mut AnyConnection, to: &str, amount: i64) -> sqlx::Result<Result<(), Refused>> {
    let r = sqlx::query(
        "UPDATE account_info SET balance = balance + ? WHERE account_no = ? AND status = 'OPEN' AND balance <= ?",
    )
    .bind(amount)
    .bind(to)
    .bind(MAX_BALANCE_MINOR - amount)
    .execute(&mut *conn)
    .await?;
    if r.rows_affected() == 1 {
        return Ok(Ok(()));
    }
    let status: Option<(String,)> =
        sqlx::query_as("SELECT status FROM account_info WHERE account_no = ?").bind(to).fetch_optional(conn).await?;
    Ok(Err(match status {
        None => Refused::UnknownAccount,
        Some((s,)) if s != "OPEN" => Refused::Closed,
        Some(_) => Refused::Ceiling,
    }))
}

/// The dead letters not applied yet: transfers whose delivery failed at the last rung of the
/// retry ladder (`reconsume_times >= max`, so the broker moved them to `%DLQ%<group>`) and that
/// no redrive, refund or reconciliation has applied since. This is the DLQ's size as an
/// operator acts on it; the topic itself keeps every message until the broker expires it.
pub async fn dead_letters(pool: &AnyPool, max_reconsume_times: i32) -> sqlx::Result<i64> {
    let sql = "SELECT COUNT(DISTINCT a.tx_no) FROM delivery_attempt a WHERE a.reconsume_times >= ? \
               AND NOT EXISTS (SELECT 1 FROM de_duplication d WHERE d.tx_no = a.tx_no)";
    let (n,): (i64,) = sqlx::query_as(sql).bind(max_reconsume_times).fetch_one(pool).await?;
    Ok(n)
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
    let sql = "INSERT INTO delivery_attempt (tx_no, reconsume_times, msg_id, error, at) VALUES (?, ?, ?, ?, ?)";
    let q = sqlx::query(sql).bind(tx_no).bind(reconsume_times).bind(msg_id).bind(error).bind(common::now_ms());
    q.execute(pool).await.map(drop)
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

/// The rejection feed's rows and order (see [`common::feed`]).
pub const REJECTION_FEED: common::service::feed::FeedTable = common::service::feed::FeedTable {
    table: "de_duplication",
    key: "tx_no",
    ready: "outcome = 'REJECTED'",
    order: "credited_at, tx_no",
    columns: APPLIED_COLUMNS,
};

/// State of one attempt to publish a refund notice (`refund_notice.state`).
pub const NOTICE_SENT: &str = "SENT";
pub const NOTICE_ROLLED_BACK: &str = "ROLLED_BACK";

/// Records a refund-notice attempt; a unique violation means the check-back already wrote
/// its tombstone (or this attempt ran before).
pub async fn insert_notice(conn: &mut AnyConnection, notice_id: &str, tx_no: &str, state: &str) -> sqlx::Result<()> {
    let sql = "INSERT INTO refund_notice (notice_id, tx_no, state, at) VALUES (?, ?, ?, ?)";
    sqlx::query(sql).bind(notice_id).bind(tx_no).bind(state).bind(common::now_ms()).execute(conn).await.map(drop)
}

/// The check-back's answer source: the attempt's state, writing a ROLLED_BACK tombstone when
/// there is none. Against an in-flight rejection this waits for it (row lock / SQLite's single
/// writer) and then sees its outcome, so the answer is definitive.
pub async fn settle_notice(pool: &AnyPool, notice_id: &str, tx_no: &str) -> sqlx::Result<String> {
    let mut conn = pool.acquire().await?;
    match insert_notice(&mut conn, notice_id, tx_no, NOTICE_ROLLED_BACK).await {
        Ok(()) => return Ok(NOTICE_ROLLED_BACK.to_owned()),
        Err(e) if common::infra::db::is_unique_violation(&e) => {}
        Err(e) => return Err(e),
    }
    let (state,): (String,) = sqlx::query_as("SELECT state FROM refund_notice WHERE notice_id = ?")
        .bind(notice_id)
        .fetch_one(&mut *conn)
        .await?;
    Ok(state)
}
