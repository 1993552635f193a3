"""What every task's calibration shares: temperature scaling fitted on out-of-fold predictions, cross-fitted, the
expected calibration error that checks it (also on the behavioural suite, a check under shift) and the extrapolation
of a temperature to a model trained on more articles (``Task.calibrate`` assembles a task's own data for it).

Temperature scaling (Guo et al., 2017) divides the logits by one number ``T`` fitted to minimise the negative
log-likelihood of held-out labels; it never changes a decision, only how sure the model says it is. A *decision bias*
(one number per label added to the log-probabilities before the argmax, fitted to maximise macro-F1) is a class-prior
correction. **Cross-fitted**: the figures for held-out fold ``k`` come from a fit on the other folds only.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax
from sklearn.metrics import f1_score


class CalibrationError(ValueError):
    """Out-of-fold data a task cannot calibrate on (a fold without scores or without its model); reports skip it."""


N_BINS = 10
T_BOUNDS = (0.05, 20.0)
BIAS_GRID = np.round(np.arange(-2.0, 2.01, 0.25), 2)  # log-odds added per label; the first label stays at 0


def fit_temperature(logits: np.ndarray, y: np.ndarray) -> float:
    """The ``T`` minimising the mean negative log-likelihood of ``y`` under ``softmax(logits / T)``."""
    if len(y) == 0:
        return 1.0
    rows = np.arange(len(y))

    def nll(log_t: float) -> float:
        return float(-log_softmax(logits / np.exp(log_t), axis=-1)[rows, y].mean())

    result = minimize_scalar(nll, bounds=tuple(np.log(T_BOUNDS)), method="bounded", options={"xatol": 1e-4})
    return float(np.exp(result.x))


def fit_decision_bias(log_probs: np.ndarray, y: np.ndarray, grid: Sequence[float] = BIAS_GRID) -> np.ndarray:
    """Per-label bias (the first label's fixed at 0) maximising macro-F1 of ``argmax(log_probs + bias)``; among
    equally good biases the smallest (in L1) wins, so no evidence means no correction."""
    n_labels = log_probs.shape[1]
    best, best_key = np.zeros(n_labels), None
    grids = np.meshgrid(*[np.asarray(grid)] * (n_labels - 1), indexing="ij")
    for offsets in zip(*(g.ravel() for g in grids), strict=True):
        bias = np.array([0.0, *offsets])
        pred = (log_probs + bias).argmax(axis=1)
        f1 = f1_score(y, pred, labels=range(n_labels), average="macro", zero_division=0)
        key = (round(float(f1), 12), -float(np.abs(bias).sum()))
        if best_key is None or key > best_key:
            best, best_key = bias, key
    return best


def expected_calibration_error(confidence: np.ndarray, correct: np.ndarray, n_bins: int = N_BINS) -> float:
    """Mean |accuracy - confidence| over equal-width confidence bins, weighted by how many predictions fall in each."""
    if len(confidence) == 0:
        return 0.0
    bins = np.minimum((np.asarray(confidence) * n_bins).astype(int), n_bins - 1)
    gap = 0.0
    for b in range(n_bins):
        inside = bins == b
        if inside.any():
            gap += inside.sum() * abs(correct[inside].mean() - confidence[inside].mean())
    return float(gap / len(confidence))


def cross_fit(groups: np.ndarray, fit: Callable[[np.ndarray], object]) -> dict[int, object]:
    """``{group: fit(mask of every other group)}``: each group's parameters come from the others only."""
    return {int(g): fit(groups != g) for g in np.unique(groups)}


@dataclass
class Calibrated:
    """Cross-fitted calibration of one task's pooled out-of-fold predictions."""

    temperature: float  # fitted on all folds: what a model folder gets
    per_fold_temperature: dict[int, float]
    before: tuple[np.ndarray, np.ndarray]  # (confidence, correct) of the raw scores
    after: tuple[np.ndarray, np.ndarray]  # the same with each fold's cross-fitted temperature
    decision_bias: dict[str, float] | None = None  # stance: fitted on all folds
    per_fold_bias: dict[int, dict[str, float]] = field(default_factory=dict)  # stance: cross-fitted, per fold

    @property
    def ece(self) -> tuple[float, float]:
        return expected_calibration_error(*self.before), expected_calibration_error(*self.after)


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
