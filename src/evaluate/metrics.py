"""Metrics from gold and predicted records (matched by document id), in the one ``metrics.json`` schema.

Each task scores its own layer (``Task.metrics`` in ``src/tasks``: NER on word-level IOB2 tags with seqeval, stance
per gold sentence with scikit-learn); this module checks the documents match and picks the task.
"""

from __future__ import annotations

from collections.abc import Sequence

from src.tasks import get_task
from src.tasks.scoring import SCHEMA_VERSION

__all__ = ["SCHEMA_VERSION", "evaluate_predictions"]


def evaluate_predictions(
    task: str,
    gold_records: Sequence[dict],
    pred_records: Sequence[dict],
    labels: Sequence[str] = (),
    none_label: str | None = None,
) -> dict:
    """Metrics dict (module schema) for ``task``; prediction ids must equal gold ids. ``labels`` orders the per-label
    rows (the model's or the data config's); ``none_label`` is the label that frames nothing (document stance)."""
    return get_task(task).score(gold_records, pred_records, labels, none_label)
