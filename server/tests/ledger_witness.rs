//! Witnesses (issue 12): the server's checkpoints cosigned under C2SP `tlog-witness` /
//! `tlog-cosignature`, verified by the SDK under a k-of-n policy, and a split view (one key,
//! two histories) detected, both by the SDK from two checkpoints and by the witness, which
//! refuses to cosign the second history; and a bundle held to a witnessed checkpoint (the
//! `witnessed` step of bundle verification, by the SDK and by the independent Python auditor),
//! which refuses a bundle from the other history; and a data directory restored behind what a
//! witness cosigned is refused at start.
//!
//! No witness installs from the registries this project builds with (tried: PyPI `aics-witness`
//! 0.1.0, an unvetted 2026 release; Go `filippo.io/torchwood` litewitness, which needs a Go
//! toolchain and an ssh-agent-held key in `./x`), so `TestWitness` below is a minimal
//! implementation of the `add-checkpoint` call, for these tests only, on the SDK's own
//! checkpoint and Merkle code.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use common::*;
use datapilot::checkpoint::{open_checkpoint, Checkpoint, Verifier};
use datapilot::evidence::{
    checks, verify_bundle, verify_bundle_with, OnlinePolicy, VerifyOptions, WitnessedInput,
};
use datapilot::witness::{
    split_view, verify_witnessed, WitnessError, WitnessSigner, WitnessVerifier,
};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// A minimal C2SP tlog-witness: `POST /add-checkpoint` for the logs it trusts, keeping the
/// latest cosigned (size, root) per origin, checked and updated under one lock.
struct TestWitness {
    signer: WitnessSigner,
    logs: Vec<Verifier>,
    latest: Mutex<HashMap<String, (u64, [u8; 32])>>,
}

async fn add_checkpoint(State(w): State<Arc<TestWitness>>, body: Bytes) -> Response {
    let text = match std::str::from_utf8(&body) {
        Ok(t) => t,
        Err(_) => return (StatusCode::BAD_REQUEST, "not UTF-8\n").into_response(),
    };
    let Some((head, note)) = text.split_once("\n\n") else {
        return (StatusCode::BAD_REQUEST, "no empty line\n").into_response();
    };
    let mut lines = head.split('\n');
    let Some(old) = lines
        .next()
        .and_then(|l| l.strip_prefix("old "))
        .and_then(|n| n.parse::<u64>().ok())
    else {
        return (StatusCode::BAD_REQUEST, "no old size line\n").into_response();
    };
    let proof: Option<Vec<[u8; 32]>> = lines
        .map(|l| B64.decode(l).ok().and_then(|h| h.try_into().ok()))
        .collect();
    let Some(proof) = proof.filter(|p| p.len() <= 63) else {
        return (StatusCode::BAD_REQUEST, "bad proof line\n").into_response();
    };
    let body_text = note.split("\n\n").next().unwrap_or("").to_string() + "\n";
    let Ok(cp) = Checkpoint::parse(&body_text) else {
        return (StatusCode::BAD_REQUEST, "not a checkpoint\n").into_response();
    };
    if !w.logs.iter().any(|k| k.name() == cp.origin) {
        return (StatusCode::NOT_FOUND, "unknown log\n").into_response();
    }
    let Ok((cp, opened)) = open_checkpoint(note, &w.logs) else {
        return (StatusCode::FORBIDDEN, "no valid log signature\n").into_response();
    };
    if old > cp.tree_size {
        return (StatusCode::BAD_REQUEST, "old size above the checkpoint's\n").into_response();
    }
    let mut latest = w.latest.lock().unwrap();
    let (size, root) = latest.get(&cp.origin).copied().unwrap_or((0, [0; 32]));
    if old != size {
        return (
            StatusCode::CONFLICT,
            [("content-type", "text/x.tlog.size")],
            format!("{size}\n"),
        )
            .into_response();
    }
    if size == cp.tree_size && root != cp.root_hash {
        return (StatusCode::CONFLICT, "same size, another root\n").into_response();
    }
    if size > 0
        && size < cp.tree_size
        && datapilot::merkle::verify_consistency(size, cp.tree_size, &proof, &root, &cp.root_hash)
            .is_err()
    {
        return (StatusCode::UNPROCESSABLE_ENTITY, "inconsistent\n").into_response();
    }
    latest.insert(cp.origin.clone(), (cp.tree_size, cp.root_hash));
    drop(latest);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    w.signer.cosign(&opened.text, now).into_response()
}

