//! A fault-injection proxy for the SDK suites (issue 11): it listens on `127.0.0.1:0`, forwards
//! HTTP/1.1 to the real reference server on loopback, and breaks a seeded share of the
//! exchanges the way networks and load balancers do. The server is never mocked: every answer
//! the client reads came from it, except the synthetic 503s. What the faults do:
//!
//! | fault | the server | the client |
//! | --- | --- | --- |
//! | [`Fault::ResetBefore`] | never sees the request | connection reset after sending it |
//! | [`Fault::ResetDuring`] | gets the request late (0–150 ms after the reset), racing the client's retry; its answer is dropped | connection reset |
//! | [`Fault::CutUpstream`] | gets the request, then its client goes away before the answer | connection reset |
//! | [`Fault::ResetAfter`] | answers (the write is committed) | connection reset instead of the answer |
//! | [`Fault::Unavailable`] | never sees the request | `503 unavailable` with `Retry-After` |
//! | [`Fault::InFlight`] | gets the request (0–150 ms later), racing the client's retry | `409 idempotency_in_flight` at once, as a server says while another request with the key runs |
//! | [`Fault::Truncated`] | answers | half the answer, then the connection closes |
//!
//! and independently of those an added delay (before forwarding or before answering).
//!
//! **Deterministic.** Whether a request is faulted depends only on the seed, the request's
//! `Idempotency-Key` (or, without one, its method and target) and how many requests with that
//! key came before: not on timing or on the order concurrent requests arrive in. A suite that
//! sends explicit keys gets the same faults for the same seed on every run, whatever the
//! scheduling; print the seed, and `DATAPILOT_FAULT_SEED` (read by the suites) replays it.
//! [`Config::max_faults_per_key`] bounds the faults one logical write can meet, so a client
//! with enough attempts always gets through: a write that still fails is the client's doing.
//!
//! **Bounded.** Upstream must be a loopback address; the proxy binds loopback only. Request
//! heads, bodies and answers have size caps, every read and the upstream exchange have
//! timeouts, connections are capped, and dropping the [`FaultProxy`] stops every task it
//! started.
//!
//! The parser is deliberately small (request heads through `httparse`, bodies by
//! `Content-Length` or chunked, answers read to EOF from a `Connection: close` upstream): the
//! proxy only needs to find where each message ends, and every byte is passed through unchanged
//! apart from the hop-by-hop `Connection` headers.

pub mod link;

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

/// Largest request or response head.
const MAX_HEAD: usize = 64 << 10;
/// Largest request body or response (the suites send kilobytes).
const MAX_BODY: usize = 64 << 20;
/// A client connection idle this long between requests is closed.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Connecting to the server, sending it the request and reading its whole answer.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(60);
/// Client connections at once; more are reset on accept.
const MAX_CONNECTIONS: usize = 256;
/// Requests on one client connection.
const MAX_REQUESTS_PER_CONNECTION: u32 = 10_000;
/// Fault log entries kept (for reporting a failure).
const MAX_LOG: usize = 100_000;
/// Longest delay of a [`Fault::ResetDuring`] request's late delivery.
const MAX_LATE_DELIVERY_MS: u64 = 150;

/// How many kinds of [`Fault`] there are.
pub const FAULTS: usize = 7;

/// What the proxy does to one request instead of forwarding it faithfully.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Fault {
    /// Reset the client's connection; the server never sees the request.
    ResetBefore,
    /// Reset the client's connection and deliver the request to the server a moment later,
    /// so it may run at the same time as the client's retry; the server's answer is dropped.
    ResetDuring,
    /// Send the request to the server, then close that connection before the answer (the
    /// server's client vanished mid-request) and reset the client's.
    CutUpstream,
    /// Forward, read the server's whole answer, then reset the client's connection instead
    /// of passing it on: the write is committed and the client cannot know.
    ResetAfter,
    /// Answer `503 unavailable` with `Retry-After` without forwarding.
    Unavailable,
    /// Answer `409 idempotency_in_flight` at once and deliver the request to the server a
    /// moment later, racing the client's retry: what a client sees when its retry reaches a
    /// server (a replica) while the request it repeats is still running there. The contract
    /// says to retry it (docs/api.md); the single-node reference server resolves such races
    /// inside one commit batch, so only this fault makes a client meet it.
    InFlight,
    /// Forward, then pass on only the first half of the answer and close.
    Truncated,
}

