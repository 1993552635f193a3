"""Checks that corpus records obey the format of data/GUIDELINES.md, reported one problem per line.

Every message names where the problem is (file and line, record id, character offset) and quotes the text around it,
so the annotator can find it without a debugger. ``load_records`` raises with the same messages.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from src.data.jsonl import parse_json_text, read_json_file
from src.data.words import word_spans
from src.labels import seed_scheme

# The layers a record can annotate; a record without an ``annotated`` field annotates them all.
LAYERS = ("entities", "stance")

REPO_ROOT = Path(__file__).resolve().parents[2]
CONTEXT = 20  # characters of text quoted on each side of a problem
UNICODE_BREAKS = {ord(c): f"\\u{ord(c):04x}" for c in "\x85\u2028\u2029"}


def around(text: str, start: int, end: int | None = None) -> str:
    """The text near ``text[start:end]``, with the span in ⟦⟧ and line breaks escaped, for messages.

    EXAMPLE: ``around("I like London.", 7, 13) -> '"I like ⟦London⟧."'``
    """
    end = start if end is None else end
    start, end = max(0, min(start, len(text))), max(0, min(end, len(text)))
    left, mid, right = text[max(0, start - CONTEXT) : start], text[start:end], text[end : end + CONTEXT]
    quoted = json.dumps(f"{left}⟦{mid}⟧{right}", ensure_ascii=False)
    return quoted.translate(UNICODE_BREAKS)  # kept raw by json.dumps, but they break lines in editors and logs


class SourceRefused(ValueError):
    """A record's ``source`` names a file outside the folders a corpus may refer to; the file is never read."""


def source_folders(base: Path | None = None, root: Path | None = None) -> list[Path]:
    """The folders ``source`` paths are resolved in, in this order: ``root`` (``--root``), the repository root, the
    annotation file's project folder (its nearest ancestor with a ``seeds/`` folder) and the file's own folder.
    Nowhere else: a corpus must not make the validator read, and quote, files elsewhere on the machine.

    EXAMPLE: ``source_folders(Path("data/annotations")) -> [Path("/…/newsframe"), Path("data/annotations")]``
    """
    folders = [root, REPO_ROOT]
    if base is not None:
        folders.append(next((p for p in (base.resolve(), *base.resolve().parents) if (p / "seeds").is_dir()), None))
        folders.append(base)
    unique: dict[Path, Path] = {}
    for folder in folders:
        if folder is not None:
            unique.setdefault(folder.resolve(), folder)
    return list(unique.values())


def resolve_source(source: str, base: Path | None = None, root: Path | None = None) -> Path | None:
    """The existing file that ``source`` names inside one of ``source_folders``; ``None`` when there is none.

    Raises ``SourceRefused``, before touching the file, for an absolute path, a path whose ``..`` climbs out of
    the folder it is resolved in, or a link that leads out of it.

    EXAMPLE: ``resolve_source("seeds/000_056989c0f52db9f1.txt") -> Path("/…/newsframe/seeds/000_….txt")``
    """
    folders = source_folders(base, root)
    inside = f"write it relative to a project folder ({', '.join(str(f) for f in folders)}); the file was not read"
    if not source or "\0" in source:
        raise SourceRefused(f"is not a file path; {inside}")
    if Path(source).is_absolute():
        raise SourceRefused(f"is an absolute path, which may lead outside the project folder; {inside}")
    relative = Path(os.path.normpath(source))
    if relative.parts[:1] == ("..",):
        raise SourceRefused(f"climbs outside the project folder with '..'; {inside}")
    linked_out = False
    for folder in folders:
        candidate = folder / relative
        if not candidate.resolve().is_relative_to(folder.resolve()):
            linked_out = True  # a symbolic link on the way leads outside the folder
            continue
        if candidate.is_file():
            return candidate
    if linked_out:
        raise SourceRefused(f"is a link to a place outside the project folder; {inside}")
    return None


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_annotated(record: dict, where: str) -> list[str]:
    """Problems of the optional ``annotated`` field (the layers the record annotates, ``LAYERS``)
    and of labels given for a layer it does not annotate (they would be silently ignored)."""
    if "annotated" not in record:
        return []
    layers = record["annotated"]
    known = ", ".join(LAYERS)
    if not isinstance(layers, list) or not layers or not all(isinstance(x, str) for x in layers):
        return [f"{where}: field 'annotated' must be a non-empty list of layer names ({known}), got {layers!r}"]
    problems = [f"{where}: unknown layer {x!r} in 'annotated' (known: {known})" for x in layers if x not in LAYERS]
    if len(set(layers)) != len(layers):
        problems.append(f"{where}: 'annotated' names a layer twice: {layers!r}")
    if "entities" not in layers and isinstance(record.get("entities"), list) and record["entities"]:
        problems.append(
            f"{where}: {len(record['entities'])} entities given, but 'annotated' does not list 'entities' "
            "(add it, or drop the entities)"
        )
    if "stance" not in layers and isinstance(record.get("sentences"), list):
        labelled = [s for s in record["sentences"] if isinstance(s, dict) and s.get("stance") is not None]
        if labelled:
            problems.append(
                f"{where}: {len(labelled)} sentences have a stance, but 'annotated' does not list 'stance' "
                "(add it, or drop the stances)"
            )
    return problems