/// Start a witness trusting `logs` on 127.0.0.1; its base URL and verifier key.
async fn start_witness(name: &str, seed: u8, logs: Vec<Verifier>) -> (String, WitnessSigner) {
    let w = Arc::new(TestWitness {
        signer: WitnessSigner::from_seed(name, &[seed; 32]).unwrap(),
        logs,
        latest: Mutex::new(HashMap::new()),
    });
    let app = axum::Router::new()
        .route("/add-checkpoint", axum::routing::post(add_checkpoint))
        .with_state(w);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (
        format!("http://{addr}"),
        WitnessSigner::from_seed(name, &[seed; 32]).unwrap(),
    )
}

/// Submit `note` to the witness as the log would: `old <size>`, the consistency proof from
/// the server's JSON endpoint, an empty line, the checkpoint. Status and body.
async fn submit(api: &Api, witness: &str, old: u64, note: &str) -> (u16, String) {
    let size = open_checkpoint(note, &[verifier(api).await])
        .unwrap()
        .0
        .tree_size;
    let mut body = format!("old {old}\n");
    if old > 0 && old < size {
        let p = api
            .get(&format!(
                "/v1/ledger/proofs/consistency?from={old}&to={size}"
            ))
            .await
            .json();
        for h in p["hashes"].as_array().unwrap() {
            body.push_str(h.as_str().unwrap());
            body.push('\n');
        }
    }
    body.push('\n');
    body.push_str(note);
    let r = reqwest::Client::new()
        .post(format!("{witness}/add-checkpoint"))
        .body(body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

#[tokio::test]
async fn a_witnessed_checkpoint_satisfies_1_of_1_and_a_split_view_is_detected() {
    if skip_on_remote("copies a SQLite data directory to make a second history") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("a");
    let mut srv = Server::start_in(&dir, &[]);
    let admin = srv.client(ADMIN);
    let log_key = verifier(&admin).await;
    let (witness, w1) = start_witness("witness.test/w1", 11, vec![log_key.clone()]).await;
    let w2 = WitnessSigner::from_seed("witness.test/w2", &[12; 32]).unwrap();
    let trusted = [w1.verifier().clone()];

    // First checkpoint: the witness has seen nothing of this log (old 0).
    admin.dataset("one").await;
    let (n1, _, c1) = checkpoint(&admin).await;
    let (status, cosig) = submit(&admin, &witness, 0, &c1).await;
    assert_eq!(status, 200, "{cosig}");
    assert!(cosig.starts_with("\u{2014} witness.test/w1 "), "{cosig}");
    let witnessed = verify_witnessed(
        &(c1.clone() + &cosig),
        std::slice::from_ref(&log_key),
        &trusted,
        1,
    )
    .expect("1 of 1 trusted witnesses cosigned");
    assert_eq!(witnessed.checkpoint.tree_size, n1);
    // The bare checkpoint, or a 2-of-2 policy with one cosignature, is refused.
    assert!(matches!(
        verify_witnessed(&c1, std::slice::from_ref(&log_key), &trusted, 1),
        Err(WitnessError::NotEnoughWitnesses {
            got: 0,
            need: 1,
            ..
        })
    ));
    let two = [w1.verifier().clone(), w2.verifier().clone()];
    assert!(matches!(
        verify_witnessed(
            &(c1.clone() + &cosig),
            std::slice::from_ref(&log_key),
            &two,
            2
        ),
        Err(WitnessError::NotEnoughWitnesses {
            got: 1,
            need: 2,
            ..
        })
    ));
    // A stale old size is answered with the witness's size.
    admin.dataset("two").await;
    let (n2, _, c2) = checkpoint(&admin).await;
    let (status, body) = submit(&admin, &witness, 0, &c2).await;
    assert_eq!((status, body), (409, format!("{n1}\n")));
    // The next checkpoint, with a consistency proof from the last cosigned one.
    let (status, cosig2) = submit(&admin, &witness, n1, &c2).await;
    assert_eq!(status, 200, "{cosig2}");
    verify_witnessed(
        &(c2.clone() + &cosig2),
        std::slice::from_ref(&log_key),
        &trusted,
        1,
    )
    .unwrap();

    // A split view: the same data directory (same key) run twice from size n2, each copy
    // writing something else. Both sign size n2 + 1, with different roots.
    srv.kill9();
    let fork_dir = tmp.path().join("b");
    copy_tree(&dir, &fork_dir);
    let srv = Server::start_in(&dir, &[]);
    let fork = Server::start_in(&fork_dir, &[]);
    let (a, b) = (srv.client(ADMIN), fork.client(ADMIN));
    a.dataset("history-a").await;
    b.dataset("history-b").await;
    let (sa, ra, ca) = checkpoint(&a).await;
    let (sb, rb, cb) = checkpoint(&b).await;
    assert_eq!((sa, sb), (n2 + 1, n2 + 1));
    assert_ne!(ra, rb);
    // The SDK: two checkpoints, one key, one size, two roots.
    let split = split_view(&ca, &cb, std::slice::from_ref(&log_key))
        .unwrap()
        .expect("split view");
    assert_eq!(split.tree_size, n2 + 1);
    assert_eq!(
        split_view(&ca, &ca, std::slice::from_ref(&log_key)).unwrap(),
        None
    );
    // The witness cosigns the first history it is shown and refuses the other one, so a
    // client requiring its cosignature cannot be shown the second history.
    let (status, cosig_a) = submit(&a, &witness, n2, &ca).await;
    assert_eq!(status, 200, "{cosig_a}");
    let (status, _) = submit(&b, &witness, n2 + 1, &cb).await;
    assert_eq!(status, 409, "same size, other root");
    b.dataset("history-b-2").await;
    let (_, _, cb2) = checkpoint(&b).await;
    let (status, _) = submit(&b, &witness, n2 + 1, &cb2).await;
    assert_eq!(
        status, 422,
        "the fork's consistency proof does not extend the cosigned root"
    );
    assert!(verify_witnessed(&cb2, std::slice::from_ref(&log_key), &trusted, 1).is_err());
    verify_witnessed(&(ca + &cosig_a), &[log_key], &trusted, 1).unwrap();
}

fn copy_tree(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_tree(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), &dest).unwrap();
        }
    }
}

