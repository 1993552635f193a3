"""Evaluation: hand-computed metrics (seqeval strict IOB2 pitfalls included), the schema, reports, baselines, CV."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from src.data.words import word_spans, word_tags_to_spans
from src.evaluate import CVError, evaluate_predictions, write_cv, write_evaluation
from src.evaluate.__main__ import main
from src.labels import seed_scheme
from src.tasks import StanceTask
from src.tasks.ner import dictionary_ner, seqeval_scores, snap_to_words, span_match_scores
from src.tasks.stance import majority_stance, tfidf_logreg_stance

SEED = seed_scheme()  # the seed corpus's labels, which these tests' data uses

# ---------------------------------------------------------------- builders


def make_record(doc_id: str, sentences: list[tuple[str, str | None, list[tuple[str, str]]]]) -> dict:
    """A record from (sentence text, stance, [(entity substring, label), ...]) lines joined by newlines; each
    entity substring is found left to right within its sentence."""
    text, ents, sents = "", [], []
    for i, (sentence, stance, entities) in enumerate(sentences):
        start = len(text) + (1 if i else 0)
        text += ("\n" if i else "") + sentence
        sents.append({"start": start, "end": start + len(sentence), "stance": stance})
        pos = 0
        for surface, label in entities:
            at = sentence.index(surface, pos)
            ents.append({"start": start + at, "end": start + at + len(surface), "label": label})
            pos = at + len(surface)
    return {"id": doc_id, "text": text, "entities": ents, "sentences": sents}


def prediction(gold: dict, entities: list[dict] | None = None, stances: list[str] | None = None) -> dict:
    """A prediction record on ``gold``'s sentences."""
    stances = stances if stances is not None else [s["stance"] or "neutral" for s in gold["sentences"]]
    sents = [
        {"start": s["start"], "end": s["end"], "text": gold["text"][s["start"] : s["end"]], "stance": y, "scores": {}}
        for s, y in zip(gold["sentences"], stances, strict=True)
    ]
    ents = [{**e, "text": gold["text"][e["start"] : e["end"]], "score": 1.0} for e in (entities or [])]
    return {"id": gold["id"], "entities": ents, "sentences": sents, "doc_stance": "neutral"}


def ent(record: dict, surface: str, label: str, nth: int = 0) -> dict:
    at = -1
    for _ in range(nth + 1):
        at = record["text"].index(surface, at + 1)
    return {"start": at, "end": at + len(surface), "label": label}


def word_level_counts(y_true: list[list[str]], y_pred: list[list[str]]) -> dict:
    """Character-span matching on the spans that word_tags_to_spans reads from the tags (words = positions)."""
    gold, pred = [], []
    for n, (t, p) in enumerate(zip(y_true, y_pred, strict=True)):
        words = [(i, i + 1) for i in range(len(t))]
        gold += [(str(n), e["start"], e["end"], e["label"]) for e in word_tags_to_spans(words, t)]
        pred += [(str(n), e["start"], e["end"], e["label"]) for e in word_tags_to_spans(words, p)]
    return span_match_scores(gold, pred)


# ---------------------------------------------------------------- seqeval strict IOB2 pitfalls


def test_i_after_o_is_no_entity_in_strict_mode():
    # gold: one PER; pred: "I-PER" after O, which strict IOB2 does not read as an entity -> nothing predicted
    _, micro, _ = seqeval_scores([["O", "B-PER", "O"]], [["O", "I-PER", "O"]])
    assert micro == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    assert word_level_counts([["O", "B-PER", "O"]], [["O", "I-PER", "O"]])["micro"]["fp"] == 0


def test_b_after_i_of_same_type_starts_a_second_entity():
    gold = [["B-GPE", "I-GPE", "B-GPE", "O"]]  # "North Korea", "Russia": two GPEs
    merged = [["B-GPE", "I-GPE", "I-GPE", "O"]]  # one 3-word GPE: matches neither
    _, micro, _ = seqeval_scores(gold, merged)
    assert (micro["precision"], micro["recall"], micro["support"]) == (0.0, 0.0, 2)
    _, micro, _ = seqeval_scores(gold, gold)
    assert (micro["f1"], micro["support"]) == (1.0, 2)
    half = [["B-GPE", "I-GPE", "O", "O"]]
    _, micro, _ = seqeval_scores(gold, half)
    assert (micro["precision"], micro["recall"]) == (1.0, 0.5)
    assert micro["f1"] == pytest.approx(2 / 3)


