//! `datapilot._native`: the Python boundary, the only code that knows about PyO3.
//!
//! Like `src/wasm/` for the npm package, every export is thin: decode the Python arguments,
//! call the SDK crate's core, encode the result. Logic lives in the core, where `cargo test`
//! covers it: the client and its retries ([`datapilot::Client`]), directory digests
//! ([`datapilot::files`]), metric batching ([`datapilot::metrics_logger`]) and evidence
//! verification ([`datapilot::evidence`]). The public API is the Python package around this
//! module (`python/python/datapilot/`), which adds the Python-only parts: environment
//! variables, context managers, `atexit` and SIGTERM.
//!
//! What this layer does own is how Rust meets the interpreter:
//!
//! - **The GIL is released** for every network call and all hashing ([`drive`], [`Python::detach`]),
//!   so other Python threads (data loaders) run meanwhile. The async client runs on one
//!   process-wide tokio runtime with two I/O threads ([`runtime`]).
//! - **Signals still work.** While a call runs, the calling thread wakes every
//!   [`SIGNAL_POLL`] to run Python's signal handlers; if one raises (Ctrl-C, the package's
//!   SIGTERM handler), the call is cancelled and the exception propagates.
//! - **Errors are typed**: core errors become `datapilot.errors` exceptions with `code`,
//!   `status`, `request_id`, `sent`, `retryable` ([`to_py_err`]).
//! - **Values cross as JSON** ([`to_py`]): the contract's JSON, so what Python sees is exactly
//!   what the API documents.

use std::collections::BTreeMap;
use std::future::Future;
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBytes, PyDict, PyFloat, PyInt, PyString};
use serde::Serialize;

use datapilot::error::Sent;
use datapilot::evidence::{self, archive::DEFAULT_MAX_ARCHIVE_BYTES};
use datapilot::files::{self, DirError, DirOptions, Phase, SymlinkPolicy, TransferProgress};
use datapilot::manifest::Manifest;
use datapilot::metrics_logger::{
    FlushOutcome, LogError, LoggerConfig, LoggerStats, MetricsLogger as CoreLogger, OnFull,
};
use datapilot::model::datasets::{CreateDatasetRequest, FileEntry, RegisterDatasetVersionRequest};
use datapilot::model::gates::{GateOutcome, RecordGateResultRequest};
use datapilot::model::runs::{CreateRunRequest, FinishRunRequest, RunStatus};
use datapilot::model::DatasetVersionRef;
use datapilot::{Client as CoreClient, Error, RequestOptions};

/// How often a waiting call lets Python run its signal handlers.
const SIGNAL_POLL: Duration = Duration::from_millis(100);

/// The process's tokio runtime (two I/O threads), created on first use. A child process made
/// by `fork()` has none of its parent's threads, so it gets a runtime of its own (the parent's
/// is leaked there: dropping it would wait for threads that do not exist in the child).
fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: Mutex<Option<(u32, &'static tokio::runtime::Runtime)>> = Mutex::new(None);
    let pid = std::process::id();
    let mut slot = RT.lock().unwrap_or_else(|p| p.into_inner());
    match *slot {
        Some((owner, rt)) if owner == pid => rt,
        _ => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("datapilot-io")
                .enable_all()
                .build()
                .expect("cannot start the DataPilot I/O runtime");
            let rt: &'static _ = Box::leak(Box::new(rt));
            *slot = Some((pid, rt));
            rt
        }
    }
}

/// Runs `fut` on the runtime with the GIL released. Every [`SIGNAL_POLL`] the GIL is taken
/// back to run Python's signal handlers and `tick` (progress callbacks); an exception from
/// either cancels the future and is raised.
fn drive<T, F>(
    py: Python<'_>,
    fut: F,
    mut tick: impl FnMut(Python<'_>) -> PyResult<()>,
) -> PyResult<T>
where
    F: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let rt = runtime();
    let mut handle = rt.spawn(fut);
    loop {
        let joined = py.detach(|| {
            rt.block_on(async { tokio::time::timeout(SIGNAL_POLL, &mut handle).await.ok() })
        });
        match joined {
            Some(result) => {
                return result
                    .map_err(|e| PyRuntimeError::new_err(format!("DataPilot call failed: {e}")))
            }
            None => {
                if let Err(e) = py.check_signals().and_then(|()| tick(py)) {
                    handle.abort();
                    return Err(e);
                }
            }
        }
    }
}

/// [`drive`] for an SDK call: its error becomes a typed exception.
fn call<T, F>(py: Python<'_>, fut: F) -> PyResult<T>
where
    F: Future<Output = Result<T, Error>> + Send + 'static,
    T: Send + 'static,
{
    drive(py, fut, |_| Ok(()))?.map_err(|e| to_py_err(py, &e))
}

// ---- values -----------------------------------------------------------------------------------

/// A core value as Python objects, through its JSON (`json.loads`).
fn to_py<T: Serialize + ?Sized>(py: Python<'_>, value: &T) -> PyResult<Py<PyAny>> {
    static LOADS: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    let text = serde_json::to_string(value)
        .map_err(|e| PyRuntimeError::new_err(format!("cannot encode a result: {e}")))?;
    Ok(LOADS.import(py, "json", "loads")?.call1((text,))?.unbind())
}

fn secs(what: &str, value: f64) -> PyResult<Duration> {
    Duration::try_from_secs_f64(value)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| invalid(format!("{what} must be a positive number of seconds")))
}

// ---- errors -----------------------------------------------------------------------------------