/// The server submits each new checkpoint to its `--witness` and publishes the cosignature on
/// `/checkpoint` and `/v1/ledger/checkpoint`; bundles keep the log's signature only.
#[tokio::test]
async fn the_server_gets_its_checkpoints_cosigned_and_publishes_them() {
    // The witness must trust the log's key before the log exists: start the server once to
    // create its key, then restart it with the witness configured.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let first = Server::start_in(&dir, &[]);
    let log_key = verifier(&first.client(ADMIN)).await;
    drop(first);
    let (witness, w) = start_witness("witness.test/w1", 21, vec![log_key.clone()]).await;
    let spec = format!("{witness}={}", w.verifier().vkey());
    let srv = Server::start_in(&dir, &["--witness", &spec]);
    let admin = srv.client(ADMIN);
    let trusted = [w.verifier().clone()];
    for round in 0..3 {
        admin.dataset(&format!("w-{round}")).await;
        let note = admin.get("/v1/ledger/checkpoint").await.text();
        let ok = verify_witnessed(&note, std::slice::from_ref(&log_key), &trusted, 1)
            .unwrap_or_else(|e| panic!("round {round}: {e}\n{note}"));
        assert_eq!(ok.cosigned_by[0].0, "witness.test/w1");
        // The tile-log checkpoint is the same published note.
        assert_eq!(admin.get("/checkpoint").await.text(), note);
    }
    // Bundles stay deterministic: their checkpoint carries the log's signature only.
    let ds = admin.dataset("bundle").await;
    let digest = admin.version(&ds, "bundle").await;
    let (run, _) = admin.run(&[(&ds, &digest)]).await;
    let b1 = admin.get(&format!("/v1/runs/{run}/evidence")).await;
    let size = datapilot::evidence::verify_bundle(&b1.body, std::slice::from_ref(&log_key))
        .summary
        .tree_size
        .unwrap();
    let b2 = admin
        .get(&format!("/v1/runs/{run}/evidence?tree_size={size}"))
        .await;
    assert_eq!(b1.body, b2.body);

    // Cosignatures outlive the process that collected them (and serve every replica): after a
    // restart with the witness unreachable, the checkpoint of the same size still carries w1's.
    let before = admin.get("/v1/ledger/checkpoint").await.text();
    drop(srv);
    let down = format!("http://127.0.0.1:9={}", w.verifier().vkey());
    let srv = Server::start_in(&dir, &["--witness", &down]);
    let after = srv.client(ADMIN).get("/v1/ledger/checkpoint").await.text();
    assert_eq!(
        after, before,
        "the same note, cosignature included, after a restart"
    );
    let ok = verify_witnessed(&after, std::slice::from_ref(&log_key), &trusted, 1)
        .unwrap_or_else(|e| panic!("after a restart: {e}\n{after}"));
    assert_eq!(ok.cosigned_by[0].0, "witness.test/w1");

    // A bad --witness value is a refusal to start.
    drop(srv);
    let (status, err) = start_fails(&dir, &["--witness", "http://127.0.0.1:9/=nonsense"]);
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(err.contains("expected URL=VKEY"), "{err}");
}

