"""``python -m dsocr_probe``: the same as ``dsocr-probe`` and ``pytest --dsocr-probe``."""

import sys

from .cli import main

sys.exit(main())
