"""Does an inference path cost accuracy? The same fold models, their held-out articles predicted again by each
engine (``python -m src.evaluate cv=DIR backend=... quantize=...``), pooled as ``make cv`` pools them.

Engines are fixed before looking: ONNX Runtime fp32 (the default CPU path until int8 is shown harmless) and ONNX
Runtime dynamic int8 in three recipes: every weight product quantised, the head kept in fp32, and the head and the
last feed-forward output kept in fp32 (``NEWSFRAME_INT8_FP32``, ``src.predict.ort``); and torch in bf16 (fast on
CPUs with native bf16: AVX-512 BF16 / AMX). For each CV folder (one per
seed) and engine: the task's headline F1, per-label F1, and the expected calibration error out of fold, raw and
after the cross-fitted temperature. The rule the default follows (issue: within 0.005 F1 of fp32 per task,
three-seed means, and the calibrated ECE not worse by more than 0.01) is applied to each other engine and printed;
the table goes to ``OUT/cv_engines.md`` and, with ``--results``, into that file between markers.

    python scripts/cv_engines.py --cv multirun/supplement/seeds+supplement-seed{42,7,1234} --out multirun/engines \
        --results docs/results.md
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from src.files import write_atomic
from src.markdown import markdown_table, write_between_markers

ROOT = Path(__file__).resolve().parents[1]
# name -> (backend, quantize, what int8 keeps in fp32, precision); the first is the baseline the others are held to
ENGINES = {
    "onnx fp32": ("onnx", "none", "", "fp32"),
    "onnx int8": ("onnx", "int8", "", "fp32"),
    "onnx int8, fp32 head": ("onnx", "int8", "head", "fp32"),
    "onnx int8, fp32 head + last FFN": ("onnx", "int8", "head,last-ffn", "fp32"),
    "torch bf16": ("torch", "none", "", "bf16"),
}
F1_TOLERANCE = 0.005
ECE_TOLERANCE = 0.01


def evaluate(cv: Path, out: Path, backend: str, quantize: str, fp32_parts: str, precision: str) -> dict:
    """cv_metrics.json of ``cv`` re-predicted by the engine (reused when it is already there)."""
    metrics = out / "cv_metrics.json"
    if not metrics.is_file():
        cmd = [sys.executable, "-m", "src.evaluate", f"cv={cv}", f"out_dir={out}", "baselines=false"]
        cmd += [f"backend={backend}", f"quantize={quantize}", f"precision={precision}"]
        print("+", f"NEWSFRAME_INT8_FP32={fp32_parts}", " ".join(cmd), flush=True)
        subprocess.run(cmd, cwd=ROOT, check=True, env={**os.environ, "NEWSFRAME_INT8_FP32": fp32_parts})
    return json.loads(metrics.read_text(encoding="utf-8"))


def figures(metrics: dict) -> dict[str, dict[str, float]]:
    """Per task: headline, per-label F1 and ECE before / after the cross-fitted temperature."""
    out = {}
    for task, result in metrics["tasks"].items():
        pooled = result["systems"]["model"]["pooled"]
        row = {"headline": pooled["headline"]["value"]}
        row |= {f"{label} F1": v["f1"] for label, v in pooled["per_label"].items()}
        calibration = (result.get("calibration") or {}).get("model")
        if calibration:
            row |= {"ECE raw": calibration["ece_before"], "ECE calibrated": calibration["ece_after"]}
        out[task] = row
    return out


def mean(values: list[float]) -> str:
    return (
        f"{statistics.mean(values):.4f}"
        if len(values) == 1
        else (f"{statistics.mean(values):.4f} ({min(values):.3f}-{max(values):.3f})")
    )


def shown(path: Path) -> str:
    """A CV folder as the table names it: from its ``multirun`` folder on, never this machine's absolute path."""
    parts = path.parts
    return str(Path(*parts[parts.index("multirun") :])) if "multirun" in parts else path.name


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cv", type=Path, nargs="+", required=True, help="finished CV folders (one per seed)")
    parser.add_argument("--out", type=Path, default=ROOT / "multirun" / "engines")
    parser.add_argument("--results", type=Path, help="a Markdown file to write the table into, between markers")
    parser.add_argument("--block", help="name of the block in --results (several comparisons in one file)")
    args = parser.parse_args(argv)
    got: dict[str, dict[str, list[dict]]] = {}  # task -> engine -> per CV folder
    for cv in args.cv:
        for engine, (backend, quantize, fp32_parts, precision) in ENGINES.items():
            folder = args.out / cv.name / engine.replace(",", "").replace("+ ", "").replace(" ", "-")
            metrics = evaluate(cv.resolve(), folder, backend, quantize, fp32_parts, precision)
            for task, row in figures(metrics).items():
                got.setdefault(task, {}).setdefault(engine, []).append(row)
    sections, verdicts = [], []
    for task, engines in sorted(got.items()):
        columns = list(next(iter(engines.values()))[0])
        rows = [[engine, *(mean([r[c] for r in runs]) for c in columns)] for engine, runs in engines.items()]
        sections.append(f"**{task}**\n\n" + markdown_table(["engine", *columns], rows))
        base = engines[next(iter(ENGINES))]
        for engine, runs in list(engines.items())[1:]:
            f1_loss = max(
                statistics.mean(r[c] for r in base) - statistics.mean(r[c] for r in runs)
                for c in columns
                if c == "headline" or c.endswith(" F1")
            )
            ece_rise = (
                statistics.mean(r["ECE calibrated"] for r in runs) - statistics.mean(r["ECE calibrated"] for r in base)
                if "ECE calibrated" in columns
                else 0.0
            )
            ok = f1_loss <= F1_TOLERANCE and ece_rise <= ECE_TOLERANCE
            verdicts.append(
                f"{task}, {engine}: largest mean F1 loss {f1_loss:+.4f} (headline or any label), calibrated ECE "
                f"change {ece_rise:+.4f}: {'within' if ok else 'outside'} the rule (F1 loss <= {F1_TOLERANCE}, "
                f"ECE rise <= {ECE_TOLERANCE})"
            )
    tag = f"cv_engines {args.block}" if args.block else "cv_engines"
    begin, end = f"<!-- {tag}: begin -->", f"<!-- {tag}: end -->"
    cvs = " ".join(shown(c) for c in args.cv)
    text = (
        f"{begin}\nThe same fold models, their held-out articles predicted by each engine; mean (min-max) over "
        f"{len(args.cv)} CV folder(s); `python scripts/cv_engines.py --cv {cvs}`, {date.today().isoformat()}, CPU.\n\n"
        + "\n\n".join(sections)
        + "\n\n"
        + "\n".join(f"- {v}" for v in verdicts)
        + f"\n{end}"
    )
    args.out.mkdir(parents=True, exist_ok=True)
    write_atomic(args.out / "cv_engines.md", text + "\n")
    print(text)
    if args.results is not None:
        write_between_markers(args.results, begin, end, text)
        print(f"wrote {args.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
