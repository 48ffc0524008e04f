//! The HTTP transport on the global `fetch` (browsers, workers, Node ≥ 20).
//!
//! `fetch` is bound as a global function, not through `window`, so the same code runs in a
//! page, a worker and Node (which has no base URL: the client requires an absolute one).
//! Every attempt gets its own `AbortController`:
//!
//! - a timer aborts it when the per-attempt deadline ([`Request::timeout`]) passes; the timer
//!   runs until the body is read, so a server that stalls mid-body times out too;
//! - for transfers ([`Request::stall_timeout`]) a watchdog ([`StallWatch`]) aborts it when
//!   nothing moved for the stall timeout: a [`Heartbeat`] is touched by every upload chunk
//!   `fetch` pulls (Node streams Blob uploads through a counting stream for that), the
//!   answer's head and every downloaded chunk;
//! - dropping the attempt's future aborts it (a guard): that is how the caller's
//!   `AbortSignal` reaches the socket (see [`super::signal`]).
//!
//! Requests use `credentials: "omit"` (tokens travel only in `Authorization`, never as
//! cookies), `cache: "no-store"` and `redirect: "error"` (the API never redirects, and a
//! redirect must not carry the bearer token elsewhere). Browsers refuse a `User-Agent` header
//! and the server's CORS allowlist does not name it, so it is sent from Node only.
//!
//! Artifact uploads given as a `Blob`/`File` (in Node: `fs.openAsBlob`) are streamed from
//! disk by the runtime, never copied into wasm memory: see [`blob_body`]. Node sends the
//! `Blob`'s stream through a counting stream (progress and the stall watchdog); browsers go
//! through [`super::xhr`], whose progress events serve both (a `ReadableStream` body would
//! need HTTP/2 in Chromium, and `fetch` reports no upload progress).
//!
//! Downloads can stream ([`Transport::send_streaming`]): the answer's `ReadableStream` is read
//! chunk by chunk ([`FetchBody`]), one chunk in wasm memory at a time.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use js_sys::{Reflect, Uint8Array};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;

use crate::transport::{
    headers, Body, BodyError, BodySource, ChunkReader, LocalBoxFuture, Method, Request, Response,
    ResponseBody, StreamingResponse, Transport, TransportError, TransportErrorKind,
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

    /// The global `setInterval`.
    #[wasm_bindgen(js_name = setInterval)]
    fn set_interval(handler: &js_sys::Function, ms: f64) -> JsValue;

    /// The global `clearInterval`.
    #[wasm_bindgen(js_name = clearInterval)]
    fn clear_interval(id: &JsValue);
}

/// Marker passed as the abort reason when the deadline passes.
const TIMEOUT_REASON: &str = "datapilot: per-attempt timeout";

/// Marker passed as the abort reason when a transfer stalls.
const STALL_REASON: &str = "datapilot: transfer stalled";

/// When a transfer last moved (`Date.now()` milliseconds). Cheap to touch: one JS call.
#[derive(Clone)]
pub(crate) struct Heartbeat(Rc<Cell<f64>>);

impl Heartbeat {
    pub(crate) fn new() -> Self {
        Self(Rc::new(Cell::new(js_sys::Date::now())))
    }

    pub(crate) fn touch(&self) {
        self.0.set(js_sys::Date::now());
    }

    fn idle_ms(&self) -> f64 {
        js_sys::Date::now() - self.0.get()
    }
}

/// Calls `on_stall` once when its [`Heartbeat`] was not touched for the stall timeout. An
/// interval (a quarter of the timeout, at least 100 ms) checks it, so touching costs no timer
/// call; dropping the watch clears the interval and frees the closure.
pub(crate) struct StallWatch {
    interval: JsValue,
    _check: Closure<dyn FnMut()>,
}

impl StallWatch {
    pub(crate) fn start(stall: Duration, beat: Heartbeat, on_stall: Box<dyn Fn()>) -> Self {
        let stall_ms = stall.as_secs_f64() * 1000.0;
        let mut fired = false;
        let check = Closure::<dyn FnMut()>::new(move || {
            if !fired && beat.idle_ms() >= stall_ms {
                fired = true;
                on_stall();
            }
        });
        let interval = set_interval(
            check.as_ref().unchecked_ref(),
            (stall_ms / 4.0).clamp(100.0, 5_000.0),
        );
        Self {
            interval,
            _check: check,
        }
    }
}

