//! The transfer flow (docs/ARCHITECTURE.md, "Transfer"): validate, pre-check, send the half
//! message whose local transaction debits, and report what really happened.

use common::domain::ids::{AccountNo, TxNo};
use common::domain::message::{Body, TransferMessage, MESSAGE_VERSION};
use common::domain::money::Amount;
use rocketmq_client_rust::LocalTransactionState;
use serde::Serialize;
use serde_json::Value;

use crate::error::{Code, Error, Result};
use crate::producer::{LocalOutcome, Refusal};
use crate::store::{self, Facts, NewTransfer, Status, TransferRow};
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
    pub fn from_json(v: &Value) -> Result<Self> {
        let obj =
            v.as_object().ok_or_else(|| Error::unprocessable(Code::InvalidRequest, "body must be a JSON object"))?;
        let account = |field: &str| -> Result<AccountNo> {
            match obj.get(field) {
                None | Some(Value::Null) => {
                    Err(Error::unprocessable(Code::InvalidAccount, format!("{field} is required")))
                }
                Some(Value::String(s)) => {
                    AccountNo::parse(s).map_err(|e| Error::unprocessable(Code::InvalidAccount, format!("{field}: {e}")))
                }
                Some(_) => Err(Error::unprocessable(Code::InvalidAccount, format!("{field} must be a string"))),
            }
        };
        let from_account = account("from_account")?;
        let to_account = account("to_account")?;
        let amount = match obj.get("amount") {
            None | Some(Value::Null) => return Err(Error::unprocessable(Code::InvalidAmount, "amount is required")),
            Some(Value::String(s)) => {
                Amount::parse(s).map_err(|e| Error::unprocessable(Code::InvalidAmount, e.to_string()))?
            }
            Some(_) => {
                return Err(Error::unprocessable(
                    Code::InvalidAmount,
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

/// The body of `POST /api/transfers`, as documented. The handler reads it field by field
/// ([`TransferRequest::from_json`]) to name the first problem with its own code.
#[derive(Debug, utoipa::ToSchema)]
#[schema(example = json!({"from_account": "1", "to_account": "2", "amount": "100.00"}))]
pub struct TransferBody {
    /// The sender's account at bank1.
    #[schema(example = "1", pattern = "^[A-Za-z0-9_-]{1,32}$")]
    pub from_account: String,
    /// The receiver's account at bank2.
    #[schema(example = "2", pattern = "^[A-Za-z0-9_-]{1,32}$")]
    pub to_account: String,
    /// Major units as a decimal string, at most two decimals, > 0 (numbers are refused: JSON
    /// numbers are floats).
    #[schema(example = "100.00", pattern = "^[0-9]{1,15}(\\.[0-9]{1,2})?$")]
    pub amount: String,
}

/// The reply to `POST /api/transfers` and the body of `GET /api/transfers/{tx_no}`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TransferView {
    pub tx_no: String,
    /// COMMITTED (debited; will be credited), ROLLED_BACK (nothing debited), REFUNDED (debited,
    /// then returned by bank2: see `reason`), or UNKNOWN (bank1 could not learn its own
    /// outcome; the status endpoint will tell).
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
    /// When the return of funds was applied (REFUNDED), and how it arrived (`MQ`, `RECONCILE`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refunded_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refunded_at_ms: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refund_source: Option<String>,
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
            status: r.status.as_str().to_owned(),
            from_account: r.from_account.clone(),
            to_account: r.to_account.clone(),
            amount: common::domain::money::format_minor(r.amount),
            reason: r.reason.clone(),
            message: None,
            created_at: common::format_ms(r.created_at),
            created_at_ms: r.created_at,
            committed_at_ms: r.committed_at,
            refunded_at: r.refunded_at.map(common::format_ms),
            refunded_at_ms: r.refunded_at,
            refund_source: r.refund_source.clone(),
            seq: Some(r.seq),
            feed_pos: r.feed_pos,
        }
    }
}

/// bank1's side of a transfer's timeline (`GET /api/transfers/{tx_no}/timeline`), oldest first.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Timeline {
    pub tx_no: String,
    /// The transfer's status now.
    pub status: String,
    pub steps: Vec<Step>,
}

/// One step of a transfer at bank1.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Step {
    /// `ACCEPTED` (bank1 took the request), `HALF_MESSAGE` (the broker stored the half message;
    /// `msg_id`), `LOCAL_COMMITTED` (the debit committed), `ROLLED_BACK` (nothing debited;
    /// `detail` says why), `ANSWERED` (what the local transaction answered the broker:
    /// `detail` COMMIT, ROLLBACK or UNKNOWN), `CHECK_BACK` (the broker asked; `detail` the
    /// answer), `REFUNDED` (the funds came back; `detail` how).
    pub step: &'static str,
    pub at: String,
    pub at_ms: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub msg_id: Option<String>,
}

