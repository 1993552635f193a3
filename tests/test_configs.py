"""Every config file composes into TrainingArguments, and every src.train / src.evaluate command of README.md composes.

Composition is in-process (Hydra's compose API, as ``python -m src.train ... --cfg job`` composes, without a
subprocess per command); a multirun line is composed once per job of its sweep. No model is loaded.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from tests.conftest import ROOT, compose_train_config

CONFIGS = ROOT / "configs"
README = ROOT / "README.md"
# `.venv/bin/python -m src.X`, `python -m src.X` or `torchrun [options] -m src.X`, then the arguments.
COMMAND = re.compile(r"^(?:(?:\.venv/bin/)?python3? |torchrun (?:\S+ )*?)-m (src\.train|src\.evaluate)(?=\s|$)(.*)$")


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONFIGS / group).glob("*.yaml"))


def build(cfg) -> None:
    """What src.train does with a config before loading anything: resolve it, check it, build TrainingArguments."""
    from src.config import ConfigError, check_train_config, training_arguments

    OmegaConf.to_container(cfg, resolve=True)  # every interpolation resolves
    check_train_config(cfg)
    if cfg.trainer.device == "cuda" and not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="no CUDA device"):
            training_arguments(cfg)
        cfg.trainer.device = "cpu"  # the rest of the trainer group must still be valid TrainingArguments
    args = training_arguments(cfg)
    assert args.learning_rate == cfg.trainer.learning_rate and args.seed == cfg.seed


# ---------------------------------------------------------------- config files


def experiment_overrides(name: str) -> list[str]:
    """An experiment with the data set and task its name is for (``<data>_<task>[_variant]``)."""
    data = next((d for d in options("data") if name.startswith(f"{d}_")), "seeds")
    task = "stance" if "_stance" in name else "ner"
    return [f"data={data}", f"task={task}", f"experiment={name}"]


@pytest.mark.parametrize("name", options("experiment"))
def test_every_experiment_composes_and_builds_training_arguments(name, tmp_path):
    cfg = compose_train_config(experiment_overrides(name), tmp_path)
    build(cfg)


@pytest.mark.parametrize(
    "override", [f"{group}={option}" for group in ("task", "model", "trainer") for option in options(group)]
)
@pytest.mark.parametrize("experiment", [[], ["experiment=none"]], ids=["tuned", "bare"])
def test_every_group_option_composes_and_builds_training_arguments(override, experiment, tmp_path):
    cfg = compose_train_config([override, *experiment], tmp_path)
    group = override.split("=")[0]
    assert cfg[group] is not None
    build(cfg)
    if override == "model=hub" and experiment:  # the tuned NER experiment sets its own (warm-start) model
        assert cfg.model.name_or_path == "bert-base-cased"


def test_experiment_files_cover_every_default_pair():
    """``experiment: ${data}_${task}`` must find a file for each data set the task can train on."""
    names = set(options("experiment"))
    assert {"seeds_ner", "seeds_stance", "conll2003_ner"} <= names


# ---------------------------------------------------------------- README commands


def readme_commands(text: str) -> list[tuple[str, list[str], str]]:
    """``(module, arguments, line)`` of every src.train / src.evaluate command in the fenced code blocks of ``text``;
    backslash continuations are joined, ``# comments`` dropped, ``[optional]`` arguments kept without brackets."""
    found = []
    for block in re.findall(r"^```[^\n]*\n(.*?)^```", text, flags=re.M | re.S):
        for line in re.sub(r"\\\n\s*", " ", block).splitlines():
            match = COMMAND.match(line.strip())
            if match:
                args = [a[1:-1] if a.startswith("[") and a.endswith("]") else a for a in shlex.split(match[2], True)]
                found.append((match[1], args, line.strip()))
    return found


