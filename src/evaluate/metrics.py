"""Metrics from gold and predicted records (matched by document id), in the one ``metrics.json`` schema.

NER is scored on word-level IOB2 tags per gold sentence (the words of ``src.data.words.word_spans``) with seqeval in
strict IOB2 mode, so ``I-X`` after ``O`` is no entity and ``B-X`` after ``I-X`` starts a second one. A predicted
entity whose edges fall inside a word is snapped outward to the enclosing words; one that overlaps an earlier kept
entity of the same sentence is dropped, one that crosses a gold sentence boundary is clipped to each sentence it
touches. Exact character-span matching per type is computed independently over the same (snapped) spans and must
agree with seqeval (``span_match.agrees_with_seqeval``).

Stance is scored per gold sentence with a gold stance (``None`` is skipped), matched to the predicted sentence
with the same ``(doc_id, start, end)``; document stance is derived with ``src.labels.doc_stance`` (and the stance
model's none label) from gold and from predicted sentence labels of the same sentences.

Labels that occur in neither gold nor predictions are left out of ``per_label`` and of the macro average.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Sequence

import numpy as np
from seqeval.metrics import classification_report as seqeval_report
from seqeval.scheme import IOB2
from sklearn.metrics import accuracy_score, confusion_matrix
from sklearn.metrics import classification_report as sklearn_report

from src.data.words import spans_to_word_tags, word_spans
from src.labels import doc_stance
from src.tasks import TASKS

SCHEMA_VERSION = 1

Span = tuple[str, int, int, str]  # (doc_id, start, end, label)


def evaluate_predictions(
    task: str,
    gold_records: Sequence[dict],
    pred_records: Sequence[dict],
    labels: Sequence[str] = (),
    none_label: str | None = None,
) -> dict:
    """Metrics dict (module schema) for ``task`` ("ner" or "stance"); prediction ids must equal gold ids. Stance
    needs ``none_label`` (the label that frames nothing, for document stance); ``labels`` orders its per-label rows
    and confusion matrix (the model's or the data config's stance labels)."""
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; expected one of {', '.join(TASKS)}")
    pred_by_id = match_documents(gold_records, pred_records)
    gold_records = TASKS[task].annotated(gold_records)  # a record without this layer has no gold to score against
    if not gold_records:
        raise ValueError(f"no gold record annotates {TASKS[task].layer} (their 'annotated' field): nothing to score")
    if task == "ner":
        return ner_metrics(gold_records, pred_by_id)
    if none_label is None:
        raise ValueError("stance metrics need the none label (the stance that frames nothing) for document stance")
    return stance_metrics(gold_records, pred_by_id, none_label, labels)


def match_documents(gold_records: Sequence[dict], pred_records: Sequence[dict]) -> dict[str, dict]:
    """Predictions by id, after checking they cover exactly the gold documents and none failed."""
    pred_by_id = {p["id"]: p for p in pred_records}
    gold_ids = [g["id"] for g in gold_records]
    missing = [i for i in gold_ids if i not in pred_by_id]
    extra = sorted(set(pred_by_id) - set(gold_ids))
    failed = [i for i in gold_ids if i in pred_by_id and pred_by_id[i].get("error")]
    problems = []
    if missing:
        problems.append(f"no prediction for gold documents {missing}")
    if extra:
        problems.append(f"predictions for documents not in gold: {extra}")
    if failed:
        problems.append(f"predictions with an error field: {[(i, pred_by_id[i]['error']) for i in failed]}")
    if problems:
        raise ValueError("; ".join(problems))
    return pred_by_id


# ---------------------------------------------------------------- NER


def snap_to_words(words: Sequence[tuple[int, int]], start: int, end: int) -> tuple[int, int] | None:
    """Smallest word-aligned span covering every word that ``[start, end)`` overlaps; None when it overlaps none.

    EXAMPLE: words of "I like London." and ``(8, 12)`` -> ``(7, 13)``
    """
    inside = [(s, e) for s, e in words if s < end and e > start]
    if not inside:
        return None
    return inside[0][0], inside[-1][1]


def sentence_entities(words: Sequence[tuple[int, int]], entities: Iterable[dict]) -> list[dict]:
    """Entities of one sentence snapped to its words, in order, with overlapping later ones dropped."""
    kept: list[dict] = []
    for ent in sorted(entities, key=lambda e: (e["start"], e["end"])):
        snapped = snap_to_words(words, ent["start"], ent["end"])
        if snapped is None or (kept and snapped[0] < kept[-1]["end"]):
            continue
        kept.append({"start": snapped[0], "end": snapped[1], "label": ent["label"]})
    return kept


def ner_sentences(gold: dict, pred: dict) -> list[dict]:
    """Per gold sentence: its words, gold entities and word-aligned predicted entities (absolute offsets)."""
    out = []
    for sent in gold["sentences"]:
        s, e = sent["start"], sent["end"]
        words = word_spans(gold["text"], s, e)
        gold_ents = [x for x in gold["entities"] if x["start"] >= s and x["end"] <= e]
        pred_ents = sentence_entities(words, (x for x in pred.get("entities", []) if x["start"] < e and x["end"] > s))
        out.append({"start": s, "end": e, "words": words, "gold": gold_ents, "pred": pred_ents})
    return out


def ner_tag_sequences(gold_records: Sequence[dict], pred_by_id: dict[str, dict]) -> tuple[list, list, list, list]:
    """Word-level IOB2 gold and predicted tag sequences (one per gold sentence) and the gold/pred span lists."""
    y_true, y_pred, gold_spans, pred_spans = [], [], [], []
    for gold in gold_records:
        for sent in ner_sentences(gold, pred_by_id[gold["id"]]):
            try:
                y_true.append(spans_to_word_tags(sent["words"], sent["gold"]))
            except ValueError as err:
                raise ValueError(f"gold document {gold['id']}, sentence {sent['start']}-{sent['end']}: {err}") from err
            y_pred.append(spans_to_word_tags(sent["words"], sent["pred"]))
            gold_spans += [(gold["id"], x["start"], x["end"], x["label"]) for x in sent["gold"]]
            pred_spans += [(gold["id"], x["start"], x["end"], x["label"]) for x in sent["pred"]]
    return y_true, y_pred, gold_spans, pred_spans


def seqeval_scores(y_true: list[list[str]], y_pred: list[list[str]]) -> tuple[dict, dict, dict]:
    """(per_label, micro, macro) from seqeval strict IOB2; zeros when neither side has an entity."""
    has_entity = any(t != "O" for seq in (*y_true, *y_pred) for t in seq)
    if not has_entity:
        return {}, prf(0.0, 0.0, 0.0, 0), prf(0.0, 0.0, 0.0, 0)
    with np.errstate(all="ignore"), warnings.catch_warnings():  # an all-dangling-I- input averages nothing (NaN -> 0)
        warnings.simplefilter("ignore", RuntimeWarning)
        report = seqeval_report(y_true, y_pred, mode="strict", scheme=IOB2, output_dict=True, zero_division=0)
    per_label = {k: prf_from_report(v) for k, v in sorted(report.items()) if not k.endswith(" avg")}
    return per_label, prf_from_report(report["micro avg"]), prf_from_report(report["macro avg"])


def span_match_scores(gold_spans: Iterable[Span], pred_spans: Iterable[Span]) -> dict:
    """Exact (doc_id, start, end, label) matching per type: tp/fp/fn and precision/recall/F1, plus micro."""
    gold, pred = set(gold_spans), set(pred_spans)
    labels = sorted({s[3] for s in gold | pred})
    per_label = {}
    for label in labels:
        g = {s for s in gold if s[3] == label}
        p = {s for s in pred if s[3] == label}
        per_label[label] = counts_to_scores(len(g & p), len(p - g), len(g - p))
    micro = counts_to_scores(len(gold & pred), len(pred - gold), len(gold - pred))
    return {"per_label": per_label, "micro": micro}


def counts_to_scores(tp: int, fp: int, fn: int) -> dict:
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"tp": tp, "fp": fp, "fn": fn, "precision": precision, "recall": recall, "f1": f1}


def ner_metrics(gold_records: Sequence[dict], pred_by_id: dict[str, dict]) -> dict:
    y_true, y_pred, gold_spans, pred_spans = ner_tag_sequences(gold_records, pred_by_id)
    per_label, micro, macro = seqeval_scores(y_true, y_pred)
    span_match = span_match_scores(gold_spans, pred_spans)
    span_match["agrees_with_seqeval"] = scores_agree(per_label, micro, span_match)
    return {
        "schema_version": SCHEMA_VERSION,
        "task": "ner",
        "n_documents": len(gold_records),
        "n_sentences": len(y_true),
        "n_gold": len(gold_spans),
        "n_predicted": len(pred_spans),
        "headline": {"name": TASKS["ner"].headline, "value": micro["f1"]},
        "per_label": per_label,
        "micro": micro,
        "macro": macro,
        "span_match": span_match,
    }


def scores_agree(per_label: dict, micro: dict, span_match: dict, tol: float = 1e-9) -> bool:
    """True when character-span matching gives seqeval's figures for every type and for the micro average."""
    if set(per_label) != set(span_match["per_label"]):
        return False
    pairs = [(micro, span_match["micro"])] + [(per_label[k], span_match["per_label"][k]) for k in per_label]
    for seq, span in pairs:
        if seq["support"] != span["tp"] + span["fn"]:
            return False
        if any(abs(seq[m] - span[m]) > tol for m in ("precision", "recall", "f1")):
            return False
    return True


