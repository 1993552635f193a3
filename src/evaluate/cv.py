"""Leave-one-article-out cross-validation summary of a Hydra multirun folder, with the baselines on the same folds.

Each run folder (any folder below the multirun folder holding ``.hydra/config.yaml``) must hold
``predictions.jsonl`` for its held-out article. Its config gives the task (``task.name``, or ``task`` as a
string), the fold (``data.fold``) and the gold file (``data.path``, unless one is passed in).

Runs are grouped by task, then by setting: the run's config without ``data.fold``, ``data.path`` (one gold file per
task, checked) and the keys that only say where and how a run is saved, logged or resumed (``RUN_ONLY_KEYS``,
``paths.*``). A sweep such as ``-m data.fold=0,1,2,3,4 trainer.learning_rate=3e-5,1e-4`` thus gives two settings.
Within a setting every fold ``0..n_articles-1`` must be present exactly once. A setting is named by the keys whose
values differ between the settings of its task (``trainer.learning_rate=3e-05``); its system is ``model`` when the
task has one setting, else ``model[<name>]``. Baselines depend on the folds only: they are computed once per task.

Figures: per-label metrics over the pooled predictions of all folds, and mean and sample standard deviation over
folds of the headline metric (NER micro-F1, stance macro-F1), for each model setting and each baseline.

``cv_metrics.json``: ``{"schema_version", "kind": "cv", "multirun_dir", "tasks": {task: result}}``, result:

- ``n_folds``, ``data_path``, ``skipped_baselines`` (``{baseline: why}``);
- ``systems``: ``{system: {"pooled": <metrics.json dict>, "per_fold": {fold: headline}, "mean", "std"}}``, the model
  settings first (``model``, or ``model[<name>]`` for each of several settings), then the baselines;
- ``settings``: ``{model system: {"name": <name, "" for a single setting>, "overrides": {key: value}, "runs":
  {fold: run folder}}}``, ``overrides`` holding the keys that differ between the task's settings;
- ``best_model``: the model system with the highest pooled headline metric;
- ``runs``: ``{fold: run folder}``, only when the task has a single setting (as before settings were pooled).
"""

from __future__ import annotations

import json
import os
import statistics
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from src.config import register_resolvers, setting_of
from src.data.folds import leave_one_article_out, outlet_groups
from src.data.records import load_records
from src.data.splits import load_extra, load_splits
from src.files import PROJECT_ROOT, shown_path, write_atomic, write_json
from src.labels import LabelScheme
from src.markdown import markdown_table
from src.predict.engine import Predictor
from src.tasks import TASKS, get_task, load_plugins
from src.tasks.calibrate import CalibrationError, suite_check
from src.tasks.scoring import BaselineUnavailable

from .behaviour import behaviour_table, run_suite
from .calibration import reliability_png
from .metrics import SCHEMA_VERSION, evaluate_predictions
from .report import error_section, per_label_table, read_jsonl

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
    if task not in TASKS:
        load_plugins()  # a plug-in's task
    if task not in TASKS:
        raise CVError(f"{run}/.hydra/config.yaml: task is {task!r}, expected one of {', '.join(TASKS)}")
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


def fold_splits(group: dict) -> dict[int, tuple[list[dict], list[dict]]]:
    """``{fold: (train, test)}`` of every fold of a task's protocol, as training splits them: each seed article left
    out in turn (any ``data.extra`` files training in every fold), or each outlet of the extra files
    (``data.extra_fold``). Baselines train on the same ``train`` records, so they see the extra files too."""
    gold = load_gold(group["data_path"], group["config"])
    data = OmegaConf.select(group["config"], "data")
    if group["protocol"] == ARTICLES and not data.get("extra"):
        return {k: leave_one_article_out(gold, k) for k in range(len(gold))}
    register_resolvers()
    data = data.copy()
    data.path = str(group["data_path"])
    outlets = group["protocol"] == OUTLETS
    try:
        n_folds = len(outlet_groups(load_extra(data, set())[0])) if outlets else len(gold)
        splits = {}
        for k in range(n_folds):
            data.fold, data.extra_fold = (None, k) if outlets else (k, None)
            train, _, test, _ = load_splits(data)
            splits[k] = (train, test)
    except (ValueError, OSError) as err:  # ConfigError, DataError: the run's data is not what it was
        raise CVError(f"{task_name(group)}: cannot rebuild the runs' folds from their data config: {err}") from err
    return splits


