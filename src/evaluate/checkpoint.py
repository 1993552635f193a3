"""Evaluate a model folder on annotated records: predict on the gold sentences, score, write the files.

Training's held-out evaluation and ``python -m src.evaluate model=...`` both come here, and the Predictor runs the
folder as its ``newsframe.json`` says, so a model scores the same from every entry point.
"""

from __future__ import annotations

from pathlib import Path

from src.data.convert import read_conll
from src.data.records import load_records
from src.files import write_jsonl
from src.labels import LabelScheme
from src.model import resolve_model_dir
from src.model_folder import ModelFolder
from src.predict import Predictor

from .metrics import evaluate_predictions
from .report import write_evaluation


def load_gold_file(path: str | Path, scheme: LabelScheme | None = None) -> list[dict]:
    """Annotated records: .jsonl/.json through the validating loader (against ``scheme``'s labels, by default the
    seed corpus's), anything else read as CoNLL columns."""
    path = Path(path)
    if path.suffix in (".jsonl", ".json"):
        if scheme is None:
            return load_records(path)
        return load_records(path, **scheme.checked_labels)

    return read_conll(path)


def evaluate_records(
    model: str | Path | Predictor,
    gold: list[dict],
    out_dir: str | Path,
    *,
    device: str = "auto",
    batch_size: int = 32,
) -> tuple[dict, dict[str, Path]]:
    """Predict ``gold``'s sentences with the model folder (or a Predictor of one task, as training loads its folder);
    write metrics.json, report.md (+PNG) and predictions.jsonl into ``out_dir``; returns the metrics and the written
    paths."""
    if isinstance(model, Predictor):
        predictor, (task,) = model, model.models
    else:
        folder = resolve_model_dir(model)
        task = ModelFolder.from_dir(folder).task
        # torch, as trained: an ONNX export of every freshly trained fold would cost more than its one pass saves.
        predictor = Predictor.from_pretrained(**{task: folder}, device=device, batch_size=batch_size, backend="torch")
    pred = predictor.predict_records(gold)
    scheme = predictor.scheme
    metrics = evaluate_predictions(task, gold, pred, scheme.stance_labels, scheme.none_label)
    paths = write_evaluation(metrics, gold, pred, out_dir, scheme)
    paths["predictions"] = write_jsonl(Path(out_dir) / "predictions.jsonl", pred)
    return metrics, paths


def evaluate_checkpoint(
    model: str | Path,
    data_path: str | Path,
    out_dir: str | Path | None = None,
    *,
    device: str = "auto",
    batch_size: int = 32,
) -> tuple[dict, dict[str, Path]]:
    """``evaluate_records`` on an annotated file (checked against the labels of the data config the model was
    trained on), by default into ``eval-<data stem>`` beside the model folder."""
    folder = Path(resolve_model_dir(model))
    out = Path(out_dir) if out_dir is not None else folder.parent / f"eval-{Path(data_path).stem}"
    gold = load_gold_file(data_path, ModelFolder.from_dir(folder).scheme)
    return evaluate_records(folder, gold, out, device=device, batch_size=batch_size)
