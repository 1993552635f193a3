"""Task objects (src/tasks/): what differs between tasks, in one place each, and what evaluation asks of them."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from seqeval.metrics import f1_score
from seqeval.scheme import IOB2
from transformers import AutoConfig, AutoTokenizer

from src.config import ConfigError
from src.evaluate import CVError, evaluate_predictions, write_evaluation
from src.evaluate.cv import calibrate_setting
from src.files import write_atomic
from src.labels import seed_scheme
from src.tasks import NER, STANCE, TASKS, Task, get_task, task_of_config
from src.tasks.scoring import prf


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


def test_stance_context_is_the_neighbouring_sentences() -> None:
    from src.data.convert import sentence_context, stance_examples

    text = "Kim came. He wants leverage. Trade grew."
    spans = [(0, 9), (10, 28), (29, 40)]
    assert sentence_context(text, spans, 0, "none") is None
    assert sentence_context(text, spans, 0, "neighbours") == "He wants leverage."
    assert sentence_context(text, spans, 1, "neighbours") == "Kim came. Trade grew."
    assert sentence_context(text, spans, 2, "neighbours") == "He wants leverage."
    with pytest.raises(ValueError, match="context must be one of"):
        sentence_context(text, spans, 0, "article")
    record = {
        "id": "d",
        "text": text,
        "sentences": [
            {"start": s, "end": e, "stance": st} for (s, e), st in zip(spans, ["neutral", None, "x"], strict=True)
        ],
    }
    examples = stance_examples([record], "neighbours")
    # a sentence without a stance is no example, but is still the context of its neighbours
    assert [(e["text"], e["context"]) for e in examples] == [
        ("Kim came.", "He wants leverage."),
        ("Trade grew.", "He wants leverage."),
    ]


def test_stance_pairs_cut_the_context_never_the_sentence(tiny_model_dir: Path) -> None:
    from src.features import encode_stance

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    sentence, context = "Putin met Kim in Moscow .", " ".join(["trade"] * 200)
    label2id = {"a": 0}
    enc = encode_stance(tokenizer, [sentence, sentence], ["a", "a"], label2id, 32, 8, [context, None])
    assert enc["example_index"] == [0, 1]
    alone = tokenizer(sentence)["input_ids"]
    paired = enc["input_ids"][0]
    assert len(paired) == 32 and paired[: len(alone)] == alone  # the sentence whole, then as much context as fits
    assert enc["input_ids"][1] == alone and enc["labels"] == [0, 0]
    # a sentence too long to leave room for context is read alone, in windows
    long = " ".join(["Moscow"] * 80)
    enc = encode_stance(tokenizer, [long], None, label2id, 32, 8, [context])
    assert len(enc["input_ids"]) > 1 and set(enc["example_index"]) == {0}


def test_class_weights_favour_the_rare_labels_with_mean_one() -> None:
    from src.tasks import class_weights

    weights = class_weights([0, 0, 0, 1], 3)  # label 2 never seen: counted once, as label 1
    assert weights.mean().item() == pytest.approx(1.0)
    assert weights[1].item() == pytest.approx(3 * weights[0].item()) and weights[2].item() == weights[1].item()


class CountingTask(Task):
    """A stand-in for a third task: it scores how many documents were predicted and says so in its own sections."""

    def metrics(self, gold_records, pred_by_id, labels=(), none_label=None) -> dict:
        row = prf(1.0, 1.0, 1.0, len(gold_records))
        return {
            "schema_version": 1,
            "task": self.name,
            "n_documents": len(gold_records),
            "n_sentences": 0,
            "headline": {"name": self.headline, "value": 1.0},
            "per_label": {"document": row},
            "micro": row,
            "macro": row,
        }

    def summary_lines(self, metrics: dict) -> list[str]:
        return [f"- counted: {metrics['n_documents']}"]

    def report_sections(self, metrics: dict, figure: str | None = None) -> list[str]:
        return ["## Counting", f"figure: {figure}"]

    def error_sections(self, gold, pred, max_errors: int) -> list[str]:
        return ["### Nothing miscounted"]

    def draw(self, metrics: dict, path, title: str) -> Path:
        return Path(write_atomic(path, title))


def test_a_registered_task_is_scored_reported_and_drawn_without_evaluation_knowing_it(tmp_path, monkeypatch) -> None:
    """Evaluation asks the task for its metrics, report sections, errors, figure and calibration: none is keyed by
    the task's name outside src/tasks."""
    monkeypatch.setitem(TASKS, "count", CountingTask("count", "text-classification", "ForCounting", "count", "stance"))
    sentence = {"start": 0, "end": 14, "stance": None}
    gold = [{"id": "a", "text": "Kim met Putin.", "entities": [], "sentences": [sentence]}]
    pred = [{"id": "a", "entities": [], "sentences": [], "doc_stance": None}]
    metrics = evaluate_predictions("count", gold, pred)
    assert metrics["headline"] == {"name": "count", "value": 1.0}
    paths = write_evaluation(metrics, gold, pred, tmp_path)
    report = paths["report"].read_text(encoding="utf-8")
    for part in ("- counted: 1", "## Counting", "figure: confusion_count.png", "### Nothing miscounted"):
        assert part in report
    assert paths["confusion"].read_text(encoding="utf-8") == "count confusion matrix"
    with pytest.raises(CVError, match="the count task has no calibration"):
        calibrate_setting("count", {0: ([], gold)}, {0: tmp_path}, {0: pred}, seed_scheme())