impl Fault {
    /// Every fault, in report order.
    pub const ALL: [Fault; FAULTS] = [
        Fault::ResetBefore,
        Fault::ResetDuring,
        Fault::CutUpstream,
        Fault::ResetAfter,
        Fault::Unavailable,
        Fault::InFlight,
        Fault::Truncated,
    ];

    /// The name used in reports, flags and the stats JSON.
    pub fn name(self) -> &'static str {
        match self {
            Fault::ResetBefore => "reset_before",
            Fault::ResetDuring => "reset_during",
            Fault::CutUpstream => "cut_upstream",
            Fault::ResetAfter => "reset_after",
            Fault::Unavailable => "unavailable_503",
            Fault::InFlight => "in_flight_409",
            Fault::Truncated => "truncated",
        }
    }

    fn index(self) -> usize {
        Fault::ALL.iter().position(|f| *f == self).expect("listed")
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How often each fault is injected, in requests per thousand, and its parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Seed of the schedule (see the crate docs).
    pub seed: u64,
    /// Per-mille rate of each fault, indexed like [`Fault::ALL`]. Their sum is at most 1000.
    pub rates: [u16; FAULTS],
    /// Per-mille rate of an added delay (independent of the faults).
    pub delay_rate: u16,
    /// Longest added delay.
    pub max_delay: Duration,
    /// The synthetic 503's `Retry-After`, in seconds.
    pub retry_after_secs: u32,
    /// Most faults injected into requests with one key; later attempts go through (delays
    /// excepted). `u32::MAX` for no bound.
    pub max_faults_per_key: u32,
}

impl Config {
    /// No faults and no delays: a plain forwarding proxy.
    pub fn transparent(seed: u64) -> Self {
        Self {
            seed,
            rates: [0; FAULTS],
            delay_rate: 0,
            max_delay: Duration::ZERO,
            retry_after_secs: 1,
            max_faults_per_key: u32::MAX,
        }
    }

    /// Sets one fault's per-mille rate.
    pub fn with_rate(mut self, fault: Fault, per_mille: u16) -> Self {
        self.rates[fault.index()] = per_mille;
        self
    }

    /// Sets the delay rate and the longest delay.
    pub fn with_delays(mut self, per_mille: u16, max: Duration) -> Self {
        self.delay_rate = per_mille;
        self.max_delay = max;
        self
    }

    /// Sets the 503's `Retry-After`.
    pub fn with_retry_after(mut self, secs: u32) -> Self {
        self.retry_after_secs = secs;
        self
    }

    /// Sets the per-key fault bound.
    pub fn with_max_faults_per_key(mut self, n: u32) -> Self {
        self.max_faults_per_key = n;
        self
    }

    fn validate(&self) -> io::Result<()> {
        let total: u32 = self.rates.iter().map(|r| u32::from(*r)).sum();
        if total > 1000 || self.delay_rate > 1000 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "fault rates are per mille and sum to at most 1000",
            ));
        }
        Ok(())
    }

    /// The decision for attempt `attempt` (0-based) of requests with `key`, given the faults
    /// already injected into that key: a pure function, so a schedule can be replayed.
    pub fn decide(&self, key: &str, attempt: u32, faults_so_far: u32) -> Decision {
        let mut rng = SplitMix(
            self.seed
                ^ fnv1a(key.as_bytes())
                ^ u64::from(attempt).wrapping_mul(0xA24B_AED4_963E_E407),
        );
        let roll = rng.below(1000) as u16;
        let delay_roll = rng.below(1000) as u16;
        let delay_ms = rng.below(self.max_delay.as_millis() as u64 + 1);
        let delay_before = rng.below(2) == 0;
        let late_ms = rng.below(MAX_LATE_DELIVERY_MS + 1);
        let mut fault = None;
        if faults_so_far < self.max_faults_per_key {
            let mut edge = 0u16;
            for f in Fault::ALL {
                edge += self.rates[f.index()];
                if roll < edge {
                    fault = Some(f);
                    break;
                }
            }
        }
        let delay = (delay_roll < self.delay_rate && delay_ms > 0).then(|| Delay {
            duration: Duration::from_millis(delay_ms),
            before_forwarding: delay_before,
        });
        Decision {
            fault,
            delay,
            late_delivery: Duration::from_millis(late_ms),
        }
    }
}

