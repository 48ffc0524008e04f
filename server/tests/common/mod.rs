//! Test harness: starts the real `datapilot-server` binary on 127.0.0.1:0 with a temporary
//! data directory and talks to it over real HTTP.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use datapilot::manifest::{FileEntry, Manifest};
use serde_json::{json, Value};

pub const ADMIN: &str = "dpt_testbootstrapadmin00000000000001";

/// A running server process.
pub struct Server {
    pub child: Child,
    pub base: String,
    pub dir: PathBuf,
    _tmp: Option<tempfile::TempDir>,
}

impl Server {
    /// A fresh server on a new temp dir.
    pub fn start() -> Server {
        Self::start_with(&[])
    }

    pub fn start_with(args: &[&str]) -> Server {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("data");
        let mut s = Self::start_in(&dir, args);
        s._tmp = Some(tmp);
        s
    }

    /// Start on `dir` (which may already hold a ledger).
    pub fn start_in(dir: &Path, args: &[&str]) -> Server {
        std::fs::create_dir_all(dir.parent().unwrap()).unwrap();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.with_extension("log"))
            .unwrap();
        let mut child = server_command(dir, args)
            .stderr(Stdio::from(log))
            .spawn()
            .expect("start datapilot-server");
        let stdout = child.stdout.take().unwrap();
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        let base = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| {
                panic!(
                    "unexpected first line {line:?}; see {}",
                    dir.with_extension("log").display()
                )
            })
            .to_string();
        Server {
            child,
            base,
            dir: dir.to_path_buf(),
            _tmp: None,
        }
    }

    /// SIGKILL: no shutdown, no flush.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn client(&self, token: &str) -> Api {
        Api {
            base: self.base.clone(),
            token: Some(token.to_string()),
            http: reqwest::Client::new(),
        }
    }

    pub fn anon(&self) -> Api {
        Api {
            base: self.base.clone(),
            token: None,
            http: reqwest::Client::new(),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Set by `./x test`'s `server-postgres-s3` stage (from scripts/test-services.sh): a running
/// PostgreSQL cluster (`postgres://…/`, database part ignored) and Garage S3 store
/// (`s3://bucket?endpoint=…`). Then every server of the suite runs on them, each on a database
/// and a key prefix of its own.
const REMOTE_PG: &str = "DATAPILOT_TEST_PG_URL";
const REMOTE_S3: &str = "DATAPILOT_TEST_S3";

/// True when the suite runs on PostgreSQL + S3 instead of SQLite + local files.
pub fn remote_backend() -> bool {
    std::env::var_os(REMOTE_PG).is_some()
}

/// For the few tests that look inside the SQLite file or the blob directory: on PostgreSQL +
/// S3 they say so and return true (the caller returns); the conformance suite covers the same
/// rules for PostgreSQL.
pub fn skip_on_remote(what: &str) -> bool {
    if remote_backend() {
        eprintln!("skipped on PostgreSQL + S3: {what}");
    }
    remote_backend()
}

/// `--database` and `--blobs` for the server on `dir`: a fresh database and key prefix the
/// first time, the same ones when the server restarts on `dir`.
fn remote_args(dir: &Path) -> Option<(String, String)> {
    let pg = std::env::var(REMOTE_PG).ok()?;
    let s3 = std::env::var(REMOTE_S3).expect("DATAPILOT_TEST_S3 with DATAPILOT_TEST_PG_URL");
    let marker = dir.with_extension("backend");
    let name = match std::fs::read_to_string(&marker) {
        Ok(n) => n,
        Err(_) => {
            let n = format!(
                "t_{}",
                hex::encode(datapilot_server::util::random_bytes::<8>())
            );
            let base = pg.rsplit_once('/').map_or(pg.as_str(), |(b, _)| b);
            let out = Command::new("psql")
                .args(["-X", "-q", &format!("{base}/postgres"), "-c"])
                .arg(format!("CREATE DATABASE {n}"))
                .output()
                .expect("psql");
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            std::fs::write(&marker, &n).unwrap();
            n
        }
    };
    let base = pg.rsplit_once('/').map_or(pg.as_str(), |(b, _)| b);
    let sep = if s3.contains('?') { '&' } else { '?' };
    Some((format!("{base}/{name}"), format!("{s3}{sep}prefix={name}/")))
}

/// The server on `dir` with the test admin token, a free port and `args`; stdout piped (it
/// prints its address there).
fn server_command(dir: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_datapilot-server"));
    if let Some((db, blobs)) = remote_args(dir) {
        cmd.arg("--database").arg(db).arg("--blobs").arg(blobs);
    }
    cmd.arg("--data-dir")
        .arg(dir)
        .args(["--listen", "127.0.0.1:0"])
        .args(args)
        .env("DATAPILOT_BOOTSTRAP_TOKEN", ADMIN)
        .env("DATAPILOT_LOG", "warn")
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped());
    cmd
}

/// Start the server on `dir` expecting it to refuse: its exit status and stderr. Panics if it
/// starts listening instead.
pub fn start_fails(dir: &Path, args: &[&str]) -> (std::process::ExitStatus, String) {
    let mut child = server_command(dir, args)
        .stderr(Stdio::piped())
        .spawn()
        .expect("start datapilot-server");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
            return (status, err);
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the server started instead of refusing");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// A response, fully read.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    /// Assert the response is a well-formed problem with this status and code.
    pub fn assert_problem(&self, status: u16, code: &str) {
        assert_eq!(self.status, status, "body: {}", self.text());
        assert_eq!(
            self.header("content-type"),
            Some("application/problem+json"),
            "{}",
            self.text()
        );
        let p = self.json();
        assert_eq!(p["code"], code, "{p}");
        assert_eq!(p["status"], status);
        assert_eq!(
            p["type"],
            format!("https://animus.dev/datapilot/problems/{code}")
        );
        assert!(p["title"].as_str().is_some_and(|t| !t.is_empty()));
        assert!(p["detail"].as_str().is_some_and(|t| !t.is_empty()));
        let rid = self.header("x-request-id").expect("X-Request-Id");
        assert_eq!(p["request_id"], rid);
        assert_eq!(self.header("cache-control"), Some("no-store"));
        for k in p.as_object().unwrap().keys() {
            assert!(
                [
                    "type",
                    "title",
                    "status",
                    "detail",
                    "code",
                    "request_id",
                    "errors",
                    "instance"
                ]
                .contains(&k.as_str()),
                "unexpected problem member {k}"
            );
        }
    }
}

/// A tiny API client.
#[derive(Clone)]
pub struct Api {
    pub base: String,
    pub token: Option<String>,
    pub http: reqwest::Client,
}

impl Api {
    pub fn with_token(&self, token: &str) -> Api {
        Api {
            token: Some(token.to_string()),
            ..self.clone()
        }
    }

    pub async fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> Resp {
        let url = format!("{}{}", self.base, path);
        let mut rb = self.http.request(method.parse().unwrap(), url);
        if let Some(t) = &self.token {
            rb = rb.header("authorization", format!("Bearer {t}"));
        }
        for (k, v) in headers {
            rb = rb.header(*k, *v);
        }
        if let Some(b) = body {
            rb = rb.body(b);
        }
        let r = rb.send().await.expect("request");
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let body = r.bytes().await.expect("body").to_vec();
        Resp {
            status,
            headers,
            body,
        }
    }

    pub async fn get(&self, path: &str) -> Resp {
        self.send("GET", path, &[], None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Resp {
        self.send(
            "POST",
            path,
            &[("content-type", "application/json")],
            Some(serde_json::to_vec(&body).unwrap()),
        )
        .await
    }

    pub async fn post_idem(&self, path: &str, key: &str, body: Value) -> Resp {
        self.send(
            "POST",
            path,
            &[
                ("content-type", "application/json"),
                ("idempotency-key", key),
            ],
            Some(serde_json::to_vec(&body).unwrap()),
        )
        .await
    }

    /// Like [`Api::post_idem`], but `None` instead of a panic when the request fails (a server
    /// killed mid-test).
    pub async fn post_idem_try(&self, path: &str, key: &str, body: Value) -> Option<Resp> {
        let url = format!("{}{}", self.base, path);
        let mut rb = self
            .http
            .post(url)
            .header("content-type", "application/json")
            .header("idempotency-key", key)
            .body(serde_json::to_vec(&body).unwrap());
        if let Some(t) = &self.token {
            rb = rb.header("authorization", format!("Bearer {t}"));
        }
        let r = rb.send().await.ok()?;
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let body = r.bytes().await.ok()?.to_vec();
        Some(Resp {
            status,
            headers,
            body,
        })
    }

    pub async fn put(&self, path: &str, body: Value) -> Resp {
        self.send(
            "PUT",
            path,
            &[("content-type", "application/json")],
            Some(serde_json::to_vec(&body).unwrap()),
        )
        .await
    }

    pub async fn upload(&self, run_id: &str, name: &str, bytes: &[u8], sha: &str) -> Resp {
        self.send(
            "POST",
            &format!("/v1/runs/{run_id}/artifacts?name={name}&sha256={sha}"),
            &[("content-type", "application/octet-stream")],
            Some(bytes.to_vec()),
        )
        .await
    }

    /// Create a token with `role`; returns its secret.
    pub async fn token(&self, role: &str) -> String {
        let r = self
            .post(
                "/v1/tokens",
                json!({ "name": format!("{role} token"), "role": role }),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text());
        r.json()["secret"].as_str().unwrap().to_string()
    }

    pub async fn dataset(&self, name: &str) -> String {
        let r = self.post("/v1/datasets", json!({ "name": name })).await;
        assert_eq!(r.status, 201, "{}", r.text());
        r.json()["id"].as_str().unwrap().to_string()
    }

    /// Register a version with `n` synthetic files; returns its digest.
    pub async fn version(&self, ds: &str, seed: &str) -> String {
        let (digest, files) = manifest(seed, 3);
        let r = self
            .post(
                &format!("/v1/datasets/{ds}/versions"),
                json!({ "digest": digest, "files": files }),
            )
            .await;
        assert!(r.status == 201 || r.status == 200, "{}", r.text());
        digest
    }

    /// Create a run on `inputs`; returns (run id, run token).
    pub async fn run(&self, inputs: &[(&str, &str)]) -> (String, String) {
        let inputs: Vec<Value> = inputs
            .iter()
            .map(|(d, g)| json!({ "dataset_id": d, "digest": g }))
            .collect();
        let r = self
            .post(
                "/v1/runs",
                json!({ "name": "train", "inputs": inputs, "git_commit": "a".repeat(40),
                        "image_digest": format!("sha256:{}", "b".repeat(64)), "params": { "lr": "0.1" } }),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text());
        let j = r.json();
        (
            j["run"]["id"].as_str().unwrap().to_string(),
            j["run_token"].as_str().unwrap().to_string(),
        )
    }
}

pub fn sha256_hex(b: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(b))
}

/// A synthetic manifest and its DPM-1 digest (computed by the SDK, as a client would).
pub fn manifest(seed: &str, n: usize) -> (String, Vec<Value>) {
    let entries: Vec<FileEntry> = (0..n)
        .map(|i| FileEntry {
            path: format!("data/part-{i}.csv"),
            sha256: sha256_hex(format!("{seed}/{i}").as_bytes()),
            size: 100 + i as u64,
        })
        .collect();
    let m = Manifest::from_entries(entries.clone()).unwrap();
    let files = entries
        .iter()
        .map(|e| json!({ "path": e.path, "sha256": e.sha256, "size": e.size }))
        .collect();
    (m.digest().to_string(), files)
}

/// The pinned verifier of a server.
pub async fn verifier(api: &Api) -> datapilot::checkpoint::Verifier {
    let keys = api.get("/v1/keys").await.json();
    keys["keys"][0]["verifier"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap()
}

/// Fetch and verify the current checkpoint: (size, root).
pub async fn checkpoint(api: &Api) -> (u64, [u8; 32], String) {
    let v = verifier(api).await;
    let r = api.get("/v1/ledger/checkpoint").await;
    assert_eq!(r.status, 200, "{}", r.text());
    let note = r.text();
    let (cp, _) = datapilot::checkpoint::open_checkpoint(&note, &[v]).expect("checkpoint verifies");
    (cp.tree_size, cp.root_hash, note)
}