def _check_fields(record: dict, where: str) -> list[str]:
    """Shape problems (missing or wrongly typed fields); the span checks run only when this is empty. A layer the
    record does not annotate (``annotated``) may be missing: ``entities``, or each sentence's ``stance``."""
    problems = _check_annotated(record, where)
    layers = record.get("annotated") if isinstance(record.get("annotated"), list) else LAYERS
    required = [("id", str), ("text", str), ("sentences", list)]
    if "entities" in layers or "entities" in record:
        required.insert(2, ("entities", list))
    for key, types in required:
        if key not in record:
            problems.append(f"{where}: missing field {key!r}")
        elif not isinstance(record[key], types):
            problems.append(f"{where}: field {key!r} must be {types.__name__}, got {type(record[key]).__name__}")
    if "source" in record and not isinstance(record["source"], str):
        problems.append(f"{where}: field 'source' must be str, got {type(record['source']).__name__}")
    for key, label_key, label_types in (("entities", "label", (str,)), ("sentences", "stance", (str, type(None)))):
        if not isinstance(record.get(key), list):
            continue
        for i, span in enumerate(record[key]):
            if not isinstance(span, dict):
                problems.append(f"{where}: {key}[{i}] must be an object, got {type(span).__name__}")
                continue
            for field in ("start", "end"):
                if not _is_int(span.get(field)):
                    problems.append(f"{where}: {key}[{i}] field {field!r} must be int, got {span.get(field)!r}")
            if label_key not in span and (key == "entities" or "stance" in layers):
                problems.append(f"{where}: {key}[{i}] missing field {label_key!r}")
            elif label_key in span and not isinstance(span[label_key], label_types):
                problems.append(f"{where}: {key}[{i}] field {label_key!r} has wrong type: {span[label_key]!r}")
    return problems


def _check_span(text: str, kind: str, span: dict, where: str) -> tuple[list[str], bool]:
    """Problems of one span's bounds, emptiness and outer whitespace, and whether it lies inside the text (so
    the checks between spans can still use it)."""
    start, end = span["start"], span["end"]
    if not 0 <= start < end <= len(text):
        what = "empty" if start >= end else "out of bounds"
        inside = 0 <= start <= end <= len(text)
        msg = f"{where}: {kind} {start}-{end} is {what} (text length {len(text)}) near {around(text, start, end)}"
        return [msg], inside
    if text[start].isspace() or text[end - 1].isspace():
        return [f"{where}: {kind} {start}-{end} has outer whitespace: {around(text, start, end)}"], True
    return [], True


def _positioned(record: dict, key: str) -> list[dict]:
    """The spans of ``record[key]`` that have integer offsets: enough for every check that does not need what
    else is wrong with them, so one broken span does not hide the problems of the others."""
    spans = record.get(key)
    if not isinstance(spans, list):
        return []
    return [s for s in spans if isinstance(s, dict) and _is_int(s.get("start")) and _is_int(s.get("end"))]