def task_name(group: dict) -> str:
    return str(OmegaConf.select(group["config"], "task.name", default="task"))


def run_scheme(cfg: DictConfig) -> LabelScheme:
    """The labels of a run's data config (a run from before ``stance_none_label`` gets the folders' rule for it)."""
    try:
        return LabelScheme.from_config(OmegaConf.select(cfg, "data") or {}, "run config data", legacy=True)
    except ValueError as err:
        raise CVError(str(err)) from None


def load_gold(path: Path, cfg: DictConfig) -> list[dict]:
    scheme = run_scheme(cfg)
    return load_records(path, **scheme.checked_labels)


# Runs that differ only in these (and in what src.config.RUN_ONLY_KEYS lists) are one setting; data.path is checked
# separately (one gold file per task).
SETTING_FREE_KEYS = frozenset({"data.fold", "data.extra_fold", "data.path"})
UNSET = "(unset)"
# What a fold holds out: a seed article (data.fold), or an outlet of the extra files (data.extra_fold).
ARTICLES, OUTLETS = "articles", "outlets"


def run_setting(cfg: DictConfig) -> dict[str, Any]:
    """The keys of a run config that make its model: everything but the fold, the gold file and run-only keys."""
    return setting_of(cfg, SETTING_FREE_KEYS)


def format_value(value: Any) -> str:
    if value is None or isinstance(value, bool):
        return json.dumps(value)
    return value if isinstance(value, str) else json.dumps(value) if isinstance(value, list | dict) else str(value)


def differing_keys(settings: Sequence[dict[str, Any]]) -> list[str]:
    """Keys whose value is not the same in every setting (a key missing from some counts as a value)."""
    keys = sorted({k for s in settings for k in s})
    return [k for k in keys if len({json.dumps(s.get(k, UNSET), sort_keys=True, default=str) for s in settings}) > 1]


def _order(value: Any) -> tuple:
    number = isinstance(value, int | float) and not isinstance(value, bool)
    return (0, value, "") if number else (1, 0, format_value(value))


def group_runs(multirun_dir: str | Path, data_path: str | Path | None = None) -> dict[str, dict]:
    """``{task: {"data_path", "config", "settings": {system: {"name", "overrides", "folds": {fold: run_dir}}}}}``,
    checking each fold occurs once per setting. Systems are ``model`` for a task with one setting, else
    ``model[<name>]`` in the order of the differing values (numbers ascending)."""
    groups: dict[str, dict] = {}
    for run in find_runs(multirun_dir):
        cfg = run_config(run)
        task = run_task(cfg, run)
        protocol = OUTLETS if OmegaConf.select(cfg, "data.extra_fold", default=None) is not None else ARTICLES
        fold = OmegaConf.select(cfg, "data.extra_fold" if protocol == OUTLETS else "data.fold", default=None)
        if not isinstance(fold, int) or isinstance(fold, bool):
            raise CVError(f"{run}/.hydra/config.yaml: data.fold is {fold!r}; a CV run holds out one article (int)")
        if not (run / "predictions.jsonl").is_file():
            raise CVError(f"{run}: no predictions.jsonl (did the run finish?)")
        path = Path(data_path) if data_path is not None else run_data_path(cfg, run)
        group = groups.setdefault(task, {"data_path": path, "config": cfg, "protocol": protocol, "by_setting": {}})
        if protocol != group["protocol"]:
            raise CVError(
                f"{run}: holds out {'an outlet (data.extra_fold)' if protocol == OUTLETS else 'a seed article'}, "
                f"unlike the other {task} runs; sweep the two protocols into separate folders"
            )
        if path.resolve() != group["data_path"].resolve():
            raise CVError(f"{run}: data.path {path} differs from {group['data_path']} of the other {task} runs")
        setting = run_setting(cfg)
        key = json.dumps(setting, sort_keys=True, default=str)
        folds = group["by_setting"].setdefault(key, {"setting": setting, "folds": {}})["folds"]
        if fold in folds:
            raise CVError(
                f"{task} fold {fold} appears twice with the same settings ({folds[fold]} and {run}); "
                "point cv= at a sweep with one run per fold and setting"
            )
        folds[fold] = run
    for group in groups.values():
        found = list(group.pop("by_setting").values())
        keys = differing_keys([f["setting"] for f in found])
        found.sort(key=lambda f: tuple(_order(f["setting"].get(k, UNSET)) for k in keys))
        group["settings"] = {}
        for f in found:
            overrides = {k: f["setting"].get(k, UNSET) for k in keys}
            name = " ".join(f"{k}={format_value(v)}" for k, v in overrides.items())
            system = f"{MODEL}[{name}]" if len(found) > 1 else MODEL
            group["settings"][system] = {"name": name, "overrides": overrides, "folds": f["folds"]}
    return groups


