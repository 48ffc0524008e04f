//! Writes the seed corpus of every fuzz target, from the tests' fixtures and builders:
//! `seeds <corpus dir>` creates `<corpus dir>/<target>/seed-<name>` (overwriting earlier seeds,
//! leaving what the fuzzer added alone). `./x fuzz` runs it before fuzzing; nothing it writes
//! is committed, since every seed can be made again from the tests.

use std::path::Path;

use datapilot::checkpoint::{open_checkpoint, sign_note, Checkpoint};
use datapilot::evidence::{verify_bundle, Archive, Limits};
use datapilot::manifest::{FileEntry, FileHasher, ManifestBuilder};
use datapilot::model::evidence::members;
use datapilot_fuzz_support::test_bundles::{self as tb, Parts};
use datapilot_fuzz_support::{
    fixture_signer, join_parts, server_input, signed_bundle, signers, split_parts, stored_zip,
    test_signer, unsigned_parts, verifiers, FIXTURE_BUNDLE, FIXTURE_CHECKPOINT,
};
use serde_json::json;

fn main() {
    let root = std::env::args_os()
        .nth(1)
        .expect("usage: seeds <corpus dir>");
    let root = Path::new(&root);
    let mut total = 0;
    for (target, seeds) in [
        ("bundle_zip", bundles()),
        ("bundle_verify", bundles()),
        ("bundle_verify_signed", parts()),
        ("checkpoint", notes()),
        ("manifest", manifests()),
        ("jcs", json_texts()),
        ("server_extract", requests()),
    ] {
        let dir = root.join(target);
        std::fs::create_dir_all(&dir).expect("create the corpus directory");
        for (name, bytes) in &seeds {
            std::fs::write(dir.join(format!("seed-{name}")), bytes).expect("write a seed");
        }
        total += seeds.len();
    }
    check_seeds();
    println!("{total} seeds in {}", root.display());
}

/// The seeds that stand for valid input must be valid, or the targets would start from
/// nothing but refusals: checked on every run, so a format change that leaves a fixture or the
/// tests' builder behind is noticed here rather than as a silently shallow fuzzing run.
fn check_seeds() {
    let verifiers = verifiers();
    for (name, bytes) in bundles().iter().take(4) {
        let report = verify_bundle(bytes, &verifiers);
        assert!(
            report.ok,
            "seed {name} does not verify: {:?}",
            report.first_failure()
        );
    }
    for (name, input) in parts().iter().take(2) {
        let bundle = signed_bundle(&split_parts(input), &signers());
        let report = verify_bundle(&bundle, &verifiers);
        assert!(
            report.ok,
            "seed {name} does not verify: {:?}",
            report.first_failure()
        );
    }
    for (name, note) in notes().iter().filter(|(n, _)| n.contains("checkpoint")) {
        let note = std::str::from_utf8(note).expect("UTF-8");
        assert!(
            open_checkpoint(note, &verifiers).is_ok(),
            "seed {name} does not open"
        );
    }
}

type Seeds = Vec<(String, Vec<u8>)>;

/// A file of a manifest seed: path and content.
type File = (&'static str, &'static [u8]);

/// Whole bundles: the server's fixture, the tests' run bundle, both as canonical stored zips,
/// and the degenerate cases the reader must refuse politely.
fn bundles() -> Seeds {
    let test_run = Parts::run_bundle();
    let fixture_parts = unsigned_parts(FIXTURE_BUNDLE).expect("the fixture bundle is valid");
    let fixture_parts: Vec<&[u8]> = fixture_parts.iter().map(Vec::as_slice).collect();
    // An ordinary zip (a data descriptor, no fixed dates) of the same members: every layout
    // rule has a reason to fire.
    let archive = Archive::read(FIXTURE_BUNDLE, &Limits::default()).expect("fixture reads");
    let one: Vec<(String, Vec<u8>)> = vec![(members::POLICY.into(), b"{}".to_vec())];
    vec![
        ("fixture-run-bundle.zip".into(), FIXTURE_BUNDLE.to_vec()),
        ("tests-run-bundle.zip".into(), test_run.zip()),
        (
            "fixture-stored.zip".into(),
            signed_bundle(&fixture_parts, &signers()),
        ),
        (
            "tests-run-bundle-stored.zip".into(),
            stored_zip(&test_run.members),
        ),
        ("one-member.zip".into(), stored_zip(&one)),
        ("empty.zip".into(), stored_zip(&[])),
        (
            "reordered.zip".into(),
            stored_zip(
                &archive
                    .members
                    .iter()
                    .rev()
                    .map(|m| (m.name.clone(), m.bytes.clone()))
                    .collect::<Vec<_>>(),
            ),
        ),
    ]
}

