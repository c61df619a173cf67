//! Careful clients: each transfer gets its own Idempotency-Key, and an answer that does not
//! settle it (a timeout, a refused connection, a 5xx, a 409 "in progress", a 201 UNKNOWN) is
//! retried with the same key and the same body until one does, as a payments client would.
//! Every transfer's final answer is kept for the verdict.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::{RngExt, SeedableRng};
use rand_pcg::Pcg64Mcg;
use reqwest::StatusCode;
use serde_json::{json, Value};
use stack::api::BankApi;

use crate::bench::target::Accounts;

use super::nemesis::Journal;

/// What the clients need.
#[derive(Clone)]
pub struct Load {
    pub bank1: BankApi,
    pub accounts: Accounts,
    pub seed: u64,
    pub unknown_share: f64,
    pub deadline: Instant,
    pub journal: Journal,
}

/// The last word a client had on one transfer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Answer {
    /// 201 with COMMITTED (or already REFUNDED): bank1 acknowledged the debit.
    Committed,
    /// A 4xx, or 201 ROLLED_BACK: nothing was debited, bank1 says.
    Refused,
    /// No settling answer before the client gave up.
    Indeterminate,
}

/// One transfer as its client saw it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Record {
    pub key: String,
    pub from: String,
    pub to: String,
    pub amount: i64,
    pub answer: Answer,
    /// The tx_no bank1 gave, when an answer carried one.
    pub tx_no: Option<String>,
    /// HTTP status of the last answer (0: no answer).
    pub status: u16,
    /// Error code of a refusal (`insufficient_funds`, …), or what kept it open.
    pub detail: String,
    /// Requests sent for this transfer (1 + retries).
    pub tries: u32,
    /// Run time (ms) of the first send and of the last answer.
    pub sent_ms: u64,
    pub answered_ms: u64,
}

