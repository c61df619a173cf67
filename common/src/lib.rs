//! Shared pieces of bank1 and bank2. The two banks play mirror roles — each publishes signed
//! transactional messages and consumes the other's, each serves a feed and reconciles from the
//! other's — so every piece of those roles lives here once. Three layers:
//!
//! - [`domain`]: what a transfer is — money (`Amount`, integer minor units, the balance
//!   ceiling), ids (`AccountNo`, `TxNo`), statuses, the two messages, their signatures. Pure:
//!   no I/O.
//! - [`infra`]: what the banks run on — databases (SQLite or MySQL through one `AnyPool`),
//!   RocketMQ (the client runtime, the transactional producer, the push consumer, operator
//!   reads), the HTTP client for the other bank, the clock, tracing, shutdown.
//! - [`service`]: what makes a bank service — the app skeleton and `main`, the one error type
//!   and its JSON shape, bearer tokens, fault switches, the feed sequencer, the reconciliation
//!   driver, quarantine, and the routes both banks serve alike.
//!
//! docs/ARCHITECTURE.md maps the flows onto these modules.

pub mod domain;
pub mod infra;
pub mod service;

pub use infra::clock::{format_ms, now_ms};