def fold_summary(per_fold: dict[int, float]) -> dict:
    values = [per_fold[k] for k in sorted(per_fold)]
    return {
        "per_fold": {str(k): per_fold[k] for k in sorted(per_fold)},
        "mean": statistics.fmean(values),
        "std": statistics.stdev(values) if len(values) > 1 else 0.0,
    }


def cross_validate_task(
    task: str,
    gold: Sequence[dict],
    fold_predictions: dict[int, list[dict]],
    scheme: LabelScheme,
    baselines: bool = True,
) -> dict:
    """Pooled and per-fold metrics of the model's fold predictions and of each baseline on the same folds."""
    return cross_validate_settings(task, gold, {MODEL: fold_predictions}, scheme, baselines=baselines)


def cross_validate_settings(
    task: str,
    gold: Sequence[dict],
    models: dict[str, dict[int, list[dict]]],
    scheme: LabelScheme,
    baselines: bool = True,
    splits: dict[int, tuple[list[dict], list[dict]]] | None = None,
) -> dict:
    """Pooled and per-fold metrics of each model setting's fold predictions (``{system: {fold: predictions}}``) and
    of each baseline, computed once, on the same folds: ``splits`` (``{fold: (train, test)}``), by default each
    article of ``gold`` left out in turn. ``scheme``: the runs' labels (``run_scheme``)."""
    if splits is None:
        splits = {k: leave_one_article_out(gold, k) for k in range(len(gold))}
    folds = sorted(splits)
    for name, fold_predictions in models.items():
        missing = sorted(set(folds) - set(fold_predictions))
        extra = sorted(set(fold_predictions) - set(folds))
        if missing or extra:
            which = task if name == MODEL else f"{task} {name}"
            raise CVError(
                f"{which}: {len(folds)} folds 0..{len(folds) - 1} needed; missing {missing}, out of range {extra}"
            )
    systems: dict[str, dict[int, list[dict]]] = dict(models)
    skipped: dict[str, str] = {}
    for name, baseline in (get_task(task).baselines() if baselines else {}).items():
        try:
            systems[name] = {k: baseline(*splits[k], scheme) for k in folds}
        except BaselineUnavailable as err:
            skipped[name] = str(err)
    test_gold = {k: splits[k][1] for k in folds}
    pooled_gold = [r for k in folds for r in test_gold[k]]
    result: dict = {"n_folds": len(folds), "systems": {}, "skipped_baselines": skipped}
    for name, preds in systems.items():
        for k in preds:
            ids, want = sorted(p["id"] for p in preds[k]), sorted(r["id"] for r in test_gold[k])
            if ids != want:
                raise CVError(f"{task} fold {k} ({name}): predictions for {ids}, but the fold holds out {want}")
        score = {"labels": scheme.stance_labels, "none_label": scheme.none_label}
        per_fold = {k: evaluate_predictions(task, test_gold[k], preds[k], **score)["headline"]["value"] for k in preds}
        pooled = evaluate_predictions(task, pooled_gold, [p for k in sorted(preds) for p in preds[k]], **score)
        result["systems"][name] = {"pooled": pooled, **fold_summary(per_fold)}
    result["best_model"] = max(models, key=lambda n: result["systems"][n]["pooled"]["headline"]["value"])
    return result


