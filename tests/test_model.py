"""Model paths (src/model.py): local paths fail at once and clearly, only Hub-shaped ids may go to the Hub."""

from __future__ import annotations

from pathlib import Path

import pytest

from src.model import ModelNotFound, looks_local, resolve_model_dir


@pytest.mark.parametrize("name", ["./nope", "/nonexistent/model", "~/nope", "runs/a/b", "a\\b"])
def test_path_spellings_are_local(name: str) -> None:
    assert looks_local(name)


def test_hub_ids_are_not_local(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert not looks_local("sentence-transformers/all-MiniLM-L6-v2")
    assert resolve_model_dir("bert-base-cased") == "bert-base-cased"
    (tmp_path / "runs").mkdir()
    assert looks_local("runs/nerr")  # its first part is a folder here: a mistyped run, not a Hub id


def test_missing_local_folder_fails_before_any_hub_lookup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").mkdir()
    for name in ("runs/nerr", "./nope"):
        with pytest.raises(ModelNotFound, match=f"{name}: no such folder"):
            resolve_model_dir(name)


def test_incomplete_run_folder_is_not_a_model(tmp_path: Path, tiny_model_dir: Path) -> None:
    """An interrupted build leaves a run folder with only Hydra's files, or a model folder without weights."""
    run = tmp_path / "conll2003"
    (run / ".hydra").mkdir(parents=True)
    with pytest.raises(ModelNotFound, match=r"not a complete model folder \(no config.json or model.safetensors"):
        resolve_model_dir(run)
    (run / "model").mkdir()
    (run / "model" / "config.json").write_text((tiny_model_dir / "config.json").read_text())
    with pytest.raises(ModelNotFound, match=r"no model\.safetensors"):
        resolve_model_dir(run)


def test_run_folder_stands_for_its_model(tmp_path: Path, runs: dict[str, Path]) -> None:
    assert resolve_model_dir(runs["ner"]) == str(runs["ner"] / "model")
    assert resolve_model_dir(runs["ner"] / "model") == str(runs["ner"] / "model")


def test_predictor_refuses_a_missing_run_at_once(tmp_path: Path) -> None:
    from src.predict import Predictor

    with pytest.raises(ModelNotFound, match="no such folder"):
        Predictor.from_pretrained(ner=str(tmp_path / "nerr"))
