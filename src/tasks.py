"""The two tasks, each one object that owns what differs between them, so no stage branches on a task's name.

A task knows its labels (from the data config), how records become examples and sub-word windows, the collator,
the loss, the metric that selects a model on a dev split, the headline metric, the transformers model class and the
pipeline tag. ``get_task("ner")`` by name (configs), ``task_of_config(config)`` for a model folder.

EXAMPLE: ``get_task("stance").labels({"stance_labels": ["a", "b"]}) -> ["a", "b"]``
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import (
    AutoModelForSequenceClassification,
    AutoModelForTokenClassification,
    DataCollatorForTokenClassification,
    DataCollatorWithPadding,
    PretrainedConfig,
    PreTrainedTokenizerFast,
)

from src.config import ConfigError
from src.data.convert import ner_examples, stance_examples
from src.data.folds import as_dataset
from src.data.records import annotates
from src.features import encode_ner, encode_stance, words_from_windows
from src.labels import decode_iob2, iob2_tags

MODEL_COLUMNS = ("input_ids", "attention_mask", "labels")


@dataclass(frozen=True)
class Task:
    """What a task is; subclasses fill in how it reads records, encodes them and is scored."""

    name: str
    pipeline_tag: str
    architecture_suffix: str  # e.g. "ForTokenClassification": how a model folder tells its task
    headline: str  # the metric a run returns, a sweep optimises and a report puts first
    layer: str  # the record layer it learns from ("entities", "stance"): records that do not annotate it are skipped

    @property
    def auto_model(self) -> type:
        raise NotImplementedError

    def labels(self, data: Mapping) -> list[str]:
        raise NotImplementedError

    def examples(self, records: Sequence[dict], task_cfg: Mapping | None = None) -> tuple[list, list]:
        """``(inputs, targets)`` of the records' gold annotations, as ``task_cfg`` (the ``task`` config) asks."""
        raise NotImplementedError

    def encode(
        self, tokenizer, inputs: Sequence, targets: Sequence | None, label2id: dict, max_length: int, stride: int
    ):
        raise NotImplementedError

    def collator(self, tokenizer: PreTrainedTokenizerFast):
        raise NotImplementedError

    def annotated(self, records: Sequence[dict]) -> list[dict]:
        """The records that annotate this task's layer (``src.data.records.annotates``)."""
        return [r for r in records if annotates(r, self.layer)]

    def loss(self, task_cfg: Mapping, dataset, n_labels: int) -> Callable | None:
        """A ``compute_loss_func`` for the Trainer, or None for the model's own loss."""
        return None

    def dev_metric(self, id2label: dict[int, str], encoding: dict, targets: Sequence) -> Callable | None:
        """A ``compute_metrics`` that scores a dev split the way the reports do, or None."""
        return None

    def finish(self, folder: Path, records: Sequence[dict], task_cfg: Mapping, device: str) -> dict:
        """What the task adds to a freshly written model folder's ``newsframe.json`` after training (``{}``: none)."""
        return {}

    def dataset(
        self,
        tokenizer,
        records: Sequence[dict],
        label2id: dict,
        max_length: int,
        stride: int,
        task_cfg: Mapping | None = None,
    ):
        """``(datasets.Dataset of the model's columns, the full encoding, the targets)`` of gold records."""
        inputs, targets = self.examples(records, task_cfg)
        encoding = self.encode(tokenizer, inputs, targets, label2id, max_length, stride)
        rows = zip(*(encoding[k] for k in MODEL_COLUMNS), strict=True)
        return as_dataset([dict(zip(MODEL_COLUMNS, row, strict=True)) for row in rows]), encoding, targets


class NerTask(Task):
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
        from seqeval.metrics import f1_score
        from seqeval.scheme import IOB2

        lengths, n_words = [len(ids) for ids in encoding["input_ids"]], [len(t) for t in targets]
        tags = [id2label[i] for i in range(len(id2label))]

        def compute(prediction) -> dict[str, float]:
            logits = [np.asarray(row[:n]) for row, n in zip(prediction.predictions, lengths, strict=True)]
            words = words_from_windows(logits, encoding["word_ids"], encoding["example_index"], n_words)
            guess = [[tags[k] for k in decode_iob2(w, tags)] for w in words]
            return {"f1": f1_score(list(map(list, targets)), guess, mode="strict", scheme=IOB2)}

        return compute


class StanceTask(Task):
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

    def loss(self, task_cfg: Mapping, dataset, n_labels: int) -> Callable | None:
        """Cross-entropy weighted by inverse class frequency (``task.class_weighting``): neutral dominates."""
        if not task_cfg.get("class_weighting"):
            return None
        weights = class_weights(dataset["labels"], n_labels)

        def compute(outputs: Any, labels: torch.Tensor, num_items_in_batch: int | None = None) -> torch.Tensor:
            logits = outputs["logits"]
            return torch.nn.functional.cross_entropy(logits, labels, weight=weights.to(logits.device))

        return compute

    def finish(self, folder: Path, records: Sequence[dict], task_cfg: Mapping, device: str) -> dict:
        """The guideline-prototype head (``task.prototypes``, src/prototypes.py), fitted on the training sentences
        with the trained encoder."""
        if not task_cfg.get("prototypes"):
            return {}
        from src.predict.engine import Predictor
        from src.prototypes import fit_prototypes

        predictor = Predictor.from_pretrained(stance=str(folder), device=device, backend="torch")
        return {"prototypes": fit_prototypes(predictor, records, task_cfg["prototypes"], task_cfg)}


def class_weights(labels: Sequence[int], n_labels: int) -> torch.Tensor:
    """Inverse class frequency, scaled to mean 1 (a label absent from ``labels`` counts as seen once)."""
    counts = np.bincount(np.asarray(labels), minlength=n_labels).astype(np.float64)
    weights = counts.sum() / np.maximum(counts, 1) / n_labels
    return torch.tensor(weights / weights.mean(), dtype=torch.float32)


NER = NerTask("ner", "token-classification", "ForTokenClassification", "micro_f1", "entities")
STANCE = StanceTask("stance", "text-classification", "ForSequenceClassification", "macro_f1", "stance")
TASKS: dict[str, Task] = {task.name: task for task in (NER, STANCE)}


def get_task(name: str) -> Task:
    if name not in TASKS:
        raise ConfigError(f"task={name!r}: expected one of {', '.join(TASKS)}")
    return TASKS[name]


def task_of_config(config: PretrainedConfig, where: str = "the model") -> Task:
    """The task of a model from its architecture (``BertForTokenClassification`` -> NER)."""
    for task in TASKS.values():
        if any(arch.endswith(task.architecture_suffix) for arch in config.architectures or []):
            return task
    raise ValueError(f"{where}: not a newsframe model (architectures {config.architectures})")
