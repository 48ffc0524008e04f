"""Animus DataPilot SDK for Python.

Register datasets, start runs, log metrics and artifacts from a training loop, and verify
evidence bundles offline, with the same Rust core as the npm package and the CLI: the same
DPM-1 ids, retries, idempotency keys and verification. See docs/sdk-python.md.

This module holds only what is Python's own: environment variables, context managers, the
``atexit`` and SIGTERM hooks, typed results. Everything else is the Rust core, reached through
``datapilot._native``.
"""

from __future__ import annotations

import atexit
import os
import signal
import sys
import threading
import warnings
from types import FrameType, TracebackType
from typing import (
    Any,
    Callable,
    Dict,
    Iterator,
    List,
    Literal,
    Mapping,
    Optional,
    Sequence,
    Tuple,
    Type,
    TypedDict,
    Union,
    cast,
)

from . import _native
from .errors import (
    ApiError,
    DataPilotError,
    DeadlineError,
    DecodeError,
    InvalidArgumentError,
    LocalFileError,
    MetricsDeliveryError,
    Terminated,
    TransportError,
    VerificationError,
)

__all__ = [
    "Client",
    "Run",
    "DatasetDigest",
    "hash_directory",
    "verify_evidence_bundle",
    "verify_checkpoint",
    "DataPilotError",
    "ApiError",
    "TransportError",
    "DeadlineError",
    "InvalidArgumentError",
    "DecodeError",
    "VerificationError",
    "LocalFileError",
    "MetricsDeliveryError",
    "Terminated",
    "DEFAULT_FLUSH_TIMEOUT",
]

__version__: str = _native.sdk_version()

PathLike = Union[str, "os.PathLike[str]"]
DatasetDigest = _native.DatasetDigest

#: Seconds a run's metrics may take to reach the server when it finishes, at exit and on
#: SIGTERM (``DATAPILOT_FLUSH_TIMEOUT`` overrides it). Kubernetes allows 30 s between SIGTERM
#: and SIGKILL by default; this leaves time to finish the run after the flush.
DEFAULT_FLUSH_TIMEOUT = 10.0


# ---- typed results (the contract's JSON, see openapi/datapilot.v1.yaml) -------------------------


class Dataset(TypedDict):
    id: str
    name: str
    description: Optional[str]
    created_at: str
    created_by: str


class DatasetVersion(TypedDict):
    dataset_id: str
    digest: str
    file_count: int
    total_bytes: int
    note: Optional[str]
    created_at: str
    created_by: str
    gate_status: Literal["pending", "passed", "failed"]
    audit_seq: int


class RegisteredVersion(TypedDict):
    """What :meth:`Client.register_dataset` returns."""

    dataset_id: str
    #: False when this digest was registered before (registration is idempotent).
    created: bool
    version: DatasetVersion
    #: Entries left out of the digest: ``(path, "symlink" | "not_regular")``.
    skipped: List[Tuple[str, str]]


class GateResult(TypedDict):
    id: str
    dataset_id: str
    digest: str
    gate: str
    status: Literal["passed", "failed"]
    details: Dict[str, str]
    recorded_at: str
    recorded_by: str
    audit_seq: int


class VersionRef(TypedDict):
    dataset_id: str
    digest: str


class RunInfo(TypedDict):
    id: str
    name: str
    status: Literal["running", "succeeded", "failed"]
    inputs: List[VersionRef]
    git_commit: str
    image_digest: str
    params: Dict[str, str]
    outputs: List[VersionRef]
    created_at: str
    created_by: str
    finished_at: Optional[str]
    audit_seq: int


class MetricValue(TypedDict):
    name: str
    step: int
    value: float
    # As sent; None when the point was sent without a time (the batch digest covers exactly this).
    time: Optional[str]
    batch: int
    # When the server received the batch.
    received_at: str


class Artifact(TypedDict):
    id: str
    run_id: str
    name: str
    sha256: str
    size: int
    created_at: str
    created_by: str
    audit_seq: int


class LineageNode(TypedDict):
    id: str
    kind: str
    label: str


# Functional syntax: "from" is a Python keyword.
LineageEdge = TypedDict("LineageEdge", {"from": str, "to": str, "kind": str, "seq": int})


class Lineage(TypedDict):
    nodes: List[LineageNode]
    edges: List[LineageEdge]


class Check(TypedDict):
    name: str
    passed: bool
    reason: str


