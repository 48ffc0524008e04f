//! Published keys (issue 12): `/v1/keys` also gives the ledger key as SPKI PEM, and a
//! standard tool (OpenSSL) verifies the server's signatures with it: a checkpoint's note
//! signature and an evidence envelope's DSSE signature.

mod common;

use std::process::Command;

use base64::Engine;
use common::*;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// `openssl pkeyutl -verify` of an Ed25519 `sig` over `msg` with the PEM key: true if valid.
fn openssl_verifies(dir: &std::path::Path, pem: &str, msg: &[u8], sig: &[u8]) -> bool {
    std::fs::write(dir.join("key.pem"), pem).unwrap();
    std::fs::write(dir.join("msg"), msg).unwrap();
    std::fs::write(dir.join("sig"), sig).unwrap();
    let out = Command::new("openssl")
        .args(["pkeyutl", "-verify", "-pubin", "-inkey"])
        .arg(dir.join("key.pem"))
        .arg("-rawin")
        .arg("-in")
        .arg(dir.join("msg"))
        .arg("-sigfile")
        .arg(dir.join("sig"))
        .output()
        .expect("openssl (installed by ./x setup)");
    out.status.success()
}

#[tokio::test]
async fn the_pem_key_verifies_checkpoints_and_envelopes_with_openssl() {
    let srv = Server::start();
    let admin = srv.client(ADMIN);
    let keys = srv.anon().get("/v1/keys").await.json();
    let key = &keys["keys"][0];
    let pem = key["public_key_pem"].as_str().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();

    // OpenSSL reads it as the same Ed25519 key.
    std::fs::write(dir.path().join("key.pem"), &pem).unwrap();
    let out = Command::new("openssl")
        .args(["pkey", "-pubin", "-outform", "DER", "-in"])
        .arg(dir.path().join("key.pem"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let raw = B64.decode(key["public_key"].as_str().unwrap()).unwrap();
    assert_eq!(
        &out.stdout[12..],
        &raw[..],
        "the PEM holds the published key"
    );

    // A checkpoint: the note text, signed (after the 4-byte key id) with Ed25519.
    let (_, _, note) = checkpoint(&admin).await;
    let (text, sigs) = note.split_once("\n\n").unwrap();
    let text = format!("{text}\n");
    let sig_b64 = sigs.trim_end().rsplit(' ').next().unwrap();
    let sig = B64.decode(sig_b64).unwrap();
    assert!(openssl_verifies(
        dir.path(),
        &pem,
        text.as_bytes(),
        &sig[4..]
    ));
    let mut bad = sig[4..].to_vec();
    bad[0] ^= 1;
    assert!(!openssl_verifies(dir.path(), &pem, text.as_bytes(), &bad));

    // An evidence envelope: the signature is over PAE(payloadType, payload).
    let ds = admin.dataset("pem").await;
    let digest = admin.version(&ds, "pem").await;
    let (run, _) = admin.run(&[(&ds, &digest)]).await;
    let bundle = admin.get(&format!("/v1/runs/{run}/evidence")).await;
    assert_eq!(bundle.status, 200, "{}", bundle.text());
    let archive =
        datapilot::evidence::Archive::read(&bundle.body, &datapilot::evidence::Limits::default())
            .unwrap();
    let env: serde_json::Value =
        serde_json::from_slice(archive.get("evidence.dsse.json").unwrap()).unwrap();
    let payload = B64.decode(env["payload"].as_str().unwrap()).unwrap();
    let ty = env["payloadType"].as_str().unwrap();
    let pae = [
        format!("DSSEv1 {} {ty} {} ", ty.len(), payload.len()).as_bytes(),
        &payload,
    ]
    .concat();
    let sig = B64
        .decode(env["signatures"][0]["sig"].as_str().unwrap())
        .unwrap();
    assert!(openssl_verifies(dir.path(), &pem, &pae, &sig));
}
