//! bank1 — the sender. Debits the sender's account and publishes the transfer atomically as a
//! signed RocketMQ transactional (half) message; answers the broker's check-back from its own
//! rows. Takes returned funds back: bank2's signed refund notices, and bank2's rejection feed
//! for the ones the messages missed.
//!
//! - [`settings`]: flags / `BANK1_*` env.
//! - [`store`]: the SQL (accounts, transfers, idempotency keys, the refund).
//! - [`producer`]: the debit as a local transaction, and the check-back.
//! - [`group_commit`]: debits that arrive together commit together (one fsync on SQLite).
//! - [`transfers`]: the transfer flow and its reply.
//! - [`refund`]: refund notices (consumer) and the rejection feed (reconciler).
//! - [`metrics`]: bank1's own metrics (transfers, local transactions, check-backs, refunds,
//!   Idempotency-Key replays) at `GET /metrics`.
//! - [`faults`]: operator fault injection by amount threshold.
//! - [`http`]: the API (`/api/transfers`, `/admin/transfers`; with the shared `/api/accounts`, `/api/quarantine`,
//!   `/metrics`, `/admin/faults`, `/admin/reconcile` and `/health`).
//!
//! [`AppState`] is the [`Service`](common::service::app::Service) that the shared [`App`]
//! skeleton runs; `main.rs` is one line.

#![recursion_limit = "512"]

pub use common::service::error;
pub mod faults;
pub mod group_commit;
pub mod http;
pub mod metrics;
pub mod producer;
pub mod refund;
pub mod settings;
pub mod store;
pub mod transfers;

use std::sync::Arc;

use common::domain::message;
use common::infra::mq::consumer::PushConsumer;
use common::infra::mq::tx::TxProducer;
use common::service::app::{Background, Base, Service, Shared};
use common::service::quarantine::Code;

use crate::faults::FaultSwitch;
use crate::metrics::Metrics;
pub use crate::settings::Settings;

/// Refund notices handled at once (they are rare).
const REFUND_CONSUME_THREADS: u32 = 2;

/// Everything a request handler needs.
#[derive(Clone)]
pub struct AppState {
    pub shared: Shared,
    /// Wakes the feed sequencer after a commit.
    pub feed_wake: Arc<tokio::sync::Notify>,
    /// The transfer producer (local transaction: the debit).
    pub publisher: TxProducer<producer::DebitTx>,
    /// The refund-notice consumer.
    pub refunds: PushConsumer,
    pub faults: FaultSwitch,
    pub metrics: Metrics,
    pub settings: Arc<Settings>,
}

/// bank1, built and serving.
pub type App = common::service::app::App<AppState>;

impl Service for AppState {
    type Settings = Settings;

    /// Transfers, their status and the transfer feed.
    const ROUTES: fn() -> utoipa_axum::router::OpenApiRouter<Self> = http::routes;
    /// The transfer list, newest first.
    const ADMIN_ROUTES: fn() -> utoipa_axum::router::OpenApiRouter<Self> = http::admin_routes;
    /// Debited and not returned.
    const FLOW: common::service::ledger::Flow = common::service::ledger::Flow {
        name: "committed",
        sql: "SELECT SUM(amount) FROM transfer WHERE status = 'COMMITTED'",
    };

    async fn start(settings: Settings, base: Base) -> anyhow::Result<Self> {
        let faults = FaultSwitch::new(settings.faults);
        let pool = base.shared.db.pool.clone();
        let metrics = Metrics::new(base.shared.metrics.clone());
        let debits = group_commit::GroupCommit::start(&base.shared.db, settings.debit_group as usize, metrics.clone());
        let debit = producer::DebitTx { debits, pool: pool.clone(), faults: faults.clone(), metrics: metrics.clone() };
        let (group, topic) = (&settings.common.producer_group, &settings.common.topic);
        let publisher = base.producer(&settings, group, topic, message::TRANSFER_TAG, debit).await?;
        let inbox = base.inbox(&settings, refund::PROOFS, &["REJECTED"], Code::NotRejected);
        let refunds = refund::Refunds { inbox, metrics: metrics.clone() };
        let (group, topic) = (&settings.common.consumer_group, &settings.common.refund_topic);
        let refunds = base.consumer(&settings, group, topic, REFUND_CONSUME_THREADS, 1, refunds).await?;
        let shared = base.shared;
        let settings = Arc::new(settings);
        Ok(AppState { shared, feed_wake: Arc::default(), publisher, refunds, faults, metrics, settings })
    }

    fn parts(&self) -> (&Shared, &FaultSwitch) {
        (&self.shared, &self.faults)
    }

    fn background(&self, bg: &mut Background) {
        bg.spawn(store::TRANSFER_FEED.run::<i64>(self.pool().clone(), Arc::clone(&self.feed_wake), bg.stopped()));
    }

    async fn stop_roles(&self) {
        self.refunds.shutdown().await;
        self.publisher.shutdown().await;
    }
}
