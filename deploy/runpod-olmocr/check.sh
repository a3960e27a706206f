#!/usr/bin/env bash
# Send one page to the olmOCR endpoint and check the reply:  RUNPOD_API_KEY=... bash check.sh <endpoint-id> [image]
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
exec python3 "$HERE/../check_runpod_endpoint.py" --endpoint-id "${1:?endpoint id}" \
  --model "${MODEL_NAME:-allenai/olmOCR-2-7B-1025-FP8}" --max-tokens 4096 \
  --prompt "Attached is one page of a document that you must process. Just return the plain text representation of this document as if you were reading it naturally. Convert equations to LateX and tables to HTML. If there are any figures or charts, label them with the following markdown syntax ![Alt text describing the contents of the figure](page_startx_starty_width_height.png) Return your output as markdown, with a front matter section on top specifying values for the primary_language, is_rotation_valid, rotation_correction, is_table, and is_diagram parameters." \
  ${2:+--image "$2"}
