"""Leave-one-article-out cross-validation summary of a Hydra multirun folder, with the baselines on the same folds.

Each run folder (any folder below the multirun folder holding ``.hydra/config.yaml``) must hold
``predictions.jsonl`` for its held-out article. Its config gives the task (``task.name``, or ``task`` as a
string), the fold (``data.fold``) and the gold file (``data.path``, unless one is passed in). Runs are grouped
by task; within a task every fold ``0..n_articles-1`` must be present exactly once.

Figures: per-label metrics over the pooled predictions of all folds, and mean and sample standard deviation over
folds of the headline metric (NER micro-F1, stance macro-F1), for the model and each baseline.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from pathlib import Path

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from src.data.folds import leave_one_article_out
from src.files import write_atomic, write_json
from src.labels import ENTITY_LABELS, STANCE_LABELS

from .baselines import BASELINES, BaselineUnavailable
from .metrics import SCHEMA_VERSION, evaluate_predictions
from .report import (
    error_section,
    markdown_table,
    per_label_table,
    read_jsonl,
    save_confusion_png,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
MODEL = "model"


class CVError(ValueError):
    """A multirun folder that cannot be pooled (no runs, a missing or repeated fold, missing predictions)."""


def find_runs(multirun_dir: str | Path) -> list[Path]:
    root = Path(multirun_dir)
    if not root.is_dir():
        raise CVError(f"{root}: not a folder")
    runs = sorted({p.parent.parent for p in root.rglob(".hydra/config.yaml")} - {root})
    if not runs:
        raise CVError(f"{root}: no run folders (no */.hydra/config.yaml below it); is this a Hydra multirun folder?")
    return runs


def run_config(run: Path) -> DictConfig:
    cfg = OmegaConf.load(run / ".hydra" / "config.yaml")
    if not isinstance(cfg, DictConfig):
        raise CVError(f"{run}/.hydra/config.yaml: expected a mapping")
    return cfg


def run_task(cfg: DictConfig, run: Path) -> str:
    task = OmegaConf.select(cfg, "task.name") if isinstance(cfg.get("task"), DictConfig) else cfg.get("task")
    if task not in BASELINES:
        raise CVError(f"{run}/.hydra/config.yaml: task is {task!r}, expected 'ner' or 'stance'")
    return str(task)


def run_data_path(cfg: DictConfig, run: Path) -> Path:
    """``data.path`` of a run config; ``${paths.root_dir}`` falls back to this repository when it cannot resolve
    outside the training app (its resolver lives there)."""
    try:
        value = OmegaConf.select(cfg, "data.path", throw_on_resolution_failure=True)
    except OmegaConfBaseException:
        cfg = cfg.copy()
        OmegaConf.update(cfg, "paths.root_dir", str(REPO_ROOT), force_add=True)
        try:
            value = OmegaConf.select(cfg, "data.path", throw_on_resolution_failure=True)
        except OmegaConfBaseException as err:
            raise CVError(f"{run}/.hydra/config.yaml: cannot resolve data.path ({err}); pass data.path=FILE") from err
    if value is None:
        raise CVError(f"{run}/.hydra/config.yaml: no data.path (CV needs the annotated file); pass data.path=FILE")
    path = Path(value)
    return (path if path.is_absolute() or path.exists() else REPO_ROOT / path).resolve()


def load_gold(path: Path, cfg: DictConfig) -> list[dict]:
    from src.data.records import load_records

    entity_labels = OmegaConf.select(cfg, "data.entity_labels", default=None) or ENTITY_LABELS
    stance_labels = OmegaConf.select(cfg, "data.stance_labels", default=None) or STANCE_LABELS
    return load_records(path, entity_labels=list(entity_labels), stance_labels=list(stance_labels))


def group_runs(multirun_dir: str | Path, data_path: str | Path | None = None) -> dict[str, dict]:
    """``{task: {"data_path", "config", "folds": {fold: run_dir}}}``, checking each fold occurs once."""
    groups: dict[str, dict] = {}
    for run in find_runs(multirun_dir):
        cfg = run_config(run)
        task = run_task(cfg, run)
        fold = OmegaConf.select(cfg, "data.fold", default=None)
        if not isinstance(fold, int):
            raise CVError(f"{run}/.hydra/config.yaml: data.fold is {fold!r}; a CV run holds out one article (int)")
        if not (run / "predictions.jsonl").is_file():
            raise CVError(f"{run}: no predictions.jsonl (did the run finish?)")
        path = Path(data_path) if data_path is not None else run_data_path(cfg, run)
        group = groups.setdefault(task, {"data_path": path, "config": cfg, "folds": {}})
        if path.resolve() != group["data_path"].resolve():
            raise CVError(f"{run}: data.path {path} differs from {group['data_path']} of the other {task} runs")
        if fold in group["folds"]:
            raise CVError(
                f"{task} fold {fold} appears twice ({group['folds'][fold]} and {run}); "
                "point cv= at a sweep with one run per fold"
            )
        group["folds"][fold] = run
    return groups


def fold_summary(per_fold: dict[int, float]) -> dict:
    values = [per_fold[k] for k in sorted(per_fold)]
    return {
        "per_fold": {str(k): per_fold[k] for k in sorted(per_fold)},
        "mean": statistics.fmean(values),
        "std": statistics.stdev(values) if len(values) > 1 else 0.0,
    }


def cross_validate_task(
    task: str, gold: Sequence[dict], fold_predictions: dict[int, list[dict]], baselines: bool = True
) -> dict:
    """Pooled and per-fold metrics of the model's fold predictions and of each baseline on the same folds."""
    missing = sorted(set(range(len(gold))) - set(fold_predictions))
    extra = sorted(set(fold_predictions) - set(range(len(gold))))
    if missing or extra:
        raise CVError(
            f"{task}: {len(gold)} articles need folds 0..{len(gold) - 1}; missing {missing}, out of range {extra}"
        )
    systems: dict[str, dict[int, list[dict]]] = {MODEL: fold_predictions}
    skipped: dict[str, str] = {}
    for name, baseline in (BASELINES[task] if baselines else {}).items():
        try:
            systems[name] = {k: baseline(*leave_one_article_out(gold, k)) for k in fold_predictions}
        except BaselineUnavailable as err:
            skipped[name] = str(err)
    test_gold = {k: leave_one_article_out(gold, k)[1] for k in sorted(fold_predictions)}
    pooled_gold = [r for k in sorted(test_gold) for r in test_gold[k]]
    result: dict = {"n_folds": len(fold_predictions), "systems": {}, "skipped_baselines": skipped}
    for name, preds in systems.items():
        for k in preds:
            ids, want = sorted(p["id"] for p in preds[k]), sorted(r["id"] for r in test_gold[k])
            if ids != want:
                raise CVError(f"{task} fold {k} ({name}): predictions for {ids}, but the fold holds out {want}")
        per_fold = {k: evaluate_predictions(task, test_gold[k], preds[k])["headline"]["value"] for k in preds}
        pooled = evaluate_predictions(task, pooled_gold, [p for k in sorted(preds) for p in preds[k]])
        result["systems"][name] = {"pooled": pooled, **fold_summary(per_fold)}
    return result