/// An exception of `datapilot.errors` (class `name`) with its keyword fields.
fn exception(
    py: Python<'_>,
    name: &str,
    message: &str,
    fields: &[(&str, Py<PyAny>)],
    extra: &[(&str, Py<PyAny>)],
) -> PyErr {
    let build = || -> PyResult<PyErr> {
        let class = py.import("datapilot.errors")?.getattr(name)?;
        let kwargs = PyDict::new(py);
        for (k, v) in fields {
            kwargs.set_item(*k, v)?;
        }
        let exc = class.call((message,), Some(&kwargs))?;
        for (k, v) in extra {
            exc.setattr(*k, v)?;
        }
        Ok(PyErr::from_value(exc))
    };
    build().unwrap_or_else(|e| e)
}

fn sent_str(sent: Sent) -> &'static str {
    match sent {
        Sent::No => "no",
        Sent::Maybe => "maybe",
        _ => "yes",
    }
}

/// The keyword fields every `DataPilotError` takes, from a core error.
fn error_fields(py: Python<'_>, e: &Error, code: &str) -> Vec<(&'static str, Py<PyAny>)> {
    let obj = |v: Option<&str>| -> Py<PyAny> {
        v.map_or_else(|| py.None(), |s| PyString::new(py, s).into_any().unbind())
    };
    let api = e.api();
    let errors: Vec<(String, String)> = api
        .map(|a| {
            a.errors
                .iter()
                .map(|f| (f.field.clone(), f.message.clone()))
                .collect()
        })
        .unwrap_or_default();
    vec![
        ("code", PyString::new(py, code).into_any().unbind()),
        (
            "status",
            e.status()
                .map_or_else(|| py.None(), |s| PyInt::new(py, s).into_any().unbind()),
        ),
        ("request_id", obj(e.request_id())),
        (
            "sent",
            PyString::new(py, sent_str(e.sent())).into_any().unbind(),
        ),
        (
            "retryable",
            pyo3::types::PyBool::new(py, e.is_retryable())
                .to_owned()
                .into_any()
                .unbind(),
        ),
        ("detail", obj(api.and_then(|a| a.detail.as_deref()))),
        (
            "errors",
            errors
                .into_pyobject(py)
                .map_or_else(|_| py.None(), |l| l.into_any().unbind()),
        ),
        (
            "retry_after",
            e.retry_after().map_or_else(
                || py.None(),
                |d| PyFloat::new(py, d.as_secs_f64()).into_any().unbind(),
            ),
        ),
    ]
}

/// A core error as the matching `datapilot.errors` exception.
fn to_py_err(py: Python<'_>, e: &Error) -> PyErr {
    let (class, code) = match e {
        Error::Build { .. } => ("InvalidArgumentError", "invalid_request".to_owned()),
        Error::Transport { .. } => ("TransportError", "transport_error".to_owned()),
        Error::Timeout { .. } => ("DeadlineError", "timeout".to_owned()),
        Error::Api(api) => (
            "ApiError",
            api.code
                .clone()
                .unwrap_or_else(|| format!("http_{}", api.status)),
        ),
        Error::Decode { .. } => ("DecodeError", "decode_error".to_owned()),
        Error::Verification(_) => ("VerificationError", "verification_failed".to_owned()),
        _ => ("DataPilotError", "error".to_owned()),
    };
    exception(py, class, &e.to_string(), &error_fields(py, e, &code), &[])
}

/// A local verification that refused its input (`VerificationError`, nothing sent).
fn verification_failed(py: Python<'_>, message: &str) -> PyErr {
    let text = |v: &str| PyString::new(py, v).into_any().unbind();
    exception(
        py,
        "VerificationError",
        message,
        &[("code", text("verification_failed")), ("sent", text("no"))],
        &[],
    )
}

/// A local bad argument (`InvalidArgumentError`, nothing sent).
fn invalid(message: impl Into<String>) -> PyErr {
    let message = message.into();
    Python::attach(|py| to_py_err(py, &Error::Build { message }))
}

/// A directory or file problem as `LocalFileError` with a stable code and the path.
fn dir_err(py: Python<'_>, e: DirError) -> PyErr {
    let (code, path) = match &e {
        DirError::Io { path, .. } => ("io_error", Some(path.display().to_string())),
        DirError::NotADirectory { path } => ("not_a_directory", Some(path.display().to_string())),
        DirError::Empty { path } => ("empty_dataset", Some(path.display().to_string())),
        DirError::NonUtf8Name { path } => ("non_utf8_name", Some(path.display().to_string())),
        DirError::Symlink { path, .. } => ("symlink_refused", Some(path.clone())),
        DirError::SymlinkOutsideRoot { path, .. } => ("symlink_outside_root", Some(path.clone())),
        DirError::SymlinkLoop { path } => ("symlink_loop", Some(path.clone())),
        DirError::DanglingSymlink { path } => ("dangling_symlink", Some(path.clone())),
        DirError::Ignore(_) => ("invalid_ignore_file", None),
        DirError::Changed { path, .. } => ("changed_while_hashing", Some(path.clone())),
        DirError::Manifest(_) => ("invalid_path", None),
        // The progress callback raised or a signal handler did: that exception is pending.
        DirError::Cancelled => {
            return PyErr::take(py).unwrap_or_else(|| PyRuntimeError::new_err("hashing cancelled"))
        }
        _ => ("io_error", None),
    };
    exception(
        py,
        "LocalFileError",
        &e.to_string(),
        &[("code", PyString::new(py, code).into_any().unbind())],
        &[(
            "path",
            path.map_or_else(|| py.None(), |p| PyString::new(py, &p).into_any().unbind()),
        )],
    )
}

// ---- client -----------------------------------------------------------------------------------

/// `_native.Client(url, token, timeout, deadline)`: the SDK client (retries, idempotency keys,
/// deadlines as in every runtime). Every method releases the GIL while it waits.
#[pyclass(frozen, module = "datapilot._native")]
#[derive(Debug)]
struct Client {
    inner: CoreClient,
}

fn options(key: Option<String>) -> RequestOptions {
    match key {
        Some(k) => RequestOptions::idempotency_key(k),
        None => RequestOptions::default(),
    }
}

