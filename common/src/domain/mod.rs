//! The domain: what a transfer is, independent of how it is stored or carried.
//!
//! - [`money`]: exact amounts (`Amount`, integer minor units), fault thresholds, the balance
//!   ceiling.
//! - [`ids`]: validated identifiers (`AccountNo`, `TxNo`).
//! - [`transfer`]: a transfer's status at bank1.
//! - [`message`]: the transfer message (bank1 → bank2) and the refund notice (bank2 → bank1).
//! - [`signing`]: Ed25519 signatures over message bodies, and a peer's public keys.
//! - [`page`]: a feed page (entries, the next cursor, the cursor it answers).
//! - [`proof`]: the signed answers of the other bank's query interface (消息校对), and what
//!   they prove of a message.

pub mod ids;
pub mod message;
pub mod money;
pub mod page;
pub mod proof;
pub mod signing;
pub mod transfer;
