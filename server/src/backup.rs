//! `datapilot-server backup DEST` and `datapilot-server restore SRC`: a consistent copy of a
//! SQLite data directory, taken while the server runs, with no other tool.
//!
//! The database is copied with SQLite's `VACUUM INTO`, which reads one snapshot (a read
//! transaction on the WAL: writers carry on, and the copy holds exactly the commits before it
//! started, never half a write). Then the blobs **that snapshot refers to** are copied, each
//! hashed on the way (a corrupt source blob fails the backup rather than being copied
//! silently); blobs uploaded after the snapshot are not needed by it. Then the ledger key
//! (mode 0600), and a `BACKUP.json` describing what was taken. Blobs are immutable and
//! content-addressed, so copying them after the database snapshot is consistent.
//!
//! On PostgreSQL the database is backed up with PostgreSQL's own tools (`pg_dump`, or base
//! backups with WAL archiving for point-in-time recovery) and S3 blobs by the store's
//! versioning or replication; see docs/operations.md. `verify` checks either kind.

use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde_json::json;
use sha2::{Digest, Sha256};

use crate::cli::StorageArgs;

const DB_FILE: &str = "datapilot.sqlite3";
const KEY_FILE: &str = "ledger.key";
const MANIFEST: &str = "BACKUP.json";

/// The path of blob `sha` under a blob directory (`sha256/ab/abcd…`).
fn blob_path(blob_dir: &Path, sha: &str) -> PathBuf {
    blob_dir.join("sha256").join(&sha[..2]).join(sha)
}

/// The local blob directory `storage` uses, or an error for an S3 store.
fn local_blob_dir(storage: &StorageArgs) -> Result<Option<PathBuf>, String> {
    match storage.blobs.as_deref().filter(|b| !b.is_empty()) {
        None => Ok(Some(storage.data_dir.join("blobs"))),
        Some(s) if s.starts_with("s3://") => Ok(None),
        Some(dir) => Ok(Some(PathBuf::from(dir))),
    }
}

fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Copy `from` to `to` (created new, `mode`), hashing the bytes; fsynced. The SHA-256 and size.
fn copy_hashed(from: &Path, to: &Path, mode: u32) -> std::io::Result<(String, u64)> {
    let mut src = std::fs::File::open(from)?;
    let mut dst = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(to)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        let k = src.read(&mut buf)?;
        if k == 0 {
            break;
        }
        h.update(&buf[..k]);
        dst.write_all(&buf[..k])?;
        n += k as u64;
    }
    dst.sync_all()?;
    Ok((hex::encode(h.finalize()), n))
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// Distinct blobs the SQLite database at `db` refers to: `(sha256, size)`.
fn referenced_blobs(db: &Path) -> Result<Vec<(String, u64)>, String> {
    let conn =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(|e| format!("{}: {e}", db.display()))?;
    let mut st = conn
        .prepare("SELECT sha256, MAX(size) FROM artifacts GROUP BY sha256 ORDER BY sha256")
        .map_err(|e| e.to_string())?;
    let rows = st
        .query_map([], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64))
        })
        .map_err(|e| e.to_string())?;
    rows.collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())
}

/// One value from the SQLite database at `db`.
fn query_text(db: &Path, sql: &str) -> Result<String, String> {
    let conn =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(|e| format!("{}: {e}", db.display()))?;
    conn.query_row(sql, [], |r| {
        let v: rusqlite::types::Value = r.get(0)?;
        Ok(match v {
            rusqlite::types::Value::Integer(i) => i.to_string(),
            rusqlite::types::Value::Text(t) => t,
            other => format!("{other:?}"),
        })
    })
    .map_err(|e| format!("{}: {e}", db.display()))
}

/// `DEST` must not exist, or be an empty directory: a backup never mixes with another.
fn prepare_dest(dest: &Path) -> Result<(), String> {
    if dest.exists() {
        let empty = std::fs::read_dir(dest)
            .map_err(|e| format!("{}: {e}", dest.display()))?
            .next()
            .is_none();
        if !empty {
            return Err(format!(
                "{} exists and is not empty; back up into a new directory",
                dest.display()
            ));
        }
    }
    std::fs::create_dir_all(dest).map_err(|e| format!("creating {}: {e}", dest.display()))?;
    // The backup holds the signing key: private, like the data directory.
    std::fs::set_permissions(dest, std::fs::Permissions::from_mode(0o700))
        .map_err(|e| format!("{}: {e}", dest.display()))
}

