//! The dead-letter queue, for operators: redrive it (each dead message checked against
//! bank1 and applied once, with bank1's amount and accounts), or return one dead letter's funds
//! (`refund`: reject it, through the same path as a permanent failure). Redrive and refund of a
//! transfer exclude each other: both write its one dedup row.

use common::domain::ids::TxNo;
use common::domain::message::{Body, TransferMessage};
use common::infra::mq::read::{messages_by_key, read_topic};
use common::service::error::{Code, Error, Result};
use serde::Serialize;

use crate::credit::Outcome as Applied;
use crate::store::{self, AppliedAs, Source};
use crate::AppState;

/// Most dead letters one redrive reads.
const MAX_READ: usize = 100_000;

/// What redrive did with one dead letter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = DlqOutcome)]
pub enum Outcome {
    Credited,
    /// Its receiver can never be credited: the funds go back to bank1.
    Rejected,
    AlreadyCredited,
    AlreadyRejected,
    /// bank1 never debited it: nothing to credit, ever.
    NotCommittedAtBank1,
    /// Quarantined as malformed.
    Unparseable,
    Conflicting,
    Bank1Unavailable,
    Failed,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = DlqItem)]
pub struct Item {
    pub msg_id: String,
    pub tx_no: Option<String>,
    pub outcome: Outcome,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

#[derive(Debug, Default, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = RedriveReport)]
pub struct Report {
    pub dlq: String,
    pub scanned: usize,
    pub credited: usize,
    /// False when the read stopped before the end of the DLQ; `truncated` says why.
    pub complete: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub truncated: Option<String>,
    pub items: Vec<Item>,
}

pub fn dlq_of(state: &AppState) -> String {
    format!("%DLQ%{}", state.settings.common.consumer_group)
}

/// Most dead letters one listing reads (it shows the newest of them).
const MAX_LIST_READ: usize = 10_000;

/// A dead letter as `GET /admin/dlq` shows it, with where its transfer stands now.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DeadLetter {
    pub msg_id: String,
    /// Absent when the body is not a transfer message (redrive quarantines it).
    pub tx_no: Option<String>,
    pub from_account: Option<String>,
    pub to_account: Option<String>,
    pub amount: Option<String>,
    /// Deliveries before it was dead-lettered.
    pub reconsume_times: i32,
    /// When the broker stored it in the DLQ (RFC 3339, UTC).
    pub dead_at: String,
    pub dead_at_ms: i64,
    /// Its transfer now: `PENDING` (neither credited nor returned: redrive or refund it),
    /// `CREDITED` or `REJECTED` (funds returned to bank1); absent when unparseable.
    pub applied: Option<&'static str>,
}

/// The dead letters, newest first.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DeadLetters {
    pub dlq: String,
    /// How many the DLQ holds (as far as it was read).
    pub total: usize,
    /// Of those, how many are neither credited nor returned.
    pub pending: usize,
    /// False when the read stopped early; `truncated` says why.
    pub complete: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub truncated: Option<String>,
    /// The newest `limit`.
    pub items: Vec<DeadLetter>,
}

/// Reads the whole DLQ (without consuming it) and says where each dead letter's transfer
/// stands; the newest `limit` are listed.
pub async fn list(state: &AppState, limit: usize) -> Result<DeadLetters> {
    let s = &state.settings;
    let dlq = dlq_of(state);
    let group = format!("{}_dlq_view", s.common.consumer_group);
    let read = read_topic(&state.shared.mq, &s.common.namesrv_addr, &group, &dlq, MAX_LIST_READ)
        .await
        .map_err(|e| Error::Unavailable(format!("reading {dlq}: {e}")))?;
    let mut items = Vec::with_capacity(read.messages.len());
    for m in &read.messages {
        let body = m.body().map(|b| b.to_vec()).unwrap_or_default();
        let parsed = TransferMessage::parse_keyed(&body, &common::infra::mq::keys(m)).ok();
        let applied = match &parsed {
            Some(p) => Some(match store::applied(&state.shared.db.read, p.tx_no.as_str()).await? {
                Some(a) => a.outcome.as_str(),
                None => "PENDING",
            }),
            None => None,
        };
        items.push(DeadLetter {
            msg_id: m.msg_id().to_string(),
            tx_no: parsed.as_ref().map(|p| p.tx_no.to_string()),
            from_account: parsed.as_ref().map(|p| p.from_account.to_string()),
            to_account: parsed.as_ref().map(|p| p.to_account.to_string()),
            amount: parsed.as_ref().map(|p| p.amount.to_string()),
            reconsume_times: m.reconsume_times(),
            dead_at: common::format_ms(m.store_timestamp()),
            dead_at_ms: m.store_timestamp(),
            applied,
        });
    }
    items.sort_by_key(|d| std::cmp::Reverse(d.dead_at_ms));
    let pending = items.iter().filter(|d| d.applied == Some("PENDING")).count();
    let total = items.len();
    items.truncate(limit);
    Ok(DeadLetters { dlq, total, pending, complete: read.truncated.is_none(), truncated: read.truncated, items })
}

