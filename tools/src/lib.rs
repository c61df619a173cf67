//! tools — what measures and tortures a bank-transfer stack, apart from what ships:
//!
//! - [`bench`]: `bank-transfer bench` — end-to-end throughput and latency against the broker
//!   alone, and an exactly-once check of every transfer.
//! - [`chaos`]: `bank-transfer chaos` — transfers under a seeded nemesis (kill -9, SIGSTOP,
//!   the database, injected faults), then a verdict over both banks and every client answer.
//! - `src/bin/mqadmin.rs`: the RocketMQ admin commands operators of the demo need (Java
//!   mqadmin's syntax).
//!
//! The launcher (`bank-transfer`) dispatches `bench` and `chaos` here when built with its default `tools`
//! feature; `cargo install --path . --no-default-features` gives a launcher without them.
#![recursion_limit = "512"]

pub mod bench;
pub mod chaos;

use clap::Subcommand;

/// The launcher's tool subcommands.
// Parsed once per process: the size of the largest flag set costs nothing worth a Box.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Benchmark: drive transfers through bank1's API, time them until bank2 credits them,
    /// compare with the broker alone (--baseline), and check every transfer arrived once.
    Bench(Box<bench::BenchArgs>),
    /// Chaos: transfers from careful clients while a seeded nemesis kills, pauses and
    /// misconfigures the stack's processes; then heal, converge, and check every invariant.
    /// Exit 0 only when all hold.
    Chaos(chaos::ChaosArgs),
}

/// Runs a tool subcommand to completion.
pub fn run(cmd: Command) -> anyhow::Result<()> {
    match cmd {
        Command::Bench(args) => {
            // Per-transfer INFO lines would flood the terminal and cost throughput; RUST_LOG wins.
            common::infra::telemetry::init(
                "warn,rocketmq_client_rust::consumer::consumer_impl::consume_message_concurrently_service=error",
            );
            let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
            rt.block_on(bench::run(*args))
        }
        Command::Chaos(args) => {
            // The banks log to their own files; here only what goes wrong.
            common::infra::telemetry::init("warn,rocketmq=error,rocketmq_client_rust=error");
            let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
            rt.block_on(chaos::run(args))
        }
    }
}
