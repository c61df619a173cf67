//! bank2's settings: flags, each with a `BANK2_…` environment variable (env wins in compose).

use std::net::SocketAddr;

use clap::Parser;
use common::money::Threshold;

#[derive(Debug, Clone, Parser)]
#[command(name = "bank2", about = "bank2: consumes transfer messages and credits the receiver exactly once")]
pub struct Settings {
    /// HTTP listen address (port 0 picks a free port).
    #[arg(long, env = "BANK2_LISTEN", default_value = "127.0.0.1:56082")]
    pub listen: SocketAddr,
    /// Database URL: sqlite://path/to/bank2.db or mysql://user:pass@host:3306/bank2.
    #[arg(long, env = "BANK2_DATABASE_URL", default_value = "sqlite://data/bank2.db")]
    pub database_url: String,
    /// Pool size for MySQL (SQLite always uses one connection).
    #[arg(long, env = "BANK2_DB_MAX_CONNECTIONS", default_value_t = 16)]
    pub db_max_connections: u32,
    /// RocketMQ name server(s), host:port[;host:port].
    #[arg(long, env = "NAMESRV_ADDR", default_value = common::mq::DEFAULT_NAMESRV)]
    pub namesrv_addr: String,
    #[arg(long, env = "BANK2_TOPIC", default_value = common::mq::DEFAULT_TOPIC)]
    pub topic: String,
    #[arg(long, env = "BANK2_CONSUMER_GROUP", default_value = common::mq::DEFAULT_CONSUMER_GROUP)]
    pub consumer_group: String,
    /// Redeliveries before the broker moves a message to %DLQ%<group>.
    #[arg(long, env = "BANK2_MAX_RECONSUME_TIMES", default_value_t = 16)]
    pub max_reconsume_times: i32,
    /// Consumer threads (messages handled at once).
    #[arg(long, env = "BANK2_CONSUME_THREADS", default_value_t = 8)]
    pub consume_threads: u32,
    /// bank1's base URL: its status endpoint and feed, for reconciliation and DLQ redrive.
    #[arg(long, env = "BANK2_BANK1_URL", default_value = "http://127.0.0.1:56081")]
    pub bank1_url: String,
    /// How often the reconciler reads bank1's feed (e.g. 30s, 5m; 0 = never on its own).
    #[arg(long, env = "BANK2_RECONCILE_INTERVAL", default_value = "30s", value_parser = common::parse_duration)]
    pub reconcile_interval: std::time::Duration,
    /// Transfers younger than this are left to the message path (e.g. 10s, 1m).
    #[arg(long, env = "BANK2_RECONCILE_GRACE", default_value = "10s", value_parser = common::parse_duration)]
    pub reconcile_grace: std::time::Duration,
    /// Fault: consumption fails for amounts >= this ⇒ retry ladder ⇒ DLQ.
    #[arg(long, env = "BANK2_CONSUME_FAIL_AT_LEAST", value_parser = Threshold::parse_arg)]
    pub consume_fail_at_least: Option<Threshold>,
}

impl Settings {
    /// Defaults plus environment, as if started with no flags.
    pub fn from_env() -> Self {
        Self::parse_from(["bank2"])
    }
}
