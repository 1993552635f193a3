"""Named entities: token classification over words, strict IOB2; scored on word-level tags per gold sentence.

Scoring: the words of ``src.data.words.word_spans``, seqeval in strict IOB2 mode, so ``I-X`` after ``O`` is no entity
and ``B-X`` after ``I-X`` starts a second one. A predicted entity whose edges fall inside a word is snapped outward to
the enclosing words; one that overlaps an earlier kept entity of the same sentence is dropped, one that crosses a gold
sentence boundary is clipped to each sentence it touches. Exact character-span matching per type is computed
independently over the same (snapped) spans and must agree with seqeval (``span_match.agrees_with_seqeval``).
"""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
from scipy.special import log_softmax
from seqeval.metrics import classification_report as seqeval_report
from seqeval.metrics import f1_score
from seqeval.metrics.sequence_labeling import get_entities
from seqeval.scheme import IOB2
from transformers import AutoModelForTokenClassification, DataCollatorForTokenClassification

from src.data.convert import ner_examples
from src.data.spacy_model import SpacyUnavailable, load_spacy
from src.data.words import spans_to_word_tags, word_spans, word_tags_to_spans
from src.features import encode_ner, softmax, words_from_windows
from src.labels import LabelScheme, decode_iob2, iob2_tags
from src.markdown import markdown_table

from .base import Task
from .calibrate import Calibrated, cross_fit, fit_temperature
from .scoring import (
    SCHEMA_VERSION,
    Baseline,
    BaselineUnavailable,
    context,
    counts_to_scores,
    match_documents,
    prf,
    prf_from_report,
    shown,
)

if TYPE_CHECKING:
    from src.predict.engine import Predictor, TaskModel

Span = tuple[str, int, int, str]  # (doc_id, start, end, label)


