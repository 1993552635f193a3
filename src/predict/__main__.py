"""``python -m src.predict --ner RUN --stance RUN INPUT...``: batch prediction, the entry point beside src.train,
src.evaluate, src.select and src.data (``scripts/predict.py`` is the same command)."""

from __future__ import annotations

import sys

from src.predict.cli import main

if __name__ == "__main__":
    sys.exit(main())
