//! stack — a whole bank-transfer stack on one machine: what the launcher, the tests, the bench
//! and the chaos runner start, each through the one [`builder`].
//!
//! - [`builder`]: `StackBuilder` → `Stack` (name server, broker, topics, bank1, bank2, their
//!   databases, keys and tokens); crash or restart one part; stop it all.
//! - [`embedded`]: the rocketmq-rust name server and broker, run inside child processes of the
//!   launcher (its hidden `namesrv` / `broker` subcommands), with the broker knobs we expose.
//! - [`running`]: what both kinds of running stack hold alike (URLs, secrets, data, servers)
//!   and their one teardown.
//! - [`servers`]: those two children, seen from the parent (start, restart the broker, stop).
//! - [`processes`]: the stack as four processes (banks too), each killable, pausable and
//!   restartable alone: the chaos runner's target.
//! - [`network`]: the parts in network namespaces of their own on a private bridge, so that
//!   two of them can be cut off from each other (partitions).
//! - [`children`]: owning child processes (ready line, graceful stop, kill).
//! - [`databases`]: SQLite files, or scratch MariaDB/MySQL databases created and dropped.
//! - [`secrets`]: signing keys and tokens, generated (or kept under a data directory).
//! - [`topics`]: creating the topics through the admin API.
//! - [`api`]: an HTTP client for the banks' APIs (tests, bench, chaos).
//! - [`ports`], [`wait`]: free loopback ports; polling with a deadline.
#![recursion_limit = "512"]

pub mod api;
pub mod builder;
pub mod children;
pub mod databases;
pub mod embedded;
pub mod network;
pub mod ports;
pub mod processes;
pub mod running;
pub mod secrets;
pub mod servers;
pub mod topics;
pub mod wait;

pub use builder::{Part, Stack, StackBuilder};
pub use processes::ProcessStack;
pub use running::Running;
