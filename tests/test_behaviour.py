"""The stance behavioural suite: the file is what its README says, the scoring rules, and the command on a model."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from src.data.records import load_records
from src.evaluate.__main__ import main
from src.evaluate.behaviour import SuiteError, load_suite, score_suite
from tests.conftest import ROOT, SEEDS

SUITE = ROOT / "data" / "behaviour" / "stance.jsonl"
LABELS = ["leverage", "economic_cooperation", "neutral"]


def test_the_suite_is_large_enough_and_kept_out_of_training() -> None:
    cases = load_suite(SUITE, LABELS)
    assert len(cases) >= 150 and Counter(c["expect"] for c in cases)["leverage"] >= 40
    assert len({c["id"] for c in cases}) == len(cases)
    seed_text = " ".join(r["text"] for r in load_records(SEEDS))
    assert not [c["text"] for c in cases if c["text"] in seed_text]  # new sentences, not the seed articles'
    groups = Counter(c["group"] for c in cases if c["type"] == "topic_pair")
    assert set(groups.values()) == {2}
    for group in groups:  # a pair: one background sentence, one framing sentence
        labels = sorted(c["expect"] for c in cases if c.get("group") == group)
        assert labels[0] != labels[1] and "neutral" in labels
    for group in {c["group"] for c in cases if c["type"] == "invariance"}:
        assert len({c["expect"] for c in cases if c.get("group") == group}) == 1


def test_scoring_rules_per_type() -> None:
    cases = [
        {"id": "m1", "type": "mft", "text": "a", "expect": "leverage"},
        {"id": "m2", "type": "mft", "text": "b", "expect": "neutral"},
        {"id": "p1", "type": "topic_pair", "text": "c", "expect": "neutral", "group": "g"},
        {"id": "p2", "type": "topic_pair", "text": "d", "expect": "leverage", "group": "g"},
        {"id": "i1", "type": "invariance", "text": "e", "expect": "leverage", "group": "h"},
        {"id": "i2", "type": "invariance", "text": "f", "expect": "leverage", "group": "h"},
    ]
    # a topic model: calls both pair sentences leverage; consistent but wrong on the swapped names
    result = score_suite(cases, ["leverage", "leverage", "leverage", "leverage", "neutral", "neutral"])
    assert result["types"]["mft"] == {"tests": 2, "passed": 1, "pass_rate": 0.5, "cases": 2, "accuracy": 0.5}
    assert result["types"]["topic_pair"]["pass_rate"] == 0.0 and result["types"]["topic_pair"]["accuracy"] == 0.5
    assert result["types"]["invariance"]["pass_rate"] == 1.0 and result["types"]["invariance"]["accuracy"] == 0.0
    assert result["overall"] == {"tests": 4, "passed": 2, "pass_rate": 0.5}
    assert [f["test"] for f in result["failures"]] == ["m2", "g"]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ({"id": "x", "type": "mft", "text": "a"}, "field 'expect' must be a non-empty string"),
        ({"id": "x", "type": "other", "text": "a", "expect": "neutral"}, "type 'other' is not one of"),
        ({"id": "x", "type": "topic_pair", "text": "a", "expect": "neutral"}, "needs a 'group'"),
        ({"id": "x", "type": "mft", "text": "a", "expect": "hawkish"}, "expect 'hawkish' is not a label"),
    ],
)
def test_a_bad_case_is_located(tmp_path: Path, line: dict, message: str) -> None:
    path = tmp_path / "suite.jsonl"
    path.write_text(json.dumps(line) + "\n")
    with pytest.raises(SuiteError, match=rf"suite.jsonl:1: .*{message}"):
        load_suite(path, LABELS)


def test_the_command_scores_a_stance_model(runs, tmp_path: Path, capsys) -> None:
    assert main([f"model={runs['stance']}", f"behaviour={SUITE}", f"out_dir={tmp_path}"]) == 0
    printed = capsys.readouterr().out
    assert "| model | mft | topic_pair | invariance | negation | overall |" in printed
    result = json.loads((tmp_path / "behaviour.json").read_text())
    assert result["overall"]["tests"] == 82 + 20 + 11 + 12
    assert 0.0 <= result["overall"]["pass_rate"] <= 1.0
    assert main([f"model={runs['ner']}", f"behaviour={SUITE}"]) == 1
    assert "the behavioural suite is for stance models" in capsys.readouterr().err
