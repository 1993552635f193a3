"""Named entities: token classification over words, strict IOB2."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
from seqeval.metrics import f1_score
from seqeval.scheme import IOB2
from transformers import AutoModelForTokenClassification, DataCollatorForTokenClassification

from src.data.convert import ner_examples
from src.features import encode_ner, words_from_windows
from src.labels import decode_iob2, iob2_tags

from .base import Task


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

        lengths, n_words = [len(ids) for ids in encoding["input_ids"]], [len(t) for t in targets]
        tags = [id2label[i] for i in range(len(id2label))]

        def compute(prediction) -> dict[str, float]:
            logits = [np.asarray(row[:n]) for row, n in zip(prediction.predictions, lengths, strict=True)]
            words = words_from_windows(logits, encoding["word_ids"], encoding["example_index"], n_words)
            guess = [[tags[k] for k in decode_iob2(w, tags)] for w in words]
            return {"f1": f1_score(list(map(list, targets)), guess, mode="strict", scheme=IOB2)}

        return compute
