//! The two banks as the console reads and drives them: their HTTP APIs, server-side, with the
//! operator tokens it was given (the browser never sees a token). The reply types hold the
//! fields the console shows, as the banks' OpenAPI documents describe them.

use std::time::Duration;

use anyhow::Context;
use common::infra::token::Token;
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;

/// How long the console waits for a bank (a DLQ read can take a while).
const TIMEOUT: Duration = Duration::from_secs(30);

/// One bank's API.
#[derive(Debug, Clone)]
pub struct Bank {
    pub name: &'static str,
    url: String,
    token: Option<Token>,
    http: reqwest::Client,
}

/// A bank's answer to a request the console passes on: the status and the JSON body.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub body: Value,
    /// bank1's `Idempotent-Replayed: true`: the answer of an earlier request with this key.
    pub replayed: bool,
}

impl Answer {
    /// The bank's own words for a refusal (`{"error":{"code","message"}}`), or the body.
    pub fn message(&self) -> String {
        match (self.body["error"]["code"].as_str(), self.body["error"]["message"].as_str()) {
            (Some(code), Some(msg)) => format!("{code}: {msg}"),
            _ => self.body.to_string(),
        }
    }
}

impl Bank {
    pub fn new(name: &'static str, url: &str, token: Option<Token>) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder().timeout(TIMEOUT).build().context("building the HTTP client")?;
        Ok(Self { name, url: url.trim_end_matches('/').to_owned(), token, http })
    }

    /// Sends a request (with the operator token on `/admin/*`) and reads the JSON answer,
    /// whatever its status.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        key: Option<&str>,
    ) -> anyhow::Result<Answer> {
        let mut req = self.http.request(method, format!("{}{path}", self.url));
        if let (true, Some(t)) = (path.starts_with("/admin/"), &self.token) {
            req = req.header(reqwest::header::AUTHORIZATION, t.bearer());
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        if let Some(k) = key {
            req = req.header("Idempotency-Key", k);
        }
        let r = req.send().await.with_context(|| format!("{} does not answer", self.name))?;
        let status = r.status();
        let replayed = r.headers().get("idempotent-replayed").is_some_and(|v| v == "true");
        let text = r.text().await.with_context(|| format!("reading {}'s answer", self.name))?;
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Ok(Answer { status, body, replayed })
    }

    /// A `GET` whose 2xx body is a `T`; anything else is an error naming the bank's reason.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        let a = self.send(Method::GET, path, None, None).await?;
        anyhow::ensure!(a.status.is_success(), "{} answered {}: {}", self.name, a.status, a.message());
        serde_json::from_value(a.body).with_context(|| format!("{}'s answer to GET {path}", self.name))
    }

    /// Like [`Bank::get`], but a 404 is `None`.
    pub async fn find<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<Option<T>> {
        let a = self.send(Method::GET, path, None, None).await?;
        if a.status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        anyhow::ensure!(a.status.is_success(), "{} answered {}: {}", self.name, a.status, a.message());
        Ok(Some(serde_json::from_value(a.body).with_context(|| format!("{}'s answer to GET {path}", self.name))?))
    }
}

/// `GET /admin/accounts`.
#[derive(Debug, Clone, Deserialize)]
pub struct Ledger {
    pub accounts: Vec<Account>,
    pub account_count: i64,
    pub balance_total_minor: i64,
    pub flow: Flow,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Account {
    pub account_no: String,
    pub account_name: String,
    pub balance: String,
    pub status: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Flow {
    pub name: String,
    pub total_minor: i64,
}

/// bank1's `TransferView`.
#[derive(Debug, Clone, Deserialize)]
pub struct Transfer {
    pub tx_no: String,
    pub status: String,
    pub from_account: String,
    pub to_account: String,
    pub amount: String,
    pub reason: Option<String>,
    pub created_at_ms: i64,
    pub committed_at_ms: Option<i64>,
}

/// `GET /admin/transfers`.
#[derive(Debug, Clone, Deserialize)]
pub struct TransferList {
    pub items: Vec<Transfer>,
    pub next_before: Option<i64>,
}

/// `GET /api/transfers/{tx_no}/timeline`.
#[derive(Debug, Clone, Deserialize)]
pub struct Timeline {
    pub status: String,
    pub steps: Vec<Step>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Step {
    pub step: String,
    pub at_ms: i64,
    pub detail: Option<String>,
    pub msg_id: Option<String>,
}

/// `GET /api/credits/{tx_no}`.
#[derive(Debug, Clone, Deserialize)]
pub struct Credit {
    pub outcome: String,
    pub credited_at_ms: Option<i64>,
    pub rejected_at_ms: Option<i64>,
    pub reason: Option<String>,
    pub source: Option<String>,
    pub attempts: Vec<Attempt>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Attempt {
    pub reconsume_times: i32,
    pub error: String,
    pub at_ms: i64,
    pub msg_id: String,
    pub then: String,
    pub next_delay_level: Option<i32>,
}

/// `GET /admin/dlq`.
#[derive(Debug, Clone, Deserialize)]
pub struct DeadLetters {
    pub dlq: String,
    pub total: usize,
    pub pending: usize,
    pub truncated: Option<String>,
    pub items: Vec<DeadLetter>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct DeadLetter {
    pub msg_id: String,
    pub tx_no: Option<String>,
    pub amount: Option<String>,
    pub from_account: Option<String>,
    pub to_account: Option<String>,
    pub reconsume_times: i32,
    pub dead_at: String,
    pub applied: Option<String>,
}

/// `GET /api/quarantine`.
#[derive(Debug, Clone, Deserialize)]
pub struct Quarantine {
    pub items: Vec<Quarantined>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Quarantined {
    pub msg_id: String,
    pub tx_no: Option<String>,
    pub code: String,
    pub reason: String,
    pub at: String,
}

/// `GET /admin/consumer`.
#[derive(Debug, Clone, Deserialize)]
pub struct Consumer {
    pub paused: bool,
}
