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
topic-without-framing pairs). Where a part has finished for two seeds or more, a row ``..., ensemble of the seeds``
scores each fold's seed models averaged (their sentence probabilities, then the most probable label), on the articles
and on the suite: what one model folder with those members would predict. The table goes to
``OUT/supplement_cv.md`` and, with ``--results``, into that file between its markers.

``--variant TAG KEY=VALUE ...`` trains every model of the chosen parts with those overrides of the recipe (a training
idea, fixed before its figure), into folders and a table of their own (``...-TAG``, markers with the tag), so the
recipe's own rows stay as they are:

    python scripts/cv_supplement.py --supplement ../shared/supplement/stance-outlets.jsonl --parts seeds+supplement \
        --variant mask-names task.mask_names=0.5 --results docs/results.md

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
from src.markdown import markdown_table, write_between_markers

ROOT = Path(__file__).resolve().parents[1]
RUN_ARGS = ["task=stance", "trainer.disable_tqdm=true", "trainer.save_strategy=no"]


def markers(tag: str | None) -> tuple[str, str]:
    name = f"supplement_cv {tag}" if tag else "supplement_cv"
    return f"<!-- {name}: begin -->", f"<!-- {name}: end -->"


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
    out: Path, supplement: list[str], seed: int, overrides: list[str], reuse_only: bool = False
) -> tuple[dict, list[dict]] | None:
    """The model trained on every seed article, evaluated on the supplement and the suite (reused when done)."""
    metrics, suite = out / "eval" / "metrics.json", out / "behaviour" / "behaviour.json"
    if not metrics.is_file() and reuse_only:
        return None
    if not metrics.is_file():
        fresh(out)
        train = [*RUN_ARGS, "data.fold=null", f"seed={seed}", *overrides, f"hydra.run.dir={out}"]
        run([sys.executable, "-m", "src.train", *train])
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


def average(members: list[list[dict]]) -> list[dict]:
    """The members' predictions of the same records, each sentence's probabilities averaged and its label the most
    probable one."""
    merged = []
    for docs in zip(*members, strict=True):
        if len({d["id"] for d in docs}) != 1:
            raise ValueError(f"ensemble: members predicted different records {[d['id'] for d in docs]}")
        sentences = []
        for sents in zip(*(d["sentences"] for d in docs), strict=True):
            if len({(s["start"], s["end"]) for s in sents}) != 1:
                raise ValueError(f"ensemble: {docs[0]['id']}: members split the sentences differently")
            scores = {k: statistics.fmean(s["scores"][k] for s in sents) for k in sents[0]["scores"]}
            sentences.append(sents[0] | {"scores": scores, "stance": max(scores, key=scores.get)})
        merged.append(docs[0] | {"sentences": sentences})
    return merged


