"""One ``ocrclient.Client`` for many calls: the backend, its connections, the page cache and one
concurrency limit are held across calls (docs/python-api.md, "The client").

Runs against any OpenAI-compatible server when ``OCRCLIENT_BASE_URL`` is set (with
``OCRCLIENT_API_KEY`` and ``OCRCLIENT_MODEL``), otherwise against an ``OpenAISimulator`` on
127.0.0.1::

    python examples/api_client.py [PDF]
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import ocrclient
from ocrclient.testing import OpenAISimulator

SAMPLE = Path(__file__).with_name("sample.pdf")


def run(client: ocrclient.Client, path: Path) -> None:
    # one document: every page present, in order
    doc: ocrclient.Document = client.convert(path, pages="1-2")
    print(f"convert: {doc.source}: {len(doc.pages)} pages, ok={doc.ok}")

    # many documents through the same backend and limit, each result as it is done
    for result in client.convert_many([path, path.read_bytes()], pages="1"):
        print(f"convert_many: {result.source.name}: {result.document.pages[0].status}")

    # the pages of one document as they finish (not in order)
    finished = [page.page for page in client.stream_pages(path)]
    print(f"stream_pages: {sorted(finished)}")


def main() -> int:
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else SAMPLE
    if os.environ.get("OCRCLIENT_BASE_URL"):
        print("target: OpenAI-compatible server (OCRCLIENT_BASE_URL)")
        with ocrclient.Client("openai", timeout=120) as client:
            run(client, path)
        return 0
    print("target: simulator (OpenAISimulator)")
    with OpenAISimulator() as sim, ocrclient.Client(
        "openai", base_url=sim.base_url, api_key=sim.api_key, model=sim.model, concurrency=4, cache=False
    ) as client:
        run(client, path)
        print(f"requests in flight at most: {sim.max_concurrency} (limit {client.concurrency})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
