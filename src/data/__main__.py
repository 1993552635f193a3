"""Command line: ``python -m src.data validate PATH...``, ``python -m src.data stats PATH``,
``python -m src.data from-labelstudio EXPORT.json -o OUT.jsonl``, ``python -m src.data add EXPORT.json`` and
``python -m src.data outlets PATH...`` (the leave-one-outlet-out folds of extra files) and ``python -m src.data
labelstudio-config [-o OUT]`` (the Label Studio config of the labels). Each takes ``--config``, the data config whose
labels apply (default: the seed corpus's)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from src.data.add import add_export
from src.data.convert import labelstudio_config, labelstudio_to_records, read_conll
from src.data.folds import outlet_groups
from src.data.jsonl import read_json_document
from src.data.records import DataError, load_records, records_text
from src.data.stats import corpus_stats, datasheet_table
from src.data.validate import validate_text
from src.files import write_atomic
from src.labels import SEED_CONFIG, LabelScheme

CONLL_SUFFIXES = {".txt", ".conll"}
CORPUS = Path("data/annotations/seeds.jsonl")


def config_scheme(path: Path) -> LabelScheme:
    """The labels of a data config (``configs/data/*.yaml``): a corpus of one's own labels is checked against its own
    config."""

    try:
        cfg = OmegaConf.load(path)
        scheme = LabelScheme.from_config(cfg, f"--config {path}")
    except (OSError, OmegaConfBaseException, TypeError, AttributeError) as err:
        raise ValueError(f"--config {path}: cannot read a data config ({err})") from None
    labels = [*scheme.entity_labels, *scheme.stance_labels]
    if not scheme.entity_labels or not scheme.stance_labels or not all(labels):
        raise ValueError(f"--config {path}: needs non-empty lists entity_labels and stance_labels of strings")
    return scheme


def build_parser() -> argparse.ArgumentParser:
    """The subcommands and their options; every one takes ``--config`` (whose labels apply; the seeds' by default)."""
    parser = argparse.ArgumentParser(prog="python -m src.data", description="Validate corpus files and describe them.")
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser("validate", help="check annotation files; one line per problem, exit 1 if any")
    check.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    check.add_argument("--entity-labels", help="comma-separated entity labels (instead of the config's)")
    check.add_argument("--stance-labels", help="comma-separated stance labels (instead of the config's)")
    check.add_argument("--root", type=Path, help="extra folder for resolving 'source' paths")
    stats = sub.add_parser("stats", help="print the datasheet table (Markdown) of a .jsonl corpus or a CoNLL file")
    stats.add_argument("path", type=Path, metavar="PATH")
    from_ls = sub.add_parser("from-labelstudio", help="records (.jsonl) from a Label Studio JSON export, validated")
    from_ls.add_argument("export", type=Path, metavar="EXPORT")
    from_ls.add_argument("--output", "-o", type=Path, required=True, metavar="OUT")
    from_ls.add_argument("--overwrite", action="store_true", help="replace OUT if it exists (only by a valid file)")
    add = sub.add_parser("add", help="append a Label Studio export's new articles to the corpus (kept: CORPUS.<time>)")
    add.add_argument("export", type=Path, metavar="EXPORT")
    add.add_argument("--corpus", type=Path, default=CORPUS, help=f"corpus file to append to (default {CORPUS})")
    outlets = sub.add_parser("outlets", help="the outlet folds of extra files (data.extra_fold), one line each")
    outlets.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    outlets.add_argument("--folds", action="store_true", help="print only the fold numbers, as a Hydra sweep list")
    ls_config = sub.add_parser("labelstudio-config", help="the Label Studio labelling config (XML) of a data config")
    ls_config.add_argument("--output", "-o", type=Path, metavar="OUT", help="write it here (default: stdout)")
    for command in (check, stats, from_ls, add, outlets, ls_config):
        command.add_argument(
            "--config", type=Path, default=SEED_CONFIG, help="data config whose labels apply (the seeds')"
        )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run a subcommand; returns the exit status (0 valid / printed, 1 problems found)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        scheme = config_scheme(args.config)
    except ValueError as err:
        parser.error(str(err))
    if args.command == "validate":
        entity_labels = args.entity_labels.split(",") if args.entity_labels else list(scheme.entity_labels)
        stance_labels = args.stance_labels.split(",") if args.stance_labels else list(scheme.stance_labels)
        return validate_files(args.paths, entity_labels, stance_labels, args.root, scheme.sentence_layers)
    if args.command == "add":
        return add_articles(args.export, args.corpus, scheme)
    if args.command == "labelstudio-config":
        xml = labelstudio_config(scheme)
        if args.output is None:
            sys.stdout.write(xml)
        else:
            write_atomic(args.output, xml)
            print(f"wrote {args.output}", file=sys.stderr)
        return 0
    if args.command == "outlets":
        return print_outlets(args.paths, scheme, folds_only=args.folds)
    if args.command == "from-labelstudio":
        return from_labelstudio(args.export, args.output, scheme, overwrite=args.overwrite)
    return print_stats(args.path, scheme)


def validate_files(
    paths: list[Path],
    entity_labels: list[str],
    stance_labels: list[str],
    root: Path | None,
    sentence_layers: Mapping[str, Sequence[str]] | None = None,
) -> int:
    """Every problem of every file, one line each, and a verdict per file on stderr; 1 if any problem."""
    failed = False
    for path in paths:
        try:  # as training reads it: a label review of the file (data/reviews/) applied first
            load_records(
                path,
                entity_labels=entity_labels,
                stance_labels=stance_labels,
                sentence_layers=sentence_layers,
                root=root,
            )
            problems = []
        except DataError as err:
            problems = err.problems
        for problem in problems:
            print(problem)
        print(f"{path}: {f'{len(problems)} problem(s)' if problems else 'OK'}", file=sys.stderr)
        failed |= bool(problems)
    return int(failed)


def print_stats(path: Path, scheme: LabelScheme) -> int:
    """The datasheet table of a corpus (.jsonl) or a CoNLL file; 1 with its problems if it cannot be read."""
    try:
        records = read_conll(path) if path.suffix in CONLL_SUFFIXES else load_records(path, **scheme.checked_labels)
    except DataError as err:
        print("\n".join(err.problems))
        return 1
    except (OSError, ValueError) as err:  # read_conll: unreadable file, not UTF-8, a line without columns
        message = str(err)
        print(message if message.startswith(f"{path}:") else f"{path}: {message}")
        return 1
    print(datasheet_table(corpus_stats(records, scheme)))
    return 0


def labels_of(scheme: LabelScheme | None) -> dict:
    """The label keywords of the validating loaders: ``scheme``'s, or none (the seed corpus's)."""
    return {} if scheme is None else scheme.checked_labels


def print_outlets(paths: list[Path], scheme: LabelScheme | None = None, *, folds_only: bool = False) -> int:
    """The outlet folds of ``paths`` read together (as ``data.extra`` reads them): 0 printed, 1 a bad file."""
    records = []
    for path in paths:
        try:
            records += load_records(path, **labels_of(scheme))
        except (DataError, OSError) as err:
            print("\n".join(err.problems) if isinstance(err, DataError) else f"{path}: {err}")
            return 1
    groups = outlet_groups(records)
    if folds_only:
        print(",".join(str(k) for k in range(len(groups))))
        return 0
    for k, (outlet, group) in enumerate(groups):
        print(f"{k}\t{outlet}\t{len(group)} record(s): {', '.join(r['id'] for r in group)}")
    return 0


def from_labelstudio(export: Path, out: Path, scheme: LabelScheme | None = None, *, overwrite: bool = False) -> int:
    """Convert a Label Studio export into a validated corpus file; exit status 0, or 1 with every problem printed.

    A corpus is never lost or left invalid: an existing OUT is kept unless ``overwrite``; the records are
    validated as the exact text that will be written (so the file passes ``validate`` and loads for training),
    and only then written through a temporary file renamed over OUT. On any problem OUT is untouched.
    """

    def refuse(problems: list[str], why: str) -> int:
        for problem in problems:
            print(problem)
        print(f"{out}: {why}; nothing written", file=sys.stderr)
        return 1

    if out.suffix != ".jsonl" or out.is_dir():  # records are written one per line, and read back by the suffix
        return refuse([f"{out}: not a .jsonl file name; give the .jsonl file to write"], "not a .jsonl file")
    if out.exists() and not overwrite:
        return refuse([], "exists; pass --overwrite to replace it with the converted records")
    data, problems = read_json_document(export)
    if problems:
        return refuse(problems, f"cannot read the export {export}")
    try:
        layers = tuple(scheme.sentence_layers) if scheme is not None else ()
        records = labelstudio_to_records(data, name=str(export), layers=layers)
    except DataError as err:
        return refuse(err.problems, f"{len(err.problems)} problem(s) in the export {export}")
    text = records_text(records)
    problems = validate_text(text, out, **labels_of(scheme))
    if problems:
        return refuse(problems, f"{len(problems)} problem(s) in the converted records")
    try:
        write_atomic(out, text)
    except OSError as err:
        return refuse([f"{out}: cannot write: {err}"], "write failed")
    print(f"{out}: OK, {len(records)} record(s) from {export}", file=sys.stderr)
    return 0


def add_articles(export: Path, corpus: Path, scheme: LabelScheme | None = None) -> int:
    """``add``: exit 0 with the corpus extended, or 2 with every problem located and the corpus unchanged."""
    problems, summary = add_export(export, corpus, scheme)
    if problems:
        for problem in problems:
            print(problem)
        print(f"error: {export}: {len(problems)} problem(s); {corpus} is unchanged", file=sys.stderr)
        return 2
    added = summary["added"]
    shown = ", ".join(added[:5]) + (", ..." if len(added) > 5 else "")
    print(f"{corpus}: {len(added)} article(s) added ({shown}); previous corpus kept as {summary['backup']}")
    return 0


def run() -> int:
    """``main`` for the shell: when the reader of stdout goes away (``... stats FILE | head``) the command stops
    quietly, as Unix tools do, instead of with a BrokenPipeError traceback."""
    try:
        status = main()
        sys.stdout.flush()
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error when Python exits
        return 1
    return status


if __name__ == "__main__":
    sys.exit(run())
