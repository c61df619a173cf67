//! The broker alone: the same number of same-size messages through the same broker with a
//! plain `DefaultMQProducer` + `DefaultMQPushConsumer`, then with a `TransactionMQProducer`
//! whose listener commits at once — no HTTP, no database. Each on its own topic and group.
//! The consumer is configured like bank2's (the same batch size and thread count:
//! `BANK2_CONSUME_BATCH`, `BANK2_CONSUME_THREADS`), so the difference to the end-to-end figure
//! is what the banks add.

use std::any::Any;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::domain::message::{Body, TransferMessage, MESSAGE_VERSION, TRANSFER_TAG};
use common::infra::mq::MqRuntime;
use indicatif::ProgressBar;
use rocketmq_client_rust::{
    ClientResult, ConsumeConcurrentlyContext, ConsumeConcurrentlyStatus, DefaultMQProducer, DefaultMQPushConsumer,
    LocalTransactionState, MQPushConsumer, MessageListenerConcurrently, TransactionListener, TransactionMQProducer,
};
use rocketmq_model::common::consumer::consume_from_where::ConsumeFromWhere;
use rocketmq_model::common::message::message_ext::MessageExt;
use rocketmq_model::common::message::message_single::Message;
use rocketmq_model::common::message::MessageTrait;

use super::report::{round1, round2, BaselineFigures, Summary};

const WARMUP_KEY: &str = "bench-warmup";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Plain,
    Transactional,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Plain => "plain",
            Kind::Transactional => "transactional",
        }
    }
}

/// When the consumer runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// While the messages are sent: first send → last consumed, the pipeline's pace.
    Pipeline,
    /// Suspended while every message is sent, then resumed: resume → last consumed, the pace
    /// at which a backlog drains (what bank2 does after `--backlog`).
    Backlog,
}

/// What a baseline run needs to know.
pub struct Setup<'a> {
    pub namesrv: &'a str,
    pub broker: &'a str,
    pub messages: usize,
    pub concurrency: usize,
    /// bank2's consumer threads and batch size (`BANK2_CONSUME_THREADS`, `BANK2_CONSUME_BATCH`),
    /// copied so the comparison is like for like.
    pub consume_threads: u32,
    pub consume_batch: u32,
    /// While the messages are sent, or after.
    pub flow: Flow,
    /// How long without progress before giving up on the remaining messages.
    pub stall_timeout: Duration,
}

/// A message body the size of a transfer message (a real one, with a fresh tx_no).
pub fn transfer_sized_body() -> Vec<u8> {
    let msg = TransferMessage {
        version: MESSAGE_VERSION,
        tx_no: common::domain::ids::TxNo::new_random(),
        from_account: common::domain::ids::AccountNo::parse("b-00000000-000000").expect("account"),
        to_account: common::domain::ids::AccountNo::parse("b-00000000-000000").expect("account"),
        amount: common::domain::money::Amount::parse("1.00").expect("amount"),
        created_at_ms: common::now_ms(),
    };
    msg.to_json()
}

/// Message `i`'s key: shaped like a tx_no (a UUID), so the message is transfer-sized too.
fn key_of(i: usize) -> String {
    format!("00000000-0000-4000-8000-{i:012}")
}

fn index_of(key: &str) -> Option<usize> {
    key.strip_prefix("00000000-0000-4000-8000-")?.parse().ok()
}

/// What the consumer saw.
struct Tally {
    seen: Vec<AtomicBool>,
    consumed: AtomicUsize,
    redelivered: AtomicUsize,
    warm: AtomicBool,
    base: Instant,
    /// Micros since `base` of the last first-time delivery.
    last_us: AtomicU64,
}

struct Counting(Arc<Tally>);

impl MessageListenerConcurrently for Counting {
    fn consume_message(
        &self,
        msgs: &[&MessageExt],
        _ctx: &ConsumeConcurrentlyContext,
    ) -> ClientResult<ConsumeConcurrentlyStatus> {
        let t = &self.0;
        for m in msgs {
            let key = m.get_keys().map(|k| k.to_string()).unwrap_or_default();
            if key == WARMUP_KEY {
                t.warm.store(true, Ordering::SeqCst);
                continue;
            }
            let Some(seen) = index_of(&key).and_then(|i| t.seen.get(i)) else { continue };
            if seen.swap(true, Ordering::SeqCst) {
                t.redelivered.fetch_add(1, Ordering::Relaxed);
            } else {
                t.consumed.fetch_add(1, Ordering::SeqCst);
                t.last_us.fetch_max(t.base.elapsed().as_micros() as u64, Ordering::SeqCst);
            }
        }
        Ok(ConsumeConcurrentlyStatus::ConsumeSuccess)
    }
}

