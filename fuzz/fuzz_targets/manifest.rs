//! DPM-1 manifests (`datapilot::manifest`) as the server receives them: JSON
//! `{ "digest", "files": [{ "path", "sha256", "size" }] }` (or a bare file list), and the input
//! itself as one path.
//!
//! Properties: the digest is SHA-256 of the `sha256sum` listing, recomputed here independently
//! and in any input order; the client-side builder agrees with the server's strict path for
//! canonical input; path normalisation is idempotent and yields paths the strict check accepts,
//! and leaves canonical paths unchanged.

#![no_main]

use datapilot::manifest::{
    dataset_digest, normalize_path, validate_digest, validate_path, FileEntry, Manifest,
    ManifestBuilder, DIGEST_PREFIX,
};
use libfuzzer_sys::fuzz_target;
use serde::Deserialize;
use sha2::{Digest, Sha256};

#[derive(Deserialize)]
struct Submitted {
    digest: String,
    files: Vec<FileEntry>,
}

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        check_path(text);
    }
    let (claimed, files) = match serde_json::from_slice::<Submitted>(data) {
        Ok(s) => (Some(s.digest), s.files),
        Err(_) => match serde_json::from_slice::<Vec<FileEntry>>(data) {
            Ok(files) => (None, files),
            Err(_) => return,
        },
    };
    for f in &files {
        check_path(&f.path);
    }
    let manifest = Manifest::from_entries(files.clone());
    let mut reversed = files.clone();
    reversed.reverse();
    assert_eq!(
        dataset_digest(&reversed).ok().as_deref(),
        manifest.as_ref().ok().map(Manifest::digest),
        "the digest depends on the order of the files"
    );
    let Ok(manifest) = manifest else {
        return;
    };

    // The listing and its hash, independently of the crate.
    let mut sorted: Vec<&FileEntry> = files.iter().collect();
    sorted.sort_by(|a, b| a.path.as_bytes().cmp(b.path.as_bytes()));
    let listing: String = sorted
        .iter()
        .map(|f| format!("{}  {}\n", f.sha256, f.path))
        .collect();
    assert_eq!(manifest.digest_input(), listing);
    let digest = format!(
        "{DIGEST_PREFIX}{}",
        hex::encode(Sha256::digest(listing.as_bytes()))
    );
    assert_eq!(manifest.digest(), digest);
    assert!(validate_digest(manifest.digest()).is_ok());
    assert_eq!(
        manifest.total_bytes(),
        files.iter().map(|f| f.size).sum::<u64>()
    );
    assert!(manifest.check_digest(&digest).is_ok());
    if let Some(claimed) = claimed {
        assert_eq!(manifest.check_digest(&claimed).is_ok(), claimed == digest);
    }

    // The client's builder on input the server accepts gives the same manifest.
    let mut builder = ManifestBuilder::new();
    for f in &files {
        builder
            .add_file(&f.path, &f.sha256, f.size)
            .expect("the builder refuses what the server accepts");
    }
    assert_eq!(builder.finish().expect("a non-empty builder"), manifest);
});

fn check_path(raw: &str) {
    let strict = validate_path(raw);
    match normalize_path(raw) {
        Ok(nfc) => {
            assert!(
                validate_path(&nfc).is_ok(),
                "{nfc:?} normalised but not canonical"
            );
            assert_eq!(normalize_path(&nfc).as_deref(), Ok(nfc.as_str()));
            if strict.is_ok() {
                assert_eq!(nfc, raw, "a canonical path changed in normalisation");
            }
        }
        Err(_) => assert!(
            strict.is_err(),
            "{raw:?} canonical but refused by normalisation"
        ),
    }
}
