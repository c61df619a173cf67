//! The two messages the banks exchange, as versioned JSON with amounts as decimal strings like
//! the API's:
//! - [`TransferMessage`]: bank1 → bank2 on `topic_txmsg` (KEYS = tx_no, tag `transfer`);
//! - [`RefundNotice`]: bank2 → bank1 on `topic_txmsg_refund` (KEYS = tx_no, tag `refund`), the
//!   return of funds of a transfer bank2 can never apply.
//!
//! Both travel signed (see [`crate::domain::signing`]); parsing never trusts the body's origin.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::domain::ids::{AccountNo, TxNo};
use crate::domain::money::Amount;

/// Message format version this build writes and reads.
pub const MESSAGE_VERSION: u32 = 1;
/// Tag every transfer message carries.
pub const TRANSFER_TAG: &str = "transfer";
/// Tag every refund notice carries.
pub const REFUND_TAG: &str = "refund";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransferMessage {
    pub version: u32,
    pub tx_no: TxNo,
    pub from_account: AccountNo,
    pub to_account: AccountNo,
    pub amount: Amount,
    /// When bank1 accepted the transfer (ms since the epoch).
    pub created_at_ms: i64,
}

/// A return of funds: bank2 rejected transfer `tx_no` for good (`reason`), and bank1 gives the
/// amount back to `from_account`. `notice_id` names this attempt to publish it (bank2's
/// check-back answers by it; a retried rejection gets a new one).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefundNotice {
    pub version: u32,
    pub notice_id: String,
    pub tx_no: TxNo,
    pub from_account: AccountNo,
    pub to_account: AccountNo,
    pub amount: Amount,
    pub reason: String,
    /// When bank2 recorded the rejection (ms since the epoch).
    pub rejected_at_ms: i64,
}

/// A versioned JSON message body about one transfer.
pub trait Body: Serialize + DeserializeOwned {
    fn version(&self) -> u32;
    fn tx_no(&self) -> &TxNo;
    /// The transfer's facts: tx_no, from, to, amount.
    fn facts(&self) -> (&TxNo, &AccountNo, &AccountNo, Amount);
    /// When the sender wrote it (ms since the epoch): the transfer's acceptance at bank1, the
    /// rejection at bank2.
    fn written_at_ms(&self) -> i64;

    fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a message always serialises")
    }

    /// Parses and validates a body; every field is checked by its type.
    fn parse(body: &[u8]) -> Result<Self, MessageError> {
        if body.is_empty() {
            return Err(MessageError::Empty);
        }
        let msg: Self = serde_json::from_slice(body).map_err(|e| MessageError::Invalid(e.to_string()))?;
        if msg.version() != MESSAGE_VERSION {
            return Err(MessageError::UnsupportedVersion(msg.version()));
        }
        Ok(msg)
    }

    /// [`parse`](Body::parse), and the message's KEYS (when present) must name its tx_no.
    fn parse_keyed(body: &[u8], keys: &str) -> Result<Self, MessageError> {
        let m = Self::parse(body)?;
        if !keys.is_empty() && !keys.split_whitespace().any(|k| k == m.tx_no().as_str()) {
            return Err(MessageError::Invalid(format!("message KEYS {keys:?} do not name tx_no {}", m.tx_no())));
        }
        Ok(m)
    }
}

impl Body for TransferMessage {
    fn version(&self) -> u32 {
        self.version
    }
    fn tx_no(&self) -> &TxNo {
        &self.tx_no
    }
    fn facts(&self) -> (&TxNo, &AccountNo, &AccountNo, Amount) {
        (&self.tx_no, &self.from_account, &self.to_account, self.amount)
    }
    fn written_at_ms(&self) -> i64 {
        self.created_at_ms
    }
}

impl Body for RefundNotice {
    fn version(&self) -> u32 {
        self.version
    }
    fn tx_no(&self) -> &TxNo {
        &self.tx_no
    }
    fn facts(&self) -> (&TxNo, &AccountNo, &AccountNo, Amount) {
        (&self.tx_no, &self.from_account, &self.to_account, self.amount)
    }
    fn written_at_ms(&self) -> i64 {
        self.rejected_at_ms
    }
}

/// Why a message body cannot be applied; such messages are quarantined, never retried.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    #[error("body is empty")]
    Empty,
    #[error("body is not a valid transfer message: {0}")]
    Invalid(String),
    #[error("unsupported message version {0}")]
    UnsupportedVersion(u32),
}

impl TransferMessage {
    /// True when `other` names the same transfer with the same facts (accounts and amount);
    /// `created_at_ms` is not a fact of the transfer.
    pub fn same_facts(&self, tx_no: &str, from: &str, to: &str, amount_minor: i64) -> bool {
        self.tx_no.as_str() == tx_no
            && self.from_account.as_str() == from
            && self.to_account.as_str() == to
            && self.amount.minor() == amount_minor
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_garbage() {
        let m = TransferMessage {
            version: MESSAGE_VERSION,
            tx_no: TxNo::new_random(),
            from_account: AccountNo::parse("1").unwrap(),
            to_account: AccountNo::parse("2").unwrap(),
            amount: Amount::parse("100.00").unwrap(),
            created_at_ms: 1,
        };
        assert_eq!(TransferMessage::parse(&m.to_json()).unwrap(), m);
        assert!(String::from_utf8(m.to_json()).unwrap().contains("\"amount\":\"100.00\""));
        assert_eq!(TransferMessage::parse(b""), Err(MessageError::Empty));
        assert!(matches!(TransferMessage::parse(b"{}"), Err(MessageError::Invalid(_))));
        let neg = String::from_utf8(m.to_json()).unwrap().replace("100.00", "-1");
        assert!(matches!(TransferMessage::parse(neg.as_bytes()), Err(MessageError::Invalid(_))));
        let v2 = String::from_utf8(m.to_json()).unwrap().replace("\"version\":1", "\"version\":2");
        assert_eq!(TransferMessage::parse(v2.as_bytes()), Err(MessageError::UnsupportedVersion(2)));
    }
}
