//! End-to-end tests of the SDK against the real reference server over HTTP on 127.0.0.1.
//!
//! The server binary comes from `DATAPILOT_SERVER_BIN` if set (the lead's test script builds
//! it), else it is built with `cargo build -p datapilot-server` into this test's target dir.
//! Each test starts its own server on a free port with a temporary data dir and a known
//! bootstrap admin token, and stops it when done.

#![cfg(feature = "native")]

mod live_server;

#[path = "evidence_support/mod.rs"]
mod support;

use std::path::PathBuf;
use std::str::FromStr;

use datapilot::checkpoint::Verifier;
use datapilot::evidence::{
    checks, verify_bundle, verify_bundle_with, Archive, ConsistencyInput, Limits, VerifyOptions,
};
use datapilot::model::audit::AuditEventFilter;
use datapilot::model::datasets::GateStatus;
use datapilot::model::datasets::{CreateDatasetRequest, FileEntry, RegisterDatasetVersionRequest};
use datapilot::model::evidence::members;
use datapilot::model::gates::{GateOutcome, RecordGateResultRequest};
use datapilot::model::metrics::{AppendMetricsRequest, MetricPoint};
use datapilot::model::policy::UpdatePolicyRequest;
use datapilot::model::runs::{CreateRunRequest, FinishRunRequest, RunStatus};
use datapilot::model::tokens::CreateTokenRequest;
use datapilot::model::{DatasetVersionRef, Role};
use datapilot::{Client, RequestOptions};
use live_server::{client, start_server, Server};

const ADMIN: &str = "dpt_NativeFlowBootstrapAdmin0001";

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// Hashes a directory into a DPM-1 manifest, streaming each file.
fn manifest_of(dir: &std::path::Path) -> datapilot::manifest::Manifest {
    fn walk(root: &std::path::Path, dir: &std::path::Path, out: &mut Vec<(String, PathBuf)>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                let rel = p
                    .strip_prefix(root)
                    .unwrap()
                    .to_str()
                    .unwrap()
                    .replace('\\', "/");
                out.push((rel, p));
            }
        }
    }
    let mut files = Vec::new();
    walk(dir, dir, &mut files);
    let mut b = datapilot::manifest::ManifestBuilder::new();
    for (rel, path) in files {
        let mut f = b.begin_file(&rel).unwrap();
        let mut reader = std::fs::File::open(path).unwrap();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = std::io::Read::read(&mut reader, &mut buf).unwrap();
            if n == 0 {
                break;
            }
            f.update(&buf[..n]);
        }
        f.finish();
    }
    b.finish().unwrap()
}

struct World {
    server: Server,
    admin: Client,
    verifier: Verifier,
    dataset_id: String,
    digest: String,
    run_id: String,
    trusted_checkpoint: String,
}

