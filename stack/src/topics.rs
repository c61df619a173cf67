//! Creating the transfer topic up front, through the client's admin API, so a consumer that
//! starts before the first message finds its route at once (an auto-created topic would only
//! reach it on its next route refresh, tens of seconds later).

use std::time::Duration;

use anyhow::Context;
use cheetah_string::CheetahString;
use rocketmq_client_rust::{DefaultMQAdminExt, TopicAdmin};
use rocketmq_model::topic::TopicConfig;

/// Creates (or updates) `topic` with `queues` read/write queues on the broker at
/// `broker_addr`, then waits until the name server routes it.
pub async fn ensure_topic(
    rt: &common::infra::mq::MqRuntime,
    namesrv: &str,
    broker_addr: &str,
    topic: &str,
    queues: u32,
) -> anyhow::Result<()> {
    let mut admin =
        DefaultMQAdminExt::with_admin_ext_group_and_timeout(rt.client(), "bank_transfer_admin", Duration::from_secs(5));
    admin.set_namesrv_addr(namesrv);
    admin.start().await.map_err(|e| anyhow::anyhow!("starting the admin client: {e}"))?;
    let result = async {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let created = admin
                .create_and_update_topic_config(
                    CheetahString::from(broker_addr),
                    TopicConfig::with_queues(topic, queues, queues),
                )
                .await;
            let routed = match &created {
                Ok(()) => matches!(admin.examine_topic_route_info(CheetahString::from(topic)).await, Ok(Some(_))),
                Err(_) => false,
            };
            if routed {
                return Ok(());
            }
            if tokio::time::Instant::now() > deadline {
                return created
                    .map_err(|e| anyhow::anyhow!("{e}"))
                    .and_then(|()| anyhow::bail!("topic {topic} created but not routed"));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    .await
    .with_context(|| format!("creating topic {topic} on {broker_addr}"));
    admin.shutdown().await;
    result
}
