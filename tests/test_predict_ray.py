"""The Ray engine: its shards read the same records as the local engine, and on a real local Ray runtime (slow) it
writes the local engine's predictions, resumes a killed run without duplicates, and refuses to clobber a finished
one. The local engine never imports ray."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from transformers import BertForSequenceClassification, BertForTokenClassification

from src.labels import iob2_tags, seed_scheme
from src.predict.cli import main
from src.predict.io import iter_inputs
from src.predict.ray_engine import MANIFEST
from src.predict.shards import plan_shards, shard_records
from tests.checkpoints import random_head, save_run
from tests.conftest import ROOT
from tests.test_predict import TEXTS, assert_same, write_inputs

# the seed corpus's labels, which these tests' data uses
ENTITY_LABELS, STANCE_LABELS = seed_scheme().entity_labels, list(seed_scheme().stance_labels)

SCRIPT = ROOT / "scripts" / "predict.py"
SURROGATE = "Kim \udc80 met Putin."


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_bytes().decode("utf-8").split("\n") if line]


def shard_union(out_dir: Path) -> list[dict]:
    """The records of every part file, in shard order (= input order)."""
    return [record for part in sorted(out_dir.glob("part-*.jsonl")) for record in read_jsonl(part)]


def many_inputs(root: Path) -> list[str]:
    """The bad-input mix of the local tests, plus a JSONL with a lone surrogate and enough documents for shards."""
    inputs = write_inputs(root)
    texts = [f"{TEXTS[i % 5]} Report {i}: Putin met Kim in Moscow." for i in range(40)]
    texts[7] = SURROGATE
    lines = [json.dumps({"id": f"d{i}", "text": t}) for i, t in enumerate(texts)]
    lines.insert(12, "{broken")
    (root / "more.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return [*inputs, str(root / "more.jsonl")]


@pytest.mark.parametrize("shard_size", [1, 3, 1000])
def test_shards_read_the_same_records_as_the_local_engine(tmp_path: Path, shard_size: int) -> None:
    """Ids, texts and error records (file, line, reason) of every input, in order, however the shards fall."""
    inputs = many_inputs(tmp_path)
    expected = list(iter_inputs(inputs))
    shards = plan_shards(inputs, shard_size)
    got = [record for shard in shards for record in shard_records(json.loads(json.dumps(shard)))]
    assert got == expected
    assert all(len(s.get("entries", [])) <= shard_size for s in shards)
    assert any(r.get("error", {}).get("line") == 13 for r in got)  # the broken JSONL line, numbered in its file


def test_the_local_engine_never_imports_ray(runs: dict[str, Path], tmp_path: Path) -> None:
    docs = tmp_path / "docs.jsonl"
    docs.write_text(json.dumps({"id": "a", "text": TEXTS[0]}) + "\n")
    code = (
        "import sys; from src.predict.cli import main; "
        f"rc = main(['--ner', {str(runs['ner'])!r}, '-o', {str(tmp_path / 'out.jsonl')!r}, {str(docs)!r}]); "
        "print(rc, sorted(m for m in sys.modules if m == 'ray' or m.startswith('ray.')))"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "0 []"


def test_a_read_task_never_imports_torch() -> None:
    """Ray Data runs ``read_shard`` in fresh worker processes: its module must not make each of them load torch."""
    code = "import sys, src.predict.shards; print(sorted({'torch', 'transformers', 'ray'} & set(sys.modules)))"
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_ray_options_without_the_ray_engine_are_usage_errors(runs: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as usage:
        main(["--ner", str(runs["ner"]), "--workers", "2", str(tmp_path / "a.txt")])
    assert usage.value.code == 2


@pytest.mark.parametrize("address", ["127.0.0.1:{port}", "notahost.invalid:6379", "nonsense"])
def test_an_unreachable_address_is_one_error_before_anything_is_written(
    address: str, runs: dict[str, Path], tmp_path: Path
) -> None:
    """``ray.init`` retried an unreachable cluster for minutes and left a "running" manifest behind."""
    pytest.importorskip("ray")
    import socket

    with socket.socket() as closed:  # a port nothing listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    docs = tmp_path / "docs.jsonl"
    docs.write_text(json.dumps({"id": "a", "text": TEXTS[0]}) + "\n")
    out = tmp_path / "out"
    argv = ["--ner", str(runs["ner"]), "--engine", "ray", "--address", address.format(port=port), "-o", str(out)]
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), *argv, str(docs)], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 2 and time.monotonic() - started < 60
    assert f"--address {address.format(port=port)}: " in proc.stderr and "Traceback" not in proc.stderr
    assert not (out / MANIFEST).exists()


# -- on a real local Ray runtime (2 CPUs) --------------------------------------------------------------------------


def ray_argv(models: list[str], out: Path, inputs: list[str], *extra: str) -> list[str]:
    return [*models, "--device", "cpu", "--engine", "ray", "--workers", "2", "-o", str(out), *extra, *inputs]


@pytest.mark.slow
def test_ray_engine_equals_the_local_engine(runs: dict[str, Path], tmp_path: Path) -> None:
    pytest.importorskip("ray")
    inputs = many_inputs(tmp_path)
    models = ["--ner", str(runs["ner"]), "--stance", str(runs["stance"])]
    local = tmp_path / "local.jsonl"
    assert main([*models, "--device", "cpu", "-o", str(local), *inputs]) == 1
    out = tmp_path / "ray-out"
    assert main(ray_argv(models, out, inputs, "--shard-size", "4")) == 1  # some inputs are bad, as locally
    expected, got = read_jsonl(local), shard_union(out)
    assert [r["id"] for r in got] == [r["id"] for r in expected]
    assert [r.get("error") for r in got] == [r.get("error") for r in expected]
    assert_same(got, expected)
    assert any(r["entities"] for r in got)
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["status"] == "complete" and manifest["input_count"] == manifest["output_count"] == len(expected)
    assert manifest["errors"] == sum("error" in r for r in expected) == 7
    assert manifest["shards"]["planned"] == len(list(out.glob("part-*.jsonl"))) == len(manifest["shards"]["done"])
    assert manifest["models"]["ner"]["sha256"] and manifest["options"]["backend"] == "auto"
    assert manifest["ray"]["workers"] == 2
    with pytest.raises(SystemExit) as usage:  # a finished run is never overwritten without --overwrite
        main(ray_argv(models, out, inputs, "--shard-size", "4"))
    assert usage.value.code == 2
    assert main(ray_argv(models, out, inputs, "--shard-size", "4", "--resume")) == 0  # complete: nothing to do


@pytest.mark.slow
def test_a_killed_ray_run_resumes_to_the_same_records(runs: dict[str, Path], tmp_path: Path) -> None:
    """SIGKILL the whole run (driver and its Ray runtime) once some shards are done; --resume keeps them, redoes the
    rest, and the final records equal an uninterrupted run's, each document once."""
    pytest.importorskip("ray")
    texts = [f"{TEXTS[i % 5]} Report {i}: Putin met Kim in Moscow. " * 6 for i in range(150)]
    docs = tmp_path / "docs.jsonl"
    docs.write_text("".join(json.dumps({"id": f"d{i}", "text": t}) + "\n" for i, t in enumerate(texts)))
    models = ["--ner", str(runs["ner"]), "--stance", str(runs["stance"])]
    out = tmp_path / "out"
    argv = ray_argv(models, out, [str(docs)], "--shard-size", "10")
    proc = subprocess.Popen(
        [sys.executable, str(SCRIPT), *argv], cwd=ROOT, stderr=subprocess.DEVNULL, start_new_session=True
    )
    done, deadline = 0, time.monotonic() + 300
    while done < 1 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
        with contextlib.suppress(OSError, ValueError, KeyError):
            done = len(json.loads((out / MANIFEST).read_text())["shards"]["done"])
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["status"] == "running" and 0 < len(manifest["shards"]["done"]) < 15, "not killed halfway"
    kept = {name: (out / name).stat().st_mtime_ns for name in manifest["shards"]["done"]}
    with pytest.raises(SystemExit) as usage:  # an interrupted run is not continued or replaced silently
        main(argv)
    assert usage.value.code == 2
    assert main([*argv, "--resume"]) == 0
    assert all((out / name).stat().st_mtime_ns == stamp for name, stamp in kept.items())  # finished shards kept
    resumed = shard_union(out)
    assert [r["id"] for r in resumed] == [f"d{i}" for i in range(150)]  # each document once, in input order
    full = tmp_path / "full.jsonl"  # an uninterrupted run (the local engine: the Ray engine equals it, above)
    assert main([*models, "--device", "cpu", "-o", str(full), str(docs)]) == 0
    assert_same(resumed, read_jsonl(full))


