"""newsframe.json is validated on load: a bad field is one error line naming the file and the field, never an
inverted decision, a NaN score or a traceback; its labels must agree with config.json."""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from src.model_folder import METADATA, ModelFolder
from tests.conftest import ROOT


def edited(runs: dict[str, Path], tmp_path: Path, change) -> Path:
    """A copy of the tiny stance model with its newsframe.json changed by ``change(meta) -> meta``."""
    folder = tmp_path / "model"
    shutil.copytree(runs["stance"] / "model", folder)
    meta = ModelFolder.from_dir(folder).to_dict()  # the fixture's folder has none: a valid one (version 2)
    (folder / METADATA).write_text(json.dumps(change(meta)))
    return folder


def with_(key: str, value):
    def change(meta: dict) -> dict:
        node = meta
        *parents, last = key.split(".")
        for part in parents:
            node = node.setdefault(part, {}) if isinstance(node.get(part), dict) or part not in node else node[part]
        node[last] = value
        return meta

    return change


def without(key: str):
    def change(meta: dict) -> dict:
        *parents, last = key.split(".")
        node = meta
        for part in parents:
            node = node[part]
        del node[last]
        return meta

    return change


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (with_("calibration", {"temperature": -1.0}), "calibration.temperature"),
        (with_("calibration", {"temperature": 0}), "calibration.temperature"),
        (with_("calibration", {"temperature": math.nan}), "calibration.temperature"),
        (with_("calibration", {"temperature": None}), "calibration.temperature"),
        (with_("calibration", {"temperature": 1.2, "decision_bias": {"leverage": "x"}}), "calibration.decision_bias"),
        (with_("calibration", [1, 2]), "calibration"),
        (with_("windows.max_length", "abc"), "windows.max_length"),
        (with_("windows.max_length", 0), "windows.max_length"),
        (with_("windows.stride", 500), "windows.stride"),
        (with_("labels", "leverage"), "labels"),
        (with_("task", "topic"), "task"),
        (with_("windows.context", "everything"), "windows.context"),
        (without("task"), "task"),
        (without("windows.max_length"), "windows.max_length"),
        (without("windows.stride"), "windows.stride"),
        (with_("engine.cpu_quantize", "int4"), "engine.cpu_quantize"),
        (with_("none_label", "economic_cooperation!"), "none_label"),
        (with_("provenance", []), "provenance"),
        (lambda meta: None, "(top level)"),
        (lambda meta: [meta], "(top level)"),
    ],
)
def test_a_bad_field_is_named(runs, tmp_path: Path, change, field: str) -> None:
    folder = edited(runs, tmp_path, change)
    with pytest.raises(ValueError, match=re.escape(f"{METADATA}: field '{field}' must be")):
        ModelFolder.from_dir(folder)


def test_the_untouched_folder_loads(runs, tmp_path: Path) -> None:
    folder = edited(runs, tmp_path, with_("calibration", {"temperature": 1.5, "decision_bias": {"leverage": 0.1}}))
    assert ModelFolder.from_dir(folder).calibration["temperature"] == 1.5


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (with_("calibration", {"temperature": -1.0}), "field 'calibration.temperature' must be a finite number > 0"),
        (lambda meta: meta | {"labels": list(reversed(meta["labels"]))}, "disagree with config.json's id2label"),
        (with_("windows.max_length", 4096), "field 'windows.max_length' is 4096, longer than the model's"),
    ],
)
def test_predict_and_evaluate_refuse_in_one_line(runs, tmp_path: Path, change, message: str) -> None:
    folder = edited(runs, tmp_path, change)
    for command in (
        ["scripts/predict.py", "--stance", str(folder), "-o", str(tmp_path / "out.jsonl"), "seeds/"],
        ["-m", "src.evaluate", f"model={folder}", "data.path=data/annotations/seeds.jsonl"],
    ):
        done = subprocess.run([sys.executable, *command], cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert done.returncode != 0 and "Traceback" not in done.stderr, done.stderr[-2000:]
        assert message in done.stderr and not (tmp_path / "out.jsonl").exists()


def test_a_head_larger_than_id2label_is_one_error(runs, tmp_path: Path) -> None:
    folder = tmp_path / "model"
    shutil.copytree(runs["stance"] / "model", folder)
    config = json.loads((folder / "config.json").read_text())
    config["id2label"] = {"0": "leverage", "1": "neutral"}
    config["label2id"] = {"leverage": 0, "neutral": 1}
    (folder / "config.json").write_text(json.dumps(config))
    command = ["scripts/predict.py", "--stance", str(folder), "seeds/"]
    done = subprocess.run([sys.executable, *command], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert "the weights do not fit config.json" in done.stderr
