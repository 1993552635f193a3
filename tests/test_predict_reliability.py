"""Batch prediction that survives bad documents, changed inputs, concurrent runs, kills and a tampered cache."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
import unicodedata
from pathlib import Path

import numpy as np
import pytest

from src.files import write_json
from src.predict import Predictor
from src.predict.cli import build_parser, describe_run, main
from src.predict.io import (
    iter_inputs,
    journal_path,
    lock_output,
    read_journal,
    run_record_path,
    unlock_output,
)
from src.tasks import ner as ner_task
from tests.conftest import ROOT
from tests.test_predict import TEXTS, assert_same

SCRIPT = ROOT / "scripts" / "predict.py"
SURROGATE = "Kim \udc80 met Putin."


@pytest.fixture(scope="module")
def predictor(runs: dict[str, Path]) -> Predictor:
    return Predictor.from_pretrained(ner=str(runs["ner"]), stance=str(runs["stance"]), device="cpu", batch_size=4)


def models(runs: dict[str, Path]) -> list[str]:
    return ["--ner", str(runs["ner"]), "--stance", str(runs["stance"]), "--device", "cpu"]


def write_docs(path: Path, texts: list[str]) -> Path:
    path.write_text("".join(json.dumps({"id": f"d{i}", "text": t}) + "\n" for i, t in enumerate(texts)))
    return path


def usage_error(argv: list[str], capsys: pytest.CaptureFixture) -> str:
    """The message of a usage error (exit 2) from the command line."""
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    return capsys.readouterr().err


def make_partial(out: Path, argv: list[str], lines: list[bytes], committed: int) -> None:
    """The state a killed run leaves: the journal holds ``lines``, the first ``committed`` of them committed."""
    journal_path(out).write_bytes(b"".join(lines))
    run = describe_run(build_parser().parse_args(argv))
    run["committed"] = {"lines": committed, "bytes": len(b"".join(lines[:committed]))}
    write_json(run_record_path(out), run)


def jsonl_lines(data: bytes) -> list[bytes]:
    return [line + b"\n" for line in data.split(b"\n")[:-1]]


# -- one bad document ---------------------------------------------------------------------------------------------


def test_a_lone_surrogate_is_that_documents_error_and_the_batch_goes_on(predictor: Predictor) -> None:
    texts = [TEXTS[0], SURROGATE, TEXTS[3]]
    preds = predictor.predict(texts)
    assert preds[1]["id"] == "1" and preds[1]["entities"] == [] and preds[1]["sentences"] == []
    assert preds[1]["error"]["reason"] == "not valid Unicode: lone surrogate U+DC80 at offset 4"
    assert set(preds[1]["error"]) == {"file", "line", "reason"}
    assert_same([preds[0], preds[2]], predictor.predict([texts[0], texts[2]]))


def test_an_exception_in_a_batch_fails_only_its_document(predictor: Predictor, monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever breaks inside a batch (here the tagger, on one document's words), its batch-mates are redone alone."""
    real = ner_task.tag_words

    def fragile(model, sentences: list[list[str]]) -> list:
        if any("Boom" in words for words in sentences):
            raise RuntimeError("tokenizer exploded")
        return real(model, sentences)

    monkeypatch.setattr(ner_task, "tag_words", fragile)
    preds = predictor.predict([TEXTS[0], "Boom went the train.", TEXTS[4]])
    assert preds[1]["error"]["reason"] == "prediction failed: RuntimeError: tokenizer exploded"
    assert "error" not in preds[0] and "error" not in preds[2]
    monkeypatch.undo()
    assert_same([preds[0], preds[2]], predictor.predict([TEXTS[0], TEXTS[4]]))


