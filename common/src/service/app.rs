//! One skeleton for both banks. A bank is a [`Service`]: its state holds the [`Shared`] part
//! every bank has (database, MQ client runtime, tokens, reconciliation bookkeeping) and adds its
//! own roles; [`App`] binds, serves the one router both banks share ([`router`]) until
//! shutdown, drains HTTP first, then stops the background tasks and the MQ roles. [`main`] is
//! every bank's `main`.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::middleware::from_fn_with_state;
use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tower_http::trace::TraceLayer;
use utoipa_axum::router::OpenApiRouter;

use crate::domain::proof::Rule;
use crate::domain::signing::{PeerKeys, Signer};
use crate::infra::db::Db;
use crate::infra::metrics::Metrics;
use crate::infra::mq::consumer::{ConsumerConfig, Handler, PushConsumer};
use crate::infra::mq::tx::{LocalTransaction, ProducerConfig, TxProducer};
use crate::infra::mq::MqRuntime;
use crate::infra::peer::{Peer, PeerConfig};
use crate::service::api;
use crate::service::auth::Guard;
use crate::service::error::{Code, Error, Result};
use crate::service::faults::Switch;
use crate::service::inbox::Inbox;
use crate::service::proofs::Prover;
use crate::service::reconcile::{self, Reconciler, Report, Runs};
use crate::service::settings::{self, BankSettings, Names};

/// A bank service: what differs between bank1 and bank2. A bank is also the [`Reconciler`]
/// over the other bank's feed.
pub trait Service: Reconciler + Clone + Send + Sync + Sized + 'static {
    type Settings: BankSettings;

    /// The bank's own routes, and its own `/admin/*` routes (the token guard is added), each
    /// documented for the OpenAPI contract ([`crate::service::api`]).
    const ROUTES: fn() -> OpenApiRouter<Self>;
    const ADMIN_ROUTES: fn() -> OpenApiRouter<Self> = OpenApiRouter::new;
    /// What the bank's transfers add to the money-conservation sum (`GET /admin/accounts`).
    const FLOW: crate::service::ledger::Flow;

    /// Starts the MQ roles on a migrated database ([`Base`]).
    fn start(settings: Self::Settings, base: Base) -> impl Future<Output = anyhow::Result<Self>> + Send;
    /// The parts every bank has: [`Shared`] and its fault switches.
    fn parts(&self) -> (&Shared, &Switch<FaultsOf<Self>>);
    fn shared(&self) -> &Shared {
        self.parts().0
    }
    fn faults(&self) -> &Switch<FaultsOf<Self>> {
        self.parts().1
    }
    fn pool(&self) -> &sqlx::AnyPool {
        &self.shared().db.pool
    }
    /// Spawns the bank's background tasks (the feed sequencer) on `bg`.
    fn background(&self, bg: &mut Background);
    /// One pass of the bank's reconciliation over the other bank's feed (one at a time).
    fn reconcile(&self, grace: Duration) -> impl Future<Output = Result<Report>> + Send {
        async move {
            let report = self.shared().reconcile_runs.once(self, self.pool(), grace).await;
            let result = if report.is_ok() { "ok" } else { "error" };
            self.shared().metrics.record(|| metrics::counter!("reconcile_runs_total", "result" => result).increment(1));
            report
        }
    }
    /// Sets the bank's own gauges that are read when `/metrics` is scraped (from its database).
    fn gauges(&self) -> impl Future<Output = ()> + Send {
        async {}
    }
    /// Stops the bank's MQ roles (after HTTP and the background tasks).
    fn stop_roles(&self) -> impl Future<Output = ()> + Send;
}

/// A bank's fault switches (named by its settings).
pub type FaultsOf<S> = <<S as Service>::Settings as BankSettings>::Faults;

/// What every bank holds alike.
#[derive(Clone)]
pub struct Shared {
    pub names: Names,
    pub db: Db,
    /// The bank's own metrics recorder (`GET /metrics`).
    pub metrics: Metrics,
    /// The client runtime of the bank's producer, consumer and operator reads.
    pub mq: Arc<MqRuntime>,
    /// The other bank's API (its signed answers only).
    pub peer: Peer,
    /// This bank's signing key: its messages and its signed answers.
    pub signer: Signer,
    pub admin_guard: Guard,
    pub feed_guard: Guard,
    pub reconcile: reconcile::Settings,
    pub reconcile_runs: Runs,
}

/// What a bank starts from, before its own roles: keys, a migrated database, the MQ runtime.
pub struct Base {
    pub signer: Signer,
    pub peers: PeerKeys,
    pub shared: Shared,
}

