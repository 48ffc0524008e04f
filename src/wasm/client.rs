//! The exported `DataPilot` class: a method per operation of the contract, in camelCase.
//!
//! Each method decodes its arguments with the shared deserializer, calls the core [`Client`]
//! method of the same operation and encodes the result with the shared serializer; failures
//! become `DataPilotError`s ([`super::error`]). Every method takes an options bag last:
//! `signal`, `timeoutMs` and `deadlineMs` always, `idempotencyKey` on writes, `limit`/`cursor` on lists.
//! Lists return a `ListIterator` ([`super::pager`]); `createRun` returns a `RunHandle`
//! ([`super::run`]) that carries the run token.

use std::future::Future;
use std::time::Duration;

use js_sys::{Promise, Uint8Array};
use serde::Serialize;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::future_to_promise;

use super::error::{invalid_argument, to_js_error};
use super::opt;
use super::pager::list_iterator;
use super::run::RunHandle;
use super::signal::{signal_from, with_signal};
use super::sleep::JsSleep;
use super::transport::FetchTransport;
use super::{from_js, to_js};
use crate::client::{Client, RequestOptions};
use crate::model::audit::AuditEventFilter;
use crate::model::datasets::{CreateDatasetRequest, RegisterDatasetVersionRequest};
use crate::model::gates::RecordGateResultRequest;
use crate::model::policy::UpdatePolicyRequest;
use crate::model::runs::{CreateRunRequest, FinishRunRequest};
use crate::model::tokens::CreateTokenRequest;
use crate::pagination::Pager;
use crate::retry::RetryConfig;
use crate::transport::LocalBoxFuture;

/// The `User-Agent` product token of the npm package.
const PACKAGE_UA: &str = concat!("datapilot-js/", env!("CARGO_PKG_VERSION"));

/// A prepared call: the client view (timeout), the signal and the write options.
pub(crate) struct Prepared {
    pub client: Client,
    pub signal: Option<web_sys::AbortSignal>,
    pub opts: RequestOptions,
}

fn millis(value: &JsValue, what: &str) -> Result<Option<Duration>, JsValue> {
    if value.is_undefined() || value.is_null() {
        return Ok(None);
    }
    match value.as_f64() {
        Some(ms) if ms > 0.0 && ms.is_finite() && ms <= 24.0 * 3600.0 * 1000.0 => {
            Ok(Some(Duration::from_secs_f64(ms / 1000.0)))
        }
        _ => Err(invalid_argument(&format!(
            "{what} must be a positive number of milliseconds"
        ))),
    }
}

/// Reads `signal`, `timeoutMs`, `deadlineMs`, `stallTimeoutMs` (transfers) and
/// `idempotencyKey` from an options bag.
pub(crate) fn prepare(client: &Client, options: &JsValue) -> Result<Prepared, JsValue> {
    let timeout = millis(&opt(options, "timeoutMs"), "timeoutMs")?;
    let deadline = millis(&opt(options, "deadlineMs"), "deadlineMs")?;
    let stall_timeout = millis(&opt(options, "stallTimeoutMs"), "stallTimeoutMs")?;
    let key = opt(options, "idempotencyKey");
    let idempotency_key = if key.is_undefined() || key.is_null() {
        None
    } else {
        Some(
            key.as_string()
                .ok_or_else(|| invalid_argument("idempotencyKey must be a string"))?,
        )
    };
    Ok(Prepared {
        // Reads take their per-call limits from a client view (they have no options form).
        client: {
            let view = match timeout {
                Some(t) => client.with_timeout(t),
                None => client.clone(),
            };
            match deadline {
                Some(d) => view.with_deadline(d),
                None => view,
            }
        },
        signal: signal_from(&opt(options, "signal"))?,
        opts: RequestOptions {
            idempotency_key,
            timeout,
            deadline,
            stall_timeout,
            ..RequestOptions::default()
        },
    })
}

/// The async convention of JS: a function that returns a promise reports every failure, bad
/// arguments included, by rejecting it, never by throwing synchronously. Exported async methods
/// wrap their bodies in this (the `Result` stays for Rust callers; it is always `Ok`).
pub(crate) fn rejecting(result: Result<Promise, JsValue>) -> Result<Promise, JsValue> {
    Ok(result.unwrap_or_else(|e| Promise::reject(&e)))
}

/// Runs a core call under the signal and encodes its result.
pub(crate) fn spawn<T, F>(signal: Option<web_sys::AbortSignal>, fut: F) -> Promise
where
    T: Serialize,
    F: Future<Output = crate::Result<T>> + 'static,
{
    spawn_js(signal, async move {
        match fut.await {
            Ok(v) => to_js(&v),
            Err(e) => Err(to_js_error(&e)),
        }
    })
}

/// Like [`spawn`] for results that are not serde values (bytes, classes).
pub(crate) fn spawn_js<F>(signal: Option<web_sys::AbortSignal>, fut: F) -> Promise
where
    F: Future<Output = Result<JsValue, JsValue>> + 'static,
{
    spawn_boxed(signal, Box::pin(fut))
}

/// The one non-generic promise driver: every method's future is boxed into it, so the promise
/// and signal plumbing is compiled once instead of once per method.
fn spawn_boxed(
    signal: Option<web_sys::AbortSignal>,
    fut: LocalBoxFuture<'static, Result<JsValue, JsValue>>,
) -> Promise {
    future_to_promise(async move { with_signal(signal.as_ref(), fut).await? })
}

