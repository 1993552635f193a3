"""Conversions between records and the views other tools need: word-level IOB2 examples (NER, seqeval), sentence
examples (stance), CoNLL column files and Label Studio tasks / exports. Each comes with its way back so it can be
tested as a round trip."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from xml.sax.saxutils import quoteattr

from tqdm import tqdm

from src.data.records import DataError, Record
from src.data.segment import split_sentences
from src.data.validate import around
from src.data.words import spans_to_word_tags, word_spans, word_tags_to_spans
from src.labels import LabelScheme, layer_scores, repair_iob2

# Names in data/labelstudio/config.xml: entity spans, sentence regions, and the per-sentence stance choice.
LS_TEXT, LS_ENTITY, LS_SENTENCE, LS_STANCE = "text", "entity", "sentence", "stance"
SENTENCE_LABEL = "Sentence"
IOB_TAG = re.compile(r"^(O|[BI]-\S+)$")
LS_COLOURS = ("#e6194b", "#f58231", "#3cb44b", "#4363d8", "#911eb4", "#42d4f4", "#f032e6", "#bfef45", "#469990")
# An XML comment: it must never hold a double hyphen (so no command-line options in it).
LS_CONFIG_HEADER = """<!--
  newsframe labelling config for Label Studio (data/GUIDELINES.md is the scheme). Written by
  `python -m src.data labelstudio-config` from the labels of a data config.

  One task per article: {"data": {"text": "<full article>", "doc_id": "<record id>", "source": "seeds/….txt"}}.
  Make tasks with src.data.convert.records_to_labelstudio: each sentence arrives as a pre-made "Sentence" region
  (gold sentences, or split_sentences for a new article), so annotators only
    1. select an entity span and pick one of the entity labels ("entity"), and
    2. click a Sentence region and pick its stance ("stance", a per-region choice, one per sentence).
  Fix a wrong sentence boundary by deleting the region and drawing a new one with the Sentence label.
  Export as JSON; src.data.convert.labelstudio_to_records turns the export into records
  (python -m src.data validate checks them). The names text/entity/sentence/stance are read by that code.
-->
"""


def labelstudio_config(scheme: LabelScheme) -> str:
    """The Label Studio labelling config (XML) for a corpus's labels: entity types on keys 1-9, each stance on the
    first letter of its name not taken yet; every label value escaped as an XML attribute.

    EXAMPLE: the seed scheme gives ``data/labelstudio/config.xml`` as committed (a test keeps them equal).
    """
    entities = "\n".join(
        f'    <Label value={quoteattr(label)} background="{LS_COLOURS[i % len(LS_COLOURS)]}"'
        + (f' hotkey="{i + 1}"' if i < 9 else "")
        + "/>"
        for i, label in enumerate(scheme.entity_labels)
    )
    taken: set[str] = set()
    choices = []
    for label in scheme.stance_labels:
        key = next((c for c in label.lower() if c.isalpha() and c not in taken), None)
        taken.add(key or "")
        choices.append(f"    <Choice value={quoteattr(label)}" + (f' hotkey="{key}"' if key else "") + "/>")
    stances = "\n".join(choices)
    layers = "".join(
        f"""  <Header value={quoteattr(f"{key}: click a Sentence region and choose")}/>
  <Choices name={quoteattr(key)} toName="{LS_TEXT}" perRegion="true" choice="single" required="false"
           visibleWhen="region-selected" whenLabelValue="{SENTENCE_LABEL}">