#[pymethods]
impl Client {
    #[new]
    #[pyo3(signature = (url, token=None, timeout=30.0, deadline=None))]
    fn new(
        url: &str,
        token: Option<String>,
        timeout: f64,
        deadline: Option<f64>,
    ) -> PyResult<Self> {
        let mut b = CoreClient::builder()
            .base_url(url)
            .timeout(secs("timeout", timeout)?)
            .user_agent_suffix(concat!("datapilot-python/", env!("CARGO_PKG_VERSION")));
        if let Some(t) = token {
            b = b.token(t);
        }
        if let Some(d) = deadline {
            b = b.deadline(secs("deadline", d)?);
        }
        let inner = b
            .build()
            .map_err(|e| Python::attach(|py| to_py_err(py, &e)))?;
        Ok(Self { inner })
    }

    /// The validated base URL.
    #[getter]
    fn url(&self) -> String {
        self.inner.base_url().to_owned()
    }

    /// A client acting with `token` (e.g. a run token), sharing connections and retry budget.
    fn with_token(&self, py: Python<'_>, token: String) -> PyResult<Self> {
        let inner = self
            .inner
            .with_token(token)
            .map_err(|e| to_py_err(py, &e))?;
        Ok(Self { inner })
    }

    fn who_am_i(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let c = self.inner.clone();
        let v = call(py, async move { c.who_am_i().send().await })?;
        to_py(py, &v)
    }

    fn list_verifier_keys(&self, py: Python<'_>) -> PyResult<Vec<String>> {
        let c = self.inner.clone();
        let keys = call(py, async move { c.list_verifier_keys().send().await })?;
        Ok(keys.keys.into_iter().map(|k| k.verifier).collect())
    }

    fn get_checkpoint(&self, py: Python<'_>) -> PyResult<String> {
        let c = self.inner.clone();
        call(py, async move { c.get_checkpoint().send().await })
    }

    /// The bundle verified with this server's help: the consistency proof from
    /// `last_checkpoint`, and with `witnesses` the server's cosigned checkpoint (or
    /// `witnessed_checkpoint`) and the proof from the bundle to it.
    #[pyo3(signature = (bundle, trusted_keys, last_checkpoint=None, witnesses=Vec::new(), witness_quorum=None, witnessed_checkpoint=None))]
    #[allow(clippy::too_many_arguments)]
    fn verify_evidence_bundle(
        &self,
        py: Python<'_>,
        bundle: &Bound<'_, PyAny>,
        trusted_keys: Vec<String>,
        last_checkpoint: Option<String>,
        witnesses: Vec<String>,
        witness_quorum: Option<usize>,
        witnessed_checkpoint: Option<String>,
    ) -> PyResult<Py<PyAny>> {
        let keys = log_keys(&trusted_keys)?;
        let (witnesses, quorum) = witness_policy(&witnesses, witness_quorum)?;
        if witnesses.is_empty() && witnessed_checkpoint.is_some() {
            return Err(invalid(
                "witnessed_checkpoint needs witnesses: the trusted witness keys whose \
                 cosignatures it must carry",
            ));
        }
        let mut policy = evidence::OnlinePolicy::new().with_witnesses(witnesses, quorum);
        if let Some(note) = last_checkpoint {
            policy = policy.with_last_checkpoint(note);
        }
        if let Some(note) = witnessed_checkpoint {
            policy = policy.with_witnessed_checkpoint(note);
        }
        let bytes = bundle_bytes(py, bundle)?;
        let c = self.inner.clone();
        let report = call(py, async move {
            c.verify_evidence_bundle(&bytes, &keys)
                .policy(policy)
                .send()
                .await
        })?;
        to_py(py, &report)
    }

    // ---- datasets

    #[pyo3(signature = (name, description=None, idempotency_key=None))]
    fn create_dataset(
        &self,
        py: Python<'_>,
        name: String,
        description: Option<String>,
        idempotency_key: Option<String>,
    ) -> PyResult<Py<PyAny>> {
        let c = self.inner.clone();
        let mut req = CreateDatasetRequest::new(name);
        if let Some(d) = description {
            req = req.with_description(d);
        }
        let v = call(py, async move {
            c.create_dataset(&req)
                .options(options(idempotency_key))
                .send()
                .await
        })?;
        to_py(py, &v)
    }

    fn get_dataset(&self, py: Python<'_>, dataset_id: String) -> PyResult<Py<PyAny>> {
        let c = self.inner.clone();
        let v = call(py, async move { c.get_dataset(&dataset_id).send().await })?;
        to_py(py, &v)
    }

    #[pyo3(signature = (limit=None))]
    fn list_datasets(&self, limit: Option<u32>) -> Pager {
        Pager::new(self.inner.list_datasets(), limit)
    }

    /// Registers `digest` (a `DatasetDigest` from `hash_directory`) as a version of
    /// `dataset_id`; returns `(created, version)`.
    #[pyo3(signature = (dataset_id, digest, note=None, idempotency_key=None))]
    fn register_dataset_version(
        &self,
        py: Python<'_>,
        dataset_id: String,
        digest: &DatasetDigest,
        note: Option<String>,
        idempotency_key: Option<String>,
    ) -> PyResult<(bool, Py<PyAny>)> {
        let c = self.inner.clone();
        let m = &digest.manifest;
        let files = m
            .files()
            .iter()
            .map(|f| FileEntry {
                path: f.path.clone(),
                sha256: f.sha256.clone(),
                size: f.size,
            })
            .collect();
        let mut req = RegisterDatasetVersionRequest::new(m.digest(), files);
        if let Some(n) = note {
            req = req.with_note(n);
        }
        // Up to 100,000 files in one request (with the caller's key); larger manifests go up
        // as a manifest upload in parts (each part retried on its own).
        let one_request = req.files.len() <= datapilot::api::MAX_ONE_SHOT_FILES;
        let reg = call(py, async move {
            if one_request {
                c.register_dataset_version(&dataset_id, &req)
                    .options(options(idempotency_key))
                    .send()
                    .await
            } else {
                c.register_dataset_version_in_parts(&dataset_id, req)
                    .send()
                    .await
            }
        })?;
        Ok((reg.created, to_py(py, &reg.version)?))
    }

