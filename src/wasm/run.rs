//! `RunHandle`: a run together with its run token.
//!
//! `createRun` issues a token scoped to the new run; the handle keeps it (in memory only) in a
//! client view made with [`Client::with_token`], so metrics, artifacts and `finish` act as the
//! run, exactly what the run token is for, while the creator's client keeps its own token.
//! The same helpers back the `DataPilot` methods that take a run id.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use js_sys::{Object, Promise, Reflect, Uint8Array};
use sha2::{Digest, Sha256};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

use super::client::{list, prepare, rejecting, spawn, spawn_js, DataPilot};
use super::error::{invalid_argument, to_js_error};
use super::hashing::Progress;
use super::opt;
use super::signal::with_signal;
use super::transport::blob_body;
use super::{from_js, to_js};
use crate::api::ArtifactStream;
use crate::client::Client;
use crate::model::metrics::AppendMetricsRequest;
use crate::model::runs::{CreatedRun, FinishRunRequest, Run};
use crate::transport::Body;

/// A run and its run token. `run.appendMetrics(...)`, `run.uploadArtifact(...)`,
/// `run.finish({ status: "succeeded" })`.
#[wasm_bindgen]
#[derive(Debug)]
pub struct RunHandle {
    run_id: String,
    run: Option<Run>,
    client: Client,
    token: crate::Secret,
    expires_at: Option<String>,
}

impl RunHandle {
    pub(crate) fn from_created(base: &Client, created: CreatedRun) -> Result<RunHandle, JsValue> {
        let client = base
            .with_token(created.run_token.clone())
            .map_err(|e| to_js_error(&e))?;
        Ok(RunHandle {
            run_id: created.run.id.clone(),
            run: Some(created.run),
            client,
            token: created.run_token,
            expires_at: Some(created.run_token_expires_at),
        })
    }

    pub(crate) fn resume(base: &Client, run_id: &str, token: &str) -> Result<RunHandle, JsValue> {
        if run_id.is_empty() {
            return Err(invalid_argument("runId must not be empty"));
        }
        Ok(RunHandle {
            run_id: run_id.to_owned(),
            run: None,
            client: base.with_token(token).map_err(|e| to_js_error(&e))?,
            token: crate::Secret::new(token),
            expires_at: None,
        })
    }
}

#[wasm_bindgen]
impl RunHandle {
    /// The run id.
    #[wasm_bindgen(getter, js_name = runId)]
    pub fn run_id(&self) -> String {
        self.run_id.clone()
    }

    /// The run as created (or as last returned by `finish`/`refresh`); `null` for a resumed
    /// handle until `refresh()`.
    #[wasm_bindgen(getter, unchecked_return_type = "Run | null")]
    pub fn run(&self) -> Result<JsValue, JsValue> {
        match &self.run {
            Some(r) => to_js(r),
            None => Ok(JsValue::NULL),
        }
    }

    /// The run token (`dpr_...`): pass it to the job that logs metrics and artifacts. Keep it
    /// in memory; it stops working for writes when the run is finished.
    #[wasm_bindgen(getter, js_name = runToken)]
    pub fn run_token(&self) -> String {
        self.token.expose().to_owned()
    }

    /// When the run token expires (`null` for a resumed handle).
    #[wasm_bindgen(getter, js_name = runTokenExpiresAt)]
    pub fn run_token_expires_at(&self) -> Option<String> {
        self.expires_at.clone()
    }

    /// A `DataPilot` client that authenticates with the run token.
    #[wasm_bindgen(getter)]
    pub fn client(&self) -> DataPilot {
        DataPilot {
            client: self.client.clone(),
        }
    }

    /// `appendMetrics` with the run token.
    #[wasm_bindgen(js_name = appendMetrics, unchecked_return_type = "Promise<MetricBatch>")]
    pub fn append_metrics(
        &self,
        #[wasm_bindgen(unchecked_param_type = "AppendMetricsRequest")] request: JsValue,
        #[wasm_bindgen(unchecked_optional_param_type = "WriteOptions")] options: JsValue,
    ) -> Result<Promise, JsValue> {
        rejecting(append_metrics(
            &self.client,
            self.run_id.clone(),
            request,
            &options,
        ))
    }

    /// `listMetrics` with the run token.
    #[wasm_bindgen(js_name = listMetrics, unchecked_return_type = "ListIterator<MetricValue>")]
    pub fn list_metrics(
        &self,
        #[wasm_bindgen(unchecked_optional_param_type = "ListMetricsOptions")] options: JsValue,
    ) -> Result<JsValue, JsValue> {
        list_metrics(&self.client, &self.run_id, &options)
    }

