//! bank-transfer — the launcher of the bank1 → bank2 transfer over a real RocketMQ:
//! `cargo run --release` runs the whole stack (and the operator console) on one machine with
//! nothing to install; `console` runs the console alone against running banks; the
//! `bench` and `chaos` subcommands come from the `tools` crate (default feature `tools`).
//! It is also the binary the stack starts its name server and broker (and, for chaos, the
//! banks) from, through hidden subcommands.
#![recursion_limit = "512"]

mod local;

use clap::{Parser, Subcommand};
use stack::embedded::{BrokerArgs, NamesrvArgs};

/// The bank1 → bank2 transfer over a real RocketMQ, on one machine with nothing to install.
#[derive(Debug, Parser)]
#[command(name = "bank-transfer", args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    cmd: Option<Cmd>,
    #[command(flatten)]
    local: local::LocalArgs,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Run a RocketMQ name server (used by the stack as a child process).
    #[command(hide = true)]
    Namesrv(NamesrvArgs),
    /// Run a RocketMQ broker (used by the stack as a child process).
    #[command(hide = true)]
    Broker(BrokerArgs),
    /// Run bank1 alone (`bank-transfer bank1 --help`; the chaos runner's child processes).
    #[command(hide = true, disable_help_flag = true)]
    Bank1 {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Run bank2 alone.
    #[command(hide = true, disable_help_flag = true)]
    Bank2 {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Run the operator console against running banks (`bank-transfer console --help`).
    Console(console::Settings),
    /// Print a fresh Ed25519 signing key (and its public key) and a random token, for running
    /// the banks on their own (`BANK1_SIGNING_KEY`, `BANK2_PEER_PUBLIC_KEYS`, `…_TOKEN`).
    Keygen,
    #[cfg(feature = "tools")]
    #[command(flatten)]
    Tools(tools::Command),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.cmd {
        Some(Cmd::Namesrv(a)) => {
            common::infra::telemetry::init("warn");
            stack::embedded::serve_namesrv(a)
        }
        Some(Cmd::Broker(a)) => {
            common::infra::telemetry::init("warn");
            stack::embedded::serve_broker(a)
        }
        Some(Cmd::Bank1 { args }) => {
            common::service::app::run_from::<bank1::AppState, _, _>(std::iter::once("bank1".to_owned()).chain(args))
        }
        Some(Cmd::Bank2 { args }) => {
            common::service::app::run_from::<bank2::AppState, _, _>(std::iter::once("bank2".to_owned()).chain(args))
        }
        Some(Cmd::Console(settings)) => {
            common::infra::telemetry::init(common::infra::telemetry::DEFAULT_FILTER);
            let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
            rt.block_on(console::run(settings))
        }
        Some(Cmd::Keygen) => {
            let key = common::domain::signing::Signer::generate();
            println!("signing key (secret; BANKn_SIGNING_KEY):      {}", key.to_base64());
            println!("public key (the peer's BANKm_PEER_PUBLIC_KEYS): {}", key.public_base64());
            println!("key id:                                        {}", key.key_id());
            println!(
                "a token (BANKn_ADMIN_TOKEN, BANKn_FEED_TOKEN):  {}",
                common::infra::token::Token::generate().expose()
            );
            Ok(())
        }
        #[cfg(feature = "tools")]
        Some(Cmd::Tools(cmd)) => tools::run(cmd),
        None => {
            common::infra::telemetry::init(common::infra::telemetry::DEFAULT_FILTER);
            let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
            rt.block_on(local::run(cli.local))
        }
    }
}
