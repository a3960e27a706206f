"""The ``csv`` output format: one row per block (page, type, box in PDF points, text)."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from ocrclient.document import Document


def write(doc: Document, path: Path, **options: Any) -> Path:
    buf = io.StringIO()
    rows = csv.writer(buf)
    rows.writerow(["page", "type", "x0", "y0", "x1", "y1", "text"])
    for page in doc.pages:
        for block in page.blocks:
            box = [f"{v:.1f}" for v in block.bbox] if block.bbox else ["", "", "", ""]
            rows.writerow([page.page, block.type, *box, block.text])
    path.write_text(buf.getvalue(), encoding="utf-8")
    return path
