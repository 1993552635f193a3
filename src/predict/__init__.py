"""Batch prediction: ``Predictor`` for code, ``python scripts/predict.py`` for the shell (see ``cli``).

``Predictor`` is imported on first use, so the command line answers usage errors without loading torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from src.predict.engine import Predictor

__all__ = ["Predictor"]


def __getattr__(name: str) -> object:
    if name in __all__:
        from src.predict import engine

        return getattr(engine, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