impl Base {
    /// Reads the keys, connects and migrates the database (the bank's migrations,
    /// [`BankSettings::MIGRATORS`]), and starts the MQ client runtime. `cursor` names the bank's
    /// reconciliation cursor.
    pub async fn open<S: BankSettings>(settings: &S, cursor: &'static str) -> anyhow::Result<Self> {
        let names = S::NAMES;
        let [sqlite, mysql] = S::MIGRATORS;
        let c = settings.common();
        let signer =
            Signer::from_setting(c.signing_key.as_deref(), c.signing_key_file.as_deref(), &names.env("SIGNING_KEY"))?;
        let peers = PeerKeys::from_setting(
            c.peer_public_keys.as_deref(),
            c.peer_public_keys_file.as_deref(),
            &names.env("PEER_PUBLIC_KEYS"),
        )?;
        let options =
            crate::infra::db::Options { max_connections: c.db_max_connections, sqlite_sync: c.sqlite_synchronous };
        let db = crate::infra::db::connect(&c.database_url, sqlite, mysql, options).await?;
        let mq = Arc::new(MqRuntime::new(names.bank)?);
        let metrics = Metrics::default();
        metrics.record(crate::service::metrics::describe);
        let shared = Shared {
            names,
            db,
            metrics: metrics.clone(),
            mq,
            peer: Peer::new(
                PeerConfig {
                    name: names.peer,
                    base: &c.peer_url,
                    feed_token: c.peer_feed_token.clone(),
                    keys: peers.clone(),
                    ca_file: c.peer_ca_file.as_deref(),
                },
                metrics.clone(),
            )?,
            signer: signer.clone(),
            admin_guard: Guard { token: c.admin_token.clone(), setting: names.env("ADMIN_TOKEN") },
            feed_guard: Guard { token: c.feed_token.clone(), setting: names.env("FEED_TOKEN") },
            reconcile: reconcile::Settings {
                cursor,
                interval: c.reconcile_interval,
                grace: c.reconcile_grace,
                peer_url: c.peer_url.clone(),
            },
            reconcile_runs: Runs::default(),
        };
        Ok(Self { signer, peers, shared })
    }

    /// What the bank's consumer opens and proves messages with: the peer's keys, and a
    /// [`Prover`] that asks the peer's query interface at `path`, where a transfer in one of
    /// the `proven` statuses stands behind a message; `refuted` quarantines what it refutes.
    pub fn inbox<S: BankSettings>(
        &self,
        settings: &S,
        path: &'static str,
        proven: &'static [&'static str],
        refuted: crate::service::quarantine::Code,
    ) -> Inbox {
        let horizon_ms = i64::try_from(settings.common().proof_horizon.as_millis()).unwrap_or(i64::MAX);
        let rule = Rule { peer: self.shared.names.peer, proven, horizon_ms };
        Inbox {
            peers: self.peers.clone(),
            pool: self.shared.db.pool.clone(),
            prover: Prover::start(self.shared.peer.clone(), path, rule),
            refuted,
        }
    }

    /// The bank's transactional producer on `topic` (messages tagged `tag`, signed with the
    /// bank's key) whose local transaction is `tx`.
    pub async fn producer<S: BankSettings, L: LocalTransaction>(
        &self,
        settings: &S,
        group: &str,
        topic: &str,
        tag: &'static str,
        tx: L,
    ) -> anyhow::Result<TxProducer<L>> {
        let c = settings.common();
        let config = ProducerConfig {
            group: group.to_owned(),
            namesrv: c.namesrv_addr.clone(),
            topic: topic.to_owned(),
            tag,
            send_timeout_ms: c.send_timeout_ms,
        };
        TxProducer::start(&self.shared.mq, config, self.signer.clone(), tx).await
    }

    /// The bank's push consumer of `topic` in `group`: `threads` batches at once, each of up to
    /// `batch` messages.
    pub async fn consumer<S: BankSettings, H: Handler>(
        &self,
        settings: &S,
        group: &str,
        topic: &str,
        threads: u32,
        batch: u32,
        handler: H,
    ) -> anyhow::Result<PushConsumer> {
        let c = settings.common();
        let config = ConsumerConfig {
            group: group.to_owned(),
            namesrv: c.namesrv_addr.clone(),
            topic: topic.to_owned(),
            max_reconsume_times: c.max_reconsume_times,
            threads,
            batch,
        };
        PushConsumer::start(&self.shared.mq, &config, handler).await
    }
}

