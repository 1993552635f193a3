"""Label sets of a corpus (data/GUIDELINES.md for the seeds) and the labels derived from them.

A corpus names its labels in its data config (``configs/data/*.yaml``: ``entity_labels``, ``stance_labels`` and
``stance_none_label``, the stance that frames nothing); ``LabelScheme.from_config`` reads them. Tools run without a
config use ``seed_scheme()``, read from ``configs/data/seeds.yaml`` on first use, never at import.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf

SEED_CONFIG = Path(__file__).resolve().parents[1] / "configs" / "data" / "seeds.yaml"
MIXED = "mixed"  # the document stance on a tie between framing labels (never a sentence label)
LEGACY_NONE_LABEL = "neutral"  # the 'no frame' label of folders and run configs written before it was recorded
# Keys of a sentence that a sentence layer of another task must not take (record format: data/GUIDELINES.md).
SENTENCE_KEYS = frozenset({"start", "end", "text", "stance", "scores", "low_score", "error"})


@dataclass(frozen=True)
class LabelScheme:
    """A corpus's labels: entity types, sentence stances and the stance that frames nothing (None without stances),
    and the label sets of other tasks' sentence layers (a plug-in sentence classifier: sentence key -> labels)."""

    entity_labels: tuple[str, ...]
    stance_labels: tuple[str, ...]
    none_label: str | None
    sentence_layers: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @classmethod
    def from_config(cls, data: Mapping, where: str = "data config", *, legacy: bool = False) -> LabelScheme:
        """The scheme of a data config (a dict or DictConfig). ``stance_none_label`` must be one of
        ``stance_labels``; with ``legacy`` (a run config written before the key existed) a missing one is
        ``none_label_of(stance_labels)``.

        EXAMPLE: ``from_config({"entity_labels": ["PER"], "stance_labels": ["pro", "none"],
        "stance_none_label": "none"}).none_label -> "none"``
        """
        entity = tuple(str(x) for x in data.get("entity_labels") or ())
        stance = tuple(str(x) for x in data.get("stance_labels") or ())
        none = data.get("stance_none_label")
        if none is None and stance:
            if not legacy:
                raise ValueError(
                    f"{where}: stance_none_label is missing; name the stance of {list(stance)} that frames nothing"
                )
            none = none_label_of(stance)
        if none is not None and none not in stance:
            raise ValueError(f"{where}: stance_none_label {none!r} is not one of stance_labels {list(stance)}")
        return cls(entity, stance, none, sentence_layers_of(data.get("sentence_labels"), where))

    @property
    def checked_labels(self) -> dict:
        """The keywords of the validating loaders (``load_records``, ``validate_text``) for this scheme's labels."""
        return {
            "entity_labels": self.entity_labels,
            "stance_labels": self.stance_labels,
            "sentence_layers": self.sentence_layers,
        }

    @property
    def framing_labels(self) -> tuple[str, ...]:
        """The stance labels that frame something (all but the none label)."""
        return tuple(label for label in self.stance_labels if label != self.none_label)


def sentence_layers_of(value: object, where: str = "data config") -> dict[str, tuple[str, ...]]:
    """A data config's ``sentence_labels`` (a sentence key per plug-in task -> its labels) checked: each key a name
    that is no built-in sentence key, each label list non-empty strings.

    EXAMPLE: ``sentence_layers_of({"quote": ["no", "yes"]}) -> {"quote": ("no", "yes")}``
    """
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ValueError(f"{where}: sentence_labels must map a sentence key to its labels, got {value!r}")
    layers = {}
    for key, labels in value.items():
        if not isinstance(key, str) or not key.isidentifier() or key in SENTENCE_KEYS:
            raise ValueError(
                f"{where}: sentence_labels key {key!r} must be a name other than {', '.join(sorted(SENTENCE_KEYS))}"
            )
        if isinstance(labels, str) or not isinstance(labels, Sequence) or not labels:
            raise ValueError(f"{where}: sentence_labels.{key} must be a non-empty list of labels, got {labels!r}")
        if not all(isinstance(x, str) and x for x in labels):
            hint = (
                " (YAML reads yes / no / on / off as booleans: quote them)"
                if any(x in (True, False) for x in labels)
                else ""
            )
            raise ValueError(
                f"{where}: sentence_labels.{key} must be label names (strings), got {list(labels)!r}{hint}"
            )
        layers[key] = tuple(labels)
    return layers


