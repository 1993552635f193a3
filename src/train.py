"""Fine-tune a transformer for NER or sentence stance: ``python -m src.train [overrides]``.

``train(cfg)`` only composes, top to bottom: data, task, model, Trainer, fit, the model folder, the held-out
evaluation. What differs between the tasks lives in ``src.tasks``; the folder's contract in ``src.model_folder``.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import time
from collections import Counter
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import hydra
import torch
from omegaconf import DictConfig, OmegaConf
from transformers import Trainer, set_seed

from src.config import ConfigError, check_train_config, register_resolvers, training_arguments
from src.data.records import DataError
from src.data.splits import load_splits
from src.evaluate.checkpoint import evaluate_records
from src.evaluate.report import console_summary
from src.files import PROJECT_ROOT, write_json
from src.model import ModelNotFound, load_for_training, load_tokenizer, resolve_model_dir
from src.model_folder import ModelFolder, held_out_entry
from src.predict.engine import Predictor
from src.predict.io import iter_inputs
from src.run_folder import check_experiment, check_folder_overrides, check_run_folder, is_main_process, save_run_config
from src.tasks import Task, get_task

log = logging.getLogger(__name__)


def resolve_base(cfg: DictConfig) -> str:
    """The folder or Hub id to start from; a missing or unfinished local folder fails here, before any work."""
    try:
        return resolve_model_dir(cfg.model.name_or_path)
    except ModelNotFound as err:
        raise ModelNotFound(
            f"model.name_or_path: {err}. The tuned NER default warm-starts from the CoNLL-2003 model: build it with "
            "`make conll`, or train from the packaged model with experiment=seeds_ner_plain"
        ) from None


def train(cfg: DictConfig) -> tuple[dict | None, Path]:
    """Train one model as configured; returns the held-out metrics (None without a held-out part) and the run folder."""
    task = get_task(cfg.task.name)
    check_train_config(cfg)
    untuned = check_experiment(PROJECT_ROOT / "configs")
    if untuned:
        log.warning("%s", untuned)
    args = training_arguments(cfg)
    out = Path(cfg.paths.output_dir)
    check_run_folder(cfg, out)
    started = time.perf_counter()

    train_records, dev_records, test_records, provenance = load_splits(cfg.data)
    base = resolve_base(cfg)
    if cfg.get("notice"):
        log.warning("%s", cfg.notice)
    pool, pool_provenance = unlabelled_pool(cfg, test_records)
    provenance = provenance | pool_provenance
    save_run_config(cfg, out)
    try:
        tokenizer = load_tokenizer(base, cfg.model.trust_remote_code)
    except OSError as err:  # a Hub id that is offline, unknown or gated: the Hub's own message, with the key
        raise ModelNotFound(f"model.name_or_path={base}: {err}") from None
    augmented = task.augmented(train_records, cfg.task, cfg.seed, tokenizer.mask_token)
    trainer, result, n_windows = fit(cfg, task, base, tokenizer, augmented, dev_records, args)
    for round_ in range(int(cfg.task.self_training.rounds) if pool else 0):
        pseudo = pseudo_label(cfg, task, trainer, tokenizer, base, provenance, train_records, pool, out)
        log.info("self-training round %d: %s", round_ + 1, describe_pseudo(pseudo))
        provenance = provenance | {"self_training_rounds": round_ + 1}
        trainer, result, n_windows = fit(cfg, task, base, tokenizer, augmented + pseudo, dev_records, args, False)
    if not trainer.is_world_process_zero():
        return None, out

    # The model folder is written beside its final place and renamed into it once complete.
    tmp_dir, model_dir = out / "model.tmp", out / "model"
    record, load = finished_folder(tmp_dir, cfg, task, trainer, tokenizer, base, provenance, train_records)
    metrics = None
    if test_records:
        metrics, paths = evaluate_records(load(), test_records, out)
        record.provenance.held_out = held_out_entry(metrics)
        print(console_summary(metrics, paths["report"]))
    record.save(tmp_dir)  # the record and its card, complete
    os.replace(tmp_dir, model_dir)
    if not cfg.trainer.keep_checkpoints:
        shutil.rmtree(out / "checkpoints", ignore_errors=True)  # resume state is not needed once the model is saved
    return metrics, finish_run(cfg, task, out, model_dir, trainer, result, n_windows, started)


def finish_run(
    cfg: DictConfig,
    task: Task,
    out: Path,
    model_dir: Path,
    trainer: Trainer,
    result: Any,
    n_windows: int,
    started: float,
) -> Path:
    """``train_summary.json`` and the console's last line; returns the run folder."""
    minutes = (time.perf_counter() - started) / 60
    summary = {k: result.metrics.get(k) for k in ("train_runtime", "train_samples_per_second")}
    summary |= {"task": task.name, "train_windows": n_windows, "wall_minutes": round(minutes, 2)}
    write_json(out / "train_summary.json", {**summary, "device": str(trainer.args.device)})
    print(
        f"\nModel ready: {model_dir} ({minutes:.1f} min). Next: python -m src.predict --model {out} "
        "-o predictions.jsonl YOUR_ARTICLES/"
    )
    return out


