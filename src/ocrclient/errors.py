"""Error taxonomy shared by every backend.

The scheduler decides what to do with a failed attempt from the *class* of the error alone:

* :class:`TransientError` – worth retrying as-is (timeouts, resets, 408/429/5xx/524, RunPod
  ``TIMED_OUT``, infrastructure ``FAILED``).  ``retry_after`` carries a server hint in seconds.
* :class:`PermanentError` – retrying cannot help (400/413/501, a payload over a limit).
* :class:`AuthError` – a :class:`PermanentError` that stops the whole run (401/403).
* :class:`EndpointError` – a :class:`PermanentError` about the endpoint, not the page (an unknown
  endpoint id, a model or route the server does not serve): it stops the whole run too.
* :class:`BadOutputError` – the model answered, but the answer is unusable (unparseable,
  repetition, truncated at ``max_tokens``).  Retried with changed sampling; ``hint`` lets a
  dialect ask for something specific on the next attempt (e.g. olmOCR's rotation).
* :class:`InputError` – the user's input is unusable (missing file, broken PDF, bad page range).
* :class:`UsageError` – the library was called in a way that cannot work (a blocking call where
  an event loop runs, a closed client); also a :class:`RuntimeError`.

Every message is a single line and never contains a secret: each is passed through
:func:`ocrclient.secrets.redact` (:mod:`ocrclient.secrets` registers and masks secrets).

Example::

    >>> from ocrclient.errors import TransientError, classify_status
    >>> classify_status(429, "slow down", retry_after=2.0).retry_after
    2.0
"""

from __future__ import annotations

import re
from datetime import UTC
from typing import TYPE_CHECKING, Any, cast

# secret redaction lives in .secrets; these names stay importable from here (their old home)
from .secrets import HTTP_LOGGERS as HTTP_LOGGERS
from .secrets import RedactingFilter as RedactingFilter
from .secrets import install_log_redaction as install_log_redaction
from .secrets import install_logger_redaction as install_logger_redaction
from .secrets import redact, redact_data, register_secret

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

    from .document import Document

__all__ = [
    "RUN_STOPPING",
    "AuthError",
    "BadOutputError",
    "CancelledRunError",
    "ConfigError",
    "EndpointDownError",
    "EndpointError",
    "InputError",
    "OcrError",
    "OutputError",
    "PermanentError",
    "RunAborted",
    "TransientError",
    "UsageError",
    "classify_status",
    "is_endpoint_error",
    "is_model_refusal",
    "redact",
    "redact_data",
    "register_secret",
]


class OcrError(Exception):
    """Base class of every error ocrclient raises on purpose."""

    #: short machine name of the cause, used in stats ("retries by cause") and JSON output
    kind: str = "error"
    #: what the failed attempt spent, when the server says (a FAILED RunPod job's executionTime,
    #: a reply that could not be used): a page's and a run's usage count it (``Any``: a
    #: :class:`~ocrclient.document.Usage`; errors import nothing of the document model)
    spent: Any = None

    def __init__(self, message: str, *, cause: str | None = None) -> None:
        message = redact(" ".join(str(message).split()))
        super().__init__(message)
        self.message = message
        #: finer cause label, e.g. "http_503", "timeout", "repetition"
        self.cause = cause or self.kind

    def __str__(self) -> str:
        return self.message


class TransientError(OcrError):
    """A failure that may succeed if the same request is sent again."""

    kind = "transient"

    def __init__(
        self,
        message: str,
        *,
        cause: str | None = None,
        retry_after: float | None = None,
        status: int | None = None,
        elsewhere: bool = False,
    ) -> None:
        super().__init__(message, cause=cause)
        self.retry_after = retry_after
        self.status = status
        #: the next attempt goes to another server (a pool's other member): no backoff before it
        self.elsewhere = elsewhere


class EndpointDownError(TransientError):
    """No server answered at the endpoint's address for longer than the run allows
    (``unreachable_s``: :class:`ocrclient.retries.Reachability`): the whole run stops; a rerun
    sends the pages not done."""

    def __init__(self, message: str) -> None:
        super().__init__(message, cause="endpoint_down")


class PermanentError(OcrError):
    """A failure that repeating the same request cannot fix."""

    kind = "permanent"

    def __init__(self, message: str, *, cause: str | None = None, status: int | None = None) -> None:
        super().__init__(message, cause=cause)
        self.status = status