class BundleSummary(TypedDict):
    scope: Optional[str]
    origin: Optional[str]
    tree_size: Optional[int]
    root_hash: Optional[str]
    exported_at: Optional[str]
    exporter: Optional[str]
    events: Optional[int]
    checkpoint: Optional[str]


class VerificationReport(TypedDict):
    ok: bool
    checks: List[Check]
    summary: BundleSummary


class VerifiedCheckpoint(TypedDict):
    origin: str
    tree_size: int
    #: Standard base64, as the note spells it.
    root_hash: str
    #: The trusted witnesses whose cosignatures verified (empty without a witness policy).
    cosigned_by: List[str]


class MetricStats(TypedDict, total=False):
    """Counters of a run's metric logger (points unless said otherwise)."""

    logged: int
    delivered: int
    pending: int
    dropped: int
    abandoned: int
    batches: int
    retries: int
    last_error: Optional[str]
    failed: Optional[str]
    #: Only from flush/close: every point logged before the call reached the server.
    complete: bool


VersionLike = Union[DatasetVersion, VersionRef, Tuple[str, str]]


def _ref(v: VersionLike) -> Tuple[str, str]:
    if isinstance(v, tuple):
        return (v[0], v[1])
    return (v["dataset_id"], v["digest"])


def _env(name: str) -> Optional[str]:
    value = os.environ.get(name, "").strip()
    return value or None


def _flush_timeout() -> float:
    raw = _env("DATAPILOT_FLUSH_TIMEOUT")
    if raw is None:
        return DEFAULT_FLUSH_TIMEOUT
    try:
        value = float(raw)
    except ValueError:
        raise InvalidArgumentError(
            f"DATAPILOT_FLUSH_TIMEOUT must be a number of seconds, got {raw!r}", code="invalid_request"
        ) from None
    if not value > 0:
        raise InvalidArgumentError("DATAPILOT_FLUSH_TIMEOUT must be positive", code="invalid_request")
    return value


# ---- free functions --------------------------------------------------------------------------


def hash_directory(
    path: PathLike,
    *,
    symlinks: Literal["refuse", "follow", "follow-outside-root", "skip"] = "refuse",
    ignore: bool = True,
    threads: int = 0,
    progress: Optional[Callable[[int, int, int, int], object]] = None,
) -> DatasetDigest:
    """The DPM-1 digest of a directory, the CLI's id (docs/sdk-python.md, docs/formats.md).

    Every regular file below ``path`` is hashed, hidden ones included, except ``.git/`` and
    what the root ``.datapilotignore`` ignores (gitignore syntax; ``ignore=False`` hashes
    everything). Symbolic links: ``"refuse"`` (the default, as the CLI) raises
    :class:`LocalFileError` (``code == "symlink_refused"``) naming the first; ``"follow"``
    hashes what links inside the directory point to, ``"follow-outside-root"`` also links
    that leave it (Hugging Face snapshots, DVC caches); ``"skip"`` leaves them out and lists
    them in ``.skipped``, as ``find -type f`` does. The GIL is released while hashing;
    ``progress(bytes_hashed, total_bytes, files_hashed, total_files)`` is called every 100 ms.
    """
    return _native.hash_directory(path, symlinks, threads, progress, ignore)


def _keys(trusted_keys: Sequence[str], what: str = "trusted_keys") -> List[str]:
    if isinstance(trusted_keys, str):
        raise InvalidArgumentError(
            f"{what} must be a list of key strings, not one string", code="invalid_request"
        )
    return list(trusted_keys)


def _checked(report: VerificationReport) -> VerificationReport:
    """The report, or :class:`VerificationError` (with ``.report``) naming the first failed check."""
    if not report["ok"]:
        failed = next(c for c in report["checks"] if not c["passed"])
        err = VerificationError(
            f"evidence bundle refused: {failed['name']}: {failed['reason']}",
            code="verification_failed",
            sent="no",
        )
        err.report = cast(Dict[str, object], report)
        raise err
    return report


