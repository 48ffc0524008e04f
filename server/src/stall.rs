//! Request bodies that stop arriving: a body that goes `--body-stall-timeout` without a byte
//! fails with an error, so a client sending one byte now and then cannot hold a request slot,
//! buffered memory or a temporary upload forever (a minimum rate, measured as the longest
//! allowed silence).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use hyper::body::Frame;
use tokio::time::{Instant, Sleep};

/// A body that errors after `limit` without a frame.
pub struct StallTimeout {
    inner: Body,
    limit: Duration,
    sleep: Pin<Box<Sleep>>,
}

impl std::fmt::Debug for StallTimeout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StallTimeout")
            .field("limit", &self.limit)
            .finish_non_exhaustive()
    }
}

impl StallTimeout {
    pub fn new(inner: Body, limit: Duration) -> Self {
        StallTimeout {
            inner,
            limit,
            sleep: Box::pin(tokio::time::sleep(limit)),
        }
    }
}

/// The error a stalled body ends with.
#[derive(Debug)]
pub struct Stalled(pub Duration);

impl std::fmt::Display for Stalled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "no data received for {} s (--body-stall-timeout)",
            self.0.as_secs()
        )
    }
}

impl std::error::Error for Stalled {}

impl HttpBody for StallTimeout {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(f) => {
                let next = Instant::now() + this.limit;
                this.sleep.as_mut().reset(next);
                Poll::Ready(f)
            }
            Poll::Pending => match this.sleep.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Some(Err(axum::Error::new(Stalled(this.limit))))),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

/// Middleware: every request body gets the stall timeout.
pub async fn middleware(State(limit): State<Duration>, req: Request, next: Next) -> Response {
    let req = req.map(|b| Body::new(StallTimeout::new(b, limit)));
    next.run(req).await
}
