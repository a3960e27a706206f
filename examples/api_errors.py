"""Which exception means what (docs/python-api.md, "Errors"): a failed *page* is data in the
document (``page.status == "failed"`` with ``page.error``), never an exception; a run raises
only when it cannot go on.  Runs offline against simulators::

    python examples/api_errors.py
"""

from __future__ import annotations

import asyncio
import sys
import warnings
from pathlib import Path

import ocrclient
from ocrclient.testing import FaultPlan, OpenAISimulator

SAMPLE = Path(__file__).with_name("sample.pdf")


def main() -> int:
    # bad input: InputError before any page is sent
    try:
        ocrclient.convert("no-such-file.pdf", backend="local", cache=False)
    except ocrclient.InputError as exc:
        print(f"InputError: {exc}")

    # a setting that is missing or invalid: ConfigError
    try:
        ocrclient.Client("no-such-backend")
    except ocrclient.ConfigError as exc:
        print(f"ConfigError: {str(exc)[:60]}...")

    # a server that keeps failing (503): retried with backoff, then the page fails; the run goes on
    with OpenAISimulator(plan=FaultPlan(rates={"http_503": 1.0})) as sim, ocrclient.Client(
        "openai", base_url=sim.base_url, api_key=sim.api_key, model=sim.model, cache=False,
        max_attempts=2, scheduler_options={"backoff_initial_s": 0.01, "backoff_max_s": 0.02},
    ) as client:  # fmt: skip
        doc = client.convert(SAMPLE, pages="1")
        page = doc.pages[0]
        assert page.error is not None
        print(f"failed page: status={page.status} kind={page.error.kind} attempts={page.attempts}")

    # a refused key stops the whole run: AuthError (also a RunAborted, with what finished)
    with OpenAISimulator() as sim:
        try:
            ocrclient.convert(SAMPLE, backend="openai", base_url=sim.base_url, api_key="sk-refused-example",
                              model=sim.model, cache=False)  # fmt: skip
        except ocrclient.AuthError as exc:
            aborted = isinstance(exc, ocrclient.RunAborted)
            print(f"AuthError: run stopped (RunAborted: {aborted})")

    # no server at the address (a pod stopped, a wrong port): the pages wait for one, and after
    # unreachable_s (300 s by default) the run stops: EndpointDownError, a RunAborted whose
    # documents hold what finished; a rerun sends the pages not done
    with OpenAISimulator() as sim:
        gone = sim.base_url
    try:
        with warnings.catch_warnings():  # ("no server answers ...: waiting up to 1 s")
            warnings.simplefilter("ignore")
            ocrclient.convert(SAMPLE, backend="openai", base_url=gone, api_key="k", model="m", cache=False,
                              unreachable_s=1.0)  # fmt: skip
    except ocrclient.EndpointDownError as exc:
        assert isinstance(exc, ocrclient.RunAborted)
        (doc,) = exc.documents
        print(f"EndpointDownError: run stopped, {len(doc.failed_pages)} pages not done ({exc.cause})")

    # a blocking call where an event loop runs: UsageError naming the async twin
    async def handler() -> None:
        try:
            ocrclient.convert(SAMPLE, cache=False)
        except ocrclient.UsageError as exc:
            print(f"UsageError: {str(exc)[:70]}...")

    asyncio.run(handler())
    return 0


if __name__ == "__main__":
    sys.exit(main())