def repredict(task: str, run: Path, gold: list[dict], engine: dict) -> list[dict]:
    """The fold model of ``run`` predicting its held-out ``gold`` records with ``engine``'s backend and quantize."""
    predictor = Predictor.from_pretrained(**{task: str(run)}, device="cpu", **engine)
    return predictor.predict_records(gold)


def calibrate_setting(
    task: str,
    splits: dict[int, tuple[list[dict], list[dict]]],
    folds: dict[int, Path],
    preds: dict[int, list[dict]],
    scheme: LabelScheme,
    engine: dict | None = None,
):
    """Cross-fitted calibration of one setting (``Task.calibrate``) and, where the task also fits a decision bias,
    the pooled metrics of its predictions re-decided with each fold's cross-fitted bias. A task that reruns the fold
    models (NER: the predictions keep no word logits) gets ``CVError`` when a fold kept no model folder."""
    gold_by_fold = {k: splits[k][1] for k in sorted(folds)}

    def load(fold: int) -> Predictor:
        if not (Path(folds[fold]) / "model" / "config.json").is_file():
            raise CalibrationError(f"no model/ folder in {folds[fold]}")
        return Predictor.from_pretrained(**{task: str(folds[fold])}, device="cpu", **(engine or {"backend": "torch"}))

    score = {"labels": scheme.stance_labels, "none_label": scheme.none_label}
    try:
        result, redecided = get_task(task).calibrate(gold_by_fold, preds, load, **score)
    except CalibrationError as err:
        raise CVError(str(err)) from err
    if redecided is None:
        return result, None
    per_fold = {k: evaluate_predictions(task, gold_by_fold[k], redecided[k], **score) for k in redecided}
    pooled_gold = [r for k in sorted(gold_by_fold) for r in gold_by_fold[k]]
    pooled = evaluate_predictions(task, pooled_gold, [p for k in sorted(redecided) for p in redecided[k]], **score)
    return result, {"pooled": pooled, **fold_summary({k: m["headline"]["value"] for k, m in per_fold.items()})}


def calibration_summary(calibrated, biased: dict | None, png: str) -> dict:
    """The ``calibration`` entry of a setting in cv_metrics.json."""
    before, after = calibrated.ece
    out = {
        "temperature": calibrated.temperature,
        "per_fold_temperature": {str(k): v for k, v in calibrated.per_fold_temperature.items()},
        "ece_before": before,
        "ece_after": after,
        "n_scored": len(calibrated.before[0]),
        "reliability_png": png,
    }
    if biased is not None:
        out |= {
            "decision_bias": calibrated.decision_bias,
            "per_fold_decision_bias": {str(k): v for k, v in calibrated.per_fold_bias.items()},
            "with_decision_bias": biased,
        }
    return out


