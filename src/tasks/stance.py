"""Sentence stance: sequence classification, one label per gold sentence.

Scoring: per gold sentence with a gold stance (``None`` is skipped), matched to the predicted sentence with the same
``(doc_id, start, end)``; document stance is derived with ``src.labels.doc_stance`` (and the none label) from gold and
from predicted sentence labels of the same sentences. Labels in neither gold nor predictions are left out of
``per_label`` and of the macro average.
"""

from __future__ import annotations

import random
import tempfile
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from scipy.special import log_softmax
from sklearn.metrics import ConfusionMatrixDisplay, accuracy_score, classification_report, confusion_matrix
from transformers import AutoModelForSequenceClassification, DataCollatorWithPadding

from src.data.augment import known_names, mask_names, phrase_records
from src.data.convert import sentence_context, stance_examples
from src.errors import ConfigError
from src.features import encode_stance, per_example_mean, softmax
from src.files import write_figure
from src.labels import LabelScheme, doc_stance
from src.markdown import markdown_table
from src.prototypes import fit_prototypes, head_probabilities, similarity_features

from .base import Task
from .calibrate import (
    Calibrated,
    CalibrationError,
    cross_fit,
    extrapolated_temperature,
    fit_decision_bias,
    fit_temperature,
    suite_check,
)
from .scoring import (
    SCHEMA_VERSION,
    Baseline,
    BaselineUnavailable,
    match_documents,
    ordered_labels,
    prf,
    prf_from_report,
    shown,
)

if TYPE_CHECKING:
    from src.predict.engine import Predictor, TaskModel


