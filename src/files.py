"""Files the tool writes (models, metrics, reports, corpora, predictions): atomically, and readable by others.

Every file goes through a temporary file in the same folder and ``os.replace``, so a reader never sees half a file
and a failed write leaves the old one as it was; modes follow the umask (0644 / 0755 under the usual one), so a
service account can load what another user trained.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def umask_mode(mode: int = 0o666) -> int:
    """``mode`` as the process umask lets a plain ``open`` create it, for files made through ``mkstemp`` (0600)."""
    mask = os.umask(0)
    os.umask(mask)
    return mode & ~mask


def make_readable(folder: str | Path) -> None:
    """Give every file and folder under ``folder`` the umask's modes: some writers (safetensors) create files 0600,
    and a model another user trained must load for a service account too."""
    for path in [Path(folder), *Path(folder).rglob("*")]:
        os.chmod(path, umask_mode(0o777 if path.is_dir() else 0o666))


def write_atomic(path: str | Path, data: str | bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same folder, so readers never see half a file.

    The file gets the permissions a plain ``open`` would (0644 under the usual umask), so other users can read it.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data.encode("utf-8") if isinstance(data, str) else data)
        os.chmod(tmp, umask_mode())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_json(path: str | Path, obj: object) -> Path:
    return write_atomic(path, json.dumps(obj, indent=2, ensure_ascii=False) + "\n")


def write_jsonl(path: str | Path, records: Iterable[dict]) -> Path:
    return write_atomic(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))


def sha256_of(paths: list[Path]) -> str:
    """One sha256 over the bytes of ``paths`` in order, read in blocks (model weights are large)."""
    digest = hashlib.sha256()
    for path in paths:
        with path.open("rb") as handle:
            for block in iter(lambda h=handle: h.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def shown_path(path: str | Path) -> str:
    """A path as others can use it: relative to the project when inside it, else as given."""
    path = Path(path)
    try:
        return str(path.resolve().relative_to(PROJECT_ROOT))
    except ValueError:
        return str(path)