/// What happens to one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// The fault, if any.
    pub fault: Option<Fault>,
    /// An added delay, if any.
    pub delay: Option<Delay>,
    /// For [`Fault::ResetDuring`] and [`Fault::InFlight`]: how long after the client's answer
    /// (a reset, a 409) the server gets the request.
    pub late_delivery: Duration,
}

/// An added delay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delay {
    /// How long.
    pub duration: Duration,
    /// Before the request is forwarded (else before the answer is passed on).
    pub before_forwarding: bool,
}

/// Counts of what the proxy did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Requests read from clients.
    pub requests: u64,
    /// Requests passed on to the server (late deliveries included).
    pub forwarded: u64,
    /// Injected faults, indexed like [`Fault::ALL`].
    pub faults: [u64; FAULTS],
    /// Added delays.
    pub delays: u64,
    /// `409 idempotency_in_flight` answers of the server itself passed on to a client (races
    /// between a late delivery and its retry that the server could not resolve with a replay).
    pub server_in_flight_409: u64,
}

impl Stats {
    /// How often `fault` was injected.
    pub fn count(&self, fault: Fault) -> u64 {
        self.faults[fault.index()]
    }

    /// All injected faults.
    pub fn total_faults(&self) -> u64 {
        self.faults.iter().sum()
    }

    /// One line of JSON (what the binary prints).
    pub fn to_json(&self) -> String {
        let mut s = format!(
            "{{\"requests\":{},\"forwarded\":{},\"delays\":{},\"server_in_flight_409\":{}",
            self.requests, self.forwarded, self.delays, self.server_in_flight_409
        );
        for f in Fault::ALL {
            s.push_str(&format!(",\"{}\":{}", f.name(), self.count(f)));
        }
        s.push('}');
        s
    }
}

impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} requests, {} forwarded, {} delayed, {} faults (",
            self.requests,
            self.forwarded,
            self.delays,
            self.total_faults()
        )?;
        for (i, fault) in Fault::ALL.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{} {}", fault.name(), self.count(*fault))?;
        }
        write!(
            f,
            "), {} of the server's own in-flight 409s passed on",
            self.server_in_flight_409
        )
    }
}

/// One injected fault, for reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaultRecord {
    /// The request's `Idempotency-Key`, or `METHOD target`.
    pub key: String,
    /// Which request with that key (0-based).
    pub attempt: u32,
    /// What was done.
    pub fault: Fault,
}

#[derive(Default)]
struct Counters {
    requests: AtomicU64,
    forwarded: AtomicU64,
    faults: [AtomicU64; FAULTS],
    delays: AtomicU64,
    server_in_flight_409: AtomicU64,
}

struct Shared {
    config: Config,
    upstream: SocketAddr,
    counters: Counters,
    /// Per key: requests seen and faults injected.
    keys: Mutex<HashMap<String, (u32, u32)>>,
    log: Mutex<Vec<FaultRecord>>,
    next_id: AtomicU64,
    /// Requests delivered to the server after the client got its answer
    /// ([`Fault::InFlight`]), while the client's connection goes on; aborted with the proxy.
    deliveries: Mutex<JoinSet<()>>,
}

