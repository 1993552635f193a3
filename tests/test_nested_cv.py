"""Nested LOAO CV (src.evaluate.nested_cv): inner folds choose without the outer article, finished runs are reused."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from src.evaluate.nested_cv import DEFAULT_CANDIDATES, main, parse_candidates
from tests.conftest import ROOT, SEEDS, TINY_TRAIN


def test_candidates_parse_in_order_and_refuse_mistakes() -> None:
    got = parse_candidates(["b=task.prototypes=null trainer.learning_rate=1e-4", "a="], "stance")
    assert list(got) == ["b", "a"] and got["b"] == ["task.prototypes=null", "trainer.learning_rate=1e-4"]
    assert got["a"] == []
    assert parse_candidates(None, "stance") == DEFAULT_CANDIDATES["stance"]
    for bad in (["x=a=1", "x=b=2"], ["=a=1", "y="], ["only=a=1"], ["no-equals-sign", "y="]):
        with pytest.raises(SystemExit):
            parse_candidates(bad, "stance")
    with pytest.raises(SystemExit, match="no default candidates"):
        parse_candidates(None, "ner")


def test_a_bad_gold_file_fails_before_any_training(tmp_path: Path) -> None:
    gold = tmp_path / "bad.jsonl"
    gold.write_text(SEEDS.read_text(encoding="utf-8").splitlines()[0] + "\n{not json\n", encoding="utf-8")
    with pytest.raises(SystemExit, match=r"bad\.jsonl"):
        main(["--out", str(tmp_path / "out"), "--gold", str(gold)])
    assert not (tmp_path / "out").exists()


def test_nested_run_chooses_per_outer_article_and_reuses_runs(tiny_model_dir: Path, tmp_path: Path) -> None:
    gold = tmp_path / "three.jsonl"
    gold.write_text("".join(SEEDS.read_text(encoding="utf-8").splitlines(keepends=True)[:3]), encoding="utf-8")
    out = tmp_path / "nested"
    cmd = [
        sys.executable, "-m", "src.evaluate.nested_cv", "--task", "stance", "--out", str(out), "--gold", str(gold),
        "--jobs", "2",
        "--candidate", "lr-small=trainer.learning_rate=1e-6", "--candidate", "lr-large=trainer.learning_rate=1e-3",
        f"model.name_or_path={tiny_model_dir}", *[o for o in TINY_TRAIN if "max_steps" not in o], "trainer.max_steps=2",
    ]  # fmt: skip
    first = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert first.returncode == 0, first.stdout[-2000:] + first.stderr[-2000:]
    report = json.loads((out / "nested_cv.json").read_text(encoding="utf-8"))
    assert set(report["chosen"]) == {"0", "1", "2"}
    for k, choice in report["chosen"].items():
        scores = report["inner"][k]
        assert choice == max(scores, key=lambda c: (scores[c], c == "lr-small"))  # the first candidate on a tie
        # The inner CV of outer article k never saw article k: its gold file holds the two others.
        inner_ids = {json.loads(line)["id"] for line in (out / f"outer{k}" / "gold.jsonl").read_text().splitlines()}
        assert len(inner_ids) == 2 and sorted(inner_ids) == sorted(
            json.loads(line)["id"] for i, line in enumerate(gold.read_text().splitlines()) if i != int(k)
        )
        assert sorted(p.name for p in (out / f"outer{k}" / choice).glob("fold*")) == ["fold0", "fold1"]
    assert set(report["outer"]) == {"nested", "lr-small", "lr-large"}
    assert all(0.0 <= v["pooled"] <= 1.0 and 0.0 <= v["pooled_macro_f1"] <= 1.0 for v in report["outer"].values())
    assert "nested choice" in (out / "nested_cv.md").read_text(encoding="utf-8")
    # Repeated: every run is finished, so nothing trains again and the figures are the same.
    again = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and "folds [" not in again.stdout, again.stdout[-2000:]
    assert json.loads((out / "nested_cv.json").read_text(encoding="utf-8")) == report
    # An interrupted run (no predictions) is moved out of its sweep, kept, and only that fold trains again.
    (out / "outer0" / "lr-small" / "fold1" / "predictions.jsonl").unlink()
    resumed = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0 and "lr-small: folds [1]" in resumed.stdout, resumed.stdout[-2000:]
    [aside] = (out / "outer0" / "lr-small.unfinished").iterdir()
    assert aside.name.startswith("fold1-") and (aside / "model").is_dir()
    assert set(json.loads((out / "nested_cv.json").read_text(encoding="utf-8"))["chosen"]) == {"0", "1", "2"}


def test_calibration_check_fits_on_smaller_models_and_scores_the_bigger_ones(monkeypatch, tmp_path: Path) -> None:
    """The temperature of the inner (smaller) models is applied to the outer models' held-out sentences: made-up
    over-confident logits (true temperature 2) get a fitted temperature near 2 and a lower ECE than raw."""
    import numpy as np
    from scipy.special import softmax

    from src.evaluate import nested_cv

    rng = np.random.default_rng(0)

    def sample(n: int) -> tuple[np.ndarray, np.ndarray]:
        truth = rng.normal(0, 1.5, size=(n, 3))
        y = np.array([rng.choice(3, p=p) for p in softmax(truth, axis=1)])
        return np.log(softmax(truth * 2, axis=1)), y  # scores twice as sharp as the truth

    outer_lp, outer_y = sample(600)
    outer = (outer_lp, outer_y, np.repeat(np.arange(3), 200))
    inner = {f"outer{k}": (*sample(400), np.repeat(np.arange(2), 200)) for k in range(3)}
    monkeypatch.setattr(
        nested_cv, "stance_oof", lambda sweep: outer if sweep.parent.name == "outer" else inner[sweep.parent.name]
    )
    result = nested_cv.calibration_transfer(tmp_path, "defaults", 3)
    smaller = result["per_fold_temperature"]["smaller models"]
    assert set(smaller) == {"0", "1", "2"} and all(1.6 < t < 2.5 for t in smaller.values())
    systems = result["systems"]
    assert systems["smaller models"]["ece"] < systems["raw"]["ece"]
    assert systems["smaller models"]["nll"] < systems["raw"]["nll"]
    assert systems["raw"]["accuracy"] == systems["smaller models"]["accuracy"]  # a temperature never changes a decision
    assert 1.6 < result["temperature_smaller_models"] < 2.5 and result["outer"] == str(tmp_path / "outer" / "defaults")
    assert parse_candidates(None, "stance", calibration=True) == {"defaults": []}
    with pytest.raises(SystemExit, match="at most one"):
        parse_candidates(["a=", "b="], "stance", calibration=True)


def test_the_extrapolated_temperature_moves_towards_1_never_past_it() -> None:
    from src.tasks.calibrate import extrapolated_temperature

    assert extrapolated_temperature(0.556, 0.386) == pytest.approx(0.801, abs=1e-3)  # 3, 4 -> 5 articles
    assert extrapolated_temperature(0.9, 0.5) == 1.0  # would cross 1: stops at raw scores
    assert extrapolated_temperature(0.5, 0.6) == 0.5  # moving away from 1: no sharper than the folds' own
    assert extrapolated_temperature(2.0, 3.0) == pytest.approx(4 / 3)  # over-confident models soften less
