//! `datapilot-server`: the reference DataPilot control plane. See `docs/server.md`.
//!
//! `datapilot-server [flags]` serves; `datapilot-server <command> …` runs an operator command
//! (admin-token, backup, restore, verify, migrate; see `datapilot_server::cli` and
//! docs/operations.md).

use clap::Parser;
use datapilot_server::config::{init_logging, Config, LogFormat};

#[tokio::main]
async fn main() {
    let first = std::env::args().nth(1).unwrap_or_default();
    if datapilot_server::cli::is_command(&first) {
        let cli = datapilot_server::cli::OpsCli::parse();
        init_logging("warn", LogFormat::Text);
        std::process::exit(datapilot_server::cli::run(cli).await);
    }
    let config = Config::parse();
    init_logging(&config.log, config.log_format);
    if let Err(e) = datapilot_server::app::run(config).await {
        eprintln!("datapilot-server: {e:#}");
        std::process::exit(1);
    }
}
