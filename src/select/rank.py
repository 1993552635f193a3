"""Uncertainty of the models' decisions per sentence and a diverse top k of sentences (greedy MMR).

Score of a sentence (every probability is the Predictor's, calibrated where the model folder has a temperature):
each task says how unsure its model is of the sentence (``Task.uncertainty``: for stance ``1 - (p1 - p2)``, the
margin between the two most probable stances; for NER ``1 - min_w p(tag_w)``, the least sure word's tag probability,
entity or ``O``, so a sentence whose entity was missed scores too), and ``u`` is the largest over the models given:
the sentence's least sure decision.

Selection is greedy maximal marginal relevance: each step takes the sentence maximising
``(1 - d) * u_i - d * max_{j chosen} cos(v_i, v_j)`` (``d`` = ``diversity``, default 0.3), where ``v`` is the
sentence's TF-IDF vector (word 1-2-grams fitted on the candidates). TF-IDF rather than the stance encoder's
embeddings: it needs no model pass, is exactly deterministic, and what it catches is what wastes labels in news:
the same wire sentence reprinted by several outlets (cosine 1). Ties go to the earlier candidate.

EXAMPLE: ``mmr([0.9, 0.9, 0.5], ["Kim met Putin.", "Kim met Putin.", "Trade grew."], k=2)`` -> ``[0, 2]``
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

DIVERSITY = 0.3


def sentence_uncertainty(parts: Sequence[tuple[float, str]]) -> tuple[float, str]:
    """The largest of the tasks' ``(uncertainty, why)``; the why lists the driving task first.

    EXAMPLE: ``sentence_uncertainty([(0.2, "stance ..."), (0.4, "NER ...")]) -> (0.4, "NER ...; stance ...")``
    """
    ordered = sorted((part for part in parts if part[1]), key=lambda part: -part[0])
    if not ordered:
        return 0.0, ""
    return ordered[0][0], "; ".join(why for _, why in ordered)


def tfidf_vectors(texts: Sequence[str]):
    """L2-normalised TF-IDF rows (word 1-2-grams, sublinear tf), so a dot product is the cosine."""
    from scipy.sparse import csr_matrix  # seconds to import with scikit-learn: usage errors come first
    from sklearn.feature_extraction.text import TfidfVectorizer

    vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, token_pattern=r"(?u)\b\w+\b")
    try:
        return vectorizer.fit_transform(texts)
    except ValueError:  # no word at all in any text: every pair is unrelated
        return csr_matrix((len(texts), 1))


def mmr(
    uncertainty: Sequence[float], texts: Sequence[str], k: int, diversity: float = DIVERSITY
) -> list[tuple[int, float]]:
    """Greedy MMR: ``[(candidate index, max cosine to the earlier picks)]``, best first, ``min(k, n)`` long.

    EXAMPLE: ``[i for i, _ in mmr([0.9, 0.9, 0.5], ["Kim met Putin.", "Kim met Putin.", "Trade grew."], k=2)]``
    -> ``[0, 2]``
    """
    if not 0.0 <= diversity <= 1.0:
        raise ValueError(f"diversity must be between 0 and 1, got {diversity}")
    n = len(texts)
    if n != len(uncertainty):
        raise ValueError(f"{len(uncertainty)} uncertainties for {n} texts")
    if n == 0 or k <= 0:
        return []
    vectors = tfidf_vectors(texts)
    relevance = (1.0 - diversity) * np.asarray(uncertainty, dtype=np.float64)
    closest = np.zeros(n)  # max cosine of each candidate to the picks so far
    taken = np.zeros(n, dtype=bool)
    picks = []
    for _ in range(min(k, n)):
        gain = np.where(taken, -np.inf, relevance - diversity * closest)
        best = int(np.argmax(gain))  # the first of equal gains: deterministic
        picks.append((best, float(closest[best])))
        taken[best] = True
        similarity = np.asarray((vectors @ vectors[best].T).todense()).ravel()
        closest = np.maximum(closest, similarity)
    return picks
