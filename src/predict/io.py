"""Inputs and outputs of batch prediction: reading documents without ever failing the batch, writing results as
they come, and resuming an interrupted run.

While a run writes to ``OUT``, its lines go to ``OUT.partial`` (one JSON line per input document, in input order,
flushed as each chunk completes); only a complete run renames it to ``OUT``. So a file named ``OUT`` is always
complete, and ``OUT.partial`` is an interrupted run that ``--resume`` continues.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import BinaryIO, TextIO

FORMATS = ("jsonl", "csv", "labelstudio")
CSV_COLUMNS = ("id", "kind", "start", "end", "text", "label", "score")
STDIN = "-"


def error_record(doc_id: str, file: str, line: int | None, reason: str) -> dict:
    """A prediction record for an input that could not be read: empty results plus where and why."""
    return {
        "id": doc_id,
        "entities": [],
        "sentences": [],
        "doc_stance": None,
        "error": {"file": file, "line": line, "reason": reason},
    }


def _decode(data: bytes, file: str, line: int | None) -> str | dict:
    """Strict UTF-8 text, or the reason it is not (with the line of the first bad byte in a whole file)."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        at = line if line is not None else data.count(b"\n", 0, err.start) + 1
        return {"file": file, "line": at, "reason": f"not UTF-8: byte 0x{data[err.start]:02x} at byte {err.start}"}


def read_text_file(path: Path, doc_id: str) -> dict:
    """``{"id", "text"}`` with the text exactly as stored (no newline translation, so offsets match the file)."""
    try:
        data = path.read_bytes()
    except OSError as err:
        return error_record(doc_id, str(path), None, err.strerror or str(err))
    text = _decode(data, str(path), None)
    if isinstance(text, dict):
        return error_record(doc_id, text["file"], text["line"], text["reason"])
    return {"id": doc_id, "text": text}


def read_jsonl_lines(lines: Iterable[bytes], file: str) -> Iterator[dict]:
    """``{"id", "text"}`` per non-blank line; a line that is not a JSON object with a ``text`` string becomes an
    error record (id ``FILE:LINE`` unless the line names one) and reading goes on."""
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        fallback_id = f"{file}:{number}"
        line = _decode(raw, file, number)
        if isinstance(line, dict):
            yield error_record(fallback_id, file, number, line["reason"])
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            yield error_record(fallback_id, file, number, f"malformed JSON: {err.msg} at column {err.colno}")
            continue
        if not isinstance(record, dict):
            yield error_record(fallback_id, file, number, f"expected a JSON object, got {type(record).__name__}")
            continue
        doc_id = fallback_id if record.get("id") is None else str(record["id"])
        if not isinstance(record.get("text"), str):
            yield error_record(doc_id, file, number, 'record has no "text" string')
            continue
        yield {"id": doc_id, "text": record["text"]}


def iter_inputs(inputs: Sequence[str], stdin: BinaryIO | None = None) -> Iterator[dict]:
    """Documents from ``.txt`` files, folders of them (recursive, sorted), ``.jsonl`` files and ``-`` (stdin JSONL).

    Ids: a file's path relative to the folder given, a lone file's name, a JSONL record's ``id``.
    """
    for name in inputs:
        if name == STDIN:
            if stdin is not None:
                yield from read_jsonl_lines(stdin, "<stdin>")
            continue
        path = Path(name)
        if path.is_dir():
            for file in sorted(p for p in path.rglob("*.txt") if p.is_file()):
                yield read_text_file(file, file.relative_to(path).as_posix())
        elif path.suffix == ".jsonl":
            try:
                with path.open("rb") as handle:
                    yield from read_jsonl_lines(handle, name)
            except OSError as err:
                yield error_record(name, name, None, err.strerror or str(err))
        elif path.suffix == ".txt" or not path.exists():
            yield read_text_file(path, path.name)
        else:
            yield error_record(
                path.name, name, None, "unsupported input: expected a .txt or .jsonl file, a folder or -"
            )


