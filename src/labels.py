"""Label sets of the newsframe scheme (data/GUIDELINES.md) and the labels derived from them.

The label sets have one source, the seed data config (``configs/data/seeds.yaml``); the defaults of tools that run
without a config (the validator, the baselines) are read from it here.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf

_SEEDS_CONFIG = OmegaConf.load(Path(__file__).resolve().parents[1] / "configs" / "data" / "seeds.yaml")
ENTITY_LABELS: tuple[str, ...] = tuple(_SEEDS_CONFIG.entity_labels)
STANCE_LABELS: tuple[str, ...] = tuple(_SEEDS_CONFIG.stance_labels)
NEUTRAL = "neutral"
MIXED = "mixed"


def iob2_tags(entity_labels: Sequence[str]) -> list[str]:
    """Tag inventory for token classification: ``O`` then ``B-X``/``I-X`` per type, in a stable order.

    EXAMPLE: ``iob2_tags(["PER"]) -> ["O", "B-PER", "I-PER"]``
    """
    return ["O"] + [f"{prefix}-{label}" for label in entity_labels for prefix in ("B", "I")]


def repair_iob2(tags: Sequence[str]) -> list[str]:
    """Read tags leniently as IOB2: an ``I-X`` that does not continue an ``X`` entity starts one (``B-X``).

    For predictions (a model often gets the first word of a name wrong and the rest right) and for IOB1 files
    such as some CoNLL copies; gold records are read strictly (``word_tags_to_spans``).

    EXAMPLE: ``repair_iob2(["O", "I-PER", "I-PER", "I-ORG"]) -> ["O", "B-PER", "I-PER", "B-ORG"]``
    """
    repaired, previous = [], "O"
    for tag in tags:
        if tag.startswith("I-") and previous[2:] != tag[2:]:
            tag = "B-" + tag[2:]
        repaired.append(tag)
        previous = tag
    return repaired


@functools.lru_cache(maxsize=16)
def iob2_allowed(tags: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """``(start [tags], transition [previous, next])``: whether a tag may open a sentence or follow another in
    strict IOB2 (``I-X`` only after ``B-X`` or ``I-X``). Cached: one tag set serves every sentence."""
    start = np.array([not t.startswith("I-") for t in tags])
    follows = np.array([[not b.startswith("I-") or (a != "O" and a[2:] == b[2:]) for b in tags] for a in tags])
    return start, follows


def decode_iob2(log_probs: np.ndarray, tags: Sequence[str]) -> list[int]:
    """The most probable tag sequence that is valid IOB2 (Viterbi over per-word scores ``[words, tags]``: logits or
    log-probabilities alike, since a constant per word never changes the path).

    Word-by-word argmax breaks a name wherever one inner word is unsure ("Institute of | Far Eastern Studies",
    "Hanoi | summit" as GPE + EVENT); here every word of a span votes for one type. Leave-one-article-out CV on the
    seeds: docs/results.md.

    EXAMPLE: log-probs favouring ``B-ORG, O, I-ORG`` -> ``B-ORG, O, O`` or ``B-ORG, I-ORG, I-ORG``, never a stray ``I-``
    """
    if len(log_probs) == 0:
        return []
    start, follows = iob2_allowed(tuple(tags))
    transition = np.where(follows, 0.0, -np.inf)
    score = np.where(start, log_probs[0], -np.inf)
    back = np.zeros(log_probs.shape, dtype=int)
    for i in range(1, len(log_probs)):
        candidates = score[:, None] + transition
        back[i] = candidates.argmax(axis=0)
        score = candidates.max(axis=0) + log_probs[i]
    path = [int(score.argmax())]
    for i in range(len(log_probs) - 1, 0, -1):
        path.append(int(back[i, path[-1]]))
    return path[::-1]


def doc_stance(sentence_stances: Iterable[str]) -> str:
    """Document stance as the guideline derives it: the majority non-neutral label, ``mixed`` on a tie.

    EXAMPLE: ``doc_stance(["neutral", "leverage"]) -> "leverage"``; ``doc_stance([]) -> "neutral"``
    """
    counts = Counter(s for s in sentence_stances if s != NEUTRAL)
    if not counts:
        return NEUTRAL
    (top, n), *rest = counts.most_common()
    if rest and rest[0][1] == n:
        return MIXED
    return top