impl Drop for StallWatch {
    fn drop(&mut self) {
        clear_interval(&self.interval);
    }
}

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
pub(crate) struct FetchTransport {
    /// Running in Node: send a User-Agent, stream uploads with progress.
    node: bool,
    headers: RefCell<HeaderCache>,
}

impl std::fmt::Debug for FetchTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The header cache holds the bearer token: never printed.
        f.debug_struct("FetchTransport")
            .field("node", &self.node)
            .finish_non_exhaustive()
    }
}

impl FetchTransport {
    pub(crate) fn new() -> Self {
        Self {
            node: is_node(),
            headers: RefCell::default(),
        }
    }
}

impl Transport for FetchTransport {
    fn send(&self, request: Request) -> LocalBoxFuture<'_, Result<Response, TransportError>> {
        Box::pin(send(request, self.node, &self.headers))
    }

    fn send_streaming(
        &self,
        request: Request,
    ) -> LocalBoxFuture<'_, Result<StreamingResponse, TransportError>> {
        Box::pin(send_streaming(request, self.node, &self.headers))
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
    /// Transfers: the stall watchdog and what it watches.
    stall: Option<(StallWatch, Heartbeat, Duration)>,
    done: bool,
}

impl AbortGuard {
    fn timed_out(&self) -> bool {
        self.controller.signal().reason().as_string().as_deref() == Some(TIMEOUT_REASON)
    }

    fn stalled(&self) -> bool {
        self.controller.signal().reason().as_string().as_deref() == Some(STALL_REASON)
    }

    fn touch(&self) {
        if let Some((_, beat, _)) = &self.stall {
            beat.touch();
        }
    }

    fn fail(&self, e: &JsValue, reading_body: bool) -> TransportError {
        self.fail_with_hint(e, reading_body, None)
    }

    /// As [`fail`](Self::fail), with `hint` appended to the message of a failed fetch (not a
    /// timeout or an abort).
    fn fail_with_hint(
        &self,
        e: &JsValue,
        reading_body: bool,
        hint: Option<String>,
    ) -> TransportError {
        if self.timed_out() {
            return TransportError::new(TransportErrorKind::Timeout, "deadline passed");
        }
        if let (true, Some((_, _, stall))) = (self.stalled(), &self.stall) {
            return TransportError::new(
                TransportErrorKind::Stalled,
                format!("no progress for {stall:?}"),
            );
        }
        let kind = if !reading_body && is_connect_error(e) {
            TransportErrorKind::Connect
        } else {
            TransportErrorKind::Io
        };
        let mut message = js_message(e);
        if let Some(h) = hint {
            message.push_str(&h);
        }
        TransportError::new(kind, message)
    }
}

/// For a browser fetch that failed with a `TypeError` ("Failed to fetch"): when the request
/// went to another origin than the page's, the likely cause is the server's CORS settings,
/// which the browser reports no better than a dead server. The hint names both origins.
fn cross_origin_hint(e: &JsValue, url: &str) -> Option<String> {
    if !e.is_instance_of::<js_sys::TypeError>() {
        return None;
    }
    let location = Reflect::get(&js_sys::global(), &"location".into()).ok()?;
    let page = Reflect::get(&location, &"origin".into())
        .ok()?
        .as_string()?;
    if page.is_empty() || page == "null" || url.starts_with(&format!("{page}/")) {
        return None;
    }
    // scheme://authority of the request URL (the core builds absolute URLs).
    let server = url
        .find("://")
        .map(|i| {
            let rest = &url[i + 3..];
            &url[..i + 3 + rest.find('/').unwrap_or(rest.len())]
        })
        .unwrap_or(url);
    Some(format!(
        " (cross-origin request from {page} to {server}: if the server is up, its CORS settings \
         probably do not allow {page}; the reference server takes --cors-origins / \
         DATAPILOT_CORS_ORIGINS)"
    ))
}

impl Drop for AbortGuard {
    fn drop(&mut self) {
        if let Some(t) = self.timer.take() {
            clear_timeout(&t);
        }
        self.stall.take();
        if !self.done {
            self.controller.abort();
        }
    }
}

