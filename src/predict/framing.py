"""Who is framed how: for each entity of a corpus, the stances of the sentences that mention it.

Mentions are grouped by a normalised name and their type, so "Kim Jong-un", "Kim Jong-un's" and a later "Kim" in the
same article count as one person. The rule (``name_key``, ``article_keys``), kept simple so a reader can predict it:

1. a mention's key is its text case-folded, with a trailing possessive ('s, ’s or a lone apostrophe) removed, runs
   of whitespace made one space and hyphens dropped: "Kim Jong-un's" and "Kim Jongun" -> "kim jongun";
2. its tokens are the same text split at spaces and hyphens instead: "Kim Jong-un" -> (kim, jong, un);
3. within one article, a single-token mention takes the key of a longer mention of the same type whose tokens
   contain it ("Kim" -> "kim jong-un"); when several longer names do, the one mentioned most often in that article
   (the first mentioned on a tie). Nothing is merged across articles except by equal keys.

A sentence counts once per entity however often it names it. ``FramingTable`` adds prediction records one by one
(memory grows with the number of distinct entities, not of documents); the HTML summary and
``--format entity-framing`` (CSV) both read its ``rows``.
"""

from __future__ import annotations

import bisect
import csv
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from typing import TextIO

NO_STANCE = "no_stance"  # sentences without a stance: no stance model, or dropped by --min-score
_POSSESSIVE = re.compile(r"(?:['’]s|['’])$", re.IGNORECASE)
_HYPHENS = re.compile(r"[\-‐‑]")
_TOKEN_SPLIT = re.compile(r"[\s\-‐‑]+")


def _folded(text: str) -> str:
    return _POSSESSIVE.sub("", " ".join(text.split()).casefold()).strip()


def name_key(text: str) -> str:
    """The normalised name of one mention (rule 1 of the module docstring).

    EXAMPLE: ``name_key("Kim  Jong-un's") -> "kim jongun"``
    """
    return _HYPHENS.sub("", _folded(text))


def name_tokens(text: str) -> tuple[str, ...]:
    """The words of a mention for rule 3 (rule 2 of the module docstring).

    EXAMPLE: ``name_tokens("Kim Jong-un's") -> ("kim", "jong", "un")``
    """
    return tuple(t for t in _TOKEN_SPLIT.split(_folded(text)) if t)


def article_keys(entities: Sequence[dict]) -> list[str]:
    """The group key of each of one article's entities (rules 1-3 of the module docstring), in order.

    EXAMPLE: entities "Kim Jong-un" (PERSON), "Kim" (PERSON), "Kim" (ORG) -> "kim jongun", "kim jongun", "kim"
    """
    keys = [name_key(e["text"]) for e in entities]
    labels = [e["label"] for e in entities]
    counts = Counter(zip(keys, labels, strict=True))
    tokens: dict[tuple[str, str], set[str]] = {}  # a group's words, over all its spellings in the article
    for entity, pair in zip(entities, zip(keys, labels, strict=True), strict=True):
        tokens.setdefault(pair, set()).update(name_tokens(entity["text"]))
    first_seen: dict[tuple[str, str], int] = {}
    for i, pair in enumerate(zip(keys, labels, strict=True)):
        first_seen.setdefault(pair, i)
    resolved = []
    for key, entity in zip(keys, entities, strict=True):
        words = name_tokens(entity["text"])
        if len(words) == 1:
            longer = [
                pair
                for pair in counts
                if pair[1] == entity["label"] and pair[0] != key and len(tokens[pair]) > 1 and words[0] in tokens[pair]
            ]
            if longer:
                key = min(longer, key=lambda pair: (-counts[pair], first_seen[pair]))[0]
        resolved.append(key)
    return resolved


class FramingTable:
    """Sentence stances per entity group (normalised name, type), added one prediction record at a time."""

    def __init__(self, stances: Sequence[str] = ()) -> None:
        """``stances``: the stance model's labels, the first columns in their order (others follow as they come)."""
        self.stances = list(stances)
        self.counts: dict[tuple[str, str], Counter] = defaultdict(Counter)
        self.surfaces: dict[tuple[str, str], Counter] = defaultdict(Counter)
        self.articles: dict[tuple[str, str], set[str]] = defaultdict(set)

    def add(self, prediction: dict) -> None:
        """Count one prediction record (error records and documents without sentences add nothing)."""
        if "error" in prediction or not prediction.get("sentences"):
            return
        sentences = sorted(prediction["sentences"], key=lambda s: s["start"])
        starts = [s["start"] for s in sentences]
        entities = prediction.get("entities") or []
        seen: set[tuple[tuple[str, str], int]] = set()
        for entity, key in zip(entities, article_keys(entities), strict=True):
            group = (key, entity["label"])
            self.surfaces[group][" ".join(entity["text"].split())] += 1
            self.articles[group].add(str(prediction.get("id")))
            i = bisect.bisect_right(starts, entity["start"]) - 1
            if i < 0 or entity["start"] >= sentences[i]["end"] or (group, i) in seen:
                continue  # outside every sentence, or a sentence already counted for this entity
            seen.add((group, i))
            stance = sentences[i].get("stance") or NO_STANCE
            if stance not in self.stances and stance != NO_STANCE:
                self.stances.append(stance)  # a model with other labels still gets a column per label
            self.counts[group][stance] += 1

    def columns(self) -> list[str]:
        """Stance columns: the known labels, then ``no_stance`` when any counted sentence had none."""
        has_none = any(c[NO_STANCE] for c in self.counts.values())
        return self.stances + ([NO_STANCE] if has_none else [])

    def rows(self) -> list[dict]:
        """One row per entity group, most-mentioned first: ``entity`` (its most frequent surface form among the
        mentions written as the full name, else among all), ``label``, ``key``, ``sentences`` (mentioning
        sentences), ``articles``, one count per stance column, and ``variants`` (other surface forms)."""
        columns = self.columns()
        rows = []
        for group, surfaces in self.surfaces.items():
            key, label = group
            full = Counter({s: n for s, n in surfaces.items() if name_key(s) == key}) or surfaces
            name = min(full, key=lambda s: (-full[s], s))
            counts = self.counts.get(group, Counter())
            rows.append(
                {
                    "entity": name,
                    "label": label,
                    "key": key,
                    "sentences": sum(counts.values()),
                    "articles": len(self.articles[group]),
                    **{c: counts[c] for c in columns},
                    "variants": sorted(s for s in surfaces if s != name),
                }
            )
        return sorted(rows, key=lambda r: (-r["sentences"], -r["articles"], r["key"], r["label"]))

    def write_csv(self, stream: TextIO) -> None:
        """The table as CSV: entity, label, key, sentences, articles, one column per stance, variants (``|``)."""
        columns = self.columns()
        writer = csv.writer(stream, lineterminator="\n")
        writer.writerow(["entity", "label", "key", "sentences", "articles", *columns, "variants"])
        for row in self.rows():
            writer.writerow(
                [row[k] for k in ("entity", "label", "key", "sentences", "articles", *columns)]
                + ["|".join(row["variants"])]
            )


def framing_rows(predictions: Iterable[dict], stances: Sequence[str] = ()) -> list[dict]:
    """``FramingTable.rows`` over many prediction records."""
    table = FramingTable(stances)
    for prediction in predictions:
        table.add(prediction)
    return table.rows()
