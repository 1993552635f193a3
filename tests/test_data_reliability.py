"""Reliability of data import and validation: JSON lines as JSON defines them, refusals that name the file, line,
task, region or field, and no corpus overwritten or left invalid by ``from-labelstudio``."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from src.data.__main__ import main
from src.data.convert import records_to_labelstudio
from src.data.records import DataError, load_records, save_records
from src.data.validate import validate_file
from src.evaluate.report import read_jsonl

FIXTURES = Path(__file__).parent / "fixtures"
GOOD = FIXTURES / "good.jsonl"

# Line and paragraph separators and NEL are whitespace to Python and line breaks to str.splitlines, but plain
# characters inside a JSON string (json.dumps(ensure_ascii=False) writes them raw).
SEPARATED = "Kim met Putin.\u2028Trade grew.\u2029Talks\x85ended."


def separated_record() -> dict:
    return {
        "id": "sep",
        "text": SEPARATED,
        "entities": [{"start": 0, "end": 3, "label": "PERSON"}, {"start": 8, "end": 13, "label": "PERSON"}],
        "sentences": [
            {"start": 0, "end": 14, "stance": "neutral"},
            {"start": 15, "end": 26, "stance": None},
            {"start": 27, "end": 39, "stance": None},
        ],
    }


def good_record() -> dict:
    return json.loads(GOOD.read_text(encoding="utf-8"))


def write_export(path: Path, export: object) -> Path:
    path.write_text(json.dumps(export, ensure_ascii=False), encoding="utf-8")
    return path


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# --- JSON lines ---------------------------------------------------------------------------------------------------


def test_unicode_line_separators_inside_strings_are_read_everywhere(tmp_path: Path) -> None:
    record = separated_record()
    path = tmp_path / "sep.jsonl"
    save_records([record], path)
    assert "\u2028" in path.read_text(encoding="utf-8")  # raw, as the project's own writer leaves it
    assert validate_file(path) == []
    assert load_records(path) == [record]
    assert read_jsonl(path) == [record]
    # CRLF line ends and a bare CR used as JSON whitespace inside a line are read too.
    crlf = tmp_path / "crlf.jsonl"
    crlf.write_bytes(json.dumps(record, ensure_ascii=False).replace(', "text"', ',\r"text"').encode() + b"\r\n\r\n")
    assert load_records(crlf) == [record]
    assert read_jsonl(crlf) == [record]
    # Messages quote them escaped, so each message stays one line in a terminal or an editor.
    save_records([record | {"entities": [{"start": 13, "end": 16, "label": "PERSON"}]}], path)
    problems = validate_file(path)
    assert problems and all("⟦.\\u2028T⟧" in p and "\u2028" not in p for p in problems)


def test_from_labelstudio_accepts_its_own_output_with_line_separators(tmp_path: Path) -> None:
    export = write_export(tmp_path / "export.json", records_to_labelstudio([separated_record()]))
    out = tmp_path / "out.jsonl"
    assert main(["from-labelstudio", str(export), "-o", str(out)]) == 0
    assert load_records(out) == [separated_record()]


def test_read_jsonl_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "pred.jsonl"
    path.write_text('{"id": "a"}\n{oops\n', encoding="utf-8")
    with pytest.raises(ValueError, match=rf"{path.name}:2: malformed JSON"):
        read_jsonl(path)


# --- empty files and every problem of every record ----------------------------------------------------------------


@pytest.mark.parametrize("content", ["", "\n\n  \n", "[]"])
def test_file_without_records_is_refused(tmp_path: Path, content: str, capsys: pytest.CaptureFixture) -> None:
    path = tmp_path / ("empty.json" if content == "[]" else "empty.jsonl")
    path.write_text(content, encoding="utf-8")
    assert validate_file(path) == [f"{path}: no records in {path}"]
    with pytest.raises(DataError, match="no records in"):
        load_records(path)
    assert main(["validate", str(path)]) == 1
    assert "no records in" in capsys.readouterr().out


def test_every_problem_of_a_record_is_reported(tmp_path: Path) -> None:
    record = good_record()
    del record["sentences"]
    record["entities"][0]["label"] = "NOPE"
    record["entities"][1]["end"] = 500
    record["entities"].append({"start": "1", "end": 3, "label": "PERSON"})
    path = tmp_path / "many.jsonl"
    save_records([record], path)
    shutil_copy(FIXTURES / "mini.txt", tmp_path / "mini.txt")
    problems = validate_file(path)
    for part in (
        "missing field 'sentences'",
        "entities[6] field 'start' must be int",
        "unknown entity label 'NOPE' at 0-11",
        "entity PERSON 16-500 is out of bounds",
    ):
        assert any(part in p for p in problems), (part, problems)
    # Spans in bounds are still checked against each other when another span is broken.
    record = good_record()
    record["entities"][0]["end"] = 500
    record["entities"][1:3] = [{"start": 16, "end": 24, "label": "PERSON"}, {"start": 16, "end": 30, "label": "X"}]
    record["sentences"][1]["stance"] = "bogus"
    save_records([record], path)
    problems = validate_file(path)
    for part in ("0-500 is out of bounds", "16-30 overlaps entity PERSON 16-24", "unknown entity label 'X'",
                 "unknown stance 'bogus'"):  # fmt: skip
        assert any(part in p for p in problems), (part, problems)


def shutil_copy(src: Path, dst: Path) -> None:
    dst.write_bytes(src.read_bytes())


# --- source paths -------------------------------------------------------------------------------------------------


@pytest.fixture
def outside(tmp_path: Path) -> tuple[Path, Path]:
    """A project folder with an annotation file, and a secret file next to (outside) it."""
    secret = tmp_path / "secret.txt"
    secret.write_text("TOPSECRET line\n", encoding="utf-8")
    project = tmp_path / "project"
    (project / "data").mkdir(parents=True)
    shutil_copy(FIXTURES / "mini.txt", project / "data" / "mini.txt")
    return project / "data" / "x.jsonl", secret


@pytest.mark.parametrize("how", ["absolute", "dotdot", "symlink"])
def test_source_outside_the_project_is_refused_unread(
    outside: tuple[Path, Path], how: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    path, secret = outside
    if how == "absolute":
        source = str(secret)
    elif how == "dotdot":
        source = "../../secret.txt"
    else:
        (path.parent / "link.txt").symlink_to(secret)
        source = "link.txt"
    record = good_record() | {"source": source}
    save_records([record], path)
    read = []
    original = Path.read_bytes
    monkeypatch.setattr(Path, "read_bytes", lambda self: read.append(self) or original(self))
    problems = validate_file(path)
    assert len(problems) == 1 and f"record mini: source {source!r}" in problems[0], problems
    assert "refused" in problems[0] and "outside the project folder" in problems[0] and "TOPSECRET" not in problems[0]
    assert secret.resolve() not in [p.resolve() for p in read]
    assert main(["validate", str(path)]) == 1
    assert "TOPSECRET" not in capsys.readouterr().out
    # The same text, so the old code's read went unnoticed: still refused.
    save_records([record | {"text": secret.read_text(encoding="utf-8"), "entities": [], "sentences": []}], path)
    assert any("refused" in p for p in validate_file(path))


def test_source_inside_the_project_still_resolves(outside: tuple[Path, Path]) -> None:
    path, _ = outside
    save_records([good_record()], path)  # "mini.txt", next to the annotation file
    assert validate_file(path) == []
    (path.parent.parent / "seeds").mkdir()
    shutil_copy(FIXTURES / "mini.txt", path.parent.parent / "seeds" / "a.txt")
    save_records([good_record() | {"source": "seeds/a.txt"}], path)  # from the project folder (where seeds/ is)
    assert validate_file(path) == []
    save_records([good_record() | {"source": "seeds/../seeds/a.txt"}], path)
    assert validate_file(path) == []


# --- from-labelstudio ---------------------------------------------------------------------------------------------


def test_from_labelstudio_refuses_to_overwrite_without_flag(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    shutil_copy(FIXTURES / "mini.txt", tmp_path / "mini.txt")
    export = write_export(tmp_path / "export.json", records_to_labelstudio([separated_record()]))
    out = tmp_path / "corpus.jsonl"
    shutil_copy(GOOD, out)
    before = out.read_bytes()
    assert main(["from-labelstudio", str(export), "-o", str(out)]) == 1
    assert out.read_bytes() == before
    assert "--overwrite" in capsys.readouterr().err
    assert main(["from-labelstudio", str(export), "-o", str(out), "--overwrite"]) == 0
    assert load_records(out) == [separated_record()]
    assert listing(tmp_path) == ["corpus.jsonl", "export.json", "mini.txt"]


def test_from_labelstudio_never_writes_an_invalid_file(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    bad = separated_record()
    bad["entities"][0]["label"] = "NOT_A_LABEL"
    export = write_export(tmp_path / "export.json", records_to_labelstudio([separated_record(), bad | {"id": "b"}]))
    out = tmp_path / "corpus.jsonl"
    shutil_copy(GOOD, out)
    shutil_copy(FIXTURES / "mini.txt", tmp_path / "mini.txt")
    before = out.read_bytes()
    assert main(["from-labelstudio", str(export), "-o", str(out), "--overwrite"]) == 1
    captured = capsys.readouterr()
    assert f"{out}:2: record b: unknown entity label 'NOT_A_LABEL'" in captured.out
    assert "nothing written" in captured.err
    assert out.read_bytes() == before
    assert listing(tmp_path) == ["corpus.jsonl", "export.json", "mini.txt"]  # no temporary file left
    new = tmp_path / "new.jsonl"
    assert main(["from-labelstudio", str(export), "-o", str(new)]) == 1
    assert not new.exists()
    # An export with no tasks makes no corpus.
    assert main(["from-labelstudio", str(write_export(tmp_path / "none.json", [])), "-o", str(new)]) == 1
    assert not new.exists()


def ls_task(**changes: object) -> dict:
    """A Label Studio export task of the separated record, with a region changed by ``changes``."""
    (task,) = records_to_labelstudio([separated_record()])
    task["id"] = 41
    for key, value in changes.items():
        index, field = key.split("__")
        target = task["annotations"][0]["result"][int(index[1:])]
        if field == "drop":
            del target[value]
        elif field in ("start", "end", "text"):
            target["value"][field] = value
        else:
            target[field] = value
    return task


MALFORMED = {
    "past_end": ([ls_task(r0__end=99)], "task 0 (id 41): result[0] (id 'e0'): offsets 0-99 are past the end"),
    "text_mismatch": ([ls_task(r1__text="Pooh")], "task 0 (id 41): result[1] (id 'e1'): region text 'Pooh' does not "),
    "not_a_list": ({"data": {"text": "x"}}, "top level must be a list of tasks, got object"),
    "no_data": ([{"id": 5}], "task 0 (id 5): missing 'data'"),
    "no_text": ([{"id": 5, "data": {"doc_id": "a"}}], "task 0 (id 5): missing 'data.text'"),
    "text_not_str": ([{"id": 5, "data": {"text": 3}}], "task 0 (id 5): 'data.text' must be a string, got int"),
    "no_result_id": ([ls_task(r2__drop="id")], "task 0 (id 41): result[2]: missing 'id'"),
    "string_offsets": ([ls_task(r0__start="0")], "task 0 (id 41): result[0] (id 'e0'): value.start must be an integer"),
    "task_not_object": ([ls_task(), "oops"], "task 1: must be a JSON object, got string"),
    "result_not_list": ([ls_task(), {"id": 9, "data": {"text": "a"}, "annotations": [{"result": 3}]}],
                        "task 1 (id 9): annotations[0].result must be a list, got int"),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_malformed_export_gets_a_located_message(name: str, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    export, message = MALFORMED[name]
    path = write_export(tmp_path / "export.json", export)
    out = tmp_path / "out.jsonl"
    assert main(["from-labelstudio", str(path), "-o", str(out)]) == 1
    printed = capsys.readouterr().out.splitlines()
    assert any(line.startswith(f"{path}: ") and message in line for line in printed), printed
    assert not out.exists()


def test_truncated_export_and_unreadable_export(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = tmp_path / "export.json"
    path.write_text(json.dumps(records_to_labelstudio([separated_record()]), indent=1)[:200], encoding="utf-8")
    out = tmp_path / "out.jsonl"
    assert main(["from-labelstudio", str(path), "-o", str(out)]) == 1
    assert capsys.readouterr().out.startswith(f"{path}:")  # line and column of the truncation
    assert main(["from-labelstudio", str(tmp_path / "missing.json"), "-o", str(out)]) == 1
    assert "cannot read" in capsys.readouterr().out
    assert not out.exists()


def test_all_export_problems_are_reported(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    export = [ls_task(r0__end=99, r2__drop="id"), {"id": 8}, ls_task(r1__start="x")]
    path = write_export(tmp_path / "export.json", export)
    assert main(["from-labelstudio", str(path), "-o", str(tmp_path / "out.jsonl")]) == 1
    printed = capsys.readouterr().out
    for part in ("task 0 (id 41): result[0]", "task 0 (id 41): result[2]: missing 'id'", "task 1 (id 8): missing",
                 "task 2 (id 41): result[1] (id 'e1'): value.start"):  # fmt: skip
        assert part in printed, (part, printed)


def test_no_temporary_file_is_left_when_writing_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    export = write_export(tmp_path / "export.json", records_to_labelstudio([separated_record()]))
    out = tmp_path / "out.jsonl"

    def fail(*args: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", fail)
    assert main(["from-labelstudio", str(export), "-o", str(out)]) == 1
    assert listing(tmp_path) == ["export.json"]


def test_from_labelstudio_writes_only_jsonl(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    # A .json OUT would hold JSON lines that the validator then reads as one (broken) JSON document.
    export = write_export(tmp_path / "export.json", records_to_labelstudio([separated_record(), separated_record()]))
    for out in (tmp_path / "out.json", tmp_path):
        assert main(["from-labelstudio", str(export), "-o", str(out)]) == 1
        assert "not a .jsonl file" in capsys.readouterr().out
    assert listing(tmp_path) == ["export.json"]


def test_stats_of_a_bad_file_is_a_located_message(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    conll = tmp_path / "bad.txt"
    conll.write_text("EU B-ORG\nlonely\n", encoding="utf-8")
    assert main(["stats", str(conll)]) == 1
    assert capsys.readouterr().out.startswith(f"{conll}:2: not CoNLL columns")
    conll.write_bytes(b"EU \xff B-ORG\n")
    assert main(["stats", str(conll)]) == 1
    assert capsys.readouterr().out.startswith(f"{conll}: ")
    assert main(["stats", str(tmp_path / "missing.txt")]) == 1
    assert "missing.txt" in capsys.readouterr().out
