"""Files a person or a program reads: metrics.json, report.md (tables + error analysis), report.html (the predictions
with errors marked against gold, ``src.predict.html``), the stance confusion PNG.

Every file is written atomically (a temporary file in the same folder, then ``os.replace``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from sklearn.metrics import ConfusionMatrixDisplay

from src.data.jsonl import objects_only, read_json_file
from src.files import write_atomic, write_figure, write_json
from src.labels import LabelScheme
from src.markdown import markdown_table
from src.predict.html import render_page
from src.tasks import TASKS

from .metrics import ner_errors, stance_errors

MAX_ERRORS = 50
CONFUSION_PNG = "confusion_stance.png"


def read_jsonl(path: str | Path) -> list[dict]:
    """Records of a JSONL file, read by the data package's reader so evaluation splits lines as validation and
    training do; raises ``ValueError`` naming the file and line of every malformed line or non-object value."""
    items, problems = read_json_file(path, whole=False)
    records, not_objects = objects_only(items, str(path))
    if problems or not_objects:
        raise ValueError("\n".join(problems + not_objects))
    return records


# ---------------------------------------------------------------- Markdown


def per_label_table(metrics: dict) -> str:
    """Precision/recall/F1/support per label, then the micro and macro averages."""
    rows = [[label, m["precision"], m["recall"], m["f1"], m["support"]] for label, m in metrics["per_label"].items()]
    rows += [
        [f"*{avg} avg*", *(metrics[avg][k] for k in ("precision", "recall", "f1", "support"))]
        for avg in ("micro", "macro")
    ]
    return markdown_table(["label", "precision", "recall", "F1", "support"], rows)


def confusion_table(metrics: dict) -> str:
    cm = metrics["confusion_matrix"]
    rows = [[f"**{gold}**", *row] for gold, row in zip(cm["labels"], cm["matrix"], strict=True)]
    return markdown_table(["gold \\ predicted", *cm["labels"]], rows)


def summary_lines(metrics: dict) -> list[str]:
    lines = [
        f"- documents: {metrics['n_documents']}, sentences scored: {metrics['n_sentences']}",
        f"- headline ({metrics['headline']['name']}): **{metrics['headline']['value']:.3f}**",
    ]
    if metrics["task"] == "ner":
        sm = metrics["span_match"]
        lines.append(f"- gold entities: {metrics['n_gold']}, predicted: {metrics['n_predicted']}")
        lines.append(
            f"- exact character-span matching: tp {sm['micro']['tp']}, fp {sm['micro']['fp']}, fn {sm['micro']['fn']}"
            f", F1 {sm['micro']['f1']:.3f} (agrees with seqeval: {sm['agrees_with_seqeval']})"
        )
    else:
        lines.append(f"- accuracy: {metrics['accuracy']:.3f}")
        lines.append(f"- document stance accuracy: {metrics['doc_stance_accuracy']:.3f}")
    return lines


def error_section(task: str, gold: Sequence[dict], pred: Sequence[dict], max_errors: int = MAX_ERRORS) -> str:
    """Markdown error analysis: FP/FN spans (NER) or misclassified sentences (stance), at most ``max_errors`` each."""
    parts = ["## Error analysis"]
    if task == "ner":
        gold = TASKS["ner"].annotated(gold)  # a record whose entities are not annotated has no NER errors
        kept = {r["id"] for r in gold}
        errors = ner_errors(gold, [p for p in pred if p["id"] in kept])
        for key, title in (("false_positives", "False positives"), ("false_negatives", "False negatives")):
            items = errors[key]
            parts.append(f"### {title} ({len(items)}{f', first {max_errors}' if len(items) > max_errors else ''})")
            rows = [
                [e["doc_id"], f"{e['start']}-{e['end']}", e["text"], e["label"], "; ".join(e["overlaps"]), e["context"]]
                for e in items[:max_errors]
            ]
            other = "gold overlap" if key == "false_positives" else "predicted overlap"
            parts.append(markdown_table(["doc", "span", "text", "label", other, "context"], rows) if rows else "none")
    else:
        items = stance_errors(gold, pred)
        parts.append(
            f"### Misclassified sentences ({len(items)}{f', first {max_errors}' if len(items) > max_errors else ''})"
        )
        rows = [
            [
                e["doc_id"],
                f"{e['start']}-{e['end']}",
                e["gold"],
                e["pred"],
                "" if e["score"] is None else f"{e['score']:.2f}",
                e["text"],
            ]
            for e in items[:max_errors]
        ]
        parts.append(
            markdown_table(["doc", "span", "gold", "predicted", "score", "sentence"], rows) if rows else "none"
        )
    return "\n\n".join(parts)


def console_summary(metrics: dict, report_path: Path) -> str:
    """What a run prints: the headline figures and the per-label table; the error analysis stays in the report."""
    head = "\n".join([f"\nHeld-out evaluation ({metrics['task']}):", *summary_lines(metrics)])
    return f"{head}\n\n{per_label_table(metrics)}\n\nFull report: {report_path}"


def render_report(metrics: dict, gold: Sequence[dict], pred: Sequence[dict], title: str | None = None) -> str:
    task = metrics["task"]
    parts = [
        f"# {title or f'Evaluation: {task}'}",
        "\n".join(summary_lines(metrics)),
        "## Per label",
        per_label_table(metrics),
    ]
    if task == "ner":
        parts.append("Scored with seqeval, strict IOB2 mode, on word-level tags per gold sentence.")
    else:
        parts += [
            "## Confusion matrix (rows gold, columns predicted)",
            confusion_table(metrics),
            f"![confusion]({CONFUSION_PNG})",
        ]
        docs = [[d["id"], d["gold"], d["pred"]] for d in metrics["doc_stance"]]
        parts += ["## Document stance", markdown_table(["document", "gold", "predicted"], docs)]
    parts.append(error_section(task, gold, pred))
    return "\n\n".join(parts) + "\n"


def save_confusion_png(metrics: dict, path: str | Path, title: str = "stance confusion matrix") -> Path:
    """The stance confusion matrix as a PNG (counts in the cells), rendered off-screen."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cm = metrics["confusion_matrix"]
    fig, ax = plt.subplots(figsize=(1.6 * len(cm["labels"]) + 2, 1.4 * len(cm["labels"]) + 1.5))
    ConfusionMatrixDisplay(np.array(cm["matrix"]), display_labels=cm["labels"]).plot(ax=ax, colorbar=False)
    ax.set_title(title)
    ax.set_xlabel("predicted")
    ax.set_ylabel("gold")
    plt.setp(ax.get_xticklabels(), rotation=20, ha="right")
    fig.tight_layout()
    return write_figure(path, fig, dpi=120)


def write_evaluation(
    metrics: dict,
    gold_records: Sequence[dict],
    pred_records: Sequence[dict],
    out_dir: str | Path,
    scheme: LabelScheme | None = None,
) -> dict[str, Path]:
    """Write metrics.json, report.md, report.html and (stance) confusion_stance.png into ``out_dir``; returns their
    paths. ``scheme``: the model's labels, for the page's legend and colours."""
    out = Path(out_dir)
    paths = {"metrics": write_json(out / "metrics.json", metrics)}
    paths["report"] = write_atomic(out / "report.md", render_report(metrics, gold_records, pred_records))
    title = f"Evaluation: {metrics['task']}, {metrics['headline']['name']} {metrics['headline']['value']:.3f}"
    page = render_page(
        pred_records,
        title,
        gold=gold_records,
        check=(metrics["task"],),
        note="Errors marked against gold.",
        scheme=scheme,
    )
    paths["html"] = write_atomic(out / "report.html", page)
    if metrics["task"] == "stance":
        paths["confusion"] = save_confusion_png(metrics, out / CONFUSION_PNG)
    return paths
