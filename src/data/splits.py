"""The train / dev / test records a training run uses, and where they came from (for the model folder's metadata)."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from src.data import conll
from src.data.folds import leave_one_article_out, leave_one_outlet_out
from src.data.records import Record, load_records
from src.errors import ConfigError
from src.files import sha256_of, shown_path
from src.labels import sentence_layers_of


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
    records = load_records(data.path, **checked_labels(data))
    extra, extra_provenance = load_extra(data, {r["id"] for r in records})
    for key in ("fold", "extra_fold"):
        value = data.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise ConfigError(f"data.{key}={value!r}: expected an article (outlet) number or null")
    provenance = {"name": data.name, "path": shown_path(data.path), "sha256": sha256_of([Path(data.path)])}
    if extra_provenance:
        provenance["extra"] = extra_provenance
    if data.get("extra_fold") is not None:
        if data.fold is not None:
            raise ConfigError(
                f"data.extra_fold={data.extra_fold} holds out an outlet of data.extra: set data.fold=null (the seed "
                f"articles all train), not data.fold={data.fold}"
            )
        if not extra:
            raise ConfigError("data.extra_fold: no data.extra files to hold an outlet out of")
        try:
            extra_train, test, outlet = leave_one_outlet_out(extra, data.extra_fold)
        except ValueError as err:
            raise ConfigError(f"data.extra_fold: {err}") from None
        train = sorted(records, key=lambda r: r["id"]) + extra_train
        held = {"fold": None, "extra_fold": data.extra_fold, "held_out_outlet": outlet}
        return train, [], test, {**provenance, **held, "held_out": [r["id"] for r in test]}
    try:
        train, test = leave_one_article_out(records, data.fold)
    except ValueError as err:
        raise ConfigError(f"data.fold: {err}") from None
    return train + extra, [], test, {**provenance, "fold": data.fold, "held_out": [r["id"] for r in test]}


def load_extra(data: DictConfig, seed_ids: set[str]) -> tuple[list[Record], list[dict]]:
    """The records of the ``data.extra`` files (validated, label reviews applied) and their provenance, one entry
    per file with its sha256. Extra records only ever train (``data.fold`` holds out seed articles) unless
    ``data.extra_fold`` holds one of their outlets out."""
    records: list[Record] = []
    provenance: list[dict] = []
    seen = dict.fromkeys(seed_ids, data.path)
    for path in data.get("extra") or []:
        if not Path(path).is_file():
            raise FileNotFoundError(f"data.extra: no such file {path}")
        entry: dict = {}
        found = load_records(path, **checked_labels(data), provenance=entry)
        clashes = sorted(r["id"] for r in found if r["id"] in seen)
        if clashes:
            raise ConfigError(f"data.extra: {path} repeats record ids of {seen[clashes[0]]}: {', '.join(clashes[:5])}")
        seen.update(dict.fromkeys((r["id"] for r in found), path))
        records += found
        provenance.append(entry)
    return records, provenance


def checked_labels(data: DictConfig) -> dict:
    """The labels a data config's files are validated against (``load_records``' keywords)."""
    return {
        "entity_labels": list(data.entity_labels),
        "stance_labels": list(data.stance_labels),
        "sentence_layers": sentence_layers_of(data.get("sentence_labels"), "data.sentence_labels"),
    }