/// A list iterator with the `limit`, `cursor` and `signal` of an options bag.
pub(crate) fn list<T>(pager: Pager<T>, options: &JsValue) -> Result<JsValue, JsValue>
where
    T: serde::de::DeserializeOwned + Serialize + 'static,
{
    let mut pager = pager;
    match opt(options, "limit").as_f64() {
        Some(l) if (1.0..=500.0).contains(&l) && l.fract() == 0.0 => pager = pager.limit(l as u32),
        Some(_) => return Err(invalid_argument("limit must be an integer from 1 to 500")),
        None => {}
    }
    let order = opt(options, "order");
    match order.as_string().as_deref() {
        Some("asc") => pager = pager.order(crate::pagination::Order::Asc),
        Some("desc") => pager = pager.order(crate::pagination::Order::Desc),
        _ if order.is_undefined() || order.is_null() => {}
        _ => return Err(invalid_argument("order must be \"asc\" or \"desc\"")),
    }
    if let Some(c) = opt(options, "cursor").as_string() {
        pager = pager.starting_at(c);
    }
    Ok(list_iterator(pager, signal_from(&opt(options, "signal"))?))
}

fn core(e: crate::Error) -> JsValue {
    to_js_error(&e)
}

/// A DataPilot API client. `new DataPilot({ baseUrl, token })`.
#[wasm_bindgen]
#[derive(Debug, Clone)]
pub struct DataPilot {
    pub(crate) client: Client,
}

#[wasm_bindgen]
impl DataPilot {
    /// A client for the server at `baseUrl` (absolute), authenticating with `token`.
    #[wasm_bindgen(constructor)]
    pub fn new(
        #[wasm_bindgen(unchecked_param_type = "DataPilotOptions")] options: JsValue,
    ) -> Result<DataPilot, JsValue> {
        if !options.is_object() {
            return Err(invalid_argument("new DataPilot({ baseUrl, token })"));
        }
        let base_url = opt(&options, "baseUrl")
            .as_string()
            .ok_or_else(|| invalid_argument("baseUrl (an absolute URL string) is required"))?;
        let suffix = match opt(&options, "userAgent").as_string() {
            Some(s) => format!("{PACKAGE_UA} {s}"),
            None => PACKAGE_UA.to_owned(),
        };
        let mut retry = RetryConfig::default();
        match opt(&options, "maxAttempts").as_f64() {
            Some(n) if (1.0..=10.0).contains(&n) && n.fract() == 0.0 => {
                retry.max_attempts = n as u32
            }
            Some(_) => {
                return Err(invalid_argument(
                    "maxAttempts must be an integer from 1 to 10",
                ))
            }
            None => {}
        }
        // 256 bits from crypto.getRandomValues: idempotency keys must not be guessable.
        let mut seed = [0u8; 32];
        fill_random(&mut seed);
        let mut builder = Client::builder()
            .base_url(base_url)
            .transport(FetchTransport::new())
            .sleep(JsSleep)
            .retry(retry)
            .seed_bytes(seed)
            .user_agent_suffix(&suffix);
        if let Some(t) = millis(&opt(&options, "timeoutMs"), "timeoutMs")? {
            builder = builder.timeout(t);
        }
        if let Some(d) = millis(&opt(&options, "deadlineMs"), "deadlineMs")? {
            builder = builder.deadline(d);
        }
        if let Some(s) = millis(&opt(&options, "stallTimeoutMs"), "stallTimeoutMs")? {
            builder = builder.stall_timeout(s);
        }
        let token = opt(&options, "token");
        if !(token.is_undefined() || token.is_null()) {
            builder = builder.token(
                token
                    .as_string()
                    .ok_or_else(|| invalid_argument("token must be a string"))?,
            );
        }
        Ok(DataPilot {
            client: builder.build().map_err(core)?,
        })
    }

    /// A client for the same server with another token (shares retries and connections).
    #[wasm_bindgen(js_name = withToken)]
    pub fn with_token(&self, token: &str) -> Result<DataPilot, JsValue> {
        Ok(DataPilot {
            client: self.client.with_token(token).map_err(core)?,
        })
    }

    /// The validated base URL.
    #[wasm_bindgen(getter, js_name = baseUrl)]
    pub fn base_url(&self) -> String {
        self.client.base_url().to_owned()
    }

    // ---- system ------------------------------------------------------------------------------

    /// `getHealth`: server status, version and ledger size (no token needed).
    #[wasm_bindgen(js_name = getHealth, unchecked_return_type = "Promise<Health>")]
    pub fn get_health(
        &self,
        #[wasm_bindgen(unchecked_optional_param_type = "CallOptions")] options: JsValue,
    ) -> Result<Promise, JsValue> {
        rejecting((|| {
            let p = prepare(&self.client, &options)?;
            let c = p.client;
            Ok(spawn(p.signal, async move { c.get_health().send().await }))
        })())
    }

    /// `whoAmI`: the principal the server sees for this client's token.
    #[wasm_bindgen(js_name = whoAmI, unchecked_return_type = "Promise<WhoAmI>")]
    pub fn who_am_i(
        &self,
        #[wasm_bindgen(unchecked_optional_param_type = "CallOptions")] options: JsValue,
    ) -> Result<Promise, JsValue> {
        rejecting((|| {
            let p = prepare(&self.client, &options)?;
            let c = p.client;
            Ok(spawn(p.signal, async move { c.who_am_i().send().await }))
        })())
    }

