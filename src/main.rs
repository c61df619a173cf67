#![recursion_limit = "512"]

use clap::{Parser, Subcommand};

use bank_transfer::bench::BenchArgs;
use bank_transfer::servers::{BrokerArgs, NamesrvArgs};
use bank_transfer::stack::StackArgs;

/// The bank1 → bank2 transfer over a real RocketMQ, on one machine with nothing to install.
#[derive(Debug, Parser)]
#[command(name = "bank-transfer", args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    cmd: Option<Cmd>,
    #[command(flatten)]
    stack: StackArgs,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Run a RocketMQ name server (used by the stack as a child process).
    #[command(hide = true)]
    Namesrv(NamesrvArgs),
    /// Run a RocketMQ broker (used by the stack as a child process).
    #[command(hide = true)]
    Broker(BrokerArgs),
    /// Benchmark: drive transfers through bank1's API, time them until bank2 credits them,
    /// compare with the broker alone (--baseline), and check every transfer arrived once.
    Bench(BenchArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.cmd {
        Some(Cmd::Namesrv(a)) => {
            common::telemetry::init("warn");
            bank_transfer::servers::serve_namesrv(a)
        }
        Some(Cmd::Broker(a)) => {
            common::telemetry::init("warn");
            bank_transfer::servers::serve_broker(a)
        }
        Some(Cmd::Bench(a)) => {
            // Per-transfer INFO lines would flood the terminal and cost throughput, and every
            // consumer shutdown warns about its clean-expire task (cosmetic); RUST_LOG wins.
            common::telemetry::init(
                "warn,rocketmq_client_rust::consumer::consumer_impl::consume_message_concurrently_service=error",
            );
            let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
            rt.block_on(bank_transfer::bench::run(a))
        }
        None => {
            common::telemetry::init(common::telemetry::DEFAULT_FILTER);
            let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
            rt.block_on(bank_transfer::stack::run(cli.stack))
        }
    }
}
