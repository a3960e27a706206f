#!/usr/bin/env bash
# One-time setup on a RunPod GPU pod (template "RunPod PyTorch", image
# runpod/pytorch:2.4.0-py3.11-cuda12.4.1-devel-ubuntu22.04; >= 8 GB VRAM, 40 GB disk,
# TCP/HTTP port 8000 exposed).  Installs pinned vLLM + transformers and pre-downloads the weights
# into /workspace (the pod's persistent volume) so restarts do not download again.
# Each `pip install` below is one resolve: tests/deploy/test_deploy_pins.py checks every one of
# them on PyPI for that image's Python.
set -euo pipefail

MODEL_ID="${MODEL_ID:-lightonai/LightOnOCR-2-1B}"
VLLM_VERSION="${VLLM_VERSION:-0.15.0}"
TRANSFORMERS_VERSION="${TRANSFORMERS_VERSION:-5.0.0}"
export HF_HOME="${HF_HOME:-/workspace/hf-cache}"

python3 -m pip install --no-cache-dir --upgrade "pip==25.3"
python3 -m pip install --no-cache-dir "vllm==${VLLM_VERSION}" "httpx==0.28.1"
# LightOnOCR-2 needs transformers 5; vLLM 0.15 pins <5, so install it afterwards, on its own: a
# deliberate override of vLLM's pin (works at runtime).
python3 -m pip install --no-cache-dir "transformers==${TRANSFORMERS_VERSION}"

python3 - <<PY
from huggingface_hub import snapshot_download
path = snapshot_download("${MODEL_ID}")
print("weights in", path)
PY

if [ ! -s /workspace/.vllm_api_key ]; then
  python3 -c "import secrets; print(secrets.token_urlsafe(32))" > /workspace/.vllm_api_key
  chmod 600 /workspace/.vllm_api_key
  echo "generated an API key in /workspace/.vllm_api_key (give it to the client as VLLM_API_KEY)"
fi
echo "setup done; start the server with: bash serve.sh"