/// Commits every half message at once (and on check-back).
struct CommitAtOnce;

impl TransactionListener for CommitAtOnce {
    fn execute_local_transaction(
        &self,
        _msg: &dyn MessageTrait,
        _arg: Option<&(dyn Any + Send + Sync)>,
    ) -> LocalTransactionState {
        LocalTransactionState::CommitMessage
    }

    fn check_local_transaction(&self, _msg: &MessageExt) -> LocalTransactionState {
        LocalTransactionState::CommitMessage
    }
}

enum Producer {
    Plain(DefaultMQProducer),
    Tx(TransactionMQProducer),
}

impl Producer {
    /// True when the broker took the message (and, transactional, it was committed).
    async fn send(&self, msg: Message) -> Result<(), String> {
        match self {
            Producer::Plain(p) => match p.send(msg).await {
                Ok(Some(r)) if r.send_status == rocketmq_model::result::SendStatus::SendOk => Ok(()),
                Ok(r) => Err(format!("send: {r:?}")),
                Err(e) => Err(e.to_string()),
            },
            Producer::Tx(p) => match p.send_message_in_transaction::<(), _>(msg, None).await {
                Ok(r) if r.local_transaction_state == Some(LocalTransactionState::CommitMessage) => Ok(()),
                Ok(r) => Err(format!("transactional send: {r}")),
                Err(e) => Err(e.to_string()),
            },
        }
    }

    async fn shutdown(self) {
        match self {
            Producer::Plain(mut p) => p.shutdown().await,
            Producer::Tx(mut p) => p.shutdown().await,
        }
    }
}

/// Runs one baseline; `tag` keeps its topic and groups apart from any other run.
pub async fn run(setup: &Setup<'_>, kind: Kind, tag: &str, bar: &ProgressBar) -> anyhow::Result<BaselineFigures> {
    let rt = MqRuntime::new(&format!("bench-{}", kind.name()))?;
    let result = run_on(&rt, setup, kind, tag, bar).await;
    rt.shutdown().await;
    result
}

