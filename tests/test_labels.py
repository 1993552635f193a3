import itertools

import numpy as np
import pytest

from src.labels import MIXED, LabelScheme, decode_iob2, doc_stance, iob2_allowed, iob2_tags, repair_iob2, seed_scheme


def test_doc_stance_majority_tie_and_neutral() -> None:
    assert doc_stance(["neutral", "leverage", "leverage", "economic_cooperation"], "neutral") == "leverage"
    assert doc_stance(["leverage", "economic_cooperation", "neutral"], "neutral") == MIXED
    assert doc_stance(["neutral", "neutral"], "neutral") == "neutral"
    assert doc_stance([], "neutral") == "neutral"


def test_iob2_tags_order() -> None:
    assert iob2_tags(["PER", "LOC"]) == ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]


def valid_iob2(tags: list[str]) -> bool:
    return all(
        not t.startswith("I-") or (prev != "O" and prev[2:] == t[2:])
        for prev, t in zip(["O", *tags[:-1]], tags, strict=True)
    )


def test_decode_iob2_is_the_best_valid_sequence() -> None:
    """Against an exhaustive search over every tag sequence of short sentences with random log-probabilities."""
    tags = iob2_tags(["PER", "ORG"])
    rng = np.random.default_rng(0)
    for n in (1, 2, 3, 4):
        for _ in range(20):
            log_probs = np.log(rng.dirichlet(np.ones(len(tags)), size=n))
            decided = [tags[k] for k in decode_iob2(log_probs, tags)]
            best = max(
                (seq for seq in itertools.product(range(len(tags)), repeat=n) if valid_iob2([tags[k] for k in seq])),
                key=lambda seq: sum(log_probs[i, k] for i, k in enumerate(seq)),
            )
            assert valid_iob2(decided) and decided == [tags[k] for k in best]


def test_decode_iob2_keeps_a_name_whole_where_argmax_splits_it() -> None:
    """ "Hanoi summit": the first word leans GPE, the second is surely inside an EVENT. Word-wise argmax (repaired)
    gives two fragments; the valid path gives the EVENT."""
    tags = iob2_tags(["GPE", "EVENT"])  # O, B-GPE, I-GPE, B-EVENT, I-EVENT
    probs = np.array([[0.02, 0.50, 0.02, 0.44, 0.02], [0.02, 0.02, 0.02, 0.02, 0.92]])
    assert repair_iob2([tags[k] for k in probs.argmax(1)]) == ["B-GPE", "B-EVENT"]
    assert [tags[k] for k in decode_iob2(np.log(probs), tags)] == ["B-EVENT", "I-EVENT"]
    assert decode_iob2(np.zeros((0, len(tags))), tags) == []


def test_iob2_allowed_transitions() -> None:
    start, follows = iob2_allowed(("O", "B-X", "I-X", "B-Y", "I-Y"))
    assert start.tolist() == [True, True, False, True, False]
    assert follows[1, 2] and follows[2, 2] and not follows[0, 2] and not follows[3, 2] and follows[2, 3]


def test_decode_iob2_reads_logits_as_log_probabilities() -> None:
    """Callers pass raw logits: a constant added to a word's row never changes the decided path."""
    tags = iob2_tags(["PER", "ORG"])
    logits = np.random.default_rng(1).normal(size=(12, len(tags)))
    shifted = logits + np.random.default_rng(2).normal(size=(12, 1)) * 5
    assert decode_iob2(logits, tags) == decode_iob2(shifted, tags)


def test_label_scheme_of_a_data_config() -> None:
    data = {"entity_labels": ["PER"], "stance_labels": ["pressure", "none"], "stance_none_label": "none"}
    scheme = LabelScheme.from_config(data)
    assert scheme == LabelScheme(("PER",), ("pressure", "none"), "none") and scheme.framing_labels == ("pressure",)
    with pytest.raises(ValueError, match="mine: stance_none_label 'neutral' is not one of"):
        LabelScheme.from_config({**data, "stance_none_label": "neutral"}, "mine")
    with pytest.raises(ValueError, match="stance_none_label is missing"):
        LabelScheme.from_config({k: v for k, v in data.items() if k != "stance_none_label"})
    # a run config from before the key: the folders' rule (neutral if a label, else the last)
    assert LabelScheme.from_config({"stance_labels": ["a", "b"]}, legacy=True).none_label == "b"
    assert LabelScheme.from_config({"entity_labels": ["PER"]}).none_label is None  # NER only: no stances
    assert seed_scheme().none_label == "neutral" and "leverage" in seed_scheme().stance_labels
    assert seed_scheme().sentence_layers == {}


@pytest.mark.parametrize(
    ("layers", "message"),
    [
        ({"quote": []}, "sentence_labels.quote must be a non-empty list"),
        ({"quote": "yes"}, "sentence_labels.quote must be a non-empty list"),
        ({"quote": [False, True]}, "quote them"),  # YAML's unquoted no / yes
        ({"stance": ["a"]}, "key 'stance' must be a name other than"),
        ({"two words": ["a"]}, "key 'two words' must be a name"),
        (["quote"], "sentence_labels must map a sentence key to its labels"),
    ],
)
def test_sentence_labels_of_a_data_config(layers: object, message: str) -> None:
    data = {"stance_labels": ["pressure", "none"], "stance_none_label": "none"}
    assert LabelScheme.from_config(data | {"sentence_labels": {"quote": ["no", "yes"]}}).sentence_layers == {
        "quote": ("no", "yes")
    }
    with pytest.raises(ValueError, match=f"mine: {message}" if message.startswith("sentence") else message):
        LabelScheme.from_config(data | {"sentence_labels": layers}, "mine")
