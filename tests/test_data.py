"""Tests of src.data: the validator (a bad fixture per rule), loading, conversions (as round trips), folds,
segmentation and the datasheet table."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from src.data import segment
from src.data.__main__ import main
from src.data.convert import (
    example_entities,
    labelstudio_to_records,
    ner_examples,
    read_conll,
    records_to_labelstudio,
    stance_examples,
)
from src.data.folds import as_dataset, leave_one_article_out
from src.data.records import DataError, load_records, save_records
from src.data.segment import split_sentences
from src.data.stats import corpus_stats, datasheet_table
from src.data.validate import validate_file
from src.labels import seed_scheme
from tests.conftest import CONLL_SNIPPET

# the seed corpus's labels, which these tests' data uses
ENTITY_LABELS, STANCE_LABELS = seed_scheme().entity_labels, seed_scheme().stance_labels

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).parent / "fixtures"
GOOD = FIXTURES / "good.jsonl"
SEEDS = ROOT / "data" / "annotations" / "seeds.jsonl"
CORPUS = SEEDS if SEEDS.exists() else GOOD  # the real corpus once it exists, else the small fixture
CONLL_DEV = ROOT.parent / "shared" / "benchmarks" / "conll2003" / "dev.txt"


@pytest.fixture(scope="module")
def corpus() -> list[dict]:
    return load_records(CORPUS)


# --- validation ---------------------------------------------------------------------------------------------------


def test_corpus_and_fixture_are_valid() -> None:
    assert validate_file(CORPUS) == []
    assert validate_file(GOOD) == []
    assert main(["validate", str(GOOD)]) == 0


@pytest.mark.skipif(not SEEDS.exists(), reason="seeds.jsonl not assembled yet")
def test_seeds_use_every_label(corpus: list[dict]) -> None:
    assert {e["label"] for r in corpus for e in r["entities"]} == set(ENTITY_LABELS)
    assert {s["stance"] for r in corpus for s in r["sentences"]} == set(STANCE_LABELS)
    assert len(corpus) == 5


# fixture name -> text every message for it must contain; each also names the file line and (where there is one)
# the record id, offset and the text around it.
BAD = {
    "malformed_json": ":2: malformed JSON",
    "missing_field": "record mini: missing field 'sentences'",
    "wrong_type": "record mini: entities[0] field 'start' must be int",
    "text_differs": 'record mini: text differs from source mini.txt at offset 79: record "Trade with Russia gr⟦o⟧w',
    "source_missing": "record mini: source file 'no_such_file.txt' not found",
    "out_of_bounds": "record mini: entity ORG 83-500 is out of bounds",
    "empty_span": "record mini: entity PERSON 0-0 is empty",
    "outer_whitespace": 'record mini: entity PERSON 0-12 has outer whitespace: "⟦Kim Jong-un ⟧met',
    "overlap": "record mini: entity PERSON 4-24 overlaps entity PERSON 0-11",
    "crossing": "record mini: entity DATE 49-64 is not inside one sentence (crosses a sentence boundary or lies "
    'outside all sentences): "n in Vladivostok on ⟦Thursday.\\nTrade⟧',
    "uncovered": 'record mini: text 59-93 is not covered by any sentence: "vostok on Thursday.\\n⟦Trade with',
    "sentence_overlap": "record mini: sentence 49-93 overlaps or precedes the sentence before it (ends at 58)",
    "unknown_label": "record mini: unknown entity label 'PER' at 83-87",
    "unknown_stance": "record mini: unknown stance 'positive' of sentence 0-58",
    "word_boundary": 'record mini: entity PERSON 0-7 does not start and end on word boundaries: "⟦Kim Jon⟧g-un',
    "duplicate_id": ":2: record mini: duplicate id (first at",
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_fixture_gets_its_message(name: str, capsys: pytest.CaptureFixture) -> None:
    path = FIXTURES / f"bad_{name}.jsonl"
    problems = validate_file(path)
    assert problems, f"{path} passed the validator"
    assert any(BAD[name] in p for p in problems), problems
    assert all(p.startswith(f"{path}:") for p in problems)
    # Loading for training fails with the same messages, and the command line prints them and exits non-zero.
    with pytest.raises(DataError) as err:
        load_records(path)
    assert err.value.problems == problems
    assert main(["validate", str(GOOD), str(path)]) == 1
    assert capsys.readouterr().out.splitlines() == problems


def test_source_resolves_from_the_file_folder_and_repo_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # neither the working directory nor an absolute path is needed
    assert validate_file(GOOD) == []
    record = json.loads(GOOD.read_text(encoding="utf-8"))
    record["source"] = "tests/fixtures/mini.txt"  # relative to the repo root, file elsewhere
    save_records([record], tmp_path / "elsewhere" / "x.jsonl")
    assert validate_file(tmp_path / "elsewhere" / "x.jsonl") == []


def test_overlap_nested_inside_a_long_entity_is_caught(tmp_path: Path) -> None:
    record = json.loads(GOOD.read_text(encoding="utf-8"))
    record["entities"] = [
        {"start": 0, "end": 30, "label": "PERSON"},
        {"start": 4, "end": 7, "label": "PERSON"},
        {"start": 16, "end": 24, "label": "PERSON"},
    ]
    save_records([record], tmp_path / "nested.jsonl")
    problems = validate_file(tmp_path / "nested.jsonl")
    assert [p for p in problems if "overlaps entity PERSON 0-30" in p] == [p for p in problems if "overlaps" in p]
    assert len([p for p in problems if "overlaps" in p]) == 2


def test_json_file_with_one_record_validates(tmp_path: Path) -> None:
    record = json.loads(GOOD.read_text(encoding="utf-8"))
    shutil.copy(FIXTURES / "mini.txt", tmp_path / "mini.txt")
    (tmp_path / "one.json").write_text(json.dumps(record, indent=1), encoding="utf-8")
    assert validate_file(tmp_path / "one.json") == []
    (tmp_path / "broken.json").write_text('{\n  "id": "x",\n  "text": \n}', encoding="utf-8")
    assert validate_file(tmp_path / "broken.json")[0].startswith(f"{tmp_path / 'broken.json'}:4: malformed JSON")


def test_save_then_load_is_identity(corpus: list[dict], tmp_path: Path) -> None:
    out = tmp_path / "copy.jsonl"
    save_records(corpus, out)
    assert load_records(out, root=CORPUS.parent) == corpus
    assert [p.name for p in tmp_path.iterdir()] == ["copy.jsonl"]  # no temporary file left behind


# --- conversions --------------------------------------------------------------------------------------------------


def test_ner_examples_round_trip_to_the_same_spans(corpus: list[dict]) -> None:
    examples = ner_examples(corpus)
    assert len(examples) == sum(len(r["sentences"]) for r in corpus)
    for record in corpus:
        back = [e for ex in examples if ex["doc_id"] == record["id"] for e in example_entities(ex)]
        assert back == sorted(record["entities"], key=lambda e: e["start"])
    ex = examples[0]
    text = corpus[0]["text"]
    assert ex["words"] == [text[s:e] for s, e in zip(ex["word_starts"], ex["word_ends"], strict=True)]


def test_ner_example_of_a_known_sentence() -> None:
    record = {"id": "d", "text": "I like London.", "entities": [{"start": 7, "end": 13, "label": "GPE"}],
              "sentences": [{"start": 0, "end": 14, "stance": None}]}  # fmt: skip
    (ex,) = ner_examples([record])
    assert ex["words"] == ["I", "like", "London", "."] and ex["tags"] == ["O", "O", "B-GPE", "O"]
    assert (ex["doc_id"], ex["sent_start"], ex["sent_end"]) == ("d", 0, 14)
    assert (ex["word_starts"], ex["word_ends"]) == ([0, 2, 7, 13], [1, 6, 13, 14])
    assert example_entities(ex, ["O", "B-ORG", "I-ORG", "O"]) == [{"start": 2, "end": 13, "label": "ORG"}]
    assert stance_examples([record]) == []


WORDS = st.sampled_from(["Kim", "U.S.", "Jong-un", "’s", "talks", ",", "Pyongyang", "10"])


@st.composite
def records(draw: st.DrawFn) -> dict:
    """A valid record: sentences of words separated by spaces or line breaks, entities over whole word runs."""
    text, entities, sentences = "", [], []
    for _ in range(draw(st.integers(1, 4))):
        start = len(text)
        for piece in draw(st.lists(WORDS, min_size=1, max_size=6)):
            label = draw(st.sampled_from([None, None, "GPE", "PERSON"]))
            if label and piece[0].isalnum() and piece[-1].isalnum():
                entities.append({"start": len(text), "end": len(text) + len(piece), "label": label})
            text += piece + " "
        sentences.append(
            {"start": start, "end": len(text) - 1, "stance": draw(st.sampled_from([None, *STANCE_LABELS]))}
        )
        text += draw(st.sampled_from(["", "\n", " \n\n"]))
    return {"id": "h", "text": text, "entities": entities, "sentences": sentences}


@settings(max_examples=60, deadline=None)
@given(records())
def test_conversions_round_trip_property(record: dict) -> None:
    from src.data.validate import validate_record

    assert validate_record(record) == []
    assert [e for ex in ner_examples([record]) for e in example_entities(ex)] == record["entities"]
    stance = stance_examples([record])
    assert [(x["start"], x["end"], x["label"]) for x in stance] == [
        (s["start"], s["end"], s["stance"]) for s in record["sentences"] if s["stance"] is not None
    ]
    assert all(x["text"] == record["text"][x["start"] : x["end"]] for x in stance)
    assert labelstudio_to_records(json.loads(json.dumps(records_to_labelstudio([record])))) == [record]


def test_stance_examples_of_the_corpus(corpus: list[dict]) -> None:
    examples = stance_examples(corpus)
    assert len(examples) == sum(s["stance"] is not None for r in corpus for s in r["sentences"])
    assert {x["label"] for x in examples} <= set(STANCE_LABELS)
    first = corpus[0]["sentences"][0]
    assert examples[0]["text"] == corpus[0]["text"][first["start"] : first["end"]]


def test_read_conll_snippet(tmp_path: Path) -> None:
    path = tmp_path / "snippet.txt"
    path.write_text(CONLL_SNIPPET, encoding="utf-8")
    first, second = read_conll(path)
    assert first == {
        "id": "snippet-0000",
        "text": "UN rejects Korean call .\nIrina Volkovska",
        "entities": [
            {"start": 0, "end": 2, "label": "ORG"},
            {"start": 11, "end": 17, "label": "MISC"},
            {"start": 25, "end": 40, "label": "PER"},
        ],
        "sentences": [{"start": 0, "end": 24, "stance": None}, {"start": 25, "end": 40, "stance": None}],
    }
    assert second["id"] == "snippet-0001" and second["text"] == "PYONGYANG 2019-04-25"
    assert validate_file_records([first, second], ["PER", "ORG", "LOC", "MISC"]) == []
    # IOB1 (an entity may start with I-) reads the same as IOB2.
    path.write_text(CONLL_SNIPPET.replace("B-ORG", "I-ORG").replace("B-PER", "I-PER"), encoding="utf-8")
    assert read_conll(path)[0]["entities"] == first["entities"]


def validate_file_records(records: list[dict], entity_labels: list[str]) -> list[str]:
    from src.data.validate import validate_records

    return validate_records(((r["id"], r) for r in records), entity_labels=entity_labels)


@pytest.mark.skipif(not CONLL_DEV.exists(), reason="../shared/benchmarks/conll2003 is not present")
def test_read_conll_dev_matches_published_counts() -> None:
    docs = read_conll(CONLL_DEV)
    assert len(docs) == 216
    assert sum(len(d["sentences"]) for d in docs) == 3250
    assert sum(len(d["entities"]) for d in docs) == 5942
    assert sum(d["text"].count(" ") + d["text"].count("\n") + 1 for d in docs) == 51362  # tokens
    assert validate_file_records(docs, ["PER", "ORG", "LOC", "MISC"]) == []
    tags = [t for ex in ner_examples(docs[:3]) for t in ex["tags"]]
    assert "B-PER" in tags and "I-PER" in tags


def test_labelstudio_round_trip_and_predictions(corpus: list[dict]) -> None:
    tasks = records_to_labelstudio(corpus)
    assert labelstudio_to_records(tasks) == corpus
    pred = {
        "id": corpus[0]["id"],
        "entities": [{**corpus[0]["entities"][0], "text": "x", "score": 0.9}],
        "sentences": [{**corpus[0]["sentences"][0], "text": "x", "stance": "leverage", "scores": {"leverage": 0.7}}],
        "doc_stance": "leverage",
    }
    (task,) = records_to_labelstudio([{"id": corpus[0]["id"], "text": corpus[0]["text"]}], [pred])
    assert "annotations" not in task
    result = task["predictions"][0]["result"]
    assert [(r["from_name"], r.get("score")) for r in result] == [("entity", 0.9), ("sentence", None), ("stance", 0.7)]
    assert result[1]["id"] == result[2]["id"]  # the stance choice belongs to its sentence region
    with pytest.raises(ValueError, match="not in the records"):
        records_to_labelstudio(corpus, [{**pred, "id": "nope"}])


def test_new_article_task_gets_sentence_regions() -> None:
    (task,) = records_to_labelstudio([{"id": "new", "text": "Kim left. Putin stayed.\nEnd"}])
    spans = [(r["value"]["start"], r["value"]["end"]) for r in task["predictions"][0]["result"]]
    assert spans == [(0, 9), (10, 23), (24, 27)]


def test_labelstudio_export_as_label_studio_writes_it() -> None:
    # What Label Studio exports: random region ids, selections with stray spaces, a cancelled annotation,
    # UTF-16 offsets after an emoji, and a per-region stance choice carrying its sentence region's id.
    text = "😀 Kim met Putin.\nTrade grew."
    export = [
        {
            "id": 7,
            "data": {"text": text},
            "annotations": [
                {"was_cancelled": True, "result": []},
                {
                    "was_cancelled": False,
                    "result": [
                        {"id": "Ab1", "from_name": "entity", "to_name": "text", "type": "labels",
                         "value": {"start": 3, "end": 7, "text": "Kim ", "labels": ["PERSON"]}},
                        {"id": "Zq9", "from_name": "sentence", "to_name": "text", "type": "labels",
                         "value": {"start": 0, "end": 17, "text": "😀 Kim met Putin.", "labels": ["Sentence"]}},
                        {"id": "Zq9", "from_name": "stance", "to_name": "text", "type": "choices",
                         "value": {"start": 0, "end": 17, "text": "😀 Kim met Putin.", "choices": ["leverage"]}},
                        {"id": "Kk2", "from_name": "sentence", "to_name": "text", "type": "labels",
                         "value": {"start": 18, "end": 29, "text": "Trade grew.", "labels": ["Sentence"]}},
                    ],
                },
            ],
        }
    ]  # fmt: skip
    (record,) = labelstudio_to_records(export)
    assert record == {
        "id": "labelstudio-7",
        "text": text,
        "entities": [{"start": 2, "end": 5, "label": "PERSON"}],
        "sentences": [{"start": 0, "end": 16, "stance": "leverage"}, {"start": 17, "end": 28, "stance": None}],
    }
    assert validate_file_records([record], ENTITY_LABELS) == []


def test_labelstudio_config_names_match_the_converter() -> None:
    import xml.etree.ElementTree as ET

    view = ET.parse(ROOT / "data" / "labelstudio" / "config.xml").getroot()
    values = {el.get("name"): [c.get("value") for c in el] for el in view if el.get("name")}
    assert values["entity"] == list(ENTITY_LABELS)
    assert values["sentence"] == ["Sentence"]
    assert values["stance"] == list(STANCE_LABELS)
    assert view.find("Choices").get("perRegion") == "true"


# --- folds --------------------------------------------------------------------------------------------------------


def test_leave_one_article_out(corpus: list[dict]) -> None:
    ids = sorted(r["id"] for r in corpus)
    for k, held_out in enumerate(ids):
        train, test = leave_one_article_out(list(reversed(corpus)), k)
        assert [r["id"] for r in test] == [held_out]
        assert sorted(r["id"] for r in train) == [i for i in ids if i != held_out]
    train, test = leave_one_article_out(corpus, None)
    assert (len(train), test) == (len(corpus), [])
    with pytest.raises(ValueError, match=rf"fold {len(ids)} is out of range.*valid folds are 0\.\.{len(ids) - 1}"):
        leave_one_article_out(corpus, len(ids))
    with pytest.raises(ValueError, match="out of range"):
        leave_one_article_out(corpus, -1)


def test_as_dataset(corpus: list[dict]) -> None:
    train, _ = leave_one_article_out(corpus, None)
    ds = as_dataset(ner_examples(train))
    assert ds.num_rows == sum(len(r["sentences"]) for r in train)
    assert {"doc_id", "words", "tags", "word_starts"} <= set(ds.column_names)
    assert as_dataset(stance_examples(train))[0]["label"] in STANCE_LABELS


# --- segmentation -------------------------------------------------------------------------------------------------


def test_split_sentences_rules() -> None:
    text = "Kim met U.S. officials in Hanoi. “Talks failed. Go home.” Mr. Putin left\nHeadline\n\n  By TASS  "
    assert [text[s:e] for s, e in split_sentences(text)] == [
        "Kim met U.S. officials in Hanoi.",
        "“Talks failed.",
        "Go home.”",
        "Mr. Putin left",
        "Headline",
        "By TASS",
    ]


def test_split_sentences_joins_pieces_without_letters() -> None:
    # Tokenised text (CoNLL style) puts quotes and stray periods apart; pysbd made sentences of them.
    text = '" I do n\'t know , " he said . "\nMenlo Park , Calif . .\na) apples b) pears'
    assert [text[s:e] for s, e in split_sentences(text)] == [
        '" I do n\'t know , " he said . "',
        "Menlo Park , Calif . .",
        "a) apples",
        "b) pears",
    ]


LINES = [
    "Kim Jong-un arrived in Vladivostok on Wednesday",
    "Putin said: “We will help” and left",
    "Moscow wants a role — and Pyongyang wants money",
    "1) trade 2) workers 3) sanctions",
    "He said (in Russian) that talks would go on",
    "Calif , 1996-08-22 '",
]


@pytest.mark.parametrize("line", LINES)
def test_split_sentences_shortcut_agrees_with_pysbd(line: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # A line without a sentence-ending mark skips pysbd; forcing pysbd on it must give the same spans.
    quick = split_sentences(line)
    monkeypatch.setattr(segment, "BOUNDARY_RE", re.compile(""))
    assert split_sentences(line) == quick


def test_split_sentences_shortcut_agrees_on_the_corpus(corpus: list[dict], monkeypatch: pytest.MonkeyPatch) -> None:
    quick = [split_sentences(r["text"]) for r in corpus]
    monkeypatch.setattr(segment, "BOUNDARY_RE", re.compile(""))
    assert [split_sentences(r["text"]) for r in corpus] == quick


@settings(max_examples=80, deadline=None)
@given(st.text(alphabet=st.sampled_from(list('ab. \n\t?!"“”U.S’')), max_size=60))
def test_split_sentences_covers_every_character_once(text: str) -> None:
    spans = split_sentences(text)
    covered = [i for s, e in spans for i in range(s, e)]
    assert covered == sorted(set(covered))  # ordered, non-overlapping
    assert all(not text[s].isspace() and not text[e - 1].isspace() and "\n" not in text[s:e] for s, e in spans)
    assert {i for i, c in enumerate(text) if not c.isspace()} <= set(covered)


@pytest.mark.skipif(not SEEDS.exists(), reason="seeds.jsonl not assembled yet")
def test_split_sentences_agrees_with_gold_mostly(corpus: list[dict]) -> None:
    gold = [(r["id"], s["start"], s["end"]) for r in corpus for s in r["sentences"]]
    pred = {(r["id"], s, e) for r in corpus for s, e in split_sentences(r["text"])}
    assert sum(g in pred for g in gold) / len(gold) >= 0.95


# --- datasheet ----------------------------------------------------------------------------------------------------


def test_stats_table(corpus: list[dict], capsys: pytest.CaptureFixture) -> None:
    rows = corpus_stats(corpus)
    total = rows[-1]
    assert total["article"] == "total" and total["articles"] == len(corpus)
    assert total["entities"] == sum(len(r["entities"]) for r in corpus) == sum(total[x] for x in ENTITY_LABELS)
    assert total["sentences"] == sum(total[x] for x in STANCE_LABELS)
    assert all(total[k] == sum(r[k] for r in rows[:-1]) for k in total if k != "article")
    assert main(["stats", str(CORPUS)]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert out == datasheet_table(rows).splitlines()
    assert out[0].startswith("| article | articles | sentences | tokens |") and len(out) == len(corpus) + 3


def test_stats_into_a_closed_pipe_stops_quietly() -> None:
    """``python -m src.data stats FILE | head``: the reader went away, so the command stops without a traceback."""
    read_end, write_end = os.pipe()
    os.close(read_end)  # as `head` does once it has its lines
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "src.data", "stats", str(CORPUS)],
            cwd=ROOT, stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=120,
        )  # fmt: skip
    finally:
        os.close(write_end)
    assert proc.returncode == 1 and proc.stderr == ""


def test_from_labelstudio_command_round_trip(corpus: list[dict], tmp_path: Path) -> None:
    """The README's `python -m src.data from-labelstudio EXPORT -o OUT` on an export-shaped file of the corpus."""
    export = tmp_path / "export.json"
    export.write_text(json.dumps(records_to_labelstudio(corpus[:2])), encoding="utf-8")
    out = tmp_path / "batch2.jsonl"
    assert main(["from-labelstudio", str(export), "-o", str(out)]) == 0
    back = load_records(out, root=ROOT)
    keys = ("id", "text", "entities", "sentences")
    assert [{k: r[k] for k in keys} for r in back] == [{k: r[k] for k in keys} for r in corpus[:2]]