    fn get_dataset_version(
        &self,
        py: Python<'_>,
        dataset_id: String,
        digest: String,
    ) -> PyResult<Py<PyAny>> {
        let c = self.inner.clone();
        let v = call(py, async move {
            c.get_dataset_version(&dataset_id, &digest).send().await
        })?;
        to_py(py, &v)
    }

    #[pyo3(signature = (dataset_id, limit=None))]
    fn list_dataset_versions(&self, dataset_id: &str, limit: Option<u32>) -> Pager {
        Pager::new(self.inner.list_dataset_versions(dataset_id), limit)
    }

    #[pyo3(signature = (dataset_id, digest, gate, status, details=None, idempotency_key=None))]
    #[allow(clippy::too_many_arguments)]
    fn record_gate_result(
        &self,
        py: Python<'_>,
        dataset_id: String,
        digest: String,
        gate: String,
        status: &str,
        details: Option<BTreeMap<String, String>>,
        idempotency_key: Option<String>,
    ) -> PyResult<Py<PyAny>> {
        let outcome = match status {
            "passed" => GateOutcome::Passed,
            "failed" => GateOutcome::Failed,
            other => {
                return Err(invalid(format!(
                    "gate status must be \"passed\" or \"failed\", got {other:?}"
                )))
            }
        };
        let mut req = RecordGateResultRequest::new(gate, outcome);
        if let Some(d) = details {
            req = req.with_details(d);
        }
        let c = self.inner.clone();
        let v = call(py, async move {
            c.record_gate_result(&dataset_id, &digest, &req)
                .options(options(idempotency_key))
                .send()
                .await
        })?;
        to_py(py, &v)
    }

    #[pyo3(signature = (dataset_id, digest, limit=None))]
    fn list_gate_results(&self, dataset_id: &str, digest: &str, limit: Option<u32>) -> Pager {
        Pager::new(self.inner.list_gate_results(dataset_id, digest), limit)
    }

    // ---- runs

    /// `createRun`; returns `(run, run_token, run_token_expires_at)`.
    #[pyo3(signature = (name, inputs, git_commit, image_digest, params=None, idempotency_key=None))]
    #[allow(clippy::too_many_arguments)]
    fn create_run(
        &self,
        py: Python<'_>,
        name: String,
        inputs: Vec<(String, String)>,
        git_commit: String,
        image_digest: String,
        params: Option<BTreeMap<String, String>>,
        idempotency_key: Option<String>,
    ) -> PyResult<(Py<PyAny>, String, String)> {
        let inputs = inputs
            .into_iter()
            .map(|(d, g)| DatasetVersionRef::new(d, g))
            .collect();
        let mut req = CreateRunRequest::new(name, inputs, git_commit, image_digest);
        if let Some(p) = params {
            req = req.with_params(p);
        }
        let c = self.inner.clone();
        let created = call(py, async move {
            c.create_run(&req)
                .options(options(idempotency_key))
                .send()
                .await
        })?;
        Ok((
            to_py(py, &created.run)?,
            created.run_token.expose().to_owned(),
            created.run_token_expires_at,
        ))
    }

    fn get_run(&self, py: Python<'_>, run_id: String) -> PyResult<Py<PyAny>> {
        let c = self.inner.clone();
        let v = call(py, async move { c.get_run(&run_id).send().await })?;
        to_py(py, &v)
    }

    #[pyo3(signature = (limit=None))]
    fn list_runs(&self, limit: Option<u32>) -> Pager {
        Pager::new(self.inner.list_runs(), limit)
    }

    #[pyo3(signature = (run_id, status, outputs=None, idempotency_key=None, deadline=None))]
    fn finish_run(
        &self,
        py: Python<'_>,
        run_id: String,
        status: &str,
        outputs: Option<Vec<(String, String)>>,
        idempotency_key: Option<String>,
        deadline: Option<f64>,
    ) -> PyResult<Py<PyAny>> {
        let mut opts = options(idempotency_key);
        if let Some(d) = deadline {
            opts = opts.with_deadline(secs("deadline", d)?);
        }
        let status = match status {
            "succeeded" => RunStatus::Succeeded,
            "failed" => RunStatus::Failed,
            other => {
                return Err(invalid(format!(
                    "run status must be \"succeeded\" or \"failed\", got {other:?}"
                )))
            }
        };
        let mut req = FinishRunRequest::new(status);
        if let Some(o) = outputs {
            req = req.with_outputs(
                o.into_iter()
                    .map(|(d, g)| DatasetVersionRef::new(d, g))
                    .collect(),
            );
        }
        let c = self.inner.clone();
        let v = call(py, async move {
            c.finish_run(&run_id, &req).options(opts).send().await
        })?;
        to_py(py, &v)
    }

    #[pyo3(signature = (run_id, name=None, limit=None))]
    fn list_metrics(&self, run_id: &str, name: Option<&str>, limit: Option<u32>) -> Pager {
        Pager::new(self.inner.list_metrics(run_id, name), limit)
    }

