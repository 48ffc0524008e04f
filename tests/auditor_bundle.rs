//! The auditor's path, end to end: a real server writes evidence bundles through a real SDK
//! flow, and the independent Python verifier `tests/auditor/verify_bundle.py` (written from
//! `docs/formats.md` alone) accepts them, with the `cryptography` package if it is installed
//! and with its pure-Python Ed25519 in any case, and rejects a bundle with one flipped byte in
//! `audit.jsonl`, naming the check that failed, exactly as the SDK's verifier does.
//!
//! The server binary comes from `DATAPILOT_SERVER_BIN` if set (`./x test` sets it), else it is
//! built with `cargo build -p datapilot-server` into this test's target dir. `python3` is part
//! of the project's set-up (`./x setup`): without it this test fails, it never skips.

#![cfg(all(not(target_arch = "wasm32"), feature = "native"))]

mod live_server;

use std::io::{Cursor, Write};
use std::path::Path;
use std::process::{Command, Output};
use std::str::FromStr;

use datapilot::checkpoint::Verifier;
use datapilot::evidence::{checks, verify_bundle, Archive, Limits};
use datapilot::model::audit::AuditEventFilter;
use datapilot::model::datasets::{CreateDatasetRequest, FileEntry, RegisterDatasetVersionRequest};
use datapilot::model::evidence::members;
use datapilot::model::gates::{GateOutcome, RecordGateResultRequest};
use datapilot::model::metrics::{AppendMetricsRequest, MetricPoint};
use datapilot::model::policy::UpdatePolicyRequest;
use datapilot::model::runs::{CreateRunRequest, FinishRunRequest, RunStatus};
use datapilot::model::tokens::CreateTokenRequest;
use datapilot::model::{DatasetVersionRef, Role};
use live_server::{client, start_server, Server};

const ADMIN: &str = "dpt_AuditorBundleBootstrapAdmin01";
const SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/auditor/verify_bundle.py"
);

fn version_request(files: &[(&str, &[u8])]) -> RegisterDatasetVersionRequest {
    let mut b = datapilot::manifest::ManifestBuilder::new();
    for (path, content) in files {
        let mut h = datapilot::manifest::FileHasher::new();
        h.update(content);
        let (sha, size) = h.finish();
        b.add_file(path, &sha, size).unwrap();
    }
    let m = b.finish().unwrap();
    RegisterDatasetVersionRequest::new(
        m.digest().to_owned(),
        m.files()
            .iter()
            .map(|f| FileEntry {
                path: f.path.clone(),
                sha256: f.sha256.clone(),
                size: f.size,
            })
            .collect(),
    )
    .with_note("auditor test")
}