def test_validate_and_stats_take_the_labels_of_a_data_config(tmp_path: Path, capsys) -> None:
    """A corpus with labels of its own is checked against its own data config, not the seeds'."""
    rename = {"PERSON": "PER", "leverage": "pressure", "economic_cooperation": "trade", "neutral": "none"}
    records = load_records(SEEDS)
    for r in records:
        r["entities"] = [e | {"label": rename.get(e["label"], e["label"])} for e in r["entities"]]
        r["sentences"] = [s | {"stance": rename.get(s["stance"], s["stance"])} for s in r["sentences"]]
    corpus = tmp_path / "mine.jsonl"
    save_records(records, corpus)
    config = tmp_path / "mine.yaml"
    labels = "entity_labels: [PER, NORP, ORG, GPE, LOC, DATE, EVENT]\nstance_labels: [pressure, trade, none]\n"
    config.write_text(labels + "stance_none_label: none\n")
    assert main(["validate", str(corpus)]) == 1  # the seeds' labels refuse the renamed ones
    capsys.readouterr()
    assert main(["validate", "--config", str(config), str(corpus)]) == 0
    assert main(["stats", "--config", str(config), str(corpus)]) == 0
    table = capsys.readouterr().out
    assert "pressure" in table and "PER" in table and "leverage" not in table
    for bad in ("entity_labels: []\n", labels, labels + "stance_none_label: neutral\n"):  # no 'no frame' label
        config.write_text(bad)
        with pytest.raises(SystemExit) as usage:
            main(["validate", "--config", str(config), str(corpus)])
        assert usage.value.code == 2


