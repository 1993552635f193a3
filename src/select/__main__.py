"""``python -m src.select --ner RUN --stance RUN INPUT... -k 20 -o tasks.json``: the k sentences to label next.

Every sentence of the input articles gets an uncertainty score and a diverse top k is chosen (``src.select.rank``);
the articles holding them become Label Studio tasks with the models' pre-annotations (as ``scripts/predict.py
--format labelstudio`` writes them), best first, each with ``data.rank`` and ``data.why`` naming its chosen
sentences and what the models are unsure about. Exit 0, 1 when some input could not be read, 2 for usage errors.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from src.files import write_json
from src.predict.io import add_model_arguments, iter_inputs, labelstudio_task
from src.select.rank import DIVERSITY, mmr, sentence_uncertainty


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m src.select",
        description="Rank unlabelled sentences by the models' uncertainty (with a diversity term) and write the "
        "articles holding the top k as Label Studio tasks, best first.",
    )
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help=".txt file, folder of .txt, or .jsonl of {id, text}")
    add_model_arguments(parser)
    parser.add_argument("-k", type=int, default=20, help="number of sentences to choose (default 20)")
    penalty = f"weight of the similarity penalty, 0-1 (default {DIVERSITY})"
    parser.add_argument("--diversity", type=float, default=DIVERSITY, help=penalty)
    parser.add_argument("--output", "-o", type=Path, required=True, help="Label Studio tasks (.json)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--batch-size", type=int, default=32)
    return parser


def score_sentences(predictions: Sequence[dict]) -> list[dict]:
    """One candidate per non-blank predicted sentence: ``{doc, start, end, text, uncertainty, why}``, the least
    sure of the loaded tasks' decisions (``iter_predict(uncertainty=True)``, taken out of the records)."""
    candidates = []
    for prediction in predictions:
        for sentence in prediction["sentences"]:
            parts = sentence.pop("uncertainty")
            if sentence["text"].strip():
                uncertainty, why = sentence_uncertainty(parts)
                where = {k: sentence[k] for k in ("start", "end", "text")}
                candidates.append(where | {"doc": prediction["id"], "uncertainty": uncertainty, "why": why})
    return candidates


def article_tasks(
    picks: Sequence[dict], predictions: dict[str, dict], texts: dict[str, str], layers: Sequence[str] = ()
) -> list[dict]:
    """One Label Studio task per article holding a pick, ordered by its best pick (with the choices of other tasks'
    sentence ``layers``); ``data.why`` lists its picks as ``#RANK START-END: reasons``."""
    tasks: dict[str, dict] = {}
    for rank, pick in enumerate(picks, start=1):
        doc = pick["doc"]
        if doc not in tasks:
            tasks[doc] = labelstudio_task({**predictions[doc], "text": texts[doc]}, layers)
            tasks[doc]["data"] |= {"rank": rank, "why": []}
        similar = f"; cosine {pick['similarity']:.2f} to an earlier pick" if pick["similarity"] >= 0.5 else ""
        tasks[doc]["data"]["why"].append(f"#{rank} {pick['start']}-{pick['end']}: {pick['why']}{similar}")
    for task in tasks.values():
        task["data"]["why"] = " | ".join(task["data"]["why"])
    return list(tasks.values())


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.ner is None and args.stance is None and not args.model:
        parser.error("give --ner, --stance, --model (a folder of any task) or several")
    if args.k < 1:
        parser.error(f"-k must be at least 1, got {args.k}")
    if not 0.0 <= args.diversity <= 1.0:
        parser.error(f"--diversity must be between 0 and 1, got {args.diversity}")
    if args.output.is_dir():
        parser.error(f"{args.output} is a folder; give the .json file to write")
    if args.output.exists() and not args.overwrite:
        parser.error(f"{args.output} exists; pass --overwrite to replace it")
    folder = next((p for p in (args.output.parent, *args.output.parent.parents) if p.exists()), Path("."))
    if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
        parser.error(f"{args.output}: cannot write into {folder}")
    if "-" in args.inputs:
        parser.error("INPUT '-' (standard input) is not read by src.select: save the articles to a file first")

    from src.model_folder import folders_by_task
    from src.predict.engine import Predictor  # after the argument checks: importing torch takes seconds

    try:
        folders = folders_by_task(args.ner, args.stance, args.model)
        predictor = Predictor.from_pretrained(**folders, device=args.device, batch_size=args.batch_size)
    except (OSError, ValueError) as err:
        parser.error(f"cannot load the checkpoints: {err}")
    documents, failed = [], 0
    for record in iter_inputs(args.inputs):
        if "error" in record:
            failed += 1
            where = record["error"]["file"] + (f":{record['error']['line']}" if record["error"]["line"] else "")
            print(f"error: {where}: {record['error']['reason']} (skipped)", file=sys.stderr)
        else:
            documents.append(record)
    twice = sorted(doc_id for doc_id, n in Counter(d["id"] for d in documents).items() if n > 1)
    if twice:  # tasks are matched to articles by id
        parser.error(f"the inputs hold the same id more than once: {', '.join(twice[:5])}")
    texts = {d["id"]: d["text"] for d in documents}
    predictions = {}
    for prediction in predictor.iter_predict(documents, uncertainty=True):
        if "error" in prediction:
            failed += 1
            print(f"error: {prediction['id']}: {prediction['error']['reason']} (skipped)", file=sys.stderr)
        else:
            predictions[prediction["id"]] = prediction
    candidates = score_sentences(list(predictions.values()))
    chosen = mmr([c["uncertainty"] for c in candidates], [c["text"] for c in candidates], args.k, args.diversity)
    picks = [candidates[i] | {"similarity": similarity} for i, similarity in chosen]
    tasks = article_tasks(picks, predictions, texts, tuple(predictor.scheme.sentence_layers))
    write_json(args.output, tasks)
    for rank, pick in enumerate(picks, start=1):
        print(f"#{rank} {pick['doc']} {pick['start']}-{pick['end']} u={pick['uncertainty']:.3f}: {pick['why']}")
    print(
        f"{args.output}: {len(tasks)} task(s) holding the {len(picks)} sentence(s) chosen of {len(candidates)}",
        file=sys.stderr,
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
