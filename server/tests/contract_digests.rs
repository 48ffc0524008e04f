//! The contract's SHA-256 spelling rule (docs/compatibility.md, "SHA-256 spellings"): the name
//! of a field, parameter or header says how its hash is spelled, everywhere in
//! openapi/datapilot.v1.yaml:
//!
//! - `digest` and `*_digest`: `sha256:<64 hex>` (schema `Digest`, or a `<id>@<Digest>` version
//!   reference);
//! - `sha256` (and the `X-Content-SHA256` header): 64 hex (schema `Sha256Hex`);
//! - `leaf_hash`, `root_hash`, `hashes`: base64 (schema `Base64Hash`, RFC 9162 / C2SP);
//! - `key_id`: 8 hex (the C2SP signed-note key hash).
//!
//! and no other place spells a hash inline. A new field that breaks the rule fails here, not
//! in a client.

use serde_json::Value;

fn contract() -> Value {
    serde_norway::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../openapi/datapilot.v1.yaml"
        ))
        .unwrap(),
    )
    .unwrap()
}

/// The schema name a `$ref` (possibly inside allOf/oneOf/anyOf or array items) points at.
fn target(s: &Value) -> Option<String> {
    if let Some(r) = s.get("$ref").and_then(Value::as_str) {
        return r.rsplit('/').next().map(str::to_owned);
    }
    for k in ["allOf", "oneOf", "anyOf"] {
        if let Some(list) = s.get(k).and_then(Value::as_array) {
            if let Some(t) = list.iter().find_map(target) {
                return Some(t);
            }
        }
    }
    s.get("items").and_then(target)
}

/// What the rule expects for a name, or None when the name is not a hash's.
fn expected(name: &str) -> Option<&'static [&'static str]> {
    let n = name.to_ascii_lowercase();
    if n == "digest" || n.ends_with("_digest") {
        Some(&["Digest"])
    } else if n == "sha256" || n == "x-content-sha256" || n == "x-datapilot-content-sha256" {
        Some(&["Sha256Hex"])
    } else if n == "leaf_hash" || n == "root_hash" || n == "hashes" {
        Some(&["Base64Hash", "ProofHashes"])
    } else if n == "input" || n == "output" {
        Some(&["VersionRefParam"])
    } else {
        None
    }
}

/// Inline patterns that spell a hash other than the rule says: a bare 64-hex (a `sha256:`
/// prefixed one, as inside lineage node ids, is the `Digest` spelling; a git commit id is git's
/// own, 40 or 64 hex, and no SHA-256 of ours), a base64 hash, an 8-hex key id.
fn spells_a_hash(pattern: &str) -> bool {
    let rest = pattern
        .replace("sha256:[0-9a-f]{64}", "")
        .replace("[0-9a-f]{40}|[0-9a-f]{64}", "");
    rest.contains("[0-9a-f]{64}") || rest.contains("{43}=") || rest.contains("[0-9a-f]{8}$")
}

/// Not hashes although their patterns look alike: Ed25519 public keys (base64 of 32 bytes, in
/// the C2SP verifier-key form and as SPKI PEM) and git commit ids.
fn exempt(name: &str) -> bool {
    name.starts_with("public_key") || name == "git_commit" || name == "GitCommit"
}

const HASH_SCHEMAS: [&str; 4] = ["Digest", "Sha256Hex", "Base64Hash", "VersionRefParam"];

