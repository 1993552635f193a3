"""Nested leave-one-article-out CV: which setting would an honest selection pick, and what does the pick score?

A setting chosen on the same folds that report it is scored optimistically. Here, for each outer article, an inner
LOAO CV over the *other* articles alone chooses among the candidate settings (pooled headline metric, the first
candidate on a tie); the outer figure pools, over all outer articles, the held-out predictions of the setting chosen
without that article. Every model is trained by ``python -m src.train`` (the same Hydra configs as ``make cv``).

Candidates are fixed before looking: ``--candidate NAME='override override'``, in order of preference on a tie.
Without any, the stance question left open on 2026-12-02: the classifier alone against the default (classifier
averaged with the guideline prototypes, configs/task/stance.yaml).

    python -m src.evaluate.nested_cv --task stance --out multirun/nested-stance   # 5 x 4 x 2 inner + 5 x 2 outer
    python -m src.evaluate.nested_cv --task stance --out multirun/nested-stance --seed 7 --jobs 2
    python -m src.evaluate.nested_cv --task ner --out multirun/nested-ner-lr --jobs 2 \
        --candidate lr1e-4=trainer.learning_rate=1e-4 --candidate lr5e-5=trainer.learning_rate=5e-5 \
        --candidate lr2e-4=trainer.learning_rate=2e-4

``--calibration`` asks another question of the same layout, with one setting (the defaults unless one
``--candidate`` is given): does a stance temperature fitted on models trained on one article fewer make the held-out
scores of the bigger model more honest? That is what ``make calibrate`` does when it stores the temperature of the
four-article fold models in the model trained on all five. For outer article k the temperature is fitted on the
inner (three-article) models' out-of-fold predictions and applied to the outer (four-article) model's predictions of
article k; beside it, raw scores and the temperature cross-fitted among the outer models (same size, what ``make cv``
reports). Report: ``OUT/nested_calibration.json`` and ``.md``.

    python -m src.evaluate.nested_cv --task stance --calibration --out multirun/nested-calibration
    python -m src.evaluate.nested_cv --task stance --calibration --outer multirun/cv --out multirun/cv-size

``--outer CV`` takes the outer models from a finished LOAO CV (``make cv``'s stance runs) instead of training them;
the inner runs must then get the CV's overrides. ``make calibrate`` runs it and stores the temperature extrapolated
to the model trained on every article (``src.tasks.calibrate.extrapolated_temperature``).

Arguments after the options are Hydra overrides for every run. Finished runs are kept and reused when the command is
repeated; an unfinished one is moved aside. The report goes to ``OUT/nested_cv.json`` and ``OUT/nested_cv.md``.
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf
from scipy.special import log_softmax

from src.data.folds import leave_one_article_out
from src.data.records import DataError, load_records, save_records
from src.evaluate.cv import MODEL, cross_validate, cross_validate_settings, fold_splits, group_runs, run_scheme
from src.evaluate.report import read_jsonl
from src.files import write_atomic, write_json
from src.markdown import markdown_table
from src.tasks.calibrate import expected_calibration_error, extrapolated_temperature, fit_temperature
from src.tasks.stance import stance_arrays

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CANDIDATES = {"stance": {"classifier": ["task.prototypes=null"], "classifier+prototypes": []}}


def parse_candidates(items: list[str] | None, task: str, calibration: bool = False) -> dict[str, list[str]]:
    """``["name=ov ov", ...]`` -> ``{name: [ov, ov]}``, keeping their order; the task's defaults without any. The
    calibration check takes one setting: the defaults unless one is given."""
    if calibration:
        if len(items or []) > 1:
            raise SystemExit("error: --calibration checks one setting: give at most one --candidate")
        if not items:
            return {"defaults": []}
    elif not items:
        if task not in DEFAULT_CANDIDATES:
            raise SystemExit(f"error: no default candidates for task {task!r}: give --candidate NAME='OVERRIDES'")
        return DEFAULT_CANDIDATES[task]
    out: dict[str, list[str]] = {}
    for item in items:
        name, sep, overrides = item.partition("=")
        if not sep or not name or name in out:
            raise SystemExit(f"error: --candidate {item!r}: want NAME='override override' with a new, non-empty NAME")
        out[name] = shlex.split(overrides)
    if len(out) < 2 and not calibration:
        raise SystemExit("error: nested CV needs at least two candidates to choose between")
    return out


def fold_done(run: Path) -> bool:
    return (run / "predictions.jsonl").is_file() and (run / "model").is_dir()


def train_folds(
    task: str, gold: Path, folds: list[int], sweep: Path, overrides: list[str], seed: int, env: dict | None = None
) -> None:
    """One Hydra multirun over the folds not yet finished in ``sweep`` (``sweep/fold<k>``)."""
    todo = [k for k in folds if not fold_done(sweep / f"fold{k}")]
    for k in todo:
        run = sweep / f"fold{k}"
        if run.exists():  # an interrupted run: kept aside, outside the sweep that CV reads, never deleted
            aside = sweep.parent / f"{sweep.name}.unfinished" / f"{run.name}-{time.strftime('%Y%m%d-%H%M%S')}"
            aside.parent.mkdir(parents=True, exist_ok=True)
            run.rename(aside)
            print(f"{run}: unfinished, moved to {aside}", flush=True)
    if not todo:
        return
    cmd = [
        sys.executable, "-m", "src.train", "-m", f"task={task}", f"data.path={gold}",
        f"data.fold={','.join(map(str, todo))}", f"seed={seed}", f"hydra.sweep.dir={sweep}",
        "hydra.sweep.subdir=fold${data.fold}", "trainer.save_strategy=no", "trainer.disable_tqdm=true", *overrides,
    ]  # fmt: skip
    print(f"[{time.strftime('%H:%M:%S')}] {sweep}: folds {todo}", flush=True)
    sweep.mkdir(parents=True, exist_ok=True)
    with open(sweep.parent / f"{sweep.name}.log", "a") as log:
        if subprocess.run(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT).returncode:
            raise SystemExit(f"error: training failed, see {sweep.parent / (sweep.name + '.log')}")


def headline(sweep: Path, task: str) -> tuple[float, dict[int, list[dict]]]:
    """The pooled headline metric of a finished LOAO sweep and its held-out predictions by fold."""
    result = cross_validate(sweep, baselines=False, calibration=False)[0]["tasks"][task]
    runs = result["settings"][MODEL]["runs"]
    return result["systems"][MODEL]["pooled"]["headline"]["value"], {
        int(k): read_jsonl(Path(run) / "predictions.jsonl") for k, run in runs.items()
    }


def stance_oof(sweep: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(log-probabilities, gold label ids, fold)`` of every held-out stance sentence of a finished LOAO sweep."""
    group = group_runs(sweep)["stance"]
    splits = fold_splits(group)
    preds = {k: read_jsonl(run / "predictions.jsonl") for k, run in group["settings"][MODEL]["folds"].items()}
    labels = list(OmegaConf.select(group["config"], "data.stance_labels"))
    return stance_arrays({k: splits[k][1] for k in sorted(preds)}, preds, labels)