pub async fn redrive(state: &AppState) -> Result<Report> {
    let s = &state.settings;
    let dlq = dlq_of(state);
    let group = format!("{}_redrive", s.common.consumer_group);
    let read = read_topic(&state.shared.mq, &s.common.namesrv_addr, &group, &dlq, MAX_READ)
        .await
        .map_err(|e| Error::Unavailable(format!("reading {dlq}: {e}")))?;
    let mut report = Report {
        dlq,
        scanned: read.messages.len(),
        complete: read.truncated.is_none(),
        truncated: read.truncated,
        ..Report::default()
    };
    for m in &read.messages {
        let msg_id = m.msg_id().to_string();
        let body = m.body().map(|b| b.to_vec()).unwrap_or_default();
        let item = |tx_no: Option<String>, outcome, detail: Option<String>| Item {
            msg_id: msg_id.clone(),
            tx_no,
            outcome,
            detail,
        };
        let parsed = match TransferMessage::parse_keyed(&body, &common::infra::mq::keys(m)) {
            Ok(p) => p,
            Err(e) => {
                let q = common::service::quarantine::Quarantined::of(
                    m,
                    common::service::quarantine::Code::Malformed,
                    &format!("dead letter: {e}"),
                );
                let _ = common::service::quarantine::put(&state.shared.db.pool, &q).await;
                report.items.push(item(None, Outcome::Unparseable, Some(e.to_string())));
                continue;
            }
        };
        let tx_no = Some(parsed.tx_no.to_string());
        // Applied already (credited by a redelivery or an earlier redrive, or refunded)?
        match store::applied(&state.shared.db.pool, parsed.tx_no.as_str()).await {
            Ok(Some(a)) => {
                let outcome = match a.outcome {
                    AppliedAs::Credited => Outcome::AlreadyCredited,
                    AppliedAs::Rejected => Outcome::AlreadyRejected,
                };
                report.items.push(item(tx_no, outcome, None));
                continue;
            }
            Ok(None) => {}
            Err(e) => {
                report.items.push(item(tx_no, Outcome::Failed, Some(format!("database error: {e}"))));
                continue;
            }
        }
        let truth = match state.bank1.status(&parsed.tx_no).await {
            Ok(Some(t)) if t.is_committed() => t,
            Ok(Some(t)) => {
                report.items.push(item(
                    tx_no,
                    Outcome::NotCommittedAtBank1,
                    Some(format!("bank1 status {}", t.status.as_str())),
                ));
                continue;
            }
            Ok(None) => {
                report.items.push(item(tx_no, Outcome::NotCommittedAtBank1, Some("bank1 has no such transfer".into())));
                continue;
            }
            Err(e) => {
                report.items.push(item(tx_no, Outcome::Bank1Unavailable, Some(e.to_string())));
                continue;
            }
        };
        let msg = match truth.to_message() {
            Ok(m) => m,
            Err(e) => {
                report.items.push(item(tx_no, Outcome::Failed, Some(format!("bank1's record is unusable: {e}"))));
                continue;
            }
        };
        let (outcome, detail) = match state.credits.apply(&msg, Source::DlqRedrive).await {
            Applied::Credited => {
                report.credited += 1;
                (Outcome::Credited, None)
            }
            Applied::Rejected(reason) => (Outcome::Rejected, Some(reason)),
            Applied::AlreadyCredited => (Outcome::AlreadyCredited, None),
            Applied::AlreadyRejected => (Outcome::AlreadyRejected, None),
            Applied::Conflicting(d) => (Outcome::Conflicting, Some(d)),
            Applied::Failed(e) => (Outcome::Failed, Some(e)),
        };
        report.items.push(item(tx_no, outcome, detail));
    }
    Ok(report)
}

