//! The settings every bank has, declared once. A bank flattens [`Common`] into its own settings
//! and parses them with [`parse`], which gives the shared settings the bank's environment names
//! — `{BANK}_LISTEN` becomes `BANK1_LISTEN` for bank1, `{BANK}_{PEER}_URL` becomes
//! `BANK1_BANK2_URL` — and its defaults. Environment variables win over nothing but the
//! defaults; flags win over both.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser};

use crate::infra::clock::parse_duration;
use crate::infra::token::Token;

/// What both banks are configured with.
#[derive(Debug, Clone, Args)]
pub struct Common {
    /// HTTP listen address (port 0 picks a free port).
    #[arg(long, env = "{BANK}_LISTEN")]
    pub listen: SocketAddr,
    /// Database URL: sqlite://path/to/file.db or mysql://user:pass@host:3306/db.
    #[arg(long, env = "{BANK}_DATABASE_URL")]
    pub database_url: String,
    /// Pool size for MySQL (SQLite always uses one connection).
    #[arg(long, env = "{BANK}_DB_MAX_CONNECTIONS", default_value_t = 16)]
    pub db_max_connections: u32,
    /// SQLite only: `full` (a commit survives a power cut) or `normal` (it survives a crash of
    /// the process; the last commits before a power cut may be lost). docs/PERFORMANCE.md.
    #[arg(long, env = "{BANK}_SQLITE_SYNCHRONOUS", value_enum, default_value_t = crate::infra::db::SqliteSync::Full)]
    pub sqlite_synchronous: crate::infra::db::SqliteSync,
    /// RocketMQ name server(s), host:port[;host:port].
    #[arg(long, env = "NAMESRV_ADDR", default_value = crate::infra::mq::DEFAULT_NAMESRV)]
    pub namesrv_addr: String,
    /// Milliseconds the producer waits for the broker on a send.
    #[arg(long, env = "{BANK}_SEND_TIMEOUT_MS", default_value_t = 3000)]
    pub send_timeout_ms: u32,
    /// Redeliveries of a consumed message before the broker moves it to %DLQ%<group>.
    #[arg(long, env = "{BANK}_MAX_RECONSUME_TIMES", default_value_t = 16)]
    pub max_reconsume_times: i32,
    /// Topic of the transfers (bank1 → bank2).
    #[arg(long, env = "{BANK}_TOPIC", default_value = crate::infra::mq::DEFAULT_TOPIC)]
    pub topic: String,
    /// Topic of the refund notices (the return of funds, bank2 → bank1).
    #[arg(long, env = "{BANK}_REFUND_TOPIC", default_value = crate::infra::mq::DEFAULT_REFUND_TOPIC)]
    pub refund_topic: String,
    /// Group this bank's transactional producer sends as (the broker checks back with it).
    #[arg(long, env = "{BANK}_PRODUCER_GROUP")]
    pub producer_group: String,
    /// Group this bank's consumer reads as (its DLQ is %DLQ%<group>).
    #[arg(long, env = "{BANK}_CONSUMER_GROUP")]
    pub consumer_group: String,

    /// The other bank's base URL: its feed and query interface (http:// or https://).
    #[arg(long, env = "{BANK}_{PEER}_URL")]
    pub peer_url: String,
    /// A PEM file of CA certificates trusted for an https:// peer URL, beside the system's
    /// (a private CA).
    #[arg(long, env = "{BANK}_{PEER}_CA_FILE")]
    pub peer_ca_file: Option<PathBuf>,
    /// A message whose transfer the other bank does not know is quarantined once it is this
    /// old (e.g. 60s); younger, it waits for the other bank's word. Only a replayed message
    /// can name a transfer its sender does not have.
    #[arg(long, env = "{BANK}_PROOF_HORIZON", default_value = "60s", value_parser = parse_duration)]
    pub proof_horizon: Duration,
    /// How often the reconciler reads the other bank's feed (e.g. 30s, 5m; 0 = only on demand).
    #[arg(long, env = "{BANK}_RECONCILE_INTERVAL", default_value = "30s", value_parser = parse_duration)]
    pub reconcile_interval: Duration,
    /// Feed entries younger than this are left to the messages (e.g. 10s, 1m).
    #[arg(long, env = "{BANK}_RECONCILE_GRACE", default_value = "10s", value_parser = parse_duration)]
    pub reconcile_grace: Duration,

    /// This bank's Ed25519 signing key (base64 of the 32-byte seed): signs its messages.
    #[arg(long, env = "{BANK}_SIGNING_KEY", hide_env_values = true)]
    pub signing_key: Option<String>,
    /// …or a file holding it.
    #[arg(long, env = "{BANK}_SIGNING_KEY_FILE")]
    pub signing_key_file: Option<PathBuf>,
    /// The other bank's public keys (base64, comma-separated): only messages they sign move money.
    #[arg(long, env = "{BANK}_PEER_PUBLIC_KEYS")]
    pub peer_public_keys: Option<String>,
    /// …or a file holding them.
    #[arg(long, env = "{BANK}_PEER_PUBLIC_KEYS_FILE")]
    pub peer_public_keys_file: Option<PathBuf>,

    /// Bearer token for every /admin/* route (unset: they all answer 401).
    #[arg(long, env = "{BANK}_ADMIN_TOKEN", hide_env_values = true, value_parser = Token::parse)]
    pub admin_token: Option<Token>,
    /// Bearer token the other bank presents to this bank's feed.
    #[arg(long, env = "{BANK}_FEED_TOKEN", hide_env_values = true, value_parser = Token::parse)]
    pub feed_token: Option<Token>,
    /// Bearer token this bank presents to the other bank's feed.
    #[arg(long, env = "{BANK}_{PEER}_FEED_TOKEN", hide_env_values = true, value_parser = Token::parse)]
    pub peer_feed_token: Option<Token>,
}

