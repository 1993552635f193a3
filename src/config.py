"""OmegaConf resolvers used by the Hydra configs (registered before composing)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from transformers import TrainingArguments

from src.errors import ConfigError
from src.labels import LabelScheme
from src.model import packaged_model_path, resolve_device
from src.prototypes import check_phrases

__all__ = ["ConfigError", "check_train_config", "register_resolvers", "setting_of", "training_arguments"]

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def register_resolvers() -> None:
    """``${packaged_model:PKG}``: a model folder shipped in a Python package; ``${project_root:}``: the repository."""
    if not OmegaConf.has_resolver("packaged_model"):
        OmegaConf.register_new_resolver("packaged_model", packaged_model_path)
    if not OmegaConf.has_resolver("project_root"):
        OmegaConf.register_new_resolver("project_root", lambda: str(PROJECT_ROOT))


# trainer.* keys with a type and range; TrainingArguments checks the rest (its errors are re-raised naming trainer).
TRAINER_RULES = {
    "learning_rate": (float, lambda v: v > 0, "a number > 0"),
    "num_train_epochs": (float, lambda v: v > 0, "a number > 0 (or trainer.max_steps > 0)"),
    "max_steps": (int, lambda v: v == -1 or v > 0, "-1 (use num_train_epochs) or an integer > 0"),
    "per_device_train_batch_size": (int, lambda v: v >= 1, "an integer >= 1"),
    "per_device_eval_batch_size": (int, lambda v: v >= 1, "an integer >= 1"),
    "gradient_accumulation_steps": (int, lambda v: v >= 1, "an integer >= 1"),
    "warmup_steps": (float, lambda v: v >= 0, "a number >= 0 (below 1: a ratio of the steps)"),
    "weight_decay": (float, lambda v: v >= 0, "a number >= 0"),
    "max_grad_norm": (float, lambda v: v >= 0, "a number >= 0"),
    "logging_steps": (float, lambda v: v > 0, "a number > 0"),
    "save_total_limit": (int, lambda v: v >= 1, "an integer >= 1 or null"),
    "dataloader_num_workers": (int, lambda v: v >= 0, "an integer >= 0"),
}
TASK_RULES = {
    "max_length": (int, lambda v: v >= 16, "an integer >= 16"),
    "stride": (int, lambda v: v >= 0, "an integer >= 0"),
    "mask_names": (float, lambda v: 0 <= v <= 1, "a probability from 0 to 1"),
}
SELF_TRAINING_RULES = {
    "rounds": (int, lambda v: v >= 0, "an integer >= 0"),
    "confidence": (float, lambda v: 0 < v <= 1, "a probability above 0, at most 1"),
    "per_label": (int, lambda v: v >= 1, "an integer >= 1"),
    "temperature": (float, lambda v: v > 0, "a number > 0"),
}


def check_values(section: str, values: dict, rules: dict) -> None:
    """Raise ``ConfigError`` for the first ``section.key`` whose value has the wrong type or range."""
    for key, (kind, ok, what) in rules.items():
        value = values.get(key)
        if value is None or (key == "num_train_epochs" and (values.get("max_steps") or -1) > 0):
            continue
        wrong_type = isinstance(value, bool) or not isinstance(value, int if kind is int else (int, float))
        if wrong_type or not ok(value):
            raise ConfigError(f"{section}.{key}={value!r}: expected {what}")


def check_train_config(cfg) -> None:
    """Fail before any work on values that would crash mid-run or, worse, train nothing and exit 0."""
    seed = cfg.get("seed")
    if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < 2**32:
        raise ConfigError(f"seed={seed!r}: expected an integer from 0 to 2**32 - 1")
    check_values("trainer", cfg.trainer, TRAINER_RULES)
    check_values("task", cfg.task, TASK_RULES)
    if cfg.task.get("self_training") is not None:
        check_values("task.self_training", cfg.task.self_training, SELF_TRAINING_RULES)
    if cfg.task.stride >= cfg.task.max_length - 8:
        raise ConfigError(
            f"task.stride={cfg.task.stride}: must be below task.max_length={cfg.task.max_length} minus room for the "
            "special tokens, or consecutive windows would not move forward"
        )

    try:
        scheme = LabelScheme.from_config(cfg.data, f"data config {cfg.data.get('name')}")
    except ValueError as err:
        raise ConfigError(str(err)) from None
    if cfg.task.get("prototypes") is not None:
        check_phrases(OmegaConf.to_container(cfg.task.prototypes), list(scheme.stance_labels))
    check_templates(cfg.task)
    types = cfg.task.get("mask_name_types")
    if (cfg.task.get("mask_names") or 0) > 0 and types and not set(types) <= set(scheme.entity_labels):
        raise ConfigError(
            f"task.mask_name_types={list(types)}: expected entity labels of the data config "
            f"({', '.join(scheme.entity_labels)}); names of other types would never be masked"
        )
    if cfg.trainer.device not in ("auto", "cpu", "cuda"):
        raise ConfigError(f"trainer.device={cfg.trainer.device!r}: expected auto, cpu or cuda")


def check_templates(task: DictConfig) -> None:
    """``task.phrase_templates``: null, or sentences with ``{phrase}`` that need ``task.prototypes``' phrases."""
    templates = task.get("phrase_templates")
    if not templates:
        return
    if isinstance(templates, str) or not all(isinstance(t, str) and "{phrase}" in t for t in templates):
        raise ConfigError(f"task.phrase_templates={templates!r}: expected a list of sentences with {{phrase}} in each")
    if task.get("prototypes") is None:
        raise ConfigError("task.phrase_templates: needs the phrases of task.prototypes (it is null)")


