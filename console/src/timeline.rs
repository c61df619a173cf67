//! One transfer's timeline across both banks: bank1's steps (`GET /api/transfers/{tx_no}/timeline`)
//! and bank2's (`GET /api/credits/{tx_no}`: each failed delivery, then the credit or the
//! rejection), merged oldest first. Pure: the pages render what [`merge`] returns.

use crate::banks::{Credit, Timeline};

/// Where a step happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Bank1,
    Bank2,
}

impl Side {
    pub fn name(self) -> &'static str {
        match self {
            Side::Bank1 => "bank1",
            Side::Bank2 => "bank2",
        }
    }
}

/// One step, with what the pattern calls it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub at_ms: i64,
    pub side: Side,
    /// The step's code: bank1's (`ACCEPTED`, `HALF_MESSAGE`, `LOCAL_COMMITTED`, `ROLLED_BACK`,
    /// `ANSWERED`, `CHECK_BACK`, `REFUNDED`) or bank2's (`DELIVERY_FAILED`, `CREDITED`,
    /// `REJECTED`).
    pub step: &'static str,
    /// What happened, in words.
    pub title: String,
    pub detail: Option<String>,
}

fn bank1_step(code: &str) -> (&'static str, &'static str) {
    match code {
        "ACCEPTED" => ("ACCEPTED", "accepted at bank1"),
        "HALF_MESSAGE" => ("HALF_MESSAGE", "half message stored by the broker"),
        "LOCAL_COMMITTED" => ("LOCAL_COMMITTED", "local transaction committed: sender debited"),
        "ROLLED_BACK" => ("ROLLED_BACK", "local transaction rolled back: nothing debited"),
        "ANSWERED" => ("ANSWERED", "answer to the broker"),
        "CHECK_BACK" => ("CHECK_BACK", "broker check-back, answered"),
        "REFUNDED" => ("REFUNDED", "funds returned to the sender"),
        _ => ("OTHER", "step"),
    }
}

/// bank1's steps and bank2's, oldest first (steps of one instant keep bank1's order, then
/// bank2's).
pub fn merge(bank1: &Timeline, bank2: Option<&Credit>) -> Vec<Entry> {
    let mut out: Vec<Entry> = bank1
        .steps
        .iter()
        .map(|s| {
            let (step, title) = bank1_step(&s.step);
            let title = match (step, &s.detail) {
                ("ANSWERED" | "CHECK_BACK", Some(d)) => format!("{title} {d}"),
                _ => title.to_owned(),
            };
            let detail = match step {
                "ANSWERED" | "CHECK_BACK" => s.msg_id.as_ref().map(|m| format!("msg id {m}")),
                _ => match (&s.detail, &s.msg_id) {
                    (Some(d), _) => Some(d.clone()),
                    (None, Some(m)) => Some(format!("msg id {m}")),
                    (None, None) => None,
                },
            };
            Entry { at_ms: s.at_ms, side: Side::Bank1, step, title, detail }
        })
        .collect();
    if let Some(c) = bank2 {
        for a in &c.attempts {
            let next = match a.next_delay_level {
                Some(level) => format!("next: retry at delay level {level}"),
                None => format!("next: {}", a.then),
            };
            out.push(Entry {
                at_ms: a.at_ms,
                side: Side::Bank2,
                step: "DELIVERY_FAILED",
                title: format!("delivery failed (reconsume_times {})", a.reconsume_times),
                detail: Some(format!("{}; {next}; msg id {}", a.error, a.msg_id)),
            });
        }
        let source = c.source.as_deref().unwrap_or("?");
        if let (Some(at), "CREDITED") = (c.credited_at_ms, c.outcome.as_str()) {
            out.push(Entry {
                at_ms: at,
                side: Side::Bank2,
                step: "CREDITED",
                title: format!("receiver credited (source {source})"),
                detail: None,
            });
        }
        if let (Some(at), "REJECTED") = (c.rejected_at_ms, c.outcome.as_str()) {
            out.push(Entry {
                at_ms: at,
                side: Side::Bank2,
                step: "REJECTED",
                title: format!("rejected, funds sent back (source {source})"),
                detail: c.reason.clone(),
            });
        }
    }
    out.sort_by_key(|e| e.at_ms);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::banks::{Attempt, Step};

    fn step(step: &str, at_ms: i64, detail: Option<&str>) -> Step {
        Step { step: step.into(), at_ms, detail: detail.map(Into::into), msg_id: None }
    }

    #[test]
    fn both_banks_steps_interleave_by_time() {
        let b1 = Timeline {
            status: "COMMITTED".into(),
            steps: vec![
                step("ACCEPTED", 10, None),
                step("HALF_MESSAGE", 12, None),
                step("LOCAL_COMMITTED", 15, None),
                step("ANSWERED", 15, Some("UNKNOWN")),
                step("CHECK_BACK", 5_000, Some("COMMIT")),
            ],
        };
        let b2 = Credit {
            outcome: "CREDITED".into(),
            credited_at_ms: Some(16_000),
            rejected_at_ms: None,
            reason: None,
            source: Some("MQ".into()),
            attempts: vec![Attempt {
                reconsume_times: 0,
                error: "injected".into(),
                at_ms: 5_100,
                msg_id: "m".into(),
                then: "RETRY".into(),
                next_delay_level: Some(3),
            }],
        };
        let steps: Vec<_> = merge(&b1, Some(&b2)).into_iter().map(|e| (e.step, e.side)).collect();
        assert_eq!(
            steps,
            [
                ("ACCEPTED", Side::Bank1),
                ("HALF_MESSAGE", Side::Bank1),
                ("LOCAL_COMMITTED", Side::Bank1),
                ("ANSWERED", Side::Bank1),
                ("CHECK_BACK", Side::Bank1),
                ("DELIVERY_FAILED", Side::Bank2),
                ("CREDITED", Side::Bank2),
            ]
        );
        let answered = &merge(&b1, Some(&b2))[3];
        assert_eq!(answered.title, "answer to the broker UNKNOWN");
    }

    #[test]
    fn a_pending_transfer_has_no_bank2_outcome() {
        let b1 = Timeline { status: "COMMITTED".into(), steps: vec![step("ACCEPTED", 1, None)] };
        let b2 = Credit {
            outcome: "PENDING".into(),
            credited_at_ms: None,
            rejected_at_ms: None,
            reason: None,
            source: None,
            attempts: vec![],
        };
        assert_eq!(merge(&b1, Some(&b2)).len(), 1);
        assert_eq!(merge(&b1, None).len(), 1);
    }
}