    /// A metric logger for `run_id` (act with the run's token), its task started.
    #[pyo3(signature = (run_id, queue_points, batch_points, flush_interval, retry_max_delay, drop_when_full))]
    fn metrics_logger(
        &self,
        run_id: String,
        queue_points: usize,
        batch_points: usize,
        flush_interval: f64,
        retry_max_delay: f64,
        drop_when_full: bool,
    ) -> PyResult<MetricsLogger> {
        let config = LoggerConfig::default()
            .with_queue_points(queue_points)
            .with_batch_points(batch_points)
            .with_flush_interval(secs("flush_interval", flush_interval)?)
            .with_retry_max_delay(secs("retry_max_delay", retry_max_delay)?)
            .with_on_full(if drop_when_full {
                OnFull::Drop
            } else {
                OnFull::Block
            });
        let (logger, task) = CoreLogger::new(self.inner.clone(), run_id, config)
            .map_err(|e| Python::attach(|py| to_py_err(py, &e)))?;
        runtime().spawn(task.run());
        Ok(MetricsLogger { inner: logger })
    }

    // ---- artifacts

    /// Hashes then streams the file at `path` as artifact `name` of `run_id`; `progress` is
    /// called with `(phase, bytes, total_bytes)` on this thread as the upload goes.
    #[pyo3(signature = (run_id, name, path, progress=None, timeout=None, deadline=None, idempotency_key=None))]
    #[allow(clippy::too_many_arguments)]
    fn upload_artifact(
        &self,
        py: Python<'_>,
        run_id: String,
        name: String,
        path: PathBuf,
        progress: Option<Py<PyAny>>,
        timeout: Option<f64>,
        deadline: Option<f64>,
        idempotency_key: Option<String>,
    ) -> PyResult<Py<PyAny>> {
        let mut opts = options(idempotency_key);
        if let Some(t) = timeout {
            opts = opts.with_timeout(secs("timeout", t)?);
        }
        if let Some(d) = deadline {
            opts = opts.with_deadline(secs("deadline", d)?);
        }
        let shared = TransferProgress::new();
        let c = self.inner.clone();
        let p = shared.clone();
        let mut last = None;
        let report = |py: Python<'_>, last: &mut Option<(Phase, u64)>| -> PyResult<()> {
            let Some(cb) = &progress else { return Ok(()) };
            let (phase, bytes, total) = shared.snapshot();
            if phase == Phase::Pending || *last == Some((phase, bytes)) {
                return Ok(());
            }
            *last = Some((phase, bytes));
            let phase = match phase {
                Phase::Hashing => "hashing",
                Phase::Uploading => "uploading",
                _ => "done",
            };
            cb.call1(py, (phase, bytes, total)).map(drop)
        };
        let result = drive(
            py,
            async move { files::upload_file(&c, &run_id, &name, &path, opts, p).await },
            |py| report(py, &mut last),
        )?;
        let artifact = result.map_err(|e| to_py_err(py, &e))?;
        report(py, &mut last)?;
        to_py(py, &artifact)
    }

    #[pyo3(signature = (run_id, limit=None))]
    fn list_artifacts(&self, run_id: &str, limit: Option<u32>) -> Pager {
        Pager::new(self.inner.list_artifacts(run_id), limit)
    }

    /// The artifact's bytes, checked against the server's digest.
    fn download_artifact<'py>(
        &self,
        py: Python<'py>,
        run_id: String,
        artifact_id: String,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let c = self.inner.clone();
        let content = call(py, async move {
            c.download_artifact(&run_id, &artifact_id).send().await
        })?;
        Ok(PyBytes::new(py, &content.bytes))
    }

    // ---- lineage and evidence

    fn get_run_lineage(&self, py: Python<'_>, run_id: String) -> PyResult<Py<PyAny>> {
        let c = self.inner.clone();
        let v = call(py, async move { c.get_run_lineage(&run_id).send().await })?;
        to_py(py, &v)
    }

    fn get_dataset_version_lineage(
        &self,
        py: Python<'_>,
        dataset_id: String,
        digest: String,
    ) -> PyResult<Py<PyAny>> {
        let c = self.inner.clone();
        let v = call(py, async move {
            c.get_dataset_version_lineage(&dataset_id, &digest)
                .send()
                .await
        })?;
        to_py(py, &v)
    }

    #[pyo3(signature = (run_id, tree_size=None))]
    fn export_run_evidence<'py>(
        &self,
        py: Python<'py>,
        run_id: String,
        tree_size: Option<u64>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let c = self.inner.clone();
        let bytes = call(py, async move {
            c.export_run_evidence(&run_id, tree_size).send().await
        })?;
        Ok(PyBytes::new(py, &bytes))
    }

    #[pyo3(signature = (dataset_id, digest, tree_size=None))]
    fn export_dataset_version_evidence<'py>(
        &self,
        py: Python<'py>,
        dataset_id: String,
        digest: String,
        tree_size: Option<u64>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let c = self.inner.clone();
        let bytes = call(py, async move {
            c.export_dataset_version_evidence(&dataset_id, &digest, tree_size)
                .send()
                .await
        })?;
        Ok(PyBytes::new(py, &bytes))
    }
}

// ---- lists ------------------------------------------------------------------------------------

/// A page at a time, as a Python iterator of dicts (the next page is fetched when the current
/// one is used up).
type PageFetch = Box<
    dyn FnMut() -> std::pin::Pin<
            Box<dyn Future<Output = Result<Option<Vec<serde_json::Value>>, Error>> + Send>,
        > + Send,
>;

/// The iterator every list method returns.
#[pyclass(module = "datapilot._native")]
struct Pager {
    fetch: Arc<tokio::sync::Mutex<PageFetch>>,
    buffered: std::collections::VecDeque<serde_json::Value>,
    done: bool,
}

impl std::fmt::Debug for Pager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pager")
            .field("buffered", &self.buffered.len())
            .field("done", &self.done)
            .finish()
    }
}

