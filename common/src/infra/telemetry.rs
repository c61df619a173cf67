//! Tracing set-up, once per process. `RUST_LOG` wins; the default keeps the RocketMQ
//! client's chatty INFO lines out.

use std::sync::Once;

use tracing_subscriber::EnvFilter;

/// Default filter: our crates at INFO, everything else at WARN — less three client modules
/// whose warnings are routine (a retry topic not routed before its first use, the consumer's
/// clean-expire task on shutdown).
pub const DEFAULT_FILTER: &str = "warn,common=info,bank1=info,bank2=info,bank_transfer=info,stack=info,\
    rocketmq_client_rust::implementation::mq_client_api_impl::route=error,\
    rocketmq_client_rust::factory::mq_client_instance=error,\
    rocketmq_client_rust::consumer::consumer_impl::consume_message_concurrently_service=error";

static INIT: Once = Once::new();

/// Installs a fmt subscriber on stderr. Calling it again is a no-op.
pub fn init(default_filter: &str) {
    INIT.call_once(|| {
        let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
        let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
        let _ =
            tracing_subscriber::fmt().with_env_filter(filter).with_ansi(ansi).with_writer(std::io::stderr).try_init();
    });
}