async fn run_on(
    rt: &MqRuntime,
    setup: &Setup<'_>,
    kind: Kind,
    tag: &str,
    bar: &ProgressBar,
) -> anyhow::Result<BaselineFigures> {
    let flow = setup.flow;
    let tag = match flow {
        Flow::Pipeline => tag.to_owned(),
        Flow::Backlog => format!("{tag}_backlog"),
    };
    let topic = format!("bench_{}_{tag}", kind.name());
    stack::topics::ensure_topic(rt, setup.namesrv, setup.broker, &topic, 4).await?;
    let tally = Arc::new(Tally {
        seen: (0..setup.messages).map(|_| AtomicBool::new(false)).collect(),
        consumed: AtomicUsize::new(0),
        redelivered: AtomicUsize::new(0),
        warm: AtomicBool::new(false),
        base: Instant::now(),
        last_us: AtomicU64::new(0),
    });
    let mut consumer = DefaultMQPushConsumer::builder(rt.client())
        .consumer_group(format!("bench_{}_cg_{tag}", kind.name()))
        .name_server_addr(setup.namesrv.to_owned())
        .consume_from_where(ConsumeFromWhere::ConsumeFromFirstOffset)
        .consume_message_batch_max_size(setup.consume_batch.max(1))
        .consume_thread_min(setup.consume_threads)
        .consume_thread_max(setup.consume_threads)
        .build();
    consumer.subscribe(topic.as_str(), "*").await.map_err(|e| anyhow::anyhow!("subscribing to {topic}: {e}"))?;
    consumer.register_message_listener_concurrently(Counting(Arc::clone(&tally)));
    consumer.start().await.map_err(|e| anyhow::anyhow!("starting the baseline consumer: {e}"))?;

    let group = format!("bench_{}_pg_{tag}", kind.name());
    let producer = match kind {
        Kind::Plain => {
            let mut p = DefaultMQProducer::builder(rt.client())
                .producer_group(group)
                .name_server_addr(setup.namesrv.to_owned())
                .send_msg_timeout(3000)
                .build();
            p.start().await.map_err(|e| anyhow::anyhow!("starting the baseline producer: {e}"))?;
            Producer::Plain(p)
        }
        Kind::Transactional => {
            let mut p = TransactionMQProducer::builder(rt.client())
                .producer_group(group)
                .name_server_addr(setup.namesrv.to_owned())
                .topics(vec![topic.clone()])
                .send_msg_timeout(3000)
                .transaction_listener(CommitAtOnce)
                .build();
            p.start().await.map_err(|e| anyhow::anyhow!("starting the baseline transactional producer: {e}"))?;
            Producer::Tx(p)
        }
    };
    let producer = Arc::new(producer);
    let body: Arc<[u8]> = transfer_sized_body().into();
    let message =
        |key: &str| Message::builder().topic(topic.as_str()).tags(TRANSFER_TAG).key(key).body_slice(&body[..]).build();

    let result = async {
        // Warm-up: routes known, queues assigned to the consumer — then the clock starts.
        producer.send(message(WARMUP_KEY).map_err(|e| anyhow::anyhow!("{e}"))?).await.map_err(anyhow::Error::msg)?;
        super::target::poll("the baseline consumer to receive its warm-up message", Duration::from_secs(60), || {
            let warm = tally.warm.load(Ordering::SeqCst);
            async move { warm.then_some(()) }
        })
        .await?;
        if flow == Flow::Backlog {
            consumer.suspend().await;
        }

        let messages: Vec<Message> = (0..setup.messages)
            .map(|i| message(&key_of(i)).map_err(|e| anyhow::anyhow!("building message {i}: {e}")))
            .collect::<anyhow::Result<_>>()?;
        let messages = Arc::new(std::sync::Mutex::new(messages.into_iter().enumerate()));
        let first_send_us = tally.base.elapsed().as_micros() as u64;
        let mut senders = tokio::task::JoinSet::new();
        for _ in 0..setup.concurrency.max(1) {
            let (producer, messages, bar, base) =
                (Arc::clone(&producer), Arc::clone(&messages), bar.clone(), tally.base);
            senders.spawn(async move {
                let (mut ok, mut errors, mut took, mut err_sample) = (0usize, 0usize, Vec::new(), None);
                loop {
                    let next = messages.lock().unwrap_or_else(|e| e.into_inner()).next();
                    let Some((_, msg)) = next else { break };
                    let t0 = base.elapsed();
                    match producer.send(msg).await {
                        Ok(()) => {
                            ok += 1;
                            took.push((base.elapsed() - t0).as_secs_f64() * 1000.0);
                        }
                        Err(e) => {
                            errors += 1;
                            err_sample.get_or_insert(e);
                        }
                    }
                    bar.inc(1);
                }
                (ok, errors, took, err_sample)
            });
        }
        let (mut sent, mut send_errors, mut send_ms) = (0, 0, Vec::new());
        while let Some(r) = senders.join_next().await {
            let (ok, errors, took, err) = r?;
            sent += ok;
            send_errors += errors;
            send_ms.extend(took);
            if let Some(e) = err {
                tracing::warn!(error = %e, "baseline send failed");
            }
        }
        let start_us = match flow {
            Flow::Pipeline => first_send_us,
            Flow::Backlog => {
                let resumed_us = tally.base.elapsed().as_micros() as u64;
                consumer.resume().await;
                resumed_us
            }
        };
        // Every sent message consumed, or no progress for `stall_timeout`.
        let mut last = (tally.consumed.load(Ordering::SeqCst), tokio::time::Instant::now());
        loop {
            let consumed = tally.consumed.load(Ordering::SeqCst);
            bar.set_message(format!("{consumed} consumed"));
            if consumed >= sent {
                break;
            }
            if consumed != last.0 {
                last = (consumed, tokio::time::Instant::now());
            } else if last.1.elapsed() > setup.stall_timeout {
                tracing::warn!(consumed, sent, "baseline consumer stalled; reporting what arrived");
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let consumed = tally.consumed.load(Ordering::SeqCst);
        let elapsed_s = (tally.last_us.load(Ordering::SeqCst).saturating_sub(start_us)) as f64 / 1e6;
        Ok(BaselineFigures {
            kind: kind.name(),
            backlog: flow == Flow::Backlog,
            messages: setup.messages,
            body_bytes: body.len(),
            sent,
            send_errors,
            consumed,
            redelivered: tally.redelivered.load(Ordering::Relaxed),
            elapsed_s: round2(elapsed_s),
            msgs_per_s: if elapsed_s > 0.0 { round1(consumed as f64 / elapsed_s) } else { 0.0 },
            send_ms: Summary::of(send_ms),
            cpu: None,
        })
    }
    .await;
    consumer.shutdown().await;
    if let Ok(p) = Arc::try_unwrap(producer) {
        p.shutdown().await;
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_uuid_shaped_and_round_trip() {
        for i in [0, 1, 59_999, 999_999_999_999] {
            let k = key_of(i);
            assert_eq!(k.len(), 36);
            assert!(uuid::Uuid::parse_str(&k).is_ok(), "{k}");
            assert_eq!(index_of(&k), Some(i));
        }
        assert_eq!(index_of(WARMUP_KEY), None);
    }
}
