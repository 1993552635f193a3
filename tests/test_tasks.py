"""Task objects (src/tasks.py): what differs between NER and stance, in one place each."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from seqeval.metrics import f1_score
from seqeval.scheme import IOB2
from transformers import AutoConfig, AutoTokenizer

from src.config import ConfigError
from src.tasks import NER, STANCE, get_task, task_of_config


def test_tasks_by_name_and_by_architecture(tiny_model_dir: Path) -> None:
    assert get_task("ner") is NER and get_task("stance") is STANCE
    with pytest.raises(ConfigError, match="task='sentiment': expected one of ner, stance"):
        get_task("sentiment")
    config = AutoConfig.from_pretrained(tiny_model_dir)
    config.architectures = ["BertForSequenceClassification"]
    assert task_of_config(config) is STANCE
    config.architectures = ["BertModel"]
    with pytest.raises(ValueError, match="not a newsframe model"):
        task_of_config(config)


def test_labels_come_from_the_data_config() -> None:
    data = {"entity_labels": ["PER"], "stance_labels": ["a", "b"]}
    assert NER.labels(data) == ["O", "B-PER", "I-PER"] and STANCE.labels(data) == ["a", "b"]


def test_dev_metric_scores_words_once_across_overlapping_windows(tiny_model_dir: Path) -> None:
    """A long sentence becomes several windows; the dev metric decides each word once, as the reports do, so a
    perfect prediction scores 1.0 and one wrong word costs what it costs in seqeval over words."""
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    labels = NER.labels({"entity_labels": ["PERSON", "GPE"]})
    label2id = {label: i for i, label in enumerate(labels)}
    words = ("Putin met Kim in Moscow and then Kim went back to Pyongyang by train " * 3).split()
    tags = ["B-PERSON" if w in ("Putin", "Kim") else "B-GPE" if w in ("Moscow", "Pyongyang") else "O" for w in words]
    encoding = NER.encode(tokenizer, [words], [tags], label2id, max_length=16, stride=4)
    assert len(encoding["input_ids"]) > 2  # the sentence really is split into overlapping windows
    metric = NER.dev_metric(dict(enumerate(labels)), encoding, [tags])

    def logits_for(word_tags: list[str]) -> np.ndarray:
        width = max(map(len, encoding["input_ids"]))
        out = np.zeros((len(encoding["input_ids"]), width, len(labels)), dtype=np.float32)
        for w_index, ids in enumerate(encoding["word_ids"]):
            for t, w in enumerate(ids):
                if w >= 0:
                    out[w_index, t, label2id[word_tags[w]]] = 5.0
        return out

    assert metric(SimpleNamespace(predictions=logits_for(tags)))["f1"] == 1.0
    wrong = [*tags]
    wrong[2] = "B-GPE"  # "Kim" as a place
    expected = f1_score([tags], [wrong], mode="strict", scheme=IOB2)
    assert metric(SimpleNamespace(predictions=logits_for(wrong)))["f1"] == pytest.approx(expected)
