"""Reading and writing corpus records (one JSON object per article), validated on the way in."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from src.data.jsonl import read_json_document, read_json_file
from src.data.validate import LAYERS, validate_items
from src.files import sha256_of, shown_path, write_atomic

Record = dict
# Label reviews of files the project cannot edit (third-party corpora used by path): ``<file name>.review.json``.
REVIEWS_DIR = Path(__file__).resolve().parents[2] / "data" / "reviews"


class DataError(ValueError):
    """An annotation file breaks the format; ``problems`` holds one message per problem (as the validator prints)."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__(f"{len(self.problems)} problem(s) in the data:\n" + "\n".join(self.problems))


def annotates(record: Record, layer: str) -> bool:
    """Whether ``record`` annotates ``layer`` ("entities" or "stance"): a record lists its layers in ``annotated``,
    and one without that field annotates every layer. A layer it does not annotate says nothing (no entity here,
    no stance there), so training and evaluation of that layer skip the record.

    EXAMPLE: ``annotates({"annotated": ["stance"]}, "entities") -> False``
    """
    return layer in record.get("annotated", LAYERS)


def find_review(path: Path, reviews_dir: Path | None = REVIEWS_DIR) -> Path | None:
    """The label review of an annotation file (``REVIEWS_DIR/<file name>.review.json``), or None."""
    review = reviews_dir / f"{path.name}.review.json" if reviews_dir is not None else None
    return review if review is not None and review.is_file() else None


def apply_review(
    items: list[tuple[int, object]], path: Path, review_path: Path, digest: str
) -> tuple[list, dict, list[str]]:
    """The records of ``path`` with the review's decisions applied, the review's provenance and its problems.

    A review (``data/reviews/README.md``) is bound to the bytes it was made for (``sha256``): a file that changed
    since is refused rather than reviewed by a stale list. It may declare the layers the file annotates
    (``annotated``, for records that do not say) and change sentence stances (``changes``: ``id``, ``start``,
    ``end``, ``from``, ``to``, ``why``); each change must find its sentence with the ``from`` label. ``digest`` is
    the sha256 of ``path``.
    """
    review, problems = read_json_document(review_path)
    if problems:
        return items, {}, problems
    if not isinstance(review, dict) or not isinstance(review.get("changes", []), list):
        return items, {}, [f"{review_path}: expected an object with a 'changes' list"]
    if review.get("sha256") != digest:
        return (
            items,
            {},
            [
                f"{review_path}: made for another version of {path} (sha256 {str(review.get('sha256'))[:12]}..., the "
                f"file has {digest[:12]}...): review the file's labels again and update the review, or move it away"
            ],
        )
    by_span = review_changes(review, review_path, problems)
    applied = set()
    out = []
    for number, obj in items:
        if isinstance(obj, dict):
            obj = dict(obj)
            if "annotated" in review and "annotated" not in obj:
                obj["annotated"] = list(review["annotated"])
            if isinstance(obj.get("sentences"), list):
                obj["sentences"] = [dict(s) if isinstance(s, dict) else s for s in obj["sentences"]]
            for sent in obj.get("sentences") if isinstance(obj.get("sentences"), list) else []:
                if not isinstance(sent, dict):
                    continue
                hit = by_span.get((obj.get("id"), sent.get("start"), sent.get("end")))
                if hit is None:
                    continue
                k, change = hit
                if sent.get("stance") != change["from"]:
                    problems.append(
                        f"{review_path}: changes[{k}] expects stance {change['from']!r} at {obj.get('id')} "
                        f"{change['start']}-{change['end']}, the file has {sent.get('stance')!r}"
                    )
                else:
                    sent["stance"] = change["to"]
                applied.add(k)
        out.append((number, obj))
    for k, change in by_span.values():
        if k not in applied:
            problems.append(
                f"{review_path}: changes[{k}]: no sentence {change['start']}-{change['end']} in record {change['id']}"
            )
    provenance = {"path": shown_path(review_path), "sha256": sha256_of([review_path]), "changes": len(by_span)}
    return out, provenance, problems


def review_changes(review: dict, review_path: Path, problems: list[str]) -> dict[tuple, tuple[int, dict]]:
    """The review's changes by ``(id, start, end)``, with their index; a malformed one is added to ``problems``."""
    by_span = {}
    for k, change in enumerate(review.get("changes", [])):
        keys = ("id", "start", "end", "from", "to")
        if not isinstance(change, dict) or any(key not in change for key in keys):
            problems.append(f"{review_path}: changes[{k}] must be an object with {', '.join(keys)}")
            continue
        by_span[(change["id"], change["start"], change["end"])] = (k, change)
    return by_span


def normalised(record: Record) -> Record:
    """A valid record with the layers it does not annotate filled in as empty (no entities, stance None), so code
    that reads ``entities`` or ``stance`` works on every record; ``annotates`` still tells them apart."""
    if annotates(record, "entities") and annotates(record, "stance"):
        return record
    record = {**record, "entities": record.get("entities", [])}
    if not annotates(record, "stance"):
        record["sentences"] = [{**s, "stance": None} for s in record["sentences"]]
    return record


def load_records(
    path: str | Path,
    *,
    entity_labels: Sequence[str] | None = None,
    stance_labels: Sequence[str] | None = None,
    sentence_layers: Mapping[str, Sequence[str]] | None = None,
    root: str | Path | None = None,
    reviews_dir: Path | None = REVIEWS_DIR,
    provenance: dict | None = None,
) -> list[Record]:
    """Records of an annotation file (.jsonl, or .json with one record or a list), validated: training on a bad
    file must fail before it starts, with the validator's messages. A label review of the file in ``reviews_dir``
    (``find_review``) is applied first; ``provenance``, when given, receives the file's and the review's sha256.

    Raises ``DataError`` listing every problem. ``root`` is an extra folder for resolving ``source`` paths. Labels
    are checked against the given lists (a data config's; None: the seed corpus's).

    EXAMPLE: ``load_records("data/annotations/seeds.jsonl")[0]["id"] -> "000_056989c0f52db9f1"``
    """
    path = Path(path)
    items, problems = read_json_file(path)
    review_path = find_review(path, reviews_dir)
    review: dict = {}
    digest = sha256_of([path]) if review_path is not None or provenance is not None else ""
    if review_path is not None and not problems:
        items, review, review_problems = apply_review(items, path, review_path, digest)
        if review_problems:
            raise DataError(review_problems)
    records, problems = validate_items(items, problems, path, entity_labels, stance_labels, root, sentence_layers)
    if problems:
        raise DataError(problems)
    if provenance is not None:
        provenance.update({"path": shown_path(path), "sha256": digest, "records": len(records)})
        if review:
            provenance["review"] = review
    return [normalised(r) for r in records]


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
