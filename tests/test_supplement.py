"""Partial annotation, extra training files (data.extra), label reviews, and leave-one-outlet-out CV.

The supplement of ../shared is third-party text: tests that read it skip without it; the rest use made-up records.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from src.config import ConfigError
from src.data.convert import labelstudio_to_records, records_to_labelstudio
from src.data.folds import leave_one_outlet_out, outlet_groups
from src.data.records import REVIEWS_DIR, DataError, load_records, save_records
from src.data.splits import load_splits
from src.data.validate import validate_record
from src.evaluate.metrics import evaluate_predictions
from src.evaluate.report import error_section
from src.files import sha256_of
from src.tasks import NER, STANCE
from tests.conftest import ROOT, SEEDS, TINY_TRAIN

SUPPLEMENT = ROOT.parent / "shared" / "supplement" / "stance-outlets.jsonl"
SENTENCES = [
    ("Kim uses the trip as leverage on Washington.", "leverage"),
    ("Trade with Russia grows.", "economic_cooperation"),
    ("The train arrived on Wednesday.", "neutral"),
]


def record(rid: str, outlet: str | None = None, *, annotated: list[str] | None = ("stance",), **fields) -> dict:
    """A made-up stance-only page (no entities field) from ``SENTENCES``."""
    text = " ".join(s for s, _ in SENTENCES)
    sentences, at = [], 0
    for sentence, stance in SENTENCES:
        start = text.index(sentence, at)
        sentences.append({"start": start, "end": start + len(sentence), "stance": stance})
        at = start + len(sentence)
    out = {"id": rid, "text": text, "sentences": sentences, **fields}
    if annotated is not None:
        out["annotated"] = list(annotated)
    if outlet is not None:
        out["outlet"] = outlet
    return out


def write(path: Path, records: list[dict]) -> Path:
    save_records(records, path)
    return path


def data_config(**overrides) -> OmegaConf:
    cfg = OmegaConf.load(ROOT / "configs" / "data" / "seeds.yaml")
    cfg.path = str(SEEDS)
    for key, value in overrides.items():
        cfg[key] = value
    return cfg


# ---------------------------------------------------------------- partial annotation


def test_a_stance_only_record_validates_without_entities() -> None:
    assert validate_record(record("a")) == []
    no_stance = record("b", annotated=["entities"])
    for sentence in no_stance["sentences"]:
        del sentence["stance"]
    no_stance["entities"] = [{"start": 0, "end": 3, "label": "PERSON"}]
    assert validate_record(no_stance) == []


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"annotated": []}, "must be a non-empty list"),
        ({"annotated": ["stance", "topics"]}, "unknown layer 'topics'"),
        ({"annotated": ["stance", "stance"]}, "names a layer twice"),
        ({"entities": [{"start": 0, "end": 3, "label": "PERSON"}]}, "1 entities given, but 'annotated' does not list"),
        ({"annotated": ["entities"], "entities": []}, "3 sentences have a stance, but 'annotated' does not list"),
    ],
)
def test_partial_annotation_problems_are_named(change: dict, message: str) -> None:
    problems = validate_record(record("a") | change, where="f.jsonl:1")
    assert any(message in p and p.startswith("f.jsonl:1: record a") for p in problems), problems


def test_a_record_that_annotates_everything_still_needs_entities() -> None:
    problems = validate_record(record("a", annotated=None))
    assert problems == ["record a: missing field 'entities'"]


def test_loading_fills_the_missing_layers_and_tasks_skip_them(tmp_path: Path) -> None:
    path = write(tmp_path / "extra.jsonl", [record("a")])
    (loaded,) = load_records(path, reviews_dir=None)
    assert loaded["entities"] == [] and loaded["annotated"] == ["stance"]
    seeds = load_records(SEEDS)
    assert NER.examples([*seeds, loaded]) == NER.examples(seeds)  # no "no entity here" sentences: NER unchanged
    assert len(STANCE.examples([*seeds, loaded])[0]) == len(STANCE.examples(seeds)[0]) + len(SENTENCES)


def test_ner_scores_skip_records_without_entities() -> None:
    gold = [record("a", annotated=["stance"]) | {"entities": []}]
    pred = [gold[0] | {"entities": [{"start": 0, "end": 3, "label": "PERSON"}]}]
    with pytest.raises(ValueError, match="no gold record annotates entities"):
        evaluate_predictions("ner", gold, pred)
    seeds = load_records(SEEDS)[:1]
    both = evaluate_predictions("ner", [*seeds, *gold], [*seeds, *pred])  # the stray entity is not a false positive
    assert both["headline"]["value"] == pytest.approx(1.0)
    assert "| a |" not in error_section("ner", [*seeds, *gold], [*seeds, *pred])
    assert "| a |" in error_section("ner", [*seeds, gold[0] | {"annotated": ["entities", "stance"]}], [*seeds, *pred])


def test_labelstudio_round_trip_keeps_the_annotated_layers() -> None:
    original = record("a") | {"entities": []}
    tasks = records_to_labelstudio([original])
    assert tasks[0]["data"]["annotated"] == ["stance"]
    (back,) = labelstudio_to_records(tasks)
    assert back["annotated"] == ["stance"] and validate_record(back) == []


# ---------------------------------------------------------------- label reviews


def review_of(path: Path, folder: Path, changes: list[dict], sha: str | None = None) -> Path:
    folder.mkdir(exist_ok=True)
    review = {"sha256": sha or sha256_of([path]), "annotated": ["stance"], "changes": changes}
    (folder / f"{path.name}.review.json").write_text(json.dumps(review), encoding="utf-8")
    return folder


def test_a_review_changes_labels_and_declares_the_layers(tmp_path: Path) -> None:
    path = write(tmp_path / "pages.jsonl", [record("a", annotated=None) | {"entities": []}])
    change = {"id": "a", "start": 0, "end": 44, "from": "leverage", "to": "neutral", "why": "test"}
    reviews = review_of(path, tmp_path / "reviews", [change])
    provenance: dict = {}
    (loaded,) = load_records(path, reviews_dir=reviews, provenance=provenance)
    assert loaded["sentences"][0]["stance"] == "neutral" and loaded["annotated"] == ["stance"]
    assert provenance["sha256"] == sha256_of([path]) and provenance["review"]["changes"] == 1


@pytest.mark.parametrize(
    ("change", "sha", "message"),
    [
        ({"id": "a", "start": 0, "end": 44, "from": "neutral", "to": "leverage"}, None, "expects stance 'neutral'"),
        ({"id": "a", "start": 1, "end": 44, "from": "leverage", "to": "neutral"}, None, "no sentence 1-44"),
        ({"id": "a", "start": 0, "end": 44}, None, "must be an object with id, start, end, from, to"),
        ({"id": "a", "start": 0, "end": 44, "from": "leverage", "to": "neutral"}, "0" * 64, "another version"),
    ],
)
def test_a_stale_or_wrong_review_is_refused(tmp_path: Path, change: dict, sha: str | None, message: str) -> None:
    path = write(tmp_path / "pages.jsonl", [record("a")])
    reviews = review_of(path, tmp_path / "reviews", [change], sha)
    with pytest.raises(DataError, match=message):
        load_records(path, reviews_dir=reviews)


@pytest.mark.skipif(not SUPPLEMENT.is_file(), reason="no ../shared/supplement beside the project")
def test_the_supplement_review_applies_and_its_agreement_is_what_it_says() -> None:
    from sklearn.metrics import cohen_kappa_score

    review = json.loads((REVIEWS_DIR / f"{SUPPLEMENT.name}.review.json").read_text(encoding="utf-8"))
    supplied = load_records(SUPPLEMENT, reviews_dir=None)
    reviewed = load_records(SUPPLEMENT)
    assert all(r["annotated"] == ["stance"] for r in reviewed)
    a = [s["stance"] for r in supplied for s in r["sentences"]]
    b = [s["stance"] for r in reviewed for s in r["sentences"]]
    assert sum(x != y for x, y in zip(a, b, strict=True)) == len(review["changes"])
    assert review["agreement"]["sentences"] == len(a)
    assert review["agreement"]["cohen_kappa"] == round(cohen_kappa_score(a, b), 3)


# ---------------------------------------------------------------- extra files and outlet folds


def test_outlet_groups_hold_an_outlets_pages_out_together() -> None:
    pages = [record("c", "B"), record("a", "A"), record("b", "B"), record("d")]
    assert [(name, [r["id"] for r in group]) for name, group in outlet_groups(pages)] == [
        ("A", ["a"]),
        ("B", ["b", "c"]),
        ("d", ["d"]),
    ]
    train, test, outlet = leave_one_outlet_out(pages, 1)
    assert outlet == "B" and [r["id"] for r in test] == ["b", "c"] and [r["id"] for r in train] == ["a", "d"]
    with pytest.raises(ValueError, match="3 outlets"):
        leave_one_outlet_out(pages, 3)


def test_extra_files_train_in_every_seed_fold(tmp_path: Path) -> None:
    extra = write(tmp_path / "extra.jsonl", [record("x1", "A"), record("x2", "B")])
    seeds = load_records(SEEDS)
    train, _, test, provenance = load_splits(data_config(extra=[str(extra)], fold=2))
    assert {r["id"] for r in train} == {r["id"] for r in seeds} - {test[0]["id"]} | {"x1", "x2"}
    assert provenance["extra"][0]["sha256"] == sha256_of([extra]) and provenance["extra"][0]["records"] == 2
    plain = load_splits(data_config(fold=2))
    assert "extra" not in plain[3] and [r["id"] for r in plain[0]] == [r["id"] for r in train[:4]]


def test_extra_fold_holds_out_one_outlet(tmp_path: Path) -> None:
    extra = write(tmp_path / "extra.jsonl", [record("x1", "A"), record("x2", "B"), record("x3", "A")])
    train, _, test, provenance = load_splits(data_config(extra=[str(extra)], fold=None, extra_fold=0))
    assert [r["id"] for r in test] == ["x1", "x3"] and provenance["held_out_outlet"] == "A"
    assert len(train) == 5 + 1
    with pytest.raises(ConfigError, match=r"set data\.fold=null"):
        load_splits(data_config(extra=[str(extra)], extra_fold=0))
    with pytest.raises(ConfigError, match="2 outlets"):
        load_splits(data_config(extra=[str(extra)], fold=None, extra_fold=2))
    with pytest.raises(ConfigError, match=r"no data\.extra files"):
        load_splits(data_config(fold=None, extra_fold=0))


def test_extra_records_may_not_repeat_seed_ids(tmp_path: Path) -> None:
    seed_id = load_records(SEEDS)[0]["id"]
    extra = write(tmp_path / "extra.jsonl", [record(seed_id)])
    with pytest.raises(ConfigError, match=f"repeats record ids of .*{seed_id}"):
        load_splits(data_config(extra=[str(extra)]))
    with pytest.raises(FileNotFoundError, match=r"data\.extra: no such file"):
        load_splits(data_config(extra=[str(tmp_path / "missing.jsonl")]))


def test_outlets_command_prints_the_folds(tmp_path: Path) -> None:
    extra = write(tmp_path / "extra.jsonl", [record("x1", "A"), record("x2", "B")])
    run = [sys.executable, "-m", "src.data", "outlets"]
    folds = subprocess.run([*run, "--folds", str(extra)], cwd=ROOT, capture_output=True, text=True, check=True)
    assert folds.stdout.strip() == "0,1"
    listing = subprocess.run([*run, str(extra)], cwd=ROOT, capture_output=True, text=True, check=True)
    assert listing.stdout.splitlines() == ["0\tA\t1 record(s): x1", "1\tB\t1 record(s): x2"]


def test_make_adds_the_supplement_only_when_there() -> None:
    def dry(*args: str) -> str:
        command = ["make", "-n", "train", *args, "PY=false"]  # PY=false: the warm-start probe runs nothing
        return subprocess.run(command, cwd=ROOT, capture_output=True, text=True).stdout

    with_it = dry("SUPPLEMENT=/somewhere/pages.jsonl")
    assert "'data.extra=[/somewhere/pages.jsonl]'" in with_it and "Stance supplement: /somewhere" in with_it
    without = dry("SUPPLEMENT=")
    assert "data.extra" not in without.replace("SUPPLEMENT", "") and "the seed corpus alone" in without


# ---------------------------------------------------------------- end to end: train, pool, model card


@pytest.mark.slow
def test_leave_one_outlet_out_trains_pools_and_records_the_files(tiny_model_dir: Path, tmp_path: Path) -> None:
    extra = write(tmp_path / "extra.jsonl", [record("x1", "A"), record("x2", "B"), record("x3", "A")])
    sweep = tmp_path / "looo"
    train = [sys.executable, "-m", "src.train", "-m", "task=stance", f"model.name_or_path={tiny_model_dir}"]
    args = [f"data.extra=[{extra}]", "data.fold=null", "data.extra_fold=0,1", f"hydra.sweep.dir={sweep}"]
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    subprocess.run([*train, *args, *TINY_TRAIN], cwd=ROOT, check=True, env=env, capture_output=True)
    suite = ROOT / "data" / "behaviour" / "stance.jsonl"
    cv = [
        sys.executable,
        "-m",
        "src.evaluate",
        f"cv={sweep}",
        "baselines=false",
        f"behaviour={suite}",
    ]
    subprocess.run(cv, cwd=ROOT, check=True, capture_output=True)
    metrics = json.loads((sweep / "cv_metrics.json").read_text())["tasks"]["stance"]
    assert metrics["protocol"] == "outlets" and metrics["outlets"] == {"0": ["A"], "1": ["B"]}
    assert metrics["systems"]["model"]["pooled"]["per_label"]["leverage"]["support"] == 3
    report = (sweep / "cv_report.md").read_text()
    assert "leave one outlet of the extra files out" in report and "Folds: 0: A; 1: B" in report
    assert "### Behaviour" in report and "| model fold 1 |" in report and "| mean |" in report
    assert set(metrics["behaviour"]["systems"]["model"]) == {"0", "1"}
    n_cases = sum(1 for line in suite.read_text().splitlines() if line.strip())
    assert metrics["calibration"]["model"]["suite"]["n_cases"] == 2 * n_cases  # the check under shift, both folds
    run = next(p for p in sweep.iterdir() if p.name.startswith("0_"))
    meta = json.loads((run / "model" / "newsframe.json").read_text())
    assert meta["provenance"]["training_data"]["extra"][0]["sha256"] == sha256_of([extra])
    assert meta["provenance"]["training_data"]["held_out"] == ["x1", "x3"]
    card = (run / "model" / "README.md").read_text()
    assert f"Also trained on: `{extra}` (3 records" in card and "outlet `A`" in card


def test_the_supplement_table_averages_seeds_and_fold_models() -> None:
    sys.path.insert(0, str(ROOT / "scripts"))
    from cv_supplement import row

    def pooled(macro: float, leverage: float) -> dict:
        return {"headline": {"value": macro}, "per_label": {"leverage": {"f1": leverage}}}

    def suite(overall: float, pairs: float) -> dict:
        return {"overall": {"pass_rate": overall}, "types": {"topic_pair": {"pass_rate": pairs}}}

    per_seed = {42: (pooled(0.7, 0.4), [suite(0.6, 0.2), suite(0.8, 0.4)]), 7: (pooled(0.8, 0.6), [suite(0.5, 0.1)])}
    cells = row("outlets", per_seed)
    assert cells[:4] == ["outlets", "42, 7", "0.750 (0.700-0.800)", "0.500 (0.400-0.600)"]
    assert cells[5] == "0.000 (0.000-0.000)"  # a label a model never scored counts as 0
    assert cells[-2:] == ["0.600 (0.500-0.700)", "0.200 (0.100-0.300)"]  # per seed: the mean of its fold models


def test_the_ensemble_row_averages_sentence_probabilities() -> None:
    sys.path.insert(0, str(ROOT / "scripts"))
    from cv_supplement import average

    def doc(*scores: tuple[float, float]) -> dict:
        sentences = [
            {"start": i, "end": i + 1, "stance": None, "scores": {"leverage": a, "neutral": b}}
            for i, (a, b) in enumerate(scores)
        ]
        return {"id": "d", "sentences": sentences}

    (merged,) = average([[doc((0.9, 0.1), (0.4, 0.6))], [doc((0.2, 0.8), (0.45, 0.55))]])
    # the mean probability decides, not a vote: 0.55 leverage against 0.45 in the first sentence
    assert [s["stance"] for s in merged["sentences"]] == ["leverage", "neutral"]
    assert merged["sentences"][0]["scores"] == pytest.approx({"leverage": 0.55, "neutral": 0.45})
    with pytest.raises(ValueError, match="split the sentences differently"):
        other = {"start": 0, "end": 2, "scores": {"leverage": 1.0, "neutral": 0.0}}
        average([[doc((0.9, 0.1))], [{"id": "d", "sentences": [other]}]])


def test_a_variant_needs_a_tag_and_overrides(tmp_path: Path) -> None:
    sys.path.insert(0, str(ROOT / "scripts"))
    from cv_supplement import main

    supplement = tmp_path / "s.jsonl"
    supplement.write_text("")
    for variant in (["mask-names"], ["bad tag", "task.mask_names=0.5"], ["mask", "task.mask_names"]):
        assert main(["--supplement", str(supplement), "--reuse-only", "--variant", *variant]) == 2
