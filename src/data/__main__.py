"""Command line: ``python -m src.data validate PATH...``, ``python -m src.data stats PATH`` and
``python -m src.data from-labelstudio EXPORT.json -o OUT.jsonl``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from src.data.convert import labelstudio_to_records, read_conll
from src.data.records import DataError, load_records, save_records
from src.data.stats import corpus_stats, markdown_table
from src.data.validate import validate_file
from src.labels import ENTITY_LABELS, STANCE_LABELS

CONLL_SUFFIXES = {".txt", ".conll"}


def main(argv: list[str] | None = None) -> int:
    """Run a subcommand; returns the exit status (0 valid / printed, 1 problems found)."""
    parser = argparse.ArgumentParser(prog="python -m src.data", description="Validate corpus files and describe them.")
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser("validate", help="check annotation files; one line per problem, exit 1 if any")
    check.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    check.add_argument("--entity-labels", default=",".join(ENTITY_LABELS), help="comma-separated entity labels")
    check.add_argument("--stance-labels", default=",".join(STANCE_LABELS), help="comma-separated stance labels")
    check.add_argument("--root", type=Path, help="extra folder for resolving 'source' paths")
    stats = sub.add_parser("stats", help="print the datasheet table (Markdown) of a .jsonl corpus or a CoNLL file")
    stats.add_argument("path", type=Path, metavar="PATH")
    from_ls = sub.add_parser("from-labelstudio", help="records (.jsonl) from a Label Studio JSON export, validated")
    from_ls.add_argument("export", type=Path, metavar="EXPORT")
    from_ls.add_argument("--output", "-o", type=Path, required=True, metavar="OUT")
    args = parser.parse_args(argv)

    if args.command == "validate":
        failed = False
        for path in args.paths:
            problems = validate_file(
                path,
                entity_labels=args.entity_labels.split(","),
                stance_labels=args.stance_labels.split(","),
                root=args.root,
            )
            for problem in problems:
                print(problem)
            print(f"{path}: {f'{len(problems)} problem(s)' if problems else 'OK'}", file=sys.stderr)
            failed |= bool(problems)
        return int(failed)

    if args.command == "from-labelstudio":
        with args.export.open(encoding="utf-8") as f:
            save_records(labelstudio_to_records(json.load(f)), args.output)
        problems = validate_file(args.output)
        for problem in problems:
            print(problem)
        print(f"{args.output}: {f'{len(problems)} problem(s)' if problems else 'OK'}", file=sys.stderr)
        return int(bool(problems))

    try:
        records = read_conll(args.path) if args.path.suffix in CONLL_SUFFIXES else load_records(args.path)
    except DataError as err:
        print("\n".join(err.problems))
        return 1
    print(markdown_table(corpus_stats(records)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
