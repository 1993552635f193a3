"""Training through the real entry point and through ``train(cfg)``, on a tiny random BERT (seconds each)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import CONLL_SNIPPET, ROOT, TINY_TRAIN, compose_train_config

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


def run_train(*overrides: str, cwd: Path = ROOT, module: list[str] | None = None) -> subprocess.CompletedProcess:
    cmd = [*(module or [sys.executable, "-m", "src.train"]), *overrides]
    return subprocess.run(cmd, cwd=cwd, env=ENV, capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize("task", ["ner", "stance"])
def test_train_leaves_a_pipeline_ready_checkpoint(task: str, tiny_model_dir: Path, tmp_path: Path, monkeypatch) -> None:
    from transformers import pipeline

    from src.model_folder import ModelFolder
    from src.train import train

    saved_to: list[Path] = []
    save = ModelFolder.save
    monkeypatch.setattr(
        ModelFolder, "save", lambda self, dest, **kw: saved_to.append(Path(dest)) or save(self, dest, **kw)
    )
    cfg = compose_train_config([f"task={task}", f"model.name_or_path={tiny_model_dir}", *TINY_TRAIN], tmp_path)
    metrics, out = train(cfg)
    assert [p.name for p in saved_to] == ["model.tmp"]  # the record is written once, complete, before the rename
    model_dir = out / "model"
    names = {p.name for p in model_dir.iterdir()}
    assert {"config.json", "model.safetensors", "README.md", "tokenizer.json"} <= names
    assert not [n for n in names if n.endswith((".bin", ".pt", ".pth", ".pkl"))]
    config = json.loads((model_dir / "config.json").read_text())
    assert config["id2label"] and config["label2id"]
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["task"] == task and saved == json.loads(json.dumps(metrics))
    assert (out / "report.md").is_file() and (out / "predictions.jsonl").is_file()
    nlp = pipeline("token-classification" if task == "ner" else "text-classification", model=str(model_dir))
    assert isinstance(nlp("Kim Jong-un met Vladimir Putin in Vladivostok."), list)


def test_same_seed_same_metrics(tiny_model_dir: Path, tmp_path: Path) -> None:
    from src.train import train

    overrides = ["task=stance", f"model.name_or_path={tiny_model_dir}", *TINY_TRAIN]
    first, _ = train(compose_train_config(overrides, tmp_path / "a"))
    second, _ = train(compose_train_config(overrides, tmp_path / "b"))
    assert first == second


def test_finished_run_is_not_overwritten(tiny_model_dir: Path, tmp_path: Path) -> None:
    from src.train import train

    cfg = compose_train_config(["task=stance", f"model.name_or_path={tiny_model_dir}", *TINY_TRAIN], tmp_path)
    train(cfg)
    with pytest.raises(FileExistsError, match="never overwritten"):
        train(cfg)


def test_resume_from_checkpoint(tiny_model_dir: Path, tmp_path: Path) -> None:
    from src.train import train

    base = ["task=ner", f"model.name_or_path={tiny_model_dir}", *TINY_TRAIN, "trainer.keep_checkpoints=true"]
    steps = ["trainer.save_strategy=steps", "trainer.save_steps=2"]
    train(compose_train_config([*base, *steps, "trainer.max_steps=2"], tmp_path / "first"))
    checkpoint = tmp_path / "first" / "checkpoints" / "checkpoint-2"
    assert (checkpoint / "trainer_state.json").is_file()
    train(compose_train_config([*base, *steps, f"trainer.resume_from_checkpoint={checkpoint}"], tmp_path / "second"))
    state = json.loads((tmp_path / "second" / "checkpoints" / "checkpoint-4" / "trainer_state.json").read_text())
    assert state["global_step"] == 4
    logged = [entry["step"] for entry in state["log_history"] if "loss" in entry]
    assert logged[0] == 1 and logged[-1] == 4  # steps 1-2 come from the first run's state, 3-4 from the resumed one


def test_warm_start_reinitialises_head_for_new_labels(tiny_model_dir: Path, tmp_path: Path, caplog) -> None:
    from src.train import train

    conll = tmp_path / "conll"
    conll.mkdir()
    for split in ("train", "dev", "test"):
        (conll / f"{split}.txt").write_text(
            "-DOCSTART- -X- -X- O\n\nPutin NNP B-NP B-PER\nvisits VBZ B-VP O\nMoscow NNP B-NP B-LOC\n. . O O\n\n",
            encoding="utf-8",
        )
    data = [f"data.dir={conll}"]
    quick = ["trainer.load_best_model_at_end=false", "trainer.eval_strategy=no"]
    first = compose_train_config(
        ["data=conll2003", *data, f"model.name_or_path={tiny_model_dir}", *TINY_TRAIN, *quick], tmp_path / "conll-run"
    )
    train(first)
    head_init = "model.head_init={PERSON: PER, GPE: LOC}"
    warm = f"model.name_or_path={tmp_path / 'conll-run'}"
    second = compose_train_config([warm, head_init, *TINY_TRAIN, "trainer.max_steps=1"], tmp_path / "seeds")
    with caplog.at_level("WARNING"):
        metrics, _ = train(second)
    assert "re-initialising the head" in caplog.text
    assert "B-PERSON<-B-PER" in caplog.text and "I-GPE<-I-LOC" in caplog.text and "O<-O" in caplog.text
    assert metrics["task"] == "ner"


def test_conll_dev_split_selects_by_word_f1(tiny_model_dir: Path, tmp_path: Path) -> None:
    """With a dev split the Trainer scores it through the task's dev metric (whole words, strict IOB2)."""
    from src.train import train

    conll = tmp_path / "conll"
    conll.mkdir()
    for split in ("train", "dev", "test"):
        (conll / f"{split}.txt").write_text(CONLL_SNIPPET, encoding="utf-8")
    steps = ["trainer.eval_strategy=steps", "trainer.eval_steps=2", "trainer.save_strategy=steps"]
    steps += ["trainer.save_steps=2", "trainer.keep_checkpoints=true", "trainer.load_best_model_at_end=false"]
    cfg = compose_train_config(
        ["data=conll2003", f"data.dir={conll}", f"model.name_or_path={tiny_model_dir}", *TINY_TRAIN, *steps],
        tmp_path / "run",
    )
    train(cfg)
    [state_file] = sorted((tmp_path / "run" / "checkpoints").glob("checkpoint-*/trainer_state.json"))[-1:]
    state = json.loads(state_file.read_text())
    scores = [entry["eval_f1"] for entry in state["log_history"] if "eval_f1" in entry]
    assert scores and all(0.0 <= f1 <= 1.0 for f1 in scores)


