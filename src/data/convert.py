"""Conversions between records and the views other tools need: word-level IOB2 examples (NER, seqeval), sentence
examples (stance), CoNLL column files and Label Studio tasks / exports. Each comes with its way back so it can be
tested as a round trip."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from tqdm import tqdm

from src.data.records import Record
from src.data.segment import split_sentences
from src.data.words import spans_to_word_tags, word_spans, word_tags_to_spans

# Names in data/labelstudio/config.xml: entity spans, sentence regions, and the per-sentence stance choice.
LS_TEXT, LS_ENTITY, LS_SENTENCE, LS_STANCE = "text", "entity", "sentence", "stance"
SENTENCE_LABEL = "Sentence"
IOB_TAG = re.compile(r"^(O|[BI]-\S+)$")


def ner_examples(records: Sequence[Record]) -> list[dict]:
    """One word-level IOB2 example per gold sentence; words and offsets come from ``src.data.words.word_spans``.

    EXAMPLE: a record with text "I like London." (one sentence, GPE 7-13) ->
    ``[{"doc_id": ..., "sent_start": 0, "sent_end": 14, "words": ["I", "like", "London", "."],
    "word_starts": [0, 2, 7, 13], "word_ends": [1, 6, 13, 14], "tags": ["O", "O", "B-GPE", "O"]}]``
    """
    examples = []
    for record in records:
        text = record["text"]
        for sent in record["sentences"]:
            start, end = sent["start"], sent["end"]
            words = word_spans(text, start, end)
            inside = [e for e in record["entities"] if start <= e["start"] and e["end"] <= end]
            examples.append(
                {
                    "doc_id": record["id"],
                    "sent_start": start,
                    "sent_end": end,
                    "words": [text[s:e] for s, e in words],
                    "word_starts": [s for s, _ in words],
                    "word_ends": [e for _, e in words],
                    "tags": spans_to_word_tags(words, inside),
                }
            )
    return examples


def example_entities(example: dict, tags: Sequence[str] | None = None) -> list[dict]:
    """Character-offset entities (into the article text) from an NER example's tags, or from ``tags`` (e.g. a
    model's predicted tags for that example's words): the way back from ``ner_examples``.

    EXAMPLE: ``example_entities({"word_starts": [0, 2, 7], "word_ends": [1, 6, 13], "tags": ["O", "O", "B-GPE"]})``
    -> ``[{"start": 7, "end": 13, "label": "GPE"}]``
    """
    words = list(zip(example["word_starts"], example["word_ends"], strict=True))
    return word_tags_to_spans(words, example["tags"] if tags is None else tags)


def stance_examples(records: Sequence[Record]) -> list[dict]:
    """One classification example per sentence that has a stance (sentences with ``stance: None`` are skipped).

    EXAMPLE: text "Trade grew. Hi" with stances economic_cooperation, None ->
    ``[{"doc_id": ..., "start": 0, "end": 11, "text": "Trade grew.", "label": "economic_cooperation"}]``
    """
    return [
        {
            "doc_id": r["id"],
            "start": s["start"],
            "end": s["end"],
            "text": r["text"][s["start"] : s["end"]],
            "label": s["stance"],
        }
        for r in records
        for s in r["sentences"]
        if s["stance"] is not None
    ]


def tokens_to_record(doc_id: str, sentences: list[list[tuple[str, str]]]) -> Record:
    """A record from CoNLL sentences of ``(token, tag)``: tokens joined by " ", sentences by "\\n"."""
    lines, entities, spans, offset = [], [], [], 0
    for sent in sentences:
        words, tags, prev = [], [], "O"
        for token, tag in sent:
            words.append((offset, offset + len(token)))
            offset += len(token) + 1
            # Read IOB1 and IOB2 alike: an I-X that does not continue an X starts an entity.
            if tag.startswith("I-") and prev[2:] != tag[2:]:
                tag = "B-" + tag[2:]
            tags.append(tag)
            prev = tag
        entities += word_tags_to_spans(words, tags)
        spans.append({"start": words[0][0], "end": words[-1][1], "stance": None})
        lines.append(" ".join(token for token, _ in sent))
    return {"id": doc_id, "text": "\n".join(lines), "entities": entities, "sentences": spans}


def read_conll(path: str | Path) -> list[Record]:
    """Records from a CoNLL column file (``WORD ... NER`` per line, blank line between sentences), one per
    ``-DOCSTART-`` document (the whole file is one document if it has none). Entity labels are kept as they are
    (PER, ORG, LOC, MISC); ids are ``<file stem>-<doc number>``; sentences have stance ``None``.

    EXAMPLE: "-DOCSTART- -X- -X- O\\n\\nEU NNP B-NP B-ORG\\nrejects VBZ B-VP O\\n" ->
    ``[{"id": "dev-0000", "text": "EU rejects", "entities": [{"start": 0, "end": 2, "label": "ORG"}], ...}]``
    """
    path = Path(path)
    records: list[Record] = []
    docs: list[list[list[tuple[str, str]]]] = [[]]
    sentence: list[tuple[str, str]] = []
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(tqdm(f, desc=f"reading {path.name}", unit=" lines", disable=None), start=1):
            cols = line.split()
            if not cols or cols[0] == "-DOCSTART-":
                if sentence:
                    docs[-1].append(sentence)
                    sentence = []
                if cols and docs[-1]:
                    docs.append([])
                continue
            if len(cols) < 2 or not IOB_TAG.match(cols[-1]):
                raise ValueError(
                    f"{path}:{lineno}: not CoNLL columns ('WORD ... TAG' with TAG one of O, B-X, I-X): "
                    f"{line.rstrip()[:80]!r}; annotated articles are .jsonl records"
                )
            sentence.append((cols[0], cols[-1]))
    if sentence:
        docs[-1].append(sentence)
    for doc in docs:
        if doc:
            records.append(tokens_to_record(f"{path.stem}-{len(records):04d}", doc))
    return records


def _region(rid: str, from_name: str, text: str, start: int, end: int, value: dict, score: float | None) -> dict:
    item = {
        "id": rid,
        "from_name": from_name,
        "to_name": LS_TEXT,
        "type": "choices" if from_name == LS_STANCE else "labels",
        "value": {"start": start, "end": end, "text": text[start:end], **value},
    }
    if score is not None:
        item["score"] = score
    return item


def _regions(text: str, entities: Sequence[dict], sentences: Sequence[dict]) -> list[dict]:
    """Label Studio result items: one labels region per entity, a ``Sentence`` region per sentence and, for a
    sentence with a stance, a per-region stance choice carrying the same region id."""
    result = []
    for i, ent in enumerate(entities):
        value = {"labels": [ent["label"]]}
        result.append(_region(f"e{i}", LS_ENTITY, text, ent["start"], ent["end"], value, ent.get("score")))
    for i, sent in enumerate(sentences):
        start, end = sent["start"], sent["end"]
        result.append(_region(f"s{i}", LS_SENTENCE, text, start, end, {"labels": [SENTENCE_LABEL]}, None))
        if sent.get("stance") is not None:
            score = (sent.get("scores") or {}).get(sent["stance"])
            result.append(_region(f"s{i}", LS_STANCE, text, start, end, {"choices": [sent["stance"]]}, score))
    return result


def records_to_labelstudio(
    records: Sequence[Record], predictions: Sequence[dict] | None = None, *, model_version: str = "newsframe"
) -> list[dict]:
    """Label Studio tasks (import JSON) for ``data/labelstudio/config.xml``, one per record.

    A record's own entities and sentences become the task's annotation (so gold can be reviewed); ``predictions``
    (prediction records, matched by ``id``) become pre-annotations with their scores. A record with neither sentences
    nor a prediction gets sentence regions from ``split_sentences`` as a pre-annotation, ready for stance choices.

    EXAMPLE: ``records_to_labelstudio([{"id": "a", "text": "Hi."}])`` -> ``[{"data": {"text": "Hi.", "doc_id": "a"},
    "predictions": [{"model_version": "split_sentences", "result": [<Sentence region 0-3>]}]}]``
    """
    by_id = {p["id"]: p for p in predictions or []}
    unknown = set(by_id) - {r["id"] for r in records}
    if unknown:
        raise ValueError(f"predictions for ids not in the records: {sorted(unknown)}")
    tasks = []
    for record in records:
        text = record["text"]
        data = {"text": text, "doc_id": record["id"]}
        if record.get("source"):
            data["source"] = record["source"]
        task: dict = {"data": data}
        if record.get("sentences") or record.get("entities"):
            task["annotations"] = [{"result": _regions(text, record.get("entities", []), record["sentences"])}]
        pred = by_id.get(record["id"])
        if pred is not None:
            prediction = {"model_version": model_version, "result": _regions(text, pred["entities"], pred["sentences"])}
            task["predictions"] = [prediction]
        elif not record.get("sentences"):
            spans = [{"start": s, "end": e} for s, e in split_sentences(text)]
            task["predictions"] = [{"model_version": "split_sentences", "result": _regions(text, [], spans)}]
        tasks.append(task)
    return tasks


def _trimmed(text: str, start: int, end: int) -> tuple[int, int]:
    """A selection without the whitespace annotators often drag into it."""
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def _python_offsets(text: str, value: dict) -> tuple[int, int]:
    """Python ``str`` offsets of a region; Label Studio counts UTF-16 units, which differ after astral characters."""
    start, end = value["start"], value["end"]
    if "text" not in value or text[start:end] == value["text"]:
        return start, end
    utf16 = [0]
    for ch in text:
        utf16.append(utf16[-1] + (2 if ord(ch) > 0xFFFF else 1))
    to_py = {u: i for i, u in enumerate(utf16)}
    if start in to_py and end in to_py and text[to_py[start] : to_py[end]] == value["text"]:
        return to_py[start], to_py[end]
    raise ValueError(f"region {start}-{end} text {value['text']!r} does not match the task text there")


def labelstudio_to_records(export: Sequence[dict]) -> list[Record]:
    """Records from a Label Studio JSON export made with ``data/labelstudio/config.xml``.

    Per task, the last non-cancelled annotation is used; entity regions and sentence regions are trimmed of outer
    whitespace; a stance choice attaches to its sentence by region id. A task with no sentence regions is segmented
    with ``split_sentences`` (stance ``None``). Run the validator on the result before training.

    EXAMPLE: ``labelstudio_to_records(records_to_labelstudio(records)) == records`` (for valid records)
    """
    records = []
    for task in export:
        data, text = task["data"], task["data"]["text"]
        rid = str(data.get("doc_id") or f"labelstudio-{task.get('id', len(records))}")
        annotations = [a for a in task.get("annotations", []) if not a.get("was_cancelled")]
        result = annotations[-1]["result"] if annotations else []
        entities, sentences, stances = [], {}, {}
        for item in result:
            value = item.get("value", {})
            if item.get("from_name") == LS_STANCE and value.get("choices"):
                stances[item["id"]] = value["choices"][0]
                if "start" in value:
                    stances[_trimmed(text, *_python_offsets(text, value))] = value["choices"][0]
            elif item.get("from_name") in (LS_ENTITY, LS_SENTENCE) and value.get("labels"):
                start, end = _trimmed(text, *_python_offsets(text, value))
                if item["from_name"] == LS_SENTENCE:
                    sentences[item["id"]] = (start, end)
                else:
                    entities.append({"start": start, "end": end, "label": value["labels"][0]})
        if not sentences:
            sentences = {(s, e): (s, e) for s, e in split_sentences(text)}
        spans = [
            {"start": s, "end": e, "stance": stances.get(key, stances.get((s, e)))} for key, (s, e) in sentences.items()
        ]
        record = {"id": rid}
        if data.get("source"):
            record["source"] = data["source"]
        record |= {
            "text": text,
            "entities": sorted(entities, key=lambda e: (e["start"], e["end"])),
            "sentences": sorted(spans, key=lambda s: (s["start"], s["end"])),
        }
        records.append(record)
    return records
