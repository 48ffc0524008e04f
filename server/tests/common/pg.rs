//! Test harness: a throwaway PostgreSQL cluster on 127.0.0.1, from Debian's server package
//! (`./x setup` installs it; see docs/toolchain.md, "PostgreSQL and Garage for the tests").
//!
//! Include it with `#[path = "common/pg.rs"] mod pg;`. `PgCluster::start()` runs `initdb` in a
//! temporary directory, starts the server on a free port with its socket in that directory, and
//! creates the database [`DB`]; dropping the value stops the server (`pg_ctl -m immediate`) and
//! removes the directory. About a second from nothing to accepting connections.
//!
//! `start()` keeps `fsync` and `synchronous_commit` on (durability and crash tests must use it);
//! `start_fast()` turns both off, for functional tests only.
//!
//! `initdb` refuses to run as root: as root the directory is handed to the `postgres` user and
//! the server programs run through `runuser -u postgres --`; otherwise they run directly.
//! `DATAPILOT_PG_BIN` overrides the server binaries' directory (default: the newest
//! `/usr/lib/postgresql/*/bin`).

#![allow(dead_code)]

use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// The database `start()` creates.
pub const DB: &str = "datapilot_test";

/// How many times a start is retried on a fresh port when the chosen one was taken meanwhile.
const PORT_ATTEMPTS: usize = 5;

/// A running throwaway PostgreSQL server; stopped and deleted on drop.
#[derive(Debug)]
pub struct PgCluster {
    bin: PathBuf,
    port: u16,
    durable: bool,
    as_postgres: bool,
    dir: tempfile::TempDir,
}

impl PgCluster {
    /// A cluster with `fsync` and `synchronous_commit` on (the server's defaults). Panics with
    /// the reason (and the server log's tail) when it cannot start.
    pub fn start() -> PgCluster {
        Self::try_start(true).unwrap_or_else(|e| panic!("{e}"))
    }

    /// A cluster with `fsync` and `synchronous_commit` off: faster, for functional tests only.
    pub fn start_fast() -> PgCluster {
        Self::try_start(false).unwrap_or_else(|e| panic!("{e}"))
    }

    pub fn try_start(durable: bool) -> Result<PgCluster, String> {
        let bin = bin_dir()?;
        let as_postgres = running_as_root();
        let dir = tempfile::Builder::new()
            .prefix("datapilot-pg-")
            .tempdir()
            .map_err(|e| format!("pg: cannot create a temp dir: {e}"))?;
        if as_postgres {
            let out = run(Command::new("chown").arg("postgres:").arg(dir.path()))?;
            check(&out, "chown postgres: on the cluster dir")?;
        }
        let mut pg = PgCluster {
            bin,
            port: 0,
            durable,
            as_postgres,
            dir,
        };
        pg.initdb()?;
        pg.start_server()?;
        pg.wait_ready()?;
        pg.try_psql("postgres", &format!("CREATE DATABASE \"{DB}\""))?;
        Ok(pg)
    }

    /// `postgres://postgres@127.0.0.1:PORT/DB` (trust authentication: no password).
    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// Creates the database `name` (letters, digits and `_`) and returns its URL.
    pub fn create_db(&self, name: &str) -> String {
        assert!(
            !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "pg: database name {name:?} must be letters, digits and _"
        );
        self.psql("postgres", &format!("CREATE DATABASE \"{name}\""));
        self.url(name)
    }

