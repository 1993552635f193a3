"""Which stored temperature keeps a model's scores honest on other outlets? A check, not a fit: models trained on every
seed article score the supplement's sentences (held out: other outlets), and the expected calibration error of
their scores is compared raw and at each temperature given (chosen before looking: the fold models' own, and the
one extrapolated to the bigger model by ``make calibrate``); the best temperature on these sentences is printed
beside them for reference only (it is fitted on the figure it reports).

    python scripts/temperature_on_outlets.py --runs multirun/supplement/outlets-seeds-seed{42,7,1234} \
        --temperatures 0.555 0.801

Each run folder holds ``supplement.jsonl`` (the gold) and ``eval/predictions.jsonl`` (``scripts/cv_supplement.py
--parts outlets-seeds`` writes both).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from src.evaluate.nested_cv import scored
from src.evaluate.report import read_jsonl
from src.markdown import markdown_table
from src.model_folder import ModelFolder
from src.tasks.calibrate import fit_temperature
from src.tasks.stance import stance_arrays


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=Path, nargs="+", required=True)
    parser.add_argument("--temperatures", type=float, nargs="+", required=True)
    args = parser.parse_args(argv)
    rows = []
    for run in args.runs:
        labels = ModelFolder.from_dir(run / "model").labels
        gold, preds = read_jsonl(run / "supplement.jsonl"), read_jsonl(run / "eval" / "predictions.jsonl")
        log_probs, y, _ = stance_arrays({0: gold}, {0: preds}, labels)
        accuracy = float((log_probs.argmax(1) == y).mean())
        at = [scored(log_probs, y, t) for t in (1.0, *args.temperatures)]
        cells = [f"{s['ece']:.3f} ({s['mean_top_score']:.3f})" for s in at]
        best = fit_temperature(log_probs, y)
        rows.append([run.name, str(len(y)), f"{accuracy:.3f}", *cells, f"{best:.3f}"])
    head = ["model", "sentences", "accuracy", "raw", *(f"T = {t:g}" for t in args.temperatures), "best T (reference)"]
    print("ECE (mean top score) of each model's scores on the supplement's sentences\n")
    print(markdown_table(head, rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
