//! Key rotation (issue 12): `--rotate-key` records a `key.rotate` event whose checkpoint the
//! old key signs; `/v1/keys` lists the retired key with its retirement size; bundles and
//! checkpoints from before and after verify under the key valid at their size; a bundle signed
//! by the retired key after its retirement is refused; the retired key cannot start the server.

mod common;

use std::io::Write;

use base64::Engine;
use common::*;
use datapilot::checkpoint::{open_checkpoint, Checkpoint, Signer, Verifier};
use datapilot::evidence::{checks, verify_bundle_with, Archive, Limits, VerifyOptions};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

async fn run_bundle(admin: &Api, name: &str) -> Vec<u8> {
    let ds = admin.dataset(name).await;
    let digest = admin.version(&ds, name).await;
    let (run, _) = admin.run(&[(&ds, &digest)]).await;
    let b = admin.get(&format!("/v1/runs/{run}/evidence")).await;
    assert_eq!(b.status, 200, "{}", b.text());
    b.body
}

/// `bundle` with its checkpoint and envelope re-signed by `signer` (same tree, same root).
fn resign(bundle: &[u8], signer: &Signer) -> Vec<u8> {
    let a = Archive::read(bundle, &Limits::default()).unwrap();
    let note = std::str::from_utf8(a.get("ledger/checkpoint.txt").unwrap()).unwrap();
    let body = note.split("\n\n").next().unwrap().to_string() + "\n";
    let new_note = Checkpoint::parse(&body).unwrap().sign(signer).unwrap();
    let env: datapilot::dsse::Envelope =
        datapilot::dsse::Envelope::from_json(a.get("evidence.dsse.json").unwrap()).unwrap();
    let mut st: datapilot::model::evidence::Statement =
        serde_json::from_slice(&B64.decode(&env.payload).unwrap()).unwrap();
    for s in &mut st.subject {
        if s.name == "ledger/checkpoint.txt" {
            *s = datapilot::model::evidence::Subject::sha256(
                s.name.clone(),
                sha256_hex(new_note.as_bytes()),
            );
        }
    }
    let payload = datapilot::jcs::to_canonical_vec(&st).unwrap();
    let env = datapilot::dsse::sign_envelope("application/vnd.in-toto+json", &payload, signer);
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .last_modified_time(zip::DateTime::default())
        .unix_permissions(0o644);
    for m in &a.members {
        let bytes = match m.name.as_str() {
            "evidence.dsse.json" => env.to_canonical_json().unwrap(),
            "ledger/checkpoint.txt" => new_note.clone().into_bytes(),
            _ => m.bytes.clone(),
        };
        w.start_file(m.name.as_str(), opts).unwrap();
        w.write_all(&bytes).unwrap();
    }
    w.finish().unwrap().into_inner()
}

#[tokio::test]
async fn rotation_keeps_old_evidence_valid_and_refuses_the_retired_key_after_retirement() {
    if skip_on_remote("reads and swaps key files in the data directory") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let mut srv = Server::start_in(&dir, &[]);
    let admin = srv.client(ADMIN);
    let old_key = verifier(&admin).await;
    let before = run_bundle(&admin, "before").await;
    let (size_before, _, cp_before) = checkpoint(&admin).await;
    srv.kill9();

    // Rotate.
    let mut srv = Server::start_in(&dir, &["--rotate-key"]);
    let admin = srv.client(ADMIN);
    let keys = admin.get("/v1/keys").await.json();
    let keys = keys["keys"].as_array().unwrap().clone();
    assert_eq!(keys.len(), 2, "{keys:?}");
    let new_key: Verifier = keys[0]["verifier"].as_str().unwrap().parse().unwrap();
    assert_ne!(new_key, old_key);
    assert_eq!(new_key.name(), old_key.name(), "the origin stays");
    assert!(keys[0].get("retired_at_size").is_none());
    assert_eq!(keys[1]["verifier"], old_key.to_string());
    let retired_at = keys[1]["retired_at_size"].as_u64().unwrap();
    assert_eq!(retired_at, size_before + 1, "one event: key.rotate");
    // The rotation is a ledger event, and its checkpoint is signed by the old key.
    let ev = admin
        .get(&format!("/v1/audit/events/{}", retired_at - 1))
        .await
        .json();
    assert_eq!(ev["action"], "key.rotate");
    assert_eq!(ev["data"]["old_verifier"], old_key.to_string());
    assert_eq!(ev["data"]["new_verifier"], new_key.to_string());
    let record = std::fs::read_to_string(dir.join("ledger.checkpoint")).unwrap();
    let (cp, _) = open_checkpoint(&record, std::slice::from_ref(&old_key)).unwrap();
    assert_eq!(cp.tree_size, retired_at);
    assert!(open_checkpoint(&record, std::slice::from_ref(&new_key)).is_err());

    // After: the new key signs.
    let after = run_bundle(&admin, "after").await;
    let (size_after, _, cp_after) = checkpoint(&admin).await;
    assert!(size_after > retired_at);
    assert!(open_checkpoint(&cp_after, std::slice::from_ref(&new_key)).is_ok());
    assert!(open_checkpoint(&cp_before, std::slice::from_ref(&old_key)).is_ok());

    // Pinned: both keys, the old one retired at its size.
    let pinned = [new_key.clone(), old_key.clone()];
    let opts = VerifyOptions::default().with_retired_key(old_key.clone(), retired_at);
    for (what, b) in [("before", &before), ("after", &after)] {
        let r = verify_bundle_with(b, &pinned, &opts);
        assert!(r.ok, "{what}: {r:#?}");
    }

    // The retired key, used after its retirement: refused when the retirement is known.
    let retired_file = dir.join(format!("ledger.key.retired-{}", old_key.key_id_hex()));
    let seed: [u8; 32] = hex::decode(std::fs::read_to_string(&retired_file).unwrap().trim())
        .unwrap()
        .try_into()
        .unwrap();
    let old_signer = Signer::from_seed(old_key.name(), &seed).unwrap();
    let forged = resign(&after, &old_signer);
    let r = verify_bundle_with(&forged, &pinned, &opts);
    assert!(!r.ok);
    for check in [checks::DSSE_SIGNATURE, checks::CHECKPOINT_SIGNATURE] {
        let c = r.check(check).unwrap();
        assert!(!c.passed, "{check}: {c:?}");
        assert!(
            c.reason.contains("retired before the bundle's tree size"),
            "{c:?}"
        );
    }
    // (Without the retirement the same bundle passes: the check above is what refuses it.)
    assert!(verify_bundle_with(&forged, &pinned, &VerifyOptions::default()).ok);
    // Before its retirement size the old key's signatures stay valid.
    assert!(verify_bundle_with(&resign(&before, &old_signer), &pinned, &opts).ok);

    // The retired key cannot start the server.
    srv.kill9();
    let current = std::fs::read(dir.join("ledger.key")).unwrap();
    std::fs::copy(&retired_file, dir.join("ledger.key")).unwrap();
    let (status, err) = start_fails(&dir, &[]);
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!("retired at tree size {retired_at}")),
        "{err}"
    );
    std::fs::write(dir.join("ledger.key"), current).unwrap();
    let srv = Server::start_in(&dir, &[]);
    assert_eq!(verifier(&srv.client(ADMIN)).await, new_key);
}
