"""Simulated clouds for offline tests — a product feature, like moto for AWS.

Real HTTP servers on loopback that speak each cloud's wire contract (RunPod serverless, an
OpenAI-compatible vLLM server, the RunPod pod proxy, Modal web endpoints, the ocular contract),
with seeded fault injection (:class:`FaultPlan`) and pluggable model responders.
"""

from __future__ import annotations

from .faults import FAULTS, FaultPlan, FixedResponder, ReplayResponder, Responder, SimReply, echo_responder

__all__ = [
    "FAULTS",
    "FaultPlan",
    "FixedResponder",
    "ReplayResponder",
    "Responder",
    "SimReply",
    "echo_responder",
]
