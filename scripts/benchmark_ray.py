"""Local engine against the Ray engine (1 and 2 workers) on one machine: words/s, peak memory per worker, start-up.

    python scripts/benchmark_ray.py [--ner RUN --stance RUN] [--conll PATH/test.txt] [--words 200000]

Corpus: the CoNLL-2003 test documents (never copied into the repository; without them the seed articles alone, and
the output says so) plus the seed articles, repeated to about ``--words`` words, as one JSONL file. Models: the
given run folders, else the packaged all-MiniLM-L6-v2 with fresh heads (speed does not depend on training). Every
run is ``scripts/predict.py`` in its own process group, with the default options (``backend=auto``: ONNX Runtime
fp32 on CPU), timed end to end; memory is the peak resident set of each process of the run (sampled every 0.1 s
with psutil), and a Ray worker is an actor process (``ray::`` in its title). Start-up is the wall time of the same
command on one short document; the ONNX rows show the first run (export) and a later one (cached export). All
figures of one invocation are measured in it, so ratios against the local engine hold even on a busy machine.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SEEDS = ROOT / "data" / "annotations" / "seeds.jsonl"
CONLL_TEST = ROOT.parent / "shared" / "benchmarks" / "conll2003" / "test.txt"


def corpus_texts(conll: Path) -> tuple[list[str], str]:
    from src.data.records import load_records

    texts = [r["text"] for r in load_records(SEEDS)]
    if not conll.exists():
        return texts, f"seed articles only ({conll} not found)"
    from src.data.convert import read_conll

    return [*[r["text"] for r in read_conll(conll)], *texts], "CoNLL-2003 test documents + seed articles"


def build_models(folder: Path) -> tuple[str, str]:
    """The packaged MiniLM with fresh NER and stance heads, as run folders."""
    from transformers import BertForSequenceClassification, BertForTokenClassification

    from src.labels import iob2_tags, seed_scheme
    from src.model import packaged_model_path
    from tests.checkpoints import random_head, save_run

    base = Path(packaged_model_path())
    scheme = seed_scheme()
    ner = random_head(BertForTokenClassification, base, iob2_tags(scheme.entity_labels))
    stance = random_head(BertForSequenceClassification, base, list(scheme.stance_labels))
    return str(save_run(ner, base, folder / "ner")), str(save_run(stance, base, folder / "stance"))


def run_measured(cmd: list[str], env: dict) -> dict:
    """Wall seconds and the peak RSS (MB) of the whole process tree, of its biggest process and of each Ray actor."""
    import psutil

    started = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    root = psutil.Process(proc.pid)
    peaks: dict[int, tuple[str, float]] = {}
    tree_peak = 0.0
    while proc.poll() is None:
        total = 0.0
        try:
            processes = [root, *root.children(recursive=True)]
        except psutil.Error:
            processes = []
        for p in processes:
            try:
                rss, title = p.memory_info().rss / 1024**2, " ".join(p.cmdline()[:1])
            except psutil.Error:
                continue
            total += rss
            if rss > peaks.get(p.pid, ("", 0.0))[1]:
                peaks[p.pid] = (title, rss)
        tree_peak = max(tree_peak, total)
        time.sleep(0.1)
    seconds = time.perf_counter() - started
    stderr = proc.stderr.read()
    if proc.returncode not in (0, 1):
        raise SystemExit(f"{' '.join(cmd)} failed (exit {proc.returncode}):\n{stderr[-3000:]}")
    actors = [rss for title, rss in peaks.values() if title.startswith("ray::") and "Worker" in title]
    driver = peaks.get(proc.pid, ("", 0.0))[1]
    return {"seconds": seconds, "tree_mb": tree_peak, "driver_mb": driver, "worker_mb": max(actors, default=driver)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ner", help="NER run folder (default: packaged MiniLM with a fresh head)")
    parser.add_argument("--stance", help="stance run folder (default: packaged MiniLM with a fresh head)")
    parser.add_argument("--conll", type=Path, default=CONLL_TEST, help="CoNLL-2003 test file (optional)")
    parser.add_argument("--words", type=int, default=200_000, help="corpus size to reach, in words")
    parser.add_argument("--shard-size", type=int, default=50, help="documents per Ray shard")
    args = parser.parse_args(argv)

    from src.data.words import word_spans

    texts, source = corpus_texts(args.conll)
    per_copy = sum(len(word_spans(t)) for t in texts)
    copies = max(1, math.ceil(args.words / per_copy))
    with tempfile.TemporaryDirectory(prefix="bench-ray-") as tmp_name:
        tmp = Path(tmp_name)
        ner, stance = (args.ner, args.stance) if args.ner and args.stance else build_models(tmp / "models")
        corpus, one = tmp / "corpus.jsonl", tmp / "one.jsonl"
        with corpus.open("w", encoding="utf-8") as handle:
            for c in range(copies):
                for i, text in enumerate(texts):
                    handle.write(json.dumps({"id": f"{c}-{i}", "text": text}) + "\n")
        one.write_text(json.dumps({"id": "one", "text": texts[-1][:300]}) + "\n", encoding="utf-8")
        words, docs = per_copy * copies, len(texts) * copies
        env = {**os.environ, "NEWSFRAME_CACHE": str(tmp / "cache"), "TOKENIZERS_PARALLELISM": "false"}
        env["RAY_USAGE_STATS_ENABLED"] = "0"
        base = [sys.executable, str(ROOT / "scripts" / "predict.py"), "--ner", ner, "--stance", stance]
        engines = {
            "local": [],
            "ray, 1 worker x 2 threads": ["--engine", "ray", "--workers", "1", "--threads", "2"],
            "ray, 2 workers x 1 thread": ["--engine", "ray", "--workers", "2", "--threads", "1"],
        }
        print(
            f"# Local engine vs Ray Data\n\n{time.strftime('%Y-%m-%d %H:%M')} · {os.cpu_count()} cores · load "
            f"average {os.getloadavg()[0]:.2f} before · corpus: {source}, x{copies} = {docs} documents, "
            f"{words:,} words\n"
        )

        def command(extra: list[str], out: Path, inputs: Path) -> list[str]:
            """The local engine writes a file, the Ray engine a folder of shards."""
            return [*base, *extra, "-o", str(out if "--engine" in extra else out.with_suffix(".jsonl")), str(inputs)]

        startup = {}
        for label, backend in (("torch", "torch"), ("ONNX, first run (export)", "auto"), ("ONNX, cached", "auto")):
            result = run_measured(command(["--backend", backend], tmp / f"start-{len(startup)}", one), env)
            startup[f"local, {label}"] = result["seconds"]
        for name, extra in engines.items():
            startup[name] = run_measured(command(extra, tmp / f"start-{len(startup)}", one), env)["seconds"]
        print("| start-up: one short document | s |\n|---|---:|")
        for name, seconds in startup.items():
            print(f"| {name} | {seconds:.1f} |")
        print()
        rows = {}
        for name, extra in engines.items():
            shard = ["--shard-size", str(args.shard_size)] if extra else []
            rows[name] = run_measured(command([*extra, *shard], tmp / f"out-{len(rows)}", corpus), env)
            print(f"{name} done ({rows[name]['seconds']:.0f} s)", file=sys.stderr, flush=True)
        local = words / rows["local"]["seconds"]
        print(
            "| engine | s | words/s | ÷ local | words/s after start-up | peak RSS per worker MB | "
            "peak RSS driver MB | peak RSS all processes MB |\n|---|---:|---:|---:|---:|---:|---:|---:|"
        )
        for name, r in rows.items():
            start = startup["local, ONNX, cached"] if name == "local" else startup[name]
            print(
                f"| {name} | {r['seconds']:.1f} | {words / r['seconds']:,.0f} | {words / r['seconds'] / local:.2f}x | "
                f"{words / max(r['seconds'] - start, 1e-9):,.0f} | {r['worker_mb']:,.0f} | {r['driver_mb']:,.0f} | "
                f"{r['tree_mb']:,.0f} |"
            )
        print(f"\nload average after: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