def verify_evidence_bundle(
    bundle: Union[bytes, PathLike],
    *,
    trusted_keys: Sequence[str],
    witnesses: Sequence[str] = (),
    witness_quorum: Optional[int] = None,
    witnessed_checkpoint: Optional[str] = None,
    witness_proof: Sequence[str] = (),
) -> VerificationReport:
    """Verifies an evidence bundle (its bytes or a path to the zip) offline against the
    verifier keys you pinned, and returns the report of every check.

    With ``witnesses`` (C2SP cosignature/v1 vkeys of witnesses you trust), the bundle must also
    be part of a history they cosigned: ``witnessed_checkpoint`` (a checkpoint note of the same
    log at the bundle's size or later, with their cosignature lines) must carry cosignatures of
    ``witness_quorum`` of them (default: all), and ``witness_proof`` is the consistency proof
    from the bundle's size to the note's (empty when equal). :meth:`Client.verify_evidence_bundle`
    fetches both from the server.

    Raises :class:`VerificationError` (with ``.report``) when a check fails, so a tampered
    bundle cannot be mistaken for a good one by a caller that ignores the result.
    """
    report = _native.verify_evidence_bundle(
        bundle,
        _keys(trusted_keys),
        _keys(witnesses, "witnesses"),
        witness_quorum,
        witnessed_checkpoint,
        _keys(witness_proof, "witness_proof"),
    )
    return _checked(cast(VerificationReport, report))


def verify_checkpoint(
    note: str,
    *,
    trusted_keys: Sequence[str],
    witnesses: Sequence[str] = (),
    witness_quorum: Optional[int] = None,
) -> VerifiedCheckpoint:
    """Opens a signed checkpoint note (``Client.checkpoint()``) with the pinned log keys; with
    ``witnesses``, it must also carry valid cosignatures of ``witness_quorum`` of them (default:
    all). Raises :class:`VerificationError` otherwise."""
    return cast(
        VerifiedCheckpoint,
        _native.verify_checkpoint(note, _keys(trusted_keys), _keys(witnesses, "witnesses"), witness_quorum),
    )


# ---- client ----------------------------------------------------------------------------------


