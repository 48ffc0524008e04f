//! A scripted transport and a fake clock for client tests: the transport replays canned
//! outcomes in order and records every request; the sleeper records delays without waiting.

#![allow(dead_code)]

use std::cell::RefCell;
use std::collections::VecDeque;
use std::future::Future;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use datapilot::retry::RetryConfig;
use datapilot::transport::{
    Headers, LocalBoxFuture, Request, Response, Sleep, Transport, TransportError,
    TransportErrorKind,
};
use datapilot::Client;

pub type Outcome = Result<Response, TransportError>;

#[derive(Clone, Default)]
pub struct Scripted {
    pub outcomes: Rc<RefCell<VecDeque<Outcome>>>,
    pub requests: Rc<RefCell<Vec<Request>>>,
}

impl Scripted {
    pub fn push(&self, outcome: Outcome) -> &Self {
        self.outcomes.borrow_mut().push_back(outcome);
        self
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
    fn send(&self, request: Request) -> LocalBoxFuture<'_, Result<Response, TransportError>> {
        self.requests.borrow_mut().push(request);
        let next = self.outcomes.borrow_mut().pop_front().unwrap_or_else(|| {
            Err(TransportError::new(
                TransportErrorKind::Io,
                "script exhausted",
            ))
        });
        Box::pin(async move { next })
    }
}

#[derive(Clone, Default)]
pub struct FakeSleep {
    pub delays: Rc<RefCell<Vec<Duration>>>,
    pub now: Option<u64>,
}

impl Sleep for FakeSleep {
    fn sleep(&self, duration: Duration) -> LocalBoxFuture<'static, ()> {
        self.delays.borrow_mut().push(duration);
        Box::pin(async {})
    }
    fn now_unix_millis(&self) -> Option<u64> {
        self.now
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
    let s = FakeSleep::default();
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