/// Inputs of `bundle_verify_signed`: bundles as parts, which the target signs itself.
fn parts() -> Seeds {
    let fixture = unsigned_parts(FIXTURE_BUNDLE).expect("the fixture bundle is valid");
    let test_run = unsigned_parts(&Parts::run_bundle().zip()).expect("the tests' bundle is valid");
    // A dataset version bundle of the tests' world (scope, lineage and slice differ).
    let mut version = Parts::run_bundle();
    version.sign_as(tb::version_scope(), &test_signer());
    let version = unsigned_parts(&version.zip()).expect("the version bundle reads");
    vec![
        ("fixture-run".into(), join_parts(&fixture)),
        ("tests-run".into(), join_parts(&test_run)),
        ("tests-version-scope".into(), join_parts(&version)),
    ]
}

/// Signed notes and key strings (one per line), from the fixture and the tests' ledger.
fn notes() -> Seeds {
    let fixture = fixture_signer();
    let test = test_signer();
    let mut seeds: Seeds = vec![
        (
            "fixture-checkpoint".into(),
            FIXTURE_CHECKPOINT.as_bytes().to_vec(),
        ),
        (
            "keys".into(),
            format!(
                "{}\n{}\n{}\n{}\n",
                fixture.verifier_string(),
                test.verifier_string(),
                fixture.signer_key_string(),
                test.signer_key_string()
            )
            .into_bytes(),
        ),
    ];
    for size in [0, 1, 7, 10, 11] {
        seeds.push((
            format!("tests-checkpoint-{size}"),
            tb::signed_checkpoint(size, &test).into_bytes(),
        ));
    }
    // Two signers, an unknown one and an extension line.
    let cp = Checkpoint {
        origin: tb::ORIGIN.into(),
        tree_size: 3,
        root_hash: tb::leaf_hashes(1)[0],
        extensions: vec!["Timestamp: 1700000000".into()],
    };
    let mut two = cp.sign(&test).expect("sign");
    let other = sign_note(&cp.to_text().expect("text"), &tb::other_signer()).expect("sign");
    two.push_str(other.rsplit("\n\n").next().expect("a signature line"));
    let by_fixture = sign_note(&cp.to_text().expect("text"), &fixture).expect("sign");
    two.push_str(by_fixture.rsplit("\n\n").next().expect("a signature line"));
    seeds.push(("two-signers-extension".into(), two.into_bytes()));
    seeds
}

/// DPM-1 manifests as the server receives them, from the crosscheck cases
/// (`tests/crosscheck/mod.rs`) and the worked example of `docs/formats.md`.
fn manifests() -> Seeds {
    let cases: [(&str, &[File]); 3] = [
        (
            "doc-example",
            &[
                ("README.md", b"DataPilot example\n"),
                ("train/data.csv", b"id,label\n1,cat\n2,dog\n"),
                ("train/.keep", b""),
                ("donne\u{301}es/e\u{301}.csv", b"x,y\n1,2\n"),
            ],
        ),
        (
            "crosscheck-names",
            &[
                ("data/train set/part 1.csv", b"a"),
                ("data/.hidden", b"b"),
                ("donne\u{301}es/e\u{301}te\u{301}.csv", b"c"),
                ("\u{65e5}\u{672c}/\u{30c7}\u{30fc}\u{30bf}.bin", b"d"),
                ("Z-upper-sorts-first", b"e"),
            ],
        ),
        ("crosscheck-single-empty-file", &[("empty.txt", b"")]),
    ];
    let mut seeds = Seeds::new();
    for (name, files) in cases {
        let mut builder = ManifestBuilder::new();
        for (path, content) in files {
            let mut h = FileHasher::new();
            h.update(content);
            let (sha, size) = h.finish();
            builder.add_file(path, &sha, size).expect("a valid path");
        }
        let manifest = builder.finish().expect("a non-empty manifest");
        let body = json!({ "digest": manifest.digest(), "files": manifest.files() });
        seeds.push((format!("{name}.json"), body.to_string().into_bytes()));
    }
    // A bare path list with the NFD spelling the server refuses, and a size written as 3.0.
    let nfd = [FileEntry {
        path: "donne\u{301}es/x".into(),
        sha256: "ab".repeat(32),
        size: 3,
    }];
    seeds.push((
        "nfd-list.json".into(),
        serde_json::to_vec(&nfd).expect("json"),
    ));
    seeds.push((
        "float-size.json".into(),
        br#"{"digest":"sha256:00","files":[{"path":"a","sha256":"00","size":3.0}]}"#.to_vec(),
    ));
    seeds
}