    /// `listVerifierKeys`: the ledger's public keys (to bootstrap a pin, not to trust).
    #[wasm_bindgen(js_name = listVerifierKeys, unchecked_return_type = "Promise<VerifierKeys>")]
    pub fn list_verifier_keys(
        &self,
        #[wasm_bindgen(unchecked_optional_param_type = "CallOptions")] options: JsValue,
    ) -> Result<Promise, JsValue> {
        rejecting((|| {
            let p = prepare(&self.client, &options)?;
            let c = p.client;
            Ok(spawn(p.signal, async move {
                c.list_verifier_keys().send().await
            }))
        })())
    }

    // ---- datasets ----------------------------------------------------------------------------

    /// `createDataset`.
    #[wasm_bindgen(js_name = createDataset, unchecked_return_type = "Promise<Dataset>")]
    pub fn create_dataset(
        &self,
        #[wasm_bindgen(unchecked_param_type = "CreateDatasetRequest")] request: JsValue,
        #[wasm_bindgen(unchecked_optional_param_type = "WriteOptions")] options: JsValue,
    ) -> Result<Promise, JsValue> {
        rejecting((|| {
            let req: CreateDatasetRequest = from_js(request, "createDataset request")?;
            let p = prepare(&self.client, &options)?;
            let (c, o) = (p.client, p.opts);
            Ok(spawn(p.signal, async move {
                c.create_dataset(&req).options(o.clone()).send().await
            }))
        })())
    }

    /// `getDataset`.
    #[wasm_bindgen(js_name = getDataset, unchecked_return_type = "Promise<Dataset>")]
    pub fn get_dataset(
        &self,
        #[wasm_bindgen(js_name = datasetId)] dataset_id: String,
        #[wasm_bindgen(unchecked_optional_param_type = "CallOptions")] options: JsValue,
    ) -> Result<Promise, JsValue> {
        rejecting((|| {
            let p = prepare(&self.client, &options)?;
            let c = p.client;
            Ok(spawn(p.signal, async move {
                c.get_dataset(&dataset_id).send().await
            }))
        })())
    }

    /// `registerDatasetVersion`: `{ digest, files, note? }` (e.g. from `hashFiles`). Resolves
    /// to `{ version, created }`; `created` is `false` when the digest was already registered.
    /// A manifest of more than `options.partFiles` files (default 50 000) is sent as a
    /// manifest upload in parts, converted into wasm memory one part at a time;
    /// `options.onProgress` sees `{ phase: "registering", uploadId, partsDone, parts,
    /// filesSent, files }` and `options.resumeUploadId` continues an upload an earlier process
    /// started (parts the server holds are not sent again).
    #[wasm_bindgen(js_name = registerDatasetVersion, unchecked_return_type = "Promise<Registration>")]
    pub fn register_dataset_version(
        &self,
        #[wasm_bindgen(js_name = datasetId)] dataset_id: String,
        #[wasm_bindgen(unchecked_param_type = "RegisterDatasetVersionRequest")] request: JsValue,
        #[wasm_bindgen(unchecked_optional_param_type = "RegisterOptions")] options: JsValue,
    ) -> Result<Promise, JsValue> {
        rejecting((|| {
            let files = js_sys::Reflect::get(&request, &"files".into())?;
            if !js_sys::Array::is_array(&files) {
                return Err(invalid_argument(
                    "registerDatasetVersion request: files must be an array",
                ));
            }
            let files = JsFileParts(files.unchecked_into());
            let digest = js_sys::Reflect::get(&request, &"digest".into())?
                .as_string()
                .ok_or_else(|| {
                    invalid_argument("registerDatasetVersion request: digest must be a string")
                })?;
            let note = js_sys::Reflect::get(&request, &"note".into())?;
            let note = if note.is_undefined() || note.is_null() {
                None
            } else {
                Some(note.as_string().ok_or_else(|| {
                    invalid_argument("registerDatasetVersion request: note must be a string")
                })?)
            };
            let part_files = match opt(&options, "partFiles").as_f64() {
                None => crate::api::DEFAULT_PART_FILES,
                Some(n) if (1.0..=100_000.0).contains(&n) && n.fract() == 0.0 => n as usize,
                Some(_) => {
                    return Err(invalid_argument(
                        "partFiles must be an integer from 1 to 100000",
                    ))
                }
            };
            let resume = opt(&options, "resumeUploadId").as_string();
            let on_progress = opt(&options, "onProgress");
            let on_progress = if on_progress.is_function() {
                Some(js_sys::Function::from(on_progress))
            } else if on_progress.is_undefined() || on_progress.is_null() {
                None
            } else {
                return Err(invalid_argument("onProgress must be a function"));
            };
            // A manifest sent in one request is converted now, so a malformed file rejects
            // with `invalid_argument` before anything is sent.
            let one_request = if (files.0.length() as usize) <= part_files && resume.is_none() {
                Some(from_js::<Vec<crate::model::datasets::FileEntry>>(
                    files.0.clone().into(),
                    "registerDatasetVersion request: files",
                )?)
            } else {
                None
            };
            let p = prepare(&self.client, &options)?;
            let (c, o) = (p.client, p.opts);
            Ok(spawn_js(p.signal, async move {
                let report = |pr: &crate::api::RegistrationProgress| {
                    if let Some(f) = &on_progress {
                        let ev = js_sys::Object::new();
                        let set = |k: &str, v: JsValue| {
                            let _ = js_sys::Reflect::set(&ev, &k.into(), &v);
                        };
                        set("phase", "registering".into());
                        set(
                            "uploadId",
                            pr.upload_id.clone().map_or(JsValue::NULL, Into::into),
                        );
                        set("partsDone", pr.parts_done.into());
                        set("parts", pr.parts.into());
                        set("filesSent", (pr.files_sent as f64).into());
                        set("files", (pr.files as f64).into());
                        let _ = f.call1(&JsValue::NULL, &ev);
                    }
                };
                // Per-call options (an Idempotency-Key) apply to the one-request form.
                let r = if let Some(files) = one_request {
                    let req = RegisterDatasetVersionRequest {
                        digest,
                        files,
                        note,
                    };
                    let r = c
                        .register_dataset_version(&dataset_id, &req)
                        .options(o.clone())
                        .send()
                        .await
                        .map_err(core)?;
                    report(&crate::api::RegistrationProgress::one_request(
                        req.files.len(),
                    ));
                    r
                } else {
                    crate::api::register_in_parts(
                        &c,
                        &dataset_id,
                        &digest,
                        note.as_deref(),
                        &files,
                        part_files,
                        resume.as_deref(),
                        &report,
                    )
                    .await
                    .map_err(core)?
                };
                let out = js_sys::Object::new();
                js_sys::Reflect::set(&out, &"version".into(), &to_js(&r.version)?)?;
                js_sys::Reflect::set(&out, &"created".into(), &r.created.into())?;
                Ok(out.into())
            }))
        })())
    }