def ensemble(folders: list[Path], out: Path) -> tuple[dict, list[dict]]:
    """Pooled metrics and per-fold suite results of the fold models of ``folders`` (one CV sweep per seed, same
    folds) averaged fold by fold; kept in ``out`` (a JSON file) and reused while the members are unchanged."""
    from src.evaluate.behaviour import load_suite, score_suite
    from src.evaluate.cv import MODEL, cross_validate_settings, fold_splits, group_runs, run_scheme
    from src.evaluate.report import read_jsonl
    from src.files import write_json
    from src.predict import Predictor

    key = [str(f) for f in folders]
    if out.is_file() and json.loads(out.read_text())["members"] == key:
        done = json.loads(out.read_text())
        return done["pooled"], done["suites"]
    groups = [group_runs(f)["stance"]["settings"]["model"]["folds"] for f in folders]
    first = group_runs(folders[0])["stance"]
    splits = fold_splits(first)
    preds = {k: average([read_jsonl(g[k] / "predictions.jsonl") for g in groups]) for k in sorted(splits)}
    gold = [r for k in sorted(splits) for r in splits[k][1]]
    result = cross_validate_settings("stance", gold, {MODEL: preds}, run_scheme(first["config"]), False, splits)
    cases = load_suite(SUITE)
    records = [
        {"id": c["id"], "text": c["text"], "sentences": [{"start": 0, "end": len(c["text"]), "stance": None}]}
        for c in cases
    ]
    suites = []
    for k in sorted(splits):
        members = [
            Predictor.from_pretrained(stance=g[k] / "model", device="cpu", backend="torch").predict_records(records)
            for g in groups
        ]
        suites.append(score_suite(cases, [r["sentences"][0]["stance"] for r in average(members)]))
    pooled = result["systems"][MODEL]["pooled"]
    write_json(out, {"members": key, "pooled": pooled, "suites": suites})
    return pooled, suites


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
    parser.add_argument("--variant", nargs="+", metavar=("TAG", "KEY=VALUE"), help="a training idea: tag, overrides")
    args = parser.parse_args(argv)
    reuse = args.reuse_only
    tag, overrides = (args.variant[0], args.variant[1:]) if args.variant else (None, [])
    if tag is not None and (
        not tag.replace("-", "").isalnum() or not overrides or not all("=" in o for o in overrides)
    ):
        print("error: --variant TAG KEY=VALUE ...: a tag of letters, digits and -, then overrides", file=sys.stderr)
        return 2
    suffix = f"-{tag}" if tag else ""
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
    loao = ["data.fold=0,1,2,3,4", *overrides]
    looo = [extra, "data.fold=null", f"data.extra_fold={folds}", *overrides]
    parts = {
        "seeds": ("seeds, LOAO", lambda s, o: sweep(o, [f"seed={s}", *loao], reuse)),
        "seeds+supplement": (
            "seeds, LOAO, supplement in training",
            lambda s, o: sweep(o, [f"seed={s}", extra, *loao], reuse),
        ),
        "outlets-seeds": (
            "outlets, trained on the seeds alone",
            lambda s, o: held_out_outlets(o, supplement, s, overrides, reuse),
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
            result = parts[part][1](seed, args.out / f"{part}-seed{seed}{suffix}")
            if result is not None:
                results.setdefault(part, {})[seed] = result
            print(f"{part} seed {seed}: {(time.perf_counter() - started) / 60:.1f} min", flush=True)
    rows, name = [], f" [{' '.join(overrides)}]" if tag else ""
    begin, end = markers(tag)
    for part in (p for p in args.parts if p in results):
        rows.append(row(parts[part][0] + name, results[part]))
        seeds = list(results[part])
        if len(seeds) > 1 and part != "outlets-seeds":
            folders = [args.out / f"{part}-seed{s}{suffix}" for s in seeds]
            pooled, suites = ensemble(folders, args.out / f"{part}-ensemble{suffix}.json")
            rows.append(
                row(f"{parts[part][0]}{name}, ensemble of the seeds", {"+".join(map(str, seeds)): (pooled, suites)})
            )
    table = markdown_table(
        ["protocol", "seeds", "stance macro-F1", *(f"{label} F1" for label in LABELS), "suite", "topic pairs"], rows
    )
    files = ", ".join(f"`{Path(p).name}`" for p in supplement)
    command = f"--seeds {' '.join(map(str, args.seeds))} --parts {' '.join(args.parts)}"
    command += f" --variant {' '.join(args.variant)}" if tag else ""
    text = (
        f"{begin}\nStance with and without the supplement ({files}, its label review applied): pooled F1, and "
        "the behavioural suite's pass rate (`suite`, overall; `topic pairs`, topic-without-framing) averaged over "
        f"the fold models; mean (min-max) over the seeds listed; `python scripts/cv_supplement.py {command}"
        f"{' --reuse-only' if args.reuse_only else ''}`, {date.today().isoformat()}, CPU.\n\n{table}\n{end}"
    )
    args.out.mkdir(parents=True, exist_ok=True)
    write_atomic(args.out / f"supplement_cv{suffix}.md", text + "\n")
    print(text)
    if args.results is not None:
        write_between_markers(args.results, begin, end, text)
        print(f"wrote {args.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
