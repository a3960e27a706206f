"""The runpod SDK's local test server (``python handler.py --rp_serve_api``), as
:class:`~ocrclient.testing.runpod_sim.RunPodSimulator` plays it with ``flavour="local"``.

What the SDK's server (runpod 1.10, ``serverless/modules/rp_fastapi.py``) answers, as observed
against a real one (``tests/test_runpod_local_sdk.py`` compares this simulator with it):

* ``POST /run`` only stashes the job: ``{"id": "test-<uuid>", "status": "IN_PROGRESS"}``;
  the handler runs when ``POST /status/{id}`` (or ``/stream/{id}``) asks for it, inside that
  request, and the job is then forgotten: a second ``/status`` answers 200 ``{"id", "status":
  "FAILED", "error": "Job ID not found"}``, as does an unknown id.  ``POST /runsync`` runs the
  handler inside the request.  ``GET`` on them is 405, an unknown path 404 (FastAPI's
  ``{"detail": ...}``), a body without an object ``input`` (or not JSON) 422.
* A handler that **returns** (deploy/'s workers, the ocular and whole-PDF workers): its value is
  the ``output`` of a 200 ``COMPLETED`` reply (no ``output`` field when it is ``None``); a dict
  with a non-empty string ``error`` is a 200 ``FAILED`` with that ``error`` (the rest dropped); a
  handler that **raises** is a 200 ``FAILED`` whose ``error`` is the SDK's JSON string
  (``error_type``, ``error_message``, ``error_traceback``, ``hostname``, ``worker_id``,
  ``runpod_version``).  An empty dict, or an ``error`` that is not a string, makes the server
  fail its own reply: HTTP 500 ``text/plain`` ``Internal Server Error`` (the job is forgotten),
  after which uvicorn closes the connection (with no ``Connection: close``: a client that
  sends on it again gets a reset).
* A **generator** handler (worker-vllm's, which serves the ``openai_route`` chat jobs): the list
  of what it yielded is the ``output`` of a 200 ``COMPLETED`` reply -- **an item
  ``{"error": ...}`` included: the local server never marks a yielded error FAILED** (RunPod
  does); one that raises is an HTTP 500 ``Internal Server Error`` and, for ``/status``, the job
  stays stashed (the next ``/status`` runs the handler again).  ``/stream/{id}`` runs it too and
  answers ``{"id", "status": "COMPLETED", "stream": [{"output": item}, ...]}``; for a handler
  that returns it answers 200 ``FAILED`` ``"Stream not supported, handler must be a
  generator."`` and leaves the job stashed.

There is no gateway, queue limit or execution timeout in front of the handler: the plan's
``http_*``, ``reset`` and ``timed_out`` faults are served healthy, a job runs for as long as it
takes (``hang``: ``hang_s``).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ._server import hang_up, read_body, write_json, write_reply

if TYPE_CHECKING:
    from .runpod_sim import RunPodSimulator

__all__ = ["Handled", "LocalAnswer", "answer", "dispatch_local", "stream_answer"]

NOT_FOUND = "Job ID not found"
STREAM_NOT_SUPPORTED = "Stream not supported, handler must be a generator."
_OPENAPI = {"openapi": "3.1.0", "paths": {"/run": {}, "/runsync": {}, "/stream/{job_id}": {}, "/status/{job_id}": {}}}


@dataclass(frozen=True)
class Handled:
    """What a worker's handler did with one job: ``generator`` (it yields, as worker-vllm's
    does, else it returns), then ``value`` (what it returned, or the list of what it yielded)
    or ``raised`` (the SDK's JSON error for a handler that returns; any text for a generator,
    whose error the local server loses)."""

    generator: bool
    value: Any = None
    raised: str | None = None


@dataclass(frozen=True)
class LocalAnswer:
    """The local server's reply: ``body`` ``None`` is its 500 ``Internal Server Error``;
    ``keep``: the job stays stashed for the next ``/status`` (``/stream``)."""

    code: int
    body: dict[str, Any] | None
    keep: bool = False

    @property
    def status(self) -> str:
        """The job's status as the simulator counts it (a 500 is a failure)."""
        return str(self.body.get("status")) if self.body is not None else "FAILED"


def _failed(jid: str, error: str, keep: bool = False) -> LocalAnswer:
    return LocalAnswer(200, {"id": jid, "status": "FAILED", "error": error}, keep)