    /// `listDatasetVersionFiles`: the manifest of a version of any size, page by page
    /// (`limit` up to 10 000, default 1 000), as an async iterator of files in path byte order.
    #[wasm_bindgen(js_name = listDatasetVersionFiles, unchecked_return_type = "ListIterator<FileEntry>")]
    pub fn list_dataset_version_files(
        &self,
        #[wasm_bindgen(js_name = datasetId)] dataset_id: &str,
        digest: &str,
        #[wasm_bindgen(unchecked_optional_param_type = "ListOptions")] options: JsValue,
    ) -> Result<JsValue, JsValue> {
        let p = prepare(&self.client, &options)?;
        let mut pager = p.client.list_dataset_version_files(dataset_id, digest);
        match opt(&options, "limit").as_f64() {
            Some(l)
                if (1.0..=f64::from(crate::api::MAX_FILES_PAGE)).contains(&l)
                    && l.fract() == 0.0 =>
            {
                pager = pager.limit(l as u32)
            }
            Some(_) => return Err(invalid_argument("limit must be an integer from 1 to 10000")),
            None => {}
        }
        if let Some(c) = opt(&options, "cursor").as_string() {
            pager = pager.starting_at(c);
        }
        Ok(super::pager::list_iterator(
            pager,
            signal_from(&opt(&options, "signal"))?,
        ))
    }

    /// `listDatasetVersions`.
    #[wasm_bindgen(js_name = listDatasetVersions, unchecked_return_type = "ListIterator<DatasetVersion>")]
    pub fn list_dataset_versions(
        &self,
        #[wasm_bindgen(js_name = datasetId)] dataset_id: &str,
        #[wasm_bindgen(unchecked_optional_param_type = "ListOptions")] options: JsValue,
    ) -> Result<JsValue, JsValue> {
        let p = prepare(&self.client, &options)?;
        list(p.client.list_dataset_versions(dataset_id), &options)
    }

    /// `getDatasetVersion`.
    #[wasm_bindgen(js_name = getDatasetVersion, unchecked_return_type = "Promise<DatasetVersion>")]
    pub fn get_dataset_version(
        &self,
        #[wasm_bindgen(js_name = datasetId)] dataset_id: String,
        digest: String,
        #[wasm_bindgen(unchecked_optional_param_type = "CallOptions")] options: JsValue,
    ) -> Result<Promise, JsValue> {
        rejecting((|| {
            let p = prepare(&self.client, &options)?;
            let c = p.client;
            Ok(spawn(p.signal, async move {
                c.get_dataset_version(&dataset_id, &digest).send().await
            }))
        })())
    }

    /// `getDatasetVersionManifest`.
    #[wasm_bindgen(js_name = getDatasetVersionManifest, unchecked_return_type = "Promise<DatasetManifest>")]
    pub fn get_dataset_version_manifest(
        &self,
        #[wasm_bindgen(js_name = datasetId)] dataset_id: String,
        digest: String,
        #[wasm_bindgen(unchecked_optional_param_type = "CallOptions")] options: JsValue,
    ) -> Result<Promise, JsValue> {
        rejecting((|| {
            let p = prepare(&self.client, &options)?;
            let c = p.client;
            Ok(spawn(p.signal, async move {
                c.get_dataset_version_manifest(&dataset_id, &digest)
                    .send()
                    .await
            }))
        })())
    }

    // ---- gates -------------------------------------------------------------------------------

    /// `recordGateResult`.
    #[wasm_bindgen(js_name = recordGateResult, unchecked_return_type = "Promise<GateResult>")]
    pub fn record_gate_result(
        &self,
        #[wasm_bindgen(js_name = datasetId)] dataset_id: String,
        digest: String,
        #[wasm_bindgen(unchecked_param_type = "RecordGateResultRequest")] request: JsValue,
        #[wasm_bindgen(unchecked_optional_param_type = "WriteOptions")] options: JsValue,
    ) -> Result<Promise, JsValue> {
        rejecting((|| {
            let req: RecordGateResultRequest = from_js(request, "recordGateResult request")?;
            let p = prepare(&self.client, &options)?;
            let (c, o) = (p.client, p.opts);
            Ok(spawn(p.signal, async move {
                c.record_gate_result(&dataset_id, &digest, &req)
                    .options(o.clone())
                    .send()
                    .await
            }))
        })())
    }

