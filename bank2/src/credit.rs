//! The one credit path (DESIGN flow 3): fault check, then dedup row + credit in ONE database
//! transaction. Every deliverer (MQ consumer, reconciler, DLQ redrive) goes through here.

use common::message::TransferMessage;
use sqlx::AnyPool;

use crate::faults::Faults;
use crate::store::{self, Credit};

/// How a transfer reached bank2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Mq,
    Reconcile,
    DlqRedrive,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Mq => "MQ",
            Source::Reconcile => "RECONCILE",
            Source::DlqRedrive => "DLQ_REDRIVE",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CreditOutcome {
    /// Applied now.
    Credited,
    /// Applied before (dedup row present): nothing changed.
    AlreadyCredited,
    /// Not applied; worth retrying (fault, unknown receiver account, database error).
    Failed(String),
}

/// Credits `msg.amount` to `msg.to_account` exactly once.
#[tracing::instrument(skip(pool, faults, msg), fields(tx_no = %msg.tx_no, source = source.as_str()))]
pub async fn apply(pool: &AnyPool, faults: Faults, msg: &TransferMessage, source: Source) -> CreditOutcome {
    if faults.credit_fails(msg.amount) {
        // A credit that already happened stays a success: faults never undo or hide one.
        if let Ok(Some(_)) = store::credit(pool, msg.tx_no.as_str()).await {
            return CreditOutcome::AlreadyCredited;
        }
        return CreditOutcome::Failed("injected fault: consume_fail_at_least".into());
    }
    match try_apply(pool, msg, source).await {
        Ok(o) => o,
        Err(e) => CreditOutcome::Failed(format!("database error: {e}")),
    }
}

async fn try_apply(pool: &AnyPool, msg: &TransferMessage, source: Source) -> sqlx::Result<CreditOutcome> {
    let mut tx = pool.begin().await?;
    let row = Credit {
        tx_no: msg.tx_no.to_string(),
        from_account: msg.from_account.to_string(),
        to_account: msg.to_account.to_string(),
        amount: msg.amount.minor(),
        source: source.as_str().to_owned(),
        credited_at: common::now_ms(),
    };
    // The dedup row first: it takes the write lock and detects a repeat before any credit.
    match store::insert_dedup(&mut tx, &row).await {
        Ok(()) => {}
        Err(e) if common::db::is_unique_violation(&e) => return Ok(CreditOutcome::AlreadyCredited),
        Err(e) => return Err(e),
    }
    if !store::add_balance(&mut tx, msg.to_account.as_str(), msg.amount.minor()).await? {
        tx.rollback().await?;
        return Ok(CreditOutcome::Failed(format!("unknown receiver account {} at bank2", msg.to_account)));
    }
    tx.commit().await?;
    Ok(CreditOutcome::Credited)
}