/// The clients' running tasks and their shared log.
pub struct Workers {
    pub log: Arc<Mutex<Vec<Record>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Workers {
    /// Waits for every client to stop (at the deadline) and returns every record.
    pub async fn join(self) -> Vec<Record> {
        for t in self.tasks {
            let _ = t.await;
        }
        self.log.lock().expect("log").clone()
    }
}

/// Starts `n` clients; each stops starting transfers at the deadline.
pub fn spawn(load: &Load, n: usize) -> Workers {
    let log = Arc::new(Mutex::new(Vec::new()));
    let tasks = (0..n)
        .map(|i| {
            let (load, log) = (load.clone(), Arc::clone(&log));
            tokio::spawn(async move {
                let mut rng =
                    Pcg64Mcg::seed_from_u64(load.seed ^ (0x9e37_79b9_7f4a_7c15_u64.wrapping_mul(i as u64 + 1)));
                while Instant::now() < load.deadline {
                    let r = one_transfer(&load, &mut rng, load.deadline).await;
                    log.lock().expect("log").push(r);
                }
            })
        })
        .collect();
    Workers { log, tasks }
}

/// After healing: every indeterminate transfer is asked again with its key until it settles
/// (or `within` runs out), as its client would once the service is back.
pub async fn resolve(load: &Load, mut records: Vec<Record>, within: Duration) -> Vec<Record> {
    let until = Instant::now() + within;
    for r in records.iter_mut().filter(|r| r.answer == Answer::Indeterminate) {
        let body = body(&r.from, &r.to, r.amount);
        settle(load, r, &body, until).await;
    }
    records
}

fn body(from: &str, to: &str, amount: i64) -> Value {
    json!({"from_account": from, "to_account": to, "amount": common::domain::money::format_minor(amount)})
}

async fn one_transfer(load: &Load, rng: &mut Pcg64Mcg, until: Instant) -> Record {
    let pairs = &load.accounts.pairs;
    let from = pairs[rng.random_range(0..pairs.len())].0.clone();
    let to = if rng.random_bool(load.unknown_share) {
        "chaos-nobody".to_owned()
    } else {
        pairs[rng.random_range(0..pairs.len())].1.clone()
    };
    let amount = rng.random_range(100..=5_000_i64);
    let key = format!("chaos-{}", uuid::Uuid::new_v4().simple());
    let now = load.journal.ms();
    let mut r = Record {
        key,
        from,
        to,
        amount,
        answer: Answer::Indeterminate,
        tx_no: None,
        status: 0,
        detail: String::new(),
        tries: 0,
        sent_ms: now,
        answered_ms: now,
    };
    let body = body(&r.from, &r.to, r.amount);
    settle(load, &mut r, &body, until).await;
    r
}

/// Sends (and re-sends) `body` under the record's key until an answer settles it or `until`.
async fn settle(load: &Load, r: &mut Record, body: &Value, until: Instant) {
    let mut backoff = Duration::from_millis(100);
    loop {
        r.tries += 1;
        let reply = load.bank1.transfer(body, Some(&r.key)).await;
        r.answered_ms = load.journal.ms();
        match reply {
            Ok((status, v)) => {
                r.status = status.as_u16();
                if let Some(tx) = v["tx_no"].as_str() {
                    r.tx_no = Some(tx.to_owned());
                }
                match classify(status, &v) {
                    Some(answer) => {
                        r.answer = answer;
                        r.detail = v["error"]["code"].as_str().or(v["status"].as_str()).unwrap_or_default().to_owned();
                        return;
                    }
                    None => {
                        r.detail = v["error"]["code"].as_str().or(v["status"].as_str()).unwrap_or("5xx").to_owned();
                    }
                }
            }
            Err(e) => {
                r.status = 0;
                r.detail = format!("{:#}", e).chars().take(120).collect();
            }
        }
        if Instant::now() + backoff >= until {
            r.answer = Answer::Indeterminate;
            return;
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
}

/// Whether an answer settles a transfer, and how.
pub fn classify(status: StatusCode, v: &Value) -> Option<Answer> {
    match status {
        StatusCode::CREATED => match v["status"].as_str() {
            Some("COMMITTED" | "REFUNDED") => Some(Answer::Committed),
            Some("ROLLED_BACK") => Some(Answer::Refused),
            _ => None,
        },
        StatusCode::CONFLICT | StatusCode::REQUEST_TIMEOUT | StatusCode::TOO_MANY_REQUESTS => None,
        s if s.is_client_error() => Some(Answer::Refused),
        _ => None,
    }
}

/// The live line: transfers by answer, and the faults on now.
pub fn progress_line(log: &[Record], journal: &Journal) -> String {
    let count = |a: Answer| log.iter().filter(|r| r.answer == a).count();
    format!(
        "transfers {} (committed {}, refused {}, open {}) | faults {} | now: {}",
        log.len(),
        count(Answer::Committed),
        count(Answer::Refused),
        count(Answer::Indeterminate),
        journal.count(),
        journal.active_line()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_classified_like_a_careful_client() {
        let created = |s: &str| classify(StatusCode::CREATED, &json!({"status": s}));
        assert_eq!(created("COMMITTED"), Some(Answer::Committed));
        assert_eq!(created("REFUNDED"), Some(Answer::Committed));
        assert_eq!(created("ROLLED_BACK"), Some(Answer::Refused));
        assert_eq!(created("UNKNOWN"), None, "an UNKNOWN is asked again");
        assert_eq!(classify(StatusCode::UNPROCESSABLE_ENTITY, &Value::Null), Some(Answer::Refused));
        assert_eq!(classify(StatusCode::CONFLICT, &Value::Null), None, "in progress: asked again");
        assert_eq!(classify(StatusCode::SERVICE_UNAVAILABLE, &Value::Null), None);
        assert_eq!(classify(StatusCode::INTERNAL_SERVER_ERROR, &Value::Null), None);
    }
}
