"""Does ``src.select`` pick better sentences to label than chance? A simulation on the seed corpus (stance).

Protocol (fixed before any run): fold k of leave-one-article-out holds out article k, which is never in the pool;
the pool is every stance-labelled sentence of the other articles, their labels hidden until a sentence is chosen.
Each seed draws a random start set of ``--start`` sentences; then ``--rounds`` times ``--step`` more are added,
either by ``src.select``'s stance ranking (``1 - margin`` of the model trained on the sentences chosen so far, greedy
MMR over TF-IDF with the CLI's default diversity) or at random. After every round the packaged MiniLM is fine-tuned
afresh on the chosen sentences (the repo's StanceTask and Trainer, class-weighted loss, ``--epochs`` epochs at
``--lr``) and scored on the held-out article (macro-F1 over the three stances, ``src.evaluate.metrics``). The start
set and the training seed are shared by both strategies of a seed, so round 0 is one model.

    nice -n 10 python scripts/simulate_selection.py --out runs/simulate_selection

writes ``results.json`` (every run), ``curve.md`` (mean ± std over folds x seeds per round) and ``curve.png``.
"""

from __future__ import annotations

import argparse
import logging
import random
import sys
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from src.config import register_resolvers, training_arguments  # noqa: E402
from src.data.convert import stance_examples  # noqa: E402
from src.data.folds import leave_one_article_out  # noqa: E402
from src.data.records import load_records  # noqa: E402
from src.files import write_atomic, write_json  # noqa: E402
from src.markdown import markdown_table  # noqa: E402
from src.select.rank import DIVERSITY, mmr, stance_uncertainty  # noqa: E402

STRATEGIES = ("select", "random")


