"""Probe: how much of the stance framing a base model's frozen sentence embeddings carry, before any fine-tuning.

Each encoder embeds every sentence once (mean pooling over the last layer, L2-normalised, as sentence-transformers
models are trained); a logistic regression (C=1, balanced class weights: fixed before any figure) is fitted per fold
under the supplement's two protocols (``scripts/cv_supplement.py``): the seeds left out one article at a time with the
supplement in training, and each outlet of the supplement left out in turn. With ``--fine-tuned-*`` multiruns (their
``predictions.jsonl``, e.g. ``make cv``'s multirun/cv and multirun/cv-outlets), a row also averages each sentence's
probabilities of the fine-tuned fold model and the frozen head. Deterministic; about a minute on 2 CPU cores.

    python scripts/probe_frozen_encoders.py --supplement ../shared/supplement/stance-outlets.jsonl \\
        --encoder minilm=default mpnet=models/all-mpnet-base-v2 \\
        --fine-tuned-loao multirun/cv --fine-tuned-looo multirun/cv-outlets --results docs/results.md
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score
from transformers import AutoModel, AutoTokenizer

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from src.data.folds import leave_one_article_out, leave_one_outlet_out, outlet_groups
from src.data.records import Record, load_records
from src.markdown import markdown_table, write_between_markers
from src.model import packaged_model_path

ROOT = Path(__file__).resolve().parents[1]
LABELS = ("leverage", "economic_cooperation", "neutral")
BEGIN, END = "<!-- probe_frozen_encoders: begin -->", "<!-- probe_frozen_encoders: end -->"
Key = tuple[str, int]


def sentences(records: list[Record]) -> list[tuple[Key, str, str]]:
    """``((record id, start), text, gold stance)`` of every sentence."""
    return [
        ((r["id"], s["start"]), r["text"][s["start"] : s["end"]], s["stance"]) for r in records for s in r["sentences"]
    ]


@torch.no_grad()
def embed(path: str, texts: list[str], batch: int = 32) -> np.ndarray:
    """Mean-pooled, L2-normalised last-layer embeddings of ``texts``."""
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModel.from_pretrained(path).eval()
    out = []
    for i in range(0, len(texts), batch):
        encoded = tokenizer(texts[i : i + batch], padding=True, truncation=True, max_length=256, return_tensors="pt")
        mask = encoded["attention_mask"].unsqueeze(-1).float()
        pooled = (model(**encoded).last_hidden_state * mask).sum(1) / mask.sum(1)
        out.append(torch.nn.functional.normalize(pooled, dim=-1).numpy())
    return np.concatenate(out)


def fine_tuned(multirun: Path | None) -> dict[Key, list[float]]:
    """Each sentence's probabilities from the fold models of a multirun (their held-out ``predictions.jsonl``)."""
    scores: dict[Key, list[float]] = {}
    for path in sorted(multirun.glob("*_stance-*/predictions.jsonl")) if multirun else []:
        for line in path.read_text(encoding="utf-8").splitlines():
            record = json.loads(line)
            for s in record["sentences"]:
                scores[(record["id"], s["start"])] = [s["scores"][label] for label in LABELS]
    return scores


def folds(protocol: str, seeds: list[Record], supplement: list[Record]) -> Iterator[tuple[list[Record], list[Record]]]:
    """``(train, test)`` per fold: ``loao`` leaves one seed article out (supplement in training), else one outlet."""
    if protocol == "loao":
        for k in range(len(seeds)):
            train, test = leave_one_article_out(seeds, k)
            yield train + supplement, test
    else:
        for k in range(len(outlet_groups(supplement))):
            train, test, _ = leave_one_outlet_out(supplement, k)
            yield seeds + train, test


def scores_row(name: str, gold: list[str], probabilities: np.ndarray) -> list[object]:
    predicted = [LABELS[i] for i in probabilities.argmax(1)]
    per_label = f1_score(gold, predicted, labels=list(LABELS), average=None, zero_division=0)
    return [name, float(per_label.mean()), *map(float, per_label)]