class Client:
    """A DataPilot client.

    ``url`` and ``token`` default to ``DATAPILOT_URL`` and ``DATAPILOT_TOKEN`` (else
    ``DATAPILOT_RUN_TOKEN``, so a container started by the CLI's ``run-start`` works with no
    arguments). ``timeout`` is per attempt, ``deadline`` per call (all attempts and waits), in
    seconds. Every call releases the GIL while it waits and raises a
    :class:`~datapilot.errors.DataPilotError` subclass on failure.
    """

    def __init__(
        self,
        url: Optional[str] = None,
        token: Optional[str] = None,
        *,
        timeout: float = 30.0,
        deadline: Optional[float] = None,
    ) -> None:
        url = url or _env("DATAPILOT_URL")
        if url is None:
            raise InvalidArgumentError(
                "no server URL: pass Client(url=...) or set DATAPILOT_URL", code="invalid_request"
            )
        token = token or _env("DATAPILOT_TOKEN") or _env("DATAPILOT_RUN_TOKEN")
        self._native = _native.Client(url, token, timeout, deadline)

    @classmethod
    def _wrap(cls, native: _native.Client) -> Client:
        c = cls.__new__(cls)
        c._native = native
        return c

    @property
    def url(self) -> str:
        return self._native.url

    def with_token(self, token: str) -> Client:
        """A client acting with ``token`` (sharing connections and the retry budget)."""
        return Client._wrap(self._native.with_token(token))

    def checkpoint(self) -> str:
        """The server's current signed checkpoint note (with the cosignatures of its witnesses).
        Check it with :func:`verify_checkpoint` and your pinned keys before trusting it."""
        return self._native.get_checkpoint()

    def verify_evidence_bundle(
        self,
        bundle: Union[bytes, PathLike],
        *,
        trusted_keys: Sequence[str],
        last_checkpoint: Optional[str] = None,
        witnesses: Sequence[str] = (),
        witness_quorum: Optional[int] = None,
        witnessed_checkpoint: Optional[str] = None,
    ) -> VerificationReport:
        """Verifies a bundle with this server's help; nothing it sends is trusted.

        ``last_checkpoint`` (a note you kept from earlier) adds the ``consistency`` check: the
        bundle's tree must extend it (the proof is fetched), which catches a rollback or fork.
        ``witnesses`` adds the ``witnessed`` check against the server's current checkpoint (or
        ``witnessed_checkpoint``): cosigned by ``witness_quorum`` of them (default: all) and
        extending the bundle's tree, which catches a split view. Raises
        :class:`VerificationError` (with ``.report``) when a check fails.
        """
        report = self._native.verify_evidence_bundle(
            bundle,
            _keys(trusted_keys),
            last_checkpoint,
            _keys(witnesses, "witnesses"),
            witness_quorum,
            witnessed_checkpoint,
        )
        return _checked(cast(VerificationReport, report))

    def verifier_keys(self) -> List[str]:
        """The server's ledger verifier keys. Only for bootstrapping a pin: verification must
        use keys obtained out of band, not ones the server being checked hands out."""
        return self._native.list_verifier_keys()

    # ---- datasets

    def list_datasets(self, *, page_size: Optional[int] = None) -> Iterator[Dataset]:
        return cast(Iterator[Dataset], iter(self._native.list_datasets(page_size)))

    def find_dataset(self, name: str) -> Optional[Dataset]:
        """The dataset called ``name``, if any."""
        return next((d for d in self.list_datasets(page_size=500) if d["name"] == name), None)

    def create_dataset(self, name: str, *, description: Optional[str] = None) -> Dataset:
        return cast(Dataset, self._native.create_dataset(name, description))

    def dataset(self, name: str) -> Dataset:
        """The dataset called ``name``, created if missing (as the CLI's ``register``)."""
        found = self.find_dataset(name)
        if found is not None:
            return found
        try:
            return self.create_dataset(name)
        except ApiError as e:
            # Someone else created it in between.
            if e.code == "already_exists":
                again = self.find_dataset(name)
                if again is not None:
                    return again
            raise

    def register_dataset(
        self,
        path: PathLike,
        *,
        dataset: str,
        note: Optional[str] = None,
        symlinks: Literal["refuse", "follow", "follow-outside-root", "skip"] = "refuse",
        ignore: bool = True,
        progress: Optional[Callable[[int, int, int, int], object]] = None,
    ) -> RegisteredVersion:
        """Hashes the directory ``path`` (:func:`hash_directory`) and registers it as a version
        of the dataset named ``dataset`` (created if missing). Registering the same content
        again returns the existing version with ``created == False``."""
        digest = hash_directory(path, symlinks=symlinks, ignore=ignore, progress=progress)
        ds = self.dataset(dataset)
        created, version = self._native.register_dataset_version(ds["id"], digest, note)
        return {
            "dataset_id": ds["id"],
            "created": created,
            "version": cast(DatasetVersion, version),
            "skipped": digest.skipped,
        }

    def get_dataset_version(self, dataset_id: str, digest: str) -> DatasetVersion:
        return cast(DatasetVersion, self._native.get_dataset_version(dataset_id, digest))

    def list_dataset_versions(
        self, dataset_id: str, *, page_size: Optional[int] = None
    ) -> Iterator[DatasetVersion]:
        return cast(Iterator[DatasetVersion], iter(self._native.list_dataset_versions(dataset_id, page_size)))

    def record_gate(
        self,
        version: VersionLike,
        *,
        gate: str,
        status: Literal["passed", "failed"],
        details: Optional[Mapping[str, str]] = None,
    ) -> GateResult:
        """Records a quality gate result of a dataset version."""
        dataset_id, digest = _ref(version)
        return cast(GateResult, self._native.record_gate_result(dataset_id, digest, gate, status, details))

    def list_gate_results(
        self, version: VersionLike, *, page_size: Optional[int] = None
    ) -> Iterator[GateResult]:
        dataset_id, digest = _ref(version)
        return cast(Iterator[GateResult], iter(self._native.list_gate_results(dataset_id, digest, page_size)))

    # ---- runs

    def start_run(
        self,
        name: str,
        *,
        inputs: Sequence[VersionLike],
        git_commit: str,
        image_digest: str,
        params: Optional[Mapping[str, str]] = None,
        idempotency_key: Optional[str] = None,
        **metrics: Any,
    ) -> Run:
        """Creates a run over gated ``inputs`` and returns it ready for metrics and artifacts.

        Use it as a context manager: ``with client.start_run(...) as run:`` finishes the run as
        ``succeeded`` when the block ends normally and as ``failed`` on an exception (SIGTERM
        included, see :class:`Terminated`). Metric logger settings (``queue_points``,
        ``batch_points``, ``flush_interval``, ``retry_max_delay``, ``when_full``) are passed
        on to :class:`Run`.
        """
        info, token, expires = self._native.create_run(
            name, [_ref(v) for v in inputs], git_commit, image_digest, params, idempotency_key
        )
        run_info = cast(RunInfo, info)
        return Run(
            self.with_token(token),
            run_info["id"],
            token=token,
            info=run_info,
            token_expires_at=expires,
            owned=True,
            **metrics,
        )

    def resume_run(
        self, run_id: Optional[str] = None, run_token: Optional[str] = None, **metrics: Any
    ) -> Run:
        """The run a job step started earlier, e.g. with the CLI's ``run-start``: ``run_id``
        and ``run_token`` default to ``DATAPILOT_RUN_ID`` and ``DATAPILOT_RUN_TOKEN``. Leaving
        its ``with`` block flushes its metrics but does not finish it (whoever started it
        does); call :meth:`Run.finish` to finish it here."""
        run_id = run_id or _env("DATAPILOT_RUN_ID")
        run_token = run_token or _env("DATAPILOT_RUN_TOKEN")
        if run_id is None or run_token is None:
            raise InvalidArgumentError(
                "no run to resume: pass run_id and run_token or set DATAPILOT_RUN_ID and DATAPILOT_RUN_TOKEN",
                code="invalid_request",
            )
        return Run(self.with_token(run_token), run_id, token=run_token, owned=False, **metrics)

    def get_run(self, run_id: str) -> RunInfo:
        return cast(RunInfo, self._native.get_run(run_id))

    def list_runs(self, *, page_size: Optional[int] = None) -> Iterator[RunInfo]:
        return cast(Iterator[RunInfo], iter(self._native.list_runs(page_size)))

    def list_metrics(
        self, run_id: str, *, name: Optional[str] = None, page_size: Optional[int] = None
    ) -> Iterator[MetricValue]:
        return cast(Iterator[MetricValue], iter(self._native.list_metrics(run_id, name, page_size)))

    def list_artifacts(self, run_id: str, *, page_size: Optional[int] = None) -> Iterator[Artifact]:
        return cast(Iterator[Artifact], iter(self._native.list_artifacts(run_id, page_size)))

    def download_artifact(self, run_id: str, artifact_id: str) -> bytes:
        """The artifact's bytes, checked against the digest the server announces."""
        return self._native.download_artifact(run_id, artifact_id)

    # ---- lineage and evidence

    def run_lineage(self, run_id: str) -> Lineage:
        return cast(Lineage, self._native.get_run_lineage(run_id))

    def dataset_version_lineage(self, version: VersionLike) -> Lineage:
        dataset_id, digest = _ref(version)
        return cast(Lineage, self._native.get_dataset_version_lineage(dataset_id, digest))

    def export_run_evidence(
        self, run_id: str, path: Optional[PathLike] = None, *, tree_size: Optional[int] = None
    ) -> bytes:
        """The run's evidence bundle (zip bytes); also written to ``path`` when given."""
        data = self._native.export_run_evidence(run_id, tree_size)
        if path is not None:
            with open(path, "wb") as f:
                f.write(data)
        return data

    def export_dataset_version_evidence(
        self, version: VersionLike, path: Optional[PathLike] = None, *, tree_size: Optional[int] = None
    ) -> bytes:
        dataset_id, digest = _ref(version)
        data = self._native.export_dataset_version_evidence(dataset_id, digest, tree_size)
        if path is not None:
            with open(path, "wb") as f:
                f.write(data)
        return data


