"""The multi-task probe (scripts/probe_multitask.py): each sentence carries its own stance, and its control (the stance
loss off) trains on exactly the NER loss, so the comparison it reports is between like things."""

from __future__ import annotations

import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

from probe_multitask import MultiTask, examples  # noqa: E402

from src.data.convert import stance_examples  # noqa: E402
from src.data.records import load_records  # noqa: E402
from src.features import IGNORE_INDEX  # noqa: E402
from src.labels import ENTITY_LABELS, STANCE_LABELS, iob2_tags  # noqa: E402

SEEDS = ROOT / "data" / "annotations" / "seeds.jsonl"


def test_every_sentence_carries_its_own_stance() -> None:
    records = load_records(SEEDS)
    ner, stances = examples(records)
    labelled = {(e["doc_id"], e["start"]): STANCE_LABELS.index(e["label"]) for e in stance_examples(records)}
    assert len(ner) == sum(len(r["sentences"]) for r in records)
    for example, stance in zip(ner, stances, strict=True):
        assert stance == labelled.get((example["doc_id"], example["sent_start"]), IGNORE_INDEX)
    assert sum(s != IGNORE_INDEX for s in stances) == len(labelled)


def test_the_control_trains_on_the_ner_loss_alone(tiny_model_dir: Path) -> None:
    from transformers import AutoModelForTokenClassification

    tags = iob2_tags(ENTITY_LABELS)
    ner = AutoModelForTokenClassification.from_pretrained(tiny_model_dir, num_labels=len(tags))
    ner.eval()
    ids = torch.tensor([[2, 5, 6, 7, 3], [2, 8, 9, 3, 0]])
    mask = (ids != 0).long()
    labels = torch.tensor([[IGNORE_INDEX, 1, 0, 3, IGNORE_INDEX], [IGNORE_INDEX, 0, 2, IGNORE_INDEX, IGNORE_INDEX]])
    stance = torch.tensor([0, 2])
    weights = torch.ones(len(STANCE_LABELS))
    expected = ner(input_ids=ids, attention_mask=mask, labels=labels).loss
    control = MultiTask(ner, len(STANCE_LABELS), weights, share=0.0).eval()
    joint = MultiTask(ner, len(STANCE_LABELS), weights, share=1.0).eval()
    assert torch.allclose(control(ids, mask, labels, stance)["loss"], expected)
    assert joint(ids, mask, labels, stance)["loss"] > expected