# trainer.* keys that are newsframe's own, not TrainingArguments fields.
OWN_TRAINER_KEYS = {"device", "resume_from_checkpoint", "keep_checkpoints"}


def training_arguments(cfg: DictConfig) -> TrainingArguments:
    """TrainingArguments from ``trainer.*``, with the device decided here: CUDA (bf16 where supported) or CPU."""
    args: dict[str, Any] = {k: v for k, v in OmegaConf.to_container(cfg.trainer).items() if k not in OWN_TRAINER_KEYS}
    try:
        cuda = resolve_device(cfg.trainer.device).type == "cuda"
    except ValueError as err:
        raise ConfigError(f"trainer.device={cfg.trainer.device}: {err}") from None
    if args.get("bf16") is None:
        import torch

        args["bf16"] = cuda and torch.cuda.is_bf16_supported()
    if not cuda:
        args["use_cpu"] = True
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:
            args.setdefault("ddp_backend", "gloo")
    try:
        return TrainingArguments(output_dir=str(Path(cfg.paths.output_dir) / "checkpoints"), seed=cfg.seed, **args)
    except (TypeError, ValueError) as err:  # e.g. an unknown +trainer.FIELD or a value transformers rejects
        raise ConfigError(f"trainer: {err}") from None


# Keys that say where and how a run is saved, logged or resumed, not which model it trains.
RUN_ONLY_KEYS = frozenset(
    {
        *(f"trainer.{k}" for k in ("disable_tqdm", "save_strategy", "save_steps", "save_total_limit", "report_to")),
        *(f"trainer.{k}" for k in ("logging_steps", "keep_checkpoints", "resume_from_checkpoint")),
    }
)


# Keys added to the configs after runs were trained, with the value that trains as those runs did: a run config
# without one reads as having it, so a CV pools (and a calibration fits) runs from before and after the key existed.
ADDED_KEYS: dict[str, Any] = {
    "task.mask_names": 0.0,
    "task.phrase_templates": None,
    "data.stance_none_label": "neutral",
    "data.unlabelled": None,
}
# Keys that change nothing while a switch is at its off value: left out of a setting then.
INERT_WHEN_OFF: dict[str, tuple[str, Any]] = {
    "task.mask_name_types": ("task.mask_names", 0.0),
    **{
        f"task.self_training.{k}": ("data.unlabelled", None)
        for k in ("rounds", "confidence", "per_label", "temperature")
    },
}


def setting_of(cfg: DictConfig | dict, also: frozenset[str] = frozenset()) -> dict[str, Any]:
    """``{"a.b": value}`` of the keys of a run config that make its model (interpolations as written): all but
    ``paths.*``, ``RUN_ONLY_KEYS`` and ``also``, with ``ADDED_KEYS`` filled in and ``INERT_WHEN_OFF`` keys left out
    while their switch is off. Two runs with equal settings train the same model."""

    def flat(node: dict, prefix: str = "") -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in node.items():
            if isinstance(value, dict) and value:
                out.update(flat(value, f"{prefix}{key}."))
            else:
                out[f"{prefix}{key}"] = value
        return out

    node = cfg if isinstance(cfg, dict) else OmegaConf.to_container(cfg, resolve=False)
    skip = RUN_ONLY_KEYS | also
    setting = {k: v for k, v in flat(node).items() if k not in skip and not k.startswith("paths.")}
    for key, old in ADDED_KEYS.items():
        if key.split(".")[0] in node and key not in skip:
            setting.setdefault(key, old)
    for key, (switch, off) in INERT_WHEN_OFF.items():
        if setting.get(switch, off) == off:
            setting.pop(key, None)
    return setting