def fit(
    cfg: DictConfig,
    task: Task,
    base: str,
    tokenizer,
    records: list[dict],
    dev_records: list[dict],
    args,
    resume: bool = True,
) -> tuple[Trainer, Any, int]:
    """A fresh model from ``base`` trained on ``records``: ``(trainer, train output, training windows)``."""
    set_seed(cfg.seed)
    head_init = OmegaConf.to_container(cfg.model.head_init) if cfg.model.get("head_init") else None
    try:
        model = load_for_training(task, base, task.labels(cfg.data), cfg.model.trust_remote_code, head_init)
    except OSError as err:
        raise ModelNotFound(f"model.name_or_path={base}: {err}") from None
    label2id = {k: int(v) for k, v in model.config.label2id.items()}
    windows = (label2id, cfg.task.max_length, cfg.task.stride)
    train_set, _, _ = task.dataset(tokenizer, records, *windows, cfg.task)
    log.info("%s: %d training windows from %d documents", task.name, len(train_set), len(records))
    dev_set, dev_metric = None, None
    if dev_records:
        dev_set, encoding, targets = task.dataset(tokenizer, dev_records, *windows, cfg.task)
        dev_metric = task.dev_metric(model.config.id2label, encoding, targets)
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=train_set,
        eval_dataset=dev_set,
        data_collator=task.collator(tokenizer),
        processing_class=tokenizer,
        compute_metrics=dev_metric,
        compute_loss_func=task.loss(cfg.task, train_set, len(label2id)),
    )
    checkpoint = cfg.trainer.resume_from_checkpoint if resume else None
    return trainer, trainer.train(resume_from_checkpoint=checkpoint or None), len(train_set)


def unlabelled_pool(cfg: DictConfig, held_out: list[dict]) -> tuple[list[dict], dict]:
    """The documents self-training labels (``data.unlabelled``): ``heldout`` (the held-out articles' text, their
    labels unread: a user adapting to the batch about to be labelled), or files / folders as ``src.predict`` reads
    them; ``([], {})`` when unset. The second item is its provenance for the model folder."""
    where = cfg.data.get("unlabelled")
    if not where:
        return [], {}
    if "self_training" not in cfg.task:
        raise ConfigError(f"data.unlabelled: the {cfg.task.name} task has no self-training; set data.unlabelled=null")
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise ConfigError("data.unlabelled: self-training runs in one process; train without torchrun")
    if cfg.trainer.resume_from_checkpoint:
        raise ConfigError("data.unlabelled: a self-training run cannot resume from a checkpoint; start it again")
    if where == "heldout":
        if not held_out:
            raise ConfigError("data.unlabelled=heldout: this split holds nothing out (data.fold=null); name files")
        docs = [{"id": r["id"], "text": r["text"]} for r in held_out]
        return docs, {"unlabelled": {"source": "heldout", "documents": len(docs)}}
    inputs = [str(where)] if isinstance(where, str) else [str(w) for w in where]
    docs = list(iter_inputs(inputs))
    bad = next((d for d in docs if "error" in d), None)
    if bad is not None:
        raise DataError([f"data.unlabelled: {bad['error']['file']}: {bad['error']['reason']}"])
    if not docs:
        raise ConfigError(f"data.unlabelled={where}: no documents found")
    return docs, {"unlabelled": {"source": inputs, "documents": len(docs)}}


