"""Label sets of the newsframe scheme (data/GUIDELINES.md) and the labels derived from them."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence

ENTITY_LABELS: tuple[str, ...] = ("PERSON", "NORP", "ORG", "GPE", "LOC", "DATE", "EVENT")
STANCE_LABELS: tuple[str, ...] = ("leverage", "economic_cooperation", "neutral")
NEUTRAL = "neutral"
MIXED = "mixed"


def iob2_tags(entity_labels: Sequence[str]) -> list[str]:
    """Tag inventory for token classification: ``O`` then ``B-X``/``I-X`` per type, in a stable order.

    EXAMPLE: ``iob2_tags(["PER"]) -> ["O", "B-PER", "I-PER"]``
    """
    return ["O"] + [f"{prefix}-{label}" for label in entity_labels for prefix in ("B", "I")]


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