#[test]
fn every_hash_is_spelled_as_its_name_says() {
    let c = contract();
    let schemas = c["components"]["schemas"].as_object().unwrap();
    let mut problems = Vec::new();
    let mut seen = 0;

    // Properties of every schema, at any depth.
    fn props(at: &str, s: &Value, out: &mut Vec<(String, String, Value)>) {
        if let Some(p) = s.get("properties").and_then(Value::as_object) {
            for (name, ps) in p {
                out.push((format!("{at}.{name}"), name.clone(), ps.clone()));
                props(&format!("{at}.{name}"), ps, out);
            }
        }
        for k in ["allOf", "oneOf", "anyOf"] {
            for x in s.get(k).and_then(Value::as_array).into_iter().flatten() {
                props(at, x, out);
            }
        }
        if let Some(i) = s.get("items") {
            props(&format!("{at}[]"), i, out);
        }
    }
    let mut fields = Vec::new();
    for (name, s) in schemas {
        props(name, s, &mut fields);
    }
    // Parameters (shared and inline) and response headers.
    let params = c["components"]["parameters"].as_object().unwrap();
    for (key, p) in params {
        fields.push((
            format!("parameter {key}"),
            p["name"].as_str().unwrap().to_owned(),
            p["schema"].clone(),
        ));
    }
    for (path, ops) in c["paths"].as_object().unwrap() {
        for (method, op) in ops.as_object().unwrap() {
            for p in op
                .get("parameters")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if let Some(name) = p.get("name").and_then(Value::as_str) {
                    fields.push((
                        format!("{method} {path} ?{name}"),
                        name.to_owned(),
                        p["schema"].clone(),
                    ));
                }
            }
        }
    }
    for (key, h) in c["components"]["headers"].as_object().unwrap() {
        let name = if key == "XContentSHA256" {
            "X-Content-SHA256".to_owned()
        } else {
            key.clone()
        };
        fields.push((format!("header {key}"), name, h["schema"].clone()));
    }

    for (at, name, schema) in &fields {
        let t = target(schema);
        match expected(name) {
            Some(want) => {
                seen += 1;
                if !t.as_deref().is_some_and(|t| want.contains(&t)) {
                    problems.push(format!("{at}: a `{name}` must be {want:?}, is {t:?}"));
                }
            }
            None => {
                if let Some(t) = t.as_deref().filter(|t| HASH_SCHEMAS.contains(t)) {
                    problems.push(format!(
                        "{at}: `{name}` holds a {t} but its name does not say so (rename it \
                         `digest`/`*_digest`, `sha256` or `*_hash`)"
                    ));
                }
                if name == "key_id" {
                    seen += 1;
                    let p = schema["pattern"].as_str().unwrap_or("");
                    if p != "^[0-9a-f]{8}$" {
                        problems.push(format!("{at}: key_id must be 8 hex, pattern {p:?}"));
                    }
                } else if let Some(p) = schema.get("pattern").and_then(Value::as_str) {
                    if spells_a_hash(p) && !exempt(name) {
                        problems.push(format!(
                            "{at}: `{name}` spells a hash inline ({p}); use a named schema"
                        ));
                    }
                }
            }
        }
    }
    // The named schemas themselves.
    for (name, pattern) in [
        ("Digest", "^sha256:[0-9a-f]{64}$"),
        ("Sha256Hex", "^[0-9a-f]{64}$"),
        ("Base64Hash", "^[A-Za-z0-9+/]{43}=$"),
    ] {
        assert_eq!(schemas[name]["pattern"], pattern, "schema {name}");
    }
    // Inline patterns anywhere else among the schemas (outside properties, e.g. array items).
    for (name, s) in schemas {
        if HASH_SCHEMAS.contains(&name.as_str()) {
            continue;
        }
        if let Some(p) = s.get("pattern").and_then(Value::as_str) {
            if spells_a_hash(p) && !exempt(name) {
                problems.push(format!("schema {name}: spells a hash inline ({p})"));
            }
        }
    }
    assert!(seen >= 10, "the walk found only {seen} hash fields");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The rule check itself can fail: a field that breaks it is reported.
#[test]
fn the_rule_catches_a_misnamed_field() {
    assert_eq!(expected("artifact_digest"), Some(&["Digest"][..]));
    assert_eq!(expected("sha256"), Some(&["Sha256Hex"][..]));
    assert_eq!(expected("name"), None);
    assert!(spells_a_hash("^[0-9a-f]{64}$"));
    assert!(spells_a_hash("^[A-Za-z0-9+/]{43}=$"));
    assert!(!spells_a_hash("^[A-Za-z0-9_][A-Za-z0-9_.:/-]{0,127}$"));
    assert!(
        !spells_a_hash("^image:sha256:[0-9a-f]{64}$"),
        "the Digest spelling inside an id"
    );
    assert!(
        spells_a_hash("^art:[0-9a-f]{64}$"),
        "a bare hex inside an id"
    );
}
