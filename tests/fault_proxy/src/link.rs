//! A slow or dead network link for the transfer suites (issue 10): a plain TCP relay on
//! `127.0.0.1:0` in front of a loopback upstream that limits the bandwidth of each direction
//! and can stop forwarding a direction after some bytes while keeping the connection open
//! (a stalled link: no reset, no FIN, nothing moves), or flip one byte of it (a corrupting
//! link: lengths and framing intact, content wrong, what only an end-to-end digest catches).
//!
//! Unlike [`crate::FaultProxy`] it does not parse HTTP and holds no message: it copies bytes
//! in chunks of at most [`CHUNK`], so a 256 MiB upload passes through in constant memory.
//! Rates are kept over the whole connection (a chunk waits until the bytes forwarded so far,
//! at the configured rate, are due), so short bursts from socket buffers cannot beat it.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio::time::Instant;

/// Largest piece read and forwarded at once (also the rate's granularity).
pub const CHUNK: usize = 64 << 10;

/// Connections at once; more are closed on accept.
const MAX_CONNECTIONS: usize = 64;

/// What the link does to one direction of every connection.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Direction {
    /// Bytes per second forwarded; `None`: as fast as loopback.
    pub bytes_per_sec: Option<u64>,
    /// Forward this many bytes of the direction (per connection), then nothing more while
    /// holding the connection open; `None`: never stall.
    pub stall_after: Option<u64>,
    /// Invert the byte at this offset of the direction (per connection, counted from its first
    /// byte, HTTP heads included); `None`: pass every byte unchanged.
    pub corrupt_at: Option<u64>,
}

/// A link's two directions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkConfig {
    /// Client to server (request bodies: uploads).
    pub up: Direction,
    /// Server to client (answers: downloads).
    pub down: Direction,
}

/// A running link. Dropping it closes every connection.
#[derive(Debug)]
pub struct SlowLink {
    addr: SocketAddr,
    forwarded_up: Arc<AtomicU64>,
    forwarded_down: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for SlowLink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl SlowLink {
    /// Starts a link on `127.0.0.1:0` to `upstream` (a loopback address), inside the current
    /// tokio runtime.
    pub async fn start(upstream: SocketAddr, config: LinkConfig) -> io::Result<Self> {
        if !upstream.ip().is_loopback() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("upstream {upstream} is not a loopback address"),
            ));
        }
        for d in [config.up, config.down] {
            if d.bytes_per_sec == Some(0) {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "a rate must be positive (use stall_after: Some(0) for a dead link)",
                ));
            }
        }
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let forwarded_up = Arc::new(AtomicU64::new(0));
        let forwarded_down = Arc::new(AtomicU64::new(0));
        let (up, down) = (forwarded_up.clone(), forwarded_down.clone());
        let task = tokio::spawn(async move {
            let mut conns = JoinSet::new();
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    continue;
                };
                while conns.try_join_next().is_some() {}
                if conns.len() >= MAX_CONNECTIONS {
                    drop(client);
                    continue;
                }
                let (up, down) = (up.clone(), down.clone());
                conns.spawn(async move {
                    let Ok(server) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    let _ = client.set_nodelay(true);
                    let _ = server.set_nodelay(true);
                    let (cr, cw) = client.into_split();
                    let (sr, sw) = server.into_split();
                    // Either direction ending (EOF or error) ends the connection.
                    tokio::select! {
                        _ = relay(cr, sw, config.up, &up) => {}
                        _ = relay(sr, cw, config.down, &down) => {}
                    }
                });
            }
        });
        Ok(Self {
            addr,
            forwarded_up,
            forwarded_down,
            task,
        })
    }

    /// `http://127.0.0.1:PORT`, the base URL to give a client.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Bytes forwarded client to server so far, over all connections.
    pub fn forwarded_up(&self) -> u64 {
        self.forwarded_up.load(Ordering::Relaxed)
    }

    /// Bytes forwarded server to client so far, over all connections.
    pub fn forwarded_down(&self) -> u64 {
        self.forwarded_down.load(Ordering::Relaxed)
    }
}

/// Copies `from` to `to` under `rule` until EOF or an error.
async fn relay(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    rule: Direction,
    counter: &AtomicU64,
) -> io::Result<()> {
    let start = Instant::now();
    let mut sent = 0u64;
    let mut buf = vec![0u8; CHUNK];
    loop {
        let mut want = CHUNK;
        if let Some(limit) = rule.stall_after {
            if sent >= limit {
                // A dead link: read nothing more, keep both sockets open.
                std::future::pending::<()>().await;
            }
            want = want.min((limit - sent) as usize);
        }
        if let Some(rate) = rule.bytes_per_sec {
            // At most a tenth of a second's worth at a time, so the pace is smooth.
            want = want.min(((rate / 10).max(1)) as usize);
        }
        let n = from.read(&mut buf[..want]).await?;
        if n == 0 {
            let _ = to.shutdown().await;
            return Ok(());
        }
        if let Some(rate) = rule.bytes_per_sec {
            // The bytes forwarded so far plus these are due at (sent + n) / rate.
            let due = start + Duration::from_secs_f64((sent + n as u64) as f64 / rate as f64);
            tokio::time::sleep_until(due).await;
        }
        if let Some(at) = rule.corrupt_at {
            if (sent..sent + n as u64).contains(&at) {
                buf[(at - sent) as usize] ^= 0xff;
            }
        }
        to.write_all(&buf[..n]).await?;
        sent += n as u64;
        counter.fetch_add(n as u64, Ordering::Relaxed);
    }
}
