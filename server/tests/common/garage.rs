//! Test harness: a throwaway single-node Garage (S3-compatible store) on 127.0.0.1.
//!
//! Include it with `#[path = "common/garage.rs"] mod garage;`. `Garage::start()` writes a
//! config into a temporary directory, starts `garage server --single-node --default-bucket` on
//! free ports with a fresh key, and waits until the S3 port accepts connections (about 0.2 s).
//! Dropping the value kills the server, waits for it and removes the directory.
//!
//! The binary is `$DATAPILOT_TOOLS_DIR/bin/garage`, else `$HOME/.cache/datapilot/tools/bin/garage`
//! (a crates.io build of Garage 2.5, see docs/toolchain.md); without it `start()` panics saying
//! so. The server logs to `garage.log` in the temporary directory (`log_tail()`).

#![allow(dead_code)]

use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The `s3_region` the server is configured with; clients must use the same.
pub const REGION: &str = "garage";
/// The bucket `--default-bucket` creates.
pub const BUCKET: &str = "artifacts";

/// How many times a start is retried on fresh ports when the chosen ones were taken meanwhile.
const PORT_ATTEMPTS: usize = 5;
/// How long a start may take before it counts as failed.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A running Garage server; killed and deleted on drop.
#[derive(Debug)]
pub struct Garage {
    child: Option<Child>,
    /// `http://127.0.0.1:PORT`, the S3 API.
    pub endpoint: String,
    pub bucket: String,
    pub region: String,
    pub key_id: String,
    pub secret: String,
    dir: tempfile::TempDir,
}

impl Garage {
    /// Start a server. Panics with the reason (and the log's tail) when it cannot.
    pub fn start() -> Garage {
        Self::try_start().unwrap_or_else(|e| panic!("{e}"))
    }

    pub fn try_start() -> Result<Garage, String> {
        let bin = binary()?;
        let mut last = String::new();
        for _ in 0..PORT_ATTEMPTS {
            let (api, rpc) = (free_port()?, free_port()?);
            if api == rpc {
                continue;
            }
            let mut g = Garage {
                child: None,
                endpoint: format!("http://127.0.0.1:{api}"),
                bucket: BUCKET.to_string(),
                region: REGION.to_string(),
                // Garage's key format: "GK" + 12 bytes of hex, and a 32-byte hex secret.
                key_id: format!("GK{}", random_hex(12)),
                secret: random_hex(32),
                dir: tempfile::Builder::new()
                    .prefix("datapilot-garage-")
                    .tempdir()
                    .map_err(|e| format!("garage: cannot create a temp dir: {e}"))?,
            };
            std::fs::write(g.config_path(), g.config(api, rpc))
                .map_err(|e| format!("garage: writing its config: {e}"))?;
            match g.spawn(&bin).and_then(|()| g.wait_ready(api)) {
                Ok(()) => return Ok(g),
                // Only a lost race for a port (taken between our probe and Garage's bind) is
                // worth another attempt.
                Err(e) if e.contains("in use") => last = e,
                Err(e) => return Err(e),
            }
        }
        Err(last)
    }

    /// `s3://BUCKET?endpoint=…&region=…&prefix=PREFIX` for this server (credentials go through
    /// the environment or `S3Config`, never the spec).
    pub fn spec(&self, prefix: &str) -> String {
        format!(
            "s3://{}?endpoint={}&region={}&prefix={prefix}",
            self.bucket, self.endpoint, self.region
        )
    }

    /// Stop the server (SIGTERM, then wait; it takes about a second). Afterwards its port
    /// refuses connections, which is what a client sees of a store that is down.
    pub fn stop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if matches!(child.try_wait(), Ok(Some(_))) {
                    self.child = None;
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        self.kill();
    }

