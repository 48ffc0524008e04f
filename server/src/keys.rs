//! The ledger signing key: one Ed25519 key that signs checkpoints and evidence envelopes.
//!
//! Kept as the hex of the 32-byte seed in `<data dir>/ledger.key`, created once with mode 0600
//! (never widened: the server refuses to start if group or others can read it). The key name
//! is the ledger origin, and its C2SP note verifier string
//! `<name>+<hex key id>+<base64(0x01 || public key)>` is what clients pin. The ledger records
//! that string at its creation, and the server refuses to start when the key file is missing
//! or holds another key: it never replaces the key of an existing ledger.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use datapilot::checkpoint::{Checkpoint, Signer};

use crate::checkpoint::Published;
use crate::util::random_bytes;

/// The server's ledger key, as the SDK's C2SP note signer (the same code verifies it).
#[derive(Debug)]
pub struct LedgerKey {
    signer: Signer,
    /// The largest checkpoint this key has published, kept beside it (see `crate::checkpoint`).
    published: Published,
    /// The witnesses its checkpoints are submitted to (see `crate::witness`).
    witnesses: crate::witness::Witnesses,
}

impl LedgerKey {
    /// Load the key at `path`, which must exist (mode 0600 or stricter).
    pub fn load(path: &Path, name: &str) -> std::io::Result<Self> {
        Self::from_seed(path, name, &read_seed(path)?)
    }

    /// Create a new random key at `path`, which must not exist. The seed is written to a
    /// temporary file created with mode 0600 (never readable by others, not even briefly),
    /// fsynced, renamed into place, and the directory fsynced: a crash leaves either no key or
    /// the whole key, never a partial one.
    pub fn create(path: &Path, name: &str) -> std::io::Result<Self> {
        Self::from_seed(path, name, &create_seed(path)?)
    }

    fn from_seed(path: &Path, name: &str, seed: &[u8; 32]) -> std::io::Result<Self> {
        let signer = Signer::from_seed(name, seed)
            .map_err(|e| std::io::Error::other(format!("invalid origin as a key name: {e}")))?;
        let dir = path.parent().unwrap_or(Path::new("."));
        Ok(LedgerKey {
            signer,
            published: Published::in_dir(dir),
            witnesses: Default::default(),
        })
    }

    /// This key, submitting the checkpoints it publishes to `witnesses`.
    pub fn with_witnesses(mut self, witnesses: crate::witness::Witnesses) -> Self {
        self.witnesses = witnesses;
        self
    }

    /// The witnesses its checkpoints are submitted to.
    pub fn witnesses(&self) -> &crate::witness::Witnesses {
        &self.witnesses
    }

    /// The record of the largest checkpoint this key has published.
    pub fn published(&self) -> &Published {
        &self.published
    }

    pub fn name(&self) -> &str {
        self.signer.name()
    }

    pub fn public_key(&self) -> [u8; 32] {
        self.signer.verifier().public_key()
    }

    /// The public key as an RFC 8410 SubjectPublicKeyInfo in PEM: the fixed DER prefix of an
    /// Ed25519 key (`SEQUENCE { SEQUENCE { OID 1.3.101.112 } BIT STRING }`), then the key.
    pub fn public_key_pem(&self) -> String {
        public_key_pem(&self.public_key())
    }

    /// C2SP key id (`SHA-256(name || 0x0A || 0x01 || public key)[:4]`) as 8 hex characters.
    pub fn key_id_hex(&self) -> String {
        self.signer.key_id_hex()
    }

    /// The note verifier string clients pin.
    pub fn verifier(&self) -> String {
        self.signer.verifier_string()
    }

    pub fn signer(&self) -> &Signer {
        &self.signer
    }

    /// The signed C2SP checkpoint of a tree head. Ed25519 signatures are deterministic, so
    /// the same head always gives the same bytes (evidence bundles rely on this).
    pub fn checkpoint(&self, tree_size: u64, root: [u8; 32]) -> String {
        Checkpoint {
            origin: self.name().to_string(),
            tree_size,
            root_hash: root,
            extensions: Vec::new(),
        }
        .sign(&self.signer)
        .expect("the origin was validated as a key name at start-up")
    }
}

