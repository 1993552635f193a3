"""Where CoNLL-2003 comes from: a local folder of column files, else the Hugging Face Hub copy, else nowhere.

The data's licence keeps it out of the repository, so each machine finds its own copy, in this order:
1. a local folder holding ``train.txt``, ``dev.txt`` and ``test.txt``: ``data.dir`` (or ``--dir``), then
   ``$NEWSFRAME_CONLL``, then ``../shared/benchmarks/conll2003`` beside the checkout;
2. the Hub copy through ``datasets.load_dataset`` when the Hub answers (a 3-second probe, so an offline machine
   moves on at once instead of retrying);
3. none: the caller trains without it (``make train`` falls back to the plain packaged model).

``python -m src.data.conll [--dir DIR]`` prints the source it would use and exits 0, or explains and exits 1.
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import sys
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from src.data.convert import read_conll, tokens_to_record

log = logging.getLogger(__name__)

ENV_VAR = "NEWSFRAME_CONLL"
SHARED_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "benchmarks" / "conll2003"
SPLIT_FILES = {"train": "train.txt", "dev": "dev.txt", "test": "test.txt"}
HUB_ID = "eriktks/conll2003"
HUB_REVISION = "refs/convert/parquet"  # the Hub's Parquet export: no loading script, nothing to trust
HUB_SPLITS = {"train": "train", "dev": "validation", "test": "test"}
# The Hub copy's ``ner_tags`` class order, for copies whose features carry no names (JSON or CSV files).
HUB_TAGS = ("O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC", "B-MISC", "I-MISC")
# Sentences per split of CoNLL-2003 English (the column files and the Hub copy alike).
EXPECTED_SENTENCES = {"train": 14041, "dev": 3250, "test": 3453}
HOW_TO_GET = (
    "put CoNLL-2003 (train.txt, dev.txt, test.txt in IOB2 columns) in a folder and pass it: "
    f"`make train CONLL=/path`, `data.dir=/path` or {ENV_VAR}=/path"
)


class ConllNotFound(FileNotFoundError):
    """No CoNLL-2003 copy could be found; the message lists every place that was tried."""


@dataclass(frozen=True)
class ConllSource:
    """A CoNLL-2003 copy: ``kind`` is ``"local"`` (``where`` is a folder) or ``"hub"`` (``where`` is a dataset id)."""

    kind: str
    where: str
    origin: str  # how it was found, for the one line a run prints

    def describe(self) -> str:
        return f"CoNLL-2003 from {self.where} ({self.origin})"


def missing_files(folder: Path) -> list[str]:
    return [name for name in SPLIT_FILES.values() if not (folder / name).is_file()]


def hub_unreachable(timeout: float = 3.0) -> str | None:
    """Why the Hub cannot be used right now, or None. Fast by design: offline settings first, then one TCP connect."""
    for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
        if os.environ.get(var, "").strip().lower() in ("1", "true", "yes", "on"):
            return f"{var} is set"
    from huggingface_hub import constants

    host = urlparse(constants.ENDPOINT).hostname or "huggingface.co"
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
    except OSError as err:
        return f"{host} is unreachable ({err.strerror or err})"
    return None


def find_source(
    explicit_dir: str | None = None,
    hub_id: str | None = HUB_ID,
    shared_dir: Path = SHARED_DIR,
) -> ConllSource:
    """The first CoNLL-2003 copy in the documented order; raises ``ConllNotFound`` saying what was tried.

    An explicit folder that lacks a split file is an error, never skipped: the user asked for that folder.
    """
    if explicit_dir:
        folder = Path(explicit_dir).expanduser()
        if not folder.is_dir():
            raise ConllNotFound(f"data.dir={explicit_dir}: no such folder")
        if missing := missing_files(folder):
            raise ConllNotFound(f"data.dir={explicit_dir}: missing {', '.join(missing)}")
        return ConllSource("local", str(folder), "data.dir")
    tried = []
    env = os.environ.get(ENV_VAR)
    if env:
        folder = Path(env).expanduser()
        if missing := missing_files(folder):
            raise ConllNotFound(f"{ENV_VAR}={env}: missing {', '.join(missing)}")
        return ConllSource("local", str(folder), f"${ENV_VAR}")
    tried.append(f"${ENV_VAR} is not set")
    if not missing_files(shared_dir):
        return ConllSource("local", str(shared_dir), "beside the checkout")
    tried.append(f"no {shared_dir}")
    if hub_id:
        reason = hub_unreachable()
        if reason is None:
            return ConllSource("hub", hub_id, "Hugging Face Hub")
        tried.append(f"Hub copy {hub_id}: {reason}")
    raise ConllNotFound("no CoNLL-2003: " + "; ".join(tried))


def load_splits(source: ConllSource, revision: str | None = HUB_REVISION) -> dict[str, list[dict]]:
    """``{"train", "dev", "test"}`` records from either kind of source (sentences with stance ``None``)."""
    if source.kind == "local":
        return {split: read_conll(Path(source.where) / name) for split, name in SPLIT_FILES.items()}
    return load_hub(source.where, revision)


def load_hub(name_or_folder: str, revision: str | None = HUB_REVISION) -> dict[str, list[dict]]:
    """CoNLL-2003 through ``datasets.load_dataset`` (a Hub id, or a local dataset folder with the same columns):
    one record per sentence, tags read from the ``ner_tags`` class names (or the Hub's order when it has none)."""
    from datasets import load_dataset

    local = Path(name_or_folder).is_dir()
    dataset = load_dataset(name_or_folder, revision=None if local else revision)
    splits = {}
    for split, hub_split in HUB_SPLITS.items():
        if hub_split not in dataset:
            raise ValueError(f"{name_or_folder}: no {hub_split!r} split (has {sorted(dataset)})")
        part = dataset[hub_split]
        feature = part.features["ner_tags"]
        inner = getattr(feature, "feature", None)
        names = list(getattr(inner, "names", None) or HUB_TAGS)
        splits[split] = [
            tokens_to_record(
                f"{split}-{i:05d}", [list(zip(row["tokens"], [names[t] for t in row["ner_tags"]], strict=True))]
            )
            for i, row in enumerate(part)
            if row["tokens"]
        ]
    if not local:
        check_counts(splits, name_or_folder)
    return splits


def check_counts(splits: dict[str, list[dict]], name: str) -> list[str]:
    """Differences between a copy's sentence counts and CoNLL-2003's (14,041 / 3,250 / 3,453), each logged as a
    warning: a Hub copy should hold the same records as the column files."""
    differences = [
        f"{split}: {len(splits[split])} sentences, CoNLL-2003 has {expected}"
        for split, expected in EXPECTED_SENTENCES.items()
        if len(splits[split]) != expected
    ]
    for difference in differences:
        log.warning("%s is not the CoNLL-2003 the column files hold: %s", name, difference)
    return differences


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m src.data.conll", description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", help="a local CoNLL-2003 folder (train.txt, dev.txt, test.txt)")
    parser.add_argument("--no-hub", action="store_true", help="never try the Hugging Face Hub copy")
    args = parser.parse_args(argv)
    try:
        source = find_source(args.dir or None, hub_id=None if args.no_hub else HUB_ID)
    except ConllNotFound as err:
        print(f"NER warm start: none ({err}). For the better NER model, {HOW_TO_GET}.", file=sys.stderr)
        return 1
    print(f"NER warm start: {source.describe()}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
