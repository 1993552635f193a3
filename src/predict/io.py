"""Inputs and outputs of batch prediction: reading documents without ever failing the batch, writing results as
they come, and resuming an interrupted run.

While a run writes to ``OUT``, its lines go to ``OUT.partial`` (one JSON line per input document, in input order,
flushed as each chunk completes); only a complete run renames it to ``OUT``. So a file named ``OUT`` is always
complete, and ``OUT.partial`` is an interrupted run that ``--resume`` continues. Next to it,
``OUT.partial.run.json`` records what the run is (inputs, models, options) and how much of the journal is
committed, so ``--resume`` continues only the same run; ``OUT.lock`` keeps two runs off the same output.
"""

from __future__ import annotations

import argparse
import csv
import errno
import hashlib
import json
import logging
import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import BinaryIO, TextIO

from src.data.convert import records_to_labelstudio
from src.files import file_sha256
from src.labels import LabelScheme, layer_scores
from src.predict.framing import FramingTable
from src.predict.html import render_page

log = logging.getLogger(__name__)

FORMATS = ("jsonl", "csv", "labelstudio", "html", "entity-framing")
TEXT_FORMATS = ("labelstudio", "html")  # need each document's text beside its prediction
CSV_COLUMNS = ("id", "kind", "start", "end", "text", "label", "score")
STDIN = "-"


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """The model flags of every command that predicts: ``--ner``, ``--stance`` and ``--model`` (any task; the
    folders are read by ``src.model_folder.folders_by_task``)."""
    parser.add_argument("--ner", help="NER run folder or model folder")
    parser.add_argument("--stance", help="stance run folder or model folder")
    parser.add_argument(
        "--model",
        action="append",
        default=[],
        metavar="RUN",
        help="run folder or model folder of any task, which its newsframe.json names (repeatable)",
    )


def error_record(doc_id: str | None, file: str, line: int | None, reason: str) -> dict:
    """A prediction record for an input that could not be read: empty results plus where and why."""
    return {
        "id": doc_id,
        "entities": [],
        "sentences": [],
        "doc_stance": None,
        "error": {"file": file, "line": line, "reason": reason},
    }


def text_problem(text: str) -> str | None:
    """Why ``text`` cannot be predicted nor written as UTF-8, or None: valid JSON can hold a lone surrogate
    (``"\\udc80"``), which the tokenizer and the UTF-8 writer both refuse."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as err:
        return f"not valid Unicode: lone surrogate U+{ord(text[err.start]):04X} at offset {err.start}"
    return None


def printable(text: str) -> str:
    """``text`` with anything UTF-8 cannot hold (lone surrogates, e.g. from an undecodable file name) escaped."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


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
    return {"id": doc_id, "text": text, "file": str(path), "line": None}


def read_jsonl_lines(lines: Iterable[bytes], file: str, first_line: int = 1) -> Iterator[dict]:
    """``{"id", "text"}`` (and ``sentences`` spans when the record has them) per non-blank line; a line that is
    not a JSON object with a ``text`` string becomes an error record (id ``FILE:LINE`` unless the line names one)
    and reading goes on. ``first_line``: the line number of the first line (a piece of a file, read elsewhere)."""
    for number, raw in enumerate(lines, start=first_line):
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
        yield read_record(record, file, number)


def read_record(record: object, file: str, number: int) -> dict:
    """One parsed JSON record as a document ``{"id", "text", "file", "line"}`` (and its ``sentences``), or its error
    record: the checks of ``read_jsonl_lines``, shared with records that arrive another way (``src.serve``), so a
    record is accepted or refused the same wherever it comes from."""
    fallback_id = f"{file}:{number}"
    if not isinstance(record, dict):
        return error_record(fallback_id, file, number, f"expected a JSON object, got {type(record).__name__}")
    doc_id = fallback_id if record.get("id") is None else str(record["id"])
    if text_problem(doc_id) is not None:
        return error_record(fallback_id, file, number, f'"id" is {text_problem(doc_id)}')
    if not isinstance(record.get("text"), str):
        return error_record(doc_id, file, number, 'record has no "text" string')
    problem = text_problem(record["text"])
    if problem is not None:
        return error_record(doc_id, file, number, f'"text" is {problem}')
    document = {"id": doc_id, "text": record["text"], "file": file, "line": number}
    if record.get("sentences") is not None:  # given spans (e.g. gold sentences) are predicted as they are
        document["sentences"] = record["sentences"]
    return document


