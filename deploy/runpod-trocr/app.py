"""The TrOCR "ocular" service over plain HTTP (FastAPI), sharing ``trocr_core`` with the handler.

Routes: ``GET /health``, ``POST /extract_text``, ``/extract_text_robust``,
``/extract_structured``, ``/extract_structured_robust`` (bodies: see ``trocr_core``).  Errors
answer ``{"detail": "<one line>"}`` with 400 (bad input), 404, 413 (too large) or 500.

Run: ``uvicorn app:app --host 0.0.0.0 --port 8000`` (or ``python app.py``).  If ``API_KEY`` is
set, requests must send ``Authorization: Bearer <API_KEY>`` (``/health`` excepted).
"""

from __future__ import annotations

import hmac
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from trocr_core import OcrService, ServiceError


def create_app(service: OcrService | None = None) -> FastAPI:
    """Build the app around ``service`` (default: the real TrOCR models, lazily loaded)."""
    holder: dict[str, OcrService] = {}

    def svc() -> OcrService:
        if "s" not in holder:
            holder["s"] = service or OcrService()
        return holder["s"]

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if os.environ.get("PRELOAD_MODELS"):
            svc().preload()
        yield

    app = FastAPI(title="ocrclient TrOCR service", version="1.0", lifespan=lifespan)

    @app.middleware("http")
    async def auth(request: Request, call_next: Any) -> Any:
        key = os.environ.get("API_KEY", "")
        if key and request.url.path != "/health":
            sent = request.headers.get("authorization", "")
            if not hmac.compare_digest(sent.encode(), f"Bearer {key}".encode()):
                return JSONResponse({"detail": "missing or wrong API key"}, status_code=401)
        return await call_next(request)

    async def serve(route: str, request: Request) -> JSONResponse:
        try:
            body = await request.json()
        except ValueError:
            return JSONResponse({"detail": "body is not JSON"}, status_code=400)
        try:
            return JSONResponse(await svc().route(route, body))
        except ServiceError as exc:
            return JSONResponse({"detail": str(exc)}, status_code=exc.status)
        except Exception as exc:
            return JSONResponse({"detail": f"OCR failed: {type(exc).__name__}"}, status_code=500)

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return svc().health()

    for route in OcrService.ROUTES[1:]:

        async def endpoint(request: Request, _route: str = route) -> JSONResponse:
            return await serve(_route, request)

        app.add_api_route(route, endpoint, methods=["POST"], name=route.strip("/"))

    return app


app = create_app()

if __name__ == "__main__":
    import uvicorn

    uvicorn.run(
        app, host=os.environ.get("HOST", "0.0.0.0"), port=int(os.environ.get("PORT", "8000"))
    )
