"""An API key as users paste it.

A key with a trailing space or newline (a copy-paste, ``$(cat keyfile)``), or with a character
no HTTP header can carry, was sent as it was: httpx refused the header, every page was retried as
a "connection failed" and failed, a 30-page document took 19 s to fail and thousands would take
hours.  The kind: every secret that goes into a header (the API key of every transport, Modal's
key and secret) x every way it can be off: whitespace around it is dropped and the run works;
a space, a control or a non-ASCII character inside it is a one-line configuration error, exit 2,
before anything is sent, naming where the key comes from and never the key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ocrclient.errors import ConfigError
from ocrclient.testing import OpenAISimulator
from ocrclient.testing.runpod_sim import RunPodSimulator
from ocrclient.transports.ocular import OcularTransport
from ocrclient.transports.openai import OpenAITransport
from ocrclient.transports.runpod import RunPodTransport

from .pdfgen import text_pdf
from .test_bad_inputs import assert_unusable, ocr

KEY = "sk-hygiene-0123456789abcdef"
PADDED = {"a trailing space": KEY + " ", "a trailing newline": KEY + "\n", "a leading tab": "\t" + KEY,
          "CRLF from a Windows file": KEY + "\r\n"}  # fmt: skip
BROKEN = {"a space inside": "sk-hygiene 0123456789abcdef", "a non-ASCII letter": "sk-hygiène-0123456789abcdef",
          "a control character": "sk-hygiene-\x01-0123456789", "a newline inside": "sk-hygiene\n0123456789abcdef"}  # fmt: skip

#: every transport's constructor, given one secret: the header values the client will send
TRANSPORTS = {
    "openai API key": lambda k: OpenAITransport("http://127.0.0.1:9/v1", model="m", api_key=k)._http.headers["Authorization"],
    "Modal key": lambda k: OpenAITransport("http://127.0.0.1:9/v1", model="m", api_key=KEY, modal=True,
                                           modal_key=k, modal_secret=KEY)._http.headers["Modal-Key"],
    "Modal secret": lambda k: OpenAITransport("http://127.0.0.1:9/v1", model="m", api_key=KEY, modal=True,
                                              modal_key=KEY, modal_secret=k)._http.headers["Modal-Secret"],
    "RunPod API key": lambda k: RunPodTransport(endpoint_id="ep", api_key=k)._headers["Authorization"],
    "ocular API key": lambda k: OcularTransport("http://127.0.0.1:9", api_key=k)._client.headers["Authorization"],
}  # fmt: skip


@pytest.mark.parametrize("how", list(PADDED))
@pytest.mark.parametrize("which", list(TRANSPORTS))
def test_whitespace_around_a_secret_is_not_sent(which: str, how: str) -> None:
    assert TRANSPORTS[which](PADDED[how]).endswith(KEY)


@pytest.mark.parametrize("how", list(BROKEN))
@pytest.mark.parametrize("which", list(TRANSPORTS))
def test_a_secret_no_header_can_carry_is_a_config_error(which: str, how: str) -> None:
    with pytest.raises(ConfigError) as err:
        TRANSPORTS[which](BROKEN[how])
    assert "copied whole" in str(err.value) and "hygi" not in str(err.value)


@pytest.fixture(scope="module")
def pdf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return text_pdf(tmp_path_factory.mktemp("doc") / "doc.pdf", [["a page"]])


def _cli(kind: str, key: str, pdf: Path, out: Path) -> tuple[Any, int]:
    """``ocr convert`` with ``key`` in the backend's variable -> (the run, requests the server saw)."""
    if kind == "runpod":
        with RunPodSimulator(api_key=KEY) as sim:
            run = ocr(["convert", str(pdf), "-o", str(out), "--backend", "runpod", "--model", "m", "--no-cache",
                       "--base-url", sim.base_url, "--endpoint-id", str(sim.endpoint_id)],
                      {"RUNPOD_API_KEY": key})  # fmt: skip
            return run, sum(sim.requests.values())
    with OpenAISimulator(model="m", api_key=KEY) as osim:
        run = ocr(["convert", str(pdf), "-o", str(out), "--backend", "openai", "--model", "m", "--no-cache",
                   "--base-url", osim.base_url], {"OCRCLIENT_API_KEY": key})  # fmt: skip
        return run, sum(osim.requests.values())


@pytest.mark.parametrize("kind", ["runpod", "openai"])
def test_the_cli_runs_with_a_padded_key_and_refuses_a_broken_one_before_sending(
    kind: str, pdf: Path, tmp_path: Path
) -> None:
    run, sent = _cli(kind, PADDED["a trailing newline"], pdf, tmp_path / "padded")
    assert run.code == 0 and sent >= 1, run.stderr
    run, sent = _cli(kind, BROKEN["a non-ASCII letter"], pdf, tmp_path / "broken")
    line = assert_unusable(run, "API key", "copied whole")
    assert sent == 0 and "hygi" not in line, line
    assert ("$RUNPOD_API_KEY" if kind == "runpod" else "$OCRCLIENT_API_KEY") in line, line
