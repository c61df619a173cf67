//! Operator reads from the broker: a whole topic (the dead-letter queue, for redrive and
//! refund) and messages by key (KEYS = tx_no) through the query index `mqadmin
//! queryMsgByKey` reads.

use std::time::Duration;

use rocketmq_client_rust::{DefaultMQProducer, MQClientException};
use rocketmq_model::common::message::message_ext::MessageExt;

use super::MqRuntime;

/// RocketMQ's NO_MESSAGE response code.
const NO_MESSAGE: i32 = 208;
/// RocketMQ's TOPIC_NOT_EXIST response code: the name server has no route for the topic (a
/// DLQ before its first dead letter).
const TOPIC_NOT_EXIST: i32 = 17;

/// Messages of `topic` whose KEYS contain `key` (at most 64).
pub async fn messages_by_key(rt: &MqRuntime, namesrv: &str, topic: &str, key: &str) -> anyhow::Result<Vec<MessageExt>> {
    let mut producer = DefaultMQProducer::builder(rt.client())
        .producer_group(format!("bank_transfer_query_{}", std::process::id()))
        .name_server_addr(namesrv.to_owned())
        .build();
    producer.start().await.map_err(|e| anyhow::anyhow!("starting the query client: {e}"))?;
    let end = u64::try_from(crate::now_ms()).unwrap_or(0) + 60_000;
    let r = producer.query_message(topic, key, 64, 0, end).await;
    producer.shutdown().await;
    match r {
        Ok(r) => Ok(r.message_list().to_vec()),
        // The client reports "no message", and "no such topic", as errors.
        Err(e)
            if e.source_ref::<MQClientException>()
                .is_some_and(|x| [NO_MESSAGE, TOPIC_NOT_EXIST].contains(&x.response_code())) =>
        {
            Ok(Vec::new())
        }
        Err(e) => Err(anyhow::anyhow!("querying {topic} by key {key}: {e}")),
    }
}

/// What [`read_topic`] read.
#[derive(Debug, Default)]
pub struct TopicRead {
    pub messages: Vec<MessageExt>,
    /// `None` when every queue was read up to the end it had when the read began; otherwise
    /// why the read stopped early (a cap, the deadline, the broker).
    pub truncated: Option<String>,
}

/// How long one read may take before it reports itself truncated.
const READ_DEADLINE: Duration = Duration::from_secs(60);

/// Reads every message `topic` holds when the read begins, from the start of each queue,
/// without committing offsets: for operator reads such as the dead-letter queue. Each queue's
/// end is taken up front (its max offset), so the read knows when it is complete and says when
/// it is not (at most `max` messages, at most a minute). A topic that does not exist yet (no
/// dead letter so far) reads as empty and complete.
pub async fn read_topic(
    rt: &MqRuntime,
    namesrv: &str,
    group: &str,
    topic: &str,
    max: usize,
) -> anyhow::Result<TopicRead> {
    use std::collections::HashMap;

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
            _ => return Ok(TopicRead::default()),
        };
        consumer.assign(queues.clone()).await.map_err(|e| anyhow::anyhow!("assigning {topic}: {e}"))?;
        // Per queue: the next offset still to read, and the end to reach (the offset the broker
        // will write next, as of now).
        let mut next = HashMap::new();
        let mut end = HashMap::new();
        for q in &queues {
            let min = consumer.min_offset(q).await.map_err(|e| anyhow::anyhow!("offsets of {topic}: {e}"))?;
            let max = consumer.max_offset(q).await.map_err(|e| anyhow::anyhow!("offsets of {topic}: {e}"))?;
            consumer.seek(q, min).await.map_err(|e| anyhow::anyhow!("seeking {topic}: {e}"))?;
            let id = (q.broker_name().to_string(), q.queue_id());
            next.insert(id.clone(), min);
            end.insert(id, max);
        }
        let done =
            |next: &HashMap<(String, i32), i64>| end.iter().all(|(id, max)| next.get(id).is_some_and(|n| n >= max));
        let mut out = Vec::new();
        let deadline = tokio::time::Instant::now() + READ_DEADLINE;
        while !done(&next) {
            if out.len() >= max {
                return Ok(TopicRead { messages: out, truncated: Some(format!("stopped at {max} messages")) });
            }
            if tokio::time::Instant::now() >= deadline {
                let missing: i64 = end.iter().map(|(id, max)| max - next.get(id).copied().unwrap_or(0)).sum();
                return Ok(TopicRead {
                    messages: out,
                    truncated: Some(format!(
                        "stopped after {READ_DEADLINE:?} with {missing} messages unread (broker slow or unreachable)"
                    )),
                });
            }
            for m in consumer.poll_with_timeout(500).await {
                let id = (m.broker_name().to_string(), m.queue_id());
                let n = next.entry(id).or_insert(0);
                *n = (*n).max(m.queue_offset() + 1);
                out.push(m);
            }
        }
        out.truncate(max);
        Ok(TopicRead { messages: out, truncated: None })
    }
    .await;
    consumer.shutdown().await;
    result
}
