"""Does ``src.select`` pick better sentences to label than chance? A simulation on the seed corpus (stance).

Protocol (fixed before any run): fold k of leave-one-article-out holds out article k, which is never in the pool;
the pool is every stance-labelled sentence of the other articles, their labels hidden until a sentence is chosen.
Each seed draws a random start set of ``--start`` sentences; then ``--rounds`` times ``--step`` more are added,
either by ``src.select``'s stance ranking (``1 - margin`` of the model trained on the sentences chosen so far, greedy
MMR over TF-IDF with the CLI's default diversity) or at random. After every round the packaged MiniLM is fine-tuned
afresh on the chosen sentences (the repo's StanceTask and Trainer, class-weighted loss, ``--epochs`` epochs at
``--lr``) and scored on the held-out article (macro-F1 over the three stances, ``src.evaluate.metrics``). The start
set and the training seed are shared by both strategies of a seed, so round 0 is one model.

``--learner frozen`` swaps the fine-tuning for a cheap stand-in (the packaged MiniLM frozen, mean-pooled sentence
embeddings computed once, and a class-balanced logistic regression): the same protocol in minutes on a busy CPU.

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
from src.files import write_atomic, write_figure, write_json  # noqa: E402
from src.markdown import markdown_table  # noqa: E402
from src.select.rank import DIVERSITY, mmr  # noqa: E402
from src.tasks.stance import stance_uncertainty  # noqa: E402

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
    from src.evaluate.metrics import evaluate_predictions

    predictions = predictor.predict_records(test)
    scored = evaluate_predictions("stance", test, predictions, predictor.stance.labels, predictor.stance.none_label)
    return scored["headline"]["value"]


class FineTuned:
    """The real learner: the packaged MiniLM fine-tuned afresh on the chosen sentences (``fit``)."""

    def __init__(self, cfg) -> None:
        self.cfg = cfg

    def train(self, train: list[dict], chosen: set[tuple], seed: int):
        return fit(self.cfg, labelled_only(train, chosen), seed)

    def scores(self, model, texts: list[str]) -> list[dict]:
        return [p["scores"] for p in model.classify_sentences(texts)]

    def f1(self, model, test: list[dict]) -> float:
        return held_out_f1(model, test)


class FrozenEncoder:
    """A cheap stand-in: the packaged MiniLM frozen (mean-pooled, normalised sentence embeddings, computed once) and a
    class-balanced logistic regression (C=1, as the TF-IDF baseline) on the chosen sentences. Minutes instead of
    hours on a busy CPU; it answers whether the ranking finds informative sentences, not how much fine-tuning gains."""

    def __init__(self, cfg, records: list[dict]) -> None:
        import numpy as np
        import torch
        from transformers import AutoModel

        from src.model import load_tokenizer, resolve_model_dir

        base = resolve_model_dir(cfg.model.name_or_path)
        tokenizer, encoder = load_tokenizer(base), AutoModel.from_pretrained(base).eval()
        examples = stance_examples(records)
        self.keys = [(e["doc_id"], e["start"], e["end"]) for e in examples]
        vectors = []
        with torch.inference_mode():
            for b in range(0, len(examples), 32):
                batch = tokenizer(
                    [e["text"] for e in examples[b : b + 32]],
                    padding=True,
                    truncation=True,
                    max_length=256,
                    return_tensors="pt",
                )
                hidden = encoder(**batch).last_hidden_state
                mask = batch["attention_mask"].unsqueeze(-1).float()
                mean = (hidden * mask).sum(1) / mask.sum(1)
                vectors.append(torch.nn.functional.normalize(mean, dim=-1).numpy())
        self.vectors = dict(zip(self.keys, np.concatenate(vectors), strict=True))
        self.by_text = {e["text"]: self.vectors[k] for e, k in zip(examples, self.keys, strict=True)}
        self.labels = {k: e["label"] for e, k in zip(examples, self.keys, strict=True)}
        self.stances = list(cfg.data.stance_labels)

    def train(self, train: list[dict], chosen: set[tuple], seed: int):
        from sklearn.linear_model import LogisticRegression

        keys = sorted(chosen)
        y = [self.labels[k] for k in keys]
        if len(set(y)) < 2:
            return y[0]  # one class seen: predict it
        model = LogisticRegression(C=1.0, class_weight="balanced", max_iter=2000, random_state=seed)
        return model.fit([self.vectors[k] for k in keys], y)

    def scores(self, model, texts: list[str]) -> list[dict]:
        if isinstance(model, str):
            return [{s: float(s == model) for s in self.stances} for _ in texts]
        probs = model.predict_proba([self.by_text[t] for t in texts])
        return [
            {s: float(dict(zip(model.classes_, row, strict=True)).get(s, 0.0)) for s in self.stances} for row in probs
        ]

    def f1(self, model, test: list[dict]) -> float:
        from src.evaluate.metrics import evaluate_predictions
        from src.labels import seed_scheme
        from src.tasks.stance import stance_record

        none = seed_scheme().none_label  # the seed corpus's, which this simulation runs on
        texts = [e["text"] for e in stance_examples(test)]
        scores = self.scores(model, texts)
        stances = [max(row, key=row.get) for row in scores]
        predictions = [stance_record(test[0], stances, scores, none)]
        return evaluate_predictions("stance", test, predictions, self.stances, none)["headline"]["value"]


def curves(learner, records: list[dict], fold: int, seed: int, args: argparse.Namespace) -> dict[str, list[float]]:
    """Held-out macro-F1 after each round, per strategy, for one fold and seed."""
    train, test = leave_one_article_out(records, fold)
    pool = [(e["doc_id"], e["start"], e["end"]) for e in stance_examples(train)]
    texts = {(e["doc_id"], e["start"], e["end"]): e["text"] for e in stance_examples(train)}
    start = set(random.Random(seed).sample(pool, args.start))
    model = learner.train(train, start, seed)
    first = learner.f1(model, test)
    result = {}
    for strategy in STRATEGIES:
        rng, chosen, scores, current = random.Random(1000 + seed), set(start), [first], model
        for _ in range(args.rounds):
            rest = [key for key in pool if key not in chosen]
            if strategy == "random":
                picked = rng.sample(rest, min(args.step, len(rest)))
            else:
                probs = learner.scores(current, [texts[key] for key in rest])
                uncertainty = [stance_uncertainty(p)[0] for p in probs]
                picks = mmr(uncertainty, [texts[key] for key in rest], args.step, args.diversity)
                picked = [rest[i] for i, _ in picks]
            chosen |= set(picked)
            current = learner.train(train, chosen, seed)
            scores.append(learner.f1(current, test))
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
        gain = float(np.mean([run["f1"]["select"][r] - run["f1"]["random"][r] for run in runs]))
        rows.append([size, *cells, f"{gain:+.3f}", f"{wins}/{len(runs)}" if r else "(shared start)"])
    header = ["labelled sentences", "select (mean ± std)", "random (mean ± std)", "select − random", "select better"]
    return markdown_table(header, rows), stats


def plot(stats: dict, sizes: list[int], n_runs: int, learner: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")

    import matplotlib.pyplot as plt
    import numpy as np

    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for strategy, marker in zip(STRATEGIES, "os", strict=True):
        mean, std = np.array(stats[strategy]["mean"]), np.array(stats[strategy]["std"])
        ax.plot(sizes, mean, marker=marker, label=strategy)
        ax.fill_between(sizes, mean - std, mean + std, alpha=0.2)
    ax.set_xlabel("labelled sentences in the pool")
    ax.set_ylabel("held-out stance macro-F1")
    what = "fine-tuned MiniLM" if learner == "finetune" else "frozen MiniLM + logistic regression"
    ax.set_title(f"select vs random, {what}\n(mean ± std over {n_runs} runs)", fontsize=10)
    ax.legend()
    fig.tight_layout()
    write_figure(path, fig, dpi=120)


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
    parser.add_argument("--learner", choices=("finetune", "frozen"), default="finetune")
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
    learner = FineTuned(cfg) if args.learner == "finetune" else FrozenEncoder(cfg, records)
    for fold in args.folds:
        for seed in args.seeds:
            runs.append({"fold": fold, "seed": seed, "f1": curves(learner, records, fold, seed, args)})
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
    plot(stats, sizes, len(runs), args.learner, args.out / "curve.png")
    print(f"\n{table}\n\n{args.out}: results.json, curve.md, curve.png ({minutes:.1f} min)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
