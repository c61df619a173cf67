//! A clustering push consumer around an async [`Handler`]: bank2 consuming transfers, bank1
//! consuming refund notices. A handler answers [`Ack::Retry`] for a transient failure (the
//! broker redelivers on its delay ladder, then moves the message to `%DLQ%<group>`), and
//! [`Ack::Done`] for everything else, poison included, so nothing ever blocks a queue.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use rocketmq_client_rust::{
    ClientResult, ConsumeConcurrentlyContext, ConsumeConcurrentlyStatus, DefaultMQPushConsumer, MQPushConsumer,
    MessageListenerConcurrently,
};
use rocketmq_model::common::message::message_ext::MessageExt;
use tokio::runtime::Handle;
use tokio::sync::RwLock;

use super::MqRuntime;

/// What to tell the broker about one delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ack {
    /// Handled for good (applied, a duplicate, or quarantined).
    Done,
    /// A transient failure: deliver it again later.
    Retry,
}

/// Handles delivered messages.
pub trait Handler: Send + Sync + 'static {
    fn handle(&self, msg: &MessageExt) -> impl Future<Output = Ack> + Send;

    /// Handles a batch: one answer per message, in order, each as [`Handler::handle`] would
    /// give it alone. The default handles them one by one.
    fn handle_batch(&self, msgs: &[&MessageExt]) -> impl Future<Output = Vec<Ack>> + Send {
        async move {
            let mut acks = Vec::with_capacity(msgs.len());
            for msg in msgs {
                acks.push(self.handle(msg).await);
            }
            acks
        }
    }
}

struct Listener<H> {
    handler: Arc<H>,
    handle: Handle,
    /// The consumer itself, to send a batch's failed messages back one by one (set once it is
    /// built; weak, as the consumer holds this listener).
    consumer: Arc<OnceLock<Weak<RwLock<DefaultMQPushConsumer>>>>,
}

impl<H: Handler> MessageListenerConcurrently for Listener<H> {
    fn consume_message(
        &self,
        msgs: &[&MessageExt],
        _ctx: &ConsumeConcurrentlyContext,
    ) -> ClientResult<ConsumeConcurrentlyStatus> {
        let acks = self.handle.block_on(self.handler.handle_batch(msgs));
        let failed: Vec<&MessageExt> =
            msgs.iter().zip(&acks).filter(|(_, a)| **a == Ack::Retry).map(|(m, _)| *m).collect();
        if failed.is_empty() {
            return Ok(ConsumeConcurrentlyStatus::ConsumeSuccess);
        }
        // The client can only retry a whole batch. Its mates were applied; only the failed
        // messages go back, each onto the retry ladder as the client would send it (delay
        // level 0: the broker's next level for its reconsume_times). If one cannot be sent back,
        // the whole batch is retried: its applied mates come back as duplicates, which the
        // handler acks without applying them again.
        if msgs.len() > 1 {
            tracing::debug!(failed = failed.len(), batch = msgs.len(), "sending a batch's failed messages back alone");
            if failed.iter().all(|m| self.send_back(m)) {
                return Ok(ConsumeConcurrentlyStatus::ConsumeSuccess);
            }
        }
        Ok(ConsumeConcurrentlyStatus::ReconsumeLater)
    }
}

impl<H> Listener<H> {
    /// Sends `msg` back to the broker's retry ladder. False when it could not (the consumer is
    /// stopping, or the broker did not take it).
    fn send_back(&self, msg: &MessageExt) -> bool {
        let Some(consumer) = self.consumer.get().and_then(Weak::upgrade) else { return false };
        self.handle.block_on(async {
            // Bounded: shutdown holds the write lock while the consume threads drain.
            let Ok(mut c) = tokio::time::timeout(SEND_BACK_LOCK_WAIT, consumer.write()).await else { return false };
            let broker = msg.broker_name().to_string();
            match c.send_message_back(msg.clone(), 0, &broker).await {
                Ok(()) => true,
                Err(e) => {
                    tracing::warn!(msg_id = %msg.msg_id(), error = %e, "could not send a failed message back; retrying its batch");
                    false
                }
            }
        })
    }
}

/// How long a consume thread waits for the consumer to send a failed message back.
const SEND_BACK_LOCK_WAIT: Duration = Duration::from_secs(1);

/// Where and as whom a consumer reads.
#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    pub group: String,
    pub namesrv: String,
    pub topic: String,
    /// Redeliveries before the broker moves a message to `%DLQ%<group>`.
    pub max_reconsume_times: i32,
    /// Messages handled at once.
    pub threads: u32,
    /// Messages handed to the handler together ([`Handler::handle_batch`]); 1: one at a time.
    pub batch: u32,
}

/// The started consumer; cheap to clone, shared with the admin API (pause/resume).
#[derive(Clone)]
pub struct PushConsumer {
    inner: Arc<RwLock<DefaultMQPushConsumer>>,
    paused: Arc<AtomicBool>,
}

impl PushConsumer {
    /// Subscribes to `config.topic` and starts consuming with `handler`. Must be called inside
    /// the application's Tokio runtime (the listener blocks on it).
    pub async fn start<H: Handler>(rt: &MqRuntime, config: &ConsumerConfig, handler: H) -> anyhow::Result<Self> {
        let mut inner = DefaultMQPushConsumer::builder(rt.client())
            .consumer_group(config.group.clone())
            .name_server_addr(config.namesrv.clone())
            .max_reconsume_times(config.max_reconsume_times)
            .consume_message_batch_max_size(config.batch.max(1))
            .consume_thread_min(config.threads)
            .consume_thread_max(config.threads)
            .build();
        inner
            .subscribe(config.topic.as_str(), "*")
            .await
            .map_err(|e| anyhow::anyhow!("subscribing to {}: {e}", config.topic))?;
        let consumer = Arc::new(OnceLock::new());
        inner.register_message_listener_concurrently(Listener {
            handler: Arc::new(handler),
            handle: Handle::current(),
            consumer: Arc::clone(&consumer),
        });
        let inner = Arc::new(RwLock::new(inner));
        let _ = consumer.set(Arc::downgrade(&inner));
        inner
            .write()
            .await
            .start()
            .await
            .map_err(|e| anyhow::anyhow!("starting the consumer {}: {e}", config.group))?;
        Ok(Self { inner, paused: Arc::default() })
    }

    /// Stops pulling (messages pile up at the broker; nothing is lost).
    pub async fn pause(&self) {
        self.inner.read().await.suspend().await;
        self.paused.store(true, Ordering::SeqCst);
    }

    pub async fn resume(&self) {
        self.inner.read().await.resume().await;
        self.paused.store(false, Ordering::SeqCst);
    }

    pub fn is_paused(&self) -> bool {
        self.paused.load(Ordering::SeqCst)
    }

    pub async fn shutdown(&self) {
        self.inner.write().await.shutdown().await;
    }
}
