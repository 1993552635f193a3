"""``python scripts/predict.py``: batch prediction from the shell (exit 0 ok, 1 some record failed, 2 usage)."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
import time
from collections import deque
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from tqdm import tqdm

from src.files import write_json
from src.predict.io import (
    FORMATS,
    STDIN,
    TEXT_FORMATS,
    OutputBusy,
    PredictionWriter,
    add_model_arguments,
    describe_input,
    describe_model,
    finalize,
    iter_inputs,
    journal_path,
    lock_output,
    read_journal,
    run_differences,
    run_record_path,
    unlock_output,
)
from src.predict.threshold import apply_thresholds

if TYPE_CHECKING:
    from src.predict.engine import Predictor

RUN_RECORD_VERSION = 1
# The run record's committed count catches up after a group once this many seconds or lines have passed: a kill
# redoes at most that much, and a stream of tiny groups (empty or unreadable documents) does not rewrite it per line.
COMMIT_SECONDS, COMMIT_LINES = 0.5, 64
# The options that change predictions: a journal is resumed only under the same ones.
RUN_OPTIONS = (
    "format",
    "batch_size",
    "device",
    "precision",
    "quantize",
    "backend",
    "max_length",
    "stride",
    "min_score",
    "flag_below",
)


def whole_number(minimum: int):
    """An argparse type: an integer of at least ``minimum`` (usage error, exit 2, otherwise)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value

    return parse


def probability(text: str) -> float:
    """An argparse type: a number from 0 to 1."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number from 0 to 1, got {text!r}") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be from 0 to 1, got {value}")
    return value


def add_engine_options(parser: argparse.ArgumentParser) -> None:
    """How the models run: batch, device, precision, int8, backend, threads and windows."""
    parser.add_argument("--batch-size", type=whole_number(1), default=32)
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument(
        "--precision",
        choices=("auto", "fp32", "fp16", "bf16"),
        default="auto",
        help="auto (default): half precision on CUDA; on CPUs with native bf16 each model folder's choice "
        "(cpu_precision), else fp32",
    )
    parser.add_argument(
        "--quantize",
        choices=("auto", "none", "int8"),
        default="auto",
        help="auto (default): each model folder's choice on CPU with ONNX Runtime (cpu_quantize); none: fp32; "
        "int8: dynamic int8 linear layers (CPU; faster)",
    )
    parser.add_argument(
        "--backend",
        choices=("auto", "torch", "onnx"),
        default="auto",
        help="auto (default): ONNX Runtime for fp32 on CPU where the onnx extra is installed, else torch; "
        "onnx: ONNX Runtime on CPU (with --quantize int8 the fastest CPU path)",
    )
    parser.add_argument(
        "--threads", type=whole_number(1), help="CPU threads for torch and ONNX Runtime (default: one per core)"
    )
    parser.add_argument(
        "--max-length", type=whole_number(1), help="window length in tokens (default: the model's, <= 512)"
    )
    parser.add_argument("--stride", type=whole_number(0), help="overlap of windows in tokens (default: max-length / 4)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="predict.py",
        description="Label entities and sentence stances in news articles with trained newsframe checkpoints.",
        epilog="With --output OUT the run writes OUT.partial as it goes and renames it to OUT when complete; "
        "an interrupted run leaves OUT.partial, which --resume continues if the inputs, models and options are "
        "the same (OUT.partial.run.json records them). OUT.lock keeps a second run off the same output.",
    )
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help=".txt file, folder of .txt, .jsonl, or - (stdin)")
    add_model_arguments(parser)
    parser.add_argument("--output", "-o", type=Path, help="output file (default: standard output)")
    parser.add_argument(
        "--format",
        choices=FORMATS,
        default="jsonl",
        help="html: one self-contained page to read; entity-framing: CSV of who is framed how (per entity, the "
        "stances of the sentences that mention it)",
    )
    parser.add_argument(
        "--min-score",
        type=probability,
        help="drop entities scored under this, and null the stance of sentences whose stance score is under it",
    )
    parser.add_argument(
        "--flag-below", type=probability, help='keep entities and stances scored under this, marked "low_score": true'
    )
    add_engine_options(parser)
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--resume", action="store_true", help="continue an interrupted run from OUT.partial")
    group.add_argument("--overwrite", action="store_true", help="replace an existing OUT")
    scale = parser.add_argument_group("scale-out on Ray Data (needs the ray extra; see src/predict/ray_engine.py)")
    scale.add_argument(
        "--engine", choices=("local", "ray"), default="local", help="ray: an actor pool writing shards into -o DIR"
    )
    scale.add_argument("--workers", type=whole_number(1), help="ray: actors (default: the cluster's CPUs / --threads)")
    scale.add_argument("--address", help="ray: a running cluster (auto, ray://HEAD:10001); default: a local runtime")
    scale.add_argument("--shard-size", type=whole_number(1), default=200, help="ray: documents per shard file")
    return parser


def prepare_output(parser: argparse.ArgumentParser, output: Path) -> int:
    """Before any model is loaded: the output's folder exists (created if missing) and is writable, ``OUT`` is not a
    folder, and no other run writes ``OUT``; returns the held lock."""
    if output.is_dir():
        parser.error(f"--output {output}: is a folder; give a file name")
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        parser.error(f"--output {output}: cannot create its folder {output.parent}: {err.strerror or err}")
    try:
        return lock_output(output)
    except OutputBusy as err:
        parser.error(str(err))
    except OSError as err:
        parser.error(f"--output {output}: cannot write in {output.parent}: {err.strerror or err}")
    raise AssertionError  # parser.error exits


def model_folders(args: argparse.Namespace) -> dict[str, str]:
    """The command's model folders by task (``--ner``, ``--stance``, each ``--model`` read for its task)."""
    from src.model_folder import folders_by_task  # after the argument checks: importing transformers takes seconds

    return folders_by_task(args.ner, args.stance, args.model)


