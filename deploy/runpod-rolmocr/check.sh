#!/usr/bin/env bash
# Send one page to the RolmOCR endpoint and check the reply:  RUNPOD_API_KEY=... bash check.sh <endpoint-id> [image]
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
exec python3 "$HERE/../check_runpod_endpoint.py" --endpoint-id "${1:?endpoint id}" \
  --model "${MODEL_NAME:-reducto/RolmOCR}" --max-tokens 4096 \
  --prompt "Return the plain text representation of this document as if you were reading it naturally." \
  ${2:+--image "$2"}
