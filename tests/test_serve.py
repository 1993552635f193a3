"""The prediction service as a client sees it: real uvicorn servers (subprocesses on free loopback ports, tiny models)
talked to over HTTP: answers equal to ``scripts/predict.py``'s, every status code, overload, the API key, SIGTERM.

The servers of the module start together (one per configuration) and are killed at the end whatever happens.
"""

from __future__ import annotations

import asyncio
import json
import math
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from src.predict.cli import main as predict_main
from src.predict.io import describe_model
from tests.conftest import ROOT, SEEDS

KEY = "s3cret-key-for-tests"
READY_S = 180  # a cold start on a busy 2-core machine: imports, ONNX export, warm-up

# One configuration per server, each chosen so that the behaviour under test is deterministic.
CONFIGS = {
    # Small limits that the seed articles still fit in: 413 and 422 without megabytes of traffic.
    "main": ["--max-body-bytes", "300000", "--max-documents", "8", "--max-chars", "100000"],
    # A queue of one and few requests in flight: 200 concurrent requests must overflow it.
    "keyed": [
        "--queue-size",
        "1",
        "--max-in-flight",
        "24",
        "--batch-size",
        "4",
        "--batch-wait-ms",
        "2",
        "--threads",
        "1",
    ],
    # A batch waits 3 s for company, a request only 0.5 s: every request times out while its job waits.
    "slow": ["--batch-wait-ms", "3000", "--batch-size", "64", "--timeout-s", "0.5", "--threads", "1"],
    # A batch waits 1.5 s: requests are reliably in flight when SIGTERM arrives.
    "sigterm": ["--batch-wait-ms", "1500", "--batch-size", "64", "--threads", "1"],
    "gated": [],  # create_app with a Predictor that loads on a signal from the test (GATED)
}

