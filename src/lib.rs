//! bank-transfer — the one-command local stack of the bank1 → bank2 transfer over RocketMQ.
//!
//! - [`servers`]: the rocketmq-rust name server and broker, run inside child processes of
//!   this binary (hidden `namesrv` / `broker` subcommands), with the broker knobs we expose.
//! - [`children`]: owning those child processes (ready line, graceful stop, crash).
//! - [`ports`]: free loopback ports for tests and benchmarks.
//! - [`query`]: messages by key (the DLQ included), through the client's query API.
//! - [`topics`]: creating the transfer topic through the admin API.
//! - [`wait`]: polling with a deadline (tests, bench).
//! - [`stack`]: `cargo run --release` — servers, topic, bank1 and bank2, until Ctrl-C.
//! - [`bench`]: `bank-transfer bench` — end-to-end throughput and latency against the broker
//!   alone, and an exactly-once check of every transfer.
#![recursion_limit = "512"]

pub mod bench;
pub mod children;
pub mod ports;
pub mod query;
pub mod servers;
pub mod stack;
pub mod topics;
pub mod wait;
