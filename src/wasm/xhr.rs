//! Browser artifact uploads with progress, on `XMLHttpRequest`.
//!
//! `fetch` reports nothing while a request body goes out, and a counted stream body needs
//! HTTP/2 in Chromium; XHR's `upload.onprogress` does report it. So a `Blob` upload given an
//! `onProgress` callback, or one limited by a stall timeout (every artifact upload), goes
//! through XHR in pages and workers that have it; every other request stays on `fetch` (see
//! [`super::transport`]). The fetch transport's rules hold here too: the per-attempt timeout
//! (`xhr.timeout`), the stall watchdog (upload and download progress events are its
//! heartbeat), an abort when the call is dropped (the caller's `AbortSignal`), and only the
//! response headers the core reads. Credentials: XHR has no
//! `"omit"`; `withCredentials` stays off, so no cookies go cross-origin (same-origin cookies may,
//! and the server reads none: the token travels in `Authorization` only).
//!
//! The load/error/timeout/abort handlers are the promise's own `resolve`/`reject` (no Rust
//! closure to keep alive); the progress handler is a closure, detached before it is dropped so a
//! late event never calls freed code.

use js_sys::{Array, Object, Promise, Reflect, Uint8Array};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;

use std::cell::Cell;
use std::rc::Rc;

use super::transport::{Heartbeat, StallWatch};
use crate::transport::{Headers, Method, Request, Response, TransportError, TransportErrorKind};

/// Whether this runtime has `XMLHttpRequest` (pages and dedicated workers; not Node).
pub(crate) fn available() -> bool {
    Reflect::get(&js_sys::global(), &"XMLHttpRequest".into())
        .map(|x| x.is_function())
        .unwrap_or(false)
}

/// Aborts the request if dropped before it finished; detaches the progress handler first.
struct Guard {
    xhr: web_sys::XmlHttpRequest,
    progress: Option<Closure<dyn FnMut(web_sys::ProgressEvent)>>,
    stall: Option<StallWatch>,
    done: bool,
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.stall.take();
        if let Ok(upload) = self.xhr.upload() {
            upload.set_onprogress(None);
        }
        self.xhr.set_onprogress(None);
        if !self.done {
            let _ = self.xhr.abort();
        }
        self.progress.take();
    }
}

fn io(kind: TransportErrorKind, message: impl Into<String>) -> TransportError {
    TransportError::new(kind, message)
}

fn js_err(e: JsValue) -> TransportError {
    let message = e
        .dyn_ref::<js_sys::Error>()
        .map(|e| String::from(e.message()))
        .unwrap_or_else(|| "XMLHttpRequest failed".to_owned());
    io(TransportErrorKind::Connect, message)
}

/// Sends `request` with `blob` as its body, reporting `{ phase: "uploading", bytes,
/// totalBytes }` to `on_progress` as the browser sends it. `headers` are the request headers
/// as a plain object; `wanted` the response headers to read.
pub(crate) async fn send(
    request: &Request,
    headers: &Object,
    blob: web_sys::Blob,
    on_progress: Option<js_sys::Function>,
    wanted: &[&'static str],
) -> Result<Response, TransportError> {
    let xhr = web_sys::XmlHttpRequest::new().map_err(js_err)?;
    let method = match request.method {
        Method::Get => "GET",
        Method::Post => "POST",
        m => m.as_str(),
    };
    xhr.open_with_async(method, &request.url, true)
        .map_err(js_err)?;
    xhr.set_timeout(request.timeout.as_millis().min(u32::MAX as u128) as u32);
    xhr.set_response_type(web_sys::XmlHttpRequestResponseType::Arraybuffer);
    for pair in Object::entries(headers).iter() {
        let pair: Array = pair.unchecked_into();
        if let (Some(name), Some(value)) = (pair.get(0).as_string(), pair.get(1).as_string()) {
            xhr.set_request_header(&name, &value).map_err(js_err)?;
        }
    }
    let total = blob.size();
    let beat = Heartbeat::new();
    let upload_beat = beat.clone();
    let progress =
        Closure::<dyn FnMut(web_sys::ProgressEvent)>::new(move |e: web_sys::ProgressEvent| {
            upload_beat.touch();
            let Some(on_progress) = &on_progress else {
                return;
            };
            let event = Object::new();
            let _ = Reflect::set(&event, &"phase".into(), &"uploading".into());
            let _ = Reflect::set(&event, &"bytes".into(), &e.loaded().into());
            let _ = Reflect::set(&event, &"totalBytes".into(), &total.into());
            let _ = on_progress.call1(&JsValue::NULL, &event);
        });
    xhr.upload()
        .map_err(js_err)?
        .set_onprogress(Some(progress.as_ref().unchecked_ref()));
    // The watchdog aborts the request; the flag tells that abort from the caller's.
    let stalled = Rc::new(Cell::new(false));
    let stall = request.stall_timeout.map(|stall| {
        let (x, flag) = (xhr.clone(), stalled.clone());
        StallWatch::start(
            stall,
            beat.clone(),
            Box::new(move || {
                flag.set(true);
                let _ = x.abort();
            }),
        )
    });
    beat.touch();
    let settled = Promise::new(&mut |resolve, reject| {
        xhr.set_onload(Some(&resolve));
        xhr.set_onerror(Some(&reject));
        xhr.set_ontimeout(Some(&reject));
        xhr.set_onabort(Some(&reject));
    });
    let mut guard = Guard {
        xhr: xhr.clone(),
        progress: Some(progress),
        stall,
        done: false,
    };
    xhr.send_with_opt_blob(Some(&blob)).map_err(js_err)?;
    let outcome = JsFuture::from(settled).await;
    guard.done = true;
    drop(guard);
    if let Err(event) = outcome {
        let kind = Reflect::get(&event, &"type".into())
            .ok()
            .and_then(|t| t.as_string())
            .unwrap_or_default();
        if stalled.get() {
            let stall = request.stall_timeout.unwrap_or_default();
            return Err(io(
                TransportErrorKind::Stalled,
                format!("no progress for {stall:?}"),
            ));
        }
        return Err(match kind.as_str() {
            "timeout" => io(TransportErrorKind::Timeout, "deadline passed"),
            _ => io(TransportErrorKind::Io, format!("upload failed ({kind})")),
        });
    }
    let mut out = Headers::new();
    for name in wanted {
        if let Ok(Some(v)) = xhr.get_response_header(name) {
            out.append(name, v);
        }
    }
    let body = xhr
        .response()
        .ok()
        .filter(|b| b.is_object())
        .map(|b| Uint8Array::new(&b).to_vec())
        .unwrap_or_default();
    Ok(Response::new(xhr.status().map_err(js_err)?, out, body))
}
