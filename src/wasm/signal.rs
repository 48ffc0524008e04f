//! The caller's `AbortSignal`.
//!
//! The core client knows nothing about JS signals; cancelling a Rust future is dropping it.
//! [`with_signal`] races a call against the signal and, when the signal wins, drops the call:
//! that drops the in-flight attempt (whose guard aborts its `fetch`, see
//! [`super::transport`]) or the pending backoff timer (cleared, see [`super::sleep`]). The
//! call then rejects with `signal.reason`, as `fetch` itself does.

use std::future::{poll_fn, Future};
use std::pin::{pin, Pin};
use std::task::Poll;

use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;

/// Reads an optional `AbortSignal` argument (`undefined`/`null` → none).
pub(crate) fn signal_from(value: &JsValue) -> Result<Option<web_sys::AbortSignal>, JsValue> {
    if value.is_undefined() || value.is_null() {
        return Ok(None);
    }
    value
        .clone()
        .dyn_into::<web_sys::AbortSignal>()
        .map(Some)
        .map_err(|_| super::error::invalid_argument("signal must be an AbortSignal"))
}

/// Runs `fut` unless `signal` aborts first; then drops it and fails with `signal.reason`.
pub(crate) async fn with_signal<F: Future>(
    signal: Option<&web_sys::AbortSignal>,
    fut: F,
) -> Result<F::Output, JsValue> {
    let Some(signal) = signal else {
        return Ok(fut.await);
    };
    if signal.aborted() {
        return Err(signal.reason());
    }
    // The promise's own `resolve` is the listener: no Rust closure to keep alive or leak.
    let mut listener: Option<js_sys::Function> = None;
    let aborted = js_sys::Promise::new(&mut |resolve, _reject| {
        let _ = signal.add_event_listener_with_callback("abort", &resolve);
        listener = Some(resolve);
    });
    let mut aborted = JsFuture::from(aborted);
    let mut fut = pin!(fut);
    let out = poll_fn(|cx| {
        if Pin::new(&mut aborted).poll(cx).is_ready() {
            return Poll::Ready(Err(signal.reason()));
        }
        fut.as_mut().poll(cx).map(Ok)
    })
    .await;
    if let Some(l) = listener {
        let _ = signal.remove_event_listener_with_callback("abort", &l);
    }
    out
}
