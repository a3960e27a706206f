"""A base URL that redirects, on every transport, as a user meets it: a RunPod base URL given as
``http://`` where the API is ``https://``, a pod or worker that moved.  The whole kind: each
transport x each redirect status, to another origin (httpx then leaves the API key behind).

* RunPod (redirects not followed: its API never redirects and a POST redirected by 301/302/303
  becomes a GET): the run stops at the first page with one line naming where the URL points
  (every page failed alone with "a non-JSON body", the run going on);
* OpenAI and ocular (redirects followed: Modal's 303 to the result): the server where the
  redirect lands refuses the request without the key, and the error says the redirect is why
  (it blamed the key, "check the API key").
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from PIL import Image

import ocrclient
from ocrclient.errors import AuthError, EndpointError, RunAborted
from ocrclient.testing import OcularSimulator, OpenAISimulator, RunPodSimulator


class _Server:
    """A loopback server answering every request with ``status`` and ``headers(path)``; it
    counts the requests and keeps each one's headers."""

    def __init__(self, status: int, headers: Callable[[str], dict[str, str]]) -> None:
        outer = self
        self.hits = 0
        self.seen: list[dict[str, str]] = []

        class Handler(BaseHTTPRequestHandler):
            def _any(self) -> None:
                outer.hits += 1
                outer.seen.append({k.lower(): v for k, v in self.headers.items()})
                length = int(self.headers.get("content-length") or 0)
                if length:
                    self.rfile.read(length)
                self.send_response(status)
                for name, value in {**headers(self.path), "Content-Length": "0"}.items():
                    self.send_header(name, value)
                self.end_headers()

            do_GET = do_POST = _any

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _Redirector(target: str, status: int) -> _Server:
    """Answers every request with ``status`` and ``Location: target + path``."""
    return _Server(status, lambda path: {"Location": target + path})


def _Recorder() -> _Server:
    """Answers 401 to everything, keeping each request's headers."""
    return _Server(401, lambda path: {})


@pytest.fixture
def page(tmp_path: Path) -> Path:
    Image.new("RGB", (300, 200), "white").save(tmp_path / "p1.png")
    return tmp_path / "p1.png"


@pytest.fixture
def redirector() -> Iterator[list[_Server]]:
    made: list[_Server] = []
    yield made
    for r in made:
        r.close()


STATUSES = [301, 302, 303, 307, 308]


@pytest.mark.parametrize("status", STATUSES)
def test_runpod_base_url_that_redirects_stops_the_run_naming_where_it_points(
    status: int, page: Path, redirector: list[_Server]
) -> None:
    pages = [page, page.with_name("p2.png"), page.with_name("p3.png")]
    for p in pages[1:]:
        p.write_bytes(page.read_bytes())
    with RunPodSimulator(api_key="rp-good") as sim:
        root = sim.base_url.removesuffix("/v2")
        r = _Redirector(root, status)
        redirector.append(r)
        with pytest.raises(RunAborted) as err:
            list(ocrclient.convert_many(pages, backend="runpod-chandra", base_url=r.url + "/v2",
                                        endpoint_id=sim.endpoint_id, api_key="rp-good", cache=False, max_attempts=3,
                                        concurrency=1))  # fmt: skip
    assert isinstance(err.value, EndpointError), type(err.value)
    msg = str(err.value)
    assert f"HTTP {status}" in msg and f"to {root}/v2/" in msg and "base URL" in msg, msg
    assert "API key" not in msg
    assert r.hits == 1  # stopped at the first: not resent, not one per page
    assert sim.jobs_submitted == 0


@pytest.mark.parametrize("status", STATUSES)
@pytest.mark.parametrize("kind", ["openai", "ocular"])
def test_a_followed_redirect_to_another_host_is_named_not_the_key(
    kind: str, status: int, page: Path, redirector: list[_Server]
) -> None:
    sim: OpenAISimulator | OcularSimulator
    if kind == "openai":
        sim = OpenAISimulator(model="m", api_key="sk-good")
        backend, base = "openai", lambda r: r.url + "/v1"
    else:
        sim = OcularSimulator(api_key="oc-good")
        backend, base = "runpod-trocr", lambda r: r.url
    with sim:
        r = _Redirector(sim.url, status)
        redirector.append(r)
        extra = {"model": "m"} if kind == "openai" else {"transport": "ocular"}
        try:
            doc = ocrclient.convert(page, backend=backend, base_url=base(r), api_key=sim.api_key, cache=False,
                                    max_attempts=2, **extra)  # fmt: skip
        except RunAborted as exc:
            msg = str(exc)
            assert isinstance(exc, AuthError | EndpointError), (type(exc), msg)
            assert f"redirected to {sim.url}" in msg or f"to {sim.url}" in msg, msg
            assert "check the API key" not in msg, msg
        else:  # (a 301/302/303 turns a POST into a GET: the server does not serve that route)
            failed = [p for p in doc.pages if p.status == "failed"]
            assert failed and all(p.error and f"redirect to {sim.url}" in p.error.message for p in failed), doc.pages


@pytest.mark.parametrize("status", [307, 308])
@pytest.mark.parametrize(("backend", "header"), [("openai", "authorization"), ("runpod-trocr", "authorization"),
                                                 ("runpod-trocr", "x-api-key")])  # fmt: skip
def test_the_key_never_follows_a_redirect_to_another_host(
    backend: str, header: str, status: int, page: Path, redirector: list[_Server]
) -> None:
    """httpx drops only ``Authorization`` on a redirect to another host: the ocular transport's
    custom ``api_key_header`` went along with the key in it."""
    target = _Recorder()
    redirector.append(target)
    r = _Redirector(target.url, status)
    redirector.append(r)
    key = "sk-" + "K" * 24
    extra: dict[str, object] = {"model": "m", "base_url": r.url + "/v1"} if backend == "openai" else {
        "transport": "ocular", "base_url": r.url, "transport_options": {"api_key_header": header}}  # fmt: skip
    with pytest.raises(RunAborted):
        ocrclient.convert(page, backend=backend, api_key=key, cache=False, max_attempts=1, **extra)
    assert target.seen, "the redirect was not followed"
    assert not [h for h in target.seen if any(key in v for v in h.values())], target.seen
