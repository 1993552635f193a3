"""Leave-one-article-out cross-validation over records, and the bridge to Hugging Face ``datasets``."""

from __future__ import annotations

from collections.abc import Sequence

import datasets

from src.data.records import Record


def leave_one_article_out(records: Sequence[Record], fold: int | None) -> tuple[list[Record], list[Record]]:
    """``(train, test)`` where fold ``k`` holds out the k-th article by sorted id; ``None`` trains on all.

    Sorting by id makes a fold number mean the same article on every machine, whatever the file order.

    EXAMPLE: ids ["b", "a", "c"], fold 0 -> train ids ["b", "c"], test ids ["a"]; fold None -> (all 3, [])
    """
    ordered = sorted(records, key=lambda r: r["id"])
    if fold is None:
        return ordered, []
    if not 0 <= fold < len(ordered):
        listing = ", ".join(f"{k}: {r['id']}" for k, r in enumerate(ordered[:10])) + (
            ", ..." if len(ordered) > 10 else ""
        )
        valid = f"0..{len(ordered) - 1} ({listing})" if ordered else "none (no records)"
        raise ValueError(
            f"fold {fold} is out of range: {len(ordered)} articles, valid folds are {valid}, or None to train on all"
        )
    return ordered[:fold] + ordered[fold + 1 :], [ordered[fold]]


def outlet_groups(records: Sequence[Record]) -> list[tuple[str, list[Record]]]:
    """``(outlet, records)`` sorted by outlet: records grouped by their ``outlet`` field (by id when they have none),
    so two pages of one outlet are held out together and a fold number means the same outlet everywhere.

    EXAMPLE: outlets ["B", "A", "B"] -> ``[("A", [r1]), ("B", [r0, r2])]``
    """
    groups: dict[str, list[Record]] = {}
    for record in sorted(records, key=lambda r: r["id"]):
        groups.setdefault(str(record.get("outlet") or record["id"]), []).append(record)
    return sorted(groups.items())


def leave_one_outlet_out(records: Sequence[Record], fold: int) -> tuple[list[Record], list[Record], str]:
    """``(train, test, outlet)`` where fold ``k`` holds out every record of the k-th outlet (``outlet_groups``).

    EXAMPLE: outlets ["B", "A", "B"], fold 1 -> train [r1], test [r0, r2], "B"
    """
    groups = outlet_groups(records)
    if not 0 <= fold < len(groups):
        listing = ", ".join(f"{k}: {name}" for k, (name, _) in enumerate(groups))
        raise ValueError(f"outlet fold {fold} is out of range: {len(groups)} outlets ({listing or 'none'})")
    train = [r for k, (_, group) in enumerate(groups) if k != fold for r in group]
    return train, groups[fold][1], groups[fold][0]


def as_dataset(examples: Sequence[dict]) -> datasets.Dataset:
    """A ``datasets.Dataset`` of examples (e.g. ``ner_examples`` or ``stance_examples``), one row each.

    EXAMPLE: ``as_dataset([{"text": "Hi", "label": "neutral"}]).num_rows -> 1``
    """
    return datasets.Dataset.from_list(list(examples))
