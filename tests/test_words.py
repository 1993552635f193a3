from hypothesis import given
from hypothesis import strategies as st

from src.data.words import spans_to_word_tags, word_spans, word_tags_to_spans


def test_word_spans_split_punctuation_and_possessive() -> None:
    text = "Kim’s North Korea-Russia trip."
    assert [text[s:e] for s, e in word_spans(text)] == ["Kim", "’", "s", "North", "Korea", "-", "Russia", "trip", "."]


def test_spans_to_tags_and_back() -> None:
    text = "I like London."
    words = word_spans(text)
    ents = [{"start": 7, "end": 13, "label": "GPE"}]
    tags = spans_to_word_tags(words, ents)
    assert tags == ["O", "O", "B-GPE", "O"]
    assert word_tags_to_spans(words, tags) == ents


def test_entity_inside_word_is_rejected() -> None:
    import pytest

    with pytest.raises(ValueError, match="word boundaries"):
        spans_to_word_tags(word_spans("Londoners"), [{"start": 0, "end": 6, "label": "GPE"}])


def test_strict_drops_dangling_inside_tag() -> None:
    words = word_spans("a b c")
    assert word_tags_to_spans(words, ["I-X", "I-X", "B-Y"]) == [{"start": 4, "end": 5, "label": "Y"}]


@given(
    st.lists(
        st.tuples(st.sampled_from(["w", "Ab", "x-y", ",", "’s"]), st.sampled_from(["O", "PER", "LOC"])), max_size=12
    )
)
def test_round_trip_property(pieces: list[tuple[str, str]]) -> None:
    # Build a text and entity spans over whole words, then check spans -> tags -> spans is the identity.
    text, ents = "", []
    for piece, label in pieces:
        start = len(text)
        text += piece + " "
        if label != "O" and all(c.isalnum() for c in piece):
            ents.append({"start": start, "end": start + len(piece), "label": label})
    words = word_spans(text)
    assert word_tags_to_spans(words, spans_to_word_tags(words, ents)) == ents


def test_decomposed_accents_and_joiners_stay_inside_words() -> None:
    text = "Jose\u0301 flew to Montre\u0301al; Pu\u200dtin and Mi\u200cha stayed."
    words = word_spans(text)
    assert [text[s:e] for s, e in words] == [
        "Jose\u0301",
        "flew",
        "to",
        "Montre\u0301al",
        ";",
        "Pu\u200dtin",
        "and",
        "Mi\u200cha",
        "stayed",
        ".",
    ]
    assert words[0] == (0, 5) and words[3] == (14, 23)  # offsets index the original (decomposed) string
    ents = [{"start": 0, "end": 5, "label": "PERSON"}, {"start": 14, "end": 23, "label": "GPE"}]
    assert word_tags_to_spans(words, spans_to_word_tags(words, ents)) == ents


@given(st.text(alphabet="aeouAEÅéüñçàôİ -.’\u200d", max_size=30))
def test_decomposed_text_has_the_words_of_the_composed_text(text: str) -> None:
    import unicodedata

    nfc, nfd = unicodedata.normalize("NFC", text), unicodedata.normalize("NFD", text)
    composed = [nfc[s:e] for s, e in word_spans(nfc)]
    decomposed = [unicodedata.normalize("NFC", nfd[s:e]) for s, e in word_spans(nfd)]
    assert decomposed == composed
