"""Modal app: LightOnOCR-1B-1025 behind vLLM's OpenAI-compatible server.

Deploy (settings are read from the environment at deploy time and baked into the app)::

    modal deploy deploy/modal-lightonocr/app.py
    MODEL_ID=lightonai/LightOnOCR-0.9B-32k-1025 GPU=L40S modal deploy deploy/modal-lightonocr/app.py
    REQUIRES_PROXY_AUTH=1 modal deploy deploy/modal-lightonocr/app.py   # Modal-Key / Modal-Secret

The URL printed by ``modal deploy`` serves ``/health``, ``/v1/models`` and
``/v1/chat/completions``; ocrclient's ``modal-lightonocr`` backend points at ``<url>/v1``.
Weights live in the ``lightonocr-hf-cache`` volume, so only the first cold start downloads them.
"""

from __future__ import annotations

import os
import subprocess

import modal

APP_NAME = os.environ.get("APP_NAME", "ocrclient-lightonocr")
MODEL_ID = os.environ.get("MODEL_ID", "lightonai/LightOnOCR-1B-1025")
MODEL_REVISION = os.environ.get("MODEL_REVISION", "")  # pin a commit for reproducible deploys
GPU = os.environ.get("GPU", "A100-40GB")  # the seed guide's GPU (and the price the profile counts)
MAX_INPUTS = int(os.environ.get("MAX_INPUTS", "64"))
MAX_NUM_SEQS = int(os.environ.get("MAX_NUM_SEQS", "128"))
MAX_MODEL_LEN = int(os.environ.get("MAX_MODEL_LEN", "8192"))
GPU_MEMORY_UTILIZATION = os.environ.get("GPU_MEMORY_UTILIZATION", "0.90")
SCALEDOWN_WINDOW = int(os.environ.get("SCALEDOWN_WINDOW", str(15 * 60)))
TIMEOUT = int(os.environ.get("TIMEOUT", str(10 * 60)))
STARTUP_TIMEOUT = int(os.environ.get("STARTUP_TIMEOUT", str(15 * 60)))
FAST_BOOT = os.environ.get("FAST_BOOT", "0").lower() in ("1", "true", "yes")
REQUIRES_PROXY_AUTH = os.environ.get("REQUIRES_PROXY_AUTH", "0").lower() in ("1", "true", "yes")
VLLM_PORT = 8000


def gpu_count(gpu: str) -> int:
    """How many GPUs a Modal GPU string asks for (``"L4:2"`` -> 2, ``"H100"`` -> 1)."""
    _, sep, count = gpu.rpartition(":")
    return int(count) if sep and count.isdigit() and int(count) > 0 else 1

VLLM_VERSION = "0.15.0"

image = (
    modal.Image.from_registry("nvidia/cuda:12.8.1-devel-ubuntu22.04", add_python="3.12")
    .entrypoint([])
    .uv_pip_install(f"vllm=={VLLM_VERSION}", "huggingface_hub[hf_transfer]==0.36.0")
    .env(
        {
            "HF_HUB_ENABLE_HF_TRANSFER": "1",
            "HF_HOME": "/root/.cache/huggingface",
            "VLLM_USE_V1": "1",
        }
    )
)

hf_cache = modal.Volume.from_name("lightonocr-hf-cache", create_if_missing=True)
vllm_cache = modal.Volume.from_name("lightonocr-vllm-cache", create_if_missing=True)

app = modal.App(APP_NAME)


def vllm_command() -> list[str]:
    """The ``vllm serve`` command line (flags from the LightOnOCR model card)."""
    cmd = [
        "vllm",
        "serve",
        MODEL_ID,
        "--host",
        "0.0.0.0",
        "--port",
        str(VLLM_PORT),
        "--served-model-name",
        MODEL_ID,
        "--limit-mm-per-prompt",
        '{"image": 1}',
        "--mm-processor-cache-gb",
        "0",
        "--no-enable-prefix-caching",
        "--max-model-len",
        str(MAX_MODEL_LEN),
        "--max-num-seqs",
        str(MAX_NUM_SEQS),
        "--gpu-memory-utilization",
        GPU_MEMORY_UTILIZATION,
        "--uvicorn-log-level",
        "warning",
    ]
    if MODEL_REVISION:
        cmd += ["--revision", MODEL_REVISION]
    # FAST_BOOT skips CUDA-graph capture and compilation: quicker cold start, lower throughput
    cmd += ["--enforce-eager"] if FAST_BOOT else []
    # several GPUs on one container (GPU="L4:2") serve one model only split across them
    if gpu_count(GPU) > 1:
        cmd += ["--tensor-parallel-size", str(gpu_count(GPU))]
    return cmd


@app.function(
    image=image,
    gpu=GPU,
    volumes={"/root/.cache/huggingface": hf_cache, "/root/.cache/vllm": vllm_cache},
    scaledown_window=SCALEDOWN_WINDOW,
    timeout=TIMEOUT,
)
@modal.concurrent(max_inputs=MAX_INPUTS)
@modal.web_server(
    port=VLLM_PORT, startup_timeout=STARTUP_TIMEOUT, requires_proxy_auth=REQUIRES_PROXY_AUTH
)
def serve() -> None:
    """Start vLLM in the background; Modal routes HTTP to the port once it accepts connections."""
    subprocess.Popen(vllm_command())


@app.local_entrypoint()
def main(url: str = "") -> None:
    """``modal run app.py --url <deployed url>``: check /health and /v1/models (with
    ``MODAL_KEY`` / ``MODAL_SECRET`` set, sent as the proxy-auth headers)."""
    import json
    import urllib.request

    base = (url or serve.get_web_url() or "").rstrip("/")
    # with REQUIRES_PROXY_AUTH the proxy wants a token's pair: MODAL_KEY / MODAL_SECRET, as the client
    key, secret = os.environ.get("MODAL_KEY"), os.environ.get("MODAL_SECRET")
    headers = {"Modal-Key": key, "Modal-Secret": secret} if key and secret else {}
    for path in ("/health", "/v1/models"):
        request = urllib.request.Request(base + path, headers=headers)
        with urllib.request.urlopen(request, timeout=600) as resp:
            body = resp.read().decode() or "{}"
            print(path, resp.status, json.loads(body) if path.endswith("models") else "ok")