def compose(overrides: Sequence[str], out_dir: Path):
    """The training config as ``python -m src.train task=stance`` composes it, with ``overrides``."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    register_resolvers()
    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
        return hydra_compose("train", overrides=["task=stance", *overrides, f"paths.output_dir={out_dir}"])


def fit(cfg, records: list[dict], seed: int):
    """A stance model fine-tuned on the records' labelled sentences, as ``src.train`` builds it (without the
    model folder and held-out report, which a simulation does not need): returns a ``Predictor``."""
    import torch
    from transformers import Trainer, set_seed

    from src.model import load_for_training, load_tokenizer, resolve_model_dir
    from src.predict.engine import Predictor, TaskModel
    from src.tasks import get_task

    task = get_task("stance")
    args = training_arguments(cfg)
    set_seed(seed)
    base = resolve_model_dir(cfg.model.name_or_path)
    tokenizer = load_tokenizer(base)
    model = load_for_training(task, base, task.labels(cfg.data))
    label2id = {k: int(v) for k, v in model.config.label2id.items()}
    train_set, _, _ = task.dataset(tokenizer, records, label2id, cfg.task.max_length, cfg.task.stride)
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=train_set,
        data_collator=task.collator(tokenizer),
        processing_class=tokenizer,
        compute_loss_func=task.loss(cfg.task, train_set, len(label2id)),
    )
    trainer.train()
    stance = TaskModel(trainer.model, tokenizer, torch.device("cpu"), torch.float32, 32, cfg.task.max_length, None)
    return Predictor(stance=stance)


def labelled_only(records: list[dict], chosen: set[tuple]) -> list[dict]:
    """The records with every stance hidden (``None``) except those of the chosen ``(doc, start, end)``."""
    return [
        {
            **r,
            "sentences": [
                {**s, "stance": s["stance"] if (r["id"], s["start"], s["end"]) in chosen else None}
                for s in r["sentences"]
            ],
        }
        for r in records
    ]


def held_out_f1(predictor, test: list[dict]) -> float:
    from src.evaluate.metrics import stance_metrics

    predictions = {p["id"]: p for p in predictor.predict_records(test)}
    return stance_metrics(test, predictions)["headline"]["value"]


def curves(cfg, records: list[dict], fold: int, seed: int, args: argparse.Namespace) -> dict[str, list[float]]:
    """Held-out macro-F1 after each round, per strategy, for one fold and seed."""
    train, test = leave_one_article_out(records, fold)
    pool = [(e["doc_id"], e["start"], e["end"]) for e in stance_examples(train)]
    texts = {(e["doc_id"], e["start"], e["end"]): e["text"] for e in stance_examples(train)}
    start = set(random.Random(seed).sample(pool, args.start))
    model = fit(cfg, labelled_only(train, start), seed)
    first = held_out_f1(model, test)
    result = {}
    for strategy in STRATEGIES:
        rng, chosen, scores, current = random.Random(1000 + seed), set(start), [first], model
        for _ in range(args.rounds):
            rest = [key for key in pool if key not in chosen]
            if strategy == "random":
                picked = rng.sample(rest, min(args.step, len(rest)))
            else:
                probs = current.classify_sentences([texts[key] for key in rest])
                uncertainty = [stance_uncertainty(p["scores"])[0] for p in probs]
                picks = mmr(uncertainty, [texts[key] for key in rest], args.step, args.diversity)
                picked = [rest[i] for i, _ in picks]
            chosen |= set(picked)
            current = fit(cfg, labelled_only(train, chosen), seed)
            scores.append(held_out_f1(current, test))
        result[strategy] = scores
        print(f"fold {fold} seed {seed} {strategy}: " + " ".join(f"{s:.3f}" for s in scores), flush=True)
    return result


def summary_table(runs: list[dict], sizes: list[int]) -> tuple[str, dict]:
    """Markdown table of mean ± sample std over runs, per round and strategy, and the numbers behind it."""
    import numpy as np

    stats, rows = {}, []
    for strategy in STRATEGIES:
        values = np.array([run["f1"][strategy] for run in runs])
        mean, std = values.mean(axis=0), values.std(axis=0, ddof=1) if len(values) > 1 else np.zeros(len(sizes))
        stats[strategy] = {"mean": mean.tolist(), "std": std.tolist()}
    for r, size in enumerate(sizes):
        cells = [f"{stats[s]['mean'][r]:.3f} ± {stats[s]['std'][r]:.3f}" for s in STRATEGIES]
        wins = sum(run["f1"]["select"][r] > run["f1"]["random"][r] for run in runs)
        rows.append([size, *cells, f"{wins}/{len(runs)}" if r else "(shared start)"])
    header = ["labelled sentences", "select (mean ± std)", "random (mean ± std)", "select > random"]
    return markdown_table(header, rows), stats


def plot(stats: dict, sizes: list[int], n_runs: int, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import io

    import matplotlib.pyplot as plt
    import numpy as np

    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for strategy, marker in zip(STRATEGIES, "os", strict=True):
        mean, std = np.array(stats[strategy]["mean"]), np.array(stats[strategy]["std"])
        ax.plot(sizes, mean, marker=marker, label=strategy)
        ax.fill_between(sizes, mean - std, mean + std, alpha=0.2)
    ax.set_xlabel("labelled sentences in the pool")
    ax.set_ylabel("held-out stance macro-F1")
    ax.set_title(f"select vs random (mean ± std, {n_runs} runs)")
    ax.legend()
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=120)
    plt.close(fig)
    write_atomic(path, buffer.getvalue())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "simulate_selection")
    parser.add_argument("--folds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--start", type=int, default=10, help="random start set size")
    parser.add_argument("--step", type=int, default=10, help="sentences added per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--epochs", type=float, default=3)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--diversity", type=float, default=DIVERSITY)
    parser.add_argument("--model", help="base model folder (default: the config's, the packaged MiniLM)")
    parser.add_argument("--data", type=Path, default=ROOT / "data" / "annotations" / "seeds.jsonl")
    args = parser.parse_args(argv)
    if (args.out / "results.json").exists():
        parser.error(f"{args.out}/results.json exists; choose another --out")

    logging.getLogger("transformers").setLevel(logging.ERROR)
    overrides = [
        "trainer.device=cpu",
        f"trainer.num_train_epochs={args.epochs}",
        f"trainer.learning_rate={args.lr}",
        f"trainer.per_device_train_batch_size={args.batch_size}",
        f"task.max_length={args.max_length}",
        "trainer.save_strategy=no",
        "trainer.disable_tqdm=true",
        "trainer.logging_steps=100000",
        *([f"model.name_or_path={args.model}"] if args.model else []),
    ]
    cfg = compose(overrides, args.out / "scratch")
    records = load_records(args.data)
    started, runs = time.perf_counter(), []
    for fold in args.folds:
        for seed in args.seeds:
            runs.append({"fold": fold, "seed": seed, "f1": curves(cfg, records, fold, seed, args)})
    sizes = [args.start + r * args.step for r in range(args.rounds + 1)]
    table, stats = summary_table(runs, sizes)
    minutes = (time.perf_counter() - started) / 60
    protocol = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    write_json(
        args.out / "results.json",
        {
            "protocol": protocol,
            "sizes": sizes,
            "runs": runs,
            "stats": stats,
            "wall_minutes": round(minutes, 1),
            "date": time.strftime("%Y-%m-%d"),
        },
    )
    write_atomic(args.out / "curve.md", table + "\n")
    plot(stats, sizes, len(runs), args.out / "curve.png")
    print(f"\n{table}\n\n{args.out}: results.json, curve.md, curve.png ({minutes:.1f} min)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
