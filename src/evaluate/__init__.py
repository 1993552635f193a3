"""Evaluation of newsframe models: metrics (one ``metrics.json`` schema for both tasks), reports, baselines and
the cross-validation summary. ``python -m src.evaluate --help`` for the command line.

metrics.json (schema_version 1)::

    schema_version   1
    task             the task's name ("ner", "stance"); each task writes its own fields (``Task.metrics``)
    n_documents      gold documents scored
    n_sentences      gold sentences scored (stance: those with a gold stance)
    headline         {"name": "micro_f1" (ner) | "macro_f1" (stance), "value": float}
    per_label        {label: {"precision", "recall", "f1", "support"}}; labels in gold or predictions only
    micro, macro     {"precision", "recall", "f1", "support"}  (stance: micro = accuracy)
    ner only:        n_gold, n_predicted (entity counts),
                     span_match {"per_label": {label: {"tp","fp","fn","precision","recall","f1"}},
                                 "micro": {...}, "agrees_with_seqeval": bool}
    stance only:     accuracy, confusion_matrix {"labels": [...], "matrix": [[...]]} (rows gold, columns predicted),
                     doc_stance_accuracy, doc_stance [{"id", "gold", "pred"}]
"""

from src.tasks.scoring import BaselineUnavailable

from .cv import CVError, cross_validate, write_cv
from .metrics import SCHEMA_VERSION, evaluate_predictions
from .report import render_report, write_evaluation

__all__ = [
    "SCHEMA_VERSION",
    "BaselineUnavailable",
    "CVError",
    "cross_validate",
    "evaluate_predictions",
    "render_report",
    "write_cv",
    "write_evaluation",
]
