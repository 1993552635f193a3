"""Label entities and sentence stances in news articles: ``python scripts/predict.py --ner RUN --stance RUN INPUT...``

Run ``python scripts/predict.py --help`` for the options; the work is done in ``src.predict``.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere without installing

from src.predict.cli import main

if __name__ == "__main__":
    sys.exit(main())