class AuthError(PermanentError):
    """Bad or missing credentials (401/403): the whole run stops at the first one."""

    kind = "auth"


class EndpointError(PermanentError):
    """The endpoint cannot serve this backend at all: an unknown endpoint id, a model it does not
    serve, a route it does not have, a server misconfigured behind it.  Every page would fail the
    same way, so the whole run stops at the first one, as for :class:`AuthError`."""

    kind = "endpoint"


#: the error classes that stop the whole run at the first one (every page would fail alike)
RUN_STOPPING: tuple[type[PermanentError], ...] = (AuthError, EndpointError)


class BadOutputError(OcrError):
    """The model replied, but the reply cannot be used as it is.

    ``partial`` may hold what could be salvaged (a dialect's ``PageContent``); if every attempt
    fails the scheduler keeps it as a *degraded* page instead of a failed one.
    ``hint`` is passed back to the dialect's ``build`` on the next attempt.
    """

    kind = "bad_output"

    def __init__(
        self,
        message: str,
        *,
        cause: str | None = None,
        partial: Any = None,
        hint: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message, cause=cause)
        self.partial = partial
        self.hint = dict(hint or {})


class InputError(OcrError):
    """The input cannot be processed (missing, corrupt, encrypted, empty, bad page range)."""

    kind = "input"


class ConfigError(OcrError):
    """A backend profile, flag or environment setting is missing or invalid."""

    kind = "config"


class UsageError(OcrError, RuntimeError):
    """The library was called in a way that cannot work: a blocking call (``ocrclient.convert``,
    ``Client.convert``) in a thread whose event loop is running (its message names the async
    twin to await instead), a call on a closed client, settings a loaded backend cannot take."""

    kind = "usage"


class OutputError(OcrError):
    """Files asked for could not be written (``convert(..., outputs=...)``: a folder where a file
    must go, a full disk, a format whose writer failed).  Nothing of the conversion is lost:
    ``document`` is the converted document, ``errors`` says which files failed and why,
    ``written`` lists the files that were written."""

    kind = "output"

    def __init__(self, document: Document, errors: Sequence[str], written: Sequence[Path] = ()) -> None:
        super().__init__(f"{len(errors)} output file(s) not written: {'; '.join(errors)}")
        self.document = document
        self.errors = list(errors)
        self.written = list(written)

    def __reduce__(self) -> tuple[Any, ...]:
        return OutputError, (self.document, self.errors, self.written)


class CancelledRunError(OcrError):
    """The run was cancelled (Ctrl-C or an exception elsewhere)."""

    kind = "cancelled"


#: a 4xx message that names a model the server does not have (vLLM: "The model `x` does not
#: exist." with type NotFoundError; our TrOCR server: "model_name 'x' is not allowed")
_MODEL_NOT_SERVED = re.compile(
    r"\bmodel(?:_name)?\b(?:[^.;\n]|\.(?=\S)){0,200}?\b(?:does not exist|not found|not allowed|not served|"
    r"is not available|unknown)|\b(?:unknown|no such) model\b",
    re.IGNORECASE,
)
#: a 4xx message saying the server has no such route (worker-vllm's "Invalid route", our
#: handlers' "unsupported openai_route" / "unknown route")
_ROUTE_NOT_SERVED = re.compile(r"\b(?:invalid|unknown|unsupported) (?:openai_)?route\b", re.IGNORECASE)
#: deploy/'s workers refusing the run's ``max_tokens`` over their ``OCR_MAX_TOKENS_LIMIT``: the
#: same refusal for every page of the run (its ``max_tokens`` is the run's setting)
_OVER_WORKER_LIMIT = re.compile(r"\bmax_tokens \d+ exceeds the limit \d+", re.IGNORECASE)
#: a 404 message about something the request named (a file, a URL, a job), not the endpoint
_INPUT_NOT_FOUND = re.compile(
    r"\b(?:path|file|pdf_url|url|job|request|document|image)\b(?:[^.;\n]|\.(?=\S)){0,200}?"
    r"\b(?:does not exist|not (?:an existing|found))",
    re.IGNORECASE,
)


