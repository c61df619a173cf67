//! Reading messages back from the broker by key (KEYS = tx_no), DLQ included — through the
//! client's query API, the same index `mqadmin queryMsgByKey` reads.

use rocketmq_client_rust::{DefaultMQProducer, MQClientException};
use rocketmq_model::common::message::message_ext::MessageExt;

/// RocketMQ's NO_MESSAGE response code.
const NO_MESSAGE: i32 = 208;

/// Messages of `topic` whose KEYS contain `key` (at most 64).
pub async fn messages_by_key(
    rt: &common::mq::MqRuntime,
    namesrv: &str,
    topic: &str,
    key: &str,
) -> anyhow::Result<Vec<MessageExt>> {
    let mut producer = DefaultMQProducer::builder(rt.client())
        .producer_group(format!("bank_transfer_query_{}", std::process::id()))
        .name_server_addr(namesrv.to_owned())
        .build();
    producer.start().await.map_err(|e| anyhow::anyhow!("starting the query client: {e}"))?;
    let end = u64::try_from(common::now_ms()).unwrap_or(0) + 60_000;
    let r = producer.query_message(topic, key, 64, 0, end).await;
    producer.shutdown().await;
    match r {
        Ok(r) => Ok(r.message_list().to_vec()),
        // The client reports "no message" as an error (response code NO_MESSAGE).
        Err(e) if e.source_ref::<MQClientException>().is_some_and(|x| x.response_code() == NO_MESSAGE) => {
            Ok(Vec::new())
        }
        Err(e) => Err(anyhow::anyhow!("querying {topic} by key {key}: {e}")),
    }
}
