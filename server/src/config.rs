//! Command line and environment configuration.
//!
//! Every flag has an environment equivalent so the server can be configured the same way by a
//! shell, a systemd unit or a container. The bootstrap admin token is taken from the
//! environment (never a flag in a process list) or generated on first start.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;

/// Reference DataPilot control plane: datasets, runs, lineage and a signed audit ledger on
/// embedded SQLite.
#[derive(Parser, Debug, Clone)]
#[command(
    name = "datapilot-server",
    version,
    about,
    long_about = None,
    after_help = "Operator commands (each has --help): datapilot-server admin-token | backup | restore | verify | migrate\nSee docs/operations.md."
)]
pub struct Config {
    /// Directory holding the signing key and, by default, the SQLite database and the blobs;
    /// created on first start.
    #[arg(long, env = "DATAPILOT_DATA_DIR")]
    pub data_dir: PathBuf,

    /// Metadata database: a `postgres://user@host:port/db` URL for PostgreSQL (several replicas
    /// may share it); unset: SQLite in the data directory. Prefer the environment variable when
    /// the URL holds a password.
    #[arg(long, env = "DATAPILOT_DATABASE_URL", hide_env_values = true)]
    pub database: Option<String>,

    /// Connections each replica keeps to PostgreSQL at most.
    #[arg(long, env = "DATAPILOT_DB_POOL_SIZE", default_value_t = crate::store::postgres::DEFAULT_POOL_SIZE)]
    pub db_pool_size: usize,

    /// Seconds one database operation (a read, or a batch of writes) may take; then the request
    /// is answered `503 unavailable` with `Retry-After` instead of hanging.
    #[arg(long, env = "DATAPILOT_DB_TIMEOUT", default_value_t = 30)]
    pub db_timeout: u64,

    /// Artifact store: `s3://BUCKET?endpoint=http://host:port&region=R[&prefix=P]` for an
    /// S3-compatible store (keys from `DATAPILOT_S3_ACCESS_KEY_ID` / `DATAPILOT_S3_SECRET_ACCESS_KEY`
    /// or `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY`), or a directory; unset: `blobs/` in
    /// the data directory.
    #[arg(long, env = "DATAPILOT_BLOBS")]
    pub blobs: Option<String>,

    /// Address to listen on. Port 0 picks a free port; the bound address is logged as
    /// `listening on <addr>` and printed on stdout.
    #[arg(long, env = "DATAPILOT_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// Ledger origin: the first line of every checkpoint and the name of the signing key, one
    /// name per log (e.g. `ml.corp.example/datapilot`). Fixed when the ledger is created; unset:
    /// the recorded one, or for a new ledger `datapilot.local/ledger/<16 hex>` derived from its
    /// key.
    #[arg(long, env = "DATAPILOT_ORIGIN")]
    pub origin: Option<String>,

    /// A witness to submit each new checkpoint to, as `URL=VKEY` (C2SP tlog-witness; the vkey
    /// is `<name>+<key id>+<base64(0x04 || public key)>`); repeat for several. Their
    /// cosignatures are published on the checkpoint.
    #[arg(long = "witness", env = "DATAPILOT_WITNESSES", value_delimiter = ',')]
    pub witness: Vec<String>,

    /// Rotate the ledger key at this start: a new key, a `key.rotate` ledger event signed (in
    /// its checkpoint) by the old key, the old key kept as `ledger.key.retired-<key id>` and
    /// listed by `/v1/keys` with the size it was retired at. Stop the other replicas first and
    /// copy the new `ledger.key` to them.
    #[arg(long)]
    pub rotate_key: bool,

    /// Exact browser origins allowed by CORS (comma separated, e.g. `https://ml.corp`).
    /// Empty: no cross-origin access (the bundled demo page is same-origin).
    #[arg(long, env = "DATAPILOT_CORS_ORIGINS", value_delimiter = ',')]
    pub cors_origins: Vec<String>,

    /// Gateway mode: identity comes only from internal headers signed with the HMAC-SHA256 key
    /// in this file; bearer tokens are ignored.
    #[arg(long, env = "DATAPILOT_GATEWAY_HMAC_KEY_FILE")]
    pub gateway_hmac_key_file: Option<PathBuf>,

    /// Directory served at `/` (default: `demo-web/` of the source checkout, if present).
    #[arg(long, env = "DATAPILOT_STATIC_DIR")]
    pub static_dir: Option<PathBuf>,

    /// Largest accepted artifact upload in bytes.
    #[arg(long, env = "DATAPILOT_MAX_ARTIFACT_BYTES", default_value_t = 1 << 30)]
    pub max_artifact_bytes: u64,

    /// Requests served at once; more wait for a slot. Bounds the memory that concurrent
    /// request bodies can take (JSON bodies are buffered up to their operation's cap).
    #[arg(long, env = "DATAPILOT_MAX_CONCURRENT_REQUESTS", default_value_t = 256)]
    pub max_concurrent_requests: usize,

    /// Open connections at most; more are closed as soon as they are accepted.
    #[arg(long, env = "DATAPILOT_MAX_CONNECTIONS", default_value_t = 1024)]
    pub max_connections: usize,