impl Timeline {
    /// The steps bank1's rows record: the transfer row's columns, and its check-backs.
    pub fn of(t: &TransferRow, check_backs: &[store::CheckBackRow]) -> Self {
        let step = |step, at_ms: i64, detail: Option<String>, msg_id: Option<String>| Step {
            step,
            at: common::format_ms(at_ms),
            at_ms,
            detail,
            msg_id,
        };
        let mut steps = vec![step("ACCEPTED", t.created_at, None, None)];
        if let Some(at) = t.half_at {
            steps.push(step("HALF_MESSAGE", at, None, t.msg_id.clone()));
        }
        let settled = match (t.committed_at, t.rolled_back_at) {
            (Some(at), _) => Some(step("LOCAL_COMMITTED", at, None, None)),
            (None, Some(at)) => Some(step("ROLLED_BACK", at, t.reason.clone(), None)),
            (None, None) => None,
        };
        let answered_at = settled.as_ref().map_or(t.created_at, |s| s.at_ms);
        steps.extend(settled);
        if let Some(answer) = &t.answer {
            steps.push(step("ANSWERED", answered_at, Some(answer.clone()), None));
        }
        for c in check_backs {
            steps.push(step("CHECK_BACK", c.at, Some(c.answer.clone()), c.msg_id.clone()));
        }
        if let Some(at) = t.refunded_at {
            let how = t.refund_source.as_deref().unwrap_or("?");
            steps.push(step("REFUNDED", at, Some(format!("{how}: {}", t.reason.as_deref().unwrap_or(""))), None));
        }
        // Oldest first; steps of the same instant keep the order above (sort is stable).
        steps.sort_by_key(|s| s.at_ms);
        Self { tx_no: t.tx_no.clone(), status: t.status.as_str().to_owned(), steps }
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
    match common::service::routes::account(&state.shared.db.read, &req.from_account).await? {
        None => Err(Error::unprocessable(
            Code::UnknownAccount,
            format!("account {} does not exist at bank1", req.from_account),
        )),
        Some(a) if a.balance < req.amount.minor() => Err(Error::unprocessable(
            Code::InsufficientFunds,
            format!(
                "account {} has {}, needs {}",
                req.from_account,
                common::domain::money::format_minor(a.balance),
                req.amount
            ),
        )),
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
    let (sent, outcome) = match state.publisher.send(msg.tx_no.as_str(), &msg.to_json(), msg.clone()).await {
        Ok(sent) => (Ok(sent.state), sent.outcome),
        Err((e, outcome)) => (Err(e), outcome),
    };
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
        refunded_at: None,
        refunded_at_ms: None,
        refund_source: None,
        seq: None,
        feed_pos: None,
    };
    match (sent, outcome) {
        (_, Some((LocalOutcome::Committed, answered))) => {
            state.feed_wake.notify_one();
            Ok(view(Status::Committed.as_str(), fault_note(answered), Some(answered)))
        }
        (_, Some((LocalOutcome::Refused(Refusal::InsufficientFunds), _))) => Err(Error::unprocessable(
            Code::InsufficientFunds,
            format!("account {} has insufficient funds", req.from_account),
        )),
        (_, Some((LocalOutcome::Refused(Refusal::UnknownAccount), _))) => Err(Error::unprocessable(
            Code::UnknownAccount,
            format!("account {} does not exist at bank1", req.from_account),
        )),
        (_, Some((LocalOutcome::Refused(r), answered))) => {
            Ok(view(Status::RolledBack.as_str(), Some(r.reason().to_owned()), Some(answered)))
        }
        (Err(e), None) => {
            // The broker never ran our local transaction: nothing was debited. A tombstone makes
            // that final in case the half message did land and is checked back later.
            let _ = store::tombstone(
                &state.shared.db.pool,
                &NewTransfer::of(&msg),
                "half message not accepted by the broker",
                &store::LocalSteps::default(),
            )
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
    match store::tombstone(
        &state.shared.db.pool,
        &NewTransfer::of(msg),
        "local transaction did not complete",
        &store::LocalSteps::default(),
    )
    .await
    {
        Ok(row) => Ok(view(row.status.as_str(), row.reason, Some(answered))),
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

impl<'a> NewTransfer<'a> {
    /// The facts of a request's transfer under `tx_no` (for a tombstone that settles it).
    pub fn abandoned(tx_no: &'a str, req: &'a TransferRequest) -> Self {
        let transfer = Facts {
            tx_no,
            from_account: req.from_account.as_str(),
            to_account: req.to_account.as_str(),
            amount: req.amount.minor(),
        };
        Self { transfer, created_at: common::now_ms() }
    }
}
