"""An idea that was tried for NER and not kept: add the training folds' name dictionary where the model found nothing.

For each fold of a leave-one-article-out NER multirun, the dictionary baseline (``src.evaluate.baselines``: strings
seen as entities in the training folds, longest match first) tags the held-out article; its matches that overlap no
model entity are added to the model's predictions. Prints pooled micro/macro F1 and per-label F1 before and after.

    python scripts/cv_dictionary_rule.py multirun/ner-onto
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from src.data.folds import leave_one_article_out
from src.evaluate.baselines import dictionary_ner
from src.evaluate.cv import group_runs, load_gold
from src.evaluate.metrics import evaluate_predictions
from src.evaluate.report import read_jsonl


def main(multirun: str) -> None:
    group = group_runs(multirun)["ner"]
    gold = load_gold(group["data_path"], group["config"])
    setting = next(iter(group["settings"].values()))
    golds, model, merged = [], [], []
    for k, run in sorted(setting["folds"].items()):
        train, test = leave_one_article_out(gold, k)
        predicted = {p["id"]: p for p in read_jsonl(run / "predictions.jsonl")}
        dictionary = {p["id"]: p for p in dictionary_ner(train, test)}
        for record in test:
            pred = predicted[record["id"]]
            entities = list(pred["entities"])
            for e in dictionary[record["id"]]["entities"]:
                if not any(e["start"] < x["end"] and x["start"] < e["end"] for x in pred["entities"]):
                    entities.append(e)
            golds.append(record)
            model.append(pred)
            merged.append({**pred, "entities": sorted(entities, key=lambda e: e["start"])})
    for name, preds in (("model", model), ("model + dictionary where it found nothing", merged)):
        m = evaluate_predictions("ner", golds, preds)
        labels = ", ".join(f"{k} {v['f1']:.3f}" for k, v in m["per_label"].items())
        print(f"{name}: micro {m['headline']['value']:.3f}, macro {m['macro']['f1']:.3f} ({labels})")


if __name__ == "__main__":
    main(sys.argv[1])
