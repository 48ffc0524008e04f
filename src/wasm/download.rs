//! `downloadArtifactStream` in JS: the answer's `ReadableStream` chunks are checked and passed
//! on without entering wasm memory when the runtime can hash them itself.
//!
//! The core's [`crate::api::ArtifactStream`] would copy every chunk into wasm (to hash it with
//! sha2) and out again; on a 4 GiB download that made wasm SHA-256 the bottleneck. Here the
//! chunks stay the `Uint8Array`s `fetch` produced: in Node they are hashed by `node:crypto`
//! (`process.getBuiltinModule`, OpenSSL), elsewhere copied into wasm for the core's sha2 only.
//! The checks are the core's: the recorded size is never exceeded, and the chunk before the
//! end is held back until every byte matched the recorded sha256 and size, so a reader that
//! saw the stream close saw verified bytes; a mismatch, a stall, a cut connection or the
//! caller's signal error the stream. The attempt's guard (deadline, stall watchdog) travels
//! with the reader in [`JsDownload`]; `cancel()` drops it, which aborts the `fetch`.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use js_sys::{Object, Promise, Reflect, Uint8Array};
use sha2::{Digest, Sha256};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

use super::error::to_js_error;
use super::signal::with_signal;
use super::transport::JsDownload;
use crate::client::body_error;
use crate::error::Error;
use crate::model::artifacts::Artifact;

/// Bytes between two progress reports (and the last byte, always reported).
const PROGRESS_STEP: u64 = 1 << 20;

/// SHA-256 of the chunks: `node:crypto` where the runtime has it, the core's sha2 otherwise.
/// Also hashes Blob uploads in Node (`run::upload_artifact`).
pub(crate) enum Hasher {
    Node(JsValue),
    Wasm(Sha256),
}

impl Hasher {
    fn new() -> Self {
        Self::node().unwrap_or_else(|| Self::Wasm(Sha256::new()))
    }

    /// `node:crypto`'s, if the runtime has it.
    pub(crate) fn node() -> Option<Self> {
        node_sha256().map(Self::Node)
    }

    pub(crate) fn update(&mut self, chunk: &Uint8Array) -> Result<(), JsValue> {
        match self {
            Self::Node(h) => {
                let update: js_sys::Function = Reflect::get(h, &"update".into())?.dyn_into()?;
                update.call1(h, chunk)?;
            }
            Self::Wasm(h) => h.update(chunk.to_vec()),
        }
        Ok(())
    }

    pub(crate) fn finish(self) -> Result<String, JsValue> {
        match self {
            Self::Node(h) => {
                let digest: js_sys::Function = Reflect::get(&h, &"digest".into())?.dyn_into()?;
                digest
                    .call1(&h, &"hex".into())?
                    .as_string()
                    .ok_or_else(|| JsValue::from_str("node:crypto digest is not a string"))
            }
            Self::Wasm(h) => Ok(hex::encode(h.finalize())),
        }
    }
}

/// `process.getBuiltinModule("node:crypto").createHash("sha256")`, in Node 20.16+ / 22.3+.
fn node_sha256() -> Option<JsValue> {
    let process = Reflect::get(&js_sys::global(), &"process".into()).ok()?;
    let get: js_sys::Function = Reflect::get(&process, &"getBuiltinModule".into())
        .ok()?
        .dyn_into()
        .ok()?;
    let crypto = get.call1(&process, &"node:crypto".into()).ok()?;
    let create: js_sys::Function = Reflect::get(&crypto, &"createHash".into())
        .ok()?
        .dyn_into()
        .ok()?;
    create.call1(&crypto, &"sha256".into()).ok()
}

/// What one pull produced.
enum Step {
    /// A verified-so-far chunk (not the last).
    Chunk(Uint8Array),
    /// The end, every byte verified: the held-back chunk, if any.
    End(Option<Uint8Array>),
}

/// A download being read and checked (see the module docs).
pub(crate) struct JsVerify {
    artifact: Artifact,
    download: JsDownload,
    hasher: Option<Hasher>,
    held: Option<Uint8Array>,
    received: u64,
    stall: Duration,
    on_progress: Option<js_sys::Function>,
    reported: Option<u64>,
}

impl JsVerify {
    pub(crate) fn new(
        artifact: Artifact,
        download: JsDownload,
        stall: Duration,
        on_progress: Option<js_sys::Function>,
    ) -> Self {
        Self {
            artifact,
            download,
            hasher: Some(Hasher::new()),
            held: None,
            received: 0,
            stall,
            on_progress,
            reported: None,
        }
    }

