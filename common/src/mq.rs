//! The RocketMQ client runtime both banks use, and the names they share.
//!
//! The client runs on its own small Tokio runtime (a `RuntimeOwner`), sized so that a backlog
//! or a burst of transfers does not exhaust the blocking lane our listeners run on (the
//! default on 2 cores admits 4 running + 16 queued tasks and panics past that).

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use rocketmq_client_rust::{ClientRuntime, ClientRuntimeConfig};
use rocketmq_observability::TelemetryHandle;
use rocketmq_runtime::{RuntimeConfig, RuntimeOwner};

pub const DEFAULT_TOPIC: &str = "topic_txmsg";
pub const DEFAULT_PRODUCER_GROUP: &str = "producer_group_txmsg_bank1";
pub const DEFAULT_CONSUMER_GROUP: &str = "consumer_group_txmsg_bank2";
pub const DEFAULT_NAMESRV: &str = "127.0.0.1:9876";

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

/// Reads every message currently in `topic` from the beginning (all queues), without
/// committing offsets: for small operator reads such as the dead-letter queue. Stops after
/// the queues stay empty for a few polls, or after `max` messages. A topic that does not
/// exist yet (no dead letter so far) reads as empty.
pub async fn read_topic(
    rt: &MqRuntime,
    namesrv: &str,
    group: &str,
    topic: &str,
    max: usize,
) -> anyhow::Result<Vec<rocketmq_model::common::message::message_ext::MessageExt>> {
    use rocketmq_client_rust::DefaultLitePullConsumer;

    let consumer = DefaultLitePullConsumer::builder(rt.client())
        .consumer_group(group.to_owned())
        .name_server_addr(namesrv.to_owned())
        .pull_batch_size(32)
        .poll_timeout_millis(500)
        .auto_commit(false)
        .build()
        .map_err(|e| anyhow::anyhow!("building a reader for {topic}: {e}"))?;
    consumer
        .set_sub_expression_for_assign(topic, "*")
        .await
        .map_err(|e| anyhow::anyhow!("subscribing a reader to {topic}: {e}"))?;
    consumer.start().await.map_err(|e| anyhow::anyhow!("starting a reader for {topic}: {e}"))?;
    let result = async {
        let queues = match consumer.fetch_message_queues(topic).await {
            Ok(q) if !q.is_empty() => q,
            _ => return Ok(Vec::new()),
        };
        consumer.assign(queues.clone()).await.map_err(|e| anyhow::anyhow!("assigning {topic}: {e}"))?;
        for q in &queues {
            consumer.seek_to_begin(q).await.map_err(|e| anyhow::anyhow!("seeking {topic}: {e}"))?;
        }
        let mut out = Vec::new();
        let mut empty_polls = 0;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while empty_polls < 3 && out.len() < max && tokio::time::Instant::now() < deadline {
            let batch = consumer.poll_with_timeout(500).await;
            if batch.is_empty() {
                empty_polls += 1;
            } else {
                empty_polls = 0;
                out.extend(batch);
            }
        }
        out.truncate(max);
        Ok(out)
    }
    .await;
    consumer.shutdown().await;
    result
}
