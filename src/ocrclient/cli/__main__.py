"""``python -m ocrclient.cli``: the ``ocr`` command."""

from . import main

main()
