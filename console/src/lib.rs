//! console — the operator console: one web page over both banks. It shows both banks'
//! accounts and the money-conservation total, live; sends transfers (with the
//! Idempotency-Key shown); lists transfers newest first; and draws each transfer's timeline
//! across bank1, the broker and bank2 — half message, local transaction, answer, check-backs,
//! delivery attempts on the retry ladder, credit or rejection and refund. Its operations page
//! holds the fault switches, bank2's consumer, reconciliation, the DLQ (redrive, refund) and
//! both quarantines.
//!
//! It talks to the banks' APIs server-side with the tokens it is given; the browser never sees
//! a token. Plain server-rendered HTML ([`maud`]) with one small script that refreshes the live
//! parts; every asset is compiled in ([`assets`]), so it works offline.
//!
//! - [`banks`]: the banks' APIs as the console calls them, and their reply types.
//! - [`timeline`]: merging both banks' steps of one transfer.
//! - [`pages`]: the HTML.
//! - [`actions`]: the forms' POST handlers (transfer, faults, consumer, reconcile, DLQ).
//! - [`assets`]: the stylesheet and the script.
//!
//! `cargo run --release` serves it at <http://127.0.0.1:56080/>; `bank-transfer console` runs
//! it alone against running banks (the compose `console` service). README "Console".

pub mod actions;
pub mod assets;
pub mod banks;
pub mod pages;
pub mod timeline;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use axum::routing::{get, post};
use axum::Router;
use common::infra::token::Token;

use crate::banks::Bank;

/// The console's default address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:56080";

/// `bank-transfer console` flags.
#[derive(Debug, Clone, clap::Args)]
pub struct Settings {
    #[arg(long, env = "CONSOLE_LISTEN", default_value = DEFAULT_LISTEN)]
    pub listen: SocketAddr,
    /// bank1's API, as the console reaches it.
    #[arg(long, env = "CONSOLE_BANK1_URL", default_value = "http://127.0.0.1:56081")]
    pub bank1_url: String,
    /// bank2's API, as the console reaches it.
    #[arg(long, env = "CONSOLE_BANK2_URL", default_value = "http://127.0.0.1:56082")]
    pub bank2_url: String,
    /// bank1's operator token (its `BANK1_ADMIN_TOKEN`).
    #[arg(long, env = "BANK1_ADMIN_TOKEN", value_parser = Token::parse, hide_env_values = true)]
    pub bank1_admin_token: Option<Token>,
    /// bank2's operator token (its `BANK2_ADMIN_TOKEN`).
    #[arg(long, env = "BANK2_ADMIN_TOKEN", value_parser = Token::parse, hide_env_values = true)]
    pub bank2_admin_token: Option<Token>,
}

/// What every handler reads: both banks.
#[derive(Debug, Clone)]
pub struct Console(Arc<Banks>);

#[derive(Debug)]
pub struct Banks {
    pub bank1: Bank,
    pub bank2: Bank,
}

impl std::ops::Deref for Console {
    type Target = Banks;
    fn deref(&self) -> &Banks {
        &self.0
    }
}

impl Console {
    pub fn new(s: &Settings) -> anyhow::Result<Self> {
        Ok(Self(Arc::new(Banks {
            bank1: Bank::new("bank1", &s.bank1_url, s.bank1_admin_token.clone())?,
            bank2: Bank::new("bank2", &s.bank2_url, s.bank2_admin_token.clone())?,
        })))
    }
}

/// Every page, fragment, form target and asset.
pub fn router(console: Console) -> Router {
    Router::new()
        .route("/", get(pages::overview))
        .route("/live/money", get(pages::money_live))
        .route("/live/transfers", get(pages::transfers_live))
        .route("/transfers/{tx_no}", get(pages::transfer))
        .route("/live/transfers/{tx_no}", get(pages::transfer_live))
        .route("/operations", get(pages::operations))
        .route("/transfers", post(actions::send_transfer))
        .route("/faults/{bank}", post(actions::set_fault))
        .route("/consumer/{action}", post(actions::consumer))
        .route("/reconcile/{bank}", post(actions::reconcile))
        .route("/dlq/redrive", post(actions::redrive))
        .route("/dlq/refund", post(actions::refund))
        .route("/assets/console.css", get(assets::css))
        .route("/assets/console.js", get(assets::js))
        .fallback(pages::not_found)
        .with_state(console)
}

/// Serves the console on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    console: Console,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    axum::serve(listener, router(console)).with_graceful_shutdown(shutdown).await.context("serving the console")
}

/// `bank-transfer console`: binds and serves until Ctrl-C or SIGTERM.
pub async fn run(settings: Settings) -> anyhow::Result<()> {
    let console = Console::new(&settings)?;
    let listener =
        tokio::net::TcpListener::bind(settings.listen).await.with_context(|| format!("binding {}", settings.listen))?;
    tracing::info!(listen = %settings.listen, bank1 = %settings.bank1_url, bank2 = %settings.bank2_url, "console up");
    println!("console  http://{}/", settings.listen);
    serve(listener, console, common::infra::shutdown::shutdown_signal()).await
}
