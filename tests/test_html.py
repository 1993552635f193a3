"""The HTML view, who-is-framed-how and score thresholds: escaping, counts, name grouping, the CLI formats and the
evaluation page (tiny checkpoints; the real-browser check is tests/test_html_browser.py)."""

from __future__ import annotations

import csv
import io
import json
from html.parser import HTMLParser
from pathlib import Path

import pytest

from src.evaluate.metrics import evaluate_predictions
from src.evaluate.report import write_evaluation
from src.labels import doc_stance, seed_scheme
from src.predict.cli import main
from src.predict.framing import FramingTable, article_keys, framing_rows, name_key, name_tokens
from src.predict.html import DISPLACY_COLORS, entity_verdicts, evidence_sentences, render_page
from src.predict.io import journal_path, run_record_path
from src.predict.threshold import apply_thresholds

SEED = seed_scheme()  # the seed corpus's labels, which these tests' data uses

HOSTILE = 'Putin met Kim in Moscow.\n<script>alert(1)</script> </div> & "quotes" <b>bold</b>\nKim arrived by train.'


class Dom(HTMLParser):
    """Elements (tag, attributes) and the visible text of a page, as a browser's parser would see them."""

    def __init__(self, page: str) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict]] = []
        self.text: list[str] = []
        self.open: list[str] = []
        self.feed(page)

    def handle_starttag(self, tag: str, attrs: list) -> None:
        self.elements.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def with_class(self, name: str) -> list[dict]:
        return [a for _, a in self.elements if name in (a.get("class") or "").split()]


def record(doc_id: str, text: str, entities: list[tuple[str, str, float]], stances: list[tuple[str, float]]) -> dict:
    """A prediction record with the text kept, entities found by their first occurrence, one sentence per line."""
    lines, at, sentences = text.split("\n"), 0, []
    for line, (stance, score) in zip(lines, stances, strict=True):
        rest = {"leverage": 0.0, "economic_cooperation": 0.0, "neutral": 0.0}
        scores = {**{k: (1 - score) / 2 for k in rest}, stance: score}
        sentences.append({"start": at, "end": at + len(line), "text": line, "stance": stance, "scores": scores})
        at += len(line) + 1
    found, seen = [], 0
    for name, label, score in entities:
        start = text.index(name, seen)
        found.append({"start": start, "end": start + len(name), "text": name, "label": label, "score": score})
        seen = start + len(name)
    return {
        "id": doc_id,
        "text": text,
        "entities": found,
        "sentences": sentences,
        "doc_stance": doc_stance((s["stance"] for s in sentences), "neutral"),
    }


def test_page_escapes_everything_and_shows_each_entity_once() -> None:
    doc = record(
        '<img src=x onerror=alert(2)>"',
        HOSTILE,
        [("Putin", "PERSON", 0.9), ("Moscow", "GPE", 0.8), ("<b>bold</b>", '"><script>x</script>', 0.5)],
        [("leverage", 0.7), ("neutral", 0.6), ("economic_cooperation", 0.55)],
    )
    page = render_page([doc], title="</title><script>t()</script>")
    dom = Dom(page)
    tags = [tag for tag, _ in dom.elements]
    assert "script" not in tags and "img" not in tags and "link" not in tags  # nothing runs, nothing is fetched
    assert tags.count("b") == 0 and "http" not in page.replace("http-equiv", "")
    visible = "".join(dom.text)
    assert '<script>alert(1)</script> </div> & "quotes" <b>bold</b>' in visible
    assert '<img src=x onerror=alert(2)>"' in visible and "</title><script>t()</script>" in visible
    marks = dom.with_class("entity")
    assert len(marks) == len(doc["entities"]) == 3
    assert [m["data-label"] for m in marks] == ["PERSON", "GPE", '"><script>x</script>']
    assert marks[0]["style"] == f"background: {DISPLACY_COLORS['PERSON']}" and "0.90" in marks[0]["title"]
    sentences = dom.with_class("sent")
    assert [s["data-stance"] for s in sentences] == ["leverage", "neutral", "economic_cooperation"]
    assert "leverage 0.70" in sentences[0]["title"]  # the score on hover


