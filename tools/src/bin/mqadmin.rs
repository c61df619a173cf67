//! `mqadmin` — the RocketMQ admin commands operators of this demo need, in Java mqadmin's
//! flat syntax so RocketMQ docs and tutorials carry over:
//!
//! ```text
//! mqadmin topicList        -n 127.0.0.1:9876
//! mqadmin queryMsgByKey    -n 127.0.0.1:9876 -t topic_txmsg -k <tx_no>
//! mqadmin queryMsgById     -n 127.0.0.1:9876 -t topic_txmsg -i <msg id>
//! mqadmin printMsg         -n 127.0.0.1:9876 -t %DLQ%consumer_group_txmsg_bank2
//! mqadmin consumerProgress -n 127.0.0.1:9876 -g consumer_group_txmsg_bank2
//! mqadmin updateTopic      -n 127.0.0.1:9876 -b 127.0.0.1:10911 -t topic_txmsg -r 4 -w 4
//! mqadmin sendMessage      -n 127.0.0.1:9876 -t topic_txmsg -k <tx_no> -p '<body>'
//! ```
//!
//! `sendMessage` publishes as any client could — unsigned, so bank2 quarantines a transfer sent
//! this way as `bad_signature`: the way to see for yourself that a stranger cannot mint money.
//!
//! A thin shell over the rocketmq-rust client's admin and query API (no protocol code here).
//! `-n` may be left out when `NAMESRV_ADDR` is set.
#![recursion_limit = "512"]

use std::time::Duration;

use anyhow::Context;
use cheetah_string::CheetahString;
use clap::{Args, Parser, Subcommand};
use common::infra::mq::MqRuntime;
use rocketmq_client_rust::{ConsumerAdmin, DefaultMQAdminExt, DefaultMQProducer, TopicAdmin};
use rocketmq_model::common::message::message_ext::MessageExt;
use rocketmq_model::common::message::MessageTrait;
use rocketmq_model::topic::TopicConfig;