/// The router of a bank: its own routes, the routes every bank has (accounts, health,
/// quarantine, metrics), `/admin/*` — its own, faults and reconcile — behind the admin token,
/// and the API's contract: `/api-docs/openapi.json` and `/docs` ([`crate::service::api`]).
pub fn router<S: Service>(state: S) -> Router {
    let (router, spec) = api::split(state.shared().names.bank, documented_routes(&state));
    let metrics = state.shared().metrics.clone();
    router
        .merge(api::docs(spec))
        .fallback(|| async { Error::not_found(Code::NotFound, "no such endpoint") })
        .layer(from_fn_with_state(metrics, crate::service::metrics::track))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// Every route of `S` with its documentation, guards included.
fn documented_routes<S: Service>(state: &S) -> OpenApiRouter<S> {
    let admin = (S::ADMIN_ROUTES)()
        .merge(crate::service::faults::routes::<S>())
        .merge(reconcile::routes::<S>())
        .merge(crate::service::ledger::routes::<S>())
        .route_layer(from_fn_with_state(state.shared().admin_guard.clone(), crate::service::auth::require_bearer));
    (S::ROUTES)()
        .merge(crate::service::routes::routes::<S>())
        .merge(crate::service::quarantine::routes::<S>())
        .merge(crate::service::metrics::routes::<S>())
        .merge(admin)
}

/// A started service with its listener bound.
pub struct App<S> {
    listener: TcpListener,
    state: S,
}

impl<S: Service> App<S> {
    /// Binds the service's listen address, then starts it.
    pub async fn build(settings: S::Settings) -> anyhow::Result<Self> {
        let addr = settings.common().listen;
        let listener = TcpListener::bind(addr).await.with_context(|| format!("binding {addr}"))?;
        Self::build_on(settings, listener).await
    }

    /// Starts on a listener bound beforehand (a stack that must know both banks' ports first).
    pub async fn build_on(settings: S::Settings, listener: TcpListener) -> anyhow::Result<Self> {
        let base = Base::open(&settings, <S as Reconciler>::CURSOR).await?;
        let state = S::start(settings, base).await?;
        Ok(Self { listener, state })
    }

    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    pub fn state(&self) -> &S {
        &self.state
    }

    /// Serves until `shutdown` resolves: HTTP drains first, then the background tasks stop,
    /// then the MQ roles, the MQ runtime and the database.
    pub async fn run_until(self, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        let Self { listener, state } = self;
        let name = state.shared().names.bank;
        tracing::info!(addr = ?listener.local_addr().ok(), "{name} listening");
        let mut bg = Background::new();
        state.background(&mut bg);
        reconcile::spawn_periodic(&state, &mut bg);
        let metrics = state.shared().metrics.clone();
        bg.every(crate::infra::metrics::UPKEEP_EVERY, move || {
            metrics.upkeep();
            std::future::ready(())
        });
        let served = axum::serve(listener, router(state.clone())).with_graceful_shutdown(shutdown).await;
        bg.stop().await;
        state.stop_roles().await;
        let Shared { mq, db, .. } = state.shared().clone();
        drop(state);
        if let Ok(mq) = Arc::try_unwrap(mq) {
            mq.shutdown().await;
        }
        db.pool.close().await;
        db.read.close().await;
        served.with_context(|| format!("{name} HTTP server"))
    }
}

/// A bank's `main`: tracing, settings from flags and environment, serve until Ctrl-C or
/// SIGTERM.
pub fn main<S: Service>() -> anyhow::Result<()> {
    run_from::<S, _, _>(std::env::args_os())
}

/// The same with the given arguments (the launcher's `bank-transfer bank1 …`).
pub fn run_from<S, I, T>(args: I) -> anyhow::Result<()>
where
    S: Service,
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    crate::infra::telemetry::init(crate::infra::telemetry::DEFAULT_FILTER);
    let settings = settings::parse::<S::Settings, _, _>(args);
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(async { App::<S>::build(settings).await?.run_until(crate::infra::shutdown::shutdown_signal()).await })
}

/// Background tasks that run while the service serves and stop together after it drained.
pub struct Background {
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Default for Background {
    fn default() -> Self {
        Self::new()
    }
}

impl Background {
    pub fn new() -> Self {
        Self { stop: watch::channel(false).0, tasks: Vec::new() }
    }

    /// Resolves when the tasks are told to stop.
    pub fn stopped(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut rx = self.stop.subscribe();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    }

    pub fn spawn(&mut self, task: impl Future<Output = ()> + Send + 'static) {
        self.tasks.push(tokio::spawn(task));
    }

    /// Runs `tick` every `period` (after each sleep, to its end) until the tasks stop.
    pub fn every<F, T>(&mut self, period: Duration, mut tick: F)
    where
        F: FnMut() -> T + Send + 'static,
        T: Future<Output = ()> + Send,
    {
        let stop = self.stopped();
        self.spawn(async move {
            tokio::pin!(stop);
            loop {
                tokio::select! {
                    () = &mut stop => return,
                    () = tokio::time::sleep(period) => tick().await,
                }
            }
        });
    }

    /// Tells every task to stop and waits for them.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
    }
}