def _label(span: dict, key: str) -> str:
    """A span's label for messages, whatever its type."""
    value = span.get(key)
    return value if isinstance(value, str) else repr(value)


def _check_source(record: dict, where: str, base: Path | None, root: Path | None) -> list[str]:
    try:
        path = resolve_source(record["source"], base, root)
    except SourceRefused as refused:
        return [f"{where}: source {record['source']!r} refused: it {refused}"]
    if path is None:
        folders = ", ".join(str(f) for f in source_folders(base, root))
        return [f"{where}: source file {record['source']!r} not found (relative to {folders})"]
    try:
        expected = path.read_bytes().decode("utf-8")
    except (OSError, UnicodeDecodeError) as err:
        return [f"{where}: cannot read source {path}: {err}"]
    text = record["text"]
    if text == expected:
        return []
    at = next(
        (i for i, (a, b) in enumerate(zip(text, expected, strict=False)) if a != b), min(len(text), len(expected))
    )
    return [
        f"{where}: text differs from source {record['source']} at offset {at}: "
        f"record {around(text, at, at + 1)} vs file {around(expected, at, at + 1)} "
        f"(lengths {len(text)} vs {len(expected)})"
    ]


def validate_record(
    record: object,
    *,
    entity_labels: Sequence[str] | None = None,
    stance_labels: Sequence[str] | None = None,
    sentence_layers: Mapping[str, Sequence[str]] | None = None,
    base: Path | None = None,
    root: Path | None = None,
    where: str = "",
) -> list[str]:
    """All format problems of one record, one message each; ``[]`` when it is valid.

    Every problem is reported, not the first: each check runs on the parts of the record it needs that are
    well-formed (a missing field skips only the checks that need that field, an out-of-bounds span only the
    checks between spans that involve it).

    ``where`` prefixes messages (e.g. ``"seeds.jsonl:3"``); ``base`` is the annotation file's folder and ``root`` an
    extra folder for resolving ``source``. Labels are checked against ``entity_labels`` / ``stance_labels`` (a data
    config's; None: the seed corpus's, ``seed_scheme``) and a sentence's key of a plug-in task's sentence layer
    against ``sentence_layers`` (a data config's ``sentence_labels``).

    EXAMPLE: ``validate_record({"id": "a", "text": "Hi", "entities": [], "sentences": [{"start": 0, "end": 2,
    "stance": None}]}) -> []``
    """
    if not isinstance(record, dict):
        return [f"{where}: record must be a JSON object, got {type(record).__name__}"]
    entity_labels = seed_scheme().entity_labels if entity_labels is None else entity_labels
    stance_labels = seed_scheme().stance_labels if stance_labels is None else stance_labels
    rid = record.get("id")
    where = f"{where}: record {rid}" if where else f"record {rid}"
    problems = _check_fields(record, where)
    entities, sentences = _positioned(record, "entities"), _positioned(record, "sentences")
    text = record.get("text")
    if isinstance(text, str) and isinstance(record.get("source"), str):
        problems = _check_source(record, where, base, root) + problems

    entity_problems, placed = _check_entities(entities, text, entity_labels, where)
    sentence_problems, all_sentences_placed = _check_sentences(
        record, sentences, text, {"stance": stance_labels, **(sentence_layers or {})}, where
    )
    problems += entity_problems + sentence_problems
    if not isinstance(text, str):
        return problems
    problems += _check_entity_layout(placed, text, where)
    if not all_sentences_placed:  # a missing or misplaced sentence would show up as gaps and stray entities
        return problems
    return problems + _check_coverage(placed, sentences, text, where)


def _check_entities(
    entities: list[dict], text: object, entity_labels: Sequence[str], where: str
) -> tuple[list[str], list[dict]]:
    """Span and label problems of the entities, and those placed inside the text (``clean``: no span problem)."""
    problems: list[str] = []
    placed: list[dict] = []
    for ent in entities:
        if isinstance(text, str):
            span_problems, inside = _check_span(text, f"entity {_label(ent, 'label')}", ent, where)
            problems += span_problems
            if inside and ent["start"] < ent["end"]:
                placed.append(ent | {"clean": not span_problems})
        if isinstance(ent.get("label"), str) and ent["label"] not in entity_labels:
            context = f": {around(text, ent['start'], ent['end'])}" if isinstance(text, str) else ""
            problems.append(
                f"{where}: unknown entity label {ent['label']!r} at {ent['start']}-{ent['end']} "
                f"(known: {', '.join(entity_labels)}){context}"
            )
    return problems, placed