#[derive(Debug, Parser)]
#[command(name = "mqadmin", about = "RocketMQ admin commands (Java mqadmin syntax) for bank-transfer")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Args)]
struct Ns {
    /// Name server address, host:port.
    #[arg(short = 'n', long = "namesrvAddr", env = "NAMESRV_ADDR", default_value = "127.0.0.1:9876")]
    namesrv: String,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// List all topics.
    #[command(name = "topicList")]
    TopicList {
        #[command(flatten)]
        ns: Ns,
    },
    /// Find messages of a topic by key (bank-transfer's KEYS = tx_no).
    #[command(name = "queryMsgByKey")]
    QueryMsgByKey {
        #[command(flatten)]
        ns: Ns,
        #[arg(short = 't', long = "topic")]
        topic: String,
        #[arg(short = 'k', long = "msgKey")]
        key: String,
    },
    /// Show one message in full by its message id (as printed by queryMsgByKey).
    #[command(name = "queryMsgById")]
    QueryMsgById {
        #[command(flatten)]
        ns: Ns,
        #[arg(short = 'i', long = "msgId")]
        msg_id: String,
        #[arg(short = 't', long = "topic", default_value = common::infra::mq::DEFAULT_TOPIC)]
        topic: String,
    },
    /// Print every message currently in a topic (e.g. the DLQ), from the beginning.
    #[command(name = "printMsg")]
    PrintMsg {
        #[command(flatten)]
        ns: Ns,
        #[arg(short = 't', long = "topic")]
        topic: String,
        /// Stop after this many messages.
        #[arg(short = 'm', long = "max", default_value_t = 1000)]
        max: usize,
    },
    /// Per-queue broker offset, consumer offset and lag of a consumer group.
    #[command(name = "consumerProgress")]
    ConsumerProgress {
        #[command(flatten)]
        ns: Ns,
        #[arg(short = 'g', long = "groupName")]
        group: String,
    },
    /// Create or update a topic on a broker.
    #[command(name = "updateTopic")]
    UpdateTopic {
        #[command(flatten)]
        ns: Ns,
        /// Broker address, host:port.
        #[arg(short = 'b', long = "brokerAddr")]
        broker: String,
        #[arg(short = 't', long = "topic")]
        topic: String,
        #[arg(short = 'r', long = "readQueueNums", default_value_t = 8)]
        read: u32,
        #[arg(short = 'w', long = "writeQueueNums", default_value_t = 8)]
        write: u32,
    },
    /// Publish one message with a plain producer (no signature).
    #[command(name = "sendMessage")]
    SendMessage {
        #[command(flatten)]
        ns: Ns,
        #[arg(short = 't', long = "topic")]
        topic: String,
        /// The body.
        #[arg(short = 'p', long = "body")]
        body: String,
        #[arg(short = 'k', long = "keys")]
        keys: Option<String>,
        #[arg(short = 'c', long = "tags")]
        tags: Option<String>,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    common::infra::telemetry::init("error");
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    rt.block_on(async {
        let mq = MqRuntime::new("mqadmin")?;
        let r = run(&mq, cli.cmd).await;
        mq.shutdown().await;
        r
    })
}

async fn admin(mq: &MqRuntime, ns: &str) -> anyhow::Result<DefaultMQAdminExt> {
    let mut a = DefaultMQAdminExt::with_admin_ext_group_and_timeout(
        mq.client(),
        format!("mqadmin_{}", std::process::id()),
        Duration::from_secs(5),
    );
    a.set_namesrv_addr(ns);
    a.start().await.map_err(|e| anyhow::anyhow!("connecting to {ns}: {e}"))?;
    Ok(a)
}

async fn run(mq: &MqRuntime, cmd: Cmd) -> anyhow::Result<()> {
    match cmd {
        Cmd::SendMessage { ns, topic, body, keys, tags } => {
            use rocketmq_model::common::message::message_single::Message;
            let mut b = Message::builder().topic(topic.as_str()).body_slice(body.as_bytes());
            if let Some(k) = &keys {
                b = b.key(k.as_str());
            }
            if let Some(t) = &tags {
                b = b.tags(t.as_str());
            }
            let msg = b.build().map_err(|e| anyhow::anyhow!("{e}"))?;
            let mut p = DefaultMQProducer::builder(mq.client())
                .producer_group(format!("mqadmin_send_{}", std::process::id()))
                .name_server_addr(ns.namesrv.clone())
                .build();
            p.start().await.map_err(|e| anyhow::anyhow!("connecting to {}: {e}", ns.namesrv))?;
            let sent = p.send(msg).await;
            p.shutdown().await;
            let sent = sent.map_err(|e| anyhow::anyhow!("sending to {topic}: {e}"))?;
            println!("{sent:?}");
        }
        Cmd::TopicList { ns } => {
            let mut a = admin(mq, &ns.namesrv).await?;
            let list = a.fetch_all_topic_list().await.map_err(|e| anyhow::anyhow!("{e}"));
            a.shutdown().await;
            let mut topics: Vec<String> = list?.topic_list.iter().map(|t| t.to_string()).collect();
            topics.sort();
            for t in topics {
                println!("{t}");
            }
        }
        Cmd::QueryMsgByKey { ns, topic, key } => {
            let msgs = common::infra::mq::read::messages_by_key(mq, &ns.namesrv, &topic, &key).await?;
            let mut t = columns(&["#Message ID", "#QID", "#Offset", "#Retries", "#Stored", "#Keys"]);
            for m in &msgs {
                t.add_row(vec![
                    m.msg_id().to_string(),
                    m.queue_id().to_string(),
                    m.queue_offset().to_string(),
                    m.reconsume_times().to_string(),
                    common::format_ms(m.store_timestamp()),
                    m.get_keys().map(|k| k.to_string()).unwrap_or_default(),
                ]);
            }
            println!("{t}");
            if msgs.is_empty() {
                eprintln!("no message with key {key} in {topic}");
                std::process::exit(1);
            }
        }
        Cmd::QueryMsgById { ns, msg_id, topic } => {
            let mut p = DefaultMQProducer::builder(mq.client())
                .producer_group(format!("mqadmin_query_{}", std::process::id()))
                .name_server_addr(ns.namesrv.clone())
                .build();
            p.start().await.map_err(|e| anyhow::anyhow!("connecting to {}: {e}", ns.namesrv))?;
            let m = p.view_message(&topic, &msg_id).await;
            p.shutdown().await;
            print_message(&m.map_err(|e| anyhow::anyhow!("message {msg_id}: {e}"))?);
        }
        Cmd::PrintMsg { ns, topic, max } => {
            let read = common::infra::mq::read::read_topic(
                mq,
                &ns.namesrv,
                &format!("mqadmin_print_{}", std::process::id()),
                &topic,
                max,
            )
            .await?;
            for m in &read.messages {
                print_message(m);
                println!();
            }
            println!("{} message(s) in {topic}", read.messages.len());
            if let Some(why) = read.truncated {
                println!("(not the whole topic: {why})");
            }
        }
        Cmd::ConsumerProgress { ns, group } => {
            let mut a = admin(mq, &ns.namesrv).await?;
            let stats = a
                .examine_consume_stats(CheetahString::from(group.as_str()), None, None, None, None)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"));
            a.shutdown().await;
            let stats = stats?;
            let mut rows: Vec<_> = stats.offset_table.iter().collect();
            rows.sort_by(|(a, _), (b, _)| (a.topic_str(), a.queue_id()).cmp(&(b.topic_str(), b.queue_id())));
            let mut t = columns(&["#Topic", "#Broker Name", "#QID", "#Broker Offset", "#Consumer Offset", "#Diff"]);
            let mut total = 0;
            for (q, o) in rows {
                let diff = o.get_broker_offset() - o.get_consumer_offset();
                total += diff;
                t.add_row(vec![
                    q.topic_str().to_string(),
                    q.broker_name().to_string(),
                    q.queue_id().to_string(),
                    o.get_broker_offset().to_string(),
                    o.get_consumer_offset().to_string(),
                    diff.to_string(),
                ]);
            }
            println!("{t}");
            println!("\nConsume TPS: {:.2}\nDiff Total: {total}", stats.consume_tps);
        }
        Cmd::UpdateTopic { ns, broker, topic, read, write } => {
            let mut a = admin(mq, &ns.namesrv).await?;
            let r = a
                .create_and_update_topic_config(
                    CheetahString::from(broker.as_str()),
                    TopicConfig::with_queues(topic.as_str(), read, write),
                )
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))
                .with_context(|| format!("updating topic {topic} on {broker}"));
            a.shutdown().await;
            r?;
            println!("create topic to {broker} success.\n{topic}: readQueueNums={read} writeQueueNums={write}");
        }
    }
    Ok(())
}