def folder_files(folder: Path, warn: bool = True) -> list[Path]:
    """The ``.txt`` entries under ``folder``, sorted: regular files, and also symlinks that cannot be followed (a
    loop, a missing target), so that they become error records instead of vanishing from the output. Symlinked
    folders are not followed (``rglob``'s rule); any other symlink loop is reported as a warning."""
    found = []
    for path in folder.rglob("*"):
        if path.name.endswith(".txt") and (path.is_file() or (path.is_symlink() and not path.is_dir())):
            found.append(path)
        elif path.is_symlink():
            try:
                path.stat()
            except OSError as err:
                if warn and err.errno == errno.ELOOP:
                    log.warning("%s: symlink loop, skipped", printable(str(path)))
    return sorted(found)


def file_id(file: Path, folder: Path | None = None) -> str:
    """A ``.txt`` input's document id: its path relative to the folder given (else its name), without ``.txt``, so a
    seed article's id is its corpus id. Both engines (local and Ray) name documents with it."""
    return (file.relative_to(folder).as_posix() if folder is not None else file.name).removesuffix(".txt")


def iter_inputs(inputs: Sequence[str], stdin: BinaryIO | None = None) -> Iterator[dict]:
    """Documents from ``.txt`` files, folders of them (recursive, sorted), ``.jsonl`` files and ``-`` (stdin JSONL).

    Ids: a file's path relative to the folder given, a lone file's name, both without ``.txt`` (so a seed article's
    id is its corpus id), a JSONL record's ``id``.
    """
    for name in inputs:
        if name == STDIN:
            if stdin is not None:
                yield from read_jsonl_lines(stdin, "<stdin>")
            continue
        path = Path(name)
        if path.is_dir():
            for file in folder_files(path):
                doc_id = file_id(file, path)
                if text_problem(doc_id) is not None:  # an undecodable file name: the id could not be written
                    yield error_record(printable(doc_id), printable(str(file)), None, "file name is not UTF-8")
                    continue
                yield read_text_file(file, doc_id)
        elif path.suffix == ".jsonl":
            try:
                with path.open("rb") as handle:
                    yield from read_jsonl_lines(handle, name)
            except OSError as err:
                yield error_record(name, name, None, err.strerror or str(err))
        elif path.suffix == ".txt" or not path.exists():
            yield read_text_file(path, file_id(path))
        else:
            yield error_record(
                path.name, name, None, "unsupported input: expected a .txt or .jsonl file, a folder or -"
            )


# -- outputs ------------------------------------------------------------------------------------------------------


def csv_rows(prediction: dict, layers: Sequence[str] = ()) -> Iterator[list]:
    """One row per entity and per sentence (label = stance, score = its probability), then per sentence labelled
    in each of ``layers``; an error gives one row."""
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
    for key in layers:  # another task's sentence layer: a row per labelled sentence, its kind the layer's key
        for s in prediction["sentences"]:
            if s.get(key) is not None:
                score = layer_scores(s, key).get(s[key], "")
                yield [doc_id, key, s["start"], s["end"], s["text"], s[key], score]


def labelstudio_task(line: dict, layers: Sequence[str] = ()) -> dict:
    """A Label Studio task pre-annotated with one prediction (``line`` carries the document's ``text``), with the
    choices of the sentence ``layers`` of other tasks."""
    prediction = {k: v for k, v in line.items() if k != "text"}
    return records_to_labelstudio([{"id": line["id"], "text": line["text"]}], [prediction], layers=layers)[0]


class PredictionWriter:
    """Writes prediction lines to a text stream in one of ``FORMATS``: JSONL and CSV as they come (flushing each);
    the whole-corpus formats on ``close``: Label Studio's single JSON list (error records left out: they have no
    text), the HTML page (``src.predict.html``; lines carry their ``text``) and the entity-framing CSV
    (``src.predict.framing``, counted as lines come)."""

    def __init__(self, fmt: str, stream: TextIO, note: str = "", scheme: LabelScheme | None = None) -> None:
        """``scheme``: the models' labels (``Predictor.scheme``), whose order and colours the HTML page and the
        entity-framing columns follow."""
        if fmt not in FORMATS:
            raise ValueError(f"unknown format {fmt!r}; expected one of {FORMATS}")
        self.fmt, self.stream, self.note = fmt, stream, note  # note: the HTML page's line under its title
        self.scheme = scheme
        self.layers = tuple(scheme.sentence_layers) if scheme is not None else ()  # other tasks' sentence keys
        self.tasks: list[dict] = []
        self.csv = csv.writer(stream, lineterminator="\n") if fmt == "csv" else None
        if self.csv is not None:
            self.csv.writerow(CSV_COLUMNS)
        self.framing = None
        if fmt == "entity-framing":
            self.framing = FramingTable(scheme.stance_labels if scheme is not None else ())

    def write(self, line: dict) -> None:
        """Write one prediction line; one that UTF-8 cannot hold is written as an error record instead, so a bad
        document never stops the batch at the writer."""
        text = json_line(line)
        problem = text_problem(text)
        if problem is not None:
            err = line.get("error") or {}
            line = error_record(
                printable(str(line.get("id"))),
                printable(str(err.get("file") or "<input>")),
                err.get("line"),
                f"cannot be written as UTF-8: {problem} of the record",
            )
            text = json_line(line)
        if self.fmt == "jsonl":
            self.stream.write(text)
        elif self.csv is not None:
            self.csv.writerows(csv_rows(line, self.layers))
        elif self.framing is not None:
            self.framing.add(line)
        elif self.fmt == "html":
            self.tasks.append(line)
        elif "error" not in line:
            self.tasks.append(labelstudio_task(line, self.layers))
        self.stream.flush()

    def close(self) -> None:
        if self.fmt == "labelstudio":
            json.dump(self.tasks, self.stream, ensure_ascii=False, indent=1)
            self.stream.write("\n")
        elif self.fmt == "html":
            self.stream.write(render_page(self.tasks, note=self.note, scheme=self.scheme))
        elif self.framing is not None:
            self.framing.write_csv(self.stream)
        self.stream.flush()


