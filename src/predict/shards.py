"""The Ray engine's shards, kept apart from torch: a Ray Data read task imports only this module, so reading a
shard never waits for a worker to load torch.

A run's inputs are listed on the driver cheaply (file names, byte ranges of JSONL files cut every ``--shard-size``
lines) into numbered *shards*; the plan depends only on the inputs and ``--shard-size``, so a rerun plans the same
shards. A read task turns a shard into its input records with ``src.predict.io``'s readers: same ids, same error
records as the local engine.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterator
from pathlib import Path

from src.predict.io import (
    error_record,
    file_id,
    folder_files,
    printable,
    read_jsonl_lines,
    read_text_file,
    text_problem,
)


def jsonl_ranges(path: Path, lines_per_shard: int) -> Iterator[tuple[int, int, int]]:
    """``(start byte, end byte, first line number)`` of consecutive pieces of ``lines_per_shard`` lines (split at
    ``\\n`` only, as the reader does); the last piece may be shorter."""
    start = position = count = 0
    first = 1
    with path.open("rb") as handle:
        for raw in handle:
            position += len(raw)
            count += 1
            if count == lines_per_shard:
                yield start, position, first
                start, first, count = position, first + count, 0
    if position > start:
        yield start, position, first


def plan_shards(inputs: list[str], shard_size: int) -> list[dict]:
    """The shards of a run, in input order: ``{"kind": "files", "entries": [[path, id, reason], ...]}`` (up to
    ``shard_size`` files, from folders and lone files; ``reason`` set for an entry that is an error without being
    read) or ``{"kind": "jsonl", "file", "start", "end", "first_line"}``."""
    shards: list[dict] = []
    files: list[list] = []

    def flush() -> None:
        if files:
            shards.append({"kind": "files", "entries": list(files)})
            files.clear()

    def add(path: str, doc_id: str, reason: str | None = None) -> None:
        files.append([path, doc_id, reason])
        if len(files) == shard_size:
            flush()

    for name in inputs:
        path = Path(name)
        if path.is_dir():
            for file in folder_files(path):
                doc_id = file_id(file, path)
                if text_problem(doc_id) is not None:
                    add(printable(str(file)), printable(doc_id), "file name is not UTF-8")
                else:
                    add(str(file), doc_id)
        elif path.suffix == ".jsonl":
            flush()
            try:
                for start, end, first in jsonl_ranges(path, shard_size):
                    shards.append({"kind": "jsonl", "file": name, "start": start, "end": end, "first_line": first})
            except OSError as err:
                add(name, name, err.strerror or str(err))
        elif path.suffix == ".txt" or not path.exists():
            add(name, file_id(path))
        else:
            add(name, path.name, "unsupported input: expected a .txt or .jsonl file, a folder or -")
    flush()
    return shards


def shard_records(shard: dict) -> Iterator[dict]:
    """The input records of one shard, exactly as ``iter_inputs`` reads them (ids, texts, error records)."""
    if shard["kind"] == "files":
        for path, doc_id, reason in shard["entries"]:
            if reason is not None:
                yield error_record(doc_id, path, None, reason)
            else:
                yield read_text_file(Path(path), doc_id)
        return
    name = shard["file"]
    try:
        with open(name, "rb") as handle:
            handle.seek(shard["start"])
            data = handle.read(shard["end"] - shard["start"])
    except OSError as err:
        yield error_record(f"{name}:{shard['first_line']}", name, shard["first_line"], err.strerror or str(err))
        return
    yield from read_jsonl_lines(io.BytesIO(data), name, first_line=shard["first_line"])


def read_shard(row: dict) -> dict:
    """Ray Data task: a shard's plan -> its input records as JSON lines (ASCII: lone surrogates survive Arrow).

    Inputs are named as the user gave them (so error records read as the local engine's): relative names are read
    from the driver's working folder, the same path on every node of a cluster with a shared file system."""
    if os.getcwd() != row["cwd"] and os.path.isdir(row["cwd"]):
        os.chdir(row["cwd"])
    records = list(shard_records(json.loads(row["spec"])))
    return {"shard": row["shard"], "inputs": len(records), "documents": "\n".join(json.dumps(r) for r in records)}
