//! The transfer flow (DESIGN flow 1): validate, pre-check, send the half message whose local
//! transaction debits, and report what really happened.

use std::sync::{Arc, Mutex};

use common::api_error::ApiError;
use common::ids::{AccountNo, TxNo};
use common::message::{TransferMessage, MESSAGE_VERSION};
use common::money::Amount;
use rocketmq_client_rust::LocalTransactionState;
use serde::Serialize;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::producer::{LocalOutcome, LocalTxArg, Refusal};
use crate::store::{self, NewTransfer, TransferRow, COMMITTED};
use crate::AppState;

/// A validated transfer request.
#[derive(Debug, Clone)]
pub struct TransferRequest {
    pub from_account: AccountNo,
    pub to_account: AccountNo,
    pub amount: Amount,
}

impl TransferRequest {
    /// Validates a JSON body field by field, naming the first problem.
    pub fn from_json(v: &Value) -> Result<Self, ApiError> {
        let obj =
            v.as_object().ok_or_else(|| ApiError::unprocessable("invalid_request", "body must be a JSON object"))?;
        let account = |field: &str| -> Result<AccountNo, ApiError> {
            match obj.get(field) {
                None | Some(Value::Null) => {
                    Err(ApiError::unprocessable("invalid_account", format!("{field} is required")))
                }
                Some(Value::String(s)) => {
                    AccountNo::parse(s).map_err(|e| ApiError::unprocessable("invalid_account", format!("{field}: {e}")))
                }
                Some(_) => Err(ApiError::unprocessable("invalid_account", format!("{field} must be a string"))),
            }
        };
        let from_account = account("from_account")?;
        let to_account = account("to_account")?;
        let amount = match obj.get("amount") {
            None | Some(Value::Null) => return Err(ApiError::unprocessable("invalid_amount", "amount is required")),
            Some(Value::String(s)) => {
                Amount::parse(s).map_err(|e| ApiError::unprocessable("invalid_amount", e.to_string()))?
            }
            Some(_) => {
                return Err(ApiError::unprocessable(
                    "invalid_amount",
                    "amount must be a decimal string like \"100.00\" (numbers are refused: they are floats in JSON)",
                ))
            }
        };
        Ok(Self { from_account, to_account, amount })
    }

    /// What an Idempotency-Key is bound to: a replay with other contents is refused.
    pub fn fingerprint(&self) -> String {
        format!("{}|{}|{}", self.from_account, self.to_account, self.amount.minor())
    }
}

/// The reply to `POST /api/transfers` and the body of `GET /api/transfers/{tx_no}`.
#[derive(Debug, Clone, Serialize)]
pub struct TransferView {
    pub tx_no: String,
    /// COMMITTED (debited; will be credited), ROLLED_BACK (nothing debited) or UNKNOWN
    /// (bank1 could not learn its own outcome; the status endpoint will tell).
    pub status: String,
    pub from_account: String,
    pub to_account: String,
    pub amount: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// What bank1 answered the broker for the half message (POST only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<&'static str>,
    pub created_at: String,
    pub created_at_ms: i64,
    /// When the debit's transaction wrote its COMMITTED row (status endpoint and feed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub committed_at_ms: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seq: Option<i64>,
    /// Position in the reconciliation feed (`GET /api/transfers?after=`), once sequenced.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub feed_pos: Option<i64>,
}

impl TransferView {
    pub fn from_row(r: &TransferRow) -> Self {
        Self {
            tx_no: r.tx_no.clone(),
            status: r.status.clone(),
            from_account: r.from_account.clone(),
            to_account: r.to_account.clone(),
            amount: common::money::format_minor(r.amount),
            reason: r.reason.clone(),
            message: None,
            created_at: common::format_ms(r.created_at),
            created_at_ms: r.created_at,
            committed_at_ms: r.committed_at,
            seq: Some(r.seq),
            feed_pos: r.feed_pos,
        }
    }
}

fn message_state(s: LocalTransactionState) -> &'static str {
    match s {
        LocalTransactionState::CommitMessage => "COMMITTED",
        LocalTransactionState::RollbackMessage => "ROLLED_BACK",
        LocalTransactionState::Unknown => "UNKNOWN",
    }
}