/// The seed in the key file at `path` (which must be mode 0600 or stricter).
fn read_seed(path: &Path) -> std::io::Result<[u8; 32]> {
    let mode = std::fs::metadata(path)?.permissions().mode();
    if mode & 0o077 != 0 {
        return Err(std::io::Error::other(format!(
            "{} is readable by group or others (mode {:o}); chmod 600 it",
            path.display(),
            mode & 0o777
        )));
    }
    let text = std::fs::read_to_string(path)?;
    let raw = hex::decode(text.trim())
        .map_err(|e| std::io::Error::other(format!("{} is not hex: {e}", path.display())))?;
    raw.try_into()
        .map_err(|_| std::io::Error::other(format!("{} must hold 32 bytes of hex", path.display())))
}

/// A new random seed written to `path`, which must not exist. The seed is written to a
/// temporary file created with mode 0600 (never readable by others, not even briefly),
/// fsynced, renamed into place, and the directory fsynced: a crash leaves either no key or
/// the whole key, never a partial one.
fn create_seed(path: &Path) -> std::io::Result<[u8; 32]> {
    let dir = path
        .parent()
        .ok_or_else(|| std::io::Error::other("the key path has no directory"))?;
    if path.exists() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::AlreadyExists,
            format!("{} exists", path.display()),
        ));
    }
    let seed = random_bytes::<32>();
    let tmp = dir.join(format!(
        ".ledger.key.{}.tmp",
        hex::encode(random_bytes::<8>())
    ));
    let written = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(hex::encode(seed).as_bytes())?;
        f.write_all(b"\n")?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(dir)?.sync_all()
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    Ok(seed)
}

/// An Ed25519 public key as an RFC 8410 SubjectPublicKeyInfo in PEM: the fixed DER prefix
/// (`SEQUENCE { SEQUENCE { OID 1.3.101.112 } BIT STRING }`), then the key.
pub fn public_key_pem(public_key: &[u8; 32]) -> String {
    use base64::Engine;
    const SPKI_ED25519_PREFIX: [u8; 12] = [
        0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
    ];
    let der = [&SPKI_ED25519_PREFIX[..], public_key].concat();
    format!(
        "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
        base64::engine::general_purpose::STANDARD.encode(der)
    )
}

/// `ledger.key.next`: the new key of a rotation in progress.
fn next_path(path: &Path) -> std::path::PathBuf {
    path.with_extension("key.next")
}

/// Move the retired key aside (`ledger.key.retired-<key id>`) and `ledger.key.next` into its
/// place, then fsync the directory.
fn swap_in_next(path: &Path, old: &LedgerKey) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let retired = dir.join(format!("ledger.key.retired-{}", old.key_id_hex()));
    std::fs::rename(path, &retired)?;
    std::fs::rename(next_path(path), path)?;
    std::fs::File::open(dir)?.sync_all()
}

/// Rotate the ledger key (`--rotate-key`): a new key is written to `ledger.key.next`; the
/// ledger records the rotation (`key.rotate` event, key history, current verifier); the old
/// key signs the checkpoint that includes that event (so the rotation is signed by the key it
/// retires, and published beside the key); then the new key takes `ledger.key`'s place and the
/// old one is kept as `ledger.key.retired-<key id>`. A crash at any point leaves either the old
/// key current (no database change yet; `ledger.key.next` is reused) or a rotation that the
/// next start finishes.
pub async fn rotate(
    path: &Path,
    old: LedgerKey,
    store: &crate::store::Store,
) -> Result<LedgerKey, String> {
    let next = next_path(path);
    let seed = if next.exists() {
        read_seed(&next)
    } else {
        create_seed(&next)
    }
    .map_err(|e| format!("new ledger key: {e}"))?;
    let new = LedgerKey::from_seed(path, old.name(), &seed).map_err(|e| format!("new key: {e}"))?;
    let size = store
        .rotate_key(old.verifier(), new.verifier())
        .await
        .map_err(|e| format!("recording the key rotation: {e}"))?;
    crate::checkpoint::signed(store, &old, Some(size))
        .await
        .map_err(|e| format!("signing the rotation with the old key: {e}"))?;
    swap_in_next(path, &old).map_err(|e| format!("swapping the key files: {e}"))?;
    tracing::info!(old = %old.verifier(), new = %new.verifier(), retired_at_size = size,
        "ledger key rotated");
    crate::checkpoint::check_published(&new, store).await?;
    Ok(new)
}

