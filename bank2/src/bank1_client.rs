//! bank2's view of bank1: its transfer-status endpoint and its feed of committed transfers.
//! bank1 is the source of truth for what was committed and for how much.

use std::time::Duration;

use common::ids::{AccountNo, TxNo};
use common::message::{TransferMessage, MESSAGE_VERSION};
use common::money::Amount;
use serde::Deserialize;

#[derive(Clone)]
pub struct Bank1 {
    http: reqwest::Client,
    base: String,
}

/// A transfer as bank1 reports it.
#[derive(Debug, Clone, Deserialize)]
pub struct Bank1Transfer {
    pub tx_no: String,
    pub status: String,
    pub from_account: String,
    pub to_account: String,
    pub amount: String,
    pub created_at_ms: i64,
    #[serde(default)]
    pub feed_pos: Option<i64>,
}

impl Bank1Transfer {
    /// The transfer as a message, for the credit path; `Err` if bank1's data is unusable.
    pub fn to_message(&self) -> Result<TransferMessage, String> {
        Ok(TransferMessage {
            version: MESSAGE_VERSION,
            tx_no: TxNo::parse(&self.tx_no).map_err(|e| e.to_string())?,
            from_account: AccountNo::parse(&self.from_account).map_err(|e| e.to_string())?,
            to_account: AccountNo::parse(&self.to_account).map_err(|e| e.to_string())?,
            amount: Amount::parse(&self.amount).map_err(|e| e.to_string())?,
            created_at_ms: self.created_at_ms,
        })
    }
}

#[derive(Debug, Deserialize)]
pub struct FeedPage {
    pub items: Vec<Bank1Transfer>,
    pub next: String,
}

/// What bank1 says about one tx_no.
#[derive(Debug)]
pub enum Status {
    Known(Bank1Transfer),
    Unknown,
}

impl Bank1 {
    pub fn new(base: &str) -> Self {
        let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().expect("an HTTP client");
        Self { http, base: base.trim_end_matches('/').to_owned() }
    }

    pub async fn status(&self, tx_no: &TxNo) -> Result<Status, String> {
        let r = self
            .http
            .get(format!("{}/api/transfers/{tx_no}", self.base))
            .send()
            .await
            .map_err(|e| format!("bank1 unreachable: {e}"))?;
        match r.status() {
            reqwest::StatusCode::NOT_FOUND => Ok(Status::Unknown),
            s if s.is_success() => r.json().await.map(Status::Known).map_err(|e| format!("bank1 reply: {e}")),
            s => Err(format!("bank1 answered {s}")),
        }
    }

    pub async fn feed(&self, after: i64, limit: u32) -> Result<FeedPage, String> {
        let r = self
            .http
            .get(format!("{}/api/transfers?after={after}&limit={limit}", self.base))
            .send()
            .await
            .map_err(|e| format!("bank1 unreachable: {e}"))?;
        if !r.status().is_success() {
            return Err(format!("bank1 feed answered {}", r.status()));
        }
        r.json().await.map_err(|e| format!("bank1 feed reply: {e}"))
    }
}
