//! Integration tests over real HTTP against the real binary: every operation, the role matrix,
//! per-object authorization, idempotency, error shapes, immutability, evidence bundles.

mod common;

use base64::Engine;
use common::*;
use rusqlite::OptionalExtension;
use serde_json::{json, Value};

fn b64d(s: &Value) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(s.as_str().unwrap())
        .unwrap()
}

fn hash32(s: &Value) -> [u8; 32] {
    b64d(s).try_into().unwrap()
}

#[tokio::test]
async fn every_operation_end_to_end() {
    let srv = Server::start();
    let admin = srv.client(ADMIN);
    let anon = srv.anon();

    // System.
    let h = anon.get("/v1/health").await;
    assert_eq!(h.status, 200);
    assert_eq!(h.json()["status"], "ok");
    assert_eq!(
        h.json()["tree_size"],
        2,
        "ledger.init + bootstrap token.create"
    );
    let keys = anon.get("/v1/keys").await.json();
    // No --origin: one derived from the key (issue 12), never the old shared default.
    assert!(keys["origin"]
        .as_str()
        .unwrap()
        .starts_with("datapilot.local/ledger/"));
    assert_eq!(keys["keys"][0]["algorithm"], "ed25519");
    let who = admin.get("/v1/whoami").await.json();
    assert_eq!(
        who,
        json!({ "subject": "bootstrap", "role": "admin", "token_id": who["token_id"], "run_id": null })
    );

    // Tokens.
    let eng = admin.with_token(&admin.token("engineer").await);
    let auditor = admin.with_token(&admin.token("auditor").await);
    let viewer = admin.with_token(&admin.token("viewer").await);
    let toks = admin.get("/v1/tokens?limit=2").await.json();
    assert_eq!(toks["items"].as_array().unwrap().len(), 2);
    let next = toks["next_cursor"].as_str().unwrap();
    let toks2 = admin
        .get(&format!("/v1/tokens?limit=2&cursor={next}"))
        .await
        .json();
    assert_eq!(toks2["items"].as_array().unwrap().len(), 2);
    assert_eq!(toks2["next_cursor"], Value::Null);

    // Datasets and versions.
    let r = eng
        .post(
            "/v1/datasets",
            json!({ "name": "churn", "description": "features" }),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let ds = r.json()["id"].as_str().unwrap().to_string();
    assert!(ds.starts_with("ds_") && ds.len() == 29);
    eng.post("/v1/datasets", json!({ "name": "churn" }))
        .await
        .assert_problem(409, "already_exists");
    assert_eq!(
        viewer.get(&format!("/v1/datasets/{ds}")).await.json()["name"],
        "churn"
    );
    assert_eq!(
        viewer.get("/v1/datasets").await.json()["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    let (digest, files) = manifest("v1", 4);
    let path = format!("/v1/datasets/{ds}/versions");
    let r = eng
        .post(
            &path,
            json!({ "digest": digest, "files": files, "note": "first" }),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let v = r.json();
    assert_eq!(v["file_count"], 4);
    assert_eq!(v["gate_status"], "passed", "no gates required yet");
    // Same manifest again: the existing version, 200, no new event.
    let again = eng
        .post(
            &path,
            json!({ "digest": digest, "files": files, "note": "first" }),
        )
        .await;
    assert_eq!(again.status, 200);
    assert_eq!(again.json()["audit_seq"], v["audit_seq"]);
    // A wrong digest is refused after recomputation.
    let (other, _) = manifest("other", 4);
    eng.post(&path, json!({ "digest": other, "files": files }))
        .await
        .assert_problem(422, "digest_mismatch");
    // Invalid paths are validation errors.
    let bad = json!({ "digest": digest, "files": [{ "path": "../etc/passwd", "sha256": "0".repeat(64), "size": 1 }] });
    eng.post(&path, bad)
        .await
        .assert_problem(400, "validation_failed");
    let m = viewer
        .get(&format!("{path}/{digest}/manifest"))
        .await
        .json();
    assert_eq!(m["files"].as_array().unwrap().len(), 4);
    assert_eq!(
        viewer.get(&format!("{path}/{digest}")).await.json()["digest"],
        digest
    );
    assert_eq!(
        viewer.get(&path).await.json()["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // Policy and gates.
    let pol = admin
        .put("/v1/policy", json!({ "required_gates": ["schema", "pii"] }))
        .await;
    assert_eq!(pol.status, 200, "{}", pol.text());
    assert_eq!(pol.json()["version"], 2);
    assert_eq!(pol.json()["run_token_ttl_seconds"], 86400);
    assert_eq!(
        viewer.get("/v1/policy").await.json()["required_gates"],
        json!(["schema", "pii"])
    );
    assert_eq!(
        viewer.get(&format!("{path}/{digest}")).await.json()["gate_status"],
        "pending"
    );
    let run_body = json!({ "name": "train", "inputs": [{ "dataset_id": ds, "digest": digest }],
        "git_commit": "c".repeat(40), "image_digest": format!("sha256:{}", "d".repeat(64)) });
    let r = eng.post("/v1/runs", run_body.clone()).await;
    r.assert_problem(422, "gate_not_passed");
    assert!(r.json()["detail"].as_str().unwrap().contains("schema"));
    let gates = format!("{path}/{digest}/gates");
    let g = auditor
        .post(
            &gates,
            json!({ "gate": "schema", "status": "passed", "details": { "rows": "1000" } }),
        )
        .await;
    assert_eq!(g.status, 201, "{}", g.text());
    assert!(g.json()["id"].as_str().unwrap().starts_with("gr_"));
    eng.post(&gates, json!({ "gate": "pii", "status": "failed" }))
        .await;
    assert_eq!(
        viewer.get(&format!("{path}/{digest}")).await.json()["gate_status"],
        "failed"
    );
    eng.post(&gates, json!({ "gate": "pii", "status": "passed" }))
        .await;
    assert_eq!(
        viewer.get(&format!("{path}/{digest}")).await.json()["gate_status"],
        "passed"
    );
    assert_eq!(
        viewer.get(&gates).await.json()["items"]
            .as_array()
            .unwrap()
            .len(),
        3
    );

    // Runs and the run token.
    let r = eng.post("/v1/runs", run_body).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let created = r.json();
    let run = created["run"]["id"].as_str().unwrap().to_string();
    let rt = eng.with_token(created["run_token"].as_str().unwrap());
    assert_eq!(created["run"]["status"], "running");
    let who = rt.get("/v1/whoami").await.json();
    assert_eq!(
        who,
        json!({ "subject": run, "role": "run", "token_id": null, "run_id": run })
    );
    assert_eq!(rt.get(&format!("/v1/runs/{run}")).await.json()["id"], run);
    assert_eq!(viewer.get("/v1/runs").await.json()["items"][0]["id"], run);

    // Metrics: the digest is SHA-256 of the JCS of the points as submitted.
    let points = json!([{ "name": "loss", "step": 0, "value": 0.5 }, { "name": "loss", "step": 1, "value": 1e-7 },
                        { "name": "acc", "step": 1, "value": 1.0, "time": "2026-11-27T03:38:50.123Z" }]);
    let r = rt
        .post(
            &format!("/v1/runs/{run}/metrics"),
            json!({ "points": points }),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let want = format!(
        "sha256:{}",
        sha256_hex(&datapilot::jcs::to_canonical_vec(&points).unwrap())
    );
    assert_eq!(r.json()["digest"], want);
    assert_eq!(r.json()["batch"], 0);
    let listed = viewer
        .get(&format!("/v1/runs/{run}/metrics?name=loss"))
        .await
        .json();
    assert_eq!(listed["items"].as_array().unwrap().len(), 2);
    // Listed as submitted (no time sent: null, so the digest above is recomputable from the
    // listing); the receive time is received_at.
    assert!(
        listed["items"][0]["time"].is_null(),
        "{}",
        listed["items"][0]
    );
    assert!(listed["items"][0]["received_at"]
        .as_str()
        .unwrap()
        .ends_with('Z'));
    let bad = json!({ "points": [{ "name": "bad name!", "step": 0, "value": 1 }] });
    rt.post(&format!("/v1/runs/{run}/metrics"), bad)
        .await
        .assert_problem(400, "validation_failed");

    // Artifacts: hashed while streaming.
    let bytes = b"model weights".repeat(1000);
    let sha = sha256_hex(&bytes);
    let r = rt.upload(&run, "model/weights.bin", &bytes, &sha).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let art = r.json()["id"].as_str().unwrap().to_string();
    rt.upload(&run, "model/other.bin", b"xyz", &sha)
        .await
        .assert_problem(422, "digest_mismatch");
    rt.upload(&run, "model/weights.bin", &bytes, &sha)
        .await
        .assert_problem(409, "already_exists");
    let r = rt
        .send(
            "POST",
            &format!("/v1/runs/{run}/artifacts?name=x&sha256={sha}"),
            &[("content-type", "text/plain")],
            Some(bytes.clone()),
        )
        .await;
    r.assert_problem(415, "unsupported_media_type");
    let d = rt
        .get(&format!("/v1/runs/{run}/artifacts/{art}/content"))
        .await;
    assert_eq!(d.status, 200);
    assert_eq!(d.body, bytes);
    assert_eq!(d.header("x-content-sha256"), Some(sha.as_str()));
    assert_eq!(
        viewer
            .get(&format!("/v1/runs/{run}/artifacts/{art}"))
            .await
            .json()["size"],
        bytes.len()
    );
    assert_eq!(
        viewer
            .get(&format!("/v1/runs/{run}/artifacts"))
            .await
            .json()["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // Finish with an output version; the run is sealed.
    let out_digest = eng.version(&ds, "output").await;
    let fin = rt
        .post(&format!("/v1/runs/{run}/finish"), json!({ "status": "succeeded", "outputs": [{ "dataset_id": ds, "digest": out_digest }] }))
        .await;
    assert_eq!(fin.status, 200, "{}", fin.text());
    assert_eq!(fin.json()["status"], "succeeded");
    eng.post(
        &format!("/v1/runs/{run}/finish"),
        json!({ "status": "failed" }),
    )
    .await
    .assert_problem(409, "run_sealed");
    rt.post(
        &format!("/v1/runs/{run}/metrics"),
        json!({ "points": points }),
    )
    .await
    .assert_problem(409, "run_sealed");
    rt.upload(&run, "late.bin", b"abc", &sha256_hex(b"abc"))
        .await
        .assert_problem(409, "run_sealed");
    assert_eq!(
        rt.get(&format!("/v1/runs/{run}")).await.status,
        200,
        "reads keep working"
    );

    // Lineage.
    let lin = viewer.get(&format!("/v1/runs/{run}/lineage")).await.json();
    let kinds: Vec<&str> = lin["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    for k in ["input", "built_from", "executed_in", "produced"] {
        assert!(kinds.contains(&k), "{k} missing in {lin}");
    }
    assert_eq!(lin["edges"].as_array().unwrap().len(), 5, "{lin}");
    let vlin = viewer.get(&format!("{path}/{digest}/lineage")).await.json();
    assert!(vlin["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .any(|n| n["id"] == format!("run:{run}")));

    // Audit.
    let ev = auditor
        .get(&format!("/v1/audit/events?subject=run:{run}"))
        .await
        .json();
    let actions: Vec<&str> = ev["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "run.create",
            "metrics.append",
            "artifact.upload",
            "run.finish"
        ]
    );
    assert_eq!(
        ev["items"][1]["actor"],
        json!({ "kind": "run", "id": run, "role": "run" })
    );
    let first = auditor.get("/v1/audit/events/0").await.json();
    assert_eq!(first["action"], "ledger.init");
    assert_eq!(
        first["actor"],
        json!({ "kind": "system", "id": "system", "role": "system" })
    );
    auditor
        .get("/v1/audit/events/999999")
        .await
        .assert_problem(404, "not_found");
    let only = auditor
        .get("/v1/audit/events?action=gate.record")
        .await
        .json();
    assert_eq!(only["items"].as_array().unwrap().len(), 3);

    // Ledger: entries, proofs, checkpoint.
    let (size, root, _) = checkpoint(&viewer).await;
    let mut all = Vec::new();
    // The leaves are the audit events: auditor and admin only (checkpoints and proofs are not).
    for api in [&viewer, &eng] {
        api.get("/v1/ledger/entries?start=0")
            .await
            .assert_problem(403, "forbidden");
    }
    let mut next = String::from("/v1/ledger/entries?start=0&limit=7");
    loop {
        let page = auditor.get(&next).await.json();
        all.extend(page["items"].as_array().unwrap().clone());
        match page["next_cursor"].as_str() {
            Some(c) => next = format!("/v1/ledger/entries?limit=7&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(all.len() as u64, size);
    let leaves: Vec<[u8; 32]> = all
        .iter()
        .map(|e| datapilot::merkle::leaf_hash(&b64d(&e["leaf"])))
        .collect();
    assert_eq!(datapilot::merkle::root_from_leaf_hashes(&leaves), root);
    // Every leaf is JCS.
    for e in &all {
        assert!(datapilot::jcs::is_canonical(&b64d(&e["leaf"])));
    }
    auditor
        .get("/v1/ledger/entries?start=0&cursor=abc")
        .await
        .assert_problem(400, "bad_request");
    for seq in [0, size / 2, size - 1] {
        let p = viewer
            .get(&format!(
                "/v1/ledger/proofs/inclusion?seq={seq}&tree_size={size}"
            ))
            .await
            .json();
        let hashes: Vec<[u8; 32]> = p["hashes"].as_array().unwrap().iter().map(hash32).collect();
        datapilot::merkle::verify_inclusion(&hash32(&p["leaf_hash"]), seq, size, &hashes, &root)
            .unwrap();
    }
    viewer
        .get(&format!("/v1/ledger/proofs/inclusion?seq={size}"))
        .await
        .assert_problem(400, "bad_request");
    let old = 5;
    let old_root = datapilot::merkle::root_from_leaf_hashes(&leaves[..old]);
    let c = viewer
        .get(&format!("/v1/ledger/proofs/consistency?from={old}"))
        .await
        .json();
    let hashes: Vec<[u8; 32]> = c["hashes"].as_array().unwrap().iter().map(hash32).collect();
    datapilot::merkle::verify_consistency(old as u64, size, &hashes, &old_root, &root).unwrap();
    viewer
        .get("/v1/ledger/proofs/consistency?from=0")
        .await
        .assert_problem(400, "bad_request");

    // Evidence: verifies offline with the pinned key, and is byte-identical on re-export.
    let v = verifier(&viewer).await;
    let b1 = auditor.get(&format!("/v1/runs/{run}/evidence")).await;
    assert_eq!(b1.status, 200, "{}", b1.text());
    assert_eq!(b1.header("content-type"), Some("application/zip"));
    let report = datapilot::evidence::verify_bundle(&b1.body, std::slice::from_ref(&v));
    assert!(report.ok, "{:#?}", report.failed());
    // More writes, then export at the old size: the same bytes.
    eng.dataset("later").await;
    let b2 = eng
        .get(&format!("/v1/runs/{run}/evidence?tree_size={size}"))
        .await;
    assert_eq!(b1.body, b2.body, "deterministic bundle");
    let vb = auditor.get(&format!("{path}/{digest}/evidence")).await;
    assert_eq!(vb.status, 200);
    let report = datapilot::evidence::verify_bundle(&vb.body, &[v]);
    assert!(report.ok, "{:#?}", report.failed());
    viewer
        .get(&format!("/v1/runs/{run}/evidence"))
        .await
        .assert_problem(403, "forbidden");
    eng.get(&format!("/v1/runs/{run}/evidence?tree_size=3"))
        .await
        .assert_problem(404, "not_found");
    eng.get(&format!("/v1/runs/{run}/evidence?tree_size=0"))
        .await
        .assert_problem(400, "validation_failed");

    // Revocation.
    let t = admin
        .post(
            "/v1/tokens",
            json!({ "name": "temp", "role": "viewer", "expires_in_seconds": 3600 }),
        )
        .await
        .json();
    let tid = t["token"]["id"].as_str().unwrap();
    let temp = admin.with_token(t["secret"].as_str().unwrap());
    assert_eq!(temp.get("/v1/whoami").await.status, 200);
    let rv = admin
        .send("POST", &format!("/v1/tokens/{tid}/revoke"), &[], None)
        .await;
    assert_eq!(rv.status, 200, "{}", rv.text());
    assert!(rv.json()["revoked_at"].is_string());
    temp.get("/v1/whoami")
        .await
        .assert_problem(401, "unauthenticated");
    admin
        .send("POST", &format!("/v1/tokens/{tid}/revoke"), &[], None)
        .await
        .assert_problem(409, "immutable");
}

/// The role matrix, generated from the contract: every operation of
/// `openapi/datapilot.v1.yaml` × every kind of principal (each API role, the run token of the
/// run in the path, the run token of another run, no credentials), against real objects so
/// path parameters resolve. Allowed per `x-datapilot-roles` means neither 401 nor 403 (nor a
/// 404/405/5xx); refused means 403 `forbidden`, or 401 `unauthenticated` without credentials.
/// POSTs are sent with and without an `Idempotency-Key` (the idempotency layer authorizes
/// before it buffers the body, and must agree with the handlers).
#[tokio::test]
async fn role_matrix_from_the_contract() {
    let contract: Value = serde_norway::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../openapi/datapilot.v1.yaml"
        ))
        .unwrap(),
    )
    .unwrap();

    let srv = Server::start();
    let admin = srv.client(ADMIN);
    let ds = admin.dataset("matrix").await;
    let digest = admin.version(&ds, "m").await;
    let (run, run_token) = admin.run(&[(&ds, &digest)]).await;
    let (_, other_run_token) = admin.run(&[(&ds, &digest)]).await;
    // reissueRunToken replaces the token of the run in its path: give it a run of its own, so
    // the run token principals keep working for the other operations.
    let (reissue_run, _) = admin.run(&[(&ds, &digest)]).await;
    let art = admin
        .with_token(&run_token)
        .upload(&run, "m.bin", b"matrix", &sha256_hex(b"matrix"))
        .await;
    assert_eq!(art.status, 201, "{}", art.text());
    let art = art.json()["id"].as_str().unwrap().to_string();
    let spare = admin
        .post(
            "/v1/tokens",
            json!({ "name": "to revoke", "role": "viewer" }),
        )
        .await
        .json()["token"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    // A manifest upload to address (its parts and commit are refused for a missing or
    // mismatched manifest, never consumed, so every principal meets the same upload).
    let upload = admin
        .post(
            &format!("/v1/datasets/{ds}/manifest-uploads"),
            json!({ "digest": format!("sha256:{}", "0".repeat(64)) }),
        )
        .await;
    assert_eq!(upload.status, 201, "{}", upload.text());
    let upload = upload.json()["id"].as_str().unwrap().to_string();
    let mut principals: Vec<(&str, Option<String>)> = vec![("admin", Some(ADMIN.to_string()))];
    for role in ["viewer", "engineer", "auditor"] {
        principals.push((role, Some(admin.token(role).await)));
    }
    principals.push(("run", Some(run_token)));
    principals.push(("other run", Some(other_run_token)));
    principals.push(("none", None));

    let mut ops = 0;
    for (template, item) in contract["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            if !["get", "post", "put", "delete", "patch"].contains(&method.as_str()) {
                continue;
            }
            ops += 1;
            let id = op["operationId"].as_str().unwrap();
            let roles: Vec<&str> = op["x-datapilot-roles"]
                .as_array()
                .unwrap_or_else(|| panic!("{id} has no x-datapilot-roles"))
                .iter()
                .map(|r| r.as_str().unwrap())
                .collect();
            let mut path = template.clone();
            for (param, value) in [
                ("dataset_id", ds.as_str()),
                ("digest", digest.as_str()),
                (
                    "run_id",
                    if id == "reissueRunToken" {
                        reissue_run.as_str()
                    } else {
                        run.as_str()
                    },
                ),
                ("artifact_id", art.as_str()),
                ("seq", "0"),
                ("token_id", spare.as_str()),
                ("upload_id", upload.as_str()),
                ("part", "1"),
            ] {
                path = path.replace(&format!("{{{param}}}"), value);
            }
            assert!(
                !path.contains('{'),
                "{id}: unknown path parameter in {template}"
            );
            let on_run = template.contains("{run_id}");
            // A manifest upload is its creator's (the admin here): another allowed principal
            // gets the 404 of an unknown id, which still shows that its role was let through.
            let creators_only = template.contains("{upload_id}");
            let content = &op["requestBody"]["content"];
            let (content_type, body) = if content.get("application/json").is_some() {
                ("application/json", Some(b"{}".to_vec()))
            } else if content.get("application/octet-stream").is_some() {
                (
                    "application/octet-stream",
                    Some(b"not what was declared".to_vec()),
                )
            } else {
                ("application/json", None)
            };
            let method = method.to_uppercase();
            let keyed = if method == "POST" {
                vec![false, true]
            } else {
                vec![false]
            };
            for (who, secret) in &principals {
                let allowed = match *who {
                    _ if roles.is_empty() => true,
                    "none" => false,
                    "run" => roles.contains(&"run"),
                    "other run" => roles.contains(&"run") && !on_run,
                    role => roles.contains(&role),
                };
                for &with_key in &keyed {
                    let api = match secret {
                        Some(s) => admin.with_token(s),
                        None => srv.anon(),
                    };
                    let key = format!("matrix-{id}-{}", who.replace(' ', "-"));
                    let mut headers = vec![("content-type", content_type)];
                    if with_key {
                        headers.push(("idempotency-key", key.as_str()));
                    }
                    let r = api.send(&method, &path, &headers, body.clone()).await;
                    let what = format!("{id} {method} {path} as {who} (key: {with_key})");
                    if allowed && creators_only && *who != "admin" {
                        assert!(
                            ![401, 403, 405].contains(&r.status) && r.status < 500,
                            "{what}: should be let through (404 for another's upload), got {} {}",
                            r.status,
                            r.text()
                        );
                    } else if allowed {
                        assert!(
                            ![401, 403, 404, 405].contains(&r.status) && r.status < 500,
                            "{what}: should be allowed, got {} {}",
                            r.status,
                            r.text()
                        );
                    } else {
                        let (status, code) = if *who == "none" {
                            (401, "unauthenticated")
                        } else {
                            (403, "forbidden")
                        };
                        assert_eq!(r.status, status, "{what}: should be refused");
                        r.assert_problem(status, code);
                    }
                }
            }
        }
    }
    assert!(ops >= 37, "the contract has {ops} operations");
    srv.client("dpt_notatokenatall000000")
        .get("/v1/whoami")
        .await
        .assert_problem(401, "unauthenticated");
}

#[tokio::test]
async fn per_object_authorization() {
    let srv = Server::start();
    let admin = srv.client(ADMIN);
    let ds = admin.dataset("objects").await;
    let digest = admin.version(&ds, "o").await;
    let (run_a, tok_a) = admin.run(&[(&ds, &digest)]).await;
    let (run_b, _) = admin.run(&[(&ds, &digest)]).await;
    let a = admin.with_token(&tok_a);
    // Own run: fine. Other run: 403 on every operation.
    assert_eq!(a.get(&format!("/v1/runs/{run_a}")).await.status, 200);
    a.get(&format!("/v1/runs/{run_b}"))
        .await
        .assert_problem(403, "forbidden");
    a.get(&format!("/v1/runs/{run_b}/metrics"))
        .await
        .assert_problem(403, "forbidden");
    a.get(&format!("/v1/runs/{run_b}/artifacts"))
        .await
        .assert_problem(403, "forbidden");
    a.post(
        &format!("/v1/runs/{run_b}/metrics"),
        json!({ "points": [{ "name": "m", "step": 0, "value": 1 }] }),
    )
    .await
    .assert_problem(403, "forbidden");
    a.upload(&run_b, "x", b"x", &sha256_hex(b"x"))
        .await
        .assert_problem(403, "forbidden");
    a.post(
        &format!("/v1/runs/{run_b}/finish"),
        json!({ "status": "failed" }),
    )
    .await
    .assert_problem(403, "forbidden");
    // A run token reaches nothing outside its run.
    a.get("/v1/datasets").await.assert_problem(403, "forbidden");
    a.post("/v1/runs", json!({}))
        .await
        .assert_problem(403, "forbidden");
    a.get("/v1/policy").await.assert_problem(403, "forbidden");
    // A viewer writes nothing.
    let viewer = admin.with_token(&admin.token("viewer").await);
    viewer
        .post("/v1/datasets", json!({ "name": "nope" }))
        .await
        .assert_problem(403, "forbidden");
    viewer
        .post(
            &format!("/v1/runs/{run_a}/finish"),
            json!({ "status": "failed" }),
        )
        .await
        .assert_problem(403, "forbidden");
    // An auditor records gates but writes no datasets or runs.
    let auditor = admin.with_token(&admin.token("auditor").await);
    auditor
        .post("/v1/datasets", json!({ "name": "nope" }))
        .await
        .assert_problem(403, "forbidden");
    // After finish the run token's writes are refused as sealed.
    a.post(
        &format!("/v1/runs/{run_a}/finish"),
        json!({ "status": "succeeded" }),
    )
    .await;
    a.post(
        &format!("/v1/runs/{run_a}/finish"),
        json!({ "status": "succeeded" }),
    )
    .await
    .assert_problem(409, "run_sealed");
}

#[tokio::test]
async fn idempotency_replay_mismatch_and_concurrent_duplicates() {
    let srv = Server::start();
    let admin = srv.client(ADMIN);
    let r1 = admin
        .post_idem("/v1/datasets", "key-1", json!({ "name": "idem" }))
        .await;
    assert_eq!(r1.status, 201);
    assert_eq!(r1.header("idempotent-replayed"), None);
    let r2 = admin
        .post_idem("/v1/datasets", "key-1", json!({ "name": "idem" }))
        .await;
    assert_eq!(r2.status, 201);
    assert_eq!(r2.header("idempotent-replayed"), Some("true"));
    assert_eq!(r1.body, r2.body);
    let n = admin
        .get("/v1/audit/events?action=dataset.create")
        .await
        .json();
    assert_eq!(
        n["items"].as_array().unwrap().len(),
        1,
        "replay wrote nothing"
    );
    admin
        .post_idem("/v1/datasets", "key-1", json!({ "name": "other" }))
        .await
        .assert_problem(422, "idempotency_key_reused");
    // Keys are per principal: another principal may use the same key.
    let eng = admin.with_token(&admin.token("engineer").await);
    assert_eq!(
        eng.post_idem("/v1/datasets", "key-1", json!({ "name": "idem2" }))
            .await
            .status,
        201
    );
    // Bad key.
    admin
        .post_idem("/v1/datasets", "has space", json!({ "name": "z" }))
        .await
        .assert_problem(400, "validation_failed");

    // Concurrent duplicates: hold an upload open on a raw socket, then send the same request
    // with the same key to completion. Both run; the one that commits first records the key,
    // and the other is undone and answered with the winner's response (no 409 to retry on).
    let ds = admin.dataset("flight").await;
    let digest = admin.version(&ds, "f").await;
    let (run, _) = admin.run(&[(&ds, &digest)]).await;
    let body = vec![7u8; 1000];
    let sha = sha256_hex(&body);
    let path = format!("/v1/runs/{run}/artifacts?name=slow.bin&sha256={sha}");
    let addr = srv.base.trim_start_matches("http://").to_string();
    use tokio::io::AsyncWriteExt;
    let mut sock = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {ADMIN}\r\nContent-Type: application/octet-stream\r\nIdempotency-Key: up-1\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    sock.write_all(head.as_bytes()).await.unwrap();
    sock.write_all(&body[..10]).await.unwrap();
    sock.flush().await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let second = admin
        .send(
            "POST",
            &path,
            &[
                ("content-type", "application/octet-stream"),
                ("idempotency-key", "up-1"),
            ],
            Some(body.clone()),
        )
        .await;
    assert_eq!(second.status, 201, "{}", second.text());
    assert_eq!(second.header("idempotent-replayed"), None);
    // Finish the first request: it gets the second's answer, replayed.
    sock.write_all(&body[10..]).await.unwrap();
    use tokio::io::AsyncReadExt;
    let mut buf = vec![0u8; 8192];
    let n = sock.read(&mut buf).await.unwrap();
    let first = String::from_utf8_lossy(&buf[..n]).to_string();
    assert!(first.starts_with("HTTP/1.1 201"), "{first}");
    assert!(
        first
            .to_ascii_lowercase()
            .contains("idempotent-replayed: true"),
        "{first}"
    );
    assert!(!first.contains("x-datapilot-internal"), "{first}");
    let art_id = second.json()["id"].as_str().unwrap().to_string();
    assert!(first.contains(&art_id), "{first}");
    let arts = admin.get(&format!("/v1/runs/{run}/artifacts")).await.json();
    assert_eq!(arts["items"].as_array().unwrap().len(), 1, "{arts}");
}

#[tokio::test]
async fn idempotency_never_keeps_secrets() {
    if skip_on_remote("reads the SQLite file") {
        return;
    }
    let srv = Server::start();
    let admin = srv.client(ADMIN);
    let ds = admin.dataset("secrets").await;
    let digest = admin.version(&ds, "s").await;
    let run_body = json!({ "name": "train", "inputs": [{ "dataset_id": ds, "digest": digest }],
        "git_commit": "a".repeat(40), "image_digest": format!("sha256:{}", "b".repeat(64)) });
    let mut secrets = Vec::new();
    for i in 0..3 {
        let body = json!({ "name": format!("ci-{i}"), "role": "engineer" });
        let key = format!("tok-{i}");
        let r = admin.post_idem("/v1/tokens", &key, body.clone()).await;
        assert_eq!(r.status, 201, "{}", r.text());
        let (id, secret) = (
            r.json()["token"]["id"].as_str().unwrap().to_string(),
            r.json()["secret"].as_str().unwrap().to_string(),
        );
        secrets.push(secret);
        // A retry cannot get the secret again: 409 naming the token.
        let again = admin.post_idem("/v1/tokens", &key, body).await;
        again.assert_problem(409, "secret_not_replayable");
        assert!(
            again.json()["detail"].as_str().unwrap().contains(&id),
            "{}",
            again.text()
        );

        let key = format!("run-{i}");
        let r = admin.post_idem("/v1/runs", &key, run_body.clone()).await;
        assert_eq!(r.status, 201, "{}", r.text());
        let (id, secret) = (
            r.json()["run"]["id"].as_str().unwrap().to_string(),
            r.json()["run_token"].as_str().unwrap().to_string(),
        );
        secrets.push(secret);
        let again = admin.post_idem("/v1/runs", &key, run_body.clone()).await;
        again.assert_problem(409, "secret_not_replayable");
        assert!(
            again.json()["detail"].as_str().unwrap().contains(&id),
            "{}",
            again.text()
        );
        // Nothing was created twice.
        let n = admin
            .get(&format!("/v1/audit/events?subject=run:{id}"))
            .await
            .json();
        assert_eq!(n["items"].as_array().unwrap().len(), 1);
    }
    // Errors of these operations are still replayed as usual.
    let bad = json!({ "name": "x", "role": "superuser" });
    let r1 = admin.post_idem("/v1/tokens", "tok-bad", bad.clone()).await;
    r1.assert_problem(400, "validation_failed");
    let r2 = admin.post_idem("/v1/tokens", "tok-bad", bad).await;
    assert_eq!(r2.header("idempotent-replayed"), Some("true"));
    assert_eq!(r1.body, r2.body);

    // Go around the API: no secret in any column of the idempotency table, nor anywhere in the
    // database files.
    let conn = rusqlite::Connection::open(srv.dir.join("datapilot.sqlite3")).unwrap();
    let mut st = conn
        .prepare("SELECT scope, key, fingerprint, state, status, headers, CAST(body AS TEXT), secret_of FROM idempotency")
        .unwrap();
    let rows: Vec<String> = st
        .query_map([], |r| {
            let mut cols = Vec::new();
            for i in 0..8 {
                let v: rusqlite::types::Value = r.get(i)?;
                cols.push(format!("{v:?}"));
            }
            Ok(cols.join(" | "))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(rows.len() >= 7, "{rows:#?}");
    for row in &rows {
        assert!(
            !row.contains("dpt_") && !row.contains("dpr_"),
            "secret kept: {row}"
        );
    }
    drop(st);
    drop(conn);
    for f in ["datapilot.sqlite3", "datapilot.sqlite3-wal"] {
        let Ok(bytes) = std::fs::read(srv.dir.join(f)) else {
            continue;
        };
        for s in &secrets {
            assert!(
                !bytes.windows(s.len()).any(|w| w == s.as_bytes()),
                "{f} holds a secret"
            );
        }
    }
}

/// If the answer of a keyed request cannot be kept, the key is released (not left in flight
/// for 24 hours): a retry runs again.
#[tokio::test]
async fn idempotency_key_is_released_when_its_answer_cannot_be_kept() {
    if skip_on_remote("injects a SQLite trigger") {
        return;
    }
    let srv = Server::start();
    let admin = srv.client(ADMIN);
    // Go around the API: make completing an idempotency record fail.
    let conn = rusqlite::Connection::open(srv.dir.join("datapilot.sqlite3")).unwrap();
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .unwrap();
    conn.execute_batch(
        "CREATE TRIGGER test_idem_fail BEFORE INSERT ON idempotency
         BEGIN SELECT RAISE(ABORT, 'injected failure'); END;",
    )
    .unwrap();
    // A request that writes nothing (400): its answer is kept by the middleware, which fails.
    let bad = json!({ "name": "NOT VALID" });
    admin
        .post_idem("/v1/datasets", "lost-answer", bad.clone())
        .await
        .assert_problem(400, "validation_failed");
    let state: Option<String> = conn
        .query_row(
            "SELECT state FROM idempotency WHERE key = 'lost-answer'",
            [],
            |r| r.get(0),
        )
        .optional()
        .unwrap();
    assert_eq!(state, None, "the key is not taken");
    let r = admin.post_idem("/v1/datasets", "lost-answer", bad).await;
    r.assert_problem(400, "validation_failed");
    assert_eq!(r.header("idempotent-replayed"), None, "it ran again");
}

/// Send a request head and the first bytes of a body that is never finished; return what the
/// server answers within `wait` (empty if nothing).
async fn answer_to_partial_post(
    srv: &Server,
    path: &str,
    headers: &[(&str, &str)],
    declared: u64,
    wait: std::time::Duration,
) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = srv.base.trim_start_matches("http://").to_string();
    let mut sock = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let mut head =
        format!("POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {declared}\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    sock.write_all(head.as_bytes()).await.unwrap();
    sock.write_all(&[b'{'; 1024]).await.unwrap();
    sock.flush().await.unwrap();
    let mut buf = vec![0u8; 8192];
    match tokio::time::timeout(wait, sock.read(&mut buf)).await {
        Ok(Ok(n)) => String::from_utf8_lossy(&buf[..n]).into_owned(),
        _ => String::new(),
    }
}

/// With an `Idempotency-Key` the body is buffered for the fingerprint, but only after the
/// caller is authorized, and only up to the operation's own cap.
#[tokio::test]
async fn keyed_posts_are_authorized_and_capped_before_the_body_is_read() {
    let srv = Server::start();
    let admin = srv.client(ADMIN);
    let viewer = admin.token("viewer").await;
    let ds = admin.dataset("caps").await;
    let wait = std::time::Duration::from_secs(5);
    // A viewer's 60 MiB manifest: 403 at once, the body is never read.
    let auth = format!("Bearer {viewer}");
    let started = std::time::Instant::now();
    let r = answer_to_partial_post(
        &srv,
        &format!("/v1/datasets/{ds}/versions"),
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
            ("Idempotency-Key", "big-1"),
        ],
        60 << 20,
        wait,
    )
    .await;
    assert!(r.starts_with("HTTP/1.1 403"), "{r:?}");
    assert!(r.contains("\"code\":\"forbidden\""), "{r}");
    assert!(started.elapsed() < wait);
    // A run token on another run's metrics: 403 too.
    let digest = admin.version(&ds, "c").await;
    let (_, tok_a) = admin.run(&[(&ds, &digest)]).await;
    let (run_b, _) = admin.run(&[(&ds, &digest)]).await;
    let auth = format!("Bearer {tok_a}");
    let r = answer_to_partial_post(
        &srv,
        &format!("/v1/runs/{run_b}/metrics"),
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
            ("Idempotency-Key", "big-2"),
        ],
        3 << 20,
        wait,
    )
    .await;
    assert!(r.starts_with("HTTP/1.1 403"), "{r:?}");
    // An admin's 20 MiB createDataset: over its 1 MiB cap (not the 64 MiB of manifests), so
    // 413 at once without reading it.
    let auth = format!("Bearer {ADMIN}");
    let r = answer_to_partial_post(
        &srv,
        "/v1/datasets",
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
            ("Idempotency-Key", "big-3"),
        ],
        20 << 20,
        wait,
    )
    .await;
    assert!(r.starts_with("HTTP/1.1 413"), "{r:?}");
    // Within the cap a keyed request still works, and a 2 MiB createDataset is 413 after
    // being read.
    let big = format!("{{\"name\":\"{}\"}}", "a".repeat(2 << 20));
    admin
        .send(
            "POST",
            "/v1/datasets",
            &[
                ("content-type", "application/json"),
                ("idempotency-key", "big-4"),
            ],
            Some(big.into_bytes()),
        )
        .await
        .assert_problem(413, "payload_too_large");
    let (digest, files) = manifest("keyed-big", 12_000);
    let r = admin
        .post_idem(
            &format!("/v1/datasets/{ds}/versions"),
            "big-5",
            json!({ "digest": digest, "files": files }),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
}

/// `--max-concurrent-requests`: requests beyond the limit wait for a slot.
#[tokio::test]
async fn in_flight_requests_are_limited() {
    let srv = Server::start_with(&[
        "--max-concurrent-requests",
        "1",
        "--max-concurrent-uploads",
        "1",
    ]);
    let anon = srv.anon();
    let admin = srv.client(ADMIN);
    let ds = admin.dataset("slots").await;
    let digest = admin.version(&ds, "s").await;
    let (run, _) = admin.run(&[(&ds, &digest)]).await;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = srv.base.trim_start_matches("http://").to_string();
    // Hold the only upload slot with an upload whose body is still coming.
    let body = vec![1u8; 4096];
    let sha = sha256_hex(&body);
    let mut up = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "POST /v1/runs/{run}/artifacts?name=held.bin&sha256={sha} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {ADMIN}\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    up.write_all(head.as_bytes()).await.unwrap();
    up.write_all(&body[..100]).await.unwrap();
    up.flush().await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    // Other calls are not behind uploads; health never waits.
    let t = std::time::Instant::now();
    assert_eq!(anon.get("/v1/health").await.status, 200);
    assert_eq!(admin.get("/v1/whoami").await.status, 200);
    assert!(
        t.elapsed() < std::time::Duration::from_secs(1),
        "{:?}",
        t.elapsed()
    );
    // A second upload waits for the upload slot.
    let a2 = admin.clone();
    let run2 = run.clone();
    let second = tokio::spawn(async move {
        a2.upload(&run2, "second.bin", b"x", &sha256_hex(b"x"))
            .await
            .status
    });
    // Hold the only request slot too, with a JSON body that is still coming.
    let mut js = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "POST /v1/datasets HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {ADMIN}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{"
    );
    js.write_all(head.as_bytes()).await.unwrap();
    js.flush().await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let a3 = admin.clone();
    let waiting = tokio::spawn(async move { a3.get("/v1/whoami").await.status });
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert!(
        !waiting.is_finished(),
        "a second request got the request slot"
    );
    assert!(!second.is_finished(), "a second upload got the upload slot");
    let t = std::time::Instant::now();
    assert_eq!(
        anon.get("/v1/health").await.status,
        200,
        "health is answered while every slot is held"
    );
    assert!(t.elapsed() < std::time::Duration::from_secs(1));
    // Release both: the waiting calls are served.
    drop(js);
    up.write_all(&body[100..]).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = up.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 201"));
    for w in [waiting, second] {
        let status = tokio::time::timeout(std::time::Duration::from_secs(5), w)
            .await
            .expect("the waiting request is served once the slot is free")
            .unwrap();
        assert!(status == 200 || status == 201, "{status}");
    }
}

#[tokio::test]
async fn rate_limit_is_per_principal_with_retry_after() {
    let srv = Server::start_with(&["--rate-limit", "1", "--rate-limit-burst", "3"]);
    let admin = srv.client(ADMIN);
    let viewer = admin.with_token(&admin.token("viewer").await); // the admin's 1st request
    assert_eq!(admin.get("/v1/whoami").await.status, 200);
    assert_eq!(admin.get("/v1/whoami").await.status, 200);
    let limited = admin.get("/v1/whoami").await;
    limited.assert_problem(429, "rate_limited");
    assert_eq!(limited.header("retry-after"), Some("1"));
    assert!(limited.header("x-request-id").is_some());
    // Another principal has a bucket of its own; unauthenticated requests are not counted.
    assert_eq!(viewer.get("/v1/whoami").await.status, 200);
    assert_eq!(srv.anon().get("/v1/health").await.status, 200);
    // After Retry-After the principal is served again.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(admin.get("/v1/whoami").await.status, 200);
    // Off by default: the other tests run without the flag and never see a 429.
}

#[tokio::test]
async fn errors_are_problem_json() {
    let srv = Server::start();
    let admin = srv.client(ADMIN);
    let json_ct = [("content-type", "application/json")];
    // 413: over the 1 MiB cap of createDataset.
    let big = format!("{{\"name\":\"{}\"}}", "a".repeat(1_100_000));
    admin
        .send("POST", "/v1/datasets", &json_ct, Some(big.into_bytes()))
        .await
        .assert_problem(413, "payload_too_large");
    // 415, unknown field, bad JSON, wrong type, missing field.
    admin
        .send(
            "POST",
            "/v1/datasets",
            &[("content-type", "text/plain")],
            Some(b"{}".to_vec()),
        )
        .await
        .assert_problem(415, "unsupported_media_type");
    admin
        .send("POST", "/v1/datasets", &[], Some(b"{}".to_vec()))
        .await
        .assert_problem(415, "unsupported_media_type");
    let r = admin
        .post("/v1/datasets", json!({ "name": "a", "colour": "red" }))
        .await;
    r.assert_problem(400, "unknown_field");
    assert_eq!(r.json()["errors"][0]["field"], "colour");
    admin
        .send(
            "POST",
            "/v1/datasets",
            &json_ct,
            Some(b"{\"name\":".to_vec()),
        )
        .await
        .assert_problem(400, "bad_request");
    admin
        .post("/v1/datasets", json!({ "name": 5 }))
        .await
        .assert_problem(400, "validation_failed");
    admin
        .post("/v1/datasets", json!({}))
        .await
        .assert_problem(400, "validation_failed");
    admin
        .post("/v1/datasets", json!({ "name": "UPPER" }))
        .await
        .assert_problem(400, "validation_failed");
    // Router-level: unknown route, wrong method.
    admin.get("/v1/nope").await.assert_problem(404, "not_found");
    let r = admin.send("DELETE", "/v1/datasets", &[], None).await;
    r.assert_problem(405, "method_not_allowed");
    assert!(r.header("allow").is_some());
    admin
        .get("/v1/datasets/ds_00000000000000000000000000")
        .await
        .assert_problem(404, "not_found");
    admin
        .get("/v1/datasets?limit=0")
        .await
        .assert_problem(400, "validation_failed");
    admin
        .get("/v1/datasets?limit=abc")
        .await
        .assert_problem(400, "validation_failed");
    admin
        .get("/v1/datasets?cursor=!!!")
        .await
        .assert_problem(400, "bad_request");
    admin
        .get("/v1/audit/events/x")
        .await
        .assert_problem(400, "validation_failed");
    // Request ids: a valid one is echoed, an invalid one replaced.
    let r = admin
        .send(
            "GET",
            "/v1/whoami",
            &[("x-request-id", "ci-job:42.a_b")],
            None,
        )
        .await;
    assert_eq!(r.header("x-request-id"), Some("ci-job:42.a_b"));
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let r = admin
        .send("GET", "/v1/nope", &[("x-request-id", "bad id!")], None)
        .await;
    assert_ne!(r.header("x-request-id"), Some("bad id!"));
    r.assert_problem(404, "not_found");
    // JSON Schema semantics: integral floats are integers; optional fields are not nullable.
    let r = admin
        .post(
            "/v1/tokens",
            json!({ "name": "f", "role": "viewer", "expires_in_seconds": 120.0 }),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    admin
        .post(
            "/v1/tokens",
            json!({ "name": "f", "role": "viewer", "expires_in_seconds": 120.5 }),
        )
        .await
        .assert_problem(400, "validation_failed");
    admin
        .put(
            "/v1/policy",
            json!({ "required_gates": [], "run_token_ttl_seconds": null }),
        )
        .await
        .assert_problem(400, "validation_failed");
    admin
        .post("/v1/datasets", json!({ "name": "n", "description": null }))
        .await
        .assert_problem(400, "validation_failed");
    admin
        .get("/v1/audit/events?subject=nonsense")
        .await
        .assert_problem(400, "validation_failed");
    admin
        .get("/v1/audit/events?action=dataset.delete")
        .await
        .assert_problem(400, "validation_failed");
    // Body caps per operation: a manifest may exceed 1 MiB (up to 64 MiB).
    let ds = admin.dataset("big").await;
    let (digest, files) = manifest("big", 12_000);
    let r = admin
        .post(
            &format!("/v1/datasets/{ds}/versions"),
            json!({ "digest": digest, "files": files }),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
}

#[tokio::test]
async fn immutability_is_enforced_by_sqlite_triggers() {
    if skip_on_remote("writes to the SQLite file (see conformance.rs for PostgreSQL)") {
        return;
    }
    let srv = Server::start();
    let admin = srv.client(ADMIN);
    let ds = admin.dataset("frozen").await;
    let digest = admin.version(&ds, "z").await;
    let v = format!("/v1/datasets/{ds}/versions/{digest}/gates");
    admin
        .post(&v, json!({ "gate": "g", "status": "passed" }))
        .await;
    let (run, rt) = admin.run(&[(&ds, &digest)]).await;
    let rt = admin.with_token(&rt);
    rt.post(
        &format!("/v1/runs/{run}/metrics"),
        json!({ "points": [{ "name": "m", "step": 0, "value": 1 }] }),
    )
    .await;
    rt.upload(&run, "a.bin", b"abc", &sha256_hex(b"abc")).await;
    let (open_run, _) = admin.run(&[(&ds, &digest)]).await;
    rt.post(
        &format!("/v1/runs/{run}/finish"),
        json!({ "status": "succeeded" }),
    )
    .await;

    // Go around the API: the database itself refuses.
    let conn = rusqlite::Connection::open(srv.dir.join("datapilot.sqlite3")).unwrap();
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .unwrap();
    let attempts = [
        "UPDATE audit_events SET action = 'x' WHERE seq = 0".to_string(),
        "DELETE FROM audit_events WHERE seq = 1".to_string(),
        "UPDATE merkle_nodes SET hash = x'00' WHERE level = 0 AND idx = 0".to_string(),
        "UPDATE dataset_versions SET note = 'x'".to_string(),
        "DELETE FROM dataset_versions".to_string(),
        "UPDATE manifest_files SET size = 0".to_string(),
        "UPDATE gate_results SET status = 'failed'".to_string(),
        "DELETE FROM gate_results".to_string(),
        "UPDATE metric_points SET value = 0".to_string(),
        "DELETE FROM metric_batches".to_string(),
        "UPDATE artifacts SET sha256 = 'x'".to_string(),
        "DELETE FROM artifacts".to_string(),
        "UPDATE policies SET required_gates = '[]'".to_string(),
        "DELETE FROM datasets".to_string(),
        format!("UPDATE runs SET status = 'failed', finished_at = 'x', finish_seq = 99 WHERE id = '{run}'"),
        format!("UPDATE runs SET name = 'renamed' WHERE id = '{open_run}'"),
        format!("UPDATE runs SET status = 'running' WHERE id = '{open_run}'"),
        format!("DELETE FROM runs WHERE id = '{open_run}'"),
        "UPDATE tokens SET role = 'admin'".to_string(),
        "DELETE FROM tokens".to_string(),
    ];
    for sql in &attempts {
        let err = conn.execute(sql, []).expect_err(sql);
        assert!(err.to_string().contains("immutable"), "{sql}: {err}");
    }
    // The API answers a second finish with 409 too.
    admin
        .post(
            &format!("/v1/runs/{run}/finish"),
            json!({ "status": "failed" }),
        )
        .await
        .assert_problem(409, "run_sealed");
}

#[tokio::test]
async fn gateway_mode_trusts_only_fresh_signed_headers() {
    let tmp = tempfile::tempdir().unwrap();
    let key_file = tmp.path().join("gw.key");
    let key = b"0123456789abcdef0123456789abcdef";
    std::fs::write(&key_file, key).unwrap();
    let srv = Server::start_with(&["--gateway-hmac-key-file", key_file.to_str().unwrap()]);
    let anon = srv.anon();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let empty = datapilot_server::auth::EMPTY_SHA256;
    // Each signed request gets a fresh nonce; the Idempotency-Key (none here) is signed too.
    let signed_k =
        |subject: &str, role: &str, ts: i64, method: &str, path: &str, body: &str, idem: &str| {
            let nonce = hex::encode(datapilot_server::util::random_bytes::<16>());
            let msg = datapilot_server::auth::GatewayRequest {
                subject,
                role,
                timestamp: &ts.to_string(),
                nonce: &nonce,
                method,
                path_and_query: path,
                body_sha256: body,
                idempotency_key: idem,
            }
            .message();
            (datapilot_server::auth::gateway_signature(key, &msg), nonce)
        };
    let signed = |subject: &str, role: &str, ts: i64, method: &str, path: &str, body: &str| {
        signed_k(subject, role, ts, method, path, body, "")
    };
    let call = |subject: &'static str, role: &'static str, ts: i64, sig: (String, String)| {
        let anon = anon.clone();
        async move {
            let ts = ts.to_string();
            anon.send(
                "GET",
                "/v1/whoami",
                &[
                    ("x-datapilot-subject", subject),
                    ("x-datapilot-role", role),
                    ("x-datapilot-timestamp", &ts),
                    ("x-datapilot-nonce", &sig.1),
                    ("x-datapilot-signature", &sig.0),
                ],
                None,
            )
            .await
        }
    };
    let ok = call(
        "alice@corp",
        "engineer",
        now,
        signed("alice@corp", "engineer", now, "GET", "/v1/whoami", empty),
    )
    .await;
    assert_eq!(ok.status, 200, "{}", ok.text());
    assert_eq!(ok.json()["subject"], "alice@corp");
    assert_eq!(ok.json()["role"], "engineer");
    // An exact copy of a signed request is refused: its nonce was used.
    let once = signed("alice@corp", "engineer", now, "GET", "/v1/whoami", empty);
    assert_eq!(
        call("alice@corp", "engineer", now, once.clone())
            .await
            .status,
        200
    );
    let replay = call("alice@corp", "engineer", now, once).await;
    replay.assert_problem(401, "unauthenticated");
    assert!(replay.text().contains("replayed"), "{}", replay.text());
    // Stale, future, forged (role escalated after signing), wrong method, wrong body digest.
    for (role, ts, sig) in [
        (
            "engineer",
            now - 120,
            signed(
                "alice@corp",
                "engineer",
                now - 120,
                "GET",
                "/v1/whoami",
                empty,
            ),
        ),
        (
            "engineer",
            now + 120,
            signed(
                "alice@corp",
                "engineer",
                now + 120,
                "GET",
                "/v1/whoami",
                empty,
            ),
        ),
        (
            "admin",
            now,
            signed("alice@corp", "engineer", now, "GET", "/v1/whoami", empty),
        ),
        (
            "engineer",
            now,
            signed("alice@corp", "engineer", now, "POST", "/v1/whoami", empty),
        ),
        (
            "engineer",
            now,
            signed(
                "alice@corp",
                "engineer",
                now,
                "GET",
                "/v1/whoami",
                &"0".repeat(64),
            ),
        ),
    ] {
        call("alice@corp", role, ts, sig)
            .await
            .assert_problem(401, "unauthenticated");
    }
    // Unsigned, and bearer tokens (even the bootstrap admin's) are ignored.
    anon.get("/v1/whoami")
        .await
        .assert_problem(401, "unauthenticated");
    srv.client(ADMIN)
        .get("/v1/whoami")
        .await
        .assert_problem(401, "unauthenticated");

    // A request as a gateway sends it: the query and the body digest are signed.
    let ts = now.to_string();
    let gw = |method: &'static str,
              path: String,
              signed_path: String,
              body: Option<Vec<u8>>,
              digest: Option<String>,
              extra: Vec<(&'static str, String)>| {
        let anon = anon.clone();
        let ts = ts.clone();
        let idem = extra
            .iter()
            .find(|(k, _)| *k == "idempotency-key")
            .map(|(_, v)| v.clone())
            .unwrap_or_default();
        let (sig, nonce) = signed_k(
            "bob",
            "engineer",
            now,
            method,
            &signed_path,
            digest.as_deref().unwrap_or(empty),
            &idem,
        );
        async move {
            let mut h: Vec<(&str, String)> = vec![
                ("x-datapilot-subject", "bob".into()),
                ("x-datapilot-role", "engineer".into()),
                ("x-datapilot-timestamp", ts),
                ("x-datapilot-nonce", nonce),
                ("x-datapilot-signature", sig),
            ];
            if let Some(d) = digest {
                h.push(("x-datapilot-content-sha256", d));
            }
            h.extend(extra);
            let h: Vec<(&str, &str)> = h.iter().map(|(k, v)| (*k, v.as_str())).collect();
            anon.send(method, &path, &h, body).await
        }
    };
    let json_ct = || vec![("content-type", "application/json".to_string())];
    // A signed write is audited with the gateway identity.
    let body = br#"{"name":"gw"}"#.to_vec();
    let r = gw(
        "POST",
        "/v1/datasets".into(),
        "/v1/datasets".into(),
        Some(body.clone()),
        Some(sha256_hex(&body)),
        json_ct(),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.json()["created_by"], "bob");
    // The exact same signed, keyed POST sent four times: one write; the copies are refused
    // (the nonce was used), and a copy with another Idempotency-Key fails its signature.
    let body = br#"{"name":"gw-replay"}"#.to_vec();
    let digest = sha256_hex(&body);
    let (sig, nonce) = signed_k(
        "bob",
        "engineer",
        now,
        "POST",
        "/v1/datasets",
        &digest,
        "k-replay",
    );
    let send_copy = |key: &'static str| {
        let (anon, body, digest, sig, nonce, ts) = (
            anon.clone(),
            body.clone(),
            digest.clone(),
            sig.clone(),
            nonce.clone(),
            ts.clone(),
        );
        async move {
            anon.send(
                "POST",
                "/v1/datasets",
                &[
                    ("x-datapilot-subject", "bob"),
                    ("x-datapilot-role", "engineer"),
                    ("x-datapilot-timestamp", &ts),
                    ("x-datapilot-nonce", &nonce),
                    ("x-datapilot-signature", &sig),
                    ("x-datapilot-content-sha256", &digest),
                    ("content-type", "application/json"),
                    ("idempotency-key", key),
                ],
                Some(body),
            )
            .await
        }
    };
    assert_eq!(send_copy("k-replay").await.status, 201);
    for _ in 0..3 {
        send_copy("k-replay")
            .await
            .assert_problem(401, "unauthenticated");
    }
    let (sig2, nonce2) = signed_k(
        "bob",
        "engineer",
        now,
        "POST",
        "/v1/datasets",
        &digest,
        "k-signed",
    );
    let swapped = anon
        .send(
            "POST",
            "/v1/datasets",
            &[
                ("x-datapilot-subject", "bob"),
                ("x-datapilot-role", "engineer"),
                ("x-datapilot-timestamp", &ts),
                ("x-datapilot-nonce", &nonce2),
                ("x-datapilot-signature", &sig2),
                ("x-datapilot-content-sha256", &digest),
                ("content-type", "application/json"),
                ("idempotency-key", "k-other"),
            ],
            Some(body.clone()),
        )
        .await;
    swapped.assert_problem(401, "unauthenticated");
    // Replayed with another body (same headers): 401, nothing written; with or without a key.
    let other = br#"{"name":"gx"}"#.to_vec();
    gw(
        "POST",
        "/v1/datasets".into(),
        "/v1/datasets".into(),
        Some(other.clone()),
        Some(sha256_hex(&body)),
        json_ct(),
    )
    .await
    .assert_problem(401, "unauthenticated");
    let mut keyed = json_ct();
    keyed.push(("idempotency-key", "gw-1".into()));
    gw(
        "POST",
        "/v1/datasets".into(),
        "/v1/datasets".into(),
        Some(other.clone()),
        Some(sha256_hex(&body)),
        keyed,
    )
    .await
    .assert_problem(401, "unauthenticated");
    // A body sent without its digest header (signed as empty): 401.
    gw(
        "POST",
        "/v1/datasets".into(),
        "/v1/datasets".into(),
        Some(other),
        None,
        json_ct(),
    )
    .await
    .assert_problem(401, "unauthenticated");
    // Replayed onto another query: 401.
    let r = gw(
        "GET",
        "/v1/datasets?limit=1".into(),
        "/v1/datasets?limit=1".into(),
        None,
        None,
        vec![],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    gw(
        "GET",
        "/v1/datasets?limit=2".into(),
        "/v1/datasets?limit=1".into(),
        None,
        None,
        vec![],
    )
    .await
    .assert_problem(401, "unauthenticated");
    gw(
        "GET",
        "/v1/datasets".into(),
        "/v1/datasets?limit=1".into(),
        None,
        None,
        vec![],
    )
    .await
    .assert_problem(401, "unauthenticated");
    let ds = srv_dataset_id(&r);
    assert_eq!(
        anon.clone().get("/v1/health").await.json()["tree_size"],
        4,
        "only the first write of each request happened"
    );

    // Uploads: the signed digest is the declared `sha256` of the query, which binds the body.
    let (digest, files) = manifest("gw", 2);
    let vbody = serde_json::to_vec(&json!({ "digest": digest, "files": files })).unwrap();
    let path = format!("/v1/datasets/{ds}/versions");
    let r = gw(
        "POST",
        path.clone(),
        path,
        Some(vbody.clone()),
        Some(sha256_hex(&vbody)),
        json_ct(),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let rbody = serde_json::to_vec(
        &json!({ "name": "t", "inputs": [{ "dataset_id": ds, "digest": digest }],
        "git_commit": "a".repeat(40), "image_digest": format!("sha256:{}", "b".repeat(64)) }),
    )
    .unwrap();
    let r = gw(
        "POST",
        "/v1/runs".into(),
        "/v1/runs".into(),
        Some(rbody.clone()),
        Some(sha256_hex(&rbody)),
        json_ct(),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let run = r.json()["run"]["id"].as_str().unwrap().to_string();
    let bytes = b"gateway artifact".to_vec();
    let sha = sha256_hex(&bytes);
    let up = format!("/v1/runs/{run}/artifacts?name=a.bin&sha256={sha}");
    let oct = || vec![("content-type", "application/octet-stream".to_string())];
    let r = gw(
        "POST",
        up.clone(),
        up.clone(),
        Some(bytes.clone()),
        Some(sha.clone()),
        oct(),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
    // Other bytes under the same signed query: refused by the declared sha256 (nothing kept).
    let up2 = format!("/v1/runs/{run}/artifacts?name=b.bin&sha256={sha}");
    gw(
        "POST",
        up2.clone(),
        up2,
        Some(b"other".to_vec()),
        Some(sha.clone()),
        oct(),
    )
    .await
    .assert_problem(422, "digest_mismatch");
    // A signed digest that is not the declared sha256: 401.
    let up3 = format!("/v1/runs/{run}/artifacts?name=c.bin&sha256={sha}");
    gw(
        "POST",
        up3.clone(),
        up3,
        Some(bytes),
        Some(sha256_hex(b"x")),
        oct(),
    )
    .await
    .assert_problem(401, "unauthenticated");
}

fn srv_dataset_id(list: &Resp) -> String {
    list.json()["items"][0]["id"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn cors_allowlist_is_exact() {
    let srv = Server::start_with(&["--cors-origins", "https://ml.corp.example"]);
    let anon = srv.anon();
    let pre = |origin: &'static str| {
        let anon = anon.clone();
        async move {
            anon.send(
                "OPTIONS",
                "/v1/datasets",
                &[
                    ("origin", origin),
                    ("access-control-request-method", "POST"),
                    (
                        "access-control-request-headers",
                        "authorization,content-type,idempotency-key",
                    ),
                ],
                None,
            )
            .await
        }
    };
    let ok = pre("https://ml.corp.example").await;
    assert_eq!(
        ok.header("access-control-allow-origin"),
        Some("https://ml.corp.example")
    );
    let bad = pre("https://ml.corp.example.evil").await;
    assert_eq!(bad.header("access-control-allow-origin"), None);
    let r = anon
        .send(
            "GET",
            "/v1/health",
            &[("origin", "https://ml.corp.example")],
            None,
        )
        .await;
    assert!(r
        .header("access-control-expose-headers")
        .unwrap()
        .contains("x-request-id"));
}

#[tokio::test]
async fn serves_static_files_and_survives_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let web = tmp.path().join("web");
    std::fs::create_dir_all(&web).unwrap();
    std::fs::write(web.join("index.html"), "<h1>demo</h1>").unwrap();
    let dir = tmp.path().join("data");
    let mut srv = Server::start_in(&dir, &["--static-dir", web.to_str().unwrap()]);
    let r = srv.anon().get("/").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "<h1>demo</h1>");
    srv.anon()
        .get("/missing.js")
        .await
        .assert_problem(404, "not_found");
    let key_mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(dir.join("ledger.key"))
            .unwrap()
            .permissions(),
    );
    assert_eq!(key_mode & 0o777, 0o600);
    let (size, _, _) = checkpoint(&srv.client(ADMIN)).await;
    let verifier = srv.anon().get("/v1/keys").await.json();
    srv.kill9();
    let srv = Server::start_in(&dir, &[]);
    assert_eq!(
        srv.anon().get("/v1/keys").await.json(),
        verifier,
        "same key after restart"
    );
    assert_eq!(
        checkpoint(&srv.client(ADMIN)).await.0,
        size,
        "no second ledger.init"
    );
}

/// The ledger key of an existing ledger is never replaced: a missing key file or another key
/// is a refusal to start with one clear line, and nothing is created.
#[tokio::test]
async fn refuses_to_start_without_the_ledgers_own_key() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let key_path = dir.join("ledger.key");
    let mut srv = Server::start_in(&dir, &[]);
    let keys = srv.anon().get("/v1/keys").await.json();
    srv.kill9();
    let original = std::fs::read(&key_path).unwrap();

    // Missing.
    std::fs::remove_file(&key_path).unwrap();
    let (status, err) = start_fails(&dir, &[]);
    assert!(!status.success());
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    assert!(err.contains("ledger.key is missing"), "{err}");
    assert!(
        err.contains(keys["keys"][0]["verifier"].as_str().unwrap()),
        "{err}"
    );
    assert!(!key_path.exists(), "no new key was created");

    // Another key (well-formed, mode 0600).
    {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&key_path)
            .unwrap();
        f.write_all(format!("{}\n", "11".repeat(32)).as_bytes())
            .unwrap();
    }
    let (status, err) = start_fails(&dir, &[]);
    assert!(!status.success());
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    assert!(err.contains("but this ledger is signed by"), "{err}");

    // The original key back: starts, same verifier.
    std::fs::write(&key_path, &original).unwrap();
    let srv = Server::start_in(&dir, &[]);
    assert_eq!(srv.anon().get("/v1/keys").await.json(), keys);
    // No stray temporary key files.
    let names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("ledger.key"))
        .collect();
    assert_eq!(names, ["ledger.key"]);
}

/// Run tokens expire (the hidden test flag shortens their lifetime; the policy's minimum is
/// 60 s): an expired run token is 401 on every operation, even on its own run.
#[tokio::test]
async fn expired_run_tokens_are_refused() {
    let srv = Server::start_with(&["--run-token-ttl-override-seconds", "2"]);
    let admin = srv.client(ADMIN);
    let ds = admin.dataset("ttl").await;
    let digest = admin.version(&ds, "t").await;
    let r = admin
        .post(
            "/v1/runs",
            json!({ "name": "short", "inputs": [{ "dataset_id": ds, "digest": digest }],
                    "git_commit": "a".repeat(40), "image_digest": format!("sha256:{}", "b".repeat(64)) }),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let run = r.json()["run"]["id"].as_str().unwrap().to_string();
    let rt = admin.with_token(r.json()["run_token"].as_str().unwrap());
    let expires = r.json()["run_token_expires_at"]
        .as_str()
        .unwrap()
        .to_string();
    let created = r.json()["run"]["created_at"].as_str().unwrap().to_string();
    assert!(expires > created, "{created} -> {expires}");
    assert_eq!(rt.get("/v1/whoami").await.status, 200);
    assert_eq!(rt.get(&format!("/v1/runs/{run}")).await.status, 200);
    tokio::time::sleep(std::time::Duration::from_millis(2300)).await;
    rt.get("/v1/whoami")
        .await
        .assert_problem(401, "unauthenticated");
    rt.get(&format!("/v1/runs/{run}"))
        .await
        .assert_problem(401, "unauthenticated");
    rt.post(
        &format!("/v1/runs/{run}/metrics"),
        json!({ "points": [{ "name": "m", "step": 0, "value": 1 }] }),
    )
    .await
    .assert_problem(401, "unauthenticated");
    // The run itself is untouched: an API token still reads it.
    assert_eq!(
        admin.get(&format!("/v1/runs/{run}")).await.json()["status"],
        "running"
    );
}

/// An upload whose artifact cannot be recorded after its blob was written (here: the run is
/// finished while the body streams) leaves no orphaned blob, unless another artifact has the
/// same bytes.
#[tokio::test]
async fn failed_upload_leaves_no_orphaned_blob() {
    if skip_on_remote("reads the local blob directory") {
        return;
    }
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let srv = Server::start();
    let admin = srv.client(ADMIN);
    let ds = admin.dataset("orphans").await;
    let digest = admin.version(&ds, "o").await;
    let blob_path = |sha: &str| srv.dir.join("blobs/sha256").join(&sha[..2]).join(sha);
    // Start an upload, finish the run while its body is still coming, then send the rest.
    let upload_racing_finish = |run: String, body: Vec<u8>| {
        let srv_base = srv.base.clone();
        let admin = admin.clone();
        async move {
            let sha = sha256_hex(&body);
            let addr = srv_base.trim_start_matches("http://").to_string();
            let mut sock = tokio::net::TcpStream::connect(&addr).await.unwrap();
            let head = format!(
                "POST /v1/runs/{run}/artifacts?name=late.bin&sha256={sha} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {ADMIN}\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\n\r\n",
                body.len()
            );
            sock.write_all(head.as_bytes()).await.unwrap();
            sock.write_all(&body[..10]).await.unwrap();
            sock.flush().await.unwrap();
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            let fin = admin
                .post(
                    &format!("/v1/runs/{run}/finish"),
                    json!({ "status": "failed" }),
                )
                .await;
            assert_eq!(fin.status, 200, "{}", fin.text());
            sock.write_all(&body[10..]).await.unwrap();
            let mut buf = vec![0u8; 8192];
            let n = sock.read(&mut buf).await.unwrap();
            String::from_utf8_lossy(&buf[..n]).into_owned()
        }
    };

    // Bytes no artifact has: the blob is removed.
    let (run, _) = admin.run(&[(&ds, &digest)]).await;
    let body = b"orphan candidate".repeat(100);
    let r = upload_racing_finish(run, body.clone()).await;
    assert!(r.starts_with("HTTP/1.1 409"), "{r}");
    assert!(r.contains("run_sealed"), "{r}");
    assert!(
        !blob_path(&sha256_hex(&body)).exists(),
        "orphaned blob kept"
    );

    // Bytes another run's artifact has: the blob stays, and that artifact still downloads.
    let (keeper, keeper_token) = admin.run(&[(&ds, &digest)]).await;
    let shared = b"shared bytes".repeat(100);
    let sha = sha256_hex(&shared);
    let k = admin.with_token(&keeper_token);
    let art = k.upload(&keeper, "kept.bin", &shared, &sha).await;
    assert_eq!(art.status, 201, "{}", art.text());
    let (run, _) = admin.run(&[(&ds, &digest)]).await;
    let r = upload_racing_finish(run, shared.clone()).await;
    assert!(r.starts_with("HTTP/1.1 409"), "{r}");
    assert!(blob_path(&sha).exists(), "a referenced blob was removed");
    let art = art.json()["id"].as_str().unwrap().to_string();
    let d = k
        .get(&format!("/v1/runs/{keeper}/artifacts/{art}/content"))
        .await;
    assert_eq!(d.status, 200);
    assert_eq!(d.body, shared);
}

#[tokio::test]
async fn initial_policy_is_backed_by_ledger_init_in_bundles() {
    // Under the initial policy (version 1, made by `ledger.init`), the bundle's audit slice
    // holds `ledger.init`, so the verifier checks policy.json against a proven event instead of
    // passing it unverified.
    let srv = Server::start();
    let admin = srv.client(ADMIN);
    let ds = admin.dataset("initial-policy").await;
    let digest = admin.version(&ds, "v1").await;
    let (run, _) = admin.run(&[(&ds, &digest)]).await;
    let v = verifier(&admin).await;
    let bundle = admin.get(&format!("/v1/runs/{run}/evidence")).await;
    assert_eq!(bundle.status, 200, "{}", bundle.text());
    let report = datapilot::evidence::verify_bundle(&bundle.body, &[v]);
    assert!(report.ok, "{:#?}", report.failed());
    let check = report
        .check("policy.snapshot")
        .expect("policy.snapshot check");
    assert!(check.passed);
    assert!(
        check.reason.contains("matches") && !check.reason.contains("NOT"),
        "policy.snapshot must be backed by ledger.init: {}",
        check.reason
    );
}

#[tokio::test]
async fn version_lineage_has_only_the_scope_versions_input_edges() {
    // R1 reads `a` and produces `b`; R2 reads `a` and `b`. The lineage of `a` holds R1 and R2
    // (both used it) and `b` (R1's output), but not R2's input edge from `b`: a version scope
    // lists only its own input edges, whatever order the runs are added in.
    let srv = Server::start();
    let admin = srv.client(ADMIN);
    let ds = admin.dataset("lineage-scope").await;
    let a = admin.version(&ds, "a").await;
    let b = admin.version(&ds, "b").await;
    let (r1, _) = admin.run(&[(&ds, &a)]).await;
    let fin = admin
        .post(
            &format!("/v1/runs/{r1}/finish"),
            json!({ "status": "succeeded", "outputs": [{ "dataset_id": ds, "digest": b }] }),
        )
        .await;
    assert_eq!(fin.status, 200, "{}", fin.text());
    let (r2, _) = admin.run(&[(&ds, &a), (&ds, &b)]).await;
    let l = admin
        .get(&format!("/v1/datasets/{ds}/versions/{a}/lineage"))
        .await
        .json();
    let edges: Vec<(String, String, String)> = l["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["from"].as_str().unwrap().to_owned(),
                e["to"].as_str().unwrap().to_owned(),
                e["kind"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let va = format!("dataset_version:{ds}@{a}");
    let vb = format!("dataset_version:{ds}@{b}");
    let input = |v: &str, r: &str| (v.to_owned(), format!("run:{r}"), "input".to_owned());
    assert!(edges.contains(&input(&va, &r1)), "{edges:?}");
    assert!(edges.contains(&input(&va, &r2)), "{edges:?}");
    assert!(
        !edges.contains(&input(&vb, &r2)),
        "another version's input edge leaked into a version scope: {edges:?}"
    );
    // The bundle of that scope still verifies (the verifier requires exactly these edges).
    let v = verifier(&admin).await;
    let bundle = admin
        .get(&format!("/v1/datasets/{ds}/versions/{a}/evidence"))
        .await;
    assert_eq!(bundle.status, 200, "{}", bundle.text());
    let report = datapilot::evidence::verify_bundle(&bundle.body, &[v]);
    assert!(report.ok, "{:#?}", report.failed());
}
