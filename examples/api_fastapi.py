"""A FastAPI service that OCRs uploads: one ``ocrclient.AsyncClient`` for the whole app, made in
the lifespan and shared by every request, so all requests together keep one concurrency limit
(docs/python-api.md, "Async: FastAPI").  Handlers are ``async def`` and ``await`` the client:
a blocking ``ocrclient.convert`` there would raise ``ocrclient.UsageError``.

Needs ``pip install fastapi uvicorn``.  Serve it with ``uvicorn api_fastapi:app`` (settings
from ``OCRCLIENT_BACKEND`` and the backend's variables); run as a script, it posts the sample to
itself against an ``OpenAISimulator``::

    python examples/api_fastapi.py
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, HTTPException, Request

import ocrclient

SAMPLE = Path(__file__).with_name("sample.pdf")


def make_app(client_settings: dict[str, str | None]) -> FastAPI:
    """The app; ``client_settings`` point the client at a server (empty: the environment's)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with ocrclient.AsyncClient(
            client_settings.get("backend"),
            base_url=client_settings.get("base_url"),
            api_key=client_settings.get("api_key"),
            model=client_settings.get("model"),
            concurrency=8,
            cache=False,
        ) as client:
            app.state.ocr = client
            yield

    app = FastAPI(lifespan=lifespan)

    @app.post("/ocr")
    async def ocr(request: Request, pages: str | None = None) -> dict[str, object]:
        client: ocrclient.AsyncClient = request.app.state.ocr
        try:
            doc = await client.convert(await request.body(), pages=pages)
        except ocrclient.InputError as exc:  # not a PDF or an image, a bad page range
            raise HTTPException(status_code=422, detail=str(exc)) from exc
        except (ocrclient.AuthError, ocrclient.EndpointError) as exc:  # the run stopped
            raise HTTPException(status_code=502, detail=str(exc)) from exc
        return {
            "pages": [{"page": p.page, "status": p.status, "markdown": p.markdown} for p in doc.pages],
            "failed": doc.failed_pages,
        }

    return app


#: for ``uvicorn api_fastapi:app``: the backend and its settings come from the environment
app = make_app({})


def main() -> int:
    from fastapi.testclient import TestClient

    from ocrclient.testing import OpenAISimulator

    print("target: simulator (OpenAISimulator)")
    with OpenAISimulator() as sim:
        settings = {"backend": "openai", "base_url": sim.base_url, "api_key": sim.api_key, "model": sim.model}
        with TestClient(make_app(settings)) as http:
            reply = http.post("/ocr", params={"pages": "1-2"}, content=SAMPLE.read_bytes())
            body = reply.json()
            print(f"POST /ocr: {reply.status_code}, pages {[p['page'] for p in body['pages']]}")
            bad = http.post("/ocr", content=b"not a document")
            print(f"POST /ocr (not a document): {bad.status_code}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