    /// `uploadArtifact` with the run token (see `DataPilot#uploadArtifact`).
    #[wasm_bindgen(js_name = uploadArtifact, unchecked_return_type = "Promise<Artifact>")]
    pub fn upload_artifact(
        &self,
        name: String,
        #[wasm_bindgen(unchecked_param_type = "Blob | Uint8Array")] data: JsValue,
        #[wasm_bindgen(unchecked_optional_param_type = "UploadOptions")] options: JsValue,
    ) -> Result<Promise, JsValue> {
        rejecting(upload_artifact(
            &self.client,
            self.run_id.clone(),
            name,
            data,
            options,
        ))
    }

    /// `listArtifacts` with the run token.
    #[wasm_bindgen(js_name = listArtifacts, unchecked_return_type = "ListIterator<Artifact>")]
    pub fn list_artifacts(
        &self,
        #[wasm_bindgen(unchecked_optional_param_type = "ListOptions")] options: JsValue,
    ) -> Result<JsValue, JsValue> {
        let p = prepare(&self.client, &options)?;
        list(p.client.list_artifacts(&self.run_id), &options)
    }

    /// `downloadArtifact` with the run token.
    #[wasm_bindgen(js_name = downloadArtifact, unchecked_return_type = "Promise<DownloadedArtifact>")]
    pub fn download_artifact(
        &self,
        #[wasm_bindgen(js_name = artifactId)] artifact_id: String,
        #[wasm_bindgen(unchecked_optional_param_type = "TransferOptions")] options: JsValue,
    ) -> Result<Promise, JsValue> {
        rejecting(download_artifact(
            &self.client,
            self.run_id.clone(),
            artifact_id,
            &options,
        ))
    }

    /// `downloadArtifactStream` with the run token (see `DataPilot#downloadArtifactStream`).
    #[wasm_bindgen(js_name = downloadArtifactStream, unchecked_return_type = "Promise<ArtifactDownloadStream>")]
    pub fn download_artifact_stream(
        &self,
        #[wasm_bindgen(js_name = artifactId)] artifact_id: String,
        #[wasm_bindgen(unchecked_optional_param_type = "DownloadStreamOptions")] options: JsValue,
    ) -> Result<Promise, JsValue> {
        rejecting(download_artifact_stream(
            &self.client,
            self.run_id.clone(),
            artifact_id,
            &options,
        ))
    }

    /// `getRun` with the run token; updates `run`. Not `async` on purpose: the handle is
    /// borrowed only while the call is set up.
    #[wasm_bindgen(unchecked_return_type = "Promise<Run>")]
    pub fn refresh(
        &self,
        #[wasm_bindgen(unchecked_optional_param_type = "CallOptions")] options: JsValue,
    ) -> Result<Promise, JsValue> {
        rejecting((|| {
            let p = prepare(&self.client, &options)?;
            let (c, id) = (p.client, self.run_id.clone());
            Ok(spawn(p.signal, async move { c.get_run(&id).send().await }))
        })())
    }

    /// `finishRun` with the run token: seals the run (`{ status, outputs? }`).
    #[wasm_bindgen(unchecked_return_type = "Promise<Run>")]
    pub fn finish(
        &self,
        #[wasm_bindgen(unchecked_param_type = "FinishRunRequest")] request: JsValue,
        #[wasm_bindgen(unchecked_optional_param_type = "WriteOptions")] options: JsValue,
    ) -> Result<Promise, JsValue> {
        rejecting((|| {
            let req: FinishRunRequest = from_js(request, "finish request")?;
            let p = prepare(&self.client, &options)?;
            let (c, o, id) = (p.client, p.opts, self.run_id.clone());
            Ok(spawn(p.signal, async move {
                c.finish_run(&id, &req).options(o.clone()).send().await
            }))
        })())
    }
}

pub(crate) fn append_metrics(
    client: &Client,
    run_id: String,
    request: JsValue,
    options: &JsValue,
) -> Result<Promise, JsValue> {
    let req: AppendMetricsRequest = from_js(request, "appendMetrics request")?;
    let p = prepare(client, options)?;
    let (c, o) = (p.client, p.opts);
    Ok(spawn(p.signal, async move {
        c.append_metrics(&run_id, &req)
            .options(o.clone())
            .send()
            .await
    }))
}

pub(crate) fn list_metrics(
    client: &Client,
    run_id: &str,
    options: &JsValue,
) -> Result<JsValue, JsValue> {
    let p = prepare(client, options)?;
    let name = opt(options, "name").as_string();
    let pager = p.client.list_metrics(run_id, name.as_deref());
    list(pager, options)
}

