//! bank2's view of bank1: its feed of committed transfers and its query interface ([`PROOFS`]),
//! both with the service token, both answers signed by bank1. bank1 is the source of truth for
//! what was committed and for how much.

use common::domain::ids::{AccountNo, TxNo};
use common::domain::message::{TransferMessage, MESSAGE_VERSION};
use common::domain::money::Amount;
use common::domain::transfer::Status;
use common::infra::peer::{Peer, PeerError};
use serde::{Deserialize, Serialize};

/// A transfer as bank1 reports it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Bank1Transfer {
    pub tx_no: String,
    pub status: Status,
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

    pub fn is_committed(&self) -> bool {
        self.status == Status::Committed
    }
}

/// bank1's query interface: where do these transfers stand?
pub const PROOFS: &str = "/api/transfers/proofs";

/// bank1's HTTP API.
#[derive(Clone)]
pub struct Bank1(pub Peer);

impl Bank1 {
    pub async fn feed(&self, after: i64, limit: u32) -> Result<common::service::feed::Page<Bank1Transfer>, PeerError> {
        self.0.feed("/api/transfers", after, limit).await
    }
}
