"""Where CoNLL-2003 comes from (src/data/conll.py): local folder, environment, beside the checkout, Hub, none."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from src.data import conll
from src.data.convert import read_conll
from tests.conftest import CONLL_SNIPPET, ROOT


def conll_folder(path: Path) -> Path:
    path.mkdir(parents=True)
    for name in conll.SPLIT_FILES.values():
        (path / name).write_text(CONLL_SNIPPET, encoding="utf-8")
    return path


@pytest.fixture
def no_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    monkeypatch.delenv(conll.ENV_VAR, raising=False)
    return monkeypatch


def test_explicit_folder_wins(tmp_path: Path, no_env: pytest.MonkeyPatch) -> None:
    explicit, env = conll_folder(tmp_path / "explicit"), conll_folder(tmp_path / "env")
    no_env.setenv(conll.ENV_VAR, str(env))
    source = conll.find_source(str(explicit), shared_dir=conll_folder(tmp_path / "shared"))
    assert (source.kind, source.where, source.origin) == ("local", str(explicit), "data.dir")


def test_environment_then_beside_the_checkout(tmp_path: Path, no_env: pytest.MonkeyPatch) -> None:
    shared = conll_folder(tmp_path / "shared")
    no_env.setenv(conll.ENV_VAR, str(conll_folder(tmp_path / "env")))
    assert conll.find_source(shared_dir=shared).where == str(tmp_path / "env")
    no_env.delenv(conll.ENV_VAR)
    assert conll.find_source(shared_dir=shared).origin == "beside the checkout"


def test_explicit_folder_with_a_missing_split_is_an_error(tmp_path: Path, no_env: pytest.MonkeyPatch) -> None:
    folder = conll_folder(tmp_path / "c")
    (folder / "dev.txt").unlink()
    with pytest.raises(conll.ConllNotFound, match=r"data.dir=.*missing dev.txt"):
        conll.find_source(str(folder), shared_dir=conll_folder(tmp_path / "shared"))


def test_hub_when_nothing_local_and_the_hub_answers(tmp_path: Path, no_env: pytest.MonkeyPatch) -> None:
    no_env.setattr(conll, "hub_unreachable", lambda timeout=3.0: None)
    source = conll.find_source(shared_dir=tmp_path / "none")
    assert (source.kind, source.where) == ("hub", conll.HUB_ID)


def test_offline_skips_the_hub_and_says_what_was_tried(tmp_path: Path, no_env: pytest.MonkeyPatch) -> None:
    no_env.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(conll.ConllNotFound) as err:
        conll.find_source(shared_dir=tmp_path / "none")
    message = str(err.value)
    assert conll.ENV_VAR in message and str(tmp_path / "none") in message and "HF_HUB_OFFLINE is set" in message


def test_unreachable_hub_is_reported_not_retried(no_env: pytest.MonkeyPatch) -> None:
    """No offline flag, but nothing listens where the Hub should be: one refused connection, then a reason."""
    from huggingface_hub import constants

    no_env.delenv("HF_HUB_OFFLINE", raising=False)
    no_env.delenv("HF_DATASETS_OFFLINE", raising=False)
    no_env.setattr(constants, "ENDPOINT", "https://127.0.0.1")
    assert "127.0.0.1 is unreachable" in conll.hub_unreachable(timeout=1.0)


def test_hub_branch_reads_a_dataset_folder_like_the_column_files(tmp_path: Path) -> None:
    """The Hub path (``datasets.load_dataset``) on a local folder with the Hub copy's columns and class names."""
    from datasets import ClassLabel, Dataset, Features, Sequence, Value

    columns = read_conll_columns(CONLL_SNIPPET)
    features = Features(
        {"tokens": Sequence(Value("string")), "ner_tags": Sequence(ClassLabel(names=list(conll.HUB_TAGS)))}
    )
    folder = tmp_path / "hub-copy"
    folder.mkdir()
    for split in conll.HUB_SPLITS.values():
        Dataset.from_dict(columns, features=features).to_parquet(str(folder / f"{split}.parquet"))
    splits = conll.load_hub(str(folder))
    column_file = tmp_path / "c.txt"
    column_file.write_text(CONLL_SNIPPET, encoding="utf-8")
    expected = [e["label"] for r in read_conll(column_file) for e in r["entities"]]
    for split in ("train", "dev", "test"):
        assert [len(r["sentences"]) for r in splits[split]] == [1, 1, 1]
        assert [e["label"] for r in splits[split] for e in r["entities"]] == expected
    first = splits["train"][0]
    assert [first["text"][e["start"] : e["end"]] for e in first["entities"]] == ["UN", "Korean"]


def read_conll_columns(text: str) -> dict[str, list]:
    """``{"tokens", "ner_tags"}`` per sentence of a column snippet, tags as indices of the Hub's class order."""
    tokens, tags, sentences = [], [], {"tokens": [], "ner_tags": []}
    for line in [*text.splitlines(), ""]:
        cols = line.split()
        if cols and cols[0] != "-DOCSTART-":
            tokens.append(cols[0])
            tags.append(conll.HUB_TAGS.index(cols[-1]))
        elif tokens:
            sentences["tokens"].append(tokens)
            sentences["ner_tags"].append(tags)
            tokens, tags = [], []
    return sentences


def test_cli_says_which_source_or_how_to_get_one(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1"}
    ok = subprocess.run(
        [sys.executable, "-m", "src.data.conll", "--dir", str(conll_folder(tmp_path / "c"))],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert ok.returncode == 0 and "NER warm start: CoNLL-2003 from" in ok.stderr
    bad = subprocess.run(
        [sys.executable, "-m", "src.data.conll", "--dir", str(tmp_path / "nope")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 1 and "no such folder" in bad.stderr and "make train CONLL=/path" in bad.stderr


def test_a_copy_with_other_counts_is_flagged(caplog: pytest.LogCaptureFixture) -> None:
    splits = {"train": [{}] * conll.EXPECTED_SENTENCES["train"], "dev": [{}] * 3, "test": []}
    with caplog.at_level("WARNING"):
        differences = conll.check_counts(splits, "someone/conll2003")
    assert differences == ["dev: 3 sentences, CoNLL-2003 has 3250", "test: 0 sentences, CoNLL-2003 has 3453"]
    assert "someone/conll2003 is not the CoNLL-2003" in caplog.text