/// The SDK's native client for a server (admin token).
fn sdk_client(base: &str) -> datapilot::Client {
    datapilot::Client::builder()
        .base_url(base)
        .token(ADMIN)
        .timeout(std::time::Duration::from_secs(20))
        .build()
        .unwrap()
}

/// The consistency proof hashes from `from` to `to` (the JSON endpoint).
async fn consistency(api: &Api, from: u64, to: u64) -> Vec<String> {
    if from == to {
        return Vec::new();
    }
    let p = api
        .get(&format!(
            "/v1/ledger/proofs/consistency?from={from}&to={to}"
        ))
        .await
        .json();
    p["hashes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h.as_str().unwrap().to_owned())
        .collect()
}

const AUDITOR: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../tests/auditor/verify_bundle.py"
);

/// The `witnessed` check of `bundle` against `note` under `k` of `witnesses` (and whether the
/// whole report is ok), from the SDK; the independent Python auditor
/// (`tests/auditor/verify_bundle.py --witnessed`) must give the same verdicts.
fn witnessed_check(
    bundle: &[u8],
    keys: &[Verifier],
    note: &str,
    proof: Vec<String>,
    witnesses: &[WitnessVerifier],
    k: usize,
) -> (bool, bool, String) {
    let options = VerifyOptions::default().with_witnessed(
        WitnessedInput::new(note.to_owned(), proof.clone(), witnesses.to_vec()).with_quorum(k),
    );
    let report = verify_bundle_with(bundle, keys, &options);
    let c = report
        .check(checks::WITNESSED)
        .expect("the witnessed check is reported");

    let dir = tempfile::tempdir().unwrap();
    let (zip, note_file) = (dir.path().join("b.zip"), dir.path().join("note.txt"));
    std::fs::write(&zip, bundle).unwrap();
    std::fs::write(&note_file, note).unwrap();
    let mut cmd = std::process::Command::new("python3");
    cmd.arg(AUDITOR).arg(&zip);
    for key in keys {
        cmd.arg(key.to_string());
    }
    cmd.arg("--witnessed").arg(&note_file);
    for w in witnesses {
        cmd.arg("--witness").arg(w.vkey());
    }
    cmd.arg("--witness-quorum").arg(k.to_string());
    for h in &proof {
        cmd.arg("--witness-proof").arg(h);
    }
    let out = cmd
        .output()
        .expect("python3 (installed by ./x setup) runs the auditor verifier");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let verdict = if c.passed { "PASS" } else { "FAIL" };
    assert!(
        text.contains(&format!("{verdict} witnessed: ")),
        "the auditor disagrees (SDK: {verdict} {}):\n{text}{}",
        c.reason,
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.success(), report.ok, "{text}");
    (report.ok, c.passed, c.reason.clone())
}

