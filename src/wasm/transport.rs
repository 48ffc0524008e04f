//! The HTTP transport on the global `fetch` (browsers, workers, Node ≥ 20).
//!
//! `fetch` is bound as a global function, not through `window`, so the same code runs in a
//! page, a worker and Node (which has no base URL: the client requires an absolute one).
//! Every attempt gets its own `AbortController`:
//!
//! - a timer aborts it when the per-attempt deadline ([`Request::timeout`]) passes; the timer
//!   runs until the body is read, so a server that stalls mid-body times out too;
//! - dropping the attempt's future aborts it (a guard): that is how the caller's
//!   `AbortSignal` reaches the socket (see [`super::signal`]).
//!
//! Requests use `credentials: "omit"` (tokens travel only in `Authorization`, never as
//! cookies), `cache: "no-store"` and `redirect: "error"` (the API never redirects, and a
//! redirect must not carry the bearer token elsewhere). Browsers refuse a `User-Agent` header
//! and the server's CORS allowlist does not name it, so it is sent from Node only.
//!
//! Artifact uploads given as a `Blob`/`File` (in Node: `fs.openAsBlob`) are handed to `fetch`
//! as the `Blob` itself, which the runtime streams from disk instead of copying it into wasm
//! memory: see [`blob_body`]. (A `ReadableStream` body would need HTTP/2 in Chromium.)

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use js_sys::{Reflect, Uint8Array};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;

use crate::transport::{
    headers, Body, BodyError, BodySource, ChunkReader, LocalBoxFuture, Request, Response,
    Transport, TransportError, TransportErrorKind,
};

#[wasm_bindgen]
extern "C" {
    /// The global `fetch`.
    #[wasm_bindgen(js_name = fetch)]
    fn global_fetch(input: &str, init: &web_sys::RequestInit) -> js_sys::Promise;

    /// The global `setTimeout` (returns a number in browsers, a `Timeout` object in Node).
    #[wasm_bindgen(js_name = setTimeout)]
    pub(crate) fn set_timeout(handler: &js_sys::Function, ms: f64) -> JsValue;

    /// The global `clearTimeout`.
    #[wasm_bindgen(js_name = clearTimeout)]
    pub(crate) fn clear_timeout(id: &JsValue);
}

/// Marker passed as the abort reason when the deadline passes.
const TIMEOUT_REASON: &str = "datapilot: per-attempt timeout";

/// Whether this runs in Node (`process.versions.node` is a string).
pub(crate) fn is_node() -> bool {
    let global = js_sys::global();
    Reflect::get(&global, &"process".into())
        .and_then(|p| Reflect::get(&p, &"versions".into()))
        .and_then(|v| Reflect::get(&v, &"node".into()))
        .map(|n| n.is_string())
        .unwrap_or(false)
}

/// The core's [`Transport`] on `fetch`.
#[derive(Debug, Clone)]
pub(crate) struct FetchTransport {
    send_user_agent: bool,
}

impl FetchTransport {
    pub(crate) fn new() -> Self {
        Self {
            send_user_agent: is_node(),
        }
    }
}

impl Transport for FetchTransport {
    fn send(&self, request: Request) -> LocalBoxFuture<'_, Result<Response, TransportError>> {
        let ua = self.send_user_agent;
        Box::pin(send(request, ua))
    }
}

fn io(message: impl Into<String>) -> TransportError {
    TransportError::new(TransportErrorKind::Io, message)
}

fn js_message(e: &JsValue) -> String {
    if let Some(err) = e.dyn_ref::<js_sys::Error>() {
        let mut m = String::from(err.message());
        // Node's fetch reports "fetch failed" and puts the reason in `cause`.
        if let Ok(cause) = Reflect::get(err, &"cause".into()) {
            if let Some(c) = cause.dyn_ref::<js_sys::Error>() {
                m.push_str(": ");
                m.push_str(&String::from(c.message()));
            }
        }
        m
    } else {
        e.as_string().unwrap_or_else(|| "request failed".to_owned())
    }
}

/// Connection failures Node reports before any byte was sent.
fn is_connect_error(e: &JsValue) -> bool {
    let code = Reflect::get(e, &"cause".into())
        .and_then(|c| Reflect::get(&c, &"code".into()))
        .ok()
        .and_then(|c| c.as_string());
    matches!(
        code.as_deref(),
        Some(
            "ECONNREFUSED"
                | "ENOTFOUND"
                | "EAI_AGAIN"
                | "EHOSTUNREACH"
                | "ENETUNREACH"
                | "UND_ERR_CONNECT_TIMEOUT"
        )
    )
}

/// Aborts the attempt's controller when dropped before the response was read.
struct AbortGuard {
    controller: web_sys::AbortController,
    timer: Option<JsValue>,
    done: bool,
}

impl AbortGuard {
    fn timed_out(&self) -> bool {
        self.controller.signal().reason().as_string().as_deref() == Some(TIMEOUT_REASON)
    }

    fn fail(&self, e: &JsValue, reading_body: bool) -> TransportError {
        if self.timed_out() {
            return TransportError::new(TransportErrorKind::Timeout, "deadline passed");
        }
        let kind = if !reading_body && is_connect_error(e) {
            TransportErrorKind::Connect
        } else {
            TransportErrorKind::Io
        };
        TransportError::new(kind, js_message(e))
    }
}

impl Drop for AbortGuard {
    fn drop(&mut self) {
        if let Some(t) = self.timer.take() {
            clear_timeout(&t);
        }
        if !self.done {
            self.controller.abort();
        }
    }
}

