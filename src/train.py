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
from pathlib import Path

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
from src.model_folder import record_held_out, record_metadata, write_model_folder
from src.predict.engine import Predictor
from src.run_folder import check_experiment, check_folder_overrides, check_run_folder, is_main_process, save_run_config
from src.tasks import get_task

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
    set_seed(cfg.seed)
    started = time.perf_counter()

    train_records, dev_records, test_records, provenance = load_splits(cfg.data)
    base = resolve_base(cfg)
    if cfg.get("notice"):
        log.warning("%s", cfg.notice)
    save_run_config(cfg, out)
    head_init = OmegaConf.to_container(cfg.model.head_init) if cfg.model.get("head_init") else None
    try:
        tokenizer = load_tokenizer(base, cfg.model.trust_remote_code)
        model = load_for_training(task, base, task.labels(cfg.data), cfg.model.trust_remote_code, head_init)
    except OSError as err:  # a Hub id that is offline, unknown or gated: the Hub's own message, with the key
        raise ModelNotFound(f"model.name_or_path={base}: {err}") from None
    label2id = {k: int(v) for k, v in model.config.label2id.items()}
    windows = (label2id, cfg.task.max_length, cfg.task.stride)
    augmented = task.augmented(train_records, cfg.task, cfg.seed, tokenizer.mask_token)
    train_set, _, _ = task.dataset(tokenizer, augmented, *windows, cfg.task)
    log.info("%s: %d training windows from %d documents", task.name, len(train_set), len(train_records))
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
    result = trainer.train(resume_from_checkpoint=cfg.trainer.resume_from_checkpoint or None)
    if not trainer.is_world_process_zero():
        return None, out

    # The model folder is written beside its final place and renamed into it once complete.
    tmp_dir, model_dir = out / "model.tmp", out / "model"
    shutil.rmtree(tmp_dir, ignore_errors=True)
    write_model_folder(tmp_dir, task, trainer.model, tokenizer, cfg, base, provenance)
    device = "cpu" if cfg.trainer.device == "cpu" else "auto"
    task_cfg = OmegaConf.to_container(cfg.task, resolve=True)

    def load() -> Predictor:  # the folder just written, run as training evaluates it
        return Predictor.from_pretrained(**{task.name: str(tmp_dir)}, device=device, backend="torch")

    record_metadata(tmp_dir, cfg, task.finish(load, train_records, task_cfg))
    metrics = None
    if test_records:
        metrics, paths = evaluate_records(tmp_dir, test_records, out, device=device)
        record_held_out(tmp_dir, cfg, metrics)
        print(console_summary(metrics, paths["report"]))
    os.replace(tmp_dir, model_dir)
    if not cfg.trainer.keep_checkpoints:
        shutil.rmtree(out / "checkpoints", ignore_errors=True)  # resume state is not needed once the model is saved
    minutes = (time.perf_counter() - started) / 60
    summary = {k: result.metrics.get(k) for k in ("train_runtime", "train_samples_per_second")}
    summary |= {"task": task.name, "train_windows": len(train_set), "wall_minutes": round(minutes, 2)}
    write_json(out / "train_summary.json", {**summary, "device": str(trainer.args.device)})
    print(
        f"\nModel ready: {model_dir} ({minutes:.1f} min). Next: python -m src.predict --{task.name} {out} "
        "-o predictions.jsonl YOUR_ARTICLES/"
    )
    return metrics, out


# Mistakes in the config or the data (a missing folder, an unreachable Hub id too), reported as one line with exit 2;
# anything else is a bug and keeps its traceback.
USER_ERRORS = (ConfigError, DataError, OSError)


def main() -> None:
    import hydra

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