class StanceTask(Task):
    calibrated_on = "sentences"

    @property
    def auto_model(self) -> type:
        return AutoModelForSequenceClassification

    def labels(self, data: Mapping) -> list[str]:
        return list(data["stance_labels"])

    def examples(self, records: Sequence[dict], task_cfg: Mapping | None = None) -> tuple[list, list]:
        """Inputs are ``(sentence, context or None)`` pairs; ``task.context`` says what context is read."""
        examples = stance_examples(self.annotated(records), (task_cfg or {}).get("context", "none"))
        return [(e["text"], e["context"]) for e in examples], [e["label"] for e in examples]

    def encode(self, tokenizer, inputs, targets, label2id, max_length, stride):
        texts, contexts = zip(*inputs, strict=True) if inputs else ((), ())
        return encode_stance(tokenizer, texts, targets, label2id, max_length, stride, contexts)

    def collator(self, tokenizer):
        return DataCollatorWithPadding(tokenizer)

    def augmented(self, records: Sequence[dict], task_cfg: Mapping, seed: int, mask_token: str | None) -> list[dict]:
        """Names masked in a share of the training sentences (``task.mask_names``: the probability per sentence;
        ``task.mask_name_types``: the entity types whose names are masked), so names stop carrying the label; the
        prototype phrases written into ``task.phrase_templates`` added as labelled sentences."""
        templates = task_cfg.get("phrase_templates") or []
        phrases = phrase_records(task_cfg["prototypes"], templates) if templates else []
        return self.masked(records, task_cfg, seed, mask_token) + phrases

    def masked(self, records: Sequence[dict], task_cfg: Mapping, seed: int, mask_token: str | None) -> list[dict]:
        probability = float(task_cfg.get("mask_names") or 0)
        if probability <= 0:
            return list(records)
        if not mask_token:
            raise ConfigError("task.mask_names needs a tokenizer with a mask token; set task.mask_names=0")
        types = task_cfg.get("mask_name_types")  # null: every entity type the records use
        types = sorted({e["label"] for r in records for e in r["entities"]}) if types is None else list(types)
        names = known_names(records, types)
        return mask_names(records, names, probability, random.Random(seed), mask_token)

    def loss(self, task_cfg: Mapping, dataset, n_labels: int) -> Callable | None:
        """Cross-entropy weighted by inverse class frequency (``task.class_weighting``): neutral dominates."""
        if not task_cfg.get("class_weighting"):
            return None
        weights = class_weights(dataset["labels"], n_labels)

        def compute(outputs: Any, labels: torch.Tensor, num_items_in_batch: int | None = None) -> torch.Tensor:
            logits = outputs["logits"]
            return torch.nn.functional.cross_entropy(logits, labels, weight=weights.to(logits.device))

        return compute

    def pseudo_labelled(self, documents: Sequence[dict], predictions: Sequence[dict], settings: Mapping) -> list[dict]:
        """Stance-only records of the sentences predicted most confidently (``task.self_training``): probabilities
        sharpened or softened by ``temperature`` (the cross-fitted one of ``make cv``), kept at ``confidence`` or
        above, at most ``per_label`` per label, the most confident first, so every label adds about as many."""
        temperature, confidence = float(settings["temperature"]), float(settings["confidence"])
        candidates: dict[str, list[tuple[float, int, int]]] = {}
        for d, doc in enumerate(predictions):
            for i, sentence in enumerate(doc.get("sentences") or []):
                labels = list(sentence["scores"])
                logp = np.log(np.maximum([sentence["scores"][k] for k in labels], 1e-12)) / temperature
                p = np.exp(logp - logp.max())
                p /= p.sum()
                best = int(p.argmax())
                if p[best] >= confidence:
                    candidates.setdefault(labels[best], []).append((float(p[best]), d, i))
        chosen: dict[int, dict[int, str]] = {}
        for label, found in candidates.items():
            for _, d, i in sorted(found, key=lambda c: (-c[0], c[1], c[2]))[: int(settings["per_label"])]:
                chosen.setdefault(d, {})[i] = label
        records = []
        for d, picks in sorted(chosen.items()):
            doc = predictions[d]
            sentences = [
                {"start": s["start"], "end": s["end"], "stance": picks.get(i)} for i, s in enumerate(doc["sentences"])
            ]
            records.append(
                {
                    "id": f"unlabelled-{documents[d]['id']}",
                    "text": documents[d]["text"],
                    "entities": [],
                    "sentences": sentences,
                    "annotated": ["stance"],
                }
            )
        return records

    def finish(self, load: Callable[[], Predictor], records: Sequence[dict], task_cfg: Mapping) -> dict:
        """The guideline-prototype head (``task.prototypes``, src/prototypes.py), fitted on the training sentences
        with the trained encoder."""
        if not task_cfg.get("prototypes"):
            return {}
        return {"prototypes": fit_prototypes(load(), records, task_cfg["prototypes"], task_cfg)}

    def metrics(
        self,
        gold_records: Sequence[dict],
        pred_by_id: dict[str, dict],
        labels: Sequence[str] = (),
        none_label: str | None = None,
    ) -> dict:
        """Per-label scores ordered as ``labels`` (the model's or the data config's), the confusion matrix, and
        document stance (which needs ``none_label``, the label that frames nothing)."""
        if none_label is None:
            raise ValueError("stance metrics need the none label (the stance that frames nothing) for document stance")
        pairs = stance_pairs(gold_records, pred_by_id)
        if not pairs:
            raise ValueError("no gold sentence has a stance label: nothing to score for task=stance")
        y_true, y_pred = [p["gold"] for p in pairs], [p["pred"] for p in pairs]
        order = ordered_labels(y_true + y_pred, labels)
        report = classification_report(y_true, y_pred, labels=order, output_dict=True, zero_division=0)
        accuracy = float(accuracy_score(y_true, y_pred))
        by_doc: dict[str, list[dict]] = {gold["id"]: [] for gold in gold_records}
        for p in pairs:
            by_doc[p["doc_id"]].append(p)
        documents = [
            {
                "id": doc_id,
                "gold": doc_stance((p["gold"] for p in doc_pairs), none_label),
                "pred": doc_stance((p["pred"] for p in doc_pairs), none_label),
            }
            for doc_id, doc_pairs in by_doc.items()
        ]
        macro = prf_from_report(report["macro avg"])
        return {
            "schema_version": SCHEMA_VERSION,
            "task": self.name,
            "n_documents": len(gold_records),
            "n_sentences": len(pairs),
            "headline": {"name": self.headline, "value": macro["f1"]},
            "per_label": {label: prf_from_report(report[label]) for label in order},
            "micro": prf(accuracy, accuracy, accuracy, len(pairs)),
            "macro": macro,
            "accuracy": accuracy,
            "confusion_matrix": {"labels": order, "matrix": confusion_matrix(y_true, y_pred, labels=order).tolist()},
            "doc_stance_accuracy": sum(d["gold"] == d["pred"] for d in documents) / len(documents),
            "doc_stance": documents,
        }

    def summary_lines(self, metrics: dict) -> list[str]:
        return [
            f"- accuracy: {metrics['accuracy']:.3f}",
            f"- document stance accuracy: {metrics['doc_stance_accuracy']:.3f}",
        ]

    def report_sections(self, metrics: dict, figure: str | None = None) -> list[str]:
        """The confusion matrix (a table, and ``figure`` when drawn) and each document's stance."""
        cm = metrics["confusion_matrix"]
        rows = [[f"**{gold}**", *row] for gold, row in zip(cm["labels"], cm["matrix"], strict=True)]
        docs = [[d["id"], d["gold"], d["pred"]] for d in metrics["doc_stance"]]
        return [
            "## Confusion matrix (rows gold, columns predicted)",
            markdown_table(["gold \\ predicted", *cm["labels"]], rows),
            *([f"![confusion]({figure})"] if figure else []),
            "## Document stance",
            markdown_table(["document", "gold", "predicted"], docs),
        ]

    def error_sections(self, gold: Sequence[dict], pred: Sequence[dict], max_errors: int) -> list[str]:
        """The misclassified sentences with the predicted label's score."""
        items = stance_errors(gold, pred)
        rows = [
            [
                e["doc_id"],
                f"{e['start']}-{e['end']}",
                e["gold"],
                e["pred"],
                "" if e["score"] is None else f"{e['score']:.2f}",
                e["text"],
            ]
            for e in items[:max_errors]
        ]
        table = markdown_table(["doc", "span", "gold", "predicted", "score", "sentence"], rows) if rows else "none"
        return [f"### Misclassified sentences ({shown(items, max_errors)})", table]

    def draw(self, metrics: dict, path: str | Path, title: str) -> Path | None:
        """The confusion matrix as a PNG (counts in the cells), rendered off-screen."""
        import matplotlib  # seconds to import; only when a report is written

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        cm = metrics["confusion_matrix"]
        fig, ax = plt.subplots(figsize=(1.6 * len(cm["labels"]) + 2, 1.4 * len(cm["labels"]) + 1.5))
        ConfusionMatrixDisplay(np.array(cm["matrix"]), display_labels=cm["labels"]).plot(ax=ax, colorbar=False)
        ax.set_title(title)
        ax.set_xlabel("predicted")
        ax.set_ylabel("gold")
        plt.setp(ax.get_xticklabels(), rotation=20, ha="right")
        fig.tight_layout()
        return write_figure(path, fig, dpi=120)

    def stored_calibration(
        self, calibration: dict, size_check: dict | None, suite_folds: Sequence[dict]
    ) -> tuple[dict, str | None]:
        """The temperature extrapolated to the model trained on every article (``size_adjusted``), refused when it
        fails the checks under shift or without the size check (``shift_refusal``)."""
        adjusted = size_adjusted(calibration, size_check, suite_folds)
        return adjusted, shift_refusal(adjusted)

    def baselines(self) -> dict[str, Baseline]:
        return {"majority": majority_stance, "tfidf_logreg": tfidf_logreg_stance, "setfit_minilm": setfit_stance}

    def predict(self, model: TaskModel, jobs: Sequence[tuple[str, Sequence[tuple[int, int]], int]]) -> list:
        """Each sentence's ``(stance, scores)``, read with the context the model was trained with."""
        sentences = [text[slice(*spans[i])] for text, spans, i in jobs]
        contexts = [sentence_context(text, spans, i, model.context) for text, spans, i in jobs]
        return [(r["stance"], r["scores"]) for r in classify(model, sentences, contexts)]

    def fill(self, prediction: dict, results: Sequence | None, model: TaskModel | None) -> None:
        """Each sentence's ``stance`` and ``scores`` and the record's ``doc_stance`` (None, ``{}``, None without a
        stance model)."""
        for sentence, (stance, scores) in zip(
            prediction["sentences"], results or [(None, {})] * len(prediction["sentences"]), strict=True
        ):
            sentence["stance"], sentence["scores"] = stance, scores
        none_label = None if model is None else model.none_label
        stances = (s["stance"] for s in prediction["sentences"])
        prediction["doc_stance"] = None if none_label is None else doc_stance(stances, none_label)

    def scheme_part(self, model: TaskModel) -> dict:
        """The stance labels and the one that frames nothing."""
        return {"stance_labels": tuple(model.labels), "none_label": model.none_label}

    def uncertainty(self, result: tuple[str, dict[str, float]]) -> tuple[float, str]:
        """The margin between the sentence's two most probable stances (``stance_uncertainty``)."""
        return stance_uncertainty(result[1])

    def calibrate(
        self,
        gold_by_fold: dict[int, list[dict]],
        preds_by_fold: dict[int, list[dict]],
        load: Callable[[int], Predictor],
        labels: Sequence[str] = (),
        none_label: str | None = None,
    ) -> tuple[Calibrated, dict[int, list[dict]]]:
        """Fitted and checked on sentences from the predictions' scores, with a decision bias per label (a
        class-prior correction: outlets differ in how many leverage sentences they print); the second value is each
        fold's predictions re-decided with its cross-fitted bias."""
        labels = list(labels)
        log_probs, y, fold_of = stance_arrays(gold_by_fold, preds_by_fold, labels)
        if set(fold_of) != set(gold_by_fold):
            raise CalibrationError("the predictions of some fold carry no sentence scores")
        result = calibrate_stance(log_probs, y, fold_of, labels, with_bias=True)
        return result, {k: with_decision_bias(preds_by_fold[k], result.per_fold_bias[k]) for k in gold_by_fold}


