"""An OntoNotes-typed copy of CoNLL-2003 for warm-starting the seven-type NER head (issue: quality on unseen outlets).

CoNLL's gold entity boundaries are kept; a teacher that knows OntoNotes types (spaCy ``en_core_web_sm``, run on
CoNLL's own tokens so its spans align exactly) only decides the type:

- PER -> PERSON, ORG -> ORG (as they are);
- LOC -> GPE or LOC by the teacher's label on the span (GPE; LOC / FAC), GPE when the teacher has none;
- MISC -> NORP or EVENT by the teacher, else dropped (other MISC is no type of ours: languages, products, ...);
- DATE spans of the teacher are added where CoNLL has no entity on any of their tokens.

It writes ``train.txt``, ``dev.txt``, ``test.txt`` (``WORD TAG`` columns, IOB2) and ``retyping.json`` (how many
entities each rule retyped, and a seeded sample of retyped spans to read) into ``--out``, outside the repository:
CoNLL-2003's licence allows no redistribution, and neither does a copy of it.

    python scripts/retype_conll.py --out runs/conll2003-onto [--dir /path/to/conll2003]
"""

from __future__ import annotations

import argparse
import random
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from src.data import conll  # noqa: E402
from src.evaluate.baselines import BaselineUnavailable, load_spacy  # noqa: E402
from src.files import write_atomic, write_json  # noqa: E402

SAMPLE = 100


def teacher_label(doc, start: int, end: int) -> str | None:
    """The teacher's label of the entity covering most of tokens ``start..end`` (exclusive), if any."""
    best, overlap = None, 0
    for ent in doc.ents:
        shared = min(end, ent.end) - max(start, ent.start)
        if shared > overlap:
            best, overlap = ent.label_, shared
    return best


def retype(conll_label: str, teacher: str | None) -> tuple[str | None, str]:
    """``(our label or None to drop, the rule that decided)``."""
    if conll_label == "PER":
        return "PERSON", "PER->PERSON"
    if conll_label == "ORG":
        return "ORG", "ORG->ORG"
    if conll_label == "LOC":
        if teacher in ("LOC", "FAC"):
            return "LOC", f"LOC->LOC (teacher {teacher})"
        return "GPE", "LOC->GPE (teacher GPE)" if teacher == "GPE" else f"LOC->GPE (teacher {teacher or 'none'})"
    if teacher in ("NORP", "EVENT"):
        return teacher, f"MISC->{teacher}"
    return None, f"MISC dropped (teacher {teacher or 'none'})"


def retype_split(nlp, records: list[dict], split: str, counts: Counter, retyped: list[dict]) -> list[str]:
    """Column lines of one split, one block per CoNLL sentence."""
    from spacy.tokens import Doc

    lines = []
    for record in records:
        text = record["text"]
        for sentence in record["sentences"]:
            tokens, words, offset = text[sentence["start"] : sentence["end"]].split(" "), [], sentence["start"]
            for token in tokens:  # CoNLL's own tokens, joined by single spaces (tokens_to_record)
                words.append((offset, offset + len(token)))
                offset += len(token) + 1
            doc = nlp(Doc(nlp.vocab, words=tokens))
            tags = ["O"] * len(words)
            index = {start: i for i, (start, _) in enumerate(words)}
            for entity in record["entities"]:
                if not sentence["start"] <= entity["start"] < sentence["end"]:
                    continue
                first = index[entity["start"]]
                last = max(i for i, (s, e) in enumerate(words) if e <= entity["end"])
                label, rule = retype(entity["label"], teacher_label(doc, first, last + 1))
                counts[rule] += 1
                if label is None:
                    continue
                tags[first : last + 1] = [f"B-{label}"] + [f"I-{label}"] * (last - first)
                if entity["label"] in ("LOC", "MISC"):
                    span = " ".join(tokens[first : last + 1])
                    retyped.append({"split": split, "span": span, "rule": rule, "context": " ".join(tokens)})
            for ent in doc.ents:
                if ent.label_ == "DATE" and all(t == "O" for t in tags[ent.start : ent.end]):
                    tags[ent.start : ent.end] = ["B-DATE"] + ["I-DATE"] * (ent.end - ent.start - 1)
                    counts["DATE added"] += 1
            lines += [f"{token} {tag}" for token, tag in zip(tokens, tags, strict=True)] + [""]
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for the retyped copy (outside the repo)")
    parser.add_argument("--dir", help="the CoNLL-2003 folder (default: as `make conll` finds it)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the sample of retyped spans to read")
    args = parser.parse_args()
    try:
        source = conll.find_source(args.dir, hub_id=conll.HUB_ID)
        print(f"Teacher: spaCy en_core_web_sm; {source.describe()}", file=sys.stderr)
        splits = conll.load_splits(source)
        nlp = load_spacy()
    except (conll.ConllNotFound, BaselineUnavailable) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    counts: Counter = Counter()
    retyped: list[dict] = []
    args.out.mkdir(parents=True, exist_ok=True)
    for split, records in splits.items():
        lines = retype_split(nlp, records, split, counts, retyped)
        write_atomic(args.out / f"{split}.txt", "\n".join(lines) + "\n")
        print(f"{split}: {sum(1 for line in lines if not line)} sentences", file=sys.stderr)
    sample = random.Random(args.seed).sample(retyped, min(SAMPLE, len(retyped)))
    report = {"counts": dict(counts.most_common()), "sample": sample}
    write_json(args.out / "retyping.json", report)  # written last: the copy is complete once it exists
    for rule, n in counts.most_common():
        print(f"{n:7d}  {rule}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
