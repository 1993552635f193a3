"""Guideline prototypes (src/prototypes.py): features, head, config, and the fused stance decision end to end."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from src.config import ConfigError
from src.labels import seed_scheme
from src.prototypes import check_phrases, fit_head, head_probabilities, mean_pool, similarity_features
from tests.conftest import ROOT, TINY_TRAIN, compose_train_config

# the seed corpus's labels, which these tests' data uses
STANCE_LABELS = list(seed_scheme().stance_labels)


def test_mean_pool_ignores_padding() -> None:
    hidden = torch.tensor([[[1.0, 0.0], [3.0, 2.0], [100.0, 100.0]]])
    assert mean_pool(hidden, torch.tensor([[1, 1, 0]])).tolist() == [[2.0, 1.0]]


def test_similarity_features_take_the_closest_phrase_of_each_label() -> None:
    sentences = np.array([[1.0, 0.0], [0.0, 2.0]])
    phrases = np.array([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]])
    features = similarity_features(sentences, phrases, ["a", "a", "b"], ["a", "b"])
    np.testing.assert_allclose(features, [[1.0, 0.0], [0.8, 1.0]])


def test_head_learns_separable_features_and_gives_probabilities() -> None:
    features = np.array([[0.9, 0.1, 0.2], [0.8, 0.2, 0.1], [0.1, 0.9, 0.2], [0.2, 0.8, 0.1], [0.1, 0.2, 0.9]] * 4)
    y = np.array([0, 0, 1, 1, 2] * 4)
    probs = head_probabilities(features, fit_head(features, y, 3))
    assert (probs.argmax(1) == y).all()
    np.testing.assert_allclose(probs.sum(1), 1.0)


def test_head_with_a_label_missing_from_training_never_picks_it() -> None:
    features = np.array([[0.9, 0.1, 0.5], [0.1, 0.9, 0.5]] * 5)
    y = np.array([0, 2] * 5)
    probs = head_probabilities(features, fit_head(features, y, 3))
    assert (probs.argmax(1) == y).all() and probs[:, 1].max() < 1e-6


@pytest.mark.parametrize(
    "phrases, where",
    [
        ({"leverage": ["x"], "neutral": ["y"]}, "task.prototypes: expected phrases for each stance label"),
        ({"leverage": "x", "economic_cooperation": ["y"], "neutral": ["z"]}, "task.prototypes.leverage"),
        ({"leverage": ["x"], "economic_cooperation": [], "neutral": ["z"]}, "task.prototypes.economic_cooperation"),
    ],
)
def test_bad_phrases_fail_naming_the_key(phrases: dict, where: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(where)):
        check_phrases(phrases, STANCE_LABELS)


def test_default_phrases_are_the_guideline_definitions_word_for_word(tmp_path: Path) -> None:
    cfg = compose_train_config(["task=stance"], tmp_path)
    stance_section = (ROOT / "data" / "GUIDELINES.md").read_text().split("## Stance", 1)[1].split("\n## ", 1)[0]
    definitions = {m[0]: m[1] for m in re.findall(r"^- `(\w+)`: (.+(?:\n  .+)*)", stance_section, re.M)}
    assert set(cfg.task.prototypes) == set(definitions) == set(STANCE_LABELS)
    for label, phrases in cfg.task.prototypes.items():
        text = " ".join(definitions[label].split())
        for phrase in phrases:
            assert phrase in text, f"{label}: {phrase!r} is not in the guideline's definition"


def test_trained_stance_model_fuses_classifier_and_prototypes(tiny_model_dir: Path, tmp_path: Path) -> None:
    """The folder stores the head; the Predictor's scores are the mean of the classifier's softmax (what
    transformers.pipeline gives) and the head's probabilities, on torch and on ONNX Runtime alike."""
    from transformers import pipeline

    from src.predict.engine import Predictor
    from src.train import train

    cfg = compose_train_config(["task=stance", f"model.name_or_path={tiny_model_dir}", *TINY_TRAIN], tmp_path)
    _, out = train(cfg)
    meta = json.loads((out / "model" / "newsframe.json").read_text())
    head = meta["prototypes"]
    assert head["fusion"] == "mean" and set(head["phrases"]) == set(STANCE_LABELS)
    assert np.asarray(head["head"]["coef"]).shape == (3, 3) and head["n_sentences"] > 0
    card = (out / "model" / "README.md").read_text()
    assert "20 label-definition phrases" in card and "`transformers.pipeline` gives the classifier alone" in card

    sentences = ["Kim seeks leverage over Washington.", "Trade and workers cross the border.", "He left at noon."]
    predictor = Predictor.from_pretrained(stance=str(out), device="cpu", backend="torch")
    fused = np.array([[r["scores"][label] for label in STANCE_LABELS] for r in predictor.classify_sentences(sentences)])
    nlp = pipeline("text-classification", model=str(out / "model"), device="cpu", top_k=None)
    classifier = np.array(
        [[{d["label"]: d["score"] for d in row}[label] for label in STANCE_LABELS] for row in nlp(sentences)]
    )
    phrases = [p for label in STANCE_LABELS for p in head["phrases"][label]]
    owners = [label for label in STANCE_LABELS for _ in head["phrases"][label]]
    features = similarity_features(
        predictor.sentence_embeddings(sentences), predictor.sentence_embeddings(phrases), owners, STANCE_LABELS
    )
    np.testing.assert_allclose(fused, (classifier + head_probabilities(features, head["head"])) / 2, atol=1e-5)
    assert not np.allclose(fused, classifier, atol=1e-4)  # the head does change the scores

    onnx = Predictor.from_pretrained(stance=str(out), device="cpu", backend="onnx")
    onnx_fused = np.array([[r["scores"][label] for label in STANCE_LABELS] for r in onnx.classify_sentences(sentences)])
    np.testing.assert_allclose(onnx_fused, fused, atol=1e-4)


def test_prototypes_null_keeps_the_classifier_alone(tiny_model_dir: Path, tmp_path: Path) -> None:
    from src.predict.engine import Predictor
    from src.train import train

    overrides = ["task=stance", "task.prototypes=null", f"model.name_or_path={tiny_model_dir}", *TINY_TRAIN]
    _, out = train(compose_train_config(overrides, tmp_path))
    assert json.loads((out / "model" / "newsframe.json").read_text())["prototypes"] is None
    assert Predictor.from_pretrained(stance=str(out), device="cpu", backend="torch").stance.prototypes is None
