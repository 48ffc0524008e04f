"""The exceptions of the DataPilot SDK.

Every failure of an SDK call raises a :class:`DataPilotError` that carries what a caller
decides on, the same fields as the Rust ``Error`` and the npm package's ``DataPilotError``:

- ``code``: a stable code: the server's problem code (``gate_not_passed``, ``run_sealed``, ...)
  or a local one (``invalid_request``, ``transport_error``, ``timeout``, ``decode_error``,
  ``verification_failed``, ``metrics_undelivered``, a file problem such as
  ``symlink_refused``);
- ``status``: the HTTP status when the server answered, else ``None``;
- ``request_id``: the server's request id, to quote to its operators;
- ``sent``: could the request have taken effect? ``"no"`` (nothing left the process),
  ``"maybe"`` (a connection broke mid-flight: repeating a write with the same idempotency key
  is safe), ``"yes"`` (the server answered);
- ``retryable``: whether the same call could succeed later (the SDK already retried it);
- ``detail``, ``errors`` (field errors as ``(field, message)`` pairs), ``retry_after``
  (seconds).

The subclasses also derive from the matching built-in exception where there is one, so
``except ValueError`` or ``except OSError`` keep working around SDK calls. Messages never
contain tokens.
"""

from __future__ import annotations

from typing import Literal, Optional, Sequence, Tuple

__all__ = [
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
]

Sent = Literal["no", "maybe", "yes"]


class DataPilotError(Exception):
    """Base class of every SDK error (see the module docs for the fields)."""

    code: str
    status: Optional[int]
    request_id: Optional[str]
    sent: Sent
    retryable: bool
    detail: Optional[str]
    errors: Tuple[Tuple[str, str], ...]
    retry_after: Optional[float]

    def __init__(
        self,
        message: str,
        *,
        code: str,
        status: Optional[int] = None,
        request_id: Optional[str] = None,
        sent: Sent = "no",
        retryable: bool = False,
        detail: Optional[str] = None,
        errors: Sequence[Tuple[str, str]] = (),
        retry_after: Optional[float] = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.status = status
        self.request_id = request_id
        self.sent = sent
        self.retryable = retryable
        self.detail = detail
        self.errors = tuple(errors)
        self.retry_after = retry_after

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else ""


class ApiError(DataPilotError):
    """The server answered with an error status (``status``, ``code``, ``request_id`` set)."""


class TransportError(DataPilotError, ConnectionError):
    """The connection failed (refused, reset, TLS); ``sent`` says whether it may have arrived."""


class DeadlineError(DataPilotError, TimeoutError):
    """No answer within the attempt timeout or the call's deadline."""


class InvalidArgumentError(DataPilotError, ValueError):
    """Bad input or configuration, refused before anything was sent (``sent == "no"``)."""


class DecodeError(DataPilotError):
    """The server answered 2xx with a body this SDK could not read."""


class VerificationError(DataPilotError):
    """An integrity check failed: a tampered or unverifiable evidence bundle, a download that
    does not match its digest. For a bundle, ``report`` holds every check."""

    report: Optional[dict[str, object]] = None


class LocalFileError(DataPilotError, OSError):
    """A local file or directory could not be used (missing, unreadable, a refused symlink,
    changed while hashed, a name DPM-1 cannot carry); ``path`` names it when known."""

    path: Optional[str] = None


class MetricsDeliveryError(DataPilotError):
    """Metric points could not be delivered: the logger stopped on a permanent error (the
    fields are that error's) or points were still undelivered when a flush ran out of time
    (``code == "metrics_undelivered"``). ``stats`` holds the logger's counters."""

    stats: Optional[dict[str, object]] = None


class Terminated(SystemExit):
    """Raised in the main thread when the process gets SIGTERM (while a run is logging), so
    ``with`` blocks and ``finally`` clauses run: a run started with ``with client.start_run``
    is flushed and finished as ``failed``. Exit status 143 (128 + SIGTERM), as if killed."""

    def __init__(self) -> None:
        super().__init__(143)