def test_page_matches_displacy_entity_markup() -> None:
    """The same entity markup as displaCy's manual mode: ``mark.entity`` holding the text, then the label."""
    displacy = pytest.importorskip("spacy.displacy")
    doc = record("d", "Putin met Kim in Moscow.", [("Putin", "PERSON", 0.9), ("Moscow", "GPE", 0.8)], [("neutral", 1)])
    ours = render_page([doc])
    theirs = displacy.render(
        [{"text": doc["text"], "ents": [{k: e[k] for k in ("start", "end", "label")} for e in doc["entities"]]}],
        style="ent",
        manual=True,
        page=True,
    )

    def marks(page: str) -> list[tuple[str, str]]:
        found: list[list[str]] = []

        class Marks(HTMLParser):
            depth = 0

            def handle_starttag(self, tag: str, attrs: list) -> None:
                if tag == "mark" and "entity" in (dict(attrs).get("class") or "").split():
                    found.append([])
                    self.depth = 1
                elif self.depth:
                    self.depth += 1

            def handle_endtag(self, tag: str) -> None:
                self.depth = max(0, self.depth - 1)

            def handle_data(self, data: str) -> None:
                if self.depth and data.strip():
                    found[-1].append(data.strip())

        Marks().feed(page)
        return [tuple(parts) for parts in found]

    assert marks(ours) == marks(theirs) == [("Putin", "PERSON"), ("Moscow", "GPE")]
    assert "background: #aa9cfc" in theirs and "background: #aa9cfc" in ours  # displaCy's colours


def test_evidence_is_the_best_scored_sentences_of_the_document_stance() -> None:
    text = "a\nb\nc\nd\ne"
    doc = record(
        "d",
        text,
        [],
        [("leverage", 0.6), ("neutral", 0.9), ("leverage", 0.95), ("leverage", 0.7), ("economic_cooperation", 0.99)],
    )
    assert doc["doc_stance"] == "leverage" and evidence_sentences(doc, "neutral") == [2, 3, 0]
    mixed = record("m", "a\nb\nc", [], [("leverage", 0.6), ("economic_cooperation", 0.8), ("neutral", 0.9)])
    assert mixed["doc_stance"] == "mixed" and evidence_sentences(mixed, "neutral") == [1, 0]
    assert evidence_sentences(record("n", "a", [], [("neutral", 0.9)]), "neutral") == []
    page = Dom(render_page([doc]))
    assert [s["id"] for s in page.with_class("evidence")] == ["doc-0-s0", "doc-0-s2", "doc-0-s3"]


def test_names_group_by_normalised_text_and_type() -> None:
    assert name_key("Kim  Jong-un's") == name_key("KIM JONGUN") == "kim jongun"
    assert name_key("Russia’s") == "russia" and name_tokens("Kim Jong-un") == ("kim", "jong", "un")
    entities = [
        {"text": "Kim Jong-un", "label": "PERSON"},
        {"text": "Kim", "label": "PERSON"},
        {"text": "Kim's", "label": "PERSON"},
        {"text": "Kim", "label": "ORG"},  # another type: not merged
        {"text": "Kim Yo-jong", "label": "PERSON"},
        {"text": "Kim Jongun", "label": "PERSON"},  # same key, so Kim Jong-un is the most frequent longer name
        {"text": "Putin", "label": "PERSON"},
    ]
    assert article_keys(entities) == [
        "kim jongun",
        "kim jongun",
        "kim jongun",
        "kim",
        "kim yojong",
        "kim jongun",
        "putin",
    ]
    assert article_keys([{"text": "Kim", "label": "PERSON"}, {"text": "Kim Yo-jong", "label": "PERSON"}]) == [
        "kim yojong",
        "kim yojong",
    ]


