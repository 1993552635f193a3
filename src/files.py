"""Files the tool writes (models, metrics, reports, corpora, predictions): atomically, and readable by others.

Every file goes through a temporary file in the same folder and ``os.replace``, so a reader never sees half a file
and a failed write leaves the old one as it was; modes follow the umask (0644 / 0755 under the usual one), so a
service account can load what another user trained.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import tempfile
import time
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


def write_figure(path: str | Path, fig, dpi: int = 120) -> Path:
    """A matplotlib figure as a PNG, written atomically; the figure is closed (figures are made off-screen)."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    plt.close(fig)
    return write_atomic(path, buf.getvalue())


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


def cache_root() -> Path:
    """Where newsframe keeps what it can rebuild (ONNX exports, remembered file hashes): ``$NEWSFRAME_CACHE``, else
    ``~/.cache/newsframe``."""
    return Path(os.environ.get("NEWSFRAME_CACHE", Path.home() / ".cache" / "newsframe"))


# A file changed within this many seconds of being hashed could change again inside one timestamp tick unseen.
_SETTLED_NS = 2_000_000_000


def file_sha256(path: str | Path) -> str:
    """The sha256 of one file, remembered in ``cache_root()/hashes`` under the file's identity (device, inode, size,
    modification and change times), so a 90 MB checkpoint is read once, not on every start.

    Any write to the file changes its mtime and ctime (ctime cannot be set from user space), and ``save_pretrained``
    or an atomic replace gives it another inode, so a remembered hash is used only for the bytes it was taken from.
    A file modified less than two seconds before it was hashed is not remembered (a second write within the same
    timestamp tick would keep its times). Without a writable cache the hash is simply computed."""
    path = Path(path).resolve()
    stat = path.stat()
    identity = [stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns]
    entry = cache_root() / "hashes" / (hashlib.sha256(str(path).encode()).hexdigest()[:32] + ".json")
    sample = _sample_digest(path, stat.st_size)
    try:
        known = json.loads(entry.read_text(encoding="utf-8"))
        same_file = known["path"] == str(path) and known["identity"] == identity
        if same_file and known["check"] == _entry_check(str(path), identity, sample, known["sha256"]):
            return known["sha256"]
    except (OSError, ValueError, KeyError, TypeError):
        pass  # no entry, or one edited or written for other bytes: hash the file
    digest = sha256_of([path])
    if time.time_ns() - max(stat.st_mtime_ns, stat.st_ctime_ns) > _SETTLED_NS:
        check = _entry_check(str(path), identity, sample, digest)
        with contextlib.suppress(OSError):  # a read-only cache: hash again next time
            write_json(entry, {"path": str(path), "identity": identity, "sha256": digest, "check": check})
    return digest


_SAMPLE = 1 << 16


def _sample_digest(path: Path, size: int) -> str:
    """A cheap fingerprint of the bytes: the size and 64 KiB from the start, the middle and the end."""
    digest = hashlib.sha256(str(size).encode())
    with path.open("rb") as handle:
        for offset in (0, max(size // 2 - _SAMPLE // 2, 0), max(size - _SAMPLE, 0)):
            handle.seek(offset)
            digest.update(handle.read(_SAMPLE))
    return digest.hexdigest()


def _entry_check(path: str, identity: list[int], sample: str, sha256: str) -> str:
    """Binds a remembered hash to the bytes it was taken from: a hash edited in the cache (or an entry copied from
    another file) no longer matches its check, and the file is hashed again. It guards against edits and mix-ups,
    not against someone who can write the cache and recomputes the check (no secret is kept)."""
    return hashlib.sha256(json.dumps([path, identity, sample, sha256]).encode()).hexdigest()


def shown_path(path: str | Path) -> str:
    """A path as others can use it: relative to the project when inside it, else as given."""
    path = Path(path)
    try:
        return str(path.resolve().relative_to(PROJECT_ROOT))
    except ValueError:
        return str(path)


@contextlib.contextmanager
def exclusive(path: str | Path):
    """Hold an exclusive ``flock`` on ``PATH.lock`` (waiting for another holder), so a read-check-write of ``path``
    by two processes at once runs one after the other instead of losing one's write. The lock file is removed while
    still held, and a waiter that locked a removed file locks the one now in place."""
    import fcntl

    lock = Path(f"{path}.lock")
    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, umask_mode())
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            same = os.fstat(fd).st_ino == os.stat(lock).st_ino
        except FileNotFoundError:
            same = False
        except OSError:
            os.close(fd)
            raise
        if same:
            break
        os.close(fd)
    try:
        yield
    finally:
        lock.unlink(missing_ok=True)
        os.close(fd)
