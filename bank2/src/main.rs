#![recursion_limit = "512"]

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    common::telemetry::init(common::telemetry::DEFAULT_FILTER);
    let settings = bank2::Settings::parse();
    let app = bank2::App::build(settings).await?;
    app.run_until(common::shutdown::shutdown_signal()).await
}
