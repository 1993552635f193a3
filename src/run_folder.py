"""The run folder's rules: finished work is never overwritten, and a resumed run is the run it resumes.

``check_run_folder`` refuses before any work; ``save_run_config`` writes Hydra's record of the run
(``.hydra/config.yaml``; Hydra's own writer is off, ``hydra.output_subdir=null``) only once a run is accepted, so a
refused run leaves the folder as it was.
"""

from __future__ import annotations

import os
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from src.config import ConfigError, setting_of
from src.files import write_atomic


def is_main_process() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


# Besides where and how it saves and logs (``RUN_ONLY_KEYS``), a resumed run may change only how long it goes on;
# any other difference (data, fold, task, model, learning rate, ...) would mix two experiments in one model.
RESUME_MAY_CHANGE = frozenset({"trainer.max_steps", "trainer.num_train_epochs"})


def folder_problem(path: Path) -> str | None:
    """Why the folder ``path`` cannot be made or written (None: it can): the nearest existing part of it must be a
    writable folder."""
    for part in (path, *path.parents):
        if part.exists():
            if not part.is_dir():
                return f"{part} is a file, not a folder"
            if not os.access(part, os.W_OK | os.X_OK):
                return f"{part} is not writable"
            return None
    return None


def check_folder_overrides(argv: list[str]) -> None:
    """Refuse a ``hydra.run.dir`` / ``hydra.sweep.dir`` that cannot be made, before Hydra tries (its mkdir would end
    in a traceback)."""
    for arg in argv:
        key, _, value = arg.partition("=")
        if key in ("hydra.run.dir", "hydra.sweep.dir") and value and "${" not in value:
            problem = folder_problem(Path(value))
            if problem:
                raise ConfigError(f"{arg}: cannot make the run folder ({problem})")


def check_experiment(configs: Path) -> str | None:
    """Under ``hydra.main``: the experiment file (tuned overrides) the run composed, checked. The defaults list takes
    ``experiment: ${data}_${task}`` as optional, so a new data config needs no experiment files: that case is a
    line to say (returned), while an ``experiment=`` the user named that does not exist is refused."""
    if not HydraConfig.initialized():
        return None
    name = HydraConfig.get().runtime.choices.get("experiment")
    if name is None or (configs / "experiment" / f"{name}.yaml").is_file():
        return None
    if any(o.split("=", 1)[0].lstrip("+~") == "experiment" for o in HydraConfig.get().overrides.task):
        options = ", ".join(sorted(p.stem for p in (configs / "experiment").glob("*.yaml")))
        raise ConfigError(f"experiment={name}: no configs/experiment/{name}.yaml (options: {options})")
    return f"no configs/experiment/{name}.yaml: no tuned settings for this data and task, the group defaults train"


def check_run_folder(cfg: DictConfig, out: Path) -> None:
    """Refuse what would overwrite finished work or mix two configs in one folder.

    A resumed run must have the config it started with (``.hydra/config.yaml``, which ``save_run_config`` writes
    only once a run is accepted, so a refused run leaves the folder as it was).
    """
    resume = cfg.trainer.resume_from_checkpoint
    # true: this folder's latest checkpoint; a path: .../<run>/checkpoints/checkpoint-N of some run.
    started = out if resume is True or resume in ("true", "True") else Path(str(resume)).parent.parent
    saved = started / ".hydra" / "config.yaml"
    if (out / "model").exists():
        raise FileExistsError(
            f"{out / 'model'} exists: a finished run is never overwritten or resumed; choose another hydra.run.dir"
        )
    if resume:
        if not saved.is_file():
            raise ConfigError(f"trainer.resume_from_checkpoint={resume}: no run to resume (no {saved})")
        before, now = setting_of(OmegaConf.load(saved), RESUME_MAY_CHANGE), setting_of(cfg, RESUME_MAY_CHANGE)
        changed = sorted(k for k in before.keys() | now.keys() if before.get(k) != now.get(k))
        if changed:
            diff = ", ".join(f"{k}={before.get(k)!r} -> {now.get(k)!r}" for k in changed[:5])
            raise ConfigError(
                f"trainer.resume_from_checkpoint: the run in {started} was started with other settings ({diff}); "
                "resume with the same settings, or start a new run in another hydra.run.dir"
            )
    elif (out / "checkpoints").exists():
        raise FileExistsError(
            f"{out} holds an interrupted run: continue it with trainer.resume_from_checkpoint=true, or choose "
            "another hydra.run.dir"
        )


def save_run_config(cfg: DictConfig, out: Path) -> None:
    """Hydra's record of the run, written by rank 0 once the run is accepted."""
    if not is_main_process():
        return
    write_atomic(out / ".hydra" / "config.yaml", OmegaConf.to_yaml(cfg))
    if HydraConfig.initialized():
        write_atomic(out / ".hydra" / "overrides.yaml", OmegaConf.to_yaml(HydraConfig.get().overrides.task))