impl Shared {
    fn decide(&self, key: &str) -> Decision {
        let mut keys = self.keys.lock().expect("not poisoned");
        let entry = keys.entry(key.to_owned()).or_insert((0, 0));
        let (attempt, faults) = *entry;
        let d = self.config.decide(key, attempt, faults);
        entry.0 += 1;
        if let Some(fault) = d.fault {
            entry.1 += 1;
            self.counters.faults[fault.index()].fetch_add(1, Ordering::Relaxed);
            let mut log = self.log.lock().expect("not poisoned");
            if log.len() < MAX_LOG {
                log.push(FaultRecord {
                    key: key.to_owned(),
                    attempt,
                    fault,
                });
            }
        }
        if d.delay.is_some() {
            self.counters.delays.fetch_add(1, Ordering::Relaxed);
        }
        d
    }
}

/// A running proxy. Dropping it stops it (and every connection it holds).
pub struct FaultProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl fmt::Debug for FaultProxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FaultProxy")
            .field("addr", &self.addr)
            .field("upstream", &self.shared.upstream)
            .field("config", &self.shared.config)
            .finish()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        // The accept task owns the connection tasks (a JoinSet): aborting it ends them all.
        self.task.abort();
        if let Ok(mut d) = self.shared.deliveries.lock() {
            d.abort_all();
        }
    }
}

