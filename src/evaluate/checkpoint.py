"""Evaluate a trained checkpoint on an annotated file: predict on the gold sentences, score, write the files."""

from __future__ import annotations

import json
from pathlib import Path

from src.files import write_jsonl

from .metrics import evaluate_predictions
from .report import write_evaluation


def model_folder(path: str | Path) -> Path:
    """The HF model folder of a run folder (its ``model/``) or the folder itself."""
    path = Path(path)
    folder = path / "model" if (path / "model" / "config.json").is_file() else path
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(
            f"{path}: neither a model folder nor a run folder (no config.json, no model/config.json)"
        )
    return folder


def checkpoint_task(folder: str | Path) -> str:
    """ "ner" for a token-classification checkpoint, "stance" for a sequence-classification one."""
    config_path = model_folder(folder) / "config.json"
    architectures = json.loads(config_path.read_text(encoding="utf-8")).get("architectures") or []
    for arch in architectures:
        if arch.endswith("ForTokenClassification"):
            return "ner"
        if arch.endswith("ForSequenceClassification"):
            return "stance"
    raise ValueError(f"{config_path}: architectures {architectures} are neither token nor sequence classification")


def load_gold_file(path: str | Path) -> list[dict]:
    """Annotated records: .jsonl/.json through the validating loader, anything else read as CoNLL columns."""
    path = Path(path)
    if path.suffix in (".jsonl", ".json"):
        from src.data.records import load_records

        return load_records(path)
    from src.data.convert import read_conll

    return read_conll(path)


def evaluate_checkpoint(
    model: str | Path,
    data_path: str | Path,
    out_dir: str | Path | None = None,
    *,
    device: str = "auto",
    batch_size: int = 32,
) -> tuple[dict, dict[str, Path]]:
    """Predict ``data_path``'s gold sentences with the checkpoint, write metrics.json, report.md (+PNG) and
    predictions.jsonl into ``out_dir`` (default ``eval-<data stem>`` beside the model folder)."""
    from src.predict import Predictor

    folder = model_folder(model)
    task = checkpoint_task(folder)
    gold = load_gold_file(data_path)
    predictor = Predictor.from_pretrained(**{task: str(folder)}, device=device, batch_size=batch_size)
    pred = predictor.predict_records(gold)
    metrics = evaluate_predictions(task, gold, pred)
    out = Path(out_dir) if out_dir is not None else folder.parent / f"eval-{Path(data_path).stem}"
    paths = write_evaluation(metrics, gold, pred, out)
    paths["predictions"] = write_jsonl(out / "predictions.jsonl", pred)
    return metrics, paths