/// A bundle held to the server's witnessed checkpoint: 1 of 1 at the bundle's size and at a
/// later size (with the consistency proof), refused under 2 of 2, with the log-signed note
/// alone, with a witnessed note older than the bundle or a wrong proof; and a bundle exported
/// by a second history (the same data directory run twice) is refused against the checkpoint
/// the witness cosigned, at the same size and at a later one.
#[tokio::test]
async fn a_bundle_is_held_to_a_witnessed_checkpoint_and_a_split_view_bundle_is_refused() {
    if skip_on_remote("copies a SQLite data directory to make a second history") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let first = Server::start_in(&dir, &[]);
    let log_key = verifier(&first.client(ADMIN)).await;
    drop(first);
    let (witness, w1) = start_witness("witness.test/w1", 31, vec![log_key.clone()]).await;
    let w2 = WitnessSigner::from_seed("witness.test/w2", &[32; 32]).unwrap();
    let spec = format!("{witness}={}", w1.verifier().vkey());
    let mut srv = Server::start_in(&dir, &["--witness", &spec]);
    let admin = srv.client(ADMIN);
    let keys = [log_key.clone()];
    let one = [w1.verifier().clone()];
    let two = [w1.verifier().clone(), w2.verifier().clone()];

    let ds = admin.dataset("witnessed-bundle").await;
    // A checkpoint a client kept from before the bundle (for the online consistency check).
    let early = admin.get("/checkpoint").await.text();
    let digest = admin.version(&ds, "v").await;
    let (run, _) = admin.run(&[(&ds, &digest)]).await;
    let bundle = admin.get(&format!("/v1/runs/{run}/evidence")).await.body;
    let report = verify_bundle(&bundle, &keys);
    assert!(report.ok, "{report:?}");
    let size = report.summary.tree_size.unwrap();
    // The bundle's own checkpoint carries no cosignature: the policy cannot be met from it.
    let own = report.summary.checkpoint.clone().unwrap();
    let (ok, passed, why) = witnessed_check(&bundle, &keys, &own, vec![], &one, 1);
    assert!(!ok && !passed, "{why}");
    assert!(why.contains("0 of the required 1"), "{why}");

    // The server's published checkpoint at the bundle's size, cosigned by w1.
    let note = admin.get("/checkpoint").await.text();
    let at = open_checkpoint(&note, &keys).unwrap().0.tree_size;
    assert_eq!(at, size, "nothing was logged by the export");
    let (ok, passed, why) = witnessed_check(&bundle, &keys, &note, vec![], &one, 1);
    assert!(ok && passed, "{why}");
    assert!(why.contains("witness.test/w1"), "{why}");
    // 2 of 2 is not met by one cosignature; 1 of 2 is.
    let (ok, _, why) = witnessed_check(&bundle, &keys, &note, vec![], &two, 2);
    assert!(!ok && why.contains("1 of the required 2"), "{why}");
    assert!(witnessed_check(&bundle, &keys, &note, vec![], &two, 1).0);

    // The log grows: the bundle is a prefix of the later witnessed checkpoint.
    admin.dataset("later").await;
    let later = admin.get("/checkpoint").await.text();
    let later_size = open_checkpoint(&later, &keys).unwrap().0.tree_size;
    assert!(later_size > size);
    let proof = consistency(&admin, size, later_size).await;
    let (ok, _, why) = witnessed_check(&bundle, &keys, &later, proof.clone(), &one, 1);
    assert!(ok, "{why}");
    assert!(
        why.contains(&format!("prefix of the one at size {later_size}")),
        "{why}"
    );
    let (ok, _, why) = witnessed_check(&bundle, &keys, &later, vec![], &one, 1);
    assert!(!ok && why.contains("not a prefix"), "{why}");
    // The SDK's online verification fetches the cosigned checkpoint and the proof itself and
    // reaches the same verdicts (the path the Python SDK and the npm client take too).
    let sdk = sdk_client(&srv.base);
    let online = |policy: OnlinePolicy| {
        let (sdk, bundle, keys) = (&sdk, &bundle, &keys);
        async move {
            sdk.verify_evidence_bundle(bundle, keys)
                .policy(policy)
                .send()
                .await
                .unwrap()
        }
    };
    let r = online(OnlinePolicy::new().with_witnesses(one.to_vec(), 1)).await;
    let c = r.check(checks::WITNESSED).unwrap();
    assert!(r.ok && c.passed, "{r:?}");
    assert!(
        c.reason
            .contains(&format!("prefix of the one at size {later_size}")),
        "{}",
        c.reason
    );
    let r = online(OnlinePolicy::new().with_witnesses(two.to_vec(), 2)).await;
    assert!(!r.ok, "2 of 2 with one cosignature: {r:?}");
    // A last trusted checkpoint: the bundle extends the (older) one the caller kept.
    let r = online(OnlinePolicy::new().with_last_checkpoint(early.clone())).await;
    let c = r.check(checks::CONSISTENCY).unwrap();
    assert!(r.ok && c.passed, "{r:?}");
    assert!(open_checkpoint(&early, &keys).unwrap().0.tree_size < size);
    // No policy: the offline checks only.
    let r = online(OnlinePolicy::new()).await;
    assert!(r.ok && r.check(checks::WITNESSED).is_none(), "{r:?}");
    // A witnessed checkpoint older than the bundle says nothing about it.
    let newer = admin.get(&format!("/v1/runs/{run}/evidence")).await.body;
    let (ok, _, why) = witnessed_check(&newer, &keys, &note, vec![], &one, 1);
    assert!(!ok && why.contains("older than the bundle"), "{why}");

    // A split view: the data directory copied and run twice from `later_size`; the copy has no
    // witness. Each history logs one more event: two roots for one size, one key.
    srv.kill9();
    let fork_dir = tmp.path().join("fork");
    copy_tree(&dir, &fork_dir);
    let srv = Server::start_in(&dir, &["--witness", &spec]);
    let fork = Server::start_in(&fork_dir, &[]);
    let (a, b) = (srv.client(ADMIN), fork.client(ADMIN));
    b.dataset("history-b").await;
    let forked = b.get(&format!("/v1/runs/{run}/evidence")).await.body;
    let forked_report = verify_bundle(&forked, &keys);
    assert!(
        forked_report.ok,
        "alone, the other history's bundle verifies"
    );
    a.dataset("history-a").await;
    let seen = a.get("/checkpoint").await.text();
    let seen_size = open_checkpoint(&seen, &keys).unwrap().0.tree_size;
    assert_eq!(forked_report.summary.tree_size, Some(seen_size));
    let (ok, _, why) = witnessed_check(&forked, &keys, &seen, vec![], &one, 1);
    assert!(!ok && why.contains("two different roots"), "{why}");
    // ... and at a later witnessed size, with the honest history's proof.
    a.dataset("history-a-2").await;
    let seen2 = a.get("/checkpoint").await.text();
    let seen2_size = open_checkpoint(&seen2, &keys).unwrap().0.tree_size;
    let proof = consistency(&a, seen_size, seen2_size).await;
    let (ok, _, why) = witnessed_check(&forked, &keys, &seen2, proof, &one, 1);
    assert!(!ok && why.contains("not a prefix"), "{why}");
    // The honest history's bundle of the same run passes against the same note.
    let honest = a
        .get(&format!("/v1/runs/{run}/evidence?tree_size={seen_size}"))
        .await
        .body;
    let proof = consistency(&a, seen_size, seen2_size).await;
    let (ok, _, why) = witnessed_check(&honest, &keys, &seen2, proof, &one, 1);
    assert!(ok, "{why}");
}