def json_line(record: dict) -> str:
    return json.dumps(record, ensure_ascii=False) + "\n"


def journal_path(output: Path) -> Path:
    return output.with_name(output.name + ".partial")


def read_journal(path: Path, committed: int | None = None, fields: Sequence[str] | None = None) -> list[dict]:
    """The complete lines of an interrupted run's journal; a trailing partial line (a kill mid-write), and with
    ``committed`` anything past that byte offset, is cut off the file itself, so appending continues there.

    Read line by line, split at ``\\n`` only (JSON may hold U+2028, U+2029 and U+0085 raw inside strings). With
    ``fields``, each record keeps only those keys (``id`` and flags, for a resume of millions of documents). A
    line that is not a prediction record raises ``ValueError`` naming the file and line (nothing is cut then).
    """
    with path.open("r+b") as handle:
        size = os.fstat(handle.fileno()).st_size
        limit = size if committed is None else min(size, committed)
        done, keep = [], 0
        for number, raw in enumerate(handle, start=1):  # binary lines end at b"\n" only
            if not raw.endswith(b"\n") or keep + len(raw) > limit:
                break
            try:
                record = json.loads(raw)
            except ValueError as err:  # JSONDecodeError, or UnicodeDecodeError for bytes that are not UTF-8
                raise ValueError(f"{path}:{number}: not a JSON line ({err}); cannot resume from it") from err
            if not isinstance(record, dict) or "id" not in record or not ({"entities", "error"} & set(record)):
                raise ValueError(f"{path}:{number}: not a prediction record; cannot resume from it")
            done.append(record if fields is None else {k: record[k] for k in fields if k in record})
            keep += len(raw)
        if keep < size:
            handle.truncate(keep)
    return done


def iter_journal(path: Path) -> Iterator[dict]:
    with path.open(encoding="utf-8", newline="\n") as handle:  # "\n" only, as read_journal
        for raw in handle:
            yield json.loads(raw)


def finalize(journal: Path, output: Path, fmt: str, note: str = "", scheme: LabelScheme | None = None) -> None:
    """Turn a complete journal into ``output`` atomically (a rename for JSONL, a conversion through a temp file
    in the same folder otherwise) and remove the journal."""
    if fmt == "jsonl":
        os.replace(journal, output)
        return
    tmp = output.with_name(f".{output.name}.tmp")
    try:
        with tmp.open("w", encoding="utf-8", newline="") as stream:
            writer = PredictionWriter(fmt, stream, note, scheme)
            for line in iter_journal(journal):
                writer.write(line)
            writer.close()
        os.replace(tmp, output)
    except BaseException:
        tmp.unlink(missing_ok=True)  # the journal is whole: a rerun converts it again
        raise
    journal.unlink()


# -- one run per output, and what a run is ------------------------------------------------------------------------


class OutputBusy(RuntimeError):
    """Another run holds the output's lock."""


def lock_path(output: Path) -> Path:
    return output.with_name(output.name + ".lock")


def run_record_path(output: Path) -> Path:
    """``OUT.partial.run.json``: what the run writing ``OUT.partial`` is, and how much of it is committed."""
    return output.with_name(output.name + ".partial.run.json")


def lock_output(output: Path) -> int:
    """An exclusive ``flock`` on ``OUT.lock`` for the run's lifetime (the file descriptor); a second run on the same
    output fails at once with ``OutputBusy`` instead of interleaving lines with the first. ``OSError`` when the
    lock file cannot be created (a read-only or missing folder), before any work is done."""
    import fcntl

    path = lock_path(output)
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise OutputBusy(
                f"{output}: another run is writing it (it holds {path}); wait for it to end or choose another --output"
            ) from None
        except OSError:
            os.close(fd)
            raise
        try:
            locked_the_file_there = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            locked_the_file_there = False
        if locked_the_file_there:
            return fd
        os.close(fd)  # a finishing run removed the file we opened; lock the one now in place


