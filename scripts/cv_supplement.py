"""What a stance supplement of other outlets adds, under a protocol fixed before any figure: for each seed,

- ``seeds``: leave one seed article out (LOAO), trained on the other seed articles alone;
- ``seeds+supplement``: LOAO with every supplement article in training;
- ``outlets, seeds only``: the model trained on all seed articles, scored on every supplement article (what a user
  without the supplement gets on outlets it never saw);
- ``outlets, leave one out``: each outlet of the supplement held out in turn (``data.extra_fold``), trained on all
  seed articles and the other outlets, pooled over the held-out outlets.

Every model is trained by ``python -m src.train`` with the default stance recipe (configs/task/stance.yaml); nothing
is tuned here. Finished parts are kept and reused when the command is repeated; an unfinished one is moved aside.
Every model is also scored on the behavioural suite (data/behaviour/stance.jsonl: pass rate overall and on the
topic-without-framing pairs). The table goes to ``OUT/supplement_cv.md`` and, with ``--results``, into that file
between its markers.

    python scripts/cv_supplement.py --supplement ../shared/supplement/stance-outlets.jsonl --seeds 42 7 1234 \
        --out multirun/supplement --results docs/results.md
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from src.files import write_atomic
from src.markdown import markdown_table

ROOT = Path(__file__).resolve().parents[1]
RUN_ARGS = ["task=stance", "trainer.disable_tqdm=true", "trainer.save_strategy=no"]
BEGIN, END = "<!-- supplement_cv: begin -->", "<!-- supplement_cv: end -->"
SUITE = ROOT / "data" / "behaviour" / "stance.jsonl"
LABELS = ("leverage", "economic_cooperation", "neutral")


def run(cmd: list[str]) -> None:
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, cwd=ROOT, check=True)


def fresh(folder: Path) -> None:
    """Move an unfinished folder aside (never delete work), so the step can start again."""
    if folder.exists():
        aside = folder.with_name(f"{folder.name}.incomplete-{time.strftime('%Y%m%d-%H%M%S')}")
        folder.rename(aside)
        print(f"{folder}: unfinished, kept as {aside}")


def sweep(out: Path, overrides: list[str], reuse_only: bool = False) -> tuple[dict, list[dict]] | None:
    """A CV sweep into ``out`` pooled by ``src.evaluate cv=`` with the behavioural suite on every fold model; its
    pooled stance metrics and the suite results (reused when already pooled; None if unfinished and ``reuse_only``)."""
    metrics = out / "cv_metrics.json"
    if not metrics.is_file() and reuse_only:
        return None
    if not metrics.is_file():
        fresh(out)
        run([sys.executable, "-m", "src.train", "-m", *RUN_ARGS, *overrides, f"hydra.sweep.dir={out}"])
    if not metrics.is_file() or "behaviour" not in json.loads(metrics.read_text())["tasks"]["stance"]:
        pool = ["baselines=false", "calibration=false", f"behaviour={SUITE}"]
        run([sys.executable, "-m", "src.evaluate", f"cv={out}", *pool])
    stance = json.loads(metrics.read_text())["tasks"]["stance"]
    return stance["systems"]["model"]["pooled"], list(stance["behaviour"]["systems"]["model"].values())


def held_out_outlets(
    out: Path, supplement: list[str], seed: int, reuse_only: bool = False
) -> tuple[dict, list[dict]] | None:
    """The model trained on every seed article, evaluated on the supplement and the suite (reused when done)."""
    metrics, suite = out / "eval" / "metrics.json", out / "behaviour" / "behaviour.json"
    if not metrics.is_file() and reuse_only:
        return None
    if not metrics.is_file():
        fresh(out)
        run([sys.executable, "-m", "src.train", *RUN_ARGS, "data.fold=null", f"seed={seed}", f"hydra.run.dir={out}"])
        records = out / "supplement.jsonl"
        run([sys.executable, "-c", JOIN, str(records), *supplement])
        run([sys.executable, "-m", "src.evaluate", f"model={out}", f"data.path={records}", f"out_dir={out / 'eval'}"])
    if not suite.is_file():
        run([sys.executable, "-m", "src.evaluate", f"model={out}", f"behaviour={SUITE}", f"out_dir={suite.parent}"])
    return json.loads(metrics.read_text()), [json.loads(suite.read_text())]


# The supplement files as one gold file, each read as training reads it (its label review applied).
JOIN = (
    "import sys; from src.data.records import load_records, save_records; "
    "save_records([r for p in sys.argv[2:] for r in load_records(p)], sys.argv[1])"
)


def row(name: str, per_seed: dict[int, tuple[dict, list[dict]]]) -> list:
    """Mean (min-max over seeds) of macro-F1, each label's F1, and the suite's pass rates (overall and on the
    topic-without-framing pairs; a seed's figure is the mean over its fold models)."""

    def cell(values: list[float]) -> str:
        if len(values) == 1:
            return f"{values[0]:.3f}"
        return f"{statistics.fmean(values):.3f} ({min(values):.3f}-{max(values):.3f})"

    pooled = [m for m, _ in per_seed.values()]
    macro = [m["headline"]["value"] for m in pooled]
    labels = [[m["per_label"].get(label, {}).get("f1", 0.0) for m in pooled] for label in LABELS]
    overall = [statistics.fmean(r["overall"]["pass_rate"] for r in suites) for _, suites in per_seed.values()]
    pairs = [statistics.fmean(r["types"]["topic_pair"]["pass_rate"] for r in suites) for _, suites in per_seed.values()]
    return [name, ", ".join(map(str, per_seed)), cell(macro), *(cell(v) for v in labels), cell(overall), cell(pairs)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--supplement", nargs="+", required=True, type=Path, help="the supplement's .jsonl files")
    parser.add_argument("--seeds", nargs="+", type=int, default=[42, 7, 1234])
    parser.add_argument("--out", type=Path, default=ROOT / "multirun" / "supplement")
    parser.add_argument("--results", type=Path, help="a Markdown file whose marked section gets the table")
    parser.add_argument("--parts", nargs="+", default=["seeds", "seeds+supplement", "outlets-seeds", "outlets-loo"])
    parser.add_argument("--reuse-only", action="store_true", help="tabulate what is finished; train nothing")
    args = parser.parse_args(argv)
    reuse = args.reuse_only
    supplement = [str(p.resolve()) for p in args.supplement]
    missing = [p for p in supplement if not Path(p).is_file()]
    if missing:
        print(f"error: no such supplement file: {', '.join(missing)}", file=sys.stderr)
        return 2
    extra = f"data.extra=[{','.join(supplement)}]"
    folds = subprocess.run(
        [sys.executable, "-m", "src.data", "outlets", "--folds", *supplement],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    loao, looo = ["data.fold=0,1,2,3,4"], [extra, "data.fold=null", f"data.extra_fold={folds}"]
    parts = {
        "seeds": ("seeds, LOAO", lambda s, o: sweep(o, [f"seed={s}", *loao], reuse)),
        "seeds+supplement": (
            "seeds, LOAO, supplement in training",
            lambda s, o: sweep(o, [f"seed={s}", extra, *loao], reuse),
        ),
        "outlets-seeds": (
            "outlets, trained on the seeds alone",
            lambda s, o: held_out_outlets(o, supplement, s, reuse),
        ),
        "outlets-loo": ("outlets, leave one outlet out", lambda s, o: sweep(o, [f"seed={s}", *looo], reuse)),
    }
    unknown = [p for p in args.parts if p not in parts]
    if unknown:
        print(f"error: unknown --parts {unknown}; choose from {', '.join(parts)}", file=sys.stderr)
        return 2
    results: dict[str, dict[int, tuple[dict, list[dict]]]] = {}
    for seed in args.seeds:
        for part in args.parts:
            started = time.perf_counter()
            result = parts[part][1](seed, args.out / f"{part}-seed{seed}")
            if result is not None:
                results.setdefault(part, {})[seed] = result
            print(f"{part} seed {seed}: {(time.perf_counter() - started) / 60:.1f} min", flush=True)
    table = markdown_table(
        ["protocol", "seeds", "stance macro-F1", *(f"{label} F1" for label in LABELS), "suite", "topic pairs"],
        [row(parts[p][0], results[p]) for p in args.parts if p in results],
    )
    files = ", ".join(f"`{Path(p).name}`" for p in supplement)
    text = (
        f"{BEGIN}\nStance with and without the supplement ({files}, its label review applied): pooled F1, and "
        "the behavioural suite's pass rate (`suite`, overall; `topic pairs`, topic-without-framing) averaged over "
        f"the fold models; mean (min-max) over the seeds listed; `python scripts/cv_supplement.py --seeds "
        f"{' '.join(map(str, args.seeds))}{' --reuse-only' if args.reuse_only else ''}`, "
        f"{date.today().isoformat()}, CPU.\n\n{table}\n{END}"
    )
    args.out.mkdir(parents=True, exist_ok=True)
    write_atomic(args.out / "supplement_cv.md", text + "\n")
    print(text)
    if args.results is not None:
        old = args.results.read_text(encoding="utf-8") if args.results.is_file() else ""
        if BEGIN in old and END in old:
            new = old[: old.index(BEGIN)] + text + old[old.index(END) + len(END) :]
        else:
            new = old + ("\n" if old else "") + text + "\n"
        write_atomic(args.results, new)
        print(f"wrote {args.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
