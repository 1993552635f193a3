"""Sentence stance: sequence classification, one label per gold sentence."""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from transformers import AutoModelForSequenceClassification, DataCollatorWithPadding

from src.data.augment import known_names, mask_names, phrase_records
from src.data.convert import stance_examples
from src.errors import ConfigError
from src.features import encode_stance
from src.prototypes import fit_prototypes

from .base import Task

if TYPE_CHECKING:
    from src.predict.engine import Predictor


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


def class_weights(labels: Sequence[int], n_labels: int) -> torch.Tensor:
    """Inverse class frequency, scaled to mean 1 (a label absent from ``labels`` counts as seen once)."""
    counts = np.bincount(np.asarray(labels), minlength=n_labels).astype(np.float64)
    weights = counts.sum() / np.maximum(counts, 1) / n_labels
    return torch.tensor(weights / weights.mean(), dtype=torch.float32)
