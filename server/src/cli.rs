//! Operator subcommands: `datapilot-server <command> …` next to plain `datapilot-server [flags]`,
//! which serves (see [`crate::config::Config`]).
//!
//! Each command opens the same data directory and database the server would (same flags and
//! environment variables), prints one readable line on failure and exits non-zero, so they fit
//! scripts, cron jobs and systemd units. See docs/operations.md.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::store::Store;

/// Operator commands of the DataPilot reference server.
#[derive(Parser, Debug)]
#[command(name = "datapilot-server", version)]
pub struct OpsCli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Mint a new admin token for an existing ledger (when the bootstrap token is lost).
    /// Needs the data directory; recorded in the audit ledger. Prints the secret on stdout.
    AdminToken {
        #[command(flatten)]
        storage: StorageArgs,
        /// Name of the new token.
        #[arg(long, default_value = "admin-recovery")]
        name: String,
    },
    /// Copy a SQLite data directory consistently while the server runs: database snapshot
    /// (VACUUM INTO), the blobs it refers to (hash-checked), the ledger key, BACKUP.json.
    Backup {
        #[command(flatten)]
        storage: StorageArgs,
        /// New (or empty) directory to write the backup to.
        dest: PathBuf,
    },
    /// Restore a backup into a new data directory, then verify it.
    Restore {
        #[command(flatten)]
        storage: StorageArgs,
        /// A directory written by `backup`.
        src: PathBuf,
        /// Skip the verification after restoring.
        #[arg(long)]
        no_verify: bool,
    },
    /// Re-check everything stored: every ledger entry against its row and leaf, every Merkle
    /// node, every signed checkpoint (signature, root, consistency) and every blob against its
    /// digest. Exit status 0: all verified; 1: problems found (listed); 2: could not run.
    Verify {
        #[command(flatten)]
        storage: StorageArgs,
        /// Do not read the blobs (the ledger checks only).
        #[arg(long)]
        skip_blobs: bool,
    },
    /// Apply pending schema migrations (the server also applies them at start).
    Migrate {
        #[command(flatten)]
        storage: StorageArgs,
        /// Only say which migrations would be applied; change nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

/// Where the data is: the same flags and variables as the server's.
#[derive(Args, Debug, Clone)]
pub struct StorageArgs {
    /// The server's data directory (ledger key; SQLite database and blobs by default).
    #[arg(long, env = "DATAPILOT_DATA_DIR")]
    pub data_dir: PathBuf,
    /// `postgres://…` when the server runs on PostgreSQL (prefer the environment variable).
    #[arg(long, env = "DATAPILOT_DATABASE_URL", hide_env_values = true)]
    pub database: Option<String>,
    /// The artifact store, as given to the server (`s3://…` or a directory).
    #[arg(long, env = "DATAPILOT_BLOBS")]
    pub blobs: Option<String>,
}

impl StorageArgs {
    /// True when the metadata is in PostgreSQL.
    pub fn is_postgres(&self) -> bool {
        self.database.as_deref().is_some_and(|d| !d.is_empty())
    }

    /// The SQLite database file (meaningful when not on PostgreSQL).
    pub fn sqlite_path(&self) -> PathBuf {
        self.data_dir.join("datapilot.sqlite3")
    }

    /// The store of an existing ledger; never creates one (an empty or wrong directory is an
    /// error, not a new ledger).
    pub async fn open_existing(&self) -> Result<Store, String> {
        if !self.is_postgres() && !self.sqlite_path().is_file() {
            return Err(format!(
                "{} holds no DataPilot database ({} is missing); point --data-dir at the server's data directory",
                self.data_dir.display(),
                self.sqlite_path().display()
            ));
        }
        let repo = crate::app::open_repo_at(
            &self.data_dir,
            self.database.as_deref(),
            crate::store::postgres::DEFAULT_POOL_SIZE.min(4),
        )
        .await?;
        let store = Store::new(repo);
        match store.ledger_verifier().await {
            Ok(Some(_)) => Ok(store),
            Ok(None) => {
                Err("this database holds no ledger yet: start the server once to create it".into())
            }
            Err(e) => Err(format!("database: {e}")),
        }
    }
}

/// True if `arg` (the first command-line argument) names an operator command.
pub fn is_command(arg: &str) -> bool {
    use clap::CommandFactory;
    OpsCli::command()
        .get_subcommands()
        .any(|c| c.get_name() == arg)
        || arg == "help"
}

/// Run an operator command; the process exit status.
pub async fn run(cli: OpsCli) -> i32 {
    let r = match cli.command {
        Command::AdminToken { storage, name } => crate::admin::admin_token(&storage, &name).await,
        Command::Backup { storage, dest } => crate::backup::backup(&storage, &dest).await,
        Command::Restore {
            storage,
            src,
            no_verify,
        } => match crate::backup::restore(&storage, &src).await {
            Ok(()) if !no_verify => return crate::verify::run(&storage, false).await,
            other => other,
        },
        Command::Verify {
            storage,
            skip_blobs,
        } => return crate::verify::run(&storage, skip_blobs).await,
        Command::Migrate { storage, dry_run } => crate::upgrade::migrate(&storage, dry_run).await,
    };
    match r {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("datapilot-server: {e}");
            1
        }
    }
}