class NerTask(Task):
    calibrated_on = "entities (score = mean word probability)"

    @property
    def auto_model(self) -> type:
        return AutoModelForTokenClassification

    def labels(self, data: Mapping) -> list[str]:
        return iob2_tags(list(data["entity_labels"]))

    def examples(self, records: Sequence[dict], task_cfg: Mapping | None = None) -> tuple[list, list]:
        """Sentences of the records that annotate entities: a stance-only record would teach "no entity here"."""
        examples = ner_examples(self.annotated(records))
        return [e["words"] for e in examples], [e["tags"] for e in examples]

    def encode(self, tokenizer, inputs, targets, label2id, max_length, stride):
        return encode_ner(tokenizer, inputs, targets, label2id, max_length, stride)

    def collator(self, tokenizer):
        return DataCollatorForTokenClassification(tokenizer)

    def dev_metric(self, id2label: dict[int, str], encoding: dict, targets: Sequence) -> Callable:
        """Strict IOB2 seqeval over whole sentences: each word decided by its first sub-token in the window where it
        has the most context, then the valid IOB2 path, as the Predictor and the reports decide it (not every
        window's sub-tokens counted)."""

        lengths, n_words = [len(ids) for ids in encoding["input_ids"]], [len(t) for t in targets]
        tags = [id2label[i] for i in range(len(id2label))]

        def compute(prediction) -> dict[str, float]:
            logits = [np.asarray(row[:n]) for row, n in zip(prediction.predictions, lengths, strict=True)]
            words = words_from_windows(logits, encoding["word_ids"], encoding["example_index"], n_words)
            guess = [[tags[k] for k in decode_iob2(w, tags)] for w in words]
            return {"f1": f1_score(list(map(list, targets)), guess, mode="strict", scheme=IOB2)}

        return compute

    def metrics(
        self, gold_records: Sequence[dict], pred_by_id: dict[str, dict], labels: Sequence[str] = (), none_label=None
    ) -> dict:
        y_true, y_pred, gold_spans, pred_spans = ner_tag_sequences(gold_records, pred_by_id)
        per_label, micro, macro = seqeval_scores(y_true, y_pred)
        span_match = span_match_scores(gold_spans, pred_spans)
        span_match["agrees_with_seqeval"] = scores_agree(per_label, micro, span_match)
        return {
            "schema_version": SCHEMA_VERSION,
            "task": self.name,
            "n_documents": len(gold_records),
            "n_sentences": len(y_true),
            "n_gold": len(gold_spans),
            "n_predicted": len(pred_spans),
            "headline": {"name": self.headline, "value": micro["f1"]},
            "per_label": per_label,
            "micro": micro,
            "macro": macro,
            "span_match": span_match,
        }

    def summary_lines(self, metrics: dict) -> list[str]:
        sm = metrics["span_match"]
        return [
            f"- gold entities: {metrics['n_gold']}, predicted: {metrics['n_predicted']}",
            f"- exact character-span matching: tp {sm['micro']['tp']}, fp {sm['micro']['fp']}, fn {sm['micro']['fn']}"
            f", F1 {sm['micro']['f1']:.3f} (agrees with seqeval: {sm['agrees_with_seqeval']})",
        ]

    def report_sections(self, metrics: dict, figure: str | None = None) -> list[str]:
        return ["Scored with seqeval, strict IOB2 mode, on word-level tags per gold sentence."]

    def error_sections(self, gold: Sequence[dict], pred: Sequence[dict], max_errors: int) -> list[str]:
        """False positives and false negatives, with the other side's overlapping span (a wrong type or edge)."""
        gold = self.annotated(gold)  # a record whose entities are not annotated has no NER errors
        kept = {r["id"] for r in gold}
        errors = ner_errors(gold, [p for p in pred if p["id"] in kept])
        parts = []
        for key, title in (("false_positives", "False positives"), ("false_negatives", "False negatives")):
            items = errors[key]
            parts.append(f"### {title} ({shown(items, max_errors)})")
            rows = [
                [e["doc_id"], f"{e['start']}-{e['end']}", e["text"], e["label"], "; ".join(e["overlaps"]), e["context"]]
                for e in items[:max_errors]
            ]
            other = "gold overlap" if key == "false_positives" else "predicted overlap"
            parts.append(markdown_table(["doc", "span", "text", "label", other, "context"], rows) if rows else "none")
        return parts

    def baselines(self) -> dict[str, Baseline]:
        return {"dictionary": dictionary_ner, "spacy_en_core_web_sm": spacy_ner}

    def predict(self, model: TaskModel, jobs: Sequence[tuple[str, Sequence[tuple[int, int]], int]]) -> list:
        """Each sentence's whole-word entities (``predicted_entities``), with its words and their tags kept for
        ``uncertainty`` (the record keeps no word probabilities)."""
        words = [word_spans(text, *spans[i]) for text, spans, i in jobs]
        texts = [[text[s:e] for s, e in spans] for (text, _, _), spans in zip(jobs, words, strict=True)]
        tagged = tag_words(model, texts)
        return [
            (predicted_entities(text, spans, tags), strings, tags)
            for (text, _, _), spans, strings, tags in zip(jobs, words, texts, tagged, strict=True)
        ]

    def fill(self, prediction: dict, results: Sequence | None, model: TaskModel | None) -> None:
        prediction["entities"] = [entity for entities, _, _ in results or () for entity in entities]

    def scheme_part(self, model: TaskModel) -> dict:
        """The entity types of the model's IOB2 tags."""
        return {"entity_labels": tuple(dict.fromkeys(tag[2:] for tag in model.labels if tag != "O"))}

    def uncertainty(self, result: tuple[list[dict], list[str], list[tuple[str, float]]]) -> tuple[float, str]:
        """The sentence's least sure word (``ner_uncertainty``), asked only by ``src.select``."""
        _, words, tagged = result
        return ner_uncertainty(words, tagged)

    def calibrate(
        self,
        gold_by_fold: dict[int, list[dict]],
        preds_by_fold: dict[int, list[dict]],
        load: Callable[[int], Predictor],
        labels: Sequence[str] = (),
        none_label: str | None = None,
    ) -> tuple[Calibrated, None]:
        """Fitted on words (the logits of each word's first sub-token, as the Predictor decides it: each fold's model
        is rerun, the predictions keep no word logits), checked on entities: an entity's score is the mean
        probability of its words' tags, correct when the gold has the same span and type."""
        return calibrate_ner(*ner_arrays(gold_by_fold, load)), None


def ner_uncertainty(words: Sequence[str], tagged: Sequence[tuple[str, float]]) -> tuple[float, str]:
    """``(1 - least word probability, why)`` from the NER tag and probability of each word (``Predictor.tag_words``);
    ``(0.0, "")`` for a sentence without words.

    EXAMPLE: ``ner_uncertainty(["Kim", "met", "RT"], [("B-PERSON", 0.98), ("O", 0.99), ("B-ORG", 0.61)])``
    -> ``(0.39, "NER least sure word 'RT' B-ORG 0.61")``
    """
    if not tagged:
        return 0.0, ""
    i = int(np.argmin([p for _, p in tagged]))
    tag, p = tagged[i]
    return 1.0 - p, f"NER least sure word {words[i]!r} {tag} {p:.2f}"


def word_logits(model: TaskModel, sentences: Sequence[Sequence[str]]) -> list[np.ndarray]:
    """Raw logits ``[words, tags]`` of each word-split sentence, however long: windows overlap by ``stride``
    tokens and each word is decided from its first sub-token (its temperature is not applied)."""
    label2id = {label: i for i, label in model.id2label.items()}
    result = [np.zeros((0, len(label2id)), dtype=np.float32) for _ in sentences]
    nonempty = [i for i, words in enumerate(sentences) if len(words)]
    if not nonempty:
        return result
    windows = encode_ner(
        model.tokenizer, [sentences[i] for i in nonempty], None, label2id, model.max_length, model.stride
    )
    logits = model.logits(windows, per_token=True)
    n_words = [len(sentences[i]) for i in nonempty]
    per_word = words_from_windows(logits, windows["word_ids"], windows["example_index"], n_words)
    for i, logits_i in zip(nonempty, per_word, strict=True):
        result[i] = logits_i
    return result


