//! Tracing set-up, once per process. `RUST_LOG` wins; the default keeps the RocketMQ
//! client's chatty INFO lines out.

use std::sync::Once;

use tracing_subscriber::EnvFilter;

/// Default filter: our crates at INFO, everything else at WARN.
pub const DEFAULT_FILTER: &str = "warn,bank1=info,bank2=info,bank_transfer=info";

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
