"""The Label Studio round trip against a real server: records -> tasks -> import -> export -> records.

The server runs from its own venv (.venv-labelstudio, made by scripts/labelstudio_env.sh) on 127.0.0.1 with a
throwaway data dir; this process talks to it over its REST API only (label_studio is never imported here).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from src.data.convert import labelstudio_to_records, records_to_labelstudio
from src.labels import seed_scheme

# the seed corpus's labels, which these tests' data uses
ENTITY_LABELS, STANCE_LABELS = seed_scheme().entity_labels, seed_scheme().stance_labels

ROOT = Path(__file__).resolve().parents[1]
LABEL_STUDIO = ROOT / ".venv-labelstudio" / "bin" / "label-studio"
CONFIG = ROOT / "data" / "labelstudio" / "config.xml"
SEEDS = ROOT / "data" / "annotations" / "seeds.jsonl"
TOKEN = "newsframe-test-token-0123456789"
START_TIMEOUT_S = 240  # a fresh data dir runs all migrations first: ~45 s on 2 CPUs
REQUEST_TIMEOUT_S = 60

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


class LabelStudio:
    """A minimal REST client (stdlib only) for one server, authenticated with the legacy API token."""

    def __init__(self, url: str) -> None:
        self.url = url

    def call(self, method: str, path: str, body: object = None) -> tuple[int, object]:
        """(status, decoded JSON body); HTTP errors are returned, not raised, so tests can assert on them."""
        request = urllib.request.Request(
            self.url + path,
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"Token {TOKEN}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT_S) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as err:
            raw = err.read()
            try:
                return err.code, json.loads(raw)
            except ValueError:
                return err.code, raw.decode(errors="replace")

    def ok(self, method: str, path: str, body: object = None) -> object:
        status, payload = self.call(method, path, body)
        assert 200 <= status < 300, f"{method} {path} -> {status}: {str(payload)[:2000]}"
        return payload

    def create_project(self, title: str) -> int:
        return self.ok("POST", "/api/projects", {"title": title, "label_config": CONFIG.read_text(encoding="utf-8")})[
            "id"
        ]

    def export(self, project: int) -> list[dict]:
        """The standard JSON export (what "Export -> JSON" in the UI downloads)."""
        return self.ok("GET", f"/api/projects/{project}/export?exportType=JSON&download_all_tasks=true")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _log_tail(log: Path, chars: int = 3000) -> str:
    return log.read_text(encoding="utf-8", errors="replace")[-chars:] if log.exists() else "(no log)"


@pytest.fixture(scope="module")
def label_studio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabelStudio]:
    """A real Label Studio on a free loopback port with a fresh data dir and a user made from env vars."""
    if not LABEL_STUDIO.exists():
        pytest.fail(f"{LABEL_STUDIO} not found: run scripts/labelstudio_env.sh to install Label Studio")
    data_dir = tmp_path_factory.mktemp("labelstudio")
    port = _free_port()
    env = os.environ | {
        "LABEL_STUDIO_BASE_DATA_DIR": str(data_dir),
        "LABEL_STUDIO_USERNAME": "newsframe@example.com",
        "LABEL_STUDIO_PASSWORD": "newsframe-test-password",
        "LABEL_STUDIO_USER_TOKEN": TOKEN,
        # The token above is a legacy "Token ..." key; 1.23 only accepts those when enabled.
        "LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN": "true",
        "LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK": "true",
        # No traffic off this machine: no PyPI version check, no analytics.
        "LABEL_STUDIO_LATEST_VERSION_CHECK": "false",
        "LABEL_STUDIO_COLLECT_ANALYTICS": "false",
    }
    command = [str(LABEL_STUDIO), "start", "--no-browser", "--internal-host", "127.0.0.1", "--port", str(port)]
    command += ["--data-dir", str(data_dir), "--enable-legacy-api-token", "--log-level", "WARNING"]
    log = data_dir / "server.log"
    with log.open("wb") as out:
        server = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if server.poll() is not None:
                pytest.fail(f"label-studio exited with {server.returncode} while starting:\n{_log_tail(log)}")
            try:
                with urllib.request.urlopen(url + "/health", timeout=5) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"label-studio did not answer on {url} within {START_TIMEOUT_S} s:\n{_log_tail(log)}")
            time.sleep(1)
        yield LabelStudio(url)
    finally:
        # Its own session: signal the whole group (runserver plus anything it spawned), bounded.
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=10)


def _seed_records(n: int) -> list[dict]:
    with SEEDS.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()][:n]


def _astral_record() -> dict:
    """A small record with characters outside the BMP (a UTF-16 surrogate pair) before its spans, curly quotes and
    an unlabelled sentence: the server must keep text and offsets exactly."""
    text = "😀 Kim Jong-un met “Putin” in Moscow’s ⓕ Kremlin.\nTrade grew 𝟚𝟘% in 2023."
    newline = text.index("\n")

    def span(word: str, label: str) -> dict:
        start = text.index(word)
        return {"start": start, "end": start + len(word), "label": label}

    return {
        "id": "astral",
        "text": text,
        "entities": [
            span("Kim Jong-un", "PERSON"),
            span("Putin", "PERSON"),
            span("Moscow", "GPE"),
            span("2023", "DATE"),
        ],
        "sentences": [
            {"start": 0, "end": newline, "stance": "leverage"},
            {"start": newline + 1, "end": len(text), "stance": None},
        ],
    }


def _as_prediction(record: dict) -> dict:
    """A prediction record (predict's schema) that says exactly what the gold says."""
    text = record["text"]
    entities = [{**e, "text": text[e["start"] : e["end"]], "score": 0.9} for e in record["entities"]]
    sentences = []
    for s in record["sentences"]:
        scores = {label: (0.8 if label == s["stance"] else 0.1) for label in STANCE_LABELS} if s["stance"] else {}
        sentences.append({**s, "text": text[s["start"] : s["end"]], "scores": scores})
    return {"id": record["id"], "entities": entities, "sentences": sentences, "doc_stance": "neutral"}


def _by_id(records: list[dict]) -> dict[str, dict]:
    return {r["id"]: r for r in records}


def test_server_rejects_a_bad_config_and_parses_ours(label_studio: LabelStudio) -> None:
    bad = "<View><Labels name='entity' toName='nowhere'><Label value='PERSON'/></Labels>"
    bad += "<Text name='text' value='$text'/></View>"
    status, payload = label_studio.call("POST", "/api/projects", {"title": "bad", "label_config": bad})
    assert status == 400 and "label_config" in str(payload), payload

    project = label_studio.create_project("newsframe config")
    parsed = label_studio.ok("GET", f"/api/projects/{project}")["parsed_label_config"]
    assert parsed["entity"]["type"] == "Labels" and parsed["entity"]["labels"] == list(ENTITY_LABELS)
    assert parsed["sentence"]["labels"] == ["Sentence"]
    assert parsed["stance"]["type"] == "Choices" and parsed["stance"]["labels"] == list(STANCE_LABELS)
    assert parsed["stance"]["conditionals"] == {"type": "label", "name": "Sentence"}
    assert all(control["to_name"] == ["text"] for control in parsed.values())


def test_gold_annotations_round_trip_through_the_server(label_studio: LabelStudio) -> None:
    records = [*_seed_records(2), _astral_record()]
    project = label_studio.create_project("newsframe gold")
    imported = label_studio.ok("POST", f"/api/projects/{project}/import", records_to_labelstudio(records))
    assert (imported["task_count"], imported["annotation_count"]) == (len(records), len(records))

    export = label_studio.export(project)
    assert len(export) == len(records)
    back = _by_id(labelstudio_to_records(export))
    for record in records:
        assert back[record["id"]] == record, f"{record['id']} changed in the round trip"


def test_predictions_accepted_as_annotations_round_trip(label_studio: LabelStudio) -> None:
    """Pre-annotations (what `predict --format labelstudio` writes) that an annotator accepts unchanged."""
    records = [*_seed_records(1), _astral_record()]
    bare = [{"id": r["id"], "source": r.get("source"), "text": r["text"]} for r in records]
    tasks = records_to_labelstudio(bare, [_as_prediction(r) for r in records])
    assert all("annotations" not in task for task in tasks)
    project = label_studio.create_project("newsframe predictions")
    imported = label_studio.ok("POST", f"/api/projects/{project}/import", tasks)
    assert (imported["task_count"], imported["prediction_count"]) == (len(records), len(records))

    listed = label_studio.ok("GET", f"/api/tasks?project={project}&page_size=100")["tasks"]
    for task in listed:
        (prediction,) = label_studio.ok("GET", f"/api/predictions?task={task['id']}")
        assert prediction["model_version"] == "newsframe" and prediction["result"]
        body = {"result": prediction["result"], "parent_prediction": prediction["id"]}
        label_studio.ok("POST", f"/api/tasks/{task['id']}/annotations", body)

    back = _by_id(labelstudio_to_records(label_studio.export(project)))
    for record in records:
        expected = {k: v for k, v in record.items() if k != "source" or v}
        assert back[record["id"]] == expected, f"{record['id']} changed in the round trip"


def test_select_tasks_import_and_come_back_through_add(
    label_studio: LabelStudio, runs: dict[str, Path], tmp_path: Path
) -> None:
    """`python -m src.select` tasks import with their rank and why; accepted as they are and exported, they go into
    a corpus through `python -m src.data add`, which refuses the same export a second time."""
    from src.data.__main__ import main as data_main
    from src.select.__main__ import main as select_main

    seeds = _seed_records(5)
    articles = tmp_path / "articles"
    articles.mkdir()
    for record in seeds[:2]:
        (articles / f"{record['id']}.txt").write_text(record["text"], encoding="utf-8")
    tasks_file = tmp_path / "tasks.json"
    models = ["--ner", str(runs["ner"]), "--stance", str(runs["stance"]), "--device", "cpu"]
    assert select_main([*models, str(articles), "-k", "4", "-o", str(tasks_file)]) == 0
    tasks = json.loads(tasks_file.read_text(encoding="utf-8"))
    project = label_studio.create_project("newsframe select")
    imported = label_studio.ok("POST", f"/api/projects/{project}/import", tasks)
    assert (imported["task_count"], imported["prediction_count"]) == (len(tasks), len(tasks))

    listed = label_studio.ok("GET", f"/api/tasks?project={project}&page_size=100")["tasks"]
    sent = {t["data"]["doc_id"]: t["data"] for t in tasks}
    assert {t["data"]["doc_id"]: t["data"] for t in listed} == sent  # rank and why kept, text untouched
    for task in listed:
        (prediction,) = label_studio.ok("GET", f"/api/predictions?task={task['id']}")
        body = {"result": prediction["result"], "parent_prediction": prediction["id"]}
        label_studio.ok("POST", f"/api/tasks/{task['id']}/annotations", body)
    export = tmp_path / "project-export.json"
    export.write_text(json.dumps(label_studio.export(project), ensure_ascii=False), encoding="utf-8")

    corpus = tmp_path / "corpus.jsonl"  # the seed articles that were not selected from
    corpus.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in seeds[2:]), encoding="utf-8")
    assert data_main(["add", str(export), "--corpus", str(corpus)]) == 0
    added = [json.loads(line) for line in corpus.read_text(encoding="utf-8").splitlines()[3:]]
    assert sorted(r["id"] for r in added) == sorted(sent)
    assert all(r["text"] == next(s["text"] for s in seeds if s["id"] == r["id"]) for r in added)
    before = corpus.read_bytes()
    assert data_main(["add", str(export), "--corpus", str(corpus)]) == 2  # the same articles again
    assert corpus.read_bytes() == before
