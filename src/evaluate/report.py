"""Files a person or a program reads: metrics.json, report.md (tables + error analysis), report.html (the predictions
with errors marked against gold, ``src.predict.html``), the task's figure (stance: its confusion matrix as a PNG).

Every file is written atomically (a temporary file in the same folder, then ``os.replace``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from src.data.jsonl import objects_only, read_json_file
from src.files import write_atomic, write_json
from src.labels import LabelScheme
from src.markdown import markdown_table
from src.predict.html import render_page
from src.tasks import get_task

MAX_ERRORS = 50


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


def summary_lines(metrics: dict) -> list[str]:
    return [
        f"- documents: {metrics['n_documents']}, sentences scored: {metrics['n_sentences']}",
        f"- headline ({metrics['headline']['name']}): **{metrics['headline']['value']:.3f}**",
        *get_task(metrics["task"]).summary_lines(metrics),
    ]


def error_section(task: str, gold: Sequence[dict], pred: Sequence[dict], max_errors: int = MAX_ERRORS) -> str:
    """Markdown error analysis of the task (``Task.error_sections``), at most ``max_errors`` items each."""
    return "\n\n".join(["## Error analysis", *get_task(task).error_sections(gold, pred, max_errors)])


def console_summary(metrics: dict, report_path: Path) -> str:
    """What a run prints: the headline figures and the per-label table; the error analysis stays in the report."""
    head = "\n".join([f"\nHeld-out evaluation ({metrics['task']}):", *summary_lines(metrics)])
    return f"{head}\n\n{per_label_table(metrics)}\n\nFull report: {report_path}"


def render_report(
    metrics: dict, gold: Sequence[dict], pred: Sequence[dict], title: str | None = None, figure: str | None = None
) -> str:
    """report.md: the summary, the per-label table, the task's own sections (``figure``: its drawn image's file
    name) and the error analysis."""
    task = metrics["task"]
    parts = [
        f"# {title or f'Evaluation: {task}'}",
        "\n".join(summary_lines(metrics)),
        "## Per label",
        per_label_table(metrics),
        *get_task(task).report_sections(metrics, figure),
        error_section(task, gold, pred),
    ]
    return "\n\n".join(parts) + "\n"


def write_evaluation(
    metrics: dict,
    gold_records: Sequence[dict],
    pred_records: Sequence[dict],
    out_dir: str | Path,
    scheme: LabelScheme | None = None,
) -> dict[str, Path]:
    """Write metrics.json, report.md, report.html and the task's figure (stance: confusion_stance.png) into
    ``out_dir``; returns their paths. ``scheme``: the model's labels, for the page's legend and colours."""
    out = Path(out_dir)
    task = metrics["task"]
    paths = {"metrics": write_json(out / "metrics.json", metrics)}
    figure = get_task(task).draw(metrics, out / f"confusion_{task}.png", f"{task} confusion matrix")
    if figure is not None:
        paths["confusion"] = figure
    report = render_report(metrics, gold_records, pred_records, figure=figure.name if figure else None)
    paths["report"] = write_atomic(out / "report.md", report)
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
    return paths