def test_cli_a_bad_jsonl_text_is_an_error_record_with_file_and_line(
    runs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    docs = write_docs(tmp_path / "docs.jsonl", [TEXTS[0], SURROGATE, TEXTS[4]])
    out = tmp_path / "out.jsonl"
    assert main([*models(runs), "--output", str(out), str(docs)]) == 1
    preds = [json.loads(line) for line in out.read_bytes().split(b"\n")[:-1]]
    assert [p["id"] for p in preds] == ["d0", "d1", "d2"] and "error" not in preds[2]
    assert preds[1]["error"] == {
        "file": str(docs),
        "line": 2,
        "reason": '"text" is not valid Unicode: lone surrogate U+DC80 at offset 4',
    }


def test_an_undecodable_file_name_is_an_error_record(tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "a.txt").write_text("Putin met Kim.")
    try:
        (folder / os.fsdecode(b"\xff.txt")).write_text("Kim.")
    except (OSError, UnicodeEncodeError):
        pytest.skip("this file system does not take non-UTF-8 names")
    records = list(iter_inputs([str(folder)]))
    assert records[0]["id"] == "a" and records[1]["id"] == "\\udcff"
    assert records[1]["error"]["reason"] == "file name is not UTF-8"
    json.dumps(records[1], ensure_ascii=False).encode("utf-8")  # writable


def test_decomposed_names_are_one_entity_with_exact_offsets(
    predictor: Predictor, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A tagger that knows "José" and "Montréal" (as a model trained on composed text does) finds them in NFD text
    too: the combining accent stays inside the word instead of splitting the name in two."""
    known = {"José": "B-PERSON", "Montréal": "B-GPE"}

    def tagger(model, sentences: list[list[str]]) -> list[list[tuple[str, float]]]:
        return [[(known.get(unicodedata.normalize("NFC", w), "O"), 0.9) for w in words] for words in sentences]

    monkeypatch.setattr(ner_task, "tag_words", tagger)
    text = unicodedata.normalize("NFD", "José flew to Montréal.")
    [pred] = predictor.predict([text])
    assert [(e["start"], e["end"], e["text"], e["label"]) for e in pred["entities"]] == [
        (0, 5, "Jose\u0301", "PERSON"),
        (14, 23, "Montre\u0301al", "GPE"),
    ]


def test_a_zero_width_joiner_does_not_split_a_name(predictor: Predictor) -> None:
    """The real (toy) model: "Pu\u200dtin" is one word, which the tokenizer reads as "putin", so one PERSON."""
    [pred] = predictor.predict(["Pu\u200dtin met Kim in Mosco\u0301w."])
    found = [(e["start"], e["end"], e["text"], e["label"]) for e in pred["entities"]]
    assert (0, 6, "Pu\u200dtin", "PERSON") in found and (18, 25, "Mosco\u0301w", "GPE") in found


# -- options and the output, before any model is loaded -------------------------------------------------------------


@pytest.fixture
def no_weights(monkeypatch: pytest.MonkeyPatch) -> None:
    """Loading weights (torch or a cached ONNX export) fails the test: the checks below must come before it."""

    def refuse(*_: object, **__: object) -> None:
        raise AssertionError("weights were loaded")

    monkeypatch.setattr("src.predict.engine.load_checkpoint", refuse)
    monkeypatch.setattr("src.predict.ort.load_export", refuse)  # a cached ONNX export is weights too


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--batch-size", "0"], "--batch-size: must be at least 1, got 0"),
        (["--batch-size", "-1"], "--batch-size: must be at least 1, got -1"),
        (["--threads", "0"], "--threads: must be at least 1, got 0"),
        (["--max-length", "1000"], "--max-length 1000: longer than the model's 128 positions"),
        (["--max-length", "64", "--stride", "63"], "--stride 63: must be smaller than the window length 64"),
    ],
)
def test_bad_numeric_options_are_usage_errors(
    runs: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture,
    no_weights: None,
    options: list[str],
    message: str,
) -> None:
    docs = write_docs(tmp_path / "docs.jsonl", [TEXTS[0]])
    err = usage_error([*models(runs), *options, str(docs)], capsys)
    assert message in err and "Traceback" not in err


def test_api_refuses_a_window_longer_than_the_model(runs: dict[str, Path], no_weights: None) -> None:
    with pytest.raises(ValueError, match="max_length 1000: longer than the model's 128 positions"):
        Predictor.from_pretrained(ner=str(runs["ner"]), device="cpu", max_length=1000)
    with pytest.raises(ValueError, match="batch_size 0"):
        Predictor.from_pretrained(ner=str(runs["ner"]), device="cpu", batch_size=0)


def test_output_problems_are_refused_or_fixed_before_loading(
    runs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture, no_weights: None
) -> None:
    docs = write_docs(tmp_path / "docs.jsonl", [TEXTS[0]])
    assert "is a folder; give a file name" in usage_error([*models(runs), "-o", str(tmp_path), str(docs)], capsys)
    (tmp_path / "file").write_text("")
    err = usage_error([*models(runs), "-o", str(tmp_path / "file" / "out.jsonl"), str(docs)], capsys)
    assert f"--output {tmp_path / 'file' / 'out.jsonl'}: cannot create its folder" in err
    # A missing folder is created (the check above proves it happens before the weights load, which fails here).
    with pytest.raises(AssertionError, match="weights were loaded"):
        main([*models(runs), "-o", str(tmp_path / "new" / "sub" / "out.jsonl"), str(docs)])
    assert (tmp_path / "new" / "sub").is_dir()


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_output_folder_is_refused(
    runs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture, no_weights: None
) -> None:
    docs = write_docs(tmp_path / "docs.jsonl", [TEXTS[0]])
    locked = tmp_path / "ro"
    locked.mkdir(mode=0o555)
    err = usage_error([*models(runs), "-o", str(locked / "out.jsonl"), str(docs)], capsys)
    assert f"cannot write in {locked}" in err


def test_a_second_run_on_the_same_output_fails_at_once(
    runs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture, no_weights: None
) -> None:
    docs = write_docs(tmp_path / "docs.jsonl", [TEXTS[0]])
    out = tmp_path / "out.jsonl"
    held = lock_output(out)  # as a running predict.py holds it
    try:
        err = usage_error([*models(runs), "-o", str(out), str(docs)], capsys)
        assert f"{out}: another run is writing it" in err
        assert not journal_path(out).exists()
    finally:
        unlock_output(out, held)
    assert not (tmp_path / "out.jsonl.lock").exists()


def test_two_processes_on_one_output_one_refused(runs: dict[str, Path], tmp_path: Path) -> None:
    """Two real runs at once: one writes the output, the other stops with exit 2 and writes nothing."""
    docs = write_docs(tmp_path / "docs.jsonl", TEXTS * 20)
    out = tmp_path / "out.jsonl"
    argv = [sys.executable, str(SCRIPT), *models(runs), "-o", str(out), str(docs)]
    first = subprocess.Popen(argv, cwd=ROOT, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not (tmp_path / "out.jsonl.lock").exists() and time.monotonic() < deadline:
        time.sleep(0.01)  # the lock is taken before torch is imported: the first run is seconds from its end
    second = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert second.returncode == 2 and f"{out}: another run is writing it" in second.stderr
    assert first.wait(timeout=180) == 0, first.stderr.read()
    assert len(out.read_bytes().split(b"\n")) == len(TEXTS) * 20 + 1 and not journal_path(out).exists()


# -- inputs ---------------------------------------------------------------------------------------------------------


def test_symlink_loops_in_a_folder_are_reported(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "a.txt").write_text("Putin met Kim.")
    (folder / "loop.txt").symlink_to("loop.txt")
    (folder / "gone.txt").symlink_to("missing.txt")
    (folder / "x").symlink_to("y")
    (folder / "y").symlink_to("x")
    with caplog.at_level(logging.WARNING, logger="src.predict.io"):
        records = {r["id"]: r for r in iter_inputs([str(folder)])}
    assert sorted(records) == ["a", "gone", "loop"]
    assert records["loop"]["error"]["file"] == str(folder / "loop.txt")
    assert "symbolic links" in records["loop"]["error"]["reason"]
    assert "No such file" in records["gone"]["error"]["reason"]
    assert {f"{folder / 'x'}: symlink loop, skipped", f"{folder / 'y'}: symlink loop, skipped"} <= set(caplog.messages)


# -- resume ---------------------------------------------------------------------------------------------------------


@pytest.fixture
def interrupted(runs: dict[str, Path], tmp_path: Path) -> tuple[list[str], Path, bytes]:
    """``(argv, out, expected)``: a run's arguments, its output left as a killed run leaves it, the full output."""
    texts = [*TEXTS, "Kim in Seoul. Putin\u2028met\u0085Kim\u2029in Moscow.", *TEXTS]
    docs = write_docs(tmp_path / "docs.jsonl", texts)
    other = tmp_path / "more.txt"
    other.write_text("Putin met Kim in Moscow.")
    full = tmp_path / "full.jsonl"
    assert main([*models(runs), "--output", str(full), str(docs), str(other)]) == 0
    expected = full.read_bytes()
    out = tmp_path / "out.jsonl"
    argv = [*models(runs), "--output", str(out), str(docs), str(other)]
    lines = jsonl_lines(expected)
    make_partial(out, argv, [*lines[:8], lines[8][:20]], committed=7)
    return argv, out, expected


def test_resume_reads_lines_by_newline_only_and_equals_a_full_run(interrupted: tuple) -> None:
    """A committed record holds raw U+2028, U+0085 and U+2029 (JSON allows them in strings): still one line."""
    argv, out, expected = interrupted
    committed = b"".join(jsonl_lines(expected)[:7])
    assert b"\xe2\x80\xa8" in committed and b"\xe2\x80\xa9" in committed and b"\xc2\x85" in committed
    assert main([*argv, "--resume"]) == 0
    assert out.read_bytes() == expected and not run_record_path(out).exists()


def test_resume_refuses_an_edited_input(interrupted: tuple, capsys: pytest.CaptureFixture) -> None:
    argv, out, _ = interrupted
    docs = Path(argv[-2])
    docs.write_text(docs.read_text().replace("Putin", "Medvedev"))  # same ids, other texts
    err = usage_error([*argv, "--resume"], capsys)
    assert f"input {docs} changed since the interrupted run (size" in err and "--overwrite" in err
    assert journal_path(out).exists()  # nothing lost


def test_resume_refuses_fewer_inputs(interrupted: tuple, capsys: pytest.CaptureFixture) -> None:
    argv, _, _ = interrupted
    err = usage_error([*argv[:-1], "--resume"], capsys)
    assert f"the inputs were {argv[-2]} {argv[-1]}, now {argv[-2]}" in err


def test_resume_refuses_other_models_or_options(
    interrupted: tuple, runs: dict[str, Path], capsys: pytest.CaptureFixture
) -> None:
    argv, _, _ = interrupted
    no_stance = [a for a in argv if a not in ("--stance", str(runs["stance"]))]
    assert "the --stance model was" in usage_error([*no_stance, "--resume"], capsys)
    assert "--max-length was None, now 64" in usage_error([*argv, "--max-length", "64", "--resume"], capsys)
    assert "--format was 'jsonl', now 'csv'" in usage_error([*argv, "--format", "csv", "--resume"], capsys)


def test_resume_refuses_a_journal_written_on_other_engines(interrupted: tuple, capsys: pytest.CaptureFixture) -> None:
    """``auto`` can resolve to bf16 on one CPU and fp32 on another: the run record names each model's engine, and a
    resume that would run others is refused; a record of the same engines resumes."""
    argv, out, expected = interrupted
    record = json.loads(run_record_path(out).read_text(encoding="utf-8"))
    other = record | {"engines": {"ner": "torch bfloat16 none", "stance": "torch bfloat16 none"}}
    run_record_path(out).write_text(json.dumps(other), encoding="utf-8")
    message = usage_error([*argv, "--resume"], capsys)
    assert "was written on other engines (ner: torch bfloat16 none, stance: torch bfloat16 none; now ner: " in message
    same = record | {"engines": {"ner": "onnx float32 none", "stance": "onnx float32 none"}}
    if importlib.util.find_spec("onnxruntime") is None:
        same["engines"] = {"ner": "torch float32 none", "stance": "torch float32 none"}
    run_record_path(out).write_text(json.dumps(same), encoding="utf-8")
    assert main([*argv, "--resume"]) == 0 and out.read_bytes() == expected


def test_resume_refuses_a_journal_without_run_record(interrupted: tuple, capsys: pytest.CaptureFixture) -> None:
    argv, out, _ = interrupted
    run_record_path(out).unlink()
    assert "has no readable run record" in usage_error([*argv, "--resume"], capsys)


def test_resume_refuses_a_damaged_journal_naming_the_line(interrupted: tuple, capsys: pytest.CaptureFixture) -> None:
    argv, out, _ = interrupted
    lines = jsonl_lines(journal_path(out).read_bytes())
    for bad in (b"[1, 2]\n", b'{"no": "id"}\n', b"{not json\n", b'{"id": "\xff"}\n'):
        damaged = [*lines[:2], bad, *lines[3:]]
        make_partial(out, argv, damaged, committed=7)
        err = usage_error([*argv, "--resume"], capsys)
        assert f"{journal_path(out)}:3: not a" in err and "--overwrite" in err and "Traceback" not in err
        assert journal_path(out).read_bytes() == b"".join(damaged)  # left as it was


def test_read_journal_keeps_only_committed_lines(tmp_path: Path) -> None:
    journal = tmp_path / "out.jsonl.partial"
    lines = [json.dumps({"id": str(i), "entities": []}).encode() + b"\n" for i in range(3)]
    journal.write_bytes(b"".join(lines))
    assert [r["id"] for r in read_journal(journal, committed=len(lines[0]))] == ["0"]
    assert journal.read_bytes() == lines[0]


def test_kill_and_resume_equals_an_uninterrupted_run(runs: dict[str, Path], tmp_path: Path) -> None:
    """300 documents; the run is SIGKILLed once its run record has committed lines (its journal may hold more),
    then resumed."""
    texts = [f"{TEXTS[i % 5]} Report {i}: Putin met Kim in Moscow." for i in range(300)]
    docs = write_docs(tmp_path / "docs.jsonl", texts)
    args = [*models(runs), str(docs)]
    full = tmp_path / "full.jsonl"
    assert main([*args, "--output", str(full)]) == 0

    out = tmp_path / "out.jsonl"
    command = [sys.executable, str(SCRIPT), *args, "--output", str(out)]
    proc = subprocess.Popen(command, cwd=ROOT, stderr=subprocess.DEVNULL)
    committed, deadline = 0, time.monotonic() + 120
    while committed == 0 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
        with contextlib.suppress(OSError, ValueError):  # not written yet, or being replaced
            committed = json.loads(run_record_path(out).read_text())["committed"]["lines"]
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert 0 < committed < 300, "the run ended before it could be killed"
    assert journal_path(out).exists() and not out.exists()
    assert main([*args, "--output", str(out), "--resume"]) == 0  # in this process: one torch import fewer
    assert out.read_bytes() == full.read_bytes()


# -- the ONNX cache -------------------------------------------------------------------------------------------------


def test_a_tampered_onnx_export_is_detected_and_redone(
    runs: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    pytest.importorskip("onnxruntime")
    monkeypatch.setenv("NEWSFRAME_CACHE", str(tmp_path))
    kwargs = {"ner": str(runs["ner"]), "device": "cpu"}
    reference = Predictor.from_pretrained(**kwargs).predict(TEXTS)
    first = Predictor.from_pretrained(**kwargs, backend="onnx").ner.model.path
    assert json.loads(first.with_name(first.name + ".sha256.json").read_text())["sha256"]
    # Swap in another model's export, a valid ONNX graph with other weights.
    other = Predictor.from_pretrained(stance=str(runs["stance"]), device="cpu", backend="onnx").stance.model.path
    first.write_bytes(other.read_bytes())
    with caplog.at_level(logging.WARNING, logger="src.predict.ort"):
        again = Predictor.from_pretrained(**kwargs, backend="onnx")
    assert any("does not match its recorded sha256" in m and str(first) in m for m in caplog.messages)
    assert first.read_bytes() != other.read_bytes()
    preds = again.predict(TEXTS)
    for p, q in zip(reference, preds, strict=True):
        assert [(e["start"], e["end"], e["label"]) for e in p["entities"]] == [
            (e["start"], e["end"], e["label"]) for e in q["entities"]
        ]
        assert np.allclose([e["score"] for e in p["entities"]], [e["score"] for e in q["entities"]], atol=1e-4)


@pytest.mark.parametrize("damage", ["entry is a file", "export is a folder"])
def test_an_unusable_onnx_cache_entry_costs_an_export_not_the_prediction(
    damage: str, runs: dict[str, Path], tmp_path: Path, monkeypatch, caplog: pytest.LogCaptureFixture
) -> None:
    pytest.importorskip("onnxruntime")
    monkeypatch.setenv("NEWSFRAME_CACHE", str(tmp_path))
    kwargs = {"ner": str(runs["ner"]), "device": "cpu", "backend": "onnx"}
    first = Predictor.from_pretrained(**kwargs)
    reference, path = first.predict(TEXTS), first.ner.model.path
    if damage == "entry is a file":
        shutil.rmtree(path.parent)
        path.parent.write_text("not a folder")
    else:
        path.unlink()
        path.mkdir()
    with caplog.at_level(logging.WARNING, logger="src.predict.ort"):
        again = Predictor.from_pretrained(**kwargs)
    assert any("the ONNX cache cannot be used" in m and "exporting for this run only" in m for m in caplog.messages)
    assert [p["entities"] for p in again.predict(TEXTS)] == [p["entities"] for p in reference]


def test_a_full_disk_is_one_error_and_resume_finishes_the_run(
    runs: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    import errno

    from src.predict import cli

    texts = [f"{TEXTS[i % 5]} Report {i}." for i in range(40)]
    args = [*models(runs), str(write_docs(tmp_path / "docs.jsonl", texts))]
    full = tmp_path / "full.jsonl"
    assert main([*args, "--output", str(full)]) == 0
    write, calls = cli.PredictionWriter.write, []

    def fills_up(self, line: dict) -> None:
        calls.append(line)
        if len(calls) > 25:
            raise OSError(errno.ENOSPC, "No space left on device")
        write(self, line)

    out = tmp_path / "out.jsonl"
    monkeypatch.setattr(cli.PredictionWriter, "write", fills_up)
    capsys.readouterr()
    assert main([*args, "--output", str(out)]) == 2
    err = capsys.readouterr().err
    assert "error: " in err and "No space left on device" in err and "--resume" in err and "Traceback" not in err
    assert not out.exists() and journal_path(out).exists()
    monkeypatch.setattr(cli.PredictionWriter, "write", write)
    assert main([*args, "--output", str(out), "--resume"]) == 0
    assert out.read_bytes() == full.read_bytes()
