"""``--min-score`` / ``--flag-below``: what a prediction record keeps of the low-confidence results.

An entity's score is its own; a sentence's is the probability of its predicted stance. Below ``min_score`` an entity
is dropped and a sentence's stance becomes null (the sentence and its ``scores`` stay, so offsets and coverage do
not change); below ``flag_below`` the result stays and gets ``"low_score": true``. The document stance is derived
again from the stances that are left (the guideline's rule with the stance model's none label, ignoring null
stances).
"""

from __future__ import annotations

from src.labels import doc_stance


def stance_score(sentence: dict) -> float | None:
    """The probability of the sentence's predicted stance, or None when it has none."""
    stance = sentence.get("stance")
    return None if stance is None else (sentence.get("scores") or {}).get(stance)


def apply_thresholds(
    prediction: dict, min_score: float | None = None, flag_below: float | None = None, none_label: str | None = None
) -> dict:
    """A copy of ``prediction`` with entities and stances under ``min_score`` dropped and those under ``flag_below``
    flagged ``"low_score": true``; error records and calls with neither threshold come back unchanged.
    ``none_label``: the stance model's label that frames nothing (``Predictor.stance.none_label``), needed when the
    record has a document stance.

    EXAMPLE: an entity scored 0.4 with ``min_score=0.5`` is dropped; with ``flag_below=0.5`` it gets ``low_score``.
    """
    if "error" in prediction or (min_score is None and flag_below is None):
        return prediction

    def below(score: float | None, threshold: float | None) -> bool:
        return threshold is not None and score is not None and score < threshold

    entities = []
    for entity in prediction.get("entities", []):
        if below(entity.get("score"), min_score):
            continue
        entities.append({**entity, "low_score": True} if below(entity.get("score"), flag_below) else entity)
    sentences = []
    for sentence in prediction.get("sentences", []):
        score = stance_score(sentence)
        if below(score, min_score):
            sentence = {**sentence, "stance": None}
        elif below(score, flag_below):
            sentence = {**sentence, "low_score": True}
        sentences.append(sentence)
    result = {**prediction, "entities": entities, "sentences": sentences}
    if prediction.get("doc_stance") is not None:  # None: no stance model, nothing to derive
        if none_label is None:
            raise ValueError("apply_thresholds: a record with a document stance needs the stance model's none_label")
        result["doc_stance"] = doc_stance((s["stance"] for s in sentences if s["stance"] is not None), none_label)
    return result
