"""src.select: uncertainty scores, the diverse top k, and the CLI's Label Studio tasks (tiny checkpoints)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from src.select.__main__ import main
from src.select.rank import mmr, sentence_uncertainty
from src.tasks.ner import ner_uncertainty
from src.tasks.stance import stance_uncertainty

ROOT = Path(__file__).resolve().parents[1]
SEED_IDS = ["000_056989c0f52db9f1", "001_9defb6f96a42a460"]


def test_stance_uncertainty_is_one_minus_the_top_two_margin() -> None:
    u, why = stance_uncertainty({"leverage": 0.5, "neutral": 0.46, "economic_cooperation": 0.04})
    assert u == pytest.approx(0.96) and why == "stance margin 0.04 leverage/neutral"
    assert stance_uncertainty({"leverage": 0.98, "neutral": 0.01, "economic_cooperation": 0.01})[0] < 0.05


def test_ner_uncertainty_names_the_least_sure_word() -> None:
    u, why = ner_uncertainty(["Kim", "met", "RT"], [("B-PERSON", 0.98), ("O", 0.99), ("B-ORG", 0.61)])
    assert u == pytest.approx(0.39) and why == "NER least sure word 'RT' B-ORG 0.61"
    assert ner_uncertainty([], []) == (0.0, "")


def test_the_least_sure_task_drives_the_score() -> None:
    assert sentence_uncertainty([(0.2, "stance a"), (0.4, "NER b")]) == (0.4, "NER b; stance a")
    assert sentence_uncertainty([]) == (0.0, "")


def test_mmr_skips_near_copies_unless_diversity_is_off() -> None:
    texts = ["Kim met Putin in Vladivostok.", "Kim met Putin in Vladivostok.", "Trade with Russia grew."]
    uncertainty = [0.9, 0.89, 0.5]
    assert [i for i, _ in mmr(uncertainty, texts, k=2)] == [0, 2]
    assert [i for i, _ in mmr(uncertainty, texts, k=2, diversity=0.0)] == [0, 1]
    picks = mmr(uncertainty, texts, k=3)
    assert [i for i, _ in picks] == [0, 2, 1] and picks[2][1] == pytest.approx(1.0)  # the copy comes last
    assert mmr(uncertainty, texts, k=10) == picks  # k beyond the pool: every candidate once
    with pytest.raises(ValueError, match="diversity"):
        mmr(uncertainty, texts, k=1, diversity=1.5)


def _articles(folder: Path) -> Path:
    folder.mkdir()
    for doc_id in SEED_IDS:
        shutil.copy(ROOT / "seeds" / f"{doc_id}.txt", folder / f"{doc_id}.txt")
    return folder


def test_cli_writes_ranked_tasks_deterministically(runs: dict[str, Path], tmp_path: Path, capsys) -> None:
    articles = _articles(tmp_path / "articles")
    out, again = tmp_path / "tasks.json", tmp_path / "again.json"
    models = ["--ner", str(runs["ner"]), "--stance", str(runs["stance"]), "--device", "cpu"]
    assert main([*models, str(articles), "-k", "6", "-o", str(out)]) == 0
    ranking = capsys.readouterr().out.splitlines()
    assert len(ranking) == 6 and ranking[0].startswith("#1 ")

    tasks = json.loads(out.read_text(encoding="utf-8"))
    assert 1 <= len(tasks) <= 2
    assert {t["data"]["doc_id"] for t in tasks} <= set(SEED_IDS)  # ids are corpus ids: no .txt suffix
    ranks = [t["data"]["rank"] for t in tasks]
    assert ranks == sorted(ranks) and ranks[0] == 1
    whys = " | ".join(t["data"]["why"] for t in tasks)
    assert [f"#{r} " in whys for r in range(1, 7)] == [True] * 6
    assert "stance margin" in whys and "NER least sure word" in whys
    for task in tasks:  # the pre-annotation is predict's: entities and a stance per sentence region
        (prediction,) = task["predictions"]
        assert {r["from_name"] for r in prediction["result"]} >= {"sentence", "stance"}

    assert main([*models, str(articles), "-k", "6", "-o", str(again)]) == 0
    assert again.read_bytes() == out.read_bytes()

    with pytest.raises(SystemExit) as refused:
        main([*models, str(articles), "-k", "6", "-o", str(out)])
    assert refused.value.code == 2 and "exists" in capsys.readouterr().err
    assert again.read_bytes() == out.read_bytes()


def test_select_tags_each_sentence_once(runs: dict[str, Path], tmp_path: Path, monkeypatch) -> None:
    """The uncertainty comes from the prediction pass itself: src.select tags as many sentences as predict does."""
    import src.tasks.ner as ner
    from src.predict.engine import Predictor

    tagged: list[int] = []
    tag_words = ner.tag_words
    monkeypatch.setattr(ner, "tag_words", lambda model, words: tagged.append(len(words)) or tag_words(model, words))
    articles = _articles(tmp_path / "articles")
    assert (
        main(["--ner", str(runs["ner"]), "--device", "cpu", str(articles), "-k", "2", "-o", str(tmp_path / "t")]) == 0
    )
    selected, tagged[:] = sum(tagged), []
    texts = [(articles / f"{doc_id}.txt").read_text(encoding="utf-8") for doc_id in SEED_IDS]
    Predictor.from_pretrained(ner=str(runs["ner"]), device="cpu").predict(texts)
    assert selected == sum(tagged) > 0


def test_cli_stance_only_and_bad_options(runs: dict[str, Path], tmp_path: Path, capsys) -> None:
    articles = _articles(tmp_path / "articles")
    out = tmp_path / "tasks.json"
    assert main(["--stance", str(runs["stance"]), "--device", "cpu", str(articles), "-k", "3", "-o", str(out)]) == 0
    whys = " | ".join(t["data"]["why"] for t in json.loads(out.read_text(encoding="utf-8")))
    assert "stance margin" in whys and "NER" not in whys
    for bad in (["-k", "0"], ["--diversity", "2"]):
        with pytest.raises(SystemExit) as refused:
            main(["--stance", str(runs["stance"]), str(articles), "-o", str(tmp_path / "x.json"), *bad])
        assert refused.value.code == 2
    assert not (tmp_path / "x.json").exists()


@pytest.mark.slow
def test_simulation_writes_a_learning_curve(tiny_model_dir: Path, tmp_path: Path) -> None:
    """scripts/simulate_selection.py end to end on a tiny model: both strategies share round 0, then differ."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("simulate_selection", ROOT / "scripts" / "simulate_selection.py")
    simulate = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(simulate)
    out = tmp_path / "sim"
    options = ["--model", str(tiny_model_dir), "--folds", "1", "--seeds", "0", "--start", "4", "--step", "4"]
    assert simulate.main([*options, "--rounds", "1", "--epochs", "1", "--out", str(out)]) == 0
    results = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert results["sizes"] == [4, 8] and len(results["runs"]) == 1
    (run,) = results["runs"]
    assert run["f1"]["select"][0] == run["f1"]["random"][0] and all(0 <= f <= 1 for f in run["f1"]["select"])
    assert (out / "curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| 8 |" in (out / "curve.md").read_text(encoding="utf-8")
    with pytest.raises(SystemExit):  # finished results are never overwritten
        simulate.main([*options, "--rounds", "1", "--epochs", "1", "--out", str(out)])