impl Pager {
    fn new<T>(pager: datapilot::Pager<T>, limit: Option<u32>) -> Self
    where
        T: serde::de::DeserializeOwned + Serialize + Send + 'static,
    {
        let pager = Arc::new(tokio::sync::Mutex::new(match limit {
            Some(n) => pager.limit(n),
            None => pager,
        }));
        let fetch: PageFetch = Box::new(move || {
            let pager = pager.clone();
            Box::pin(async move {
                let mut p = pager.lock().await;
                match p.next_page().await? {
                    Some(page) => page
                        .items
                        .iter()
                        .map(serde_json::to_value)
                        .collect::<Result<Vec<_>, _>>()
                        .map(Some)
                        .map_err(|e| Error::Decode {
                            status: 200,
                            message: format!("cannot re-encode a list item: {e}"),
                            request_id: None,
                        }),
                    None => Ok(None),
                }
            })
        });
        Self {
            fetch: Arc::new(tokio::sync::Mutex::new(fetch)),
            buffered: Default::default(),
            done: false,
        }
    }
}

#[pymethods]
impl Pager {
    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__(&mut self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        // A page may be empty without being the last: keep fetching until items or the end.
        while self.buffered.is_empty() && !self.done {
            let fetch = self.fetch.clone();
            let page = call(py, async move {
                let mut f = fetch.lock().await;
                (*f)().await
            })?;
            match page {
                Some(items) => self.buffered.extend(items),
                None => self.done = true,
            }
        }
        match self.buffered.pop_front() {
            Some(v) => Ok(Some(to_py(py, &v)?)),
            None => Ok(None),
        }
    }
}

// ---- metrics ----------------------------------------------------------------------------------

/// The queue side of a run's metric logger (`datapilot.metrics_logger` in the core).
#[pyclass(frozen, module = "datapilot._native")]
#[derive(Debug)]
struct MetricsLogger {
    inner: CoreLogger,
}

fn stats_dict(py: Python<'_>, s: &LoggerStats, complete: Option<bool>) -> PyResult<Py<PyAny>> {
    let d = PyDict::new(py);
    d.set_item("logged", s.logged)?;
    d.set_item("delivered", s.delivered)?;
    d.set_item("pending", s.pending)?;
    d.set_item("dropped", s.dropped)?;
    d.set_item("abandoned", s.abandoned)?;
    d.set_item("batches", s.batches)?;
    d.set_item("retries", s.retries)?;
    d.set_item("last_error", s.last_error.as_ref().map(|e| e.to_string()))?;
    d.set_item("failed", s.failed.as_ref().map(|e| e.to_string()))?;
    if let Some(c) = complete {
        d.set_item("complete", c)?;
    }
    Ok(d.into_any().unbind())
}

fn outcome_dict(py: Python<'_>, o: &FlushOutcome) -> PyResult<Py<PyAny>> {
    stats_dict(py, &o.stats, Some(o.complete))
}

/// `MetricsDeliveryError` carrying the logger's permanent error and counters.
fn delivery_error(py: Python<'_>, e: &Error, stats: &LoggerStats) -> PyErr {
    let code = e.code().unwrap_or("metrics_failed").to_owned();
    let stats = stats_dict(py, stats, None).unwrap_or_else(|_| py.None());
    exception(
        py,
        "MetricsDeliveryError",
        &format!("metric delivery stopped: {e}"),
        &error_fields(py, e, &code),
        &[("stats", stats)],
    )
}

#[pymethods]
impl MetricsLogger {
    /// Queues `metrics` (a mapping of name to number) at `step` (`None`: the step after the
    /// last one). The fast path holds the GIL (a queue push costs less than releasing it);
    /// only a full queue waits, with the GIL released and signals checked.
    #[pyo3(signature = (metrics, step=None))]
    fn log(
        &self,
        py: Python<'_>,
        metrics: &Bound<'_, PyAny>,
        step: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let step = match step {
            Some(s) if !s.is_none() => Some(s.extract::<u64>().map_err(|_| {
                invalid(format!(
                    "step must be an integer from 0 to 2^53 - 1, got {}",
                    s.repr().map_or_else(|_| "?".into(), |r| r.to_string())
                ))
            })?),
            _ => None,
        };
        let point = |k: Bound<'_, PyAny>, v: Bound<'_, PyAny>| -> PyResult<(String, f64)> {
            let name: String = k
                .extract()
                .map_err(|_| invalid("metric names must be strings"))?;
            let value: f64 = v.extract().map_err(|_| {
                invalid(format!("metric {name:?}: the value must be a real number"))
            })?;
            Ok((name, value))
        };
        let mut points = Vec::new();
        if let Ok(dict) = metrics.cast::<PyDict>() {
            points.reserve(dict.len());
            for (k, v) in dict.iter() {
                points.push(point(k, v)?);
            }
        } else {
            let items = metrics
                .call_method0("items")
                .map_err(|_| invalid("metrics must be a mapping of name to number"))?;
            for item in items.try_iter()? {
                let (k, v): (Bound<'_, PyAny>, Bound<'_, PyAny>) = item?.extract()?;
                points.push(point(k, v)?);
            }
        }
        loop {
            match self.inner.try_log(step, points) {
                Ok(()) => return Ok(()),
                Err(LogError::Full(back)) => {
                    points = back;
                    let n = points.len();
                    let logger = &self.inner;
                    py.detach(|| logger.wait_for_space(n, SIGNAL_POLL));
                    py.check_signals()?;
                }
                Err(LogError::Invalid(e)) => return Err(to_py_err(py, &e)),
                Err(LogError::Failed(e)) => {
                    return Err(delivery_error(py, &e, &self.inner.stats()))
                }
                Err(other) => {
                    return Err(exception(
                        py,
                        "MetricsDeliveryError",
                        &other.to_string(),
                        &[(
                            "code",
                            PyString::new(py, "logger_closed").into_any().unbind(),
                        )],
                        &[],
                    ))
                }
            }
        }
    }

