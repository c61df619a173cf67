#![recursion_limit = "512"]

use clap::{Parser, Subcommand};

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
        None => {
            common::telemetry::init(common::telemetry::DEFAULT_FILTER);
            let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
            rt.block_on(bank_transfer::stack::run(cli.stack))
        }
    }
}