def test_framing_counts_each_mentioning_sentence_once_per_entity() -> None:
    a = record(
        "a",
        "Kim Jong-un and Kim met Putin.\nKim went home.\nPutin stayed.",
        [
            ("Kim Jong-un", "PERSON", 0.9),
            ("Kim", "PERSON", 0.9),
            ("Putin", "PERSON", 0.9),
            ("Kim", "PERSON", 0.9),
            ("Putin", "PERSON", 0.9),
        ],
        [("leverage", 0.9), ("economic_cooperation", 0.9), ("neutral", 0.9)],
    )
    b = record("b", "Kim spoke.", [("Kim", "PERSON", 0.9)], [("neutral", 0.9)])  # another article: no longer name
    b["sentences"][0]["stance"] = None  # e.g. dropped by --min-score
    rows = {(r["key"], r["label"]): r for r in framing_rows([a, b, {"id": "x", "error": {}, "entities": []}])}
    kim = rows[("kim jongun", "PERSON")]
    assert (kim["entity"], kim["sentences"], kim["articles"]) == ("Kim Jong-un", 2, 1)
    assert (kim["leverage"], kim["economic_cooperation"], kim["neutral"], kim["variants"]) == (1, 1, 0, ["Kim"])
    putin = rows[("putin", "PERSON")]
    assert (putin["sentences"], putin["leverage"], putin["neutral"]) == (2, 1, 1)
    assert rows[("kim", "PERSON")]["no_stance"] == 1

    table = FramingTable()
    for doc in (a, b):
        table.add(doc)
    out = io.StringIO()
    table.write_csv(out)
    parsed = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert list(parsed[0]) == [
        "entity",
        "label",
        "key",
        "sentences",
        "articles",
        "leverage",
        "economic_cooperation",
        "neutral",
        "no_stance",
        "variants",
    ]
    assert parsed[0]["entity"] == "Kim Jong-un" and parsed[0]["sentences"] == "2" and parsed[0]["variants"] == "Kim"


def test_thresholds_drop_or_flag_and_derive_the_document_stance_again() -> None:
    doc = record(
        "d",
        "Putin met Kim.\nTrade grew.\nTalks.",
        [("Putin", "PERSON", 0.9), ("Kim", "PERSON", 0.4)],
        [("leverage", 0.45), ("economic_cooperation", 0.8), ("neutral", 0.9)],
    )
    dropped = apply_thresholds(doc, min_score=0.5, none_label="neutral")
    assert [e["text"] for e in dropped["entities"]] == ["Putin"]
    assert [s["stance"] for s in dropped["sentences"]] == [None, "economic_cooperation", "neutral"]
    assert dropped["sentences"][0]["scores"] == doc["sentences"][0]["scores"]  # scores stay for the reader
    assert doc["doc_stance"] == "mixed" and dropped["doc_stance"] == "economic_cooperation"
    flagged = apply_thresholds(doc, flag_below=0.5, none_label="neutral")
    assert [e.get("low_score", False) for e in flagged["entities"]] == [False, True]
    assert [s.get("low_score", False) for s in flagged["sentences"]] == [True, False, False]
    assert flagged["doc_stance"] == "mixed" and doc["entities"][1].get("low_score") is None  # input untouched
    error = {"id": "x", "entities": [], "sentences": [], "doc_stance": None, "error": {"reason": "r"}}
    assert apply_thresholds(error, 0.5, 0.9) is error
    page = Dom(render_page([flagged]))
    assert len(page.with_class("low-score")) == 2


