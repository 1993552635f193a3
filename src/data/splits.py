"""The train / dev / test records a training run uses, and where they came from (for the model folder's metadata)."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from src.config import ConfigError
from src.data import conll
from src.data.folds import leave_one_article_out
from src.data.records import load_records
from src.files import sha256_of, shown_path


def load_splits(data: DictConfig) -> tuple[list[dict], list[dict], list[dict], dict]:
    """``(train, dev, test, provenance)``: seeds by leave-one-article-out fold, CoNLL from wherever it is found.

    ``provenance`` names the data and fingerprints it (sha256 of the files, or the Hub id and revision).
    """
    if data.format == "conll":
        source = conll.find_source(data.dir, data.hub_id)
        print(f"Data: {source.describe()}")
        splits = conll.load_splits(source, data.hub_revision)
        if source.kind == "local":
            files = [Path(source.where) / name for name in conll.SPLIT_FILES.values()]
            provenance = {"name": data.name, "path": shown_path(source.where), "sha256": sha256_of(files)}
        else:
            provenance = {"name": data.name, "source": f"{source.where}@{data.hub_revision}"}
        train = splits["train"][: data.max_train_documents or None]
        return train, splits["dev"], splits["test"], {**provenance, "fold": None}
    if not Path(data.path).is_file():
        raise FileNotFoundError(f"data.path: no such file {data.path}")
    records = load_records(data.path, entity_labels=list(data.entity_labels), stance_labels=list(data.stance_labels))
    if data.fold is not None and (isinstance(data.fold, bool) or not isinstance(data.fold, int)):
        raise ConfigError(f"data.fold={data.fold!r}: expected an article number or null")
    try:
        train, test = leave_one_article_out(records, data.fold)
    except ValueError as err:
        raise ConfigError(f"data.fold: {err}") from None
    provenance = {"name": data.name, "path": shown_path(data.path), "sha256": sha256_of([Path(data.path)])}
    return train, [], test, {**provenance, "fold": data.fold, "held_out": [r["id"] for r in test]}