    /// Open connections per client address at most (behind a gateway, the gateway is one
    /// address: raise this or rely on the gateway's own limits).
    #[arg(long, env = "DATAPILOT_MAX_CONNECTIONS_PER_IP", default_value_t = 256)]
    pub max_connections_per_ip: usize,

    /// Seconds a client has to send a request's headers; then the connection is closed.
    #[arg(long, env = "DATAPILOT_HEADER_TIMEOUT", default_value_t = 10)]
    pub header_timeout: u64,

    /// Seconds a request body may go without receiving a byte; then the request fails (400)
    /// and its slot, memory and temporary data are released.
    #[arg(long, env = "DATAPILOT_BODY_STALL_TIMEOUT", default_value_t = 30)]
    pub body_stall_timeout: u64,

    /// Artifact uploads served at once (each streams to the blob store); more wait. Kept apart
    /// from `--max-concurrent-requests` so slow uploads cannot starve other calls.
    #[arg(long, env = "DATAPILOT_MAX_CONCURRENT_UPLOADS", default_value_t = 64)]
    pub max_concurrent_uploads: usize,

    /// Bytes of request bodies buffered in memory at once, over all requests (JSON bodies are
    /// read whole before parsing); a request that would exceed it waits for room.
    #[arg(long, env = "DATAPILOT_MAX_BUFFERED_BYTES", default_value_t = 256 << 20)]
    pub max_buffered_bytes: usize,

    /// Requests per second each principal (API token, run token, gateway subject) may make on
    /// average; more are answered `429 rate_limited` with `Retry-After`. 0 turns it off.
    #[arg(long, env = "DATAPILOT_RATE_LIMIT", default_value_t = 0)]
    pub rate_limit: u32,

    /// Requests a principal may make at once before `--rate-limit` applies (default: twice the
    /// rate).
    #[arg(long, env = "DATAPILOT_RATE_LIMIT_BURST")]
    pub rate_limit_burst: Option<u32>,

    /// Bootstrap admin secret used on first start instead of a generated one (prefer the
    /// environment variable: flags are visible in process lists).
    #[arg(long, env = "DATAPILOT_BOOTSTRAP_TOKEN", hide_env_values = true)]
    pub bootstrap_token: Option<String>,

    /// For tests only: run tokens expire after this many seconds instead of the policy's
    /// `run_token_ttl_seconds` (whose minimum, 60 s, is too slow for a test of expiry).
    #[arg(long, hide = true)]
    pub run_token_ttl_override_seconds: Option<u64>,

    /// Log filter in `tracing` syntax (RUST_LOG is honoured too).
    #[arg(long, env = "DATAPILOT_LOG", default_value = "info")]
    pub log: String,

    /// Log lines as human-readable `text` or one JSON object per line (`json`, for log
    /// shippers). At `info`, every request is logged once (target `datapilot_server::access`)
    /// with its request id, principal id (never a secret), operation, status and duration.
    #[arg(long, env = "DATAPILOT_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Seconds `/metrics` reuses the blob-store totals (`datapilot_blob_bytes`,
    /// `datapilot_blobs`, an aggregate over all artifacts) between scrapes.
    #[arg(long, env = "DATAPILOT_METRICS_BLOB_REFRESH", default_value_t = 30)]
    pub metrics_blob_refresh: u64,

    /// Serve HTTPS: PEM certificate chain (leaf first). Needs `--tls-key`. Read at start;
    /// replace the files and restart to rotate.
    #[arg(long, env = "DATAPILOT_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// The PEM private key (PKCS#8, PKCS#1 or SEC1) of `--tls-cert`; keep it mode 0600.
    #[arg(long, env = "DATAPILOT_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// Behind a reverse proxy: take the client address for the access log from the last
    /// `X-Forwarded-For` entry (the one the proxy appended). Off: the header is ignored.
    #[arg(long, env = "DATAPILOT_TRUST_FORWARDED_FOR")]
    pub trust_forwarded_for: bool,
}

/// `--log-format`.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// Install the global `tracing` subscriber on stderr: `filter` unless `RUST_LOG` is set.
pub fn init_logging(filter: &str, format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(filter));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        // Fields flattened to the top level, so a shipper sees `request_id`, `status`, … as keys.
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .init(),
    }
}

impl Config {
    /// The connection layer's limits.
    pub fn conn_limits(&self) -> crate::serve::ConnLimits {
        crate::serve::ConnLimits {
            max_connections: self.max_connections,
            max_per_ip: self.max_connections_per_ip,
            header_timeout: std::time::Duration::from_secs(self.header_timeout.max(1)),
            shutdown_grace: std::time::Duration::from_secs(30),
        }
    }

    /// The static directory to serve, if any: the flag, else `demo-web/` of the workspace this
    /// binary was built from (so `cargo run -p datapilot-server` serves the demo as is).
    pub fn resolved_static_dir(&self) -> Option<PathBuf> {
        if let Some(d) = &self.static_dir {
            return Some(d.clone());
        }
        let candidate = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../demo-web");
        candidate.is_dir().then_some(candidate)
    }
}
