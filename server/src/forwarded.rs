//! The client's address, for the access log.
//!
//! By default it is the TCP peer. Behind a reverse proxy that peer is the proxy, so with
//! `--trust-forwarded-for` the server takes the **last** entry of `X-Forwarded-For` instead:
//! the one the proxy in front of it appended. Earlier entries are whatever the client sent and
//! are never used. Without the flag the header is ignored entirely, so a client talking to the
//! server directly cannot put another address in the logs. The rate limit is per principal
//! (token, run, gateway subject), never per address, so the header cannot move it either.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, Request};

use crate::app::AppState;

/// The client's address as the access log shows it (`-` when unknown).
pub fn client_addr(st: &AppState, req: &Request) -> String {
    if st.trust_forwarded_for {
        if let Some(ip) = last_forwarded_for(req) {
            return ip.to_string();
        }
    }
    req.extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or_else(|| "-".to_string(), |c| c.0.ip().to_string())
}

/// The last address of the last `X-Forwarded-For` header, if it parses as an IP address.
fn last_forwarded_for(req: &Request) -> Option<IpAddr> {
    let last = req
        .headers()
        .get_all("x-forwarded-for")
        .iter()
        .next_back()?;
    let entry = last.to_str().ok()?.rsplit(',').next()?.trim();
    entry.parse().ok()
}
