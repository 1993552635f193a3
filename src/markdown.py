"""Markdown tables, for the reports and the datasheet alike."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from src.files import write_atomic


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """A Markdown table: floats to 3 decimals, numbers right-aligned (by the first row), ``|`` and newlines escaped.

    EXAMPLE: ``markdown_table(["article", "F1"], [["a", 0.5]]) -> "| article | F1 |\\n|---|---:|\\n| a | 0.500 |"``
    """
    rows = [list(row) for row in rows]

    def cell(value: object) -> str:
        text = f"{value:.3f}" if isinstance(value, float) else str(value)
        return text.replace("|", "\\|").replace("\n", " ")

    numeric = [isinstance(v, int | float) and not isinstance(v, bool) for v in rows[0]] if rows else []
    align = "|" + "".join("---:|" if numeric and numeric[i] else "---|" for i in range(len(header)))
    lines = ["| " + " | ".join(header) + " |", align]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def write_between_markers(path: Path, begin: str, end: str, text: str) -> None:
    """Put ``text`` (which starts with ``begin`` and ends with ``end``) in place of the block between those markers
    in ``path``, or at its end when the markers are not there yet: a results document rewritten by its command."""
    old = path.read_text(encoding="utf-8") if path.is_file() else ""
    if begin in old and end in old:
        new = old[: old.index(begin)] + text + old[old.index(end) + len(end) :]
    else:
        new = old + ("\n" if old else "") + text + "\n"
    write_atomic(path, new)