async fn send(request: Request, send_user_agent: bool) -> Result<Response, TransportError> {
    let controller = web_sys::AbortController::new().map_err(|e| io(js_message(&e)))?;
    // `controller.abort(TIMEOUT_REASON)` as a plain bound JS function: no Rust closure.
    let abort: js_sys::Function<fn(JsValue) -> JsValue> =
        Reflect::get(&controller, &"abort".into())
            .map_err(|e| io(js_message(&e)))?
            .unchecked_into();
    let on_timeout: js_sys::Function = abort
        .bind1(&controller, &JsValue::from_str(TIMEOUT_REASON))
        .unchecked_into();
    let mut guard = AbortGuard {
        timer: Some(set_timeout(
            &on_timeout,
            request.timeout.as_secs_f64() * 1000.0,
        )),
        controller,
        done: false,
    };

    let hdrs = web_sys::Headers::new().map_err(|e| io(js_message(&e)))?;
    for (name, value) in request.headers.iter() {
        if name == headers::USER_AGENT && !send_user_agent {
            continue;
        }
        hdrs.set(name, value)
            .map_err(|e| TransportError::new(TransportErrorKind::Connect, js_message(&e)))?;
    }
    let init = web_sys::RequestInit::new();
    init.set_method(request.method.as_str());
    init.set_headers(&hdrs);
    init.set_credentials(web_sys::RequestCredentials::Omit);
    init.set_cache(web_sys::RequestCache::NoStore);
    init.set_redirect(web_sys::RequestRedirect::Error);
    init.set_signal(Some(&guard.controller.signal()));
    match &request.body {
        Body::Empty => {}
        Body::Bytes(b) => init.set_body(&Uint8Array::from(&b[..])),
        Body::Stream(src) => match registered_blob(src) {
            Some(blob) => init.set_body(&blob),
            None => {
                let bytes =
                    request.body.collect().await.map_err(|e| {
                        TransportError::new(TransportErrorKind::Connect, e.to_string())
                    })?;
                init.set_body(&Uint8Array::from(&bytes[..]));
            }
        },
    }

    let resp = JsFuture::from(global_fetch(&request.url, &init))
        .await
        .map_err(|e| guard.fail(&e, false))?;
    let resp: web_sys::Response = resp
        .dyn_into()
        .map_err(|_| io("fetch did not return a Response"))?;
    let mut out_headers = crate::transport::Headers::new();
    if let Ok(Some(iter)) = js_sys::try_iter(resp.headers().as_ref()) {
        for pair in iter.flatten() {
            let pair: js_sys::Array = pair.unchecked_into();
            if let (Some(n), Some(v)) = (pair.get(0).as_string(), pair.get(1).as_string()) {
                out_headers.append(&n, v);
            }
        }
    }
    let buffer = resp.array_buffer().map_err(|e| guard.fail(&e, true))?;
    let buffer = JsFuture::from(buffer)
        .await
        .map_err(|e| guard.fail(&e, true))?;
    guard.done = true;
    drop(guard);
    Ok(Response::new(
        resp.status(),
        out_headers,
        Uint8Array::new(&buffer).to_vec(),
    ))
}

// ---- Blob bodies ---------------------------------------------------------------------------

thread_local! {
    /// Blobs behind live [`BlobSource`]s, by the address of the source.
    static BLOBS: RefCell<HashMap<usize, web_sys::Blob>> = RefCell::new(HashMap::new());
}

fn key_of(src: &Rc<dyn BodySource>) -> usize {
    Rc::as_ptr(src) as *const () as usize
}

fn registered_blob(src: &Rc<dyn BodySource>) -> Option<web_sys::Blob> {
    let key = key_of(src);
    BLOBS.with(|b| b.borrow().get(&key).cloned())
}

/// A [`BodySource`] over a `Blob`. The transport recognises it and gives `fetch` the `Blob`
/// itself; other readers (tests) get 1 MiB slices.
struct BlobSource {
    blob: web_sys::Blob,
}

impl BodySource for BlobSource {
    fn len(&self) -> Option<u64> {
        Some(self.blob.size() as u64)
    }

    fn open(&self) -> Box<dyn ChunkReader> {
        Box::new(BlobReader {
            blob: self.blob.clone(),
            offset: 0.0,
        })
    }
}

impl Drop for BlobSource {
    fn drop(&mut self) {
        let key = self as *const Self as *const () as usize;
        BLOBS.with(|b| b.borrow_mut().remove(&key));
    }
}

struct BlobReader {
    blob: web_sys::Blob,
    offset: f64,
}

impl ChunkReader for BlobReader {
    fn next_chunk(&mut self) -> LocalBoxFuture<'_, Result<Option<Vec<u8>>, BodyError>> {
        Box::pin(async move {
            let size = self.blob.size();
            if self.offset >= size {
                return Ok(None);
            }
            let end = (self.offset + (1 << 20) as f64).min(size);
            let chunk = super::hashing::read_slice(&self.blob, self.offset, end)
                .await
                .map_err(|e| BodyError(js_message(&e)))?;
            self.offset = end;
            Ok(Some(chunk.to_vec()))
        })
    }
}

/// A request body that streams `blob` (a `File` or a Node file-backed `Blob`).
pub(crate) fn blob_body(blob: web_sys::Blob) -> Body {
    let src: Rc<dyn BodySource> = Rc::new(BlobSource { blob: blob.clone() });
    BLOBS.with(|b| b.borrow_mut().insert(key_of(&src), blob));
    Body::Stream(src)
}
