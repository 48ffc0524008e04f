//! `datapilot-server`: the reference DataPilot control plane. See `docs/server.md`.

use clap::Parser;
use datapilot_server::config::Config;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() {
    let config = Config::parse();
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(config.log.clone()));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    if let Err(e) = datapilot_server::app::run(config).await {
        eprintln!("datapilot-server: {e:#}");
        std::process::exit(1);
    }
}