/// Runs a small flow that writes every audit action and every kind of lineage edge (a run
/// with two inputs and an output), and exports both bundle kinds.
/// Returns (run bundle, dataset version bundles, pinned verifier key string): the version
/// bundles are of the run's first input (which does not list the run's other input) and of
/// its output.
async fn export_bundles(server: &Server) -> (Vec<u8>, Vec<(&'static str, Vec<u8>)>, String) {
    let admin = client(server, ADMIN);
    let verifier = admin.list_verifier_keys().send().await.unwrap().keys[0]
        .verifier
        .clone();
    // Version 2 of the policy, so that policy.snapshot needs its policy.update event.
    admin
        .update_policy(
            &UpdatePolicyRequest::new(vec!["schema-check".to_owned()])
                .with_run_token_ttl_seconds(3600),
        )
        .send()
        .await
        .unwrap();
    let created = admin
        .create_token(
            &CreateTokenRequest::new("auditor-test", Role::Engineer).with_expires_in_seconds(3600),
        )
        .send()
        .await
        .unwrap();
    let eng = client(server, created.secret.expose());
    let ds = eng
        .create_dataset(&CreateDatasetRequest::new("auditor-cats"))
        .send()
        .await
        .unwrap();
    let input = version_request(&[("train/a.csv", b"id,label\n1,cat\n"), ("README", b"hi\n")]);
    let extra = version_request(&[("labels.csv", b"id,label\n2,dog\n")]);
    let output = version_request(&[("scores.csv", b"id,score\n1,0.9\n")]);
    for req in [&input, &extra, &output] {
        eng.register_dataset_version(&ds.id, req)
            .send()
            .await
            .unwrap();
    }
    for req in [&input, &extra] {
        eng.record_gate_result(
            &ds.id,
            &req.digest,
            &RecordGateResultRequest::new("schema-check", GateOutcome::Passed),
        )
        .send()
        .await
        .unwrap();
    }
    let created_run = eng
        .create_run(
            &CreateRunRequest::new(
                "auditor-run",
                vec![
                    DatasetVersionRef::new(&ds.id, &input.digest),
                    DatasetVersionRef::new(&ds.id, &extra.digest),
                ],
                "4015b57a143aec5156fd1444a017a32137a3fd0f",
                format!("sha256:{}", "6105d6cc".repeat(8)),
            )
            .with_params([("lr".to_owned(), "0.001".to_owned())].into()),
        )
        .send()
        .await
        .unwrap();
    let run_id = created_run.run.id.clone();
    let run = eng.with_token(created_run.run_token.clone()).unwrap();
    run.append_metrics(
        &run_id,
        &AppendMetricsRequest::new(vec![MetricPoint::new("loss", 0, 0.5)]),
    )
    .send()
    .await
    .unwrap();
    run.upload_artifact_bytes(&run_id, "model/weights.bin", b"weights".to_vec())
        .send()
        .await
        .unwrap();
    run.finish_run(
        &run_id,
        &FinishRunRequest::new(RunStatus::Succeeded)
            .with_outputs(vec![DatasetVersionRef::new(&ds.id, &output.digest)]),
    )
    .send()
    .await
    .unwrap();
    admin.revoke_token(&created.token.id).send().await.unwrap();
    let run_bundle = admin
        .export_run_evidence(&run_id, None)
        .send()
        .await
        .unwrap();
    let mut version_bundles = Vec::new();
    for (name, req) in [("input.zip", &input), ("output.zip", &output)] {
        let bundle = admin
            .export_dataset_version_evidence(&ds.id, &req.digest, None)
            .send()
            .await
            .unwrap();
        version_bundles.push((name, bundle));
    }
    (run_bundle, version_bundles, verifier)
}

/// Runs the Python verifier; with `pure_ed25519` the `cryptography` package is made
/// unimportable, so that the script's own RFC 8032 code is exercised.
fn python_verify(bundle: &Path, verifier: &str, pure_ed25519: bool) -> Output {
    let mut cmd = Command::new("python3");
    if pure_ed25519 {
        cmd.args([
            "-c",
            "import runpy, sys; sys.modules['cryptography'] = None; sys.argv = sys.argv[1:]; \
             runpy.run_path(sys.argv[0], run_name='__main__')",
        ]);
    }
    match cmd.arg(SCRIPT).arg(bundle).arg(verifier).output() {
        Ok(out) => out,
        Err(e) => panic!(
            "cannot run python3 ({e}): the auditor test needs Python 3, which `./x setup` \
             installs; it is not optional"
        ),
    }
}

fn stdout(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Re-zips members exactly as the server does (deflate, 1980-01-01, mode 0644, no extras).
fn rezip(members: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .last_modified_time(zip::DateTime::default())
        .unix_permissions(0o644)
        .large_file(false);
    for (name, bytes) in members {
        w.start_file(name.as_str(), opts).unwrap();
        w.write_all(bytes).unwrap();
    }
    w.finish().unwrap().into_inner()
}

#[tokio::test(flavor = "current_thread")]
async fn python_auditor_verifies_real_bundles_and_names_the_failed_check() {
    let server = start_server(ADMIN, "auditor");
    let (run_bundle, version_bundles, verifier) = export_bundles(&server).await;
    let pinned = [Verifier::from_str(&verifier).unwrap()];
    let dir = server.dir.join("bundles");
    std::fs::create_dir_all(&dir).unwrap();

    // Both real bundles pass, with either Ed25519 implementation, and every check is reported.
    let all = [("run.zip", &run_bundle)]
        .into_iter()
        .chain(version_bundles.iter().map(|(n, b)| (*n, b)));
    for (name, bytes) in all {
        let report = verify_bundle(bytes, &pinned);
        assert!(report.ok, "the SDK rejects {name}: {report:#?}");
        // Every edge the events imply is listed (lineage.edges says how many it checked).
        let lineage = &report.check(checks::LINEAGE_EDGES).unwrap().reason;
        assert!(lineage.contains("are listed"), "{name}: {lineage}");
        // The statement links the artifacts and dataset versions by digest (issue 12).
        assert!(
            lineage.contains("artifact and dataset version subjects match the ledger"),
            "{name}: {lineage}"
        );
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        for pure in [false, true] {
            let out = python_verify(&path, &verifier, pure);
            let text = stdout(&out);
            assert!(
                out.status.success(),
                "{name} (pure={pure}) rejected:\n{text}"
            );
            for check in checks::ALWAYS {
                assert!(
                    text.contains(&format!("PASS {check}: ")),
                    "{check}:\n{text}"
                );
            }
            assert!(text.contains("bundle OK"), "{text}");
            if pure {
                assert!(text.contains("Ed25519: pure-Python"), "{text}");
            }
        }
    }

    // Re-zipping the untouched members gives a bundle that still passes, so the failures
    // below come from the tampering and not from the re-zip.
    let archive = Archive::read(&run_bundle, &Limits::default()).unwrap();
    let parts: Vec<(String, Vec<u8>)> = archive
        .members
        .iter()
        .map(|m| (m.name.clone(), m.bytes.clone()))
        .collect();
    assert_eq!(rezip(&parts), run_bundle, "the re-zip is byte-identical");

    // The run bundle lists both of the run's inputs; the input version's bundle lists the
    // run that read it but not the run's other input (outside its scope, so not required).
    let input_edges = |bundle: &[u8]| -> usize {
        let a = Archive::read(bundle, &Limits::default()).unwrap();
        let l: datapilot::model::lineage::Lineage =
            serde_json::from_slice(a.get(members::LINEAGE).unwrap()).unwrap();
        l.edges
            .iter()
            .filter(|e| e.kind.as_str() == "input")
            .count()
    };
    assert_eq!(input_edges(&run_bundle), 2);
    assert_eq!(input_edges(&version_bundles[0].1), 1);

    // Tamperings the signature does not see, or that break it: both verifiers fail the same
    // checks, the first one with the same reason.
    let with = |name: &str, edit: &dyn Fn(&[u8]) -> Vec<u8>| {
        let mut p = parts.clone();
        let m = p.iter_mut().find(|(n, _)| n == name).unwrap();
        m.1 = edit(&m.1);
        p
    };
    let flipped = with(members::AUDIT, &|b| {
        let mut b = b.to_vec();
        let mid = b.len() / 2;
        b[mid] ^= 0x01;
        b
    });
    let mut reordered = parts.clone();
    reordered.swap(4, 5);
    let pretty = with(members::ENVELOPE, &|b| {
        let v: serde_json::Value = serde_json::from_slice(b).unwrap();
        serde_json::to_vec_pretty(&v).unwrap()
    });
    let cases = [
        (
            "one flipped byte in audit.jsonl",
            flipped,
            checks::STATEMENT_SUBJECTS,
            "FAIL statement.subjects: audit.jsonl does not match its signed sha256",
        ),
        (
            "lineage.json and policy.json swapped",
            reordered,
            checks::ARCHIVE_MEMBERS,
            "FAIL archive.members: members are out of order",
        ),
        (
            "envelope pretty-printed (still validly signed)",
            pretty,
            checks::DSSE_SIGNATURE,
            "FAIL dsse.signature: evidence.dsse.json is not canonical (RFC 8785) JSON",
        ),
    ];
    for (n, (what, members, check, line)) in cases.into_iter().enumerate() {
        let tampered = rezip(&members);
        let path = dir.join(format!("tampered-{n}.zip"));
        std::fs::write(&path, &tampered).unwrap();
        let sdk = verify_bundle(&tampered, &pinned);
        assert_eq!(
            sdk.first_failure().map(|c| c.name.as_str()),
            Some(check),
            "{what}: {sdk:#?}"
        );
        for pure in [false, true] {
            let out = python_verify(&path, &verifier, pure);
            let text = stdout(&out);
            assert_eq!(out.status.code(), Some(1), "{what} accepted:\n{text}");
            assert!(text.contains(line), "{what}:\n{text}");
            assert!(text.contains("bundle REJECTED"), "{text}");
            // Every check the SDK fails, the Python verifier fails too, and the other way round.
            for check in &sdk.checks {
                let verdict = if check.passed { "PASS" } else { "FAIL" };
                assert!(
                    text.contains(&format!("{verdict} {}: ", check.name)),
                    "{what}: {} should be {verdict}:\n{text}",
                    check.name
                );
            }
        }
    }

    // A key that is not the server's: nothing signed by it.
    let other = "datapilot.local/ledger+587d2c17+AQOhB7/zzhC+HXDdGOdLwJln5NYwm6UNXx3chmQSVTG4";
    let out = python_verify(&dir.join("run.zip"), other, false);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("FAIL dsse.signature: "), "{text}");
    assert!(text.contains("FAIL checkpoint.signature: "), "{text}");
}

/// The `data` members the table of `docs/formats.md` section 3 gives for `action`, each with
/// its JSON type (`string`, `integer`, `object`, `array`) and whether it may be `null`.
fn doc_data_members(doc: &str, action: &str) -> Vec<(String, String, bool)> {
    let row = doc
        .lines()
        .find(|l| l.starts_with(&format!("| `{action}` |")))
        .unwrap_or_else(|| panic!("docs/formats.md has no table row for {action}"));
    let data = row.split(" | ").nth(2).expect("a data column");
    let mut out = Vec::new();
    let mut rest = data;
    while let Some(open) = rest.find('`') {
        let after = &rest[open + 1..];
        let Some(close) = after.find('`') else { break };
        let (name, tail) = (&after[..close], &after[close + 1..]);
        if let Some(types) = tail.strip_prefix(" (") {
            let kind = types.split([' ', ')', ',']).next().unwrap().to_owned();
            let nullable = types.starts_with(&format!("{kind} or `null`"));
            out.push((name.to_owned(), kind, nullable));
        }
        rest = tail;
    }
    out
}

#[tokio::test(flavor = "current_thread")]
async fn doc_table_names_exactly_the_data_the_server_writes() {
    let server = start_server(ADMIN, "auditor");
    export_bundles(&server).await;
    let doc =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/formats.md")).unwrap();
    let events = client(&server, ADMIN)
        .list_audit_events(&AuditEventFilter::default())
        .collect_all()
        .await
        .unwrap();
    let mut seen = std::collections::BTreeSet::new();
    for e in &events {
        let documented = doc_data_members(&doc, &e.action);
        let data = e.data.as_object().expect("data is an object");
        let mut want: Vec<&str> = documented.iter().map(|(n, _, _)| n.as_str()).collect();
        let mut got: Vec<&str> = data.keys().map(String::as_str).collect();
        want.sort_unstable();
        got.sort_unstable();
        assert_eq!(got, want, "data members of {} (seq {})", e.action, e.seq);
        for (name, kind, nullable) in documented {
            let v = &data[&name];
            let ok = match kind.as_str() {
                "string" => v.is_string(),
                "integer" => v.is_u64(),
                "object" => v.is_object(),
                "array" => v.is_array(),
                other => panic!("unknown type {other} for {}.{name} in the doc", e.action),
            } || (nullable && v.is_null());
            assert!(ok, "{}.{name} is {v}, the doc says {kind}", e.action);
        }
        seen.insert(e.action.clone());
    }
    assert_eq!(seen.len(), 11, "the flow writes every action: {seen:?}");
}
