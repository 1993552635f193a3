"""Training-time augmentation of records: names masked so they stop carrying a sentence's label, and the
guideline's label phrases written into labelled training sentences.

A stance model trained on a few articles learns the topic of its leverage sentences (Hanoi, the US, the talks)
instead of the framing. Masking the names of some training sentences makes the rest of the sentence carry the label.
Names are those the gold entities of the training records use (so stance-only records, which annotate no entities,
are masked by the names of the others), matched as whole words.

EXAMPLE: ``mask_names([record], {"Hanoi"}, 1.0, random.Random(0), "[MASK]")`` turns the sentence
"After Hanoi, Kim looks east." into "After [MASK], Kim looks east." (offsets of every sentence moved to match).
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable, Mapping, Sequence

from .records import annotates


def known_names(records: Iterable[dict], types: Sequence[str]) -> set[str]:
    """The surface strings of the gold entities of ``types`` in the records that annotate entities."""
    wanted = set(types)
    return {
        r["text"][e["start"] : e["end"]]
        for r in records
        if annotates(r, "entities")
        for e in r["entities"]
        if e["label"] in wanted and e["end"] - e["start"] > 1
    }


def name_pattern(names: Iterable[str]) -> re.Pattern | None:
    """One regex of the names as whole words, longest first (so "Kim Jong-un" wins over "Kim"); None for none."""
    ordered = sorted(set(names), key=lambda n: (-len(n), n))
    if not ordered:
        return None
    return re.compile(r"(?<!\w)(?:" + "|".join(map(re.escape, ordered)) + r")(?!\w)")


def mask_names(
    records: Sequence[dict], names: Iterable[str], probability: float, rng: random.Random, token: str
) -> list[dict]:
    """The records with the names in each labelled sentence replaced by ``token``, a sentence with ``probability``.

    A record with a masked sentence keeps its stance layer only (its entity offsets no longer hold); the others are
    returned as they are.
    """
    pattern = name_pattern(names)
    if pattern is None or probability <= 0:
        return list(records)
    out = []
    for record in records:
        text, pieces, sentences, at, length, changed = record["text"], [], [], 0, 0, False
        for s in record["sentences"]:
            sentence = text[s["start"] : s["end"]]
            if s.get("stance") is not None and rng.random() < probability:
                masked = pattern.sub(token, sentence)
                changed |= masked != sentence
                sentence = masked
            pieces += [text[at : s["start"]], sentence]
            start = length + s["start"] - at
            length = start + len(sentence)
            sentences.append(s | {"start": start, "end": length})
            at = s["end"]
        if not changed:
            out.append(record)
            continue
        pieces.append(text[at:])
        out.append(record | {"text": "".join(pieces), "sentences": sentences, "entities": [], "annotated": ["stance"]})
    return out


def phrase_records(phrases: Mapping[str, Sequence[str]], templates: Sequence[str]) -> list[dict]:
    """One stance-only record per template: every label's phrase written into it (``{phrase}``), each a sentence
    labelled with that label. The same template around phrases of different labels makes minimal pairs: the frame
    words carry no label, the phrase does.

    EXAMPLE: ``phrase_records({"leverage": ["a bargaining chip"]}, ["Analysts see the trip as {phrase}."])`` ->
    one record with the sentence "Analysts see the trip as a bargaining chip." labelled leverage.
    """
    records = []
    for i, template in enumerate(templates):
        pieces, sentences, at = [], [], 0
        for label, label_phrases in phrases.items():
            for phrase in label_phrases:
                sentence = template.replace("{phrase}", phrase)
                sentences.append({"start": at, "end": at + len(sentence), "stance": label})
                pieces.append(sentence)
                at += len(sentence) + 1
        text = " ".join(pieces)
        records.append(
            {"id": f"phrases-{i}", "text": text, "entities": [], "sentences": sentences, "annotated": ["stance"]}
        )
    return records
