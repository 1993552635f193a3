"""What every task's metrics share: matching predictions to gold documents and the one ``metrics.json`` row shape.

A task scores its own layer (``Task.metrics``); these helpers keep the schema the same for all of them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from src.labels import LabelScheme

SCHEMA_VERSION = 1

# A baseline (``Task.baselines``): (train records, test records, the runs' LabelScheme) -> prediction records of the
# test records on their gold sentences, so they go through the same metric code. Hyperparameters fixed, never tuned
# on a test fold.
Baseline = Callable[[Sequence[dict], Sequence[dict], "LabelScheme"], list[dict]]


class BaselineUnavailable(RuntimeError):
    """A baseline that cannot run here (its package or model is not installed); reports skip it with the reason."""


def match_documents(gold_records: Sequence[dict], pred_records: Sequence[dict]) -> dict[str, dict]:
    """Predictions by id, after checking they cover exactly the gold documents and none failed."""
    pred_by_id = {p["id"]: p for p in pred_records}
    gold_ids = [g["id"] for g in gold_records]
    missing = [i for i in gold_ids if i not in pred_by_id]
    extra = sorted(set(pred_by_id) - set(gold_ids))
    failed = [i for i in gold_ids if i in pred_by_id and pred_by_id[i].get("error")]
    problems = []
    if missing:
        problems.append(f"no prediction for gold documents {missing}")
    if extra:
        problems.append(f"predictions for documents not in gold: {extra}")
    if failed:
        problems.append(f"predictions with an error field: {[(i, pred_by_id[i]['error']) for i in failed]}")
    if problems:
        raise ValueError("; ".join(problems))
    return pred_by_id


def ordered_labels(labels: Iterable[str], known: Sequence[str] = ()) -> list[str]:
    """``labels`` in the order of ``known`` (the model's or the data config's), unknown ones after it alphabetically.

    EXAMPLE: ``ordered_labels({"b", "z", "a"}, ["b", "a"]) -> ["b", "a", "z"]``
    """
    present = set(labels)
    return [x for x in known if x in present] + sorted(present - set(known))


def prf(precision: float, recall: float, f1: float, support: int) -> dict:
    return {"precision": float(precision), "recall": float(recall), "f1": float(f1), "support": int(support)}


def prf_from_report(row: dict) -> dict:
    """One seqeval/scikit-learn report row in the schema's shape (plain floats, NaN as 0)."""
    values = [float(row[k]) for k in ("precision", "recall", "f1-score")]
    return prf(*(0.0 if v != v else v for v in values), int(row["support"]))


def counts_to_scores(tp: int, fp: int, fn: int) -> dict:
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"tp": tp, "fp": fp, "fn": fn, "precision": precision, "recall": recall, "f1": f1}


def context(text: str, start: int, end: int, bounds: tuple[int, int], width: int = 40) -> str:
    """``text[start:end]`` marked ``[[...]]`` with up to ``width`` characters either side inside ``bounds``."""
    lo, hi = max(bounds[0], start - width), min(bounds[1], end + width)
    snippet = f"{text[lo:start]}[[{text[start:end]}]]{text[end:hi]}"
    return " ".join(snippet.split())


def shown(items: Sequence, max_items: int) -> str:
    """``"12"`` or ``"120, first 50"``: how many items a report section lists."""
    return f"{len(items)}{f', first {max_items}' if len(items) > max_items else ''}"