def describe_run(args: argparse.Namespace) -> dict:
    """The run record: what must be the same for ``--resume`` to continue a journal."""
    return {
        "newsframe_predict_run": RUN_RECORD_VERSION,
        "inputs": [describe_input(name) for name in args.inputs],
        "models": {task: describe_model(path) for task, path in model_folders(args).items()},
        "options": {key: getattr(args, key) for key in RUN_OPTIONS},
        "committed": {"lines": 0, "bytes": 0},
    }


def check_output(parser: argparse.ArgumentParser, args: argparse.Namespace, run: dict) -> list[dict]:
    """Refuse to clobber results or to mix runs; on ``--resume`` return the journal's committed lines (cutting off
    what was written after the last commit, which is redone) and keep its run record."""
    journal, record_path = journal_path(args.output), run_record_path(args.output)
    if args.overwrite:
        journal.unlink(missing_ok=True)
    elif args.resume and journal.exists():
        try:
            old = json.loads(record_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            parser.error(
                f"--resume: {journal} has no readable run record {record_path.name} ({err}), so it cannot be "
                "checked against this run; pass --overwrite to start over"
            )
        changes = run_differences(old, run)
        if changes:
            parser.error(
                f"--resume: {journal} was written by a different run: {'; '.join(changes)}. Resume with the same "
                "inputs, models and options, or pass --overwrite to start over"
            )
        committed = old.get("committed")
        if not (isinstance(committed, dict) and all(isinstance(committed.get(k), int) for k in ("lines", "bytes"))):
            parser.error(f"--resume: {record_path} has no committed line count; pass --overwrite to start over")
        size = journal.stat().st_size
        if size < committed["bytes"]:
            parser.error(f"--resume: {journal} is shorter ({size} bytes) than its run record says; use --overwrite")
        try:
            done = read_journal(journal, committed["bytes"], fields=("id", "error"))
        except ValueError as err:
            parser.error(f"--resume: {err}; the partial output is damaged: pass --overwrite to start over")
        if len(done) != committed["lines"]:
            parser.error(f"--resume: {journal} holds {len(done)} committed lines, its run record says otherwise")
        if size > committed["bytes"]:
            print(
                f"--resume: redoing the documents written to {journal} after its last commit "
                f"({size - committed['bytes']} bytes dropped)",
                file=sys.stderr,
            )
        run["committed"] = committed
        return done
    elif not args.resume:
        if args.output.exists():
            parser.error(f"{args.output} exists; pass --overwrite to replace it")
        if journal.exists():
            parser.error(f"{journal} is an interrupted run; pass --resume to continue it or --overwrite to start over")
    write_json(record_path, run)
    return []


def check_engines(parser: argparse.ArgumentParser, args: argparse.Namespace, run: dict, predictor) -> None:
    """Record what each model runs on (backend, precision, quantize) in the run record; on ``--resume`` refuse a
    journal written on other engines: ``auto`` options can resolve differently on another machine (bf16 where the
    CPU has it natively), and the output must not mix the two."""
    engines = {
        task: f"{m.backend} {str(m.dtype).removeprefix('torch.')} {m.quantize}" for task, m in predictor.models.items()
    }
    record_path = run_record_path(args.output)
    if args.resume:
        try:
            previous = json.loads(record_path.read_text(encoding="utf-8")).get("engines")
        except (OSError, ValueError, AttributeError):
            previous = None  # a fresh run, or a record written before engines were recorded
        if previous is not None and previous != engines:
            was = ", ".join(f"{task}: {engine}" for task, engine in sorted(previous.items()))
            now = ", ".join(f"{task}: {engine}" for task, engine in sorted(engines.items()))
            parser.error(
                f"--resume: {journal_path(args.output)} was written on other engines ({was}; now {now}); resume "
                "on a machine that resolves the same, name them (--backend, --precision, --quantize), or pass "
                "--overwrite to start over"
            )
    run["engines"] = engines
    write_json(record_path, run)


def check_resume(parser: argparse.ArgumentParser, done: list[dict], inputs: Iterator[dict]) -> None:
    """Skip the inputs the interrupted run finished, making sure they are the same documents in the same order."""
    for position, line in enumerate(done, start=1):
        record = next(inputs, None)
        if record is None:
            parser.error(
                f"--resume: the partial output has {len(done)} lines but the inputs now hold {position - 1} "
                "documents; the inputs changed since the interrupted run"
            )
        if line["id"] != record["id"]:
            parser.error(
                f"--resume: line {position} of the partial output is {line['id']!r} but input {position} is "
                f"{record['id']!r}; the inputs changed since the interrupted run"
            )


class CurrentStderr(logging.StreamHandler):
    """A handler on whatever ``sys.stderr`` is when a note is logged, not the one of the first call (``main`` runs
    many times in one process: tests, notebooks)."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.ner is None and args.stance is None and not args.model:
        parser.error("give --ner, --stance, --model (a folder of any task) or several")
    if not logging.getLogger("src").handlers:  # our own progress notes (e.g. a first ONNX export) on stderr
        handler = CurrentStderr()
        handler.setFormatter(logging.Formatter("predict.py: %(message)s"))
        logging.getLogger("src").addHandler(handler)
        logging.getLogger("src").setLevel(logging.INFO)
    if args.engine == "ray":
        from src.predict.ray_engine import run_ray  # imports ray; the local engine never does

        return run_ray(parser, args)
    if args.workers is not None or args.address is not None:
        parser.error("--workers and --address need --engine ray")
    if args.output is None:
        if args.resume:
            parser.error("--resume needs --output")
        return predict(parser, args)
    lock = prepare_output(parser, args.output)
    try:
        return predict(parser, args)
    finally:
        unlock_output(args.output, lock)


def scores_note(args: argparse.Namespace) -> str:
    """What the page's scores mean, per model: raw or calibrated, and on what the calibration was checked (the
    model card's words)."""
    from src.model import resolve_model_dir
    from src.model_folder import ModelFolder, calibration_line

    folders = [resolve_model_dir(path) for path in args.models.values()]
    records = [ModelFolder.from_dir(f) for f in folders]
    return " ".join(f"{r.task_object.title} scores: {calibration_line(r)}." for r in records)


def predict(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    """The run itself, with the output (if any) checked and locked."""
    journal = journal_path(args.output) if args.output else None
    if args.resume and args.output.exists() and not journal.exists():
        run_record_path(args.output).unlink(missing_ok=True)
        print(f"{args.output} is complete; nothing to resume", file=sys.stderr)
        return 0
    try:  # reads each folder's task and fingerprints it, so a broken one is found here, before anything is written
        args.models = model_folders(args)
        run = describe_run(args) if journal else {}
    except (OSError, ValueError) as err:
        parser.error(f"cannot load the checkpoints: {err}")
    done = check_output(parser, args, run) if journal else []
    predictor = load_predictor(parser, args)
    if journal is not None:
        check_engines(parser, args, run, predictor)
    inputs = iter_inputs(args.inputs, sys.stdin.buffer if STDIN in args.inputs else None)
    check_resume(parser, done, inputs)

    stream = journal.open("a", encoding="utf-8", newline="") if journal else sys.stdout
    note = scores_note(args) if args.format == "html" else ""
    writer = PredictionWriter("jsonl" if journal else args.format, stream, note, predictor.scheme)
    commits = Commits(args.output if journal else None, run)
    failed = sum("error" in line for line in done)
    progress = tqdm(desc="documents", unit="doc", initial=len(done), file=sys.stderr, disable=None)
    try:
        failed += write_predictions(predictor, inputs, writer, args, commits, stream, len(done), progress)
        writer.close()
    except KeyboardInterrupt:
        if journal is None:
            raise
        commits.commit()
        print(f"\ninterrupted; finished documents are in {journal}: rerun with --resume", file=sys.stderr)
        return 130
    except OSError as err:  # a full disk, a lost mount: the committed part of the journal stays good for --resume
        if journal is None:
            print(f"error: cannot write the predictions: {err}", file=sys.stderr)
            return 2
        with contextlib.suppress(OSError):
            commits.commit()
        print(f"error: {journal}: {err}; the finished documents are kept: rerun with --resume", file=sys.stderr)
        return 2
    finally:
        progress.close()
        if journal is not None:
            with contextlib.suppress(OSError):
                stream.close()
    if journal is not None:
        try:
            commits.commit()
            finalize(journal, args.output, args.format, note, predictor.scheme)
        except OSError as err:
            print(
                f"error: {args.output}: {err}; the predictions are in {journal}: rerun with --resume", file=sys.stderr
            )
            return 2
        run_record_path(args.output).unlink(missing_ok=True)
    if failed:
        print(f'{failed} document(s) failed; see their "error" fields', file=sys.stderr)
    return 1 if failed else 0


def load_predictor(parser: argparse.ArgumentParser, args: argparse.Namespace) -> Predictor:
    """The Predictor of the command's models and options; a bad option or folder is a usage error."""
    from src.predict.engine import OptionError, Predictor  # after the argument checks: importing torch takes seconds

    if args.threads is not None:
        import torch

        torch.set_num_threads(args.threads)
    try:
        return Predictor.from_pretrained(
            **args.models,
            device=args.device,
            batch_size=args.batch_size,
            max_length=args.max_length,
            stride=args.stride,
            precision=args.precision,
            quantize=args.quantize,
            backend=args.backend,
        )
    except OptionError as err:
        parser.error(f"--{err.option.replace('_', '-')} {err.detail}")
    except (OSError, ValueError, ImportError) as err:
        parser.error(f"cannot load the checkpoints: {err}")


class Commits:
    """How far the journal holds whole groups, recorded in the run record every ``COMMIT_LINES`` lines or
    ``COMMIT_SECONDS``: a resume cuts off anything after it and redoes it. ``output`` None (no journal): nothing."""

    def __init__(self, output: Path | None, run: dict) -> None:
        self.output, self.run = output, run
        self.complete = dict(run.get("committed", {}))  # the journal's extent at the end of the last whole group
        self.last = time.monotonic()

    def commit(self) -> None:
        if self.output is not None and self.complete != self.run["committed"]:
            self.run["committed"] = dict(self.complete)
            write_json(run_record_path(self.output), self.run)

    def advance(self, lines: int, size: int) -> None:
        """A whole group is written: the journal now holds ``lines`` lines, ``size`` bytes."""
        self.complete.update(lines=lines, bytes=size)
        behind = lines - self.run["committed"].get("lines", 0)
        if behind >= COMMIT_LINES or time.monotonic() - self.last >= COMMIT_SECONDS:
            self.commit()
            self.last = time.monotonic()


def write_predictions(
    predictor: Predictor,
    inputs: Iterator[dict],
    writer: PredictionWriter,
    args: argparse.Namespace,
    commits: Commits,
    stream: TextIO,
    lines: int,
    progress: tqdm,
) -> int:
    """Predict and write every input, in input order; returns how many documents failed."""
    texts: deque[str] = deque()  # Label Studio tasks need the text; predictions come back in input order

    def remember_texts(records: Iterator[dict]) -> Iterator[dict]:
        for record in records:
            texts.append(record.get("text", ""))
            yield record

    keep_text = args.format in TEXT_FORMATS  # (a journal of another --format is refused by its run record)
    none_label, failed = predictor.scheme.none_label, 0
    for group in predictor.iter_predict_groups(remember_texts(inputs)):
        for prediction in group:
            text = texts.popleft()
            if "error" in prediction:
                failed += 1
                tqdm.write(f"error: {prediction['id']}: {prediction['error']['reason']}", file=sys.stderr)
            prediction = apply_thresholds(prediction, args.min_score, args.flag_below, none_label)
            writer.write({**prediction, "text": text} if keep_text else prediction)
            progress.update()
        lines += len(group)
        if commits.output is not None:
            commits.advance(lines, os.fstat(stream.fileno()).st_size)
    return failed
