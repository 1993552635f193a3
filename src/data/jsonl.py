"""The one reader of the project's JSON and JSON Lines files (annotations, predictions), shared by validation,
training and evaluation so they agree on what a line is.

A JSON Lines line ends at "\\n" only (a "\\r" before it is dropped). ``str.splitlines`` is not used: it also breaks
at U+2028, U+2029, U+0085 and other characters that ``json.dumps(..., ensure_ascii=False)`` leaves raw inside
strings, and at a bare "\\r", which JSON allows as whitespace between tokens.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path


def json_lines(raw: str) -> Iterator[tuple[int, str]]:
    """``(line number, line)`` of a JSON Lines text, numbered from 1, without line ends.

    EXAMPLE: ``list(json_lines('{"a": "x\\u2028y"}\\r\\n{}\\n')) -> [(1, '{"a": "x\\u2028y"}'), (2, '{}')]``
    """
    lines = raw.split("\n")
    if lines[-1] == "":
        lines.pop()  # the text ends with a line end: no line after it
    for number, line in enumerate(lines, start=1):
        yield number, line.removesuffix("\r")


def parse_json_text(raw: str, name: str, *, whole: bool = False) -> tuple[list[tuple[int, object]], list[str]]:
    """``(line number, value)`` pairs of a text and one message per syntax problem, each starting ``NAME:LINE:``.

    ``whole``: the text is one JSON document, a value or a list of values (all at line 1); otherwise JSON Lines,
    one value per non-blank line, every malformed line reported.

    EXAMPLE: ``parse_json_text('{"id": "a"}\\n{oops\\n', "f.jsonl")``
    -> ``([(1, {"id": "a"})], ["f.jsonl:2: malformed JSON at column 2: Expecting property name ...: '{oops'"])``
    """
    if whole:
        data, problems = parse_json_document(raw, name)
        if problems:
            return [], problems
        return [(1, value) for value in (data if isinstance(data, list) else [data])], []
    items: list[tuple[int, object]] = []
    problems = []
    for number, line in json_lines(raw):
        if not line.strip():
            continue
        try:
            items.append((number, json.loads(line)))
        except json.JSONDecodeError as err:
            problems.append(f"{name}:{number}: malformed JSON at column {err.colno}: {err.msg}: {line[:60]!r}")
    return items, problems


def parse_json_document(raw: str, name: str) -> tuple[object, list[str]]:
    """The value of a JSON document, or ``None`` and its syntax problem located as ``NAME:LINE: ... column C``.

    EXAMPLE: ``parse_json_document('[{"id": 1}', "export.json")``
    -> ``(None, ["export.json:1: malformed JSON at column 11: Expecting ',' delimiter"])``
    """
    try:
        return json.loads(raw), []
    except json.JSONDecodeError as err:
        return None, [f"{name}:{err.lineno}: malformed JSON at column {err.colno}: {err.msg}"]


def read_text(path: str | Path) -> tuple[str | None, list[str]]:
    """A UTF-8 file's text exactly as stored (no newline translation, which would turn a bare "\r" into a line
    end), or ``None`` and why it cannot be read."""
    try:
        return Path(path).read_bytes().decode("utf-8"), []
    except (OSError, UnicodeDecodeError) as err:
        return None, [f"{path}: cannot read: {err}"]


def read_json_file(path: str | Path, *, whole: bool | None = None) -> tuple[list[tuple[int, object]], list[str]]:
    """``parse_json_text`` of a file (``whole`` by default for ``.json``, else JSON Lines); a file that cannot be
    read or decoded is one problem, not an exception, so callers report it like any other.

    EXAMPLE: ``read_json_file("data/annotations/seeds.jsonl")[0][0] -> (1, {"id": "000_056989c0f52db9f1", ...})``
    """
    raw, problems = read_text(path)
    if raw is None:
        return [], problems
    return parse_json_text(raw, str(path), whole=Path(path).suffix == ".json" if whole is None else whole)


def read_json_document(path: str | Path) -> tuple[object, list[str]]:
    """The value of a JSON file (e.g. a Label Studio export), or ``None`` and the located problems."""
    raw, problems = read_text(path)
    return (None, problems) if raw is None else parse_json_document(raw, str(path))


def objects_only(items: Iterable[tuple[int, object]], name: str) -> tuple[list[dict], list[str]]:
    """The JSON objects of ``items`` and a located problem for every other value.

    EXAMPLE: ``objects_only([(1, {}), (2, 3)], "f.jsonl") -> ([{}], ["f.jsonl:2: expected a JSON object, got int"])``
    """
    objects, problems = [], []
    for number, value in items:
        if isinstance(value, dict):
            objects.append(value)
        else:
            problems.append(f"{name}:{number}: expected a JSON object, got {type(value).__name__}")
    return objects, problems