def is_endpoint_error(status: int | None, message: str) -> bool:
    """Whether an error is about the endpoint rather than the page: every 404 except one that
    names an input (a path, a job), a 405 (the server has no POST there), and any 4xx — or, with
    no status, any message — saying the model or route is not served, or that the run's
    ``max_tokens`` is over the worker's limit.  401/403/408/425/429 and
    5xx never are.

    >>> is_endpoint_error(404, "The model `x` does not exist. (NotFoundError)")
    True
    >>> is_endpoint_error(404, "path '/in/a.pdf' is not an existing file")
    False
    >>> is_endpoint_error(400, "max_tokens must be a positive integer")
    False
    >>> is_endpoint_error(400, "openai_input: max_tokens 20000 exceeds the limit 16384")
    True
    """
    if status is not None and (not 400 <= status < 500 or status in (401, 403, 408, 425, 429)):
        return False
    if _MODEL_NOT_SERVED.search(message) or _ROUTE_NOT_SERVED.search(message) or _OVER_WORKER_LIMIT.search(message):
        return True
    return status == 405 or (status == 404 and not _INPUT_NOT_FOUND.search(message))


def is_model_refusal(message: str) -> bool:
    """Whether an error message says a model is not served (vLLM's "The model `x` does not
    exist.", our TrOCR server's "model_name 'x' is not allowed")."""
    return bool(_MODEL_NOT_SERVED.search(message))


def classify_status(
    status: int, message: str, *, retry_after: float | None = None
) -> OcrError:
    """Map an HTTP status to the taxonomy: 401/403 are
    :class:`AuthError`; 408/425/429 and 5xx but 501 transient; a 4xx about the endpoint (see
    :func:`is_endpoint_error`) :class:`EndpointError`; any other 4xx :class:`PermanentError`."""
    text = f"HTTP {status}: {message}" if message else f"HTTP {status}"
    if status in (401, 403):
        return AuthError(text, cause=f"http_{status}", status=status)
    if status in (408, 425, 429) or (status >= 500 and status != 501):
        return TransientError(text, cause=f"http_{status}", retry_after=retry_after, status=status)
    if is_endpoint_error(status, message):
        return EndpointError(text, cause=f"http_{status}", status=status)
    return PermanentError(text, cause=f"http_{status}", status=status)


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or HTTP date); ``None`` if absent."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    from datetime import datetime
    from email.utils import parsedate_to_datetime

    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


class RunAborted(OcrError):
    """The whole run stopped (bad credentials, or an endpoint that cannot serve the backend: see
    :data:`RUN_STOPPING`).  ``documents`` (also ``partial``) holds the run's documents not yet handed
    to the caller (``convert_many`` does not repeat those it yielded), as far as they got, the
    unfinished pages marked failed; ``error`` is the cause.

    An abort is also an instance of its cause's class: ``RunAborted(auth_error, docs)`` builds a
    ``RunAborted[AuthError]`` that subclasses both, so ``except AuthError`` (or ``except
    PermanentError``) catches it as well as ``except RunAborted``.
    """

    kind = "aborted"

    def __new__(cls, error: OcrError, documents: Sequence[Document] = ()) -> RunAborted:
        if cls is RunAborted:
            cls = _abort_class(type(error))
        return super().__new__(cls, error, documents)

    def __init__(self, error: OcrError, documents: Sequence[Document] = ()) -> None:
        # the cause's own attributes (status, retry_after, ...) are the abort's too
        self.__dict__.update({k: v for k, v in vars(error).items() if not k.startswith("_")})
        OcrError.__init__(self, f"run stopped: {error}", cause=error.cause)
        self.error = error
        self.documents = list(documents)

    @property
    def partial(self) -> list[Document]:
        """The documents of the run, finished or not (the same list as ``documents``)."""
        return self.documents

    def __reduce__(self) -> tuple[Any, ...]:
        return RunAborted, (self.error, self.documents)


#: cause class -> its RunAborted subclass (built once per cause)
_ABORT_CLASSES: dict[type[OcrError], type[RunAborted]] = {}


def _abort_class(cause: type[OcrError]) -> type[RunAborted]:
    """``RunAborted[cause]``: a subclass of both, one per cause class."""
    if issubclass(cause, RunAborted):
        return cause
    cls = _ABORT_CLASSES.get(cause)
    if cls is None:
        name = f"RunAborted[{cause.__name__}]"
        made = type(name, (RunAborted, cause), {"kind": cause.kind, "__module__": __name__, "__qualname__": name})
        cls = _ABORT_CLASSES.setdefault(cause, cast(type[RunAborted], made))
    return cls