"""
        + "".join(f"    <Choice value={quoteattr(label)}/>\n" for label in labels)
        + "  </Choices>\n"
        for key, labels in scheme.sentence_layers.items()
    )
    return (
        LS_CONFIG_HEADER
        + f"""<View>
  <Style>.htx-text {{ white-space: pre-wrap; }}</Style>
  <Header value="Entities: select a span, pick a type"/>
  <Labels name="{LS_ENTITY}" toName="{LS_TEXT}" showInline="true">
{entities}
  </Labels>
  <Header value="Sentences: pre-made regions; click one to give its stance"/>
  <Labels name="{LS_SENTENCE}" toName="{LS_TEXT}" showInline="true">
    <Label value="{SENTENCE_LABEL}" background="#d9d9d9" hotkey="0"/>
  </Labels>
  <Text name="{LS_TEXT}" value="$text"/>
  <Choices name="{LS_STANCE}" toName="{LS_TEXT}" perRegion="true" choice="single" required="false"
           visibleWhen="region-selected" whenLabelValue="{SENTENCE_LABEL}">
{stances}
  </Choices>
{layers}</View>
"""
    )


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


CONTEXTS = ("none", "neighbours")


def sentence_context(text: str, spans: Sequence[tuple[int, int]], i: int, mode: str) -> str | None:
    """What a stance model reads beside sentence ``i``: ``none``, or ``neighbours`` (the sentences before and after
    it in the article, joined by a space). Framing often spans two sentences ("Kim wants leverage. Trade is a
    pretext."), so the neighbours tell a lone sentence's stance apart."""
    if mode == "none":
        return None
    if mode != "neighbours":
        raise ValueError(f"stance context must be one of {', '.join(CONTEXTS)}; got {mode!r}")
    around = [text[s:e] for s, e in spans[max(i - 1, 0) : i]] + [text[s:e] for s, e in spans[i + 1 : i + 2]]
    return " ".join(part.strip() for part in around if part.strip())


def stance_examples(records: Sequence[Record], context: str = "none") -> list[dict]:
    """One classification example per sentence that has a stance (sentences with ``stance: None`` are skipped),
    with what the model reads beside it (``src.features.sentence_context``; None without context).

    EXAMPLE: text "Trade grew. Hi" with stances economic_cooperation, None ->
    ``[{"doc_id": ..., "start": 0, "end": 11, "text": "Trade grew.", "label": "economic_cooperation",
    "context": None}]``
    """
    examples = []
    for r in records:
        spans = [(s["start"], s["end"]) for s in r["sentences"]]
        for i, s in enumerate(r["sentences"]):
            if s["stance"] is not None:
                examples.append(
                    {
                        "doc_id": r["id"],
                        "start": s["start"],
                        "end": s["end"],
                        "text": r["text"][s["start"] : s["end"]],
                        "label": s["stance"],
                        "context": sentence_context(r["text"], spans, i, context),
                    }
                )
    return examples


def tokens_to_record(doc_id: str, sentences: list[list[tuple[str, str]]]) -> Record:
    """A record from CoNLL sentences of ``(token, tag)``: tokens joined by " ", sentences by "\\n". IOB1 and IOB2
    are read alike (``repair_iob2``)."""
    lines, entities, spans, offset = [], [], [], 0
    for sent in sentences:
        words = []
        for token, _ in sent:
            words.append((offset, offset + len(token)))
            offset += len(token) + 1
        entities += word_tags_to_spans(words, repair_iob2([tag for _, tag in sent]))
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
        "type": "labels" if from_name in (LS_ENTITY, LS_SENTENCE) else "choices",
        "value": {"start": start, "end": end, "text": text[start:end], **value},
    }
    if score is not None:
        item["score"] = score
    return item


def _regions(text: str, entities: Sequence[dict], sentences: Sequence[dict], layers: Iterable[str] = ()) -> list[dict]:
    """Label Studio result items: one labels region per entity, a ``Sentence`` region per sentence and, for a
    sentence with a stance (or a label of a sentence layer in ``layers``, scored by ``KEY_scores``), a per-region
    choice carrying the same region id."""
    layers = tuple(layers)
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
        for key in layers:
            if sent.get(key) is not None:
                score = layer_scores(sent, key).get(sent[key])
                result.append(_region(f"s{i}", key, text, start, end, {"choices": [sent[key]]}, score))
    return result


