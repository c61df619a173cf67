//! bank2's settings: the ones every bank has ([`Common`], `BANK2_*` names), and its own. Each
//! is a flag with an environment variable (env wins in compose).

use clap::Parser;
use common::service::settings::Common;

#[derive(Debug, Clone, Parser)]
#[command(name = "bank2", about = "bank2: consumes transfer messages and credits the receiver exactly once")]
pub struct Settings {
    #[command(flatten)]
    pub common: Common,
    /// Consumer threads (messages handled at once).
    #[arg(long, env = "BANK2_CONSUME_THREADS", default_value_t = 16)]
    pub consume_threads: u32,
    /// Transfer messages credited together, in one database transaction (1: one at a time).
    /// A message that fails is retried alone; its batch-mates stay credited. A batch holds at
    /// most what one pull brings: the push consumer's pull batch, 32 in rocketmq-client 1.0.0.
    #[arg(long, env = "BANK2_CONSUME_BATCH", default_value_t = 32)]
    pub consume_batch: u32,
    /// Credit groups: the batches that the consume threads hold at the same moment are credited
    /// in one database transaction, at most this many batches in one (1: each batch commits
    /// alone). A batch still ends all or none. See docs/ARCHITECTURE.md, "Credit groups".
    #[arg(long, env = "BANK2_CREDIT_GROUP", default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub credit_group: u32,
    /// Fault injection by amount threshold (also live via `/admin/faults`).
    #[command(flatten)]
    pub faults: crate::faults::Faults,
}

common::bank_settings!(Settings: Bank2, faults = crate::faults::Faults, schema = crate::store::MIGRATORS);
