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