def layer_scores(sentence: Mapping, key: str) -> Mapping[str, float]:
    """A sentence's scores in the sentence layer ``key`` (``KEY_scores``, what a plug-in's ``fill`` writes beside
    its label); empty when it has none.

    EXAMPLE: ``layer_scores({"quote": "yes", "quote_scores": {"yes": 0.9, "no": 0.1}}, "quote")["yes"] -> 0.9``
    """
    return sentence.get(f"{key}_scores") or {}


def none_label_of(stance_labels: Sequence[str]) -> str:
    """The 'no frame' label of a model folder or run config that does not record one: ``neutral`` (the seed
    scheme's, which every such folder was trained on) if it is a label, else the last label."""
    return LEGACY_NONE_LABEL if LEGACY_NONE_LABEL in stance_labels else stance_labels[-1]


@functools.cache
def seed_scheme() -> LabelScheme:
    """The seed corpus's scheme (``configs/data/seeds.yaml``), read once on first use."""
    return LabelScheme.from_config(OmegaConf.load(SEED_CONFIG), str(SEED_CONFIG))


def iob2_tags(entity_labels: Sequence[str]) -> list[str]:
    """Tag inventory for token classification: ``O`` then ``B-X``/``I-X`` per type, in a stable order.

    EXAMPLE: ``iob2_tags(["PER"]) -> ["O", "B-PER", "I-PER"]``
    """
    return ["O"] + [f"{prefix}-{label}" for label in entity_labels for prefix in ("B", "I")]


def repair_iob2(tags: Sequence[str]) -> list[str]:
    """Read tags leniently as IOB2: an ``I-X`` that does not continue an ``X`` entity starts one (``B-X``).

    For predictions (a model often gets the first word of a name wrong and the rest right) and for IOB1 files
    such as some CoNLL copies; gold records are read strictly (``word_tags_to_spans``).

    EXAMPLE: ``repair_iob2(["O", "I-PER", "I-PER", "I-ORG"]) -> ["O", "B-PER", "I-PER", "B-ORG"]``
    """
    repaired, previous = [], "O"
    for tag in tags:
        if tag.startswith("I-") and previous[2:] != tag[2:]:
            tag = "B-" + tag[2:]
        repaired.append(tag)
        previous = tag
    return repaired


@functools.lru_cache(maxsize=16)
def iob2_allowed(tags: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """``(start [tags], transition [previous, next])``: whether a tag may open a sentence or follow another in
    strict IOB2 (``I-X`` only after ``B-X`` or ``I-X``). Cached: one tag set serves every sentence."""
    start = np.array([not t.startswith("I-") for t in tags])
    follows = np.array([[not b.startswith("I-") or (a != "O" and a[2:] == b[2:]) for b in tags] for a in tags])
    return start, follows


def decode_iob2(log_probs: np.ndarray, tags: Sequence[str]) -> list[int]:
    """The most probable tag sequence that is valid IOB2 (Viterbi over per-word scores ``[words, tags]``: logits or
    log-probabilities alike, since a constant per word never changes the path).

    Word-by-word argmax breaks a name wherever one inner word is unsure ("Institute of | Far Eastern Studies",
    "Hanoi | summit" as GPE + EVENT); here every word of a span votes for one type. Leave-one-article-out CV on the
    seeds: docs/results.md.

    EXAMPLE: log-probs favouring ``B-ORG, O, I-ORG`` -> ``B-ORG, O, O`` or ``B-ORG, I-ORG, I-ORG``, never a stray ``I-``
    """
    if len(log_probs) == 0:
        return []
    start, follows = iob2_allowed(tuple(tags))
    transition = np.where(follows, 0.0, -np.inf)
    score = np.where(start, log_probs[0], -np.inf)
    back = np.zeros(log_probs.shape, dtype=int)
    for i in range(1, len(log_probs)):
        candidates = score[:, None] + transition
        back[i] = candidates.argmax(axis=0)
        score = candidates.max(axis=0) + log_probs[i]
    path = [int(score.argmax())]
    for i in range(len(log_probs) - 1, 0, -1):
        path.append(int(back[i, path[-1]]))
    return path[::-1]


def doc_stance(sentence_stances: Iterable[str], none_label: str) -> str:
    """Document stance as the guideline derives it: the majority label other than ``none_label``, ``mixed`` on a tie,
    ``none_label`` when no sentence frames anything.

    EXAMPLE: ``doc_stance(["none", "pro"], "none") -> "pro"``; ``doc_stance([], "none") -> "none"``
    """
    counts = Counter(s for s in sentence_stances if s != none_label)
    if not counts:
        return none_label
    (top, n), *rest = counts.most_common()
    if rest and rest[0][1] == n:
        return MIXED
    return top
