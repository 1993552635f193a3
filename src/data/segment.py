"""Sentence segmentation for raw text, following the gold rules: every line break ends a sentence, and inside a line
pysbd decides (it knows abbreviations such as "U.S." and "Mr."). Spans are trimmed and cover every non-whitespace
character exactly once, so predicted sentences have the same shape as gold ones."""

from __future__ import annotations

import itertools
import re
from functools import lru_cache

import pysbd

LINE_RE = re.compile(r"[^\r\n]+")
# pysbd never splits inside quotation marks, but the gold rules end a sentence inside a quote too, so double quotes
# are hidden from it (replaced by spaces: offsets stay the same) and put back by cutting spans from the original.
QUOTES = '"“”„«»'
HIDE_QUOTES = str.maketrans(QUOTES, " " * len(QUOTES))


@lru_cache(maxsize=1)
def _segmenter() -> pysbd.Segmenter:
    return pysbd.Segmenter(language="en", clean=False)


def _trim(text: str, start: int, end: int) -> tuple[int, int] | None:
    piece = text[start:end]
    stripped = piece.strip()
    if not stripped:
        return None
    start += len(piece) - len(piece.lstrip())
    return start, start + len(stripped)


def split_sentences(text: str) -> list[tuple[int, int]]:
    """Sentence spans ``(start, end)`` of ``text``: ordered, non-overlapping, trimmed, covering all non-whitespace.

    pysbd only proposes where a sentence starts inside a line; the spans are cut from the original string, so
    nothing pysbd changes or drops can leave a character uncovered. A closing quote stays with the sentence it closes.

    EXAMPLE: ``split_sentences("Kim met U.S. envoys. Talks failed.\\nHeadline")``
    -> ``[(0, 20), (21, 34), (35, 43)]``
    """
    spans = []
    for line in LINE_RE.finditer(text):
        offset, line_text = line.start(), line.group()
        if not line_text.strip():
            continue
        masked = line_text.translate(HIDE_QUOTES)
        starts, cursor = [], 0
        for segment in _segmenter().segment(masked):
            piece = segment.strip()
            found = masked.find(piece, cursor) if piece else -1
            if found < 0:  # pysbd altered the text: keep this piece inside the previous sentence
                continue
            cursor = found + len(piece)
            while found > 0 and line_text[found - 1] in QUOTES:  # an opening quote belongs to its sentence
                found -= 1
            starts.append(found)
        bounds = [*sorted(set([0, *starts])), len(line_text)]
        for start, end in itertools.pairwise(bounds):
            span = _trim(text, offset + start, offset + end)
            if span:
                spans.append(span)
    return spans
