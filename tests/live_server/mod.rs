//! The real reference server for the SDK's native integration tests.
//!
//! The binary comes from `DATAPILOT_SERVER_BIN` if set (`./x test` builds it and sets it), else
//! it is built with `cargo build -p datapilot-server` into the calling test's target dir. Each
//! [`Server`] listens on a free port of 127.0.0.1 with its own temporary data dir and a known
//! bootstrap admin token, and is stopped and removed when dropped.
//!
//! Each test binary compiles this module and uses part of it.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use datapilot::Client;

/// A running `datapilot-server`; killed and its data dir removed on drop.
pub struct Server {
    child: Child,
    pub dir: PathBuf,
    pub url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn server_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("DATAPILOT_SERVER_BIN") {
        return PathBuf::from(p);
    }
    // target/<dir>/debug/deps/<test>-… → target/<dir>
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().unwrap().parent().unwrap().to_path_buf();
    let target_dir = profile_dir.parent().unwrap().to_path_buf();
    let status = Command::new(env!("CARGO"))
        .args(["build", "-q", "-p", "datapilot-server"])
        .env("CARGO_TARGET_DIR", &target_dir)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .expect("run cargo build");
    assert!(status.success(), "building datapilot-server failed");
    profile_dir.join("datapilot-server")
}

/// Starts a server whose bootstrap admin token is `admin`; `tag` names its temp dir.
pub fn start_server(admin: &str, tag: &str) -> Server {
    start_server_with(admin, tag, &[])
}

/// Like [`start_server`], with extra server flags.
pub fn start_server_with(admin: &str, tag: &str, args: &[&str]) -> Server {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let dir = std::env::temp_dir().join(format!("dp-{tag}-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut child = Command::new(server_bin())
        .arg("--data-dir")
        .arg(&dir)
        .args(["--listen", "127.0.0.1:0"])
        .args(args)
        .env("DATAPILOT_BOOTSTRAP_TOKEN", admin)
        .env("DATAPILOT_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start datapilot-server");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(url) = line.strip_prefix("listening on ") {
                let _ = tx.send(url.trim().to_owned());
            }
        }
    });
    let url = match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(url) => url,
        Err(_) => {
            let _ = child.kill();
            panic!("datapilot-server did not print its address");
        }
    };
    Server { child, dir, url }
}

/// A native SDK client for `server` with `token`.
pub fn client(server: &Server, token: &str) -> Client {
    Client::builder()
        .base_url(&server.url)
        .token(token)
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}