impl FaultProxy {
    /// Starts a proxy on `127.0.0.1:0` in front of `upstream` (a loopback address). Must be
    /// called inside a tokio runtime, which then runs it.
    pub async fn start(upstream: SocketAddr, config: Config) -> io::Result<Self> {
        if !upstream.ip().is_loopback() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("upstream {upstream} is not a loopback address"),
            ));
        }
        config.validate()?;
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            config,
            upstream,
            counters: Counters::default(),
            keys: Mutex::new(HashMap::new()),
            log: Mutex::new(Vec::new()),
            next_id: AtomicU64::new(0),
            deliveries: Mutex::new(JoinSet::new()),
        });
        let task = tokio::spawn(accept_loop(listener, shared.clone()));
        Ok(Self { addr, shared, task })
    }

    /// Parses an upstream given as `http://127.0.0.1:PORT[/]` or `127.0.0.1:PORT`.
    pub fn parse_upstream(url: &str) -> io::Result<SocketAddr> {
        let rest = url.strip_prefix("http://").unwrap_or(url);
        let authority = rest.split('/').next().unwrap_or("");
        authority.parse().map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("upstream {url:?} is not http://IP:PORT"),
            )
        })
    }

    /// The proxy's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`, the base URL to give a client.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The schedule's seed.
    pub fn seed(&self) -> u64 {
        self.shared.config.seed
    }

    /// What the proxy has done so far.
    pub fn stats(&self) -> Stats {
        let c = &self.shared.counters;
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        Stats {
            requests: load(&c.requests),
            forwarded: load(&c.forwarded),
            faults: std::array::from_fn(|i| load(&c.faults[i])),
            delays: load(&c.delays),
            server_in_flight_409: load(&c.server_in_flight_409),
        }
    }

    /// The faults injected into requests with `key` (to explain a failed write).
    pub fn faults_for(&self, key: &str) -> Vec<FaultRecord> {
        let log = self.shared.log.lock().expect("not poisoned");
        log.iter().filter(|r| r.key == key).cloned().collect()
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let mut conns = JoinSet::new();
    loop {
        let Ok((stream, peer)) = listener.accept().await else {
            // EMFILE and friends: back off instead of spinning.
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        while conns.try_join_next().is_some() {}
        if !peer.ip().is_loopback() || conns.len() >= MAX_CONNECTIONS {
            reset(stream);
            continue;
        }
        let _ = stream.set_nodelay(true);
        conns.spawn(serve_connection(stream, shared.clone()));
    }
}

/// Closes `stream` with a TCP RST (zero linger), which the client sees as "connection reset".
fn reset(stream: TcpStream) {
    let _ = stream.set_zero_linger();
    drop(stream);
}

/// One request read from a client.
struct RawRequest {
    method: String,
    target: String,
    /// `Idempotency-Key`, if sent.
    key: Option<String>,
    /// The head with hop-by-hop headers replaced by `connection: close`, then the body as sent.
    upstream_bytes: Vec<u8>,
}

async fn serve_connection(mut client: TcpStream, shared: Arc<Shared>) {
    let mut buf = Vec::new();
    for _ in 0..MAX_REQUESTS_PER_CONNECTION {
        let req =
            match tokio::time::timeout(IDLE_TIMEOUT, read_request(&mut client, &mut buf)).await {
                Ok(Ok(Some(req))) => req,
                // EOF between requests, a timeout, or bytes that are not HTTP/1.1: close.
                _ => return,
            };
        shared.counters.requests.fetch_add(1, Ordering::Relaxed);
        let key = req
            .key
            .clone()
            .unwrap_or_else(|| format!("{} {}", req.method, req.target));
        let decision = shared.decide(&key);
        let delay = decision.delay.unwrap_or(Delay {
            duration: Duration::ZERO,
            before_forwarding: true,
        });
        if delay.before_forwarding {
            tokio::time::sleep(delay.duration).await;
        }
        match decision.fault {
            Some(Fault::ResetBefore) => return reset(client),
            Some(Fault::ResetDuring) => {
                reset(client);
                // The delivery stays in this connection's task, so stopping the proxy ends it
                // too; the client is already gone, so nothing else waits for this task.
                tokio::time::sleep(decision.late_delivery).await;
                let _ = forward(&shared, &req.upstream_bytes).await;
                return;
            }
            Some(Fault::CutUpstream) => {
                reset(client);
                if let Ok(Ok(mut up)) =
                    tokio::time::timeout(UPSTREAM_TIMEOUT, TcpStream::connect(shared.upstream))
                        .await
                {
                    shared.counters.forwarded.fetch_add(1, Ordering::Relaxed);
                    if up.write_all(&req.upstream_bytes).await.is_ok() {
                        // Give the server a moment to start on it, then vanish.
                        tokio::time::sleep(decision.late_delivery / 10).await;
                    }
                    reset(up);
                }
                return;
            }
            Some(Fault::Unavailable) => {
                if client.write_all(&unavailable(&shared)).await.is_err() {
                    return;
                }
                continue;
            }
            Some(Fault::InFlight) => {
                {
                    let late = shared.clone();
                    let mut deliveries = shared.deliveries.lock().expect("not poisoned");
                    while deliveries.try_join_next().is_some() {}
                    // Its own task: the client may send its retry on this very connection
                    // while the request it repeats is still on its way to the server.
                    deliveries.spawn(async move {
                        tokio::time::sleep(decision.late_delivery).await;
                        let _ = forward(&late, &req.upstream_bytes).await;
                    });
                }
                if client.write_all(&in_flight(&shared)).await.is_err() {
                    return;
                }
                continue;
            }
            None | Some(Fault::ResetAfter) | Some(Fault::Truncated) => {}
        }
        let Ok(answer) = forward(&shared, &req.upstream_bytes).await else {
            // The server is not answering: what a gateway says then.
            let _ = client.write_all(&bad_gateway(&shared)).await;
            return;
        };
        if !delay.before_forwarding {
            tokio::time::sleep(delay.duration).await;
        }
        if answer.in_flight_409 {
            shared
                .counters
                .server_in_flight_409
                .fetch_add(1, Ordering::Relaxed);
        }
        match decision.fault {
            Some(Fault::ResetAfter) => return reset(client),
            Some(Fault::Truncated) => {
                // Half the body (never all of it), or half the head if there is no body to
                // cut: either way the client cannot mistake it for a whole answer.
                let cut = if answer.body_len >= 2 {
                    answer.head_len + answer.body_len / 2
                } else {
                    answer.head_len / 2
                };
                let _ = client.write_all(&answer.bytes[..cut]).await;
                let _ = client.shutdown().await;
                return;
            }
            _ => {}
        }
        if client.write_all(&answer.bytes).await.is_err() || answer.close_delimited {
            return;
        }
    }
}

/// Reads one request (head and body) from `client`; `buf` holds bytes read past the previous
/// request. `None` at a clean EOF before a new request.
async fn read_request(client: &mut TcpStream, buf: &mut Vec<u8>) -> io::Result<Option<RawRequest>> {
    let head_len = loop {
        if let Some(i) = find(buf, b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > MAX_HEAD {
            return Err(invalid("request head too large"));
        }
        if read_more(client, buf).await? == 0 {
            return if buf.is_empty() {
                Ok(None)
            } else {
                Err(invalid("EOF inside a request head"))
            };
        }
    };
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut parsed = httparse::Request::new(&mut headers);
    if !parsed
        .parse(&buf[..head_len])
        .map_err(|e| invalid(&format!("bad request head: {e}")))?
        .is_complete()
    {
        return Err(invalid("incomplete request head"));
    }
    let method = parsed.method.unwrap_or("").to_owned();
    let target = parsed.path.unwrap_or("").to_owned();
    let mut key = None;
    let mut content_length = None;
    let mut chunked = false;
    let mut head = format!("{method} {target} HTTP/1.1\r\n").into_bytes();
    for h in parsed.headers.iter() {
        let value = std::str::from_utf8(h.value).map_err(|_| invalid("non-UTF-8 header"))?;
        if h.name.eq_ignore_ascii_case("idempotency-key") {
            key = Some(value.to_owned());
        } else if h.name.eq_ignore_ascii_case("content-length") {
            content_length = Some(
                value
                    .trim()
                    .parse::<usize>()
                    .map_err(|_| invalid("bad Content-Length"))?,
            );
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value.to_ascii_lowercase().contains("chunked");
        } else if h.name.eq_ignore_ascii_case("expect") {
            // Neither reqwest nor undici sends it; a proxy that buffers could not honour it.
            return Err(invalid("Expect is not supported"));
        }
        if is_hop_by_hop(h.name) {
            continue;
        }
        head.extend_from_slice(h.name.as_bytes());
        head.extend_from_slice(b": ");
        head.extend_from_slice(h.value);
        head.extend_from_slice(b"\r\n");
    }
    head.extend_from_slice(b"connection: close\r\n\r\n");
    buf.drain(..head_len);
    let body_len = if chunked {
        loop {
            if let Some(n) = chunked_len(buf)? {
                break n;
            }
            if buf.len() > MAX_BODY {
                return Err(invalid("request body too large"));
            }
            if read_more(client, buf).await? == 0 {
                return Err(invalid("EOF inside a chunked body"));
            }
        }
    } else {
        let n = content_length.unwrap_or(0);
        if n > MAX_BODY {
            return Err(invalid("request body too large"));
        }
        while buf.len() < n {
            if read_more(client, buf).await? == 0 {
                return Err(invalid("EOF inside a request body"));
            }
        }
        n
    };
    head.extend(buf.drain(..body_len));
    Ok(Some(RawRequest {
        method,
        target,
        key,
        upstream_bytes: head,
    }))
}

/// `Connection` and the headers it governs are per hop: the proxy speaks keep-alive to the
/// client and one `Connection: close` exchange per request to the server.
fn is_hop_by_hop(name: &str) -> bool {
    ["connection", "keep-alive", "proxy-connection"]
        .iter()
        .any(|h| name.eq_ignore_ascii_case(h))
}

async fn read_more(stream: &mut TcpStream, buf: &mut Vec<u8>) -> io::Result<usize> {
    let mut chunk = [0u8; 16 << 10];
    let n = stream.read(&mut chunk).await?;
    buf.extend_from_slice(&chunk[..n]);
    Ok(n)
}

/// The length of the chunked body at the start of `buf` (trailers and the final CRLF
/// included) once it is complete; `None` while more bytes are needed.
fn chunked_len(buf: &[u8]) -> io::Result<Option<usize>> {
    let mut pos = 0;
    loop {
        let Some(eol) = find(&buf[pos..], b"\r\n") else {
            return Ok(None);
        };
        let line = std::str::from_utf8(&buf[pos..pos + eol]).map_err(|_| invalid("chunk size"))?;
        let size_hex = line.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_hex, 16).map_err(|_| invalid("chunk size"))?;
        pos += eol + 2;
        if size == 0 {
            // Trailer lines, then an empty line.
            loop {
                let Some(eol) = find(&buf[pos..], b"\r\n") else {
                    return Ok(None);
                };
                pos += eol + 2;
                if eol == 0 {
                    return Ok(Some(pos));
                }
            }
        }
        if size > MAX_BODY {
            return Err(invalid("chunk too large"));
        }
        if buf.len() < pos + size + 2 {
            return Ok(None);
        }
        if &buf[pos + size..pos + size + 2] != b"\r\n" {
            return Err(invalid("chunk not followed by CRLF"));
        }
        pos += size + 2;
    }
}

/// The server's answer, rewritten for the client.
struct Answer {
    /// Head (hop-by-hop headers removed) and body as the server sent it.
    bytes: Vec<u8>,
    head_len: usize,
    body_len: usize,
    /// The body ends where the connection does (no length, not chunked).
    close_delimited: bool,
    /// A `409 idempotency_in_flight`.
    in_flight_409: bool,
}

/// Sends `request` to the server on a new connection and reads its whole answer.
async fn forward(shared: &Shared, request: &[u8]) -> io::Result<Answer> {
    shared.counters.forwarded.fetch_add(1, Ordering::Relaxed);
    let exchange = async {
        let mut up = TcpStream::connect(shared.upstream).await?;
        up.set_nodelay(true)?;
        up.write_all(request).await?;
        let mut raw = Vec::new();
        // `Connection: close`: the answer ends at EOF.
        loop {
            if read_more(&mut up, &mut raw).await? == 0 {
                break;
            }
            if raw.len() > MAX_HEAD + MAX_BODY {
                return Err(invalid("answer too large"));
            }
        }
        Ok::<_, io::Error>(raw)
    };
    let raw = tokio::time::timeout(UPSTREAM_TIMEOUT, exchange)
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "upstream timed out"))??;
    let head_len = find(&raw, b"\r\n\r\n")
        .map(|i| i + 4)
        .ok_or_else(|| invalid("answer without a complete head"))?;
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut parsed = httparse::Response::new(&mut headers);
    parsed
        .parse(&raw[..head_len])
        .map_err(|e| invalid(&format!("bad answer head: {e}")))?;
    let status = parsed.code.unwrap_or(0);
    let status_line_end = find(&raw, b"\r\n").expect("head has a CRLF");
    let mut bytes = raw[..status_line_end + 2].to_vec();
    let mut framed = matches!(status, 100..=199 | 204 | 304);
    for h in parsed.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length")
            || (h.name.eq_ignore_ascii_case("transfer-encoding")
                && h.value.eq_ignore_ascii_case(b"chunked"))
        {
            framed = true;
        }
        if is_hop_by_hop(h.name) {
            continue;
        }
        bytes.extend_from_slice(h.name.as_bytes());
        bytes.extend_from_slice(b": ");
        bytes.extend_from_slice(h.value);
        bytes.extend_from_slice(b"\r\n");
    }
    if !framed {
        bytes.extend_from_slice(b"connection: close\r\n");
    }
    bytes.extend_from_slice(b"\r\n");
    let new_head_len = bytes.len();
    let body = &raw[head_len..];
    let in_flight_409 = status == 409 && find(body, b"idempotency_in_flight").is_some();
    bytes.extend_from_slice(body);
    Ok(Answer {
        bytes,
        head_len: new_head_len,
        body_len: body.len(),
        close_delimited: !framed,
        in_flight_409,
    })
}