    /// `listGateResults`.
    #[wasm_bindgen(js_name = listGateResults, unchecked_return_type = "ListIterator<GateResult>")]
    pub fn list_gate_results(
        &self,
        #[wasm_bindgen(js_name = datasetId)] dataset_id: &str,
        digest: &str,
        #[wasm_bindgen(unchecked_optional_param_type = "ListOptions")] options: JsValue,
    ) -> Result<JsValue, JsValue> {
        let p = prepare(&self.client, &options)?;
        list(p.client.list_gate_results(dataset_id, digest), &options)
    }

    // ---- policy ------------------------------------------------------------------------------

    /// `getPolicy`.
    #[wasm_bindgen(js_name = getPolicy, unchecked_return_type = "Promise<Policy>")]
    pub fn get_policy(
        &self,
        #[wasm_bindgen(unchecked_optional_param_type = "CallOptions")] options: JsValue,
    ) -> Result<Promise, JsValue> {
        rejecting((|| {
            let p = prepare(&self.client, &options)?;
            let c = p.client;
            Ok(spawn(p.signal, async move { c.get_policy().send().await }))
        })())
    }

    /// `updatePolicy` (admin): replaces the policy with a new version. Not idempotent (a
    /// `PUT` without a key): retried only when it cannot have been applied.
    #[wasm_bindgen(js_name = updatePolicy, unchecked_return_type = "Promise<Policy>")]
    pub fn update_policy(
        &self,
        #[wasm_bindgen(unchecked_param_type = "UpdatePolicyRequest")] request: JsValue,
        #[wasm_bindgen(unchecked_optional_param_type = "CallOptions")] options: JsValue,
    ) -> Result<Promise, JsValue> {
        rejecting((|| {
            let req: UpdatePolicyRequest = from_js(request, "updatePolicy request")?;
            let p = prepare(&self.client, &options)?;
            let (c, mut o) = (p.client, p.opts);
            o.idempotency_key = None;
            Ok(spawn(p.signal, async move {
                c.update_policy(&req).options(o.clone()).send().await
            }))
        })())
    }

    // ---- runs --------------------------------------------------------------------------------

    /// `createRun`: resolves to a `RunHandle` carrying the run and its run token. Rejects with
    /// code `gate_not_passed` when an input has not passed the policy's gates.
    #[wasm_bindgen(js_name = createRun, unchecked_return_type = "Promise<RunHandle>")]
    pub fn create_run(
        &self,
        #[wasm_bindgen(unchecked_param_type = "CreateRunRequest")] request: JsValue,
        #[wasm_bindgen(unchecked_optional_param_type = "WriteOptions")] options: JsValue,
    ) -> Result<Promise, JsValue> {
        rejecting((|| {
            let req: CreateRunRequest = from_js(request, "createRun request")?;
            let p = prepare(&self.client, &options)?;
            let (c, o) = (p.client, p.opts);
            let base = self.client.clone();
            Ok(spawn_js(p.signal, async move {
                let created = c
                    .create_run(&req)
                    .options(o.clone())
                    .send()
                    .await
                    .map_err(core)?;
                Ok(RunHandle::from_created(&base, created)?.into())
            }))
        })())
    }

    /// A `RunHandle` for a run whose token you kept (e.g. passed to a CI job).
    #[wasm_bindgen(js_name = runHandle)]
    pub fn run_handle(&self, run_id: &str, run_token: &str) -> Result<RunHandle, JsValue> {
        RunHandle::resume(&self.client, run_id, run_token)
    }

    /// `getRun`.
    #[wasm_bindgen(js_name = getRun, unchecked_return_type = "Promise<Run>")]
    pub fn get_run(
        &self,
        #[wasm_bindgen(js_name = runId)] run_id: String,
        #[wasm_bindgen(unchecked_optional_param_type = "CallOptions")] options: JsValue,
    ) -> Result<Promise, JsValue> {
        rejecting((|| {
            let p = prepare(&self.client, &options)?;
            let c = p.client;
            Ok(spawn(
                p.signal,
                async move { c.get_run(&run_id).send().await },
            ))
        })())
    }

    /// `finishRun`: seals the run.
    #[wasm_bindgen(js_name = finishRun, unchecked_return_type = "Promise<Run>")]
    pub fn finish_run(
        &self,
        #[wasm_bindgen(js_name = runId)] run_id: String,
        #[wasm_bindgen(unchecked_param_type = "FinishRunRequest")] request: JsValue,
        #[wasm_bindgen(unchecked_optional_param_type = "WriteOptions")] options: JsValue,
    ) -> Result<Promise, JsValue> {
        rejecting((|| {
            let req: FinishRunRequest = from_js(request, "finishRun request")?;
            let p = prepare(&self.client, &options)?;
            let (c, o) = (p.client, p.opts);
            Ok(spawn(p.signal, async move {
                c.finish_run(&run_id, &req).options(o.clone()).send().await
            }))
        })())
    }

    // ---- metrics and artifacts (also on RunHandle, with the run token) -----------------------

    /// `appendMetrics`: `{ points: [{ name, step, value, time? }] }` (1-10000 finite points).
    #[wasm_bindgen(js_name = appendMetrics, unchecked_return_type = "Promise<MetricBatch>")]
    pub fn append_metrics(
        &self,
        #[wasm_bindgen(js_name = runId)] run_id: String,
        #[wasm_bindgen(unchecked_param_type = "AppendMetricsRequest")] request: JsValue,
        #[wasm_bindgen(unchecked_optional_param_type = "WriteOptions")] options: JsValue,
    ) -> Result<Promise, JsValue> {
        rejecting(super::run::append_metrics(
            &self.client,
            run_id,
            request,
            &options,
        ))
    }