/// The two banks. bank1 pays: it sends transfers and takes refunds back. bank2 is paid: it takes
/// transfers and sends refunds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bank {
    Bank1,
    Bank2,
}

impl Bank {
    /// The bank's names and defaults, read off one table of both banks.
    pub const fn names(self) -> Names {
        use crate::infra::mq::{
            DEFAULT_CONSUMER_GROUP, DEFAULT_PRODUCER_GROUP, DEFAULT_REFUND_CONSUMER_GROUP,
            DEFAULT_REFUND_PRODUCER_GROUP,
        };
        const BANK: [&str; 2] = ["bank1", "bank2"];
        const LISTEN: [&str; 2] = ["127.0.0.1:56081", "127.0.0.1:56082"];
        const URL: [&str; 2] = ["http://127.0.0.1:56081", "http://127.0.0.1:56082"];
        const DATABASE: [&str; 2] = ["sqlite://data/bank1.db", "sqlite://data/bank2.db"];
        const PRODUCER: [&str; 2] = [DEFAULT_PRODUCER_GROUP, DEFAULT_REFUND_PRODUCER_GROUP];
        const CONSUMER: [&str; 2] = [DEFAULT_REFUND_CONSUMER_GROUP, DEFAULT_CONSUMER_GROUP];
        let (me, peer) = match self {
            Bank::Bank1 => (0, 1),
            Bank::Bank2 => (1, 0),
        };
        Names {
            bank: BANK[me],
            peer: BANK[peer],
            listen: LISTEN[me],
            database_url: DATABASE[me],
            peer_url: URL[peer],
            producer_group: PRODUCER[me],
            consumer_group: CONSUMER[me],
        }
    }
}

/// A bank's names and defaults for [`Common`] ([`Bank::names`]).
#[derive(Debug, Clone, Copy)]
pub struct Names {
    /// `bank1` (logs, `/health`); its upper case is the env prefix.
    pub bank: &'static str,
    pub peer: &'static str,
    pub listen: &'static str,
    pub database_url: &'static str,
    pub peer_url: &'static str,
    pub producer_group: &'static str,
    pub consumer_group: &'static str,
}

impl Names {
    /// The environment variable of a shared setting, e.g. `env("SIGNING_KEY")` = `BANK1_SIGNING_KEY`.
    pub fn env(&self, what: &str) -> String {
        format!("{}_{what}", self.bank.to_uppercase())
    }

    fn fill(&self, pattern: &str) -> String {
        pattern.replace("{BANK}", &self.bank.to_uppercase()).replace("{PEER}", &self.peer.to_uppercase())
    }
}

/// A bank's settings: its own, with [`Common`] flattened in as `common`, and what the bank is
/// built from whatever the settings say: which bank it is, its fault set and its schema.
/// Implemented with [`bank_settings!`](crate::bank_settings).
pub trait BankSettings: Parser + Clone + Send + Sync + 'static {
    /// The bank's fault switches (`--*-fail-at-least` flags, `/admin/faults`).
    type Faults: crate::service::faults::FaultSet;
    const BANK: Bank;
    const NAMES: Names = Self::BANK.names();
    /// The bank's schema migrations: SQLite's and MySQL's (sql/README.md).
    const MIGRATORS: &'static [sqlx::migrate::Migrator; 2];
    fn common(&self) -> &Common;

    /// Defaults plus environment, as if started with no flags.
    fn from_env() -> Self {
        parse(["bank"])
    }
}

/// Implements [`BankSettings`] for a bank's settings struct, which has a `common: Common` field:
/// `bank_settings!(Settings: Bank1, faults = crate::faults::Faults, schema = crate::store::MIGRATORS);`
#[macro_export]
macro_rules! bank_settings {
    ($settings:ty: $bank:ident, faults = $faults:ty, schema = $migrators:path $(,)?) => {
        impl $crate::service::settings::BankSettings for $settings {
            type Faults = $faults;
            const BANK: $crate::service::settings::Bank = $crate::service::settings::Bank::$bank;
            const MIGRATORS: &'static [$crate::infra::db::Migrator; 2] = &$migrators;

            fn common(&self) -> &$crate::service::settings::Common {
                &self.common
            }
        }
    };
}

/// Parses `args` (the first is the program name) into `T`, the shared settings under `T`'s
/// names; prints the error or help and exits like clap's `parse` does.
pub fn parse<T, I, A>(args: I) -> T
where
    T: BankSettings,
    I: IntoIterator<Item = A>,
    A: Into<OsString> + Clone,
{
    let names = T::NAMES;
    let defaults = [
        ("listen", names.listen),
        ("database_url", names.database_url),
        ("peer_url", names.peer_url),
        ("producer_group", names.producer_group),
        ("consumer_group", names.consumer_group),
    ];
    let command = T::command().mut_args(|arg| {
        let arg = match arg.get_env().and_then(|e| e.to_str()).filter(|e| e.contains('{')).map(|e| names.fill(e)) {
            // clap keeps `&'static str` names; each parse leaks a dozen short strings (a few per
            // process: startup, and each stack a test starts).
            Some(env) => arg.env(&*Box::leak(env.into_boxed_str())),
            None => arg,
        };
        match defaults.iter().find(|(id, _)| arg.get_id() == *id) {
            Some((_, v)) => arg.default_value(*v).required(false),
            None => arg,
        }
    });
    let matches = command.try_get_matches_from(args).unwrap_or_else(|e| e.exit());
    T::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
}
