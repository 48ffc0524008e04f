//! The connection layer: accepting, bounding and timing out connections before any request
//! reaches the router.
//!
//! `axum::serve` has no header timeout and no connection cap: a client that opens connections
//! and never finishes its headers holds them forever, and past the file-descriptor limit the
//! server stops accepting. Here every connection is one permit of `--max-connections` and of
//! `--max-connections-per-ip` (refused ones are closed at once), request headers must arrive
//! within `--header-timeout`, idle keep-alive connections are closed, accept errors (`EMFILE`)
//! back off instead of spinning, and shutdown is graceful with a bound. With `--tls-cert` the
//! same applies over TLS ([`crate::tls`]); the handshake shares the header timeout.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// Connection limits and timeouts (flags in [`crate::config::Config`]).
#[derive(Debug, Clone)]
pub struct ConnLimits {
    pub max_connections: usize,
    pub max_per_ip: usize,
    pub header_timeout: Duration,
    /// How long in-flight requests may finish after a shutdown signal.
    pub shutdown_grace: Duration,
}

/// Connections per client address.
#[derive(Debug, Default)]
struct PerIp(Mutex<HashMap<IpAddr, usize>>);

/// One counted connection of an address; uncounted on drop.
struct IpSlot(Arc<PerIp>, IpAddr);

impl PerIp {
    fn take(self: &Arc<Self>, ip: IpAddr, max: usize) -> Option<IpSlot> {
        let mut m = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let n = m.entry(ip).or_default();
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(IpSlot(self.clone(), ip))
    }
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        let mut m = self.0 .0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = m.get_mut(&self.1) {
            *n -= 1;
            if *n == 0 {
                m.remove(&self.1);
            }
        }
    }
}

/// A connection's byte stream: plain TCP or TLS over it.
trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Io for T {}

/// Serve `app` on `listener` until `shutdown` completes; over TLS when `tls` is set.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnLimits,
    tls: Option<tokio_rustls::TlsAcceptor>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let conns = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let per_ip = Arc::new(PerIp::default());
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(Duration::from_secs(30)))
        .keep_alive_timeout(Duration::from_secs(20))
        .max_concurrent_streams(64);
    let builder = Arc::new(builder);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer): (tokio::net::TcpStream, SocketAddr) = tokio::select! {
            _ = &mut shutdown => break,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // EMFILE/ENFILE and friends: back off rather than spin; the connections
                    // already held finish and free descriptors.
                    tracing::warn!(error = %e, "accept failed; retrying shortly");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let Ok(conn_slot) = conns.clone().try_acquire_owned() else {
            tracing::warn!(%peer, "connection refused: --max-connections reached");
            continue; // dropping the stream closes it
        };
        let Some(ip_slot) = per_ip.take(peer.ip(), limits.max_per_ip) else {
            tracing::warn!(%peer, "connection refused: --max-connections-per-ip reached");
            continue;
        };
        let _ = stream.set_nodelay(true);
        // The peer address rides along with each request (the access log's client address).
        let svc = TowerToHyperService::new(tower::ServiceExt::map_request(
            app.clone().into_service::<hyper::body::Incoming>(),
            move |mut r: axum::http::Request<hyper::body::Incoming>| {
                r.extensions_mut().insert(axum::extract::ConnectInfo(peer));
                r
            },
        ));
        let Some(acceptor) = tls.clone() else {
            let io = TokioIo::new(crate::protocol_errors::ProblemIo::new(stream));
            let conn = builder.serve_connection_with_upgrades(io, svc);
            let conn = graceful.watch(conn.into_owned());
            tokio::spawn(async move {
                if let Err(e) = conn.await {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
                drop((conn_slot, ip_slot));
            });
            continue;
        };
        // TLS: the handshake runs in the connection's task (a slow client must not hold up
        // the accept loop) and must finish within the header timeout, like the headers.
        let (watcher, builder) = (graceful.watcher(), builder.clone());
        let handshake_timeout = limits.header_timeout;
        tokio::spawn(async move {
            let stream: Box<dyn Io> =
                match tokio::time::timeout(handshake_timeout, acceptor.accept(stream)).await {
                    Ok(Ok(s)) => Box::new(s),
                    Ok(Err(e)) => {
                        tracing::debug!(%peer, error = %e, "TLS handshake failed");
                        return;
                    }
                    Err(_) => {
                        tracing::debug!(%peer, "TLS handshake timed out");
                        return;
                    }
                };
            let io = TokioIo::new(crate::protocol_errors::ProblemIo::new(stream));
            let conn = builder.serve_connection_with_upgrades(io, svc).into_owned();
            if let Err(e) = watcher.watch(conn).await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
            drop((conn_slot, ip_slot));
        });
    }
    drop(listener);
    tracing::info!("shutdown signal received; finishing in-flight requests");
    if tokio::time::timeout(limits.shutdown_grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("in-flight requests still running after the shutdown grace period; exiting");
    }
}