def records_to_labelstudio(
    records: Sequence[Record],
    predictions: Sequence[dict] | None = None,
    *,
    model_version: str = "newsframe",
    layers: Iterable[str] = (),
) -> list[dict]:
    """Label Studio tasks (import JSON) for ``data/labelstudio/config.xml`` (or a data config's, with the sentence
    ``layers`` of its ``sentence_labels``), one per record.

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
        if "annotated" in record:  # a partial annotation stays partial through the labelling round trip
            data["annotated"] = list(record["annotated"])
        task: dict = {"data": data}
        if record.get("sentences") or record.get("entities"):
            result = _regions(text, record.get("entities", []), record["sentences"], layers)
            task["annotations"] = [{"result": result}]
        pred = by_id.get(record["id"])
        if pred is not None:
            result = _regions(text, pred["entities"], pred["sentences"], layers)
            prediction = {"model_version": model_version, "result": result}
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


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _region_offsets(text: str, value: dict) -> tuple[int, int] | str:
    """Python ``str`` offsets of a region, or what is wrong with them. Label Studio counts UTF-16 units, which
    differ from Python's after astral characters; the region's own ``text`` (when given) decides which is meant.

    EXAMPLE: ``_region_offsets("😀 Kim", {"start": 3, "end": 6, "text": "Kim"}) -> (2, 5)``
    """
    start, end, quoted = value.get("start"), value.get("end"), value.get("text")
    wrong = [f"value.{k} must be an integer, got {v!r}" for k, v in (("start", start), ("end", end)) if not _is_int(v)]
    if quoted is not None and not isinstance(quoted, str):
        wrong.append(f"value.text must be a string, got {type(quoted).__name__}")
    if wrong:
        return "; ".join(wrong)
    utf16 = [0]
    for ch in text:
        utf16.append(utf16[-1] + (2 if ord(ch) > 0xFFFF else 1))
    if not 0 <= start <= end:
        return f"offsets {start}-{end} are not a region (start must be >= 0 and <= end)"
    if end > utf16[-1]:
        units = f", {utf16[-1]} in UTF-16" if utf16[-1] != len(text) else ""
        return f"offsets {start}-{end} are past the end of the text (length {len(text)}{units})"
    if end <= len(text) and (quoted is None or text[start:end] == quoted):
        return start, end
    to_py = {u: i for i, u in enumerate(utf16)}
    if start in to_py and end in to_py and (quoted is None or text[to_py[start] : to_py[end]] == quoted):
        return to_py[start], to_py[end]
    if quoted is None:
        return f"offsets {start}-{end} split a character outside the Basic Multilingual Plane"
    here = around(text, start, min(end, len(text)))
    return f"region text {quoted!r} does not match the task text at {start}-{end}: {here}"


def _labels(value: dict, key: str) -> list[str] | str:
    """``value[key]`` (the region's labels or choices) or what is wrong with it; absent counts as empty."""
    names = value.get(key, [])
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        return f"value.{key} must be a list of strings, got {names!r}"
    return names


def _task_record(
    task: object, where: str, fallback_id: str, layers: Sequence[str] = ()
) -> tuple[Record | None, list[str]]:
    """The record of one export task, or ``None`` and every problem found in it (each prefixed with ``where``)."""
    data, problem = _task_data(task, where)
    if problem:
        return None, [problem]
    text = data["text"]
    result, problems = _kept_result(task, where)
    if result is None:
        return None, problems
    entities, sentences, choices = _read_regions(result, text, where, problems, layers)
    if problems:
        return None, problems
    if not sentences:
        sentences = {(s, e): (s, e) for s, e in split_sentences(text)}
    spans = [
        {"start": s, "end": e} | {name: chosen.get(key, chosen.get((s, e))) for name, chosen in choices.items()}
        for key, (s, e) in sentences.items()
    ]
    record = {"id": str(data.get("doc_id") or fallback_id)}
    if data.get("source"):
        record["source"] = data["source"]
    if "annotated" in data:  # checked by the validator like any record's
        record["annotated"] = data["annotated"]
    record |= {
        "text": text,
        "entities": sorted(entities, key=lambda e: (e["start"], e["end"])),
        "sentences": sorted(spans, key=lambda s: (s["start"], s["end"])),
    }
    return record, []


def _task_data(task: object, where: str) -> tuple[dict, str | None]:
    """A task's ``data`` (text and doc id checked), or the one problem that stops reading it."""
    if not isinstance(task, dict):
        return {}, f"{where}: must be a JSON object, got {_json_type(task)}"
    data = task.get("data")
    if data is None:
        return {}, f"{where}: missing 'data' (the task's imported fields)"
    if not isinstance(data, dict):
        return {}, f"{where}: 'data' must be an object, got {_json_type(data)}"
    text = data.get("text")
    if text is None:
        return {}, f"{where}: missing 'data.text' (the article text)"
    if not isinstance(text, str):
        return {}, f"{where}: 'data.text' must be a string, got {_json_type(text)}"
    surrogate = next((i for i, c in enumerate(text) if 0xD800 <= ord(c) <= 0xDFFF), None)
    if surrogate is not None:  # JSON allows a lone "\udc80"; no UTF-8 file can hold it
        code = f"U+{ord(text[surrogate]):04X}"
        return {}, f"{where}: 'data.text' holds a lone surrogate ({code}) at offset {surrogate}; fix the export"
    doc_id = data.get("doc_id")
    if doc_id is not None and (not isinstance(doc_id, str | int) or isinstance(doc_id, bool)):
        return {}, f"{where}: 'data.doc_id' must be a string or an integer, got {_json_type(doc_id)}"
    return data, None


def _kept_result(task: dict, where: str) -> tuple[list | None, list[str]]:
    """The result of the last annotation not cancelled (``[]`` without one) and the problems so far; ``None`` as the
    result when the task cannot be read further."""
    problems: list[str] = []
    annotations = task.get("annotations", [])
    if not isinstance(annotations, list):
        return None, [f"{where}: 'annotations' must be a list, got {_json_type(annotations)}"]
    kept = []
    for k, annotation in enumerate(annotations):
        if not isinstance(annotation, dict):
            problems.append(f"{where}: annotations[{k}] must be an object, got {_json_type(annotation)}")
        elif not annotation.get("was_cancelled"):
            kept.append((k, annotation))
    result: object = []
    if kept:
        k, annotation = kept[-1]
        result = annotation.get("result", [])
        if not isinstance(result, list):
            return None, [*problems, f"{where}: annotations[{k}].result must be a list, got {_json_type(result)}"]
    return result, problems


def _read_regions(
    result: list, text: str, where: str, problems: list[str], layers: Sequence[str] = ()
) -> tuple[list[dict], dict[object, tuple[int, int]], dict[str, dict[object, str]]]:
    """Entities, sentence spans by region id and, per sentence choice (the stance, then each of ``layers``), the
    chosen labels by region id (and by span) of a result; its problems are appended to ``problems``."""
    entities, sentences = [], {}
    choices: dict[str, dict[object, str]] = {name: {} for name in (LS_STANCE, *layers)}
    for j, item in enumerate(result):
        at = f"{where}: result[{j}]"
        if not isinstance(item, dict):
            problems.append(f"{at}: must be an object, got {_json_type(item)}")
            continue
        from_name = item.get("from_name")
        if from_name not in (LS_ENTITY, LS_SENTENCE, *choices):
            continue  # a control this project does not use
        rid = item.get("id")
        if rid is None or rid == "":
            problems.append(f"{at}: missing 'id' ({from_name} region)")
            continue
        if not isinstance(rid, str | int) or isinstance(rid, bool):
            problems.append(f"{at}: region 'id' must be a string or an integer, got {_json_type(rid)}")
            continue
        at += f" (id {rid!r})"
        value = item.get("value")
        if not isinstance(value, dict):
            problems.append(f"{at}: 'value' must be an object, got {_json_type(value)}")
            continue
        names = _labels(value, "choices" if from_name in choices else "labels")
        if isinstance(names, str):
            problems.append(f"{at}: {names}")
            continue
        if not names:
            continue  # an emptied region: nothing chosen
        if from_name in choices and "start" not in value and "end" not in value:
            choices[from_name][rid] = names[0]
            continue
        offsets = _region_offsets(text, value)
        if isinstance(offsets, str):
            problems.append(f"{at}: {offsets}")
            continue
        start, end = _trimmed(text, *offsets)
        if from_name in choices:
            choices[from_name][rid] = choices[from_name][(start, end)] = names[0]
        elif from_name == LS_SENTENCE:
            sentences[rid] = (start, end)
        else:
            entities.append({"start": start, "end": end, "label": names[0]})
    return entities, sentences, choices


def _json_type(value: object) -> str:
    """The JSON name of a value's type, as the person who wrote the file knows it."""
    names = {dict: "object", list: "array", str: "string", bool: "boolean", int: "int", float: "number"}
    return "null" if value is None else names.get(type(value), type(value).__name__)


def labelstudio_to_records(export: object, *, name: str = "export", layers: Sequence[str] = ()) -> list[Record]:
    """Records from a Label Studio JSON export made with ``data/labelstudio/config.xml`` (or a data config's: each
    sentence of the records then has a key per sentence layer in ``layers``, its choice or None).

    Per task, the last non-cancelled annotation is used; entity regions and sentence regions are trimmed of outer
    whitespace; a stance choice attaches to its sentence by region id. A task with no sentence regions is segmented
    with ``split_sentences`` (stance ``None``). Run the validator on the result before training.

    Raises ``DataError`` listing every problem of every task (an export edited by hand or cut short), each located
    as ``NAME: task INDEX (id ID): result[J] (id RID): what is wrong``.

    EXAMPLE: ``labelstudio_to_records(records_to_labelstudio(records)) == records`` (for valid records)
    """
    if not isinstance(export, list):
        raise DataError([f"{name}: top level must be a list of tasks, got {_json_type(export)} (use the JSON export)"])
    records, problems = [], []
    for index, task in enumerate(export):
        tid = task.get("id") if isinstance(task, dict) else None
        where = f"{name}: task {index}" + ("" if tid is None else f" (id {tid})")
        record, task_problems = _task_record(task, where, f"labelstudio-{index if tid is None else tid}", tuple(layers))
        problems += task_problems
        if record is not None:
            records.append(record)
    if problems:
        raise DataError(problems)
    return records
