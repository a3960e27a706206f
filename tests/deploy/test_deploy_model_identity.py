"""Our chat workers (deploy/runpod-chandra, deploy/runpod-deepseek-ocr) serve only their own
model, and the client stops a run on what no retry can mend.

* A request naming another model is refused as vLLM refuses it (404 "The model `x` does not
  exist."), and the client takes that for a stopped run (EndpointError): answered by the
  served model, a Chandra-2 request on a Chandra-1 endpoint came back ``ok`` with its boxes
  read on the other grid.
* A worker whose model did not load answers every job with that verdict (503
  ``model_not_ready``): the client stops the run instead of retrying every page four times
  (but for running out of GPU memory, which another worker may not).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from deploy_helpers import DEPLOY, chat_request, data_url, envelope, load_module, page_png
from ocrworker.envelope import Generation

from ocrclient.errors import EndpointError, PermanentError, TransientError
from ocrclient.transports.runpod_jobs import classify_failure, decode_job_error

WORKERS = {"chandra": DEPLOY / "runpod-chandra" / "handler.py",
           "deepseek": DEPLOY / "runpod-deepseek-ocr" / "handler.py"}  # fmt: skip


@pytest.fixture(params=sorted(WORKERS))
def worker(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.delenv("OCRWORKER_STANDIN", raising=False)
    mod = load_module(f"identity_{request.param}", WORKERS[request.param])
    mod.set_model(lambda pages: [Generation(text="read", prompt_tokens=1, completion_tokens=1) for _ in pages])
    yield mod
    mod.set_model(None)


def _client_error(output: Any) -> Any:
    """What the client makes of a handler's error output (a FAILED job's error)."""
    kind, message = decode_job_error(output["error"])
    return classify_failure(kind, message, cause="runpod_failed", job_id="j1")


async def test_a_worker_serves_its_own_model_and_refuses_another(worker: Any) -> None:
    served = worker.WORKER.served_model
    image = data_url(page_png())
    for model in (served, None):
        out = await worker.handler(envelope(chat_request(image, model=model)))
        assert isinstance(out, list) and out[0]["choices"], (model, out)
    for model in ("datalab-to/chandra-ocr-2", "deepseek-ai/DeepSeek-OCR-2", served + "-v2", "m"):
        if model == served:
            continue
        for job in (envelope(chat_request(image, model=model)),
                    {"id": "b", "input": {"pages": [chat_request(image, model=served), chat_request(image, model=model)]}}):  # fmt: skip
            out = await worker.handler(job)
            payload = json.loads(out["error"])
            assert payload["code"] == 404 and model in payload["error_message"], payload
            assert isinstance(_client_error(out), EndpointError), payload


@pytest.mark.parametrize(("why", "stops"), [
    (FileNotFoundError("no weights in /runpod-volume"), True),
    (RuntimeError("ModelNotCached: datalab-to/chandra is not in the model cache"), True),
    (ValueError("CHANDRA_BACKEND='gpu': use auto, vllm or hf"), True),
    (RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB"), False),
    (RuntimeError("torch.OutOfMemoryError: CUDA error"), False),
])  # fmt: skip
async def test_a_model_that_did_not_load_stops_the_run(worker: Any, why: Exception, stops: bool) -> None:
    def loader() -> Any:
        raise why

    worker.set_model(None)
    worker.WORKER.loader = loader
    for _ in range(2):  # the verdict is kept: every job gets it
        out = await worker.handler(envelope(chat_request(data_url(page_png()))))
        payload = json.loads(out["error"])
        assert payload["code"] == 503, payload
        err = _client_error(out)
        assert isinstance(err, EndpointError if stops else TransientError), (payload, type(err))




#: each refusal of a worker's request check: whether it holds for every page of a run (the run's
#: settings; no retry and no other page can mend it: the run stops) or for this page only
REFUSALS = [
    ("max_tokens over the worker's limit", {"max_tokens": 20000}, True),
    ("the route is not served", "route", True),
    ("the image is not an image", "garbage", False),
    ("no image", "no-image", False),
]


@pytest.mark.parametrize(("what", "change", "stops"), REFUSALS, ids=[r[0] for r in REFUSALS])
async def test_a_refusal_that_holds_for_every_page_stops_the_run(worker: Any, what: str, change: Any, stops: bool) -> None:
    """The whole kind: each refusal of the worker's request check, as the client classifies the
    FAILED job.  ``max_tokens`` over the worker's ``OCR_MAX_TOKENS_LIMIT`` is the run's setting,
    refused for every page: each page failed on its own, the run went on through every page
    (and each was billed a worker start); now it stops the run, like an unserved route.  A
    refusal of one page's content fails that page only."""
    image = data_url(page_png())
    if change == "route":
        job = {"id": "j", "input": {"openai_route": "/v1/completions", "openai_input": chat_request(image)}}
    elif change == "garbage":
        job = envelope(chat_request("data:image/png;base64,aGVsbG8gd29ybGQ="))
    elif change == "no-image":
        job = envelope(chat_request(None))
    else:
        job = envelope(chat_request(image, **change))
    out = await worker.handler(job)
    assert "error" in out, out
    err = _client_error(out)
    assert isinstance(err, EndpointError) == stops, (what, out["error"], type(err))
    assert isinstance(err, (EndpointError, PermanentError)), (what, type(err))