def stance_uncertainty(scores: Mapping[str, float]) -> tuple[float, str]:
    """``(1 - margin, why)`` from a sentence's stance probabilities.

    EXAMPLE: ``stance_uncertainty({"leverage": 0.5, "neutral": 0.46, "economic_cooperation": 0.04})``
    -> ``(0.96, "stance margin 0.04 leverage/neutral")``
    """
    (first, p1), (second, p2) = sorted(scores.items(), key=lambda item: -item[1])[:2]
    margin = p1 - p2
    return 1.0 - margin, f"stance margin {margin:.2f} {first}/{second}"


def classify(model: TaskModel, sentences: Sequence[str], contexts: Sequence[str | None] | None = None) -> list[dict]:
    """``[{"stance", "scores": {label: prob}}]`` of each sentence: the window probabilities averaged (with the
    prototype head's where the folder has one), scaled by the temperature and decided with the decision bias that
    were fitted out of fold (``newsframe.json`` calibration)."""
    label2id = {label: i for i, label in model.id2label.items()}
    windows = encode_stance(model.tokenizer, list(sentences), None, label2id, model.max_length, model.stride, contexts)
    logits, pooled = model.outputs(windows, per_token=False, embed=model.prototypes is not None)
    probs = softmax(np.stack(logits)) if windows["input_ids"] else np.empty((0, len(model.id2label)))
    means = per_example_mean(probs, windows["example_index"], len(sentences))
    labels = model.labels
    if model.prototypes is not None and len(sentences):
        embeddings = per_example_mean(np.stack(pooled), windows["example_index"], len(sentences))
        phrases = model.prototypes["phrases"]
        if model.phrase_embeddings is None:  # the model's own embeddings of its phrases, computed once
            model.phrase_embeddings = sentence_embeddings(model, [p for label in labels for p in phrases[label]])
        phrase_labels = [label for label in labels for _ in phrases[label]]
        features = similarity_features(embeddings, model.phrase_embeddings, phrase_labels, labels)
        means = (means + head_probabilities(features, model.prototypes["head"])) / 2
    log_probs = np.log(np.maximum(means, 1e-12))
    scores = softmax(log_probs / model.temperature) if len(means) else means
    decide = np.log(np.maximum(scores, 1e-12)) + model.decision_bias if len(means) else means
    return [
        {"stance": labels[int(row.argmax())], "scores": {label: float(p) for label, p in zip(labels, ps, strict=True)}}
        for row, ps in zip(decide, scores, strict=True)
    ]