def unlock_output(output: Path, fd: int) -> None:
    """Remove the lock file while still holding it (``lock_output`` re-checks, so no run locks a removed file)."""
    lock_path(output).unlink(missing_ok=True)
    os.close(fd)


def describe_input(name: str) -> dict:
    """What an input is now, cheaply: a file's size and modification time, a folder's count and a hash of its
    ``.txt`` files' names, sizes and times. Standard input cannot be described (resume checks its ids only)."""
    if name == STDIN:
        return {"input": name, "kind": "stdin"}
    path = Path(name)
    if path.is_dir():
        digest, files = hashlib.sha256(), folder_files(path, warn=False)
        for file in files:
            try:
                stat = file.stat()
                entry = f"{file.relative_to(path).as_posix()}\0{stat.st_size}\0{stat.st_mtime_ns}\n"
            except OSError as err:
                entry = f"{file.relative_to(path).as_posix()}\0error {err.errno}\n"
            digest.update(printable(entry).encode("utf-8"))
        return {"input": name, "kind": "folder", "files": len(files), "sha256": digest.hexdigest()}
    try:
        stat = path.stat()
    except OSError as err:
        return {"input": name, "kind": "unreadable", "reason": err.strerror or str(err)}
    return {"input": name, "kind": "file", "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def describe_model(name: str | None) -> dict | None:
    """A checkpoint folder by the sha256 of its files (weights, config, tokenizer), wherever it lies."""
    if name is None:
        return None
    from src.model import resolve_model_dir  # transformers takes seconds: the CLI's usage errors come first

    folder = Path(resolve_model_dir(name))
    if not folder.is_dir():
        return {"path": name, "sha256": None}
    digest = hashlib.sha256()
    try:
        for file in sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")):
            digest.update(f"{file.name}\0{file_sha256(file)}\n".encode())  # remembered: no 90 MB read per start
    except OSError:  # unreadable: loading it will say why
        return {"path": name, "sha256": None}
    return {"path": name, "sha256": digest.hexdigest()}


def _input_change(old: dict, new: dict) -> str:
    name = new["input"]
    if new["kind"] == "unreadable":
        return f"input {name} cannot be read now ({new['reason']})"
    if old["kind"] != new["kind"]:
        return f"input {name} was a {old['kind']}, now a {new['kind']}"
    if new["kind"] == "folder":
        count = "" if old["files"] == new["files"] else f": {old['files']} .txt files then, {new['files']} now"
        return f"folder {name} changed since the interrupted run (files added, removed or edited{count})"
    details = [f"size {old['size']} -> {new['size']} bytes"] if old["size"] != new["size"] else []
    if old["mtime_ns"] != new["mtime_ns"]:
        details.append("modified since")
    return f"input {name} changed since the interrupted run ({', '.join(details)})"


def run_differences(old: dict, new: dict) -> list[str]:
    """What differs between the run that wrote a journal (``old`` run record) and this one: inputs, models, options
    (each named), so ``--resume`` never mixes two runs' predictions in one output."""
    changes = []
    old_inputs, new_inputs = old.get("inputs", []), new["inputs"]
    if [i["input"] for i in old_inputs] != [i["input"] for i in new_inputs]:
        was, now = " ".join(i["input"] for i in old_inputs), " ".join(i["input"] for i in new_inputs)
        changes.append(f"the inputs were {was}, now {now}")
    else:
        changes.extend(_input_change(a, b) for a, b in zip(old_inputs, new_inputs, strict=True) if a != b)
    old_models = old.get("models", {})
    for task in dict.fromkeys([*old_models, *new["models"]]):
        a, b = old_models.get(task), new["models"].get(task)
        if (a is None) != (b is None) or (a and b and a["sha256"] != b["sha256"]):
            was = "none" if a is None else f"{a['path']} (sha256 {str(a['sha256'])[:12]})"
            now = "none" if b is None else f"{b['path']} (sha256 {str(b['sha256'])[:12]})"
            changes.append(f"the --{task} model was {was}, now {now}")
    old_options, new_options = old.get("options", {}), new["options"]
    for key in sorted(set(old_options) | set(new_options)):
        if old_options.get(key) != new_options.get(key):
            flag = "--" + key.replace("_", "-")
            changes.append(f"{flag} was {old_options.get(key)!r}, now {new_options.get(key)!r}")
    return changes