def _check_sentences(
    record: dict, sentences: list[dict], text: object, layers: Mapping[str, Sequence[str]], where: str
) -> tuple[list[str], bool]:
    """Span and label problems of the sentences (each key of ``layers``, the stance first, holds one of its labels
    or null), and whether every sentence lies inside the text."""
    problems: list[str] = []
    all_placed = isinstance(record.get("sentences"), list) and len(sentences) == len(record["sentences"])
    for sent in sentences:
        if isinstance(text, str):
            span_problems, inside = _check_span(text, "sentence", sent, where)
            problems += span_problems
            all_placed &= inside and sent["start"] < sent["end"]
        for key, labels in layers.items():
            label = sent.get(key)
            if label is None or (key == "stance" and not isinstance(label, str)):  # its type: _check_fields
                continue
            if label not in labels:
                context = f": {around(text, sent['start'], sent['end'])}" if isinstance(text, str) else ""
                problems.append(
                    f"{where}: unknown {key} {label!r} of sentence {sent['start']}-{sent['end']} "
                    f"(known: {', '.join(labels)} or null){context}"
                )
    return problems, all_placed


def _check_entity_layout(placed: list[dict], text: str, where: str) -> list[str]:
    """Overlapping entities (nested ones too) and entities off the word boundaries."""
    problems: list[str] = []
    reach: dict | None = None  # the entity seen so far that ends last, so nested overlaps are caught too
    for ent in sorted(placed, key=lambda e: (e["start"], e["end"])):
        if reach is not None and ent["start"] < reach["end"]:
            problems.append(
                f"{where}: entity {_label(ent, 'label')} {ent['start']}-{ent['end']} overlaps entity "
                f"{_label(reach, 'label')} {reach['start']}-{reach['end']}: "
                f"{around(text, reach['start'], max(reach['end'], ent['end']))}"
            )
        if reach is None or ent["end"] > reach["end"]:
            reach = ent
    words = word_spans(text)
    word_starts, word_ends = {s for s, _ in words}, {e for _, e in words}
    for ent in placed:  # outer whitespace is already reported; it would also be off the word boundaries
        if ent["clean"] and (ent["start"] not in word_starts or ent["end"] not in word_ends):
            problems.append(
                f"{where}: entity {_label(ent, 'label')} {ent['start']}-{ent['end']} does not start and end on word "
                f"boundaries: {around(text, ent['start'], ent['end'])}"
            )
    return problems


def _check_coverage(placed: list[dict], sentences: list[dict], text: str, where: str) -> list[str]:
    """Sentences in order without overlaps, covering every non-space character; every entity inside one sentence."""
    problems: list[str] = []
    covered_to = 0
    for sent in sentences:
        start, end = sent["start"], sent["end"]
        if start < covered_to:
            problems.append(
                f"{where}: sentence {start}-{end} overlaps or precedes the sentence before it (ends at {covered_to}): "
                f"{around(text, start, end)}"
            )
        else:
            problems += _uncovered(text, covered_to, start, where)
        covered_to = max(covered_to, end)
    problems += _uncovered(text, covered_to, len(text), where)
    for ent in placed:
        if not any(s["start"] <= ent["start"] and ent["end"] <= s["end"] for s in sentences):
            problems.append(
                f"{where}: entity {_label(ent, 'label')} {ent['start']}-{ent['end']} is not inside one sentence "
                f"(crosses a sentence boundary or lies outside all sentences): {around(text, ent['start'], ent['end'])}"
            )
    return problems


def _uncovered(text: str, start: int, end: int, where: str) -> list[str]:
    """A problem for the first non-whitespace character of ``text[start:end]`` (a gap between sentences)."""
    gap = text[start:end]
    stripped = gap.lstrip()
    if not stripped:
        return []
    first = start + len(gap) - len(stripped)
    last = start + len(gap.rstrip())
    return [f"{where}: text {first}-{last} is not covered by any sentence: {around(text, first, last)}"]