def sentence_embeddings(
    model: TaskModel, sentences: Sequence[str], contexts: Sequence[str | None] | None = None, chunk: int = 2048
) -> np.ndarray:
    """``[n, hidden]``: the stance model's mean-pooled encoding of each sentence (windows averaged), ``chunk``
    sentences at a time."""
    label2id = {label: i for i, label in model.id2label.items()}
    embeddings = []
    for b in range(0, len(sentences), chunk):
        part = list(sentences[b : b + chunk])
        context = list(contexts[b : b + chunk]) if contexts is not None else None
        windows = encode_stance(model.tokenizer, part, None, label2id, model.max_length, model.stride, context)
        _, pooled = model.outputs(windows, per_token=False, embed=True)
        embeddings.append(per_example_mean(np.stack(pooled), windows["example_index"], len(part)))
    return np.concatenate(embeddings) if embeddings else np.empty((0, 0))


def class_weights(labels: Sequence[int], n_labels: int) -> torch.Tensor:
    """Inverse class frequency, scaled to mean 1 (a label absent from ``labels`` counts as seen once)."""
    counts = np.bincount(np.asarray(labels), minlength=n_labels).astype(np.float64)
    weights = counts.sum() / np.maximum(counts, 1) / n_labels
    return torch.tensor(weights / weights.mean(), dtype=torch.float32)


