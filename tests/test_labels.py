from src.labels import MIXED, doc_stance, iob2_tags


def test_doc_stance_majority_tie_and_neutral() -> None:
    assert doc_stance(["neutral", "leverage", "leverage", "economic_cooperation"]) == "leverage"
    assert doc_stance(["leverage", "economic_cooperation", "neutral"]) == MIXED
    assert doc_stance(["neutral", "neutral"]) == "neutral"
    assert doc_stance([]) == "neutral"


def test_iob2_tags_order() -> None:
    assert iob2_tags(["PER", "LOC"]) == ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