/// JSON texts: every JSON member of the fixture bundle (one seed per line of the JSON Lines
/// members), the RFC 8785 examples of `src/jcs.rs`'s tests, and the crosscheck fixture.
fn json_texts() -> Seeds {
    let archive = Archive::read(FIXTURE_BUNDLE, &Limits::default()).expect("fixture reads");
    let mut seeds = Seeds::new();
    for m in &archive.members {
        if m.name.ends_with(".jsonl") {
            for (i, line) in m
                .bytes
                .split(|&b| b == b'\n')
                .filter(|l| !l.is_empty())
                .enumerate()
            {
                seeds.push((format!("{}-{i}", m.name.replace('/', "_")), line.to_vec()));
            }
        } else if m.name.ends_with(".json") {
            seeds.push((m.name.replace('/', "_"), m.bytes.clone()));
        }
    }
    let statement = unsigned_parts(FIXTURE_BUNDLE).expect("fixture")[0].clone();
    seeds.push(("statement.json".into(), statement));
    seeds.push((
        "rfc8785-sample.json".into(),
        br#"{
          "numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],
          "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/",
          "literals": [null, true, false]
        }"#
        .to_vec(),
    ));
    seeds.push((
        "rfc8785-sorting.json".into(),
        br#"{
          "\u20ac": "Euro Sign",
          "\r": "Carriage Return",
          "\ufb33": "Hebrew Letter Dalet With Dagesh",
          "1": "One",
          "\ud83d\ude00": "Emoji: Grinning Face",
          "\u0080": "Control",
          "\u00f6": "Latin Small Letter O With Diaeresis"
        }"#
        .to_vec(),
    ));
    seeds.push((
        "numbers.json".into(),
        b"[0,-0,1e21,1e-7,5e-324,1.7976931348623157e308,9007199254740991,-9007199254740991,9007199254740992,0.1,123.456e3]".to_vec(),
    ));
    seeds.push((
        "crosscheck.json".into(),
        include_bytes!("../../../../tests/fixtures/crosscheck.json").to_vec(),
    ));
    seeds
}

/// Requests of `server_extract`: the bodies, query strings and paths the server tests send.
fn requests() -> Seeds {
    let digest = tb::digest();
    let input = |op: &str, payload: &str| server_input(op, payload.as_bytes());
    let mut manifest = ManifestBuilder::new();
    manifest
        .add_file("train/data.csv", &"ab".repeat(32), 3)
        .expect("path");
    let manifest = manifest.finish().expect("manifest");
    let seeds = [
        ("createDataset", json!({ "name": "imagenet-mini", "description": "d" }).to_string()),
        (
            "registerDatasetVersion",
            json!({ "digest": manifest.digest(), "files": manifest.files(), "note": "v1" })
                .to_string(),
        ),
        (
            "recordGate",
            json!({ "gate": "pii-scan", "status": "passed", "details": { "tool": "scan 1.2" } })
                .to_string(),
        ),
        (
            "updatePolicy",
            json!({ "required_gates": ["pii-scan"], "run_token_ttl_seconds": 86400.0 }).to_string(),
        ),
        (
            "createRun",
            json!({
                "name": "train",
                "inputs": [{ "dataset_id": tb::DS, "digest": digest }],
                "git_commit": tb::COMMIT,
                "image_digest": tb::image(),
                "params": { "lr": "0.01" }
            })
            .to_string(),
        ),
        (
            "finishRun",
            json!({ "status": "succeeded", "outputs": [{ "dataset_id": tb::DS, "digest": digest }] })
                .to_string(),
        ),
        (
            "appendMetrics",
            json!({ "points": [
                { "name": "loss", "step": 1, "value": 0.25, "time": "2026-11-27T03:40:00.000Z" },
                { "name": "acc", "step": 2.0, "value": 1e-3 }
            ] })
            .to_string(),
        ),
        (
            "createToken",
            json!({ "name": "ci", "role": "engineer", "expires_in_seconds": 3600 }).to_string(),
        ),
        ("pageQuery", "limit=10&cursor=azQy".into()),
        ("ledgerEntriesQuery", "start=0&limit=5".into()),
        ("inclusionQuery", "seq=3&tree_size=10".into()),
        ("consistencyQuery", "from=1&to=10".into()),
        ("uploadQuery", format!("name=model%2Fweights.bin&sha256={}", "ab".repeat(32))),
        ("metricsQuery", "name=loss&limit=2&cursor=azE".into()),
        ("auditQuery", format!("subject=run%3A{}&action=run.create&limit=1", tb::RUN)),
        ("evidenceQuery", "tree_size=10".into()),
        ("runPath", tb::RUN.into()),
        ("versionPath", format!("{}/versions/{}", tb::DS, digest.replace(':', "%3A"))),
    ];
    seeds
        .iter()
        .map(|(op, payload)| (op.to_string(), input(op, payload)))
        .collect()
}