def cross_validate(
    multirun_dir: str | Path,
    data_path: str | Path | None = None,
    baselines: bool = True,
    calibration: bool = True,
    out_dir: Path | None = None,
    engine: dict | None = None,
) -> tuple[dict, dict[str, dict[str, tuple[list[dict], list[dict]]]]]:
    """cv_metrics dict for every task of the multirun, and per task and model setting the pooled (gold, model
    predictions). With ``calibration``, each setting also gets its cross-fitted temperature, ECE and (stance) the
    figures with a cross-fitted decision bias, and its reliability diagram is written into ``out_dir``. With
    ``engine`` (``{"backend": ..., "quantize": ...}``) each fold model predicts its held-out articles again that way
    (NER calibration too) instead of the runs' stored predictions: the same folds, another inference path."""
    out: dict = {"schema_version": SCHEMA_VERSION, "kind": "cv", "multirun_dir": str(multirun_dir), "tasks": {}}
    if engine is not None:
        out["engine"] = dict(engine)
    pooled: dict[str, dict[str, tuple[list[dict], list[dict]]]] = {}
    for task, group in sorted(group_runs(multirun_dir, data_path).items()):
        splits = fold_splits(group)
        gold = [r for k in sorted(splits) for r in splits[k][1]]
        settings = group["settings"]
        preds = {
            system: {
                k: read_jsonl(run / "predictions.jsonl")
                if engine is None
                else repredict(task, run, splits[k][1], engine)
                for k, run in setting["folds"].items()
            }
            for system, setting in settings.items()
        }
        scheme = run_scheme(group["config"])
        result = cross_validate_settings(task, gold, preds, scheme, baselines=baselines, splits=splits)
        result["data_path"] = str(group["data_path"])
        result["protocol"] = group["protocol"]
        if group["protocol"] == OUTLETS:
            result["outlets"] = {
                str(k): sorted({str(r.get("outlet") or r["id"]) for r in test}) for k, (_, test) in splits.items()
            }
        result["settings"] = {
            system: {
                "name": setting["name"],
                "overrides": setting["overrides"],
                "runs": {str(k): str(run) for k, run in sorted(setting["folds"].items())},
            }
            for system, setting in settings.items()
        }
        if len(settings) == 1:
            result["runs"] = result["settings"][MODEL]["runs"]
        if calibration:
            calibrate_settings(result, task, splits, settings, preds, scheme, engine, Path(out_dir or multirun_dir))
        out["tasks"][task] = result
        pooled[task] = {
            system: (gold, [p for k in sorted(fold_preds) for p in fold_preds[k]])
            for system, fold_preds in preds.items()
        }
    return out, pooled


def calibrate_settings(
    result: dict,
    task: str,
    splits: dict,
    settings: dict,
    preds: dict,
    scheme: LabelScheme,
    engine: dict | None,
    figures: Path,
) -> None:
    """Each setting's cross-fitted calibration into ``result["calibration"]``, its reliability diagram into
    ``figures``; a setting that cannot be calibrated is named in ``result["calibration_skipped"]``."""
    result["calibration"] = {}
    for i, (system, setting) in enumerate(settings.items(), start=1):
        try:
            calibrated, biased = calibrate_setting(task, splits, setting["folds"], preds[system], scheme, engine)
        except CVError as err:
            result["calibration_skipped"] = f"{system}: {err}"
            continue
        png = f"cv_reliability_{task}.png" if len(settings) == 1 else f"cv_reliability_{task}-{i}.png"
        reliability_png(calibrated, figures / png, f"{task} {system}, out of fold")
        result["calibration"][system] = calibration_summary(calibrated, biased, png)


def confusion_png_name(task: str, result: dict, system: str) -> str:
    """``cv_confusion_<task>.png`` for a single setting, ``cv_confusion_<task>-<i>.png`` (i from 1) for several."""
    if len(result["settings"]) == 1:
        return f"cv_confusion_{task}.png"
    return f"cv_confusion_{task}-{list(result['settings']).index(system) + 1}.png"


