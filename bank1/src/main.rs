#![recursion_limit = "512"]

fn main() -> anyhow::Result<()> {
    common::service::app::main::<bank1::AppState>()
}