def test_cli_writes_hydra_run_folder(tiny_model_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    proc = run_train(
        "task=stance", f"model.name_or_path={tiny_model_dir}", *TINY_TRAIN, f"hydra.run.dir={out}", cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (out / ".hydra" / "config.yaml").is_file() and (out / "model" / "model.safetensors").is_file()
    assert "macro" in (out / "report.md").read_text().lower()
    # A short screen: the per-label table, the report's path, one closing line; no load-report tables.
    console = proc.stdout + proc.stderr
    assert "| leverage |" in console and f"{out / 'report.md'}" in console
    assert f"Model ready: {out / 'model'}" in console and f"python -m src.predict --model {out}" in console
    assert "LOAD REPORT" not in console and "## Errors" not in console
    assert not (out / "checkpoints").exists()


def test_incomplete_warm_start_folder_fails_at_once(tiny_model_dir: Path, tmp_path: Path) -> None:
    """An interrupted `make conll` leaves a run folder without a model: say so, not a tokenizer error."""
    broken = tmp_path / "conll2003"
    (broken / ".hydra").mkdir(parents=True)
    proc = run_train(*TINY_TRAIN, f"model.name_or_path={broken}", f"hydra.run.dir={tmp_path}/x")
    console = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "not a complete model folder" in console and "make conll" in console and "sentencepiece" not in console


def test_plain_fallback_says_it_is_the_weaker_model(tiny_model_dir: Path, tmp_path: Path, caplog) -> None:
    from src.train import train

    overrides = ["task=ner", "experiment=seeds_ner_plain", f"model.name_or_path={tiny_model_dir}", *TINY_TRAIN]
    old = os.umask(0o022)
    try:
        with caplog.at_level("WARNING"):
            _, out = train(compose_train_config(overrides, tmp_path / "run"))
    finally:
        os.umask(old)
    assert "without the CoNLL-2003 warm start" in caplog.text
    assert "without the CoNLL-2003 warm start" in (out / "model" / "README.md").read_text()
    # Another user (a service account) can read everything the run wrote.
    for path in out.rglob("*"):
        assert path.stat().st_mode & 0o004, f"{path} is not readable by others"


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("task=sentiment", "sentiment"),
        ("data.path=/nonexistent/file.jsonl", "no such file"),
        ("data.fold=9", "fold"),
        ("trainer.device=tpu", "expected auto, cpu or cuda"),
        ("model.name_or_path=/nonexistent/runs/conll2003", "make conll"),
        ("trainer.learning_rate=abc", "trainer.learning_rate='abc': expected a number > 0"),
        ("trainer.num_train_epochs=-1", "trainer.num_train_epochs=-1: expected a number > 0"),
        ("trainer.per_device_train_batch_size=0", "trainer.per_device_train_batch_size=0"),
        ("task.stride=60", "task.stride=60: must be below task.max_length=64"),
        ("+trainer.no_such_field=1", "trainer: "),
        ("seed=abc", "seed='abc': expected an integer"),
        ("seed=-1", "seed=-1: expected an integer"),
        ("data.extra_fold=0", "data.extra_fold=0 holds out an outlet"),
    ],
)
def test_bad_config_fails_clearly(override: str, message: str, tiny_model_dir: Path, tmp_path: Path) -> None:
    """A user's mistake: one error naming the key, raised before anything is written into the run folder. In
    process (a subprocess per case costs seconds of imports); the command line's exit 2 and one line without a
    traceback: ``test_a_bad_config_is_one_line_and_exit_2``."""
    from hydra.errors import HydraException

    from src.train import USER_ERRORS, train

    out = tmp_path / "x"
    args = [f"model.name_or_path={tiny_model_dir}", *TINY_TRAIN, "trainer.max_steps=-1", override]
    with pytest.raises((*USER_ERRORS, HydraException)) as caught:
        train(compose_train_config(args, out))
    assert message in str(caught.value)
    assert not out.exists() or not any(out.iterdir())


