//! The transactional (half) message, for either direction: the sender's local transaction
//! runs between "half message stored" and COMMIT/ROLLBACK, and the broker's check-back is
//! answered from the sender's own rows.
//!
//! The client calls listeners synchronously on its blocking lane; [`TxProducer`] adapts them to
//! async fns by blocking on the application's runtime handle (allowed on a blocking thread).
//! Every body is signed ([`crate::domain::signing`]) before it leaves.

use std::any::Any;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cheetah_string::CheetahString;
use rocketmq_client_rust::{ClientRuntime, LocalTransactionState, TransactionListener, TransactionMQProducer};
use rocketmq_model::common::message::message_ext::MessageExt;
use rocketmq_model::common::message::message_single::Message;
use rocketmq_model::common::message::MessageTrait;
use tokio::runtime::Handle;
use tokio::sync::RwLock;

use super::MqRuntime;
use crate::domain::signing::{Signer, SIGNATURE_PROPERTY};

/// The sender's side of a half message.
pub trait LocalTransaction: Send + Sync + 'static {
    /// Handed to [`TxProducer::send`] and on to [`execute`](Self::execute).
    type Arg: Send + Sync + 'static;
    /// What the local transaction did, handed back to the sender by [`TxProducer::send`].
    type Outcome: Send + 'static;

    /// Runs the local transaction of the half message `msg_id` (stored by the broker); the
    /// state tells the broker what to do with it (UNKNOWN leaves it to the check-back).
    fn execute(
        &self,
        arg: &Self::Arg,
        msg_id: &str,
    ) -> impl Future<Output = (Self::Outcome, LocalTransactionState)> + Send;

    /// Answers the broker's check-back from the sender's own rows; must be definitive except
    /// when the database cannot be read.
    fn check(&self, msg: &MessageExt) -> impl Future<Output = LocalTransactionState> + Send;
}

/// What travels with the half message to the listener, and back.
struct Carrier<L: LocalTransaction> {
    arg: L::Arg,
    outcome: Mutex<Option<L::Outcome>>,
}

/// The carrier as the client holds it (it takes the argument by value).
struct SharedCarrier<L: LocalTransaction>(Arc<Carrier<L>>);

struct Adapter<L> {
    inner: Arc<L>,
    handle: Handle,
}

impl<L> Clone for Adapter<L> {
    fn clone(&self) -> Self {
        Self { inner: Arc::clone(&self.inner), handle: self.handle.clone() }
    }
}

impl<L: LocalTransaction> TransactionListener for Adapter<L> {
    fn execute_local_transaction(
        &self,
        msg: &dyn MessageTrait,
        arg: Option<&(dyn Any + Send + Sync)>,
    ) -> LocalTransactionState {
        let Some(SharedCarrier(carrier)) = arg.and_then(|a| a.downcast_ref::<SharedCarrier<L>>()) else {
            tracing::error!("half message without its local-transaction argument; leaving it to the check-back");
            return LocalTransactionState::Unknown;
        };
        let msg_id = msg.property(&CheetahString::from_static_str(super::UNIQ_KEY)).unwrap_or_default();
        let (outcome, state) = self.handle.block_on(self.inner.execute(&carrier.arg, &msg_id));
        *carrier.outcome.lock().unwrap_or_else(|e| e.into_inner()) = Some(outcome);
        state
    }

    fn check_local_transaction(&self, msg: &MessageExt) -> LocalTransactionState {
        let state = self.handle.block_on(self.inner.check(msg));
        tracing::info!(keys = %super::keys(msg), ?state, "check-back answered");
        state
    }
}

/// Where and as whom a producer sends.
#[derive(Debug, Clone)]
pub struct ProducerConfig {
    pub group: String,
    pub namesrv: String,
    pub topic: String,
    pub tag: &'static str,
    pub send_timeout_ms: u32,
}

/// A started transactional producer whose local transaction is `L`; cheap to clone.
///
/// **Recovery after a broker outage.** The client keeps a circuit breaker per client instance
/// (5 failures open it for 30 s; 1.0.0 does not let us configure it), so after a broker
/// restart every send would fail for up to 30 s although the broker answers again. A failed
/// send therefore schedules a *renewal*: a fresh producer — a new client instance with a
/// closed breaker — replaces this one, at most once per [`RENEW_EVERY`]. Sends made meanwhile
/// fail cleanly (the caller answers 503; nothing was debited), and the first send after the
/// broker is back goes through on the fresh instance. See docs/ARCHITECTURE.md, "Broker
/// outages".
pub struct TxProducer<L> {
    producer: Arc<RwLock<TransactionMQProducer>>,
    config: Arc<ProducerConfig>,
    signer: Signer,
    rt: Arc<ClientRuntime>,
    adapter: Adapter<L>,
    renewal: Arc<Renewal>,
}

/// When a producer may be renewed next, and how often it was.
#[derive(Default)]
struct Renewal {
    /// Milliseconds since the Unix epoch before which no new renewal starts.
    not_before_ms: AtomicI64,
    count: AtomicU64,
    stopped: AtomicBool,
}

/// The least time between two renewals of a producer.
pub const RENEW_EVERY: Duration = Duration::from_secs(2);

