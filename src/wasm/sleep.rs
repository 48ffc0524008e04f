//! Timers and clocks on `globalThis` (`setTimeout`, `performance.now`, `Date.now`), for the
//! core's retry backoff and call deadlines. A pending delay is cleared when its future is
//! dropped (an aborted call), so no timer outlives the call and keeps a Node process alive.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;

use super::transport::{clear_timeout, set_timeout};
use crate::transport::{LocalBoxFuture, Sleep};

/// The core's [`Sleep`] on JS timers.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct JsSleep;

impl Sleep for JsSleep {
    fn sleep(&self, duration: Duration) -> LocalBoxFuture<'static, ()> {
        Box::pin(Delay::new(duration))
    }

    fn now_unix_millis(&self) -> Option<u64> {
        Some(js_sys::Date::now() as u64)
    }

    /// `performance.now()`: monotonic, so a wall-clock jump cannot stretch or cut a call's
    /// deadline; the wall clock only where a runtime has no `performance`.
    fn now(&self) -> Option<Duration> {
        match performance_now() {
            Ok(ms) if ms.is_finite() && ms >= 0.0 => Some(Duration::from_secs_f64(ms / 1000.0)),
            _ => self.now_unix_millis().map(Duration::from_millis),
        }
    }
}

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_namespace = performance, js_name = now, catch)]
    fn performance_now() -> Result<f64, JsValue>;
}

/// Resolves after a delay; clears its timer when dropped early.
pub(crate) struct Delay {
    id: Option<JsValue>,
    fut: JsFuture,
}

impl Delay {
    pub(crate) fn new(duration: Duration) -> Self {
        let ms = duration.as_secs_f64() * 1000.0;
        let mut id = None;
        let promise = js_sys::Promise::new(&mut |resolve, _reject| {
            id = Some(set_timeout(&resolve, ms));
        });
        Self {
            id,
            fut: JsFuture::from(promise),
        }
    }
}

impl Future for Delay {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        match Pin::new(&mut self.fut).poll(cx) {
            Poll::Ready(_) => {
                self.id = None;
                Poll::Ready(())
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl Drop for Delay {
    fn drop(&mut self) {
        if let Some(id) = self.id.take() {
            clear_timeout(&id);
        }
    }
}
