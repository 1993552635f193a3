"""An OntoNotes-typed copy of CoNLL-2003 for warm-starting the seven-type NER head (issue: quality on unseen outlets).

CoNLL's gold entity boundaries are kept; a teacher that knows OntoNotes types (spaCy ``en_core_web_sm``, run on
CoNLL's own tokens so its spans align exactly) only decides the type:

- PER -> PERSON, ORG -> ORG (as they are);
- LOC -> GPE or LOC by the teacher's label on the span (GPE; LOC / FAC), GPE when the teacher has none; with
  ``--loc-typing vote``, by the majority of the teacher's GPE / LOC / FAC labels on every occurrence of the same name
  (case-folded) in the split, the span's own rule on a tie or without any (a place is one type wherever it occurs;
  compared with three seeds of the seed NER CV: docs/decisions.md);
- MISC -> NORP or EVENT by the teacher, else dropped (other MISC is no type of ours: languages, products, ...);
- DATE spans of the teacher are added where CoNLL has no entity on any of their tokens.

It writes ``train.txt``, ``dev.txt``, ``test.txt`` (``WORD TAG`` columns, IOB2) and ``retyping.json`` (how many
entities each rule retyped, and a seeded sample of retyped spans to read) into ``--out``, outside the repository:
CoNLL-2003's licence allows no redistribution, and neither does a copy of it.

    python -m src.data.retype_conll --out runs/conll2003-onto [--dir /path/to/conll2003]
"""

from __future__ import annotations

import argparse
import random
import sys
from collections import Counter
from pathlib import Path

from src.data import conll
from src.data.spacy_model import SpacyUnavailable, load_spacy
from src.files import write_atomic, write_json

SAMPLE = 100


def teacher_label(doc, start: int, end: int) -> str | None:
    """The teacher's label of the entity covering most of tokens ``start..end`` (exclusive), if any."""
    best, overlap = None, 0
    for ent in doc.ents:
        shared = min(end, ent.end) - max(start, ent.start)
        if shared > overlap:
            best, overlap = ent.label_, shared
    return best


PLACE_TYPES = {"GPE": "GPE", "LOC": "LOC", "FAC": "LOC"}


def place_vote(votes: Counter) -> str | None:
    """The strict majority of a name's place votes (``{"GPE": n, "LOC": m}``), None on a tie or without votes."""
    gpe, loc = votes.get("GPE", 0), votes.get("LOC", 0)
    return "GPE" if gpe > loc else "LOC" if loc > gpe else None


def retype(conll_label: str, teacher: str | None, vote: str | None = None) -> tuple[str | None, str]:
    """``(our label or None to drop, the rule that decided)``; ``vote``: the name's place majority (LOC spans)."""
    if conll_label == "PER":
        return "PERSON", "PER->PERSON"
    if conll_label == "ORG":
        return "ORG", "ORG->ORG"
    if conll_label == "LOC" and vote is not None:
        return vote, f"LOC->{vote} (name vote)"
    if conll_label == "LOC":
        if teacher in ("LOC", "FAC"):
            return "LOC", f"LOC->LOC (teacher {teacher})"
        return "GPE", "LOC->GPE (teacher GPE)" if teacher == "GPE" else f"LOC->GPE (teacher {teacher or 'none'})"
    if teacher in ("NORP", "EVENT"):
        return teacher, f"MISC->{teacher}"
    return None, f"MISC dropped (teacher {teacher or 'none'})"


def teacher_sentences(nlp, records: list[dict]):
    """``(tokens, teacher doc, [(first, last, CoNLL label, teacher label)])`` for each CoNLL sentence."""
    from spacy.tokens import Doc

    for record in records:
        text = record["text"]
        for sentence in record["sentences"]:
            tokens, words, offset = text[sentence["start"] : sentence["end"]].split(" "), [], sentence["start"]
            for token in tokens:  # CoNLL's own tokens, joined by single spaces (tokens_to_record)
                words.append((offset, offset + len(token)))
                offset += len(token) + 1
            doc = nlp(Doc(nlp.vocab, words=tokens))
            index = {start: i for i, (start, _) in enumerate(words)}
            spans = []
            for entity in record["entities"]:
                if sentence["start"] <= entity["start"] < sentence["end"]:
                    first = index[entity["start"]]
                    last = max(i for i, (s, e) in enumerate(words) if e <= entity["end"])
                    spans.append((first, last, entity["label"], teacher_label(doc, first, last + 1)))
            yield tokens, doc, spans


def retype_split(
    nlp, records: list[dict], split: str, counts: Counter, retyped: list[dict], loc_typing: str = "span"
) -> list[str]:
    """Column lines of one split, one block per CoNLL sentence."""
    sentences = list(teacher_sentences(nlp, records))
    votes: dict[str, Counter] = {}
    if loc_typing == "vote":
        for tokens, _, spans in sentences:
            for first, last, label, teacher in spans:
                if label == "LOC" and teacher in PLACE_TYPES:
                    name = " ".join(tokens[first : last + 1]).casefold()
                    votes.setdefault(name, Counter())[PLACE_TYPES[teacher]] += 1
    lines = []
    for tokens, doc, spans in sentences:
        tags = ["O"] * len(tokens)
        for first, last, conll_label, teacher in spans:
            span = " ".join(tokens[first : last + 1])
            vote = place_vote(votes.get(span.casefold(), Counter())) if conll_label == "LOC" else None
            label, rule = retype(conll_label, teacher, vote)
            counts[rule] += 1
            if vote is not None and vote != retype(conll_label, teacher)[0]:
                counts["LOC name vote changed the span's type"] += 1
            if label is None:
                continue
            tags[first : last + 1] = [f"B-{label}"] + [f"I-{label}"] * (last - first)
            if conll_label in ("LOC", "MISC"):
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
    parser.add_argument(
        "--loc-typing",
        choices=["span", "vote"],
        default="span",
        help="type a CoNLL LOC by the teacher on that span, or by the majority over the name's occurrences",
    )
    args = parser.parse_args()
    try:
        source = conll.find_source(args.dir, hub_id=conll.HUB_ID)
        print(f"Teacher: spaCy en_core_web_sm; {source.describe()}", file=sys.stderr)
        splits = conll.load_splits(source)
        nlp = load_spacy()
    except (conll.ConllNotFound, SpacyUnavailable) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    counts: Counter = Counter()
    retyped: list[dict] = []
    args.out.mkdir(parents=True, exist_ok=True)
    for split, records in splits.items():
        lines = retype_split(nlp, records, split, counts, retyped, args.loc_typing)
        write_atomic(args.out / f"{split}.txt", "\n".join(lines) + "\n")
        print(f"{split}: {sum(1 for line in lines if not line)} sentences", file=sys.stderr)
    sample = random.Random(args.seed).sample(retyped, min(SAMPLE, len(retyped)))
    report = {"loc_typing": args.loc_typing, "counts": dict(counts.most_common()), "sample": sample}
    write_json(args.out / "retyping.json", report)  # written last: the copy is complete once it exists
    for rule, n in counts.most_common():
        print(f"{n:7d}  {rule}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
