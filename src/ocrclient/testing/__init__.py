"""Simulated clouds for offline tests — a product feature, like moto for AWS.

Real HTTP servers on loopback that speak each cloud's wire contract, with seeded fault injection
(:class:`FaultPlan`) and pluggable model responders:

* :class:`RunPodSimulator` – RunPod serverless (``/run``, ``/runsync``, ``/status``, ``/cancel``,
  ``/health``; job states, worker slots, cold start, retention, 429, payload limits, FAILED shapes),
  plus the ``--rp_serve_api`` local-server flavour;
* :class:`OpenAISimulator` – a vLLM OpenAI-compatible server (JSON and SSE, both error shapes,
  ``/health``, ``/v1/models``), with ``mode="proxy"`` (RunPod pod proxy: 524 after an idle gap)
  and ``mode="modal"`` (Modal: proxy-auth 401, 303 to a result URL after a time);
* :class:`OcularSimulator` – the OLM/RoLM ``/extract_text`` HTTP contract;
* :class:`HostileServer` – breaks the rules on purpose (runaway replies, endless streams, deep
  nesting, NaN numbers, early closes, jobs stuck in the queue), to check a client stays bounded.

Example (pytest)::

    from ocrclient.testing import FaultPlan, RunPodSimulator
    import ocrclient

    def test_my_pipeline(tmp_path):
        plan = FaultPlan(seed=1, rates={"http_503": 0.1}, slots=4)
        with RunPodSimulator(plan=plan) as sim:
            doc = ocrclient.convert("a.pdf", backend="runpod-olmocr",
                                    base_url=sim.base_url, endpoint_id=sim.endpoint_id,
                                    api_key=sim.api_key)
        assert doc.ok

Or by hand: ``python -m ocrclient.testing runpod --port 8765``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .faults import (
    FAULTS,
    CannedReply,
    FaultPlan,
    FixedResponder,
    ReplayResponder,
    Responder,
    SimReply,
    echo_responder,
    page_key,
)

if TYPE_CHECKING:
    from .hostile import HostileServer
    from .http_sim import HTTPSimulator
    from .ocular_sim import OcularSimulator
    from .openai_sim import OpenAISimulator
    from .responders import (
        DialectResponder,
        RapidOCRResponder,
        SentImage,
        TruthBlock,
        format_reply,
        image_digest,
    )
    from .runpod_sim import RunPodSimulator

__all__ = [
    "FAULTS",
    "CannedReply",
    "DialectResponder",
    "FaultPlan",
    "FixedResponder",
    "HTTPSimulator",
    "HostileServer",
    "OcularSimulator",
    "OpenAISimulator",
    "RapidOCRResponder",
    "ReplayResponder",
    "Responder",
    "RunPodSimulator",
    "SentImage",
    "SimReply",
    "TruthBlock",
    "echo_responder",
    "format_reply",
    "image_digest",
    "page_key",
]

_LAZY = {
    "HTTPSimulator": "http_sim",
    "HostileServer": "hostile",
    "OpenAISimulator": "openai_sim",
    "OcularSimulator": "ocular_sim",
    "RunPodSimulator": "runpod_sim",
    "DialectResponder": "responders",
    "RapidOCRResponder": "responders",
    "SentImage": "responders",
    "TruthBlock": "responders",
    "format_reply": "responders",
    "image_digest": "responders",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'ocrclient.testing' has no attribute {name!r}")
