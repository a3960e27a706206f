"""Wire contracts: the requests the client builds, as the servers it talks to accept them.

One model per server, imported by both halves: the client's dialects build their requests with
(or from the vocabulary of) these models, and our servers in ``deploy/`` validate with the same
models -- so a key added on one side is a key the other side knows, and the contract test
(``tests/deploy/test_deploy_contract.py``) checks every request each profile can build against
its server.  For servers that are not ours (vLLM's OpenAI server, RunPod's official vLLM worker)
the models mirror the server's own request schema; each module says which release.

* :mod:`.ocular` -- TrOCR's ``/extract_text`` body (``deploy/runpod-trocr``);
* :mod:`.chat` -- OpenAI chat requests: vLLM's OpenAI server and our workers (``deploy/ocrworker``);
* :mod:`.sampling` -- the sampling keys every chat server honours (no models: the dialects' import);
* :mod:`.runpod` -- RunPod job inputs: the official vLLM worker's, ours, DeepSeek's whole-PDF job.

This package depends on pydantic and the standard library only and imports nothing else from
``ocrclient``: the deploy images copy this folder alone (to ``/app/ocrclient/contracts``).

Example::

    >>> from ocrclient.contracts.ocular import DecodingOptions
    >>> DecodingOptions.model_validate({"num_beams": 4, "trust_remote_code": True})
    Traceback (most recent call last):
    ...
    pydantic_core._pydantic_core.ValidationError: 1 validation error for DecodingOptions
    trust_remote_code
      Extra inputs are not permitted ...
"""

from ._base import Lenient, Strict, first_error, unknown_fields

__all__ = ["Lenient", "Strict", "first_error", "unknown_fields"]