def calibration_section(task: str, result: dict, headline: str) -> str:
    """Temperatures, ECE before and after, and (stance) the figures with a decision bias: all cross-fitted."""
    rows, bias_rows = [], []
    for system, c in result["calibration"].items():
        rows.append([system, c["temperature"], c["ece_before"], c["ece_after"], c["n_scored"]])
        if "with_decision_bias" in c:
            raw, biased = result["systems"][system]["pooled"], c["with_decision_bias"]["pooled"]
            per_label = [
                f"{raw['per_label'][k]['f1']:.3f} -> {biased['per_label'].get(k, {}).get('f1', 0):.3f}"
                for k in raw["per_label"]
            ]
            bias = ", ".join(f"{k} {v:+.2f}" for k, v in c["decision_bias"].items())
            bias_rows.append(
                [system, f"{raw['headline']['value']:.3f} -> {biased['headline']['value']:.3f}", *per_label, bias]
            )
    parts = [
        f"### Calibration ({task}, on {get_task(task).calibrated_on})",
        "Temperature scaling fitted out of fold: each held-out article's ECE uses a temperature fitted on the other "
        "articles' predictions only; the temperature column is the fit on all folds (what `make calibrate` stores).",
        markdown_table(["system", "temperature (all folds)", "ECE before", "ECE after (cross-fitted)", "n"], rows),
        *(f"![reliability]({c['reliability_png']})" for c in result["calibration"].values()),
    ]
    if bias_rows:
        labels = list(result["systems"][next(iter(result["calibration"]))]["pooled"]["per_label"])
        parts += [
            "With a decision bias (a per-label log-odds shift maximising macro-F1), cross-fitted the same way "
            "(pooled; before -> after):",
            markdown_table(["system", f"pooled {headline}", *labels, "bias (all folds)"], bias_rows),
        ]
    return "\n\n".join(parts)


def verdicts(systems: dict, models: list[str], headline: str) -> list[str]:
    """Per model setting, whether it beats every baseline on the pooled headline (none without baselines)."""
    lines = []
    for model in models if len(systems) > len(models) else ():  # no baselines (baselines=false): no verdict
        model_value = systems[model]["pooled"]["headline"]["value"]
        lost = [n for n, s in systems.items() if s["pooled"]["headline"]["value"] >= model_value and n not in models]
        who = "The model" if len(models) == 1 else f"`{model}`"
        lines.append(
            f"{who} does **not** beat: {', '.join(lost)} (pooled {headline})."
            if lost
            else f"{who} beats every baseline on pooled {headline}."
        )
    return lines


def render_cv_report(cv_metrics: dict, pooled: dict[str, dict[str, tuple[list[dict], list[dict]]]]) -> str:
    protocols = {result.get("protocol", ARTICLES) for result in cv_metrics["tasks"].values()}
    held = "one outlet of the extra files" if protocols == {OUTLETS} else "one article"
    parts = [f"# Cross-validation (leave {held} out)", f"Runs: `{cv_metrics['multirun_dir']}`"]
    for task, result in cv_metrics["tasks"].items():
        systems = result["systems"]
        models = list(result["settings"])
        single = len(models) == 1
        headline = systems[models[0]]["pooled"]["headline"]["name"]
        folds = sorted(systems[models[0]]["per_fold"], key=int)
        if result.get("protocol") == OUTLETS:
            outlets = "; ".join(f"{k}: {', '.join(v)}" for k, v in result["outlets"].items())
            parts.append(
                f"## {task}: {result['n_folds']} outlet folds, each trained on `{result['data_path']}` and the other "
                f"outlets\n\nFolds: {outlets}"
            )
        else:
            parts.append(f"## {task}: {result['n_folds']} folds on `{result['data_path']}`")
        if not single:
            keys = list(result["settings"][models[0]]["overrides"])
            parts.append(
                f"{len(models)} settings, differing in {', '.join(f'`{k}`' for k in keys)}; best on pooled "
                f"{headline}: `{result['best_model']}`."
            )
        rows = [
            [name, s["pooled"]["headline"]["value"], f"{s['mean']:.3f} ± {s['std']:.3f}", *s["per_fold"].values()]
            for name, s in systems.items()
        ]
        header = ["system", f"pooled {headline}", "mean ± std over folds", *(f"fold {k}" for k in folds)]
        parts.append(markdown_table(header, rows))
        parts += verdicts(systems, models, headline)
        parts += [f"Skipped baseline {n}: {why}" for n, why in result["skipped_baselines"].items()]
        labels = list(systems[models[0]]["pooled"]["per_label"])
        labels += sorted({lb for s in systems.values() for lb in s["pooled"]["per_label"]} - set(labels))
        rows = [
            [label, *(s["pooled"]["per_label"].get(label, {}).get("f1", 0.0) for s in systems.values())]
            for label in labels
        ]
        parts += ["### Pooled F1 per label", markdown_table(["label", *systems], rows)]
        if result.get("calibration"):
            parts.append(calibration_section(task, result, headline))
        if result.get("calibration_skipped"):
            parts.append(f"Calibration skipped for {result['calibration_skipped']}.")
        if result.get("behaviour"):
            parts.append(behaviour_section(result))
        for model in models:
            title = "Model" if single else f"`{model}`"
            parts += [f"### {title}, pooled per label", per_label_table(systems[model]["pooled"])]
            if systems[model].get("figure"):
                parts.append(f"![confusion]({systems[model]['figure']})")
            parts.append(
                error_section(task, *pooled[task][model]).replace(
                    "## Error analysis", f"### {title} error analysis (pooled)"
                )
            )
    return "\n\n".join(parts) + "\n"


