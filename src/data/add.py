"""``python -m src.data add EXPORT.json``: append the articles of a Label Studio export to the corpus, safely.

Nothing is written unless every check passes: the export converts (``labelstudio_to_records``), every new record
passes the validator, no new article repeats an article of the corpus (same id, or same text by sha256) or of the
export, and the whole new corpus validates as the exact text to be written. The previous corpus is then kept as
``CORPUS.<YYYYmmdd-HHMMSS>`` beside it and the new one replaces it atomically; on any problem the corpus stays
byte-identical.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

from src.data.convert import labelstudio_to_records
from src.data.jsonl import parse_json_text, read_json_document, read_text
from src.data.records import DataError, records_text
from src.data.validate import validate_records, validate_text
from src.files import exclusive, write_atomic
from src.labels import LabelScheme, seed_scheme


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def duplicate_problems(
    new: list[dict], corpus: list[tuple[int, dict]], corpus_name: str, where: list[str]
) -> list[str]:
    """One located problem per new article whose id or text is already in the corpus (``(line, record)`` pairs)
    or earlier in the export.

    EXAMPLE: a new record with the id of corpus line 1 ->
    ``["x.json: task 0: article 'a' is already at seeds.jsonl:1 (same id); add each article once"]``
    """
    seen_id = {r["id"]: f"{corpus_name}:{line}" for line, r in corpus}
    seen_text = {text_hash(r["text"]): f"{corpus_name}:{line} ({r['id']})" for line, r in corpus}
    problems = []
    for record, at in zip(new, where, strict=True):
        digest = text_hash(record["text"])
        if record["id"] in seen_id:
            first = seen_id[record["id"]]
            problems.append(f"{at}: article {record['id']!r} is already at {first} (same id); add each article once")
        elif digest in seen_text:
            problems.append(
                f"{at}: article {record['id']!r} has the same text as {seen_text[digest]}; label new articles only"
            )
        seen_id.setdefault(record["id"], at)
        seen_text.setdefault(digest, f"{at} ({record['id']})")
    return problems


def backup_path(corpus: Path, now: float | None = None) -> Path:
    """``CORPUS.<time>`` that does not exist yet (``-2``, ``-3``... within one second)."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now))
    path, n = corpus.with_name(f"{corpus.name}.{stamp}"), 1
    while path.exists():
        n += 1
        path = corpus.with_name(f"{corpus.name}.{stamp}-{n}")
    return path


def add_export(export: Path, corpus: Path, scheme: LabelScheme | None = None) -> tuple[list[str], dict]:
    """Append the export's articles to ``corpus``; returns ``(problems, summary)``, and writes only without problems.
    Labels are checked against ``scheme`` (the corpus's data config; None: the seed corpus's).

    ``summary`` holds ``added`` (ids) and ``backup`` (the previous corpus's new name). Two ``add`` runs on one corpus
    take turns (``exclusive``): each reads the corpus the other wrote, so neither article is lost. A corpus that is a
    symbolic link is written through to its target.
    """
    corpus = corpus.resolve() if corpus.is_symlink() else corpus
    try:
        with exclusive(corpus):
            return _add_export(export, corpus, scheme or seed_scheme())
    except OSError as err:  # the lock file cannot be created: a read-only or missing folder
        return [f"{corpus}: cannot lock it for writing: {err}"], {}


def _add_export(export: Path, corpus: Path, scheme: LabelScheme) -> tuple[list[str], dict]:
    labels = scheme.checked_labels
    raw, problems = read_text(corpus)  # read once: what is checked is what is kept and extended
    if raw is None:
        return problems, {}
    problems = validate_text(raw, corpus, **labels)
    if problems:
        return [*problems, f"{corpus}: the corpus itself is invalid; fix it before adding articles"], {}
    data, problems = read_json_document(export)
    if problems:
        return problems, {}
    try:
        new_records = labelstudio_to_records(data, name=str(export), layers=tuple(scheme.sentence_layers))
    except DataError as err:
        return err.problems, {}
    if not new_records:
        return [f"{export}: no tasks in the export; nothing to add"], {}
    where = [
        f"{export}: task {i}" + ("" if not isinstance(t, dict) or t.get("id") is None else f" (id {t['id']})")
        for i, t in enumerate(data)
    ]
    problems = validate_records(zip(where, new_records, strict=True), base=corpus.parent, **labels)
    problems += duplicate_problems(new_records, parse_json_text(raw, str(corpus))[0], str(corpus), where)
    if problems:
        return problems, {}
    text = raw + ("" if raw.endswith("\n") or not raw else "\n") + records_text(new_records)
    problems = validate_text(text, corpus, **labels)  # the exact text to be written, as training will read it
    if problems:
        return problems, {}
    backup = backup_path(corpus)
    try:
        write_atomic(backup, raw)
        write_atomic(corpus, text)  # atomic: on failure the corpus is as it was
    except OSError as err:
        return [f"{corpus}: cannot write: {err}"], {}
    return [], {"added": [r["id"] for r in new_records], "backup": backup}
