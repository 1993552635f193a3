"""Guideline prototypes: the stance label definitions of data/GUIDELINES.md as a second opinion beside the classifier.

Five articles teach the classifier head too little about leverage; the sentence encoder already places "a bargaining
chip" near the sentences that use Russia as one. So each sentence's mean-pooled embedding (from the fine-tuned
encoder, the same forward pass as the classifier) is compared with the embeddings of each label's definition phrases
(``task.prototypes``); the highest cosine per label gives one feature per label, and a class-balanced logistic
regression on those few features, fitted on the training sentences, is the prototype head. The Predictor averages its
probabilities with the classifier's. ``transformers.pipeline`` runs the classifier alone: the head lives in
``newsframe.json`` (``prototypes``), like the calibration.

Why it is on by default, and its figures: docs/decisions.md, docs/results.md.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch

from src.data.convert import stance_examples
from src.errors import ConfigError

if TYPE_CHECKING:
    from src.predict.engine import Predictor


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """The mean of the token vectors under the mask (``[batch, hidden]``), as sentence-transformers pools MiniLM."""
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)


def normalise(vectors: np.ndarray) -> np.ndarray:
    return vectors / np.maximum(np.linalg.norm(vectors, axis=-1, keepdims=True), 1e-12)


def check_phrases(phrases: Mapping | None, labels: Sequence[str]) -> None:
    """``task.prototypes`` must be ``{label: [phrase, ...]}`` for exactly the stance labels, or None (switched off)."""
    if phrases is None:
        return
    if not isinstance(phrases, Mapping) or set(phrases) != set(labels):
        got = sorted(phrases) if isinstance(phrases, Mapping) else phrases
        raise ConfigError(
            f"task.prototypes: expected phrases for each stance label of the data config ({', '.join(labels)}), or "
            f"null (task.prototypes=null trains without them); got phrases for {got}"
        )
    for label in labels:
        value = phrases[label]
        if isinstance(value, str) or not value or not all(isinstance(p, str) and p.strip() for p in value):
            raise ConfigError(f"task.prototypes.{label}: expected a non-empty list of phrases; got {value!r}")


def similarity_features(
    embeddings: np.ndarray, phrase_embeddings: np.ndarray, phrase_labels: Sequence[str], labels: Sequence[str]
) -> np.ndarray:
    """``[n, labels]``: each sentence's highest cosine with any phrase of each label (rows are normalised here)."""
    cosine = normalise(embeddings) @ normalise(phrase_embeddings).T
    owner = np.asarray(phrase_labels)
    return np.stack([cosine[:, owner == label].max(axis=1) for label in labels], axis=1)


def fit_head(features: np.ndarray, y: np.ndarray, n_labels: int) -> dict[str, list]:
    """Class-balanced logistic regression on the similarity features: ``{"coef": [labels][labels], "intercept"}``
    in label-id order (a label absent from the training sentences gets a row that never wins)."""
    from sklearn.linear_model import LogisticRegression  # seconds to import: the Predictor's start-up pays none

    fitted = LogisticRegression(class_weight="balanced", max_iter=2000).fit(features, y)
    coef = np.zeros((n_labels, features.shape[1]))
    intercept = np.full(n_labels, -1e4)
    classes = [int(c) for c in fitted.classes_]
    if len(classes) == 2:  # sklearn keeps one row for two classes: logits (0, z) give the same softmax
        coef[classes[1]], intercept[classes[1]], intercept[classes[0]] = fitted.coef_[0], fitted.intercept_[0], 0.0
    else:
        coef[classes], intercept[classes] = fitted.coef_, fitted.intercept_
    return {"coef": coef.round(8).tolist(), "intercept": intercept.round(8).tolist()}


def head_probabilities(features: np.ndarray, head: Mapping) -> np.ndarray:
    from scipy.special import softmax  # seconds to import with scikit-learn: the Predictor's start-up pays none

    return softmax(features @ np.asarray(head["coef"]).T + np.asarray(head["intercept"]), axis=1)


def fit_prototypes(predictor: Predictor, records: Sequence[dict], phrases: Mapping, task_cfg: Mapping) -> dict:
    """The ``prototypes`` entry of a stance model's ``newsframe.json``, fitted on the gold ``records`` with the
    trained model that ``predictor`` runs (its own encoder embeds both the sentences and the phrases)."""
    labels = predictor.stance.labels
    examples = stance_examples(records, task_cfg.get("context", "none"))
    embeddings = predictor.sentence_embeddings([e["text"] for e in examples], [e["context"] for e in examples])
    phrase_labels = [label for label in labels for _ in phrases[label]]
    phrase_embeddings = predictor.sentence_embeddings([p for label in labels for p in phrases[label]])
    features = similarity_features(embeddings, phrase_embeddings, phrase_labels, labels)
    y = np.array([labels.index(e["label"]) for e in examples])
    return {
        "phrases": {label: list(phrases[label]) for label in labels},
        "fusion": "mean",
        "head": fit_head(features, y, len(labels)),
        "n_sentences": len(examples),
    }