# ---------------------------------------------------------------- stance


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


def ordered_labels(labels: Iterable[str], known: Sequence[str] = ()) -> list[str]:
    """``labels`` in the order of ``known`` (the model's or the data config's), unknown ones after it alphabetically.

    EXAMPLE: ``ordered_labels({"b", "z", "a"}, ["b", "a"]) -> ["b", "a", "z"]``
    """
    present = set(labels)
    return [x for x in known if x in present] + sorted(present - set(known))


def stance_metrics(
    gold_records: Sequence[dict], pred_by_id: dict[str, dict], none_label: str, known: Sequence[str] = ()
) -> dict:
    pairs = stance_pairs(gold_records, pred_by_id)
    if not pairs:
        raise ValueError("no gold sentence has a stance label: nothing to score for task=stance")
    y_true, y_pred = [p["gold"] for p in pairs], [p["pred"] for p in pairs]
    labels = ordered_labels(y_true + y_pred, known)
    report = sklearn_report(y_true, y_pred, labels=labels, output_dict=True, zero_division=0)
    accuracy = float(accuracy_score(y_true, y_pred))
    documents = []
    for gold in gold_records:
        doc_pairs = [p for p in pairs if p["doc_id"] == gold["id"]]
        documents.append(
            {
                "id": gold["id"],
                "gold": doc_stance((p["gold"] for p in doc_pairs), none_label),
                "pred": doc_stance((p["pred"] for p in doc_pairs), none_label),
            }
        )
    macro = prf_from_report(report["macro avg"])
    return {
        "schema_version": SCHEMA_VERSION,
        "task": "stance",
        "n_documents": len(gold_records),
        "n_sentences": len(pairs),
        "headline": {"name": TASKS["stance"].headline, "value": macro["f1"]},
        "per_label": {label: prf_from_report(report[label]) for label in labels},
        "micro": prf(accuracy, accuracy, accuracy, len(pairs)),
        "macro": macro,
        "accuracy": accuracy,
        "confusion_matrix": {
            "labels": labels,
            "matrix": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
        },
        "doc_stance_accuracy": sum(d["gold"] == d["pred"] for d in documents) / len(documents),
        "doc_stance": documents,
    }


