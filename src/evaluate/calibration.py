"""Scores that mean probabilities: temperature scaling fitted on out-of-fold predictions, and its check.

With five articles, a model that is 95 % sure is right far less often than 95 % of the time. Temperature scaling
(Guo et al., 2017) divides the logits by one number ``T`` fitted to minimise the negative log-likelihood of held-out
labels; it never changes a decision, only how sure the model says it is. The stance model may also get a
*decision bias*: one number per label added to the log-probabilities before the argmax, fitted to maximise macro-F1
(a class-prior correction: outlets differ in how many leverage sentences they print). Both are fitted on
leave-one-article-out predictions, **cross-fitted**: the figures for held-out article ``k`` come from a fit on the
other articles' predictions only, so an article never fits its own temperature or bias.

NER is calibrated on words (the logits of each word's first sub-token, as the Predictor decides it) and checked on
entities: an entity's score is the mean probability of its words' tags, and it is correct when the gold has the same
span and type. Stance is calibrated and checked on sentences.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax
from seqeval.metrics.sequence_labeling import get_entities
from sklearn.metrics import f1_score

from src.config import setting_of
from src.data.convert import ner_examples
from src.files import write_figure
from src.labels import decode_iob2
from src.model import resolve_model_dir
from src.model_folder import read_metadata, record_calibration
from src.predict.engine import Predictor

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


def calibrate_stance(
    log_probs: np.ndarray, y: np.ndarray, folds: np.ndarray, labels: Sequence[str], with_bias: bool
) -> Calibrated:
    """Temperature (and with ``with_bias`` a decision bias) for sentence stance from out-of-fold log-probabilities."""
    temps = cross_fit(folds, lambda train: fit_temperature(log_probs[train], y[train]))
    scaled = np.empty_like(log_probs)
    for fold, t in temps.items():
        scaled[folds == fold] = log_softmax(log_probs[folds == fold] / t, axis=-1)
    correct = log_probs.argmax(1) == y
    result = Calibrated(
        temperature=fit_temperature(log_probs, y),
        per_fold_temperature=temps,
        before=(np.exp(log_softmax(log_probs, axis=-1)).max(1), correct),
        after=(np.exp(scaled).max(1), correct),
    )
    if with_bias:
        biases = cross_fit(folds, lambda train: fit_decision_bias(log_probs[train], y[train]))
        for fold, bias in biases.items():
            result.per_fold_bias[fold] = dict(zip(labels, map(float, bias), strict=True))
        result.decision_bias = dict(zip(labels, map(float, fit_decision_bias(log_probs, y)), strict=True))
    return result


def entity_confidence(
    word_logits: Sequence[np.ndarray],
    word_tags: Sequence[np.ndarray],
    spans: Sequence[Sequence[tuple[int, int]]],
    t: float,
):
    """Each predicted entity's score under temperature ``t``: the mean probability of its words' decided tags
    (``word_tags``), as the Predictor scores it. ``spans[i]`` are the (first, last) word indices of sentence ``i``'s
    entities."""
    scores = []
    for logits, tags, entities in zip(word_logits, word_tags, spans, strict=True):
        if not entities:
            continue
        chosen = np.exp(log_softmax(logits / t, axis=-1))[np.arange(len(tags)), tags]
        scores.extend(float(chosen[a : b + 1].mean()) for a, b in entities)
    return np.array(scores)


def calibrate_ner(
    word_logits: Sequence[np.ndarray],
    word_gold: Sequence[np.ndarray],
    word_tags: Sequence[np.ndarray],
    entity_spans: Sequence[Sequence[tuple[int, int]]],
    entity_correct: Sequence[Sequence[bool]],
    folds: Sequence[int],
) -> Calibrated:
    """Temperature for NER fitted on words (per sentence: logits ``[words, tags]`` and gold tag ids), checked on the
    predicted entities (``word_tags`` the decided tag ids, ``entity_spans`` as word ranges, ``entity_correct``
    against the gold)."""
    folds_arr = np.asarray(folds)
    word_folds = np.concatenate([[f] * len(g) for f, g in zip(folds, word_gold, strict=True)] or [[]]).astype(int)
    all_logits = np.concatenate(word_logits) if word_logits else np.zeros((0, 1))
    all_gold = np.concatenate(word_gold).astype(int) if word_gold else np.zeros(0, dtype=int)
    temps = cross_fit(word_folds, lambda train: fit_temperature(all_logits[train], all_gold[train]))
    before, after, correct = [], [], []
    for fold, t in temps.items():
        idx = [i for i in range(len(word_logits)) if folds_arr[i] == fold]
        logits = [word_logits[i] for i in idx]
        tags = [word_tags[i] for i in idx]
        spans = [entity_spans[i] for i in idx]
        before.append(entity_confidence(logits, tags, spans, 1.0))
        after.append(entity_confidence(logits, tags, spans, t))
        correct.extend(c for i in idx for c in entity_correct[i])
    return Calibrated(
        temperature=fit_temperature(all_logits, all_gold),
        per_fold_temperature=temps,
        before=(np.concatenate(before or [np.zeros(0)]), np.array(correct, dtype=bool)),
        after=(np.concatenate(after or [np.zeros(0)]), np.array(correct, dtype=bool)),
    )


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


def stance_arrays(
    gold_by_fold: dict[int, list[dict]], preds_by_fold: dict[int, list[dict]], labels: Sequence[str]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(log_probs [n, labels], gold ids [n], fold [n])`` of every gold stance sentence, from the predictions'
    ``scores`` (probabilities: their log is the logits up to a constant, which temperature scaling ignores)."""
    index = {label: i for i, label in enumerate(labels)}
    rows, y, folds = [], [], []
    for fold, gold_records in gold_by_fold.items():
        by_id = {p["id"]: p for p in preds_by_fold[fold]}
        for gold in gold_records:
            scores = {(s["start"], s["end"]): s.get("scores") for s in by_id[gold["id"]].get("sentences", [])}
            for sent in gold["sentences"]:
                got = scores.get((sent["start"], sent["end"]))
                if sent.get("stance") is None or not got:
                    continue
                rows.append([max(got.get(label, 0.0), 1e-12) for label in labels])
                y.append(index[sent["stance"]])
                folds.append(fold)
    return np.log(np.array(rows).reshape(-1, len(labels))), np.array(y, dtype=int), np.array(folds, dtype=int)