# ---- runs ------------------------------------------------------------------------------------


class Run:
    """A run, acting with its run token: metrics, artifacts, finish.

    Metrics are queued on the caller's thread and sent in batches by a background thread (see
    docs/sdk-python.md, "Metrics"): ``queue_points`` bounds the queue (default 100,000),
    ``batch_points`` the batch (default and maximum 10,000), ``flush_interval`` the time a point
    waits (default 1 s), ``retry_max_delay`` the pause between re-sends while the server is
    away (default 10 s), and ``when_full`` what a full queue does: ``"block"`` (default: the
    loop waits, nothing is lost) or ``"drop"`` (new points are dropped and counted).
    """

    def __init__(
        self,
        client: Client,
        run_id: str,
        *,
        token: str,
        info: Optional[RunInfo] = None,
        token_expires_at: Optional[str] = None,
        owned: bool = False,
        queue_points: int = 100_000,
        batch_points: int = 10_000,
        flush_interval: float = 1.0,
        retry_max_delay: float = 10.0,
        when_full: Literal["block", "drop"] = "block",
    ) -> None:
        if when_full not in ("block", "drop"):
            raise InvalidArgumentError(f'when_full must be "block" or "drop", got {when_full!r}', code="invalid_request")
        self.client = client
        self.id = run_id
        self.token = token
        self.info = info
        self.token_expires_at = token_expires_at
        self._owned = owned
        self._finished = False
        self._logger = client._native.metrics_logger(
            run_id, queue_points, batch_points, flush_interval, retry_max_delay, when_full == "drop"
        )
        # The hot path: one attribute lookup and one call into Rust per log_metrics.
        self._log = self._logger.log
        _track(self)

    def __repr__(self) -> str:
        return f"Run(id={self.id!r})"

    def log_metrics(self, metrics: Mapping[str, float], step: Optional[int] = None) -> None:
        """Queues one point per ``name: value`` at ``step`` (default: the step after the last
        call's, 0 at first) and returns at once; a background thread sends them. Raises
        :class:`InvalidArgumentError` for a bad name or a non-finite value, and
        :class:`MetricsDeliveryError` once delivery stopped on a permanent error."""
        self._log(metrics, step)

    def flush(self, timeout: float = 30.0) -> MetricStats:
        """Sends everything logged so far and waits up to ``timeout`` seconds for the server.
        Returns the counters (``complete`` tells whether everything arrived; if not, the points
        stay queued and keep being retried)."""
        return cast(MetricStats, self._logger.flush(timeout))

    @property
    def metrics_stats(self) -> MetricStats:
        return cast(MetricStats, self._logger.stats())

    def log_artifact(
        self,
        path: PathLike,
        name: Optional[str] = None,
        *,
        progress: Optional[Callable[[str, int, int], object]] = None,
        timeout: Optional[float] = None,
        deadline: Optional[float] = None,
    ) -> Artifact:
        """Uploads the file at ``path`` as an artifact (default name: its file name), hashed
        then streamed so memory stays flat. ``progress(phase, bytes, total_bytes)`` is called
        about every 100 ms with phase ``"hashing"``, ``"uploading"`` then ``"done"``.
        An upload is a transfer: it has no deadline unless ``deadline`` (seconds, the whole
        upload) is given, ``timeout`` caps each attempt only if given, and an attempt is given
        up after 60 s without progress (the SDK's stall timeout), so a large file on a slow
        link needs no settings."""
        artifact_name = name if name is not None else os.path.basename(os.fspath(path))
        return cast(
            Artifact,
            self.client._native.upload_artifact(self.id, artifact_name, path, progress, timeout, deadline),
        )

    def list_metrics(self, *, name: Optional[str] = None) -> Iterator[MetricValue]:
        return self.client.list_metrics(self.id, name=name)

    def list_artifacts(self) -> Iterator[Artifact]:
        return self.client.list_artifacts(self.id)

    def refresh(self) -> RunInfo:
        self.info = self.client.get_run(self.id)
        return self.info

    def finish(
        self,
        status: Literal["succeeded", "failed"] = "succeeded",
        *,
        outputs: Optional[Sequence[VersionLike]] = None,
        flush_timeout: Optional[float] = None,
    ) -> RunInfo:
        """Delivers the queued metrics, then seals the run with ``status``.

        If metrics cannot be delivered within ``flush_timeout`` (default
        :data:`DEFAULT_FLUSH_TIMEOUT`), a run asked to finish as ``succeeded`` is **not**
        finished and :class:`MetricsDeliveryError` is raised: the points stay queued, so
        calling ``finish`` again once the server is back completes it. Finishing as
        ``failed`` never waits for that: what could not be delivered is reported, and the run
        is finished."""
        return self._finish(status, outputs, flush_timeout if flush_timeout is not None else _flush_timeout(), None)

    def _finish(
        self,
        status: Literal["succeeded", "failed"],
        outputs: Optional[Sequence[VersionLike]],
        timeout: float,
        call_deadline: Optional[float],
    ) -> RunInfo:
        if status == "succeeded":
            stats = cast(MetricStats, self._logger.flush(timeout))
            if not stats.get("complete"):
                err = MetricsDeliveryError(
                    f"run {self.id}: {stats.get('pending')} metric points not delivered within {timeout} s "
                    f"(last error: {stats.get('last_error')}); the run was not finished",
                    code="metrics_undelivered",
                    sent="maybe",
                    retryable=True,
                )
                err.stats = cast(Dict[str, object], stats)
                raise err
        closed = cast(MetricStats, self._logger.close(timeout))
        info = cast(
            RunInfo,
            self.client._native.finish_run(
                self.id, status, [_ref(v) for v in outputs] if outputs else None, None, call_deadline
            ),
        )
        self._finished = True
        self.info = info
        _untrack(self)
        if not closed.get("complete"):
            warnings.warn(
                f"run {self.id} finished as {status} with {closed.get('abandoned')} metric points undelivered",
                RuntimeWarning,
                stacklevel=2,
            )
        return info

    def close(self, timeout: Optional[float] = None) -> MetricStats:
        """Stops the metric logger after delivering what is queued (within ``timeout``),
        without finishing the run."""
        stats = cast(MetricStats, self._logger.close(timeout if timeout is not None else _flush_timeout()))
        _untrack(self)
        return stats

    def __enter__(self) -> Run:
        return self

    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        if self._finished:
            return
        if not self._owned:
            self._close_quietly()
            return
        if exc_type is None:
            try:
                self.finish("succeeded")
                return
            except MetricsDeliveryError:
                # The block succeeded but its metrics did not all arrive: the run is recorded
                # as failed (its evidence would be incomplete) and the error raised.
                self.finish("failed")
                raise
        # An exception (SIGTERM included) ends the block: record the run as failed, then let
        # the exception continue. A failure to finish must not hide the original error. The
        # finish call gets the flush timeout as its deadline too, so a shutdown with the
        # server away takes at most twice DATAPILOT_FLUSH_TIMEOUT (inside Kubernetes' 30 s).
        try:
            timeout = _flush_timeout()
            self._finish("failed", None, timeout, timeout)
        except DataPilotError as e:
            warnings.warn(f"run {self.id} could not be finished as failed: {e}", RuntimeWarning, stacklevel=2)

    def _close_quietly(self) -> None:
        try:
            stats = self.close()
        except DataPilotError as e:
            warnings.warn(f"run {self.id}: metrics not delivered: {e}", RuntimeWarning, stacklevel=2)
            return
        if not stats.get("complete"):
            warnings.warn(
                f"run {self.id}: {stats.get('abandoned')} metric points not delivered at exit "
                f"(last error: {stats.get('last_error')})",
                RuntimeWarning,
                stacklevel=2,
            )

    def _at_exit(self) -> None:
        # The interpreter is exiting with this run still open (no `with`, no finish): deliver
        # its metrics; a run this process started is finished as failed, because nothing
        # said it succeeded.
        if self._owned and not self._finished:
            try:
                timeout = _flush_timeout()
                self._finish("failed", None, timeout, timeout)
                warnings.warn(f"run {self.id} was not finished; finished as failed at exit", RuntimeWarning)
            except DataPilotError as e:
                warnings.warn(f"run {self.id} could not be finished at exit: {e}", RuntimeWarning)
        else:
            self._close_quietly()