/// A borderless table with a `#`-prefixed header row, as Java mqadmin prints.
fn columns(header: &[&str]) -> comfy_table::Table {
    let mut t = comfy_table::Table::new();
    t.load_style(comfy_table::presets::NOTHING).set_header(header.to_vec());
    t
}

fn print_message(m: &MessageExt) {
    let body = m.body().unwrap_or_default();
    println!("OffsetID:            {}", m.msg_id());
    println!("Topic:               {}", m.topic());
    println!("Tags:                [{}]", m.get_tags().map(|t| t.to_string()).unwrap_or_default());
    println!("Keys:                [{}]", m.get_keys().map(|k| k.to_string()).unwrap_or_default());
    println!("Queue ID:            {}", m.queue_id());
    println!("Queue Offset:        {}", m.queue_offset());
    println!("Reconsume Times:     {}", m.reconsume_times());
    println!("Born Timestamp:      {}", common::format_ms(m.born_timestamp()));
    println!("Store Timestamp:     {}", common::format_ms(m.store_timestamp()));
    let mut props: Vec<_> = m.properties().iter().map(|(k, v)| format!("{k}={v}")).collect();
    props.sort();
    println!("Properties:          {}", props.join(", "));
    println!("Message Body:        {}", String::from_utf8_lossy(&body));
}