fn upload_progress(cb: &JsValue, phase: &str, bytes: f64, total: f64) -> Result<(), JsValue> {
    if let Some(f) = cb.dyn_ref::<js_sys::Function>() {
        let o = Object::new();
        Reflect::set(&o, &"phase".into(), &phase.into())?;
        Reflect::set(&o, &"bytes".into(), &bytes.into())?;
        Reflect::set(&o, &"totalBytes".into(), &total.into())?;
        f.call1(&JsValue::NULL, &o)?;
    }
    Ok(())
}

pub(crate) fn upload_artifact(
    client: &Client,
    run_id: String,
    name: String,
    data: JsValue,
    options: JsValue,
) -> Result<Promise, JsValue> {
    let p = prepare(client, &options)?;
    let (c, o) = (p.client, p.opts);
    let given = opt(&options, "sha256").as_string();
    let on_progress = opt(&options, "onProgress");
    if let Some(bytes) = data.dyn_ref::<Uint8Array>() {
        let bytes = bytes.to_vec();
        let total = bytes.len() as f64;
        let sha = given.unwrap_or_else(|| hex::encode(Sha256::digest(&bytes)));
        return Ok(spawn_js(p.signal, async move {
            upload_progress(&on_progress, "uploading", 0.0, total)?;
            let a = c
                .upload_artifact(&run_id, &name, &sha, Body::Bytes(bytes.into()))
                .options(o)
                .send()
                .await
                .map_err(|e| to_js_error(&e))?;
            upload_progress(&on_progress, "done", total, total)?;
            to_js(&a)
        }));
    }
    let blob: web_sys::Blob = data
        .dyn_into()
        .map_err(|_| invalid_argument("artifact data must be a Blob, File or Uint8Array"))?;
    let mut progress = Progress::for_upload(&on_progress);
    let total = blob.size();
    progress.total_bytes = total;
    progress.total_files = 1;
    Ok(spawn_js(p.signal, async move {
        let sha = match given {
            Some(s) => s,
            None => {
                upload_progress(&on_progress, "hashing", 0.0, total)?;
                match hash_blob_node(&blob, &on_progress, total).await? {
                    Some(sha) => sha,
                    None => progress.hash_blob(&blob, &name).await?.0,
                }
            }
        };
        upload_progress(&on_progress, "uploading", 0.0, total)?;
        let a = c
            .upload_artifact(
                &run_id,
                &name,
                &sha,
                blob_body(blob, on_progress.dyn_ref::<js_sys::Function>().cloned()),
            )
            .options(o)
            .send()
            .await
            .map_err(|e| to_js_error(&e))?;
        upload_progress(&on_progress, "done", total, total)?;
        to_js(&a)
    }))
}

/// Bytes between two hashing progress reports of an upload hashed by `node:crypto`.
const NODE_HASH_PROGRESS_STEP: f64 = (4 << 20) as f64;

/// In Node, the SHA-256 of `blob` by `node:crypto` over `blob.stream()`: OpenSSL instead of
/// wasm sha2 (which hashed a 4 GiB upload at about 180 MiB/s), and no copy into wasm memory.
/// `None` where the runtime has no `node:crypto` (browsers).
async fn hash_blob_node(
    blob: &web_sys::Blob,
    on_progress: &JsValue,
    total: f64,
) -> Result<Option<String>, JsValue> {
    let Some(mut hasher) = super::download::Hasher::node() else {
        return Ok(None);
    };
    let reader = blob.stream().get_reader();
    let read: js_sys::Function = Reflect::get(&reader, &"read".into())?.dyn_into()?;
    let (mut bytes, mut reported) = (0.0, 0.0);
    loop {
        let promise: Promise = read.call0(&reader)?.dyn_into()?;
        let result = wasm_bindgen_futures::JsFuture::from(promise).await?;
        if Reflect::get(&result, &"done".into())?.is_truthy() {
            break;
        }
        let chunk: Uint8Array = Reflect::get(&result, &"value".into())?.dyn_into()?;
        bytes += chunk.length() as f64;
        hasher.update(&chunk)?;
        if bytes - reported >= NODE_HASH_PROGRESS_STEP {
            reported = bytes;
            upload_progress(on_progress, "hashing", bytes, total)?;
        }
    }
    if bytes != total {
        return Err(super::error::verification_failed(&format!(
            "the file changed while it was hashed ({bytes} of {total} bytes read)"
        )));
    }
    upload_progress(on_progress, "hashing", bytes, total)?;
    hasher.finish().map(Some)
}

