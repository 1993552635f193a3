"""scripts/probe_frozen_encoders.py: the folds of both supplement protocols, the frozen head and the averaged row."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("probe", ROOT / "scripts" / "probe_frozen_encoders.py")
probe = importlib.util.module_from_spec(spec)
spec.loader.exec_module(probe)

LABELS = ["leverage", "economic_cooperation", "neutral"] * 2


def record(rid: str, outlet: str | None = None) -> dict:
    text = " ".join(f"s{k}." for k in range(len(LABELS)))
    spans = [(3 * k, 3 * k + 3) for k in range(len(LABELS))]
    sentences = [{"start": a, "end": b, "stance": label} for (a, b), label in zip(spans, LABELS, strict=True)]
    return {"id": rid, "text": text, "sentences": sentences, **({"outlet": outlet} if outlet else {})}


def test_a_separating_encoder_scores_one_and_the_average_mixes_in_the_fine_tuned_scores() -> None:
    seeds = [record("a"), record("b")]
    supplement = [record("x", "X"), record("y", "Y"), record("z", "Y")]
    keys = [key for key, _, _ in probe.sentences(seeds + supplement)]
    onehot = np.eye(3)[[probe.LABELS.index(label) for _, _, label in probe.sentences(seeds + supplement)]]
    # A fine-tuned model that always leans to the wrong label (0.5, the right one 0.4): the frozen head outvotes it.
    leaning = 0.4 * onehot + 0.5 * np.roll(onehot, 1, axis=1) + 0.1 * np.roll(onehot, 2, axis=1)
    wrong = {key: list(row) for key, row in zip(keys, leaning, strict=True)}
    rows = probe.protocol_rows("looo", seeds, supplement, {"ideal": onehot + 0.01}, wrong)
    by_system = {row[1]: row for row in rows}
    assert [row[0] for row in rows] == ["outlets, leave one outlet out"] * 3
    assert by_system["frozen ideal + logistic regression"][2] == 1.0
    assert by_system["fine-tuned fold models"][2] == 0.0
    assert by_system["fine-tuned + frozen ideal, averaged"][2] == 1.0
    loao = probe.protocol_rows("loao", seeds, supplement, {"ideal": onehot + 0.01}, {})
    assert [row[1] for row in loao] == ["frozen ideal + logistic regression"]  # no fine-tuned rows without them


def test_a_multirun_without_the_held_out_sentences_is_refused() -> None:
    seeds, supplement = [record("a"), record("b")], [record("x", "X"), record("y", "Y")]
    vectors = {"ideal": np.eye(3)[[probe.LABELS.index(label) for label in LABELS * 4]]}
    other = {("elsewhere", 0): [1.0, 0.0, 0.0]}
    with pytest.raises(SystemExit, match="no prediction of sentence"):
        probe.protocol_rows("loao", seeds, supplement, vectors, other)