    /// Sends everything queued now and waits up to `timeout` seconds for the server;
    /// returns the counters with `complete`. Raises `MetricsDeliveryError` if the logger
    /// stopped on a permanent error.
    fn flush(&self, py: Python<'_>, timeout: f64) -> PyResult<Py<PyAny>> {
        let limit = secs("timeout", timeout)?;
        let started = std::time::Instant::now();
        loop {
            let left = limit.saturating_sub(started.elapsed());
            let logger = &self.inner;
            let o = py.detach(|| logger.flush(left.min(SIGNAL_POLL)));
            if let Some(e) = &o.stats.failed {
                return Err(delivery_error(py, e, &o.stats));
            }
            if o.complete || left <= SIGNAL_POLL {
                return outcome_dict(py, &o);
            }
            py.check_signals()?;
        }
    }

    /// Stops accepting points, sends what is queued within `timeout` seconds and stops the
    /// background task; returns the counters with `complete`.
    fn close(&self, py: Python<'_>, timeout: f64) -> PyResult<Py<PyAny>> {
        let limit = secs("timeout", timeout)?;
        let logger = &self.inner;
        let o = py.detach(|| logger.close(limit));
        outcome_dict(py, &o)
    }

    /// The counters now.
    fn stats(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        stats_dict(py, &self.inner.stats(), None)
    }
}

// ---- hashing and verification -----------------------------------------------------------------

/// A directory's DPM-1 digest and manifest, kept in Rust (a million-file manifest is not
/// copied into Python objects unless `files()` asks for it).
#[pyclass(frozen, module = "datapilot._native")]
#[derive(Debug)]
struct DatasetDigest {
    manifest: Manifest,
    skipped: Vec<(String, &'static str)>,
    excluded: u64,
}

#[pymethods]
impl DatasetDigest {
    /// `sha256:<hex>`.
    #[getter]
    fn digest(&self) -> &str {
        self.manifest.digest()
    }

    #[getter]
    fn file_count(&self) -> usize {
        self.manifest.len()
    }

    #[getter]
    fn total_bytes(&self) -> u64 {
        self.manifest.total_bytes()
    }

    /// Entries left out: `(path, "symlink" | "not_regular")`, sorted by path.
    #[getter]
    fn skipped(&self) -> Vec<(String, &'static str)> {
        self.skipped.clone()
    }

    /// Files and directories the ignore rules left out (`.git/`, `.datapilotignore`).
    #[getter]
    fn excluded(&self) -> u64 {
        self.excluded
    }

    /// The manifest as `[{"path", "sha256", "size"}]`, sorted by path bytes.
    fn files(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        to_py(py, self.manifest.files())
    }

