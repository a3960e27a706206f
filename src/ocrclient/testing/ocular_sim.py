"""A simulated ocular OCR server (the OLM / RoLM seed's FastAPI contract) on loopback.

Routes, as the seed's ``app.py`` defines them:

* ``GET /health`` -> ``{"status": "healthy", "models_loaded": [...], "gpu_available": true,
  "memory_info": {}}``
* ``POST /extract_text`` and ``/extract_text_robust`` with ``{"image": <base64>, "model_name",
  "prompt", "use_preprocessing", "ensemble_size", "robust_processing", "decoding_options",
  "options"}`` -> ``{"text", "confidence", "language", "processing_time", "metadata"}``
* ``POST /extract_structured`` and ``/extract_structured_robust`` (``schema`` required) ->
  ``{"structured_data", "confidence", "processing_time", "metadata": {"source_text", ...}}``

Errors are FastAPI's: ``{"detail": "..."}`` (HTTPException) and 422
``{"detail": [{"loc", "msg", "type"}]}`` for a body that does not validate; 400 ``Invalid image
data`` when ``image`` is not base64.  An optional API key is checked as ``Authorization: Bearer``
(the seed leaves auth to the deployment).  Faults, slots, latency, cold start and the proxy /
Modal modes work as in :class:`~ocrclient.testing.http_sim.HTTPSimulator`: a healthy request
holds its slot for the plan's latency from when it got the slot, checking the image and the
responder included, and reports that latency as ``processing_time``.

Example::

    >>> with OcularSimulator() as sim:  # doctest: +SKIP
    ...     httpx.post(sim.url + "/extract_text", json={"image": b64}).json()["confidence"]
    0.93
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from .faults import FaultPlan, Responder
from .http_sim import FAULT_STATUS, Emit, HTTPSimulator, SimRequest, SimulatorMode, Worker

__all__ = ["OcularSimulator"]

_TEXT_ROUTES = ("/extract_text", "/extract_text_robust")
_STRUCT_ROUTES = ("/extract_structured", "/extract_structured_robust")


class OcularSimulator(HTTPSimulator):
    """The ocular HTTP contract with seeded faults.

    ``default_confidence`` is used when the responder's :class:`SimReply` has no
    ``data["confidence"]``.

    Example::

        with OcularSimulator(plan=FaultPlan(rates={"http_503": 0.3}), api_key="k") as sim:
            transport = OcularTransport(sim.url, api_key="k")
    """

    name = "ocular"

    def __init__(
        self,
        *,
        plan: FaultPlan | None = None,
        responder: Responder | None = None,
        mode: SimulatorMode = "direct",
        api_key: str | None = None,
        models_loaded: tuple[str, ...] = ("microsoft/trocr-base-printed",),
        default_confidence: float = 0.93,
        **kwargs: Any,
    ) -> None:
        super().__init__(plan=plan, responder=responder, api_key=api_key, mode=mode, **kwargs)
        self.models_loaded = list(models_loaded)
        self.default_confidence = default_confidence

    def dispatch(self, req: SimRequest) -> Worker:
        path = req.path.rstrip("/") or "/"
        if (
            self.api_key is not None
            and path != "/health"
            and (req.header("Authorization") or "") != f"Bearer {self.api_key}"
        ):
            return lambda emit: self.emit_json(emit, 401, {"detail": "Invalid or missing API key"})
        if req.method == "GET" and path == "/health":
            return self._health
        if req.method == "POST" and path in _TEXT_ROUTES + _STRUCT_ROUTES:
            return lambda emit: self._extract(req, path, emit)
        if path in _TEXT_ROUTES + _STRUCT_ROUTES + ("/health",):
            return lambda emit: self.emit_json(emit, 405, {"detail": "Method Not Allowed"})
        return lambda emit: self.emit_json(emit, 404, {"detail": "Not Found"})

    def _health(self, emit: Emit) -> None:
        self.wait_until_ready()
        self.emit_json(emit, 200, {"status": "healthy", "models_loaded": self.models_loaded,
                                   "gpu_available": True, "memory_info": {}})

    def _extract(self, req: SimRequest, path: str, emit: Emit) -> None:
        body = req.json
        if not isinstance(body, dict):
            self.emit_json(emit, 422, {"detail": [{"type": "model_attributes_type", "loc": ["body"],
                                                   "msg": "Input should be a valid dictionary"}]})
            return
        missing = [f for f in ("image",) + (("schema",) if path in _STRUCT_ROUTES else ())
                   if f not in body]
        if missing:
            self.emit_json(emit, 422, {"detail": [
                {"type": "missing", "loc": ["body", f], "msg": "Field required"} for f in missing]})
            return
        key = self.count_key(body)
        fault = self.plan.draw(key)
        if self.force_status is not None:
            self.emit_json(emit, self.force_status, {"detail": f"forced status {self.force_status}"})
            return
        with self.serving(fault) as start:
            if fault in FAULT_STATUS:
                status = FAULT_STATUS[fault]
                headers = [("Retry-After", f"{self.plan.retry_after_s:g}")] if status == 429 and self.plan.retry_after_s is not None else []
                detail = "Invalid or missing API key" if status == 401 else (
                    f"OCR processing failed: simulated HTTP {status}")
                self.emit_json(emit, status, {"detail": detail}, headers)
                return
            try:
                base64.b64decode(str(body["image"]), validate=True)
            except (binascii.Error, ValueError) as exc:
                self.emit_json(emit, 400, {"detail": f"Invalid image data: {exc}"})
                return
            start = self.first_byte_delayed(start, fault)
            reply = self.responder(body)  # its time, and checking the image, count toward latency
            text = reply.text
            confidence = reply.data.get("confidence", self.default_confidence)
            if fault == "garbage":
                text, confidence = "\u2591\u2591 ::: " + "lorem " * 20, 0.05
            latency = self.plan.latency(key)
            meta = {"model_name": body.get("model_name", self.models_loaded[0]),
                    "variants_processed": max(1, int(body.get("ensemble_size") or 1)),
                    "preprocessing_enabled": bool(body.get("use_preprocessing"))}
            if path.endswith("_robust"):
                meta["robust_processing"] = True
            if path in _STRUCT_ROUTES:
                out: dict[str, Any] = {
                    "structured_data": reply.data.get("structured_data", {}),
                    "confidence": confidence, "processing_time": latency,
                    "metadata": {**meta, "source_text": text,
                                 "schema_keys": list((body.get("schema") or {}).keys())},
                }
            else:
                out = {"text": text, "confidence": confidence, "language": "en",
                       "processing_time": latency, "metadata": meta}
            data = json.dumps(out).encode()
            self.sleep_until(start + latency)
            if fault == "reset":
                self.emit_cut(emit, data)
                return
            self.emit_bytes(emit, 200, data, "application/json")
