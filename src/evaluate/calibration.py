"""Scores that mean probabilities: a CV's cross-fitted calibration checked, drawn and stored in model folders.

With five articles, a model that is 95 % sure is right far less often than 95 % of the time. Each task fits its own
calibration on leave-one-article-out predictions (``Task.calibrate``, with the shared temperature scaling and decision
bias of ``src.tasks.calibrate``), cross-fitted so an article never fits its own temperature or bias. This module
draws the reliability diagram, checks a stance temperature on the behavioural suite and against training size, and
stores a CV's fit in the model folders trained with the same setting.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf

from src.config import setting_of
from src.files import write_figure
from src.model import resolve_model_dir
from src.model_folder import ModelFolder, record_calibration
from src.tasks.calibrate import N_BINS, Calibrated, expected_calibration_error


def reliability_png(result: Calibrated, path: str | Path, title: str, n_bins: int = N_BINS) -> Path:
    """Reliability diagram: accuracy per confidence bin before and after cross-fitted temperature scaling."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.8, 4.4))
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", label="perfect")
    for (confidence, correct), name, marker in ((result.before, "before", "o"), (result.after, "after", "s")):
        bins = np.minimum((confidence * n_bins).astype(int), n_bins - 1)
        xs = [confidence[bins == b].mean() for b in range(n_bins) if (bins == b).any()]
        ys = [correct[bins == b].mean() for b in range(n_bins) if (bins == b).any()]
        ece = expected_calibration_error(confidence, correct, n_bins)
        ax.plot(xs, ys, marker=marker, label=f"{name} (ECE {ece:.3f})")
    ax.set_xlabel("score")
    ax.set_ylabel("share correct")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_title(title, fontsize=10)
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    return write_figure(path, fig, dpi=110)


# ------------------------------------------------------------------ out-of-fold data from a CV's runs


# ------------------------------------------------------------------ storing a CV's fit in model folders


def matching_system(folder: Path, record: ModelFolder, settings: dict) -> str | None:
    """The CV system whose training setting is the model folder's (fold and data path aside), or None.

    Settings compare as written (interpolations unresolved: the packaged model's path differs between checkouts)
    when the target is a run folder; a bare model folder has only its resolved config."""
    free = frozenset({"data.fold", "data.path"})
    written = folder.parent / ".hydra" / "config.yaml"
    mine = setting_of(OmegaConf.load(written) if written.is_file() else record.provenance.config, free)
    for system, setting in settings.items():
        run = Path(next(iter(setting["runs"].values())))
        fold_config = (
            OmegaConf.load(run / ".hydra" / "config.yaml")
            if written.is_file()
            else ModelFolder.from_dir(run / "model").provenance.config
        )
        if setting_of(fold_config, free) == mine:
            return system
    return None


def store(
    cv_metrics: dict, cv_dir: str, targets: Sequence[str], decision_bias: bool, size_check: dict | None = None
) -> list[str]:
    """Write each target's task calibration (fitted on all folds of the CV setting it was trained with) into its
    model folder; a target whose training setting is not one of the CV's is refused; the task decides what of the
    fit is stored (``Task.stored_calibration``: stance extrapolates its temperature to the model trained on every
    article with ``size_check`` and refuses one that fails its checks). Returns a line per target: what was done."""
    done = []
    for target in targets:
        folder = Path(resolve_model_dir(str(target)))
        record = ModelFolder.from_dir(folder)
        task = cv_metrics["tasks"].get(record.task)
        if task is None or not task.get("calibration"):
            raise ValueError(f"{target}: a {record.task} model, but {cv_dir} holds no calibrated {record.task} CV")
        match = matching_system(folder, record, task["settings"])
        if match is None:
            raise ValueError(
                f"{target}: trained with a setting that no run of {cv_dir} has; its calibration would not fit it "
                "(run the CV with the same overrides)"
            )
        folds = (task.get("behaviour") or {}).get("systems", {}).get(match, {}).values()
        suite_folds = [r for r in folds if "skipped" not in r]
        c, refusal = record.task_object.stored_calibration(task["calibration"][match], size_check, suite_folds)
        if refusal:
            done.append(f"not calibrated {folder}: {refusal}")
            continue
        entry = {
            "temperature": round(c["temperature"], 6),
            "fitted_on": f"{cv_dir} ({match})",
            "n_folds": len(c["per_fold_temperature"]),
            "ece_before": round(c["ece_before"], 6),
            "ece_after_cross_fitted": round(c["ece_after"], 6),
        }
        if c.get("size_check"):
            entry["extrapolated_from"] = {k: round(v, 6) for k, v in c["size_check"].items()}
        if c.get("suite"):
            entry["checked_on"] = {k: c["suite"][k] for k in ("suite", "n_cases", "ece_before", "ece_after")}
        if decision_bias and c.get("decision_bias") is not None:
            entry["decision_bias"] = {k: round(v, 6) for k, v in c["decision_bias"].items()}
        record_calibration(folder, entry)
        done.append(
            f"calibrated {folder}: temperature {entry['temperature']:.3f}"
            + (" + decision bias" if "decision_bias" in entry else "")
        )
    return done