def answer(jid: str, handled: Handled) -> LocalAnswer:
    """``/runsync``'s and ``/status``'s reply for a job the handler ``handled``."""
    if handled.generator:
        if handled.raised is not None:  # it reads the error item's "output": a KeyError
            return LocalAnswer(500, None, keep=True)
        return LocalAnswer(200, {"id": jid, "status": "COMPLETED", "output": list(handled.value or [])})
    if handled.raised is not None:
        return _failed(jid, handled.raised)
    value = handled.value
    if isinstance(value, Mapping):  # rp_job.run_job: "error" and "refresh_worker" taken out
        value = {k: v for k, v in value.items() if k not in ("error", "refresh_worker")}
        error = handled.value.get("error")
        if error:
            # JobOutput.error is a str: any other error fails the reply's validation
            return _failed(jid, error) if isinstance(error, str) else LocalAnswer(500, None)
        if not value:  # an empty output is dropped, and the server reads it: a KeyError
            return LocalAnswer(500, None)
    body: dict[str, Any] = {"id": jid, "status": "COMPLETED"}
    if value is not None:  # (response_model_exclude_none)
        body["output"] = value
    return LocalAnswer(200, body)


def stream_answer(jid: str, handled: Handled) -> LocalAnswer:
    """``/stream``'s reply for a job a generator handler ``handled``."""
    if handled.raised is not None:
        return LocalAnswer(500, None, keep=True)
    stream = [{"output": item} for item in handled.value or []]
    return LocalAnswer(200, {"id": jid, "status": "COMPLETED", "stream": stream})


def _send(h: Any, reply: LocalAnswer) -> None:
    if reply.body is None:  # uvicorn's answer to an exception in the app; then it hangs up
        write_reply(h, 500, b"Internal Server Error", "text/plain; charset=utf-8")
        hang_up(h)
    else:
        write_json(h, reply.code, reply.body)


def _request_input(h: Any) -> tuple[bool, Any]:
    """``(True, input)``, or ``(False, None)`` once FastAPI's 422 for the body is sent."""
    raw, _ = read_body(h, None)
    try:
        body = json.loads(raw) if raw else None
    except ValueError as exc:
        pos, msg = getattr(exc, "pos", 0), getattr(exc, "msg", str(exc))
        detail: dict[str, Any] = {"type": "json_invalid", "loc": ["body", pos], "msg": "JSON decode error", "input": {}, "ctx": {"error": msg}}
        write_json(h, 422, {"detail": [detail]})
        return False, None
    if body is None:
        detail = {"type": "missing", "loc": ["body"], "msg": "Field required", "input": None}
    elif not isinstance(body, dict) or "input" not in body:
        detail = {"type": "missing", "loc": ["body", "input"], "msg": "Field required", "input": body}
    elif not isinstance(body["input"], dict):
        detail = {"type": "dict_type", "loc": ["body", "input"], "msg": "Input should be a valid dictionary",
                  "input": body["input"]}  # fmt: skip
    else:
        return True, body["input"]
    write_json(h, 422, {"detail": [detail]})
    return False, None


def dispatch_local(h: Any, sim: RunPodSimulator, method: str, path: str, run: Callable[[Any], Handled | None]) -> None:
    """Answer one request as the SDK's local server: ``run(input)`` runs a job on the
    simulator's slots and says what its handler did (``None``: the job was lost, a restart)."""
    if path == "/openapi.json" and method == "GET":
        write_json(h, 200, _OPENAPI)
        return
    parts = path.strip("/").split("/")
    op = parts[0]
    routed = (op in ("run", "runsync") and len(parts) == 1) or (op in ("status", "stream") and len(parts) == 2)
    if not routed or method != "POST":
        read_body(h, None)
        write_json(h, 404 if not routed else 405, {"detail": "Not Found" if not routed else "Method Not Allowed"})
        return
    sim._count(op)
    if op in ("run", "runsync"):
        ok, job_input = _request_input(h)
        if not ok:
            return
        jid = f"test-{uuid.uuid4()}"
        if op == "run":
            with sim._lock:
                sim._local_pending[jid] = job_input
            write_json(h, 200, {"id": jid, "status": "IN_PROGRESS"})
            return
        handled = run(job_input)
        _send(h, answer(jid, handled) if handled is not None else _failed(jid, NOT_FOUND))
        return
    read_body(h, None)
    jid = parts[1]
    with sim._lock:
        pending = sim._local_pending.pop(jid, None)
    if pending is None:
        _send(h, _failed(jid, NOT_FOUND))
        return
    if op == "stream" and not sim.serves_as_generator(pending):  # the SDK runs nothing
        reply = _failed(jid, STREAM_NOT_SUPPORTED, keep=True)
    else:
        handled = run(pending)
        if handled is None:
            reply = _failed(jid, NOT_FOUND)
        else:
            reply = stream_answer(jid, handled) if op == "stream" else answer(jid, handled)
    if reply.keep:
        with sim._lock:
            sim._local_pending.setdefault(jid, pending)
    _send(h, reply)