# -- outputs ------------------------------------------------------------------------------------------------------


def csv_rows(prediction: dict) -> Iterator[list]:
    """One row per entity and per sentence (label = stance, score = its probability); an error gives one row."""
    doc_id = prediction["id"]
    if "error" in prediction:
        err = prediction["error"]
        where = err["file"] if err["line"] is None else f"{err['file']}:{err['line']}"
        yield [doc_id, "error", "", "", f"{where}: {err['reason']}", "", ""]
        return
    for e in prediction["entities"]:
        yield [doc_id, "entity", e["start"], e["end"], e["text"], e["label"], round(e["score"], 6)]
    for s in prediction["sentences"]:
        score = s["scores"].get(s["stance"], "") if s["stance"] is not None else ""
        yield [doc_id, "sentence", s["start"], s["end"], s["text"], s["stance"] or "", score]


def labelstudio_task(line: dict) -> dict:
    """A Label Studio task pre-annotated with one prediction (``line`` carries the document's ``text``)."""
    from src.data.convert import records_to_labelstudio

    prediction = {k: v for k, v in line.items() if k != "text"}
    return records_to_labelstudio([{"id": line["id"], "text": line["text"]}], [prediction])[0]


class PredictionWriter:
    """Writes prediction lines to a text stream in one of ``FORMATS`` as they come (flushing each), except Label
    Studio's single JSON list, which is written on ``close`` (error records left out: they have no text)."""

    def __init__(self, fmt: str, stream: TextIO) -> None:
        if fmt not in FORMATS:
            raise ValueError(f"unknown format {fmt!r}; expected one of {FORMATS}")
        self.fmt, self.stream = fmt, stream
        self.tasks: list[dict] = []
        self.csv = csv.writer(stream, lineterminator="\n") if fmt == "csv" else None
        if self.csv is not None:
            self.csv.writerow(CSV_COLUMNS)

    def write(self, line: dict) -> None:
        if self.fmt == "jsonl":
            self.stream.write(json_line(line))
        elif self.csv is not None:
            self.csv.writerows(csv_rows(line))
        elif "error" not in line:
            self.tasks.append(labelstudio_task(line))
        self.stream.flush()

    def close(self) -> None:
        if self.fmt == "labelstudio":
            json.dump(self.tasks, self.stream, ensure_ascii=False, indent=1)
            self.stream.write("\n")
        self.stream.flush()


def json_line(record: dict) -> str:
    return json.dumps(record, ensure_ascii=False) + "\n"


def journal_path(output: Path) -> Path:
    return output.with_name(output.name + ".partial")


def read_journal(path: Path) -> list[dict]:
    """The complete lines of an interrupted run's journal; a trailing partial line (a kill mid-write) is cut off
    the file itself, so appending continues on a line boundary."""
    with path.open("r+b") as handle:
        data = handle.read()
        keep = data.rfind(b"\n") + 1
        if keep < len(data):
            handle.truncate(keep)
    done = []
    for number, raw in enumerate(data[:keep].splitlines(), start=1):
        try:
            done.append(json.loads(raw))
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}:{number}: not a JSON line ({err.msg}); cannot resume from it") from err
    return done


def iter_journal(path: Path) -> Iterator[dict]:
    with path.open(encoding="utf-8", newline="") as handle:
        for raw in handle:
            yield json.loads(raw)


def finalize(journal: Path, output: Path, fmt: str) -> None:
    """Turn a complete journal into ``output`` atomically (a rename for JSONL, a conversion through a temp file
    in the same folder otherwise) and remove the journal."""
    if fmt == "jsonl":
        os.replace(journal, output)
        return
    tmp = output.with_name(f".{output.name}.tmp")
    with tmp.open("w", encoding="utf-8", newline="") as stream:
        writer = PredictionWriter(fmt, stream)
        for line in iter_journal(journal):
            writer.write(line)
        writer.close()
    os.replace(tmp, output)
    journal.unlink()
