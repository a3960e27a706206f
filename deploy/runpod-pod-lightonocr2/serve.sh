#!/usr/bin/env bash
# Start vLLM's OpenAI-compatible server for LightOnOCR-2 on port 8000 of a RunPod pod.
# The proxy URL https://<pod-id>-8000.proxy.runpod.net is public, so --api-key is mandatory:
# it comes from VLLM_API_KEY or /workspace/.vllm_api_key (written by setup.sh).
#   bash serve.sh            # foreground
#   bash serve.sh --daemon   # background, log in /workspace/vllm-server.log
set -euo pipefail

MODEL_ID="${MODEL_ID:-lightonai/LightOnOCR-2-1B}"   # or -bbox, -base, -bbox-base, -ocr-soup, -bbox-soup
PORT="${PORT:-8000}"
GPU_MEMORY_UTILIZATION="${GPU_MEMORY_UTILIZATION:-0.85}"
MAX_MODEL_LEN="${MAX_MODEL_LEN:-16384}"
MAX_NUM_SEQS="${MAX_NUM_SEQS:-64}"
export HF_HOME="${HF_HOME:-/workspace/hf-cache}"
export HF_HUB_OFFLINE="${HF_HUB_OFFLINE:-1}"   # weights were downloaded by setup.sh

if [ -z "${VLLM_API_KEY:-}" ]; then
  if [ -s /workspace/.vllm_api_key ]; then
    VLLM_API_KEY="$(cat /workspace/.vllm_api_key)"
  else
    echo "set VLLM_API_KEY (the proxy URL is public; refusing to serve without a key)" >&2
    exit 1
  fi
fi
export VLLM_API_KEY   # vllm serve reads it from the environment: the key stays out of `ps`

CMD=(vllm serve "$MODEL_ID"
  --host 0.0.0.0 --port "$PORT"
  --served-model-name "$MODEL_ID"
  --limit-mm-per-prompt '{"image": 1}'
  --mm-processor-cache-gb 0
  --no-enable-prefix-caching
  --gpu-memory-utilization "$GPU_MEMORY_UTILIZATION"
  --max-model-len "$MAX_MODEL_LEN"
  --max-num-seqs "$MAX_NUM_SEQS")

if [ "${1:-}" = "--daemon" ]; then
  nohup "${CMD[@]}" > /workspace/vllm-server.log 2>&1 &
  echo "started (pid $!); logs: tail -f /workspace/vllm-server.log"
else
  exec "${CMD[@]}"
fi
