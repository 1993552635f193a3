"""The model folder as a contract (src/model_folder.py): newsframe.json, the card, and one way to run a folder."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from src.evaluate.__main__ import main as evaluate_main
from src.evaluate.metrics import evaluate_predictions
from src.model_folder import METADATA, SCHEMA_VERSION, ModelFolder
from tests.conftest import ROOT, SEEDS, TINY_TRAIN, compose_train_config


@pytest.fixture(scope="module")
def trained(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny NER run, fold 0 held out, with windows unlike the Predictor's defaults (48 tokens, stride 8)."""
    from src.train import train

    out = tmp_path_factory.mktemp("contract") / "run"
    windows = ["task.max_length=48", "task.stride=8"]
    train(compose_train_config(["task=ner", f"model.name_or_path={tiny_model_dir}", *TINY_TRAIN, *windows], out))
    return out


def held_out_records(out: Path) -> list[dict]:
    ids = {r["id"] for r in map(json.loads, (out / "predictions.jsonl").read_text(encoding="utf-8").splitlines())}
    return [r for r in map(json.loads, SEEDS.read_text(encoding="utf-8").splitlines()) if r["id"] in ids]


def test_folder_says_how_it_must_be_run(trained: Path) -> None:
    meta = json.loads((trained / "model" / METADATA).read_text(encoding="utf-8"))
    assert meta["schema_version"] == SCHEMA_VERSION == 2 and meta["task"] == "ner" and meta["none_label"] is None
    assert meta["windows"] == {"max_length": 48, "stride": 8, "context": "none"}
    assert meta["labels"][0] == "O" and "B-PERSON" in meta["labels"]
    origin = meta["provenance"]
    assert origin["training_data"]["path"] == "data/annotations/seeds.jsonl"
    assert len(origin["training_data"]["sha256"]) == 64 and origin["training_data"]["fold"] == 0
    assert origin["config"]["task"]["name"] == "ner" and origin["held_out"]["metric"] == "micro_f1"
    assert origin["held_out"]["value"] == json.loads((trained / "metrics.json").read_text())["headline"]["value"]
    assert ModelFolder.from_dict(meta).to_dict() == meta  # the record reads back what it wrote


def test_three_entry_points_give_the_same_predictions_and_metrics(trained: Path, tmp_path: Path) -> None:
    """Training's held-out evaluation, `python -m src.evaluate` and `scripts/predict.py` run the folder alike: the
    same bytes on the same backend (torch), and the same entities with scores within float rounding on the default
    backend (auto: ONNX Runtime on CPU)."""
    gold = held_out_records(trained)
    gold_file = tmp_path / "held_out.jsonl"
    gold_file.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in gold), encoding="utf-8")
    assert evaluate_main([f"model={trained}", f"data.path={gold_file}", f"out_dir={tmp_path / 'eval'}"]) == 0

    inputs = tmp_path / "inputs.jsonl"
    inputs.write_text(
        "".join(json.dumps({k: r[k] for k in ("id", "text", "sentences")}) + "\n" for r in gold), encoding="utf-8"
    )
    for backend in ("torch", "auto"):
        out = tmp_path / f"cli-{backend}.jsonl"
        cli = [sys.executable, "scripts/predict.py", "--ner", str(trained), "--backend", backend, "-o", str(out)]
        proc = subprocess.run([*cli, str(inputs)], cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-2000:]

    def entities(path: Path) -> list:
        return [r["entities"] for r in map(json.loads, path.read_text(encoding="utf-8").splitlines())]

    assert entities(trained / "predictions.jsonl") == entities(tmp_path / "eval" / "predictions.jsonl")
    assert entities(trained / "predictions.jsonl") == entities(tmp_path / "cli-torch.jsonl")
    from_training = json.loads((trained / "metrics.json").read_text())
    assert json.loads((tmp_path / "eval" / "metrics.json").read_text()) == from_training
    cli_records = [json.loads(line) for line in (tmp_path / "cli-torch.jsonl").read_text(encoding="utf-8").splitlines()]
    assert json.loads(json.dumps(evaluate_predictions("ner", gold, cli_records))) == from_training

    def spans(docs: list) -> list:
        return [[{k: v for k, v in e.items() if k != "score"} for e in doc] for doc in docs]

    onnx, torch_docs = entities(tmp_path / "cli-auto.jsonl"), entities(tmp_path / "cli-torch.jsonl")
    assert spans(onnx) == spans(torch_docs)
    torch_scores = [e["score"] for doc in torch_docs for e in doc]
    assert [e["score"] for doc in onnx for e in doc] == pytest.approx(torch_scores, abs=1e-4)