pub(crate) fn download_artifact(
    client: &Client,
    run_id: String,
    artifact_id: String,
    options: &JsValue,
) -> Result<Promise, JsValue> {
    let p = prepare(client, options)?;
    let (c, o) = (p.client, p.opts);
    Ok(spawn_js(p.signal, async move {
        let content = c
            .download_artifact(&run_id, &artifact_id)
            .options(o)
            .send()
            .await
            .map_err(|e| to_js_error(&e))?;
        let o = Object::new();
        Reflect::set(&o, &"bytes".into(), &Uint8Array::from(&content.bytes[..]))?;
        Reflect::set(
            &o,
            &"sha256".into(),
            &content.sha256.map(JsValue::from).unwrap_or(JsValue::NULL),
        )?;
        Ok(o.into())
    }))
}

pub(crate) fn download_artifact_stream(
    client: &Client,
    run_id: String,
    artifact_id: String,
    options: &JsValue,
) -> Result<Promise, JsValue> {
    let p = prepare(client, options)?;
    let (c, o) = (p.client, p.opts);
    let signal = p.signal.clone();
    let on_progress = opt(options, "onProgress")
        .dyn_into::<js_sys::Function>()
        .ok();
    Ok(spawn_js(p.signal, async move {
        let stream = c
            .download_artifact_stream(&run_id, &artifact_id)
            .options(o)
            .send()
            .await
            .map_err(|e| to_js_error(&e))?;
        let artifact = stream.artifact().clone();
        let out = Object::new();
        Reflect::set(&out, &"artifact".into(), &to_js(&artifact)?)?;
        Reflect::set(&out, &"sha256".into(), &artifact.sha256.clone().into())?;
        Reflect::set(&out, &"size".into(), &(artifact.size as f64).into())?;
        // A fetch body is read and checked in JS: no copy into wasm, and in Node hashed by
        // node:crypto. A body fetch gave no stream for (an empty answer) goes through the
        // core's ArtifactStream (same checks, no progress).
        let readable = match stream
            .response_body()
            .and_then(super::transport::take_js_download)
        {
            Some(js) => {
                let stall = stream.stall_timeout();
                drop(stream);
                super::download::JsVerify::new(artifact, js, stall, on_progress)
                    .into_readable_stream(signal)?
            }
            None => readable_stream(stream, signal)?,
        };
        Reflect::set(&out, &"stream".into(), &readable)?;
        Ok(out.into())
    }))
}

/// A `ReadableStream<Uint8Array>` pulling `stream`: one chunk in wasm memory at a time, copied
/// out on `enqueue`. An SDK error (a mismatch, a stall, a cut connection) errors the stream
/// with a `DataPilotError`; the caller's signal errors it with `signal.reason`; `cancel()`
/// drops the download, which aborts its `fetch`.
fn readable_stream(
    stream: ArtifactStream,
    signal: Option<web_sys::AbortSignal>,
) -> Result<JsValue, JsValue> {
    let state = Rc::new(RefCell::new(Some(stream)));
    let cancelled = Rc::new(Cell::new(false));
    let call = |target: &JsValue, method: &str, arg: Option<&JsValue>| -> Result<(), JsValue> {
        let f: js_sys::Function = Reflect::get(target, &method.into())?.dyn_into()?;
        match arg {
            Some(a) => f.call1(target, a)?,
            None => f.call0(target)?,
        };
        Ok(())
    };
    let (pull_state, pull_cancelled) = (state.clone(), cancelled.clone());
    let pull = Closure::<dyn FnMut(JsValue) -> Promise>::new(move |controller: JsValue| {
        let (state, cancelled, signal) =
            (pull_state.clone(), pull_cancelled.clone(), signal.clone());
        wasm_bindgen_futures::future_to_promise(async move {
            // Taken out for the wait: the stream calls `pull` again only after this settles.
            let Some(mut s) = state.borrow_mut().take() else {
                return Ok(JsValue::UNDEFINED);
            };
            match with_signal(signal.as_ref(), s.next_chunk()).await {
                Err(reason) => call(&controller, "error", Some(&reason))?,
                Ok(Err(e)) => call(&controller, "error", Some(&to_js_error(&e)))?,
                Ok(Ok(None)) => call(&controller, "close", None)?,
                Ok(Ok(Some(chunk))) => {
                    call(
                        &controller,
                        "enqueue",
                        Some(&Uint8Array::from(&chunk[..]).into()),
                    )?;
                    if !cancelled.get() {
                        *state.borrow_mut() = Some(s);
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
