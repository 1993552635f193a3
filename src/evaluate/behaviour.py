"""The behavioural suite for stance (data/behaviour/stance.jsonl, in the spirit of CheckList): does a model read the
framing, or only the topic? Each case is one sentence with the label the guideline gives it; what passes depends on
the case's type:

- ``mft`` (minimum functionality) and ``negation``: the case gets its label;
- ``topic_pair``: a background sentence and a framing sentence on the same names and topic words (one ``group``):
  the pair passes when both get their labels, so a model that labels the topic fails it;
- ``invariance``: the same sentence with people and places swapped (one ``group``): passes when every variant gets
  the same label (accuracy is reported beside it).

``python -m src.evaluate model=RUN behaviour=data/behaviour/stance.jsonl`` prints the pass rates per type; with
``cv=MULTIRUN`` every stance fold model is scored (``cv_report.md``, section "Behaviour").
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

from src.data.jsonl import objects_only, read_json_file
from src.markdown import markdown_table
from src.model import resolve_model_dir
from src.model_folder import ModelFolder
from src.predict import Predictor

TYPES = ("mft", "topic_pair", "invariance", "negation")
GROUPED = {"topic_pair", "invariance"}


class SuiteError(ValueError):
    """A suite file that cannot be read as cases; one located message per problem."""


def load_suite(path: str | Path, labels: Sequence[str] | None = None) -> list[dict]:
    """The cases of a suite file, checked: ``id``, ``type``, ``text``, ``expect`` (and ``group`` for grouped types).

    EXAMPLE: ``load_suite("data/behaviour/stance.jsonl")[0]["type"] -> "mft"``
    """
    items, problems = read_json_file(path)
    cases, more = objects_only(items, str(path))
    problems += more
    for (line, _), case in zip(items, cases, strict=False):
        where = f"{path}:{line}"
        for key in ("id", "type", "text", "expect"):
            if not isinstance(case.get(key), str) or not case[key].strip():
                problems.append(f"{where}: field {key!r} must be a non-empty string")
        if case.get("type") not in TYPES:
            problems.append(f"{where}: type {case.get('type')!r} is not one of {', '.join(TYPES)}")
        if case.get("type") in GROUPED and not isinstance(case.get("group"), str):
            problems.append(f"{where}: a {case.get('type')} case needs a 'group' (the cases compared together)")
        if labels is not None and case.get("expect") not in labels:
            problems.append(f"{where}: expect {case.get('expect')!r} is not a label of the model ({', '.join(labels)})")
    if not cases and not problems:
        problems.append(f"{path}: no cases")
    if problems:
        raise SuiteError(f"{len(problems)} problem(s) in the suite:\n" + "\n".join(problems))
    return cases


def predict_cases(predictor, cases: Sequence[dict]) -> list[dict]:
    """The Predictor's sentence (``stance``, ``scores``) for each case, read as one whole sentence (as gold sentences
    are)."""
    records = [
        {"id": c["id"], "text": c["text"], "sentences": [{"start": 0, "end": len(c["text"]), "stance": None}]}
        for c in cases
    ]
    return [p["sentences"][0] for p in predictor.predict_records(records)]


def score_suite(cases: Sequence[dict], predicted: Sequence[str | None]) -> dict:
    """Pass rates per type and overall (tests: cases, or groups for grouped types), and the failed tests."""
    by_type: dict[str, list[tuple[dict, str | None]]] = defaultdict(list)
    for case, label in zip(cases, predicted, strict=True):
        by_type[case["type"]].append((case, label))
    result: dict = {"types": {}, "failures": []}
    passed_all = total_all = 0
    for kind in TYPES:
        pairs = by_type.get(kind, [])
        if not pairs:
            continue
        groups: dict[str, list[tuple[dict, str | None]]] = defaultdict(list)
        for case, label in pairs:
            groups[case.get("group", case["id"]) if kind in GROUPED else case["id"]].append((case, label))
        passed = 0
        for name, members in groups.items():
            if kind == "invariance":
                ok = len({label for _, label in members}) == 1
            else:
                ok = all(label == case["expect"] for case, label in members)
            passed += ok
            if not ok:
                result["failures"].append(
                    {
                        "type": kind,
                        "test": name,
                        "cases": [{"id": c["id"], "expect": c["expect"], "got": g} for c, g in members],
                    }
                )
        correct = sum(label == case["expect"] for case, label in pairs)
        result["types"][kind] = {
            "tests": len(groups),
            "passed": passed,
            "pass_rate": passed / len(groups),
            "cases": len(pairs),
            "accuracy": correct / len(pairs),
        }
        passed_all += passed
        total_all += len(groups)
    result["overall"] = {"tests": total_all, "passed": passed_all, "pass_rate": passed_all / max(total_all, 1)}
    return result


def run_suite(model: str | Path, suite: str | Path, *, device: str = "auto", batch_size: int = 32) -> dict:
    """Score a stance model folder on a suite file."""
    folder = resolve_model_dir(model)
    record = ModelFolder.from_dir(folder)
    if record.task != "stance":
        raise ValueError(f"{model}: a {record.task} model; the behavioural suite is for stance models")
    cases = load_suite(suite, record.labels)
    predictor = Predictor.from_pretrained(stance=folder, device=device, batch_size=batch_size, backend="torch")
    got = predict_cases(predictor, cases)
    # the scores too: the calibration check under shift (src.tasks.calibrate.suite_check) reads them
    scores = [{"id": c["id"], "expect": c["expect"], "scores": g["scores"]} for c, g in zip(cases, got, strict=True)]
    return (
        {"suite": str(suite), "model": str(model)} | score_suite(cases, [g["stance"] for g in got]) | {"scores": scores}
    )


def behaviour_table(results: dict[str, dict]) -> str:
    """Markdown: one row per scored model (e.g. per fold), pass rate per type and overall."""
    kinds = [k for k in TYPES if any(k in r["types"] for r in results.values())]
    rows = [
        [
            name,
            *(r["types"][k]["pass_rate"] if k in r["types"] else "" for k in kinds),
            r["overall"]["pass_rate"],
        ]
        for name, r in results.items()
    ]
    if len(results) > 1:
        mean = [
            sum(r["types"].get(k, {}).get("pass_rate", 0.0) for r in results.values()) / len(results) for k in kinds
        ]
        overall = sum(r["overall"]["pass_rate"] for r in results.values()) / len(results)
        rows.append(["mean", *mean, overall])
    return markdown_table(["model", *kinds, "overall"], rows)