def training_overrides(runs: Iterable[str | Path]) -> list[str]:
    """The command-line overrides the fold models were trained with (``.hydra/overrides.yaml`` of the first run),
    fold and output settings left out: what sets the figures apart (e.g. ``experiment=seeds_ner_plain``)."""
    run = next(iter(runs), None)
    path = Path(run) / ".hydra" / "overrides.yaml" if run is not None else None
    if path is None or not path.is_file():
        return []
    skip = ("data.fold=", "data.extra_fold=", "hydra.", "trainer.disable_tqdm=", "trainer.save_strategy=")
    return [shown_override(str(o)) for o in OmegaConf.load(path) if not str(o).startswith(skip)]


def shown_override(override: str) -> str:
    """An override as others can read it: the files of ``data.path`` / ``data.extra`` relative to the project when
    inside it or beside it (``../shared/...``), not this machine's absolute paths."""
    key, _, value = override.partition("=")
    if key.lstrip("+~") not in ("data.path", "data.extra") or not value:
        return override

    def shown(file: str) -> str:
        relative = os.path.relpath(Path(file).resolve(), PROJECT_ROOT)
        return file if relative.startswith("../../") else relative

    listed = value.startswith("[") and value.endswith("]")
    files = [shown(f.strip().strip("'\"")) for f in (value[1:-1] if listed else value).split(",") if f.strip()]
    return f"{key}=[{','.join(files)}]" if listed else f"{key}={','.join(files)}"


def results_block(cv_metrics: dict, command: str, day: str) -> tuple[str, str, str]:
    """What ``results=FILE`` writes into a results document: the ``begin`` and ``end`` markers of this multirun and
    the block between them (markers included): the command and date, then per task each system's pooled headline,
    pooled macro-F1 and mean ± std over folds, and the pooled F1 per label."""
    trained = {
        task: training_overrides(next(iter(result["settings"].values()))["runs"].values())
        for task, result in cv_metrics["tasks"].items()
    }
    # A multirun trained with extra files (the supplement) keeps a block of its own beside the one without them.
    extra = any(o.lstrip("+").startswith("data.extra=") for overrides in trained.values() for o in overrides)
    name = Path(cv_metrics["multirun_dir"]).name + (" with extra files" if extra else "")
    begin, end = f"<!-- cv {name}: begin -->", f"<!-- cv {name}: end -->"
    parts = [begin, f"`{command}`, {day}:"]
    for task, result in cv_metrics["tasks"].items():
        systems = result["systems"]
        first = next(iter(systems.values()))["pooled"]
        data = f"`{shown_path(result['data_path'])}`"
        if result.get("protocol") == OUTLETS:
            held, where = "one outlet of the extra files", f"{result['n_folds']} folds, {data} always in training"
        else:
            held, where = "one article", f"{result['n_folds']} folds on {data}"
        how = " ".join(trained[task]) or "the defaults"
        parts.append(f"{task}: leave {held} out, {where}; fold models trained with `{how}`.")
        macro = first["headline"]["name"] != "macro_f1"  # a second column only where it is another figure
        rows = [
            [
                system,
                s["pooled"]["headline"]["value"],
                *([s["pooled"]["macro"]["f1"]] if macro else []),
                f"{s['mean']:.3f} ± {s['std']:.3f}",
            ]
            for system, s in systems.items()
        ]
        header = [
            "system",
            f"pooled {first['headline']['name']}",
            *(["pooled macro-F1"] if macro else []),
            "mean ± std over folds",
        ]
        parts.append(markdown_table(header, rows))
        rows = [
            [label, *(s["pooled"]["per_label"].get(label, {}).get("f1", 0.0) for s in systems.values())]
            for label in first["per_label"]
        ]
        parts.append(markdown_table([f"{task}: pooled F1", *systems], rows))
        if result.get("behaviour"):
            parts.append(behaviour_section(result).replace("### Behaviour", f"{task}: behavioural suite"))
    parts.append(end)
    return begin, end, "\n\n".join(parts)


