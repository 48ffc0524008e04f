//! `datapilot-server`: the reference DataPilot control plane. See `docs/server.md`.
//!
//! `datapilot-server [flags]` serves; `datapilot-server <command> …` runs an operator command
//! (admin-token, …; see `datapilot_server::cli` and docs/operations.md).

use clap::Parser;
use datapilot_server::config::Config;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() {
    let first = std::env::args().nth(1).unwrap_or_default();
    if datapilot_server::cli::is_command(&first) {
        let cli = datapilot_server::cli::OpsCli::parse();
        let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn"));
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .init();
        std::process::exit(datapilot_server::cli::run(cli).await);
    }
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
