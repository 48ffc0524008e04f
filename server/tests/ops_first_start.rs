//! First start and admin recovery (issue 15): a failed bind creates nothing, the start-up
//! output ends with the token and the verifier key to pin, and `datapilot-server admin-token`
//! mints a working admin token, on the record, when the bootstrap token is lost.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_datapilot-server"));
    c.env_remove("DATAPILOT_BOOTSTRAP_TOKEN")
        .env_remove("DATAPILOT_DATABASE_URL")
        .env_remove("DATAPILOT_BLOBS")
        .env_remove("RUST_LOG")
        .env("DATAPILOT_LOG", "warn");
    c
}

/// A server started without `DATAPILOT_BOOTSTRAP_TOKEN`: its base URL, and its stderr so far
/// once the start-up banner is complete.
struct Started {
    child: std::process::Child,
    base: String,
    stderr: String,
}

impl Drop for Started {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(dir: &Path) -> Started {
    let log = dir.with_extension("stderr");
    let child = bin()
        .arg("--data-dir")
        .arg(dir)
        .args(["--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::from(std::fs::File::create(&log).unwrap()))
        .spawn()
        .unwrap();
    // Owned at once, so the process is killed and reaped whatever happens below.
    let mut s = Started {
        child,
        base: String::new(),
        stderr: String::new(),
    };
    let mut line = String::new();
    BufReader::new(s.child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    s.base = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("first line {line:?}"))
        .to_string();
    // The banner follows the listening line; it ends with a rule after the token line.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = std::fs::read_to_string(&log).unwrap();
        if text.contains("admin token") && text.trim_end().ends_with("=====") {
            s.stderr = text;
            return s;
        }
        assert!(Instant::now() < deadline, "no start-up banner: {text}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn banner_value(stderr: &str, label: &str) -> Option<String> {
    stderr
        .lines()
        .find_map(|l| l.trim_start().strip_prefix(label))
        .map(|v| v.trim().to_string())
}

#[test]
fn a_port_in_use_fails_before_any_state_is_created() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let out = bin()
        .arg("--data-dir")
        .arg(&dir)
        .args(["--listen", &addr])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("listening on {addr}")) && err.contains("in use"),
        "{err}"
    );
    // Nothing was created: no key, no database, no token printed.
    assert!(!dir.exists(), "the data directory was created");
    assert!(!err.contains("dpt_"), "{err}");
    drop(taken);

    // So the next start on a free port is a real first start, with its token.
    let s = start(&dir);
    let token = banner_value(&s.stderr, "admin token").unwrap();
    assert!(token.starts_with("dpt_"), "{}", s.stderr);
}

#[tokio::test]
async fn the_banner_shows_token_and_verifier_and_admin_token_recovers_access() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let first = start(&dir);
    let token = banner_value(&first.stderr, "admin token").unwrap();
    let verifier = banner_value(&first.stderr, "verifier key").unwrap();
    // The banner is the last thing of the start-up output.
    let tail: Vec<&str> = first.stderr.trim_end().lines().rev().take(8).collect();
    assert!(
        tail.iter().any(|l| l.contains("admin token")),
        "{}",
        first.stderr
    );
    let api = Api {
        base: first.base.clone(),
        token: Some(token.clone()),
        http: reqwest::Client::new(),
    };
    let keys = api.get("/v1/keys").await.json();
    assert_eq!(keys["keys"][0]["verifier"], verifier.as_str());
    assert_eq!(api.get("/v1/tokens").await.status, 200);
    drop(first);

    // A later start: no token (only its hash was kept), the recovery command instead.
    let second = start(&dir);
    assert!(!second.stderr.contains("dpt_"), "{}", second.stderr);
    assert!(
        second
            .stderr
            .contains("datapilot-server admin-token --data-dir"),
        "{}",
        second.stderr
    );
    assert_eq!(
        banner_value(&second.stderr, "verifier key").unwrap(),
        verifier
    );

    // Recovery while the server runs: a new admin token, on the record.
    let out = bin()
        .arg("admin-token")
        .arg("--data-dir")
        .arg(&dir)
        .args(["--name", "lost-token-recovery"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let new_secret = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(new_secret.starts_with("dpt_") && new_secret != token);
    let admin = Api {
        base: second.base.clone(),
        token: Some(new_secret),
        http: reqwest::Client::new(),
    };
    let toks = admin.get("/v1/tokens").await;
    assert_eq!(toks.status, 200, "{}", toks.text());
    let t = toks.json()["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "lost-token-recovery")
        .cloned()
        .expect("the new token is listed");
    assert_eq!(t["role"], "admin");
    let events = admin.get("/v1/audit/events?limit=100").await.json();
    let ev = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["subject"] == format!("token:{}", t["id"].as_str().unwrap()))
        .cloned()
        .expect("an audit event for the new token");
    assert_eq!(ev["action"], "token.create");
    assert_eq!(ev["actor"]["kind"], "system");
    // The ledger still verifies: the new event extends it (the server and the command share
    // the database, each write under the ledger-state lock).
    admin.dataset("after-recovery").await;
    let (size, _, _) = checkpoint(&admin).await;
    assert_eq!(
        size, 4,
        "ledger.init, bootstrap token, recovery token, dataset"
    );
}

#[test]
fn admin_token_refuses_a_directory_without_a_ledger() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("empty");
    std::fs::create_dir_all(&dir).unwrap();
    let mut child = bin()
        .arg("admin-token")
        .arg("--data-dir")
        .arg(&dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status = child.wait().unwrap();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(!status.success());
    assert!(err.contains("holds no DataPilot database"), "{err}");
    assert_eq!(err.lines().count(), 1, "one readable line: {err}");
    assert!(std::fs::read_dir(&dir).unwrap().next().is_none());
}