def pseudo_label(
    cfg: DictConfig,
    task: Task,
    trainer: Trainer,
    tokenizer,
    base: str,
    provenance: dict,
    train_records: list[dict],
    pool: list[dict],
    out: Path,
) -> list[dict]:
    """The trained model, written and finished as a model folder, labels the pool; its most confident sentences
    come back as training records (``Task.pseudo_labelled``, ``task.self_training``)."""
    folder = out / "self-training.tmp"
    _, load = finished_folder(folder, cfg, task, trainer, tokenizer, base, provenance, train_records)
    predictions = load().predict_records(pool)  # with what finish added (the prototype head)
    shutil.rmtree(folder, ignore_errors=True)
    return task.pseudo_labelled(pool, predictions, OmegaConf.to_container(cfg.task.self_training, resolve=True))


def run_device(cfg: DictConfig) -> str:
    """Where training's own prediction runs (the held-out evaluation, ``finish``, self-training)."""
    return "cpu" if cfg.trainer.device == "cpu" else "auto"


def finished_folder(
    folder: Path,
    cfg: DictConfig,
    task: Task,
    trainer: Trainer,
    tokenizer,
    base: str,
    provenance: dict,
    train_records: list[dict],
) -> tuple[ModelFolder, Callable[[], Predictor]]:
    """Write the trained model's weights and tokenizer at ``folder`` and let the task finish it (``Task.finish``: the
    prototype head); returns its record, which the caller completes and saves (once, with the card), and how to load
    the folder with that record as prediction runs it."""
    shutil.rmtree(folder, ignore_errors=True)
    trainer.model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    record = ModelFolder.for_training(task, trainer.model, cfg, base, provenance)

    def load(record: ModelFolder) -> Predictor:
        """The folder as prediction runs it, ``record`` standing for its not yet written ``newsframe.json``."""
        where = {task.name: str(folder)}
        return Predictor.from_pretrained(**where, records={task.name: record}, device=run_device(cfg), backend="torch")

    fitted = task.finish(partial(load, record), train_records, OmegaConf.to_container(cfg.task, resolve=True))
    if fitted:
        record = record.with_fitted(fitted)
    return record, partial(load, record)


def describe_pseudo(records: list[dict]) -> str:
    counts = Counter(s["stance"] for r in records for s in r["sentences"] if s.get("stance") is not None)
    labelled = ", ".join(f"{n} {label}" for label, n in sorted(counts.items())) or "nothing"
    return f"{labelled} pseudo-labelled from {len(records)} documents"


# Mistakes in the config or the data (a missing folder, an unreachable Hub id too), reported as one line with exit 2;
# anything else is a bug and keeps its traceback.
USER_ERRORS = (ConfigError, DataError, OSError)


def main() -> None:
    register_resolvers()
    sys.argv[1:] = distributed_overrides(sys.argv[1:])
    try:
        check_folder_overrides(sys.argv[1:])
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(2) from None

    @hydra.main(version_base="1.3", config_path="../configs", config_name="train")
    def run(cfg: DictConfig) -> float | None:
        try:
            metrics, _ = train(cfg)
        except USER_ERRORS as err:  # a user's mistake: one clear line, no traceback
            print(f"error: {err}", file=sys.stderr)
            raise SystemExit(2) from None
        return metrics["headline"]["value"] if metrics else None

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
        argv = [*argv, "hydra/job_logging=disabled", "hydra/hydra_logging=disabled"]
    return argv


if __name__ == "__main__":
    main()