def fold_behaviour(result: dict, suite: str | Path) -> dict:
    """The behavioural suite on every stance fold model of every setting: ``{system: {fold: suite result}}``; a fold
    whose run kept no model folder is left out (and said)."""
    scored: dict[str, dict] = {}
    for system, setting in result["settings"].items():
        for fold, run in setting["runs"].items():
            if not (Path(run) / "model" / "config.json").is_file():
                scored.setdefault(system, {})[fold] = {"skipped": f"{run}: no model/ folder"}
                continue
            scored.setdefault(system, {})[fold] = run_suite(run, suite, device="cpu")
    return {"suite": str(suite), "systems": scored}


def behaviour_section(result: dict) -> str:
    """The pass rates per type of every fold model, and their mean."""
    parts = [f"### Behaviour (`{result['behaviour']['suite']}`, every fold model)"]
    for system, folds in result["behaviour"]["systems"].items():
        scored = {f"{system} fold {k}": r for k, r in folds.items() if "skipped" not in r}
        if scored:
            parts.append(behaviour_table(scored))
        parts += [f"Skipped fold {k}: {r['skipped']}" for k, r in folds.items() if "skipped" in r]
    return "\n\n".join(parts)


def write_cv(
    multirun_dir: str | Path,
    out_dir: str | Path | None = None,
    data_path: str | Path | None = None,
    baselines: bool = True,
    calibration: bool = True,
    behaviour: str | Path | None = None,
    engine: dict | None = None,
) -> dict:
    """Pool a multirun folder and write cv_metrics.json, cv_report.md, a stance confusion PNG and (``calibration``)
    a reliability diagram per setting into ``out_dir`` (default: the multirun folder); returns the cv metrics. With
    ``behaviour`` (a suite file) every stance fold model is scored on it too."""
    out = Path(out_dir) if out_dir is not None else Path(multirun_dir)
    cv_metrics, pooled = cross_validate(multirun_dir, data_path, baselines, calibration, out, engine)
    if behaviour is not None and "stance" in cv_metrics["tasks"]:
        stance = cv_metrics["tasks"]["stance"]
        stance["behaviour"] = fold_behaviour(stance, behaviour)
        for system, fit in (stance.get("calibration") or {}).items():
            folds = [r for r in stance["behaviour"]["systems"].get(system, {}).values() if "skipped" not in r]
            check = suite_check(fit["temperature"], folds)
            if check is not None:
                fit["suite"] = {"suite": str(behaviour), **check}
    for task, result in cv_metrics["tasks"].items():
        for model in result["settings"]:
            title = f"{task}, pooled CV" + ("" if model == MODEL else f"\n{result['settings'][model]['name']}")
            system = result["systems"][model]
            drawn = get_task(task).draw(system["pooled"], out / confusion_png_name(task, result, model), title)
            if drawn is not None:
                system["figure"] = drawn.name
    write_json(out / "cv_metrics.json", cv_metrics)
    write_atomic(out / "cv_report.md", render_cv_report(cv_metrics, pooled))
    return cv_metrics