/// The result of `POST /admin/dlq/refund`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = DlqRefundReport)]
pub struct RefundReport {
    pub tx_no: String,
    /// `rejected` (now) or `already_rejected`.
    pub outcome: Outcome,
    pub reason: Option<String>,
    pub amount: Option<String>,
    pub from_account: Option<String>,
}

/// Returns a dead-lettered, uncredited transfer's funds to bank1 (reject + refund notice).
/// Refused (409) where it does not apply: not in the DLQ, credited, not debited at bank1.
pub async fn refund(state: &AppState, tx_no: &TxNo) -> Result<RefundReport> {
    let pool = &state.shared.db.pool;
    let already = |reason: Option<String>, amount: Option<String>, from_account: Option<String>| RefundReport {
        tx_no: tx_no.to_string(),
        outcome: Outcome::AlreadyRejected,
        reason,
        amount,
        from_account,
    };
    if let Some(a) = store::applied(pool, tx_no.as_str()).await? {
        return match a.outcome {
            AppliedAs::Credited => Err(Error::conflict(
                Code::AlreadyCredited,
                format!("transfer {tx_no} is credited at bank2; it cannot be refunded"),
            )),
            AppliedAs::Rejected => {
                Ok(already(a.reason, Some(common::domain::money::format_minor(a.amount)), Some(a.from_account)))
            }
        };
    }
    let dlq = dlq_of(state);
    let dead = messages_by_key(&state.shared.mq, &state.settings.common.namesrv_addr, &dlq, tx_no.as_str())
        .await
        .map_err(|e| Error::Unavailable(format!("reading {dlq}: {e}")))?;
    if dead.is_empty() {
        return Err(Error::conflict(
            Code::NotDeadLettered,
            format!("transfer {tx_no} is not in {dlq}; only dead letters can be refunded by hand"),
        ));
    }
    let truth = match state.bank1.status(tx_no).await? {
        Some(t) if t.is_committed() => t,
        Some(t) => {
            return Err(Error::conflict(
                Code::NotCommittedAtBank1,
                format!("bank1 says transfer {tx_no} is {}: there is nothing to refund", t.status.as_str()),
            ))
        }
        None => return Err(Error::conflict(Code::NotCommittedAtBank1, format!("bank1 has no transfer {tx_no}"))),
    };
    let msg = truth.to_message().map_err(|e| Error::Unavailable(format!("bank1's record is unusable: {e}")))?;
    let last_error = store::attempts(pool, tx_no.as_str())
        .await
        .ok()
        .and_then(|a| a.last().map(|a| a.error.clone()))
        .unwrap_or_else(|| "unknown".into());
    let reason = format!("returned by an operator from the dead-letter queue (last error: {last_error})");
    match state.credits.reject(&msg, &reason, Source::DlqRefund).await {
        Applied::Rejected(reason) => Ok(RefundReport {
            tx_no: tx_no.to_string(),
            outcome: Outcome::Rejected,
            reason: Some(reason),
            amount: Some(msg.amount.to_string()),
            from_account: Some(msg.from_account.to_string()),
        }),
        Applied::AlreadyRejected => Ok(already(None, None, None)),
        Applied::AlreadyCredited => Err(Error::conflict(
            Code::AlreadyCredited,
            format!("transfer {tx_no} was credited meanwhile; it cannot be refunded"),
        )),
        Applied::Conflicting(d) => Err(Error::conflict(Code::Conflicting, d)),
        Applied::Failed(e) => Err(Error::Unavailable(format!("the refund could not be recorded now ({e})"))),
        Applied::Credited => Err(Error::Unavailable("unexpected: a reject credited".into())),
    }
}
