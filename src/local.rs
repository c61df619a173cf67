//! `cargo run --release`: the whole stack on fixed ports under one data directory, until
//! Ctrl-C or SIGTERM — name server and broker as children of this binary, bank1, bank2 and the
//! operator console in this process, SQLite files (or the given databases), keys and tokens
//! generated on first start.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use stack::databases::DbChoice;
use stack::embedded::BrokerTuning;
use stack::StackBuilder;

/// `cargo run --release` flags (`bank-transfer --help`).
#[derive(Debug, Clone, Args)]
pub struct LocalArgs {
    /// Where everything lives: broker store, name-server state, SQLite files, logs, secrets.
    #[arg(long, env = "BANK_TRANSFER_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
    #[arg(long, env = "BANK_TRANSFER_NAMESRV_PORT", default_value_t = 9876)]
    pub namesrv_port: u16,
    /// Broker client port (it also binds port-2 and port+1).
    #[arg(long, env = "BANK_TRANSFER_BROKER_PORT", default_value_t = 10911)]
    pub broker_port: u16,
    #[arg(long, env = "BANK_TRANSFER_BANK1_LISTEN", default_value = "127.0.0.1:56081")]
    pub bank1_listen: SocketAddr,
    #[arg(long, env = "BANK_TRANSFER_BANK2_LISTEN", default_value = "127.0.0.1:56082")]
    pub bank2_listen: SocketAddr,
    /// The operator console (README "Console").
    #[arg(long, env = "BANK_TRANSFER_CONSOLE_LISTEN", default_value = console::DEFAULT_LISTEN)]
    pub console_listen: SocketAddr,
    /// bank1's database (default: SQLite file in --data-dir).
    #[arg(long, env = "BANK1_DATABASE_URL", requires = "bank2_database_url")]
    pub bank1_database_url: Option<String>,
    /// bank2's database (default: SQLite file in --data-dir).
    #[arg(long, env = "BANK2_DATABASE_URL", requires = "bank1_database_url")]
    pub bank2_database_url: Option<String>,
    #[command(flatten)]
    pub broker: BrokerTuning,
}

pub async fn run(args: LocalArgs) -> anyhow::Result<()> {
    let exe = std::env::current_exe().context("locating this executable")?;
    let started = std::time::Instant::now();
    let db = match (&args.bank1_database_url, &args.bank2_database_url) {
        (Some(b1), Some(b2)) => DbChoice::Urls { bank1: b1.clone(), bank2: b2.clone() },
        _ => DbChoice::Sqlite,
    };
    let stack = StackBuilder::new(exe)
        .data_dir(&args.data_dir)
        .database(db)
        .tuning(args.broker.clone())
        .server_ports(args.namesrv_port, args.broker_port)
        .listen(args.bank1_listen, args.bank2_listen)
        .start()
        .await?;
    let (s1, s2) = stack.settings();
    let ui = console::Console::new(&console::Settings {
        listen: args.console_listen,
        bank1_url: stack.bank1_url.clone(),
        bank2_url: stack.bank2_url.clone(),
        bank1_admin_token: s1.common.admin_token.clone(),
        bank2_admin_token: s2.common.admin_token.clone(),
    })?;
    let listener = tokio::net::TcpListener::bind(args.console_listen)
        .await
        .with_context(|| format!("binding the console to {}", args.console_listen))?;
    let (stop_console, console_stopped) = tokio::sync::oneshot::channel::<()>();
    let ui = tokio::spawn(console::serve(listener, ui, async {
        let _ = console_stopped.await;
    }));
    let token = |t: &Option<common::infra::token::Token>| t.as_ref().map_or("", |t| t.expose()).to_owned();
    let (s1, s2) = (&s1.common, &s2.common);
    let (b1, b2) = (&stack.bank1_url, &stack.bank2_url);
    let dir = stack.dir.display();
    println!();
    println!("bank-transfer is up ({:.1}s):", started.elapsed().as_secs_f64());
    println!(
        "  console  http://{}/   (operator console: money, transfers, timelines, DLQ, faults)",
        args.console_listen
    );
    println!("  bank1    {b1}   (sender; account 1 张三)");
    println!("  bank2    {b2}   (receiver; account 2 李四)");
    println!("  namesrv  {}   broker {}", stack.namesrv_addr, stack.broker_addr);
    println!("  API      {b1}/docs   {b2}/docs   (Swagger UI; OpenAPI at /api-docs/openapi.json)");
    println!("  data     {dir}   (logs in {dir}/logs, keys and tokens in {dir}/secrets)");
    println!();
    println!("Operator tokens for /admin/* (paste before the README's curl lines):");
    println!("  export BANK1_ADMIN_TOKEN={} BANK2_ADMIN_TOKEN={}", token(&s1.admin_token), token(&s2.admin_token));
    println!();
    println!("Try:");
    println!(
        "  curl -s -X POST {b1}/api/transfers -H 'Content-Type: application/json' -d '{{\"from_account\":\"1\",\"to_account\":\"2\",\"amount\":\"100.00\"}}'"
    );
    println!("  curl -s {b2}/api/accounts/2");
    println!();
    println!("Ctrl-C stops everything.");

    common::infra::shutdown::shutdown_signal().await;
    println!("stopping…");
    let _ = stop_console.send(());
    let _ = ui.await;
    stack.stop().await;
    println!("stopped.");
    Ok(())
}