/// Cheap refusals before any half message is sent (the debit re-checks atomically).
pub async fn precheck(state: &AppState, req: &TransferRequest) -> Result<()> {
    match store::account(&state.db.pool, &req.from_account).await? {
        None => Err(ApiError::unprocessable(
            "unknown_account",
            format!("account {} does not exist at bank1", req.from_account),
        )
        .into()),
        Some(a) if a.balance < req.amount.minor() => Err(ApiError::unprocessable(
            "insufficient_funds",
            format!(
                "account {} has {}, needs {}",
                req.from_account,
                common::money::format_minor(a.balance),
                req.amount
            ),
        )
        .into()),
        Some(_) => Ok(()),
    }
}

/// Runs one transfer under a fresh tx_no and reports its outcome.
#[tracing::instrument(skip(state, req), fields(tx_no = %tx_no))]
pub async fn execute(state: &AppState, req: &TransferRequest, tx_no: TxNo) -> Result<TransferView> {
    let msg = TransferMessage {
        version: MESSAGE_VERSION,
        tx_no: tx_no.clone(),
        from_account: req.from_account.clone(),
        to_account: req.to_account.clone(),
        amount: req.amount,
        created_at_ms: common::now_ms(),
    };
    let slot = Arc::new(Mutex::new(None));
    let sent = state.publisher.send(&msg, LocalTxArg { msg: msg.clone(), outcome: Arc::clone(&slot) }).await;
    let outcome = slot.lock().unwrap_or_else(|e| e.into_inner()).take();
    let view = |status: &str, reason: Option<String>, answered: Option<LocalTransactionState>| TransferView {
        tx_no: tx_no.to_string(),
        status: status.to_owned(),
        from_account: req.from_account.to_string(),
        to_account: req.to_account.to_string(),
        amount: req.amount.to_string(),
        reason,
        message: answered.map(message_state),
        created_at: common::format_ms(msg.created_at_ms),
        created_at_ms: msg.created_at_ms,
        committed_at_ms: None,
        seq: None,
        feed_pos: None,
    };
    match (sent, outcome) {
        (_, Some((LocalOutcome::Committed, answered))) => {
            state.feed_wake.notify_one();
            Ok(view(COMMITTED, fault_note(answered), Some(answered)))
        }
        (_, Some((LocalOutcome::Refused(Refusal::InsufficientFunds), _))) => Err(ApiError::unprocessable(
            "insufficient_funds",
            format!("account {} has insufficient funds", req.from_account),
        )
        .into()),
        (_, Some((LocalOutcome::Refused(Refusal::UnknownAccount), _))) => Err(ApiError::unprocessable(
            "unknown_account",
            format!("account {} does not exist at bank1", req.from_account),
        )
        .into()),
        (_, Some((LocalOutcome::Refused(r), answered))) => {
            Ok(view(store::ROLLED_BACK, Some(r.reason().to_owned()), Some(answered)))
        }
        (Err(e), None) => {
            // The broker never ran our local transaction: nothing was debited. A tombstone makes
            // that final in case the half message did land and is checked back later.
            let _ = store::tombstone(&state.db.pool, &NewTransfer::of(&msg), "half message not accepted by the broker")
                .await;
            Err(Error::Unavailable(format!("the message broker is unavailable ({e}); nothing was debited")))
        }
        (Ok(answered), None) | (Ok(answered), Some((LocalOutcome::Failed(_), _))) => {
            resolve(state, &msg, answered, view).await
        }
        (Err(_), Some((LocalOutcome::Failed(_), answered))) => resolve(state, &msg, answered, view).await,
    }
}

/// The local transaction's fate is not known first-hand (listener failed or was not run):
/// settle it the way the check-back does and report that.
async fn resolve(
    state: &AppState,
    msg: &TransferMessage,
    answered: LocalTransactionState,
    view: impl Fn(&str, Option<String>, Option<LocalTransactionState>) -> TransferView,
) -> Result<TransferView> {
    match store::tombstone(&state.db.pool, &NewTransfer::of(msg), "local transaction did not complete").await {
        Ok(row) => Ok(view(&row.status, row.reason, Some(answered))),
        Err(e) => {
            tracing::error!(tx_no = %msg.tx_no, error = %e, "outcome unknown; the check-back will settle it");
            Ok(view(
                "UNKNOWN",
                Some("bank1 could not read its own outcome; see GET /api/transfers/{tx_no}".into()),
                Some(answered),
            ))
        }
    }
}

fn fault_note(answered: LocalTransactionState) -> Option<String> {
    match answered {
        LocalTransactionState::CommitMessage => None,
        LocalTransactionState::Unknown => {
            Some("answered UNKNOWN to the broker; its check-back will commit the message".into())
        }
        LocalTransactionState::RollbackMessage => {
            Some("injected fault: message lost (half message rolled back)".into())
        }
    }
}
