//! Schema versions and upgrades: `datapilot-server migrate [--dry-run]`, the start-up refusal
//! of a database written by a newer release, and the check that `verify` and `backup` run on
//! a current schema (they never migrate on their own).
//!
//! The server still applies pending migrations when it starts (a one-process install upgrades
//! by replacing the binary), and logs each; the documented procedure (docs/operations.md:
//! backup, stop, upgrade, `migrate --dry-run`, `migrate`, `verify`, start) makes that step
//! explicit and checkable.

use std::path::Path;

use crate::cli::StorageArgs;

/// The applied schema version of a database and the one this build knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SchemaStatus {
    /// Migrations applied (0: a new, empty database).
    pub applied: usize,
    /// Migrations this build knows.
    pub known: usize,
}

impl SchemaStatus {
    pub fn newer_than_build(&self) -> bool {
        self.applied > self.known
    }
    /// The refusal for a database written by a newer release.
    pub fn newer_message(&self) -> String {
        format!(
            "the database was written by a newer datapilot-server (schema version {}; this build ({}) knows up to {}). \
             Downgrades are not supported: run the newer release again, or restore the backup taken before the upgrade \
             (docs/operations.md, \"Upgrades\")",
            self.applied,
            env!("CARGO_PKG_VERSION"),
            self.known
        )
    }
}

/// The schema status of the SQLite database at `path` (which must exist), read-only.
pub fn sqlite_status(path: &Path) -> Result<SchemaStatus, String> {
    let conn = rusqlite::Connection::open_with_flags(
        path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| format!("{}: {e}", path.display()))?;
    let has_table: bool = conn
        .query_row(
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'",
            [],
            |r| r.get::<_, i64>(0),
        )
        .map_err(|e| format!("{}: {e}", path.display()))?
        > 0;
    let applied = if has_table {
        conn.query_row(
            "SELECT COALESCE(MAX(version), 0) FROM schema_version",
            [],
            |r| r.get::<_, i64>(0),
        )
        .map_err(|e| format!("{}: {e}", path.display()))? as usize
    } else {
        0
    };
    Ok(SchemaStatus {
        applied,
        known: crate::store::sqlite::SCHEMA_VERSION,
    })
}

/// The schema status of the PostgreSQL database at `url`, read-only.
pub async fn postgres_status(url: &str) -> Result<SchemaStatus, String> {
    let (client, conn) = tokio::time::timeout(
        crate::store::postgres::CONNECT_TIMEOUT,
        tokio_postgres::connect(url, tokio_postgres::NoTls),
    )
    .await
    .map_err(|_| "database: connection timed out".to_string())?
    .map_err(|e| format!("database: {e}"))?;
    let task = tokio::spawn(conn);
    let exists: bool = client
        .query_one("SELECT to_regclass('schema_version') IS NOT NULL", &[])
        .await
        .map_err(|e| format!("database: {e}"))?
        .get(0);
    let applied = if exists {
        client
            .query_one("SELECT COALESCE(MAX(version), 0) FROM schema_version", &[])
            .await
            .map_err(|e| format!("database: {e}"))?
            .get::<_, i64>(0) as usize
    } else {
        0
    };
    drop(client);
    let _ = task.await;
    Ok(SchemaStatus {
        applied,
        known: crate::store::postgres::schema_version(),
    })
}

/// The schema status of the database `storage` names; `None` for a SQLite file that does not
/// exist yet.
pub async fn status(
    data_dir: &Path,
    database: Option<&str>,
) -> Result<Option<SchemaStatus>, String> {
    match database.filter(|d| !d.is_empty()) {
        Some(url) => postgres_status(url).await.map(Some),
        None => {
            let path = data_dir.join("datapilot.sqlite3");
            if !path.is_file() {
                return Ok(None);
            }
            tokio::task::spawn_blocking(move || sqlite_status(&path))
                .await
                .map_err(|e| e.to_string())?
                .map(Some)
        }
    }
}

/// Start-up: refuse a database written by a newer release, before anything touches it.
pub async fn refuse_newer(data_dir: &Path, database: Option<&str>) -> Result<(), String> {
    match status(data_dir, database).await? {
        Some(s) if s.newer_than_build() => Err(s.newer_message()),
        _ => Ok(()),
    }
}

/// For `verify` and `backup`: the schema must be exactly this build's (they never migrate).
pub async fn require_current_schema(storage: &StorageArgs) -> Result<(), String> {
    match status(&storage.data_dir, storage.database.as_deref()).await? {
        None => Ok(()), // open_existing reports the missing database
        Some(s) if s.newer_than_build() => Err(s.newer_message()),
        Some(s) if s.applied < s.known => Err(format!(
            "the database is at schema version {} and this build expects {}: run `datapilot-server migrate` first \
             (or use the release that wrote it)",
            s.applied, s.known
        )),
        Some(_) => Ok(()),
    }
}

/// `datapilot-server migrate [--dry-run]`.
pub async fn migrate(storage: &StorageArgs, dry_run: bool) -> Result<(), String> {
    let s = status(&storage.data_dir, storage.database.as_deref())
        .await?
        .ok_or_else(|| {
            format!(
                "{} holds no DataPilot database; nothing to migrate (the server creates one on first start)",
                storage.data_dir.display()
            )
        })?;
    if s.newer_than_build() {
        return Err(s.newer_message());
    }
    let backend = if storage.is_postgres() {
        "PostgreSQL"
    } else {
        "SQLite"
    };
    if s.applied == s.known {
        println!(
            "migrate: the {backend} schema is at version {} (current); nothing to do",
            s.applied
        );
        return Ok(());
    }
    let pending: Vec<String> = (s.applied + 1..=s.known).map(|v| v.to_string()).collect();
    if dry_run {
        println!(
            "migrate --dry-run: the {backend} schema is at version {}; this build would apply migration(s) {} to reach {}. \
             Nothing was changed. Take a backup first (`datapilot-server backup DEST`).",
            s.applied,
            pending.join(", "),
            s.known
        );
        return Ok(());
    }
    // Opening the repository applies the pending migrations, each in its own transaction.
    crate::app::open_repo_at(&storage.data_dir, storage.database.as_deref(), 2).await?;
    let after = status(&storage.data_dir, storage.database.as_deref())
        .await?
        .ok_or("the database vanished while migrating")?;
    println!(
        "migrate: the {backend} schema went from version {} to {}; now run `datapilot-server verify`",
        s.applied, after.applied
    );
    Ok(())
}
