"""Calibration (src/evaluate/calibration.py): temperature and decision bias fitted out of fold, applied by the
Predictor once stored in a model folder."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from src.model_folder import ModelFolder, record_calibration
from src.tasks.calibrate import cross_fit, expected_calibration_error, fit_decision_bias, fit_temperature
from src.tasks.stance import calibrate_stance, with_decision_bias
from tests.conftest import TINY_TRAIN, compose_train_config


def sampled(t_true: float, n: int = 4000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Logits and labels drawn from softmax(logits / t_true): the fitted temperature should be t_true."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 3, size=(n, 3))
    p = np.exp(logits / t_true)
    p /= p.sum(1, keepdims=True)
    y = np.array([rng.choice(3, p=row) for row in p])
    return logits, y


def test_temperature_recovers_the_true_one() -> None:
    logits, y = sampled(2.0)
    assert fit_temperature(logits, y) == pytest.approx(2.0, rel=0.1)
    logits, y = sampled(0.5, seed=1)
    assert fit_temperature(logits, y) == pytest.approx(0.5, rel=0.1)


def test_an_article_never_fits_its_own_temperature() -> None:
    logits, y = sampled(2.0, n=600)
    folds = np.repeat(np.arange(3), 200)
    seen = {}
    cross_fit(folds, lambda mask: seen.setdefault(len(seen), set(folds[mask])))
    assert [seen[i] for i in range(3)] == [{1, 2}, {0, 2}, {0, 1}]
    result = calibrate_stance(np.log(np.exp(logits) / np.exp(logits).sum(1, keepdims=True)), y, folds, "abc", True)
    for k in range(3):
        others = folds != k
        lp = np.log(np.exp(logits[others]) / np.exp(logits[others]).sum(1, keepdims=True))
        assert result.per_fold_temperature[k] == pytest.approx(fit_temperature(lp, y[others]))
    before, after = result.ece
    assert after < before  # over-confident scores get better


def test_ece_of_known_scores() -> None:
    confidence = np.array([0.9, 0.9, 0.9, 0.9, 0.55, 0.55])
    correct = np.array([True, True, True, False, True, False])
    # bin 0.9: accuracy 0.75 (gap 0.15, 4 items); bin 0.5: accuracy 0.5 (gap 0.05, 2 items)
    assert expected_calibration_error(confidence, correct) == pytest.approx((4 * 0.15 + 2 * 0.05) / 6)


def test_decision_bias_is_zero_without_evidence_and_lifts_a_starved_label() -> None:
    lp = np.log(np.array([[0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.1, 0.1, 0.8]]))
    assert fit_decision_bias(lp, np.array([0, 1, 2])).tolist() == [0, 0, 0]
    # label 2 is always second best: only a positive bias on it recovers it
    lp = np.log(np.array([[0.6, 0.1, 0.3]] * 4 + [[0.2, 0.7, 0.1]] * 2))
    bias = fit_decision_bias(lp, np.array([2, 2, 2, 2, 1, 1]))
    assert bias[2] > 0 and (lp + bias).argmax(1).tolist() == [2, 2, 2, 2, 1, 1]
    record = {"id": "d", "sentences": [{"stance": "a", "scores": {"a": 0.6, "b": 0.1, "c": 0.3}}]}
    assert with_decision_bias([record], {"c": 1.0})[0]["sentences"][0]["stance"] == "c"
    assert record["sentences"][0]["stance"] == "a"  # the input is not changed


@pytest.fixture(scope="module")
def stance_run(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from src.train import train

    out = tmp_path_factory.mktemp("calibration") / "run"
    train(compose_train_config(["task=stance", f"model.name_or_path={tiny_model_dir}", *TINY_TRAIN], out))
    return out


def test_predictor_applies_the_stored_temperature_and_bias(stance_run: Path) -> None:
    from src.predict.engine import Predictor

    sentences = ["Kim wants leverage over Washington.", "Trade and workers matter."]
    raw = Predictor.from_pretrained(stance=str(stance_run), device="cpu", backend="torch").classify_sentences(sentences)
    fit = {"fitted_on": "test", "ece_before": 0.2, "ece_after_cross_fitted": 0.1}
    record_calibration(stance_run / "model", {"temperature": 4.0, **fit})
    assert ModelFolder.from_dir(stance_run / "model").calibration["temperature"] == 4.0
    warm = Predictor.from_pretrained(stance=str(stance_run), device="cpu", backend="torch").classify_sentences(
        sentences
    )
    for a, b in zip(raw, warm, strict=True):
        assert a["stance"] == b["stance"]  # a temperature never changes a decision
        assert max(b["scores"].values()) < max(a["scores"].values())  # only how sure it says it is
        expected = np.exp(np.log(list(a["scores"].values())) / 4.0)
        assert list(b["scores"].values()) == pytest.approx(list(expected / expected.sum()), abs=1e-5)
    record_calibration(stance_run / "model", {"temperature": 1.0, **fit, "decision_bias": {"leverage": 50.0}})
    biased = Predictor.from_pretrained(stance=str(stance_run), device="cpu", backend="torch").classify_sentences(
        sentences
    )
    assert [b["stance"] for b in biased] == ["leverage", "leverage"]
    assert [b["scores"] for b in biased] == [a["scores"] for a in raw]  # scores stay the probabilities
    card = (stance_run / "model" / "README.md").read_text(encoding="utf-8")
    assert "decision bias leverage +50.00" in card


def test_storing_refuses_a_model_of_another_setting(stance_run: Path, tmp_path: Path) -> None:
    from src.evaluate.calibration import store

    fold_run = tmp_path / "cv" / "0"
    (fold_run / ".hydra").mkdir(parents=True)
    import yaml

    config = yaml.safe_load((stance_run / ".hydra" / "config.yaml").read_text())  # as src.train wrote it
    other = json.loads(json.dumps(config))
    other["trainer"]["learning_rate"] = 0.123
    (fold_run / ".hydra" / "config.yaml").write_text(yaml.safe_dump(other))
    cv = {
        "tasks": {
            "stance": {
                "settings": {"model": {"runs": {"0": str(fold_run)}}},
                "calibration": {
                    "model": {
                        "temperature": 2.0,
                        "per_fold_temperature": {"0": 2.0},
                        "ece_before": 0.2,
                        "ece_after": 0.1,
                    }
                },
            }
        }
    }
    with pytest.raises(ValueError, match="trained with a setting that no run"):
        store(cv, "cv", [str(stance_run)], decision_bias=False)
    (fold_run / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config))
    assert "temperature 2.000" in store(cv, "cv", [str(stance_run)], decision_bias=False)[0]
    assert ModelFolder.from_dir(stance_run / "model").calibration["temperature"] == 2.0


def suite_result(cases: list[tuple[str, dict]]) -> dict:
    return {"scores": [{"id": str(i), "expect": e, "scores": s} for i, (e, s) in enumerate(cases)]}


def test_the_suite_check_scores_raw_and_scaled_confidence() -> None:
    from src.tasks.calibrate import suite_check

    # right and unsure, wrong and unsure: sharpening (t < 1) makes the wrong ones promise more than they deliver
    right = ("leverage", {"leverage": 0.6, "neutral": 0.4})
    wrong = ("leverage", {"leverage": 0.4, "neutral": 0.6})
    folds = [suite_result([right, wrong]), suite_result([right, wrong])]
    sharp = suite_check(0.3, folds)
    assert sharp["n_cases"] == 4 and sharp["ece_before"] == pytest.approx(0.1)
    assert sharp["ece_after"] > sharp["ece_before"]
    assert suite_check(1.0, folds)["ece_after"] == pytest.approx(sharp["ece_before"])
    assert suite_check(0.5, [{"skipped": "no model"}]) is None


def test_a_temperature_is_stored_only_when_the_shift_check_agrees(stance_run: Path) -> None:
    import yaml

    from src.evaluate.calibration import store

    config = yaml.safe_load((stance_run / ".hydra" / "config.yaml").read_text())

    def cv(temperature: float, suite: dict | None) -> dict:
        fit = {"temperature": temperature, "per_fold_temperature": {"0": temperature}, "ece_before": 0.2}
        fit |= {"ece_after": 0.1} | ({"suite": suite} if suite else {})
        run = stance_run.parent / "cv-fold"
        (run / ".hydra").mkdir(parents=True, exist_ok=True)
        (run / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config))
        return {"tasks": {"stance": {"settings": {"model": {"runs": {"0": str(run)}}}, "calibration": {"model": fit}}}}

    before = (stance_run / "model" / "newsframe.json").read_bytes()
    worse = {"suite": "suite.jsonl", "n_cases": 156, "ece_before": 0.07, "ece_after": 0.13}
    (line,) = store(cv(1.5, worse), "cv", [str(stance_run)], decision_bias=False)
    assert line.startswith("not calibrated") and "from 0.070 to 0.130" in line
    assert (stance_run / "model" / "newsframe.json").read_bytes() == before  # the folder was left as it was
    size = {"temperature_smaller_models": 0.386}  # models one article smaller: sharper still
    (line,) = store(cv(0.55, None), "cv", [str(stance_run)], decision_bias=False, size_check=size)
    assert "below 1 it makes scores sharper" in line
    assert (stance_run / "model" / "newsframe.json").read_bytes() == before
    better = {"suite": "suite.jsonl", "n_cases": 156, "ece_before": 0.13, "ece_after": 0.07}
    (line,) = store(cv(0.55, better), "cv", [str(stance_run)], decision_bias=False)  # no size check: the fold
    assert "one article fewer" in line  # models' temperature would over-sharpen the bigger model
    assert (stance_run / "model" / "newsframe.json").read_bytes() == before
    (line,) = store(cv(0.55, better), "cv", [str(stance_run)], decision_bias=False, size_check=size)
    assert line.startswith("calibrated") and "temperature 0.784" in line  # 0.55 ** 2 / 0.386, towards 1
    stored = ModelFolder.from_dir(stance_run / "model").calibration
    assert stored["temperature"] == pytest.approx(0.783679, abs=1e-6) and stored["checked_on"]["ece_after"] == 0.07
    assert stored["extrapolated_from"] == {"temperature_folds": 0.55, "temperature_smaller_models": 0.386}
    card = (stance_run / "model" / "README.md").read_text(encoding="utf-8")
    assert "checked under shift on `suite.jsonl` (sentences worded unlike the training articles, 156 fold" in card
    assert "0.130 raw, 0.070 calibrated" in card
    assert "temperature 0.784, extrapolated to this model" in card  # the fold figures are the fold temperature's
    assert "fold models' temperature 0.550, fitted on out-of-fold predictions" in card


def test_a_size_check_of_another_cv_is_refused(tmp_path: Path) -> None:
    from src.evaluate.__main__ import read_size_check

    check = tmp_path / "nested_calibration.json"
    check.write_text(json.dumps({"outer": str(tmp_path / "cv-a"), "temperature_smaller_models": 0.4}))
    assert read_size_check(str(check), str(tmp_path / "cv-a"))["temperature_smaller_models"] == 0.4
    with pytest.raises(ValueError, match="not of cv="):
        read_size_check(str(check), str(tmp_path / "cv-b"))
    check.write_text("{}")
    with pytest.raises(ValueError, match=r"not a nested_calibration\.json"):
        read_size_check(str(check), str(tmp_path / "cv-a"))
