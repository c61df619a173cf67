//! The transfer message bank1 publishes on `topic_txmsg` (KEYS = tx_no, tag `transfer`).
//! Versioned JSON; amounts are decimal strings like the API's.

use serde::{Deserialize, Serialize};

use crate::ids::{AccountNo, TxNo};
use crate::money::Amount;

/// Message format version this build writes and reads.
pub const MESSAGE_VERSION: u32 = 1;
/// Tag every transfer message carries.
pub const TRANSFER_TAG: &str = "transfer";

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
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a transfer message always serialises")
    }

    /// Parses and validates a body; every field is checked by its type.
    pub fn parse(body: &[u8]) -> Result<Self, MessageError> {
        if body.is_empty() {
            return Err(MessageError::Empty);
        }
        let msg: TransferMessage = serde_json::from_slice(body).map_err(|e| MessageError::Invalid(e.to_string()))?;
        if msg.version != MESSAGE_VERSION {
            return Err(MessageError::UnsupportedVersion(msg.version));
        }
        Ok(msg)
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