@pytest.mark.slow
def test_ray_engine_equals_the_local_engine_on_the_default_model(default_model_dir: Path, tmp_path: Path) -> None:
    """The real default MiniLM (fresh heads: the equality does not depend on training), one worker."""
    pytest.importorskip("ray")
    tags = iob2_tags(ENTITY_LABELS)
    ner = save_run(random_head(BertForTokenClassification, default_model_dir, tags), default_model_dir, tmp_path / "n")
    stance_model = random_head(BertForSequenceClassification, default_model_dir, STANCE_LABELS)
    stance = save_run(stance_model, default_model_dir, tmp_path / "stance")
    docs = tmp_path / "docs.jsonl"
    docs.write_text("".join(json.dumps({"id": f"d{i}", "text": t}) + "\n" for i, t in enumerate(TEXTS * 4)))
    models = ["--ner", str(ner), "--stance", str(stance), "--device", "cpu"]
    local = tmp_path / "local.jsonl"
    assert main([*models, "-o", str(local), str(docs)]) == 0
    out = tmp_path / "ray-out"
    assert main([*models, "--engine", "ray", "--workers", "1", "--shard-size", "7", "-o", str(out), str(docs)]) == 0
    assert_same(shard_union(out), read_jsonl(local))


@pytest.mark.slow
def test_sigterm_stops_a_ray_run_resumably(runs: dict[str, Path], tmp_path: Path) -> None:
    """SIGTERM (a scheduler's stop) ends the run as Ctrl-C does: exit 130, the finished shards in the manifest, and
    --resume completes it."""
    pytest.importorskip("ray")
    texts = [f"{TEXTS[i % 5]} Report {i}: Putin met Kim in Moscow. " * 6 for i in range(150)]
    docs = tmp_path / "docs.jsonl"
    docs.write_text("".join(json.dumps({"id": f"d{i}", "text": t}) + "\n" for i, t in enumerate(texts)))
    out = tmp_path / "out"
    argv = ray_argv(["--ner", str(runs["ner"])], out, [str(docs)], "--shard-size", "10")
    proc = subprocess.Popen(
        [sys.executable, str(SCRIPT), *argv], cwd=ROOT, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        done, deadline = 0, time.monotonic() + 300
        while done < 1 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
            with contextlib.suppress(OSError, ValueError, KeyError):
                done = len(json.loads((out / MANIFEST).read_text())["shards"]["done"])
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=300)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, err[-2000:]
    assert "rerun with --resume" in err
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["status"] == "running" and len(manifest["shards"]["done"]) >= 1
    assert main([*argv, "--resume"]) == 0
    assert [r["id"] for r in shard_union(out)] == [f"d{i}" for i in range(150)]
