"""Reading and writing corpus records (one JSON object per article), validated on the way in."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path

from src.data.validate import parse_and_validate
from src.files import write_atomic
from src.labels import ENTITY_LABELS, STANCE_LABELS

Record = dict


class DataError(ValueError):
    """An annotation file breaks the format; ``problems`` holds one message per problem (as the validator prints)."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__(f"{len(self.problems)} problem(s) in the data:\n" + "\n".join(self.problems))


def load_records(
    path: str | Path,
    *,
    entity_labels: Sequence[str] = ENTITY_LABELS,
    stance_labels: Sequence[str] = STANCE_LABELS,
    root: str | Path | None = None,
) -> list[Record]:
    """Records of an annotation file (.jsonl, or .json with one record or a list), validated: training on a bad
    file must fail before it starts, with the validator's messages.

    Raises ``DataError`` listing every problem. ``root`` is an extra folder for resolving ``source`` paths.

    EXAMPLE: ``load_records("data/annotations/seeds.jsonl")[0]["id"] -> "000_056989c0f52db9f1"``
    """
    records, problems = parse_and_validate(path, entity_labels=entity_labels, stance_labels=stance_labels, root=root)
    if problems:
        raise DataError(problems)
    return records


def records_text(records: Iterable[Record]) -> str:
    """The JSON Lines text of records, as every corpus file is written (UTF-8 characters kept, one line each).

    EXAMPLE: ``records_text([{"id": "a"}]) -> '{"id": "a"}\\n'``
    """
    return "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records)


def save_records(records: Iterable[Record], path: str | Path) -> None:
    """Write records as JSON lines, atomically (``src.files.write_atomic``), so a crash never leaves half a corpus.

    EXAMPLE: ``save_records([{"id": "a", "text": "Hi", "entities": [], "sentences": []}], "out.jsonl")``
    """
    write_atomic(path, records_text(records))