@pytest.mark.parametrize(("override", "code"), [("task=sentiment", 1), ("trainer.device=tpu", 2)])
def test_a_bad_config_is_one_line_and_exit_2(override: str, code: int, tiny_model_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "x"
    proc = run_train(
        f"model.name_or_path={tiny_model_dir}", *TINY_TRAIN, "trainer.max_steps=-1", f"hydra.run.dir={out}", override
    )
    assert proc.returncode == code, proc.stderr[-2000:]  # 1: Hydra's own error for an unknown config group option
    assert "error" in proc.stderr.lower() and "Traceback" not in proc.stderr
    assert not (out / ".hydra").exists()


def test_hub_id_goes_to_the_hub_not_to_a_folder_check(tmp_path: Path) -> None:
    """Offline, a Hub id fails with the Hub's own message, not as a missing folder."""
    hub_id = "sentence-transformers/all-MiniLM-L6-v2"
    proc = run_train(*TINY_TRAIN, f"model.name_or_path={hub_id}", "experiment=none", f"hydra.run.dir={tmp_path}/x")
    assert proc.returncode == 2 and hub_id in proc.stderr
    assert "no such folder" not in proc.stderr and "Traceback" not in proc.stderr


def test_resume_refuses_another_config_and_finished_runs(tiny_model_dir: Path, tmp_path: Path) -> None:
    """Resuming with another fold would report a fold the model was trained on; a finished run is never redone."""
    out = tmp_path / "run"
    base = ["task=stance", f"model.name_or_path={tiny_model_dir}", *TINY_TRAIN, "trainer.save_strategy=steps"]
    base += ["trainer.save_steps=2", "trainer.keep_checkpoints=true", f"hydra.run.dir={out}"]
    assert run_train(*base).returncode == 0
    finished = {p: p.read_bytes() for p in (out / ".hydra" / "config.yaml", out / "metrics.json")}
    again = run_train(*base, "trainer.resume_from_checkpoint=true", "data.fold=1")
    assert again.returncode == 2 and "never overwritten or resumed" in again.stderr
    assert all(p.read_bytes() == data for p, data in finished.items())

    shutil.rmtree(out / "model")  # as if killed after the last checkpoint, before the model was saved
    other = run_train(*base, "trainer.resume_from_checkpoint=true", "data.fold=1")
    assert other.returncode == 2 and "data.fold=0 -> 1" in other.stderr
    assert all(p.read_bytes() == data for p, data in finished.items())
    fresh = run_train(*base)
    assert fresh.returncode == 2 and "interrupted run" in fresh.stderr
    same = run_train(*base, "trainer.resume_from_checkpoint=true")
    assert same.returncode == 0, same.stderr[-2000:]
    assert (out / "model" / "model.safetensors").is_file()


def test_two_process_data_parallel_run(tiny_model_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "ddp"
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "src.train"]
    proc = run_train(
        "task=ner", f"model.name_or_path={tiny_model_dir}", *TINY_TRAIN, f"hydra.run.dir={out}", module=torchrun
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (out / "model" / "model.safetensors").is_file() and (out / "metrics.json").is_file()
    assert len(list(tmp_path.rglob("config.yaml"))) == 1  # only rank 0 wrote Hydra's files


@pytest.mark.slow
def test_end_to_end_on_default_model(tmp_path: Path) -> None:
    """The real packaged all-MiniLM-L6-v2, a few steps through the real entry point."""
    out = tmp_path / "e2e"
    # experiment=none: the packaged model itself, not the CoNLL warm start (which `make conll` builds first).
    proc = run_train(
        "task=ner", "experiment=none", "trainer.max_steps=3", "trainer.save_strategy=no", f"hydra.run.dir={out}"
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["task"] == "ner" and 0.0 <= metrics["micro"]["f1"] <= 1.0
    config = json.loads((out / "model" / "config.json").read_text())
    assert config["hidden_size"] == 384 and config["num_hidden_layers"] == 6


def test_a_new_data_config_trains_without_experiment_files(tiny_model_dir: Path, tmp_path: Path) -> None:
    """`experiment: ${data}_${task}` is optional: a data config of one's own trains with the group defaults (said
    in one line), while a named experiment that does not exist is refused."""
    extra = tmp_path / "configs" / "data"
    extra.mkdir(parents=True)
    shutil.copy(ROOT / "configs" / "data" / "seeds.yaml", extra / "mine.yaml")
    common = [
        "--config-dir",
        str(tmp_path / "configs"),
        "data=mine",
        "task=stance",
        f"model.name_or_path={tiny_model_dir}",
    ]
    done = run_train(*common, *TINY_TRAIN, f"hydra.run.dir={tmp_path / 'run'}")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "no configs/experiment/mine_stance.yaml: no tuned settings" in done.stdout + done.stderr
    assert (tmp_path / "run" / "model" / "config.json").is_file()
    typo = run_train(*common, "experiment=seeds_stanse", f"hydra.run.dir={tmp_path / 'typo'}")
    assert typo.returncode == 2 and "experiment=seeds_stanse: no configs/experiment/seeds_stanse.yaml" in typo.stderr
    assert not (tmp_path / "typo" / ".hydra").exists()  # refused before the run is recorded
