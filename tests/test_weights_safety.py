"""Weights load from safetensors only: a folder whose safetensors index points at a pickle file is refused before
anything reads a weight, with one error line, by predict, train and evaluate alike."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from src.model import ModelNotFound, resolve_model_dir
from tests.conftest import ROOT, SEEDS


def sharded(runs: dict[str, Path], tmp_path: Path, shard: str, *, write_shard: bool = True) -> Path:
    """A copy of the tiny stance model whose weights are only an index naming ``shard``."""
    folder = tmp_path / "model"
    shutil.copytree(runs["stance"] / "model", folder)
    (folder / "model.safetensors").rename(folder / "weights.safetensors")
    if write_shard and not (folder / shard).exists():
        (folder / shard).write_bytes(b"not a real weight file")
    index = {"metadata": {}, "weight_map": {"classifier.weight": shard}}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    return folder


@pytest.mark.parametrize(
    ("shard", "message"),
    [
        ("pytorch_model.bin", "not a .safetensors file"),
        ("../elsewhere.safetensors", "not a .safetensors file"),
        ("weights.safetensors", None),
    ],
)
def test_an_index_must_name_safetensors_inside_the_folder(runs, tmp_path: Path, shard: str, message) -> None:
    folder = sharded(runs, tmp_path, shard)
    if message is None:
        assert resolve_model_dir(folder) == str(folder)
    else:
        with pytest.raises(ModelNotFound, match=message):
            resolve_model_dir(folder)


def test_a_missing_shard_or_a_broken_index_is_refused(runs, tmp_path: Path) -> None:
    folder = sharded(runs, tmp_path, "gone.safetensors", write_shard=False)
    with pytest.raises(ModelNotFound, match="missing"):
        resolve_model_dir(folder)
    (folder / "model.safetensors.index.json").write_text("[1, 2]")
    with pytest.raises(ModelNotFound, match="not a safetensors index"):
        resolve_model_dir(folder)


@pytest.mark.parametrize(
    "command",
    [
        ["scripts/predict.py", "--stance", "{model}", "seeds/"],
        ["-m", "src.evaluate", "model={model}", f"data.path={SEEDS}"],
        ["-m", "src.train", "task=stance", "model.name_or_path={model}", "hydra.run.dir={tmp}/run"],
    ],
)
def test_predict_evaluate_and_train_refuse_a_pickle_shard_in_one_line(runs, tmp_path: Path, command) -> None:
    folder = sharded(runs, tmp_path, "pytorch_model.bin")
    args = [a.format(model=folder, tmp=tmp_path) for a in command]
    done = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert "not a .safetensors file" in done.stderr and "pytorch_model.bin" in done.stderr