def validate_records(
    records: Iterable[tuple[str, object]],
    *,
    entity_labels: Sequence[str] | None = None,
    stance_labels: Sequence[str] | None = None,
    sentence_layers: Mapping[str, Sequence[str]] | None = None,
    base: Path | None = None,
    root: Path | None = None,
) -> list[str]:
    """Problems of ``(where, record)`` pairs: each record's, then duplicate ids across them.

    EXAMPLE: ``validate_records([("f:1", rec), ("f:2", rec)])`` -> ``["f:2: record a: duplicate id (first at f:1)"]``
    """
    problems, first_seen = [], {}
    for where, record in records:
        problems += validate_record(
            record,
            entity_labels=entity_labels,
            stance_labels=stance_labels,
            sentence_layers=sentence_layers,
            base=base,
            root=root,
            where=where,
        )
        rid = record.get("id") if isinstance(record, dict) else None
        if isinstance(rid, str):
            if rid in first_seen:
                problems.append(f"{where}: record {rid}: duplicate id (first at {first_seen[rid]})")
            else:
                first_seen[rid] = where
    return problems


def validate_file(
    path: str | Path,
    *,
    entity_labels: Sequence[str] | None = None,
    stance_labels: Sequence[str] | None = None,
    sentence_layers: Mapping[str, Sequence[str]] | None = None,
    root: str | Path | None = None,
) -> list[str]:
    """All problems of an annotation file (.jsonl, or .json with one record or a list); ``[]`` when valid.

    EXAMPLE: ``validate_file("data/annotations/seeds.jsonl") -> []``
    """
    return parse_and_validate(
        path, entity_labels=entity_labels, stance_labels=stance_labels, sentence_layers=sentence_layers, root=root
    )[1]


def parse_and_validate(
    path: str | Path,
    *,
    entity_labels: Sequence[str] | None = None,
    stance_labels: Sequence[str] | None = None,
    sentence_layers: Mapping[str, Sequence[str]] | None = None,
    root: str | Path | None = None,
) -> tuple[list[dict], list[str]]:
    """The parsed records of a file and all their problems, in one read (shared by validation and loading)."""
    path = Path(path)
    items, problems = read_json_file(path)
    return validate_items(items, problems, path, entity_labels, stance_labels, root, sentence_layers)


def validate_text(
    text: str,
    path: str | Path,
    *,
    entity_labels: Sequence[str] | None = None,
    stance_labels: Sequence[str] | None = None,
    sentence_layers: Mapping[str, Sequence[str]] | None = None,
    root: str | Path | None = None,
) -> list[str]:
    """All problems of ``text`` read as the file ``path`` would be (JSON Lines, or one document for ``.json``;
    messages and ``source`` paths located there): a file is checked before it is written, so a bad one never
    replaces a good one.

    EXAMPLE: ``validate_text("", "out.jsonl") -> ["out.jsonl: no records in out.jsonl"]``
    """
    path = Path(path)
    items, problems = parse_json_text(text, str(path), whole=path.suffix == ".json")
    return validate_items(items, problems, path, entity_labels, stance_labels, root, sentence_layers)[1]


def validate_items(
    items: list[tuple[int, object]],
    problems: list[str],
    path: Path,
    entity_labels: Sequence[str] | None,
    stance_labels: Sequence[str] | None,
    root: str | Path | None,
    sentence_layers: Mapping[str, Sequence[str]] | None = None,
) -> tuple[list[dict], list[str]]:
    """Records and problems of parsed ``(line, value)`` items of ``path`` (whose syntax ``problems`` are given)."""
    if not items and not problems:  # training would fail later, in the tokenizer, with no hint of the cause
        problems.append(f"{path}: no records in {path}")
    problems += validate_records(
        ((f"{path}:{lineno}", obj) for lineno, obj in items),
        entity_labels=entity_labels,
        stance_labels=stance_labels,
        sentence_layers=sentence_layers,
        base=path.parent,
        root=Path(root) if root is not None else None,
    )
    return [obj for _, obj in items], problems