def test_model_card_is_hub_metadata_with_relative_paths(trained: Path) -> None:
    card = (trained / "model" / "README.md").read_text(encoding="utf-8")
    front = yaml.safe_load(card.split("---")[1])
    assert front["license"] == "apache-2.0" and front["pipeline_tag"] == "token-classification"
    assert front["model-index"][0]["results"][0]["metrics"][0]["type"] == "f1"
    assert 'aggregation_strategy="first"' in card and "Intended use and limitations" in card
    assert "valid IOB2 sequence" in card
    usage = card.split("## Use")[1].split("## Training data")[0]
    assert 'model="run/model"' in usage and "/tmp" not in usage  # relative, never the training machine's path


def test_base_model_is_the_hub_id_of_the_packaged_model(default_model_dir: Path) -> None:
    from src.model_folder import PACKAGED_HUB_ID, base_model_of

    assert base_model_of(str(default_model_dir))["base_model"] == PACKAGED_HUB_ID
    assert base_model_of("bert-base-cased") == {"base_model": "bert-base-cased", "warm_start": None, "base_path": None}


def v1_file(folder: Path, fields: dict) -> dict:
    """A schema version 1 ``newsframe.json`` (flat; no ``none_label``) for the stance ``folder``, with ``fields``."""
    labels = json.loads((folder / "config.json").read_text())["id2label"]
    meta = {"schema_version": 1, "task": "stance", "labels": [labels[str(i)] for i in range(len(labels))]} | fields
    (folder / METADATA).write_text(json.dumps(meta))
    return meta


def test_a_version_1_folder_loads_and_saves_as_version_2(runs: dict[str, Path], tmp_path: Path) -> None:
    """Version 1 (flat, ``none_label`` derived) reads as the same record; saving writes version 2, which reads back
    the same; a bad version 1 field is named as version 1 names it."""
    folder = shutil.copytree(runs["stance"] / "model", tmp_path / "model")
    config = {"paths": {"output_dir": str(tmp_path)}, "data": {"stance_labels": ["leverage", "neutral"]}}
    v1 = v1_file(folder, {"max_length": 64, "stride": 16, "context": "neighbours", "config": config})
    calibration = {"temperature": 1.5, "fitted_on": "cv (model)", "ece_before": 0.1, "ece_after_cross_fitted": 0.05}
    v1 |= {"calibration": calibration, "training_data": {"name": "seeds"}, "held_out": None}
    (folder / METADATA).write_text(json.dumps(v1))
    record = ModelFolder.from_dir(folder)
    assert (record.schema_version, record.max_length, record.stride, record.context) == (1, 64, 16, "neighbours")
    assert record.none_label == "neutral" and record.calibration == calibration
    assert record.provenance.training_data == {"name": "seeds"} and record.provenance.config == config
    record.save(folder)
    again = ModelFolder.from_dir(folder)
    assert again.schema_version == 2 and replace(again, schema_version=1) == record
    assert json.loads((folder / METADATA).read_text())["windows"]["stride"] == 16 and (folder / "README.md").is_file()
    with pytest.raises(ValueError, match="field 'stride' must be"):
        ModelFolder.from_dict(v1 | {"stride": -1})
    with pytest.raises(ValueError, match="schema_version 3, expected 2"):
        ModelFolder.from_dict(v1 | {"schema_version": 3})


def test_a_folder_written_before_newsframe_json_still_loads(runs: dict[str, Path], caplog) -> None:
    """Older folders get the windows they were trained with (capped at the model's positions), with a warning."""
    with caplog.at_level("WARNING"):
        record = ModelFolder.from_dir(runs["ner"] / "model")
    assert record.task == "ner" and (record.max_length, record.stride) == (128, 32) and record.schema_version == 0
    assert "no newsframe.json" in caplog.text


def test_stance_context_is_saved_and_read_back(tiny_model_dir: Path, tmp_path: Path) -> None:
    """A stance model trained with neighbours as context says so, and the Predictor reads the same context."""
    from src.predict.engine import Predictor
    from src.train import train

    out = tmp_path / "run"
    overrides = ["task=stance", f"model.name_or_path={tiny_model_dir}", *TINY_TRAIN, "task.context=neighbours"]
    train(compose_train_config(overrides, out))
    assert ModelFolder.from_dir(out / "model").context == "neighbours"
    predictor = Predictor.from_pretrained(stance=str(out), device="cpu", backend="torch")
    assert predictor.stance.context == "neighbours"
    gold = held_out_records(out)
    mine = predictor.predict_records(gold)
    scored = {r["id"]: r for r in map(json.loads, (out / "predictions.jsonl").read_text(encoding="utf-8").splitlines())}
    assert [s["scores"] for s in mine[0]["sentences"]] == [s["scores"] for s in scored[gold[0]["id"]]["sentences"]]


