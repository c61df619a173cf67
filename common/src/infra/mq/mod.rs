//! RocketMQ for both banks: the client runtime, the names the two directions use, and the
//! two roles each bank plays.
//!
//! - [`tx`]: a transactional producer whose local transaction and check-back are async fns
//!   of the bank's (bank1's debit, bank2's rejection); it signs every body.
//! - [`consumer`]: a push consumer around an async handler (bank2's credits, bank1's refunds).
//! - [`read`]: operator reads: a whole topic (the DLQ) and messages by key.
//!
//! The client runs on its own small Tokio runtime (a `RuntimeOwner`), sized so that a backlog
//! or a burst of transfers does not exhaust the blocking lane our listeners run on (the
//! default on 2 cores admits 4 running + 16 queued tasks and panics past that).

pub mod consumer;
pub mod read;
pub mod tx;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use rocketmq_client_rust::{ClientRuntime, ClientRuntimeConfig};
pub use rocketmq_model::common::message::message_ext::MessageExt;
use rocketmq_observability::TelemetryHandle;
use rocketmq_runtime::{RuntimeConfig, RuntimeOwner};

pub const DEFAULT_TOPIC: &str = "topic_txmsg";
pub const DEFAULT_PRODUCER_GROUP: &str = "producer_group_txmsg_bank1";
pub const DEFAULT_CONSUMER_GROUP: &str = "consumer_group_txmsg_bank2";
pub const DEFAULT_NAMESRV: &str = "127.0.0.1:9876";
/// The return-of-funds direction: bank2 publishes refund notices, bank1 consumes them.
pub const DEFAULT_REFUND_TOPIC: &str = "topic_txmsg_refund";
pub const DEFAULT_REFUND_PRODUCER_GROUP: &str = "producer_group_txmsg_bank2";
pub const DEFAULT_REFUND_CONSUMER_GROUP: &str = "consumer_group_txmsg_bank1";

/// RocketMQ's client-side unique message id property: stable across redeliveries, unlike the
/// broker's `msg_id` (an offset id).
const UNIQ_KEY: &str = "UNIQ_KEY";

/// The stable key of a delivered message: its UNIQ_KEY property, else the broker's msg id.
pub fn message_key(msg: &MessageExt) -> String {
    property(msg, UNIQ_KEY).unwrap_or_else(|| msg.msg_id().to_string())
}

/// A message property, if set.
pub fn property(msg: &MessageExt, name: &str) -> Option<String> {
    use rocketmq_model::common::message::MessageTrait;
    msg.property(&cheetah_string::CheetahString::from_string(name.to_owned())).map(|v| v.to_string())
}

/// The message's KEYS property ("" when absent).
pub fn keys(msg: &MessageExt) -> String {
    use rocketmq_model::common::message::MessageTrait;
    msg.get_keys().map(|k| k.to_string()).unwrap_or_default()
}

/// Owns the client's runtime; shut it down with [`MqRuntime::shutdown`].
pub struct MqRuntime {
    owner: Option<RuntimeOwner>,
    client: Arc<ClientRuntime>,
}

impl MqRuntime {
    pub fn new(name: &str) -> anyhow::Result<Self> {
        let mut cfg = RuntimeConfig {
            worker_threads: 2,
            max_blocking_threads: 96,
            thread_name: format!("mq-{name}"),
            ..RuntimeConfig::default()
        };
        let lane = &mut cfg.blocking_lane_policies.metadata_io;
        lane.max_concurrency = 64;
        lane.max_queue_depth = 4096;
        lane.queue_timeout = Duration::from_secs(60);
        lane.task_timeout = Duration::from_secs(120);
        let storage = &mut cfg.blocking_lane_policies.storage_io;
        storage.max_queue_depth = 4096;
        storage.queue_timeout = Duration::from_secs(60);
        let owner = RuntimeOwner::plan(cfg)
            .context("RocketMQ client runtime configuration")?
            .build()
            .context("building the RocketMQ client runtime")?;
        let client = ClientRuntime::try_new(
            owner.root_context().component("client"),
            ClientRuntimeConfig::default(),
            TelemetryHandle::noop(),
        )
        .context("creating the RocketMQ client runtime")?;
        Ok(Self { owner: Some(owner), client })
    }

    pub fn client(&self) -> Arc<ClientRuntime> {
        Arc::clone(&self.client)
    }

    /// Stops the client's tasks; call after producers/consumers are shut down.
    pub async fn shutdown(mut self) {
        let _ = self.client.shutdown().await;
        if let Some(owner) = self.owner.take() {
            let _ = owner.shutdown_tasks().await;
            let _ = owner.shutdown_background();
        }
    }
}

impl Drop for MqRuntime {
    fn drop(&mut self) {
        if let Some(owner) = self.owner.take() {
            // Never blocks, so it is safe inside an async context.
            let _ = owner.shutdown_background();
        }
    }
}