def test_evaluation_page_marks_errors_against_gold(tmp_path: Path) -> None:
    text = "Putin met Kim Jong-un in Moscow.\nTrade grew with Russia."
    gold = {
        "id": "g",
        "text": text,
        "entities": [
            {"start": 0, "end": 5, "label": "PERSON"},  # predicted right
            {"start": 10, "end": 21, "label": "PERSON"},  # predicted "Kim" only: wrong boundary
            {"start": 25, "end": 31, "label": "GPE"},  # predicted ORG: wrong type
            {"start": 49, "end": 55, "label": "GPE"},  # not predicted: missed
        ],
        "sentences": [
            {"start": 0, "end": 32, "stance": "leverage"},
            {"start": 33, "end": 56, "stance": "economic_cooperation"},
        ],
    }
    pred = {
        "id": "g",
        "entities": [
            {"start": 0, "end": 5, "text": "Putin", "label": "PERSON", "score": 0.9},
            {"start": 10, "end": 13, "text": "Kim", "label": "PERSON", "score": 0.9},
            {"start": 25, "end": 31, "text": "Moscow", "label": "ORG", "score": 0.9},
            {"start": 33, "end": 38, "text": "Trade", "label": "ORG", "score": 0.9},  # spurious
        ],
        "sentences": [
            {"start": 0, "end": 32, "text": text[:32], "stance": "neutral", "scores": {"neutral": 0.6}},
            {
                "start": 33,
                "end": 56,
                "text": text[33:],
                "stance": "economic_cooperation",
                "scores": {"economic_cooperation": 0.7},
            },
        ],
        "doc_stance": "economic_cooperation",
    }
    verdicts, missed = entity_verdicts(pred["entities"], gold["entities"])
    assert [v for v, _ in verdicts] == ["correct", "wrong_span", "wrong_type", "spurious"]
    assert [m["start"] for m in missed] == [49] and text[49:55] == "Russia"

    for task in ("ner", "stance"):
        metrics = evaluate_predictions(task, [gold], [pred], SEED.stance_labels, SEED.none_label)
        paths = write_evaluation(metrics, [gold], [pred], tmp_path / task, SEED)
        page = Dom(paths["html"].read_text(encoding="utf-8"))
        assert paths["html"].name == "report.html" and paths["html"].parent == paths["report"].parent
        assert len(page.with_class("entity")) == 4
        if task == "ner":
            assert len(page.with_class("missed")) == 1 and len(page.with_class("err-type")) == 1
            assert len(page.with_class("err-span")) == 1 and len(page.with_class("err-spurious")) == 1
            assert not page.with_class("err-stance")
        else:
            assert not page.with_class("missed") and not page.with_class("err-type")
            [wrong] = page.with_class("err-stance")
            assert wrong["data-stance"] == "neutral" and "gold: leverage" in wrong["title"]


# -- the command line on tiny checkpoints -------------------------------------------------------------------------


def test_cli_html_entity_framing_and_thresholds(runs: dict[str, Path], tmp_path: Path) -> None:
    docs = tmp_path / "docs.jsonl"
    docs.write_text(
        "".join(json.dumps({"id": f"d{i}", "text": t}) + "\n" for i, t in enumerate([HOSTILE, "Putin met Kim."]))
        + "{broken\n",
        encoding="utf-8",
    )
    models = ["--ner", str(runs["ner"]), "--stance", str(runs["stance"]), "--device", "cpu"]
    out = tmp_path / "out.jsonl"
    assert main([*models, "--output", str(out), str(docs)]) == 1
    preds = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    n_entities = sum(len(p["entities"]) for p in preds)
    assert n_entities >= 4

    page_path = tmp_path / "out.html"
    assert main([*models, "--format", "html", "--output", str(page_path), str(docs)]) == 1
    page = Dom(page_path.read_text(encoding="utf-8"))
    assert len(page.with_class("entity")) == n_entities and "script" not in [t for t, _ in page.elements]
    assert "<script>alert(1)</script>" in "".join(page.text) and "could not be predicted" in "".join(page.text)
    assert not journal_path(page_path).exists() and not run_record_path(page_path).exists()
    # what the scores mean, per model, under the title (the model card's words)
    assert "Stance scores: raw softmax probabilities, not calibrated" in "".join(page.text)

    framing = tmp_path / "framing.csv"
    assert main([*models, "--format", "entity-framing", "--output", str(framing), str(docs)]) == 1
    with framing.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert sum(int(r["sentences"]) for r in rows) >= 1 and {r["label"] for r in rows} <= set(DISPLACY_COLORS)

    strict = tmp_path / "strict.jsonl"
    assert main([*models, "--min-score", "1", "--output", str(strict), str(docs)]) == 1
    kept = [json.loads(line) for line in strict.read_text(encoding="utf-8").splitlines()]
    assert all(
        p["entities"] == [] and all(s["stance"] is None for s in p["sentences"]) for p in kept if "error" not in p
    )
    assert {p["doc_stance"] for p in kept if "error" not in p} == {"neutral"}
    flagged = tmp_path / "flagged.jsonl"
    assert main([*models, "--flag-below", "1", "--output", str(flagged), str(docs)]) == 1
    marked = [json.loads(line) for line in flagged.read_text(encoding="utf-8").splitlines()]
    assert sum(len(p["entities"]) for p in marked) == n_entities
    assert all(e["low_score"] for p in marked for e in p["entities"])
    with pytest.raises(SystemExit) as usage:
        main([*models, "--min-score", "1.5", str(docs)])
    assert usage.value.code == 2