def test_entities_at_sentence_ends_do_not_join_across_sentences():
    gold = [["O", "B-GPE"], ["B-GPE", "O"]]
    pred = [["O", "B-GPE"], ["I-GPE", "O"]]  # I- at a sentence start continues nothing
    per_label, micro, _ = seqeval_scores(gold, pred)
    assert (micro["precision"], micro["recall"], micro["support"]) == (1.0, 0.5, 2)
    assert per_label["GPE"]["f1"] == pytest.approx(2 / 3)
    assert word_level_counts(gold, pred)["micro"] == {
        "tp": 1, "fp": 0, "fn": 1, "precision": 1.0, "recall": 0.5, "f1": pytest.approx(2 / 3)
    }  # fmt: skip


def test_no_entities_anywhere_gives_zeros_not_nan():
    per_label, micro, macro = seqeval_scores([["O", "O"]], [["O", "O"]])
    assert per_label == {} and micro["f1"] == 0.0 and macro["f1"] == 0.0


TAG = st.sampled_from(["O", "B-PER", "I-PER", "B-GPE", "I-GPE", "B-ORG", "I-ORG"])
SEQS = st.lists(st.lists(st.tuples(TAG, TAG), min_size=1, max_size=8), min_size=1, max_size=5)


@settings(max_examples=150, deadline=None)
@given(SEQS)
def test_span_matching_agrees_with_seqeval_on_any_tags(seqs):
    y_true = [[t for t, _ in s] for s in seqs]
    y_pred = [[p for _, p in s] for s in seqs]
    per_label, micro, _ = seqeval_scores(y_true, y_pred)
    spans = word_level_counts(y_true, y_pred)
    for label, row in per_label.items():
        mine = spans["per_label"][label]
        assert row["support"] == mine["tp"] + mine["fn"]
        assert row["f1"] == pytest.approx(mine["f1"])
        assert row["precision"] == pytest.approx(mine["precision"])
    assert micro["f1"] == pytest.approx(spans["micro"]["f1"])
    assert set(per_label) == set(spans["per_label"])


# ---------------------------------------------------------------- NER on records


@pytest.fixture
def ner_gold() -> dict:
    return make_record(
        "a",
        [
            ("Kim met Putin in Moscow", "neutral", [("Kim", "PERSON"), ("Putin", "PERSON"), ("Moscow", "GPE")]),
            ("North Korea-Russia ties grew in April.", "economic_cooperation",
             [("North Korea", "GPE"), ("Russia", "GPE"), ("April", "DATE")]),
        ],
    )  # fmt: skip


