"""Model inputs from examples: sub-word windows for NER and stance, and the way back from windows to words.

Both tasks split an input longer than ``max_length`` into overlapping windows (the fast tokenizer's
``return_overflowing_tokens`` with ``stride``) instead of truncating it, so no text is silently dropped.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from transformers import PreTrainedTokenizerFast

IGNORE_INDEX = -100  # label of sub-tokens that the loss and the metrics skip


def encode_ner(
    tokenizer: PreTrainedTokenizerFast,
    words: Sequence[Sequence[str]],
    tags: Sequence[Sequence[str]] | None,
    label2id: dict[str, int],
    max_length: int,
    stride: int,
) -> dict[str, list]:
    """Windows over word-split sentences; the first sub-token of each word carries its tag, the rest ``-100``.

    Returns ``input_ids``, ``attention_mask``, ``word_ids`` (word index per token, ``-1`` for special tokens),
    ``example_index`` (which sentence the window came from) and, when ``tags`` is given, ``labels``.
    """
    enc = tokenizer(
        [list(w) for w in words],
        is_split_into_words=True,
        truncation=True,
        max_length=max_length,
        stride=stride,
        return_overflowing_tokens=True,
    )
    out: dict[str, list] = {"input_ids": [], "attention_mask": [], "word_ids": [], "example_index": []}
    if tags is not None:
        out["labels"] = []
    for window, example in enumerate(enc["overflow_to_sample_mapping"]):
        word_ids = enc.word_ids(window)
        out["input_ids"].append(enc["input_ids"][window])
        out["attention_mask"].append(enc["attention_mask"][window])
        out["word_ids"].append([-1 if w is None else w for w in word_ids])
        out["example_index"].append(example)
        if tags is not None:
            labels, previous = [], None
            for w in word_ids:
                first = w is not None and w != previous
                labels.append(label2id[tags[example][w]] if first else IGNORE_INDEX)
                previous = w
            out["labels"].append(labels)
    return out


def encode_stance(
    tokenizer: PreTrainedTokenizerFast,
    texts: Sequence[str],
    labels: Sequence[str] | None,
    label2id: dict[str, int],
    max_length: int,
    stride: int,
    contexts: Sequence[str | None] | None = None,
) -> dict[str, list]:
    """Windows over sentences for classification; every window of a sentence carries the sentence's label.

    With ``contexts`` each sentence is the first segment of a text pair and its context the second; the context is
    cut first when the pair is too long (``only_second``), and a sentence too long to leave room for any of it is
    read alone in windows as without context.
    """
    if contexts is None or all(c is None for c in contexts):
        enc = tokenizer(
            list(texts), truncation=True, max_length=max_length, stride=stride, return_overflowing_tokens=True
        )
        mapping = list(enc["overflow_to_sample_mapping"])
        ids, masks = enc["input_ids"], enc["attention_mask"]
    else:
        ids, masks, mapping = [], [], []
        room = max_length - tokenizer.num_special_tokens_to_add(pair=True) - 8  # at least a few context tokens
        lengths = tokenizer(list(texts), add_special_tokens=False)["input_ids"]
        for i, (text, context) in enumerate(zip(texts, contexts, strict=True)):
            if context and len(lengths[i]) <= room:
                enc = tokenizer(text, context, truncation="only_second", max_length=max_length)
                ids.append(enc["input_ids"])
                masks.append(enc["attention_mask"])
                mapping.append(i)
            else:
                alone = encode_stance(tokenizer, [text], None, label2id, max_length, stride)
                ids.extend(alone["input_ids"])
                masks.extend(alone["attention_mask"])
                mapping.extend([i] * len(alone["input_ids"]))
    out: dict[str, list] = {"input_ids": ids, "attention_mask": masks, "example_index": mapping}
    if labels is not None:
        out["labels"] = [label2id[labels[i]] for i in mapping]
    return out


def words_from_windows(
    logits: Sequence[np.ndarray],
    word_ids: Sequence[Sequence[int]],
    example_index: Sequence[int],
    n_words: Sequence[int],
) -> list[np.ndarray]:
    """Per-word logits for each example from its windows' token logits.

    A word is decided by its first sub-token; when overlapping windows both hold that sub-token, the window in
    which it sits farthest from an edge wins (it saw the most context). Words without any sub-token (characters
    the tokenizer drops) get all-zero logits and are decided as the first label (``O``) by the caller.
    """
    n_labels = logits[0].shape[-1] if len(logits) else 0
    result = [np.zeros((n, n_labels), dtype=np.float32) for n in n_words]
    best_margin = [np.full(n, -1, dtype=np.int64) for n in n_words]
    for window_logits, ids, example in zip(logits, word_ids, example_index, strict=True):
        length = sum(1 for w in ids if w >= 0)
        previous, position = None, 0
        for t, w in enumerate(ids):
            if w < 0:
                continue
            position += 1
            if w != previous:
                margin = min(position, length - position + 1)
                if margin > best_margin[example][w]:
                    best_margin[example][w] = margin
                    result[example][w] = window_logits[t]
            previous = w
    return result


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def per_example_mean(rows: np.ndarray, example_index: Sequence[int], n: int) -> np.ndarray:
    """The mean of each example's window rows (a sentence longer than one window has several)."""
    sums = np.zeros((n, rows.shape[1] if rows.ndim == 2 else 0), dtype=np.float64)
    counts = np.zeros(n)
    for window, example in enumerate(example_index):
        sums[example] += rows[window]
        counts[example] += 1
    return sums / np.maximum(counts, 1)[:, None]