def tag_words(model: TaskModel, sentences: Sequence[Sequence[str]]) -> list[list[tuple[str, float]]]:
    """IOB2 tag and probability (with the model's calibrated temperature) for every word of each sentence: the
    most probable valid IOB2 sequence (``decode_iob2``; decided at temperature 1, so calibration moves scores,
    never decisions)."""
    tags = model.labels
    tagged: list[list[tuple[str, float]]] = []
    for logits in word_logits(model, sentences):
        best = decode_iob2(logits, tags)
        probs = softmax(logits / model.temperature)
        tagged.append([(tags[k], float(p[k])) for k, p in zip(best, probs, strict=True)])
    return tagged


def predicted_entities(text: str, words: list[tuple[int, int]], tagged: list[tuple[str, float]]) -> list[dict]:
    """Whole-word entity spans of a sentence's ``words`` (``tagged`` is valid IOB2: ``tag_words``); an entity's
    score is the mean probability of its words' tags."""
    if not words:
        return []
    tags = [tag for tag, _ in tagged]
    first_word = {start: i for i, (start, _) in enumerate(words)}
    last_word = {end: i for i, (_, end) in enumerate(words)}
    entities = []
    for span in word_tags_to_spans(words, tags):
        scores = [score for _, score in tagged[first_word[span["start"]] : last_word[span["end"]] + 1]]
        entities.append(
            {
                "start": span["start"],
                "end": span["end"],
                "text": text[span["start"] : span["end"]],
                "label": span["label"],
                "score": float(np.mean(scores)),
            }
        )
    return entities


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


# ---------------------------------------------------------------- calibration


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


def ner_arrays(gold_by_fold: dict[int, list[dict]], load: Callable[[int], Predictor]) -> tuple:
    """``(word logits, gold tag ids, decided tag ids, predicted entity word ranges, their correctness, fold)`` per
    gold sentence of each held-out article, from its fold's model (``load(fold)``; run on the gold sentences and
    decided as the Predictor decides, as the CV predictions were)."""
    logits_out, gold_out, tags_out, spans_out, correct_out, folds = [], [], [], [], [], []
    for fold, gold_records in sorted(gold_by_fold.items()):
        predictor = load(fold)
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


# ---------------------------------------------------------------- baselines


def entity_dictionary(train: Sequence[dict]) -> dict[str, str]:
    """Every exact entity string of the training articles -> its most frequent label (ties: alphabetical)."""
    seen: dict[str, Counter] = {}
    for r in train:
        for e in r["entities"]:
            seen.setdefault(r["text"][e["start"] : e["end"]], Counter())[e["label"]] += 1
    return {s: min(c, key=lambda label: (-c[label], label)) for s, c in seen.items()}


def dictionary_ner(train: Sequence[dict], test: Sequence[dict], scheme: LabelScheme) -> list[dict]:
    """Tag each gold sentence of ``test`` with training entity strings: case-sensitive, on word boundaries,
    longest match first, left to right."""
    lexicon = entity_dictionary(train)
    max_words = max((len(word_spans(s)) for s in lexicon), default=0)
    out = []
    for gold in test:
        text, entities = gold["text"], []
        for sent in gold["sentences"]:
            words = word_spans(text, sent["start"], sent["end"])
            i = 0
            while i < len(words):
                for n in range(min(max_words, len(words) - i), 0, -1):
                    start, end = words[i][0], words[i + n - 1][1]
                    label = lexicon.get(text[start:end])
                    if label is not None:
                        entity = {"start": start, "end": end, "text": text[start:end], "label": label, "score": 1.0}
                        entities.append(entity)
                        i += n
                        break
                else:
                    i += 1
        out.append({"id": gold["id"], "entities": entities, "sentences": [], "doc_stance": None})
    return out


def spacy_ner(train: Sequence[dict], test: Sequence[dict], scheme: LabelScheme) -> list[dict]:
    """spaCy's pretrained NER on each gold sentence (no training: ``train`` is unused); OntoNotes labels that
    are the scheme's entity labels are kept as they are, the others dropped."""
    try:
        nlp = load_spacy()
    except SpacyUnavailable as err:
        raise BaselineUnavailable(str(err)) from err
    out = []
    for gold in test:
        text, entities = gold["text"], []
        for sent in gold["sentences"]:
            for ent in nlp(text[sent["start"] : sent["end"]]).ents:
                if ent.label_ in scheme.entity_labels:
                    s, e = sent["start"] + ent.start_char, sent["start"] + ent.end_char
                    entities.append({"start": s, "end": e, "text": text[s:e], "label": ent.label_, "score": 1.0})
        out.append({"id": gold["id"], "entities": entities, "sentences": [], "doc_stance": None})
    return out