def check_train_command(args: list[str], output_dir: Path) -> int:
    """Compose ``python -m src.train ARGS`` as Hydra would (each job of a ``-m`` sweep); returns the jobs composed.
    Raises on a key that does not exist, a bad group option, a value TrainingArguments rejects, ..."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    multirun = any(a in ("-m", "--multirun") for a in args)
    overrides = [a for a in args if a not in ("-m", "--multirun")]
    assert all("=" in a for a in overrides), f"not a key=value override: {overrides}"
    if multirun:
        parsed = OverridesParser.create().parse_overrides(overrides)
        jobs = [job for batch in BasicSweeper.split_arguments(parsed, None) for job in batch]
    else:
        jobs = [overrides]
    for job in jobs:
        build(compose_train_config(job, output_dir))
    return len(jobs)


def check_evaluate_command(args: list[str]) -> None:
    """Parse ``python -m src.evaluate ARGS`` as the command does (placeholders such as DIR and FILE are values)."""
    from src.evaluate.__main__ import load_config

    cfg = load_config(args)
    assert (cfg.model is None) != (cfg.cv is None), "exactly one of model= or cv="
    assert cfg.cv is not None or cfg.data.path is not None or cfg.behaviour is not None, "model= needs data.path="


README_COMMANDS = readme_commands(README.read_text(encoding="utf-8"))


def test_readme_has_the_commands():
    modules = [module for module, _, _ in README_COMMANDS]
    assert modules.count("src.train") >= 8 and modules.count("src.evaluate") >= 3
    assert any(line.startswith("torchrun") for _, _, line in README_COMMANDS)
    assert any("-m" in args for module, args, _ in README_COMMANDS if module == "src.train")


@pytest.mark.parametrize("module,args,line", README_COMMANDS, ids=[line[:70] for _, _, line in README_COMMANDS])
def test_every_readme_command_composes(module, args, line, tmp_path):
    if module == "src.train":
        assert check_train_command(args, tmp_path) >= 1
    else:
        check_evaluate_command(args)


@pytest.mark.parametrize(
    "line,error",
    [
        ("python -m src.train model.name_or_path=/m trainer.learning_rate=3e-5 trainer.seed=7", "trainer.seed"),
        ("python -m src.train task=sentiment", "sentiment"),
        ("python -m src.train -m data.fold=0,1 trainer.learning_rate=abc", "learning_rate"),
        ("python -m src.train data.fold=0,1", "Ambiguous value"),  # a sweep without -m
        ("python -m src.train task=ner task.class_weighting=true", "class_weighting"),  # stance only
    ],
)
def test_a_broken_readme_command_fails(line, error, tmp_path):
    """The checks catch what once reached the README (``trainer.seed``: the key is top-level ``seed``)."""
    ((_, args, _),) = readme_commands(f"```\n{line}  # a comment\n```\n")
    with pytest.raises(Exception, match=re.escape(error)):
        check_train_command(args, tmp_path)


def test_a_broken_evaluate_command_fails():
    for line in ("python -m src.evaluate cv=DIR bogus=1", "python -m src.evaluate data.path=FILE"):
        ((_, args, _),) = readme_commands(f"```\n{line}\n```\n")
        with pytest.raises((ValueError, AssertionError)):
            check_evaluate_command(args)


def test_readme_parsing_joins_continuations_and_drops_comments():
    text = "```\nx\npython -m src.train -m a=1,2 \\\n  b=3  # c\n"
    text += "torchrun --standalone -m src.evaluate [out_dir=DIR]\n```\n"
    assert [(m, a) for m, a, _ in readme_commands(text)] == [
        ("src.train", ["-m", "a=1,2", "b=3"]),
        ("src.evaluate", ["out_dir=DIR"]),
    ]


def test_the_cli_prints_a_readme_config_and_exits():
    """One real ``--cfg job`` run: the command line composes as the in-process checks do, without training."""
    args = next(a for m, a, _ in README_COMMANDS if m == "src.train" and "-m" not in a and "seed=7" in a)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "src.train", *args, "--cfg", "job"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert OmegaConf.create(done.stdout).seed == 7


def test_a_run_from_before_a_key_existed_has_the_same_setting() -> None:
    """Runs trained before ``task.mask_names`` existed pool with later ones in a CV (the key's default trains as they
    did), and the names list counts only while masking is on."""
    from src.config import setting_of

    before = {"task": {"name": "stance", "max_length": 256}, "seed": 42}
    after = {"task": {"name": "stance", "max_length": 256, "mask_names": 0.0, "mask_name_types": ["GPE"]}, "seed": 42}
    assert setting_of(before) == setting_of(after)
    on = {"task": {**after["task"], "mask_names": 0.5}, "seed": 42}
    assert setting_of(on) != setting_of(after) and setting_of(on)["task.mask_name_types"] == ["GPE"]
