"""Find a model in RunPod's model cache and force the Hugging Face libraries offline.

RunPod's "Model" endpoint setting pre-downloads a Hub repo to
``/runpod-volume/huggingface-cache/hub/models--{org}--{name}/snapshots/{revision}/`` before the
worker starts.  :func:`resolve_model_path` turns ``org/name`` into that snapshot directory
(``refs/main`` first, else the newest snapshot); :func:`configure_offline` points ``HF_HOME``
at the cache and sets ``HF_HUB_OFFLINE=1`` so a missing model fails fast instead of
downloading 20 GB on every cold start.

Example::

    configure_offline()
    path = resolve_model_path("datalab-to/chandra")   # -> .../snapshots/<hash>
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["DEFAULT_CACHE_ROOT", "ModelNotCached", "configure_offline", "resolve_model_path"]

DEFAULT_CACHE_ROOT = "/runpod-volume/huggingface-cache"


class ModelNotCached(RuntimeError):
    """The model is neither a local directory nor in the cache (and offline mode is on)."""


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


def configure_offline(cache_root: str | None = None) -> str:
    """Set ``HF_HOME`` / ``HF_HUB_CACHE`` to the RunPod cache and default ``HF_HUB_OFFLINE=1``.

    Returns the cache root.  An explicit ``HF_HUB_OFFLINE=0`` in the environment is kept
    (useful outside RunPod, when the weights may be downloaded).
    """
    chosen = cache_root or os.environ.get("RUNPOD_HF_CACHE_ROOT")
    if chosen:  # named for this worker: over the HF_HOME our images set as their default
        os.environ["HF_HOME"] = chosen
        os.environ["HF_HUB_CACHE"] = str(Path(chosen) / "hub")
    os.environ.setdefault("HF_HOME", DEFAULT_CACHE_ROOT)
    os.environ.setdefault("HF_HUB_CACHE", str(Path(os.environ["HF_HOME"]) / "hub"))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", os.environ["HF_HUB_OFFLINE"])
    return os.environ["HF_HOME"]


def resolve_model_path(model_id: str, cache_root: str | None = None) -> str:
    """Local directory for ``model_id``: itself if it is a directory, else the cached snapshot.

    When nothing is cached and ``HF_HUB_OFFLINE`` is not on, the repo id is returned unchanged
    so the loader may download it.  Raises :class:`ModelNotCached` otherwise.
    """
    if not model_id or not model_id.strip():
        raise ModelNotCached("model id is empty")
    direct = Path(model_id)
    if direct.is_absolute():
        if direct.is_dir():
            return str(direct)
        raise ModelNotCached(f"model directory {model_id} does not exist")
    root = Path(cache_root or os.environ.get("HF_HOME") or DEFAULT_CACHE_ROOT)
    repo_dir = root / "hub" / ("models--" + model_id.strip().replace("/", "--"))
    snapshots = repo_dir / "snapshots"
    ref = repo_dir / "refs" / "main"
    if ref.is_file():
        candidate = snapshots / ref.read_text().strip()
        if candidate.is_dir():
            return str(candidate)
    if snapshots.is_dir():
        found = sorted(
            (p for p in snapshots.iterdir() if p.is_dir()), key=lambda p: p.stat().st_mtime
        )
        if found:
            return str(found[-1])
    if _truthy(os.environ.get("HF_HUB_OFFLINE")):
        raise ModelNotCached(
            f"{model_id} is not in the model cache at {repo_dir} and HF_HUB_OFFLINE=1; "
            "set the endpoint's Model field to this repo id"
        )
    return model_id
