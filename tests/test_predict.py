"""Prediction on tiny checkpoints: schema and offsets, batching invariance, windows, bad inputs, resume, the CLI."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from src.data.segment import split_sentences
from src.data.words import word_spans
from src.files import write_json
from src.labels import doc_stance, repair_iob2, seed_scheme
from src.predict import Predictor
from src.predict.cli import build_parser, describe_run, main
from src.predict.io import iter_inputs, journal_path, read_journal, run_record_path
from tests.conftest import ROOT

# the seed corpus's labels, which these tests' data uses
STANCE_LABELS = seed_scheme().stance_labels

SCRIPT = ROOT / "scripts" / "predict.py"

TEXTS = [
    "Putin met Kim in Moscow on Monday.\r\nThe visit to Moscow was planned for spring. Vladimir Putin said so.",
    "",
    "   \n\n  ",
    "Kim’s train – “armoured” – reached Moscow.\nAnalysts in Seoul said Putin wants weapons 🚀.",
    "Sanctions hurt trade between the two countries.",
]


@pytest.fixture(scope="module")
def predictor(runs: dict[str, Path]) -> Predictor:
    return Predictor.from_pretrained(ner=str(runs["ner"]), stance=str(runs["stance"]), device="cpu")


def assert_same(a: list[dict], b: list[dict]) -> None:
    """Equal predictions up to float noise from padding (scores within 1e-5)."""
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        key = lambda e: (e["start"], e["end"], e["label"])  # noqa: E731
        assert [key(e) for e in x["entities"]] == [key(e) for e in y["entities"]]
        assert np.allclose([e["score"] for e in x["entities"]], [e["score"] for e in y["entities"]], atol=1e-5)
        assert [(s["start"], s["end"], s["stance"]) for s in x["sentences"]] == [
            (s["start"], s["end"], s["stance"]) for s in y["sentences"]
        ]
        for s, t in zip(x["sentences"], y["sentences"], strict=True):
            assert np.allclose(list(s["scores"].values()), list(t["scores"].values()), atol=1e-5)
        assert x["doc_stance"] == y["doc_stance"]


# -- the Predictor ------------------------------------------------------------------------------------------------


def test_schema_offsets_and_sentence_cover(predictor: Predictor) -> None:
    preds = predictor.predict(TEXTS)
    assert [p["id"] for p in preds] == [str(i) for i in range(len(TEXTS))]
    for text, pred in zip(TEXTS, preds, strict=True):
        assert set(pred) == {"id", "entities", "sentences", "doc_stance"}
        assert [(s["start"], s["end"]) for s in pred["sentences"]] == split_sentences(text)
        covered = set().union(*(range(s["start"], s["end"]) for s in pred["sentences"]))
        assert all(i in covered for i, ch in enumerate(text) if not ch.isspace())
        starts = {s for s, _ in word_spans(text)}
        ends = {e for _, e in word_spans(text)}
        for ent in pred["entities"]:
            assert set(ent) == {"start", "end", "text", "label", "score"}
            assert text[ent["start"] : ent["end"]] == ent["text"]
            assert ent["start"] in starts and ent["end"] in ends  # whole words only
            assert "##" not in ent["text"] and 0 <= ent["score"] <= 1
            assert any(s["start"] <= ent["start"] and ent["end"] <= s["end"] for s in pred["sentences"])
        for sent in pred["sentences"]:
            assert text[sent["start"] : sent["end"]] == sent["text"]
            assert sent["stance"] in STANCE_LABELS and list(sent["scores"]) == list(STANCE_LABELS)
            assert sum(sent["scores"].values()) == pytest.approx(1, abs=1e-5)
            assert sent["stance"] == max(sent["scores"], key=sent["scores"].get)
        assert pred["doc_stance"] == doc_stance((s["stance"] for s in pred["sentences"]), "neutral")
    assert preds[1] == {"id": "1", "entities": [], "sentences": [], "doc_stance": "neutral"}
    assert preds[2]["entities"] == [] and preds[2]["sentences"] == []


def test_entities_come_out_of_a_trained_checkpoint(predictor: Predictor) -> None:
    [pred] = predictor.predict(["Putin met Kim in Moscow on Monday."])
    found = {(e["text"], e["label"]) for e in pred["entities"]}
    assert {("Putin", "PERSON"), ("Moscow", "GPE")} <= found


def test_same_document_alone_and_in_a_batch(runs: dict[str, Path]) -> None:
    small = Predictor.from_pretrained(ner=str(runs["ner"]), stance=str(runs["stance"]), device="cpu", batch_size=3)
    batch = small.predict(TEXTS)
    for i, text in enumerate(TEXTS):
        [alone] = small.predict([text])
        assert_same([{**alone, "id": str(i)}], [batch[i]])


def test_chunks_do_not_change_results(runs: dict[str, Path], predictor: Predictor) -> None:
    """A long document is cut into chunks of sentences; results must not depend on where the cuts fall."""
    long_doc = " ".join(TEXTS) * 20
    chunked = Predictor.from_pretrained(
        ner=str(runs["ner"]), stance=str(runs["stance"]), device="cpu", chunk_sentences=7, chunk_docs=2
    )
    assert_same(chunked.predict([*TEXTS, long_doc]), predictor.predict([*TEXTS, long_doc]))


def test_long_sentence_gets_windows_and_every_word_a_tag(runs: dict[str, Path]) -> None:
    narrow = Predictor.from_pretrained(ner=str(runs["ner"]), device="cpu", max_length=16, stride=4)
    words = ("Sanctions hurt trade and Putin met Kim in Moscow again " * 12).split()
    assert len(words) > 16 * 4
    [tagged] = narrow.tag_words([words])
    assert len(tagged) == len(words)
    [pred] = narrow.predict([" ".join(words)])
    assert len(pred["sentences"]) == 1
    assert [e["text"] for e in pred["entities"] if e["label"] == "PERSON"].count("Putin") == 12  # last window too


def test_predict_records_uses_the_records_sentences(predictor: Predictor) -> None:
    text = "Putin met Kim. In Moscow."
    gold = [{"start": 0, "end": 25, "stance": None}]
    [pred] = predictor.predict_records([{"id": "a", "text": text, "sentences": gold}])
    assert pred["id"] == "a" and [(s["start"], s["end"]) for s in pred["sentences"]] == [(0, 25)]


def test_classify_sentences_matches_the_document_path(predictor: Predictor) -> None:
    sentences = ["Sanctions hurt trade between the two countries.", "Putin met Kim.", ""]
    results = predictor.classify_sentences(sentences)
    assert len(results) == 3 and all(r["stance"] in STANCE_LABELS for r in results)
    [pred] = predictor.predict([sentences[0]])
    assert np.allclose(list(results[0]["scores"].values()), list(pred["sentences"][0]["scores"].values()), atol=1e-5)


def test_one_task_only(runs: dict[str, Path]) -> None:
    [ner_only] = Predictor.from_pretrained(ner=str(runs["ner"]), device="cpu").predict(["Putin met Kim."])
    assert ner_only["entities"] and ner_only["doc_stance"] is None and ner_only["sentences"][0]["stance"] is None
    stance_only = Predictor.from_pretrained(stance=str(runs["stance"] / "model"), device="cpu")
    assert stance_only.predict(["Putin met Kim."])[0]["entities"] == []
    with pytest.raises(ValueError, match="needs a checkpoint of the ner task"):
        stance_only.tag_words([["Putin"]])
    with pytest.raises(ValueError, match="stance model, given as the ner"):
        Predictor.from_pretrained(ner=str(runs["stance"]))


def test_repair_iob2_starts_an_entity_at_a_dangling_inside_tag() -> None:
    assert repair_iob2(["O", "I-PER", "I-PER", "I-ORG", "B-GPE", "I-GPE"]) == [
        "O",
        "B-PER",
        "I-PER",
        "B-ORG",
        "B-GPE",
        "I-GPE",
    ]


def test_checkpoints_open_in_transformers_pipeline(runs: dict[str, Path]) -> None:
    from transformers import pipeline

    ner = pipeline("token-classification", model=str(runs["ner"] / "model"), device="cpu")
    assert {r["entity"] for r in ner("Putin met Kim in Moscow.")} & {"B-PERSON", "B-GPE"}
    stance = pipeline("text-classification", model=str(runs["stance"] / "model"), device="cpu")
    assert stance("Sanctions hurt trade.")[0]["label"] in STANCE_LABELS


# -- inputs ---------------------------------------------------------------------------------------------------------


def write_inputs(root: Path) -> list[str]:
    """A folder of .txt (nested, CRLF kept), a .jsonl with good and bad lines, a bad-UTF-8 file and a missing one."""
    (root / "docs" / "sub").mkdir(parents=True)
    (root / "docs" / "b.txt").write_bytes(TEXTS[0].encode())
    (root / "docs" / "sub" / "a.txt").write_bytes(TEXTS[3].encode())
    (root / "docs" / "empty.txt").write_bytes(b"")
    (root / "docs" / "notes.md").write_bytes(b"ignored")
    (root / "bad.txt").write_bytes(b"Putin met\nKim \xff in Moscow.")
    lines = [
        json.dumps({"id": "j1", "text": TEXTS[4]}),
        "{not json",
        json.dumps({"id": "j3"}),
        "",
        json.dumps({"text": "Putin met Kim."}),
        json.dumps(["a list"]),
    ]
    (root / "docs.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return [str(root / "docs"), str(root / "bad.txt"), str(root / "missing.txt"), str(root / "docs.jsonl")]


def test_inputs_ids_texts_and_errors(tmp_path: Path) -> None:
    records = list(iter_inputs(write_inputs(tmp_path)))
    jsonl = str(tmp_path / "docs.jsonl")
    assert [r["id"] for r in records] == [
        "b",
        "empty",
        "sub/a",
        "bad",
        "missing",
        "j1",
        f"{jsonl}:2",
        "j3",
        f"{jsonl}:5",
        f"{jsonl}:6",
    ]
    by_id = {r["id"]: r for r in records}
    assert by_id["b"]["text"] == TEXTS[0]  # CRLF kept: offsets match the file's bytes as decoded
    assert by_id["empty"]["text"] == ""
    assert by_id["bad"]["error"] == {
        "file": str(tmp_path / "bad.txt"),
        "line": 2,
        "reason": "not UTF-8: byte 0xff at byte 14",
    }
    assert "No such file" in by_id["missing"]["error"]["reason"]
    assert by_id[f"{jsonl}:2"]["error"]["line"] == 2 and "malformed JSON" in by_id[f"{jsonl}:2"]["error"]["reason"]
    assert by_id["j3"]["error"] == {"file": jsonl, "line": 3, "reason": 'record has no "text" string'}
    assert by_id[f"{jsonl}:5"]["text"] == "Putin met Kim."
    assert "JSON object" in by_id[f"{jsonl}:6"]["error"]["reason"]
    assert all(r["entities"] == [] and r["sentences"] == [] for r in records if "error" in r)


def test_read_journal_drops_a_trailing_partial_line(tmp_path: Path) -> None:
    journal = tmp_path / "out.jsonl.partial"
    journal.write_text('{"id": "a", "entities": []}\n{"id": "b", "entities": []}\n{"id": "c", "ent', encoding="utf-8")
    assert read_journal(journal) == [{"id": "a", "entities": []}, {"id": "b", "entities": []}]
    assert journal.read_text(encoding="utf-8") == '{"id": "a", "entities": []}\n{"id": "b", "entities": []}\n'


# -- the command line -----------------------------------------------------------------------------------------------


def run_cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], input=stdin, capture_output=True, text=True, cwd=ROOT, timeout=120
    )


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_cli_bad_inputs_do_not_stop_the_batch(runs: dict[str, Path], tmp_path: Path) -> None:
    inputs = write_inputs(tmp_path)
    out = tmp_path / "out.jsonl"
    proc = run_cli("--ner", str(runs["ner"]), "--stance", str(runs["stance"]), "--output", str(out), *inputs)
    assert proc.returncode == 1, proc.stderr
    assert "5 document(s) failed" in proc.stderr
    preds = read_jsonl(out)
    assert [p["id"] for p in preds] == [r["id"] for r in iter_inputs(inputs)]
    assert sum("error" in p for p in preds) == 5 and not journal_path(out).exists()
    b = next(p for p in preds if p["id"] == "b")
    assert {(e["text"], e["label"]) for e in b["entities"]} >= {("Putin", "PERSON")}
    assert all(TEXTS[0][e["start"] : e["end"]] == e["text"] for e in b["entities"])
    empty = next(p for p in preds if p["id"] == "empty")
    assert empty["entities"] == [] and empty["sentences"] == []

    again = run_cli("--ner", str(runs["ner"]), "--output", str(out), *inputs)
    assert again.returncode == 2 and "--overwrite" in again.stderr  # never overwrite silently
    assert run_cli("--output", str(out), *inputs).returncode == 2  # no checkpoint given


def test_cli_stdin_to_stdout(runs: dict[str, Path]) -> None:
    lines = json.dumps({"id": "x", "text": "Putin met Kim."}) + "\n" + json.dumps({"id": "y", "text": ""}) + "\n"
    proc = run_cli("--ner", str(runs["ner"]), "-", stdin=lines)
    assert proc.returncode == 0, proc.stderr
    preds = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [p["id"] for p in preds] == ["x", "y"] and preds[0]["entities"][0]["text"] == "Putin"


def test_resume_after_a_killed_run_equals_an_uninterrupted_run(runs: dict[str, Path], tmp_path: Path) -> None:
    docs = tmp_path / "docs.jsonl"
    docs.write_text("".join(json.dumps({"id": f"d{i}", "text": t}) + "\n" for i, t in enumerate(TEXTS * 3)))
    models = ["--ner", str(runs["ner"]), "--stance", str(runs["stance"]), "--device", "cpu"]
    full = tmp_path / "full.jsonl"
    assert main([*models, "--output", str(full), str(docs)]) == 0
    expected = full.read_bytes()

    out = tmp_path / "out.jsonl"
    lines = expected.split(b"\n")
    lines = [line + b"\n" for line in lines[:-1]]
    journal_path(out).write_bytes(b"".join(lines[:6]) + lines[6][: len(lines[6]) // 2])  # killed mid-line
    run = describe_run(build_parser().parse_args([*models, "--output", str(out), str(docs)]))
    run["committed"] = {"lines": 4, "bytes": len(b"".join(lines[:4]))}  # lines 5-6 came after the last commit
    write_json(run_record_path(out), run)
    with pytest.raises(SystemExit) as usage:
        main([*models, "--output", str(out), str(docs)])
    assert usage.value.code == 2  # an interrupted run is neither overwritten nor appended to without --resume
    assert main([*models, "--output", str(out), "--resume", str(docs)]) == 0
    assert out.read_bytes() == expected and not journal_path(out).exists() and not run_record_path(out).exists()
    assert main([*models, "--output", str(out), "--resume", str(docs)]) == 0  # complete: nothing to do


def test_resume_refuses_changed_inputs(runs: dict[str, Path], tmp_path: Path) -> None:
    docs = tmp_path / "docs.jsonl"
    docs.write_text(json.dumps({"id": "new", "text": "Putin."}) + "\n")
    out = tmp_path / "out.jsonl"
    journal_path(out).write_text(json.dumps({"id": "old", "entities": []}) + "\n")
    with pytest.raises(SystemExit) as usage:
        main(["--ner", str(runs["ner"]), "--output", str(out), "--resume", str(docs)])
    assert usage.value.code == 2


def test_cli_csv_and_labelstudio_formats(runs: dict[str, Path], tmp_path: Path) -> None:
    docs = tmp_path / "docs.jsonl"
    docs.write_text(json.dumps({"id": "a", "text": TEXTS[0]}) + "\n{broken\n", encoding="utf-8")
    models = ["--ner", str(runs["ner"]), "--stance", str(runs["stance"]), "--device", "cpu"]
    out_csv = tmp_path / "out.csv"
    assert main([*models, "--format", "csv", "--output", str(out_csv), str(docs)]) == 1
    with out_csv.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert {r["kind"] for r in rows} == {"entity", "sentence", "error"}
    for row in rows:
        if row["kind"] != "error":
            assert TEXTS[0][int(row["start"]) : int(row["end"])] == row["text"]

    pytest.importorskip("src.data.convert")
    out_ls = tmp_path / "tasks.json"
    assert main([*models, "--format", "labelstudio", "--output", str(out_ls), str(docs)]) == 1
    [task] = json.loads(out_ls.read_text(encoding="utf-8"))
    assert task["data"]["text"] == TEXTS[0] and task["predictions"][0]["result"]


def test_python_m_src_predict_is_the_batch_command() -> None:
    """``python -m src.predict`` is the entry point beside src.train and src.evaluate; scripts/predict.py its alias."""
    import subprocess
    import sys

    from tests.conftest import ROOT

    module = subprocess.run([sys.executable, "-m", "src.predict", "--help"], cwd=ROOT, capture_output=True, text=True)
    script = subprocess.run([sys.executable, "scripts/predict.py", "--help"], cwd=ROOT, capture_output=True, text=True)
    assert module.returncode == 0 and "--ner" in module.stdout and module.stdout == script.stdout


def test_model_reads_the_task_from_the_folder(runs: dict[str, Path], tmp_path: Path, capsys) -> None:
    """``--model`` gives a folder of any task: the same records as ``--ner`` / ``--stance``; a task given twice or a
    folder that is no model is one usage error naming the flag."""
    docs = tmp_path / "docs.jsonl"
    docs.write_text("".join(json.dumps({"id": f"d{i}", "text": t}) + "\n" for i, t in enumerate(TEXTS)))
    by_flag, by_model = tmp_path / "flags.jsonl", tmp_path / "model.jsonl"
    assert main(["--ner", str(runs["ner"]), "--stance", str(runs["stance"]), "-o", str(by_flag), str(docs)]) == 0
    assert main(["--model", str(runs["stance"]), "--model", str(runs["ner"]), "-o", str(by_model), str(docs)]) == 0
    assert read_jsonl(by_model) == read_jsonl(by_flag)
    capsys.readouterr()
    for argv, message in (
        (["--stance", str(runs["stance"]), "--model", str(runs["stance"])], "a second stance model"),
        (["--model", str(tmp_path)], f"--model {tmp_path}:"),
    ):
        with pytest.raises(SystemExit) as usage:
            main([*argv, str(docs)])
        assert usage.value.code == 2 and message in capsys.readouterr().err
