"""Markdown tables, for the reports and the datasheet alike."""

from __future__ import annotations

from collections.abc import Iterable, Sequence


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
