"""Word segmentation and the word-level IOB2 view of entity spans (what seqeval and the NER model see)."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

# A word is a run of word characters or a single other non-space character, so "Kim’s" -> Kim, ’, s and
# "North Korea-Russia" -> North, Korea, -, Russia: every entity boundary of the guideline is a word boundary.
WORD_RE = re.compile(r"\w+|[^\w\s]")
# Zero-width (non-)joiners are not word characters for ``re`` but sit inside words (Persian, Indic scripts, emoji).
JOINERS = frozenset("\u200c\u200d")

Span = tuple[int, int]


def word_spans(text: str, start: int = 0, end: int | None = None) -> list[Span]:
    """Character spans ``(start, end)`` of the words of ``text[start:end]``, as offsets into ``text``.

    A combining mark (Unicode category Mn, Mc, Me) or a zero-width (non-)joiner stays in the word it follows, and
    word characters after one continue that word: decomposed text (NFD ``"Jose\\u0301"``) or a joined name is one
    word, as its composed form is, and offsets still index the original string.

    EXAMPLE: ``word_spans("I like London.") -> [(0, 1), (2, 6), (7, 13), (13, 14)]``
    """
    end = len(text) if end is None else end
    spans: list[Span] = []
    for match in WORD_RE.finditer(text, start, end):
        s, e = match.span()
        if spans and spans[-1][1] == s:
            previous_start = spans[-1][0]
            if e - s == 1 and _attaches(text[s]):  # a mark or joiner: part of the word before it
                spans[-1] = (previous_start, e)
                continue
            if _attaches(text[s - 1]) and _is_word_char(text[previous_start]) and _is_word_char(text[s]):
                spans[-1] = (previous_start, e)  # "Montre\u0301" + "al": the word goes on after the mark
                continue
        spans.append((s, e))
    return spans


def _attaches(char: str) -> bool:
    """Whether ``char`` belongs to the character before it (a combining mark or a zero-width (non-)joiner)."""
    return char in JOINERS or unicodedata.category(char) in ("Mn", "Mc", "Me")


def _is_word_char(char: str) -> bool:
    return char.isalnum() or char == "_"


def spans_to_word_tags(words: Sequence[Span], entities: Sequence[dict]) -> list[str]:
    """IOB2 tags for ``words`` from entity dicts (``start``, ``end``, ``label``) over the same text.

    Raises ``ValueError`` when an entity boundary falls inside a word or covers no word, since such a span
    cannot be represented at word level.

    EXAMPLE: words of "I like London." with ``[{"start": 7, "end": 13, "label": "GPE"}]``
    -> ``["O", "O", "B-GPE", "O"]``
    """
    tags = ["O"] * len(words)
    starts = {s: i for i, (s, _) in enumerate(words)}
    ends = {e: i for i, (_, e) in enumerate(words)}
    for ent in entities:
        first, last = starts.get(ent["start"]), ends.get(ent["end"])
        if first is None or last is None or last < first:
            raise ValueError(
                f"entity {ent['label']} at {ent['start']}-{ent['end']} does not start and end on word boundaries"
            )
        tags[first] = f"B-{ent['label']}"
        for i in range(first + 1, last + 1):
            tags[i] = f"I-{ent['label']}"
    return tags


def word_tags_to_spans(words: Sequence[Span], tags: Sequence[str]) -> list[dict]:
    """Entity dicts from IOB2 word tags, strictly: an ``I-X`` that does not continue an ``X`` entity is dropped,
    as seqeval's strict IOB2 mode does.

    EXAMPLE: ``word_tags_to_spans([(0, 1), (2, 6), (7, 13)], ["O", "O", "B-GPE"])``
    -> ``[{"start": 7, "end": 13, "label": "GPE"}]``
    """
    spans: list[dict] = []
    current: dict | None = None
    for (start, end), tag in zip(words, tags, strict=True):
        prefix, _, label = tag.partition("-")
        if prefix == "B":
            current = {"start": start, "end": end, "label": label}
            spans.append(current)
        elif prefix == "I" and current is not None and current["label"] == label:
            current["end"] = end
        else:
            current = None
    return spans