def test_the_labelstudio_config_is_written_from_the_data_config(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """The committed config is the seed config's output; another corpus's labels (escaped) get their own config with
    distinct hotkeys, and nothing of the seed labels."""
    import xml.etree.ElementTree as ET

    from src.data.convert import labelstudio_config
    from src.labels import LabelScheme

    committed = Path("data/labelstudio/config.xml").read_text(encoding="utf-8")
    assert labelstudio_config(seed_scheme()) == committed
    mine = tmp_path / "mine.yaml"
    mine.write_text(
        "entity_labels: [PER, NORP, 'R&D \"lab\"']\nstance_labels: [pressure, press, trade, none]\n"
        "stance_none_label: none\n",
        encoding="utf-8",
    )
    assert main(["labelstudio-config", "--config", str(mine)]) == 0
    xml = capsys.readouterr().out
    view = ET.fromstring(xml)  # the whole file: its comment must be well-formed too
    entities = view.find("Labels[@name='entity']")
    assert [label.get("value") for label in entities] == ["PER", "NORP", 'R&D "lab"']
    stances = view.find("Choices[@name='stance']")
    assert [c.get("value") for c in stances] == ["pressure", "press", "trade", "none"]
    keys = [c.get("hotkey") for c in stances]
    assert keys == ["p", "r", "t", "n"] and len(set(keys)) == len(keys)
    assert not any(label in xml for label in ("leverage", "economic_cooperation", "PERSON", "GPE"))
    assert labelstudio_config(LabelScheme(("A",), ("x", "y"), "y")).count("<Choice ") == 2


def test_a_sentence_layer_of_another_task_round_trips_through_label_studio(corpus: list[dict]) -> None:
    """A data config's ``sentence_labels`` (a plug-in task's layer) gets its own per-region choice in the labelling
    config (its key and labels escaped), its labels go to Label Studio and come back, and the validator checks them."""
    import xml.etree.ElementTree as ET

    from src.data.convert import labelstudio_config
    from src.data.validate import validate_record
    from src.labels import LabelScheme

    layers = {"quote": ("no", 'y<"es">')}
    view = ET.fromstring(labelstudio_config(LabelScheme(("A",), ("x", "y"), "y", layers)))
    quote = view.find("Choices[@name='quote']")
    assert quote.get("perRegion") == "true" and [c.get("value") for c in quote] == ["no", 'y<"es">']
    labelled = [
        r | {"sentences": [s | {"quote": ("no", 'y<"es">', None)[i % 3]} for i, s in enumerate(r["sentences"])]}
        for r in corpus
    ]
    tasks = records_to_labelstudio(labelled, layers=layers)
    choices = [r for r in tasks[0]["annotations"][0]["result"] if r["from_name"] == "quote"]
    assert choices and all(r["type"] == "choices" for r in choices)
    assert labelstudio_to_records(tasks, layers=tuple(layers)) == labelled
    assert labelstudio_to_records(tasks) == corpus  # a converter not told of the layer leaves it out
    bad = labelled[0] | {"sentences": [labelled[0]["sentences"][0] | {"quote": "maybe"}, *labelled[0]["sentences"][1:]]}
    [problem] = validate_record(bad, sentence_layers=layers, where="f.jsonl:1")
    first = bad["sentences"][0]
    assert problem.startswith(f"f.jsonl:1: record {bad['id']}: unknown quote 'maybe' of sentence {first['start']}-")
    assert validate_record(bad) == []  # a layer no config names is not checked