def cross_validate(
    multirun_dir: str | Path, data_path: str | Path | None = None, baselines: bool = True
) -> tuple[dict, dict[str, tuple[list[dict], list[dict]]]]:
    """cv_metrics dict for every task of the multirun, and per task the pooled (gold, model predictions)."""
    out: dict = {"schema_version": SCHEMA_VERSION, "kind": "cv", "multirun_dir": str(multirun_dir), "tasks": {}}
    pooled: dict[str, tuple[list[dict], list[dict]]] = {}
    for task, group in sorted(group_runs(multirun_dir, data_path).items()):
        gold = load_gold(group["data_path"], group["config"])
        preds = {k: read_jsonl(run / "predictions.jsonl") for k, run in group["folds"].items()}
        result = cross_validate_task(task, gold, preds, baselines=baselines)
        result["data_path"] = str(group["data_path"])
        result["runs"] = {str(k): str(run) for k, run in sorted(group["folds"].items())}
        out["tasks"][task] = result
        test_gold = [r for k in sorted(preds) for r in leave_one_article_out(gold, k)[1]]
        pooled[task] = (test_gold, [p for k in sorted(preds) for p in preds[k]])
    return out, pooled


def render_cv_report(cv_metrics: dict, pooled: dict[str, tuple[list[dict], list[dict]]]) -> str:
    parts = ["# Cross-validation (leave one article out)", f"Runs: `{cv_metrics['multirun_dir']}`"]
    for task, result in cv_metrics["tasks"].items():
        systems = result["systems"]
        headline = systems[MODEL]["pooled"]["headline"]["name"]
        folds = sorted(systems[MODEL]["per_fold"], key=int)
        parts.append(f"## {task}: {result['n_folds']} folds on `{result['data_path']}`")
        rows = [
            [name, s["pooled"]["headline"]["value"], f"{s['mean']:.3f} ± {s['std']:.3f}", *s["per_fold"].values()]
            for name, s in systems.items()
        ]
        header = ["system", f"pooled {headline}", "mean ± std over folds", *(f"fold {k}" for k in folds)]
        parts.append(markdown_table(header, rows))
        model_value = systems[MODEL]["pooled"]["headline"]["value"]
        lost = [n for n, s in systems.items() if n != MODEL and s["pooled"]["headline"]["value"] >= model_value]
        parts.append(
            f"The model does **not** beat: {', '.join(lost)} (pooled {headline})."
            if lost
            else f"The model beats every baseline on pooled {headline}."
        )
        parts += [f"Skipped baseline {n}: {why}" for n, why in result["skipped_baselines"].items()]
        labels = list(systems[MODEL]["pooled"]["per_label"])
        labels += sorted({lb for s in systems.values() for lb in s["pooled"]["per_label"]} - set(labels))
        rows = [
            [label, *(s["pooled"]["per_label"].get(label, {}).get("f1", 0.0) for s in systems.values())]
            for label in labels
        ]
        parts += ["### Pooled F1 per label", markdown_table(["label", *systems], rows)]
        parts += ["### Model, pooled per label", per_label_table(systems[MODEL]["pooled"])]
        if task == "stance":
            parts.append(f"![confusion](cv_confusion_{task}.png)")
        parts.append(
            error_section(task, *pooled[task]).replace("## Error analysis", "### Model error analysis (pooled)")
        )
    return "\n\n".join(parts) + "\n"


def write_cv(
    multirun_dir: str | Path,
    out_dir: str | Path | None = None,
    data_path: str | Path | None = None,
    baselines: bool = True,
) -> dict:
    """Pool a multirun folder and write cv_metrics.json, cv_report.md (and a stance confusion PNG) into
    ``out_dir`` (default: the multirun folder); returns the cv metrics."""
    out = Path(out_dir) if out_dir is not None else Path(multirun_dir)
    cv_metrics, pooled = cross_validate(multirun_dir, data_path, baselines=baselines)
    write_json(out / "cv_metrics.json", cv_metrics)
    for task, result in cv_metrics["tasks"].items():
        if task == "stance":
            save_confusion_png(
                result["systems"][MODEL]["pooled"], out / f"cv_confusion_{task}.png", title="stance, pooled CV"
            )
    write_atomic(out / "cv_report.md", render_cv_report(cv_metrics, pooled))
    return cv_metrics