    /// `listMetrics` (`name` filters).
    #[wasm_bindgen(js_name = listMetrics, unchecked_return_type = "ListIterator<MetricValue>")]
    pub fn list_metrics(
        &self,
        #[wasm_bindgen(js_name = runId)] run_id: &str,
        #[wasm_bindgen(unchecked_optional_param_type = "ListMetricsOptions")] options: JsValue,
    ) -> Result<JsValue, JsValue> {
        super::run::list_metrics(&self.client, run_id, &options)
    }

    /// `uploadArtifact`: `data` is a `Blob`/`File` (streamed from disk by `fetch`) or bytes.
    /// The SHA-256 is computed by streaming the data unless `options.sha256` gives it.
    #[wasm_bindgen(js_name = uploadArtifact, unchecked_return_type = "Promise<Artifact>")]
    pub fn upload_artifact(
        &self,
        #[wasm_bindgen(js_name = runId)] run_id: String,
        name: String,
        #[wasm_bindgen(unchecked_param_type = "Blob | Uint8Array")] data: JsValue,
        #[wasm_bindgen(unchecked_optional_param_type = "UploadOptions")] options: JsValue,
    ) -> Result<Promise, JsValue> {
        rejecting(super::run::upload_artifact(
            &self.client,
            run_id,
            name,
            data,
            options,
        ))
    }

    /// `listArtifacts`.
    #[wasm_bindgen(js_name = listArtifacts, unchecked_return_type = "ListIterator<Artifact>")]
    pub fn list_artifacts(
        &self,
        #[wasm_bindgen(js_name = runId)] run_id: &str,
        #[wasm_bindgen(unchecked_optional_param_type = "ListOptions")] options: JsValue,
    ) -> Result<JsValue, JsValue> {
        let p = prepare(&self.client, &options)?;
        list(p.client.list_artifacts(run_id), &options)
    }

    /// `getArtifact`.
    #[wasm_bindgen(js_name = getArtifact, unchecked_return_type = "Promise<Artifact>")]
    pub fn get_artifact(
        &self,
        #[wasm_bindgen(js_name = runId)] run_id: String,
        #[wasm_bindgen(js_name = artifactId)] artifact_id: String,
        #[wasm_bindgen(unchecked_optional_param_type = "CallOptions")] options: JsValue,
    ) -> Result<Promise, JsValue> {
        rejecting((|| {
            let p = prepare(&self.client, &options)?;
            let c = p.client;
            Ok(spawn(p.signal, async move {
                c.get_artifact(&run_id, &artifact_id).send().await
            }))
        })())
    }

    /// `downloadArtifact`: the bytes, checked against the server's `X-Content-SHA256`. Read
    /// whole into memory: for small artifacts (see `downloadArtifactStream`).
    #[wasm_bindgen(js_name = downloadArtifact, unchecked_return_type = "Promise<DownloadedArtifact>")]
    pub fn download_artifact(
        &self,
        #[wasm_bindgen(js_name = runId)] run_id: String,
        #[wasm_bindgen(js_name = artifactId)] artifact_id: String,
        #[wasm_bindgen(unchecked_optional_param_type = "TransferOptions")] options: JsValue,
    ) -> Result<Promise, JsValue> {
        rejecting(super::run::download_artifact(
            &self.client,
            run_id,
            artifact_id,
            &options,
        ))
    }

    /// `downloadArtifact` of any size: resolves at the answer's head to `{ stream, artifact }`,
    /// a `ReadableStream<Uint8Array>` checked against the artifact's recorded sha256 as it is
    /// read (the last chunk is held back until the check passed; a mismatch errors the stream
    /// with a `DataPilotError` of kind `verification`).
    #[wasm_bindgen(js_name = downloadArtifactStream, unchecked_return_type = "Promise<ArtifactDownloadStream>")]
    pub fn download_artifact_stream(
        &self,
        #[wasm_bindgen(js_name = runId)] run_id: String,
        #[wasm_bindgen(js_name = artifactId)] artifact_id: String,
        #[wasm_bindgen(unchecked_optional_param_type = "DownloadStreamOptions")] options: JsValue,
    ) -> Result<Promise, JsValue> {
        rejecting(super::run::download_artifact_stream(
            &self.client,
            run_id,
            artifact_id,
            &options,
        ))
    }

    // ---- lineage, audit ----------------------------------------------------------------------

    /// `getRunLineage`.
    #[wasm_bindgen(js_name = getRunLineage, unchecked_return_type = "Promise<Lineage>")]
    pub fn get_run_lineage(
        &self,
        #[wasm_bindgen(js_name = runId)] run_id: String,
        #[wasm_bindgen(unchecked_optional_param_type = "CallOptions")] options: JsValue,
    ) -> Result<Promise, JsValue> {
        rejecting((|| {
            let p = prepare(&self.client, &options)?;
            let c = p.client;
            Ok(spawn(p.signal, async move {
                c.get_run_lineage(&run_id).send().await
            }))
        })())
    }

