"""Sentence splitting stays linear in the input: a long line goes to pysbd in bounded pieces (issue: a 300 KB line
on one line took 42 s, quadratic), cut where a sentence surely ends, so the spans are those of the whole line."""

from __future__ import annotations

import itertools

import pytest

from src.data import segment
from src.data.records import load_records
from src.data.segment import MAX_PIECE, piece_starts, split_sentences
from tests.conftest import SEEDS


def test_pysbd_never_gets_more_than_a_bounded_piece(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[int] = []
    real = segment._sentence_starts
    monkeypatch.setattr(segment, "_sentence_starts", lambda line: seen.append(len(line)) or real(line))
    line = "Kim met Putin in Vladivostok on Thursday. Talks were about the U.S. and sanctions. " * 30000  # 2.5 MB
    spans = split_sentences(line)
    assert max(seen) <= MAX_PIECE and len(seen) >= len(line) // MAX_PIECE
    assert len(spans) == 60000 and spans[-1][1] == len(line.rstrip())


def test_a_line_without_sentence_ends_or_spaces_is_cut_anyway() -> None:
    assert piece_starts("x" * 10, size=4) == [0, 4, 8]
    assert piece_starts("ab cd ef gh", size=6) == [0, 6]  # at the last space of the window
    assert piece_starts("One. Two. Three. Four.", size=12) == [0, 10]  # where a sentence ends, before a capital
    spans = split_sentences("word " * 3000)  # no sentence end at all: pieces end at spaces, nothing is lost
    assert spans[0][0] == 0 and spans[-1][1] == 14999 and all(b - a <= MAX_PIECE for a, b in spans)
    assert all(a < b for (_, a), (b, _) in itertools.pairwise(spans))


def test_pieces_give_the_spans_of_the_whole_line(monkeypatch: pytest.MonkeyPatch) -> None:
    """The seed articles' sentences on one long line: cut into pieces, split as the whole line would be."""
    line = " ".join(r["text"][s["start"] : s["end"]] for r in load_records(SEEDS) for s in r["sentences"])
    line = line.replace("\n", " ")
    assert len(line) > 4 * MAX_PIECE
    pieces = split_sentences(line)
    monkeypatch.setattr(segment, "MAX_PIECE", 10**9)
    assert piece_starts(line) == [0]
    whole = split_sentences(line)
    assert pieces == whole and len(whole) > 100