def stance_pairs(gold_records: Sequence[dict], pred_by_id: dict[str, dict]) -> list[dict]:
    """Gold sentences with a stance, each with its predicted label; a gold sentence without prediction is an error."""
    pairs = []
    for gold in gold_records:
        pred_sents = {(s["start"], s["end"]): s for s in pred_by_id[gold["id"]].get("sentences", [])}
        for sent in gold["sentences"]:
            if sent.get("stance") is None:
                continue
            pred = pred_sents.get((sent["start"], sent["end"]))
            if pred is None:
                raise ValueError(
                    f"document {gold['id']}: no predicted sentence at {sent['start']}-{sent['end']} "
                    "(stance is scored on the gold segmentation; predict with Predictor.predict_records)"
                )
            pairs.append(
                {
                    "doc_id": gold["id"],
                    "start": sent["start"],
                    "end": sent["end"],
                    "gold": sent["stance"],
                    "pred": pred["stance"],
                    "score": (pred.get("scores") or {}).get(pred["stance"]),
                }
            )
    return pairs


def stance_errors(gold_records: Sequence[dict], pred_records: Sequence[dict], width: int = 300) -> list[dict]:
    """Misclassified sentences with their text (cut at ``width`` characters)."""
    pred_by_id = match_documents(gold_records, pred_records)
    texts = {g["id"]: g["text"] for g in gold_records}
    wrong = []
    for p in stance_pairs(gold_records, pred_by_id):
        if p["gold"] != p["pred"]:
            sentence = " ".join(texts[p["doc_id"]][p["start"] : p["end"]].split())
            wrong.append({**p, "text": sentence if len(sentence) <= width else sentence[: width - 1] + "…"})
    return wrong


# ---------------------------------------------------------------- calibration


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


# ---------------------------------------------------------------- baselines


def stance_record(gold: dict, stances: Sequence[str], scores: Sequence[dict], none_label: str) -> dict:
    """Prediction record for ``gold``'s sentences with a gold stance, in the order they appear."""
    sents = [s for s in gold["sentences"] if s.get("stance") is not None]
    sentences = [
        {"start": s["start"], "end": s["end"], "text": gold["text"][s["start"] : s["end"]], "stance": y, "scores": p}
        for s, y, p in zip(sents, stances, scores, strict=True)
    ]
    return {"id": gold["id"], "entities": [], "sentences": sentences, "doc_stance": doc_stance(stances, none_label)}


