"""``python scripts/predict.py``: batch prediction from the shell (exit 0 ok, 1 some record failed, 2 usage)."""

from __future__ import annotations

import argparse
import logging
import sys
from collections import deque
from collections.abc import Iterator, Sequence
from pathlib import Path

from tqdm import tqdm

from src.predict.io import FORMATS, STDIN, PredictionWriter, finalize, iter_inputs, journal_path, read_journal


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="predict.py",
        description="Label entities and sentence stances in news articles with trained newsframe checkpoints.",
        epilog="With --output OUT the run writes OUT.partial as it goes and renames it to OUT when complete; "
        "an interrupted run leaves OUT.partial, which --resume continues.",
    )
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help=".txt file, folder of .txt, .jsonl, or - (stdin)")
    parser.add_argument("--ner", help="NER run folder or model folder")
    parser.add_argument("--stance", help="stance run folder or model folder")
    parser.add_argument("--output", "-o", type=Path, help="output file (default: standard output)")
    parser.add_argument("--format", choices=FORMATS, default="jsonl")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--precision", choices=("auto", "fp32", "fp16", "bf16"), default="auto")
    parser.add_argument(
        "--quantize", choices=("none", "int8"), default="none", help="int8: dynamic int8 linear layers (CPU; faster)"
    )
    parser.add_argument(
        "--backend",
        choices=("torch", "onnx"),
        default="torch",
        help="onnx: ONNX Runtime on CPU (needs the onnx extra; with --quantize int8 the fastest CPU path)",
    )
    parser.add_argument("--threads", type=int, help="CPU threads for torch and ONNX Runtime (default: one per core)")
    parser.add_argument("--max-length", type=int, help="window length in tokens (default: the model's, <= 512)")
    parser.add_argument("--stride", type=int, help="overlap of windows in tokens (default: max-length / 4)")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--resume", action="store_true", help="continue an interrupted run from OUT.partial")
    group.add_argument("--overwrite", action="store_true", help="replace an existing OUT")
    return parser


def check_output(parser: argparse.ArgumentParser, args: argparse.Namespace) -> list[dict]:
    """Refuse to clobber results; on ``--resume`` return the journal's finished lines."""
    if args.output is None:
        if args.resume:
            parser.error("--resume needs --output")
        return []
    journal = journal_path(args.output)
    if args.overwrite:
        journal.unlink(missing_ok=True)
        return []
    if args.resume:
        return read_journal(journal) if journal.exists() else []
    if args.output.exists():
        parser.error(f"{args.output} exists; pass --overwrite to replace it")
    if journal.exists():
        parser.error(f"{journal} is an interrupted run; pass --resume to continue it or --overwrite to start over")
    return []


def check_resume(parser: argparse.ArgumentParser, done: list[dict], inputs: Iterator[dict]) -> None:
    """Skip the inputs the interrupted run finished, making sure they are the same documents in the same order."""
    for position, (line, record) in enumerate(zip(done, inputs, strict=False), start=1):
        if line["id"] != record["id"]:
            parser.error(
                f"--resume: line {position} of the partial output is {line['id']!r} but input {position} is "
                f"{record['id']!r}; the inputs changed since the interrupted run"
            )


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.ner is None and args.stance is None:
        parser.error("give --ner, --stance or both")
    if not logging.getLogger("src").handlers:  # our own progress notes (e.g. a first ONNX export) on stderr
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("predict.py: %(message)s"))
        logging.getLogger("src").addHandler(handler)
        logging.getLogger("src").setLevel(logging.INFO)
    if args.resume and args.output and args.output.exists() and not journal_path(args.output).exists():
        print(f"{args.output} is complete; nothing to resume", file=sys.stderr)
        return 0
    try:
        done = check_output(parser, args)
    except ValueError as err:
        parser.error(str(err))

    from src.predict.engine import Predictor  # after the argument checks: importing torch takes seconds

    if args.threads is not None:
        import torch

        torch.set_num_threads(args.threads)
    try:
        predictor = Predictor.from_pretrained(
            ner=args.ner,
            stance=args.stance,
            device=args.device,
            batch_size=args.batch_size,
            max_length=args.max_length,
            stride=args.stride,
            precision=args.precision,
            quantize=args.quantize,
            backend=args.backend,
        )
    except (OSError, ValueError, ImportError) as err:
        parser.error(f"cannot load the checkpoints: {err}")

    inputs = iter_inputs(args.inputs, sys.stdin.buffer if STDIN in args.inputs else None)
    check_resume(parser, done, inputs)
    texts: deque[str] = deque()  # Label Studio tasks need the text; predictions come back in input order

    def remember_texts(records: Iterator[dict]) -> Iterator[dict]:
        for record in records:
            texts.append(record.get("text", ""))
            yield record

    keep_text = args.format == "labelstudio"
    if keep_text and any("text" not in line and "error" not in line for line in done):
        parser.error(f"{journal_path(args.output)} was written without texts (another --format); use --overwrite")
    journal = journal_path(args.output) if args.output else None
    stream = journal.open("a", encoding="utf-8", newline="") if journal else sys.stdout
    writer = PredictionWriter("jsonl" if journal else args.format, stream)
    failed = sum("error" in line for line in done)
    progress = tqdm(desc="documents", unit="doc", initial=len(done), file=sys.stderr, disable=None)
    try:
        for prediction in predictor.iter_predict(remember_texts(inputs)):
            text = texts.popleft()
            if "error" in prediction:
                failed += 1
                tqdm.write(f"error: {prediction['id']}: {prediction['error']['reason']}", file=sys.stderr)
            writer.write({**prediction, "text": text} if keep_text else prediction)
            progress.update()
        writer.close()
    except KeyboardInterrupt:
        if journal is None:
            raise
        print(f"\ninterrupted; finished documents are in {journal}: rerun with --resume", file=sys.stderr)
        return 130
    finally:
        progress.close()
        if journal is not None:
            stream.close()
    if journal is not None:
        finalize(journal, args.output, args.format)
    if failed:
        print(f'{failed} document(s) failed; see their "error" fields', file=sys.stderr)
    return 1 if failed else 0
