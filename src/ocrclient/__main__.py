"""``python -m ocrclient``: the ``ocr`` command (:mod:`ocrclient.console`)."""

from .console import main

if __name__ == "__main__":
    main()