# ---- exit and SIGTERM ------------------------------------------------------------------------

# Strong references: a run dropped without being finished must still be flushed at exit.
_open_runs: "set[Run]" = set()
_hooks_lock = threading.Lock()
_hooks_installed = False
_terminating = False


def _track(run: Run) -> None:
    global _hooks_installed
    _open_runs.add(run)
    with _hooks_lock:
        if _hooks_installed:
            return
        _hooks_installed = True
    atexit.register(_at_exit)
    # Only the main thread may set handlers, and a handler the program set is left alone.
    if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGTERM) in (
        signal.SIG_DFL,
        None,
    ):
        signal.signal(signal.SIGTERM, _on_sigterm)


def _untrack(run: Run) -> None:
    _open_runs.discard(run)


def _on_sigterm(signum: int, frame: Optional[FrameType]) -> None:
    # Raised in the main thread, so `with` blocks finish their runs as failed and `finally`
    # clauses run; then the interpreter exits with status 143. A second SIGTERM while that
    # shutdown runs is ignored (it would interrupt the flush it is waiting for).
    global _terminating
    if _terminating:
        return
    _terminating = True
    print(f"datapilot: SIGTERM: finishing {len(_open_runs)} open run(s)", file=sys.stderr)
    raise Terminated()


def _at_exit() -> None:
    for run in list(_open_runs):
        run._at_exit()
