"""The two ways of combining the training folds' name dictionary with the NER model (scripts/cv_dictionary_rule.py)."""

from __future__ import annotations

import sys

from tests.conftest import ROOT

sys.path.insert(0, str(ROOT / "scripts"))
from cv_dictionary_rule import dictionary_first, model_first


def span(start: int, end: int, label: str) -> dict:
    return {"start": start, "end": end, "label": label}


# "North and South Korea": the model gives two GPEs, the dictionary one span; "Siberia" only the dictionary finds;
# "Kim" only the model finds.
MODEL = [span(0, 5, "GPE"), span(10, 21, "GPE"), span(30, 33, "PERSON")]
DICTIONARY = [span(0, 21, "GPE"), span(40, 47, "LOC")]


def test_model_first_adds_only_where_the_model_found_nothing() -> None:
    assert model_first(MODEL, DICTIONARY) == [*MODEL, span(40, 47, "LOC")]


def test_dictionary_first_replaces_the_overlapped_model_entities() -> None:
    assert dictionary_first(MODEL, DICTIONARY) == [*DICTIONARY, span(30, 33, "PERSON")]


def test_touching_spans_do_not_overlap() -> None:
    assert model_first([span(0, 5, "GPE")], [span(5, 9, "LOC")]) == [span(0, 5, "GPE"), span(5, 9, "LOC")]