def test_resume_refuses_another_threshold(runs: dict[str, Path], tmp_path: Path) -> None:
    """--min-score changes predictions, so a journal written without it is not continued with it."""
    from src.files import write_json
    from src.predict.cli import build_parser, describe_run

    docs = tmp_path / "docs.jsonl"
    docs.write_text(json.dumps({"id": "a", "text": "Putin met Kim."}) + "\n", encoding="utf-8")
    out = tmp_path / "out.html"
    args = ["--ner", str(runs["ner"]), "--format", "html", "--output", str(out), str(docs)]
    journal_path(out).write_text("")
    write_json(run_record_path(out), describe_run(build_parser().parse_args(args)))
    with pytest.raises(SystemExit) as usage:
        main([*args, "--min-score", "0.5", "--resume"])
    assert usage.value.code == 2
    assert main([*args, "--resume"]) == 0  # the same run continues (here: from nothing) and writes the page
    assert len(Dom(out.read_text(encoding="utf-8")).with_class("entity")) >= 1


def test_control_and_bidi_characters_are_shown_not_obeyed() -> None:
    """U+202E in an id would reverse what follows it (a spoofed id), ESC and NUL would reach the page unchanged."""
    doc = record("abc\u202etxt.exe", "Kim\x1b[31m met\x00 Putin.\u2066", [("Putin", "PERSON", 0.9)], [("neutral", 0.9)])
    page = render_page([doc], title="t\u202e")
    assert not any(c in page for c in "\u202e\u2066\x1b\x00")
    visible = "".join(Dom(page).text)
    assert "abc[U+202E]txt.exe" in visible and "Kim[U+001B][31m met[U+0000] PutinPERSON.[U+2066]" in visible
    assert "t[U+202E]" in visible


def test_another_tasks_sentence_layer_is_shown_after_each_sentence_escaped() -> None:
    from src.labels import LabelScheme

    doc = record("a", 'Kim said: "go".\nPutin left.', [], [("leverage", 0.7), ("neutral", 0.6)])
    doc["sentences"][0] |= {"quote": "<yes>", "quote_scores": {"<yes>": 0.8, "no": 0.2}}
    doc["sentences"][1] |= {"quote": None, "quote_scores": {}}
    scheme = LabelScheme((), ("leverage", "neutral"), "neutral", {"quote": ("no", "<yes>")})
    page = render_page([doc], scheme=scheme)
    dom = Dom(page)
    [mark] = dom.with_class("layer")
    assert mark["data-layer"] == "quote" and mark["title"] == "<yes> 0.80 · no 0.20"
    assert "quote: <yes>" in "".join(dom.text) and "<yes>" not in page  # escaped
    assert Dom(render_page([doc])).with_class("layer") == []  # without a scheme naming the layer, nothing of it