/// `datapilot-server backup DEST`.
pub async fn backup(storage: &StorageArgs, dest: &Path) -> Result<(), String> {
    if storage.is_postgres() {
        return Err(
            "the database is PostgreSQL: back it up with pg_dump or base backups + WAL archiving \
             (docs/operations.md, \"PostgreSQL\"); `backup` copies SQLite data directories"
                .into(),
        );
    }
    crate::upgrade::require_current_schema(storage).await?;
    // Refuses an empty or foreign directory before DEST is created.
    drop(storage.open_existing().await?);
    let (storage, dest) = (storage.clone(), dest.to_path_buf());
    tokio::task::spawn_blocking(move || backup_blocking(&storage, &dest))
        .await
        .map_err(|e| e.to_string())?
}

fn backup_blocking(storage: &StorageArgs, dest: &Path) -> Result<(), String> {
    let started = std::time::Instant::now();
    prepare_dest(dest)?;
    let db_dest = dest.join(DB_FILE);
    eprintln!(
        "backup: database snapshot (VACUUM INTO) -> {}",
        db_dest.display()
    );
    {
        let conn = rusqlite::Connection::open(storage.sqlite_path())
            .map_err(|e| format!("{}: {e}", storage.sqlite_path().display()))?;
        conn.busy_timeout(std::time::Duration::from_secs(30))
            .map_err(|e| e.to_string())?;
        let target = db_dest
            .to_str()
            .ok_or("the destination path is not UTF-8")?;
        conn.execute("VACUUM INTO ?1", [target])
            .map_err(|e| format!("VACUUM INTO {}: {e}", db_dest.display()))?;
    }
    std::fs::set_permissions(&db_dest, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| e.to_string())?;
    std::fs::File::open(&db_dest)
        .and_then(|f| f.sync_all())
        .map_err(|e| e.to_string())?;
    let ledger_size = query_text(&db_dest, "SELECT size FROM ledger_state WHERE id = 1")?;
    let verifier =
        query_text(&db_dest, "SELECT value FROM meta WHERE key = 'verifier'").unwrap_or_default();

    let blobs = referenced_blobs(&db_dest)?;
    let mut blob_bytes = 0u64;
    let mut blob_note = "copied";
    match local_blob_dir(storage)? {
        None => {
            blob_note =
                "not copied: they are in the S3 store (use bucket versioning or replication)";
            eprintln!("backup: {} blobs {blob_note}", blobs.len());
        }
        Some(src_dir) => {
            let dst_dir = dest.join("blobs");
            let total = blobs.len();
            for (i, (sha, size)) in blobs.iter().enumerate() {
                if !is_sha256_hex(sha) {
                    return Err(format!(
                        "the database names a malformed blob digest {sha:?}"
                    ));
                }
                let to = blob_path(&dst_dir, sha);
                std::fs::create_dir_all(to.parent().expect("has a parent"))
                    .map_err(|e| e.to_string())?;
                let from = blob_path(&src_dir, sha);
                let (actual, n) = copy_hashed(&from, &to, 0o600)
                    .map_err(|e| format!("blob {sha} ({}): {e}", from.display()))?;
                if actual != *sha || n != *size {
                    return Err(format!(
                        "blob {sha} in {} is corrupt ({n} bytes hashing to {actual}); the backup in {} is incomplete. \
                         Run `datapilot-server verify` on the data directory",
                        from.display(),
                        dest.display()
                    ));
                }
                blob_bytes += n;
                if (i + 1) % 500 == 0 || i + 1 == total {
                    eprintln!("backup: blobs {}/{total}", i + 1);
                }
            }
            if total > 0 {
                for d in std::fs::read_dir(dst_dir.join("sha256")).map_err(|e| e.to_string())? {
                    sync_dir(&d.map_err(|e| e.to_string())?.path()).map_err(|e| e.to_string())?;
                }
            }
        }
    }
    let key = storage.data_dir.join(KEY_FILE);
    copy_hashed(&key, &dest.join(KEY_FILE), 0o600)
        .map_err(|e| format!("{}: {e}", key.display()))?;
    let manifest = json!({
        "format": "datapilot-backup-1",
        "server_version": env!("CARGO_PKG_VERSION"),
        "schema_version": crate::store::sqlite::SCHEMA_VERSION,
        "created_at": crate::util::now_str(),
        "ledger_size": ledger_size.parse::<u64>().unwrap_or(0),
        "verifier": verifier,
        "blobs": blobs.len(),
        "blob_bytes": blob_bytes,
        "blobs_note": blob_note,
    });
    std::fs::write(
        dest.join(MANIFEST),
        serde_json::to_vec_pretty(&manifest).expect("JSON"),
    )
    .map_err(|e| e.to_string())?;
    sync_dir(dest).map_err(|e| e.to_string())?;
    println!(
        "backup: {} — ledger size {ledger_size}, {} blobs ({blob_bytes} bytes) {blob_note}, ledger.key, in {:.1} s",
        dest.display(),
        blobs.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// `datapilot-server restore SRC --data-dir DIR`: into a data directory that holds no ledger.
pub async fn restore(storage: &StorageArgs, src: &Path) -> Result<(), String> {
    if storage.is_postgres() {
        return Err(
            "the database is PostgreSQL: restore it with pg_restore or PITR (docs/operations.md); \
             `restore` writes SQLite data directories"
                .into(),
        );
    }
    let (storage, src) = (storage.clone(), src.to_path_buf());
    tokio::task::spawn_blocking(move || restore_blocking(&storage, &src))
        .await
        .map_err(|e| e.to_string())?
}

fn restore_blocking(storage: &StorageArgs, src: &Path) -> Result<(), String> {
    for f in [DB_FILE, KEY_FILE, MANIFEST] {
        if !src.join(f).is_file() {
            return Err(format!(
                "{} is not a DataPilot backup: {f} is missing",
                src.display()
            ));
        }
    }
    let dir = &storage.data_dir;
    for f in [DB_FILE, KEY_FILE] {
        if dir.join(f).exists() {
            return Err(format!(
                "{} already holds {f}; restore into a new data directory (move the old one aside first)",
                dir.display()
            ));
        }
    }
    std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .map_err(|e| e.to_string())?;
    // The database last, under a temporary name: a restore cut short leaves no database, so
    // it cannot be started half-restored.
    copy_hashed(&src.join(KEY_FILE), &dir.join(KEY_FILE), 0o600)
        .map_err(|e| format!("ledger.key: {e}"))?;
    let blobs = referenced_blobs(&src.join(DB_FILE))?;
    let mut copied = 0usize;
    if let Some(dst_dir) = local_blob_dir(storage)? {
        let src_dir = src.join("blobs");
        for (sha, _) in &blobs {
            if !is_sha256_hex(sha) {
                return Err(format!("the backup names a malformed blob digest {sha:?}"));
            }
            let from = blob_path(&src_dir, sha);
            if !from.exists() {
                continue; // an S3 install's backup: verify reports what is missing
            }
            let to = blob_path(&dst_dir, sha);
            if to.exists() {
                continue;
            }
            std::fs::create_dir_all(to.parent().expect("has a parent"))
                .map_err(|e| e.to_string())?;
            copy_hashed(&from, &to, 0o600).map_err(|e| format!("blob {sha}: {e}"))?;
            copied += 1;
        }
    }
    let tmp = dir.join(".datapilot.sqlite3.restore.tmp");
    let _ = std::fs::remove_file(&tmp);
    copy_hashed(&src.join(DB_FILE), &tmp, 0o600).map_err(|e| format!("database: {e}"))?;
    std::fs::rename(&tmp, dir.join(DB_FILE)).map_err(|e| e.to_string())?;
    sync_dir(dir).map_err(|e| e.to_string())?;
    println!(
        "restore: {} -> {} (database, ledger.key, {copied} blobs); run `datapilot-server verify --data-dir {}` before starting the server",
        src.display(),
        dir.display(),
        dir.display()
    );
    Ok(())
}
