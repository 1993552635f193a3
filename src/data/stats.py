"""The datasheet table of a corpus: size, entities per type and sentences per stance, per article and in total."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from src.data.records import Record
from src.data.words import word_spans
from src.labels import LabelScheme, seed_scheme
from src.markdown import markdown_table

NO_STANCE = "no stance"


def corpus_stats(records: Sequence[Record], scheme: LabelScheme | None = None) -> list[dict]:
    """One row of counts per article (by id) and a final ``total`` row. Columns: articles, sentences, tokens (words of
    ``word_spans``), entities, one per entity label, one per stance (and ``no stance`` when some sentence has none),
    in the order of ``scheme`` (a data config's labels; None: the seed corpus's).

    EXAMPLE: ``corpus_stats([rec])[-1]["article"] -> "total"``
    """
    scheme = scheme or seed_scheme()
    entity_cols = _label_columns({e["label"] for r in records for e in r["entities"]}, scheme.entity_labels)
    stance_cols = _label_columns({s["stance"] for r in records for s in r["sentences"]} - {None}, scheme.stance_labels)
    if any(s["stance"] is None for r in records for s in r["sentences"]):
        stance_cols.append(NO_STANCE)
    rows, total = [], Counter()
    for record in sorted(records, key=lambda r: r["id"]):
        counts = Counter(
            articles=1,
            sentences=len(record["sentences"]),
            tokens=len(word_spans(record["text"])),
            entities=len(record["entities"]),
        )
        counts.update(e["label"] for e in record["entities"])
        counts.update(NO_STANCE if s["stance"] is None else s["stance"] for s in record["sentences"])
        total.update(counts)
        rows.append({"article": record["id"], **{c: counts[c] for c in _columns(entity_cols, stance_cols)}})
    rows.append({"article": "total", **{c: total[c] for c in _columns(entity_cols, stance_cols)}})
    return rows


def _label_columns(found: set[str], scheme: Sequence[str]) -> list[str]:
    """The scheme's labels in order (zeros show what is missing) when the corpus uses only those, else the labels
    it uses (e.g. CoNLL's PER, ORG, LOC, MISC)."""
    return list(scheme) if found <= set(scheme) else sorted(found)


def _columns(entity_cols: list[str], stance_cols: list[str]) -> list[str]:
    return ["articles", "sentences", "tokens", "entities", *entity_cols, *stance_cols]


def datasheet_table(rows: Sequence[dict]) -> str:
    """The datasheet rows (dicts, the keys of the first as header) as a Markdown table, numbers right-aligned.

    EXAMPLE: ``datasheet_table([{"article": "a", "tokens": 3}]) -> "| article | tokens |\\n|---|---:|\\n| a | 3 |"``
    """
    header = list(rows[0])
    return markdown_table(header, [[row[h] for h in header] for row in rows])
