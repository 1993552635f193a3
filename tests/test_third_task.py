"""A third task added in one file (tests/quote_task.py) goes through train, evaluate, predict (jsonl, html,
labelstudio, csv), select and ``src.data add`` (its layer named in a data config of one's own) with no other file of
the project changed: it is found as an installed plug-in (an entry
point of group ``newsframe.tasks``) and configured by a task config of the user's own (``hydra.searchpath``)."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from src.errors import ConfigError
from src.tasks import TASKS, get_task
from tests.conftest import ROOT, SEEDS, TINY_TRAIN
from tests.quote_task import LABELS, quote_label

pytestmark = pytest.mark.slow

ARTICLE = 'Kim arrived by train. "We will talk about trade," Putin said. The visit ended on Friday.'


def install_plugin(site: Path) -> None:
    """What ``pip install`` of a package with the entry point leaves on the path: a dist-info folder naming it."""
    info = site / "newsframe_quote-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: newsframe-quote\nVersion: 0.1\n", encoding="utf-8")
    (info / "entry_points.txt").write_text("[newsframe.tasks]\nquote = tests.quote_task:QUOTE\n", encoding="utf-8")


def test_a_plugin_task_trains_evaluates_predicts_and_selects(tiny_model_dir: Path, tmp_path: Path) -> None:
    site, conf, out = tmp_path / "site", tmp_path / "conf", tmp_path / "run"
    install_plugin(site)
    (conf / "task").mkdir(parents=True)
    (conf / "task" / "quote.yaml").write_text("name: quote\nmax_length: 64\nstride: 16\n", encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(ROOT)]), "HF_HUB_OFFLINE": "1"}

    def run(*args: str) -> str:
        proc = subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
        return proc.stdout + proc.stderr

    trained = run(
        "-m", "src.train", "task=quote", f"hydra.searchpath=[file://{conf}]", f"model.name_or_path={tiny_model_dir}",
        *TINY_TRAIN, f"hydra.run.dir={out}",
    )  # fmt: skip
    meta = json.loads((out / "model" / "newsframe.json").read_text(encoding="utf-8"))
    assert meta["task"] == "quote" and meta["labels"] == LABELS
    assert "Held-out evaluation (quote)" in trained and "| yes |" in trained

    evaluated = tmp_path / "evaluated"
    run("-m", "src.evaluate", f"model={out}", f"data.path={SEEDS}", f"out_dir={evaluated}")
    metrics = json.loads((evaluated / "metrics.json").read_text(encoding="utf-8"))
    records = [json.loads(line) for line in SEEDS.read_text(encoding="utf-8").splitlines()]
    n_quotes = sum(quote_label(r["text"][s["start"] : s["end"]]) == "yes" for r in records for s in r["sentences"])
    assert metrics["task"] == "quote" and metrics["per_label"]["yes"]["support"] == n_quotes > 0

    article = tmp_path / "article.txt"
    article.write_text(ARTICLE, encoding="utf-8")
    outputs = {fmt: tmp_path / f"out.{fmt}" for fmt in ("jsonl", "html", "labelstudio", "csv")}
    for fmt, path in outputs.items():
        run("-m", "src.predict", "--model", str(out), "--format", fmt, "-o", str(path), str(article))
    [prediction] = [json.loads(line) for line in outputs["jsonl"].read_text(encoding="utf-8").splitlines()]
    assert len(prediction["sentences"]) >= 2 and prediction["entities"] == []
    assert all(s["quote"] in LABELS and set(s["quote_scores"]) == set(LABELS) for s in prediction["sentences"])
    assert all(s["stance"] is None for s in prediction["sentences"])  # no stance model: its fields stay empty
    quotes = [s["quote"] for s in prediction["sentences"]]
    page = outputs["html"].read_text(encoding="utf-8")  # the task's label after each sentence, in the legend too
    assert "We will talk about trade" in page and page.count('<sup class="layer" data-layer="quote"') == len(quotes)
    assert all(f">quote: {label}</sup>" in page for label in quotes) and "<strong>quote</strong>" in page
    rows = list(csv.reader(outputs["csv"].read_text(encoding="utf-8").splitlines()))
    assert [row[5] for row in rows if row[1] == "quote"] == quotes
    [task] = json.loads(outputs["labelstudio"].read_text(encoding="utf-8"))
    chosen = [r["value"]["choices"][0] for r in task["predictions"][0]["result"] if r["from_name"] == "quote"]
    assert task["data"]["text"] == ARTICLE and chosen == quotes

    # A corpus of one's own whose data config names the layer: Label Studio's config shows it, and an export whose
    # pre-annotations were accepted is added with its labels, checked against the config's.
    mine, corpus, export = tmp_path / "mine.yaml", tmp_path / "corpus.jsonl", tmp_path / "export.json"
    mine.write_text(
        "entity_labels: [PERSON, NORP, ORG, GPE, LOC, DATE, EVENT]\nstance_labels: [leverage, economic_cooperation,"
        " neutral]\nstance_none_label: neutral\nsentence_labels:\n  quote: ['no', 'yes']\n",
        encoding="utf-8",
    )
    assert '<Choices name="quote"' in run("-m", "src.data", "labelstudio-config", "--config", str(mine))
    corpus.write_bytes(SEEDS.read_bytes())
    task["annotations"] = task.pop("predictions")
    export.write_text(json.dumps([task]), encoding="utf-8")
    run("-m", "src.data", "add", str(export), "--corpus", str(corpus), "--config", str(mine))
    added = json.loads(corpus.read_text(encoding="utf-8").splitlines()[-1])
    assert added["text"] == ARTICLE and [s["quote"] for s in added["sentences"]] == quotes
    added["sentences"][0]["quote"] = "maybe"
    corpus.write_text(corpus.read_text(encoding="utf-8") + json.dumps(added | {"id": "x"}) + "\n", encoding="utf-8")
    check = [sys.executable, "-m", "src.data", "validate", str(corpus), "--config", str(mine)]
    done = subprocess.run(check, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and "record x: unknown quote 'maybe' of sentence 0-" in done.stdout, done.stdout

    tasks = tmp_path / "tasks.json"
    run("-m", "src.select", "--model", str(out), "-k", "2", "-o", str(tasks), str(article))
    chosen = json.loads(tasks.read_text(encoding="utf-8"))
    assert len(chosen) == 1 and chosen[0]["data"]["why"].count("quote margin") == 2


def test_an_unknown_task_names_the_known_ones_plugins_included() -> None:
    with pytest.raises(ConfigError, match="expected one of ner, stance"):
        get_task("sentiment")
    assert "quote" not in TASKS  # no plug-in is installed in this process


def plugin_points(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, source: str, name: str = "quote") -> None:
    """One installed plug-in, ``name = broken_plugin:TASK``, whose module is ``source``."""
    from importlib.metadata import EntryPoint

    import src.tasks

    (tmp_path / "broken_plugin.py").write_text(source, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "broken_plugin", raising=False)
    point = EntryPoint(name, "broken_plugin:TASK", src.tasks.PLUGINS)
    monkeypatch.setattr(src.tasks, "entry_points", lambda group: [point] if group == src.tasks.PLUGINS else [])


@pytest.mark.parametrize(
    ("name", "source", "error"),
    [
        ("quote", "import no_such_module_here\n", r"quote \(broken_plugin:TASK\): ModuleNotFoundError"),
        ("quote", "TASK = 'not a task'\n", "not a Task named 'quote'"),
        ("quote", "from src.tasks import STANCE as TASK\n", "not a Task named 'quote'"),  # its name is stance
        ("stance", "from src.tasks import STANCE as TASK\n", "the name of a task already registered"),
    ],
    ids=["failing-import", "not-a-task", "misnamed", "built-in-name"],
)
def test_a_broken_plugin_is_one_error_naming_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, name: str, source: str, error: str
) -> None:
    plugin_points(monkeypatch, tmp_path, source, name)
    with pytest.raises(ConfigError, match=error):
        get_task("quote")
    assert "quote" not in TASKS and TASKS["stance"].name == "stance"  # nothing half-registered
