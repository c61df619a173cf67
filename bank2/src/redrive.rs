//! DLQ redrive: read `%DLQ%<group>`, ask bank1 about each dead message, credit the ones bank1
//! committed — once, through the one credit path, with bank1's amount and accounts — and say
//! per message what was done. Nothing bank1 did not commit is ever credited.

use common::message::TransferMessage;
use serde::Serialize;

use crate::bank1_client::Status;
use crate::credit::{self, CreditOutcome, Source};
use crate::store::{self, Quarantined};
use crate::AppState;

#[derive(Debug, Clone, Serialize)]
pub struct Item {
    pub msg_id: String,
    pub tx_no: Option<String>,
    /// `credited`, `already_credited`, `not_committed_at_bank1`, `unparseable`,
    /// `bank1_unavailable` or `failed`.
    pub outcome: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

#[derive(Debug, Default, Clone, Serialize)]
pub struct Report {
    pub dlq: String,
    pub scanned: usize,
    pub credited: usize,
    pub items: Vec<Item>,
}

pub async fn redrive(state: &AppState) -> Result<Report, String> {
    let s = &state.settings;
    let dlq = format!("%DLQ%{}", s.consumer_group);
    let rt = common::mq::MqRuntime::new("bank2-redrive").map_err(|e| e.to_string())?;
    let read =
        common::mq::read_topic(&rt, &s.namesrv_addr, &format!("{}_redrive", s.consumer_group), &dlq, 100_000).await;
    rt.shutdown().await;
    let messages = read.map_err(|e| format!("reading {dlq}: {e}"))?;
    let mut report = Report { dlq, scanned: messages.len(), ..Report::default() };
    for m in &messages {
        let msg_id = m.msg_id().to_string();
        let body = m.body().unwrap_or_default();
        let item = |tx_no: Option<String>, outcome, detail: Option<String>| Item {
            msg_id: msg_id.clone(),
            tx_no,
            outcome,
            detail,
        };
        let parsed = match TransferMessage::parse(&body) {
            Ok(p) => p,
            Err(e) => {
                let q = Quarantined {
                    msg_key: crate::consumer::message_key(m),
                    msg_id: msg_id.clone(),
                    tx_no: None,
                    body: String::from_utf8_lossy(&body).chars().take(crate::store::QUARANTINE_BODY_CHARS).collect(),
                    reason: format!("dead letter: {e}"),
                    at: common::now_ms(),
                };
                let _ = store::quarantine(&state.db.pool, &q).await;
                report.items.push(item(None, "unparseable", Some(e.to_string())));
                continue;
            }
        };
        let tx_no = Some(parsed.tx_no.to_string());
        let truth = match state.bank1.status(&parsed.tx_no).await {
            Ok(Status::Known(t)) if t.status == "COMMITTED" => t,
            Ok(Status::Known(t)) => {
                report.items.push(item(tx_no, "not_committed_at_bank1", Some(format!("bank1 status {}", t.status))));
                continue;
            }
            Ok(Status::Unknown) => {
                report.items.push(item(tx_no, "not_committed_at_bank1", Some("bank1 has no such transfer".into())));
                continue;
            }
            Err(e) => {
                report.items.push(item(tx_no, "bank1_unavailable", Some(e)));
                continue;
            }
        };
        let msg = match truth.to_message() {
            Ok(m) => m,
            Err(e) => {
                report.items.push(item(tx_no, "failed", Some(format!("bank1's record is unusable: {e}"))));
                continue;
            }
        };
        let outcome = credit::apply(&state.db.pool, state.faults.get(), &msg, Source::DlqRedrive).await;
        state.metrics.record(Source::DlqRedrive, &outcome);
        match outcome {
            CreditOutcome::Credited => {
                report.credited += 1;
                report.items.push(item(tx_no, "credited", None));
            }
            CreditOutcome::AlreadyCredited => report.items.push(item(tx_no, "already_credited", None)),
            CreditOutcome::Failed(e) => report.items.push(item(tx_no, "failed", Some(e))),
        }
    }
    Ok(report)
}