def test_ner_metrics_hand_computed(ner_gold):
    g = ner_gold
    pred = prediction(
        g,
        [
            ent(g, "Kim", "PERSON"),  # tp
            ent(g, "Putin", "ORG"),  # wrong type: fp ORG + fn PERSON
            {"start": ent(g, "Moscow", "GPE")["start"] + 1, "end": ent(g, "Moscow", "GPE")["end"] - 1,
             "label": "GPE"},  # "osco": snapped out to "Moscow" at the sentence end -> tp
            {"start": ent(g, "North Korea", "GPE")["start"], "end": ent(g, "Russia", "GPE")["end"],
             "label": "GPE"},  # one span over two gold GPEs -> fp, and 2 fn
            ent(g, "ties", "DATE"),  # fp DATE
        ],
    )  # fmt: skip
    m = evaluate_predictions("ner", [g], [pred])
    # PERSON: gold 2, 1 right; GPE: gold 3, pred 2, tp 1; ORG: gold 0, pred 1; DATE: gold 1, pred 1 wrong
    assert m["per_label"]["PERSON"] == {"precision": 1.0, "recall": 0.5, "f1": pytest.approx(2 / 3), "support": 2}
    assert m["per_label"]["GPE"] == {"precision": 0.5, "recall": pytest.approx(1 / 3), "f1": 0.4, "support": 3}
    assert m["per_label"]["ORG"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    assert m["per_label"]["DATE"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    # micro: tp 2, pred 5, gold 6
    assert m["micro"]["precision"] == pytest.approx(2 / 5)
    assert m["micro"]["recall"] == pytest.approx(2 / 6)
    assert m["micro"]["f1"] == pytest.approx(2 * 0.4 * (1 / 3) / (0.4 + 1 / 3))
    assert m["macro"]["f1"] == pytest.approx((2 / 3 + 0.4) / 4)
    assert m["span_match"]["micro"]["tp"] == 2 and m["span_match"]["micro"]["fp"] == 3
    assert m["span_match"]["agrees_with_seqeval"] is True
    assert m["headline"] == {"name": "micro_f1", "value": m["micro"]["f1"]}
    assert (m["n_gold"], m["n_predicted"], m["n_sentences"]) == (6, 5, 2)


def test_snap_to_words_and_overlaps():
    words = word_spans("I like London.")
    assert snap_to_words(words, 8, 12) == (7, 13)
    assert snap_to_words(words, 1, 2) is None  # only whitespace
    assert snap_to_words(words, 3, 9) == (2, 13)


def test_prediction_must_cover_the_gold_documents(ner_gold):
    with pytest.raises(ValueError, match=r"no prediction for gold documents \['a'\]"):
        evaluate_predictions("ner", [ner_gold], [])
    with pytest.raises(ValueError, match="error field"):
        evaluate_predictions("ner", [ner_gold], [{**prediction(ner_gold), "error": {"reason": "x"}}])
    with pytest.raises(ValueError, match=r"task=.pos.: expected one of ner, stance"):
        evaluate_predictions("pos", [ner_gold], [prediction(ner_gold)])


WORDS = st.lists(st.sampled_from(["Kim", "met", "Putin", "in", "Moscow", "-", ".", "April"]), min_size=1, max_size=12)
LABELS = st.sampled_from(["PERSON", "GPE", "DATE"])


@st.composite
def gold_and_pred(draw):
    """A one-sentence record and random word-aligned, non-overlapping gold and predicted entities."""
    words = draw(WORDS)
    text = " ".join(words)
    spans = word_spans(text)

    def entities() -> list[dict]:
        out, i = [], 0
        while i < len(spans):
            n = draw(st.integers(0, 3))
            if n and i + n <= len(spans):
                out.append({"start": spans[i][0], "end": spans[i + n - 1][1], "label": draw(LABELS)})
            i += max(n, 1)
        return out

    gold = {"id": "d", "text": text, "entities": entities(), "sentences": [{"start": 0, "end": len(text)}]}
    return gold, prediction({**gold, "sentences": [{**gold["sentences"][0], "stance": "neutral"}]}, entities())


@settings(max_examples=100, deadline=None)
@given(gold_and_pred())
def test_char_span_matching_agrees_with_seqeval_on_records(case):
    gold, pred = case
    m = evaluate_predictions("ner", [gold], [pred])
    assert m["span_match"]["agrees_with_seqeval"] is True
    assert m["micro"]["f1"] == pytest.approx(m["span_match"]["micro"]["f1"])


# ---------------------------------------------------------------- stance


@pytest.fixture
def stance_gold() -> list[dict]:
    a = make_record("a", [("s1", "leverage", []), ("s2", "leverage", []), ("s3", "neutral", []), ("s4", None, [])])
    b = make_record("b", [("t1", "economic_cooperation", []), ("t2", "neutral", []), ("t3", "neutral", [])])
    return [a, b]


def test_stance_metrics_hand_computed(stance_gold):
    a, b = stance_gold
    pred = [
        prediction(a, stances=["leverage", "neutral", "neutral", "leverage"]),  # 4th has no gold stance: skipped
        prediction(b, stances=["leverage", "neutral", "economic_cooperation"]),
    ]
    m = evaluate_predictions("stance", stance_gold, pred, SEED.stance_labels, SEED.none_label)
    # gold:  L L N | E N N     pred: L N N | L N E
    assert m["n_sentences"] == 6 and m["accuracy"] == pytest.approx(3 / 6)
    assert m["per_label"]["leverage"] == {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2}
    assert m["per_label"]["economic_cooperation"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    assert m["per_label"]["neutral"] == {"precision": 2 / 3, "recall": 2 / 3, "f1": pytest.approx(2 / 3), "support": 3}
    assert m["macro"]["f1"] == pytest.approx((0.5 + 0 + 2 / 3) / 3)
    assert m["headline"]["value"] == m["macro"]["f1"]
    assert m["confusion_matrix"] == {
        "labels": ["leverage", "economic_cooperation", "neutral"],
        "matrix": [[1, 0, 1], [1, 0, 0], [0, 1, 2]],
    }
    # doc a: gold leverage, pred leverage; doc b: gold economic_cooperation, pred mixed (1 L vs 1 E)
    assert m["doc_stance"] == [{"id": "a", "gold": "leverage", "pred": "leverage"},
                               {"id": "b", "gold": "economic_cooperation", "pred": "mixed"}]  # fmt: skip
    assert m["doc_stance_accuracy"] == 0.5


def test_stance_needs_a_prediction_for_every_gold_sentence(stance_gold):
    pred = [prediction(r) for r in stance_gold]
    pred[1]["sentences"].pop(0)
    with pytest.raises(ValueError, match=r"document b: no predicted sentence at 0-2"):
        evaluate_predictions("stance", stance_gold, pred, SEED.stance_labels, SEED.none_label)


# ---------------------------------------------------------------- schema and files

COMMON_KEYS = {"schema_version", "task", "n_documents", "n_sentences", "headline", "per_label", "micro", "macro"}


def test_schema_keys_and_json(ner_gold, stance_gold):
    ner = evaluate_predictions("ner", [ner_gold], [prediction(ner_gold, ner_gold["entities"])])
    stance = evaluate_predictions("stance", stance_gold, [prediction(r) for r in stance_gold], none_label="neutral")
    assert set(ner) == COMMON_KEYS | {"n_gold", "n_predicted", "span_match"}
    assert set(stance) == COMMON_KEYS | {"accuracy", "confusion_matrix", "doc_stance_accuracy", "doc_stance"}
    for m in (ner, stance):
        assert m["schema_version"] == 1 and m["micro"]["f1"] == 1.0
        assert json.loads(json.dumps(m, allow_nan=False)) == m
        for row in (*m["per_label"].values(), m["micro"], m["macro"]):
            assert set(row) == {"precision", "recall", "f1", "support"}


def test_write_evaluation_writes_report_and_png(tmp_path, ner_gold, stance_gold):
    wrong = prediction(ner_gold, [ent(ner_gold, "met", "PERSON")])
    m = evaluate_predictions("ner", [ner_gold], [wrong])
    paths = write_evaluation(m, [ner_gold], [wrong], tmp_path / "ner")
    assert set(paths) == {"metrics", "report", "html"} and paths["html"].name == "report.html"
    assert json.loads(paths["metrics"].read_text()) == m
    report = paths["report"].read_text()
    assert "| PERSON |" in report and "False positives (1)" in report and "Kim [[met]] Putin" in report
    assert "False negatives (6)" in report and "![confusion]" not in report  # NER draws no figure

    pred = [prediction(r, stances=["neutral"] * len(r["sentences"])) for r in stance_gold]
    m = evaluate_predictions("stance", stance_gold, pred, SEED.stance_labels, SEED.none_label)
    paths = write_evaluation(m, stance_gold, pred, tmp_path / "stance")
    assert paths["confusion"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = paths["report"].read_text()
    assert "Misclassified sentences (3)" in report and "| **leverage** | 0 | 0 | 2 |" in report
    assert f"![confusion]({paths['confusion'].name})" in report
    assert not list(tmp_path.rglob("*.tmp"))


# ---------------------------------------------------------------- baselines


def test_dictionary_baseline_tags_names_seen_in_training():
    train = [make_record("t", [("Kim Jong-un met Putin in Moscow", "neutral",
                                [("Kim Jong-un", "PERSON"), ("Putin", "PERSON"), ("Moscow", "GPE")]),
                               ("Kim left", "neutral", [("Kim", "PERSON")])])]  # fmt: skip
    test = [make_record("x", [("Kim Jong-un saw Kimberly and moscow and Moscow.", "neutral", [])])]
    (pred,) = dictionary_ner(train, test, SEED)
    found = [(p["text"], p["label"]) for p in pred["entities"]]
    # longest match first ("Kim Jong-un", not "Kim"), word boundaries ("Kimberly" untouched), case-sensitive
    assert found == [("Kim Jong-un", "PERSON"), ("Moscow", "GPE")]


def test_stance_baselines_on_a_toy_corpus():
    def doc(i: int) -> dict:
        return make_record(f"d{i}", [
            ("trade railway pipeline workers", "economic_cooperation", []),
            ("nuclear pressure on Washington", "leverage", []),
            ("the train arrived", "neutral", []), ("the plane landed", "neutral", []),
        ])  # fmt: skip

    train, test = [doc(i) for i in range(3)], [doc(9)]
    majority = majority_stance(train, test, SEED)
    assert {s["stance"] for s in majority[0]["sentences"]} == {"neutral"}
    tfidf = tfidf_logreg_stance(train, test, SEED)
    m_major = evaluate_predictions("stance", test, majority, none_label="neutral")
    m_tfidf = evaluate_predictions("stance", test, tfidf, none_label="neutral")
    assert m_tfidf["macro"]["f1"] == 1.0 > m_major["macro"]["f1"]
    assert set(tfidf[0]["sentences"][0]["scores"]) == {"economic_cooperation", "leverage", "neutral"}


# ---------------------------------------------------------------- cross-validation


def corpus() -> list[dict]:
    return [
        make_record(
            f"doc{i}",
            [
                (
                    f"Kim met Putin in Moscow {i}.",
                    "neutral",
                    [("Kim", "PERSON"), ("Putin", "PERSON"), ("Moscow", "GPE")],
                ),
                ("Trade with Russia grew.", "economic_cooperation", [("Russia", "GPE")]),
                ("Nuclear talks with Washington stalled.", "leverage", [("Washington", "GPE")]),
            ],
        )
        for i in range(3)
    ]


def make_multirun(
    root: Path, gold_path: Path, tasks=("ner", "stance"), folds=(0, 1, 2), trainer: dict | None = None, name: str = ""
) -> Path:
    """Fake finished runs ``<task>-fold<k><name>``; ``trainer`` adds ``trainer.*`` keys to their configs."""
    gold = sorted((json.loads(line) for line in gold_path.read_text().splitlines()), key=lambda r: r["id"])
    for task in tasks:
        for k in folds:
            run = root / f"{task}-fold{k}{name}"
            (run / ".hydra").mkdir(parents=True)
            data = {"path": str(gold_path), "fold": k, "entity_labels": list(SEED.entity_labels)}
            data |= {"stance_labels": list(SEED.stance_labels), "stance_none_label": SEED.none_label}
            cfg = {"task": {"name": task}, "data": data, "trainer": trainer or {}}
            (run / ".hydra" / "config.yaml").write_text(json.dumps(cfg))  # JSON is YAML
            held_out = gold[k]
            pred = prediction(held_out, held_out["entities"] if k else [])  # fold 0: no entities found
            (run / "predictions.jsonl").write_text(json.dumps(pred) + "\n")
    return root


@pytest.fixture
def gold_file(tmp_path) -> Path:
    path = tmp_path / "gold.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in corpus()))
    return path


def test_cv_pools_folds_of_both_tasks_with_baselines(tmp_path, gold_file, monkeypatch):
    multirun = make_multirun(tmp_path / "multirun", gold_file)
    workdir = tmp_path / "cwd"
    workdir.mkdir()
    monkeypatch.chdir(workdir)
    cv = write_cv(multirun)
    assert list(workdir.iterdir()) == []  # no baseline leaves files (e.g. SetFit checkpoints) where it is run
    ner, stance = cv["tasks"]["ner"], cv["tasks"]["stance"]
    model = ner["systems"]["model"]
    assert "no model/ folder" in ner["calibration_skipped"]  # NER calibration reruns the fold models
    assert model["per_fold"] == {"0": 0.0, "1": 1.0, "2": 1.0}
    assert model["mean"] == pytest.approx(2 / 3) and model["std"] == pytest.approx(0.57735, abs=1e-4)
    assert model["pooled"]["micro"]["recall"] == pytest.approx(10 / 15) and model["pooled"]["n_documents"] == 3
    assert ner["systems"]["dictionary"]["pooled"]["micro"]["f1"] == 1.0  # every name is seen in the other folds
    assert "spacy_en_core_web_sm" in ner["systems"] or "spacy_en_core_web_sm" in ner["skipped_baselines"]
    assert set(stance["systems"]) - {"setfit_minilm"} == {"model", "majority", "tfidf_logreg"}
    assert "setfit_minilm" in stance["systems"] or "setfit_minilm" in stance["skipped_baselines"]
    assert stance["systems"]["model"]["pooled"]["macro"]["f1"] == 1.0
    # a 3-way tie in training goes to the scheme's first label, leverage: right on 1 sentence of 3
    assert stance["systems"]["majority"]["pooled"]["accuracy"] == pytest.approx(1 / 3)
    assert stance["systems"]["majority"]["pooled"]["confusion_matrix"]["matrix"][0] == [3, 0, 0]
    report = (multirun / "cv_report.md").read_text()
    assert "## ner: 3 folds" in report and "## stance: 3 folds" in report
    assert "The model does **not** beat: dictionary" in report
    assert json.loads((multirun / "cv_metrics.json").read_text()) == cv
    assert (multirun / "cv_confusion_stance.png").read_bytes()[:4] == b"\x89PNG"


def test_cv_errors(tmp_path, gold_file):
    with pytest.raises(CVError, match="no run folders"):
        write_cv(tmp_path)
    multirun = make_multirun(tmp_path / "m", gold_file, tasks=("ner",), folds=(0, 2))
    with pytest.raises(CVError, match=r"missing \[1\]"):
        write_cv(multirun)
    (multirun / "ner-fold2" / "predictions.jsonl").unlink()
    with pytest.raises(CVError, match=r"ner-fold2: no predictions\.jsonl"):
        write_cv(multirun)


def test_cv_reports_each_setting_of_a_sweep_with_the_baselines_once(tmp_path, gold_file, monkeypatch):
    """Two learning rates on the same folds: two model rows, named by the key that differs; run-only keys (tqdm,
    saving, logging) and the run folder do not make a setting; each baseline runs once per fold, not per setting."""
    calls = []

    def majority(train, test, scheme):
        calls.append(len(test))
        return majority_stance(train, test, scheme)

    monkeypatch.setattr(StanceTask, "baselines", lambda self: {"majority": majority})
    multirun = tmp_path / "m"
    for i, (lr, tqdm) in enumerate([(1e-4, True), (3e-5, False)]):
        run_only = {"disable_tqdm": tqdm, "save_strategy": "no" if i else "epoch", "logging_steps": 10 + i}
        make_multirun(multirun, gold_file, ("stance",), trainer={"learning_rate": lr, **run_only}, name=f"-{i}")
    cv = write_cv(multirun)
    stance = cv["tasks"]["stance"]
    models = ["model[trainer.learning_rate=3e-05]", "model[trainer.learning_rate=0.0001]"]  # ascending
    assert list(stance["systems"]) == [*models, "majority"] and len(calls) == 3
    assert list(stance["settings"]) == models and "runs" not in stance
    assert stance["settings"][models[0]]["overrides"] == {"trainer.learning_rate": 3e-5}
    assert stance["settings"][models[0]]["name"] == "trainer.learning_rate=3e-05"
    assert stance["settings"][models[1]]["runs"]["2"].endswith("stance-fold2-0")
    assert all(stance["systems"][m]["per_fold"] == {"0": 1.0, "1": 1.0, "2": 1.0} for m in models)
    assert stance["best_model"] == models[0] and stance["n_folds"] == 3
    report = (multirun / "cv_report.md").read_text()
    assert "2 settings, differing in `trainer.learning_rate`" in report
    assert "### `model[trainer.learning_rate=0.0001]`, pooled per label" in report
    assert "![confusion](cv_confusion_stance-2.png)" in report and (multirun / "cv_confusion_stance-2.png").is_file()


def test_cv_checks_the_folds_of_every_setting(tmp_path, gold_file):
    multirun = make_multirun(tmp_path / "m", gold_file, ("ner",), trainer={"learning_rate": 1e-4}, name="-a")
    make_multirun(multirun, gold_file, ("ner",), folds=(0, 2), trainer={"learning_rate": 3e-5}, name="-b")
    with pytest.raises(CVError, match=r"ner model\[trainer.learning_rate=3e-05\].*missing \[1\]"):
        write_cv(multirun, baselines=False)
    make_multirun(multirun, gold_file, ("ner",), folds=(1,), trainer={"learning_rate": 3e-5, "disable_tqdm": True})
    make_multirun(multirun, gold_file, ("ner",), folds=(1,), trainer={"learning_rate": 3e-5}, name="-c")
    with pytest.raises(CVError, match="ner fold 1 appears twice with the same settings"):
        write_cv(multirun, baselines=False)


def test_a_sweep_of_two_learning_rates_trains_apart_and_pools(tmp_path, tiny_model_dir, capsys):
    """`-m data.fold=0,1 trainer.learning_rate=3e-5,1e-4`: four jobs, four folders (no job finds another's model/),
    pooled as two settings of two folds each."""
    import subprocess
    import sys

    from tests.conftest import ROOT, SEEDS, TINY_TRAIN

    corpus = tmp_path / "two.jsonl"
    corpus.write_text("".join(SEEDS.read_text(encoding="utf-8").splitlines(keepends=True)[:2]), encoding="utf-8")
    sweep = tmp_path / "sweep"
    args = ["task=stance", f"data.path={corpus}", "data.fold=0,1", "trainer.learning_rate=3e-5,1e-4"]
    args += [f"model.name_or_path={tiny_model_dir}", *TINY_TRAIN, f"hydra.sweep.dir={sweep}"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "src.train", "-m", *args], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-3000:]
    runs = sorted(p.name for p in sweep.iterdir() if p.is_dir())
    assert runs == [
        "0_stance-fold0_task.max_length-64+trainer.device-cpu+trainer.learning_rate-3e-05+trainer.max_steps-4"
        "+trainer.per_device_train_batch_size-8",
        "1_stance-fold0_task.max_length-64+trainer.device-cpu+trainer.learning_rate-0.0001+trainer.max_steps-4"
        "+trainer.per_device_train_batch_size-8",
        "2_stance-fold1_task.max_length-64+trainer.device-cpu+trainer.learning_rate-3e-05+trainer.max_steps-4"
        "+trainer.per_device_train_batch_size-8",
        "3_stance-fold1_task.max_length-64+trainer.device-cpu+trainer.learning_rate-0.0001+trainer.max_steps-4"
        "+trainer.per_device_train_batch_size-8",
    ]
    assert all((sweep / run / "model" / "model.safetensors").is_file() for run in runs)
    assert main([f"cv={sweep}", "baselines=false"]) == 0
    printed = capsys.readouterr().out
    stance = json.loads((sweep / "cv_metrics.json").read_text())["tasks"]["stance"]
    models = ["model[trainer.learning_rate=3e-05]", "model[trainer.learning_rate=0.0001]"]
    assert list(stance["systems"]) == models and stance["n_folds"] == 2
    assert all(list(stance["systems"][m]["per_fold"]) == ["0", "1"] for m in models)
    assert [Path(p).name[0] for p in stance["settings"][models[1]]["runs"].values()] == ["1", "3"]
    assert all(m in printed for m in models)
    # backend=: the fold models predict again; torch (as the runs predicted) gives the runs' own figures.
    assert main([f"cv={sweep}", "baselines=false", "backend=torch"]) == 2  # no out_dir=: refused
    again = tmp_path / "again"
    assert main([f"cv={sweep}", "baselines=false", "backend=torch", f"out_dir={again}"]) == 0
    redone = json.loads((again / "cv_metrics.json").read_text())
    assert redone["engine"] == {"backend": "torch", "quantize": "none", "precision": "fp32"}
    for m in models:
        assert redone["tasks"]["stance"]["systems"][m]["pooled"] == stance["systems"][m]["pooled"]
        assert redone["tasks"]["stance"]["calibration"][m]["ece_before"] == pytest.approx(
            stance["calibration"][m]["ece_before"], abs=1e-6
        )


def test_cli_cv_and_usage(tmp_path, gold_file, capsys):
    multirun = make_multirun(tmp_path / "m", gold_file, tasks=("stance",))
    out = tmp_path / "out"
    assert main([f"cv={multirun}", f"out_dir={out}"]) == 0
    assert "stance  tfidf_logreg" in capsys.readouterr().out
    assert (out / "cv_report.md").is_file() and not (multirun / "cv_report.md").exists()
    assert main([]) == 2


def test_cv_writes_its_tables_into_a_results_document(tmp_path, gold_file, capsys):
    """``results=FILE``: the multirun's block (command, date, each system's pooled figures, per label) replaces the
    block of the same multirun and leaves the rest of the document as it was."""
    from datetime import date

    multirun = make_multirun(tmp_path / "m", gold_file, tasks=("stance",))
    for run in multirun.iterdir():  # what Hydra records of each fold's command line
        (run / ".hydra" / "overrides.yaml").write_text(f"- task=stance\n- data.fold={run.name[-1]}\n- seed=7\n")
    results = tmp_path / "results.md"
    results.write_text("# Results\n\nkept above\n\n<!-- cv m: begin -->\nold\n<!-- cv m: end -->\nkept below\n")
    args = [f"cv={multirun}", f"out_dir={tmp_path / 'out'}", f"results={results}", "calibration=false"]
    assert main(args) == 0
    text = results.read_text()
    assert text.startswith("# Results\n\nkept above\n\n<!-- cv m: begin -->") and text.endswith("end -->\nkept below\n")
    assert "\nold\n" not in text and f"`python -m src.evaluate {' '.join(args)}`, {date.today().isoformat()}:" in text
    metrics = json.loads((tmp_path / "out" / "cv_metrics.json").read_text())["tasks"]["stance"]["systems"]
    assert f"| model | {metrics['model']['pooled']['headline']['value']:.3f} |" in text
    assert "| stance: pooled F1 | model |" in text and "tfidf_logreg" in text
    assert "3 folds on" in text and "fold models trained with `task=stance seed=7`." in text
    assert main(args) == 0 and results.read_text().count("<!-- cv m: begin -->") == 1  # rewritten, not added
    assert "| system | pooled macro_f1 | mean ± std over folds |" in text  # stance's headline is its macro-F1: once
    # Trained with extra files (a supplement beside the project): a block of its own, the files shown relative.
    from src.files import PROJECT_ROOT

    extra = PROJECT_ROOT.parent / "shared" / "supplement" / "pages.jsonl"
    for run in multirun.iterdir():
        (run / ".hydra" / "overrides.yaml").write_text(f"- task=stance\n- data.extra=[{extra}]\n")
    assert main(args) == 0
    text = results.read_text()
    assert text.count("<!-- cv m: begin -->") == 1 and text.count("<!-- cv m with extra files: begin -->") == 1
    assert "trained with `task=stance data.extra=[../shared/supplement/pages.jsonl]`." in text
    assert str(extra) not in text
    assert main([f"cv={multirun}", "bogus=1"]) == 2
    assert "bogus" in capsys.readouterr().err
    assert main([f"cv={tmp_path / 'nothing'}"]) == 1
    assert "not a folder" in capsys.readouterr().err


# ---------------------------------------------------------------- the checkpoint command


@pytest.mark.parametrize("task", ["ner", "stance"])
def test_cli_evaluates_a_checkpoint(task, tmp_path, tiny_model_dir, gold_file, capsys):
    from transformers import AutoTokenizer, BertForSequenceClassification, BertForTokenClassification

    from src.labels import iob2_tags

    labels = iob2_tags(SEED.entity_labels) if task == "ner" else list(SEED.stance_labels)
    cls = BertForTokenClassification if task == "ner" else BertForSequenceClassification
    maps = {"id2label": dict(enumerate(labels)), "label2id": {x: i for i, x in enumerate(labels)}}
    run = tmp_path / "run"
    cls.from_pretrained(tiny_model_dir, num_labels=len(labels), **maps).save_pretrained(run / "model")
    AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(run / "model")

    assert main([f"model={run}", f"data.path={gold_file}", "device=cpu"]) == 0
    out = run / "eval-gold"
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["task"] == task and metrics["n_documents"] == 3
    assert "| label | precision | recall | F1 | support |" in capsys.readouterr().out
    predictions = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert [p["id"] for p in predictions] == ["doc0", "doc1", "doc2"]
    assert (out / "report.md").is_file() and (out / "confusion_stance.png").is_file() == (task == "stance")


def test_cli_refuses_a_plain_article_as_conll(tmp_path, runs, capsys):
    """A .txt article is not CoNLL columns: a located error (exit 1), never an F1 of 0.000 with exit 0."""
    article = tmp_path / "article.txt"
    article.write_text("Kim Jong-un met Vladimir Putin.\nThey talked about sanctions.\n", encoding="utf-8")
    assert main([f"model={runs['ner']}", f"data.path={article}"]) == 1
    err = capsys.readouterr().err
    assert f"{article}:1: not CoNLL columns" in err and ".jsonl" in err
