"""``python -m src.data add``: a Label Studio export appended to a copy of the corpus, or refused with it unchanged."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from src.data.__main__ import main
from src.data.convert import records_to_labelstudio
from src.data.validate import validate_file

ROOT = Path(__file__).resolve().parents[1]
SEEDS = ROOT / "data" / "annotations" / "seeds.jsonl"


def new_article(doc_id: str = "new-001", text: str = "Kim Jong-un met Vladimir Putin.\nTrade grew in 2019.") -> dict:
    def span(word: str, label: str) -> dict:
        start = text.index(word)
        return {"start": start, "end": start + len(word), "label": label}

    newline = text.index("\n")
    return {
        "id": doc_id,
        "text": text,
        "entities": [span("Kim Jong-un", "PERSON"), span("Vladimir Putin", "PERSON"), span("2019", "DATE")],
        "sentences": [
            {"start": 0, "end": newline, "stance": "leverage"},
            {"start": newline + 1, "end": len(text), "stance": "economic_cooperation"},
        ],
    }


def export_of(tmp_path: Path, records: list[dict]) -> Path:
    """An export as Label Studio writes it: tasks with ids and their annotations."""
    tasks = [{"id": 100 + i, **task} for i, task in enumerate(records_to_labelstudio(records))]
    path = tmp_path / "project-1-at-2026-12-02.json"
    path.write_text(json.dumps(tasks, ensure_ascii=False), encoding="utf-8")
    return path


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    (tmp_path / "annotations").mkdir()
    return Path(shutil.copy(SEEDS, tmp_path / "annotations" / "seeds.jsonl"))


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_add_appends_and_keeps_the_previous_corpus(tmp_path: Path, corpus: Path, capsys) -> None:
    before = corpus.read_bytes()
    export = export_of(
        tmp_path, [new_article(), new_article("new-002", "Kim Jong-un met Vladimir Putin again.\nTrade grew in 2019.")]
    )
    assert main(["add", str(export), "--corpus", str(corpus)]) == 0
    out = capsys.readouterr().out
    (backup,) = [p for p in corpus.parent.iterdir() if p.name.startswith("seeds.jsonl.")]
    assert backup.read_bytes() == before and str(backup) in out and "2 article(s) added" in out
    lines = corpus.read_text(encoding="utf-8").splitlines()
    assert corpus.read_bytes().startswith(before) and len(lines) == 7
    assert [json.loads(line)["id"] for line in lines[-2:]] == ["new-001", "new-002"]
    assert json.loads(lines[-2]) == new_article()
    assert validate_file(corpus) == []


def test_add_refuses_a_bad_export_with_a_located_error(tmp_path: Path, corpus: Path, capsys) -> None:
    before = corpus.read_bytes()
    export = export_of(tmp_path, [new_article()])
    tasks = json.loads(export.read_text(encoding="utf-8"))
    tasks[0]["annotations"][0]["result"][1]["value"]["text"] = "Vladimir Putln"  # region text off its offsets
    export.write_text(json.dumps(tasks), encoding="utf-8")
    assert main(["add", str(export), "--corpus", str(corpus)]) == 2
    captured = capsys.readouterr()
    assert f"{export}: task 0 (id 100): result[1] (id 'e1'): region text 'Vladimir Putln'" in captured.out
    assert captured.err.startswith("error: ") and "unchanged" in captured.err
    assert corpus.read_bytes() == before and listing(corpus.parent) == ["seeds.jsonl"]

    export.write_text(json.dumps(tasks)[:-40], encoding="utf-8")  # cut short
    assert main(["add", str(export), "--corpus", str(corpus)]) == 2
    assert f"{export}:1" in capsys.readouterr().out
    assert corpus.read_bytes() == before and listing(corpus.parent) == ["seeds.jsonl"]


def test_add_refuses_an_invalid_record(tmp_path: Path, corpus: Path, capsys) -> None:
    before = corpus.read_bytes()
    record = new_article()
    record["entities"][0]["label"] = "PER"  # not in the scheme (Label Studio does not check labels)
    assert main(["add", str(export_of(tmp_path, [record])), "--corpus", str(corpus)]) == 2
    assert "task 0 (id 100): record new-001: unknown entity label 'PER'" in capsys.readouterr().out
    assert corpus.read_bytes() == before


def test_add_refuses_articles_already_in_the_corpus(tmp_path: Path, corpus: Path, capsys) -> None:
    before = corpus.read_bytes()
    seed = json.loads(SEEDS.read_text(encoding="utf-8").splitlines()[0])
    renamed = {**seed, "id": "copy-of-seed", "source": None}
    del renamed["source"]
    export = export_of(tmp_path, [seed, renamed, new_article(), new_article("new-again")])
    assert main(["add", str(export), "--corpus", str(corpus)]) == 2
    out = capsys.readouterr().out
    assert f"task 0 (id 100): article '{seed['id']}' is already at {corpus}:1 (same id)" in out
    assert f"task 1 (id 101): article 'copy-of-seed' has the same text as {corpus}:1 ({seed['id']})" in out
    assert "task 3 (id 103): article 'new-again' has the same text as" in out and "task 2 (id 102)" in out
    assert "task 2 (id 102): article" not in out  # the first new article is fine on its own
    assert corpus.read_bytes() == before and listing(corpus.parent) == ["seeds.jsonl"]


def test_add_refuses_to_extend_an_invalid_corpus(tmp_path: Path, corpus: Path, capsys) -> None:
    corpus.write_bytes(corpus.read_bytes() + b"{broken\n")
    before = corpus.read_bytes()
    assert main(["add", str(export_of(tmp_path, [new_article()])), "--corpus", str(corpus)]) == 2
    out = capsys.readouterr().out
    assert f"{corpus}:6: malformed JSON" in out and "the corpus itself is invalid" in out
    assert corpus.read_bytes() == before and listing(corpus.parent) == ["seeds.jsonl"]


def test_two_adds_at_once_keep_both_articles(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each add reads the corpus, checks, then writes: without a lock the second write drops the first's article."""
    import threading
    import time

    from src.data import add

    corpus = tmp_path / "corpus.jsonl"
    shutil.copy(SEEDS, corpus)
    exports = []
    for name in ("a", "b"):
        folder = tmp_path / name
        folder.mkdir()
        text = f"Kim Jong-un met Vladimir Putin, {name}.\nTrade grew in 2019."
        exports.append(export_of(folder, [new_article(f"new-{name}", text)]))
    real = add.read_text

    def slow_read(path):
        out = real(path)
        time.sleep(0.3)  # both would read the same corpus inside this window
        return out

    monkeypatch.setattr(add, "read_text", slow_read)
    results: list = []
    threads = [threading.Thread(target=lambda e=e: results.append(add.add_export(e, corpus))) for e in exports]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [problems for problems, _ in results] == [[], []]
    ids = [json.loads(line)["id"] for line in corpus.read_text(encoding="utf-8").splitlines()]
    assert {"new-a", "new-b"} <= set(ids) and len(ids) == len(set(ids))
    backups = sorted(tmp_path.glob("corpus.jsonl.*"))
    assert len(backups) == 2 and not (tmp_path / "corpus.jsonl.lock").exists()
    assert max(len(b.read_text().splitlines()) for b in backups) == len(ids) - 1  # the second kept the first's corpus


def test_a_symlinked_corpus_is_written_through(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    real = tmp_path / "real" / "corpus.jsonl"
    real.parent.mkdir()
    shutil.copy(SEEDS, real)
    link = tmp_path / "corpus.jsonl"
    link.symlink_to(real)
    export = export_of(tmp_path, [new_article()])
    assert main(["add", str(export), "--corpus", str(link)]) == 0
    assert link.is_symlink() and "new-001" in real.read_text(encoding="utf-8")