fn problem(shared: &Shared, status: &str, code: &str, extra_header: &str) -> Vec<u8> {
    let id = format!(
        "req_faultproxy{}",
        shared.next_id.fetch_add(1, Ordering::Relaxed)
    );
    let body = format!(
        "{{\"type\":\"https://animus.dev/datapilot/problems/{code}\",\"title\":\"{status}\",\
         \"status\":{},\"detail\":\"injected by the fault proxy\",\"code\":\"{code}\",\
         \"request_id\":\"{id}\"}}",
        &status[..3]
    );
    format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/problem+json\r\nx-request-id: {id}\r\n\
         {extra_header}content-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn unavailable(shared: &Shared) -> Vec<u8> {
    let retry_after = format!("retry-after: {}\r\n", shared.config.retry_after_secs);
    problem(
        shared,
        "503 Service Unavailable",
        "unavailable",
        &retry_after,
    )
}

fn in_flight(shared: &Shared) -> Vec<u8> {
    problem(shared, "409 Conflict", "idempotency_in_flight", "")
}

fn bad_gateway(shared: &Shared) -> Vec<u8> {
    problem(
        shared,
        "502 Bad Gateway",
        "bad_gateway",
        "connection: close\r\n",
    )
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn invalid(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.to_owned())
}

/// FNV-1a: a hash that is the same on every platform and release (std's is not promised to be).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// SplitMix64: small, seedable, good enough to spread faults.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next()) * u128::from(n)) >> 64) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Config {
        Config::transparent(7)
            .with_rate(Fault::ResetBefore, 100)
            .with_rate(Fault::ResetAfter, 100)
            .with_rate(Fault::Unavailable, 100)
            .with_delays(200, Duration::from_millis(50))
    }

    #[test]
    fn the_schedule_depends_only_on_seed_key_and_attempt() {
        let c = config();
        let a: Vec<Decision> = (0..200).map(|i| c.decide(&format!("k{i}"), 0, 0)).collect();
        // In another order (as concurrent requests arrive): the same decision per request.
        let mut b: Vec<Decision> = (0..200)
            .rev()
            .map(|i| c.decide(&format!("k{i}"), 0, 0))
            .collect();
        b.reverse();
        assert_eq!(a, b);
        assert_ne!(c.decide("k0", 0, 0), c.decide("k0", 1, 0));
        let other = Config {
            seed: 8,
            ..c.clone()
        };
        let o: Vec<Decision> = (0..200)
            .map(|i| other.decide(&format!("k{i}"), 0, 0))
            .collect();
        assert_ne!(a, o);
        // About the configured share of each fault (30% in all; 200 draws).
        let faulted = a.iter().filter(|d| d.fault.is_some()).count();
        assert!((30..=90).contains(&faulted), "{faulted}");
        let delayed = a.iter().filter(|d| d.delay.is_some()).count();
        assert!((15..=70).contains(&delayed), "{delayed}");
    }

    #[test]
    fn the_per_key_bound_stops_faults() {
        let c = config().with_max_faults_per_key(1);
        for i in 0..100 {
            assert_eq!(c.decide(&format!("k{i}"), 3, 1).fault, None);
        }
    }

    #[test]
    fn rates_over_a_thousand_are_refused() {
        let c = Config::transparent(1)
            .with_rate(Fault::ResetBefore, 600)
            .with_rate(Fault::Truncated, 401);
        assert!(c.validate().is_err());
    }

    #[test]
    fn chunked_bodies_end_after_the_last_chunk_and_trailers() {
        assert_eq!(chunked_len(b"").unwrap(), None);
        assert_eq!(chunked_len(b"3\r\nabc\r\n").unwrap(), None);
        assert_eq!(chunked_len(b"3\r\nabc\r\n0\r\n\r\n").unwrap(), Some(13));
        assert_eq!(
            chunked_len(b"3;x=1\r\nabc\r\n0\r\nT: v\r\n\r\nNEXT").unwrap(),
            Some(23)
        );
        assert!(chunked_len(b"zz\r\n").is_err());
        assert!(chunked_len(b"3\r\nabcd\r\n").is_err());
    }

    #[test]
    fn upstream_must_be_loopback() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let far = "10.1.2.3:80".parse().unwrap();
            assert!(FaultProxy::start(far, Config::transparent(1))
                .await
                .is_err());
        });
        assert_eq!(
            FaultProxy::parse_upstream("http://127.0.0.1:8080").unwrap(),
            "127.0.0.1:8080".parse().unwrap()
        );
    }
}