def with_decision_bias(records: Sequence[dict], bias: dict[str, float]) -> list[dict]:
    """Prediction records whose sentence stances are re-decided as ``argmax(log score + bias)``; scores unchanged."""
    out = []
    for record in records:
        sentences = []
        for s in record.get("sentences", []):
            if s.get("scores"):
                s = {**s, "stance": max(s["scores"], key=lambda k: np.log(max(s["scores"][k], 1e-12)) + bias.get(k, 0))}
            sentences.append(s)
        out.append({**record, "sentences": sentences})
    return out


def ner_arrays(
    gold_by_fold: dict[int, list[dict]], runs_by_fold: dict[int, Path], device: str = "cpu", engine: dict | None = None
) -> tuple:
    """``(word logits, gold tag ids, decided tag ids, predicted entity word ranges, their correctness, fold)`` per
    gold sentence of each held-out article, from its fold's model (run on the gold sentences and decided as the
    Predictor decides, as the CV predictions were; ``engine``: the backend and quantize, torch by default)."""
    logits_out, gold_out, tags_out, spans_out, correct_out, folds = [], [], [], [], [], []
    for fold, gold_records in sorted(gold_by_fold.items()):
        predictor = Predictor.from_pretrained(
            ner=str(runs_by_fold[fold]), device=device, **(engine or {"backend": "torch"})
        )
        labels = predictor.ner.labels
        label2id = {label: i for i, label in enumerate(labels)}
        examples = [e for e in ner_examples(gold_records) if e["words"]]
        for example, logits in zip(examples, predictor.word_logits([e["words"] for e in examples]), strict=True):
            decided = decode_iob2(logits, labels)
            gold = {(t, a, b) for t, a, b in get_entities(list(example["tags"]))}
            predicted = get_entities([labels[k] for k in decided])
            logits_out.append(logits)
            gold_out.append(np.array([label2id.get(t, 0) for t in example["tags"]]))
            tags_out.append(np.array(decided, dtype=int))
            spans_out.append([(a, b) for _, a, b in predicted])
            correct_out.append([(t, a, b) in gold for t, a, b in predicted])
            folds.append(fold)
    return logits_out, gold_out, tags_out, spans_out, correct_out, folds


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