    /// `getDatasetVersionLineage`.
    #[wasm_bindgen(js_name = getDatasetVersionLineage, unchecked_return_type = "Promise<Lineage>")]
    pub fn get_dataset_version_lineage(
        &self,
        #[wasm_bindgen(js_name = datasetId)] dataset_id: String,
        digest: String,
        #[wasm_bindgen(unchecked_optional_param_type = "CallOptions")] options: JsValue,
    ) -> Result<Promise, JsValue> {
        rejecting((|| {
            let p = prepare(&self.client, &options)?;
            let c = p.client;
            Ok(spawn(p.signal, async move {
                c.get_dataset_version_lineage(&dataset_id, &digest)
                    .send()
                    .await
            }))
        })())
    }

    /// `listAuditEvents` (`subject`, `action` filter).
    #[wasm_bindgen(js_name = listAuditEvents, unchecked_return_type = "ListIterator<AuditEvent>")]
    pub fn list_audit_events(
        &self,
        #[wasm_bindgen(unchecked_optional_param_type = "ListAuditEventsOptions")] options: JsValue,
    ) -> Result<JsValue, JsValue> {
        let p = prepare(&self.client, &options)?;
        let filter = AuditEventFilter {
            subject: opt(&options, "subject").as_string(),
            action: opt(&options, "action").as_string(),
        };
        list(p.client.list_audit_events(&filter), &options)
    }

    /// `getAuditEvent`.
    #[wasm_bindgen(js_name = getAuditEvent, unchecked_return_type = "Promise<AuditEvent>")]
    pub fn get_audit_event(
        &self,
        seq: f64,
        #[wasm_bindgen(unchecked_optional_param_type = "CallOptions")] options: JsValue,
    ) -> Result<Promise, JsValue> {
        rejecting((|| {
            let seq = whole(seq, "seq")?;
            let p = prepare(&self.client, &options)?;
            let c = p.client;
            Ok(spawn(p.signal, async move {
                c.get_audit_event(seq).send().await
            }))
        })())
    }

    // ---- ledger ------------------------------------------------------------------------------

    /// `getCheckpoint`: the current signed checkpoint note (verify it with `verifyCheckpoint`).
    #[wasm_bindgen(js_name = getCheckpoint, unchecked_return_type = "Promise<string>")]
    pub fn get_checkpoint(
        &self,
        #[wasm_bindgen(unchecked_optional_param_type = "CallOptions")] options: JsValue,
    ) -> Result<Promise, JsValue> {
        rejecting((|| {
            let p = prepare(&self.client, &options)?;
            let c = p.client;
            Ok(spawn(
                p.signal,
                async move { c.get_checkpoint().send().await },
            ))
        })())
    }

    /// `listLedgerEntries` (`start` for the first page).
    #[wasm_bindgen(js_name = listLedgerEntries, unchecked_return_type = "ListIterator<LedgerEntry>")]
    pub fn list_ledger_entries(
        &self,
        #[wasm_bindgen(unchecked_optional_param_type = "ListLedgerEntriesOptions")]
        options: JsValue,
    ) -> Result<JsValue, JsValue> {
        let p = prepare(&self.client, &options)?;
        let start = match opt(&options, "start").as_f64() {
            Some(s) => Some(whole(s, "start")?),
            None => None,
        };
        list(p.client.list_ledger_entries(start), &options)
    }

    /// `getInclusionProof` (tree size defaults to the current one).
    #[wasm_bindgen(js_name = getInclusionProof, unchecked_return_type = "Promise<InclusionProof>")]
    pub fn get_inclusion_proof(
        &self,
        seq: f64,
        #[wasm_bindgen(unchecked_optional_param_type = "TreeSizeOptions")] options: JsValue,
    ) -> Result<Promise, JsValue> {
        rejecting((|| {
            let seq = whole(seq, "seq")?;
            let tree_size = opt_whole(&options, "treeSize")?;
            let p = prepare(&self.client, &options)?;
            let c = p.client;
            Ok(spawn(p.signal, async move {
                c.get_inclusion_proof(seq, tree_size).send().await
            }))
        })())
    }

    /// `getConsistencyProof` (`to` defaults to the current size).
    #[wasm_bindgen(js_name = getConsistencyProof, unchecked_return_type = "Promise<ConsistencyProof>")]
    pub fn get_consistency_proof(
        &self,
        from: f64,
        #[wasm_bindgen(unchecked_optional_param_type = "ConsistencyProofOptions")] options: JsValue,
    ) -> Result<Promise, JsValue> {
        rejecting((|| {
            let from = whole(from, "from")?;
            let to = opt_whole(&options, "to")?;
            let p = prepare(&self.client, &options)?;
            let c = p.client;
            Ok(spawn(p.signal, async move {
                c.get_consistency_proof(from, to).send().await
            }))
        })())
    }

    // ---- evidence ----------------------------------------------------------------------------

    /// `exportRunEvidence`: the bundle's zip bytes (deterministic per tree size).
    #[wasm_bindgen(js_name = exportRunEvidence, unchecked_return_type = "Promise<Uint8Array>")]
    pub fn export_run_evidence(
        &self,
        #[wasm_bindgen(js_name = runId)] run_id: String,
        #[wasm_bindgen(unchecked_optional_param_type = "TreeSizeOptions")] options: JsValue,
    ) -> Result<Promise, JsValue> {
        rejecting((|| {
            let tree_size = opt_whole(&options, "treeSize")?;
            let p = prepare(&self.client, &options)?;
            let c = p.client;
            Ok(spawn_js(p.signal, async move {
                let bytes = c
                    .export_run_evidence(&run_id, tree_size)
                    .send()
                    .await
                    .map_err(core)?;
                Ok(Uint8Array::from(&bytes[..]).into())
            }))
        })())
    }