def scored(log_probs: np.ndarray, y: np.ndarray, temperature: float) -> dict[str, float]:
    """ECE, negative log-likelihood and mean top score of ``log_probs`` at ``temperature``."""
    scaled = log_softmax(log_probs / temperature, axis=-1)
    top = np.exp(scaled).max(1)
    correct = scaled.argmax(1) == y
    return {
        "ece": expected_calibration_error(top, correct),
        "nll": float(-scaled[np.arange(len(y)), y].mean()),
        "mean_top_score": float(top.mean()),
        "accuracy": float(correct.mean()),
    }


def calibration_transfer(out: Path, name: str, n: int, outer: Path | None = None) -> dict:
    """Held-out scores of the outer (n-1 article) models (``outer``, by default trained into ``out``), raw, at the
    temperature of the inner (n-2 article) models fitted without the held-out article, and at the temperature
    cross-fitted among the outer models; the temperatures of all inner and of all outer predictions pooled."""
    outer = outer or out / "outer" / name
    outer_lp, outer_y, outer_fold = stance_oof(outer)
    inner_all: list[tuple[np.ndarray, np.ndarray]] = []
    rows: dict[str, list] = {"raw": [], "smaller models": [], "same size, cross-fitted": []}
    temperatures: dict[str, dict[str, float]] = {"smaller models": {}, "same size, cross-fitted": {}}
    for k in range(n):
        inner_lp, inner_y, _ = stance_oof(out / f"outer{k}" / name)
        inner_all.append((inner_lp, inner_y))
        here, others = outer_fold == k, outer_fold != k
        fitted = {
            "smaller models": fit_temperature(inner_lp, inner_y),
            "same size, cross-fitted": fit_temperature(outer_lp[others], outer_y[others]),
        }
        rows["raw"].append(log_softmax(outer_lp[here], axis=-1))
        for key, t in fitted.items():
            temperatures[key][str(k)] = t
            rows[key].append(log_softmax(outer_lp[here] / t, axis=-1))
    y = np.concatenate([outer_y[outer_fold == k] for k in range(n)])
    t_outer = fit_temperature(outer_lp, outer_y)
    t_inner = fit_temperature(np.concatenate([lp for lp, _ in inner_all]), np.concatenate([y for _, y in inner_all]))
    return {
        "outer": str(outer),
        "n_sentences": len(y),
        "temperature_all_outer_folds": t_outer,
        "temperature_smaller_models": t_inner,
        "temperature_extrapolated": extrapolated_temperature(t_outer, t_inner),
        "per_fold_temperature": temperatures,
        "systems": {key: scored(np.concatenate(parts), y, 1.0) for key, parts in rows.items()},
    }


