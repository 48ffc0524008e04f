//! A scripted transport and a fake clock for client tests: the transport replays canned
//! outcomes in order and records every request; the sleeper records delays without waiting.
//! Both share a fake monotonic clock: a wait advances it by its delay, an attempt by its
//! scripted latency (a transport timeout by the request's whole timeout, as a real transport
//! enforcing it would take).

#![allow(dead_code)]

use std::collections::VecDeque;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use datapilot::retry::RetryConfig;
use datapilot::transport::{
    BoxFuture, Headers, Request, Response, Sleep, Transport, TransportError, TransportErrorKind,
};
use datapilot::Client;

pub type Outcome = Result<Response, TransportError>;

/// The fake monotonic clock shared by [`Scripted`] and [`FakeSleep`] (behind a mutex because
/// transports and sleepers must be `Send + Sync` natively).
#[derive(Clone, Default, Debug)]
pub struct Clock(Arc<Mutex<Duration>>);

impl Clock {
    pub fn get(&self) -> Duration {
        *self.0.lock().unwrap()
    }
    pub fn set(&self, t: Duration) {
        *self.0.lock().unwrap() = t;
    }
}

/// Shared, mutable test state; `borrow_mut` keeps the call sites of the `RefCell` days.
#[derive(Default, Debug)]
pub struct Shared<T>(Arc<Mutex<T>>);

impl<T> Clone for Shared<T> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<T> Shared<T> {
    pub fn borrow_mut(&self) -> std::sync::MutexGuard<'_, T> {
        self.0.lock().unwrap()
    }
    pub fn borrow(&self) -> std::sync::MutexGuard<'_, T> {
        self.0.lock().unwrap()
    }
}

#[derive(Clone, Default)]
pub struct Scripted {
    pub outcomes: Shared<VecDeque<Outcome>>,
    pub requests: Shared<Vec<Request>>,
    /// Latency of each scripted outcome (zero when not given).
    pub latencies: Shared<VecDeque<Duration>>,
    pub clock: Clock,
}

impl Scripted {
    pub fn push(&self, outcome: Outcome) -> &Self {
        self.push_after(Duration::ZERO, outcome)
    }
    /// An outcome that arrives `latency` after the request (capped at the request's timeout,
    /// past which the transport reports a timeout instead).
    pub fn push_after(&self, latency: Duration, outcome: Outcome) -> &Self {
        self.outcomes.borrow_mut().push_back(outcome);
        self.latencies.borrow_mut().push_back(latency);
        self
    }
    /// A transport timeout: the attempt takes its whole timeout.
    pub fn timeout(&self) -> &Self {
        self.push(Err(TransportError::new(
            TransportErrorKind::Timeout,
            "timed out",
        )))
    }
    pub fn status(&self, status: u16, body: &str) -> &Self {
        self.push(Ok(response(status, &[], body)))
    }
    pub fn count(&self) -> usize {
        self.requests.borrow().len()
    }
    pub fn request(&self, i: usize) -> Request {
        self.requests.borrow()[i].clone()
    }
    pub fn header(&self, i: usize, name: &str) -> Option<String> {
        self.requests.borrow()[i]
            .headers
            .get(name)
            .map(str::to_owned)
    }
}

impl Transport for Scripted {
    fn send(&self, request: Request) -> BoxFuture<'_, Result<Response, TransportError>> {
        let timeout = request.timeout;
        self.requests.borrow_mut().push(request);
        let mut next = self.outcomes.borrow_mut().pop_front().unwrap_or_else(|| {
            Err(TransportError::new(
                TransportErrorKind::Io,
                "script exhausted",
            ))
        });
        let latency = self.latencies.borrow_mut().pop_front().unwrap_or_default();
        let took = match &next {
            Err(e) if e.kind == TransportErrorKind::Timeout => timeout,
            _ if latency > timeout => {
                next = Err(TransportError::new(
                    TransportErrorKind::Timeout,
                    "timed out",
                ));
                timeout
            }
            _ => latency,
        };
        self.clock.set(self.clock.get() + took);
        Box::pin(async move { next })
    }
}

#[derive(Clone, Default)]
pub struct FakeSleep {
    pub delays: Shared<Vec<Duration>>,
    /// The wall clock (for HTTP-date `Retry-After`), fixed.
    pub now: Option<u64>,
    /// The monotonic clock, advanced by every wait.
    pub clock: Clock,
    /// Extra time every wait overruns by (a late timer).
    pub overrun: Duration,
}

impl FakeSleep {
    /// Time on the fake monotonic clock.
    pub fn elapsed(&self) -> Duration {
        self.clock.get()
    }
}

impl Sleep for FakeSleep {
    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()> {
        self.delays.borrow_mut().push(duration);
        self.clock.set(self.clock.get() + duration + self.overrun);
        Box::pin(async {})
    }
    fn now_unix_millis(&self) -> Option<u64> {
        self.now
    }
    fn now(&self) -> Option<Duration> {
        Some(self.clock.get())
    }
}

pub fn response(status: u16, headers: &[(&str, &str)], body: &str) -> Response {
    let mut h = Headers::new();
    for (n, v) in headers {
        h.set(n, *v);
    }
    Response::new(status, h, body.as_bytes().to_vec())
}

pub fn problem(status: u16, code: &str, detail: &str) -> String {
    format!(
        r#"{{"type":"https://animus.dev/datapilot/problems/{code}","title":"T","status":{status},"detail":"{detail}","code":"{code}","request_id":"req-{status}"}}"#
    )
}

pub const TOKEN: &str = "dpt_TESTSECRETVALUE1234567";

pub fn client_with(retry: RetryConfig) -> (Client, Scripted, FakeSleep) {
    let t = Scripted::default();
    let s = FakeSleep {
        clock: t.clock.clone(),
        ..FakeSleep::default()
    };
    let c = Client::builder()
        .base_url("http://127.0.0.1:9")
        .token(TOKEN)
        .transport(t.clone())
        .sleep(s.clone())
        .retry(retry)
        .seed(42)
        .build()
        .unwrap();
    (c, t, s)
}

pub fn client() -> (Client, Scripted, FakeSleep) {
    client_with(RetryConfig::default())
}

/// Drives a future whose dependencies are all immediately ready (scripted transport, fake
/// sleep) to completion without a runtime.
pub fn block_on<F: Future>(fut: F) -> F::Output {
    let mut fut = std::pin::pin!(fut);
    let mut cx = Context::from_waker(Waker::noop());
    for _ in 0..1_000_000 {
        if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return v;
        }
    }
    panic!("future did not complete");
}