def test_quantize_auto_follows_the_folders_cpu_choice(runs: dict[str, Path], tmp_path: Path) -> None:
    """``--quantize auto`` (the default) runs int8 where the folder records ``cpu_quantize: int8`` and ONNX Runtime
    runs on CPU; ``none`` always gives fp32, and the torch backend never quantises by itself."""
    from src.predict import Predictor

    folder = shutil.copytree(runs["stance"] / "model", tmp_path / "stance" / "model")
    meta = v1_file(folder, {"max_length": 64, "stride": 16, "cpu_quantize": "int8"})
    got = {
        q: Predictor.from_pretrained(stance=str(folder), device="cpu", backend=b, quantize=q).stance.quantize
        for q, b in (("auto", "onnx"), ("none", "onnx"))
    }
    assert got == {"auto": "int8", "none": "none"}
    assert Predictor.from_pretrained(stance=str(folder), device="cpu", backend="torch").stance.quantize == "none"
    with pytest.raises(ValueError, match="cpu_quantize"):
        ModelFolder.from_dict({**meta, "cpu_quantize": "int4"}, folder / "newsframe.json")


@pytest.mark.parametrize("native", [True, False])
def test_precision_auto_follows_the_folders_cpu_choice_where_the_cpu_has_bf16(
    native: bool, runs: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--precision auto`` runs bf16 (torch) where the folder records ``cpu_precision: bf16`` and the CPU has native
    bf16, fp32 through the default ONNX path elsewhere; an explicit precision, backend or int8 keeps its own path
    (training, CV and the behavioural suite ask for the torch backend: fp32 on every machine)."""
    import torch

    from src.predict import Predictor

    monkeypatch.setattr("src.predict.engine.native_bf16", lambda: native)
    folder = shutil.copytree(runs["stance"] / "model", tmp_path / "stance" / "model")
    meta = v1_file(folder, {"max_length": 64, "stride": 16, "cpu_precision": "bf16"})

    def path(**options: str) -> tuple[torch.dtype, str, str]:
        model = Predictor.from_pretrained(stance=str(folder), device="cpu", **options).stance
        return model.dtype, model.backend, model.quantize

    onnx = "onnx" if importlib.util.find_spec("onnxruntime") else "torch"
    assert path() == ((torch.bfloat16, "torch", "none") if native else (torch.float32, onnx, "none"))
    assert path(precision="fp32") == (torch.float32, onnx, "none")
    assert path(backend="torch") == (torch.float32, "torch", "none")  # how training and CV score a folder
    if onnx == "onnx":
        assert path(quantize="int8") == (torch.float32, "onnx", "int8")
    with pytest.raises(ValueError, match="cpu_precision"):
        ModelFolder.from_dict({**meta, "cpu_precision": "fp8"}, folder / "newsframe.json")


def test_what_a_task_fits_after_training_reaches_its_loaded_model(runs: dict[str, Path], tmp_path: Path) -> None:
    """``Task.finish``'s entries: ``prototypes`` in its field, any other key in ``task_state``, both saved and read
    back, and a plug-in's state handed to its loaded model (``TaskModel.task_state``)."""
    from src.predict import Predictor

    folder = shutil.copytree(runs["stance"] / "model", tmp_path / "model")
    v1_file(folder, {"max_length": 64, "stride": 16, "config": {"paths": {"output_dir": str(tmp_path)}}})
    record = ModelFolder.from_dir(folder).with_fitted({"prototypes": None, "lexicon": {"talks": 0.5}})
    assert record.prototypes is None and record.task_state == {"lexicon": {"talks": 0.5}}
    record.save(folder, card=False)
    assert ModelFolder.from_dir(folder).task_state == {"lexicon": {"talks": 0.5}}
    model = Predictor.from_pretrained(stance=str(folder), device="cpu", backend="torch").stance
    assert model.task_state == {"lexicon": {"talks": 0.5}} and model.max_length == 64
    with pytest.raises(ValueError, match="field 'task_state' must be an object or null"):
        ModelFolder.from_dict(record.to_dict() | {"task_state": [1]})
