//! The push consumer: clustering, `max_reconsume_times` 16, one message per call. Each
//! message is parsed, validated and credited through [`credit::apply`]; failures are recorded
//! with the broker's `reconsume_times` and answered RECONSUME_LATER (the retry ladder, then
//! `%DLQ%<group>`); malformed messages are quarantined and acked so they never block a queue.

use cheetah_string::CheetahString;
use common::message::TransferMessage;
use rocketmq_client_rust::{
    ClientResult, ConsumeConcurrentlyContext, ConsumeConcurrentlyStatus, DefaultMQPushConsumer, MQPushConsumer,
    MessageListenerConcurrently,
};
use rocketmq_model::common::message::message_ext::MessageExt;
use rocketmq_model::common::message::MessageTrait;
use sqlx::AnyPool;
use tokio::runtime::Handle;

use crate::credit::{self, CreditOutcome, Source};
use crate::faults::FaultSwitch;
use crate::metrics::Metrics;
use crate::store::{self, Quarantined};

/// RocketMQ's client-side unique message id: stable across redeliveries, unlike `msg_id`.
const UNIQ_KEY: &str = "UNIQ_KEY";

struct Listener {
    pool: AnyPool,
    faults: FaultSwitch,
    metrics: Metrics,
    handle: Handle,
}

impl MessageListenerConcurrently for Listener {
    fn consume_message(
        &self,
        msgs: &[&MessageExt],
        _ctx: &ConsumeConcurrentlyContext,
    ) -> ClientResult<ConsumeConcurrentlyStatus> {
        let mut status = ConsumeConcurrentlyStatus::ConsumeSuccess;
        for msg in msgs {
            if !self.handle.block_on(handle_message(&self.pool, &self.faults, &self.metrics, msg)) {
                status = ConsumeConcurrentlyStatus::ReconsumeLater;
            }
        }
        Ok(status)
    }
}

/// The stable key of a message: its UNIQ_KEY property, else the broker's msg id.
pub fn message_key(msg: &MessageExt) -> String {
    msg.property(&CheetahString::from_static_str(UNIQ_KEY))
        .map(|k| k.to_string())
        .unwrap_or_else(|| msg.msg_id().to_string())
}

/// Handles one delivery; true = done (ack), false = try again later.
pub async fn handle_message(pool: &AnyPool, faults: &FaultSwitch, metrics: &Metrics, msg: &MessageExt) -> bool {
    let body = msg.body().unwrap_or_default();
    let keys = msg.get_keys().map(|k| k.to_string()).unwrap_or_default();
    let parsed = TransferMessage::parse(&body).and_then(|m| {
        if !keys.is_empty() && !keys.split_whitespace().any(|k| k == m.tx_no.as_str()) {
            Err(common::message::MessageError::Invalid(format!("message KEYS {keys:?} do not name tx_no {}", m.tx_no)))
        } else {
            Ok(m)
        }
    });
    let transfer = match parsed {
        Ok(m) => m,
        Err(reason) => {
            let q = Quarantined {
                msg_key: message_key(msg),
                msg_id: msg.msg_id().to_string(),
                tx_no: (!keys.is_empty()).then(|| keys.clone()),
                body: String::from_utf8_lossy(&body).chars().take(crate::store::QUARANTINE_BODY_CHARS).collect(),
                reason: reason.to_string(),
                at: common::now_ms(),
            };
            tracing::warn!(msg_id = %q.msg_id, reason = %q.reason, "quarantining a message that can never be applied");
            return match store::quarantine(pool, &q).await {
                Ok(()) => {
                    metrics.quarantined();
                    true
                }
                Err(e) => {
                    tracing::error!(error = %e, "could not quarantine; the broker will redeliver");
                    false
                }
            };
        }
    };
    let reconsume_times = msg.reconsume_times();
    let outcome = credit::apply(pool, faults.get(), &transfer, Source::Mq).await;
    metrics.record(Source::Mq, &outcome);
    match outcome {
        CreditOutcome::Credited => {
            tracing::info!(tx_no = %transfer.tx_no, reconsume_times, amount = %transfer.amount, "credited");
            true
        }
        CreditOutcome::AlreadyCredited => {
            tracing::info!(tx_no = %transfer.tx_no, reconsume_times, "duplicate delivery: already credited");
            true
        }
        CreditOutcome::Failed(error) => {
            tracing::warn!(tx_no = %transfer.tx_no, reconsume_times, %error, "credit failed; asking for redelivery");
            if let Err(e) =
                store::record_attempt(pool, transfer.tx_no.as_str(), reconsume_times, msg.msg_id().as_str(), &error)
                    .await
            {
                tracing::error!(tx_no = %transfer.tx_no, error = %e, "could not record the failed attempt");
            }
            false
        }
    }
}

/// The started consumer; cheap to clone, shared with the admin API (pause/resume).
#[derive(Clone)]
pub struct Consumer {
    inner: std::sync::Arc<tokio::sync::RwLock<DefaultMQPushConsumer>>,
    paused: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Consumer {
    pub async fn start(
        rt: &common::mq::MqRuntime,
        settings: &crate::Settings,
        pool: AnyPool,
        faults: FaultSwitch,
        metrics: Metrics,
    ) -> anyhow::Result<Self> {
        let mut inner = DefaultMQPushConsumer::builder(rt.client())
            .consumer_group(settings.consumer_group.clone())
            .name_server_addr(settings.namesrv_addr.clone())
            .max_reconsume_times(settings.max_reconsume_times)
            .consume_message_batch_max_size(1)
            .consume_thread_min(settings.consume_threads)
            .consume_thread_max(settings.consume_threads)
            .build();
        inner
            .subscribe(settings.topic.as_str(), "*")
            .await
            .map_err(|e| anyhow::anyhow!("subscribing to {}: {e}", settings.topic))?;
        inner.register_message_listener_concurrently(Listener { pool, faults, metrics, handle: Handle::current() });
        inner.start().await.map_err(|e| anyhow::anyhow!("starting the push consumer: {e}"))?;
        Ok(Self { inner: std::sync::Arc::new(tokio::sync::RwLock::new(inner)), paused: Default::default() })
    }

    /// Stops pulling (messages pile up at the broker; nothing is lost). For operators and
    /// the backlog benchmark.
    pub async fn pause(&self) {
        self.inner.read().await.suspend().await;
        self.paused.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    pub async fn resume(&self) {
        self.inner.read().await.resume().await;
        self.paused.store(false, std::sync::atomic::Ordering::SeqCst);
    }

    pub fn is_paused(&self) -> bool {
        self.paused.load(std::sync::atomic::Ordering::SeqCst)
    }

    pub async fn shutdown(&self) {
        self.inner.write().await.shutdown().await;
    }
}
