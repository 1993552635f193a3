"""Self-training (``data.unlabelled``, ``task.self_training``): which predictions become training sentences, and a
run that labels its pool and trains again, on the tiny random BERT."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from src.config import ConfigError
from src.tasks import get_task
from tests.conftest import TINY_TRAIN, compose_train_config

SETTINGS = {"rounds": 1, "confidence": 0.8, "per_label": 2, "temperature": 1.0}


def sentence(start: int, end: int, **scores: float) -> dict:
    return {"start": start, "end": end, "scores": scores}


def test_the_most_confident_sentences_of_each_label_are_kept_up_to_the_cap() -> None:
    documents = [{"id": "a", "text": "One. Two. Six."}, {"id": "b", "text": "Three. Four."}]
    predictions = [
        {"sentences": [sentence(0, 4, x=0.95, y=0.05), sentence(5, 9, x=0.85, y=0.15), sentence(10, 14, x=0.5, y=0.5)]},
        {"sentences": [sentence(0, 6, x=0.99, y=0.01), sentence(7, 12, x=0.1, y=0.9)]},
    ]
    records = get_task("stance").pseudo_labelled(documents, predictions, SETTINGS)
    labelled = {(r["id"], r["text"][s["start"] : s["end"]], s["stance"]) for r in records for s in r["sentences"]}
    labelled = {item for item in labelled if item[2] is not None}
    # x: three above 0.8, capped at the two most confident; y: one; the 0.5 / 0.5 sentence: none
    assert labelled == {("unlabelled-b", "Three.", "x"), ("unlabelled-a", "One.", "x"), ("unlabelled-b", "Four.", "y")}
    assert all(r["annotated"] == ["stance"] and r["entities"] == [] for r in records)
    # A temperature above 1 softens: nothing reaches 0.8 any more but the 0.99 sentence.
    soft = get_task("stance").pseudo_labelled(documents, predictions, SETTINGS | {"temperature": 3.0})
    assert [(r["id"], [s["stance"] for s in r["sentences"]]) for r in soft] == [("unlabelled-b", ["x", None])]


def test_a_run_labels_the_held_out_text_and_trains_again(tiny_model_dir: Path, tmp_path: Path, caplog) -> None:
    from src.train import train

    overrides = ["task=stance", f"model.name_or_path={tiny_model_dir}", "data.unlabelled=heldout"]
    overrides += ["task.self_training.confidence=0.2", *TINY_TRAIN]  # a random model is never sure
    with caplog.at_level("INFO"):
        metrics, out = train(compose_train_config(overrides, tmp_path))
    assert metrics["task"] == "stance"
    assert "self-training round 1:" in caplog.text and "pseudo-labelled from 1 documents" in caplog.text
    meta = json.loads((out / "model" / "newsframe.json").read_text())
    assert meta["provenance"]["training_data"]["unlabelled"] == {"source": "heldout", "documents": 1}
    assert meta["provenance"]["training_data"]["self_training_rounds"] == 1
    card = (out / "model" / "README.md").read_text()
    assert "Self-trained: 1 round(s) on 1 unlabelled document(s), the held-out articles' text" in card
    assert not (out / "self-training.tmp").exists()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["task=ner", "data.unlabelled=heldout"], "the ner task has no self-training"),
        (["task=stance", "data.unlabelled=heldout", "data.fold=null"], "holds nothing out"),
        (["task=stance", "data.unlabelled=/no/such/folder"], "/no/such/folder"),
        (
            ["task=stance", "data.unlabelled=heldout", "task.self_training.confidence=2"],
            "task.self_training.confidence",
        ),
    ],
)
def test_bad_self_training_settings_fail_before_training(
    overrides: list[str], message: str, tiny_model_dir: Path, tmp_path: Path
) -> None:
    from src.data.records import DataError
    from src.train import train

    cfg = compose_train_config([*overrides, f"model.name_or_path={tiny_model_dir}", *TINY_TRAIN], tmp_path)
    with pytest.raises((ConfigError, DataError), match=message):
        train(cfg)
    assert not (tmp_path / "model").exists()