/// Runs the whole flow and returns what later checks need.
async fn full_flow() -> World {
    let server = start_server(ADMIN, "native");
    let admin = client(&server, ADMIN);

    // System.
    let health = admin.get_health().send().await.unwrap();
    assert_eq!(health.status, "ok");
    let me = admin.who_am_i().send().await.unwrap();
    assert_eq!(me.role, Role::Admin);
    let keys = admin.list_verifier_keys().send().await.unwrap();
    // Pinned out of band in real use; here the test trusts the server it just started.
    let verifier = Verifier::from_str(&keys.keys[0].verifier).unwrap();
    let trusted_checkpoint = admin.get_checkpoint().send().await.unwrap();

    // Policy: require one gate.
    let policy = admin
        .update_policy(
            &UpdatePolicyRequest::new(vec!["schema-check".to_owned()])
                .with_run_token_ttl_seconds(3600),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(policy.version, 2);
    assert_eq!(
        admin.get_policy().send().await.unwrap().required_gates,
        vec!["schema-check"]
    );

    // An engineer token does the work.
    let created = admin
        .create_token(&CreateTokenRequest::new("ci", Role::Engineer).with_expires_in_seconds(3600))
        .send()
        .await
        .unwrap();
    let eng = client(&server, created.secret.expose());
    assert_eq!(eng.who_am_i().send().await.unwrap().role, Role::Engineer);
    assert!(admin.list_tokens().collect_all().await.unwrap().len() >= 2);

    // Dataset + a directory registered as a version.
    let ds = eng
        .create_dataset(&CreateDatasetRequest::new("churn-native").with_description("native flow"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        eng.get_dataset(&ds.id).send().await.unwrap().name,
        "churn-native"
    );
    assert_eq!(eng.list_datasets().collect_all().await.unwrap().len(), 1);
    let data = server.dir.join("dataset-src");
    std::fs::create_dir_all(data.join("sub")).unwrap();
    std::fs::write(data.join("a.csv"), b"id,label\n1,0\n").unwrap();
    std::fs::write(data.join("sub/b.txt"), b"hello").unwrap();
    let manifest = manifest_of(&data);
    let req = RegisterDatasetVersionRequest::new(
        manifest.digest().to_owned(),
        manifest
            .files()
            .iter()
            .map(|f| FileEntry {
                path: f.path.clone(),
                sha256: f.sha256.clone(),
                size: f.size,
            })
            .collect(),
    );
    let reg = eng
        .register_dataset_version(&ds.id, &req)
        .send()
        .await
        .unwrap();
    assert!(reg.created);
    assert_eq!(reg.version.gate_status, GateStatus::Pending);
    let again = eng
        .register_dataset_version(&ds.id, &req)
        .send()
        .await
        .unwrap();
    assert!(!again.created, "same manifest returns the existing version");
    let digest = reg.version.digest.clone();
    assert_eq!(
        eng.get_dataset_version(&ds.id, &digest)
            .send()
            .await
            .unwrap()
            .file_count,
        2
    );
    let m = eng
        .get_dataset_version_manifest(&ds.id, &digest)
        .send()
        .await
        .unwrap();
    assert_eq!(m.files.len(), 2);
    assert_eq!(
        eng.list_dataset_versions(&ds.id)
            .collect_all()
            .await
            .unwrap()
            .len(),
        1
    );

    // A wrong digest is refused by the server.
    let mut bad = req.clone();
    bad.digest = format!("sha256:{}", "0".repeat(64));
    let err = eng
        .register_dataset_version(&ds.id, &bad)
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("digest_mismatch"));
    assert!(err.request_id().is_some());

    // Runs are refused until the gate passes.
    let run_req = CreateRunRequest::new(
        "baseline",
        vec![DatasetVersionRef::new(&ds.id, &digest)],
        "4015b57a143aec5156fd1444a017a32137a3fd0f",
        format!("sha256:{}", "6105d6cc".repeat(8)),
    )
    .with_params([("lr".to_owned(), "0.001".to_owned())].into());
    let err = eng.create_run(&run_req).send().await.unwrap_err();
    assert_eq!(err.code(), Some("gate_not_passed"));
    assert_eq!(err.status(), Some(422));
    assert!(!err.is_retryable());

    let gate = eng
        .record_gate_result(
            &ds.id,
            &digest,
            &RecordGateResultRequest::new("schema-check", GateOutcome::Passed),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(gate.status, GateOutcome::Passed);
    assert_eq!(
        eng.list_gate_results(&ds.id, &digest)
            .collect_all()
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        eng.get_dataset_version(&ds.id, &digest)
            .send()
            .await
            .unwrap()
            .gate_status,
        GateStatus::Passed
    );

    // The run, acting with its own run token. A caller-chosen idempotency key is not replayed
    // for createRun (the run token is shown once and never stored): 409 secret_not_replayable
    // naming the run, and no second run.
    let opts = RequestOptions::idempotency_key("native-flow-run-1");
    let created_run = eng
        .create_run(&run_req)
        .options(opts.clone())
        .send()
        .await
        .unwrap();
    let replay = eng
        .create_run(&run_req)
        .options(opts.clone())
        .send()
        .await
        .unwrap_err();
    assert_eq!(replay.code(), Some("secret_not_replayable"), "{replay:?}");
    assert!(
        replay.to_string().contains(&created_run.run.id),
        "the problem names the run: {replay}"
    );
    let run_id = created_run.run.id.clone();
    let run = eng.with_token(created_run.run_token.clone()).unwrap();
    let who = run.who_am_i().send().await.unwrap();
    assert_eq!(who.run_id.as_deref(), Some(run_id.as_str()));
    assert_eq!(
        run.get_run(&run_id).send().await.unwrap().status,
        RunStatus::Running
    );
    assert_eq!(eng.list_runs().collect_all().await.unwrap().len(), 1);

    let batch = run
        .append_metrics(
            &run_id,
            &AppendMetricsRequest::new(vec![
                MetricPoint::new("loss", 0, 0.9),
                MetricPoint::new("loss", 1, 0.4),
            ]),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(batch.count, 2);
    let points = run
        .list_metrics(&run_id, Some("loss"))
        .collect_all()
        .await
        .unwrap();
    assert_eq!(points.len(), 2);

    let art = run
        .upload_artifact_bytes(&run_id, "model/weights.bin", b"weights".to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(art.sha256, sha256_hex(b"weights"));
    let err = run
        .upload_artifact(
            &run_id,
            "model/other.bin",
            &sha256_hex(b"x"),
            datapilot::transport::Body::Bytes(b"y".to_vec().into()),
        )
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("digest_mismatch"));
    assert_eq!(
        run.get_artifact(&run_id, &art.id)
            .send()
            .await
            .unwrap()
            .size,
        7
    );
    assert_eq!(
        run.list_artifacts(&run_id)
            .collect_all()
            .await
            .unwrap()
            .len(),
        1
    );
    let content = run
        .download_artifact(&run_id, &art.id)
        .send()
        .await
        .unwrap();
    assert_eq!(content.bytes, b"weights");

    let finished = run
        .finish_run(&run_id, &FinishRunRequest::new(RunStatus::Succeeded))
        .send()
        .await
        .unwrap();
    assert!(finished.is_sealed());
    let err = run
        .append_metrics(
            &run_id,
            &AppendMetricsRequest::new(vec![MetricPoint::new("loss", 2, 0.1)]),
        )
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("run_sealed"));

    // Lineage.
    let lineage = eng.get_run_lineage(&run_id).send().await.unwrap();
    assert!(lineage.node(&format!("run:{run_id}")).is_some());
    assert!(lineage.edges.len() >= 4, "{lineage:?}");
    let vl = eng
        .get_dataset_version_lineage(&ds.id, &digest)
        .send()
        .await
        .unwrap();
    assert!(vl.node(&format!("run:{run_id}")).is_some());

    // Audit and ledger.
    let events = admin
        .list_audit_events(&AuditEventFilter::new().with_subject(format!("run:{run_id}")))
        .limit(2)
        .collect_all()
        .await
        .unwrap();
    assert!(events.len() >= 4, "{events:?}");
    let first = admin.get_audit_event(events[0].seq).send().await.unwrap();
    assert_eq!(first.action, "run.create");
    let entries = admin
        .list_ledger_entries(None)
        .limit(3)
        .collect_all()
        .await
        .unwrap();
    let tree_size = entries.len() as u64;
    assert!(tree_size > 10);
    let incl = admin
        .get_inclusion_proof(first.seq, Some(tree_size))
        .send()
        .await
        .unwrap();
    assert_eq!(incl.leaf_hash, first.leaf_hash);
    let cp_text = admin.get_checkpoint().send().await.unwrap();
    let (cp, _) =
        datapilot::checkpoint::open_checkpoint(&cp_text, std::slice::from_ref(&verifier)).unwrap();
    let leaf = support::base64_decode(&entries[first.seq as usize].leaf);
    let path: Vec<_> = incl
        .hashes
        .iter()
        .map(|h| support::base64_decode(h))
        .collect();
    datapilot::merkle::verify_inclusion_bytes(
        &datapilot::merkle::leaf_hash(&leaf),
        first.seq,
        cp.tree_size,
        &path,
        &cp.root_hash,
    )
    .unwrap();
    let cons = admin.get_consistency_proof(2, None).send().await.unwrap();
    assert_eq!(cons.to, cp.tree_size);

    World {
        server,
        admin,
        verifier,
        dataset_id: ds.id,
        digest,
        run_id,
        trusted_checkpoint,
    }
}

#[tokio::test(flavor = "current_thread")]
async fn full_flow_export_and_verify() {
    let w = full_flow().await;
    let v = [w.verifier.clone()];

    let bundle = w
        .admin
        .export_run_evidence(&w.run_id, None)
        .send()
        .await
        .unwrap();
    let report = verify_bundle(&bundle, &v);
    assert!(report.ok, "{report:#?}");
    let size = report.summary.tree_size.unwrap();
    // Deterministic: same scope and tree size, same bytes.
    let again = w
        .admin
        .export_run_evidence(&w.run_id, Some(size))
        .send()
        .await
        .unwrap();
    assert_eq!(bundle, again);

    let vb = w
        .admin
        .export_dataset_version_evidence(&w.dataset_id, &w.digest, None)
        .send()
        .await
        .unwrap();
    let vr = verify_bundle(&vb, &v);
    assert!(vr.ok, "{vr:#?}");

    // Online step: consistency from the checkpoint trusted at the start.
    let (trusted, _) = datapilot::checkpoint::open_checkpoint(&w.trusted_checkpoint, &v).unwrap();
    let proof = w
        .admin
        .get_consistency_proof(trusted.tree_size, Some(size))
        .send()
        .await
        .unwrap();
    let opts = VerifyOptions::default().with_consistency(ConsistencyInput {
        trusted_checkpoint: w.trusted_checkpoint.clone(),
        proof: proof.hashes,
    });
    let r = verify_bundle_with(&bundle, &v, &opts);
    assert!(r.ok, "{r:#?}");
    assert!(r.check(checks::CONSISTENCY).unwrap().passed);

    // Revoked tokens stop working.
    let tokens = w.admin.list_tokens().collect_all().await.unwrap();
    let ci = tokens.iter().find(|t| t.name == "ci").unwrap();
    let revoked = w.admin.revoke_token(&ci.id).send().await.unwrap();
    assert!(revoked.revoked_at.is_some());
    drop(w.server);
}

#[tokio::test(flavor = "current_thread")]
async fn tampered_real_bundles_are_rejected() {
    let w = full_flow().await;
    let v = [w.verifier.clone()];
    let bundle = w
        .admin
        .export_run_evidence(&w.run_id, None)
        .send()
        .await
        .unwrap();
    assert!(verify_bundle(&bundle, &v).ok);

    let archive = Archive::read(&bundle, &Limits::default()).unwrap();
    let parts = support::Parts {
        members: archive
            .members
            .iter()
            .map(|m| (m.name.clone(), m.bytes.clone()))
            .collect(),
    };
    // Re-zipping the untouched members reproduces a valid bundle (so failures below come from
    // the tampering, not the re-zip).
    assert!(verify_bundle(&parts.zip(), &v).ok);

    for name in members::ALL {
        let original = parts.get(name).to_vec();
        let lines: Vec<&[u8]> = original.split_inclusive(|b| *b == b'\n').collect();
        let mut cases: Vec<(&str, Vec<u8>)> = Vec::new();
        let mut flipped = original.clone();
        let mid = flipped.len() / 2;
        flipped[mid] ^= 0x01;
        cases.push(("flipped byte", flipped));
        cases.push(("truncated", original[..original.len() / 2].to_vec()));
        cases.push((
            "inserted line",
            [original.as_slice(), b"{\"x\":1}\n"].concat(),
        ));
        if lines.len() > 1 {
            cases.push(("removed line", lines[1..].concat()));
        }
        for (how, bytes) in cases {
            let mut t = parts.clone();
            t.set(name, bytes);
            let r = verify_bundle(&t.zip(), &v);
            let expected = if name == members::ENVELOPE {
                checks::DSSE_SIGNATURE
            } else {
                checks::STATEMENT_SUBJECTS
            };
            assert!(!r.ok, "{name} {how} accepted");
            assert!(!r.check(expected).unwrap().passed, "{name} {how}: {r:#?}");
        }
    }

    // Swapped proofs.
    let proofs = parts.get(members::PROOFS).to_vec();
    let mut pl: Vec<&[u8]> = proofs.split_inclusive(|b| *b == b'\n').collect();
    assert!(pl.len() > 1);
    pl.swap(0, 1);
    let mut t = parts.clone();
    t.set(members::PROOFS, pl.concat());
    let r = verify_bundle(&t.zip(), &v);
    assert!(!r.check(checks::STATEMENT_SUBJECTS).unwrap().passed);
    assert!(!r.check(checks::INCLUSION_PROOFS).unwrap().passed, "{r:#?}");

    // Extra member.
    let mut t = parts.clone();
    t.set("extra.txt", b"hi".to_vec());
    let r = verify_bundle(&t.zip(), &v);
    assert!(!r.check(checks::ARCHIVE_MEMBERS).unwrap().passed);
    assert!(!r.check(checks::STATEMENT_SUBJECTS).unwrap().passed);

    // Statement re-signed with a key that is not pinned.
    let mut t = parts.clone();
    let statement = t.statement();
    t.sign_statement(&statement, &support::other_signer());
    let r = verify_bundle(&t.zip(), &v);
    assert_eq!(
        r.first_failure().unwrap().name,
        checks::DSSE_SIGNATURE,
        "{r:#?}"
    );
}
