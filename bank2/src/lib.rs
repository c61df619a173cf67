//! bank2 — the receiver. Consumes bank1's signed transfer messages and applies each exactly
//! once: credits the receiver (dedup row + credit in one DB transaction), or — when that can
//! never succeed — rejects it and returns the funds to bank1 with a signed refund notice (the
//! same transactional-message pattern in reverse). Leans on broker redelivery for transient
//! failures; reconciles from bank1's feed whatever the messages missed.
//!
//! - [`settings`]: flags / `BANK2_*` env.
//! - [`store`]: the SQL (accounts, dedup rows CREDITED | REJECTED, attempts, refund notices).
//! - [`credit`]: the one apply path every deliverer uses, with the fault check.
//! - [`refund`]: the rejection as the local transaction of a refund notice, and its check-back.
//! - [`consumer`]: handling one delivered message (signature, parse, apply, quarantine).
//! - [`reconcile`]: the periodic reconciler over bank1's feed ([`bank1_client`]).
//! - [`redrive`]: the DLQ: redrive (proven by bank1) and operator refund.
//! - [`metrics`]: bank2's own metrics (credits, rejections, retries, quarantine, DLQ size,
//!   debit → credit latency) at `GET /metrics`.
//! - [`faults`]: operator fault injection by amount threshold.
//! - [`http`]: the API (`/api/credits`, `/api/rejections`, `/admin/dlq/*`, `/admin/consumer/*`;
//!   with the shared `/api/accounts`, `/api/quarantine`, `/metrics`, `/admin/faults`,
//!   `/admin/reconcile` and `/health`).
//!
//! [`AppState`] is the [`Service`](common::service::app::Service) that the shared [`App`]
//! skeleton runs; `main.rs` is one line.
#![recursion_limit = "512"]

pub use common::service::error;
pub mod bank1_client;
pub mod consumer;
pub mod credit;
pub mod faults;
pub mod http;
pub mod metrics;
pub mod reconcile;
pub mod redrive;
pub mod refund;
pub mod settings;
pub mod store;

use std::sync::Arc;

use common::domain::message;
use common::infra::mq::consumer::PushConsumer;
use common::service::app::{Background, Base, Service, Shared};
use common::service::proofs::Prover;
use common::service::quarantine::Code;

use crate::bank1_client::Bank1;
use crate::credit::Credits;
use crate::faults::FaultSwitch;
use crate::metrics::Metrics;
pub use crate::settings::Settings;

/// bank2, built and serving.
pub type App = common::service::app::App<AppState>;

#[derive(Clone)]
pub struct AppState {
    pub shared: Shared,
    pub faults: FaultSwitch,
    pub metrics: Metrics,
    /// The one apply path (credit or reject).
    pub credits: Credits,
    /// bank1's feed.
    pub bank1: Bank1,
    /// Asks bank1's query interface where transfers stand (the consumer's, shared by redrive).
    pub prover: Prover,
    /// The transfer consumer (the operator pauses and resumes it).
    pub consumer: PushConsumer,
    pub settings: Arc<Settings>,
}

impl Service for AppState {
    type Settings = Settings;

    /// Credits and the rejection feed; the operator's DLQ, redrive, refund and consumer pause.
    const ROUTES: fn() -> utoipa_axum::router::OpenApiRouter<Self> = http::routes;
    const ADMIN_ROUTES: fn() -> utoipa_axum::router::OpenApiRouter<Self> = http::admin_routes;
    /// Credited from bank1's transfers.
    const FLOW: common::service::ledger::Flow = common::service::ledger::Flow {
        name: "credited",
        sql: "SELECT SUM(amount) FROM de_duplication WHERE outcome = 'CREDITED'",
    };

    async fn start(settings: Settings, base: Base) -> anyhow::Result<Self> {
        let faults = FaultSwitch::new(settings.faults);
        let pool = base.shared.db.pool.clone();
        let metrics = Metrics::new(base.shared.metrics.clone());
        let reject = refund::RejectTx { pool: pool.clone(), faults: faults.clone() };
        let (group, topic) = (&settings.common.producer_group, &settings.common.refund_topic);
        let refunds = base.producer(&settings, group, topic, message::REFUND_TAG, reject).await?;
        let credits = Credits {
            pool,
            engine: base.shared.db.engine,
            faults: faults.clone(),
            metrics: metrics.clone(),
            refunds,
            feed_wake: Arc::default(),
            groups: None,
        }
        .with_groups(settings.credit_group as usize);
        let inbox = base.inbox(&settings, bank1_client::PROOFS, &["COMMITTED", "REFUNDED"], Code::NotCommitted);
        let prover = inbox.prover.clone();
        let deliveries = consumer::Deliveries {
            inbox,
            credits: credits.clone(),
            max_reconsume_times: settings.common.max_reconsume_times,
        };
        let (group, topic) = (&settings.common.consumer_group, &settings.common.topic);
        let consumer = base
            .consumer(&settings, group, topic, settings.consume_threads, settings.consume_batch, deliveries)
            .await?;
        let shared = base.shared;
        let bank1 = Bank1(shared.peer.clone());
        Ok(AppState { shared, faults, metrics, credits, bank1, prover, consumer, settings: Arc::new(settings) })
    }

    fn parts(&self) -> (&Shared, &FaultSwitch) {
        (&self.shared, &self.faults)
    }

    /// The DLQ size, from bank2's own records (see [`store::dead_letters`]).
    async fn gauges(&self) {
        match store::dead_letters(&self.shared.db.read, self.settings.common.max_reconsume_times).await {
            Ok(n) => self.metrics.dlq_size(n),
            Err(e) => tracing::warn!(error = %e, "could not count the dead letters for /metrics"),
        }
    }

    fn background(&self, bg: &mut Background) {
        bg.spawn(store::REJECTION_FEED.run::<String>(
            self.pool().clone(),
            Arc::clone(&self.credits.feed_wake),
            bg.stopped(),
        ));
    }

    async fn stop_roles(&self) {
        self.consumer.shutdown().await;
        self.credits.refunds.shutdown().await;
    }
}
