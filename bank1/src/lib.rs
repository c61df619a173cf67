//! bank1 — the sender. Debits the sender's account and publishes the transfer atomically as a
//! RocketMQ transactional (half) message; answers the broker's check-back from its own rows.
//!
//! - [`settings`]: flags / `BANK1_*` env.
//! - [`store`]: the SQL (accounts, transfers, idempotency keys).
//! - [`producer`]: the transactional producer, local transaction and check-back.
//! - [`transfers`]: the transfer flow and its reply.
//! - [`feed`]: the reconciliation feed and its sequencer.
//! - [`faults`]: operator fault injection by amount threshold.
//! - [`http`]: the API (`/api/transfers`, `/api/accounts`, `/admin/faults`, `/health`).
//!
//! [`App::build`] wires it all; `main.rs` only parses settings and runs it.

#![recursion_limit = "512"]

pub use common::error;
pub mod faults;
pub mod feed;
pub mod http;
pub mod producer;
pub mod settings;
pub mod store;
pub mod transfers;

use std::future::Future;
use std::sync::Arc;

use anyhow::Context;
use common::db::Db;
use common::mq::MqRuntime;
use tokio::net::TcpListener;

use crate::faults::{FaultSwitch, Faults};
use crate::producer::Publisher;
pub use crate::settings::Settings;

/// Everything a request handler needs.
#[derive(Clone)]
pub struct AppState {
    pub db: Db,
    /// Wakes the feed sequencer after a commit.
    pub feed_wake: Arc<tokio::sync::Notify>,
    pub publisher: Publisher,
    pub faults: FaultSwitch,
    pub settings: Arc<Settings>,
}

/// A built bank1: database migrated, producer started, listener bound.
pub struct App {
    listener: TcpListener,
    state: AppState,
    mq: MqRuntime,
}

impl App {
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let db = common::db::connect(
            &settings.database_url,
            &sqlx::migrate!("../sql/bank1/sqlite"),
            &sqlx::migrate!("../sql/bank1/mysql"),
            settings.db_max_connections,
        )
        .await?;
        let faults = FaultSwitch::new(Faults {
            local_tx_fail_at_least: settings.local_tx_fail_at_least,
            unknown_at_least: settings.unknown_at_least,
            lose_message_at_least: settings.lose_message_at_least,
        });
        let mq = MqRuntime::new("bank1")?;
        let publisher = Publisher::start(&mq, &settings, db.pool.clone(), faults.clone()).await?;
        let listener =
            TcpListener::bind(settings.listen).await.with_context(|| format!("binding {}", settings.listen))?;
        let state = AppState { db, feed_wake: Arc::default(), publisher, faults, settings: Arc::new(settings) };
        Ok(Self { listener, state, mq })
    }

    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` resolves: HTTP drains first, then the producer stops.
    pub async fn run_until(self, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        let Self { listener, state, mq } = self;
        let router = http::router(state.clone());
        tracing::info!(addr = ?listener.local_addr().ok(), "bank1 listening");
        let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
        let sequencer =
            tokio::spawn(feed::run_sequencer(state.db.pool.clone(), Arc::clone(&state.feed_wake), async move {
                let _ = stop_rx.wait_for(|s| *s).await;
            }));
        let served = axum::serve(listener, router).with_graceful_shutdown(shutdown).await;
        let _ = stop_tx.send(true);
        let _ = sequencer.await;
        state.publisher.shutdown().await;
        mq.shutdown().await;
        state.db.pool.close().await;
        served.context("bank1 HTTP server")
    }
}