impl<L> Clone for TxProducer<L> {
    fn clone(&self) -> Self {
        Self {
            producer: Arc::clone(&self.producer),
            config: Arc::clone(&self.config),
            signer: self.signer.clone(),
            rt: Arc::clone(&self.rt),
            adapter: self.adapter.clone(),
            renewal: Arc::clone(&self.renewal),
        }
    }
}

/// What became of a half message.
pub struct Sent<O> {
    /// What the sender answered the broker.
    pub state: LocalTransactionState,
    /// What the local transaction did (`None`: it did not run or did not finish).
    pub outcome: Option<O>,
}

impl<L: LocalTransaction> TxProducer<L> {
    /// Starts a producer whose half messages run `listener`'s local transaction. Must be
    /// called inside the application's Tokio runtime (listeners block on it).
    pub async fn start(rt: &MqRuntime, config: ProducerConfig, signer: Signer, listener: L) -> anyhow::Result<Self> {
        let adapter = Adapter { inner: Arc::new(listener), handle: Handle::current() };
        let producer = build(&rt.client(), &config, adapter.clone()).await?;
        Ok(Self {
            producer: Arc::new(RwLock::new(producer)),
            config: Arc::new(config),
            signer,
            rt: rt.client(),
            adapter,
            renewal: Arc::default(),
        })
    }

    /// How often this producer was renewed after failed sends.
    pub fn renewals(&self) -> u64 {
        self.renewal.count.load(Ordering::Relaxed)
    }

    /// Replaces the producer by a fresh one (a new client instance, its breakers closed) in
    /// the background, unless one was started less than [`RENEW_EVERY`] ago.
    fn schedule_renewal(&self) {
        let now = crate::infra::clock::now_ms();
        let next = now + i64::try_from(RENEW_EVERY.as_millis()).unwrap_or(i64::MAX);
        let r = &self.renewal;
        let due = r.not_before_ms.load(Ordering::Acquire);
        if r.stopped.load(Ordering::Acquire)
            || now < due
            || r.not_before_ms.compare_exchange(due, next, Ordering::AcqRel, Ordering::Acquire).is_err()
        {
            return;
        }
        let me = self.clone();
        tokio::spawn(async move {
            match build(&me.rt, &me.config, me.adapter.clone()).await {
                Ok(fresh) => {
                    let mut slot = me.producer.write().await;
                    if me.renewal.stopped.load(Ordering::Acquire) {
                        drop(slot);
                        let mut fresh = fresh;
                        fresh.shutdown().await;
                        return;
                    }
                    let mut old = std::mem::replace(&mut *slot, fresh);
                    drop(slot);
                    me.renewal.count.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(group = %me.config.group, "send failed: producer renewed (fresh client instance)");
                    old.shutdown().await;
                }
                Err(e) => tracing::warn!(group = %me.config.group, "renewing the producer failed: {e:#}"),
            }
        });
    }

    /// Sends `body` (KEYS = `key`, signed) as a half message and runs the local transaction
    /// with `arg` before it returns. `Err(outcome)` means the broker did not take the half
    /// message (the outcome is `None` then, unless the transaction ran anyway).
    pub async fn send(
        &self,
        key: &str,
        body: &[u8],
        arg: L::Arg,
    ) -> Result<Sent<L::Outcome>, (String, Option<L::Outcome>)> {
        let message = Message::builder()
            .topic(self.config.topic.as_str())
            .tags(self.config.tag)
            .key(key)
            .body_slice(body)
            .raw_property(SIGNATURE_PROPERTY, self.signer.sign(body))
            .and_then(|b| b.build())
            .map_err(|e| (e.to_string(), None))?;
        let carrier = Arc::new(Carrier::<L> { arg, outcome: Mutex::new(None) });
        let producer = self.producer.read().await;
        let r = producer
            .send_message_in_transaction::<SharedCarrier<L>, _>(message, Some(SharedCarrier(Arc::clone(&carrier))))
            .await;
        let outcome = carrier.outcome.lock().unwrap_or_else(|e| e.into_inner()).take();
        drop(producer);
        match r {
            Ok(r) => Ok(Sent { state: r.local_transaction_state.unwrap_or(LocalTransactionState::Unknown), outcome }),
            Err(e) => {
                self.schedule_renewal();
                Err((e.to_string(), outcome))
            }
        }
    }

    pub async fn shutdown(&self) {
        self.renewal.stopped.store(true, Ordering::Release);
        self.producer.write().await.shutdown().await;
    }
}

/// A started transactional producer on its own client instance.
async fn build<L: LocalTransaction>(
    rt: &Arc<ClientRuntime>,
    config: &ProducerConfig,
    adapter: Adapter<L>,
) -> anyhow::Result<TransactionMQProducer> {
    let mut producer = TransactionMQProducer::builder(Arc::clone(rt))
        .producer_group(config.group.clone())
        .name_server_addr(config.namesrv.clone())
        .topics(vec![config.topic.clone()])
        .send_msg_timeout(config.send_timeout_ms)
        .transaction_listener(adapter)
        .build();
    producer.start().await.map_err(|e| anyhow::anyhow!("starting the transactional producer {}: {e}", config.group))?;
    Ok(producer)
}
