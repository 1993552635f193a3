"""Sentence segmentation for raw text, following the gold rules: every line break ends a sentence, and inside a line
pysbd decides (it knows abbreviations such as "U.S." and "Mr."). Spans are trimmed and cover every non-whitespace
character exactly once, so predicted sentences have the same shape as gold ones.

pysbd is pure Python and costs about a millisecond a line, as much as the int8 model on short sentences, so a line
with no sentence-ending mark (nor list marker) before its end is taken as one sentence without asking it."""

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
# What may end a sentence inside a line: pysbd splits at these (and at list items such as "a) ... b) ..."); a line
# with none of them before its closing marks is one sentence.
LINE_TAIL_RE = re.compile(r"[.!?…\"'“”„«»’)\]\s]*$")
BOUNDARY_RE = re.compile(r"[.!?…)]")


# pysbd's time grows with the square of what it is given (a 300 KB line took 40 s), so a longer line goes to it in
# pieces of at most MAX_PIECE characters, cut where a sentence surely ends (final punctuation, space, a capital or a
# digit), else at the last space, so splitting time is linear in the input. Lines of real articles stay whole.
MAX_PIECE = 4000
SAFE_BREAK_RE = re.compile(r"[.!?…][\"'”’)\]]*\s+(?=[\"“‘(\[]?[A-Z0-9])")


def piece_starts(line: str, size: int | None = None) -> list[int]:
    """Offsets where the bounded pieces of ``line`` start: ``[0]`` for a line of at most ``size`` characters
    (default ``MAX_PIECE``).

    EXAMPLE: ``piece_starts("One. Two. Three. Four.", size=12) -> [0, 10]``
    """
    size = size or MAX_PIECE
    starts = [0]
    while len(line) - starts[-1] > size:
        low, high = starts[-1] + size // 2, starts[-1] + size
        cut = None
        for match in SAFE_BREAK_RE.finditer(line, low, high):
            cut = match.end()
        if cut is None:
            space = line.rfind(" ", low, high)
            cut = space + 1 if space >= 0 else high
        starts.append(cut)
    return starts


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


def _sentence_starts(line: str) -> list[int]:
    """Offsets in ``line`` where pysbd starts a sentence (0 is implied)."""
    if not BOUNDARY_RE.search(line, 0, LINE_TAIL_RE.search(line).start()):
        return []
    masked = line.translate(HIDE_QUOTES)
    starts, cursor = [], 0
    for segment in _segmenter().segment(masked):
        piece = segment.strip()
        found = masked.find(piece, cursor) if piece else -1
        if found < 0:  # pysbd altered the text: keep this piece inside the previous sentence
            continue
        cursor = found + len(piece)
        while found > 0 and line[found - 1] in QUOTES:  # an opening quote belongs to its sentence
            found -= 1
        starts.append(found)
    return starts


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
        cuts = piece_starts(line_text)
        starts = set(cuts)
        for a, b in itertools.pairwise([*cuts, len(line_text)]):
            starts.update(a + start for start in _sentence_starts(line_text[a:b]))
        bounds = [*sorted(starts), len(line_text)]
        line_spans = [span for a, b in itertools.pairwise(bounds) if (span := _trim(text, offset + a, offset + b))]
        # A piece without a letter or digit (tokenised text: '" He said', 'Calif . .') is no sentence: it joins the
        # next sentence of its line, or the previous one at the end of the line.
        for k in range(len(line_spans) - 1, -1, -1):
            if len(line_spans) > 1 and not any(c.isalnum() for c in text[slice(*line_spans[k])]):
                j = k + 1 if k + 1 < len(line_spans) else k - 1
                merged = (min(line_spans[k][0], line_spans[j][0]), max(line_spans[k][1], line_spans[j][1]))
                line_spans[min(j, k) : max(j, k) + 1] = [merged]
        spans.extend(line_spans)
    return spans
