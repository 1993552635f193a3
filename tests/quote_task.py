"""A third task in one file, through the plug-in API only (docs/adding-a-task.md): does a sentence hold a direct
quote? Labels ``yes`` / ``no`` come from the text itself (a double quotation mark), so any corpus is its gold.

Registered as an entry point of group ``newsframe.tasks`` (``quote = tests.quote_task:QUOTE``); every stage finds it
by name from there: ``python -m src.train task=quote``, ``src.evaluate``, ``src.predict --model``, ``src.select``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from sklearn.metrics import classification_report
from transformers import AutoModelForSequenceClassification, DataCollatorWithPadding

from src.features import encode_stance
from src.tasks import Task
from src.tasks.scoring import SCHEMA_VERSION, prf, prf_from_report
from src.tasks.stance import classify

LABELS = ["no", "yes"]
QUOTES = '"“”'


def quote_label(sentence: str) -> str:
    return "yes" if any(mark in sentence for mark in QUOTES) else "no"


class QuoteTask(Task):
    @property
    def auto_model(self) -> type:
        return AutoModelForSequenceClassification

    def labels(self, data: Mapping) -> list[str]:
        return LABELS

    def annotated(self, records: Sequence[dict]) -> list[dict]:
        return list(records)  # the text is the gold: every record annotates this task

    def examples(self, records: Sequence[dict], task_cfg: Mapping | None = None) -> tuple[list, list]:
        sentences = [r["text"][s["start"] : s["end"]] for r in records for s in r["sentences"]]
        return sentences, [quote_label(s) for s in sentences]

    def encode(self, tokenizer, inputs, targets, label2id, max_length, stride):
        return encode_stance(tokenizer, inputs, targets, label2id, max_length, stride)

    def collator(self, tokenizer):
        return DataCollatorWithPadding(tokenizer)

    def predict(self, model, jobs: Sequence[tuple[str, Sequence[tuple[int, int]], int]]) -> list:
        return classify(model, [text[slice(*spans[i])] for text, spans, i in jobs])

    def fill(self, prediction: dict, results: Sequence | None, model) -> None:
        for sentence, result in zip(
            prediction["sentences"], results or [None] * len(prediction["sentences"]), strict=True
        ):
            sentence["quote"] = None if result is None else result["stance"]
            sentence["quote_scores"] = {} if result is None else result["scores"]

    def uncertainty(self, result: dict) -> tuple[float, str]:
        margin = abs(result["scores"]["yes"] - result["scores"]["no"])
        return 1.0 - margin, f"quote margin {margin:.2f}"

    def metrics(self, gold_records, pred_by_id, labels=(), none_label=None) -> dict:
        y_true, y_pred = [], []
        for record in gold_records:
            predicted = {(s["start"], s["end"]): s["quote"] for s in pred_by_id[record["id"]]["sentences"]}
            for s in record["sentences"]:
                y_true.append(quote_label(record["text"][s["start"] : s["end"]]))
                y_pred.append(predicted[(s["start"], s["end"])])
        report = classification_report(y_true, y_pred, labels=LABELS, output_dict=True, zero_division=0)
        per_label = {label: prf_from_report(report[label]) for label in LABELS}
        macro = prf_from_report(report["macro avg"])
        accuracy = sum(t == p for t, p in zip(y_true, y_pred, strict=True)) / max(len(y_true), 1)
        return {
            "schema_version": SCHEMA_VERSION,
            "task": self.name,
            "n_documents": len(gold_records),
            "n_sentences": len(y_true),
            "headline": {"name": self.headline, "value": macro["f1"]},
            "per_label": per_label,
            "micro": prf(accuracy, accuracy, accuracy, len(y_true)),
            "macro": macro,
        }


QUOTE = QuoteTask(
    "quote", "text-classification", "ForSequenceClassification", "macro_f1", "sentences", sentence_field="quote"
)
