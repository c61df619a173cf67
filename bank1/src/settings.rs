//! bank1's settings: the ones every bank has ([`Common`], `BANK1_*` names), and its own. Each
//! is a flag with an environment variable (env wins in compose).

use clap::Parser;
use common::service::settings::Common;

#[derive(Debug, Clone, Parser)]
#[command(
    name = "bank1",
    about = "bank1: debits the sender and publishes the transfer as a RocketMQ transactional message"
)]
pub struct Settings {
    #[command(flatten)]
    pub common: Common,
    /// An Idempotency-Key claimed this long ago whose transfer never began (the request died
    /// between the claim and the half message) is settled and may be retried (e.g. 30s).
    #[arg(long, env = "BANK1_IDEMPOTENCY_CLAIM_TIMEOUT", default_value = "30s", value_parser = common::infra::clock::parse_duration)]
    pub idempotency_claim_timeout: std::time::Duration,
    /// Debits that arrive together commit together: at most this many local transactions
    /// share one database transaction (each under its own savepoint) and one commit, so one
    /// fsync on SQLite (1: each debit commits alone). See docs/ARCHITECTURE.md, "Group commit".
    #[arg(long, env = "BANK1_DEBIT_GROUP", default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub debit_group: u32,
    /// Fault injection by amount threshold (also live via `/admin/faults`).
    #[command(flatten)]
    pub faults: crate::faults::Faults,
}

common::bank_settings!(Settings: Bank1, faults = crate::faults::Faults, schema = crate::store::MIGRATORS);

#[cfg(test)]
mod tests {
    use common::infra::mq;
    use common::service::settings::parse;

    use super::*;

    #[test]
    fn shared_settings_get_bank1_defaults_and_flags_win() {
        let s: Settings = parse(["bank1", "--consumer-group", "g", "--reconcile-interval", "5s"]);
        assert_eq!(s.common.listen.to_string(), "127.0.0.1:56081");
        assert_eq!(s.common.peer_url, "http://127.0.0.1:56082");
        assert_eq!(s.common.producer_group, mq::DEFAULT_PRODUCER_GROUP);
        assert_eq!(s.common.consumer_group, "g");
        assert_eq!(s.common.reconcile_interval, std::time::Duration::from_secs(5));
        assert_eq!(s.idempotency_claim_timeout, std::time::Duration::from_secs(30));
        assert_eq!(s.debit_group, 32);
    }
}