def labelled_sentences(records: Sequence[dict]) -> tuple[list[str], list[str]]:
    pairs = [(r["text"][s["start"] : s["end"]], s["stance"]) for r in records for s in r["sentences"]]
    pairs = [(t, y) for t, y in pairs if y is not None]
    return [t for t, _ in pairs], [y for _, y in pairs]


def majority_stance(train: Sequence[dict], test: Sequence[dict], scheme: LabelScheme) -> list[dict]:
    """Every sentence gets the most frequent training stance (ties: the scheme's label order)."""
    _, y = labelled_sentences(train)
    if not y:
        raise ValueError("majority baseline: the training articles have no stance labels")
    counts = Counter(y)
    order = ordered_labels(counts, scheme.stance_labels)
    top = max(order, key=lambda label: (counts[label], -order.index(label)))
    out = []
    for gold in test:
        n = sum(s.get("stance") is not None for s in gold["sentences"])
        out.append(stance_record(gold, [top] * n, [{top: 1.0}] * n, scheme.none_label))
    return out


def tfidf_logreg_stance(train: Sequence[dict], test: Sequence[dict], scheme: LabelScheme) -> list[dict]:
    """TF-IDF word 1-2 grams + class-balanced logistic regression (C=1), fitted on the training sentences."""
    from sklearn.feature_extraction.text import TfidfVectorizer  # seconds to import; only this baseline needs it
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    texts, y = labelled_sentences(train)
    if len(set(y)) < 2:  # logistic regression needs two classes; one class is the majority baseline
        return majority_stance(train, test, scheme)
    clf = make_pipeline(
        TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, lowercase=True),
        LogisticRegression(C=1.0, class_weight="balanced", max_iter=2000),
    )
    clf.fit(texts, y)
    classes = [str(c) for c in clf.classes_]
    out = []
    for gold in test:
        sent_texts, _ = labelled_sentences([gold])
        if not sent_texts:
            out.append(stance_record(gold, [], [], scheme.none_label))
            continue
        probs = clf.predict_proba(sent_texts)
        stances = [classes[int(row.argmax())] for row in probs]
        scores = [{c: float(p) for c, p in zip(classes, row, strict=True)} for row in probs]
        out.append(stance_record(gold, stances, scores, scheme.none_label))
    return out


def setfit_stance(train: Sequence[dict], test: Sequence[dict], scheme: LabelScheme) -> list[dict]:
    """SetFit (contrastive fine-tuning of the packaged all-MiniLM-L6-v2 sentence encoder + logistic regression),
    with SetFit's usual few-shot settings (10 pair iterations, 1 epoch, batch 16, seed 42), fixed, not tuned."""
    from src.model import packaged_model_path  # imports torch: only this baseline needs the packaged weights

    try:
        from datasets import Dataset
        from setfit import SetFitModel
        from setfit import Trainer as SetFitTrainer
        from setfit import TrainingArguments as SetFitArguments
    except ImportError as err:
        raise BaselineUnavailable("setfit is not installed (pip install -e .[benchmark])") from err

    x, y = labelled_sentences(train)
    model = SetFitModel.from_pretrained(packaged_model_path())
    with tempfile.TemporaryDirectory(prefix="setfit-") as scratch:  # its Trainer would write ./checkpoints otherwise
        args = SetFitArguments(
            output_dir=scratch,
            save_strategy="no",
            batch_size=16,
            num_epochs=1,
            num_iterations=10,
            seed=42,
            show_progress_bar=False,
        )
        SetFitTrainer(model=model, args=args, train_dataset=Dataset.from_dict({"text": x, "label": y})).train()
    classes = [str(c) for c in model.model_head.classes_]
    out = []
    for gold in test:
        texts = [gold["text"][s["start"] : s["end"]] for s in gold["sentences"] if s.get("stance") is not None]
        probs = model.predict_proba(texts, as_numpy=True) if texts else []
        stances = [classes[int(row.argmax())] for row in probs]
        scores = [{c: float(p) for c, p in zip(classes, row, strict=True)} for row in probs]
        out.append(stance_record(gold, stances, scores, scheme.none_label))
    return out