    fn progress(&mut self) {
        let Some(f) = &self.on_progress else {
            return;
        };
        let due = match self.reported {
            None => true,
            Some(last) => {
                self.received - last >= PROGRESS_STEP || self.received >= self.artifact.size
            }
        };
        if due {
            self.reported = Some(self.received);
            let o = Object::new();
            let _ = Reflect::set(&o, &"phase".into(), &"downloading".into());
            let _ = Reflect::set(&o, &"bytes".into(), &(self.received as f64).into());
            let _ = Reflect::set(
                &o,
                &"totalBytes".into(),
                &(self.artifact.size as f64).into(),
            );
            let _ = f.call1(&JsValue::NULL, &o);
        }
    }

    async fn step(&mut self) -> Result<Step, JsValue> {
        loop {
            let chunk = self
                .download
                .read()
                .await
                .map_err(|e| to_js_error(&body_error(e, self.stall)))?;
            let Some(chunk) = chunk else {
                let hasher = self.hasher.take().expect("one end per download");
                let actual = hasher.finish()?;
                if self.received != self.artifact.size || actual != self.artifact.sha256 {
                    self.held = None;
                    return Err(to_js_error(&Error::Verification(format!(
                        "artifact {} arrived as {} bytes hashing to {actual}; the run recorded {} bytes with sha256 {}",
                        self.artifact.id, self.received, self.artifact.size, self.artifact.sha256
                    ))));
                }
                return Ok(Step::End(self.held.take()));
            };
            self.received += chunk.length() as u64;
            if self.received > self.artifact.size {
                return Err(to_js_error(&Error::Verification(format!(
                    "artifact {} sent more than its recorded {} bytes",
                    self.artifact.id, self.artifact.size
                ))));
            }
            self.hasher
                .as_mut()
                .expect("hashing until the end")
                .update(&chunk)?;
            self.progress();
            if let Some(prev) = self.held.replace(chunk) {
                return Ok(Step::Chunk(prev));
            }
        }
    }

    /// The `ReadableStream<Uint8Array>` of the checked chunks.
    pub(crate) fn into_readable_stream(
        self,
        signal: Option<web_sys::AbortSignal>,
    ) -> Result<JsValue, JsValue> {
        let state = Rc::new(RefCell::new(Some(self)));
        let cancelled = Rc::new(Cell::new(false));
        let (pull_state, pull_cancelled) = (state.clone(), cancelled.clone());
        let pull = Closure::<dyn FnMut(JsValue) -> Promise>::new(move |controller: JsValue| {
            let (state, cancelled, signal) =
                (pull_state.clone(), pull_cancelled.clone(), signal.clone());
            wasm_bindgen_futures::future_to_promise(async move {
                // Taken out for the wait: the stream calls `pull` again only after this settles.
                let Some(mut v) = state.borrow_mut().take() else {
                    return Ok(JsValue::UNDEFINED);
                };
                match with_signal(signal.as_ref(), v.step()).await {
                    Err(reason) | Ok(Err(reason)) => call(&controller, "error", Some(&reason))?,
                    Ok(Ok(Step::End(last))) => {
                        if let Some(c) = last {
                            call(&controller, "enqueue", Some(&c))?;
                        }
                        call(&controller, "close", None)?;
                    }
                    Ok(Ok(Step::Chunk(c))) => {
                        call(&controller, "enqueue", Some(&c))?;
                        if !cancelled.get() {
                            *state.borrow_mut() = Some(v);
                        }
                    }
                }
                Ok(JsValue::UNDEFINED)
            })
        });
        let cancel = Closure::<dyn FnMut(JsValue)>::new(move |_reason: JsValue| {
            cancelled.set(true);
            state.borrow_mut().take();
        });
        let source = Object::new();
        // Owned by the source object from here: freed with the stream.
        Reflect::set(&source, &"pull".into(), &pull.into_js_value())?;
        Reflect::set(&source, &"cancel".into(), &cancel.into_js_value())?;
        let ctor: js_sys::Function =
            Reflect::get(&js_sys::global(), &"ReadableStream".into())?.dyn_into()?;
        Reflect::construct(&ctor, &js_sys::Array::of1(&source))
    }
}

/// `target[method](arg?)`.
fn call(target: &JsValue, method: &str, arg: Option<&JsValue>) -> Result<(), JsValue> {
    let f: js_sys::Function = Reflect::get(target, &method.into())?.dyn_into()?;
    match arg {
        Some(a) => f.call1(target, a)?,
        None => f.call0(target)?,
    };
    Ok(())
}