EXTRA_TEXTS = [
    ("nul", "Putin met Kim\x00 in Moscow.\x00 Trade grew."),
    ("line-separator", "Putin met Kim in Moscow.\u2028Analysts in Seoul said so.\u2029 Trade grew."),
    ("crlf-emoji", "Kim’s train – “armoured” – reached Moscow.\r\nAnalysts in Seoul said Putin wants weapons 🚀."),
    ("empty", ""),
    ("blank", "   \n\n  "),
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# A server from ``create_app`` whose Predictor loads only once the file GATE exists: /readyz is 503 until then.
GATED = """
import sys, time
from pathlib import Path
import uvicorn
from src.predict import Predictor
from src.serve.app import create_app

ner, stance, port, gate = sys.argv[1:]

def load():
    deadline = time.monotonic() + 120
    while not Path(gate).exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    return Predictor.from_pretrained(ner=ner, stance=stance)

uvicorn.run(create_app(load), host="127.0.0.1", port=int(port), log_level="warning")
"""


class Server:
    """A server on a free loopback port, its output in a file (a pipe nobody reads would block it)."""

    def __init__(self, name: str, runs: dict[str, Path], folder: Path, args: list[str]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = folder / f"{name}.log"
        models = [str(runs["ner"]), str(runs["stance"])]
        command = [sys.executable, "-m", "src.serve", "--ner", models[0], "--stance", models[1], *args]
        command += ["--port", str(self.port)]
        self.gate = folder / f"{name}.gate" if name == "gated" else None
        if self.gate is not None:
            command = [sys.executable, "-c", GATED, *models, str(self.port), str(self.gate)]
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(command, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def wait_for(self, path: str, deadline: float) -> None:
        """Until ``path`` answers 200 (``/readyz``; ``/healthz`` for the gated server, which is not ready)."""
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"the server exited with {self.proc.returncode}:\n{self.output()}")
            try:
                if httpx.get(f"{self.url}{path}", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        pytest.fail(f"{path} did not answer 200 in time:\n{self.output()}")

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=30)


@pytest.fixture(scope="module")
def servers(runs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Server]]:
    folder = tmp_path_factory.mktemp("serve")
    key_file = folder / "keys.txt"
    key_file.write_text(f"\n{KEY}\nanother-key\n", encoding="utf-8")
    configs = {**CONFIGS, "keyed": [*CONFIGS["keyed"], "--api-key-file", str(key_file)]}
    started: dict[str, Server] = {}
    try:
        for name, args in configs.items():
            started[name] = Server(name, runs, folder, args)
        deadline = time.monotonic() + READY_S
        for server in started.values():
            server.wait_for("/healthz" if server.gate else "/readyz", deadline)
        yield started
    finally:
        for server in started.values():
            server.kill()


@pytest.fixture(scope="module")
def main_url(servers: dict[str, Server]) -> str:
    return servers["main"].url


def post(url: str, payload: object, headers: dict[str, str] | None = None) -> httpx.Response:
    """POST JSON as ``json.dumps`` writes it (ASCII: a lone surrogate travels as ``\\udc80``, as in a JSONL file)."""
    headers = {"content-type": "application/json", **(headers or {})}
    return httpx.post(f"{url}/v1/annotate", content=json.dumps(payload).encode(), headers=headers, timeout=30)


def assert_error(response: httpx.Response, status: int, code: str | None = None, *words: str) -> dict:
    """A JSON error body ``{"error": {"code", "message"}}`` with the status (and code, and words in the message)."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert set(error) == {"code", "message"} and "Traceback" not in error["message"]
    if code is not None:
        assert error["code"] == code
    for word in words:
        assert word in error["message"], error["message"]
    return error


def assert_same_record(served: object, written: object, path: str = "record") -> None:
    """Field by field: the same keys, strings, labels and offsets; floats equal to float noise (thread counts)."""
    if isinstance(written, float):
        assert isinstance(served, float) and math.isclose(served, written, rel_tol=1e-6, abs_tol=1e-7), path
    elif isinstance(written, dict):
        assert isinstance(served, dict) and list(served) == list(written), path
        for key in written:
            assert_same_record(served[key], written[key], f"{path}.{key}")
    elif isinstance(written, list):
        assert isinstance(served, list) and len(served) == len(written), path
        for i, (a, b) in enumerate(zip(served, written, strict=True)):
            assert_same_record(a, b, f"{path}[{i}]")
    else:
        assert served == written, path


def predict_py(runs: dict[str, Path], records: list[dict], folder: Path, *options: str) -> list[dict]:
    """What ``scripts/predict.py --format jsonl`` writes for ``records`` as a JSONL file."""
    source, out = folder / "in.jsonl", folder / "out.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    code = predict_main(
        [
            "--ner",
            str(runs["ner"]),
            "--stance",
            str(runs["stance"]),
            *options,
            "--overwrite",
            "-o",
            str(out),
            str(source),
        ]
    )
    assert code in (0, 1)
    lines = out.read_bytes().split(b"\n")[:-1]
    return [json.loads(line) for line in lines]


# -- answers -------------------------------------------------------------------------------------------------------


def test_health_readiness_models_and_docs(servers: dict[str, Server], runs: dict[str, Path]) -> None:
    url = servers["main"].url
    assert httpx.get(f"{url}/healthz").json() == {"status": "ok"}
    ready = httpx.get(f"{url}/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "ready"
    info = httpx.get(f"{url}/v1/models").json()
    assert info["version"] == "0.1.0"
    for task in ("ner", "stance"):
        model = info["models"][task]
        assert model["task"] == task and model["backend"] == "onnx"
        assert model["sha256"] == describe_model(str(runs[task]))["sha256"]
        assert model["labels"] and model["max_length"] == 128 and model["stride"] == 32
    assert info["limits"]["max_documents"] == 8
    assert httpx.get(f"{url}/docs").status_code == 200
    assert "/v1/annotate" in httpx.get(f"{url}/openapi.json").json()["paths"]


def test_readyz_is_503_until_the_models_are_loaded_and_warm(servers: dict[str, Server]) -> None:
    server = servers["gated"]
    assert httpx.get(f"{server.url}/healthz").status_code == 200
    response = httpx.get(f"{server.url}/readyz")
    assert_error(response, 503, "not_ready")
    assert response.json()["status"] == "starting" and response.headers["retry-after"] == "1"
    assert_error(post(server.url, {"documents": [{"text": "Putin met Kim."}]}), 503, "not_ready")
    server.gate.touch()
    server.wait_for("/readyz", time.monotonic() + 60)
    assert post(server.url, {"documents": [{"text": "Putin met Kim."}]}).status_code == 200


def test_answers_equal_predict_py_records(main_url: str, runs: dict[str, Path], tmp_path: Path) -> None:
    """The seed articles and awkward texts (NUL, U+2028, CRLF, emoji, empty), given sentence spans, a number id and
    a lone surrogate: each answer is the record predict.py writes for the same JSONL line."""
    seeds = [json.loads(line) for line in SEEDS.read_text(encoding="utf-8").splitlines() if line.strip()]
    documents = [{"id": s["id"], "text": s["text"]} for s in seeds]
    documents += [{"id": name, "text": text} for name, text in EXTRA_TEXTS]
    documents.append(
        {"id": 7, "text": "Putin met Kim. In Moscow.", "sentences": [{"start": 0, "end": 25, "stance": None}]}
    )
    documents.append({"id": "surrogate", "text": "bad \udc80 text"})
    assert len(documents) > 8  # two requests: the server takes 8 at most
    for options, fields in (
        ((), {}),
        (("--min-score", "0.34", "--flag-below", "0.97"), {"min_score": 0.34, "flag_below": 0.97}),
    ):
        written = predict_py(runs, documents, tmp_path, *options)
        served = []
        for part in (documents[:8], documents[8:]):
            response = post(main_url, {"documents": part, **fields})
            assert response.status_code == 200, response.text
            served += response.json()["documents"]
        assert len(served) == len(written) == len(documents)
        bad = served.pop(), written.pop()  # an error record says where: the file and line, or the request position
        assert bad[0]["error"] == {"file": "<request>", "line": len(documents) - 8, "reason": bad[1]["error"]["reason"]}
        assert "lone surrogate" in bad[0]["error"]["reason"] and bad[0]["id"] == "surrogate"
        for a, b in zip(served, written, strict=True):
            assert_same_record(a, b, str(b["id"]))
        assert any(e["label"] == "PERSON" for r in served for e in r["entities"])
        if fields:
            assert any(e.get("low_score") for r in served for e in r["entities"])
            assert any(s["stance"] is None for r in served for s in r["sentences"])
    assert post(main_url, {"documents": []}).json() == {"documents": []}


# -- refusals ------------------------------------------------------------------------------------------------------


def test_malformed_json_and_wrong_types_get_422(main_url: str) -> None:
    headers = {"content-type": "application/json"}
    cases = [
        (b'{"documents": [', "malformed JSON"),
        (b'{"documents": [{"text": "a\x00b"}]}', "malformed JSON"),  # a raw NUL byte: not JSON
        (b'{"documents": [{"text": "caf\xe9"}]}', "not UTF-8: byte 0xe9"),
        (b"[]", "body"),
        (b'{"documents": "text"}', "documents"),
        (b'{"documents": [{"text": 5}]}', "documents[0].text"),
        (b'{"documents": [{"id": 1.5, "text": "a"}]}', "documents[0].id"),
        (b'{"documents": [{"text": "a", "sentences": [{"start": "0", "end": 1}]}]}', "documents[0].sentences[0].start"),
        (b'{"documents": [], "min_score": 2}', "min_score"),
        (b'{"docs": []}', "docs"),
    ]
    for body, words in cases:
        assert_error(httpx.post(f"{main_url}/v1/annotate", content=body, headers=headers), 422, None, words)
    assert_error(httpx.post(f"{main_url}/v1/annotate", content=b'{"documents": []}'), 422, None, "Content-Type")


def test_limits_on_documents_and_characters_get_422(main_url: str) -> None:
    many = {"documents": [{"text": "a"}] * 9}
    assert_error(post(main_url, many), 422, "too_many_documents", "documents", "8", "--max-documents")
    long = {"documents": [{"text": "word " * 10_000}, {"text": "word " * 10_001}]}
    assert_error(post(main_url, long), 422, "too_many_characters", "documents[].text", "100000", "--max-chars")


def test_body_over_the_limit_gets_413_counted_as_read(main_url: str) -> None:
    big = json.dumps({"documents": [{"text": "x" * 400_000}]}).encode()
    assert_error(httpx.post(f"{main_url}/v1/annotate", content=big, timeout=30), 413, "payload_too_large", "300000")

    def chunks(total: int) -> Iterator[bytes]:  # no Content-Length: only counting can tell
        yield b'{"documents": [{"text": "'
        for _ in range(total // 10_000):
            yield b"x" * 10_000
        yield b'"}]}'

    for total in (350_000, 900_000):  # within twice the limit (read to the end), and far over it
        response = httpx.post(f"{main_url}/v1/annotate", content=chunks(total), timeout=30)
        assert "content-length" not in response.request.headers
        assert_error(response, 413, "payload_too_large")
    assert post(main_url, {"documents": [{"text": "Putin met Kim."}]}).status_code == 200


def test_unknown_routes_and_methods_get_json_errors(main_url: str) -> None:
    assert_error(httpx.get(f"{main_url}/nowhere"), 404, "not_found")
    assert_error(httpx.get(f"{main_url}/v1/annotate"), 405, "method_not_allowed")


def test_api_key(servers: dict[str, Server]) -> None:
    url = servers["keyed"].url
    assert httpx.get(f"{url}/healthz").status_code == 200 and httpx.get(f"{url}/readyz").status_code == 200
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"X-API-Key": "wrong"}, {"Authorization": KEY}):
        response = httpx.get(f"{url}/v1/models", headers=headers)
        assert_error(response, 401, "unauthorized")
        assert response.headers["www-authenticate"] == "Bearer"
    big = {"documents": [{"text": "x" * 20_000_000}]}  # refused for the key before the body is read
    assert_error(post(url, big), 401, "unauthorized")
    for headers in ({"Authorization": f"Bearer {KEY}"}, {"X-API-Key": KEY}, {"X-API-Key": "another-key"}):
        assert httpx.get(f"{url}/v1/models", headers=headers).status_code == 200
        assert post(url, {"documents": [{"text": "Putin met Kim."}]}, headers=headers).status_code == 200


# -- load ----------------------------------------------------------------------------------------------------------


def test_overload_gets_quick_503s_and_the_service_stays_up(servers: dict[str, Server]) -> None:
    url = servers["keyed"].url
    text = next(json.loads(line)["text"] for line in SEEDS.read_text(encoding="utf-8").splitlines())

    async def storm() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=200, max_keepalive_connections=0)
        async with httpx.AsyncClient(headers={"X-API-Key": KEY}, limits=limits, timeout=25) as client:
            payload = {"documents": [{"id": "a", "text": text}]}
            requests = [client.post(f"{url}/v1/annotate", json=payload) for _ in range(200)]
            return await asyncio.wait_for(asyncio.gather(*requests), timeout=30)

    responses = asyncio.run(storm())
    codes = [r.status_code for r in responses]
    assert set(codes) <= {200, 503} and 200 in codes and 503 in codes, codes
    for response in responses:
        if response.status_code == 503:
            assert_error(response, 503, "overloaded", "retry later")
            assert response.headers["retry-after"] == "1"
        else:
            assert response.json()["documents"][0]["id"] == "a"
    deadline = time.monotonic() + 10
    while (ready := httpx.get(f"{url}/readyz").json()).get("in_flight") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert ready["status"] == "ready" and ready["in_flight"] == 0
    assert post(url, {"documents": [{"text": "Putin met Kim."}]}, headers={"X-API-Key": KEY}).status_code == 200


def test_request_over_its_time_limit_gets_504_and_a_stalled_body_408(servers: dict[str, Server]) -> None:
    url = servers["slow"].url
    start = time.monotonic()
    assert_error(post(url, {"documents": [{"text": "Putin met Kim."}]}), 504, "timeout", "--timeout-s")
    assert time.monotonic() - start < 2.5  # at its deadline, not when its batch would have run
    with socket.create_connection(("127.0.0.1", servers["slow"].port), timeout=10) as sock:  # a body that stalls
        sock.sendall(b'POST /v1/annotate HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"documents"')
        answer = b""
        while b"request_timeout" not in answer and (chunk := sock.recv(4096)):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 408 ") and b'"code":"request_timeout"' in answer
    assert httpx.get(f"{url}/readyz").status_code == 200


def test_sigterm_answers_requests_in_flight_then_exits_0(servers: dict[str, Server]) -> None:
    server = servers["sigterm"]
    texts = ["Putin met Kim in Moscow.", "Trade grew.", "Analysts in Seoul said so."]
    with ThreadPoolExecutor(len(texts)) as pool:
        futures = [
            pool.submit(post, server.url, {"documents": [{"id": str(i), "text": t}]}) for i, t in enumerate(texts)
        ]
        deadline = time.monotonic() + 10
        while httpx.get(f"{server.url}/readyz").json()["in_flight"] < len(texts):
            assert time.monotonic() < deadline, "the requests never reached the server"
            time.sleep(0.02)
        server.proc.send_signal(signal.SIGTERM)
        responses = [f.result(timeout=30) for f in futures]
    assert [r.status_code for r in responses] == [200] * len(texts)
    assert [r.json()["documents"][0]["id"] for r in responses] == ["0", "1", "2"]
    assert server.proc.wait(timeout=30) == 0, server.output()
    assert "Traceback" not in server.output()
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{server.url}/healthz", timeout=2)


# -- start-up refusals -----------------------------------------------------------------------------------------------


def test_bad_flags_and_broken_models_exit_2_with_one_error_line(runs: dict[str, Path], tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    (broken / "model").mkdir(parents=True)
    ner = ["--ner", str(runs["ner"])]
    cases = [
        ([], "give --ner, --stance, --model (a folder of any task) or several"),
        ([*ner, "--port", "70000"], "--port"),
        ([*ner, "--max-documents", "0"], "--max-documents"),
        ([*ner, "--api-key-file", str(tmp_path / "missing")], "--api-key-file"),
        (["--ner", str(broken)], "cannot load the checkpoints"),
        (["--ner", str(runs["stance"])], "is a stance model"),
    ]

    def run(args: list[str]) -> subprocess.CompletedProcess:
        command = [sys.executable, "-m", "src.serve", "--port", str(free_port()), *args]
        return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)

    with ThreadPoolExecutor(3) as pool:
        results = list(pool.map(run, [args for args, _ in cases]))
    for (_, words), done in zip(cases, results, strict=True):
        assert done.returncode == 2, done.stderr
        errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and words in errors[0], done.stderr
        assert "Traceback" not in done.stderr
