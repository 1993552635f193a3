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
from scipy.special import log_softmax

from src.config import setting_of
from src.files import write_figure
from src.model import resolve_model_dir
from src.model_folder import read_metadata, record_calibration
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


def suite_check(temperature: float, fold_results: Sequence[dict]) -> dict | None:
    """ECE on the behavioural suite (sentences worded unlike the training articles: a check under shift) of the
    fold models' raw scores and of the same scores at ``temperature``; None without scored cases. A temperature that
    helps out of fold but hurts here would make scores on other outlets less honest."""
    before, after, correct = [], [], []
    for result in fold_results:
        for case in result.get("scores", []):
            labels = list(case["scores"])
            log_p = np.log(np.maximum([case["scores"][k] for k in labels], 1e-12))
            raw, scaled = np.exp(log_softmax(log_p)), np.exp(log_softmax(log_p / temperature))
            before.append(raw.max())
            after.append(scaled.max())
            correct.append(labels[int(raw.argmax())] == case["expect"])
    if not correct:
        return None
    flags = np.array(correct)
    return {
        "ece_before": expected_calibration_error(np.array(before), flags),
        "ece_after": expected_calibration_error(np.array(after), flags),
        "n_cases": len(correct),
    }


def extrapolated_temperature(t_folds: float, t_smaller: float) -> float:
    """The temperature of a model trained on one article more than the fold models: the change from models one
    article smaller (``t_smaller``) to the fold models (``t_folds``) taken once more, in log space, and never past 1
    (no flip from softening to sharpening) nor further from 1 than ``t_folds``.

    EXAMPLE: ``extrapolated_temperature(0.556, 0.386) -> 0.80`` (the seeds: 3-, 4- and so 5-article stance models)
    """
    t = float(np.exp(2 * np.log(t_folds) - np.log(t_smaller)))
    low, high = sorted((t_folds, 1.0))
    return min(max(t, low), high)


def size_adjusted(calibration: dict, size_check: dict | None, suite_folds: Sequence[dict]) -> dict:
    """A stance setting's calibration with its temperature extrapolated to the model trained on every article
    (``size_check``: ``nested_calibration.json`` of ``src.evaluate.nested_cv --calibration``) and the suite check
    redone at that temperature; unchanged without a size check."""
    if size_check is None:
        return calibration
    t_folds, t_smaller = calibration["temperature"], size_check["temperature_smaller_models"]
    out = {**calibration, "temperature": extrapolated_temperature(t_folds, t_smaller)}
    out["size_check"] = {"temperature_folds": t_folds, "temperature_smaller_models": t_smaller}
    check = suite_check(out["temperature"], suite_folds) if suite_folds else None
    if check is not None:
        out["suite"] = {**(calibration.get("suite") or {}), **check}
    return out


def shift_refusal(calibration: dict) -> str | None:
    """Why a stance temperature must not be stored (None: it may): it makes the suite's ECE worse, or it is below 1
    (sharper scores) without the size check (``size_adjusted``) or the suite check to back it."""
    t, check = calibration["temperature"], calibration.get("suite")
    if check is not None and check["ece_after"] > check["ece_before"]:
        return (
            f"temperature {t:.3f} not stored: on the behavioural suite (sentences worded unlike the training "
            f"articles; {check['n_cases']} fold-model scores) it raises the expected calibration error from "
            f"{check['ece_before']:.3f} to {check['ece_after']:.3f}; the scores stay raw"
        )
    if t < 1 and "size_check" not in calibration:
        return (
            f"temperature {t:.3f} not stored: it was fitted on fold models trained on one article fewer, and below 1 "
            "it would make the model trained on every article sharper than its own temperature (`make calibrate` "
            "measures the change with training size: src.evaluate.nested_cv --calibration)"
        )
    if check is None and t < 1:
        return (
            f"temperature {t:.3f} not stored: below 1 it makes scores sharper, which is stored only when the "
            "behavioural suite agrees (run the CV with behaviour=data/behaviour/stance.jsonl)"
        )
    return None


# ------------------------------------------------------------------ storing a CV's fit in model folders


def matching_system(folder: Path, meta: dict, settings: dict) -> str | None:
    """The CV system whose training setting is the model folder's (fold and data path aside), or None.

    Settings compare as written (interpolations unresolved: the packaged model's path differs between checkouts)
    when the target is a run folder; a bare model folder has only its resolved config."""
    free = frozenset({"data.fold", "data.path"})
    written = folder.parent / ".hydra" / "config.yaml"
    mine = setting_of(OmegaConf.load(written) if written.is_file() else meta.get("config") or {}, free)
    for system, setting in settings.items():
        run = Path(next(iter(setting["runs"].values())))
        fold_config = (
            OmegaConf.load(run / ".hydra" / "config.yaml")
            if written.is_file()
            else read_metadata(run / "model").get("config") or {}
        )
        if setting_of(fold_config, free) == mine:
            return system
    return None


def store(
    cv_metrics: dict, cv_dir: str, targets: Sequence[str], decision_bias: bool, size_check: dict | None = None
) -> list[str]:
    """Write each target's task calibration (fitted on all folds of the CV setting it was trained with) into its
    model folder; a target whose training setting is not one of the CV's is refused; a stance temperature is first
    extrapolated to the model trained on every article (``size_adjusted``, with ``size_check``) and not stored when
    it fails the checks (``shift_refusal``). Returns a line per target: what was done."""
    done = []
    for target in targets:
        folder = Path(resolve_model_dir(str(target)))
        meta = read_metadata(folder)
        task = cv_metrics["tasks"].get(meta["task"])
        if task is None or not task.get("calibration"):
            raise ValueError(f"{target}: a {meta['task']} model, but {cv_dir} holds no calibrated {meta['task']} CV")
        match = matching_system(folder, meta, task["settings"])
        if match is None:
            raise ValueError(
                f"{target}: trained with a setting that no run of {cv_dir} has; its calibration would not fit it "
                "(run the CV with the same overrides)"
            )
        c = task["calibration"][match]
        refusal = None
        if meta["task"] == "stance":
            folds = (task.get("behaviour") or {}).get("systems", {}).get(match, {}).values()
            c = size_adjusted(c, size_check, [r for r in folds if "skipped" not in r])
            refusal = shift_refusal(c)
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