# ---------------------------------------------------------------- shared


def prf(precision: float, recall: float, f1: float, support: int) -> dict:
    return {"precision": float(precision), "recall": float(recall), "f1": float(f1), "support": int(support)}


def prf_from_report(row: dict) -> dict:
    """One seqeval/scikit-learn report row in the schema's shape (plain floats, NaN as 0)."""
    values = [float(row[k]) for k in ("precision", "recall", "f1-score")]
    return prf(*(0.0 if v != v else v for v in values), int(row["support"]))


# ---------------------------------------------------------------- error analysis


def context(text: str, start: int, end: int, bounds: tuple[int, int], width: int = 40) -> str:
    """``text[start:end]`` marked ``[[...]]`` with up to ``width`` characters either side inside ``bounds``."""
    lo, hi = max(bounds[0], start - width), min(bounds[1], end + width)
    snippet = f"{text[lo:start]}[[{text[start:end]}]]{text[end:hi]}"
    return " ".join(snippet.split())


def ner_errors(gold_records: Sequence[dict], pred_records: Sequence[dict]) -> dict[str, list[dict]]:
    """False-positive and false-negative spans (after snapping), each with its context and the other side's
    overlapping span label if any (a wrong type or wrong boundary rather than a miss)."""
    pred_by_id = match_documents(gold_records, pred_records)
    fps, fns = [], []
    for gold in gold_records:
        text = gold["text"]
        for sent in ner_sentences(gold, pred_by_id[gold["id"]]):
            g = {(x["start"], x["end"], x["label"]) for x in sent["gold"]}
            p = {(x["start"], x["end"], x["label"]) for x in sent["pred"]}
            for mine, other, out in ((p - g, g, fps), (g - p, p, fns)):
                for s, e, label in sorted(mine):
                    near = [o for o in sorted(other) if o[0] < e and o[1] > s]
                    out.append(
                        {
                            "doc_id": gold["id"],
                            "start": s,
                            "end": e,
                            "label": label,
                            "text": text[s:e],
                            "overlaps": [f"{text[o[0] : o[1]]} ({o[2]})" for o in near],
                            "context": context(text, s, e, (sent["start"], sent["end"])),
                        }
                    )
    return {"false_positives": fps, "false_negatives": fns}


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
