"""Scale-out batch prediction on Ray Data: ``scripts/predict.py --engine ray [--workers N] [--address A] -o DIR``.

The same inputs, readers, Predictor and records as the local engine, spread over a pool of Ray actors:

1. The driver lists the inputs cheaply (file names, byte ranges of JSONL files cut every ``--shard-size`` lines) into
   numbered *shards*; the plan depends only on the inputs and ``--shard-size``, so a rerun plans the same shards.
2. Ray Data reads each shard in a task (``src.predict.shards``: ``src.predict.io``'s readers, same ids, same error
   records; a module without torch, so a read task starts at once).
3. An actor pool (``ActorPoolStrategy``, one Predictor per actor, loaded once) predicts a shard and writes it to
   ``DIR/part-NNNNN.jsonl`` atomically, so a shard file is complete or absent, never half written.
4. The driver records each finished shard (documents, errors, sha256) in ``DIR/manifest.json``. Concatenated in
   shard order the shards hold the local engine's output, record for record and in input order.

A killed run leaves the manifest with ``"status": "running"``; ``--resume`` checks that inputs, models and options
are unchanged and redoes only the shards the manifest does not list as done. ``ray`` is imported only here and only
when this engine runs: the local engine never loads it. On a cluster, the model folders and ``DIR`` must be at the
same path on every node (a shared file system).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import logging
import os
import signal
import socket
import sys
import time
from pathlib import Path

from tqdm import tqdm

from src.files import PROJECT_ROOT, sha256_of, write_atomic, write_json
from src.model_folder import folders_by_task
from src.predict.engine import OptionError, Predictor
from src.predict.io import (
    STDIN,
    OutputBusy,
    PredictionWriter,
    describe_input,
    describe_model,
    lock_output,
    run_differences,
    unlock_output,
)
from src.predict.shards import plan_shards, read_shard

log = logging.getLogger(__name__)

MANIFEST_VERSION = 1
MANIFEST = "manifest.json"
ADDRESS_TIMEOUT_S = 10.0  # how long --address may take to accept a connection
# Options that change predictions or the plan: a run is resumed only under the same ones.
RUN_OPTIONS = ("batch_size", "device", "precision", "quantize", "backend", "max_length", "stride", "shard_size")
OBJECT_STORE_BYTES = 256 * 1024**2  # local runtime: shards are a few MB each, in flight a few at a time


def part_name(shard: int) -> str:
    return f"part-{shard:05d}.jsonl"


# -- Ray Data stages -----------------------------------------------------------------------------------------------


class ShardPredictor:
    """Ray actor: loads the Predictor once, then predicts whole shards and writes each to its part file."""

    def __init__(self, options: dict, out_dir: str, threads: int) -> None:
        import torch

        torch.set_num_threads(threads)
        self.predictor = Predictor.from_pretrained(**options)
        self.out_dir = Path(out_dir)

    def __call__(self, batch: dict) -> dict:
        result: dict[str, list] = {"shard": [], "inputs": [], "outputs": [], "errors": [], "sha256": []}
        for shard, inputs, documents in zip(batch["shard"], batch["inputs"], batch["documents"], strict=True):
            records = [json.loads(line) for line in str(documents).split("\n") if line]
            buffer = io.StringIO()
            writer = PredictionWriter("jsonl", buffer)
            for prediction in self.predictor.iter_predict(records):
                writer.write(prediction)
            lines = [line for line in buffer.getvalue().split("\n") if line]
            data = buffer.getvalue().encode("utf-8")
            write_atomic(self.out_dir / part_name(int(shard)), data)
            result["shard"].append(int(shard))
            result["inputs"].append(int(inputs))
            result["outputs"].append(len(lines))
            result["errors"].append(sum("error" in json.loads(line) for line in lines))
            result["sha256"].append(hashlib.sha256(data).hexdigest())
        return result


# -- the output folder and its manifest ------------------------------------------------------------------------------


def describe_run(args: argparse.Namespace) -> dict:
    return {
        "newsframe_predict_ray": MANIFEST_VERSION,
        "status": "running",
        "inputs": [describe_input(name) for name in args.inputs],
        "models": {task: describe_model(path) for task, path in args.models.items()},
        "options": {key: getattr(args, key) for key in RUN_OPTIONS},
        "shards": {"planned": 0, "done": {}},
    }


def check_output(parser: argparse.ArgumentParser, args: argparse.Namespace, run: dict) -> dict | None:
    """Refuse to clobber a finished run or mix two runs in one folder; returns the manifest to continue (with
    ``--resume``), or None for a fresh start. ``--overwrite`` removes only this tool's files."""
    out: Path = args.output
    manifest_path = out / MANIFEST
    old = None
    if manifest_path.exists():
        try:
            old = json.loads(manifest_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            if not args.overwrite:
                parser.error(f"{manifest_path}: unreadable manifest ({err}); pass --overwrite to start over")
    if args.overwrite:
        for path in [manifest_path, *out.glob("part-*.jsonl"), *out.glob(".part-*.tmp")]:
            path.unlink(missing_ok=True)
        return None
    if old is None:
        if any(out.glob("part-*.jsonl")):
            parser.error(f"{out}: holds part files but no {MANIFEST}; pass --overwrite to start over")
        return None
    if old.get("status") == "complete":
        if args.resume:
            return old
        parser.error(f"{out} holds a finished run; pass --overwrite to replace it")
    if not args.resume:
        parser.error(f"{out} holds an interrupted run; pass --resume to continue it or --overwrite to start over")
    changes = run_differences(old, run)
    if changes:
        parser.error(
            f"--resume: {out} was written by a different run: {'; '.join(changes)}. Resume with the same inputs, "
            "models and options, or pass --overwrite to start over"
        )
    for path in out.glob(".part-*.tmp"):  # a write cut short by the kill
        path.unlink(missing_ok=True)
    return old


def finished_shards(out: Path, manifest: dict) -> dict[str, dict]:
    """The manifest's done shards whose file is there with the recorded bytes (others are redone)."""
    kept = {}
    for name, entry in manifest.get("shards", {}).get("done", {}).items():
        path = out / name
        if path.is_file() and sha256_of([path]) == entry.get("sha256"):
            kept[name] = entry
    return kept


# -- Ray -------------------------------------------------------------------------------------------------------------


def start_ray(address: str | None, cpus: int) -> None:
    """Connect to a cluster (``address``), or start a local runtime with ``cpus`` CPUs, a small object store and no
    dashboard or usage reporting. Workers find this package: through PYTHONPATH locally, uploaded on a cluster."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_DISABLE_DOCKER_CPU_WARNING", "1")
    import ray

    env = {"TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1", "RAY_USAGE_STATS_ENABLED": "0"}
    if "NEWSFRAME_CACHE" in os.environ:
        env["NEWSFRAME_CACHE"] = os.environ["NEWSFRAME_CACHE"]
    if address is None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT_ROOT), os.environ.get("PYTHONPATH")]))
        ray.init(
            num_cpus=cpus,
            include_dashboard=False,
            object_store_memory=OBJECT_STORE_BYTES,
            runtime_env={"env_vars": env},
            logging_level=logging.WARNING,
            log_to_driver=True,
        )
    else:
        ray.init(
            address=address,
            runtime_env={"env_vars": env, "py_modules": [str(PROJECT_ROOT / "src")]},
            logging_level=logging.WARNING,
        )
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False  # one progress bar: ours, in documents


def pool_size(args: argparse.Namespace, cluster_cpus: int) -> tuple[int, int]:
    """``(workers, threads per worker)``: by default one single-threaded actor per CPU of the cluster."""
    threads = args.threads or (max(1, cluster_cpus // args.workers) if args.workers else 1)
    workers = args.workers or max(1, cluster_cpus // threads)
    return workers, threads


def absolute(path: str | None) -> str | None:
    """A model folder as actors must see it: their working folder is not the driver's."""
    return str(Path(path).resolve()) if path is not None and Path(path).exists() else path


def predictor_options(args: argparse.Namespace) -> dict:
    return {
        **{task: absolute(path) for task, path in args.models.items()},
        "device": args.device,
        "batch_size": args.batch_size,
        "max_length": args.max_length,
        "stride": args.stride,
        "precision": args.precision,
        "quantize": args.quantize,
        "backend": args.backend,
    }


def address_problem(address: str, timeout: float = ADDRESS_TIMEOUT_S) -> str | None:
    """Why a cluster ``address`` (``host:port`` or ``ray://host:port``) cannot be reached (None: a connection
    opened, or ``auto``, which Ray resolves itself). ``ray.init`` would retry an unreachable one for minutes."""
    if address == "auto":
        return None
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        return "expected HOST:PORT, ray://HOST:PORT or auto"
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as err:
        return f"cannot reach {host}:{port} within {timeout:g} s ({err.strerror or err})"
    return None


def stop_on_sigterm(signum: int, frame: object) -> None:
    """SIGTERM ends the run as Ctrl-C does: the manifest records the finished shards, and --resume goes on."""
    raise KeyboardInterrupt


def run_ray(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    """``scripts/predict.py --engine ray``: exit 0, 1 when some document failed, 2 for usage errors."""
    if args.output is None:
        parser.error("--engine ray needs --output DIR (a folder for the shards and the manifest)")
    if STDIN in args.inputs:
        parser.error("--engine ray reads files and folders, not standard input")
    if args.format != "jsonl":
        parser.error("--engine ray writes JSONL shards; convert them with the local engine if needed")
    if args.output.exists() and not args.output.is_dir():
        parser.error(f"--output {args.output}: is a file; --engine ray writes a folder")
    try:
        import ray  # noqa: F401
    except ImportError:
        parser.error('--engine ray needs Ray Data: pip install -e ".[ray]"')
    problem = address_problem(args.address) if args.address is not None else None
    if problem:
        parser.error(f"--address {args.address}: {problem}")
    try:  # reads each folder's task and fingerprints it: a broken one is found before anything is written
        args.models = folders_by_task(args.ner, args.stance, args.model)
        run = describe_run(args)
    except (OSError, ValueError) as err:
        parser.error(f"cannot load the checkpoints: {err}")
    try:
        args.output.mkdir(parents=True, exist_ok=True)
        lock = lock_output(args.output / MANIFEST)
    except OutputBusy as err:
        parser.error(str(err))
    except OSError as err:
        parser.error(f"--output {args.output}: cannot write there: {err.strerror or err}")
    previous = signal.signal(signal.SIGTERM, stop_on_sigterm)
    try:
        return _run(parser, args, run)
    finally:
        signal.signal(signal.SIGTERM, previous)
        unlock_output(args.output / MANIFEST, lock)


def shard_dataset(todo: list[dict], args: argparse.Namespace, workers: int, threads: int):
    """The Ray Data pipeline: shards read by I/O tasks, predicted by a pool of ``ShardPredictor`` actors."""
    import ray

    return (
        ray.data.from_items(todo, override_num_blocks=min(len(todo), 4 * workers))
        .map(read_shard, num_cpus=0)  # I/O: never waits for a CPU the actors hold
        .map_batches(
            ShardPredictor,
            batch_size=1,
            compute=ray.data.ActorPoolStrategy(size=workers),
            num_cpus=threads,
            fn_constructor_kwargs={
                "options": predictor_options(args),
                "out_dir": str(args.output.resolve()),
                "threads": threads,
            },
        )
    )


def shard_entry(row: dict) -> dict:
    """A finished shard as the manifest records it."""
    return {
        "input_documents": int(row["inputs"]),
        "output_records": int(row["outputs"]),
        "errors": int(row["errors"]),
        "sha256": str(row["sha256"]),
    }


def complete(run: dict, output: Path, startup: float, total: float) -> None:
    """The manifest of a finished run: its status, counts over the shards and times."""
    done = run["shards"]["done"]
    run.update(
        status="complete",
        input_count=sum(e["input_documents"] for e in done.values()),
        output_count=sum(e["output_records"] for e in done.values()),
        errors=sum(e["errors"] for e in done.values()),
        seconds={"startup": round(startup, 2), "total": round(total, 2)},
    )
    write_json(output / MANIFEST, run)


def _run(parser: argparse.ArgumentParser, args: argparse.Namespace, run: dict) -> int:
    old = check_output(parser, args, run)
    if old is not None and old.get("status") == "complete":
        print(f"{args.output} is complete; nothing to resume", file=sys.stderr)
        return 0
    started = time.monotonic()
    shards = plan_shards(args.inputs, args.shard_size)
    done = finished_shards(args.output, old) if old else {}
    run["shards"] = {"planned": len(shards), "done": done}
    write_json(args.output / MANIFEST, run)

    # The options are checked (and a first ONNX export made) here, once, with the local engine's messages.
    try:
        Predictor.from_pretrained(**predictor_options(args))
    except OptionError as err:
        parser.error(f"--{err.option.replace('_', '-')} {err.detail}")
    except (OSError, ValueError, ImportError) as err:
        parser.error(f"cannot load the checkpoints: {err}")

    todo = [
        {"shard": k, "spec": json.dumps(s), "cwd": os.getcwd()}
        for k, s in enumerate(shards)
        if part_name(k) not in done
    ]
    import ray

    try:
        start_ray(args.address, max(os.cpu_count() or 1, (args.workers or 1) * (args.threads or 1)))
        signal.signal(signal.SIGTERM, stop_on_sigterm)  # ray.init installs a handler of its own that dies
        workers, threads = pool_size(args, int(ray.cluster_resources().get("CPU", 1)))
        address = args.address or "local"
        run["ray"] = {"version": ray.__version__, "address": address, "workers": workers, "threads": threads}
        startup = time.monotonic() - started
        progress = tqdm(desc="shards", initial=len(done), total=len(shards), file=sys.stderr, disable=None)
        if todo:
            last = 0.0  # the first finished shard is recorded at once, later ones at most every 0.5 s
            for row in shard_dataset(todo, args, workers, threads).iter_rows():
                run["shards"]["done"][part_name(int(row["shard"]))] = shard_entry(row)
                progress.update()
                if time.monotonic() - last > 0.5 or len(run["shards"]["done"]) == len(shards):
                    write_json(args.output / MANIFEST, run)
                    last = time.monotonic()
        progress.close()
    except KeyboardInterrupt:
        write_json(args.output / MANIFEST, run)
        print(f"\ninterrupted; finished shards are in {args.output}: rerun with --resume", file=sys.stderr)
        return 130
    finally:
        ray.shutdown()
    complete(run, args.output, startup, time.monotonic() - started)
    print(
        f"{run['output_count']} records in {len(shards)} shards in {args.output} "
        f"({run['errors']} errors; {workers} workers x {threads} threads)",
        file=sys.stderr,
    )
    return 1 if run["errors"] else 0