    /// Creates a database with a name unique in this process and returns its URL.
    pub fn fresh_db(&self) -> String {
        static N: AtomicUsize = AtomicUsize::new(0);
        self.create_db(&format!(
            "t{}_{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ))
    }

    /// Runs `sql` in `db` with `psql` and returns its unaligned, tuples-only output, trimmed.
    /// Panics with psql's error output when it fails.
    pub fn psql(&self, db: &str, sql: &str) -> String {
        self.try_psql(db, sql).unwrap_or_else(|e| panic!("{e}"))
    }

    pub fn try_psql(&self, db: &str, sql: &str) -> Result<String, String> {
        let out = run(Command::new(self.bin.join("psql"))
            .args(["-X", "-q", "-tA", "-v", "ON_ERROR_STOP=1", "-c", sql])
            .arg(self.url(db)))?;
        check(&out, &format!("psql -c {sql:?}"))?;
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Whether `fsync` and `synchronous_commit` are on (`start()`) or off (`start_fast()`).
    pub fn durable(&self) -> bool {
        self.durable
    }

    /// The temporary directory: `data/` (the cluster), `server.log`, the Unix socket.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A program of the server package, e.g. `bin("pg_dump")`.
    pub fn bin(&self, program: &str) -> PathBuf {
        self.bin.join(program)
    }

    /// The last `lines` lines of the server log.
    pub fn log_tail(&self, lines: usize) -> String {
        let log = std::fs::read_to_string(self.dir().join("server.log")).unwrap_or_default();
        let all: Vec<&str> = log.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Stop the server (`pg_ctl -m fast stop`): clients then see refused connections.
    pub fn stop_server(&self) {
        let out = run(self
            .server_cmd("pg_ctl")
            .arg("-D")
            .arg(self.data())
            .args(["-m", "fast", "-w", "-t", "30", "stop"]))
        .unwrap();
        check(&out, "pg_ctl stop").unwrap();
    }

    /// Start the stopped server again, on the same port.
    pub fn restart_server(&self) {
        let sync = if self.durable { "on" } else { "off" };
        let opts = format!(
            "-c listen_addresses=127.0.0.1 -p {} -k {} -c fsync={sync} -c synchronous_commit={sync}",
            self.port,
            self.dir().display()
        );
        let out = run(self
            .server_cmd("pg_ctl")
            .arg("-D")
            .arg(self.data())
            .arg("-l")
            .arg(self.dir().join("server.log"))
            .args(["-w", "-t", "30", "-o", &opts, "start"]))
        .unwrap();
        check(&out, "pg_ctl start").unwrap();
        self.wait_ready().unwrap();
    }

    /// Freeze (`SIGSTOP`) or thaw (`SIGCONT`) the postmaster and every backend: a database that
    /// accepts connections but never answers.
    pub fn signal_all(&self, signal: &str) {
        let pidfile = std::fs::read_to_string(self.data().join("postmaster.pid")).unwrap();
        let pid = pidfile.lines().next().unwrap().trim().to_string();
        let children = Command::new("pgrep").args(["-P", &pid]).output().unwrap();
        let mut pids = vec![pid];
        pids.extend(
            String::from_utf8_lossy(&children.stdout)
                .split_whitespace()
                .map(String::from),
        );
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .args(&pids)
            .status()
            .unwrap();
        assert!(status.success(), "kill -{signal} {pids:?}");
    }

    fn data(&self) -> PathBuf {
        self.dir().join("data")
    }

    /// A server program, as `postgres` when this process is root. Run in the cluster dir: the
    /// `postgres` user may not be allowed into the current one.
    fn server_cmd(&self, program: &str) -> Command {
        let mut cmd = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(self.bin.join(program));
            c
        } else {
            Command::new(self.bin.join(program))
        };
        cmd.current_dir(self.dir());
        cmd
    }

    fn initdb(&self) -> Result<(), String> {
        let out = run(self.server_cmd("initdb").arg("-D").arg(self.data()).args([
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        ]))?;
        check(&out, "initdb").map_err(|e| {
            if self.as_postgres {
                format!("{e}\n(as root, the temp dir must be reachable by the postgres user: check TMPDIR)")
            } else {
                e
            }
        })
    }

    fn start_server(&mut self) -> Result<(), String> {
        let sync = if self.durable { "on" } else { "off" };
        let mut last = String::new();
        for _ in 0..PORT_ATTEMPTS {
            self.port = free_port()?;
            let opts = format!(
                "-c listen_addresses=127.0.0.1 -p {} -k {} -c fsync={sync} -c synchronous_commit={sync}",
                self.port,
                self.dir().display()
            );
            let out = run(self
                .server_cmd("pg_ctl")
                .arg("-D")
                .arg(self.data())
                .arg("-l")
                .arg(self.dir().join("server.log"))
                .args(["-w", "-t", "30", "-o", &opts, "start"]))?;
            if out.status.success() {
                return Ok(());
            }
            let tail = self.log_tail(20);
            last = format!(
                "pg: pg_ctl start on port {} failed: {}\n--- server.log (tail) ---\n{tail}",
                self.port,
                output_text(&out)
            );
            if !tail.contains("Address already in use") {
                break;
            }
        }
        Err(last)
    }

    fn wait_ready(&self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let out = run(Command::new(self.bin.join("pg_isready")).args([
                "-q",
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
            ]))?;
            if out.status.success() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "pg: server on port {} not ready after 15 s\n--- server.log (tail) ---\n{}",
                    self.port,
                    self.log_tail(20)
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        if self.port == 0 {
            return; // never started
        }
        let _ = self
            .server_cmd("pg_ctl")
            .arg("-D")
            .arg(self.data())
            .args(["-m", "immediate", "-w", "-t", "10", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        // If pg_ctl could not stop it, the postmaster's PID is still in postmaster.pid.
        if let Ok(pidfile) = std::fs::read_to_string(self.data().join("postmaster.pid")) {
            if let Some(pid) = pidfile.lines().next().filter(|p| p.parse::<u32>().is_ok()) {
                let _ = Command::new("kill").args(["-KILL", pid]).status();
            }
        }
        // The TempDir field removes the directory after this.
    }
}

/// `DATAPILOT_PG_BIN`, else the newest `/usr/lib/postgresql/<version>/bin` that has `initdb`.
fn bin_dir() -> Result<PathBuf, String> {
    if let Some(dir) = std::env::var_os("DATAPILOT_PG_BIN") {
        let dir = PathBuf::from(dir);
        return if dir.join("initdb").is_file() {
            Ok(dir)
        } else {
            Err(format!(
                "pg: DATAPILOT_PG_BIN={} has no initdb",
                dir.display()
            ))
        };
    }
    let root = Path::new("/usr/lib/postgresql");
    let mut found: Vec<(Vec<u32>, PathBuf)> = std::fs::read_dir(root)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e
                .file_name()
                .to_str()?
                .split('.')
                .map(|n| n.parse().ok())
                .collect::<Option<Vec<u32>>>()?;
            let bin = e.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, bin)| bin).ok_or_else(|| {
        "pg: no PostgreSQL server found (no /usr/lib/postgresql/*/bin/initdb): run ./x setup, \
         or apt-get install postgresql, or set DATAPILOT_PG_BIN"
            .to_string()
    })
}

fn running_as_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

/// A port that was free a moment ago (bound to 127.0.0.1:0, then released).
fn free_port() -> Result<u16, String> {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("pg: cannot find a free port: {e}"))
}

/// Whether something accepts TCP connections on 127.0.0.1:`port`.
pub fn port_open(port: u16) -> bool {
    TcpStream::connect_timeout(
        &(Ipv4Addr::LOCALHOST, port).into(),
        Duration::from_millis(500),
    )
    .is_ok()
}

fn run(cmd: &mut Command) -> Result<Output, String> {
    // PG* variables from the caller's environment (PGHOST, PGOPTIONS, ...) must not redirect
    // or alter these commands.
    for var in [
        "PGDATA",
        "PGHOST",
        "PGHOSTADDR",
        "PGPORT",
        "PGUSER",
        "PGDATABASE",
        "PGOPTIONS",
        "PGSERVICE",
    ] {
        cmd.env_remove(var);
    }
    cmd.stdin(Stdio::null())
        .output()
        .map_err(|e| format!("pg: cannot run {:?}: {e}", cmd.get_program()))
}

fn check(out: &Output, what: &str) -> Result<(), String> {
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "pg: {what} failed ({}): {}",
            out.status,
            output_text(out)
        ))
    }
}

fn output_text(out: &Output) -> String {
    let mut s = String::from_utf8_lossy(&out.stderr).trim().to_string();
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !stdout.trim().is_empty() {
        s.push('\n');
        s.push_str(stdout.trim());
    }
    s
}
