//! The dead-letter queue, for operators: redrive it (each dead message applied once, and only
//! once bank1's signed answer proves it `COMMITTED` with its amount and accounts), or return one dead letter's funds
//! (`refund`: reject it, through the same path as a permanent failure). Redrive and refund of a
//! transfer exclude each other: both write its one dedup row.

use common::domain::ids::TxNo;
use common::domain::message::{Body, TransferMessage};
use common::domain::proof::{Refutation, Verdict};
use common::infra::mq::read::{messages_by_key, read_topic};
use common::service::error::{Code, Error, Result};
use common::service::quarantine::{self, Code as QuarantineCode, Quarantined};
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

/// Reads the whole DLQ and applies each dead letter not applied yet, once bank1 has proven it
/// (one question for all of them): what bank1 did not commit is never credited.
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
    let mut waiting: Vec<(String, TransferMessage)> = Vec::new();
    for m in &read.messages {
        match triage(state, m).await {
            Ok(msg) => waiting.push((m.msg_id().to_string(), msg)),
            Err(item) => report.items.push(item),
        }
    }
    let bodies: Vec<&TransferMessage> = waiting.iter().map(|(_, m)| m).collect();
    let verdicts = if bodies.is_empty() { Vec::new() } else { state.prover.check(&bodies).await };
    for ((msg_id, msg), verdict) in waiting.iter().zip(verdicts) {
        let (outcome, detail) = apply_proven(state, msg, verdict).await;
        report.credited += usize::from(outcome == Outcome::Credited);
        report.items.push(Item { msg_id: msg_id.clone(), tx_no: Some(msg.tx_no.to_string()), outcome, detail });
    }
    Ok(report)
}

/// A dead letter's transfer message when it still needs applying; else what redrive did with
/// it (quarantined as unparseable, applied already, or a database error).
async fn triage(state: &AppState, m: &common::infra::mq::MessageExt) -> std::result::Result<TransferMessage, Item> {
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
            let q = Quarantined::of(m, QuarantineCode::Malformed, &format!("dead letter: {e}"));
            if let Err(put) = quarantine::put(&state.shared.db.pool, &q).await {
                tracing::warn!(%msg_id, error = %put, "could not quarantine an unparseable dead letter; the next redrive tries again");
            }
            return Err(item(None, Outcome::Unparseable, Some(e.to_string())));
        }
    };
    let tx_no = Some(parsed.tx_no.to_string());
    match store::applied(&state.shared.db.pool, parsed.tx_no.as_str()).await {
        Ok(Some(a)) => Err(item(tx_no, already(a.outcome), None)),
        Ok(None) => Ok(parsed),
        Err(e) => Err(item(tx_no, Outcome::Failed, Some(format!("database error: {e}")))),
    }
}

fn already(outcome: AppliedAs) -> Outcome {
    match outcome {
        AppliedAs::Credited => Outcome::AlreadyCredited,
        AppliedAs::Rejected => Outcome::AlreadyRejected,
    }
}

/// Applies `msg` if bank1's `verdict` proves it; says what came of it.
async fn apply_proven(state: &AppState, msg: &TransferMessage, verdict: Verdict) -> (Outcome, Option<String>) {
    match verdict {
        Verdict::Proven => {}
        Verdict::Refuted(Refutation::NotInState, d) => return (Outcome::NotCommittedAtBank1, Some(d)),
        Verdict::Refuted(Refutation::OtherFacts, d) => return (Outcome::Conflicting, Some(d)),
        Verdict::Unconfirmed(d) => return (Outcome::Bank1Unavailable, Some(d)),
    }
    match state.credits.apply(msg, Source::DlqRedrive).await {
        Applied::Credited => (Outcome::Credited, None),
        Applied::Rejected(reason) => (Outcome::Rejected, Some(reason)),
        Applied::AlreadyCredited => (Outcome::AlreadyCredited, None),
        Applied::AlreadyRejected => (Outcome::AlreadyRejected, None),
        Applied::Conflicting(d) => (Outcome::Conflicting, Some(d)),
        Applied::Failed(e) => (Outcome::Failed, Some(e)),
    }
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
    let msg = proven_dead_letter(state, tx_no, &dead).await?;
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

/// Of `dead` (the dead letters of `tx_no`), the one bank1 proves; else why none is.
async fn proven_dead_letter(
    state: &AppState,
    tx_no: &TxNo,
    dead: &[common::infra::mq::MessageExt],
) -> Result<TransferMessage> {
    let parsed: Vec<TransferMessage> = dead
        .iter()
        .filter_map(|m| {
            let body = m.body().map(|b| b.to_vec()).unwrap_or_default();
            TransferMessage::parse_keyed(&body, tx_no.as_str()).ok()
        })
        .collect();
    let bodies: Vec<&TransferMessage> = parsed.iter().collect();
    let verdicts = if bodies.is_empty() { Vec::new() } else { state.prover.check(&bodies).await };
    if let Some(i) = verdicts.iter().position(|v| *v == Verdict::Proven) {
        return Ok(parsed[i].clone());
    }
    match verdicts.into_iter().next() {
        None => Err(Error::conflict(Code::NotDeadLettered, format!("no dead letter of {tx_no} parses"))),
        Some(Verdict::Unconfirmed(d)) => Err(Error::Unavailable(d)),
        Some(Verdict::Refuted(_, d)) => {
            Err(Error::conflict(Code::NotCommittedAtBank1, format!("{d}: there is nothing to refund")))
        }
        Some(Verdict::Proven) => Err(Error::Unavailable("unexpected: a proven dead letter was not taken".into())),
    }
}
