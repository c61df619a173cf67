//! bank1's settings: flags, each with a `BANK1_…` environment variable (env wins in compose).

use std::net::SocketAddr;

use clap::Parser;
use common::money::Threshold;

#[derive(Debug, Clone, Parser)]
#[command(
    name = "bank1",
    about = "bank1: debits the sender and publishes the transfer as a RocketMQ transactional message"
)]
pub struct Settings {
    /// HTTP listen address (port 0 picks a free port).
    #[arg(long, env = "BANK1_LISTEN", default_value = "127.0.0.1:56081")]
    pub listen: SocketAddr,
    /// Database URL: sqlite://path/to/bank1.db or mysql://user:pass@host:3306/bank1.
    #[arg(long, env = "BANK1_DATABASE_URL", default_value = "sqlite://data/bank1.db")]
    pub database_url: String,
    /// Pool size for MySQL (SQLite always uses one connection).
    #[arg(long, env = "BANK1_DB_MAX_CONNECTIONS", default_value_t = 16)]
    pub db_max_connections: u32,
    /// RocketMQ name server(s), host:port[;host:port].
    #[arg(long, env = "NAMESRV_ADDR", default_value = common::mq::DEFAULT_NAMESRV)]
    pub namesrv_addr: String,
    #[arg(long, env = "BANK1_TOPIC", default_value = common::mq::DEFAULT_TOPIC)]
    pub topic: String,
    #[arg(long, env = "BANK1_PRODUCER_GROUP", default_value = common::mq::DEFAULT_PRODUCER_GROUP)]
    pub producer_group: String,
    /// Milliseconds the producer waits for the broker on a send.
    #[arg(long, env = "BANK1_SEND_TIMEOUT_MS", default_value_t = 3000)]
    pub send_timeout_ms: u32,
    /// Fault: fail the local transaction (after the debit statement) for amounts >= this.
    #[arg(long, env = "BANK1_LOCAL_TX_FAIL_AT_LEAST", value_parser = Threshold::parse_arg)]
    pub local_tx_fail_at_least: Option<Threshold>,
    /// Fault: commit locally but answer UNKNOWN to the broker for amounts >= this.
    #[arg(long, env = "BANK1_UNKNOWN_AT_LEAST", value_parser = Threshold::parse_arg)]
    pub unknown_at_least: Option<Threshold>,
    /// Fault: commit locally but roll the half message back (a lost notification).
    #[arg(long, env = "BANK1_LOSE_MESSAGE_AT_LEAST", value_parser = Threshold::parse_arg)]
    pub lose_message_at_least: Option<Threshold>,
}

impl Settings {
    /// Defaults plus environment, as if started with no flags.
    pub fn from_env() -> Self {
        Self::parse_from(["bank1"])
    }
}