    /// `exportDatasetVersionEvidence`.
    #[wasm_bindgen(js_name = exportDatasetVersionEvidence, unchecked_return_type = "Promise<Uint8Array>")]
    pub fn export_dataset_version_evidence(
        &self,
        #[wasm_bindgen(js_name = datasetId)] dataset_id: String,
        digest: String,
        #[wasm_bindgen(unchecked_optional_param_type = "TreeSizeOptions")] options: JsValue,
    ) -> Result<Promise, JsValue> {
        rejecting((|| {
            let tree_size = opt_whole(&options, "treeSize")?;
            let p = prepare(&self.client, &options)?;
            let c = p.client;
            Ok(spawn_js(p.signal, async move {
                let bytes = c
                    .export_dataset_version_evidence(&dataset_id, &digest, tree_size)
                    .send()
                    .await
                    .map_err(core)?;
                Ok(Uint8Array::from(&bytes[..]).into())
            }))
        })())
    }

    // `verifyEvidenceBundle(bytes, { trustedKeys, lastCheckpoint, ...CallOptions })` is added
    // to this class by the package's JS entries: it runs in the verifier wasm module (loaded on
    // first use, `verify::verifyEvidenceBundleOnline`) and fetches the consistency proof with
    // `getConsistencyProof`.

    // ---- tokens ------------------------------------------------------------------------------

    /// `createToken` (admin): the secret is in the result once.
    #[wasm_bindgen(js_name = createToken, unchecked_return_type = "Promise<CreatedToken>")]
    pub fn create_token(
        &self,
        #[wasm_bindgen(unchecked_param_type = "CreateTokenRequest")] request: JsValue,
        #[wasm_bindgen(unchecked_optional_param_type = "WriteOptions")] options: JsValue,
    ) -> Result<Promise, JsValue> {
        rejecting((|| {
            let req: CreateTokenRequest = from_js(request, "createToken request")?;
            let p = prepare(&self.client, &options)?;
            let (c, o) = (p.client, p.opts);
            Ok(spawn(p.signal, async move {
                c.create_token(&req).options(o.clone()).send().await
            }))
        })())
    }

    /// `listTokens` (admin).
    #[wasm_bindgen(js_name = listTokens, unchecked_return_type = "ListIterator<ApiToken>")]
    pub fn list_tokens(
        &self,
        #[wasm_bindgen(unchecked_optional_param_type = "ListOptions")] options: JsValue,
    ) -> Result<JsValue, JsValue> {
        let p = prepare(&self.client, &options)?;
        list(p.client.list_tokens(), &options)
    }

    /// `revokeToken` (admin).
    #[wasm_bindgen(js_name = revokeToken, unchecked_return_type = "Promise<ApiToken>")]
    pub fn revoke_token(
        &self,
        #[wasm_bindgen(js_name = tokenId)] token_id: String,
        #[wasm_bindgen(unchecked_optional_param_type = "WriteOptions")] options: JsValue,
    ) -> Result<Promise, JsValue> {
        rejecting((|| {
            let p = prepare(&self.client, &options)?;
            let (c, o) = (p.client, p.opts);
            Ok(spawn(p.signal, async move {
                c.revoke_token(&token_id).options(o.clone()).send().await
            }))
        })())
    }
}

/// An optional non-negative safe integer option.
fn opt_whole(options: &JsValue, key: &str) -> Result<Option<u64>, JsValue> {
    let v = opt(options, key);
    if v.is_undefined() || v.is_null() {
        return Ok(None);
    }
    match v.as_f64() {
        Some(n) => whole(n, key).map(Some),
        None => Err(invalid_argument(&format!("{key} must be a number"))),
    }
}

/// A non-negative safe integer argument.
pub(crate) fn whole(n: f64, what: &str) -> Result<u64, JsValue> {
    if n >= 0.0 && n.fract() == 0.0 && n <= crate::jcs::MAX_SAFE_INTEGER as f64 {
        Ok(n as u64)
    } else {
        Err(invalid_argument(&format!(
            "{what} must be a non-negative integer"
        )))
    }
}

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_namespace = crypto, js_name = getRandomValues, catch)]
    fn get_random_values(buf: &mut [u8]) -> Result<JsValue, JsValue>;
}

/// Fills `buf` from `crypto.getRandomValues` (browsers, workers, Node ≥ 20), else the clock.
fn fill_random(buf: &mut [u8]) {
    if get_random_values(buf).is_err() {
        let t = (js_sys::Date::now() * 1000.0) as u64 ^ (js_sys::Math::random() * 1e15) as u64;
        for (i, b) in buf.iter_mut().enumerate() {
            *b = (t >> ((i % 8) * 8)) as u8;
        }
    }
}

/// The files of a `registerDatasetVersion` request as the JS array they are, converted into
/// wasm memory one part at a time ([`crate::api::PartSource`]).
struct JsFileParts(js_sys::Array);

impl crate::api::PartSource for JsFileParts {
    fn len(&self) -> usize {
        self.0.length() as usize
    }
    fn slice(
        &self,
        start: usize,
        end: usize,
    ) -> crate::Result<Vec<crate::model::datasets::FileEntry>> {
        let part = self.0.slice(start as u32, end as u32);
        serde_wasm_bindgen::from_value(part.into()).map_err(|e| {
            crate::Error::build(format!(
                "registerDatasetVersion request: files[{start}..{end}]: {e}"
            ))
        })
    }
}
