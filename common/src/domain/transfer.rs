//! A transfer's status at bank1, as bank1 stores it and both banks read it.

use serde::{Deserialize, Serialize};

/// Where a transfer stands at bank1 (`transfer.status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Status {
    /// Debited; the message is committed (or will be, by the check-back).
    Committed,
    /// Nothing debited: refused, failed, or a check-back tombstone.
    RolledBack,
    /// Debited, then returned: bank2 could never apply it and sent the funds back.
    Refunded,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Committed => "COMMITTED",
            Status::RolledBack => "ROLLED_BACK",
            Status::Refunded => "REFUNDED",
        }
    }
}

impl TryFrom<String> for Status {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        [Status::Committed, Status::RolledBack, Status::Refunded]
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| format!("unknown transfer status {s:?}"))
    }
}
