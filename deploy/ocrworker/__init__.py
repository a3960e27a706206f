"""Shared code for the RunPod workers in ``deploy/`` (job envelope, validation, guards).

Pure Python (pillow + httpx + pydantic, and the client's request models ``ocrclient.contracts``,
which the images copy to ``/app/ocrclient/contracts``): no torch / vllm / transformers at import
time, so the request handling of every worker runs on a CPU box with a stand-in model.

Example::

    from ocrworker.envelope import parse_pages, chat_completion
    pages = parse_pages({"openai_route": "/v1/chat/completions", "openai_input": body})
"""

__all__ = ["batching", "envelope", "modelcache", "netguard", "standin"]