def protocol_rows(
    protocol: str, seeds: list[Record], supplement: list[Record], vectors: dict, tuned: dict[Key, list[float]]
) -> list[list[object]]:
    index = {key: i for i, (key, _, _) in enumerate(sentences(seeds + supplement))}
    gold: list[str] = []
    by_system: dict[str, list[np.ndarray]] = {}
    for train, test in folds(protocol, seeds, supplement):
        train_sentences, test_sentences = sentences(train), sentences(test)
        train_rows = [index[key] for key, _, _ in train_sentences]
        test_rows = [index[key] for key, _, _ in test_sentences]
        gold += [label for _, _, label in test_sentences]
        labels = [label for _, _, label in train_sentences]
        missing = [key for key, _, _ in test_sentences if tuned and key not in tuned]
        if missing:
            raise SystemExit(f"error: the fine-tuned multirun has no prediction of sentence {missing[0]} ({protocol})")
        tuned_p = np.array([tuned[key] for key, _, _ in test_sentences]) if tuned else None
        if tuned_p is not None:
            by_system.setdefault("fine-tuned fold models", []).append(tuned_p)
        for name, x in vectors.items():
            head = LogisticRegression(C=1.0, class_weight="balanced", max_iter=2000).fit(x[train_rows], labels)
            frozen = head.predict_proba(x[test_rows])[:, [list(head.classes_).index(label) for label in LABELS]]
            by_system.setdefault(f"frozen {name} + logistic regression", []).append(frozen)
            if tuned_p is not None:
                by_system.setdefault(f"fine-tuned + frozen {name}, averaged", []).append((frozen + tuned_p) / 2)
    title = "seeds, LOAO, supplement in training" if protocol == "loao" else "outlets, leave one outlet out"
    return [[title, *scores_row(name, gold, np.concatenate(p))] for name, p in by_system.items()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--supplement", nargs="+", required=True, type=Path)
    parser.add_argument("--seeds-file", type=Path, default=ROOT / "data" / "annotations" / "seeds.jsonl")
    parser.add_argument("--encoder", nargs="+", default=["minilm=default"], help="NAME=PATH (default: packaged)")
    parser.add_argument("--fine-tuned-loao", type=Path, help="a multirun of the seed LOAO folds, supplement in")
    parser.add_argument("--fine-tuned-looo", type=Path, help="a multirun of the leave-one-outlet-out folds")
    parser.add_argument("--results", type=Path, help="a Markdown file whose marked section gets the table")
    args = parser.parse_args(argv)
    seeds = load_records(args.seeds_file)
    supplement = [r for path in args.supplement for r in load_records(path)]
    texts = [text for _, text, _ in sentences(seeds + supplement)]
    if not all("=" in item for item in args.encoder):
        parser.error("--encoder takes NAME=PATH items (PATH 'default': the packaged MiniLM)")
    encoders = dict(item.split("=", 1) for item in args.encoder)
    vectors = {name: embed(packaged_model_path() if p == "default" else p, texts) for name, p in encoders.items()}
    rows = []
    for protocol, multirun in (("loao", args.fine_tuned_loao), ("looo", args.fine_tuned_looo)):
        rows += protocol_rows(protocol, seeds, supplement, vectors, fine_tuned(multirun))
    table = markdown_table(["protocol", "system", "macro-F1", *(f"{label} F1" for label in LABELS)], rows)
    shown = " ".join(f"{k}={v}" for k, v in encoders.items())
    for flag, path in (("loao", args.fine_tuned_loao), ("looo", args.fine_tuned_looo)):
        shown += f" --fine-tuned-{flag} {path.parent.name}/{path.name}" if path else ""
    text = (
        f"{BEGIN}\nFrozen sentence embeddings + logistic regression, pooled F1 over the held-out parts; "
        f"`python scripts/probe_frozen_encoders.py --encoder {shown}`, {date.today().isoformat()}, CPU."
        f"\n\n{table}\n{END}"
    )
    print(text)
    if args.results is not None:
        write_between_markers(args.results, BEGIN, END, text)
        print(f"wrote {args.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