def calibration_report(out: Path, name: str, n: int, seed: int, overrides: list[str], outer: Path | None) -> str:
    """Write ``nested_calibration.json`` / ``.md`` and return the markdown."""
    result = calibration_transfer(out, name, n, outer)
    table = []
    for key, s in result["systems"].items():
        temps = list(result["per_fold_temperature"].get(key, {}).values())
        t = f"{np.mean(temps):.3f} ({min(temps):.3f}-{max(temps):.3f})" if temps else "1"
        row = [s["ece"], s["nll"], s["mean_top_score"], s["accuracy"]]
        table.append([key, t, *(f"{v:.3f}" for v in row)])
    report = (
        f"# Does a stance temperature carry to a model trained on one article more? seed {seed}\n\n"
        f"Setting `{name}`: {' '.join(overrides) or 'the defaults'}. Held-out sentences of the outer models "
        f"({n - 1} training articles each), pooled over the {n} outer articles ({result['n_sentences']} sentences). "
        f"`smaller models`: the temperature fitted on the out-of-fold predictions of {n - 2}-article models that never "
        "saw the held-out article (the situation of `make calibrate`, which stores the fold models' temperature in "
        "the model trained on every article); `same size`: fitted on the other outer models' predictions.\n\n"
        + markdown_table(["scores", "temperature: mean (range)", "ECE", "NLL", "mean top score", "accuracy"], table)
        + f"\n\nTemperature of all {n} outer models together: {result['temperature_all_outer_folds']:.3f}; of all "
        f"inner models together: {result['temperature_smaller_models']:.3f}; extrapolated to a model trained on all "
        f"{n} articles: {result['temperature_extrapolated']:.3f}.\n"
    )
    write_atomic(out / "nested_calibration.md", report)
    write_json(out / "nested_calibration.json", {"seed": seed, "setting": name, "overrides": overrides, **result})
    return report


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--task", default="stance", choices=["stance", "ner"])
    parser.add_argument("--out", type=Path, required=True, help="folder for every run and the report")
    parser.add_argument("--gold", type=Path, default=ROOT / "data/annotations/seeds.jsonl")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--candidate", action="append", help="NAME='override override' (repeat; order breaks ties)")
    parser.add_argument(
        "--calibration", action="store_true", help="stance: check the temperature across training sizes (see above)"
    )
    parser.add_argument("--outer", type=Path, help="--calibration: the outer models from this finished LOAO CV")
    parser.add_argument("--jobs", type=int, default=1, help="sweeps trained at once (each gets cores / jobs threads)")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides for every run, e.g. model.name_or_path=DIR")
    return parser


def load_gold_checked(args: argparse.Namespace) -> list[dict]:
    """The options checked and the gold records validated, before any training: a mistake fails here, clearly."""
    if args.calibration and args.task != "stance":
        raise SystemExit("error: --calibration checks the stance temperature: use it with --task stance")
    if args.outer is not None and not (args.calibration and args.outer.is_dir()):
        raise SystemExit(f"error: --outer {args.outer}: want an existing CV folder, with --calibration")
    if args.jobs < 1:
        raise SystemExit(f"error: --jobs {args.jobs}: want 1 or more")
    try:
        gold = load_records(args.gold)
    except (DataError, OSError) as err:
        raise SystemExit(f"error: {err}") from None
    if len(gold) < 3:
        raise SystemExit(f"error: {args.gold}: nested LOAO needs at least 3 articles, found {len(gold)}")
    return gold


def plan_sweeps(
    args: argparse.Namespace, gold: list[dict], ordered: list[str], candidates: dict, out: Path
) -> list[tuple[Path, list[int], Path, list[str]]]:
    """``(gold file, folds, sweep folder, overrides)`` of every inner sweep (each outer article held out, each
    candidate) and, without ``--outer``, of each candidate's outer sweep."""
    n = len(gold)
    sweeps: list[tuple[Path, list[int], Path, list[str]]] = []
    for k, held in enumerate(ordered):
        inner_gold = out / f"outer{k}" / "gold.jsonl"
        if not inner_gold.is_file():
            save_records([r for r in gold if r["id"] != held], inner_gold)
        for name, overrides in candidates.items():
            sweeps.append((inner_gold, list(range(n - 1)), out / f"outer{k}" / name, [*args.overrides, *overrides]))
    for name, overrides in candidates.items():
        if args.outer is None:
            sweeps.append((args.gold.resolve(), list(range(n)), out / "outer" / name, [*args.overrides, *overrides]))
    return sweeps


