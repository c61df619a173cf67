//! bank2 — the receiver. Consumes transfer messages and credits the receiver exactly once
//! (dedup row + credit in one DB transaction), leaning on broker redelivery when it fails.
//!
//! - [`settings`]: flags / `BANK2_*` env.
//! - [`store`]: the SQL (accounts, dedup rows, attempts, quarantine).
//! - [`credit`]: the one credit path every deliverer uses, with the fault check.
//! - [`consumer`]: the RocketMQ push consumer.
//! - [`reconcile`]: the periodic reconciler over bank1's feed ([`bank1_client`]).
//! - [`redrive`]: DLQ redrive, checked against bank1's status endpoint.
//! - [`metrics`]: counters behind `GET /metrics`.
//! - [`faults`]: operator fault injection by amount threshold.
//! - [`http`]: the API (`/api/accounts`, `/api/credits`, `/api/quarantine`, `/admin/faults`,
//!   `/health`).
#![recursion_limit = "512"]

pub use common::error;
pub mod bank1_client;
pub mod consumer;
pub mod credit;
pub mod faults;
pub mod http;
pub mod metrics;
pub mod reconcile;
pub mod redrive;
pub mod settings;
pub mod store;

use std::future::Future;
use std::sync::Arc;

use anyhow::Context;
use common::db::Db;
use common::mq::MqRuntime;
use tokio::net::TcpListener;

use crate::consumer::Consumer;
use crate::faults::{FaultSwitch, Faults};
use crate::metrics::Metrics;
pub use crate::settings::Settings;

#[derive(Clone)]
pub struct AppState {
    pub db: Db,
    pub faults: FaultSwitch,
    pub metrics: Metrics,
    pub bank1: bank1_client::Bank1,
    pub consumer: Consumer,
    /// Serializes reconcile runs (periodic and on demand).
    pub reconcile_lock: Arc<tokio::sync::Mutex<()>>,
    pub settings: Arc<Settings>,
}

/// A built bank2: database migrated, consumer started, listener bound.
pub struct App {
    listener: TcpListener,
    state: AppState,
    mq: MqRuntime,
}

impl App {
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let db = common::db::connect(
            &settings.database_url,
            &sqlx::migrate!("../sql/bank2/sqlite"),
            &sqlx::migrate!("../sql/bank2/mysql"),
            settings.db_max_connections,
        )
        .await?;
        let faults = FaultSwitch::new(Faults { consume_fail_at_least: settings.consume_fail_at_least });
        let mq = MqRuntime::new("bank2")?;
        let metrics = Metrics::default();
        let consumer = Consumer::start(&mq, &settings, db.pool.clone(), faults.clone(), metrics.clone()).await?;
        let listener =
            TcpListener::bind(settings.listen).await.with_context(|| format!("binding {}", settings.listen))?;
        let state = AppState {
            db,
            faults,
            metrics,
            bank1: bank1_client::Bank1::new(&settings.bank1_url),
            consumer,
            reconcile_lock: Arc::default(),
            settings: Arc::new(settings),
        };
        Ok(Self { listener, state, mq })
    }

    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` resolves: HTTP drains first, then the consumer stops.
    pub async fn run_until(self, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        let Self { listener, state, mq } = self;
        let router = http::router(state.clone());
        tracing::info!(addr = ?listener.local_addr().ok(), "bank2 listening");
        let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
        let reconciler = tokio::spawn(reconcile::run_periodically(
            state.clone(),
            state.settings.reconcile_interval,
            state.settings.reconcile_grace,
            async move {
                let _ = stop_rx.wait_for(|s| *s).await;
            },
        ));
        let served = axum::serve(listener, router).with_graceful_shutdown(shutdown).await;
        let _ = stop_tx.send(true);
        let _ = reconciler.await;
        state.consumer.shutdown().await;
        mq.shutdown().await;
        state.db.pool.close().await;
        served.context("bank2 HTTP server")
    }
}
