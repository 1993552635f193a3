"""Tiny checkpoints shaped like trained ones (run folder ``RUN/model/``), built in seconds from ``tiny_model_dir``.

The NER one can be overfit on a toy pattern (names such as "Putin" are ``PERSON``, "Moscow" is ``GPE``) so tests
can check that entities actually come out of the whole pipeline.
"""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import AutoTokenizer, BertForSequenceClassification, BertForTokenClassification

from src.data.words import word_spans
from src.features import IGNORE_INDEX, encode_ner
from src.labels import iob2_tags, seed_scheme

# the seed corpus's labels, which these tests' data uses
ENTITY_LABELS, STANCE_LABELS = seed_scheme().entity_labels, list(seed_scheme().stance_labels)

TOY_SENTENCES = [
    ("Putin met Kim in Moscow on Monday .", {"Putin": "PERSON", "Kim": "PERSON", "Moscow": "GPE"}),
    ("Vladimir Putin said the talks went well .", {"Putin": "PERSON"}),
    ("The visit to Moscow was planned for spring .", {"Moscow": "GPE"}),
    ("Analysts in Seoul said Putin wants weapons .", {"Putin": "PERSON", "Seoul": "GPE"}),
    ("Sanctions hurt trade between the two countries .", {}),
    ("Kim arrived by train and met officials .", {"Kim": "PERSON"}),
]


def toy_example(sentence: str, names: dict[str, str]) -> tuple[list[str], list[str]]:
    words = [sentence[s:e] for s, e in word_spans(sentence)]
    return words, [f"B-{names[w]}" if w in names else "O" for w in words]


def save_run(model: torch.nn.Module, tokenizer_dir: Path, run_dir: Path) -> Path:
    """Save ``model`` and the tokenizer as a run folder's ``model/`` (safetensors) and return the run folder."""
    model.save_pretrained(run_dir / "model")
    AutoTokenizer.from_pretrained(tokenizer_dir).save_pretrained(run_dir / "model")
    return run_dir


def build_ner_run(tiny_model_dir: Path, run_dir: Path, train_steps: int = 0) -> Path:
    """An NER run folder; with ``train_steps`` the head and encoder are overfit on ``TOY_SENTENCES``."""
    tags = iob2_tags(ENTITY_LABELS)
    label2id = {t: i for i, t in enumerate(tags)}
    torch.manual_seed(0)
    model = BertForTokenClassification.from_pretrained(
        tiny_model_dir, num_labels=len(tags), id2label=dict(enumerate(tags)), label2id=label2id
    )
    if train_steps:
        tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
        words, word_tags = zip(*(toy_example(s, names) for s, names in TOY_SENTENCES), strict=True)
        enc = encode_ner(tokenizer, words, word_tags, label2id, max_length=64, stride=16)
        batch = tokenizer.pad(
            {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}, return_tensors="pt"
        )
        width = batch["input_ids"].shape[1]
        labels = torch.tensor([row + [IGNORE_INDEX] * (width - len(row)) for row in enc["labels"]])
        optimizer = torch.optim.AdamW(model.parameters(), lr=5e-3)
        model.train()
        for _ in range(train_steps):
            optimizer.zero_grad()
            model(**batch, labels=labels).loss.backward()
            optimizer.step()
        model.eval()
    return save_run(model, tiny_model_dir, run_dir)


def random_head(model_class, tiny_model_dir: Path, labels: list[str] | tuple[str, ...]):
    """The tiny BERT with a seeded random classification head over ``labels``."""
    torch.manual_seed(0)
    return model_class.from_pretrained(
        tiny_model_dir,
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        label2id={label: i for i, label in enumerate(labels)},
    )


def build_stance_run(tiny_model_dir: Path, run_dir: Path) -> Path:
    """A stance run folder with a random head over ``STANCE_LABELS``."""
    return save_run(random_head(BertForSequenceClassification, tiny_model_dir, STANCE_LABELS), tiny_model_dir, run_dir)
