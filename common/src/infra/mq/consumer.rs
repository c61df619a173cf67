//! A clustering push consumer around an async [`Handler`]: bank2 consuming transfers, bank1
//! consuming refund notices. A handler answers [`Ack::Retry`] for a transient failure (the
//! broker redelivers on its delay ladder, then moves the message to `%DLQ%<group>`), and
//! [`Ack::Done`] for everything else, poison included, so nothing ever blocks a queue.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

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

/// Handles one delivered message.
pub trait Handler: Send + Sync + 'static {
    fn handle(&self, msg: &MessageExt) -> impl Future<Output = Ack> + Send;
}

struct Listener<H> {
    handler: Arc<H>,
    handle: Handle,
}

impl<H: Handler> MessageListenerConcurrently for Listener<H> {
    fn consume_message(
        &self,
        msgs: &[&MessageExt],
        _ctx: &ConsumeConcurrentlyContext,
    ) -> ClientResult<ConsumeConcurrentlyStatus> {
        let mut status = ConsumeConcurrentlyStatus::ConsumeSuccess;
        for msg in msgs {
            if self.handle.block_on(self.handler.handle(msg)) == Ack::Retry {
                status = ConsumeConcurrentlyStatus::ReconsumeLater;
            }
        }
        Ok(status)
    }
}

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
            .consume_message_batch_max_size(1)
            .consume_thread_min(config.threads)
            .consume_thread_max(config.threads)
            .build();
        inner
            .subscribe(config.topic.as_str(), "*")
            .await
            .map_err(|e| anyhow::anyhow!("subscribing to {}: {e}", config.topic))?;
        inner
            .register_message_listener_concurrently(Listener { handler: Arc::new(handler), handle: Handle::current() });
        inner.start().await.map_err(|e| anyhow::anyhow!("starting the consumer {}: {e}", config.group))?;
        Ok(Self { inner: Arc::new(RwLock::new(inner)), paused: Arc::default() })
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