def run_sweeps(sweeps: list[tuple], task: str, seed: int, jobs: int) -> None:
    """Every sweep, ``jobs`` at once (all are independent of each other)."""
    env = dict(os.environ)
    if jobs > 1:  # one BLAS/OpenMP pool per job, not each job claiming every core
        env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // jobs)))
    with ThreadPoolExecutor(jobs) as pool:
        futures = [pool.submit(train_folds, task, *sweep, seed, env) for sweep in sweeps]
        try:
            for future in futures:
                future.result()
        except BaseException:
            pool.shutdown(cancel_futures=True)  # the sweeps not yet started; running ones finish and are kept
            raise


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    candidates = parse_candidates(args.candidate, args.task, args.calibration)
    gold = load_gold_checked(args)
    out, n = args.out.resolve(), len(gold)
    ordered = [r["id"] for r in leave_one_article_out(gold, None)[0]]
    run_sweeps(plan_sweeps(args, gold, ordered, candidates, out), args.task, args.seed, args.jobs)
    if args.calibration:
        [(name, overrides)] = candidates.items()
        print(calibration_report(out, name, n, args.seed, [*args.overrides, *overrides], args.outer))
        return 0

    inner_scores: dict[int, dict[str, float]] = {}
    chosen: dict[int, str] = {}
    for k, held in enumerate(ordered):
        inner_scores[k] = {name: headline(out / f"outer{k}" / name, args.task)[0] for name in candidates}
        best = max(inner_scores[k].values())
        chosen[k] = next(name for name, score in inner_scores[k].items() if score == best)
        print(f"outer {k} ({held}): inner {inner_scores[k]} -> {chosen[k]}", flush=True)
    outer = {name: headline(out / "outer" / name, args.task)[1] for name in candidates}
    nested_preds = {k: outer[chosen[k]][k] for k in range(n)}
    scheme = run_scheme(group_runs(out / "outer" / next(iter(candidates)))[args.task]["config"])
    result = cross_validate_settings(args.task, gold, {"nested": nested_preds, **outer}, scheme, baselines=False)
    systems = result["systems"]
    report = nested_report(args, candidates, ordered, inner_scores, chosen, systems)
    write_atomic(out / "nested_cv.md", report)
    summary = {
        name: {
            "pooled": s["pooled"]["headline"]["value"],
            "pooled_macro_f1": s["pooled"]["macro"]["f1"],
            "mean": s["mean"],
            "std": s["std"],
        }
        for name, s in systems.items()
    }
    choices = {"inner": {str(k): v for k, v in inner_scores.items()}, "chosen": {str(k): v for k, v in chosen.items()}}
    write_json(
        out / "nested_cv.json",
        {"task": args.task, "seed": args.seed, "candidates": candidates, **choices, "outer": summary},
    )
    print(report)
    return 0


def nested_report(
    args: argparse.Namespace,
    candidates: dict,
    ordered: list[str],
    inner_scores: dict[int, dict[str, float]],
    chosen: dict[int, str],
    systems: dict,
) -> str:
    """``nested_cv.md``: the inner choices per outer article, then the outer figures of the nested choice and of
    each candidate always."""
    first = systems["nested"]["pooled"]
    labels = list(first["per_label"])

    def label_cells(pooled: dict) -> list[str]:
        return [f"{pooled['per_label'][label]['f1']:.3f}" if label in pooled["per_label"] else "-" for label in labels]

    head = ["system", f"pooled {first['headline']['name']}", "pooled macro_f1", "fold mean ± sd", *labels]
    rows = [
        [
            "nested choice" if name == "nested" else f"{name} (always)",
            f"{s['pooled']['headline']['value']:.3f}",
            f"{s['pooled']['macro']['f1']:.3f}",
            f"{s['mean']:.3f} ± {s['std']:.3f}",
            *label_cells(s["pooled"]),
        ]
        for name, s in systems.items()
    ]
    n = len(ordered)
    choices = [[str(k), ordered[k], *(f"{inner_scores[k][c]:.3f}" for c in candidates), chosen[k]] for k in range(n)]
    listed = ", ".join(f"`{c}`: {' '.join(ov) or 'the defaults'}" for c, ov in candidates.items())
    return (
        f"# Nested LOAO CV, {args.task}, seed {args.seed}\n\n"
        f"Candidates (ties go to the first): {listed}\n\n"
        "## Inner choice (pooled over the other articles' LOAO)\n\n"
        + markdown_table(["outer fold", "held-out article", *candidates, "chosen"], choices)
        + "\n\n## Outer figures (each article scored by a model it never trained or chose)\n\n"
        + markdown_table(head, rows)
        + "\n\nOnly `nested choice` is an honest estimate of the selection; the `(always)` rows are each candidate "
        "on the same outer folds, for comparison.\n"
    )


if __name__ == "__main__":
    sys.exit(main())
