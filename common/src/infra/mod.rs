//! What the banks run on.
//!
//! - [`db`]: one `AnyPool` over SQLite (embedded default) or a MySQL-protocol server.
//! - [`schema`]: taking over a database that ran the schema's first (squashed) migrations.
//! - [`mq`]: RocketMQ: the client runtime, the transactional producer, the push consumer,
//!   operator reads (a whole topic, messages by key).
//! - [`peer`]: the HTTP client for the other bank (status endpoint, feed).
//! - [`token`]: bearer tokens (secret, compared in constant time).
//! - [`clock`]: milliseconds since the epoch, RFC 3339, duration settings.
//! - [`telemetry`]: tracing set-up (once per process).
//! - [`metrics`]: each bank's own Prometheus recorder (two banks in one process keep apart).
//! - [`shutdown`]: the Ctrl-C / SIGTERM future services stop on.

pub mod clock;
pub mod db;
pub mod metrics;
pub mod mq;
pub mod peer;
pub mod schema;
pub mod shutdown;
pub mod telemetry;
pub mod token;