/// JS strings every call needs, converted once per thread instead of once per call (a Rust
/// `&str` crossing into JS is a UTF-8 decode in the glue; on loopback these add up).
struct Interned {
    method: JsValue,
    get: JsValue,
    post: JsValue,
    headers: JsValue,
    credentials: JsValue,
    cache: JsValue,
    redirect: JsValue,
    signal: JsValue,
    body: JsValue,
    duplex: JsValue,
    half: JsValue,
    omit: JsValue,
    no_store: JsValue,
    error: JsValue,
    timeout_reason: JsValue,
    /// `AbortController.prototype.abort`, bound per attempt to its controller.
    abort: js_sys::Function,
    /// Response headers the core reads (all of them named in [`headers`]).
    response_headers: Vec<(&'static str, JsValue)>,
}

impl Interned {
    fn new() -> Self {
        // `AbortController.prototype.abort`, read from a first controller.
        let abort = web_sys::AbortController::new()
            .ok()
            .and_then(|c| Reflect::get(&c, &"abort".into()).ok())
            .and_then(|f| f.dyn_into().ok())
            .expect("AbortController.prototype.abort");
        Self {
            method: "method".into(),
            get: "GET".into(),
            post: "POST".into(),
            headers: "headers".into(),
            credentials: "credentials".into(),
            cache: "cache".into(),
            redirect: "redirect".into(),
            signal: "signal".into(),
            body: "body".into(),
            duplex: "duplex".into(),
            half: "half".into(),
            omit: "omit".into(),
            no_store: "no-store".into(),
            error: "error".into(),
            timeout_reason: TIMEOUT_REASON.into(),
            abort,
            response_headers: [
                headers::REQUEST_ID,
                headers::RETRY_AFTER,
                headers::CONTENT_SHA256,
                headers::IDEMPOTENT_REPLAYED,
                headers::CONTENT_TYPE,
            ]
            .into_iter()
            .map(|n| (n, JsValue::from_str(n)))
            .collect(),
        }
    }
}

thread_local! {
    static INTERNED: Interned = Interned::new();
}

#[wasm_bindgen]
extern "C" {
    /// A `Headers` object, bound here for `get` with an already converted name.
    #[wasm_bindgen(extends = js_sys::Object)]
    type ResponseHeaders;

    #[wasm_bindgen(method)]
    fn get(this: &ResponseHeaders, name: &JsValue) -> Option<String>;
}

/// The request headers as a plain object for `fetch`, reused while the headers repeat (the same
/// client calling again): only the per-call `idempotency-key` is set on a fresh copy.
#[derive(Default)]
struct HeaderCache {
    /// The headers the cached object was built from (without `idempotency-key`).
    source: Vec<(String, String)>,
    object: Option<js_sys::Object>,
}

impl HeaderCache {
    fn headers_for(&mut self, request: &Request, node: bool) -> js_sys::Object {
        // Browsers refuse to set a User-Agent; Node sends the SDK's.
        let wanted =
            |name: &str| name != headers::IDEMPOTENCY_KEY && (node || name != headers::USER_AGENT);
        let same = self.object.is_some()
            && self
                .source
                .iter()
                .map(|(n, v)| (n.as_str(), v.as_str()))
                .eq(request.headers.iter().filter(|(n, _)| wanted(n)));
        if !same {
            let object = js_sys::Object::new();
            self.source.clear();
            for (name, value) in request.headers.iter().filter(|(n, _)| wanted(n)) {
                let _ = Reflect::set(&object, &name.into(), &value.into());
                self.source.push((name.to_owned(), value.to_owned()));
            }
            self.object = Some(object);
        }
        let cached = self.object.as_ref().expect("built above");
        match request.headers.get(headers::IDEMPOTENCY_KEY) {
            None => cached.clone(),
            Some(key) => {
                let object = js_sys::Object::assign(&js_sys::Object::new(), cached);
                let _ = Reflect::set(&object, &headers::IDEMPOTENCY_KEY.into(), &key.into());
                object
            }
        }
    }
}

async fn send(
    request: Request,
    node: bool,
    cache: &RefCell<HeaderCache>,
) -> Result<Response, TransportError> {
    // A browser Blob upload that is watched (progress, or a transfer's stall timeout) goes
    // through XHR, which reports upload progress.
    if let (false, Body::Stream(src)) = (node, &request.body) {
        if let Some(RegisteredBlob { blob, on_progress }) = registered_blob(src) {
            if (on_progress.is_some() || request.stall_timeout.is_some()) && super::xhr::available()
            {
                let hdrs = cache.borrow_mut().headers_for(&request, node);
                let wanted: Vec<&'static str> =
                    INTERNED.with(|k| k.response_headers.iter().map(|(n, _)| *n).collect());
                return super::xhr::send(&request, &hdrs, blob, on_progress, &wanted).await;
            }
        }
    }
    let (resp, out_headers, mut guard) = exchange(&request, node, cache).await?;
    if guard.stall.is_some() {
        // A transfer read whole (`downloadArtifact`): chunk by chunk, each one progress for
        // the stall watchdog (`arrayBuffer()` would show none until the end).
        if let Some(stream) = resp.body() {
            let mut download = JsDownload {
                reader: stream.get_reader().unchecked_into::<StreamReader>(),
                guard,
            };
            let mut body = Vec::new();
            while let Some(chunk) = download.read().await? {
                let at = body.len();
                body.resize(at + chunk.length() as usize, 0);
                chunk.copy_to(&mut body[at..]);
            }
            return Ok(Response::new(resp.status(), out_headers, body));
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

/// Sends `request` (a download) and returns at the answer's head, its body read by
/// [`FetchBody`].
async fn send_streaming(
    request: Request,
    node: bool,
    cache: &RefCell<HeaderCache>,
) -> Result<StreamingResponse, TransportError> {
    let (resp, out_headers, guard) = exchange(&request, node, cache).await?;
    let download = resp.body().map(|stream| JsDownload {
        reader: stream.get_reader().unchecked_into::<StreamReader>(),
        guard,
    });
    let slot = Rc::new(RefCell::new(download));
    let body = Box::new(FetchBody { slot: slot.clone() });
    let key = &*body as *const FetchBody as *const () as usize;
    JS_BODIES.with(|b| b.borrow_mut().insert(key, slot));
    Ok(StreamingResponse::new(resp.status(), out_headers, body))
}

thread_local! {
    /// The JS side of live [`FetchBody`]s, by the address of the body: the wasm layer can take
    /// it ([`take_js_download`]) and read the chunks in JS without copying them into wasm.
    static JS_BODIES: RefCell<HashMap<usize, Rc<RefCell<Option<JsDownload>>>>> =
        RefCell::new(HashMap::new());
}

/// Takes the JS reader (and the attempt's guard: deadline, stall watchdog, abort on drop) out
/// of a body [`Transport::send_streaming`] returned, if it is a fetch body not read yet. The
/// body then reads as empty.
pub(crate) fn take_js_download(body: &dyn ResponseBody) -> Option<JsDownload> {
    let key = body as *const dyn ResponseBody as *const () as usize;
    JS_BODIES.with(|b| {
        b.borrow()
            .get(&key)
            .and_then(|slot| slot.borrow_mut().take())
    })
}

/// A download's `ReadableStream` reader and the guard of its attempt.
pub(crate) struct JsDownload {
    reader: StreamReader,
    guard: AbortGuard,
}

impl JsDownload {
    /// The next chunk as the JS `Uint8Array` it arrived in (never empty), or `None` at the end
    /// (the attempt is then complete: dropping it aborts nothing).
    pub(crate) async fn read(&mut self) -> Result<Option<Uint8Array>, TransportError> {
        loop {
            let result = JsFuture::from(self.reader.read())
                .await
                .map_err(|e| self.guard.fail(&e, true))?;
            let done = Reflect::get(&result, &"done".into())
                .map(|d| d.is_truthy())
                .unwrap_or(true);
            if done {
                self.guard.done = true;
                return Ok(None);
            }
            self.guard.touch();
            let value: Uint8Array = Reflect::get(&result, &"value".into())
                .map_err(|e| io(js_message(&e)))?
                .unchecked_into();
            if value.length() > 0 {
                return Ok(Some(value));
            }
        }
    }
}

#[wasm_bindgen]
extern "C" {
    /// A `ReadableStreamDefaultReader`, bound here for `read`.
    #[wasm_bindgen(extends = js_sys::Object)]
    type StreamReader;

    #[wasm_bindgen(method)]
    fn read(this: &StreamReader) -> js_sys::Promise;
}

/// The body of a streamed answer: one `read()` of its `ReadableStream` per chunk, each chunk
/// copied into wasm and passed on. The attempt's guard lives as long as the body, so the
/// deadline and the stall watchdog keep running, and dropping the body aborts the download.
struct FetchBody {
    /// `None` at the end, or once the wasm layer took the JS side ([`take_js_download`]).
    slot: Rc<RefCell<Option<JsDownload>>>,
}

impl Drop for FetchBody {
    fn drop(&mut self) {
        let key = self as *const Self as *const () as usize;
        JS_BODIES.with(|b| b.borrow_mut().remove(&key));
    }
}

impl ResponseBody for FetchBody {
    fn next_chunk(&mut self) -> LocalBoxFuture<'_, Result<Option<Vec<u8>>, TransportError>> {
        Box::pin(async move {
            // Taken out for the wait (nothing else reads it meanwhile), put back after.
            let Some(mut download) = self.slot.borrow_mut().take() else {
                return Ok(None);
            };
            match download.read().await? {
                Some(chunk) => {
                    *self.slot.borrow_mut() = Some(download);
                    Ok(Some(chunk.to_vec()))
                }
                None => Ok(None),
            }
        })
    }
}

/// Sends `request` with `fetch` and waits for the answer's head: the response, the headers the
/// core reads, and the guard that keeps the attempt's limits running while the body is read.
async fn exchange(
    request: &Request,
    node: bool,
    cache: &RefCell<HeaderCache>,
) -> Result<(web_sys::Response, crate::transport::Headers, AbortGuard), TransportError> {
    let controller = web_sys::AbortController::new().map_err(|e| io(js_message(&e)))?;
    let init = js_sys::Object::new();
    let hdrs = cache.borrow_mut().headers_for(request, node);
    let guard = INTERNED.with(|k| {
        // `controller.abort(TIMEOUT_REASON)` as a plain bound JS function: no Rust closure.
        let on_timeout: js_sys::Function = k
            .abort
            .bind1(&controller, &k.timeout_reason)
            .unchecked_into();
        let method = match request.method {
            Method::Get => k.get.clone(),
            Method::Post => k.post.clone(),
            m => m.as_str().into(),
        };
        let _ = Reflect::set(&init, &k.method, &method);
        let _ = Reflect::set(&init, &k.headers, &hdrs);
        let _ = Reflect::set(&init, &k.credentials, &k.omit);
        let _ = Reflect::set(&init, &k.cache, &k.no_store);
        let _ = Reflect::set(&init, &k.redirect, &k.error);
        let _ = Reflect::set(&init, &k.signal, &controller.signal());
        let stall = request.stall_timeout.map(|stall| {
            let beat = Heartbeat::new();
            let c = controller.clone();
            let watch = StallWatch::start(
                stall,
                beat.clone(),
                Box::new(move || c.abort_with_reason(&STALL_REASON.into())),
            );
            (watch, beat, stall)
        });
        AbortGuard {
            timer: Some(set_timeout(
                &on_timeout,
                request.timeout.as_secs_f64() * 1000.0,
            )),
            controller,
            stall,
            done: false,
        }
    });
    let body = |b: JsValue| INTERNED.with(|k| Reflect::set(&init, &k.body, &b).map(|_| ()));
    match &request.body {
        Body::Empty => {}
        Body::Bytes(b) => {
            let _ = body(Uint8Array::from(&b[..]).into());
        }
        Body::Stream(src) => match registered_blob(src) {
            Some(RegisteredBlob { blob, on_progress })
                if node && (on_progress.is_some() || guard.stall.is_some()) =>
            {
                // Node: stream, counting (progress, stall watchdog).
                let beat = guard.stall.as_ref().map(|(_, b, _)| b.clone());
                let stream =
                    counting_stream(&blob, on_progress, beat).map_err(|e| io(js_message(&e)))?;
                let _ = body(stream.into());
                // The size is known, so it is said (as the native transport does): the server
                // refuses a body over its limit before a byte is sent, and reads a sized body
                // rather than chunks (a chunked 4 GiB upload was 1.6-2x slower end to end).
                // A copy: `hdrs` may be the cache's shared object.
                let sized = js_sys::Object::assign(&js_sys::Object::new(), &hdrs);
                INTERNED
                    .with(|k| {
                        Reflect::set(
                            &sized,
                            &"content-length".into(),
                            &blob.size().to_string().into(),
                        )?;
                        Reflect::set(&init, &k.headers, &sized)?;
                        Reflect::set(&init, &k.duplex, &k.half)
                    })
                    .map_err(|e| io(js_message(&e)))?;
            }
            Some(RegisteredBlob { blob, .. }) => {
                let _ = body(blob.into());
            }
            None => {
                let bytes =
                    request.body.collect().await.map_err(|e| {
                        TransportError::new(TransportErrorKind::Connect, e.to_string())
                    })?;
                let _ = body(Uint8Array::from(&bytes[..]).into());
            }
        },
    }

    let resp = JsFuture::from(global_fetch(&request.url, init.unchecked_ref()))
        .await
        .map_err(|e| {
            let hint = if node {
                None
            } else {
                cross_origin_hint(&e, &request.url)
            };
            guard.fail_with_hint(&e, false, hint)
        })?;
    let resp: web_sys::Response = resp
        .dyn_into()
        .map_err(|_| io("fetch did not return a Response"))?;
    guard.touch();
    // Only the headers the core reads cross into wasm (one `get` each, no iteration).
    let mut out_headers = crate::transport::Headers::new();
    let js_headers: ResponseHeaders = resp.headers().unchecked_into();
    INTERNED.with(|k| {
        for (name, js_name) in &k.response_headers {
            if let Some(v) = js_headers.get(js_name) {
                out_headers.append(name, v);
            }
        }
    });
    Ok((resp, out_headers, guard))
}

// ---- Blob bodies ---------------------------------------------------------------------------

thread_local! {
    /// Blobs behind live [`BlobSource`]s (and their upload progress callbacks), by the address
    /// of the source.
    static BLOBS: RefCell<HashMap<usize, RegisteredBlob>> = RefCell::new(HashMap::new());
}

fn key_of(src: &Arc<dyn BodySource>) -> usize {
    Arc::as_ptr(src) as *const () as usize
}

/// A `Blob` request body and who wants to hear how much of it was sent.
#[derive(Clone)]
struct RegisteredBlob {
    blob: web_sys::Blob,
    on_progress: Option<js_sys::Function>,
}

fn registered_blob(src: &Arc<dyn BodySource>) -> Option<RegisteredBlob> {
    let key = key_of(src);
    BLOBS.with(|b| b.borrow().get(&key).cloned())
}

/// Bytes between two upload progress reports (and the last byte, always reported).
const UPLOAD_PROGRESS_STEP: f64 = (1 << 20) as f64;

/// The `Blob` as a stream that reports `{ phase: "uploading", bytes, totalBytes }` as `fetch`
/// pulls it. Node's `fetch` sends a stream body over HTTP/1.1 (`duplex: "half"`; the caller
/// sets `Content-Length`, else it goes chunked);
/// Chromium refuses stream bodies without HTTP/2, so browsers send the `Blob` itself and see
/// only the start and the end of the upload.
fn counting_stream(
    blob: &web_sys::Blob,
    on_progress: Option<js_sys::Function>,
    beat: Option<Heartbeat>,
) -> Result<web_sys::ReadableStream, JsValue> {
    let total = blob.size();
    let mut sent = 0.0;
    let mut reported = 0.0;
    let transform = Closure::<
        dyn FnMut(JsValue, web_sys::TransformStreamDefaultController) -> Result<(), JsValue>,
    >::new(
        move |chunk: JsValue, controller: web_sys::TransformStreamDefaultController| {
            sent += chunk.unchecked_ref::<Uint8Array>().byte_length() as f64;
            controller.enqueue_with_chunk(&chunk)?;
            if let Some(b) = &beat {
                b.touch();
            }
            let Some(on_progress) = &on_progress else {
                return Ok(());
            };
            if sent - reported >= UPLOAD_PROGRESS_STEP || sent >= total {
                reported = sent;
                let event = js_sys::Object::new();
                Reflect::set(&event, &"phase".into(), &"uploading".into())?;
                Reflect::set(&event, &"bytes".into(), &sent.into())?;
                Reflect::set(&event, &"totalBytes".into(), &total.into())?;
                on_progress.call1(&JsValue::NULL, &event)?;
            }
            Ok(())
        },
    );
    let transformer = js_sys::Object::new();
    // Owned by the transformer from here: freed when the stream is collected, so a late chunk
    // (the server answered before reading the whole body) never calls a dropped closure.
    Reflect::set(
        &transformer,
        &"transform".into(),
        &transform.into_js_value(),
    )?;
    let counter = web_sys::TransformStream::new_with_transformer(&transformer)?;
    Ok(blob
        .stream()
        .pipe_through(counter.unchecked_ref::<web_sys::ReadableWritablePair>()))
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

/// A request body that streams `blob` (a `File` or a Node file-backed `Blob`); in Node,
/// `on_progress` hears how many bytes were sent (see [`counting_stream`]).
pub(crate) fn blob_body(blob: web_sys::Blob, on_progress: Option<js_sys::Function>) -> Body {
    let src: Arc<dyn BodySource> = Arc::new(BlobSource { blob: blob.clone() });
    BLOBS.with(|b| {
        b.borrow_mut()
            .insert(key_of(&src), RegisteredBlob { blob, on_progress })
    });
    Body::Stream(src)
}
