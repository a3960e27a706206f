"""The price each profile counts is the one its server's guide states.

A user reads a deploy README to know what a page costs, and ``ocr convert`` reports the cost of a
run from the profile's ``price_per_gpu_second`` / ``price_per_hour``.  They disagreed: Chandra's
README priced a 48 GB PRO GPU (~$0.00053/s) where the profile counts an A6000/A40 ($0.00034/s),
and the Modal app deployed an L40S by default while its profile was priced for the seed guide's
A100-40GB.  The whole kind: every priced profile whose server is in ``deploy/`` names the same
price in that server's README and in docs/backends.md, and the Modal app's default GPU is the
one its price is for."""

from __future__ import annotations

import re
import tomllib

import pytest
from deploy_helpers import DEPLOY, load_module

ROOT = DEPLOY.parent
PRICE_KEYS = ("price_per_gpu_second", "price_per_hour")


def _priced() -> list[tuple[str, str, float]]:
    found = []
    for path in sorted((ROOT / "backends").glob("*.toml")):
        data = tomllib.loads(path.read_text())
        for key in PRICE_KEYS:
            if key in data and (DEPLOY / path.stem / "README.md").exists():
                found.append((path.stem, key, float(data[key])))
    return found


PRICED = _priced()


def test_the_profiles_with_a_server_are_priced() -> None:
    names = {name for name, _, _ in PRICED}
    servers = {p.parent.name for p in DEPLOY.glob("*/README.md")} - {"ocrworker"}
    assert names == servers, servers - names


def _figures(text: str) -> set[float]:
    return {float(x) for x in re.findall(r"(?<![\d.])(\d+\.\d+)(?![\d.])", text)}


def _section(text: str, name: str) -> str:
    match = re.search(rf"^## {re.escape(name)}\n(.*?)(?=^## |\Z)", text, re.S | re.M)
    assert match, f"docs/backends.md has no section for {name}"
    return match.group(1)


@pytest.mark.parametrize(("name", "key", "price"), PRICED, ids=[p[0] for p in PRICED])
def test_the_readme_and_the_docs_name_the_profiles_price(name: str, key: str, price: float) -> None:
    readme = (DEPLOY / name / "README.md").read_text()
    assert f"`{key} = {price:g}`" in readme.replace("\n", " "), f"deploy/{name}/README.md does not state {key} = {price:g}"
    docs = _section((ROOT / "docs" / "backends.md").read_text(), name)
    assert price in _figures(docs), f"docs/backends.md's {name} section does not state its price {price:g}"


def test_the_modal_app_deploys_the_gpu_its_profile_is_priced_for(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GPU", raising=False)
    pytest.importorskip("modal")
    app = load_module("modal_app_prices", DEPLOY / "modal-lightonocr" / "app.py")
    hourly = tomllib.loads((ROOT / "backends" / "modal-lightonocr.toml").read_text())["price_per_gpu_second"] * 3600
    readme = (DEPLOY / "modal-lightonocr" / "README.md").read_text().replace("\n", " ")
    assert re.search(rf"{re.escape(app.GPU)} ≈ \${hourly:.2f}/h", readme), (app.GPU, hourly)
    seed_gpu = "A100-40GB"  # the seed guide's gpu="A100-40GB:1"
    assert seed_gpu == app.GPU
