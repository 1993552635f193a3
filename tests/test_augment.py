"""Training augmentation: name masking (``task.mask_names``) and guideline phrases as sentences
(``task.phrase_templates``): what is added or masked, what is kept, and the config checks."""

from __future__ import annotations

import random
import re
from pathlib import Path

import pytest

from src.config import ConfigError
from src.data.augment import known_names, mask_names, phrase_records
from src.data.records import load_records
from src.data.validate import validate_record
from src.tasks import get_task
from tests.conftest import ROOT, TINY_TRAIN, compose_train_config

TEXT = "After Hanoi, Kim Jong-un looks east. Kim met Putin. Byline."


def record() -> dict:
    return {
        "id": "a",
        "text": TEXT,
        "entities": [
            {"start": 6, "end": 11, "label": "GPE"},
            {"start": 13, "end": 24, "label": "PERSON"},
            {"start": 37, "end": 40, "label": "PERSON"},
            {"start": 45, "end": 50, "label": "PERSON"},
        ],
        "sentences": [
            {"start": 0, "end": 36, "stance": "leverage"},
            {"start": 37, "end": 51, "stance": "neutral"},
            {"start": 52, "end": 59, "stance": None},
        ],
    }


def sentences(r: dict) -> list[str]:
    return [r["text"][s["start"] : s["end"]] for s in r["sentences"]]


def test_names_are_masked_whole_and_offsets_follow() -> None:
    names = known_names([record()], ["GPE", "PERSON"])
    assert names == {"Hanoi", "Kim Jong-un", "Kim", "Putin"}
    (out,) = mask_names([record()], names, 1.0, random.Random(0), "[MASK]")
    # the longest name wins ("Kim Jong-un", not "Kim" + "Jong-un"); unlabelled sentences are left alone
    assert sentences(out) == ["After [MASK], [MASK] looks east.", "[MASK] met [MASK].", "Byline."]
    assert [s["stance"] for s in out["sentences"]] == ["leverage", "neutral", None]
    # entity offsets no longer hold: the masked copy annotates stance only, so NER never learns from it
    assert out["entities"] == [] and out["annotated"] == ["stance"]


def test_probability_zero_and_types_leave_records_alone() -> None:
    assert mask_names([record()], {"Hanoi"}, 0.0, random.Random(0), "[MASK]") == [record()]
    assert known_names([record()], ["ORG"]) == set()
    stance_only = record() | {"annotated": ["stance"]}
    assert known_names([stance_only], ["GPE", "PERSON"]) == set()  # its entities are not annotated: no names


def test_a_share_of_sentences_is_masked_reproducibly() -> None:
    records = load_records(ROOT / "data" / "annotations" / "seeds.jsonl")
    task_cfg = {"mask_names": 0.5, "mask_name_types": ["PERSON", "GPE"]}
    first = get_task("stance").augmented(records, task_cfg, 42, "[MASK]")
    assert first == get_task("stance").augmented(records, task_cfg, 42, "[MASK]")
    labelled = [s for r in records for s in sentences(r)]
    masked = [s for r in first for s in sentences(r)]
    assert len(masked) == len(labelled)
    changed = sum(a != b for a, b in zip(labelled, masked, strict=True))
    assert 0.2 * len(labelled) < changed < 0.6 * len(labelled)
    assert get_task("ner").augmented(records, task_cfg, 42, "[MASK]") == records  # NER is not augmented


def test_training_with_masking(tiny_model_dir: Path, tmp_path: Path) -> None:
    from src.train import train

    overrides = ["task=stance", f"model.name_or_path={tiny_model_dir}", "task.mask_names=0.5", *TINY_TRAIN]
    metrics, out = train(compose_train_config(overrides, tmp_path))
    assert metrics["task"] == "stance" and (out / "model" / "model.safetensors").is_file()


@pytest.mark.parametrize("value", [1.5, -0.1, "often"])
def test_bad_probability_is_refused(value, tiny_model_dir: Path, tmp_path: Path) -> None:
    from src.train import train

    overrides = ["task=stance", f"model.name_or_path={tiny_model_dir}", f"task.mask_names={value}", *TINY_TRAIN]
    with pytest.raises(ConfigError, match=r"task\.mask_names"):
        train(compose_train_config(overrides, tmp_path))


TEMPLATES = '["{phrase}","Analysts see the trip as {phrase}."]'


def test_phrase_templates_add_labelled_minimal_pairs() -> None:
    phrases = {"leverage": ["a bargaining chip"], "neutral": ["protocol", "dates"]}
    records = phrase_records(phrases, ["{phrase}", "Analysts see the trip as {phrase}."])
    assert [r["annotated"] for r in records] == [["stance"], ["stance"]]
    framed = records[1]
    got = [(framed["text"][s["start"] : s["end"]], s["stance"]) for s in framed["sentences"]]
    assert got == [
        ("Analysts see the trip as a bargaining chip.", "leverage"),
        ("Analysts see the trip as protocol.", "neutral"),
        ("Analysts see the trip as dates.", "neutral"),
    ]
    assert validate_record(framed) == []


def test_training_with_phrase_templates(tiny_model_dir: Path, tmp_path: Path) -> None:
    from src.train import train

    overrides = ["task=stance", f"model.name_or_path={tiny_model_dir}", f"task.phrase_templates={TEMPLATES}"]
    cfg = compose_train_config([*overrides, *TINY_TRAIN], tmp_path)
    assert list(cfg.task.phrase_templates) == ["{phrase}", "Analysts see the trip as {phrase}."]
    records = load_records(ROOT / "data" / "annotations" / "seeds.jsonl")
    augmented = get_task("stance").augmented(records, cfg.task, 42, "[MASK]")
    n_phrases = sum(len(v) for v in cfg.task.prototypes.values())
    assert len(augmented) == len(records) + 2
    assert sum(len(r["sentences"]) for r in augmented[-2:]) == 2 * n_phrases
    metrics, out = train(cfg)
    assert metrics["task"] == "stance" and (out / "model" / "model.safetensors").is_file()


@pytest.mark.parametrize(
    ("value", "needs"), [('["no placeholder"]', "with {phrase}"), (TEMPLATES, "needs the phrases")]
)
def test_bad_phrase_templates_are_refused(value: str, needs: str, tiny_model_dir: Path, tmp_path: Path) -> None:
    from src.train import train

    overrides = ["task=stance", f"model.name_or_path={tiny_model_dir}", f"task.phrase_templates={value}"]
    overrides += ["task.prototypes=null"] if needs == "needs the phrases" else []
    with pytest.raises(ConfigError, match=re.escape(needs)):
        train(compose_train_config([*overrides, *TINY_TRAIN], tmp_path))
