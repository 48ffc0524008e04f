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

use crate::util::random_bytes;

/// The server's ledger key, as the SDK's C2SP note signer (the same code verifies it).
#[derive(Debug)]
pub struct LedgerKey {
    signer: Signer,
}

impl LedgerKey {
    /// Load the key at `path`, which must exist (mode 0600 or stricter).
    pub fn load(path: &Path, name: &str) -> std::io::Result<Self> {
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
        let seed: [u8; 32] = raw.try_into().map_err(|_| {
            std::io::Error::other(format!("{} must hold 32 bytes of hex", path.display()))
        })?;
        Self::from_seed(name, &seed)
    }

    /// Create a new random key at `path`, which must not exist. The seed is written to a
    /// temporary file created with mode 0600 (never readable by others, not even briefly),
    /// fsynced, renamed into place, and the directory fsynced: a crash leaves either no key or
    /// the whole key, never a partial one.
    pub fn create(path: &Path, name: &str) -> std::io::Result<Self> {
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
        let key = Self::from_seed(name, &seed)?;
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
        Ok(key)
    }

    fn from_seed(name: &str, seed: &[u8; 32]) -> std::io::Result<Self> {
        let signer = Signer::from_seed(name, seed)
            .map_err(|e| std::io::Error::other(format!("invalid origin as a key name: {e}")))?;
        Ok(LedgerKey { signer })
    }

    pub fn name(&self) -> &str {
        self.signer.name()
    }

    pub fn public_key(&self) -> [u8; 32] {
        self.signer.verifier().public_key()
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