/// No equivocation with witnesses: a whole data directory (key and `ledger.checkpoint`
/// included) restored from a backup older than what the witness cosigned is refused at start,
/// since the witness remembers the larger size; the newer data directory starts again.
#[tokio::test(flavor = "multi_thread")]
async fn a_data_directory_older_than_what_the_witness_cosigned_is_refused_at_start() {
    if skip_on_remote("copies a SQLite data directory as a backup") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let first = Server::start_in(&dir, &[]);
    let log_key = verifier(&first.client(ADMIN)).await;
    drop(first);
    let (witness, w) = start_witness("witness.test/w1", 41, vec![log_key.clone()]).await;
    let spec = format!("{witness}={}", w.verifier().vkey());
    let mut srv = Server::start_in(&dir, &["--witness", &spec]);
    let admin = srv.client(ADMIN);
    admin.dataset("before-backup").await;
    let (old_size, _, _) = checkpoint(&admin).await;
    srv.kill9();
    let backup = tmp.path().join("backup");
    copy_tree(&dir, &backup);

    let mut srv = Server::start_in(&dir, &["--witness", &spec]);
    let admin = srv.client(ADMIN);
    admin.dataset("after-backup").await;
    let note = admin.get("/checkpoint").await.text();
    let witnessed = verify_witnessed(
        &note,
        std::slice::from_ref(&log_key),
        &[w.verifier().clone()],
        1,
    )
    .expect("the later checkpoint is cosigned");
    let new_size = witnessed.checkpoint.tree_size;
    assert!(new_size > old_size);
    srv.kill9();
    let newer = tmp.path().join("newer");
    copy_tree(&dir, &newer);

    // The whole directory rolled back: ledger.checkpoint agrees with the database, only the
    // witness knows better.
    std::fs::remove_dir_all(&dir).unwrap();
    copy_tree(&backup, &dir);
    let (status, err) = start_fails(&dir, &["--witness", &spec]);
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "witness witness.test/w1 ({witness}) has cosigned size {new_size}"
        )) && err.contains(&format!("is size {old_size}")),
        "{err}"
    );
    // The documented recovery: restore the newest backup; it starts and is cosigned again.
    std::fs::remove_dir_all(&dir).unwrap();
    copy_tree(&newer, &dir);
    let srv = Server::start_in(&dir, &["--witness", &spec]);
    let admin = srv.client(ADMIN);
    admin.dataset("recovered").await;
    let note = admin.get("/checkpoint").await.text();
    verify_witnessed(&note, &[log_key], &[w.verifier().clone()], 1)
        .expect("the recovered log is cosigned again");
}