/// The origin every install of earlier releases defaulted to: it names no one log, so a new
/// ledger may not take it (existing ledgers that use it keep it).
pub const LEGACY_SHARED_ORIGIN: &str = "datapilot.local/ledger";

/// The origin of a new ledger whose operator named none: unique to its key, since it carries
/// the first 8 bytes of SHA-256 over the public key (the key id itself is computed over the
/// name, so it cannot be part of the name).
pub fn derived_origin(public_key: &[u8; 32]) -> String {
    use sha2::Digest;
    let fp = sha2::Sha256::digest(public_key);
    format!("datapilot.local/ledger/{}", hex::encode(&fp[..8]))
}

/// The ledger key and origin for the data directory's `ledger.key`.
///
/// An existing ledger keeps the origin and key it recorded at its creation: `--origin`, if
/// given, must be that origin, and a missing key file or another key is a refusal to start,
/// never a silent replacement (checkpoints signed by a new key would not verify against the
/// key clients pinned, and old ones could no longer be extended). A new ledger gets a new key
/// (unless one is already there) and the origin given, else one derived from the key.
pub async fn open_ledger_key(
    path: &Path,
    origin: Option<&str>,
    store: &crate::store::Store,
) -> Result<LedgerKey, String> {
    let origin = origin.map(str::trim).filter(|o| !o.is_empty());
    let recorded = store
        .ledger_verifier()
        .await
        .map_err(|e| format!("database: {e}"))?;
    let Some(recorded) = recorded else {
        let seed = if path.exists() {
            read_seed(path)
        } else {
            create_seed(path)
        }
        .map_err(|e| format!("ledger key: {e}"))?;
        let origin = match origin {
            Some(LEGACY_SHARED_ORIGIN) => {
                return Err(format!(
                    "--origin {LEGACY_SHARED_ORIGIN:?} was every earlier install's default and \
                     names no one log; give this ledger its own origin (e.g. \
                     ml.corp.example/datapilot) or leave --origin unset to derive one from its key"
                ))
            }
            Some(o) => o.to_string(),
            None => {
                let public = Signer::from_seed("origin", &seed)
                    .map_err(|e| format!("ledger key: {e}"))?
                    .verifier()
                    .public_key();
                derived_origin(&public)
            }
        };
        return LedgerKey::from_seed(path, &origin, &seed).map_err(|e| format!("ledger key: {e}"));
    };
    let recorded_origin = recorded.split('+').next().unwrap_or("");
    if let Some(o) = origin.filter(|o| *o != recorded_origin) {
        return Err(format!(
            "this ledger's origin is {recorded_origin:?}, not {o:?}; the origin cannot change \
             (leave --origin unset to use the recorded one)"
        ));
    }
    if !path.exists() {
        return Err(format!(
            "{} is missing, but this data directory holds a ledger signed by {recorded}; \
             restore ledger.key from a backup (the server never creates a new key for an \
             existing ledger)",
            path.display()
        ));
    }
    let mut key = LedgerKey::load(path, recorded_origin).map_err(|e| format!("ledger key: {e}"))?;
    let next = next_path(path);
    if key.verifier() != recorded && next.exists() {
        // A rotation that stopped after the database recorded it: finish the key swap.
        let new =
            LedgerKey::load(&next, recorded_origin).map_err(|e| format!("ledger key: {e}"))?;
        if new.verifier() == recorded {
            swap_in_next(path, &key).map_err(|e| format!("finishing a key rotation: {e}"))?;
            key = new;
        }
    }
    if key.verifier() != recorded {
        let retired = store
            .key_history()
            .await
            .map_err(|e| format!("database: {e}"))?
            .into_iter()
            .find(|k| k.verifier == key.verifier());
        if let Some(k) = retired {
            return Err(format!(
                "{} holds the key {}, which was retired at tree size {} (key.rotate); this \
                 ledger is now signed by {recorded}: copy the current ledger.key here",
                path.display(),
                key.verifier(),
                k.retired_at_size
            ));
        }
        return Err(format!(
            "{} holds the key {}, but this ledger is signed by {recorded}; restore the \
             original ledger.key from a backup",
            path.display(),
            key.verifier()
        ));
    }
    Ok(key)
}
