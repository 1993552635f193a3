"""Bad inputs found before any work, each as one located line: Label Studio region ids that are not scalars, a
lone surrogate in an export's text (before any backup is written), and evaluation paths."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from src.data.__main__ import main as data_main
from src.data.convert import labelstudio_to_records, records_to_labelstudio
from src.data.records import DataError, load_records
from src.evaluate.__main__ import main as evaluate_main
from tests.conftest import ROOT, SEEDS


def one_task() -> list[dict]:
    return records_to_labelstudio(load_records(SEEDS)[:1])


@pytest.mark.parametrize("rid", [["a", "b"], {"x": 1}, True])
def test_a_region_id_must_be_a_string_or_an_integer(rid) -> None:
    tasks = one_task()
    tasks[0]["annotations"][0]["result"][0]["id"] = rid
    with pytest.raises(DataError, match="region 'id' must be a string or an integer"):
        labelstudio_to_records(tasks, name="export.json")


@pytest.mark.parametrize("doc_id", [["a", "b"], {"a": 1}, 1.5, False])
def test_a_doc_id_must_be_a_string_or_an_integer(doc_id) -> None:
    tasks = one_task()
    tasks[0]["data"]["doc_id"] = doc_id
    with pytest.raises(DataError, match=r"export.json: task 0: 'data.doc_id' must be a string or an integer"):
        labelstudio_to_records(tasks, name="export.json")


def test_a_lone_surrogate_is_refused_before_add_writes_anything(tmp_path: Path, capsys) -> None:
    tasks = one_task()
    tasks[0]["data"]["text"] += "\udc80"
    tasks[0]["data"]["doc_id"] = "other"
    export = tmp_path / "export.json"
    export.write_text(json.dumps(tasks), encoding="utf-8")  # \udc80 written as a JSON escape, as JSON allows
    corpus = tmp_path / "corpus.jsonl"
    shutil.copy(SEEDS, corpus)
    assert data_main(["add", str(export), "--corpus", str(corpus)]) == 2
    assert "lone surrogate (U+DC80)" in capsys.readouterr().out
    assert corpus.read_bytes() == SEEDS.read_bytes() and sorted(p.name for p in tmp_path.iterdir()) == [
        "corpus.jsonl",
        "export.json",
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["data.path=data"], "data.path=data: is a folder, not an annotated file"),
        (["data.path=nowhere.jsonl"], "data.path=nowhere.jsonl: no such file"),
        ([f"data.path={SEEDS}", "out_dir=README.md"], "out_dir=README.md: is a file, not a folder"),
    ],
)
def test_evaluate_checks_its_paths_before_predicting(runs, args: list[str], message: str, capsys) -> None:
    assert evaluate_main([f"model={runs['stance']}", *args]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


@pytest.mark.parametrize("engine", ["local", "ray"])
@pytest.mark.parametrize("layout", ["checkpoints", "model"])
def test_an_incomplete_model_folder_with_an_output_is_one_error(tmp_path: Path, layout: str, engine: str) -> None:
    import subprocess
    import sys

    if engine == "ray":
        pytest.importorskip("ray")
    (tmp_path / "broken" / layout).mkdir(parents=True)
    out = tmp_path / "out" / ("o.jsonl" if engine == "local" else "shards")
    out.parent.mkdir()
    command = [sys.executable, "scripts/predict.py", "--ner", str(tmp_path / "broken"), "-o", str(out), "seeds/"]
    command += ["--engine", engine]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "not a complete model folder" in done.stderr and list(out.parent.iterdir()) == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["seeds/", "-o", "{tmp}"], "is a folder; give the .json file to write"),
        (["seeds/", "-o", "{tmp}/file.txt/tasks.json"], "cannot write into"),
        (["-", "-o", "{tmp}/tasks.json"], "INPUT '-' (standard input) is not read"),
    ],
)
def test_select_checks_its_output_and_inputs_before_predicting(runs, tmp_path: Path, args, message, capsys) -> None:
    from src.select.__main__ import main as select_main

    (tmp_path / "file.txt").write_text("x")
    argv = ["--stance", str(runs["stance"]), *(a.format(tmp=tmp_path) for a in args)]
    with pytest.raises(SystemExit) as exit_:
        select_main(argv)
    assert exit_.value.code == 2 and message in capsys.readouterr().err


@pytest.mark.parametrize("key", ["hydra.run.dir", "hydra.sweep.dir"])
def test_a_run_folder_that_cannot_be_made_is_one_error(key: str, tmp_path: Path) -> None:
    """Hydra makes the folder before the job starts: its mkdir under a file was a traceback."""
    import subprocess
    import sys

    blocker = tmp_path / "a-file"
    blocker.write_text("")
    sweep = ["-m"] if key == "hydra.sweep.dir" else []
    proc = subprocess.run(
        [sys.executable, "-m", "src.train", *sweep, "task=stance", f"{key}={blocker}/run"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert (
        proc.stderr.strip()
        == f"error: {key}={blocker}/run: cannot make the run folder ({blocker} is a file, not a folder)"
    )