    /// Incomplete multipart uploads in the bucket, from `garage bucket info` (what S3's
    /// ListMultipartUploads would show; `object_store` cannot list them).
    pub fn unfinished_multipart_uploads(&self) -> u64 {
        let out = self
            .cli()
            .args(["bucket", "info", &self.bucket])
            .output()
            .expect("run garage bucket info");
        assert!(
            out.status.success(),
            "garage bucket info: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // "Unfinished uploads:   2 multipart uploads", a line absent when there are none.
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .find_map(|l| l.trim().strip_prefix("Unfinished uploads:"))
            .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    }

    /// A `garage` CLI command talking to this server over RPC.
    pub fn cli(&self) -> Command {
        let mut c = Command::new(binary().expect("garage binary"));
        c.env("GARAGE_CONFIG_FILE", self.config_path())
            .env("RUST_LOG", "warn");
        c
    }

    /// The last `lines` lines of the server log.
    pub fn log_tail(&self, lines: usize) -> String {
        let log = std::fs::read_to_string(self.dir.path().join("garage.log")).unwrap_or_default();
        let all: Vec<&str> = log.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    fn config_path(&self) -> PathBuf {
        self.dir.path().join("garage.toml")
    }

    fn config(&self, api: u16, rpc: u16) -> String {
        let d = self.dir.path().display();
        format!(
            r#"metadata_dir = "{d}/meta"
data_dir = "{d}/data"
db_engine = "sqlite"
replication_factor = 1
rpc_bind_addr = "127.0.0.1:{rpc}"
rpc_public_addr = "127.0.0.1:{rpc}"
rpc_secret = "{secret}"

[s3_api]
s3_region = "{REGION}"
api_bind_addr = "127.0.0.1:{api}"
"#,
            secret = random_hex(32)
        )
    }

    fn spawn(&mut self, bin: &PathBuf) -> Result<(), String> {
        let log = std::fs::File::create(self.dir.path().join("garage.log"))
            .map_err(|e| format!("garage: creating its log: {e}"))?;
        let log2 = log
            .try_clone()
            .map_err(|e| format!("garage: log file: {e}"))?;
        // The fastest start (see /work/shared/notes/scale-path.md): the default bucket and key
        // come from the environment, no layout or key commands needed.
        let child = Command::new(bin)
            .args(["server", "--single-node", "--default-bucket"])
            .env("GARAGE_CONFIG_FILE", self.config_path())
            .env("GARAGE_DEFAULT_ACCESS_KEY", &self.key_id)
            .env("GARAGE_DEFAULT_SECRET_KEY", &self.secret)
            .env("GARAGE_DEFAULT_BUCKET", &self.bucket)
            .env("RUST_LOG", "garage=info")
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log2))
            .spawn()
            .map_err(|e| format!("garage: starting {}: {e}", bin.display()))?;
        self.child = Some(child);
        Ok(())
    }

    fn wait_ready(&mut self, api: u16) -> Result<(), String> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                return Err(format!(
                    "garage exited during start ({status}); log:\n{}",
                    self.log_tail(30)
                ));
            }
            if TcpStream::connect((Ipv4Addr::LOCALHOST, api)).is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "garage did not listen on {api} within {START_TIMEOUT:?}; log:\n{}",
                    self.log_tail(30)
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Garage {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `$DATAPILOT_TOOLS_DIR/bin/garage`, else `$HOME/.cache/datapilot/tools/bin/garage`.
pub fn binary() -> Result<PathBuf, String> {
    let tools = match std::env::var_os("DATAPILOT_TOOLS_DIR") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
            .join(".cache/datapilot/tools"),
    };
    let bin = tools.join("bin/garage");
    if bin.is_file() {
        Ok(bin)
    } else {
        Err(format!(
            "garage: {} not found; `./x setup` builds it (cargo install garage --version 2.5.0 \
             --locked --no-default-features --features bundled-libs,sqlite --root {})",
            bin.display(),
            tools.display()
        ))
    }
}

fn free_port() -> Result<u16, String> {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("garage: no free port: {e}"))
}

fn random_hex(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    getrandom::getrandom(&mut b).expect("OS random source");
    hex::encode(b)
}