    fn __repr__(&self) -> String {
        format!(
            "DatasetDigest(digest={:?}, file_count={}, total_bytes={})",
            self.manifest.digest(),
            self.manifest.len(),
            self.manifest.total_bytes()
        )
    }
}

/// The DPM-1 digest of the directory `path` (rules: `datapilot::files`). Hashing runs on
/// `threads` threads (0: automatic) with the GIL released; `progress(bytes_hashed,
/// total_bytes, files_hashed, total_files)` is called on this thread every 100 ms.
#[pyfunction]
#[pyo3(signature = (path, symlinks="refuse", threads=0, progress=None, ignore=true))]
fn hash_directory(
    py: Python<'_>,
    path: PathBuf,
    symlinks: &str,
    threads: usize,
    progress: Option<Py<PyAny>>,
    ignore: bool,
) -> PyResult<DatasetDigest> {
    let policy = match symlinks {
        "refuse" => SymlinkPolicy::Refuse,
        "follow" => SymlinkPolicy::Follow,
        "follow-outside-root" => SymlinkPolicy::FollowOutsideRoot,
        "skip" => SymlinkPolicy::Skip,
        other => {
            return Err(invalid(format!(
                "symlinks must be \"refuse\", \"follow\", \"follow-outside-root\" or \"skip\", got {other:?}"
            )))
        }
    };
    let options = DirOptions::default()
        .with_symlinks(policy)
        .with_ignore(ignore)
        .with_threads(threads);
    let result = py.detach(|| {
        files::hash_directory(&path, &options, |p| {
            // Signals and the callback need the interpreter: attach briefly, on this thread.
            Python::attach(|py| {
                let outcome = py.check_signals().and_then(|()| match &progress {
                    Some(cb) => cb
                        .call1(
                            py,
                            (p.bytes_hashed, p.total_bytes, p.files_hashed, p.total_files),
                        )
                        .map(drop),
                    None => Ok(()),
                });
                match outcome {
                    Ok(()) => ControlFlow::Continue(()),
                    Err(e) => {
                        // Kept pending for `dir_err` to raise once hashing has stopped.
                        e.restore(py);
                        ControlFlow::Break(())
                    }
                }
            })
        })
    });
    let digest = result.map_err(|e| dir_err(py, e))?;
    Ok(DatasetDigest {
        excluded: digest.excluded,
        manifest: digest.manifest,
        skipped: digest
            .skipped
            .into_iter()
            .map(|s| {
                let reason = match s.reason {
                    files::SkipReason::Symlink => "symlink",
                    _ => "not_regular",
                };
                (s.path, reason)
            })
            .collect(),
    })
}

/// The pinned log keys: at least one, each `<origin>+<hex id>+<base64 key>`.
fn log_keys(trusted_keys: &[String]) -> PyResult<Vec<datapilot::checkpoint::Verifier>> {
    if trusted_keys.is_empty() {
        return Err(invalid(
            "trusted_keys must name at least one verifier key ('<origin>+<hex id>+<base64 key>', \
             pinned out of band; Client.verifier_keys() only helps bootstrap the pin)",
        ));
    }
    trusted_keys
        .iter()
        .map(|k| {
            k.parse::<datapilot::checkpoint::Verifier>()
                .map_err(|e| invalid(format!("trusted key {k:?}: {e}")))
        })
        .collect()
}

/// A witness policy: the trusted witnesses' C2SP cosignature/v1 vkeys and how many of them
/// must have cosigned (default: all).
fn witness_policy(
    witnesses: &[String],
    quorum: Option<usize>,
) -> PyResult<(Vec<evidence::WitnessVerifier>, usize)> {
    let parsed = witnesses
        .iter()
        .map(|w| {
            w.parse::<evidence::WitnessVerifier>()
                .map_err(|e| invalid(format!("witness {w:?}: {e}")))
        })
        .collect::<PyResult<Vec<_>>>()?;
    let k = match quorum {
        None => parsed.len(),
        Some(k) if k <= parsed.len() && (k > 0 || parsed.is_empty()) => k,
        Some(k) => {
            return Err(invalid(format!(
                "witness_quorum {k} must be between 1 and the number of witnesses ({})",
                parsed.len()
            )))
        }
    };
    if parsed.is_empty() && quorum.is_some() {
        return Err(invalid(
            "witness_quorum needs witnesses: the trusted witness keys",
        ));
    }
    Ok((parsed, k))
}

/// A bundle given as bytes or as a path to the zip (read with the archive size limit).
fn bundle_bytes(py: Python<'_>, bundle: &Bound<'_, PyAny>) -> PyResult<Vec<u8>> {
    if let Ok(b) = bundle.cast::<PyBytes>() {
        return Ok(b.as_bytes().to_vec());
    }
    let path: PathBuf = bundle
        .extract()
        .map_err(|_| invalid("bundle must be bytes or a path"))?;
    py.detach(|| files::read_bundle_file(&path, DEFAULT_MAX_ARCHIVE_BYTES))
        .map_err(|e| dir_err(py, e))
}

/// Verifies an evidence bundle offline (`bundle`: the zip's bytes, or a path to it) against
/// the pinned verifier keys; returns the report `{ok, checks, summary}` whatever the outcome.
/// With `witnesses`, also the `witnessed` check: `witnessed_checkpoint` (required then) must be
/// cosigned by `witness_quorum` of them and extend the bundle's tree (`witness_proof`: the
/// consistency proof from the bundle's size to its size, empty when they are equal).
#[pyfunction]
#[pyo3(signature = (bundle, trusted_keys, witnesses=Vec::new(), witness_quorum=None, witnessed_checkpoint=None, witness_proof=Vec::new()))]
fn verify_evidence_bundle(
    py: Python<'_>,
    bundle: &Bound<'_, PyAny>,
    trusted_keys: Vec<String>,
    witnesses: Vec<String>,
    witness_quorum: Option<usize>,
    witnessed_checkpoint: Option<String>,
    witness_proof: Vec<String>,
) -> PyResult<Py<PyAny>> {
    let keys = log_keys(&trusted_keys)?;
    let (witnesses, quorum) = witness_policy(&witnesses, witness_quorum)?;
    let witnessed = match (witnesses.is_empty(), witnessed_checkpoint) {
        (true, None) => None,
        (false, Some(note)) => {
            Some(evidence::WitnessedInput::new(note, witness_proof, witnesses).with_quorum(quorum))
        }
        (false, None) => {
            return Err(invalid(
                "witnesses need witnessed_checkpoint: a checkpoint note with the witnesses' \
                 cosignatures at the bundle's size or later (the server's current one), and \
                 witness_proof from the bundle's size to it; or use \
                 Client.verify_evidence_bundle, which fetches both",
            ))
        }
        (true, Some(_)) => {
            return Err(invalid(
                "witnessed_checkpoint needs witnesses: the trusted witness keys whose \
                 cosignatures it must carry",
            ))
        }
    };
    let bytes = bundle_bytes(py, bundle)?;
    let report = py.detach(|| {
        evidence::online::verify_bundle_parts(&bytes, &keys, None, Vec::new(), witnessed)
    });
    to_py(py, &report)
}

/// A checkpoint note whose signature verified.
#[derive(Serialize)]
struct VerifiedCheckpoint {
    origin: String,
    tree_size: u64,
    root_hash: String,
    cosigned_by: Vec<String>,
}

/// Opens a signed checkpoint note with the pinned log keys; with `witnesses`, it must also carry
/// cosignatures of `witness_quorum` of them (default: all). Returns `{origin, tree_size,
/// root_hash, cosigned_by}`; raises `VerificationError` otherwise.
#[pyfunction]
#[pyo3(signature = (note, trusted_keys, witnesses=Vec::new(), witness_quorum=None))]
fn verify_checkpoint(
    py: Python<'_>,
    note: &str,
    trusted_keys: Vec<String>,
    witnesses: Vec<String>,
    witness_quorum: Option<usize>,
) -> PyResult<Py<PyAny>> {
    let keys = log_keys(&trusted_keys)?;
    let (witnesses, quorum) = witness_policy(&witnesses, witness_quorum)?;
    let w = datapilot::witness::verify_witnessed(note, &keys, &witnesses, quorum)
        .map_err(|e| verification_failed(py, &format!("checkpoint refused: {e}")))?;
    to_py(
        py,
        &VerifiedCheckpoint {
            root_hash: w.checkpoint.root_hash_base64(),
            origin: w.checkpoint.origin,
            tree_size: w.checkpoint.tree_size,
            cosigned_by: w.cosigned_by.into_iter().map(|(n, _)| n).collect(),
        },
    )
}

/// The SDK version (the crate's).
#[pyfunction]
fn sdk_version() -> &'static str {
    env!("CARGO_PKG_VERSION")
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Client>()?;
    m.add_class::<Pager>()?;
    m.add_class::<MetricsLogger>()?;
    m.add_class::<DatasetDigest>()?;
    m.add_function(wrap_pyfunction!(hash_directory, m)?)?;
    m.add_function(wrap_pyfunction!(verify_evidence_bundle, m)?)?;
    m.add_function(wrap_pyfunction!(verify_checkpoint, m)?)?;
    m.add_function(wrap_pyfunction!(sdk_version, m)?)?;
    Ok(())
}
